//! Holidays and shopping festivals of the demo calendar.

use chrono::{Datelike, Duration, NaiveDate, Weekday};

/// An event day: (date, event name, kind).
pub type EventDay = (NaiveDate, &'static str, &'static str);

/// Every event day between `start` and `end`, inclusive, in date order.
pub fn events(start: NaiveDate, end: NaiveDate) -> Vec<EventDay> {
    let mut out = Vec::new();
    for year in start.year()..=end.year() {
        let d = |m, day| NaiveDate::from_ymd_opt(year, m, day).expect("fixed dates exist every year");
        out.push((d(1, 1), "new_year", "holiday"));
        out.push((d(2, 14), "valentines_day", "festival"));
        out.push((d(6, 18), "618", "festival"));
        out.push((d(11, 11), "double_11", "festival"));
        let thanksgiving = nth_weekday(year, 11, Weekday::Thu, 4);
        out.push((thanksgiving + Duration::days(1), "black_friday", "festival"));
        out.push((thanksgiving + Duration::days(4), "cyber_monday", "festival"));
        for day in 14..=23 {
            out.push((d(12, day), "christmas_shopping", "season"));
        }
        out.push((d(12, 24), "christmas_eve", "holiday"));
        out.push((d(12, 25), "christmas", "holiday"));
    }
    out.retain(|(date, _, _)| *date >= start && *date <= end);
    out.sort();
    out
}

/// The `n`th `weekday` of a month.
fn nth_weekday(year: i32, month: u32, weekday: Weekday, n: u32) -> NaiveDate {
    NaiveDate::from_weekday_of_month_opt(year, month, weekday, n as u8).expect("every month has four of each weekday")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_friday_follows_thanksgiving() {
        let ev = events(NaiveDate::from_ymd_opt(2025, 1, 1).unwrap(), NaiveDate::from_ymd_opt(2025, 12, 31).unwrap());
        let bf = ev.iter().find(|e| e.1 == "black_friday").unwrap().0;
        assert_eq!(bf, NaiveDate::from_ymd_opt(2025, 11, 28).unwrap());
        assert!(ev.iter().any(|e| e.1 == "double_11" && e.0.day() == 11));
    }
}
