//! What the model registry reads from the settings: the grain, horizon, quantiles, seed, threads,
//! the configured models and each model's `[model.*]` parameters. The settings build it
//! ([`crate::settings::Settings::models_config`]); nothing in `models` reads the settings.

use crate::period::Frequency;

use super::params::ModelParams;

/// The settings of the model registry.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelsConfig {
    /// The forecast grain.
    pub frequency: Frequency,
    /// Periods forecast.
    pub horizon: usize,
    /// Periods per seasonal cycle.
    pub season_length: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Worker threads.
    pub threads: usize,
    /// Models fitted side by side (0: up to `threads`); see [`super::lanes`].
    pub parallel_fits: usize,
    /// Quantile levels published.
    pub quantiles: Vec<f64>,
    /// The configured models.
    pub models: Vec<String>,
    /// Members of the ensembles (`ensemble-members`; empty: the other configured models).
    pub ensemble_members: Vec<String>,
    /// Each model's parameters (`[model.*]`).
    pub model: ModelParams,
}

impl ModelsConfig {
    /// How `fits` fits share the threads: side by side up to `parallel_fits` at once.
    pub fn lanes(&self, fits: usize) -> super::lanes::Lanes {
        super::lanes::Lanes::new(self.threads, self.parallel_fits, fits)
    }

    /// The same settings with `threads` worker threads (a fit on a lane of [`Self::lanes`]).
    pub fn with_threads(&self, threads: usize) -> Self {
        Self { threads, ..self.clone() }
    }
}
