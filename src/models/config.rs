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
    /// Quantile levels published.
    pub quantiles: Vec<f64>,
    /// The configured models.
    pub models: Vec<String>,
    /// Members of the ensembles (`ensemble-members`; empty: the other configured models).
    pub ensemble_members: Vec<String>,
    /// Each model's parameters (`[model.*]`).
    pub model: ModelParams,
}
