//! Forecasting models behind one trait, and the registry that builds them by name.
//!
//! A [`Forecaster`] is fitted on a [`Panel`] and predicts every series over a
//! horizon: a mean and the configured quantiles per step, never negative and
//! never crossing. Models are synchronous and deterministic for a seed; async
//! callers move them to the blocking pool.

pub mod baseline;
pub mod closed;
pub mod config;
pub mod conformal;
pub mod ensemble;
pub mod framed;
pub mod gbt;
pub mod lanes;
pub mod median;
pub mod nn;
pub mod params;
pub mod point;
pub mod pooled;
pub mod store;
pub mod warm;

pub use config::ModelsConfig;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::panel::Panel;

/// What fitting did.
#[derive(Debug, Clone, Serialize)]
pub struct FitReport {
    /// Model name.
    pub model: String,
    /// Series fitted.
    pub series: usize,
    /// Observations read.
    pub observations: usize,
}

impl FitReport {
    /// The report of a model fitted on every series of `panel`.
    pub fn new(model: &str, panel: &Panel) -> Self {
        Self { model: model.to_string(), series: panel.len(), observations: panel.observations() }
    }
}

/// A forecast for every series of a panel.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Model that produced it.
    pub model: String,
    /// Steps ahead.
    pub horizon: usize,
    /// Quantile levels, ascending.
    pub levels: Vec<f64>,
    /// Mean per series × step (row-major).
    pub mean: Vec<f32>,
    /// Quantiles per series × step × level (row-major).
    pub quantiles: Vec<f32>,
    /// The point forecast per series × step (row-major) when it is not the mean; empty: the
    /// mean. The learned ensemble's point mixes members' means and medians as its validation
    /// chose ([`ensemble`]), a deep model's is its median where its validation samples chose it
    /// ([`nn::PointChoice`]); it is what the backtest scores and the champion is chosen on.
    pub point: Vec<f32>,
}

impl Forecast {
    /// An all-zero forecast to fill in.
    pub fn zeros(model: &str, series: usize, horizon: usize, levels: &[f64]) -> Self {
        Self {
            model: model.to_string(),
            horizon,
            levels: levels.to_vec(),
            mean: vec![0.0; series * horizon],
            quantiles: vec![0.0; series * horizon * levels.len()],
            point: Vec::new(),
        }
    }

    /// Number of series.
    pub fn series(&self) -> usize {
        self.mean.len() / self.horizon.max(1)
    }

    /// Mean of series `s` at step `h` (0-based).
    pub fn mean_at(&self, s: usize, h: usize) -> f32 {
        self.mean[s * self.horizon + h]
    }

    /// The point forecast of series `s` at step `h` (0-based): the mean unless the model set
    /// another point.
    pub fn point_at(&self, s: usize, h: usize) -> f32 {
        self.point.get(s * self.horizon + h).copied().unwrap_or_else(|| self.mean_at(s, h))
    }

    /// Quantile `q` (index into levels) of series `s` at step `h` (0-based).
    pub fn quantile_at(&self, s: usize, h: usize, q: usize) -> f32 {
        self.quantiles[(s * self.horizon + h) * self.levels.len() + q]
    }

    /// This forecast at those of `levels` it holds (its other levels dropped).
    pub fn at_levels(&self, levels: &[f64]) -> Forecast {
        let (held, at): (Vec<f64>, Vec<usize>) = levels
            .iter()
            .filter_map(|l| self.levels.iter().position(|x| (x - l).abs() < 1e-9).map(|k| (*l, k)))
            .unzip();
        let q = self.levels.len();
        let quantiles = (0..self.mean.len()).flat_map(|r| at.iter().map(move |k| self.quantiles[r * q + k])).collect();
        Forecast { levels: held, quantiles, ..self.clone() }
    }

    /// Copies series `s` of `other` (same horizon and levels) into this forecast.
    pub fn copy_series(&mut self, s: usize, other: &Forecast) {
        self.copy_series_from(s, other, s);
    }

    /// Copies series `from` of `other` (same horizon and levels) into series `s` of this forecast.
    pub fn copy_series_from(&mut self, s: usize, other: &Forecast, from: usize) {
        let (h, q) = (self.horizon, self.levels.len());
        self.mean[s * h..(s + 1) * h].copy_from_slice(&other.mean[from * h..(from + 1) * h]);
        if self.point.is_empty() && !other.point.is_empty() {
            self.point = self.mean.clone();
        }
        if !self.point.is_empty() {
            let theirs = if other.point.is_empty() { &other.mean } else { &other.point };
            self.point[s * h..(s + 1) * h].copy_from_slice(&theirs[from * h..(from + 1) * h]);
        }
        self.quantiles[s * h * q..(s + 1) * h * q].copy_from_slice(&other.quantiles[from * h * q..(from + 1) * h * q]);
    }

    /// Scales series `s`'s quantiles by `calibration` at every step ([`ensemble::calibrate::rescale`]).
    pub fn rescale_series(&mut self, s: usize, calibration: &[(f64, f64)]) {
        if calibration.is_empty() {
            return;
        }
        let (h, nq) = (self.horizon, self.levels.len());
        let mut q = vec![0.0f64; nq];
        for row in self.quantiles[s * h * nq..(s + 1) * h * nq].chunks_mut(nq) {
            q.iter_mut().zip(row.iter()).for_each(|(q, v)| *q = f64::from(*v));
            ensemble::calibrate::rescale(&self.levels, calibration, &mut q);
            row.iter_mut().zip(&q).for_each(|(v, q)| *v = *q as f32);
        }
    }

    /// Sets series `s`, step `h`: the mean and the quantiles (sorted, floored at zero).
    pub fn set(&mut self, s: usize, h: usize, mean: f32, quantiles: &mut [f32]) {
        let nq = self.levels.len();
        quantiles.sort_by(f32::total_cmp);
        self.mean[s * self.horizon + h] = mean.max(0.0);
        let base = (s * self.horizon + h) * nq;
        for (k, q) in quantiles.iter().enumerate() {
            self.quantiles[base + k] = q.max(0.0);
        }
    }
}

/// What a warm start did.
#[derive(Debug)]
pub enum Warm {
    /// The model has no warm start: fit it from scratch.
    Unsupported,
    /// The parent does not fit this panel or configuration (why): fit from scratch.
    Incompatible(String),
    /// Continued from the parent.
    Continued(FitReport),
}

/// What a fit can take from work already done in the same run.
#[derive(Clone, Copy, Default)]
pub struct Reuse<'a> {
    /// Models already fitted on this same panel.
    pub fitted: &'a [&'a dyn Forecaster],
    /// The learned ensemble's weights for this panel's end, from member forecasts made at
    /// earlier cutoffs (a backtest's windows in the same run).
    pub ensemble: Option<&'a ensemble::Learned>,
}

impl<'a> Reuse<'a> {
    /// Reuses models already fitted on the same panel.
    pub fn fitted(fitted: &'a [&'a dyn Forecaster]) -> Self {
        Self { fitted, ensemble: None }
    }
}

/// A forecasting model.
pub trait Forecaster: std::fmt::Debug + Send {
    /// The registry name (`seasonal_naive`, …).
    fn name(&self) -> &str;

    /// Learns from the panel's history.
    fn fit(&mut self, panel: &Panel) -> Result<FitReport>;

    /// Forecasts `horizon` periods after the panel's end for every series, at the quantile `levels`.
    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast>;

    /// The fitted state, to store in the lake.
    fn save(&self) -> Result<Vec<u8>>;

    /// Restores a state written by [`Forecaster::save`].
    fn load(&mut self, bytes: &[u8]) -> Result<()>;

    /// What the fitted model is (configuration, inputs, training history), when it says.
    fn card(&self) -> Option<serde_json::Value> {
        None
    }

    /// Fits on `panel` taking what `reuse` holds (members already fitted on this same panel,
    /// ensemble weights already learnt for its end) as it is; `None` when the model has nothing
    /// to reuse (the caller fits it). The ensembles use it so the nightly does not fit their
    /// members twice, nor again at a validation cutoff its backtest already fitted them at.
    fn fit_reusing(&mut self, panel: &Panel, reuse: &Reuse<'_>) -> Result<Option<FitReport>> {
        let _ = (panel, reuse);
        Ok(None)
    }

    /// Continues `parent` (a state this model saved after fitting at an earlier cutoff) on
    /// `panel` for at most `epochs` epochs instead of fitting from scratch (a warm start). Models
    /// that fit cheaply from scratch leave it [`Warm::Unsupported`].
    fn fit_warm(&mut self, panel: &Panel, parent: &[u8], epochs: usize) -> Result<Warm> {
        let _ = (panel, parent, epochs);
        Ok(Warm::Unsupported)
    }

    /// Whether [`Forecaster::fit_warm`] can continue a stored version (the deep models).
    fn warm_starts(&self) -> bool {
        false
    }

    /// What a warm start with at most `epochs` epochs does, for the lineage in the card.
    fn warm_start_does(&self, epochs: usize) -> String {
        format!("fine-tuned at most {epochs} epochs")
    }

    /// Whether the model reads the panel's covariates (callers load them before fitting).
    fn needs_covariates(&self) -> bool {
        false
    }

    /// Whether the model reads the calendar of the periods' dates ([`Panel::calendar`]: day of the
    /// week, position in the year) rather than only their order in the history.
    fn reads_calendar(&self) -> bool {
        false
    }
}

/// `levels` with the median (0.5) among them, ascending and without repeats: what a wrapper asks
/// of the model it wraps when it needs the median whether or not its caller does.
pub fn with_median(levels: &[f64]) -> Vec<f64> {
    let mut asked = levels.to_vec();
    asked.push(0.5);
    asked.sort_by(f64::total_cmp);
    asked.dedup_by(|a, b| (*a - *b).abs() < 1e-9);
    asked
}

/// A wrapped model's card with `key` set to `value`: added to the wrapped card's fields, beside a
/// card that is not an object (under `model`), or alone without one.
pub fn card_with(inner: Option<serde_json::Value>, key: &str, value: serde_json::Value) -> serde_json::Value {
    match inner {
        Some(serde_json::Value::Object(mut card)) => {
            card.insert(key.to_string(), value);
            serde_json::Value::Object(card)
        }
        Some(other) => serde_json::json!({ "model": other, key: value }),
        None => serde_json::json!({ key: value }),
    }
}

/// Model names the registry knows.
pub const KNOWN: &[&str] = &[
    "naive",
    "seasonal_naive",
    "moving_average",
    "ets",
    "theta",
    "croston",
    "tsb",
    "ensemble",
    "median",
    "gbt",
    "lstm",
    "transformer",
    "torchscript",
];

/// Members of an ensemble when settings name none: the other configured models, or these.
const DEFAULT_ENSEMBLE: &[&str] = &["seasonal_naive", "ets", "tsb"];

/// Whether a model name is one of the ensembles (which combine the other models).
pub fn is_ensemble(name: &str) -> bool {
    matches!(name, "ensemble" | "median")
}

/// Where a model goes in a queue of fits, the slowest to fit first (the trees, which choose
/// their target and inputs on held-out fits, and the deep models), so that side-by-side fits end
/// close together and the quick statistical ones fill the gaps.
pub fn fit_rank(name: &str) -> u8 {
    match name {
        "gbt" => 0,
        "transformer" => 1,
        "lstm" => 2,
        n if is_ensemble(n) => 3,
        _ => 4,
    }
}

/// The members of the `ensemble` and `median` models: `ensemble-members`, else the other
/// configured models, else the default baselines.
pub fn ensemble_members(settings: &ModelsConfig) -> Vec<String> {
    let mut names: Vec<String> = settings.ensemble_members.clone();
    if names.is_empty() {
        names = settings.models.iter().filter(|m| !is_ensemble(m)).cloned().collect();
    }
    if names.is_empty() {
        names = DEFAULT_ENSEMBLE.iter().map(|s| s.to_string()).collect();
    }
    names.retain(|n| !is_ensemble(n));
    names
}

/// The quantile levels forecasts are scored at: the configured ones plus 0.1, 0.5 and 0.9 (the
/// 80% interval and the median).
pub fn scored_levels(settings: &ModelsConfig) -> Vec<f64> {
    let mut l = settings.quantiles.clone();
    l.extend([0.1, 0.5, 0.9]);
    l.sort_by(f64::total_cmp);
    l.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
    l
}

/// Whether model `name` calibrates its own quantiles when it is fitted, on forecasts of periods
/// its fit held out: `gbt` (its held-out errors), the learned `ensemble` (its validation, or its
/// members' own calibration), and the models `[model.calibration]` lists.
pub fn calibrates_itself(settings: &ModelsConfig, name: &str) -> bool {
    name == "gbt" || name == "ensemble" || settings.model.calibration.calibrates(name)
}

/// How the learned ensemble learns, from settings (`[model.ensemble]`).
pub fn ensemble_config(settings: &ModelsConfig) -> ensemble::EnsembleConfig {
    let p = &settings.model;
    let base = ensemble::EnsembleConfig {
        levels: scored_levels(settings),
        self_calibrated: ensemble_members(settings).iter().map(|n| calibrates_itself(settings, n)).collect(),
        ..ensemble::EnsembleConfig::new(settings.horizon, settings.season_length)
    };
    p.ensemble.apply(base)
}

/// Periods of covariates before a cutoff the configured deep models read (their training history).
pub fn covariate_history(settings: &ModelsConfig) -> usize {
    let base = nn::NnConfig::for_settings(settings);
    let p = &settings.model;
    p.lstm.apply(base.clone()).history.max(p.transformer.apply(base.clone()).history).max(base.history)
}

/// Builds a model by its settings name, closure-aware (see [`closed`]).
pub fn build(name: &str, settings: &ModelsConfig) -> Result<Box<dyn Forecaster>> {
    Ok(Box::new(closed::Closed::new(build_bare(name, settings)?)))
}

/// Builds a model by its settings name, as it is (no closure handling).
fn build_bare(name: &str, settings: &ModelsConfig) -> Result<Box<dyn Forecaster>> {
    use crate::period::Frequency;
    let window = match settings.frequency {
        Frequency::Daily => 28,
        Frequency::Weekly => 13,
    };
    let p = &settings.model;
    let baseline: Box<dyn Forecaster> = match name {
        "naive" => Box::new(baseline::Naive),
        "seasonal_naive" => Box::new(baseline::SeasonalNaive::new(settings.season_length)),
        "moving_average" => Box::new(baseline::MovingAverage::new(p.moving_average.window.unwrap_or(window))),
        "ets" => Box::new(baseline::Ets::new(settings.season_length, settings.threads)),
        "theta" => Box::new(baseline::Theta::new(settings.season_length, settings.threads)),
        "croston" => Box::new(baseline::Croston::new(p.croston.alpha.unwrap_or(0.1), baseline::CrostonVariant::Sba)),
        "tsb" => {
            Box::new(baseline::Tsb::new(p.tsb.alpha_demand.unwrap_or(0.1), p.tsb.alpha_probability.unwrap_or(0.1)))
        }
        _ => return build_global(name, settings),
    };
    let baseline: Box<dyn Forecaster> = if p.calibration.calibrates(name) {
        Box::new(conformal::Conformal::new(baseline, settings.horizon, settings.season_length))
    } else {
        baseline
    };
    Ok(if p.point.chooses(name) {
        Box::new(point::Pointed::new(baseline, settings.horizon, settings.season_length))
    } else {
        baseline
    })
}

/// Builds one of the global models or the ensembles by its settings name.
fn build_global(name: &str, settings: &ModelsConfig) -> Result<Box<dyn Forecaster>> {
    let p = &settings.model;
    Ok(match name {
        "median" => {
            let members = ensemble_members(settings).iter().map(|n| build(n, settings)).collect::<Result<Vec<_>>>()?;
            Box::new(median::Median::new(members)?)
        }
        "ensemble" => Box::new(learned_ensemble(settings)?),
        "gbt" => {
            let config = p.gbt.apply(gbt::GbtConfig {
                seed: settings.seed,
                threads: settings.threads,
                ..gbt::GbtConfig::new(settings.horizon, settings.season_length)
            });
            match p.gbt.levels() {
                Some(levels) => Box::new(gbt::levels::PerLevel::new(config, levels)),
                None => Box::new(gbt::Gbt::new(config)),
            }
        }
        "lstm" => Box::new(
            nn::Lstm::new(p.lstm.apply(nn::NnConfig::for_settings(settings)))
                .calibrated(p.calibration.calibrates(name)),
        ),
        "transformer" => Box::new(
            // The yearly lags tied on the Transformer's validation loss (the LSTM's fell): off
            // unless `[model.transformer] yearly = true`.
            nn::Transformer::new(
                p.transformer.apply(nn::NnConfig { yearly: false, ..nn::NnConfig::for_settings(settings) }),
            )
            .calibrated(p.calibration.calibrates(name)),
        ),
        // Without a module until one is set (`nn::TorchScript::set_module`); see `build_torchscript`.
        "torchscript" => {
            Box::new(nn::TorchScript::new(nn::NnConfig::for_settings(settings).window, &settings.quantiles))
        }
        _ => return Err(Error::UnknownModel { name: name.to_string(), known: KNOWN.join(", ") }),
    })
}

/// The learned ensemble of the configured members, unwrapped (its members handle closures).
pub fn learned_ensemble(settings: &ModelsConfig) -> Result<ensemble::Ensemble> {
    let (names, s) = (ensemble_members(settings), settings.clone());
    let members: ensemble::MemberBuilder =
        std::sync::Arc::new(move || names.iter().map(|n| build(n, &s)).collect::<Result<Vec<_>>>());
    ensemble::Ensemble::new(ensemble_config(settings), members)
}

/// The `torchscript` model running the serialised module `bytes` (the caller reads them from the
/// lake at `models/torchscript/<torchscript-file>`).
pub fn build_torchscript(settings: &ModelsConfig, bytes: &[u8]) -> Result<Box<dyn Forecaster>> {
    let window = nn::NnConfig::for_settings(settings).window;
    Ok(Box::new(closed::Closed::new(Box::new(nn::TorchScript::from_module(bytes, window, &settings.quantiles)?))))
}
