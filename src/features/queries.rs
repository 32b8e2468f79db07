//! The feature SQL, embedded: one statement per file in `sql/features/`.
//!
//! Queries run in the order of [`ALL`]; a query may read the tables of the
//! queries before it by name (`history` reads `target`). Each declares its
//! [`Role`], so known-future covariates (valid after the cutoff) are never
//! confused with past-only ones.

use serde::Serialize;

use crate::period::Frequency;

/// What a feature table's columns may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The demand to forecast (up to the cutoff).
    Target,
    /// Known in advance: rows extend over the horizon after the cutoff (calendar, planned prices).
    Known,
    /// Observed: computed only from data on or before the cutoff, and for each row from earlier periods.
    Past,
    /// Series attributes that do not change.
    Static,
}

/// A feature query.
#[derive(Debug, Clone, Copy)]
pub struct FeatureQuery {
    /// Name: the view in `query` and the dataset `features/<name>/`.
    pub name: &'static str,
    /// The statement: `$1` cutoff, `$2` period length in days, `$3` horizon in periods.
    pub sql: &'static str,
    /// How its columns may be used.
    pub role: Role,
    /// The source file under `sql/features/`.
    pub file: &'static str,
    /// Only for this grain (`None`: every grain).
    pub frequency: Option<Frequency>,
}

macro_rules! query {
    ($name:literal, $file:literal, $role:expr, $freq:expr) => {
        FeatureQuery {
            name: $name,
            sql: include_str!(concat!("../../sql/features/", $file)),
            role: $role,
            file: $file,
            frequency: $freq,
        }
    };
}

/// Demand per item × location × period, zero-filled, with the stock-out flag.
pub const TARGET: FeatureQuery = query!("target", "target.sql", Role::Target, None);

/// Every feature query, in the order they run.
pub const ALL: &[FeatureQuery] = &[
    TARGET,
    query!("calendar_features", "calendar_features.sql", Role::Known, None),
    query!("history", "history_daily.sql", Role::Past, Some(Frequency::Daily)),
    query!("history", "history_weekly.sql", Role::Past, Some(Frequency::Weekly)),
    query!("price_promo", "price_promo.sql", Role::Known, None),
    query!("competitor", "competitor.sql", Role::Past, None),
    query!("behaviour", "behaviour.sql", Role::Past, None),
    query!("attributes", "attributes.sql", Role::Static, None),
    query!("closed_periods", "closed_periods.sql", Role::Known, None),
    query!("local_calendar", "local_calendar.sql", Role::Known, None),
    query!("user_known", "user_known.sql", Role::Known, None),
    query!("user_observed", "user_observed.sql", Role::Past, None),
];

/// The queries that apply to a grain, in order.
pub fn for_frequency(frequency: Frequency) -> impl Iterator<Item = &'static FeatureQuery> {
    ALL.iter().filter(move |q| q.frequency.is_none_or(|f| f == frequency))
}

/// The query of this name for a grain.
pub fn by_name(name: &str, frequency: Frequency) -> Option<&'static FeatureQuery> {
    for_frequency(frequency).find(|q| q.name == name)
}
