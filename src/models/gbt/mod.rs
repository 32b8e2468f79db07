//! A global gradient-boosted-trees model: one tree ensemble learnt over every series, forecasting
//! each step ahead directly from lags, trailing means, seasonal and yearly lags, the calendar,
//! known-future covariates and categorical attributes (the approach of the M5 winners).
//!
//! Training rows are (series, origin, step) triples over the recent history, most recent origins
//! first, up to `max-rows`. The target is the value at origin + step divided by the series' scale
//! at the origin (see [`features`]); squared loss, optionally weighted by the scale so large series
//! count for their volume. The trees learn that ratio as it is or its logarithm (`log(1 + ratio)`,
//! a multiplicative model whose forecast leans to the typical value rather than the mean, which
//! suits counts with spikes and many zeros), or both, averaging their forecasts (`blend`); with
//! `target = "auto"` the single target with the lower error on the held-out periods is kept, or the
//! blend when it beats that by 1% (it costs a second ensemble), and the card says which and by how
//! much. Trees come from the `forust-ml` crate (histogram gradient boosting,
//! depth-wise trees); categorical attributes enter as their codes.
//!
//! Quantiles are conformal: the model is first fitted without the last `horizon` periods, its
//! scaled errors on those periods give the error quantiles per step ahead, then it is refitted on
//! everything. A quantile forecast is the mean forecast plus the scale times the error quantile.

pub mod features;
pub mod levels;
pub mod paths;
pub mod spread;
pub mod tweedie;

use chrono::NaiveDate;
use forust_ml::metric::Metric;
use forust_ml::objective::ObjectiveType;
use forust_ml::sampler::SampleMethod;
use forust_ml::{GradientBooster, Matrix};
use serde::{Deserialize, Serialize};
use tracing::{debug, info_span};

use self::features::{Categories, Layout, Origin};
pub use self::paths::Strategy;
use self::paths::{Origins, Trees};
use self::spread::{Sample, Spread};
use super::baseline::quantile_sorted;
use super::pooled::PooledIndex;
use super::{FitReport, Forecast, Forecaster, Warm};
use crate::error::{Error, Result};
use crate::panel::Panel;

/// Scaled targets are clipped to this range: a spike of hundreds of times a series' usual level
/// (a tiny series' one big order) would otherwise pull a whole leaf, and every large series in it,
/// to absurd values.
const TARGET_RANGE: (f64, f64) = (-2.0, 10.0);

/// Least relative gain in held-out error over the better single target for `auto` to keep the
/// blend, which costs a second tree ensemble.
const BLEND_GAIN: f64 = 0.01;

/// The Tweedie power by default: LightGBM's default, between Poisson (1) and gamma (2).
pub const TWEEDIE_POWER: f64 = 1.5;

fn tweedie_power() -> f64 {
    TWEEDIE_POWER
}

/// What a warm start of the trees does (the lineage's words).
pub const WARM_REFIT: &str = "refitted with the target, strategy and covariate choice carried";

/// Trees grown past the last fall of the held-out loss (squared error, or the Tweedie deviance)
/// before a fit that chooses its tree count stops (the count is then chosen, in steps of 10, among
/// the trees grown).
const STOP_AFTER: usize = 50;

/// The share of the columns each tree splits on by default. Measured on the held-out periods
/// (the last horizon before each cutoff, inside the training data) of the Walmart and demo
/// backtests, half the columns tied with all of them (weighted errors summed over the windows
/// within 0.2%, one a little lower, one a little higher), and the fits took 30 to 40% less time.
const COLSAMPLE: f64 = 0.5;

/// Tree ensembles averaged by default (see [`GbtConfig::bags`]). On the held-out periods of the
/// Walmart and demo backtests (the last horizon before each cutoff, inside the training data;
/// the tree count chosen for one ensemble), three bags lowered the weighted error at every
/// window (Walmart 0.1189 → 0.1182, 0.0966 → 0.0961, 0.0801 → 0.0793; the demo's four windows
/// 0.18 to 0.38% lower), for two more held-out fits and two more final fits.
const BAGS: usize = 3;

/// How far apart the seeds of the bags are.
const BAG_SEED_STEP: u64 = 0x9E37_79B9_7F4A_7C15;

/// Least total weight (rows, weights averaging 1) in a leaf.
const MIN_LEAF_WEIGHT: f32 = 20.0;

/// How the held-out periods weigh each series when they choose between fits (the target, the
/// anchors, the items' growth, the user's covariates, the tree count, the strategy).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ChooseOn {
    /// By its volume: the absolute errors in units, as WAPE and the training loss count them
    /// (models saved before the setting existed chose so).
    #[default]
    Volume,
    /// Every series alike: the absolute errors scaled by each series' level, as MASE (the metric
    /// champions are chosen on) counts them.
    Series,
}

impl ChooseOn {
    /// The weight of a held-out row whose training weight is `volume` (its series' scale, or 1
    /// without `volume-weighting`).
    fn weight(self, volume: f64) -> f64 {
        match self {
            ChooseOn::Volume => volume,
            ChooseOn::Series => 1.0,
        }
    }
}

/// What the trees learn to predict from the series' scaled value (the ratio of the value to the
/// series' scale at the origin).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// The ratio, the logarithm or the Tweedie mean, whichever has the lowest error on the
    /// held-out periods, or the blend of the ratio and the logarithm when its error there is lower
    /// still by 1% (`BLEND_GAIN`).
    #[default]
    Auto,
    /// The ratio itself: the forecast estimates the mean.
    Ratio,
    /// `ln(1 + ratio)` (negative ratios count as 0): the forecast, `exp(prediction) - 1`, leans to
    /// the typical value, and spikes weigh less.
    Log,
    /// Both fitted, their forecasts averaged: the mean between the mean and the typical value.
    Blend,
    /// The ratio (negative ratios count as 0) under the Tweedie deviance with a log link, of power
    /// `tweedie-power` (see [`tweedie`]): a count objective whose forecast, `exp(prediction)`, is
    /// the mean.
    Tweedie,
    /// The same with power 1, the Poisson deviance.
    Poisson,
}

impl Target {
    /// What the trees are fitted to for a scaled value.
    fn forward(self, ratio: f64) -> f64 {
        match self {
            Target::Log => ratio.max(0.0).ln_1p(),
            Target::Tweedie | Target::Poisson => ratio.max(0.0),
            Target::Auto | Target::Ratio | Target::Blend => ratio,
        }
    }

    /// The scaled value a prediction of the trees stands for.
    fn back(self, predicted: f64) -> f64 {
        match self {
            Target::Log => predicted.exp_m1(),
            Target::Tweedie | Target::Poisson => tweedie::mean(predicted),
            Target::Auto | Target::Ratio | Target::Blend => predicted,
        }
    }

    /// The tree ensembles fitted for this target, each learning one transform.
    fn parts(self) -> &'static [Target] {
        match self {
            Target::Log => &[Target::Log],
            Target::Tweedie => &[Target::Tweedie],
            Target::Poisson => &[Target::Poisson],
            Target::Blend => &[Target::Ratio, Target::Log],
            Target::Auto | Target::Ratio => &[Target::Ratio],
        }
    }

    fn name(self) -> &'static str {
        match self {
            Target::Auto => "auto",
            Target::Ratio => "ratio",
            Target::Log => "log",
            Target::Blend => "blend",
            Target::Tweedie => "tweedie",
            Target::Poisson => "poisson",
        }
    }
}

/// Hyperparameters of the trees model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GbtConfig {
    /// Steps ahead trained for (the longest horizon forecast; longer ones reuse the last step).
    pub horizon: usize,
    /// Short seasonal cycle in periods.
    pub season: usize,
    /// Trees (the most, with `auto-trees`).
    pub trees: usize,
    /// Chooses the number of trees, up to `trees`, by the error on the held-out periods (in
    /// steps of 10); the final fit on everything uses that many.
    #[serde(default)]
    pub auto_trees: bool,
    /// What the trees learn: the scaled value or its logarithm, or the better of the two on the
    /// held-out periods.
    #[serde(default)]
    pub target: Target,
    /// The power of the Tweedie deviance (in `[1, 2)`), with the `tweedie` target.
    #[serde(default = "tweedie_power")]
    pub tweedie_power: f64,
    /// How the steps ahead are forecast: directly (the default), recursively, their average, or
    /// whichever of the three has the lowest error on the held-out periods.
    #[serde(default)]
    pub strategy: Strategy,
    /// Shrinkage of each tree.
    pub learning_rate: f32,
    /// Depth of each tree.
    pub max_depth: usize,
    /// Share of the columns each tree may split on, drawn per tree (1: every column; models
    /// stored before the setting existed read every column).
    #[serde(default = "whole")]
    pub colsample: f64,
    /// Share of the training rows each tree is grown on, drawn per tree (1: every row).
    #[serde(default = "whole")]
    pub subsample: f64,
    /// Most training rows (series × origins × steps); the most recent origins are kept.
    pub max_rows: usize,
    /// Origins are taken every `stride` periods (0: chosen so the rows fit `max-rows`).
    pub stride: usize,
    /// Weighs rows by the series' scale (volume), which favours accuracy on large series.
    pub volume_weighting: bool,
    /// Reads known-future covariates and static attributes when the panel has them.
    pub covariates: bool,
    /// Reads the yearly anchors: the year-ago value of the target period carried to the current
    /// level (by the year's growth, and by the recent level's change). False in configurations
    /// saved before they existed, whose models do not read them.
    #[serde(default)]
    pub anchors: bool,
    /// Reads, with the anchors, each item's seasonal index pooled over its locations
    /// ([`PooledIndex`]); chosen with them on the held-out periods. False in
    /// configurations saved before it existed.
    #[serde(default)]
    pub pooled: bool,
    /// Tree ensembles fitted per part of the target, each with its own seed (the columns and
    /// rows each tree samples differ), their forecasts averaged: on every row for the forecast,
    /// and on the held-out split for the strategy and the quantiles' errors (1: one; models
    /// stored before the setting existed have one).
    #[serde(default = "one")]
    pub bags: usize,
    /// How the held-out periods weigh the series when they choose between fits.
    #[serde(default)]
    pub choose_on: ChooseOn,
    /// The power of each series' noise its held-out errors are divided by, in `[0, 1]`, for
    /// intervals that follow each series' own noise (0: the scale alone, as models stored
    /// before the setting existed); `None` chooses it on the held-out periods (see [`spread`]).
    #[serde(default)]
    pub spread_power: Option<f64>,
    /// Seed of the trees' sampling.
    pub seed: u64,
    /// Worker threads.
    pub threads: usize,
}

impl GbtConfig {
    /// Defaults for a horizon and season.
    pub fn new(horizon: usize, season: usize) -> Self {
        Self {
            horizon: horizon.max(1),
            season: season.max(1),
            trees: 300,
            auto_trees: true,
            target: Target::Auto,
            tweedie_power: TWEEDIE_POWER,
            strategy: Strategy::Direct,
            learning_rate: 0.1,
            max_depth: 6,
            colsample: COLSAMPLE,
            subsample: 1.0,
            max_rows: 1_000_000,
            stride: 0,
            volume_weighting: true,
            covariates: true,
            anchors: true,
            pooled: true,
            bags: BAGS,
            choose_on: ChooseOn::Series,
            spread_power: None,
            seed: 42,
            threads: 1,
        }
    }
}

/// The trees model.
#[derive(Debug, Serialize, Deserialize)]
pub struct Gbt {
    config: GbtConfig,
    #[serde(skip)]
    fitted: Option<Fitted>,
}

/// What fitting learnt.
#[derive(Serialize, Deserialize)]
struct Fitted {
    layout: Layout,
    vocab: Vec<Vec<String>>,
    /// The booster as `forust-ml` writes it (JSON); with the `blend` target, the ratio's.
    booster: String,
    /// With the `blend` target, the logarithm's booster.
    #[serde(default)]
    log_booster: Option<String>,
    /// Sorted scaled errors per step ahead, from the held-out periods, each divided by its
    /// series' noise as `spread` says.
    errors: Vec<Vec<f32>>,
    /// How the errors were normalised (models saved before it existed: by the scale alone).
    #[serde(default)]
    spread: Spread,
    /// Whether the user's covariates were kept, with the held-out errors that decided it.
    #[serde(default)]
    selection: Option<serde_json::Value>,
    /// Whether the yearly anchors were kept, with the held-out errors that decided it.
    #[serde(default)]
    anchors: Option<serde_json::Value>,
    /// The number of trees chosen on the held-out periods and their error there.
    #[serde(default)]
    trees: Option<serde_json::Value>,
    /// What the trees predict (never `Auto` once fitted; models saved before the choice existed
    /// predicted the ratio).
    #[serde(default = "ratio")]
    target: Target,
    /// The held-out errors that chose the target, when it was chosen.
    #[serde(default)]
    target_choice: Option<serde_json::Value>,
    /// How the steps ahead are forecast (never `Auto` once fitted; models saved before the choice
    /// existed forecast directly).
    #[serde(default = "direct")]
    strategy: Strategy,
    /// The held-out errors that chose the strategy, when it was chosen.
    #[serde(default)]
    strategy_choice: Option<serde_json::Value>,
    /// Whether the target, strategy and covariate choices above were carried from the version
    /// this one refitted from (a warm start) rather than made on this fit's data.
    #[serde(default)]
    carried: bool,
    /// Trees per part of the target, as the held-out periods chose them.
    #[serde(default)]
    tree_counts: Vec<usize>,
    /// The last period of the panel whose held-out periods gave the tree count and the errors
    /// above (older than this fit's when a warm refit carried them).
    #[serde(default)]
    held_out_end: Option<NaiveDate>,
    /// The further bags' boosters (see [`GbtConfig::bags`]), bag by bag, each the target's parts
    /// in order.
    #[serde(default)]
    bags: Vec<String>,
    #[serde(skip)]
    model: Option<GradientBooster>,
    #[serde(skip)]
    log_model: Option<GradientBooster>,
    #[serde(skip)]
    bag_models: Vec<GradientBooster>,
}

fn whole() -> f64 {
    1.0
}

fn one() -> usize {
    1
}

fn ratio() -> Target {
    Target::Ratio
}

fn direct() -> Strategy {
    Strategy::Direct
}

impl std::fmt::Debug for Fitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fitted").field("layout", &self.layout).field("errors", &self.errors.len()).finish()
    }
}

impl Gbt {
    /// An unfitted model.
    pub fn new(config: GbtConfig) -> Self {
        Self { config, fitted: None }
    }
}

/// Training rows in column-major order with their targets and weights.
struct Rows {
    data: Vec<f64>,
    width: usize,
    target: Vec<f64>,
    weight: Vec<f64>,
    /// Series, origin and step of each row (for the held-out errors).
    index: Vec<(usize, usize, usize)>,
}

impl Rows {
    fn len(&self) -> usize {
        self.target.len()
    }

    /// Column-major matrix of the rows `keep` selects.
    fn matrix(&self, keep: &[usize]) -> Vec<f64> {
        let mut out = Vec::with_capacity(keep.len() * self.width);
        for c in 0..self.width {
            out.extend(keep.iter().map(|&r| self.data[r * self.width + c]));
        }
        out
    }
}

impl Gbt {
    /// The (series, origin) pairs trained on: origins every `stride` periods back from the last one
    /// whose step `horizon` is still observed (`last`), per series, while rows fit `max_rows`.
    fn rows(&self, panel: &Panel, layout: &Layout, cats: &Categories) -> Rows {
        let h_max = self.config.horizon;
        let min_history = min_history(layout, panel, h_max);
        debug!(min_history, season = layout.season, "gbt: the history a training origin needs");
        let usable: usize = panel.values.iter().map(|y| y.len().saturating_sub(min_history + 1)).sum();
        let stride = if self.config.stride > 0 {
            self.config.stride
        } else {
            (usable * h_max).div_ceil(self.config.max_rows.max(1)).max(1)
        };
        let width = layout.width();
        let mut rows = Rows { data: Vec::new(), width, target: Vec::new(), weight: Vec::new(), index: Vec::new() };
        let per_series = self.config.max_rows / (panel.len().max(1) * h_max) + 1;
        let mut row = Vec::with_capacity(width);
        for (s, y) in panel.values.iter().enumerate() {
            let n = y.len();
            if n < min_history + 2 {
                continue;
            }
            // Origins from the end back, so the most recent history is always in.
            let mut o = n - 2;
            let mut taken = 0;
            while o >= min_history && taken < per_series {
                let sc = features::scale(y, o, layout.scale_window);
                for h in 1..=h_max.min(n - 1 - o) {
                    features::row(layout, panel, cats, y, Origin::observed(s, n, o), h, sc, &mut row);
                    rows.data.extend_from_slice(&row);
                    rows.target.push((f64::from(y[o + h]) / sc).clamp(TARGET_RANGE.0, TARGET_RANGE.1));
                    rows.weight.push(if self.config.volume_weighting { sc } else { 1.0 });
                    rows.index.push((s, o, h));
                }
                taken += 1;
                if o < stride {
                    break;
                }
                o -= stride;
            }
        }
        rows
    }

    /// The panel as the model reads it: without its covariates when they are turned off.
    fn view<'a>(&self, panel: &'a Panel) -> std::borrow::Cow<'a, Panel> {
        if self.config.covariates {
            std::borrow::Cow::Borrowed(panel)
        } else {
            std::borrow::Cow::Owned(Panel { covariates: None, ..panel.clone() })
        }
    }

    /// An untrained booster of `trees` trees; bag `bag` draws from its own seed.
    fn booster(&self, trees: usize, bag: usize) -> GradientBooster {
        GradientBooster::default()
            .set_objective_type(ObjectiveType::SquaredLoss)
            .set_iterations(trees)
            .set_learning_rate(self.config.learning_rate)
            .set_max_depth(self.config.max_depth)
            .set_min_leaf_weight(MIN_LEAF_WEIGHT)
            .set_colsample_bytree(self.config.colsample)
            .set_subsample(self.config.subsample as f32)
            .set_sample_method(if self.config.subsample < 1.0 { SampleMethod::Random } else { SampleMethod::None })
            .set_initialize_base_score(true)
            .set_parallel(self.config.threads != 1)
            .set_num_threads((self.config.threads > 1).then_some(self.config.threads))
            .set_seed(self.config.seed.wrapping_add(BAG_SEED_STEP.wrapping_mul(bag as u64)))
    }

    /// A model trained on `train` and scored on the rows `calib`: the weighted mean absolute
    /// scaled error, the predictions and the number of trees they use (with `auto-trees`, the
    /// count, in steps of 10, whose error is lowest; otherwise all).
    /// With the `blend` target, both parts are fitted and their predictions averaged.
    fn held_out(&self, rows: &Rows, train: &[usize], calib: &[usize], target: Target) -> Result<HeldOut> {
        if target == Target::Blend {
            let ratio = self.held_out(rows, train, calib, Target::Ratio)?;
            let log = self.held_out(rows, train, calib, Target::Log)?;
            return Ok(HeldOut::blend(rows, calib, ratio, log, self.config.choose_on));
        }
        let data = rows.matrix(calib);
        let matrix = Matrix::new(&data, calib.len(), rows.width);
        // Choosing the count, the trees stop growing once the held-out loss has not improved for
        // [`STOP_AFTER`] trees: the count chosen below is rarely past that point, and the trees
        // after it cost most of the fit (on Walmart the count chosen was 60 to 90 of 300).
        let watch = self.config.auto_trees.then_some((data.as_slice(), calib));
        let mut model = self.train_watching(rows, train, self.config.trees, target, watch, 0)?;
        let error = |predicted: &[f64]| held_out_error(rows, calib, predicted, self.config.choose_on);
        if !self.config.auto_trees {
            let predicted: Vec<f64> =
                model.predict(&matrix, self.config.threads != 1).into_iter().map(|p| target.back(p)).collect();
            let trees = vec![model.trees.len()];
            return Ok(HeldOut {
                error: error(&predicted),
                predicted,
                grown: trees.clone(),
                trees,
                models: vec![(model, target)],
            });
        }
        let mut raw = vec![model.base_score; calib.len()];
        let mut predicted = vec![target.back(model.base_score); calib.len()];
        let (mut best_error, mut best_predicted, mut best_trees) = (f64::INFINITY, Vec::new(), 0);
        let n = model.trees.len();
        for (i, tree) in model.trees.iter().enumerate() {
            for (p, v) in raw.iter_mut().zip(tree.predict(&matrix, self.config.threads != 1, &model.missing)) {
                *p += v;
            }
            for (p, r) in predicted.iter_mut().zip(&raw) {
                *p = target.back(*r);
            }
            if (i + 1) % 10 == 0 || i + 1 == n {
                let e = error(&predicted);
                if e < best_error {
                    (best_error, best_predicted, best_trees) = (e, predicted.clone(), i + 1);
                }
            }
        }
        if best_trees == 0 {
            (best_error, best_predicted, best_trees) = (error(&predicted), predicted, n.max(1));
        }
        debug!(
            target = target.name(),
            trees = best_trees,
            most = n,
            error = best_error,
            "gbt: the tree count on the held-out periods"
        );
        // The held-out trees as the count chose them, for the strategy's choice.
        model.trees.truncate(best_trees);
        Ok(HeldOut {
            error: best_error,
            predicted: best_predicted,
            trees: vec![best_trees],
            grown: vec![n],
            models: vec![(model, target)],
        })
    }

    /// The bags after the first: for each further seed, each part of the target (its tree count
    /// and target) fitted on the rows `keep`, bag by bag.
    fn further_bags(
        &self,
        rows: &Rows,
        keep: &[usize],
        parts: &[(usize, Target)],
    ) -> Result<Vec<(GradientBooster, Target)>> {
        let mut bags = Vec::new();
        for bag in 1..self.config.bags.max(1) {
            for &(count, target) in parts {
                bags.push((self.train(rows, keep, count, target, bag)?, target));
            }
        }
        Ok(bags)
    }

    /// The held-out fit averaged over the configured bags, as the final fit averages them: each
    /// further bag is fitted without the held-out periods with the tree counts chosen and its
    /// own seed, so the strategy is chosen on, and the quantiles' errors come from, the forecast
    /// the bags make together (one bag's errors are wider than their average's). With one bag,
    /// the fit as it is.
    fn bagged(&self, rows: &Rows, train: &[usize], calib: &[usize], mut held_out: HeldOut) -> Result<HeldOut> {
        let bags = self.config.bags.max(1);
        if bags == 1 {
            return Ok(held_out);
        }
        let data = rows.matrix(calib);
        let matrix = Matrix::new(&data, calib.len(), rows.width);
        let parts: Vec<(usize, Target)> =
            held_out.trees.iter().zip(&held_out.models).map(|(&count, (_, target))| (count, *target)).collect();
        let share = 1.0 / (parts.len() * bags) as f64;
        let mut predicted: Vec<f64> = held_out.predicted.iter().map(|p| p / bags as f64).collect();
        for (model, target) in self.further_bags(rows, train, &parts)? {
            for (p, raw) in predicted.iter_mut().zip(model.predict(&matrix, self.config.threads != 1)) {
                *p += share * target.back(raw);
            }
            held_out.models.push((model, target));
        }
        let error = held_out_error(rows, calib, &predicted, self.config.choose_on);
        debug!(bags, one = held_out.error, bagged = error, "gbt: the bags on the held-out periods");
        held_out.error = error;
        held_out.predicted = predicted;
        Ok(held_out)
    }

    /// The target with the lowest error on the held-out periods (`auto`): the ratio, the
    /// logarithm and the Tweedie target are fitted, the blend averages the first two, and the
    /// blend is kept only when it beats the best single target by [`BLEND_GAIN`] (it fits two
    /// tree ensembles). Returns the target, its held-out fit and the card's record of the choice.
    fn choose_target(
        &self,
        rows: &Rows,
        train: &[usize],
        calib: &[usize],
    ) -> Result<(Target, HeldOut, Option<serde_json::Value>)> {
        let ratio = self.held_out(rows, train, calib, Target::Ratio)?;
        let log = self.held_out(rows, train, calib, Target::Log)?;
        let count = self.held_out(rows, train, calib, Target::Tweedie)?;
        let b = held_out_error(rows, calib, &blended(&ratio.predicted, &log.predicted), self.config.choose_on);
        let (r, l, t) = (ratio.error, log.error, count.error);
        debug!(ratio = r, log = l, tweedie = t, blend = b, "gbt: the targets on the held-out periods");
        let choice = Some(serde_json::json!({
            "rule": "lowest held-out error; the blend only when it beats the best single target by 1%",
            "held_out_mae_ratio": r,
            "held_out_mae_log": l,
            "held_out_mae_tweedie": t,
            "held_out_mae_blend": b,
            "tweedie_power": self.config.tweedie_power,
        }));
        Ok(if b < (1.0 - BLEND_GAIN) * r.min(l).min(t) {
            (Target::Blend, HeldOut::blend(rows, calib, ratio, log, self.config.choose_on), choice)
        } else if t < r.min(l) {
            (Target::Tweedie, count, choice)
        } else if l < r {
            (Target::Log, log, choice)
        } else {
            (Target::Ratio, ratio, choice)
        })
    }

    fn train(&self, rows: &Rows, keep: &[usize], trees: usize, target: Target, bag: usize) -> Result<GradientBooster> {
        self.train_watching(rows, keep, trees, target, None, bag)
    }

    /// [`Gbt::train`], stopping early when `watch`'s rows (their column-major matrix and
    /// indices) have not seen their weighted loss (squared error, or the Tweedie deviance) fall
    /// for [`STOP_AFTER`] trees. The booster keeps every tree grown and predicts with all of them.
    fn train_watching(
        &self,
        rows: &Rows,
        keep: &[usize],
        trees: usize,
        target: Target,
        watch: Option<(&[f64], &[usize])>,
        bag: usize,
    ) -> Result<GradientBooster> {
        let target_kind = target;
        let data = rows.matrix(keep);
        let target: Vec<f64> = keep.iter().map(|&r| target.forward(rows.target[r])).collect();
        // Weights averaging 1, so the least leaf weight counts rows.
        let total: f64 = keep.iter().map(|&r| rows.weight[r]).sum();
        let norm = keep.len() as f64 / total.max(f64::MIN_POSITIVE);
        let weight: Vec<f64> = keep.iter().map(|&r| rows.weight[r] * norm).collect();
        let matrix = Matrix::new(&data, keep.len(), rows.width);
        let mut booster = self.booster(trees, bag);
        let watched = watch.map(|(data, at)| {
            let y: Vec<f64> = at.iter().map(|&r| target_kind.forward(rows.target[r])).collect();
            let w: Vec<f64> = at.iter().map(|&r| rows.weight[r]).collect();
            (Matrix::new(data, at.len(), rows.width), y, w)
        });
        let tweedie = |booster: GradientBooster, power: f64| {
            let watch =
                watched.as_ref().map(|(data, y, weight)| tweedie::Watch { data, y, weight, stop_after: STOP_AFTER });
            tweedie::fit(booster, &matrix, &target, &weight, power, watch)
        };
        match target_kind {
            Target::Tweedie => tweedie(booster, self.config.tweedie_power),
            Target::Poisson => tweedie(booster, 1.0),
            _ => {
                let evaluation = watched.as_ref().map(|(data, y, w)| {
                    vec![(Matrix::new(data.data, data.rows, data.cols), y.as_slice(), w.as_slice())]
                });
                if evaluation.is_some() {
                    booster = booster
                        .set_evaluation_metric(Some(Metric::RootMeanSquaredError))
                        .set_early_stopping_rounds(Some(STOP_AFTER));
                }
                booster
                    .fit(&matrix, &target, &weight, evaluation)
                    .map_err(|e| Error::data(format!("gbt: fitting failed: {e}")))?;
                // Every tree grown predicts (the count is chosen on the held-out error after).
                (booster.best_iteration, booster.prediction_iteration) = (None, None);
                Ok(booster)
            }
        }
    }

    /// The strategy: the configured one, or with `auto` the one whose forecasts of the last
    /// `horizon` periods (from every origin in or just before them, by the trees fitted without
    /// them) have the lowest weighted mean absolute scaled error. A strategy other than direct
    /// also gives its scaled forecasts there, with their series' noise (changes `lag` periods
    /// apart), for its quantiles.
    fn strategy(
        &self,
        configured: Strategy,
        panel: &Panel,
        layout: &Layout,
        cats: &Categories,
        held_out: &HeldOut,
        lag: usize,
    ) -> StrategyPick {
        let unchosen = StrategyPick { strategy: configured, choice: None, samples: None };
        if configured == Strategy::Direct {
            return unchosen;
        }
        let h_max = self.config.horizon;
        let min_history = min_history(layout, panel, h_max);
        let series: Vec<usize> = (0..panel.len())
            .filter(|&s| {
                let y = &panel.values[s];
                y.len() > h_max + min_history + 1 && !recent_zero(&y[..y.len() - h_max], layout.scale_window)
            })
            .collect();
        if series.is_empty() {
            return unchosen;
        }
        let trees = held_out.trees(self.config.threads != 1);
        // Every origin whose steps fall in the held-out periods (as the direct held-out rows do),
        // each forecast to the series' end: per strategy, the weighted absolute error and the
        // scaled forecasts.
        let mut scored = vec![(0.0, 0.0, Vec::new()); Strategy::CHOICES.len()];
        for cut in 1..=h_max {
            let at = Origins { layout, panel, cats, series: &series, cut, trained: h_max };
            let direct = at.direct(&trees, cut);
            let recursive = at.recursive(&trees, cut);
            let average = paths::average(direct.clone(), &recursive);
            for (paths, (sum, weight, samples)) in [direct, recursive, average].iter().zip(scored.iter_mut()) {
                for ((&s, sc), steps) in series.iter().zip(&paths.scale).zip(&paths.steps) {
                    let y = &panel.values[s];
                    let o = y.len() - 1 - cut;
                    let w = if self.config.volume_weighting { *sc } else { 1.0 };
                    let chosen_w = self.config.choose_on.weight(w);
                    let noise = spread::noise(y, o, layout.scale_window, lag, *sc);
                    for (h, predicted) in steps.iter().enumerate() {
                        // Scaled actuals, clipped as the training targets are.
                        let actual = (f64::from(y[o + 1 + h]) / sc).clamp(TARGET_RANGE.0, TARGET_RANGE.1);
                        *sum += chosen_w * (actual - predicted).abs();
                        *weight += chosen_w;
                        samples.push(Sample {
                            step: h,
                            series: s,
                            actual: actual as f32,
                            predicted: *predicted as f32,
                            noise,
                            weight: w,
                        });
                    }
                }
            }
        }
        let mut scored: Vec<(f64, Vec<Sample>)> = scored
            .into_iter()
            .map(|(sum, weight, samples)| (sum / f64::max(weight, f64::MIN_POSITIVE), samples))
            .collect();
        let strategy = if configured == Strategy::Auto {
            let best = (0..scored.len()).min_by(|a, b| scored[*a].0.total_cmp(&scored[*b].0)).unwrap_or(0);
            Strategy::CHOICES[best]
        } else {
            configured
        };
        let of = |s: Strategy| Strategy::CHOICES.iter().position(|c| *c == s).unwrap_or(0);
        debug!(
            direct = scored[0].0,
            recursive = scored[1].0,
            average = scored[2].0,
            chosen = strategy.name(),
            "gbt: the strategies on the held-out periods"
        );
        let choice = (configured == Strategy::Auto).then(|| {
            serde_json::json!({
                "rule": "lowest held-out error, from every origin forecasting into the last horizon",
                "series": series.len(),
                "held_out_mae_direct": scored[0].0,
                "held_out_mae_recursive": scored[1].0,
                "held_out_mae_average": scored[2].0,
            })
        });
        let samples = (strategy != Strategy::Direct).then(|| std::mem::take(&mut scored[of(strategy)].1));
        StrategyPick { strategy, choice, samples }
    }

    /// Fits on `panel`, making the choices (target, user covariates, tree count, strategy) on
    /// the held-out periods, or carrying them from `parent` (a warm refit).
    fn fit_with(&mut self, panel: &Panel, parent: Option<Fitted>) -> Result<FitReport> {
        let span = info_span!("gbt_fit", series = panel.len(), horizon = self.config.horizon, warm = parent.is_some());
        let _guard = span.enter();
        let panel = self.view(panel);
        let panel = panel.as_ref();
        let mut layout = Layout::for_panel(panel, self.config.season);
        // Anchors need a year and a mean's window of history; without any such series they
        // would be empty columns taking the place of others in each tree's column sample.
        let longest = panel.values.iter().map(Vec::len).max().unwrap_or(0);
        layout.anchors = self.config.anchors && longest > layout.year + layout.means.last().copied().unwrap_or(0);
        // The level around a year-ago period reads no further than the origin of any row.
        let lead = (layout.year / 2).min(layout.year.saturating_sub(self.config.horizon));
        layout.pooled = (layout.anchors && self.config.pooled && PooledIndex::applies(panel)).then_some(lead);
        let mut vocab = Vec::new();
        let cats = Categories::code(panel, &mut layout, &mut vocab, true);
        let h_max = self.config.horizon;
        // A warm refit takes its parent's choices as they are (and says why they were made), and
        // its held-out tree count and errors too when they come from nearly the same periods.
        let carried = parent.is_some();
        let reuse = parent.as_ref().and_then(|p| HeldOutReuse::of(p, panel, h_max));
        // Whether the anchors were kept, with the held-out errors that decided it.
        let mut anchors = parent.as_ref().and_then(|p| p.anchors.clone());
        if let Some(p) = &parent {
            layout.anchors = layout.anchors && p.layout.anchors;
            layout.pooled = p.layout.pooled.filter(|_| layout.anchors);
            layout.pooled_growth = p.layout.pooled_growth && layout.pooled.is_some();
        }
        let (mut target, mut target_choice, mut selection, configured_strategy, carried_strategy_choice) = match parent
        {
            Some(p) => {
                if layout.has_user() {
                    layout.user_off = p.layout.user_off;
                }
                (p.target, p.target_choice, p.selection, p.strategy, p.strategy_choice)
            }
            None => (self.config.target, None, None, self.config.strategy, None),
        };
        let mut rows = self.rows(panel, &layout, &cats);
        let held = |&(s, o, h): &(usize, usize, usize)| o + h + h_max >= panel.values[s].len();
        // Held-out predictions of the target and layout chosen, when the choices made them.
        let mut chosen: Option<HeldOut> = None;
        // The target, when it is to be chosen, is chosen first (with every input), then the user's
        // covariates are kept only when they help on the held-out periods with that target.
        if !carried {
            let (calib, train): (Vec<usize>, Vec<usize>) = (0..rows.len()).partition(|&r| held(&rows.index[r]));
            let enough = !calib.is_empty() && train.len() >= 10;
            // The anchors are chosen with the target: each layout's best target on the held-out
            // periods, and the lower of the two (the anchors move which target wins).
            let mut off = layout.clone();
            off.anchors = false;
            off.pooled = None;
            let choose_anchors = layout.anchors && enough;
            let rows_off = choose_anchors.then(|| self.rows(panel, &off, &cats));
            if target == Target::Auto {
                target = Target::Ratio;
                if enough {
                    let with = self.choose_target(&rows, &train, &calib)?;
                    let picked = match &rows_off {
                        Some(bare) => {
                            let without = self.choose_target(bare, &train, &calib)?;
                            let keep = with.1.error <= without.1.error;
                            anchors = Some(kept_choice(keep, with.1.error, without.1.error));
                            if keep { with } else { without }
                        }
                        None => with,
                    };
                    let held_out;
                    (target, held_out, target_choice) = picked;
                    chosen = Some(held_out);
                }
            } else if let Some(bare) = &rows_off {
                let with = self.held_out(&rows, &train, &calib, target)?;
                let without = self.held_out(bare, &train, &calib, target)?;
                let keep = with.error <= without.error;
                anchors = Some(kept_choice(keep, with.error, without.error));
                chosen = Some(if keep { with } else { without });
            }
            if anchors.as_ref().is_some_and(|a| a["kept"] == false) {
                layout = off;
                rows = rows_off.expect("rows without the anchors were built to choose them");
            }
            // The held-out fit of the rows as they are (the one the choices above made, else a
            // new one) against that of another layout's rows, with those rows.
            let against = |rows: &Rows, current: Option<HeldOut>, other: &Layout| -> Result<(HeldOut, HeldOut, Rows)> {
                let current = match current {
                    Some(h) => h,
                    None => self.held_out(rows, &train, &calib, target)?,
                };
                let rows_other = self.rows(panel, other, &cats);
                let held_out = self.held_out(&rows_other, &train, &calib, target)?;
                Ok((current, held_out, rows_other))
            };
            // The items' growth is kept when it lowers the held-out error of the layout and
            // target chosen. Chosen with the anchors, it cost the pooled index its place on a
            // data set where the index alone helped.
            if layout.pooled.is_some() && enough {
                let grown = Layout { pooled_growth: true, ..layout.clone() };
                let (index_only, with_growth, rows_grown) = against(&rows, chosen.take(), &grown)?;
                let (with, without) = (with_growth.error, index_only.error);
                let keep = with < without;
                debug!(with, without, keep, "gbt: the items' growth on the held-out periods");
                if let Some(serde_json::Value::Object(a)) = anchors.as_mut() {
                    a.insert("items_growth".into(), kept_choice(keep, with, without));
                }
                chosen = Some(if keep { with_growth } else { index_only });
                if keep {
                    layout = grown;
                    rows = rows_grown;
                }
            }
            if layout.has_user() && enough {
                let off = Layout { user_off: true, ..layout.clone() };
                let (with_user, without_user, rows_off) = against(&rows, chosen.take(), &off)?;
                let (with, without) = (with_user.error, without_user.error);
                let keep = with <= without;
                chosen = Some(if keep { with_user } else { without_user });
                debug!(with, without, keep, "gbt: the user's covariates on the held-out periods");
                selection = Some(kept_choice(keep, with, without));
                if !keep {
                    layout = off;
                    rows = rows_off;
                }
            }
        }
        enough_rows(&rows, panel)?;
        // Held out: rows whose target falls in the last `horizon` periods of its series.
        let (calib, train): (Vec<usize>, Vec<usize>) = (0..rows.len()).partition(|&r| held(&rows.index[r]));
        let mut errors = vec![Vec::new(); h_max];
        let lag = Spread::lag_for(self.config.season, layout.scale_window);
        let mut spread = Spread { lag, ..Spread::default() };
        let mut trees = vec![self.config.trees; target.parts().len()];
        let mut trees_card = None;
        let (mut strategy, mut strategy_choice) = (configured_strategy, carried_strategy_choice.clone());
        let mut held_out_end = None;
        if let Some(reuse) = reuse {
            // The parent's held-out periods overlap these almost entirely: its errors (of the
            // strategy it forecasts with) and tree count stand, and only the final fit runs.
            debug!(from = %reuse.end, "gbt: the held-out tree count and errors carried");
            (errors, spread, trees, trees_card, held_out_end) =
                (reuse.errors, reuse.spread, reuse.trees, reuse.card, Some(reuse.end));
        } else if !calib.is_empty() && train.len() >= 10 {
            held_out_end = Some(panel.end);
            let held_out = match chosen.take() {
                Some(h) => h,
                None => self.held_out(&rows, &train, &calib, target)?,
            };
            let one_bag = held_out.error;
            let held_out = self.bagged(&rows, &train, &calib, held_out)?;
            trees = held_out.trees.clone();
            let per_part = |counts: &[usize]| match counts {
                [one] => serde_json::json!(one),
                parts => serde_json::json!(parts),
            };
            let chosen = per_part(&trees);
            trees_card = Some(serde_json::json!({
                "most": self.config.trees,
                "chosen": chosen,
                "rule": if self.config.auto_trees { "lowest held-out error, in steps of 10" } else { "fixed" },
                "held_out_mae": one_bag,
                // The held-out error of the bags' average (`bags` > 1), which the strategy is
                // chosen on and the quantiles' errors come from.
                "held_out_mae_bagged": (self.config.bags > 1).then_some(held_out.error),
                // Grown by the held-out fit before its error stopped falling (at most `most`).
                "grown": per_part(&held_out.grown),
            }));
            let pick = self.strategy(configured_strategy, panel, &layout, &cats, &held_out, lag);
            (strategy, strategy_choice) = (pick.strategy, pick.choice.or(carried_strategy_choice.clone()));
            let samples = match pick.samples {
                Some(samples) => samples,
                None => calib
                    .iter()
                    .zip(held_out.predicted)
                    .map(|(&r, p)| {
                        let (s, o, h) = rows.index[r];
                        let y = &panel.values[s];
                        let window = layout.scale_window;
                        Sample {
                            step: h - 1,
                            series: s,
                            actual: rows.target[r] as f32,
                            predicted: p as f32,
                            noise: spread::noise(y, o, window, lag, features::scale(y, o, window)),
                            weight: rows.weight[r],
                        }
                    })
                    .collect(),
            };
            (spread, errors) = spread::fit(&samples, h_max, self.config.spread_power, lag);
            debug!(power = spread.power, choice = ?spread.choice, "gbt: the intervals' spread on the held-out periods");
        }
        if strategy == Strategy::Auto {
            strategy = Strategy::Direct;
        }
        // Steps without held-out errors borrow the nearest step's.
        for h in 0..h_max {
            if errors[h].is_empty()
                && let Some(k) = (0..h_max).filter(|k| !errors[*k].is_empty()).min_by_key(|k| k.abs_diff(h))
            {
                errors[h] = errors[k].clone();
            }
            errors[h].sort_by(f32::total_cmp);
            errors[h] = thin(&errors[h]);
        }
        let fitted = Fitted {
            layout,
            vocab,
            booster: String::new(),
            log_booster: None,
            errors,
            spread,
            selection,
            anchors,
            trees: trees_card,
            target,
            target_choice,
            strategy,
            strategy_choice,
            carried,
            tree_counts: trees.clone(),
            held_out_end,
            bags: Vec::new(),
            model: None,
            log_model: None,
            bag_models: Vec::new(),
        };
        self.refit(&rows, fitted, &trees)?;
        debug!(rows = rows.len(), held_out = calib.len(), "gbt fitted");
        Ok(FitReport::new(self.name(), panel))
    }

    /// Fits the target's tree ensembles on every row, `trees` trees each (`bags` times, each
    /// with its own seed), into `fitted`, which becomes the model's state.
    fn refit(&mut self, rows: &Rows, mut fitted: Fitted, trees: &[usize]) -> Result<()> {
        let all: Vec<usize> = (0..rows.len()).collect();
        let mut boosters = Vec::new();
        for (part, &count) in fitted.target.parts().iter().zip(trees) {
            boosters.push(self.train(rows, &all, count, *part, 0)?);
        }
        let parts: Vec<(usize, Target)> = trees.iter().copied().zip(fitted.target.parts().iter().copied()).collect();
        let bags: Vec<GradientBooster> =
            self.further_bags(rows, &all, &parts)?.into_iter().map(|(model, _)| model).collect();
        let dump = |b: &GradientBooster| {
            b.json_dump().map_err(|e| Error::data(format!("gbt: cannot serialise the trees: {e}")))
        };
        fitted.booster = dump(&boosters[0])?;
        fitted.log_booster = boosters.get(1).map(dump).transpose()?;
        fitted.bags = bags.iter().map(dump).collect::<Result<_>>()?;
        fitted.bag_models = bags;
        fitted.log_model = (boosters.len() > 1).then(|| boosters.pop()).flatten();
        fitted.model = boosters.pop();
        self.fitted = Some(fitted);
        Ok(())
    }
}

/// A parent's held-out tree count and errors, when a warm refit may keep them: they were measured
/// on a panel that ends at most [`held_out_reuse_gap`] periods before this one (so both held-out
/// horizons share at least three quarters of their periods), not later, and for every part of
/// the target. A nightly refit carries them for a few nights, then measures them again.
struct HeldOutReuse {
    errors: Vec<Vec<f32>>,
    spread: Spread,
    trees: Vec<usize>,
    card: Option<serde_json::Value>,
    end: NaiveDate,
}

impl HeldOutReuse {
    fn of(parent: &Fitted, panel: &Panel, horizon: usize) -> Option<Self> {
        let end = parent.held_out_end?;
        let days = (panel.end - end).num_days();
        let period = panel.frequency.days();
        let gap = days / period;
        let fits = days >= 0
            && days % period == 0
            && gap as usize <= held_out_reuse_gap(horizon)
            && parent.tree_counts.len() == parent.target.parts().len()
            && parent.errors.len() == horizon
            && parent.errors.iter().all(|e| !e.is_empty());
        fits.then(|| Self {
            errors: parent.errors.clone(),
            spread: parent.spread.clone(),
            trees: parent.tree_counts.clone(),
            card: parent.trees.clone(),
            end,
        })
    }
}

/// The most periods a warm refit's panel may end after the panel its parent's held-out periods
/// were measured on, for it to keep them: a quarter of the horizon, at least one.
fn held_out_reuse_gap(horizon: usize) -> usize {
    (horizon / 4).max(1)
}

/// The history an origin needs before it is trained on: the lags it reads, and a whole seasonal
/// cycle where the panel is long enough to train on such origins (its longest series holds the
/// cycle, a horizon of origins after it and the held-out horizon). On a shorter panel (a weekly
/// series of a year or so, a backtest's early window) origins need only their lags, and the
/// seasonal and yearly columns they cannot read yet are missing values the trees route on.
fn min_history(layout: &Layout, panel: &Panel, horizon: usize) -> usize {
    let lags = layout.lags.max(8);
    let cycle = lags.max(layout.season);
    let longest = panel.values.iter().map(Vec::len).max().unwrap_or(0);
    if longest >= cycle + SHORT_PANEL_HORIZONS * horizon { cycle } else { lags }
}

/// A panel is short (see [`min_history`]) when its longest series is under a seasonal cycle and
/// this many horizons.
const SHORT_PANEL_HORIZONS: usize = 2;

/// An error when there are too few rows to learn from.
fn enough_rows(rows: &Rows, panel: &Panel) -> Result<()> {
    if rows.len() < 10 {
        return Err(Error::data(format!(
            "gbt: {} training rows from {} series; the history is too short to learn from",
            rows.len(),
            panel.len()
        )));
    }
    Ok(())
}

/// The strategy kept, why, and its held-out forecasts when they replace the direct ones (for the
/// quantiles' errors).
struct StrategyPick {
    strategy: Strategy,
    choice: Option<serde_json::Value>,
    samples: Option<Vec<Sample>>,
}

/// A model's error on the held-out periods.
struct HeldOut {
    /// Weighted mean absolute scaled error.
    error: f64,
    /// Its predictions of the held-out rows.
    predicted: Vec<f64>,
    /// Trees the held-out fit grew before it stopped, per part of the target.
    grown: Vec<usize>,
    /// Trees they use, per part of the target.
    trees: Vec<usize>,
    /// The trees fitted without the held-out periods, per part of the target, cut to the count
    /// chosen.
    models: Vec<(GradientBooster, Target)>,
}

impl HeldOut {
    /// The average of the ratio's and the logarithm's predictions.
    fn blend(rows: &Rows, calib: &[usize], ratio: HeldOut, log: HeldOut, choose_on: ChooseOn) -> HeldOut {
        let predicted = blended(&ratio.predicted, &log.predicted);
        let trees = ratio.trees.iter().chain(&log.trees).copied().collect();
        let grown = ratio.grown.iter().chain(&log.grown).copied().collect();
        let models = ratio.models.into_iter().chain(log.models).collect();
        HeldOut { error: held_out_error(rows, calib, &predicted, choose_on), predicted, trees, grown, models }
    }

    fn trees(&self, parallel: bool) -> Trees<'_> {
        Trees { parts: self.models.iter().map(|(m, t)| (m, *t)).collect(), parallel }
    }
}

/// The average of two predictions of the same rows.
fn blended(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(a, b)| 0.5 * (a + b)).collect()
}

/// The mean absolute error of predictions of the rows `calib` (scaled values), each row weighed
/// by its training weight (`Volume`) or alike (`Series`).
fn held_out_error(rows: &Rows, calib: &[usize], predicted: &[f64], choose_on: ChooseOn) -> f64 {
    let (mut sum, mut weight) = (0.0, 0.0);
    for (&r, p) in calib.iter().zip(predicted) {
        let w = choose_on.weight(rows.weight[r]);
        sum += w * (rows.target[r] - p).abs();
        weight += w;
    }
    sum / weight.max(f64::MIN_POSITIVE)
}

/// The card's record of a choice to keep columns or leave them out (the user's covariates, the
/// anchors), with the held-out errors that decided it.
fn kept_choice(kept: bool, with: f64, without: f64) -> serde_json::Value {
    serde_json::json!({ "kept": kept, "held_out_mae_with": with, "held_out_mae_without": without })
}

impl Forecaster for Gbt {
    fn name(&self) -> &str {
        "gbt"
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        self.fit_with(panel, None)
    }

    /// Refits the trees on `panel` keeping the choices of `parent` (a state this model saved at
    /// an earlier cutoff): its target, strategy and user covariates kept or not. What it skips
    /// are the held-out fits that compared the alternatives (up to three tree ensembles). The
    /// held-out fit of the target kept runs for this fit's tree count and the held-out errors
    /// its quantiles come from, unless the parent measured them on a panel ending at most a
    /// quarter of the horizon earlier (a nightly refit a few days on): then they are carried too
    /// and only the final fit runs. Errors from an older horizon's season (a backtest window a
    /// horizon back) gave intervals too wide, so those are measured again. The choices are made
    /// again at each full retrain. `epochs` does not apply: the trees are always fitted anew.
    fn fit_warm(&mut self, panel: &Panel, parent: &[u8], _epochs: usize) -> Result<Warm> {
        let Ok((config, fitted)) = serde_json::from_slice::<(GbtConfig, Fitted)>(parent) else {
            return Ok(Warm::Incompatible("the stored trees cannot be read".into()));
        };
        if (GbtConfig { threads: self.config.threads, ..config }) != self.config {
            return Ok(Warm::Incompatible("its configuration differs from the current one".into()));
        }
        Ok(Warm::Continued(self.fit_with(panel, Some(fitted))?))
    }

    fn warm_starts(&self) -> bool {
        true
    }

    fn warm_start_does(&self, _epochs: usize) -> String {
        WARM_REFIT.to_string()
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        let fitted = self.fitted.as_ref().ok_or_else(|| Error::data("gbt: predict before fit"))?;
        let model = fitted.model.as_ref().ok_or_else(|| Error::data("gbt: the trees were not loaded"))?;
        let panel = self.view(panel);
        let panel = panel.as_ref();
        let mut layout = fitted.layout.clone();
        let mut vocab = fitted.vocab.clone();
        let cats = Categories::code(panel, &mut layout, &mut vocab, false);
        let h_max = self.config.horizon;
        let mut out = Forecast::zeros(self.name(), panel.len(), horizon, levels);
        // Series too short to read, or with no sales over the last year, get a flat forecast (below).
        let series: Vec<usize> = (0..panel.len())
            .filter(|&s| {
                let y = &panel.values[s];
                y.len() >= 2 && !recent_zero(y, layout.scale_window)
            })
            .collect();
        let mut parts = vec![(model, fitted.target.parts()[0])];
        if fitted.target == Target::Blend {
            let log = fitted
                .log_model
                .as_ref()
                .ok_or_else(|| Error::data("gbt: the blend's second trees were not loaded"))?;
            parts.push((log, Target::Log));
        }
        parts.extend(fitted.bag_models.iter().zip(fitted.target.parts().iter().cycle().copied()));
        let trees = Trees { parts, parallel: true };
        let at = Origins { layout: &layout, panel, cats: &cats, series: &series, cut: 0, trained: h_max };
        let paths = at.forecast(fitted.strategy, &trees, horizon);
        let mut qs = vec![0.0f32; levels.len()];
        for ((&s, sc), steps) in series.iter().zip(&paths.scale).zip(&paths.steps) {
            let y = &panel.values[s];
            let width = (sc * fitted.spread.factor(y, y.len() - 1, layout.scale_window, *sc)) as f32;
            for (h, p) in steps.iter().enumerate() {
                let mean = (p * sc) as f32;
                let errs = &fitted.errors[h.min(h_max - 1)];
                for (q, level) in qs.iter_mut().zip(levels) {
                    *q = mean + quantile_sorted(errs, *level) * width;
                }
                out.set(s, h, mean, &mut qs);
            }
        }
        for (s, y) in panel.values.iter().enumerate() {
            if y.len() < 2 || recent_zero(y, layout.scale_window) {
                let m = if y.len() < 2 { y.first().copied().unwrap_or(0.0) } else { 0.0 };
                for h in 0..horizon {
                    qs.iter_mut().for_each(|q| *q = m);
                    out.set(s, h, m, &mut qs);
                }
            }
        }
        Ok(out)
    }

    fn save(&self) -> Result<Vec<u8>> {
        let fitted = self.fitted.as_ref().ok_or_else(|| Error::data("gbt: save before fit"))?;
        Ok(serde_json::to_vec(&(&self.config, fitted))?)
    }

    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        let (config, mut fitted): (GbtConfig, Fitted) = serde_json::from_slice(bytes)?;
        let read = |json: &str| {
            GradientBooster::from_json(json).map_err(|e| Error::data(format!("gbt: cannot read the stored trees: {e}")))
        };
        fitted.model = Some(read(&fitted.booster)?);
        fitted.log_model = fitted.log_booster.as_deref().map(read).transpose()?;
        fitted.bag_models = fitted.bags.iter().map(|b| read(b)).collect::<Result<_>>()?;
        self.config = config;
        self.fitted = Some(fitted);
        Ok(())
    }

    fn card(&self) -> Option<serde_json::Value> {
        let fitted = self.fitted.as_ref()?;
        Some(serde_json::json!({
            "config": self.config,
            "features": fitted.layout.width(),
            "categorical": fitted.layout.categorical,
            "inputs": { "known": fitted.layout.known_names, "observed": fitted.layout.observed },
            "user_covariates": fitted.selection,
            "anchors": fitted.anchors,
            "trees": fitted.model.as_ref().map(|m| m.trees.len()),
            "log_trees": fitted.log_model.as_ref().map(|m| m.trees.len()),
            // Tree ensembles per part of the target whose forecasts are averaged.
            "bags": 1 + fitted.bag_models.len() / fitted.target.parts().len(),
            "tree_count": fitted.trees,
            "target": { "chosen": fitted.target.name(), "choice": fitted.target_choice },
            "strategy": { "chosen": fitted.strategy.name(), "choice": fitted.strategy_choice },
            // The power of each series' noise its held-out errors were divided by, and why.
            "spread": fitted.spread,
            // The target, strategy and covariate choices above come from the version this one
            // refitted from, not from this fit's data.
            "choices_carried": fitted.carried,
            // The last period of the panel the tree count and the quantiles' errors were measured
            // on (before this fit's own end when a warm refit carried them).
            "held_out_end": fitted.held_out_end,
        }))
    }

    fn reads_calendar(&self) -> bool {
        true
    }

    fn needs_covariates(&self) -> bool {
        self.config.covariates
    }
}

/// Order statistics kept per step: the saved model holds these, not every held-out error.
const ERROR_POINTS: usize = 1001;

/// A sorted sample thinned to [`ERROR_POINTS`] evenly spaced quantiles (unchanged when shorter).
fn thin(sorted: &[f32]) -> Vec<f32> {
    if sorted.len() <= ERROR_POINTS {
        return sorted.to_vec();
    }
    (0..ERROR_POINTS).map(|k| quantile_sorted(sorted, k as f64 / (ERROR_POINTS - 1) as f64)).collect()
}

/// Whether the last `window` values are all zero.
fn recent_zero(y: &[f32], window: usize) -> bool {
    y[y.len().saturating_sub(window)..].iter().all(|v| *v == 0.0)
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, NaiveDate};

    use super::*;
    use crate::models::baseline::SeasonalNaive;
    use crate::panel::{Covariates, SeriesKey};
    use crate::period::Frequency;

    /// Daily series of different sizes with a weekly pattern, noise, and promotions known in
    /// advance that lift sales by 80%; the last `horizon` days are held back as actuals.
    pub(super) fn panel(series: usize, days: usize, horizon: usize) -> (Panel, Vec<Vec<f32>>) {
        let end = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
        let mut state = 7u64;
        let mut noise = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64) as f32 - 0.5
        };
        let weekly = [1.0, 0.8, 0.9, 1.0, 1.2, 1.6, 1.4];
        let total = days + horizon;
        let mut cov = Covariates::empty(end - Duration::days(days as i64 - 1), series, days, horizon);
        let k = cov.known.series_names.len();
        let promo = cov.known.series_names.iter().position(|n| n == "promo").unwrap();
        let (mut history, mut actuals, mut keys) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..series {
            let level = 5.0 + 10.0 * s as f32;
            let y: Vec<f32> = (0..total)
                .map(|t| {
                    let on = (t + 3 * s) % 17 < 3;
                    if on {
                        cov.known.series[s][t * k + promo] = 1.0;
                    }
                    let lift = if on { 1.8 } else { 1.0 };
                    (level * weekly[t % 7] * lift * (1.0 + 0.2 * noise())).max(0.0)
                })
                .collect();
            history.push(y[..days].to_vec());
            actuals.push(y[days..].to_vec());
            keys.push(SeriesKey { item_id: format!("i{s}"), location_id: format!("l{}", s % 3) });
        }
        (Panel::new(keys, history, end, Frequency::Daily).with_covariates(cov), actuals)
    }

    /// The forecast of the fitted `gbt` over the horizon of `actuals`, checking that it beats
    /// seasonal naive's MAE `naive` by 30% and that its stored state forecasts the same.
    fn learns_and_reloads(gbt: &Gbt, panel: &Panel, actuals: &[Vec<f32>], naive: f64, what: &str) -> Forecast {
        let (horizon, levels) = (actuals[0].len(), [0.1, 0.5, 0.9]);
        let forecast = gbt.predict(panel, horizon, &levels).unwrap();
        let ours = mae(&forecast, actuals);
        assert!(ours < 0.7 * naive, "{what}: MAE {ours:.3} against seasonal naive's {naive:.3}");
        let mut restored = Gbt::new(GbtConfig::new(1, 1));
        restored.load(&gbt.save().unwrap()).unwrap();
        assert_eq!(restored.predict(panel, horizon, &levels).unwrap(), forecast, "{what}");
        forecast
    }

    /// Seasonal naive's (weekly) MAE over the horizon of `actuals`: the baseline a model must beat.
    pub(super) fn naive_mae(panel: &Panel, actuals: &[Vec<f32>]) -> f64 {
        mae(&SeasonalNaive::new(7).predict(panel, actuals[0].len(), &[0.1, 0.5, 0.9]).unwrap(), actuals)
    }

    pub(super) fn mae(f: &Forecast, actuals: &[Vec<f32>]) -> f64 {
        let mut sum = 0.0;
        for (s, a) in actuals.iter().enumerate() {
            for (h, v) in a.iter().enumerate() {
                sum += f64::from((f.mean_at(s, h) - v).abs());
            }
        }
        sum / (actuals.len() * actuals[0].len()) as f64
    }

    /// An observed covariate that announces the next fortnight's level (pre-orders, say): read at
    /// the origin, it tells `gbt` what the lags cannot.
    #[test]
    fn reads_an_observed_covariate_at_the_origin() {
        let (series, days, horizon) = (12, 280, 14);
        let end = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        let mut cov = Covariates::with_user(
            end - Duration::days(days as i64 - 1),
            series,
            days,
            horizon,
            &[],
            &["orders".to_string()],
        );
        let p = cov.past.names.len();
        let at = cov.past.names.iter().position(|n| n == "user:orders").unwrap();
        let blocks = (days + horizon) / 14;
        let (mut history, mut actuals, mut keys) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..series {
            // A coin per fortnight and series: nothing in the history foretells the next one.
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (s as u64 + 1);
            let regime: Vec<f32> = (0..=blocks)
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((state >> 41) & 1) as f32
                })
                .collect();
            let y: Vec<f32> = (0..days + horizon).map(|t| (8.0 + s as f32) * (1.0 + 1.5 * regime[t / 14])).collect();
            for t in 0..days {
                cov.past.values[s][t * p + at] = regime[t / 14 + 1];
            }
            history.push(y[..days].to_vec());
            actuals.push(y[days..].to_vec());
            keys.push(SeriesKey { item_id: format!("i{s}"), location_id: "l".into() });
        }
        let panel = Panel::new(keys, history, end, Frequency::Daily).with_covariates(cov);
        let levels = [0.1, 0.5, 0.9];
        let mut gbt = Gbt::new(GbtConfig::new(horizon, 7));
        gbt.fit(&panel).unwrap();
        let f = gbt.predict(&panel, horizon, &levels).unwrap();
        let told = mae(&f, &actuals);

        let mut blind = Gbt::new(GbtConfig { covariates: false, ..GbtConfig::new(horizon, 7) });
        blind.fit(&panel).unwrap();
        let blind = mae(&blind.predict(&panel, horizon, &levels).unwrap(), &actuals);
        assert!(told < 0.5 * blind, "with the observed covariate MAE {told:.3}, without {blind:.3}");
    }

    /// A shelf that ran empty on the last day observed (that day's sales as usual) stays empty
    /// until the next delivery a few days on, which no lag shows: `gbt` reads the built-in
    /// stock-out flag at the origin, and leaves out the built-in columns that never vary.
    #[test]
    fn reads_the_stock_out_flag_at_the_origin() {
        let (series, days, horizon) = (40, 300, 7);
        let end = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        let mut cov = Covariates::empty(end - Duration::days(days as i64 - 1), series, days, horizon);
        let p = cov.past.names.len();
        let at = cov.past.names.iter().position(|n| n == "stock_out").unwrap();
        let (mut history, mut actuals, mut keys) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..series {
            let mut state = 0x2545_F491_4F6C_DD1Du64 ^ (s as u64 + 1);
            let mut draw = |n: u64| {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (state >> 33) % n
            };
            let level = 10.0 + (s % 5) as f32;
            let mut y = vec![level; days + horizon];
            let mut t = 0;
            while t < days + horizon {
                // Every other series runs out on the last day observed; all now and then.
                let out = (t + 1 == days && s % 2 == 0) || (t + 1 != days && t + 8 < days && draw(25) == 0);
                if out {
                    cov.past.values[s][t * p + at] = 1.0;
                    let empty = 3 + draw(3) as usize;
                    for v in y.iter_mut().skip(t + 1).take(empty) {
                        *v = 0.0;
                    }
                    t += empty + 1;
                } else {
                    t += 1;
                }
            }
            history.push(y[..days].to_vec());
            actuals.push(y[days..].to_vec());
            keys.push(SeriesKey { item_id: format!("i{s}"), location_id: "l".into() });
        }
        let panel = Panel::new(keys, history, end, Frequency::Daily).with_covariates(cov);
        let levels = [0.1, 0.5, 0.9];
        let mut gbt = Gbt::new(GbtConfig::new(horizon, 7));
        gbt.fit(&panel).unwrap();
        assert_eq!(gbt.fitted.as_ref().unwrap().layout.observed, ["stock_out"]);
        let told = mae(&gbt.predict(&panel, horizon, &levels).unwrap(), &actuals);

        let mut blind = Gbt::new(GbtConfig { covariates: false, ..GbtConfig::new(horizon, 7) });
        blind.fit(&panel).unwrap();
        let blind = mae(&blind.predict(&panel, horizon, &levels).unwrap(), &actuals);
        assert!(told < 0.5 * blind, "with the stock-out flag MAE {told:.3}, without {blind:.3}");
    }

    /// A plan that stopped meaning what it meant (its sign flipped over the last horizon): the
    /// held-out periods show it, and the model leaves it out.
    #[test]
    fn a_covariate_that_misleads_on_the_held_out_periods_is_left_out() {
        let (series, days, horizon) = (10, 200, 14);
        let end = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap();
        let mut cov = Covariates::with_user(
            end - Duration::days(days as i64 - 1),
            series,
            days,
            horizon,
            &["plan".to_string()],
            &[],
        );
        let k = cov.known.series_names.len();
        let at = cov.known.series_names.iter().position(|n| n == "user:plan").unwrap();
        let (mut history, mut keys) = (Vec::new(), Vec::new());
        for s in 0..series {
            let y: Vec<f32> = (0..days)
                .map(|t| {
                    let on = (t * 7 + s * 5) % 11 < 4;
                    let plan = if t + horizon < days { on } else { !on };
                    cov.known.series[s][t * k + at] = f32::from(u8::from(plan));
                    (10.0 + s as f32) * if on { 2.0 } else { 1.0 }
                })
                .collect();
            history.push(y);
            keys.push(SeriesKey { item_id: format!("i{s}"), location_id: "l".into() });
        }
        let panel = Panel::new(keys, history, end, Frequency::Daily).with_covariates(cov);
        let mut gbt = Gbt::new(GbtConfig { trees: 60, ..GbtConfig::new(horizon, 7) });
        gbt.fit(&panel).unwrap();
        let card = gbt.card().unwrap();
        assert_eq!(card["user_covariates"]["kept"], false, "{}", card["user_covariates"]);
        assert!(gbt.fitted.as_ref().unwrap().layout.user_off);
    }

    /// Daily series with a weekly pattern, all at the same level, half steady (±5% noise) and
    /// half noisy (±60%); the last `horizon` days are held back as actuals.
    fn steady_and_noisy(series: usize, days: usize, horizon: usize) -> (Panel, Vec<Vec<f32>>) {
        let end = NaiveDate::from_ymd_opt(2026, 6, 30).unwrap();
        let mut state = 11u64;
        let mut uniform = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            2.0 * ((state >> 33) as f64 / (1u64 << 31) as f64) as f32 - 1.0
        };
        let weekly = [1.0, 0.8, 0.9, 1.0, 1.2, 1.6, 1.4];
        let (mut history, mut actuals, mut keys) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..series {
            let amplitude = if s % 2 == 0 { 0.05 } else { 0.6 };
            let y: Vec<f32> =
                (0..days + horizon).map(|t| 50.0 * weekly[t % 7] * (1.0 + amplitude * uniform())).collect();
            history.push(y[..days].to_vec());
            actuals.push(y[days..].to_vec());
            keys.push(SeriesKey { item_id: format!("i{s}"), location_id: "l".into() });
        }
        (Panel::new(keys, history, end, Frequency::Daily), actuals)
    }

    /// Coverage of the 80% interval (levels 0.1 and 0.9) over the steady series and the noisy
    /// ones of [`steady_and_noisy`], and the mean pinball loss at the two levels.
    fn coverage_by_noise(f: &Forecast, actuals: &[Vec<f32>]) -> ([f64; 2], f64) {
        let (mut inside, mut n, mut pinball) = ([0usize; 2], [0usize; 2], 0.0);
        for (s, act) in actuals.iter().enumerate() {
            for (h, v) in act.iter().enumerate() {
                let (lo, hi) = (f.quantile_at(s, h, 0), f.quantile_at(s, h, 1));
                n[s % 2] += 1;
                inside[s % 2] += usize::from(lo <= *v && *v <= hi);
                pinball += f64::from((0.1 * (v - lo)).max(-0.9 * (v - lo)) + (0.9 * (v - hi)).max(-0.1 * (v - hi)));
            }
        }
        let total = (n[0] + n[1]) as f64;
        ([inside[0] as f64 / n[0] as f64, inside[1] as f64 / n[1] as f64], pinball / total)
    }

    #[test]
    fn intervals_follow_each_series_noise() {
        let horizon = 14;
        let (panel, actuals) = steady_and_noisy(40, 240, horizon);
        let levels = [0.1, 0.9];
        let fit = |power: Option<f64>| {
            let mut gbt = Gbt::new(GbtConfig { trees: 60, bags: 1, spread_power: power, ..GbtConfig::new(horizon, 7) });
            gbt.fit(&panel).unwrap();
            let f = gbt.predict(&panel, horizon, &levels).unwrap();
            (gbt.card().unwrap(), coverage_by_noise(&f, &actuals))
        };
        let (card, (auto, auto_pinball)) = fit(None);
        assert_eq!(card["spread"]["power"], 1.0, "{}", card["spread"]);
        // Each kind of series is covered about as often as the level says.
        for (kind, c) in ["steady", "noisy"].iter().zip(auto) {
            assert!((0.65..=0.95).contains(&c), "{kind} series' 80% coverage {c:.2}");
        }
        // By the scale alone every series gets the same relative interval: the steady ones' too
        // wide, the noisy ones' too narrow, and a higher pinball loss.
        let (_, (scale, scale_pinball)) = fit(Some(0.0));
        assert!(scale[0] > 0.97 && scale[1] < 0.7, "coverage by the scale alone {scale:?}");
        assert!(auto_pinball < 0.9 * scale_pinball, "pinball {auto_pinball:.3} against {scale_pinball:.3}");
    }

    #[test]
    fn learns_the_promotions_and_beats_seasonal_naive() {
        let horizon = 14;
        let (panel, actuals) = panel(24, 300, horizon);
        let mut gbt = Gbt::new(GbtConfig::new(horizon, 7));
        gbt.fit(&panel).unwrap();
        let levels = [0.1, 0.5, 0.9];
        let ours = gbt.predict(&panel, horizon, &levels).unwrap();
        let naive = SeasonalNaive::new(7).predict(&panel, horizon, &levels).unwrap();
        let (a, b) = (mae(&ours, &actuals), mae(&naive, &actuals));
        assert!(a < 0.7 * b, "gbt MAE {a:.3} should beat seasonal naive's {b:.3} by 30%");
        // Without the covariates it cannot know the promotions ahead and does worse.
        let mut blind = Gbt::new(GbtConfig { covariates: false, ..GbtConfig::new(horizon, 7) });
        blind.fit(&panel).unwrap();
        let c = mae(&blind.predict(&panel, horizon, &levels).unwrap(), &actuals);
        assert!(a < 0.8 * c, "with promotions known MAE {a:.3}, without {c:.3}");
        // The 80% interval covers roughly 80% of the actuals.
        let (mut inside, mut n) = (0, 0);
        for (s, act) in actuals.iter().enumerate() {
            for (h, v) in act.iter().enumerate() {
                n += 1;
                inside += usize::from(ours.quantile_at(s, h, 0) <= *v && *v <= ours.quantile_at(s, h, 2));
            }
        }
        let coverage = inside as f64 / n as f64;
        assert!((0.6..=0.95).contains(&coverage), "80% interval coverage {coverage:.2}");
    }

    #[test]
    fn saved_trees_forecast_the_same_and_runs_repeat() {
        let horizon = 7;
        let (panel, _) = panel(8, 120, horizon);
        let mut gbt = Gbt::new(GbtConfig::new(horizon, 7));
        gbt.fit(&panel).unwrap();
        let first = gbt.predict(&panel, horizon, &[0.1, 0.5, 0.9]).unwrap();
        let mut restored = Gbt::new(GbtConfig::new(1, 1));
        restored.load(&gbt.save().unwrap()).unwrap();
        assert_eq!(restored.predict(&panel, horizon, &[0.1, 0.5, 0.9]).unwrap(), first);
        let mut again = Gbt::new(GbtConfig::new(horizon, 7));
        again.fit(&panel).unwrap();
        assert_eq!(
            again.predict(&panel, horizon, &[0.1, 0.5, 0.9]).unwrap(),
            first,
            "same data and seed, same forecast"
        );
    }

    #[test]
    fn the_tree_count_is_chosen_on_the_held_out_periods_and_written_in_the_card() {
        let horizon = 7;
        let (panel, _) = panel(8, 120, horizon);
        let mut auto = Gbt::new(GbtConfig { trees: 60, target: Target::Ratio, ..GbtConfig::new(horizon, 7) });
        auto.fit(&panel).unwrap();
        let card = auto.card().unwrap();
        let chosen = card["tree_count"]["chosen"].as_u64().unwrap() as usize;
        assert!(chosen <= 60 && chosen.is_multiple_of(10) && chosen > 0, "{card}");
        assert_eq!(card["trees"].as_u64().unwrap() as usize, chosen, "the final fit uses the count chosen");
        let mut fixed =
            Gbt::new(GbtConfig { trees: 60, auto_trees: false, target: Target::Ratio, ..GbtConfig::new(horizon, 7) });
        fixed.fit(&panel).unwrap();
        assert_eq!(fixed.card().unwrap()["trees"], 60);
        assert_eq!(fixed.card().unwrap()["tree_count"]["grown"], 60, "a fixed count grows every tree");

        // With room for far more trees than the held-out periods want, the held-out fit stops
        // growing them soon after its error stops falling, and the count comes from those grown.
        let most = 2000;
        let mut room = Gbt::new(GbtConfig {
            trees: most,
            learning_rate: 0.3,
            target: Target::Ratio,
            ..GbtConfig::new(horizon, 7)
        });
        room.fit(&panel).unwrap();
        let card = room.card().unwrap();
        let grown = card["tree_count"]["grown"].as_u64().unwrap() as usize;
        let chosen = card["tree_count"]["chosen"].as_u64().unwrap() as usize;
        assert!(grown < most / 2, "stopped early: {card}");
        assert!(chosen <= grown && chosen > 0, "{card}");
        assert_eq!(card["trees"].as_u64().unwrap() as usize, chosen);
    }

    /// Trees grown on a share of the columns and rows, under squared loss and under the Tweedie
    /// deviance, still learn; the draws come from the seed, so a second fit forecasts the same,
    /// and they are in effect (the forecast differs from the unsampled trees').
    #[test]
    fn trees_on_sampled_columns_and_rows_learn_and_repeat_for_a_seed() {
        let horizon = 14;
        let (panel, actuals) = panel(24, 300, horizon);
        let levels = [0.1, 0.5, 0.9];
        let naive = naive_mae(&panel, &actuals);
        for target in [Target::Ratio, Target::Tweedie] {
            let config = GbtConfig { trees: 100, target, ..GbtConfig::new(horizon, 7) };
            let sampled = GbtConfig { colsample: 0.5, subsample: 0.7, ..config.clone() };
            let config = GbtConfig { colsample: 1.0, subsample: 1.0, ..config };
            let mut gbt = Gbt::new(sampled.clone());
            gbt.fit(&panel).unwrap();
            let forecast = learns_and_reloads(&gbt, &panel, &actuals, naive, &format!("{target:?} sampled"));
            let mut again = Gbt::new(sampled);
            again.fit(&panel).unwrap();
            assert_eq!(again.predict(&panel, horizon, &levels).unwrap(), forecast, "{target:?}: same seed");
            let mut whole = Gbt::new(config);
            whole.fit(&panel).unwrap();
            assert_ne!(whole.predict(&panel, horizon, &levels).unwrap(), forecast, "{target:?}: sampling is used");
        }
    }

    /// Bags: the average of the seeds' ensembles learns, a stored bagged model forecasts as it
    /// did, with its bags (the blend's two parts too), and its quantiles come from the bags'
    /// average on the held-out periods, not from the first bag's errors there.
    #[test]
    fn bagged_trees_average_their_seeds_and_reload() {
        let horizon = 14;
        let (panel, actuals) = panel(24, 300, horizon);
        let naive = naive_mae(&panel, &actuals);
        let levels = [0.1, 0.5, 0.9];
        for target in [Target::Ratio, Target::Blend] {
            let config = GbtConfig { trees: 60, target, bags: 1, ..GbtConfig::new(horizon, 7) };
            let mut single = Gbt::new(config.clone());
            single.fit(&panel).unwrap();
            let one = single.predict(&panel, horizon, &levels).unwrap();
            let mut bagged = Gbt::new(GbtConfig { bags: 3, ..config });
            bagged.fit(&panel).unwrap();
            assert_eq!(bagged.card().unwrap()["bags"], 3, "{target:?}");
            let three = learns_and_reloads(&bagged, &panel, &actuals, naive, &format!("{target:?} bagged"));
            assert_ne!(three.mean, one.mean, "{target:?}: the other seeds' trees count");
            // The first bag is the single fit; the other seeds move its forecasts both ways.
            let fitted = bagged.fitted.as_ref().unwrap();
            assert_eq!(fitted.bag_models.len(), 2 * target.parts().len(), "{target:?}");
            let (lo, hi) = one
                .mean
                .iter()
                .zip(&three.mean)
                .fold((0usize, 0usize), |(lo, hi), (a, b)| (lo + usize::from(b < a), hi + usize::from(b > a)));
            assert!(lo > 0 && hi > 0, "{target:?}: bagging shifts forecasts both ways ({lo} down, {hi} up)");
            // The first bag's held-out fit is the single model's; the bags' average has errors
            // of its own, and the card gives both held-out errors.
            let first = single.fitted.as_ref().unwrap();
            assert_ne!(fitted.errors, first.errors, "{target:?}: the quantiles' errors are the bags' average's");
            let (card, one_card) = (bagged.card().unwrap(), single.card().unwrap());
            assert_eq!(card["tree_count"]["held_out_mae"], one_card["tree_count"]["held_out_mae"], "{target:?}");
            assert!(card["tree_count"]["held_out_mae_bagged"].as_f64().is_some(), "{card}");
            assert!(one_card["tree_count"]["held_out_mae_bagged"].is_null(), "{one_card}");
        }
    }

    /// Every target learns; with `auto` the one kept is the one with the lowest held-out error,
    /// the card says so, and a stored model of each target forecasts as it did.
    #[test]
    fn the_target_is_chosen_on_the_held_out_periods_and_either_learns() {
        let horizon = 14;
        let (panel, actuals) = panel(24, 300, horizon);
        let naive = naive_mae(&panel, &actuals);
        let mut auto = Gbt::new(GbtConfig { trees: 100, ..GbtConfig::new(horizon, 7) });
        auto.fit(&panel).unwrap();
        let card = auto.card().unwrap();
        let choice = &card["target"]["choice"];
        let error = |name: &str| choice[format!("held_out_mae_{name}")].as_f64().unwrap();
        let single = ["ratio", "log", "tweedie"].into_iter().min_by(|a, b| error(a).total_cmp(&error(b))).unwrap();
        let best = if error("blend") < (1.0 - BLEND_GAIN) * error(single) { "blend" } else { single };
        assert_eq!(card["target"]["chosen"], best, "{card}");
        for target in [Target::Ratio, Target::Log, Target::Blend, Target::Tweedie, Target::Poisson] {
            let mut gbt = Gbt::new(GbtConfig { trees: 100, target, ..GbtConfig::new(horizon, 7) });
            gbt.fit(&panel).unwrap();
            let card = gbt.card().unwrap();
            assert_eq!(card["target"]["chosen"], target.name());
            assert!(card["target"]["choice"].is_null(), "a fixed target is not chosen: {card}");
            learns_and_reloads(&gbt, &panel, &actuals, naive, &format!("{target:?}"));
        }
    }

    /// The recursive forecast's first step is the direct one's (both read the origin at step 1);
    /// each strategy learns, `auto` keeps the lowest held-out error and says so, and a stored
    /// model of each forecasts as it did.
    #[test]
    fn the_strategy_is_chosen_on_the_held_out_periods_and_each_learns() {
        let horizon = 14;
        let (panel, actuals) = panel(24, 300, horizon);
        let naive = naive_mae(&panel, &actuals);
        let config = |strategy| GbtConfig { trees: 100, target: Target::Ratio, strategy, ..GbtConfig::new(horizon, 7) };
        let mut auto = Gbt::new(config(Strategy::Auto));
        auto.fit(&panel).unwrap();
        let card = auto.card().unwrap();
        let choice = &card["strategy"]["choice"];
        let error = |name: &str| choice[format!("held_out_mae_{name}")].as_f64().unwrap();
        let best = Strategy::CHOICES.iter().min_by(|a, b| error(a.name()).total_cmp(&error(b.name()))).unwrap();
        assert_eq!(card["strategy"]["chosen"], best.name(), "{card}");
        assert_eq!(choice["series"], 24, "{card}");
        let mut forecasts = Vec::new();
        for strategy in Strategy::CHOICES {
            let mut gbt = Gbt::new(config(strategy));
            gbt.fit(&panel).unwrap();
            let card = gbt.card().unwrap();
            assert_eq!(card["strategy"]["chosen"], strategy.name());
            assert!(card["strategy"]["choice"].is_null(), "a fixed strategy is not chosen: {card}");
            forecasts.push(learns_and_reloads(&gbt, &panel, &actuals, naive, &format!("{strategy:?}")));
        }
        let (direct, recursive, average) = (&forecasts[0], &forecasts[1], &forecasts[2]);
        for s in 0..panel.len() {
            let (d, r) = (direct.mean_at(s, 0), recursive.mean_at(s, 0));
            assert!((d - r).abs() <= 1e-4 * d.abs().max(1.0), "series {s}: step 1 direct {d}, recursive {r}");
            // Later steps differ, and the average sits between them.
            let h = horizon - 1;
            let (lo, hi) =
                (direct.mean_at(s, h).min(recursive.mean_at(s, h)), direct.mean_at(s, h).max(recursive.mean_at(s, h)));
            let a = average.mean_at(s, h);
            assert!(lo - 1e-3 <= a && a <= hi + 1e-3, "series {s}: average {a} outside [{lo}, {hi}]");
        }
        assert_ne!(direct.mean, recursive.mean, "the recursive forecast reads its own forecasts");
    }

    /// A warm refit keeps its parent's choices (skipping the fits that made them), takes its tree
    /// count and errors from its own held-out fit, learns from the newer data, and is refused a
    /// parent of another configuration.
    #[test]
    fn a_refit_days_on_keeps_the_held_out_trees_and_errors_then_measures_them_again() {
        let horizon = 14;
        let (panel, actuals) = panel(24, 300, horizon);
        let config = GbtConfig { trees: 60, ..GbtConfig::new(horizon, 7) };
        let levels = [0.1, 0.5, 0.9];
        let mut first = Gbt::new(config.clone());
        let at = |back: usize| panel.cut(back).0;
        first.fit(&at(5)).unwrap();
        // Two days on (within a quarter of the horizon): only the final fit runs.
        let mut second = Gbt::new(config.clone());
        assert!(matches!(second.fit_warm(&at(3), &first.save().unwrap(), 4).unwrap(), Warm::Continued(_)));
        let (a, b) = (first.card().unwrap(), second.card().unwrap());
        assert_eq!(a["held_out_end"], serde_json::json!(at(5).end), "{a}");
        assert_eq!(b["held_out_end"], a["held_out_end"], "carried: {b}");
        assert_eq!(b["tree_count"], a["tree_count"]);
        assert_eq!(b["trees"], a["trees"]);
        assert_eq!(second.fitted.as_ref().unwrap().errors, first.fitted.as_ref().unwrap().errors);
        assert_ne!(
            second.predict(&at(3), horizon, &levels).unwrap(),
            first.predict(&at(3), horizon, &levels).unwrap(),
            "the trees are refitted on the newer data"
        );
        // Five days past the measured periods: measured again on this panel.
        let mut third = Gbt::new(config.clone());
        let stored = second.save().unwrap();
        assert!(matches!(third.fit_warm(&panel, &stored, 4).unwrap(), Warm::Continued(_)));
        let c = third.card().unwrap();
        assert_eq!(c["held_out_end"], serde_json::json!(panel.end), "{c}");
        assert_ne!(c["tree_count"]["held_out_mae"], b["tree_count"]["held_out_mae"]);
        let forecast = third.predict(&panel, horizon, &levels).unwrap();
        let naive = naive_mae(&panel, &actuals);
        assert!(mae(&forecast, &actuals) < 0.7 * naive);
        // A carried refit is as deterministic and storable as any.
        let mut again = Gbt::new(config.clone());
        again.fit_warm(&at(3), &first.save().unwrap(), 4).unwrap();
        assert_eq!(again.predict(&at(3), horizon, &levels).unwrap(), second.predict(&at(3), horizon, &levels).unwrap());
        let mut restored = Gbt::new(GbtConfig::new(1, 1));
        restored.load(&stored).unwrap();
        assert_eq!(
            restored.predict(&at(3), horizon, &levels).unwrap(),
            second.predict(&at(3), horizon, &levels).unwrap()
        );
    }

    #[test]
    fn a_warm_refit_carries_its_parents_choices_and_learns() {
        let horizon = 14;
        let (panel, actuals) = panel(24, 300, horizon);
        let config = GbtConfig { trees: 60, ..GbtConfig::new(horizon, 7) };
        let mut parent = Gbt::new(config.clone());
        parent.fit(&panel.cut(7).0).unwrap();
        let stored = parent.save().unwrap();
        let mut warm = Gbt::new(config.clone());
        assert!(matches!(warm.fit_warm(&panel, &stored, 4).unwrap(), Warm::Continued(_)));
        let (p, w) = (parent.card().unwrap(), warm.card().unwrap());
        assert_eq!(w["choices_carried"], true, "{w}");
        assert_eq!(p["choices_carried"], false);
        for key in ["target", "strategy", "user_covariates"] {
            assert_eq!(w[key], p[key], "{key} carried");
        }
        // The tree count and the quantiles' errors come from this fit's own held-out periods.
        assert!(w["tree_count"]["held_out_mae"] != p["tree_count"]["held_out_mae"], "{w}");
        assert_eq!(w["trees"], w["tree_count"]["chosen"], "the refit uses the count chosen on its held-out fit");
        let levels = [0.1, 0.5, 0.9];
        let forecast = warm.predict(&panel, horizon, &levels).unwrap();
        let naive = naive_mae(&panel, &actuals);
        let ours = mae(&forecast, &actuals);
        assert!(ours < 0.7 * naive, "warm MAE {ours:.3} against seasonal naive's {naive:.3}");
        assert_ne!(forecast, parent.predict(&panel, horizon, &levels).unwrap(), "refitted on the newer data");
        let mut again = Gbt::new(config.clone());
        again.fit_warm(&panel, &stored, 4).unwrap();
        assert_eq!(again.predict(&panel, horizon, &levels).unwrap(), forecast, "deterministic");
        let mut restored = Gbt::new(GbtConfig::new(1, 1));
        restored.load(&warm.save().unwrap()).unwrap();
        assert_eq!(restored.predict(&panel, horizon, &levels).unwrap(), forecast);

        let mut other = Gbt::new(GbtConfig { max_depth: 4, ..config });
        assert!(matches!(other.fit_warm(&panel, &stored, 4).unwrap(), Warm::Incompatible(_)));
        assert!(matches!(other.fit_warm(&panel, b"not trees", 4).unwrap(), Warm::Incompatible(_)));
    }

    /// The anchors are kept or left out with the target, on the held-out periods; the card
    /// says which with both errors, the layout follows, and a warm refit carries the choice.
    #[test]
    fn the_anchors_are_chosen_on_the_held_out_periods_and_the_choice_is_carried() {
        let horizon = 14;
        let (long, actuals) = panel(24, 500, horizon);
        let config = GbtConfig { trees: 60, ..GbtConfig::new(horizon, 7) };
        let mut gbt = Gbt::new(config.clone());
        gbt.fit(&long).unwrap();
        let card = gbt.card().unwrap();
        let a = &card["anchors"];
        let (with, without) = (a["held_out_mae_with"].as_f64().unwrap(), a["held_out_mae_without"].as_f64().unwrap());
        let kept = with <= without;
        assert_eq!(a["kept"], kept, "{a}");
        let mut bare = Gbt::new(GbtConfig { anchors: false, ..config.clone() });
        bare.fit(&long).unwrap();
        let bare_card = bare.card().unwrap();
        assert!(bare_card["anchors"].is_null(), "not configured, not chosen");
        let width = |c: &serde_json::Value| c["features"].as_u64().unwrap();
        assert_eq!(width(&card), width(&bare_card) + if kept { 2 } else { 0 });
        let ours = mae(&gbt.predict(&long, horizon, &[0.1, 0.5, 0.9]).unwrap(), &actuals);
        let naive = naive_mae(&long, &actuals);
        assert!(ours < 0.7 * naive, "MAE {ours:.3} against seasonal naive's {naive:.3}");
        let mut warm = Gbt::new(config);
        warm.fit_warm(&long, &gbt.save().unwrap(), 4).unwrap();
        assert_eq!(warm.card().unwrap()["anchors"], card["anchors"]);
        assert_eq!(width(&warm.card().unwrap()), width(&card));
        // Less than a year and the growth's window of history: nothing to choose.
        let (short, _) = panel(24, 300, horizon);
        let mut gbt = Gbt::new(GbtConfig { trees: 60, ..GbtConfig::new(horizon, 7) });
        gbt.fit(&short).unwrap();
        assert!(gbt.card().unwrap()["anchors"].is_null());
    }

    #[test]
    fn held_out_errors_are_thinned_to_their_quantiles() {
        let sorted: Vec<f32> = (0..10_000).map(|i| i as f32).collect();
        let thinned = thin(&sorted);
        assert_eq!(thinned.len(), ERROR_POINTS);
        for level in [0.0, 0.1, 0.5, 0.9, 1.0] {
            let (a, b) = (quantile_sorted(&sorted, level), quantile_sorted(&thinned, level));
            assert!((a - b).abs() < 1e-3 * 10_000.0, "level {level}: {a} vs {b}");
        }
        assert_eq!(thin(&[1.0, 2.0]), vec![1.0, 2.0]);
    }

    /// A large series and a small one: a fit exact on the large one and a unit off on the small
    /// one wins by volume, one a tenth off on the large one and exact on the small one wins with
    /// every series alike (as MASE would have it).
    #[test]
    fn the_held_out_error_weighs_series_by_volume_or_alike() {
        let rows = Rows {
            data: vec![0.0; 4],
            width: 1,
            target: vec![1.0, 1.0, 1.0, 1.0],
            weight: vec![100.0, 100.0, 1.0, 1.0],
            index: vec![(0, 10, 1), (0, 10, 2), (1, 10, 1), (1, 10, 2)],
        };
        let calib = [0, 1, 2, 3];
        let exact_on_large = [1.0, 1.0, 2.0, 2.0];
        let exact_on_small = [1.1, 1.1, 1.0, 1.0];
        let error = |p: &[f64], on| held_out_error(&rows, &calib, p, on);
        assert!(error(&exact_on_large, ChooseOn::Volume) < error(&exact_on_small, ChooseOn::Volume));
        assert!(error(&exact_on_small, ChooseOn::Series) < error(&exact_on_large, ChooseOn::Series));
        assert!((error(&exact_on_large, ChooseOn::Series) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn too_short_a_history_is_a_clear_error() {
        let panel = Panel::single(&[1.0, 2.0, 3.0]);
        let err = Gbt::new(GbtConfig::new(7, 7)).fit(&panel).unwrap_err().to_string();
        assert!(err.contains("too short"), "{err}");
    }

    /// Weekly series of 40 weeks, under a yearly cycle: origins are trained on from their lags,
    /// and the four-week pattern they show is learnt (the forecast beats repeating the last week).
    #[test]
    fn a_weekly_panel_shorter_than_its_seasonal_cycle_still_trains() {
        let (series, weeks, horizon) = (30, 40, 8);
        let pattern = [1.0, 0.7, 1.5, 0.8];
        let (mut history, mut actuals, mut keys) = (Vec::new(), Vec::new(), Vec::new());
        for s in 0..series {
            let level = 10.0 + 3.0 * s as f32;
            let y: Vec<f32> = (0..weeks + horizon).map(|t| level * pattern[(t + s) % 4]).collect();
            history.push(y[..weeks].to_vec());
            actuals.push(y[weeks..].to_vec());
            keys.push(SeriesKey { item_id: format!("i{s}"), location_id: "s".into() });
        }
        let end = NaiveDate::from_ymd_opt(2026, 6, 26).unwrap();
        let panel = Panel::new(keys, history, end, Frequency::Weekly);
        let mut gbt = Gbt::new(GbtConfig { trees: 60, ..GbtConfig::new(horizon, 52) });
        gbt.fit(&panel).expect("a short weekly panel trains");
        let ours = mae(&gbt.predict(&panel, horizon, &[0.1, 0.5, 0.9]).unwrap(), &actuals);
        let last = mae(&SeasonalNaive::new(1).predict(&panel, horizon, &[0.5]).unwrap(), &actuals);
        assert!(ours < 0.5 * last, "MAE {ours:.3} against {last:.3} repeating the last week");
    }
    /// Items sold at five locations each, with a yearly shape of their own that every location
    /// shares and heavy noise per location: one series' year-ago week is mostly noise, the same
    /// week over the item's five locations mostly shape. The pooled index is kept on the held-out
    /// periods (the card's anchors), forecasts better than the layout without it, and reloads.
    #[test]
    fn the_items_pooled_seasonal_index_is_kept_and_beats_one_series_year_ago_week() {
        let (items, locations, weeks, horizon) = (12, 5, 140, 13);
        let mut state = 11u64;
        let mut noise = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as f64 / (1u64 << 31) as f64) as f32
        };
        let shapes: Vec<Vec<f32>> = (0..items).map(|_| (0..52).map(|_| 0.4 + 1.6 * noise()).collect()).collect();
        let (mut history, mut actuals, mut keys) = (Vec::new(), Vec::new(), Vec::new());
        for (i, shape) in shapes.iter().enumerate() {
            for l in 0..locations {
                let level = 20.0 + 15.0 * l as f32;
                let y: Vec<f32> = (0..weeks + horizon).map(|t| level * shape[t % 52] * (0.4 + 1.2 * noise())).collect();
                history.push(y[..weeks].to_vec());
                actuals.push(y[weeks..].to_vec());
                keys.push(SeriesKey { item_id: format!("i{i}"), location_id: format!("l{l}") });
            }
        }
        let panel = Panel::new(keys, history, NaiveDate::from_ymd_opt(2026, 6, 26).unwrap(), Frequency::Weekly);
        let config = GbtConfig { trees: 100, ..GbtConfig::new(horizon, 52) };
        let mut pooled = Gbt::new(config.clone());
        pooled.fit(&panel).unwrap();
        let card = pooled.card().unwrap();
        assert_eq!(card["anchors"]["kept"], true, "{}", card["anchors"]);
        let mut alone = Gbt::new(GbtConfig { pooled: false, ..config });
        alone.fit(&panel).unwrap();
        let last_year = mae(&SeasonalNaive::new(52).predict(&panel, horizon, &[0.5]).unwrap(), &actuals);
        let forecast = pooled.predict(&panel, horizon, &[0.1, 0.5, 0.9]).unwrap();
        let (with, without) =
            (mae(&forecast, &actuals), mae(&alone.predict(&panel, horizon, &[0.5]).unwrap(), &actuals));
        // The noise alone leaves a perfect forecast 3/4 of seasonal naive's error.
        assert!(with < 0.85 * last_year, "MAE {with:.3} against seasonal naive's {last_year:.3}");
        assert!(with < 0.97 * without, "MAE {with:.3} with the pooled index, {without:.3} without");
        let mut restored = Gbt::new(GbtConfig::new(1, 1));
        restored.load(&pooled.save().unwrap()).unwrap();
        assert_eq!(restored.predict(&panel, horizon, &[0.1, 0.5, 0.9]).unwrap(), forecast);
    }
}
