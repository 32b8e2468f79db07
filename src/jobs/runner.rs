//! Runs a job once for a run date: its steps in order, each recorded.
//!
//! The run date's cutoff is the day before it, or the last day with sales if
//! the lake is older than that. The catalog is checked before any step runs,
//! so a missing or mistyped table fails the run with nothing written. Every
//! run leaves a record in `runs/job=…/run_date=…/<run_id>.json`, failed or not.

use std::sync::Arc;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use serde::Serialize;
use tracing::{Instrument, info, info_span, warn};

use super::spec::{JobSpec, StepKind};
use crate::catalog::CatalogReport;
use crate::clock::Clock;
use crate::engine;
use crate::error::{Error, Result};
use crate::evaluate::backtest::{self, BacktestOptions};
use crate::evaluate::champion::{self, Decision, Registry, SegmentBy};
use crate::features::{self, FeatureMetrics, FeatureParams, queries};
use crate::lake::{Lake, dataset, layout};
use crate::models::baseline::classify::classify;
use crate::models::{self, FitReport, Forecast, Forecaster, store};
use crate::panel::{Covariates, Panel};
use crate::publish::{self, ForecastRelease, PublishMetrics};
use crate::quality::{self, QualityReport};
use crate::settings::Settings;

/// What a run needs from outside.
#[derive(Debug, Clone)]
pub struct RunEnv {
    /// Resolved settings.
    pub settings: Settings,
    /// The lake.
    pub lake: Lake,
    /// The clock.
    pub clock: Arc<dyn Clock>,
}

/// How a run or step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Finished without error.
    Succeeded,
    /// Stopped on an error.
    Failed,
    /// Not reached because an earlier step failed.
    Skipped,
}

/// The record of one step.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    /// Step name.
    pub name: String,
    /// Step kind.
    pub kind: StepKind,
    /// Outcome.
    pub status: Status,
    /// Start time.
    pub started_at: Option<DateTime<Utc>>,
    /// End time.
    pub ended_at: Option<DateTime<Utc>>,
    /// Rows the step produced.
    pub rows_out: Option<u64>,
    /// The error, with its causes.
    pub error: Option<String>,
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
}

/// The record of one run, stored in `runs/`.
#[derive(Debug, Clone, Serialize)]
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
    pub trigger: String,
    /// Outcome.
    pub status: Status,
    /// Start time.
    pub started_at: DateTime<Utc>,
    /// End time.
    pub ended_at: DateTime<Utc>,
    /// Steps, in order.
    pub steps: Vec<StepRecord>,
    /// Tables read.
    pub inputs: Option<CatalogReport>,
    /// Data-quality results.
    pub quality: Option<QualityReport>,
    /// Champion decisions of the backtest step.
    pub champions: Vec<Decision>,
    /// What it produced.
    pub summary: RunSummary,
    /// The error that failed the run.
    pub error: Option<String>,
}

#[derive(Default)]
struct State {
    params: Option<FeatureParams>,
    panel: Option<Arc<Panel>>,
    models: Vec<Box<dyn Forecaster>>,
    forecasts: Vec<Forecast>,
}

/// Runs `job` for `run_date` (today by the clock when `None`). Returns the run's record; a failed
/// run returns its error after its record is written.
pub async fn run_job(
    env: &RunEnv,
    job: &JobSpec,
    run_date: Option<NaiveDate>,
    trigger: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<RunReport> {
    let started_at = env.clock.now();
    let run_date = run_date.unwrap_or_else(|| env.clock.today());
    let run_id = format!("{}-{}", job.name, started_at.format("%Y%m%dT%H%M%S%3fZ"));
    let span = info_span!("run", job = %job.name, run_id = %run_id, run_date = %run_date);
    async move {
        let mut report = RunReport {
            run_id: run_id.clone(),
            job: job.name.clone(),
            run_date,
            cutoff: None,
            trigger: trigger.to_string(),
            status: Status::Succeeded,
            started_at,
            ended_at: started_at,
            steps: job
                .steps
                .iter()
                .map(|s| StepRecord {
                    name: s.name.clone(),
                    kind: s.kind,
                    status: Status::Skipped,
                    started_at: None,
                    ended_at: None,
                    rows_out: None,
                    error: None,
                })
                .collect(),
            inputs: None,
            quality: None,
            champions: Vec::new(),
            summary: RunSummary { horizon: env.settings.horizon, ..Default::default() },
            error: None,
        };
        let result = execute(env, job, run_date, &run_id, &mut report, progress).await;
        report.ended_at = env.clock.now();
        if let Err(e) = &result {
            report.status = Status::Failed;
            report.error = Some(error_chain(e));
        }
        // A run that failed before the catalog was checked writes no record: nothing ran.
        if report.inputs.is_some() {
            let path = layout::run_record(&job.name, run_date, &run_id);
            env.lake.put(&path, serde_json::to_vec_pretty(&report)?.into()).await?;
        }
        result.map(|()| report)
    }
    .instrument(span)
    .await
}

async fn execute(
    env: &RunEnv,
    job: &JobSpec,
    run_date: NaiveDate,
    run_id: &str,
    report: &mut RunReport,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    let s = &env.settings;
    progress("checking the lake");
    let (ctx, catalog) = engine::open_with(&env.lake, engine::EngineOptions::from_settings(s)).await?;
    report.inputs = Some(catalog);
    let wanted = run_date - Duration::days(1);
    let last = features::last_sales_date(&ctx).await?.ok_or_else(|| Error::data("the sales table has no rows"))?;
    let cutoff = if last < wanted {
        warn!(last_sales = %last, wanted = %wanted, "sales end before the day before the run date; using the last day with sales");
        last
    } else {
        wanted
    };
    let params = FeatureParams::from_settings(cutoff, s);
    report.cutoff = Some(params.cutoff);
    let mut state = State { params: Some(params), ..Default::default() };
    for (i, step) in job.steps.iter().enumerate() {
        progress(&step.name);
        report.steps[i].started_at = Some(env.clock.now());
        let outcome = run_step(env, step.kind, &ctx, run_id, run_date, &mut state, report)
            .instrument(info_span!("step", step = %step.name))
            .await;
        report.steps[i].ended_at = Some(env.clock.now());
        match outcome {
            Ok(rows) => {
                report.steps[i].status = Status::Succeeded;
                report.steps[i].rows_out = rows;
                info!(step = %step.name, rows = rows.unwrap_or(0), "step done");
            }
            Err(e) => {
                report.steps[i].status = Status::Failed;
                report.steps[i].error = Some(error_chain(&e));
                return Err(Error::Step { job: job.name.clone(), step: step.name.clone(), source: Box::new(e) });
            }
        }
    }
    Ok(())
}

async fn run_step(
    env: &RunEnv,
    kind: StepKind,
    ctx: &datafusion::prelude::SessionContext,
    run_id: &str,
    run_date: NaiveDate,
    state: &mut State,
    report: &mut RunReport,
) -> Result<Option<u64>> {
    let s = &env.settings;
    let params = state.params.expect("set before the first step");
    match kind {
        StepKind::Checks => {
            let q =
                quality::run(ctx, &env.lake, &s.quality, run_date, params.cutoff, run_id, env.clock.as_ref()).await?;
            let rows = q.excluded_rows;
            report.quality = Some(q);
            Ok(Some(rows))
        }
        StepKind::Features => {
            let metrics = features::materialize_all(ctx, &env.lake, params, run_id, env.clock.as_ref()).await?;
            let rows = metrics.iter().map(|m| m.rows).sum();
            report.summary.features.extend(metrics);
            Ok(Some(rows))
        }
        StepKind::Train => {
            let mut built = Vec::new();
            for name in &s.models {
                built.push(build_model(env, name).await?);
            }
            let panel = Arc::new(attach_covariates(env, params, panel_for(env, params).await?, &built).await?);
            let mut fitted = Vec::new();
            for mut model in built {
                let p = Arc::clone(&panel);
                let (model, fit) = tokio::task::spawn_blocking(move || {
                    let fit = model.fit(&p);
                    (model, fit)
                })
                .await?;
                let fit = fit?;
                let card = store::ModelCard {
                    model: model.name().to_string(),
                    version: run_id.to_string(),
                    created_at: env.clock.now(),
                    cutoff: params.cutoff.to_string(),
                    series: fit.series,
                    observations: fit.observations,
                    seed: s.seed,
                    frequency: s.frequency.as_str().to_string(),
                    state_bytes: 0,
                    details: model.card().unwrap_or_else(
                        || serde_json::json!({ "horizon": s.horizon, "season_length": s.season_length }),
                    ),
                };
                store::save(&env.lake, model.as_ref(), &card).await?;
                report.summary.fits.push(fit);
                fitted.push(model);
            }
            report.summary.series = panel.len();
            let obs = panel.observations() as u64;
            state.panel = Some(panel);
            state.models = fitted;
            Ok(Some(obs))
        }
        StepKind::Predict => {
            if state.models.is_empty() {
                // No train step in this job: use the latest trained version of each model.
                for name in &s.models {
                    let mut model = build_model(env, name).await?;
                    let card = store::load_latest(&env.lake, model.as_mut()).await?;
                    info!(model = %name, version = %card.version, "loaded from the lake");
                    state.models.push(model);
                }
            }
            let panel = match state.panel.clone() {
                Some(p) => p,
                None => Arc::new(attach_covariates(env, params, panel_for(env, params).await?, &state.models).await?),
            };
            report.summary.series = panel.len();
            state.panel = Some(Arc::clone(&panel));
            let mut rows = 0;
            state.forecasts.clear();
            for model in std::mem::take(&mut state.models) {
                let p = Arc::clone(&panel);
                let (h, levels) = (s.horizon, s.quantiles.clone());
                let (model, f) = tokio::task::spawn_blocking(move || {
                    let f = model.predict(&p, h, &levels);
                    (model, f)
                })
                .await?;
                let f = f?;
                rows += f.mean.len() as u64;
                state.forecasts.push(f);
                state.models.push(model);
            }
            Ok(Some(rows))
        }
        StepKind::Backtest => {
            let c = &s.champion;
            if c.windows == 0 {
                return Ok(None);
            }
            let panel = match state.panel.clone() {
                Some(p) => p,
                None => Arc::new(panel_for(env, params).await?),
            };
            let opts =
                BacktestOptions { windows: c.windows, horizon: s.horizon, step: s.horizon, models: s.models.clone() };
            let bt =
                match backtest::run_in_lake(ctx, &env.lake, Arc::clone(&panel), s, &opts, run_id, env.clock.as_ref())
                    .await
                {
                    Ok(bt) => bt,
                    Err(Error::Data(msg)) => {
                        // Too little history for the windows: keep the champions as they are.
                        warn!(reason = %msg, "backtest skipped");
                        return Ok(None);
                    }
                    Err(e) => return Err(e),
                };
            let rows = backtest::store(&env.lake, run_id, &bt, serde_json::Map::new(), env.clock.as_ref()).await?;
            let n = rows.num_rows() as u64;
            let mut registry = Registry::read(&env.lake).await?;
            let decisions = registry.decide(&bt, c, run_id);
            registry.write(&env.lake).await?;
            report.champions = decisions;
            Ok(Some(n))
        }
        StepKind::Publish => {
            let panel = state.panel.clone().ok_or_else(|| Error::data("publish needs a train step before it"))?;
            let first = state.forecasts.first().ok_or_else(|| Error::data("publish needs a predict step before it"))?;
            // Each series gets the forecast of its segment's champion (when it was forecast).
            let registry = Registry::read(&env.lake).await?;
            let by_name: std::collections::HashMap<&str, &Forecast> =
                state.forecasts.iter().map(|f| (f.model.as_str(), f)).collect();
            let mut combined = first.clone();
            let mut series_models = Vec::with_capacity(panel.len());
            for (i, y) in panel.values.iter().enumerate() {
                let segment = match s.champion.segment_by {
                    SegmentBy::None => champion::ALL.to_string(),
                    SegmentBy::DemandClass => {
                        let class = classify(y, 2 * s.season_length);
                        serde_json::to_value(class)?.as_str().unwrap_or(champion::ALL).to_string()
                    }
                };
                let chosen = registry.champion_of(&segment).and_then(|m| by_name.get(m)).copied().unwrap_or(first);
                combined.copy_series(i, chosen);
                series_models.push(chosen.model.clone());
            }
            let forecast = &combined;
            let features: Vec<_> = report
                .summary
                .features
                .iter()
                .map(|f| serde_json::json!({ "name": f.name, "cutoff": f.cutoff, "rows": f.rows, "location": f.location }))
                .collect();
            let quality = report
                .quality
                .as_ref()
                .map(|q| serde_json::json!({ "excluded_rows": q.excluded_rows, "checks": q.checks }));
            let inputs = serde_json::json!({ "tables": report.inputs, "features": features, "quality": quality });
            let release = ForecastRelease {
                run_id,
                run_date,
                cutoff: params.cutoff,
                panel: &panel,
                forecast,
                model_version: run_id,
                series_models: &series_models,
                inputs,
                champions: serde_json::to_value(&registry.segments)?,
            };
            let m: PublishMetrics = publish::publish_forecasts(&env.lake, &release, env.clock.as_ref()).await?;
            report.summary.forecast_rows = m.rows;
            let mut used: Vec<&str> = series_models.iter().map(String::as_str).collect();
            used.sort_unstable();
            used.dedup();
            report.summary.model = Some(used.join(", "));
            report.summary.output = Some(m.location.clone());
            report.summary.manifest = Some(m.manifest.clone());
            Ok(Some(m.rows))
        }
    }
}

/// A model of the registry; `torchscript` with its module from the lake.
async fn build_model(env: &RunEnv, name: &str) -> Result<Box<dyn Forecaster>> {
    let s = &env.settings;
    if name != "torchscript" {
        return models::build(name, s);
    }
    let path = layout::torchscript_model(&s.torchscript_file);
    let bytes = env.lake.get_opt(&path).await?.ok_or_else(|| {
        Error::data(format!("the torchscript model needs a TorchScript module at {}", env.lake.display(&path)))
    })?;
    models::build_torchscript(s, &bytes)
}

/// The panel with the covariates of the cutoff when a model reads them.
async fn attach_covariates(
    env: &RunEnv,
    params: FeatureParams,
    panel: Panel,
    models: &[Box<dyn Forecaster>],
) -> Result<Panel> {
    if !models.iter().any(|m| m.needs_covariates()) {
        return Ok(panel);
    }
    let history = models::covariate_history(&env.settings);
    let covariates = Covariates::load(&env.lake, params.cutoff, &panel, env.settings.horizon, history).await?;
    Ok(panel.with_covariates(covariates))
}

/// The panel of the `target` feature table at the cutoff.
async fn panel_for(env: &RunEnv, params: FeatureParams) -> Result<Panel> {
    let dir = layout::features(queries::TARGET.name, params.cutoff);
    let (_, batches) = dataset::read(&env.lake, &dir).await?;
    let end = params.cutoff - Duration::days(params.frequency.days() - 1);
    let panel = Panel::from_batches(&batches, params.frequency, end)?;
    if panel.is_empty() {
        return Err(Error::data(format!("no series have sales on or before {}", params.cutoff)));
    }
    Ok(panel)
}

/// An error and its causes on one line, `: `-separated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}
