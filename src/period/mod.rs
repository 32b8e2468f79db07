//! Periods: the forecast grain ([`Frequency`]), its day arithmetic, and durations as settings
//! write them ([`duration`]). A leaf module: the layers below the settings read their grain and
//! durations from here, never from [`crate::settings`].

pub mod duration;

use serde::{Deserialize, Serialize};

/// The forecast grain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Frequency {
    /// One value per calendar day.
    Daily,
    /// One value per ISO week, keyed by its Monday.
    Weekly,
}

impl Frequency {
    /// Days in one period.
    pub fn days(self) -> i64 {
        match self {
            Frequency::Daily => 1,
            Frequency::Weekly => 7,
        }
    }

    /// The first day of the period whose last day is `last` (a week ending on a cutoff starts
    /// six days before it).
    pub fn period_start(self, last: chrono::NaiveDate) -> chrono::NaiveDate {
        last - chrono::Duration::days(self.days() - 1)
    }

    /// The last day of the period starting on `first`.
    pub fn period_end(self, first: chrono::NaiveDate) -> chrono::NaiveDate {
        first + chrono::Duration::days(self.days() - 1)
    }

    /// The default seasonal cycle in periods (a week of days, a year of weeks).
    pub fn default_season(self) -> usize {
        match self {
            Frequency::Daily => 7,
            Frequency::Weekly => 52,
        }
    }

    /// Periods a year back in whole weeks, so the weekday lines up (364 days, 52 weeks).
    pub fn year(self) -> usize {
        match self {
            Frequency::Daily => 364,
            Frequency::Weekly => 52,
        }
    }

    /// The lowercase name used in files and manifests.
    pub fn as_str(self) -> &'static str {
        match self {
            Frequency::Daily => "daily",
            Frequency::Weekly => "weekly",
        }
    }
}
