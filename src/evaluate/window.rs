//! The one point-in-time window source. Given a cutoff, [`AsOf`] gives a panel the covariates as
//! they were known at that cutoff (future covariates from plans known by then, nothing recorded
//! later), materialising the feature tables of the cutoff first when asked to, and only when one
//! of the models reads covariates. The backtests, the group importance and the nightly's train
//! and predict steps all cut their windows through it, so what "known at T" means is decided in
//! one place.

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;

use super::backtest::BacktestConfig;
use crate::clock::Clock;
use crate::error::Result;
use crate::lake::Lake;
use crate::models;
use crate::panel::{Covariates, Panel};

/// The models a window can refit: `torchscript` (a user's module, nothing to refit) left out.
pub fn refittable(models: &[String]) -> Vec<String> {
    models.iter().filter(|m| m.as_str() != "torchscript").cloned().collect()
}

/// Whether any of `models` (by name, ensembles with their members) reads covariates.
pub fn reads_covariates(models: &[String], config: &BacktestConfig) -> Result<bool> {
    for m in models {
        if models::build(m, &config.models)?.needs_covariates() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Feature tables materialised per cutoff before the covariates are read (backtest windows,
/// whose cutoffs the nightly's features step never saw).
struct Materialize<'a> {
    ctx: &'a SessionContext,
    token: &'a str,
    clock: &'a dyn Clock,
}

/// Panels as of a cutoff, with the covariates known then when the models read any.
pub struct AsOf<'a> {
    lake: &'a Lake,
    config: &'a BacktestConfig,
    horizon: usize,
    needs: bool,
    materialize: Option<Materialize<'a>>,
}

impl<'a> AsOf<'a> {
    /// For `models` by name, forecasting `horizon` periods.
    pub fn for_models(lake: &'a Lake, config: &'a BacktestConfig, models: &[String], horizon: usize) -> Result<Self> {
        let needs = reads_covariates(models, config)?;
        Ok(Self { lake, config, horizon, needs, materialize: None })
    }

    /// For models already built (the nightly's, `torchscript` included), `needs` saying whether
    /// one of them reads covariates ([`crate::models::Forecaster::needs_covariates`]).
    pub fn for_built(lake: &'a Lake, config: &'a BacktestConfig, needs: bool, horizon: usize) -> Self {
        Self { lake, config, horizon, needs, materialize: None }
    }

    /// Materialises the feature tables of each cutoff (under `token`) before reading its
    /// covariates: for cutoffs other than the run's own.
    pub fn materializing(mut self, ctx: &'a SessionContext, token: &'a str, clock: &'a dyn Clock) -> Self {
        self.materialize = Some(Materialize { ctx, token, clock });
        self
    }

    /// Whether the panels get covariates.
    pub fn needs_covariates(&self) -> bool {
        self.needs
    }

    /// `panel`, cut at `cutoff`, with the covariates known at `cutoff` when a model reads them.
    pub async fn panel(&self, panel: Panel, cutoff: NaiveDate) -> Result<Panel> {
        if !self.needs {
            return Ok(panel);
        }
        if let Some(m) = &self.materialize {
            let params = self.config.feature_params(cutoff);
            crate::features::materialize_all(m.ctx, self.lake, params, m.token, m.clock).await?;
        }
        let history = models::covariate_history(&self.config.models);
        let covariates = Covariates::load(self.lake, cutoff, &panel, self.horizon, history).await?;
        Ok(panel.with_covariates(covariates))
    }
}
