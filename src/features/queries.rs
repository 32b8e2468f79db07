//! The feature SQL, embedded: one statement per file in `sql/features/`.

/// A feature query: its name (also its dataset under `features/`) and SQL text.
#[derive(Debug, Clone, Copy)]
pub struct FeatureQuery {
    /// Name, also the view name in `query` and the dataset folder.
    pub name: &'static str,
    /// The SQL statement, with `$1` = cutoff and `$2` = period length in days.
    pub sql: &'static str,
}

/// Demand per item × location × period, zero-filled, with calendar columns.
pub const TARGET: FeatureQuery = FeatureQuery { name: "target", sql: include_str!("../../sql/features/target.sql") };

/// Every feature query, in the order the pipeline runs them.
pub const ALL: &[FeatureQuery] = &[TARGET];
