//! The job steps, one file per kind: each reads what the steps before it left in [`State`],
//! does its work through the library (quality, features, models, evaluate, publish, plan, …),
//! records what it did in the run's report, and returns the rows it read and wrote.
//!
//! The runner ([`super::runner`]) owns what is common to every step: the lease, attempts,
//! timeouts, cancellation and the run record. A step only knows its own work.

mod backtest;
mod checks;
mod factors;
mod features;
mod ingest;
mod notify;
mod plan;
mod predict;
mod publish;
mod report;
mod sql;
mod track;
mod train;

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;

use super::history::{ModelVersion, RunReport};
use super::runner::RunEnv;
use super::spec::{JobSpec, StepKind, StepSpec};
use crate::error::{Error, Result};
use crate::evaluate::window::AsOf;
use crate::features::FeatureParams;
use crate::lake::layout;
use crate::models::{self, Forecast, Forecaster, ModelsConfig};
use crate::panel::Panel;

/// What the steps of one run hand each other (the panel, the fitted models, their forecasts, …).
#[derive(Default)]
pub(super) struct State {
    pub(super) params: Option<FeatureParams>,
    pub(super) panel: Option<Arc<Panel>>,
    pub(super) models: Vec<Box<dyn Forecaster>>,
    pub(super) forecasts: Vec<Forecast>,
    /// The learned ensemble's weights at the cutoff, from the member forecasts of a backtest
    /// step that ran before the train step (its windows are the validation fitting would redo).
    pub(super) ensemble_weights: Option<crate::models::ensemble::Learned>,
    /// The panel of actuals at the cutoff, without covariates (what tracking and backtests read).
    pub(super) actuals: Option<Arc<Panel>>,
    /// This run's tracked accuracy, for the backtest step's decisions.
    pub(super) tracked: Option<crate::evaluate::backtest::BacktestReport>,
    /// The deep models' states after this run's backtest windows, which the train step continues
    /// instead of training them from scratch.
    pub(super) window_states: crate::evaluate::backtest::States,
}

/// Rows a step read and wrote.
pub(super) type Rows = (Option<u64>, Option<u64>);

/// What a step runs with: the run's environment, job and step, the engine session with the
/// lake's tables, the run's identity and cutoff, the state the steps share and the run's record.
pub(super) struct StepCx<'a> {
    pub(super) env: &'a RunEnv,
    pub(super) job: &'a JobSpec,
    pub(super) step: &'a StepSpec,
    pub(super) ctx: &'a SessionContext,
    pub(super) run_id: &'a str,
    pub(super) run_date: NaiveDate,
    pub(super) params: FeatureParams,
    pub(super) state: &'a mut State,
    pub(super) report: &'a mut RunReport,
}

/// Runs one attempt of `step`; the rows it read and wrote.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run(
    env: &RunEnv,
    job: &JobSpec,
    step: &StepSpec,
    ctx: &SessionContext,
    run_id: &str,
    run_date: NaiveDate,
    state: &mut State,
    report: &mut RunReport,
) -> Result<Rows> {
    // Set before the first step, in the runner.
    let params = state.params.ok_or_else(|| Error::data("no feature parameters"))?;
    let cx = StepCx { env, job, step, ctx, run_id, run_date, params, state, report };
    match step.kind {
        StepKind::Checks => checks::run(cx).await,
        StepKind::Features => features::run(cx).await,
        StepKind::Train => train::run(cx).await,
        StepKind::Predict => predict::run(cx).await,
        StepKind::Backtest => backtest::run(cx).await,
        StepKind::Publish => publish::run(cx).await,
        StepKind::Track => track::run(cx).await,
        StepKind::Plan => plan::run(cx).await,
        StepKind::Notify => notify::run(cx).await,
        StepKind::Ingest => ingest::run(cx).await,
        StepKind::Factors => factors::run(cx).await,
        StepKind::Report => report::run(cx).await,
        StepKind::Sql => sql::run(cx).await,
    }
}

/// Records that the run used `version` of model `name`.
pub(super) fn use_model(report: &mut RunReport, name: &str, version: &str) {
    let v = ModelVersion { name: name.to_string(), version: version.to_string() };
    if !report.models.contains(&v) {
        report.models.push(v);
    }
}

/// A model of the registry built with `config`; `torchscript` with its module from the lake.
pub(super) async fn build_model(env: &RunEnv, name: &str, config: &ModelsConfig) -> Result<Box<dyn Forecaster>> {
    if name != "torchscript" {
        return models::build(name, config);
    }
    let path = layout::torchscript_model(&env.settings.torchscript_file);
    let bytes = env.lake.get_opt(&path).await?.ok_or_else(|| {
        Error::data(format!("the torchscript model needs a TorchScript module at {}", env.lake.display(&path)))
    })?;
    models::build_torchscript(config, &bytes)
}

/// The panel at the cutoff, with the covariates known then when one of `models` reads them (the
/// features step has materialised the cutoff's tables); see [`crate::evaluate::window`].
/// (Not an `async fn`: the models, which are not `Sync`, stay out of the future.)
pub(super) fn panel_as_of<'a>(
    env: &'a RunEnv,
    params: FeatureParams,
    models: &[Box<dyn Forecaster>],
) -> impl std::future::Future<Output = Result<Panel>> + Send + 'a {
    let needs = models.iter().any(|m| m.needs_covariates());
    as_of(env, params, needs)
}

async fn as_of(env: &RunEnv, params: FeatureParams, needs: bool) -> Result<Panel> {
    let config = env.settings.backtest_config();
    let as_of = AsOf::for_built(&env.lake, &config, needs, env.settings.horizon);
    as_of.panel(panel_for(env, params).await?, params.cutoff).await
}

/// The run's panel of actuals at the cutoff (no covariates), read once.
pub(super) async fn actuals(env: &RunEnv, params: FeatureParams, state: &mut State) -> Result<Arc<Panel>> {
    if let Some(p) = &state.actuals {
        return Ok(Arc::clone(p));
    }
    let p = Arc::new(panel_for(env, params).await?);
    state.actuals = Some(Arc::clone(&p));
    Ok(p)
}

/// The panel of the `target` feature table at the cutoff, with the closures known then.
pub(super) async fn panel_for(env: &RunEnv, params: FeatureParams) -> Result<Panel> {
    let dir = layout::features(crate::features::queries::TARGET.name, params.cutoff);
    let end = params.frequency.period_start(params.cutoff);
    let closures = crate::panel::Closures::read(&env.lake, params.cutoff).await?;
    let panel = Panel::read(&env.lake, &dir, params.frequency, end).await?.with_closures(closures);
    if panel.is_empty() {
        return Err(Error::data(format!("no series have sales on or before {}", params.cutoff)));
    }
    Ok(panel)
}
