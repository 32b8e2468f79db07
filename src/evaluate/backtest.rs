//! Rolling-origin backtests: every model refitted at each cutoff, scored on the periods after it.
//!
//! With `T` the last period with sales, cutoffs are `T − (W − i)·S` for `i = 0 … W−1` (step `S`,
//! the horizon by default — the protocol of `score.py`). At each cutoff every model is fitted on
//! the history up to it and forecasts `H` periods; the forecasts are compared with the actuals.
//! Because the target is point-in-time (see the leakage test), the history at a cutoff is the
//! full zero-filled series cut at that cutoff. Series with no sale by a cutoff are left out of
//! that window. Scores pool all series × steps × windows per model, and are also given per
//! window, per horizon step and per demand class.

use std::collections::{BTreeMap, HashMap};

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, instrument};

use crate::error::{Error, Result};
use crate::features::FeatureParams;
use crate::metrics;
use crate::models::ModelsConfig;
use crate::models::baseline::classify::{DemandClass, classify};
use crate::models::{self, Forecast};
use crate::panel::Panel;

/// What to backtest.
#[derive(Debug, Clone)]
pub struct BacktestOptions {
    /// Number of cutoffs.
    pub windows: usize,
    /// Periods forecast at each cutoff.
    pub horizon: usize,
    /// Periods between cutoffs.
    pub step: usize,
    /// Models, by registry name.
    pub models: Vec<String>,
    /// Whether the learned ensemble competes for the published forecast from the first scored
    /// window: one more unscored window is fitted before the others ([`warmup`]), so the
    /// ensemble forecasts the unscored window just before the first scored one, with weights
    /// from the window before that. The models' states stay behind at that extra window
    /// ([`Window::isolated`]), so every model forecasts as it would without it (a deep model or
    /// `gbt` continues from the window before only from the next one on, as before). One more
    /// window of member fits; `shelfcast backtest` sets it, the nightly (whose champion is
    /// crowned on its scored windows, every one of which the ensemble forecasts) does not.
    pub ensemble_from_first: bool,
}

impl BacktestOptions {
    /// `windows` cutoffs `step` periods apart, each forecasting `horizon` periods with `models`,
    /// without [`Self::ensemble_from_first`]'s extra warm-up window (the nightly's backtest).
    pub fn new(windows: usize, horizon: usize, step: usize, models: Vec<String>) -> Self {
        Self { windows, horizon, step, models, ensemble_from_first: false }
    }

    /// The same, with the ensemble competing from the first scored window or not
    /// ([`Self::ensemble_from_first`]).
    pub fn with_ensemble_from_first(self, ensemble_from_first: bool) -> Self {
        Self { ensemble_from_first, ..self }
    }
}

/// Accuracy over a set of rows.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Scores {
    /// Rows scored.
    pub n: usize,
    /// Mean absolute error.
    pub mae: Option<f64>,
    /// Mean squared error.
    pub mse: Option<f64>,
    /// Root mean squared error.
    pub rmse: Option<f64>,
    /// Weighted absolute percentage error (%).
    pub wape: Option<f64>,
    /// Symmetric MAPE (%).
    pub smape: Option<f64>,
    /// MAPE over non-zero actuals (%).
    pub mape: Option<f64>,
    /// Mean absolute scaled error (seasonal naive in sample).
    pub mase: Option<f64>,
    /// R².
    pub r2: Option<f64>,
    /// Mean error.
    pub bias: Option<f64>,
    /// Total error over total actual (%).
    pub bias_pct: Option<f64>,
    /// Pinball loss per quantile level.
    pub pinball: BTreeMap<String, f64>,
    /// Share of actuals within the 0.1–0.9 quantiles.
    pub coverage_80: Option<f64>,
}

/// One scored row.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredRow {
    /// Series.
    pub item_id: String,
    /// Series.
    pub location_id: String,
    /// Cutoff of the window.
    pub cutoff: NaiveDate,
    /// Period forecast.
    pub target_date: NaiveDate,
    /// Steps after the cutoff, from 1.
    pub step: usize,
    /// Actual.
    pub y: f64,
    /// Point forecast: the mean, or the point the model chose ([`Forecast::point`]).
    pub y_hat: f64,
    /// Quantile forecasts, in `levels` order.
    pub quantiles: Vec<f64>,
    /// Demand class of the series at the cutoff.
    pub class: DemandClass,
    /// In-sample seasonal-naive MAE up to the cutoff (MASE scale).
    pub scale: Option<f64>,
}

/// One model's backtest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelBacktest {
    /// Model name.
    pub model: String,
    /// Pooled over every window.
    pub overall: Scores,
    /// Per cutoff.
    pub per_window: BTreeMap<NaiveDate, Scores>,
    /// Per horizon step (1-based).
    pub per_step: BTreeMap<usize, Scores>,
    /// Per demand class.
    pub per_class: BTreeMap<String, Scores>,
    /// WRMSSE per level of the hierarchy (series, item, category, location, total) and their
    /// `mean`, averaged over the cutoffs; see [`super::hierarchy`].
    #[serde(default)]
    pub wrmsse: BTreeMap<String, f64>,
    /// Seconds spent forecasting with it over the windows (fits and predictions; an ensemble
    /// combining forecasts already made counts only the combining).
    #[serde(default)]
    pub seconds: f64,
    /// The scored cutoffs at which it could not forecast, with why. Its scores cover the other
    /// windows only, so it is no candidate for champion on this backtest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub failed: BTreeMap<NaiveDate, String>,
    /// Every scored row.
    #[serde(skip)]
    pub rows: Vec<ScoredRow>,
}

/// The result of a backtest (read back from a stored backtest's manifest without its rows).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BacktestReport {
    /// Cutoffs, oldest first.
    pub cutoffs: Vec<NaiveDate>,
    /// Horizon.
    pub horizon: usize,
    /// Quantile levels scored.
    pub levels: Vec<f64>,
    /// Season used for MASE.
    pub season: usize,
    /// Per model, in the order given.
    pub models: Vec<ModelBacktest>,
    /// The forecast the champion rule would have published at each window (see
    /// [`super::published`]); not a model, so never a candidate for champion.
    #[serde(default)]
    pub published: Option<super::published::Published>,
    /// The models that calibrate their own quantiles when fitted
    /// ([`models::calibrates_itself`]): the champion rule publishes their own quantiles, not
    /// re-scaled on the evidence ([`super::champion`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub self_calibrated: Vec<String>,
}

impl BacktestReport {
    /// Every model's scores, then the published forecast's when there is one.
    pub fn with_published(&self) -> impl Iterator<Item = &ModelBacktest> {
        self.models.iter().chain(self.published.as_ref().map(|p| &p.scores))
    }
}

/// What a backtest reads from the settings: the model registry's configuration and the grain of
/// the feature views (built by [`crate::settings::Settings::backtest_config`]).
#[derive(Debug, Clone)]
pub struct BacktestConfig {
    /// The models' configuration.
    pub models: ModelsConfig,
    /// The feature views' grain, horizon and week; the cutoff is each window's.
    pub features: FeatureParams,
    /// Epochs a deep model (one that [`models::Forecaster::warm_starts`]) continues the state it
    /// reached at the window before, as the nightly's train step continues the stored version;
    /// `None`: every window trains it from scratch (`[train] warm-backtest`).
    pub warm_epochs: Option<usize>,
    /// The champion rule the published forecast replays.
    pub champion: super::champion::ChampionSettings,
}

impl BacktestConfig {
    /// The feature parameters at `cutoff`.
    pub fn feature_params(&self, cutoff: NaiveDate) -> FeatureParams {
        let f = &self.features;
        FeatureParams::with_week_end(cutoff, f.frequency, f.horizon, f.week_end)
    }
}

/// The quantile levels a backtest scores: the configured ones plus 0.1, 0.5 and 0.9.
pub fn levels(config: &BacktestConfig) -> Vec<f64> {
    models::scored_levels(&config.models)
}

/// The panel as of `cutoff`: every series cut after it; series without history by then dropped.
/// Returns the panel and, per kept series, its index in `full`.
pub fn panel_at(full: &Panel, cutoff_index_from_end: usize) -> (Panel, Vec<usize>) {
    let (mut panel, index) = full.cut(cutoff_index_from_end);
    panel.covariates = None;
    (panel, index)
}

/// One backtest window: the panel as of its cutoff.
#[derive(Debug, Clone)]
pub struct Window {
    /// The panel cut at the cutoff (without covariates; attach those of the cutoff if needed).
    pub panel: Panel,
    /// Per series of `panel`, its index in the full panel.
    pub index: Vec<usize>,
    /// Last day of data.
    pub cutoff: NaiveDate,
    /// Periods between the cutoff and the full panel's end.
    pub from_end: usize,
    /// Whether the window is scored; an unscored one (before the first scored one) only gives
    /// the learned ensemble the validation forecasts of its members.
    pub scored: bool,
    /// Whether the models' states stay behind ([`BacktestOptions::ensemble_from_first`]'s extra
    /// window): the next window's models start from scratch, where they would without it, so
    /// that window changes no model's forecasts, only which the published forecast may take.
    pub isolated: bool,
}

/// The windows of a backtest, oldest first.
pub fn plan(full: &Panel, opts: &BacktestOptions) -> Result<Vec<Window>> {
    if opts.windows == 0 || opts.horizon == 0 || opts.step == 0 {
        return Err(Error::data("a backtest needs at least one window, a horizon and a step"));
    }
    let back = (opts.windows - 1) * opts.step + opts.horizon;
    let longest = full.values.iter().map(Vec::len).max().unwrap_or(0);
    if longest <= back {
        return Err(Error::data(format!(
            "{} windows of {} periods (step {}) need more than {back} periods of history; the longest series has {longest}",
            opts.windows, opts.horizon, opts.step
        )));
    }
    Ok((0..opts.windows)
        .map(|w| {
            let from_end = (opts.windows - w - 1) * opts.step + opts.horizon;
            let (panel, index) = panel_at(full, from_end);
            let cutoff = full.frequency.period_end(panel.end);
            Window { panel, index, cutoff, from_end, scored: true, isolated: false }
        })
        .collect())
}

/// Whether the learned ensemble of this backtest combines the member forecasts made at the
/// earlier windows (all its members are backtested too, and windows are one horizon apart, so
/// the earlier windows are the validation cutoffs fitting it would use) instead of being fitted.
pub fn ensemble_reuses_windows(config: &BacktestConfig, opts: &BacktestOptions) -> bool {
    opts.models.iter().any(|m| m == "ensemble")
        && opts.step == opts.horizon
        && models::ensemble_members(&config.models).iter().all(|m| opts.models.contains(m))
}

/// The unscored windows before the first of `plan` whose member forecasts the learned ensemble
/// validates on at the first windows (none unless [`ensemble_reuses_windows`]), one more with
/// [`BacktestOptions::ensemble_from_first`]; oldest first, only those with some history.
pub fn warmup(full: &Panel, config: &BacktestConfig, opts: &BacktestOptions) -> Vec<Window> {
    if !ensemble_reuses_windows(config, opts) || opts.windows == 0 {
        return Vec::new();
    }
    let first = (opts.windows - 1) * opts.step + opts.horizon;
    let longest = full.values.iter().map(Vec::len).max().unwrap_or(0);
    let validated = models::ensemble_config(&config.models).windows;
    (1..=validated + usize::from(opts.ensemble_from_first))
        .rev()
        .map(|k| first + k * opts.step)
        .filter(|&from_end| longest > from_end)
        .map(|from_end| {
            let (panel, index) = panel_at(full, from_end);
            let cutoff = full.frequency.period_end(panel.end);
            let isolated = from_end > first + validated * opts.step;
            Window { panel, index, cutoff, from_end, scored: false, isolated }
        })
        .collect()
}

/// What a backtest carries from one window to the next: the member forecasts of the latest
/// windows, which the learned ensemble validates on, and each deep model's state after its latest
/// window, which the next window continues (with [`BacktestConfig::warm_epochs`]).
#[derive(Debug, Default)]
pub struct Pool {
    windows: Vec<Held>,
    states: States,
}

/// Each deep model's saved state after its latest window, with that window's cutoff.
pub type States = std::collections::BTreeMap<String, (NaiveDate, Vec<u8>)>;

/// One window's member forecasts.
#[derive(Debug)]
struct Held {
    /// The panel cut at the window (without covariates).
    panel: Panel,
    /// Its series' indices in the full panel.
    index: Vec<usize>,
    /// Periods between the window's cutoff and the full panel's end.
    from_end: usize,
    /// Forecast by member name.
    forecasts: Vec<(String, Forecast)>,
}

impl Pool {
    /// Each deep model's state after the latest window it was fitted at, with that window's
    /// cutoff (empty without [`BacktestConfig::warm_epochs`]): what the nightly's train step
    /// continues when it would otherwise train from scratch.
    pub fn take_states(&mut self) -> States {
        std::mem::take(&mut self.states)
    }

    fn keep(&mut self, w: &Window, forecasts: Vec<(String, Forecast)>, most: usize) {
        let panel = Panel { covariates: None, ..w.panel.clone() };
        self.windows.push(Held { panel, index: w.index.clone(), from_end: w.from_end, forecasts });
        if self.windows.len() > most {
            self.windows.remove(0);
        }
    }

    /// Whether the pool holds every validation window the learned ensemble at window `w` reads:
    /// those one to `config.windows` horizons before it.
    fn holds_before(&self, w: &Window, config: &models::ensemble::EnsembleConfig) -> bool {
        (1..=config.windows).all(|k| self.windows.iter().any(|held| held.from_end == w.from_end + k * config.horizon))
    }

    /// The learned ensemble's weights at window `w` from the member forecasts held.
    fn weights(
        &self,
        full: &Panel,
        w: &Window,
        members: &[String],
        config: &models::ensemble::EnsembleConfig,
    ) -> models::ensemble::Weights {
        self.learn(full, w.from_end, members, config).0
    }

    /// The learned ensemble's weights at the end of `full` (the cutoff the nightly then fits
    /// at), when the pool holds every validation window that fitting there would use: the
    /// backtest's last windows, one to `config.windows` horizons before the end.
    pub fn weights_at_end(
        &self,
        full: &Panel,
        members: &[String],
        config: &models::ensemble::EnsembleConfig,
    ) -> Option<models::ensemble::Learned> {
        let complete = (1..=config.windows).all(|k| self.windows.iter().any(|w| w.from_end == k * config.horizon));
        if !complete {
            return None;
        }
        let (weights, card) = self.learn(full, 0, members, config);
        Some(models::ensemble::Learned { weights, card })
    }

    fn learn(
        &self,
        full: &Panel,
        cutoff_from_end: usize,
        members: &[String],
        config: &models::ensemble::EnsembleConfig,
    ) -> (models::ensemble::Weights, models::ensemble::SelectionCard) {
        let earlier: Vec<models::ensemble::Earlier<'_>> = self
            .windows
            .iter()
            .filter_map(|held| {
                let forecasts = members
                    .iter()
                    .map(|m| held.forecasts.iter().find(|(n, _)| n == m).map(|(_, f)| f))
                    .collect::<Option<Vec<_>>>()?;
                Some(models::ensemble::Earlier {
                    panel: &held.panel,
                    index: &held.index,
                    from_end: held.from_end,
                    forecasts,
                })
            })
            .collect();
        models::ensemble::weights_from(full, &earlier, cutoff_from_end, config, members.len())
    }
}

/// What one backtest window gave.
#[derive(Debug, Default)]
pub struct WindowRows {
    /// Per model that forecast, in `opts.models` order: its name, scored rows and seconds.
    pub forecast: Vec<(String, Vec<ScoredRow>, f64)>,
    /// Per model that could not: its name and why.
    pub failed: Vec<(String, String)>,
}

/// Fits and scores every model of `opts` on one window; rows per model, in `opts.models` order.
/// A model that cannot fit or forecast at a scored window is left out of it and named in
/// [`WindowRows::failed`]; the window fails only when no model forecast it (with the first
/// model's error, naming the window). The ensembles come last: they combine the forecasts of their members when those were
/// backtested too (same settings and seed: the forecasts refitting them would give), the learned
/// one with weights from the member forecasts of earlier windows in `pool`. An unscored window
/// ([`warmup`]) fits only the members (and the median of them, and the learned ensemble where
/// `pool` holds the windows before it), into `pool`, and gives their rows for the published
/// forecast's first choices ([`super::published`]); one a member cannot fit is left out. Per
/// model forecast, in `opts.models` order: its name, rows and seconds.
pub fn evaluate(
    full: &Panel,
    window: &Window,
    config: &BacktestConfig,
    opts: &BacktestOptions,
    pool: &mut Pool,
) -> Result<WindowRows> {
    let levels = levels(config);
    info!(cutoff = %window.cutoff, series = window.panel.len(), scored = window.scored, "backtest window");
    let members = models::ensemble_members(&config.models);
    let reuse = ensemble_reuses_windows(config, opts);
    let ensemble =
        models::ensemble::EnsembleConfig { horizon: opts.horizon, ..models::ensemble_config(&config.models) };
    // The models first, side by side; then the ensembles, which combine their forecasts.
    let singles: Vec<String> = match window.scored {
        true => opts.models.iter().filter(|m| !models::is_ensemble(m)).cloned().collect(),
        false => members.clone(),
    };
    let task = crate::progress::Task::start(
        if window.scored { "window models" } else { "warm-up models" },
        opts.models.len() as u64,
    );
    let mut done: Vec<(String, Forecast)> = Vec::new();
    let mut seconds: Vec<(String, f64)> = Vec::new();
    let mut failed: Vec<(String, Error)> = Vec::new();
    for (name, (f, secs)) in singles.iter().zip(fit_side_by_side(&singles, window, config, opts, pool, &task)) {
        match Error::model_outcome(f)? {
            Ok(f) => done.push((name.clone(), f)),
            Err(e) if !window.scored => {
                tracing::warn!(cutoff = %window.cutoff, model = %name, error = %e, "validation window left out");
                if window.isolated {
                    pool.states.clear();
                }
                return Ok(WindowRows::default());
            }
            Err(e) => {
                tracing::warn!(cutoff = %window.cutoff, model = %name, error = %e, "model left out of this backtest window");
                failed.push((name.clone(), e));
            }
        }
        seconds.push((name.clone(), secs));
    }
    for name in opts.models.iter().filter(|m| models::is_ensemble(m)) {
        let fitted: Option<Vec<&Forecast>> =
            members.iter().map(|m| done.iter().find(|(n, _)| n == m).map(|(_, f)| f)).collect();
        let (series, h) = (window.panel.len(), opts.horizon);
        let started = std::time::Instant::now();
        let combined = match (name.as_str(), fitted) {
            ("median", Some(fs)) => Some(models::median::combine(&fs, series, h, &levels)),
            ("ensemble", Some(fs)) if reuse && (window.scored || pool.holds_before(window, &ensemble)) => {
                let weights = pool.weights(full, window, &members, &ensemble);
                debug!(cutoff = %window.cutoff, weights = ?weights.global, "ensemble weights from earlier windows");
                let classes = models::ensemble::classes(&window.panel, &weights, ensemble.season);
                Some(models::ensemble::combine(&fs, &weights, classes.as_deref(), series, h, &levels))
            }
            _ => None,
        };
        let f = match combined {
            Some(f) => {
                task.inc(1);
                f
            }
            None if !window.scored => continue,
            // Members not backtested here (or one that failed): the ensemble fits them itself.
            None => match Error::model_outcome(
                fit_side_by_side(std::slice::from_ref(name), window, config, opts, pool, &task).remove(0).0,
            )? {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!(cutoff = %window.cutoff, model = %name, error = %e, "model left out of this backtest window");
                    failed.push((name.clone(), e));
                    continue;
                }
            },
        };
        seconds.push((name.clone(), started.elapsed().as_secs_f64()));
        done.push((name.clone(), f));
    }
    if reuse {
        let fs = done.iter().filter(|(n, _)| members.contains(n)).cloned().collect();
        pool.keep(window, fs, ensemble.windows);
    }
    if window.isolated {
        pool.states.clear();
    }
    if done.is_empty() && window.scored {
        return Err(match failed.into_iter().next() {
            // The data's own limits (too short a history) name the window and model they hit.
            Some((name, Error::Data(m))) => Error::Data(format!("backtest window {}, `{name}`: {m}", window.cutoff)),
            Some((_, e)) => e,
            None => Error::data(format!("backtest window {}: no model to forecast it", window.cutoff)),
        });
    }
    let mut out = Vec::new();
    for name in &opts.models {
        let Some((_, f)) = done.iter().find(|(n, _)| n == name) else { continue };
        let mut rows = Vec::new();
        score_window(
            &window.panel,
            &window.index,
            full,
            f,
            window.cutoff,
            window.from_end,
            &levels,
            config.models.season_length,
            &mut rows,
        );
        let secs = seconds.iter().find(|(n, _)| n == name).map_or(0.0, |(_, t)| *t);
        out.push((name.clone(), rows, secs));
    }
    Ok(WindowRows { forecast: out, failed: failed.into_iter().map(|(n, e)| (n, e.to_string())).collect() })
}

/// Fits `names` on a window and forecasts, side by side on [`models::lanes::Lanes`] (the slowest
/// to fit first), each deep model continuing its state in `pool`; per name, in order, the
/// forecast and the seconds its fit and forecast took.
fn fit_side_by_side(
    names: &[String],
    window: &Window,
    config: &BacktestConfig,
    opts: &BacktestOptions,
    pool: &mut Pool,
    task: &crate::progress::Task,
) -> Vec<(Result<Forecast>, f64)> {
    let levels = levels(config);
    let lanes = config.models.lanes(names.len());
    let settings = config.models.with_threads(lanes.threads);
    let jobs: Vec<(&String, States)> = names
        .iter()
        .map(|name| (name, pool.states.remove(name).map(|s| (name.clone(), s)).into_iter().collect()))
        .collect();
    let ran = lanes.run_starting_by(
        jobs,
        |(name, _)| models::fit_rank(name),
        |(name, mut states)| {
            let started = std::time::Instant::now();
            let _fitting = crate::progress::Task::start(format!("fit {name}"), 0);
            let forecast = models::build(name, &settings).and_then(|mut model| {
                fit_in_window(model.as_mut(), &window.panel, window.cutoff, config.warm_epochs, &mut states)?;
                model.predict(&window.panel, opts.horizon, &levels)
            });
            task.inc(1);
            (forecast, started.elapsed().as_secs_f64(), states)
        },
    );
    ran.into_iter()
        .map(|(forecast, secs, states)| {
            pool.states.extend(states);
            (forecast, secs)
        })
        .collect()
}

/// Fits `model` on a window's `panel`. A deep model, with `epochs`, continues the state it
/// reached at an earlier window of this backtest for at most that many epochs (from scratch when
/// there is none or it does not fit this panel, e.g. new items), and its state is kept for the
/// next window. Every state comes from an earlier cutoff, so no window sees later data.
fn fit_in_window(
    model: &mut dyn models::Forecaster,
    panel: &Panel,
    cutoff: NaiveDate,
    epochs: Option<usize>,
    states: &mut States,
) -> Result<()> {
    let Some(epochs) = epochs.filter(|_| model.warm_starts()) else {
        model.fit(panel)?;
        return Ok(());
    };
    match states.get(model.name()) {
        Some((_, parent)) => {
            if let (_, Some(why)) = models::warm::continue_or_fit(model, panel, parent, epochs)? {
                debug!(model = model.name(), reason = %why, "backtest window trains from scratch");
            }
        }
        None => {
            model.fit(panel)?;
        }
    }
    states.insert(model.name().to_string(), (cutoff, model.save()?));
    Ok(())
}

/// A backtest's rows as its windows come, per model in `opts.models` order (the unscored
/// warm-up windows' too, which only the published forecast reads), and the scored cutoffs.
struct Gathered {
    per_model: Vec<Model>,
    cutoffs: Vec<NaiveDate>,
}

/// One model's rows, seconds and failures so far.
struct Model {
    name: String,
    rows: Vec<ScoredRow>,
    seconds: f64,
    failed: BTreeMap<NaiveDate, String>,
}

impl Gathered {
    fn new(opts: &BacktestOptions) -> Self {
        let per_model = opts
            .models
            .iter()
            .map(|m| Model { name: m.clone(), rows: Vec::new(), seconds: 0.0, failed: BTreeMap::new() })
            .collect();
        Self { per_model, cutoffs: Vec::new() }
    }

    /// Adds a window's rows (its seconds only when it is scored) and the models that failed it.
    fn add(&mut self, cutoff: NaiveDate, scored: bool, out: WindowRows) {
        if scored {
            self.cutoffs.push(cutoff);
        }
        for (name, rows, secs) in out.forecast {
            if let Some(acc) = self.per_model.iter_mut().find(|m| m.name == name) {
                acc.rows.extend(rows);
                acc.seconds += if scored { secs } else { 0.0 };
            }
        }
        for (name, why) in out.failed {
            if let Some(acc) = self.per_model.iter_mut().find(|m| m.name == name) {
                acc.failed.insert(cutoff, why);
            }
        }
    }

    /// The report: every model's scores on the scored windows, and the published forecast's.
    fn report(self, config: &BacktestConfig, opts: &BacktestOptions) -> BacktestReport {
        let levels = levels(config);
        let season = config.models.season_length;
        let every: Vec<(&str, &[ScoredRow])> = self.per_model.iter().map(|m| (m.name.as_str(), &m.rows[..])).collect();
        let own = self_calibrated(&config.models);
        let published = super::published::replay(&every, &self.cutoffs, &config.champion, &levels, season, &own);
        let models = self
            .per_model
            .into_iter()
            .map(|Model { name, mut rows, seconds, failed }| {
                rows.retain(|r| self.cutoffs.contains(&r.cutoff));
                ModelBacktest { seconds, failed, ..summarise(&name, rows, &levels) }
            })
            .collect();
        BacktestReport {
            cutoffs: self.cutoffs,
            horizon: opts.horizon,
            levels,
            season,
            models,
            published,
            self_calibrated: own,
        }
    }
}

/// The configured models that calibrate their own quantiles ([`models::calibrates_itself`]).
pub fn self_calibrated(settings: &ModelsConfig) -> Vec<String> {
    settings.models.iter().filter(|m| models::calibrates_itself(settings, m)).cloned().collect()
}

/// Runs a backtest on `full`, the zero-filled panel up to the last period with sales, without
/// covariates (see [`run_in_lake`] for models that read them).
#[instrument(skip_all, fields(windows = opts.windows, horizon = opts.horizon, step = opts.step))]
pub fn run(full: &Panel, config: &BacktestConfig, opts: &BacktestOptions) -> Result<BacktestReport> {
    let windows = plan(full, opts)?;
    let mut gathered = Gathered::new(opts);
    let mut pool = Pool::default();
    let warm = warmup(full, config, opts);
    let task = crate::progress::Task::start("backtest windows", (warm.len() + windows.len()) as u64);
    for w in warm.iter().chain(&windows) {
        gathered.add(w.cutoff, w.scored, evaluate(full, w, config, opts, &mut pool)?);
        task.inc(1);
    }
    let mut r = gathered.report(config, opts);
    add_hierarchy(&mut r, full, &HashMap::new());
    Ok(r)
}

/// Scores each model's WRMSSE over the hierarchy ([`super::hierarchy`]); `categories` maps items
/// to their category (empty: no category level).
pub fn add_hierarchy(report: &mut BacktestReport, full: &Panel, categories: &HashMap<String, String>) {
    for m in report.models.iter_mut().chain(report.published.as_mut().map(|p| &mut p.scores)) {
        m.wrmsse = super::hierarchy::wrmsse_by_level(full, &m.rows, categories);
    }
}

/// Each item's category from the `items` table, empty when the lake has none.
pub async fn item_categories(ctx: &datafusion::prelude::SessionContext) -> Result<HashMap<String, String>> {
    use arrow::array::{Array, AsArray};
    let mut out = HashMap::new();
    let Ok(df) = ctx.sql("SELECT item_id, category FROM items").await else {
        return Ok(out);
    };
    let utf8 = |c: &arrow::array::ArrayRef| arrow::compute::cast(c, &arrow::datatypes::DataType::Utf8);
    for b in df.collect().await? {
        let (items, cats) = (utf8(b.column(0))?, utf8(b.column(1))?);
        let (items, cats) = (items.as_string::<i32>(), cats.as_string::<i32>());
        for r in 0..b.num_rows() {
            if !items.is_null(r) && !cats.is_null(r) {
                out.insert(items.value(r).to_string(), cats.value(r).to_string());
            }
        }
    }
    Ok(out)
}

/// Runs a backtest in the lake: when a model reads covariates, the feature tables of each
/// window's cutoff are materialised (point in time) and attached to that window's panel.
/// `torchscript` is left out (a user module has nothing to refit). Also gives the member
/// forecasts it kept for the learned ensemble (see [`Pool::weights_at_end`]).
pub async fn run_in_lake(
    ctx: &datafusion::prelude::SessionContext,
    lake: &crate::lake::Lake,
    full: std::sync::Arc<Panel>,
    config: &BacktestConfig,
    opts: &BacktestOptions,
    token: &str,
    clock: &dyn crate::clock::Clock,
) -> Result<(BacktestReport, Pool)> {
    let mut opts = opts.clone();
    opts.models = super::window::refittable(&opts.models);
    let as_of =
        super::window::AsOf::for_models(lake, config, &opts.models, opts.horizon)?.materializing(ctx, token, clock);
    let windows = plan(&full, &opts)?;
    let mut gathered = Gathered::new(&opts);
    let mut pool = Pool::default();
    let warm = warmup(&full, config, &opts);
    let task = crate::progress::Task::start("backtest windows", (warm.len() + windows.len()) as u64);
    for mut w in warm.into_iter().chain(windows) {
        let (cutoff, scored) = (w.cutoff, w.scored);
        w.panel = as_of.panel(w.panel, w.cutoff).await?;
        let (f, s, o) = (std::sync::Arc::clone(&full), config.clone(), opts.clone());
        let (rows, p) = crate::blocking::run(move || {
            let rows = evaluate(&f, &w, &s, &o, &mut pool);
            (rows, pool)
        })
        .await?;
        pool = p;
        crate::trim::release();
        gathered.add(cutoff, scored, rows?);
        task.inc(1);
    }
    let mut r = gathered.report(config, &opts);
    add_hierarchy(&mut r, &full, &item_categories(ctx).await?);
    Ok((r, pool))
}

#[allow(clippy::too_many_arguments)]
fn score_window(
    panel: &Panel,
    index: &[usize],
    full: &Panel,
    f: &Forecast,
    cutoff: NaiveDate,
    from_end: usize,
    levels: &[f64],
    season: usize,
    out: &mut Vec<ScoredRow>,
) {
    for (s, &i) in index.iter().enumerate() {
        let history = &panel.values[s];
        let hist64: Vec<f64> = history.iter().map(|v| *v as f64).collect();
        let scale = metrics::seasonal_naive_scale(&hist64, season);
        let class = classify(history, 2 * season);
        let actual = &full.values[i][full.values[i].len() - from_end..];
        for (h, &y) in actual.iter().enumerate().take(f.horizon) {
            out.push(ScoredRow {
                item_id: panel.keys[s].item_id.clone(),
                location_id: panel.keys[s].location_id.clone(),
                cutoff,
                target_date: panel.target_date(h + 1),
                step: h + 1,
                y: y as f64,
                y_hat: f.point_at(s, h) as f64,
                quantiles: (0..levels.len()).map(|q| f.quantile_at(s, h, q) as f64).collect(),
                class,
                scale,
            });
        }
    }
}

/// Scores a set of rows.
pub fn scores(rows: &[&ScoredRow], levels: &[f64]) -> Scores {
    let y: Vec<f64> = rows.iter().map(|r| r.y).collect();
    let f: Vec<f64> = rows.iter().map(|r| r.y_hat).collect();
    // Per series and cutoff: (sum of absolute errors, steps, the series' MASE scale).
    type SeriesErrors = (f64, usize, Option<f64>);
    let mut pairs: BTreeMap<(&str, &str, NaiveDate), SeriesErrors> = BTreeMap::new();
    for r in rows {
        let e = pairs.entry((r.item_id.as_str(), r.location_id.as_str(), r.cutoff)).or_insert((0.0, 0, r.scale));
        e.0 += (r.y_hat - r.y).abs();
        e.1 += 1;
    }
    let pairs: Vec<(f64, Option<f64>)> = pairs.values().map(|(s, n, scale)| (s / *n as f64, *scale)).collect();
    let column = |q: usize| rows.iter().map(|r| r.quantiles[q]).collect::<Vec<f64>>();
    let pos = |l: f64| levels.iter().position(|x| (x - l).abs() < 1e-9);
    Scores {
        n: rows.len(),
        mae: metrics::mae(&y, &f),
        mse: metrics::mse(&y, &f),
        rmse: metrics::rmse(&y, &f),
        wape: metrics::wape(&y, &f),
        smape: metrics::smape(&y, &f),
        mape: metrics::mape(&y, &f),
        mase: metrics::mase(&pairs).0,
        r2: metrics::r2(&y, &f),
        bias: metrics::bias(&y, &f),
        bias_pct: metrics::bias_pct(&y, &f),
        pinball: levels
            .iter()
            .enumerate()
            .filter_map(|(q, l)| metrics::pinball(&y, &column(q), *l).map(|v| (format!("{l}"), v)))
            .collect(),
        coverage_80: match (pos(0.1), pos(0.9)) {
            (Some(lo), Some(hi)) => metrics::coverage(&y, &column(lo), &column(hi)),
            _ => None,
        },
    }
}

/// One model's scores from its rows: overall, per window (cutoff), per step and per demand class.
pub(crate) fn summarise(name: &str, rows: Vec<ScoredRow>, levels: &[f64]) -> ModelBacktest {
    let all: Vec<&ScoredRow> = rows.iter().collect();
    let group = |key: &dyn Fn(&ScoredRow) -> String| {
        let mut g: BTreeMap<String, Vec<&ScoredRow>> = BTreeMap::new();
        for r in &rows {
            g.entry(key(r)).or_default().push(r);
        }
        g
    };
    let mut per_window = BTreeMap::new();
    let mut per_step = BTreeMap::new();
    let mut by_cutoff: BTreeMap<NaiveDate, Vec<&ScoredRow>> = BTreeMap::new();
    let mut by_step: BTreeMap<usize, Vec<&ScoredRow>> = BTreeMap::new();
    for r in &rows {
        by_cutoff.entry(r.cutoff).or_default().push(r);
        by_step.entry(r.step).or_default().push(r);
    }
    for (c, rs) in by_cutoff {
        per_window.insert(c, scores(&rs, levels));
    }
    for (s, rs) in by_step {
        per_step.insert(s, scores(&rs, levels));
    }
    let per_class =
        group(&|r| r.class.as_str().to_string()).into_iter().map(|(k, rs)| (k, scores(&rs, levels))).collect();
    ModelBacktest {
        model: name.to_string(),
        overall: scores(&all, levels),
        per_window,
        per_step,
        per_class,
        wrmsse: BTreeMap::new(),
        seconds: 0.0,
        failed: BTreeMap::new(),
        rows,
    }
}

/// The rows of a backtest in the canonical format of `score.py`:
/// `unique_id, ds, cutoff, y_hat, y_lo, y_hi, method` (`y_lo`/`y_hi`: the 0.1 and 0.9 quantiles),
/// then `y_median`, the 0.5 quantile (null when the backtest did not forecast it), which the
/// scorer does not read: the median is the point an absolute error (MAE, WAPE, MASE) rewards;
/// and `class`, the series' demand class at the cutoff (the champions' segment), to slice the
/// scores by.
pub fn canonical_batch(report: &BacktestReport) -> Result<arrow::record_batch::RecordBatch> {
    use arrow::array::{ArrayRef, Date32Builder, Float64Builder, StringBuilder};
    use std::sync::Arc;
    let epoch = crate::days::epoch();
    let lo = report.levels.iter().position(|l| (l - 0.1).abs() < 1e-9);
    let hi = report.levels.iter().position(|l| (l - 0.9).abs() < 1e-9);
    let median = report.levels.iter().position(|l| (l - 0.5).abs() < 1e-9);
    let (mut ymedian, mut class) = (Float64Builder::new(), StringBuilder::new());
    let (mut id, mut ds, mut cutoff, mut yhat, mut ylo, mut yhi, mut method) = (
        StringBuilder::new(),
        Date32Builder::new(),
        Date32Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        StringBuilder::new(),
    );
    for m in report.with_published() {
        for r in &m.rows {
            id.append_value(format!("{}/{}", r.item_id, r.location_id));
            ds.append_value((r.target_date - epoch).num_days() as i32);
            cutoff.append_value((r.cutoff - epoch).num_days() as i32);
            yhat.append_value(r.y_hat);
            ylo.append_option(lo.map(|q| r.quantiles[q]));
            yhi.append_option(hi.map(|q| r.quantiles[q]));
            ymedian.append_option(median.map(|q| r.quantiles[q]));
            method.append_value(&m.model);
            class.append_value(r.class.as_str());
        }
    }
    Ok(arrow::record_batch::RecordBatch::try_from_iter(vec![
        ("unique_id", Arc::new(id.finish()) as ArrayRef),
        ("ds", Arc::new(ds.finish())),
        ("cutoff", Arc::new(cutoff.finish())),
        ("y_hat", Arc::new(yhat.finish())),
        ("y_lo", Arc::new(ylo.finish())),
        ("y_hi", Arc::new(yhi.finish())),
        ("method", Arc::new(method.finish())),
        ("y_median", Arc::new(ymedian.finish())),
        ("class", Arc::new(class.finish())),
    ])?)
}

/// The actuals of a panel in `score.py`'s format: `unique_id, ds, y` over the whole history.
pub fn actuals_batch(full: &Panel) -> Result<arrow::record_batch::RecordBatch> {
    use arrow::array::{ArrayRef, Date32Builder, Float64Builder, StringBuilder};
    use std::sync::Arc;
    let epoch = crate::days::epoch();
    let (mut id, mut ds, mut y) = (StringBuilder::new(), Date32Builder::new(), Float64Builder::new());
    let step = full.frequency.days();
    for (k, v) in full.keys.iter().zip(&full.values) {
        let start = full.end - Duration::days(step * (v.len() as i64 - 1));
        for (t, value) in v.iter().enumerate() {
            id.append_value(format!("{}/{}", k.item_id, k.location_id));
            ds.append_value((start + Duration::days(step * t as i64) - epoch).num_days() as i32);
            y.append_value(*value as f64);
        }
    }
    Ok(arrow::record_batch::RecordBatch::try_from_iter(vec![
        ("unique_id", Arc::new(id.finish()) as ArrayRef),
        ("ds", Arc::new(ds.finish())),
        ("y", Arc::new(y.finish())),
    ])?)
}

/// The zero-filled panel up to the last day with sales, read through the (cleaned) `sales` table of
/// `ctx`, and that day.
pub async fn full_panel(
    ctx: &datafusion::prelude::SessionContext,
    config: &BacktestConfig,
) -> Result<(Panel, NaiveDate)> {
    use crate::features::{self, queries};
    let last = features::last_sales_date(ctx).await?.ok_or_else(|| Error::data("the sales table has no rows"))?;
    let params = config.feature_params(last);
    let rows = features::dataframe(ctx, &queries::TARGET, params).await?.execute_stream().await?;
    let end = config.models.frequency.period_start(params.cutoff);
    let closures = crate::panel::Closures::query(ctx, params).await?;
    Ok((Panel::from_stream(rows, config.models.frequency, end).await?.with_closures(closures), params.cutoff))
}

/// A rolling-origin backtest of `full` run and stored under `metrics/backtest/run_id=…/` (with
/// `extra` fields in its manifest): the one operation behind `shelfcast backtest` and the nightly's
/// `backtest` step. Returns the report, the validation forecasts the learned ensemble weighs, and
/// the forecast rows stored.
#[allow(clippy::too_many_arguments)]
pub async fn run_and_store(
    ctx: &datafusion::prelude::SessionContext,
    lake: &crate::lake::Lake,
    full: std::sync::Arc<Panel>,
    config: &BacktestConfig,
    opts: &BacktestOptions,
    run_id: &str,
    extra: serde_json::Map<String, serde_json::Value>,
    clock: &dyn crate::clock::Clock,
) -> Result<(BacktestReport, Pool, arrow::record_batch::RecordBatch)> {
    let (report, pool) = run_in_lake(ctx, lake, full, config, opts, run_id, clock).await?;
    let rows = store(lake, run_id, &report, extra, clock).await?;
    Ok((report, pool, rows))
}

/// Writes a backtest to `metrics/backtest/run_id=…/`: its forecasts in the canonical format,
/// and the scores (with `extra` fields) in the manifest. Returns the rows written.
pub async fn store(
    lake: &crate::lake::Lake,
    run_id: &str,
    report: &BacktestReport,
    extra: serde_json::Map<String, serde_json::Value>,
    clock: &dyn crate::clock::Clock,
) -> Result<arrow::record_batch::RecordBatch> {
    let rows = canonical_batch(report)?;
    let dir = crate::lake::layout::backtest(run_id);
    let mut w = crate::lake::dataset::DatasetWriter::new(lake, dir, "metrics/backtest", run_id, rows.schema());
    w.write(rows.clone()).await?;
    let mut meta = extra;
    meta.insert("run_id".into(), run_id.into());
    meta.insert("report".into(), serde_json::to_value(report)?);
    w.commit(clock.now(), meta).await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::SeriesKey;
    use crate::period::Frequency;
    use crate::settings::{Overrides, Settings, SettingsFile};

    fn settings() -> BacktestConfig {
        let o = Overrides { threads: Some(1), ..Default::default() };
        Settings::resolve(SettingsFile::default(), o, std::path::PathBuf::from("/tmp"), None).unwrap().backtest_config()
    }

    #[test]
    fn windows_are_cut_at_the_right_periods_and_scored_against_what_followed() {
        // A series that counts 1, 2, 3, …: naive forecasts the last value, so at a cutoff
        // whose last value is v the error at step h is exactly h.
        let full = Panel::new(
            vec![SeriesKey { item_id: "a".into(), location_id: "s".into() }],
            vec![(1..=30).map(|v| v as f32).collect()],
            NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(),
            Frequency::Daily,
        );
        let opts = BacktestOptions::new(3, 4, 4, vec!["naive".into()]);
        let r = run(&full, &settings(), &opts).unwrap();
        let d = |x| NaiveDate::from_ymd_opt(2026, 1, x).unwrap();
        assert_eq!(r.cutoffs, vec![d(18), d(22), d(26)]);
        let m = &r.models[0];
        assert_eq!(m.overall.n, 12);
        assert_eq!(m.overall.mae, Some(2.5));
        assert_eq!(m.per_step[&1].mae, Some(1.0));
        assert_eq!(m.per_step[&4].mae, Some(4.0));
        let first = &m.rows[0];
        assert_eq!((first.target_date, first.y, first.y_hat), (d(19), 19.0, 18.0));
    }

    fn two_series(n: usize) -> Panel {
        let keys = (0..2).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect();
        let values = (0..2).map(|k| (0..n).map(|t| ((t * (k + 3)) % 7) as f32 + k as f32).collect()).collect();
        Panel::new(keys, values, NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(), Frequency::Daily)
    }

    /// Settings with these models and a horizon of 7 (a fitted ensemble validates on the horizon).
    fn with_models(models: &[&str]) -> BacktestConfig {
        let models: Vec<String> = models.iter().map(|m| m.to_string()).collect();
        let o = Overrides { threads: Some(1), models: Some(models), horizon: Some(7), ..Default::default() };
        Settings::resolve(SettingsFile::default(), o, std::path::PathBuf::from("/tmp"), None).unwrap().backtest_config()
    }

    fn y_hat(m: &ModelBacktest) -> Vec<f64> {
        m.rows.iter().map(|r| r.y_hat).collect()
    }

    #[test]
    fn the_median_combines_the_members_backtested_before_it() {
        let full = two_series(40);
        let s = with_models(&["naive", "seasonal_naive", "median"]);
        let both = BacktestOptions::new(2, 7, 7, s.models.models.clone());
        let alone = BacktestOptions { models: vec!["median".into()], ..both.clone() };
        let (a, b) = (run(&full, &s, &both).unwrap(), run(&full, &s, &alone).unwrap());
        // Combining the members' forecasts gives what fitting the median on its own gives: with
        // two members, the median is their mean.
        assert_eq!(y_hat(&a.models[2]), y_hat(&b.models[0]));
        for ((e, n), s) in y_hat(&a.models[2]).iter().zip(y_hat(&a.models[0])).zip(y_hat(&a.models[1])) {
            assert!((e - (n + s) / 2.0).abs() < 1e-5, "{e} vs {n} and {s}");
        }
    }

    /// Weekly cycles with a level that steps up now and then, so the members take turns.
    fn seasonal(n: usize) -> Panel {
        let week = [2.0, 3.0, 5.0, 4.0, 8.0, 12.0, 6.0];
        let keys = (0..6).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect();
        let values = (0..6)
            .map(|k| {
                (0..n)
                    .map(|t| week[t % 7] * (1.0 + k as f32 / 3.0) + ((t * 7 + k * 3) % 5) as f32 + (t / 20) as f32)
                    .collect()
            })
            .collect();
        Panel::new(keys, values, NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(), Frequency::Daily)
    }

    #[test]
    fn the_learned_ensemble_in_a_backtest_is_what_fitting_it_at_each_cutoff_gives() {
        let full = seasonal(120);
        let s = with_models(&["naive", "seasonal_naive", "moving_average", "ensemble"]);
        let both = BacktestOptions::new(3, 7, 7, s.models.models.clone());
        assert!(ensemble_reuses_windows(&s, &both));
        let alone = BacktestOptions { models: vec!["ensemble".into()], ..both.clone() };
        assert!(!ensemble_reuses_windows(&s, &alone));
        let (a, b) = (run(&full, &s, &both).unwrap(), run(&full, &s, &alone).unwrap());
        // Weights from the members' forecasts at the earlier windows (and one unscored window
        // before the first) are the weights fitting the ensemble at each cutoff learns.
        assert_eq!(y_hat(&a.models[3]), y_hat(&b.models[0]));
        assert_eq!(a.cutoffs, b.cutoffs);
        // It is not the median of them: seasonal naive gets most of the weight here.
        let mae = |m: &ModelBacktest| m.overall.mae.unwrap();
        assert!(mae(&a.models[3]) < mae(&a.models[0]), "{} vs naive {}", mae(&a.models[3]), mae(&a.models[0]));
    }

    #[test]
    fn from_the_first_window_the_ensemble_forecasts_the_warm_up_window_before_it() {
        let full = seasonal(120);
        let s = with_models(&["naive", "seasonal_naive", "moving_average", "ensemble"]);
        let opts = BacktestOptions::new(2, 7, 7, s.models.models.clone()).with_ensemble_from_first(true);
        let warm = warmup(&full, &s, &opts);
        assert_eq!(warm.len(), 2, "one warm-up window more than the ensemble validates on");
        assert_eq!(warmup(&full, &s, &BacktestOptions { ensemble_from_first: false, ..opts.clone() }).len(), 1);
        let mut pool = Pool::default();
        let ensemble =
            |w: &WindowRows| w.forecast.iter().find(|(n, ..)| n == "ensemble").map(|(_, rows, _)| rows.clone());
        // The oldest window has none before it to learn weights on.
        assert!(ensemble(&evaluate(&full, &warm[0], &s, &opts, &mut pool).unwrap()).is_none());
        let second = ensemble(&evaluate(&full, &warm[1], &s, &opts, &mut pool).unwrap()).expect("an ensemble forecast");
        // What fitting the ensemble at that cutoff gives (a backtest of it alone, whose windows
        // reach back to it).
        let alone = BacktestOptions { windows: 4, models: vec!["ensemble".into()], ..opts.clone() };
        let fitted = run(&full, &s, &alone).unwrap();
        let at = |rows: &[ScoredRow]| {
            rows.iter().filter(|r| r.cutoff == warm[1].cutoff).map(|r| r.y_hat).collect::<Vec<_>>()
        };
        assert!(!second.is_empty());
        assert_eq!(at(&second), at(&fitted.models[0].rows));
        // Only the published forecast reads it: the ensemble is scored on the scored windows alone.
        let r = run(&full, &s, &opts).unwrap();
        assert_eq!(r.cutoffs.len(), 2);
        assert!(r.models[3].rows.iter().all(|row| r.cutoffs.contains(&row.cutoff)));
        assert_eq!(r.models[3].overall.n, r.models[0].overall.n);
    }

    #[test]
    fn the_extra_warm_up_window_changes_no_models_forecasts() {
        let full = seasonal(120);
        let s = with_models(&["seasonal_naive", "gbt", "ensemble"]);
        assert!(s.warm_epochs.is_some(), "gbt continues from the window before");
        let opts = BacktestOptions::new(2, 7, 7, s.models.models.clone()).with_ensemble_from_first(true);
        let (a, b) = (
            run(&full, &s, &opts).unwrap(),
            run(&full, &s, &BacktestOptions { ensemble_from_first: false, ..opts }).unwrap(),
        );
        for (with, without) in a.models.iter().zip(&b.models) {
            assert_eq!(y_hat(with), y_hat(without), "{}", with.model);
        }
    }

    /// Seasonal series, a copy whose last horizon (7 periods) repeats the value before it, and a
    /// two-window backtest of naive, seasonal naive and the learned ensemble.
    fn flat_after_the_last_cutoff() -> (Panel, Panel, BacktestConfig, BacktestOptions) {
        let (h, full) = (7, seasonal(100));
        let mut flat = full.clone();
        for y in &mut flat.values {
            let n = y.len();
            let last = y[n - h - 1];
            y[n - h..].fill(last);
        }
        let s = with_models(&["naive", "seasonal_naive", "ensemble"]);
        let opts = BacktestOptions::new(2, h, h, s.models.models.clone());
        (full, flat, s, opts)
    }

    #[test]
    fn a_windows_own_actuals_never_reach_its_ensemble_weights() {
        // Seasonal naive wins on every period up to the last cutoff; after it the series go
        // flat, where naive wins. Weights that saw the scored periods would move to naive.
        let (full, flat, s, opts) = flat_after_the_last_cutoff();
        let alone = BacktestOptions { models: vec!["ensemble".into()], ..opts.clone() };
        for o in [&opts, &alone] {
            let (a, b) = (run(&full, &s, o).unwrap(), run(&flat, &s, o).unwrap());
            let e = o.models.iter().position(|m| m == "ensemble").unwrap();
            let last = |r: &BacktestReport| {
                let c = *r.cutoffs.last().unwrap();
                r.models[e].rows.iter().filter(|row| row.cutoff == c).map(|row| row.y_hat).collect::<Vec<_>>()
            };
            assert_eq!(last(&a), last(&b), "the last window's forecasts moved with its own actuals");
            // The actuals did change what is scored.
            assert_ne!(a.models[e].overall.mae, b.models[e].overall.mae);
        }
    }

    #[test]
    fn the_published_forecast_is_each_segments_champion_chosen_before_the_window() {
        // As above: after the last cutoff the series go flat, where naive would win.
        let (full, flat, s, opts) = flat_after_the_last_cutoff();
        let (a, b) = (run(&full, &s, &opts).unwrap(), run(&flat, &s, &opts).unwrap());
        let p = a.published.as_ref().expect("several models: a published forecast");
        // The warm-up window gives the first cutoff its evidence.
        assert_eq!(p.champions.keys().copied().collect::<Vec<_>>(), a.cutoffs);
        assert_eq!(p.scores.overall.n, a.models[0].overall.n, "every series at every window");
        for row in &p.scores.rows {
            let segment = &p.champions[&row.cutoff];
            let model = segment.get(row.class.as_str()).expect("the series' segment has a champion");
            let m = a.models.iter().find(|m| &m.model == model).unwrap();
            let same = m.rows.iter().find(|r| (r.cutoff, &r.item_id, r.step) == (row.cutoff, &row.item_id, row.step));
            assert_eq!(same.map(|r| r.y_hat), Some(row.y_hat), "the champion's own forecast");
        }
        // Seasonal naive wins before the last cutoff; the flat periods after it change nothing.
        let last = *a.cutoffs.last().unwrap();
        assert_eq!(p.champions[&last], b.published.as_ref().unwrap().champions[&last]);
        assert!(p.champions[&last].values().all(|m| m != "naive"), "{:?}", p.champions[&last]);
        // It is not a candidate: the registry decides on the models alone.
        assert!(a.models.iter().all(|m| m.model != super::super::published::PUBLISHED));
        let export = canonical_batch(&a).unwrap();
        assert_eq!(export.num_rows(), 4 * a.models[0].overall.n, "three models and the published rows");
        // The median rides along, the 0.5 quantile of each row.
        let at = a.levels.iter().position(|l| *l == 0.5).expect("the backtest forecasts the median");
        let column = export.column_by_name("y_median").expect("the median column");
        assert_eq!(arrow::array::Array::null_count(column.as_ref()), 0);
        let median = column.as_any().downcast_ref::<arrow::array::Float64Array>().unwrap();
        assert_eq!(median.value(0), a.models[0].rows[0].quantiles[at]);
        // So does each row's demand class, the segment its champion was chosen in.
        let class = export.column_by_name("class").expect("the class column");
        let class = class.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
        let rows: Vec<&ScoredRow> = a.with_published().flat_map(|m| &m.rows).collect();
        assert_eq!(arrow::array::Array::len(class), rows.len());
        assert!(rows.iter().enumerate().all(|(i, r)| class.value(i) == r.class.as_str()));
    }

    #[test]
    fn too_short_a_history_is_refused() {
        let full = Panel::new(
            vec![SeriesKey { item_id: "a".into(), location_id: "s".into() }],
            vec![vec![1.0; 10]],
            NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(),
            Frequency::Daily,
        );
        let opts = BacktestOptions::new(3, 4, 4, vec!["naive".into()]);
        assert!(run(&full, &settings(), &opts).unwrap_err().to_string().contains("need more than 12 periods"));

        // Long enough for the windows, too short for a model at the first: the error names the
        // window and the model.
        let full = Panel::new(
            vec![SeriesKey { item_id: "a".into(), location_id: "s".into() }],
            vec![(0..30).map(|t| (t % 7) as f32).collect()],
            NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(),
            Frequency::Daily,
        );
        let opts = BacktestOptions::new(3, 7, 7, vec!["gbt".into()]);
        let e = run(&full, &settings(), &opts).unwrap_err().to_string();
        assert!(e.starts_with("backtest window 2026-01-09, `gbt`: "), "{e}");
    }

    /// A model the history is too short for at a window is left out of that window with why,
    /// the others are scored on every window, and it is no candidate for champion: the backtest
    /// does not fail for it.
    #[test]
    fn a_model_that_cannot_fit_at_a_window_is_left_out_of_it_and_the_others_go_on() {
        let full = Panel::new(
            vec![SeriesKey { item_id: "a".into(), location_id: "s".into() }],
            vec![(0..30).map(|t| ((t % 7) + (t * 3 % 5)) as f32).collect()],
            NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(),
            Frequency::Daily,
        );
        let opts = BacktestOptions::new(3, 7, 7, vec!["naive".into(), "gbt".into()]);
        let r = run(&full, &with_models(&["naive", "gbt"]), &opts).unwrap();
        let first = NaiveDate::from_ymd_opt(2026, 1, 9).unwrap();
        assert_eq!(r.cutoffs.len(), 3);
        let (naive, gbt) = (&r.models[0], &r.models[1]);
        assert_eq!(naive.per_window.len(), 3, "the other model is scored on every window");
        assert!(naive.failed.is_empty());
        assert!(gbt.failed[&first].contains("history"), "{:?}", gbt.failed);
        assert!(!gbt.per_window.contains_key(&first));
        assert_eq!(gbt.per_window.len() + gbt.failed.len(), 3);
        assert!(gbt.rows.iter().all(|row| row.cutoff != first));
        // Never a champion on a backtest it could not forecast whole, even where it wins.
        let mut registry = super::super::champion::Registry::default();
        let settings = super::super::champion::ChampionSettings::default();
        let decisions = registry.decide(&r, &settings, "run", super::super::champion::Evidence::Backtest);
        assert!(!decisions.is_empty());
        assert!(registry.segments.values().all(|c| c.model == "naive"), "{:?}", registry.segments);
        // The score table says which cutoffs it missed and why.
        let done = crate::output::backtest::BacktestDone {
            run_id: "b".into(),
            location: "l".into(),
            series: 1,
            last_sales_date: full.end,
            seconds: 0.0,
            report: r.clone(),
        };
        let text = crate::output::backtest::backtest(&done);
        assert!(text.contains("gbt could not forecast") && text.contains("2026-01-09: "), "{text}");
    }

    /// A deep model's stand-in: its state is the number of epochs it has trained, and it says
    /// how each fit started.
    #[derive(Debug)]
    struct Counting {
        epochs: usize,
        log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
        refuse: bool,
    }

    impl models::Forecaster for Counting {
        fn name(&self) -> &str {
            "deep"
        }
        fn fit(&mut self, _: &Panel) -> Result<models::FitReport> {
            self.epochs = 20;
            self.log.lock().unwrap().push("scratch".into());
            Ok(models::FitReport { model: "deep".into(), series: 1, observations: 1 })
        }
        fn fit_warm(&mut self, _: &Panel, parent: &[u8], epochs: usize) -> Result<models::Warm> {
            if self.refuse {
                return Ok(models::Warm::Incompatible("new items".into()));
            }
            self.epochs = usize::from_le_bytes(parent.try_into().unwrap()) + epochs;
            self.log.lock().unwrap().push(format!("continued to {}", self.epochs));
            Ok(models::Warm::Continued(models::FitReport { model: "deep".into(), series: 1, observations: 1 }))
        }
        fn warm_starts(&self) -> bool {
            true
        }
        fn predict(&self, _: &Panel, _: usize, _: &[f64]) -> Result<Forecast> {
            unreachable!("not predicted here")
        }
        fn save(&self) -> Result<Vec<u8>> {
            Ok(self.epochs.to_le_bytes().to_vec())
        }
        fn load(&mut self, _: &[u8]) -> Result<()> {
            Ok(())
        }
    }

    #[test]
    fn each_window_continues_the_deep_models_state_of_the_window_before() {
        let panel = two_series(40);
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut states = std::collections::BTreeMap::new();
        let window = |epochs: Option<usize>, refuse: bool, states: &mut _| {
            let mut m = Counting { epochs: 0, log: log.clone(), refuse };
            fit_in_window(&mut m, &panel, panel.end, epochs, states).unwrap();
        };
        // The first window trains from scratch; each later one continues the one before.
        for _ in 0..3 {
            window(Some(4), false, &mut states);
        }
        assert_eq!(*log.lock().unwrap(), ["scratch", "continued to 24", "continued to 28"]);
        // A state that does not fit the window's panel: from scratch, and that state goes on.
        window(Some(4), true, &mut states);
        window(Some(4), false, &mut states);
        assert_eq!(log.lock().unwrap()[3..], ["scratch", "continued to 24"]);
        // Without warm windows every window trains from scratch and no state is kept.
        log.lock().unwrap().clear();
        let mut none = std::collections::BTreeMap::new();
        window(None, false, &mut none);
        window(None, false, &mut none);
        assert_eq!(*log.lock().unwrap(), ["scratch", "scratch"]);
        assert!(none.is_empty());
    }
}
