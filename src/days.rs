//! Arrow's `Date32` (days since 1970-01-01) as chrono dates, without panicking: a data value can
//! hold any `i32`, about ±5.8 million years, far beyond chrono's ±262,143; such a value is an
//! error naming it, never a panic.

use chrono::{Duration, NaiveDate};

use crate::error::{Error, Result};

/// 1970-01-01, day 0.
pub fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("1970-01-01 is a date")
}

/// The date `days` after 1970-01-01, or `None` beyond chrono's range.
pub fn checked(days: i64) -> Option<NaiveDate> {
    epoch().checked_add_signed(Duration::try_days(days)?)
}

/// The date `days` after 1970-01-01; `what` names the value in the error beyond chrono's range.
pub fn date(days: i64, what: &str) -> Result<NaiveDate> {
    checked(days).ok_or_else(|| {
        Error::data(format!(
            "{what}: {days} days from 1970-01-01 is not a date shelfcast can read (beyond year 262143)"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_beyond_chronos_range_are_errors() {
        assert_eq!(date(0, "x").unwrap(), epoch());
        assert_eq!(checked(i32::MAX as i64), None);
        assert_eq!(checked(i32::MIN as i64), None);
        assert!(date(i32::MAX as i64, "sales.date").unwrap_err().to_string().contains("sales.date"));
    }
}
