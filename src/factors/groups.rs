//! Factor groups: which regressors of the factor regression make up each driver of demand
//! (`[factors.groups]` in settings). Driver shares and `explain` sum the terms of a group.
//!
//! A pattern is a regressor name (`own_price`, `competitor_price`, `post_promo`) or a prefix
//! ending in `*` (`promo:*` every promotion kind, `dow:*` the days of the week, `yearly:*` the
//! yearly harmonics, `event:*` every calendar event, `event:black_friday` one of them). The
//! first group whose pattern matches takes a regressor; one no group takes joins `level_trend`,
//! the series' own level and trend, which is always a group.
//!
//! The same groups name the covariate columns the deep models read (see
//! [`crate::panel::covariates`]), for their permutation importance ([`super::importance`]): a
//! pattern `column:NAME` puts a covariate column in a group; a column no group names goes where
//! its regressor goes (`discount`, `promo`, `promo_share` with `promo:*`, `post_promo` with
//! `post_promo`, the relative prices with `own_price`, the calendar columns with `event:*`), and
//! the past-only columns the regression has no regressor for form `stock_outs` (`stock_out`)
//! and `behaviour` (views, conversion, add-to-cart) ([`FactorSettings::covariate_groups`]); the
//! closed share forms `closures`, the local calendar's columns `local_events`, and each of the
//! user's covariates (`user:NAME`, with the indicators `user:NAME=LABEL` of a categorical one) a
//! group `user:NAME` of its own unless a `column:user:NAME` pattern puts it in another.
//!
//! ```toml
//! [factors.groups]
//! weekly = ["dow:*"]
//! yearly = ["yearly:*"]
//! festivals = ["event:black_friday", "event:double_11", "event:cyber_monday"]
//! holidays = ["event:*"]
//! promotion = ["promo:*", "post_promo"]
//! price = ["own_price"]
//! competitor = ["competitor_price"]
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::importance::ImportanceSettings;
use crate::panel::covariates::{CALENDAR, PAST, PRICE_PROMO};

/// The group of the series' level and trend, always present.
pub const LEVEL: &str = "level_trend";

/// Prefix of a pattern that names a covariate column.
pub const COLUMN: &str = "column:";

/// Each covariate column's regressor (the factor regression's name it goes with, `None`: the
/// regression has none) and the group it forms when no configured group takes it.
const COLUMN_DEFAULTS: &[(&str, Option<&str>, &str)] = &[
    ("is_event", Some("event:"), "events"),
    ("event_holiday", Some("event:"), "events"),
    ("event_festival", Some("event:"), "events"),
    ("event_season", Some("event:"), "events"),
    ("days_to_next_event", Some("event:"), "events"),
    ("days_since_last_event", Some("event:"), "events"),
    ("discount", Some("promo:"), "promotion"),
    ("promo", Some("promo:"), "promotion"),
    ("post_promo", Some("post_promo"), "promotion"),
    ("promo_share", Some("promo:"), "promotion"),
    ("price_rel_own_28", Some("own_price"), "price"),
    ("price_rel_category", Some("own_price"), "price"),
    ("price_rel_competitor", Some("competitor_price"), "competitor"),
    ("stock_out", None, "stock_outs"),
    ("views_rel", None, "behaviour"),
    ("conversion_lag_1", None, "behaviour"),
    ("cart_rate_lag_1", None, "behaviour"),
    ("closed", None, "closures"),
    ("local_event", None, "local_events"),
    ("local_holiday", None, "local_events"),
];

/// The `[factors]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FactorSettings {
    /// Group name → regressor patterns, in the order groups are tried.
    #[serde(default = "default_groups")]
    pub groups: BTreeMap<String, Vec<String>>,
    /// Permutation importance of the groups on backtest windows (`[factors.importance]`).
    #[serde(default)]
    pub importance: ImportanceSettings,
    /// The regression reads at most this many series (0: all), the same share of each category.
    #[serde(default = "default_max_series")]
    pub max_series: usize,
}

/// Series the factor regression reads by default: its estimates are pooled per category, and a
/// few thousand series of years of history pin them down; more only costs memory and time.
pub const DEFAULT_MAX_SERIES: usize = 2_000;

fn default_max_series() -> usize {
    DEFAULT_MAX_SERIES
}

impl Default for FactorSettings {
    fn default() -> Self {
        Self { groups: default_groups(), importance: ImportanceSettings::default(), max_series: DEFAULT_MAX_SERIES }
    }
}

/// The default groups, named as the demo generator names its drivers.
pub fn default_groups() -> BTreeMap<String, Vec<String>> {
    [
        ("weekly", vec!["dow:*"]),
        ("yearly", vec!["yearly:*"]),
        ("events", vec!["event:*"]),
        ("promotion", vec!["promo:*", "post_promo"]),
        ("price", vec!["own_price"]),
        ("competitor", vec!["competitor_price"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect()
}

impl FactorSettings {
    /// Checks names and patterns; the error names the key.
    pub fn validate(&self) -> std::result::Result<(), (String, String)> {
        for (name, patterns) in &self.groups {
            let key = format!("factors.groups.{name}");
            if name == LEVEL {
                return Err((key, format!("`{LEVEL}` is the series' level and trend; it takes no regressors")));
            }
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                return Err((key, "a group name is letters, digits, `_` and `-`".into()));
            }
            for p in patterns {
                if let Some(column) = p.strip_prefix(COLUMN) {
                    if !COLUMN_DEFAULTS.iter().any(|(c, _, _)| *c == column) {
                        let all: Vec<&str> = CALENDAR.iter().chain(PRICE_PROMO).chain(PAST).copied().collect();
                        return Err((
                            key,
                            format!("unknown covariate column `{column}` in `{p}`: one of {}", all.join(", ")),
                        ));
                    }
                    continue;
                }
                let known = ["own_price", "competitor_price", "post_promo"].contains(&p.as_str())
                    || ["promo:", "dow:", "yearly:", "event:"].iter().any(|k| p.starts_with(k));
                if !known {
                    return Err((
                        key,
                        format!(
                            "unknown regressor pattern `{p}`: use own_price, competitor_price, post_promo, a \
                             promo:, dow:, yearly:, event: name or prefix ending in *, or column:NAME"
                        ),
                    ));
                }
            }
        }
        self.importance.validate()
    }

    /// Every group, `level_trend` first.
    pub fn names(&self) -> Vec<String> {
        std::iter::once(LEVEL.to_string()).chain(self.groups.keys().cloned()).collect()
    }

    /// The covariate columns of each group (only groups with columns): a `column:NAME` pattern
    /// first, else the group of the column's regressor, else its own default group.
    pub fn covariate_groups(&self) -> BTreeMap<String, Vec<String>> {
        self.covariate_groups_with(&[])
    }

    /// [`FactorSettings::covariate_groups`] with the columns of the user's covariates the panel
    /// has (`user:NAME` or `user:NAME=LABEL`): each in the group a `column:` pattern names, else
    /// in `user:NAME`.
    pub fn covariate_groups_with(&self, user_columns: &[String]) -> BTreeMap<String, Vec<String>> {
        let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for column in user_columns {
            let named = self
                .groups
                .iter()
                .find(|(_, patterns)| patterns.iter().any(|p| p.strip_prefix(COLUMN) == Some(column.as_str())))
                .map(|(name, _)| name.clone());
            let own = column.split_once('=').map_or(column.as_str(), |(base, _)| base).to_string();
            out.entry(named.unwrap_or(own)).or_default().push(column.clone());
        }
        for (column, regressor, fallback) in COLUMN_DEFAULTS {
            let named = self
                .groups
                .iter()
                .find(|(_, patterns)| patterns.iter().any(|p| p.strip_prefix(COLUMN) == Some(column)))
                .map(|(name, _)| name.as_str());
            let by_regressor = regressor.map(|r| self.group_of(r)).filter(|g| *g != LEVEL);
            let group = named.or(by_regressor).unwrap_or(fallback);
            out.entry(group.to_string()).or_default().push(column.to_string());
        }
        out
    }

    /// Every group the importance reports: the configured ones (`level_trend` first), then the
    /// groups only covariate columns form.
    pub fn importance_groups(&self) -> Vec<String> {
        self.importance_groups_with(&[])
    }

    /// [`FactorSettings::importance_groups`] with the groups of the user's covariate columns.
    pub fn importance_groups_with(&self, user_columns: &[String]) -> Vec<String> {
        let mut names = self.names();
        for g in self.covariate_groups_with(user_columns).into_keys() {
            if !names.contains(&g) {
                names.push(g);
            }
        }
        names
    }

    /// Whether a group is the calendar the models derive from dates and history (level and
    /// trend, weekly, yearly) rather than read as covariates.
    pub fn is_calendar(&self, group: &str) -> bool {
        group == LEVEL
            || self.groups.get(group).is_some_and(|ps| {
                !ps.is_empty() && ps.iter().all(|p| p.starts_with("dow:") || p.starts_with("yearly:"))
            })
    }

    /// The calendar groups a scrambled calendar can measure (the level and trend cannot): (name,
    /// day of the week, position in the year). The day of the week only at a daily grain, where
    /// periods differ in it.
    pub fn calendar_parts(&self, daily: bool) -> Vec<(String, bool, bool)> {
        self.groups
            .iter()
            .filter(|(name, _)| self.is_calendar(name))
            .filter_map(|(name, patterns)| {
                let weekly = daily && patterns.iter().any(|p| p.starts_with("dow:"));
                let yearly = patterns.iter().any(|p| p.starts_with("yearly:"));
                (weekly || yearly).then(|| (name.clone(), weekly, yearly))
            })
            .collect()
    }

    /// The group of a regressor.
    pub fn group_of(&self, regressor: &str) -> &str {
        let matches = |p: &String| match p.strip_suffix('*') {
            Some(prefix) => regressor.starts_with(prefix),
            None => regressor == p,
        };
        // Exact names first, so `event:black_friday` wins over another group's `event:*`.
        for exact in [true, false] {
            for (name, patterns) in &self.groups {
                if patterns.iter().filter(|p| p.ends_with('*') != exact).any(matches) {
                    return name;
                }
            }
        }
        LEVEL
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regressors_fall_in_their_groups() {
        let s = FactorSettings::default();
        assert_eq!(s.group_of("promo:display"), "promotion");
        assert_eq!(s.group_of("post_promo"), "promotion");
        assert_eq!(s.group_of("dow:3"), "weekly");
        assert_eq!(s.group_of("own_price"), "price");
        assert_eq!(s.group_of("something_else"), LEVEL);
        let mut g = default_groups();
        g.insert("festivals".into(), vec!["event:black_friday".into()]);
        let s = FactorSettings { groups: g, ..Default::default() };
        assert_eq!(s.group_of("event:black_friday"), "festivals");
        assert_eq!(s.group_of("event:christmas"), "events");
        assert!(s.validate().is_ok());
        let bad =
            FactorSettings { groups: [("x".to_string(), vec!["views".to_string()])].into(), ..Default::default() };
        assert!(bad.validate().unwrap_err().1.contains("views"));
        let bad = FactorSettings {
            groups: [("x".to_string(), vec!["column:price".to_string()])].into(),
            ..Default::default()
        };
        assert!(bad.validate().unwrap_err().1.contains("price_rel_own_28"));
    }

    #[test]
    fn covariate_columns_fall_in_their_groups() {
        let s = FactorSettings::default();
        let g = s.covariate_groups();
        assert_eq!(g["promotion"], ["discount", "promo", "post_promo", "promo_share"]);
        assert_eq!(g["price"], ["price_rel_own_28", "price_rel_category"]);
        assert_eq!(g["events"].len(), 6);
        assert_eq!(g["stock_outs"], ["stock_out"]);
        assert_eq!(g["behaviour"].len(), 3);
        assert_eq!(g["competitor"], ["price_rel_competitor"]);
        assert!(!g.contains_key("weekly"));
        let names = s.importance_groups();
        assert_eq!(names[0], LEVEL);
        assert!(names.ends_with(&["behaviour", "closures", "local_events", "stock_outs"].map(String::from)));
        assert_eq!(g["closures"], ["closed"]);
        assert_eq!(g["local_events"], ["local_event", "local_holiday"]);
        // The user's covariates: a group each, a categorical one's indicators together.
        let user = ["user:spend", "user:season=summer", "user:season=winter"].map(String::from);
        let g = s.covariate_groups_with(&user);
        assert_eq!(g["user:spend"], ["user:spend"]);
        assert_eq!(g["user:season"], ["user:season=summer", "user:season=winter"]);
        assert!(s.importance_groups_with(&user).contains(&"user:season".to_string()));
        assert!(s.is_calendar("weekly") && s.is_calendar(LEVEL) && !s.is_calendar("competitor"));
        // A column named by a group goes there; the rest of its kind stays with its regressor.
        let mut groups = default_groups();
        groups.insert("festivals".into(), vec!["event:black_friday".into(), "column:event_festival".into()]);
        let s = FactorSettings { groups, ..Default::default() };
        let g = s.covariate_groups();
        assert_eq!(g["festivals"], ["event_festival"]);
        let mut groups = default_groups();
        groups.insert("marketing".into(), vec!["column:user:spend".into()]);
        let s = FactorSettings { groups, ..Default::default() };
        assert_eq!(s.covariate_groups_with(&["user:spend".to_string()])["marketing"], ["user:spend"]);
        assert_eq!(g["events"].len(), 5);
    }
}
