//! Factor groups: which regressors of the factor regression make up each driver of demand
//! (`[factors.groups]` in settings). Driver shares and `explain` sum the terms of a group.
//!
//! A pattern is a regressor name (`own_price`, `competitor_price`, `post_promo`) or a prefix
//! ending in `*` (`promo:*` every promotion kind, `dow:*` the days of the week, `yearly:*` the
//! yearly harmonics, `event:*` every calendar event, `event:black_friday` one of them). The
//! first group whose pattern matches takes a regressor; one no group takes joins `level_trend`,
//! the series' own level and trend, which is always a group.
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

/// The group of the series' level and trend, always present.
pub const LEVEL: &str = "level_trend";

/// The `[factors]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FactorSettings {
    /// Group name → regressor patterns, in the order groups are tried.
    #[serde(default = "default_groups")]
    pub groups: BTreeMap<String, Vec<String>>,
}

impl Default for FactorSettings {
    fn default() -> Self {
        Self { groups: default_groups() }
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
                let known = ["own_price", "competitor_price", "post_promo"].contains(&p.as_str())
                    || ["promo:", "dow:", "yearly:", "event:"].iter().any(|k| p.starts_with(k));
                if !known {
                    return Err((
                        key,
                        format!(
                            "unknown regressor pattern `{p}`: use own_price, competitor_price, post_promo, or a \
                             promo:, dow:, yearly:, event: name or prefix ending in *"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Every group, `level_trend` first.
    pub fn names(&self) -> Vec<String> {
        std::iter::once(LEVEL.to_string()).chain(self.groups.keys().cloned()).collect()
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
        let s = FactorSettings { groups: g };
        assert_eq!(s.group_of("event:black_friday"), "festivals");
        assert_eq!(s.group_of("event:christmas"), "events");
        assert!(s.validate().is_ok());
        let bad = FactorSettings { groups: [("x".to_string(), vec!["views".to_string()])].into() };
        assert!(bad.validate().unwrap_err().1.contains("views"));
    }
}
