//! The catalog analysts query, the same for `shelfcast query` and `shelfcast serve`: the raw
//! tables, the feature views at a cutoff, the newest published `forecasts` and `replenishment`,
//! and `runs`, the run history (one row per run record).
//!
//! [`version`] names what the catalog would be opened on (the raw files, the publication
//! pointers and the run records, listed): a long-running server opens a new catalog when it
//! changes, and a client never sees a dataset half published, because a publication becomes
//! visible only through its pointer, written after its manifest.

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Builder, StringBuilder, TimestampMillisecondBuilder};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use sha2::{Digest, Sha256};

use crate::engine::{self, EngineOptions};
use crate::error::Result;
use crate::features::{self, FeatureParams};
use crate::jobs::history;
use crate::lake::{Lake, layout};

/// The name of the run-history table.
pub const RUNS: &str = "runs";

/// Run records read into `runs`, newest first.
const RUNS_KEPT: usize = 10_000;

/// Opens the catalog on `lake`: raw tables, feature views at `cutoff` (default: the last day
/// with sales before `today`), the latest publications and the run history. `params` turns the
/// cutoff into the feature parameters.
pub async fn open(
    lake: &Lake,
    engine: EngineOptions,
    params: impl FnOnce(NaiveDate) -> FeatureParams,
    today: NaiveDate,
    cutoff: Option<NaiveDate>,
) -> Result<SessionContext> {
    let (ctx, _) = engine::open_with(lake, engine).await?;
    let cutoff = match cutoff {
        Some(c) => c,
        None => features::default_cutoff(&ctx, today).await?,
    };
    features::register_views(&ctx, params(cutoff)).await?;
    crate::publish::latest::register(&ctx, lake, &[crate::publish::DATASET, crate::plan::replenish::DATASET]).await?;
    register_runs(&ctx, lake).await?;
    Ok(ctx)
}

/// What the catalog would be opened on, as a digest: every raw file (path, size, tag), the
/// publication pointers (content), and the run records (path, size, tag). Equal digests mean
/// [`open`] would register the same tables.
pub async fn version(lake: &Lake) -> Result<String> {
    let mut h = Sha256::new();
    for prefix in [object_store::path::Path::from("raw"), layout::runs()] {
        for m in lake.list(&prefix).await? {
            h.update(m.location.as_ref().as_bytes());
            h.update(m.size.to_le_bytes());
            h.update(m.e_tag.as_deref().unwrap_or_default().as_bytes());
            h.update(m.last_modified.timestamp_millis().to_le_bytes());
        }
    }
    for dataset in [crate::publish::DATASET, crate::plan::replenish::DATASET] {
        if let Some(bytes) = lake.get_opt(&layout::latest(dataset)).await? {
            h.update(dataset.as_bytes());
            h.update(&bytes);
        }
    }
    Ok(hex::encode(h.finalize()))
}

/// Registers `runs`: job, run_date, run_id, status, trigger, cutoff, started_at, ended_at,
/// seconds and error (the first failed step's message), newest first.
async fn register_runs(ctx: &SessionContext, lake: &Lake) -> Result<()> {
    let reports = history::recent(lake, None, Some(RUNS_KEPT)).await?;
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
