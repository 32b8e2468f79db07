//! Hyperparameters of the models as written in the settings file, one table per model name:
//!
//! ```toml
//! [model.lstm]
//! hidden = 64
//! epochs = 30
//! point-loss = "poisson"
//!
//! [model.tsb]
//! alpha-demand = 0.1
//! alpha-probability = 0.05
//! ```
//!
//! Every key is optional (a missing one keeps the model's default) and unknown keys are refused,
//! so a misspelt hyperparameter stops the run with the file and line instead of being ignored.
//! The registry ([`super::build`]) applies these over each model's defaults.

use serde::{Deserialize, Serialize};

use super::ensemble::EnsembleConfig;
use super::gbt::levels::Levels;
use super::gbt::{ChooseOn, GbtConfig, Strategy, Target};
use super::nn::{NnConfig, PointChoice, PointLoss};
use crate::error::{Error, Result};
use crate::panel::covariates::STATIC;

/// The `[model.*]` tables.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub struct ModelParams {
    /// `[model.moving_average]`.
    #[serde(default)]
    pub moving_average: WindowParams,
    /// `[model.croston]`.
    #[serde(default)]
    pub croston: CrostonParams,
    /// `[model.tsb]`.
    #[serde(default)]
    pub tsb: TsbParams,
    /// `[model.lstm]`.
    #[serde(default)]
    pub lstm: NnParams,
    /// `[model.transformer]`.
    #[serde(default)]
    pub transformer: NnParams,
    /// `[model.gbt]`.
    #[serde(default)]
    pub gbt: GbtParams,
    /// `[model.ensemble]`.
    #[serde(default)]
    pub ensemble: EnsembleParams,
    /// `[model.calibration]`.
    #[serde(default)]
    pub calibration: CalibrationParams,
    /// `[model.point]`.
    #[serde(default)]
    pub point: PointParams,
}

/// Calibrated quantiles for statistical baselines ([`super::conformal`]) and the deep models
/// ([`super::nn::model`]).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CalibrationParams {
    /// The models whose quantiles are calibrated on a held-out horizon (a baseline is then
    /// fitted twice; a deep model forecasts the validation samples it held out anyway); default
    /// [`CALIBRATED`].
    pub models: Option<Vec<String>>,
}

/// Models calibrated by default: the baselines whose forecast follows the season, so their errors
/// over the last horizon say how wide the next one's are, and the deep models, whose learnt
/// quantiles narrow when fine-tuning stops early. The flat forecasts (`naive`,
/// `moving_average`, `croston`, `tsb`) miss by the season of the horizon held out, which the
/// next does not repeat; they keep their own quantiles unless listed.
pub const CALIBRATED: &[&str] = &["seasonal_naive", "ets", "theta", "lstm", "transformer"];

/// The models that can be calibrated.
pub const CALIBRATABLE: &[&str] =
    &["naive", "seasonal_naive", "moving_average", "ets", "theta", "croston", "tsb", "lstm", "transformer"];

impl CalibrationParams {
    /// Whether the quantiles of baseline `name` are calibrated.
    pub fn calibrates(&self, name: &str) -> bool {
        match &self.models {
            Some(list) => list.iter().any(|m| m == name),
            None => CALIBRATED.contains(&name),
        }
    }

    fn validate(&self) -> Result<()> {
        for m in self.models.iter().flatten() {
            if !CALIBRATABLE.contains(&m.as_str()) {
                return Err(invalid(
                    "model.calibration.models",
                    format!("`{m}` is not a model that can be calibrated ({})", CALIBRATABLE.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

/// Statistical baselines whose point forecast is chosen between their mean and their median on a
/// held-out horizon ([`super::point`]).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PointParams {
    /// The models whose point is chosen (each is then fitted twice); default [`POINTED`].
    pub models: Option<Vec<String>>,
}

/// Baselines whose point is chosen by default: every one whose median can differ from its mean.
/// ETS and Theta forecast a normal around their mean, whose median is the mean; the deep models
/// choose their own point on their validation samples (`[model.lstm] point`), the learned ensemble
/// weighs its members' medians, and `gbt` learns its target's centre.
pub const POINTED: &[&str] = &["naive", "seasonal_naive", "moving_average", "croston", "tsb"];

impl PointParams {
    /// Whether baseline `name`'s point is chosen.
    pub fn chooses(&self, name: &str) -> bool {
        match &self.models {
            Some(list) => list.iter().any(|m| m == name),
            None => POINTED.contains(&name),
        }
    }

    fn validate(&self) -> Result<()> {
        for m in self.models.iter().flatten() {
            if !POINTED.contains(&m.as_str()) {
                return Err(invalid(
                    "model.point.models",
                    format!("`{m}` is not a baseline whose median can differ from its mean ({})", POINTED.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

/// The learned ensemble; see [`EnsembleConfig`] for what each value means.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EnsembleParams {
    /// Rounds of greedy selection.
    pub rounds: Option<usize>,
    /// Validation windows before the cutoff (each costs one more fit of every member).
    pub validation_windows: Option<usize>,
    /// Weights per demand class where a class had enough validation.
    pub by_class: Option<bool>,
    /// Whether the members' medians are candidates for the point forecast beside their means
    /// (`false`: the point is a mean, a weighted mean of the members' means).
    pub medians: Option<bool>,
}

impl EnsembleParams {
    /// `base` with the values set here.
    pub fn apply(&self, mut c: EnsembleConfig) -> EnsembleConfig {
        c.rounds = self.rounds.unwrap_or(c.rounds);
        c.windows = self.validation_windows.unwrap_or(c.windows);
        c.by_class = self.by_class.unwrap_or(c.by_class);
        c.medians = self.medians.unwrap_or(c.medians);
        c
    }
}

/// The gradient-boosted-trees model; see [`GbtConfig`] for what each value means.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct GbtParams {
    /// Trees (the most, with `auto-trees`).
    pub trees: Option<usize>,
    /// Choose the number of trees on the held-out periods.
    pub auto_trees: Option<bool>,
    /// What the trees learn: `ratio`, `log`, `blend`, `tweedie`, `poisson`, or `auto` (the best on
    /// the held-out periods).
    pub target: Option<Target>,
    /// Power of the Tweedie deviance with the `tweedie` target, in `[1, 2)` (default 1.5).
    pub tweedie_power: Option<f64>,
    /// How the steps ahead are forecast: `direct`, `recursive`, `average`, or `auto` (the best
    /// of the three on the held-out periods).
    pub strategy: Option<Strategy>,
    /// Shrinkage per tree.
    pub learning_rate: Option<f32>,
    /// Depth per tree.
    pub max_depth: Option<usize>,
    /// Share of the columns each tree may split on, in (0, 1].
    pub colsample: Option<f64>,
    /// Share of the training rows each tree is grown on, in (0, 1].
    pub subsample: Option<f64>,
    /// Most training rows.
    pub max_rows: Option<usize>,
    /// Periods between training origins (0: fit `max-rows`).
    pub stride: Option<usize>,
    /// Weigh rows by series volume.
    pub volume_weighting: Option<bool>,
    /// Read known-future covariates and static attributes.
    pub covariates: Option<bool>,
    /// Read the yearly anchors (the year-ago value carried to the current level).
    pub anchors: Option<bool>,
    /// Read, with the anchors, each item's seasonal index pooled over its locations.
    pub pooled: Option<bool>,
    /// Tree ensembles averaged in the final fit, each with its own seed (at least 1).
    pub bags: Option<usize>,
    /// The power of each series' noise its held-out errors are divided by, in `[0, 1]` (0: the
    /// intervals follow the scale alone); unset: chosen on the held-out periods.
    pub spread_power: Option<f64>,
    /// Fit one model per `location` or per value of a static attribute (`category`, `brand`,
    /// `region`, `format`); unset: one global model.
    pub per: Option<String>,
    /// Least series in a group of its own with `per` (smaller groups are pooled; default 100).
    pub per_min_series: Option<usize>,
    /// Least series in the panel for `per` to split it (default 0: always).
    pub per_from_series: Option<usize>,
    /// How the held-out periods weigh the series when they choose between fits: `series` (every
    /// series alike, as MASE) or `volume` (by volume, as WAPE).
    pub choose_on: Option<ChooseOn>,
}

/// Groups smaller than this are pooled with `per` unless `per-min-series` says otherwise.
const PER_MIN_SERIES: usize = 100;

impl GbtParams {
    /// How `per` splits the series, when it is set.
    pub fn levels(&self) -> Option<Levels> {
        self.per.as_ref().map(|per| Levels {
            per: per.clone(),
            min_series: self.per_min_series.unwrap_or(PER_MIN_SERIES),
            from_series: self.per_from_series.unwrap_or(0),
        })
    }

    fn validate(&self) -> Result<()> {
        if let Some(r) = self.learning_rate
            && !(r.is_finite() && r > 0.0 && r <= 1.0)
        {
            return Err(invalid("model.gbt.learning-rate", format!("must be in (0, 1], got {r}")));
        }
        for (key, v) in [("colsample", self.colsample), ("subsample", self.subsample)] {
            if let Some(share) = v
                && !(share.is_finite() && share > 0.0 && share <= 1.0)
            {
                return Err(invalid(&format!("model.gbt.{key}"), format!("must be in (0, 1], got {share}")));
            }
        }
        for (key, v) in [("trees", self.trees), ("max-depth", self.max_depth), ("bags", self.bags)] {
            if v == Some(0) {
                return Err(invalid(&format!("model.gbt.{key}"), "must be at least 1"));
            }
        }
        if let Some(per) = &self.per
            && per != "location"
            && !STATIC.contains(&per.as_str())
        {
            return Err(invalid(
                "model.gbt.per",
                format!("must be `location` or a static attribute ({}), got `{per}`", STATIC.join(", ")),
            ));
        }
        if self.per_min_series == Some(0) {
            return Err(invalid("model.gbt.per-min-series", "must be at least 1"));
        }
        if let Some(p) = self.tweedie_power
            && !(1.0..2.0).contains(&p)
        {
            return Err(invalid("model.gbt.tweedie-power", format!("must be in [1, 2), got {p}")));
        }
        if let Some(p) = self.spread_power
            && !(0.0..=1.0).contains(&p)
        {
            return Err(invalid("model.gbt.spread-power", format!("must be in [0, 1], got {p}")));
        }
        if self.max_rows.is_some_and(|r| r < 100) {
            return Err(invalid("model.gbt.max-rows", "must be at least 100"));
        }
        Ok(())
    }

    /// `base` with the values set here.
    pub fn apply(&self, mut c: GbtConfig) -> GbtConfig {
        c.trees = self.trees.unwrap_or(c.trees);
        c.auto_trees = self.auto_trees.unwrap_or(c.auto_trees);
        c.target = self.target.unwrap_or(c.target);
        c.tweedie_power = self.tweedie_power.unwrap_or(c.tweedie_power);
        c.strategy = self.strategy.unwrap_or(c.strategy);
        c.learning_rate = self.learning_rate.unwrap_or(c.learning_rate);
        c.max_depth = self.max_depth.unwrap_or(c.max_depth);
        c.colsample = self.colsample.unwrap_or(c.colsample);
        c.subsample = self.subsample.unwrap_or(c.subsample);
        c.max_rows = self.max_rows.unwrap_or(c.max_rows);
        c.stride = self.stride.unwrap_or(c.stride);
        c.volume_weighting = self.volume_weighting.unwrap_or(c.volume_weighting);
        c.covariates = self.covariates.unwrap_or(c.covariates);
        c.anchors = self.anchors.unwrap_or(c.anchors);
        c.pooled = self.pooled.unwrap_or(c.pooled);
        c.bags = self.bags.unwrap_or(c.bags);
        c.spread_power = self.spread_power.or(c.spread_power);
        c.choose_on = self.choose_on.unwrap_or(c.choose_on);
        c
    }
}

/// A model reading a trailing window.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WindowParams {
    /// Periods averaged (default: the seasonal cycle).
    pub window: Option<usize>,
}

/// Croston's method (SBA variant).
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CrostonParams {
    /// Smoothing of demand sizes and intervals (default 0.1).
    pub alpha: Option<f64>,
}

/// Teunter–Syntetos–Babai.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TsbParams {
    /// Smoothing of demand sizes (default 0.1).
    pub alpha_demand: Option<f64>,
    /// Smoothing of the probability of demand (default 0.1).
    pub alpha_probability: Option<f64>,
}

/// A deep model and its training; see [`NnConfig`] for what each value means.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NnParams {
    /// Encoder steps.
    pub window: Option<usize>,
    /// Periods of history training windows are cut from (beyond window + 2 × horizon).
    pub history_extra: Option<usize>,
    /// Hidden width.
    pub hidden: Option<usize>,
    /// Layers.
    pub layers: Option<usize>,
    /// Attention heads (Transformer).
    pub heads: Option<usize>,
    /// Widest static embedding.
    pub embed_max: Option<usize>,
    /// Dropout rate.
    pub dropout: Option<f64>,
    /// Most epochs.
    pub epochs: Option<usize>,
    /// Samples per optimiser step.
    pub batch_size: Option<usize>,
    /// Windows per epoch (0: 32 per series).
    pub samples_per_epoch: Option<usize>,
    /// Peak learning rate.
    pub lr: Option<f64>,
    /// Warm-up steps.
    pub warmup_steps: Option<usize>,
    /// Largest gradient norm.
    pub clip_norm: Option<f64>,
    /// Early-stopping patience in epochs.
    pub patience: Option<usize>,
    /// Adam weight decay.
    pub weight_decay: Option<f64>,
    /// `mse`, `poisson` or `tweedie`.
    pub point_loss: Option<PointLoss>,
    /// Power of the Tweedie deviance, in (1, 2).
    pub tweedie_power: Option<f64>,
    /// Weigh samples by series volume.
    pub volume_weighting: Option<bool>,
    /// Read the feature tables as covariates.
    pub covariates: Option<bool>,
    /// Read the seasonal anchor in the decoder.
    pub anchor: Option<bool>,
    /// With the anchor, forecast offsets from it.
    pub anchored: Option<bool>,
    /// Read covariates the training periods never saw vary at the value they held there.
    pub hold_unseen: Option<bool>,
    /// `mean`, `median` or `auto` (chosen on the validation samples).
    pub point: Option<PointChoice>,
    /// Read the yearly lags in the decoder.
    pub yearly: Option<bool>,
    /// Read each item's seasonal index pooled over its locations in the decoder.
    pub pooled: Option<bool>,
    /// Passes over the validation horizon's cut points after early stopping (0: none).
    pub catch_up: Option<usize>,
    /// Periods back at which a training window's chance of being drawn halves (0: all alike).
    pub recency_half_life: Option<usize>,
    /// Power of a series' volume in its chance of being drawn, in [0, 1].
    pub volume_sampling: Option<f64>,
    /// Half-life in epochs of the moving average of the weights (0: none).
    pub average_epochs: Option<f64>,
    /// Highest scaled target training reads (0: no cap).
    pub target_cap: Option<f64>,
    /// Networks trained from consecutive seeds and averaged.
    pub members: Option<usize>,
}

impl ModelParams {
    /// Checks ranges that the types cannot express; errors name the key.
    pub fn validate(&self) -> Result<()> {
        let unit = |key: &str, v: Option<f64>| match v {
            Some(a) if !(a > 0.0 && a <= 1.0) => Err(invalid(key, format!("must be in (0, 1], got {a}"))),
            _ => Ok(()),
        };
        unit("model.croston.alpha", self.croston.alpha)?;
        unit("model.tsb.alpha-demand", self.tsb.alpha_demand)?;
        unit("model.tsb.alpha-probability", self.tsb.alpha_probability)?;
        if self.moving_average.window == Some(0) {
            return Err(invalid("model.moving_average.window", "must be at least 1"));
        }
        for (name, p) in [("lstm", &self.lstm), ("transformer", &self.transformer)] {
            p.validate(name)?;
        }
        self.gbt.validate()?;
        self.calibration.validate()?;
        self.point.validate()?;
        for (key, v) in [("rounds", self.ensemble.rounds), ("validation-windows", self.ensemble.validation_windows)] {
            if v == Some(0) {
                return Err(invalid(&format!("model.ensemble.{key}"), "must be at least 1"));
            }
        }
        Ok(())
    }
}

impl NnParams {
    fn validate(&self, model: &str) -> Result<()> {
        let positive = [
            ("window", self.window),
            ("hidden", self.hidden),
            ("layers", self.layers),
            ("heads", self.heads),
            ("embed-max", self.embed_max),
            ("epochs", self.epochs),
            ("batch-size", self.batch_size),
            ("members", self.members),
        ];
        for (key, v) in positive {
            if v == Some(0) {
                return Err(invalid(&format!("model.{model}.{key}"), "must be at least 1"));
            }
        }
        if let Some(d) = self.dropout
            && !(0.0..1.0).contains(&d)
        {
            return Err(invalid(&format!("model.{model}.dropout"), format!("must be in [0, 1), got {d}")));
        }
        for (key, v) in [("lr", self.lr), ("clip-norm", self.clip_norm)] {
            if let Some(x) = v
                && !(x.is_finite() && x > 0.0)
            {
                return Err(invalid(&format!("model.{model}.{key}"), format!("must be positive, got {x}")));
            }
        }
        if let Some(w) = self.weight_decay
            && !(w.is_finite() && w >= 0.0)
        {
            return Err(invalid(&format!("model.{model}.weight-decay"), format!("must not be negative, got {w}")));
        }
        if let Some(p) = self.tweedie_power
            && !(p > 1.0 && p < 2.0)
        {
            return Err(invalid(&format!("model.{model}.tweedie-power"), format!("must be in (1, 2), got {p}")));
        }
        if let Some(v) = self.volume_sampling
            && !(0.0..=1.0).contains(&v)
        {
            return Err(invalid(&format!("model.{model}.volume-sampling"), format!("must be in [0, 1], got {v}")));
        }
        if let Some(a) = self.average_epochs
            && !(a.is_finite() && a >= 0.0)
        {
            return Err(invalid(&format!("model.{model}.average-epochs"), format!("must not be negative, got {a}")));
        }
        if let Some(c) = self.target_cap
            && !(c.is_finite() && (c == 0.0 || c >= 1.0))
        {
            return Err(invalid(
                &format!("model.{model}.target-cap"),
                format!("must be 0 (no cap) or at least 1, got {c}"),
            ));
        }
        Ok(())
    }

    /// `base` with the values set here.
    pub fn apply(&self, mut c: NnConfig) -> NnConfig {
        let extra = c.history.saturating_sub(c.window + 2 * c.horizon);
        c.window = self.window.unwrap_or(c.window);
        c.history = c.window + 2 * c.horizon + self.history_extra.unwrap_or(extra);
        macro_rules! set {
            ($($field:ident),*) => { $( if let Some(v) = self.$field { c.$field = v; } )* };
        }
        set!(
            hidden,
            layers,
            heads,
            embed_max,
            dropout,
            epochs,
            batch_size,
            samples_per_epoch,
            lr,
            warmup_steps,
            clip_norm,
            patience,
            weight_decay,
            point_loss,
            tweedie_power,
            volume_weighting,
            covariates,
            anchor,
            anchored,
            hold_unseen,
            point,
            yearly,
            pooled,
            catch_up,
            recency_half_life,
            volume_sampling,
            average_epochs,
            target_cap,
            members
        );
        if self.window.is_some() && self.anchor.is_none() {
            c.anchor = super::nn::train::anchor_by_default(c.season, c.window);
        }
        c
    }
}

fn invalid(key: &str, message: impl Into<String>) -> Error {
    Error::InvalidSetting { key: key.to_string(), message: message.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::period::Frequency;

    #[test]
    fn values_set_override_defaults_and_others_stay() {
        let p: ModelParams =
            toml::from_str("[lstm]\nhidden = 8\npoint-loss = \"poisson\"\nwindow = 21\nanchor = false\n").unwrap();
        let base = NnConfig::new(Frequency::Daily, 28);
        let c = p.lstm.apply(base.clone());
        assert_eq!((c.hidden, c.window, c.point_loss, c.anchor), (8, 21, PointLoss::Poisson, false));
        assert!(!base.anchor, "a daily window of eight weeks spans more than a weekly season: no anchor");
        let on: ModelParams = toml::from_str("[transformer]\nanchor = true\n").unwrap();
        assert!(on.transformer.apply(base.clone()).anchor);
        // A weekly window of a year reads it unless told not to; a window longer than the season
        // set in settings does not.
        let weekly = NnConfig::new(Frequency::Weekly, 13);
        assert!(weekly.anchor);
        let off: ModelParams = toml::from_str("[lstm]\nanchor = false\n").unwrap();
        assert!(!off.lstm.apply(weekly.clone()).anchor);
        let long: ModelParams = toml::from_str("[lstm]\nwindow = 78\n").unwrap();
        assert!(!long.lstm.apply(weekly.clone()).anchor);
        let forced: ModelParams = toml::from_str("[lstm]\nwindow = 78\nanchor = true\n").unwrap();
        assert!(forced.lstm.apply(weekly.clone()).anchor);
        // Outputs anchored on it unless told not to.
        assert!(weekly.anchored);
        let free: ModelParams = toml::from_str("[lstm]\nanchored = false\n").unwrap();
        assert!(!free.lstm.apply(weekly.clone()).anchored);
        // Covariates training never saw vary are held unless told not to.
        assert!(weekly.hold_unseen);
        let fed: ModelParams = toml::from_str("[transformer]\nhold-unseen = false\n").unwrap();
        assert!(!fed.transformer.apply(weekly.clone()).hold_unseen);
        // The point forecast is chosen on validation unless set.
        assert_eq!(weekly.point, PointChoice::Auto);
        let median: ModelParams = toml::from_str("[lstm]\npoint = \"median\"\n").unwrap();
        assert_eq!(median.lstm.apply(weekly.clone()).point, PointChoice::Median);
        assert!(toml::from_str::<ModelParams>("[lstm]\npoint = \"mode\"\n").is_err());
        assert_eq!(c.epochs, base.epochs);
        // The history beyond the training window keeps its length when the window changes.
        assert_eq!(c.history - c.window, base.history - base.window);
        assert_eq!(p.transformer.apply(base.clone()), base);
        // One catch-up pass unless told otherwise.
        let none: ModelParams = toml::from_str("[lstm]\ncatch-up = 0\n").unwrap();
        assert_eq!((base.catch_up, none.lstm.apply(base.clone()).catch_up), (1, 0));
        // The ensemble weighs its members' medians unless told not to.
        let e = EnsembleConfig::new(28, 7);
        assert!(e.medians);
        let means: ModelParams = toml::from_str(
            "[ensemble]
medians = false
by-class = false
",
        )
        .unwrap();
        let c = means.ensemble.apply(e);
        assert!(!c.medians && !c.by_class && c.rounds == 40);
    }

    #[test]
    fn unknown_keys_and_bad_ranges_are_refused() {
        let err = toml::from_str::<ModelParams>("[lstm]\nhiden = 8\n").unwrap_err().to_string();
        assert!(err.contains("hiden"), "{err}");
        let err = toml::from_str::<ModelParams>("[gbm]\ndepth = 3\n").unwrap_err().to_string();
        assert!(err.contains("gbm"), "{err}");
        let p: ModelParams = toml::from_str("[tsb]\nalpha-demand = 1.5\n").unwrap();
        assert!(p.validate().unwrap_err().to_string().contains("model.tsb.alpha-demand"));
        let p: ModelParams = toml::from_str("[transformer]\ndropout = 1.0\n").unwrap();
        assert!(p.validate().unwrap_err().to_string().contains("model.transformer.dropout"));
        let p: ModelParams = toml::from_str("[calibration]\nmodels = [\"ets\", \"gbt\"]\n").unwrap();
        let err = p.validate().unwrap_err().to_string();
        assert!(err.contains("model.calibration.models") && err.contains("`gbt`"), "{err}");
        let p: ModelParams = toml::from_str("[gbt]\ntweedie-power = 2.0\n").unwrap();
        assert!(p.validate().unwrap_err().to_string().contains("model.gbt.tweedie-power"));
        // A deep model's Tweedie power is read with its loss and refused outside (1, 2).
        let p: ModelParams = toml::from_str("[lstm]\npoint-loss = \"tweedie\"\ntweedie-power = 1.3\n").unwrap();
        p.validate().unwrap();
        let c = p.lstm.apply(NnConfig::fast(7));
        assert_eq!((c.point_loss, c.tweedie_power), (PointLoss::Tweedie, 1.3));
        let p: ModelParams = toml::from_str("[transformer]\ntweedie-power = 1.0\n").unwrap();
        assert!(p.validate().unwrap_err().to_string().contains("model.transformer.tweedie-power"));
        for bad in ["colsample = 0.0", "subsample = 1.5"] {
            let p: ModelParams = toml::from_str(&format!("[gbt]\n{bad}\n")).unwrap();
            let err = p.validate().unwrap_err().to_string();
            assert!(err.contains(&format!("model.gbt.{}", &bad[..9])) && err.contains("(0, 1]"), "{err}");
        }
        let p: ModelParams =
            toml::from_str("[gbt]\ncolsample = 0.5\nsubsample = 0.7\nanchors = false\npooled = false\nbags = 5\n")
                .unwrap();
        p.validate().unwrap();
        let c = p.gbt.apply(GbtConfig::new(7, 7));
        assert_eq!((c.colsample, c.subsample, c.anchors, c.pooled, c.bags), (0.5, 0.7, false, false, 5));
        assert!(GbtConfig::new(7, 7).anchors && GbtConfig::new(7, 7).pooled);
        let p: ModelParams = toml::from_str("[gbt]\nbags = 0\n").unwrap();
        assert!(p.validate().unwrap_err().to_string().contains("model.gbt.bags"));
        let p: ModelParams = toml::from_str("[gbt]\nspread-power = 1.5\n").unwrap();
        assert!(p.validate().unwrap_err().to_string().contains("model.gbt.spread-power"));
        let p: ModelParams = toml::from_str("[gbt]\nspread-power = 0.5\n").unwrap();
        assert_eq!(p.gbt.apply(GbtConfig::new(7, 7)).spread_power, Some(0.5));
        let p: ModelParams = toml::from_str("[gbt]\nchoose-on = \"volume\"\n").unwrap();
        assert_eq!(p.gbt.apply(GbtConfig::new(7, 7)).choose_on, ChooseOn::Volume);
        assert_eq!(GbtConfig::new(7, 7).choose_on, ChooseOn::Series);
        assert!(toml::from_str::<ModelParams>("[gbt]\nchoose-on = \"units\"\n").is_err());
        assert_eq!(GbtConfig::new(7, 7).spread_power, None, "chosen on the held-out periods by default");
        let p: ModelParams = toml::from_str("[lstm]\nvolume-sampling = 1.5\n").unwrap();
        assert!(p.validate().unwrap_err().to_string().contains("model.lstm.volume-sampling"));
        let p: ModelParams = toml::from_str("[transformer]\naverage-epochs = -1.0\n").unwrap();
        assert!(p.validate().unwrap_err().to_string().contains("model.transformer.average-epochs"));
        let p: ModelParams =
            toml::from_str("[lstm]\nrecency-half-life = 52\nvolume-sampling = 0.5\naverage-epochs = 1.0\n").unwrap();
        p.validate().unwrap();
        let c = p.lstm.apply(NnConfig::new(Frequency::Weekly, 13));
        assert_eq!((c.recency_half_life, c.volume_sampling, c.average_epochs), (52, 0.5, 1.0));
        let p: ModelParams = toml::from_str("[lstm]\nmembers = 0\n").unwrap();
        assert!(p.validate().unwrap_err().to_string().contains("model.lstm.members"));
        let p: ModelParams = toml::from_str("[transformer]\nmembers = 3\n").unwrap();
        let base = NnConfig::new(Frequency::Weekly, 13);
        assert_eq!((base.members, p.transformer.apply(base).members), (1, 3));
        let p: ModelParams = toml::from_str("[gbt]\nper = \"store\"\n").unwrap();
        let err = p.validate().unwrap_err().to_string();
        assert!(err.contains("model.gbt.per") && err.contains("`store`"), "{err}");
        let p: ModelParams =
            toml::from_str("[gbt]\nper = \"category\"\nper-min-series = 20\ntarget = \"poisson\"\n").unwrap();
        p.validate().unwrap();
        assert_eq!(p.gbt.levels().unwrap(), Levels { per: "category".into(), min_series: 20, from_series: 0 });
        assert_eq!(p.gbt.apply(GbtConfig::new(7, 7)).target, Target::Poisson);
    }

    #[test]
    fn the_seasonal_baselines_and_the_deep_models_are_calibrated_unless_the_list_says_otherwise() {
        let default = ModelParams::default();
        assert!(default.calibration.calibrates("ets") && !default.calibration.calibrates("tsb"));
        assert!(default.calibration.calibrates("lstm") && default.calibration.calibrates("transformer"));
        let p: ModelParams = toml::from_str("[calibration]\nmodels = [\"tsb\"]\n").unwrap();
        assert!(p.calibration.calibrates("tsb") && !p.calibration.calibrates("ets"));
        let none: ModelParams = toml::from_str("[calibration]\nmodels = []\n").unwrap();
        assert!(CALIBRATABLE.iter().all(|m| !none.calibration.calibrates(m)));
    }

    #[test]
    fn the_baselines_whose_median_can_differ_choose_their_point_unless_the_list_says_otherwise() {
        let default = ModelParams::default();
        assert!(default.point.chooses("tsb") && default.point.chooses("seasonal_naive"));
        assert!(!default.point.chooses("ets") && !default.point.chooses("lstm"));
        let p: ModelParams = toml::from_str("[point]\nmodels = [\"croston\"]\n").unwrap();
        assert!(p.validate().is_ok() && p.point.chooses("croston") && !p.point.chooses("tsb"));
        let p: ModelParams = toml::from_str("[point]\nmodels = [\"tsb\", \"ets\"]\n").unwrap();
        let err = p.validate().unwrap_err().to_string();
        assert!(err.contains("model.point.models") && err.contains("`ets`"), "{err}");
    }
}
