//! The calendar a model reads from a period's date — day of the week, day of the year, month,
//! ISO week — and its scrambling, for measuring how much a fitted model leans on the weekly or
//! the yearly cycle (see `factors::importance`).
//!
//! A [`Scramble`] replaces, for every date, the day of the week and/or the position in the year
//! by ones drawn for that date from a seeded hash: the same date reads the same everywhere (every
//! series, history and horizon alike), as the calendar covariates are shuffled over periods only.

use chrono::{Datelike, NaiveDate};

/// The calendar of one period, as models read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Calendar {
    /// 0 = Monday … 6 = Sunday.
    pub weekday0: u32,
    /// 0 … 365.
    pub ordinal0: u32,
    /// 1 … 12.
    pub month: u32,
    /// 1 … 53.
    pub iso_week: u32,
}

impl Calendar {
    /// The calendar of `date`.
    pub fn of(date: NaiveDate) -> Self {
        Self {
            weekday0: date.weekday().num_days_from_monday(),
            ordinal0: date.ordinal0(),
            month: date.month(),
            iso_week: date.iso_week().week(),
        }
    }
}

/// Which parts of the calendar are scrambled, and the seed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scramble {
    /// The day of the week.
    pub weekly: bool,
    /// The position in the year (day of the year, month, ISO week, together).
    pub yearly: bool,
    /// Seed of the draws.
    pub seed: u64,
}

impl Scramble {
    /// The calendar a model reads for `date` under this scramble.
    pub fn apply(&self, date: NaiveDate) -> Calendar {
        let mut cal = Calendar::of(date);
        let draw = mix(self.seed ^ mix(date.num_days_from_ce() as u64));
        if self.weekly {
            cal.weekday0 = (draw % 7) as u32;
        }
        if self.yearly {
            let day = ((draw >> 16) % 365) as u32;
            if let Some(seen) = NaiveDate::from_yo_opt(date.year(), day + 1) {
                cal = Calendar { weekday0: cal.weekday0, ..Calendar::of(seen) };
            }
        }
        cal
    }
}

/// SplitMix64's finaliser: a well-spread 64-bit hash.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scramble_moves_only_its_part_and_is_seeded() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let weekly = Scramble { weekly: true, yearly: false, seed: 1 };
        let days: Vec<NaiveDate> = (0..70).map(|i| d + chrono::Duration::days(i)).collect();
        let seen: Vec<Calendar> = days.iter().map(|d| weekly.apply(*d)).collect();
        assert!(days.iter().zip(&seen).all(|(d, c)| c.ordinal0 == d.ordinal0() && c.month == d.month()));
        let moved = days.iter().zip(&seen).filter(|(d, c)| c.weekday0 != d.weekday().num_days_from_monday()).count();
        assert!(moved > 40, "{moved} of 70 weekdays moved");
        assert_eq!(seen, days.iter().map(|d| weekly.apply(*d)).collect::<Vec<_>>(), "same seed, same draws");
        let other = Scramble { seed: 2, ..weekly };
        assert_ne!(seen, days.iter().map(|d| other.apply(*d)).collect::<Vec<_>>());

        let yearly = Scramble { weekly: false, yearly: true, seed: 1 };
        let seen: Vec<Calendar> = days.iter().map(|d| yearly.apply(*d)).collect();
        assert!(days.iter().zip(&seen).all(|(d, c)| c.weekday0 == d.weekday().num_days_from_monday()));
        let months: std::collections::BTreeSet<u32> = seen.iter().map(|c| c.month).collect();
        assert!(months.len() >= 8, "70 days read as {months:?}");
    }
}
