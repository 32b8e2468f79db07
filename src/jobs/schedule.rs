//! When a job is due: cron slots in the job's own time zone, and what to do with the slots
//! missed while no scheduler was running.
//!
//! Everything here is a pure function of the schedule, a [`Cursor`] (the last slot the job's
//! history knows of), the instant the scheduler started and "now", so every rule is tested
//! with plain timestamps, and the scheduler loop only asks [`plan`] what to start.
//!
//! **Cron** expressions have a seconds field (`sec min hour day-of-month month day-of-week`),
//! parsed by `croner` exactly as `tokio-cron-scheduler` parses them (day-of-month *and*
//! day-of-week must both match when both are given). Slots are computed in the job's IANA time
//! zone, so a 02:00 Europe/Berlin job runs at 02:00 local time in winter and in summer:
//!
//! - on the day the clocks go forward, a time in the skipped hour (02:30) runs at the end of
//!   the gap (03:00 local), once even when several times of the expression fell in the gap;
//!   the slot still belongs to that day;
//! - on the day they go back, a wall-clock time of the repeated hour runs once, at its first
//!   occurrence.
//!
//! A slot's **run date** is its local date in the job's zone.
//!
//! **Catch-up**: slots after the cursor and at or before the scheduler's start were missed
//! (the scheduler was down). `none` skips them, `latest` runs the most recent one, `all` runs
//! each of them, oldest first. A job with no history has missed nothing. If the cursor's own run
//! never finished (the process died or was stopped), it is run again, unless a newer slot was
//! missed since and the policy is `none` or `latest` (the newer slot supersedes it).

use chrono::offset::LocalResult;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Offset, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Serialize};

use super::history::Trigger;

/// At most this many missed slots are run by `catch-up = "all"` (the most recent ones).
pub const MAX_CATCH_UP: usize = 1000;

/// A cron expression in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    expr: String,
    cron: Cron,
    tz: Tz,
}

/// What to do with slots missed while the scheduler was down.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    /// Skip them.
    None,
    /// Run the most recent one.
    #[default]
    Latest,
    /// Run every one, oldest first.
    All,
}

/// What to do when a slot comes due while the job's previous run is still going.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Concurrency {
    /// Drop the new slot (recorded as a skipped run).
    #[default]
    Skip,
    /// Start it when the previous run ends.
    Queue,
}

/// The last slot of a job that its run history knows of.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The latest slot a run was started (or skipped) for.
    pub last_slot: Option<DateTime<Utc>>,
    /// Whether that slot's run never finished (its process died, or was stopped).
    pub unfinished: bool,
}

/// A run to start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The slot it is for.
    pub slot: DateTime<Utc>,
    /// The run date: the slot's local date.
    pub run_date: NaiveDate,
    /// Why it runs.
    pub trigger: Trigger,
}

/// What [`plan`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Runs to start, oldest first.
    pub due: Vec<Due>,
    /// Missed slots the catch-up policy leaves out.
    pub skipped: Vec<DateTime<Utc>>,
    /// The new cursor: the latest slot considered.
    pub cursor: Option<DateTime<Utc>>,
}

impl Schedule {
    /// Parses a cron expression (with seconds) and an IANA time zone name; the error says which
    /// is wrong and why.
    pub fn parse(expr: &str, timezone: &str) -> Result<Self, String> {
        let cron = parser().parse(expr).map_err(|e| format!("bad cron expression `{expr}`: {e}"))?;
        let tz: Tz = timezone
            .parse()
            .map_err(|_| format!("unknown time zone `{timezone}` (use an IANA name such as UTC or Europe/Berlin)"))?;
        Ok(Self { expr: expr.to_string(), cron, tz })
    }

    /// The cron expression as written.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The time zone.
    pub fn tz(&self) -> Tz {
        self.tz
    }

    /// The first slot strictly after `t`.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Wall-clock matches from t's own local time on; a match can map to an instant at or
        // before t only inside a repeated hour, so few are skipped.
        // Slots fall on whole seconds.
        let wall = t.with_timezone(&self.tz).naive_local();
        let wall = wall.with_nanosecond(0).unwrap_or(wall);
        self.walls_after(wall).take(100_000).map(|w| self.instant(w)).find(|&s| s > t)
    }

    /// The slots in `(after, until]`, oldest first: the most recent `max` of them.
    pub fn slots_between(&self, after: DateTime<Utc>, until: DateTime<Utc>, max: usize) -> Vec<DateTime<Utc>> {
        // Start no earlier than needed for the last `max` slots: `max` wall-clock matches back
        // from `until` (a day more, for a DST change in between).
        let until_wall = until.with_timezone(&self.tz).naive_local();
        let until_wall = until_wall.with_nanosecond(0).unwrap_or(until_wall);
        let back = self.cron.iter_before(Utc.from_utc_datetime(&until_wall)).take(max).last();
        let start = match back {
            Some(w) => after.max(self.instant(w.naive_utc()) - Duration::days(1)),
            None => after,
        };
        let mut out = std::collections::VecDeque::new();
        let mut t = start;
        while let Some(s) = self.next_after(t) {
            if s > until {
                break;
            }
            if s > after {
                out.push_back(s);
                if out.len() > max {
                    out.pop_front();
                }
            }
            t = s;
        }
        out.into()
    }

    /// The run date of a slot: its local date in the schedule's zone.
    pub fn run_date(&self, slot: DateTime<Utc>) -> NaiveDate {
        slot.with_timezone(&self.tz).date_naive()
    }

    /// Wall-clock times after `wall` that match the expression. The expression is evaluated on
    /// wall-clock time alone (croner in UTC, which has no DST), and [`Schedule::instant`] maps
    /// the times to instants; croner's own DST handling is not used, as it also fires a fixed
    /// time (01:00) at the end of a gap it merely passes through while searching.
    fn walls_after(&self, wall: NaiveDateTime) -> impl Iterator<Item = NaiveDateTime> + '_ {
        self.cron.iter_after(Utc.from_utc_datetime(&wall)).map(|d| d.naive_utc())
    }

    /// The instant a wall-clock time stands for in the zone: the first of the two when the clocks
    /// go back, and the end of the gap when the time was skipped as they went forward.
    fn instant(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        match self.tz.from_local_datetime(&wall) {
            LocalResult::Single(d) => d.with_timezone(&Utc),
            LocalResult::Ambiguous(first, _) => first.with_timezone(&Utc),
            LocalResult::None => self.gap_end(wall),
        }
    }

    /// The instant the clocks jumped over `wall` (a skipped wall-clock time): the first instant
    /// whose offset differs from the offset a day before.
    fn gap_end(&self, wall: NaiveDateTime) -> DateTime<Utc> {
        let offset = |t: DateTime<Utc>| self.tz.offset_from_utc_datetime(&t.naive_utc()).fix().local_minus_utc();
        let mut lo = Utc.from_utc_datetime(&wall) - Duration::days(1);
        let mut hi = Utc.from_utc_datetime(&wall) + Duration::days(1);
        let before = offset(lo);
        while hi - lo > Duration::seconds(1) {
            let mid = lo + (hi - lo) / 2;
            if offset(mid) == before {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        hi.with_nanosecond(0).unwrap_or(hi)
    }

    fn due(&self, slot: DateTime<Utc>, trigger: Trigger) -> Due {
        Due { slot, run_date: self.run_date(slot), trigger }
    }
}

fn parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Required).dom_and_dow(true).build()
}

/// What is due for a job at `now`, given its cursor and when the scheduler started.
pub fn plan(
    schedule: &Schedule,
    catch_up: CatchUp,
    cursor: &Cursor,
    started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Plan {
    // A job that never ran missed nothing.
    let from = cursor.last_slot.unwrap_or(started);
    let mut due = Vec::new();
    let mut skipped = Vec::new();
    let mut latest = cursor.last_slot;
    if from < started {
        let missed = schedule.slots_between(from, started.min(now), MAX_CATCH_UP);
        let retry = cursor.unfinished.then_some(from);
        match (catch_up, missed.last()) {
            (_, None) => due.extend(retry.map(|s| schedule.due(s, Trigger::CatchUp))),
            (CatchUp::None, Some(_)) => skipped.extend(&missed),
            (CatchUp::Latest, Some(&last)) => {
                skipped.extend(&missed[..missed.len() - 1]);
                due.push(schedule.due(last, Trigger::CatchUp));
            }
            (CatchUp::All, Some(_)) => {
                due.extend(retry.map(|s| schedule.due(s, Trigger::CatchUp)));
                due.extend(missed.iter().map(|&s| schedule.due(s, Trigger::CatchUp)));
            }
        }
        latest = latest.max(missed.last().copied());
    } else if cursor.unfinished
        && let Some(s) = cursor.last_slot
    {
        due.push(schedule.due(s, Trigger::CatchUp));
    }
    // Slots since the start (or since the cursor, if later) are due as scheduled.
    let mut t = from.max(started);
    while let Some(s) = schedule.next_after(t) {
        if s > now || due.len() > MAX_CATCH_UP {
            break;
        }
        due.push(schedule.due(s, Trigger::Schedule));
        latest = Some(s);
        t = s;
    }
    Plan { due, skipped, cursor: latest }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    fn date(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn berlin_0230_on_the_spring_forward_day_runs_at_0300_local() {
        let s = Schedule::parse("0 30 2 * * *", "Europe/Berlin").unwrap();
        // 2026-03-28 02:30 CET = 01:30 UTC.
        let sat = s.next_after(utc(2026, 3, 27, 23, 0)).unwrap();
        assert_eq!(sat, utc(2026, 3, 28, 1, 30));
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist and runs at 03:00 CEST = 01:00 UTC.
        let sun = s.next_after(sat).unwrap();
        assert_eq!(sun, utc(2026, 3, 29, 1, 0));
        assert_eq!(s.run_date(sun), date("2026-03-29"));
        // Then 02:30 CEST = 00:30 UTC: the same local time as before, an hour earlier in UTC.
        let mon = s.next_after(sun).unwrap();
        assert_eq!(mon, utc(2026, 3, 30, 0, 30));
        assert_eq!(s.slots_between(utc(2026, 3, 27, 23, 0), mon, 10), vec![sat, sun, mon]);
    }

    #[test]
    fn berlin_0230_on_the_fall_back_day_runs_once() {
        let s = Schedule::parse("0 30 2 * * *", "Europe/Berlin").unwrap();
        // 2026-10-25: 03:00 CEST goes back to 02:00 CET, so 02:30 happens at 00:30 and at 01:30 UTC.
        let first = s.next_after(utc(2026, 10, 24, 23, 0)).unwrap();
        assert_eq!(first, utc(2026, 10, 25, 0, 30));
        let next = s.next_after(first).unwrap();
        assert_eq!(next, utc(2026, 10, 26, 1, 30), "not again at the second 02:30");
        // Asked from inside the repeated hour, after the first 02:30.
        assert_eq!(s.next_after(utc(2026, 10, 25, 1, 15)).unwrap(), next);
        assert_eq!(s.slots_between(utc(2026, 10, 24, 23, 0), utc(2026, 10, 26, 12, 0), 10), vec![first, next]);
    }

    #[test]
    fn utc_and_new_york_dst() {
        let s = Schedule::parse("0 0 2 * * *", "UTC").unwrap();
        assert_eq!(s.next_after(utc(2026, 3, 8, 2, 0)).unwrap(), utc(2026, 3, 9, 2, 0));
        // New York springs forward on 2026-03-08 at 02:00 EST → 03:00 EDT.
        let ny = Schedule::parse("0 0 1 * * *", "America/New_York").unwrap();
        assert_eq!(ny.next_after(utc(2026, 3, 7, 12, 0)).unwrap(), utc(2026, 3, 8, 6, 0)); // 01:00 EST
        assert_eq!(ny.next_after(utc(2026, 3, 8, 6, 0)).unwrap(), utc(2026, 3, 9, 5, 0)); // 01:00 EDT
    }

    #[test]
    fn a_time_before_the_gap_does_not_fire_again_after_it() {
        // croner alone fires a 01:00 Berlin job at 01:00 and again at 03:00 on 2026-03-29.
        let s = Schedule::parse("0 0 1 * * *", "Europe/Berlin").unwrap();
        let at_one = s.next_after(utc(2026, 3, 28, 12, 0)).unwrap();
        assert_eq!(at_one, utc(2026, 3, 29, 0, 0));
        assert_eq!(s.next_after(at_one).unwrap(), utc(2026, 3, 29, 23, 0));
        // Every quarter hour: 02:00, 02:15, 02:30 and 02:45 were skipped and run once, at 03:00.
        let q = Schedule::parse("0 */15 * * * *", "Europe/Berlin").unwrap();
        let slots = q.slots_between(utc(2026, 3, 29, 0, 30), utc(2026, 3, 29, 1, 30), 100);
        assert_eq!(
            slots,
            [utc(2026, 3, 29, 0, 45), utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 15), utc(2026, 3, 29, 1, 30)]
        );
    }

    #[test]
    fn slots_fall_on_whole_seconds() {
        let s = nightly();
        let t = utc(2026, 4, 1, 1, 0) + chrono::Duration::milliseconds(754);
        assert_eq!(s.next_after(t).unwrap(), utc(2026, 4, 1, 2, 0));
        let p =
            plan(&s, CatchUp::All, &Cursor::default(), t, utc(2026, 4, 1, 2, 0) + chrono::Duration::milliseconds(3));
        assert_eq!(p.due[0].slot, utc(2026, 4, 1, 2, 0));
    }

    #[test]
    fn bad_expressions_and_zones_are_refused() {
        assert!(Schedule::parse("0 2 * * *", "UTC").unwrap_err().contains("cron"), "seconds are required");
        assert!(Schedule::parse("0 61 2 * * *", "UTC").unwrap_err().contains("cron"));
        assert!(Schedule::parse("0 0 2 * * *", "Europe/Berln").unwrap_err().contains("time zone"));
    }

    fn nightly() -> Schedule {
        Schedule::parse("0 0 2 * * *", "UTC").unwrap()
    }

    fn cursor(last: DateTime<Utc>) -> Cursor {
        Cursor { last_slot: Some(last), unfinished: false }
    }

    #[test]
    fn catch_up_after_three_nights_down() {
        let s = nightly();
        // Last ran for 2026-04-01 02:00; the scheduler comes back on 2026-04-04 at 12:00.
        let c = cursor(utc(2026, 4, 1, 2, 0));
        let back = utc(2026, 4, 4, 12, 0);
        let missed = [utc(2026, 4, 2, 2, 0), utc(2026, 4, 3, 2, 0), utc(2026, 4, 4, 2, 0)];

        let none = plan(&s, CatchUp::None, &c, back, back);
        assert!(none.due.is_empty());
        assert_eq!(none.skipped, missed);
        assert_eq!(none.cursor, Some(missed[2]));

        let latest = plan(&s, CatchUp::Latest, &c, back, back);
        assert_eq!(latest.due, vec![Due { slot: missed[2], run_date: date("2026-04-04"), trigger: Trigger::CatchUp }]);
        assert_eq!(latest.skipped, missed[..2]);

        let all = plan(&s, CatchUp::All, &c, back, back);
        assert_eq!(all.due.iter().map(|d| d.slot).collect::<Vec<_>>(), missed);
        assert!(all.due.iter().all(|d| d.trigger == Trigger::CatchUp));
        assert_eq!(all.cursor, Some(missed[2]));

        // Running on: the next night is due as scheduled, once.
        let later = utc(2026, 4, 5, 2, 0);
        let next = plan(&s, CatchUp::All, &Cursor { last_slot: all.cursor, unfinished: false }, back, later);
        assert_eq!(next.due, vec![Due { slot: later, run_date: date("2026-04-05"), trigger: Trigger::Schedule }]);
        let again = plan(&s, CatchUp::All, &Cursor { last_slot: next.cursor, unfinished: false }, back, later);
        assert!(again.due.is_empty());
    }

    #[test]
    fn a_job_without_history_missed_nothing() {
        let start = utc(2026, 4, 4, 12, 0);
        let p = plan(&nightly(), CatchUp::All, &Cursor::default(), start, start);
        assert!(p.due.is_empty() && p.skipped.is_empty());
        let p = plan(&nightly(), CatchUp::All, &Cursor::default(), start, utc(2026, 4, 5, 2, 0));
        assert_eq!(p.due.len(), 1);
        assert_eq!(p.due[0].trigger, Trigger::Schedule);
    }

    #[test]
    fn an_unfinished_run_is_retried_unless_a_newer_slot_supersedes_it() {
        let s = nightly();
        let c = Cursor { last_slot: Some(utc(2026, 4, 1, 2, 0)), unfinished: true };
        // Restarted the same morning: retry it, whatever the policy.
        let morning = utc(2026, 4, 1, 9, 0);
        for policy in [CatchUp::None, CatchUp::Latest, CatchUp::All] {
            let p = plan(&s, policy, &c, morning, morning);
            assert_eq!(p.due.len(), 1, "{policy:?}");
            assert_eq!((p.due[0].run_date, p.due[0].trigger), (date("2026-04-01"), Trigger::CatchUp));
        }
        // Restarted two days later: `latest` runs the newest slot only, `all` retries and catches up.
        let later = utc(2026, 4, 3, 9, 0);
        let latest = plan(&s, CatchUp::Latest, &c, later, later);
        assert_eq!(latest.due.iter().map(|d| d.run_date).collect::<Vec<_>>(), [date("2026-04-03")]);
        let all = plan(&s, CatchUp::All, &c, later, later);
        assert_eq!(
            all.due.iter().map(|d| d.run_date).collect::<Vec<_>>(),
            [date("2026-04-01"), date("2026-04-02"), date("2026-04-03")]
        );
    }
}
