//! Influence factors: what moves demand, measured on the history.
//!
//! [`run`] reads the feature views of a cutoff through `sql/factors/observations.sql`, fits the
//! factor regression of each category ([`estimates`]: a log-linear Poisson fit with series levels
//! and trends, see [`regression`]) and writes `factors/run_date=…/` atomically: the estimates as
//! Parquet rows (section, category, factor, value, 95% interval, units, rows) and the fitted
//! models as `analysis.json` next to them, listed in the manifest, which is written last.
//! [`explain`] decomposes one series' forecast over the horizon with the fitted model; [`local`]
//! lists what the series' own inputs (closures, local events, known covariates) say of it.
//! [`importance`] measures, on backtest windows, how much accuracy each forecasting model loses
//! when a factor group's covariates are scrambled; when measured, it goes into `analysis.json`
//! and, as its own table, into `importance.parquet` of the same folder.
//!
//! On the demo lake the estimates can be checked against `_demo/truth.json`: the regression is
//! specified in the generator's terms (see [`estimates`]).

pub mod data;
pub mod estimates;
pub mod explain;
pub mod groups;
pub mod importance;
pub mod local;
pub mod regression;

use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use serde::Serialize;
use tracing::{info, instrument};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::features::FeatureParams;
use crate::lake::dataset::{self, DatasetWriter};
use crate::lake::{Lake, layout};
use crate::period::Frequency;
pub use estimates::{Analysis, Estimate};
pub use groups::FactorSettings;
pub use importance::ImportanceSettings;

/// Name of the dataset.
pub const DATASET: &str = "factors";

/// The fitted models, attached to the dataset folder.
pub const ANALYSIS_FILE: &str = "analysis.json";

/// The importance table, attached to the dataset folder when measured.
pub const IMPORTANCE_FILE: &str = "importance.parquet";

/// What a factors run wrote.
#[derive(Debug, Clone, Serialize)]
pub struct FactorMetrics {
    /// Cutoff of the history analysed.
    pub cutoff: NaiveDate,
    /// Rows of history read.
    pub observations: u64,
    /// Estimate rows written.
    pub rows: u64,
    /// Categories fitted.
    pub categories: usize,
    /// Drivers by share of log-demand variance, largest first.
    pub ranking: Vec<String>,
    /// Group-importance rows written (0 when not measured).
    pub importance_rows: u64,
    /// Where the dataset lives.
    pub location: String,
}

/// Analyses the history up to the cutoff of `params`, computing the feature tables as views;
/// the series of `item` are read whatever the sample of series.
pub async fn analyze(
    ctx: &SessionContext,
    params: FeatureParams,
    groups: &FactorSettings,
    item: Option<&str>,
) -> Result<Analysis> {
    let choice = data::SeriesChoice { max_series: groups.max_series, item: item.map(str::to_string) };
    Ok(analyze_from(ctx, None, params, groups, &choice).await?.0)
}

/// Analyses the history and writes `factors/run_date=…/`.
#[instrument(skip_all, fields(run_date = %run_date, cutoff = %params.cutoff))]
pub async fn run(
    ctx: &SessionContext,
    lake: &Lake,
    params: FeatureParams,
    groups: &FactorSettings,
    run_date: NaiveDate,
    token: &str,
    clock: &dyn Clock,
) -> Result<(Analysis, FactorMetrics)> {
    let (analysis, observations) = analyze_counted(ctx, Some(lake), params, groups).await?;
    let metrics = write(lake, &analysis, observations, params, run_date, token, clock).await?;
    Ok((analysis, metrics))
}

/// Analyses the history; the analysis and the rows of history read. With `lake`, the feature
/// datasets committed for the cutoff are read where they exist (see [`data::load`]).
pub async fn analyze_counted(
    ctx: &SessionContext,
    lake: Option<&Lake>,
    params: FeatureParams,
    groups: &FactorSettings,
) -> Result<(Analysis, u64)> {
    let choice = data::SeriesChoice { max_series: groups.max_series, item: None };
    analyze_from(ctx, lake, params, groups, &choice).await
}

async fn analyze_from(
    ctx: &SessionContext,
    lake: Option<&Lake>,
    params: FeatureParams,
    groups: &FactorSettings,
    choice: &data::SeriesChoice,
) -> Result<(Analysis, u64)> {
    let obs = data::load(ctx, lake, params, choice).await?;
    if obs.is_empty() {
        return Err(Error::data(format!("factors: no history on or before {}", params.cutoff)));
    }
    let observations = obs.len() as u64;
    let daily = params.frequency == Frequency::Daily;
    let groups = groups.clone();
    let series = obs.series;
    let mut analysis = crate::blocking::run(move || estimates::analyze(&obs, daily, &groups)).await?;
    analysis.series = series;
    Ok((analysis, observations))
}

/// Writes an analysis (with its importance, when measured) to `factors/run_date=…/`.
#[instrument(skip_all, fields(run_date = %run_date, cutoff = %params.cutoff))]
pub async fn write(
    lake: &Lake,
    analysis: &Analysis,
    observations: u64,
    params: FeatureParams,
    run_date: NaiveDate,
    token: &str,
    clock: &dyn Clock,
) -> Result<FactorMetrics> {
    let dir = layout::factors(run_date);
    let batch = to_batch(&analysis.estimates)?;
    let mut writer = DatasetWriter::new(lake, dir.clone(), DATASET, token, batch.schema());
    writer.write(batch).await?;
    writer.attach(ANALYSIS_FILE, analysis.models.len() as u64, serde_json::to_vec(analysis)?.into()).await?;
    if let Some(imp) = &analysis.importance {
        let b = importance::to_batch(&imp.rows)?;
        let bytes = crate::lake::parquet::encode(&b.schema(), std::slice::from_ref(&b))?;
        writer.attach(IMPORTANCE_FILE, imp.rows.len() as u64, bytes).await?;
    }
    let mut meta = serde_json::Map::new();
    meta.insert("run_id".into(), token.into());
    meta.insert("run_date".into(), run_date.to_string().into());
    meta.insert("cutoff".into(), params.cutoff.to_string().into());
    meta.insert("frequency".into(), params.frequency.as_str().into());
    meta.insert("ranking".into(), serde_json::to_value(&analysis.ranking)?);
    meta.insert("skipped".into(), serde_json::to_value(&analysis.skipped)?);
    meta.insert("series_read".into(), analysis.series.0.into());
    meta.insert("series_total".into(), analysis.series.1.into());
    if let Some(imp) = &analysis.importance {
        meta.insert("importance_rows".into(), imp.rows.len().into());
    }
    let manifest = writer.commit(clock.now(), meta).await?;
    let metrics = FactorMetrics {
        cutoff: params.cutoff,
        observations,
        rows: manifest.row_count,
        categories: analysis.models.len(),
        ranking: analysis.ranking.clone(),
        importance_rows: analysis.importance.as_ref().map_or(0, |i| i.rows.len() as u64),
        location: lake.display(&dir),
    };
    info!(
        rows = metrics.rows,
        categories = metrics.categories,
        importance = metrics.importance_rows,
        "factors written"
    );
    Ok(metrics)
}

/// Reads the analysis written for a run date, if any.
pub async fn read(lake: &Lake, run_date: NaiveDate) -> Result<Option<Analysis>> {
    let dir = layout::factors(run_date);
    let Some(manifest) = dataset::read_manifest(lake, &dir).await? else { return Ok(None) };
    // The copy's file carries its writer's token; older datasets used the plain name.
    let file = manifest.copy(ANALYSIS_FILE).map_or_else(|| ANALYSIS_FILE.to_string(), |c| c.path);
    let path = dir.join(file.as_str());
    let bytes = lake.get(&path).await?;
    let a = serde_json::from_slice(&bytes)
        .map_err(|e| Error::Dataset { path: lake.display(&path), message: e.to_string() })?;
    Ok(Some(a))
}

/// The estimates as one record batch.
pub fn to_batch(rows: &[Estimate]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("section", DataType::Utf8, false),
        Field::new("category", DataType::Utf8, false),
        Field::new("factor", DataType::Utf8, false),
        Field::new("value", DataType::Float64, false),
        Field::new("low", DataType::Float64, true),
        Field::new("high", DataType::Float64, true),
        Field::new("units", DataType::Float64, true),
        Field::new("rows", DataType::UInt64, false),
    ]));
    let text = |f: fn(&Estimate) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef;
    let opt = |f: fn(&Estimate) -> Option<f64>| Arc::new(Float64Array::from_iter(rows.iter().map(f))) as ArrayRef;
    let cols = vec![
        text(|e| &e.section),
        text(|e| &e.category),
        text(|e| &e.factor),
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|e| e.value))) as ArrayRef,
        opt(|e| e.low),
        opt(|e| e.high),
        opt(|e| e.units),
        Arc::new(UInt64Array::from_iter_values(rows.iter().map(|e| e.rows))) as ArrayRef,
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}
