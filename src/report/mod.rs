//! The run report: what one run (or backtest) produced, read back from the lake and written as a
//! self-contained HTML page, the same numbers as Markdown, and all of them as JSON.
//!
//! # What it holds
//!
//! - the run: its record in `runs/` (steps, status, times), when there is one;
//! - the backtest scores of every model (overall, per horizon step, per demand class, per
//!   window) from the manifest of `metrics/backtest/run_id=…/`, and the forecast value added
//!   (FVA) of each model over seasonal naive;
//! - a few series: the largest by volume, and the worst (highest MASE of the model that serves
//!   it), with their actuals (the `target` feature table of the run's cutoff), the backtest
//!   forecasts with the 10–90% band (the canonical rows of the backtest) and the published
//!   forecast with its outer quantiles;
//! - the champion registry (`models/champions.json`): this run's decisions, the champion of
//!   each segment, and who held each segment run after run;
//! - the published forecast of the run's date, when that run wrote it;
//! - the tracked accuracy the run measured (`metrics/accuracy/run_date=…/`): the forecasts of
//!   earlier run dates, published and shadow, against the actuals since, as a trend by run date;
//! - the influence factors of the run's date (`factors/run_date=…/`, when that run wrote them):
//!   price elasticities, promotion uplift per kind, driver shares, as bar charts and tables.
//!
//! A part the lake lacks (no backtest in the run, forecasts replaced by a later run, no target
//! table at the cutoff) is left out and said so in [`Report::notes`]; the report never fails
//! for it.
//!
//! # Files
//!
//! `reports/run_id=<id>/report.html`, `report.json`, `report.md`, then `_manifest.json` naming
//! them with their sizes and checksums, written last (see [`store`]).
//!
//! The HTML carries inline SVG charts drawn by [`chart`]; its tables, and the Markdown's, are
//! built once by [`tables`], so the two always show the same numbers.

pub mod chart;
pub mod gather;
pub mod html;
pub mod local;
pub mod markdown;
pub mod store;
pub mod tables;

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tracing::{info, instrument};

use crate::clock::Clock;
use crate::error::Result;
use crate::evaluate::backtest::ModelBacktest;
use crate::evaluate::champion::{Champion, Decision, Metric};
use crate::lake::Lake;
use crate::period::Frequency;
use crate::settings::Settings;

pub use gather::{Source, gather};
pub use store::{ReportFiles, write, write_local};

/// Version of the report's JSON layout.
pub const SCHEMA_VERSION: u32 = 1;

/// Everything the report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Version of this layout.
    pub schema_version: u32,
    /// When the report was made (from the injected clock).
    pub generated_at: DateTime<Utc>,
    /// The lake it was read from.
    pub lake: String,
    /// The run.
    pub run: RunInfo,
    /// The period grain.
    pub frequency: Frequency,
    /// The metric champions are chosen on.
    pub metric: Metric,
    /// The backtest of the run, when it made one.
    pub backtest: Option<BacktestSection>,
    /// The accuracy of earlier run dates' forecasts against the actuals since (live tracking),
    /// when the run measured it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracked: Option<BacktestSection>,
    /// The champion registry.
    pub champions: ChampionSection,
    /// The run's published forecast, when it is still the one published for its date.
    pub published: Option<Published>,
    /// Series shown in detail.
    pub series: Vec<SeriesView>,
    /// The influence factors the run estimated.
    pub factors: Option<FactorsSection>,
    /// The user's own inputs at the cutoff: closures over the horizon, covariates, local events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<local::LocalSection>,
    /// What was left out, and why.
    pub notes: Vec<String>,
}

/// The influence factors of the run (see [`crate::factors`]).
#[derive(Debug, Clone, Serialize)]
pub struct FactorsSection {
    /// Every estimate.
    pub estimates: Vec<crate::factors::Estimate>,
    /// Drivers by share of log-demand variance, largest first.
    pub ranking: Vec<String>,
    /// The group importance on backtest windows, when the step measured it.
    pub importance: Option<crate::factors::importance::Importance>,
}

/// The run, from its record (only the id for a backtest run outside a job).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunInfo {
    /// Run id (of the job run, or of the backtest).
    pub run_id: String,
    /// Job name.
    #[serde(default)]
    pub job: Option<String>,
    /// The date the run is for.
    #[serde(default)]
    pub run_date: Option<NaiveDate>,
    /// Last day of data used.
    #[serde(default)]
    pub cutoff: Option<NaiveDate>,
    /// Outcome when the report was made (`running` while a job's report step writes it).
    #[serde(default)]
    pub status: Option<String>,
    /// Start time.
    #[serde(default)]
    pub started_at: Option<DateTime<Utc>>,
    /// End time (the last update while running).
    #[serde(default)]
    pub ended_at: Option<DateTime<Utc>>,
    /// Steps, in the order they ran.
    #[serde(default)]
    pub steps: Vec<StepInfo>,
    /// The error that failed the run.
    #[serde(default)]
    pub error: Option<String>,
}

/// One step of the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StepInfo {
    /// Step name.
    pub name: String,
    /// Step kind.
    pub kind: String,
    /// Outcome.
    pub status: String,
    /// Attempts made.
    #[serde(default)]
    pub attempts: u32,
    /// Rows produced, where known.
    #[serde(default)]
    pub rows_out: Option<u64>,
    /// The error, with its causes.
    #[serde(default)]
    pub error: Option<String>,
}

/// The backtest: scores of every model on the same windows.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestSection {
    /// Cutoffs, oldest first.
    pub cutoffs: Vec<NaiveDate>,
    /// Periods forecast at each cutoff.
    pub horizon: usize,
    /// Season of the MASE scale.
    pub season: usize,
    /// Quantile levels scored.
    pub levels: Vec<f64>,
    /// Scores per model, as stored by the backtest.
    pub models: Vec<ModelBacktest>,
    /// Forecast value added over seasonal naive, per model.
    pub value_added: Vec<ValueAdded>,
}

/// How much better a model is than seasonal naive: `100 · (1 − model / seasonal naive)`, in %
/// (positive: better); `None` when seasonal naive was not backtested or scored 0.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueAdded {
    /// Model name.
    pub model: String,
    /// FVA on MASE.
    pub mase_pct: Option<f64>,
    /// FVA on WAPE.
    pub wape_pct: Option<f64>,
}

/// The champion registry as the report read it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ChampionSection {
    /// The metric of the registry.
    pub metric: Metric,
    /// The champion of each segment now.
    pub segments: BTreeMap<String, Champion>,
    /// This run's decisions.
    pub decisions: Vec<Decision>,
    /// Who held each segment after each run, oldest first, up to this run.
    pub history: Vec<HistoryRow>,
}

/// The champions after one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HistoryRow {
    /// The run that decided.
    pub run_id: String,
    /// The champion of each segment after it.
    pub held: BTreeMap<String, Held>,
}

/// A segment's champion after a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Held {
    /// Model name.
    pub model: String,
    /// Whether this run promoted it.
    pub promoted: bool,
    /// Its score in that run's backtest.
    pub score: Option<f64>,
}

/// The forecast the run published.
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// Where it is.
    pub location: String,
    /// Run date (partition).
    pub run_date: NaiveDate,
    /// Last day of data.
    pub cutoff: Option<NaiveDate>,
    /// Rows.
    pub rows: u64,
    /// Series.
    pub series: usize,
    /// Periods forecast.
    pub horizon: usize,
    /// Quantile levels.
    pub quantiles: Vec<f64>,
    /// Series served by each model.
    pub models: BTreeMap<String, usize>,
    /// The mean forecast summed over all series, per period.
    pub totals: Vec<PeriodTotal>,
    /// The actual units summed over all series, per period, for three horizons before the cutoff.
    pub actual_totals: Vec<PeriodTotal>,
}

/// One period's total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeriodTotal {
    /// The period (its first day).
    pub date: NaiveDate,
    /// Units: the sum over the series.
    pub units: f64,
}

/// Why a series is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Why {
    /// Among the largest by units over the backtest periods.
    Volume,
    /// The highest MASE of the model that serves it.
    Worst,
}

/// One series in detail.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesView {
    /// The item.
    pub item_id: String,
    /// The location.
    pub location_id: String,
    /// Why it is shown.
    pub why: Why,
    /// The model whose forecasts are shown (the one published for it, else the best overall).
    pub model: String,
    /// That model's MASE on this series over the backtest windows.
    pub mase: Option<f64>,
    /// Units sold over the backtest periods (or the last horizon without a backtest).
    pub volume: f64,
    /// Actuals, oldest first.
    pub actuals: Vec<Actual>,
    /// Backtest forecasts of the model, per window.
    pub backtest: Vec<ForecastPoint>,
    /// The published forecast.
    pub forecast: Vec<ForecastPoint>,
    /// Quantile levels of the published band (`lo`, `hi`).
    pub forecast_band: Option<(f64, f64)>,
}

/// One actual.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Actual {
    /// The period (its first day).
    pub date: NaiveDate,
    /// Units.
    pub y: f64,
}

/// One forecast period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ForecastPoint {
    /// The window's cutoff (backtest) or the run's (published).
    pub cutoff: Option<NaiveDate>,
    /// The period forecast.
    pub date: NaiveDate,
    /// Mean.
    pub mean: f64,
    /// Lower quantile (0.1 in backtests).
    pub lo: Option<f64>,
    /// Upper quantile (0.9 in backtests).
    pub hi: Option<f64>,
}

/// Gathers the report of `source`, renders it and writes it to the lake.
#[instrument(skip_all, fields(run_id = %source.run_id))]
pub async fn run(
    lake: &Lake,
    settings: &Settings,
    source: &Source,
    clock: &dyn Clock,
) -> Result<(Report, ReportFiles)> {
    let report = gather(lake, settings, source, clock).await?;
    let files = write(lake, &report, clock).await?;
    info!(location = %files.location, notes = report.notes.len(), "report written");
    Ok((report, files))
}
