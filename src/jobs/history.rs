//! Run history: one JSON record per run at `runs/job=<job>/run_date=<date>/<run_id>.json`.
//!
//! The runner writes a run's record when the run starts (`running`), again after every step,
//! and a last time when it ends, so a record always says how far a run got. A record left
//! `running` by a process that died is marked `abandoned` by the run that takes over the job's
//! lease for that date. Records are only read back for what the scheduler and `shelfcast runs`
//! need; the heavy parts (catalog, quality, champions, summary) are skipped when reading.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, NaiveDate, Utc};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use tracing::warn;

use super::schedule::Cursor;
use super::spec::StepKind;
use crate::catalog::CatalogReport;
use crate::error::{Error, Result};
use crate::evaluate::champion::Decision;
use crate::features::FeatureMetrics;
use crate::lake::{Lake, layout};
use crate::models::FitReport;
use crate::quality::QualityReport;

/// How a run or step ended (or where it is).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Not started yet.
    Pending,
    /// Going on now (or its process died: see [`Status::Abandoned`]).
    Running,
    /// Finished without error.
    Succeeded,
    /// Stopped on an error.
    Failed,
    /// Stopped from outside: shutdown, or the lease was lost.
    Cancelled,
    /// Left `running` by a process that died; found by the run that took over.
    Abandoned,
    /// Not run: an earlier step it depends on failed, or (for a run) the previous run of the
    /// job was still going.
    Skipped,
}

impl Status {
    /// Whether the run ended and will not be retried by the scheduler.
    pub fn is_final(self) -> bool {
        matches!(self, Status::Succeeded | Status::Failed | Status::Skipped)
    }

    /// Whether the run started but never completed.
    pub fn is_unfinished(self) -> bool {
        matches!(self, Status::Running | Status::Cancelled | Status::Abandoned)
    }
}

/// What started a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// Its cron slot came due while the scheduler ran.
    Schedule,
    /// `shelfcast run` (and `train`, `predict`).
    #[default]
    Manual,
    /// `shelfcast backfill`.
    Backfill,
    /// A slot missed while the scheduler was down, or a run of a slot that never finished.
    CatchUp,
}

/// The record of one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepRecord {
    /// Step name.
    pub name: String,
    /// Step kind.
    pub kind: StepKind,
    /// Outcome.
    pub status: Status,
    /// Attempts made (1 + retries used).
    #[serde(default)]
    pub attempts: u32,
    /// Start of the first attempt.
    pub started_at: Option<DateTime<Utc>>,
    /// End of the last attempt.
    pub ended_at: Option<DateTime<Utc>>,
    /// Rows the step read, where it knows.
    #[serde(default)]
    pub rows_in: Option<u64>,
    /// Rows the step produced.
    pub rows_out: Option<u64>,
    /// The error, with its causes.
    pub error: Option<String>,
}

impl StepRecord {
    /// The record of a step of `spec` that has not run, in `status`.
    pub fn new(spec: &crate::jobs::spec::StepSpec, status: Status) -> Self {
        Self {
            name: spec.name.clone(),
            kind: spec.kind,
            status,
            attempts: 0,
            started_at: None,
            ended_at: None,
            rows_in: None,
            rows_out: None,
            error: None,
        }
    }
}

/// A model and the version of it a run used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelVersion {
    /// Registry name.
    pub name: String,
    /// Version: the id of the run that trained it.
    pub version: String,
}

/// What the run produced.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunSummary {
    /// Series forecast.
    pub series: usize,
    /// Forecast rows published.
    pub forecast_rows: u64,
    /// Periods forecast.
    pub horizon: usize,
    /// Model published.
    pub model: Option<String>,
    /// Where the forecasts are.
    pub output: Option<String>,
    /// The forecasts manifest.
    pub manifest: Option<String>,
    /// Feature tables written.
    pub features: Vec<FeatureMetrics>,
    /// Fit reports.
    pub fits: Vec<FitReport>,
    /// Datasets written by `sql` steps.
    pub outputs: Vec<String>,
    /// Where the run report is.
    pub report: Option<String>,
    /// How far the published forecasts moved against the previous run.
    pub stability: Option<crate::publish::stability::StabilitySummary>,
    /// The shadow forecasts the `publish` step kept (every model's).
    pub shadow: Option<crate::publish::shadow::ShadowMetrics>,
    /// What the `track` step scored: earlier run dates' forecasts against the actuals since.
    pub tracking: Option<crate::evaluate::tracking::TrackingMetrics>,
    /// What the `plan` step wrote.
    pub replenishment: Option<crate::plan::replenish::PlanMetrics>,
    /// What the `factors` step estimated and wrote.
    pub factors: Option<crate::factors::FactorMetrics>,
    /// What the `notify` step delivered and left pending.
    pub notifications: Option<crate::publish::notify::NotifyMetrics>,
    /// What `ingest` steps appended.
    pub ingested: Vec<crate::ingest::pull::IngestReport>,
    /// What the run decided not to redo, and why (e.g. a backtest kept from an earlier run).
    #[serde(default)]
    pub notes: Vec<String>,
}

/// The record of one run, stored in `runs/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunReport {
    /// Unique id.
    pub run_id: String,
    /// Job name.
    pub job: String,
    /// The date the run is for.
    pub run_date: NaiveDate,
    /// Last day of data used.
    pub cutoff: Option<NaiveDate>,
    /// What started it.
    #[serde(default)]
    pub trigger: Trigger,
    /// The cron slot it runs for (scheduled and catch-up runs).
    #[serde(default)]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The unfinished run of the same job and date this one replaces.
    #[serde(default)]
    pub retry_of: Option<String>,
    /// Who ran it (host, process).
    #[serde(default)]
    pub holder: String,
    /// Outcome.
    pub status: Status,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time (the last update while running).
    pub ended_at: DateTime<Utc>,
    /// The job's parameters, with the run date and cutoff.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Steps, in the order they run.
    pub steps: Vec<StepRecord>,
    /// Raw tables read, with a version (fingerprint) of each.
    #[serde(skip_deserializing)]
    pub inputs: Option<CatalogReport>,
    /// The models used and their versions.
    #[serde(default)]
    pub models: Vec<ModelVersion>,
    /// Data-quality results.
    #[serde(skip_deserializing)]
    pub quality: Option<QualityReport>,
    /// Champion decisions of the backtest step.
    #[serde(skip_deserializing)]
    pub champions: Vec<Decision>,
    /// What it produced.
    #[serde(skip_deserializing)]
    pub summary: RunSummary,
    /// The error that failed the run.
    pub error: Option<String>,
}

/// Writes (or rewrites) a run's record.
///
/// Under a lease (a fenced lake), a holder that lost its lease still records how its run
/// ended, since no other process will; but once the run that took the lease over has marked
/// the record abandoned (see [`mark_abandoned`]), that word stands and the old holder's
/// later writes are dropped.
pub async fn write(lake: &Lake, report: &RunReport) -> Result<()> {
    let path = layout::run_record(&report.job, report.run_date, &report.run_id);
    let bytes: bytes::Bytes = serde_json::to_vec_pretty(report)?.into();
    // The lease is checked once here; the put itself then goes unfenced.
    let own = lake.unfenced();
    match lake.check_fence().await {
        Ok(()) => own.put(&path, bytes).await,
        Err(lost @ Error::LeaseLost { .. }) => {
            if let Some(stored) = read_one(&own, &path).await?
                && stored.status == Status::Abandoned
            {
                warn!(run_id = %report.run_id, cause = %lost, "run record left as the run that took over marked it");
                return Ok(());
            }
            own.put(&path, bytes).await
        }
        Err(e) => Err(e),
    }
}

async fn read_one(lake: &Lake, path: &Path) -> Result<Option<RunReport>> {
    match lake.get_opt(path).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Dataset { path: lake.display(path), message: format!("unreadable run record: {e}") }),
    }
}

/// The most recent `last` records under `dir` (all when `None`), newest first by start time.
async fn read_under(lake: &Lake, dir: &Path, last: Option<usize>) -> Result<Vec<RunReport>> {
    let mut objects: Vec<_> =
        lake.list(dir).await?.into_iter().filter(|m| m.location.as_ref().ends_with(".json")).collect();
    // Records are rewritten as a run progresses, so the last write is a good proxy for recency;
    // read a margin more than asked and sort by the recorded start.
    objects.sort_by_key(|m| std::cmp::Reverse(m.last_modified));
    if let Some(n) = last {
        objects.truncate(n.saturating_mul(2).max(n + 16));
    }
    let mut out = Vec::with_capacity(objects.len());
    for m in objects {
        if let Some(r) = read_one(lake, &m.location).await? {
            out.push(r);
        }
    }
    out.sort_by(|a, b| b.started_at.cmp(&a.started_at).then_with(|| b.run_id.cmp(&a.run_id)));
    if let Some(n) = last {
        out.truncate(n);
    }
    Ok(out)
}

/// Recent runs, newest first: of one job or all, at most `last` of them.
pub async fn recent(lake: &Lake, job: Option<&str>, last: Option<usize>) -> Result<Vec<RunReport>> {
    let dir = job.map_or_else(layout::runs, layout::job_runs);
    read_under(lake, &dir, last).await
}

/// The runs of one job and date, newest first.
pub async fn for_date(lake: &Lake, job: &str, run_date: NaiveDate) -> Result<Vec<RunReport>> {
    read_under(lake, &layout::date_runs(job, run_date), None).await
}

/// Marks the records of `job` and `run_date` still `running` as abandoned, saying which run
/// replaced them; returns their ids. Only the holder of the date's lease may call this.
pub async fn mark_abandoned(lake: &Lake, job: &str, run_date: NaiveDate, by: &str) -> Result<Vec<String>> {
    let mut ids = Vec::new();
    for r in for_date(lake, job, run_date).await? {
        if r.status != Status::Running || r.run_id == by {
            continue;
        }
        // Edit the stored JSON so the parts not read back are kept.
        let path = layout::run_record(job, run_date, &r.run_id);
        let mut v: serde_json::Value = serde_json::from_slice(&lake.get(&path).await?)?;
        let message = format!("its process stopped without finishing (lease lapsed); run {by} took over");
        v["status"] = serde_json::json!(Status::Abandoned);
        v["error"] = serde_json::json!(message);
        if let Some(steps) = v["steps"].as_array_mut() {
            for s in steps.iter_mut().filter(|s| s["status"] == "running") {
                s["status"] = serde_json::json!(Status::Abandoned);
            }
        }
        lake.put(&path, serde_json::to_vec_pretty(&v)?.into()).await?;
        ids.push(r.run_id);
    }
    Ok(ids)
}

/// How many recent records [`cursor`] reads to find the job's last slot.
const CURSOR_WINDOW: usize = 200;

/// The latest cron slot the job's history knows of, and whether its run never finished.
pub async fn cursor(lake: &Lake, job: &str) -> Result<Cursor> {
    let runs = recent(lake, Some(job), Some(CURSOR_WINDOW)).await?;
    let Some(last_slot) = runs.iter().filter_map(|r| r.scheduled_for).max() else {
        return Ok(Cursor::default());
    };
    // The newest record of that slot decides (runs are newest first).
    let newest = runs.iter().find(|r| r.scheduled_for == Some(last_slot));
    Ok(Cursor { last_slot: Some(last_slot), unfinished: newest.is_some_and(|r| r.status.is_unfinished()) })
}

/// The name of the run-history table analysts query.
pub const RUNS: &str = "runs";

/// Run records read into `runs`, newest first.
const RUNS_KEPT: usize = 10_000;

/// The `runs` table of the query catalog ([`crate::query::catalog::open`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct RunsTable;

#[async_trait::async_trait]
impl crate::query::catalog::Extra for RunsTable {
    async fn register(&self, ctx: &SessionContext, lake: &Lake) -> Result<()> {
        register_runs(ctx, lake).await
    }
}

/// Registers `runs`: job, run_date, run_id, status, trigger, cutoff, started_at, ended_at,
/// seconds and error (the first failed step's message), newest first.
async fn register_runs(ctx: &SessionContext, lake: &Lake) -> Result<()> {
    let reports = recent(lake, None, Some(RUNS_KEPT)).await?;
    let utc = Some(Arc::from("UTC"));
    let schema = Arc::new(Schema::new(vec![
        Field::new("job", DataType::Utf8, false),
        Field::new("run_date", DataType::Date32, false),
        Field::new("run_id", DataType::Utf8, false),
        Field::new("status", DataType::Utf8, false),
        Field::new("trigger", DataType::Utf8, false),
        Field::new("cutoff", DataType::Date32, true),
        Field::new("started_at", DataType::Timestamp(TimeUnit::Millisecond, utc.clone()), false),
        Field::new("ended_at", DataType::Timestamp(TimeUnit::Millisecond, utc.clone()), false),
        Field::new("error", DataType::Utf8, true),
    ]));
    let (mut job, mut run_date, mut run_id, mut status) =
        (StringBuilder::new(), Date32Builder::new(), StringBuilder::new(), StringBuilder::new());
    let (mut trigger, mut cutoff, mut error) = (StringBuilder::new(), Date32Builder::new(), StringBuilder::new());
    let mut started = TimestampMillisecondBuilder::new().with_timezone_opt(utc.clone());
    let mut ended = TimestampMillisecondBuilder::new().with_timezone_opt(utc);
    let day = |d: NaiveDate| (d - crate::days::epoch()).num_days() as i32;
    for r in &reports {
        job.append_value(&r.job);
        run_date.append_value(day(r.run_date));
        run_id.append_value(&r.run_id);
        status.append_value(enum_text(&r.status));
        trigger.append_value(enum_text(&r.trigger));
        cutoff.append_option(r.cutoff.map(day));
        started.append_value(r.started_at.timestamp_millis());
        ended.append_value(r.ended_at.timestamp_millis());
        error.append_option(r.steps.iter().find_map(|s| s.error.clone()));
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(job.finish()),
        Arc::new(run_date.finish()),
        Arc::new(run_id.finish()),
        Arc::new(status.finish()),
        Arc::new(trigger.finish()),
        Arc::new(cutoff.finish()),
        Arc::new(started.finish()),
        Arc::new(ended.finish()),
        Arc::new(error.finish()),
    ];
    let batch = RecordBatch::try_new(Arc::clone(&schema), columns)?;
    ctx.deregister_table(RUNS)?;
    ctx.register_table(RUNS, Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;
    Ok(())
}

/// The snake_case name serde gives a unit variant.
fn enum_text<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_written_before_the_scheduler_still_read() {
        let old = r#"{"run_id":"nightly-1","job":"nightly","run_date":"2026-04-01","cutoff":"2026-03-31",
            "trigger":"manual","status":"succeeded","started_at":"2026-04-01T02:00:00Z",
            "ended_at":"2026-04-01T02:01:00Z","steps":[{"name":"checks","kind":"checks","status":"succeeded",
            "started_at":null,"ended_at":null,"rows_out":3,"error":null}],"inputs":{"tables":[]},
            "quality":null,"champions":[],"summary":{"series":1},"error":null}"#;
        let r: RunReport = serde_json::from_str(old).unwrap();
        assert_eq!((r.trigger, r.status, r.steps[0].attempts), (Trigger::Manual, Status::Succeeded, 0));
        assert!(r.scheduled_for.is_none() && r.inputs.is_none());
    }
}
