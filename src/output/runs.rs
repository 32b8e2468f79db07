//! Job runs as text: the summary a finished `run`/`train`/`predict` prints with where its time
//! went, the run history of `runs`, and the job table of `jobs list` (whose JSON rows,
//! [`JobListing`], are built here too).

use std::fmt::Write;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::{label, num3};
use crate::jobs::JobSpec;
use crate::jobs::history::RunReport;
use crate::jobs::schedule::{CatchUp, Concurrency};
use crate::period::Frequency;

/// What a finished run prints: its record summarised, one line per output.
pub fn run_summary(report: &RunReport, origin: &str, seconds: f64, frequency: Frequency, quantiles: &[f64]) -> String {
    let mut out = String::new();
    let s = &report.summary;
    let unit = match frequency {
        Frequency::Daily => "days",
        Frequency::Weekly => "weeks",
    };
    let _ = writeln!(
        out,
        "{} {}: run {} for {} (cutoff {}) succeeded in {seconds:.1} s",
        report.job,
        origin,
        report.run_id,
        report.run_date,
        report.cutoff.map(|c| c.to_string()).unwrap_or_default(),
    );
    let _ = writeln!(out, "  series      {}", s.series);
    let _ = writeln!(out, "  horizon     {} {unit}, quantiles {quantiles:?}", s.horizon);
    let _ = writeln!(out, "  model       {}", s.model.as_deref().unwrap_or("-"));
    let _ = writeln!(out, "  rows        {}", s.forecast_rows);
    for f in &s.features {
        let _ = writeln!(out, "  features    {} ({} rows)", f.location, f.rows);
    }
    let _ = writeln!(out, "  forecasts   {}", s.output.as_deref().unwrap_or("-"));
    let _ = writeln!(out, "  manifest    {}", s.manifest.as_deref().unwrap_or("-"));
    if let Some(st) = &s.stability {
        let _ = match st.previous_run_date {
            Some(d) => writeln!(
                out,
                "  stability   against {d}: {} series, median |change| {:.1}%, {} jump(s) ≥ {:.0}%",
                st.series_compared,
                st.median_abs_change.unwrap_or(0.0) * 100.0,
                st.jumps,
                st.jump_threshold * 100.0
            ),
            None => writeln!(out, "  stability   first publication: nothing to compare"),
        };
    }
    if let Some(p) = &s.replenishment {
        let _ = writeln!(
            out,
            "  plan        {} ({} series, {} at or below the reorder point, {} order line(s), {:.0} units)",
            p.location, p.rows, p.below_reorder_point, p.order_lines, p.units_to_order
        );
    }
    if let Some(n) = &s.notifications {
        let _ = match &n.note {
            Some(note) => writeln!(out, "  notify      {note}"),
            None => writeln!(out, "  notify      {} delivered, {} pending (retried next run)", n.delivered, n.pending),
        };
    }
    if let Some(t) = &s.tracking {
        let mase: Vec<String> = t.mase.iter().map(|(m, v)| format!("{m} {}", num3(*v))).collect();
        let _ = writeln!(
            out,
            "  tracked     {} earlier run date(s), {} rows: MASE {} ({})",
            t.origins.len(),
            t.scored_rows,
            mase.join(", "),
            t.location
        );
    }
    for r in &s.ingested {
        let _ = writeln!(
            out,
            "  ingest      {} → {}: {} written, {} quarantined",
            r.source, r.table, r.rows_written, r.rows_quarantined
        );
    }
    for note in &s.notes {
        let _ = writeln!(out, "  note        {note}");
    }
    if let Some(r) = &s.report {
        let _ = writeln!(out, "  report      {r}");
    }
    if let Some(line) = step_times(report) {
        let _ = writeln!(out, "  time        {line}");
    }
    out
}

/// Where a run's time went: each step's seconds and share of the run, longest first; `None`
/// when no step has both times.
pub fn step_times(report: &RunReport) -> Option<String> {
    let mut times: Vec<(&str, f64)> = report
        .steps
        .iter()
        .filter_map(|st| {
            let (a, b) = (st.started_at?, st.ended_at?);
            Some((st.name.as_str(), (b - a).num_milliseconds().max(0) as f64 / 1000.0))
        })
        .collect();
    let total: f64 = times.iter().map(|(_, t)| t).sum();
    if times.is_empty() || total <= 0.0 {
        return None;
    }
    times.sort_by(|a, b| b.1.total_cmp(&a.1));
    let parts: Vec<String> =
        times.iter().map(|(name, t)| format!("{name} {t:.1} s ({:.0}%)", 100.0 * t / total)).collect();
    Some(parts.join(", "))
}

/// The run history, newest first: one line per run (and one more for its error).
pub fn runs(runs: &[RunReport], empty: &str) -> String {
    if runs.is_empty() {
        return format!("{empty}\n");
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<20}  {:<12} {:<10}  {:<9} {:<10} {:>8}  {:<40}  steps",
        "started (UTC)", "job", "run date", "trigger", "status", "took", "run id"
    );
    for r in runs {
        let took = (r.ended_at - r.started_at).num_milliseconds() as f64 / 1000.0;
        let _ = writeln!(
            out,
            "{:<20}  {:<12} {:<10}  {:<9} {:<10} {:>7.1}s  {:<40}  {}",
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            r.job,
            r.run_date,
            label(r.trigger),
            label(r.status),
            took,
            r.run_id,
            step_summary(r)
        );
        if let Some(e) = &r.error {
            let _ = writeln!(out, "{:>22}error: {e}", "");
        }
    }
    out
}

/// `checks:succeeded features:succeeded(2 tries) …`
fn step_summary(r: &RunReport) -> String {
    let steps: Vec<String> = r
        .steps
        .iter()
        .map(|s| {
            if s.attempts > 1 {
                format!("{}:{}({} tries)", s.name, label(s.status), s.attempts)
            } else {
                format!("{}:{}", s.name, label(s.status))
            }
        })
        .collect();
    steps.join(" ")
}

/// One job of `jobs list`: its schedule, when it is next due and how its last run ended.
#[derive(Debug, Clone, Serialize)]
pub struct JobListing {
    /// The job's name.
    pub job: String,
    /// Its cron expression; `None`: by hand only.
    pub schedule: Option<String>,
    /// The schedule's time zone.
    pub time_zone: Option<String>,
    /// The next due time after now (UTC).
    pub next_due: Option<DateTime<Utc>>,
    /// The next due time in the schedule's zone, as text.
    #[serde(skip)]
    next_local: Option<String>,
    /// What happens to slots missed while no scheduler ran.
    pub catch_up: CatchUp,
    /// What happens when a slot comes due while a run goes on.
    pub concurrency: Concurrency,
    /// Its steps, in order.
    pub steps: Vec<String>,
    /// Its latest run.
    pub last_run: Option<LastRun>,
}

/// The latest run of a listed job.
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    /// The run's id.
    pub run_id: String,
    /// The date it ran for.
    pub run_date: NaiveDate,
    /// How it ended (or `running`).
    pub status: crate::jobs::history::Status,
}

impl JobListing {
    /// `job` as listed at `now`, with its latest run.
    pub fn new(job: &JobSpec, last: Option<&RunReport>, now: DateTime<Utc>) -> Self {
        let next_due = job.schedule.as_ref().and_then(|s| s.next_after(now));
        let next_local = job
            .schedule
            .as_ref()
            .zip(next_due)
            .map(|(s, t)| format!("{} {}", t.with_timezone(&s.tz()).format("%Y-%m-%d %H:%M:%S"), s.tz()));
        Self {
            job: job.name.clone(),
            schedule: job.schedule.as_ref().map(|s| s.expr().to_string()),
            time_zone: job.schedule.as_ref().map(|s| s.tz().to_string()),
            next_due,
            next_local,
            catch_up: job.catch_up,
            concurrency: job.concurrency,
            steps: job.steps.iter().map(|s| s.name.clone()).collect(),
            last_run: last.map(|r| LastRun { run_id: r.run_id.clone(), run_date: r.run_date, status: r.status }),
        }
    }

    /// When it is next due, in UTC and in its zone; `by hand only` or `never`.
    pub fn next(&self) -> String {
        match (&self.schedule, self.next_due, &self.next_local) {
            (None, ..) => "by hand only".to_string(),
            (Some(_), Some(t), Some(local)) => format!("{} ({local})", t.format("%Y-%m-%d %H:%M:%SZ")),
            (Some(_), ..) => "never".to_string(),
        }
    }
}

/// The job table of `jobs list`.
pub fn jobs(listed: &[JobListing]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:<16} {:<8} {:<11} {:<52} last run",
        "job", "schedule", "catch-up", "concurrency", "next due"
    );
    for j in listed {
        let last = j
            .last_run
            .as_ref()
            .map_or("-".to_string(), |r| format!("{} {} ({})", r.run_date, label(r.status), r.run_id));
        let _ = writeln!(
            out,
            "{:<12} {:<16} {:<8} {:<11} {:<52} {}",
            j.job,
            j.schedule.as_deref().unwrap_or("-"),
            label(j.catch_up),
            label(j.concurrency),
            j.next(),
            last
        );
    }
    out
}
