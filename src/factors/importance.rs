//! Group importance: how much accuracy each model loses on backtest windows when a factor
//! group's covariates are scrambled (or removed and the model refitted).
//!
//! **Permute** (the default): at each window the model is fitted once on the panel as of the
//! cutoff, with its covariates; then, for every group and repeat, the covariate values of the
//! group are shuffled over the panel ([`permute`]: a seeded permutation of the series × period
//! cells, the group's columns moving together so their relation holds; calendar columns, shared
//! by every series, over the periods) and the fitted model predicts again. Nothing is refitted:
//! predicting costs a fraction of fitting for the deep models. The importance of a group is the
//! increase of MAE and WAPE over the windows against the unpermuted forecast, with its mean,
//! standard deviation, minimum and maximum over the repeats. Every repeat of every group uses
//! the same permutation for every model (common random numbers), so models compare on the same
//! scrambles; each scramble is made once, used by every model and dropped, so memory holds the
//! fitted models and one extra copy of the covariates.
//!
//! **Refit**: the group's columns are set to their neutral values (no promotion, usual price, no
//! event nearby: [`neutralize`]) and the model is fitted and predicts on that panel, once per
//! window (a refit is deterministic for a seed, so it has no spread).
//!
//! The ensembles recombine ([`crate::models::ensemble::combine`], [`crate::models::median::combine`])
//! their members' forecasts under the same scramble, the learned one with the weights it learnt at
//! the window. A model that reads no covariates (the statistical baselines) is reported
//! with an importance of 0 and the method `not_read`; a group no covariate column carries
//! (a configured group whose patterns name only regression terms) with 0 and `no_columns`.
//!
//! The calendar groups `weekly` and `yearly` are measured on the models that read the calendar
//! of the dates ([`crate::models::Forecaster::reads_calendar`]: the
//! deep models, `gbt`): the panel's calendar is scrambled ([`crate::panel::calendar::Scramble`])
//! instead of covariate columns, the day of the week only at a daily grain. Models that learn
//! their cycles from the order of the history, and the level and trend for every model, get no
//! value and `not_applicable`.
//!
//! Losses are pooled over the windows, for all series (`scope = all`) and for the series of each
//! category and each location.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tracing::{info, info_span, instrument};

use super::groups::FactorSettings;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::evaluate::backtest::BacktestConfig;
use crate::evaluate::backtest::{self, BacktestOptions, Window};
use crate::evaluate::window;
use crate::features;
use crate::lake::Lake;
use crate::models::{self, Forecast, Forecaster};
use crate::panel::{Covariates, Panel};

/// How a group is taken away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// Shuffle the group's covariates over the panel; predict with the model fitted once.
    #[default]
    Permute,
    /// Set the group's covariates to neutral values and refit.
    Refit,
}

impl Method {
    /// The name in settings and outputs.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Permute => "permute",
            Method::Refit => "refit",
        }
    }
}

impl std::str::FromStr for Method {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "permute" => Ok(Method::Permute),
            "refit" => Ok(Method::Refit),
            _ => Err(format!("unknown importance method `{s}`: permute or refit")),
        }
    }
}

/// `[factors.importance]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ImportanceSettings {
    /// Whether the nightly `factors` step measures it (off by default: it fits every model on
    /// each window once more).
    #[serde(default)]
    pub enabled: bool,
    /// Permutations per group (permute).
    #[serde(default = "default_repeats")]
    pub repeats: usize,
    /// `permute` or `refit`.
    #[serde(default)]
    pub method: Method,
    /// Models measured (default: the configured models).
    #[serde(default)]
    pub models: Vec<String>,
    /// Backtest windows (the last ones, a horizon apart).
    #[serde(default = "default_windows")]
    pub windows: usize,
}

fn default_repeats() -> usize {
    3
}

fn default_windows() -> usize {
    1
}

impl Default for ImportanceSettings {
    fn default() -> Self {
        Self { enabled: false, repeats: default_repeats(), method: Method::Permute, models: vec![], windows: 1 }
    }
}

impl ImportanceSettings {
    /// Checks the values; the error names the key.
    pub fn validate(&self) -> std::result::Result<(), (String, String)> {
        if self.repeats == 0 || self.repeats > 100 {
            return Err(("factors.importance.repeats".into(), "between 1 and 100".into()));
        }
        if self.windows == 0 || self.windows > 52 {
            return Err(("factors.importance.windows".into(), "between 1 and 52".into()));
        }
        if let Some(m) = self.models.iter().find(|m| !models::KNOWN.contains(&m.as_str()) || *m == "torchscript") {
            return Err((
                "factors.importance.models".into(),
                format!("unknown or unsupported model `{m}` (torchscript has nothing to refit or compare)"),
            ));
        }
        Ok(())
    }
}

/// One importance row: a model's loss of accuracy on one metric when a group is taken away, over
/// the series of a scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImportanceRow {
    /// Model.
    pub model: String,
    /// Factor group.
    pub group: String,
    /// `all`, `category` or `location`.
    pub scope: String,
    /// The category or location (`all` for all series).
    pub scope_value: String,
    /// `mae` or `wape` (%).
    pub metric: String,
    /// The metric of the unperturbed forecast.
    pub baseline: Option<f64>,
    /// Mean increase over the repeats (WAPE in percentage points); `None` when not applicable.
    pub increase: Option<f64>,
    /// Standard deviation of the increase over the repeats.
    pub std: Option<f64>,
    /// Smallest increase.
    pub min: Option<f64>,
    /// Largest increase.
    pub max: Option<f64>,
    /// Repeats measured.
    pub repeats: u64,
    /// `permute`, `refit`, `not_read` (the model reads no covariates: 0), `no_columns` (no
    /// covariate carries the group: 0) or `not_applicable` (a calendar group the model does not read).
    pub method: String,
    /// Series scored in the scope (summed over the windows).
    pub series: u64,
}

/// The importance of every group for every model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Importance {
    /// Cutoffs of the windows, oldest first.
    pub cutoffs: Vec<NaiveDate>,
    /// Periods forecast at each cutoff.
    pub horizon: usize,
    /// `permute` or `refit`.
    pub method: String,
    /// Repeats per group.
    pub repeats: usize,
    /// Models measured.
    pub models: Vec<String>,
    /// Covariate columns of each group.
    pub columns: BTreeMap<String, Vec<String>>,
    /// Every row.
    pub rows: Vec<ImportanceRow>,
}

impl Importance {
    /// The row of a model, group, scope and metric.
    pub fn get(&self, model: &str, group: &str, scope_value: &str, metric: &str) -> Option<&ImportanceRow> {
        self.rows
            .iter()
            .find(|r| r.model == model && r.group == group && r.scope_value == scope_value && r.metric == metric)
    }
}

/// What to measure.
#[derive(Debug, Clone)]
pub struct ImportanceOptions {
    /// Models, by registry name.
    pub models: Vec<String>,
    /// Permutations per group.
    pub repeats: usize,
    /// Permute or refit.
    pub method: Method,
    /// Backtest windows.
    pub windows: usize,
    /// Periods forecast at each cutoff.
    pub horizon: usize,
    /// Seed of the permutations.
    pub seed: u64,
    /// The groups measured (`[factors]`: the covariate groups and the calendar's parts).
    pub factors: FactorSettings,
}

/// Which covariate block a column is in, and its index there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Calendar(usize),
    Series(usize),
    Past(usize),
}

fn slots(cov: &Covariates, columns: &[String]) -> Result<Vec<Slot>> {
    columns
        .iter()
        .map(|c| {
            let find = |names: &[String]| names.iter().position(|n| n == c);
            find(&cov.known.calendar_names)
                .map(Slot::Calendar)
                .or_else(|| find(&cov.known.series_names).map(Slot::Series))
                .or_else(|| find(&cov.past.names).map(Slot::Past))
                .ok_or_else(|| Error::data(format!("importance: the covariates have no column `{c}`")))
        })
        .collect()
}

/// The covariates with the values of `columns` shuffled by a permutation seeded with `seed`:
/// per-series columns over every series × period cell (known ones over the history and the
/// horizon, past ones over the history), calendar columns over the periods. Columns of the same
/// block move together; every other column is untouched.
pub fn permute(cov: &Covariates, columns: &[String], seed: u64) -> Result<Covariates> {
    let slots = slots(cov, columns)?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = cov.clone();
    let periods = cov.history + cov.horizon;
    let series = cov.known.series.len();
    let calendar: Vec<usize> =
        slots.iter().filter_map(|s| if let Slot::Calendar(j) = s { Some(*j) } else { None }).collect();
    let known: Vec<usize> =
        slots.iter().filter_map(|s| if let Slot::Series(j) = s { Some(*j) } else { None }).collect();
    let past: Vec<usize> = slots.iter().filter_map(|s| if let Slot::Past(j) = s { Some(*j) } else { None }).collect();
    if !calendar.is_empty() {
        let c = cov.known.calendar_names.len();
        let mut perm: Vec<usize> = (0..periods).collect();
        perm.shuffle(&mut rng);
        for (t, &from) in perm.iter().enumerate() {
            for &j in &calendar {
                out.known.calendar[t * c + j] = cov.known.calendar[from * c + j];
            }
        }
    }
    let mut cells = |width: usize, cols: &[usize], periods: usize, src: &[Vec<f32>], dst: &mut [Vec<f32>]| {
        if cols.is_empty() {
            return;
        }
        let mut perm: Vec<usize> = (0..series * periods).collect();
        perm.shuffle(&mut rng);
        for (cell, &from) in perm.iter().enumerate() {
            let (s, t) = (cell / periods, cell % periods);
            let (fs, ft) = (from / periods, from % periods);
            for &j in cols {
                dst[s][t * width + j] = src[fs][ft * width + j];
            }
        }
    };
    cells(cov.known.series_names.len(), &known, periods, &cov.known.series, &mut out.known.series);
    cells(cov.past.names.len(), &past, cov.history, &cov.past.values, &mut out.past.values);
    Ok(out)
}

/// The covariates with `columns` at their neutral values (those of [`Covariates::empty`]: no
/// promotion, the usual price, no event nearby, no stock-out, average traffic reads as 0).
pub fn neutralize(cov: &Covariates, columns: &[String]) -> Result<Covariates> {
    let slots = slots(cov, columns)?;
    let neutral = Covariates::empty(cov.start, 0, 1, 0);
    let mut out = cov.clone();
    let (c, k, p) = (cov.known.calendar_names.len(), cov.known.series_names.len(), cov.past.names.len());
    for slot in slots {
        match slot {
            Slot::Calendar(j) => {
                let v = neutral.known.calendar[j];
                out.known.calendar.chunks_exact_mut(c).for_each(|row| row[j] = v);
            }
            Slot::Series(j) => out.known.series.iter_mut().for_each(|s| s.chunks_exact_mut(k).for_each(|r| r[j] = 0.0)),
            Slot::Past(j) => out.past.values.iter_mut().for_each(|s| s.chunks_exact_mut(p).for_each(|r| r[j] = 0.0)),
        }
    }
    Ok(out)
}

/// The seed of a group's repeat at a window (the same for every model).
fn seed_of(seed: u64, group: usize, window: usize, repeat: usize) -> u64 {
    seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ ((group as u64) << 40) ^ ((window as u64) << 20) ^ repeat as u64
}

/// Absolute error, absolute actual and count, per scope.
#[derive(Debug, Clone, Copy, Default)]
struct Sums {
    err: f64,
    actual: f64,
    n: u64,
}

impl Sums {
    fn add(&mut self, o: Sums) {
        self.err += o.err;
        self.actual += o.actual;
        self.n += o.n;
    }

    fn metric(&self, name: &str) -> Option<f64> {
        match name {
            "mae" => (self.n > 0).then(|| self.err / self.n as f64),
            _ => (self.actual > 0.0).then(|| 100.0 * self.err / self.actual),
        }
    }
}

/// A model's errors over the windows: unperturbed, and per group and repeat (left at zero when
/// the model reads no covariates).
#[derive(Debug, Clone)]
struct Errors {
    reads: bool,
    /// The model (or a member) reads the calendar of the dates.
    reads_calendar: bool,
    base: Vec<Sums>,
    series: Vec<u64>,
    taken: Vec<Vec<Vec<Sums>>>,
}

/// The scopes: `all`, then each category, then each location; and each series' scopes.
struct Scopes {
    names: Vec<(String, String)>,
    of: Vec<Vec<usize>>,
}

impl Scopes {
    fn new(full: &Panel, categories: &HashMap<String, String>) -> Self {
        let mut names = vec![("all".to_string(), "all".to_string())];
        let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
        let cats: std::collections::BTreeSet<&String> =
            full.keys.iter().filter_map(|k| categories.get(&k.item_id)).collect();
        let locs: std::collections::BTreeSet<&String> = full.keys.iter().map(|k| &k.location_id).collect();
        for (scope, values) in [("category", cats), ("location", locs)] {
            for v in values {
                index.insert((scope.to_string(), v.clone()), names.len());
                names.push((scope.to_string(), v.clone()));
            }
        }
        let of = full
            .keys
            .iter()
            .map(|k| {
                let mut s = vec![0];
                if let Some(c) = categories.get(&k.item_id) {
                    s.push(index[&("category".to_string(), c.clone())]);
                }
                s.push(index[&("location".to_string(), k.location_id.clone())]);
                s
            })
            .collect();
        Self { names, of }
    }
}

/// The errors of a forecast at a window, per scope.
fn score(f: &Forecast, w: &Window, full: &Panel, scopes: &Scopes) -> (Vec<Sums>, Vec<u64>) {
    let mut sums = vec![Sums::default(); scopes.names.len()];
    let mut series = vec![0u64; scopes.names.len()];
    for (s, &i) in w.index.iter().enumerate() {
        let y = &full.values[i];
        let actual = &y[y.len() - w.from_end..];
        let mut one = Sums::default();
        for (h, a) in actual.iter().take(f.horizon).enumerate() {
            one.err += (f.mean_at(s, h) - a).abs() as f64;
            one.actual += a.abs() as f64;
            one.n += 1;
        }
        for &sc in &scopes.of[i] {
            sums[sc].add(one);
            series[sc] += 1;
        }
    }
    (sums, series)
}

/// A model fitted at one window (not the ensemble, which combines them).
struct Fitted {
    name: String,
    model: Box<dyn Forecaster>,
    reads: bool,
    calendar: bool,
    base: Forecast,
}

/// The forecast of model `name` from the forecasts of the fitted models (`forecast(i)` of
/// `fitted[i]`): its own, or an ensemble's combination of its members' (the learned one with the
/// weights it learnt at the window).
#[allow(clippy::too_many_arguments)]
fn forecast_of<'f>(
    name: &str,
    fitted: &[Fitted],
    members: &[String],
    forecast: &dyn Fn(usize) -> &'f Forecast,
    series: usize,
    horizon: usize,
    levels: &[f64],
    learned: Option<&Learned>,
) -> Result<std::borrow::Cow<'f, Forecast>> {
    let index = |n: &str| {
        fitted.iter().position(|f| f.name == n).ok_or_else(|| Error::data(format!("importance: `{n}` was not fitted")))
    };
    if !models::is_ensemble(name) {
        return Ok(std::borrow::Cow::Borrowed(forecast(index(name)?)));
    }
    let fs = members.iter().map(|m| Ok(forecast(index(m)?))).collect::<Result<Vec<_>>>()?;
    Ok(std::borrow::Cow::Owned(match learned {
        Some((weights, classes)) if name == "ensemble" => {
            models::ensemble::combine(&fs, weights, classes.as_deref(), series, horizon, levels)
        }
        _ => models::median::combine(&fs, series, horizon, levels),
    }))
}

/// The learned ensemble's weights at a window (from the members fitted there and its own
/// validation before the cutoff), with the series' classes when weights go by class.
type Learned = (models::ensemble::Weights, Option<Vec<crate::models::baseline::classify::DemandClass>>);

/// One window: every model fitted once, then, for each group and repeat, one scramble of the
/// covariates (made, used by every model that reads them, and dropped: memory holds one copy of
/// the covariates at a time), scored into `errors`.
#[allow(clippy::too_many_arguments)]
fn measure_window(
    full: &Panel,
    w: &Window,
    wi: usize,
    config: &BacktestConfig,
    opts: &ImportanceOptions,
    groups: &[(String, Vec<String>)],
    calendar: &[(String, bool, bool)],
    scopes: &Scopes,
    errors: &mut [Option<Errors>],
) -> Result<()> {
    info!(cutoff = %w.cutoff, series = w.panel.len(), "importance window");
    let levels = backtest::levels(config);
    let (n, h) = (w.panel.len(), opts.horizon);
    let members = models::ensemble_members(&config.models);
    let mut leaves: Vec<String> = Vec::new();
    for m in &opts.models {
        let names = if models::is_ensemble(m) { members.clone() } else { vec![m.clone()] };
        for name in names {
            if !leaves.contains(&name) {
                leaves.push(name);
            }
        }
    }
    let mut fitted = Vec::new();
    for name in leaves {
        let _span = info_span!("importance fit", model = %name, window = wi).entered();
        let mut model = models::build(&name, &config.models)?;
        let reads = model.needs_covariates() && w.panel.covariates.is_some();
        let calendar = model.reads_calendar();
        model.fit(&w.panel)?;
        let base = model.predict(&w.panel, h, &levels)?;
        fitted.push(Fitted { name, model, reads, calendar, base });
    }
    let learned: Option<Learned> = if opts.models.iter().any(|m| m == "ensemble") {
        let mut e = models::learned_ensemble(&config.models)?;
        let refs: Vec<&dyn Forecaster> = fitted.iter().map(|f| f.model.as_ref()).collect();
        e.fit_reusing(&w.panel, &models::Reuse::fitted(&refs))?;
        let weights = e.weights().cloned().unwrap_or_else(|| models::ensemble::Weights::equal(members.len()));
        let classes = models::ensemble::classes(&w.panel, &weights, config.models.season_length);
        Some((weights, classes))
    } else {
        None
    };
    let any_of = |name: &str, what: fn(&Fitted) -> bool| {
        let names = if models::is_ensemble(name) { members.clone() } else { vec![name.to_string()] };
        fitted.iter().any(|f| names.contains(&f.name) && what(f))
    };
    let reads_of = |name: &str| any_of(name, |f| f.reads);
    let repeats = match opts.method {
        Method::Permute => opts.repeats,
        Method::Refit => 1,
    };
    for (m, name) in opts.models.iter().enumerate() {
        let f = forecast_of(name, &fitted, &members, &|i| &fitted[i].base, n, h, &levels, learned.as_ref())?;
        let (base, series) = score(&f, w, full, scopes);
        let e = errors[m].get_or_insert_with(|| Errors {
            reads: reads_of(name),
            reads_calendar: any_of(name, |f| f.calendar),
            base: vec![Sums::default(); scopes.names.len()],
            series: vec![0; scopes.names.len()],
            taken: vec![vec![vec![Sums::default(); scopes.names.len()]; repeats]; groups.len() + calendar.len()],
        });
        e.reads &= reads_of(name);
        e.reads_calendar &= any_of(name, |f| f.calendar);
        for (sc, (b, k)) in base.into_iter().zip(series).enumerate() {
            e.base[sc].add(b);
            e.series[sc] += k;
        }
    }
    // One pass per scrambled group: the covariate groups (models that read covariates), then the
    // calendar groups (models that read the dates' calendar).
    let cov = w.panel.covariates.as_deref().filter(|_| fitted.iter().any(|f| f.reads));
    let calendar_read = fitted.iter().any(|f| f.calendar);
    let passes = groups.len() + calendar.len();
    for g in 0..passes {
        let (group, on_calendar) = match g.checked_sub(groups.len()) {
            None => (&groups[g].0, false),
            Some(c) => (&calendar[c].0, true),
        };
        if (!on_calendar && cov.is_none()) || (on_calendar && !calendar_read) {
            continue;
        }
        let _span = info_span!("importance group", group = %group, window = wi).entered();
        for r in 0..repeats {
            let seed = seed_of(opts.seed, g, wi, r);
            let mut panel = w.panel.clone();
            if let (false, Some(cov)) = (on_calendar, cov) {
                let columns = &groups[g].1;
                let taken = match opts.method {
                    Method::Permute => permute(cov, columns, seed)?,
                    Method::Refit => neutralize(cov, columns)?,
                };
                panel.covariates = Some(Arc::new(taken));
            } else {
                let (_, weekly, yearly) = calendar[g - groups.len()];
                panel.scramble = Some(crate::panel::calendar::Scramble { weekly, yearly, seed });
            }
            let forecasts = fitted
                .iter()
                .map(|f| {
                    let takes = if on_calendar { f.calendar } else { f.reads };
                    if !takes {
                        return Ok(None);
                    }
                    Ok(Some(match opts.method {
                        Method::Permute => f.model.predict(&panel, h, &levels)?,
                        Method::Refit => {
                            let mut model = models::build(&f.name, &config.models)?;
                            model.fit(&panel)?;
                            model.predict(&panel, h, &levels)?
                        }
                    }))
                })
                .collect::<Result<Vec<Option<Forecast>>>>()?;
            let pick = |i: usize| forecasts[i].as_ref().unwrap_or(&fitted[i].base);
            for (m, name) in opts.models.iter().enumerate() {
                let Some(e) = errors[m].as_mut().filter(|e| if on_calendar { e.reads_calendar } else { e.reads })
                else {
                    continue;
                };
                let f = forecast_of(name, &fitted, &members, &pick, n, h, &levels, learned.as_ref())?;
                for (acc, s) in e.taken[g][r].iter_mut().zip(score(&f, w, full, scopes).0) {
                    acc.add(s);
                }
            }
        }
    }
    Ok(())
}

/// Measures the importance on the windows of `full`, whose panels carry the covariates of their
/// cutoffs when a model reads them. `categories` maps items to categories (for the roll-ups).
pub fn measure(
    full: &Panel,
    windows: &[Window],
    config: &BacktestConfig,
    factors: &FactorSettings,
    opts: &ImportanceOptions,
    categories: &HashMap<String, String>,
) -> Result<Importance> {
    // The user's covariates the windows' panels have (the same tables at every cutoff).
    let user: Vec<String> = windows
        .iter()
        .find_map(|w| w.panel.covariates.as_ref())
        .map(|c| {
            c.known_names()
                .into_iter()
                .chain(c.past.names.iter().cloned())
                .filter(|n| n.starts_with(crate::panel::covariates::USER))
                .collect()
        })
        .unwrap_or_default();
    let columns = factors.covariate_groups_with(&user);
    let groups: Vec<(String, Vec<String>)> = columns.clone().into_iter().collect();
    let calendar = factors.calendar_parts(config.models.frequency == crate::period::Frequency::Daily);
    let scopes = Scopes::new(full, categories);
    let mut errors: Vec<Option<Errors>> = vec![None; opts.models.len()];
    for (wi, w) in windows.iter().enumerate() {
        measure_window(full, w, wi, config, opts, &groups, &calendar, &scopes, &mut errors)?;
    }
    let mut rows = Vec::new();
    for (name, e) in opts.models.iter().zip(errors) {
        let Some(e) = e else { continue };
        for group in factors.importance_groups_with(&user) {
            let g = groups.iter().position(|(n, _)| *n == group);
            let c = calendar.iter().position(|(n, _, _)| *n == group).map(|c| groups.len() + c);
            for (sc, (scope, value)) in scopes.names.iter().enumerate() {
                if e.series[sc] == 0 {
                    continue;
                }
                for metric in ["mae", "wape"] {
                    let baseline = e.base[sc].metric(metric);
                    let mut row = ImportanceRow {
                        model: name.clone(),
                        group: group.clone(),
                        scope: scope.clone(),
                        scope_value: value.clone(),
                        metric: metric.to_string(),
                        baseline,
                        increase: Some(0.0),
                        std: Some(0.0),
                        min: Some(0.0),
                        max: Some(0.0),
                        repeats: 0,
                        method: String::new(),
                        series: e.series[sc],
                    };
                    // A calendar group is measured on the models that read the dates' calendar;
                    // the others learn their cycles from the history's order.
                    let measured = match (g, c) {
                        (Some(g), _) if e.reads => Some(g),
                        (None, Some(c)) if e.reads_calendar => Some(c),
                        _ => None,
                    };
                    match measured {
                        None if g.is_none() && factors.is_calendar(&group) => {
                            row.method = "not_applicable".into();
                            (row.increase, row.std, row.min, row.max) = (None, None, None, None);
                        }
                        None if g.is_none() => row.method = "no_columns".into(),
                        None => row.method = "not_read".into(),
                        Some(g) => {
                            let inc: Vec<f64> =
                                e.taken[g].iter().filter_map(|s| Some(s[sc].metric(metric)? - baseline?)).collect();
                            row.method = opts.method.as_str().into();
                            row.repeats = inc.len() as u64;
                            row.increase = mean(&inc);
                            row.std = if opts.method == Method::Refit { None } else { std(&inc) };
                            row.min = inc.iter().copied().reduce(f64::min);
                            row.max = inc.iter().copied().reduce(f64::max);
                        }
                    }
                    rows.push(row);
                }
            }
        }
    }
    Ok(Importance {
        cutoffs: windows.iter().map(|w| w.cutoff).collect(),
        horizon: opts.horizon,
        method: opts.method.as_str().into(),
        repeats: if opts.method == Method::Refit { 1 } else { opts.repeats },
        models: opts.models.clone(),
        columns,
        rows,
    })
}

fn mean(xs: &[f64]) -> Option<f64> {
    (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
}

/// Sample standard deviation (0 for one value).
fn std(xs: &[f64]) -> Option<f64> {
    let m = mean(xs)?;
    if xs.len() < 2 {
        return Some(0.0);
    }
    Some((xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt())
}

/// Measures the importance on the lake's history up to `cutoff`: the last `windows` windows of a
/// backtest, the feature tables of each window's cutoff materialised and loaded as covariates
/// when a model reads them.
#[instrument(skip_all, fields(cutoff = %cutoff, models = ?opts.models, method = opts.method.as_str()))]
pub async fn run(
    ctx: &SessionContext,
    lake: &Lake,
    config: &BacktestConfig,
    opts: &ImportanceOptions,
    cutoff: NaiveDate,
    token: &str,
    clock: &dyn Clock,
) -> Result<Importance> {
    let mut opts = opts.clone();
    opts.models = window::refittable(&opts.models);
    if opts.models.is_empty() {
        return Err(Error::data("importance: no model to measure (torchscript is left out)"));
    }
    if opts.repeats == 0 || opts.windows == 0 {
        return Err(Error::data(format!(
            "importance: repeats ({}) and windows ({}) must be at least 1",
            opts.repeats, opts.windows
        )));
    }
    let params = config.feature_params(cutoff);
    let rows = features::dataframe(ctx, &features::queries::TARGET, params).await?.execute_stream().await?;
    let end = config.models.frequency.period_start(params.cutoff);
    let closures = crate::panel::Closures::query(ctx, params).await?;
    let full = Arc::new(Panel::from_stream(rows, config.models.frequency, end).await?.with_closures(closures));
    let categories = backtest::item_categories(ctx).await?;
    let bt = BacktestOptions::new(opts.windows, opts.horizon, opts.horizon, opts.models.clone());
    let as_of = window::AsOf::for_models(lake, config, &opts.models, opts.horizon)?.materializing(ctx, token, clock);
    let mut windows = Vec::new();
    for mut w in backtest::plan(&full, &bt)? {
        w.panel = as_of.panel(w.panel, w.cutoff).await?;
        windows.push(w);
    }
    let (s, f) = (config.clone(), opts.factors.clone());
    let out = crate::blocking::run(move || measure(&full, &windows, &s, &f, &opts, &categories)).await??;
    info!(rows = out.rows.len(), "importance measured");
    Ok(out)
}

/// The importance rows as one record batch.
pub fn to_batch(rows: &[ImportanceRow]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("model", DataType::Utf8, false),
        Field::new("group", DataType::Utf8, false),
        Field::new("scope", DataType::Utf8, false),
        Field::new("scope_value", DataType::Utf8, false),
        Field::new("metric", DataType::Utf8, false),
        Field::new("baseline", DataType::Float64, true),
        Field::new("increase", DataType::Float64, true),
        Field::new("std", DataType::Float64, true),
        Field::new("min", DataType::Float64, true),
        Field::new("max", DataType::Float64, true),
        Field::new("repeats", DataType::UInt64, false),
        Field::new("method", DataType::Utf8, false),
        Field::new("series", DataType::UInt64, false),
    ]));
    let text = |f: fn(&ImportanceRow) -> &str| Arc::new(StringArray::from_iter_values(rows.iter().map(f))) as ArrayRef;
    let opt = |f: fn(&ImportanceRow) -> Option<f64>| Arc::new(Float64Array::from_iter(rows.iter().map(f))) as ArrayRef;
    let int = |f: fn(&ImportanceRow) -> u64| Arc::new(UInt64Array::from_iter_values(rows.iter().map(f))) as ArrayRef;
    let cols = vec![
        text(|r| &r.model),
        text(|r| &r.group),
        text(|r| &r.scope),
        text(|r| &r.scope_value),
        text(|r| &r.metric),
        opt(|r| r.baseline),
        opt(|r| r.increase),
        opt(|r| r.std),
        opt(|r| r.min),
        opt(|r| r.max),
        int(|r| r.repeats),
        text(|r| &r.method),
        int(|r| r.series),
    ];
    Ok(RecordBatch::try_new(schema, cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn covariates() -> Covariates {
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let mut c = Covariates::empty(start, 3, 5, 2);
        let (k, p, cal) = (c.known.series_names.len(), c.past.names.len(), c.known.calendar_names.len());
        for s in 0..3 {
            for t in 0..7 {
                for j in 0..k {
                    c.known.series[s][t * k + j] = (100 * s + 10 * t + j) as f32;
                }
            }
            for t in 0..5 {
                for j in 0..p {
                    c.past.values[s][t * p + j] = -((100 * s + 10 * t + j) as f32);
                }
            }
        }
        for t in 0..7 {
            for j in 0..cal {
                c.known.calendar[t * cal + j] = (1000 + 10 * t + j) as f32;
            }
        }
        c
    }

    fn columns(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_permutation_is_seeded_and_moves_only_the_groups_columns_together() {
        let c = covariates();
        let cols = columns(&["discount", "promo", "stock_out"]);
        let a = permute(&c, &cols, 7).unwrap();
        let b = permute(&c, &cols, 7).unwrap();
        assert_eq!(a.known.series, b.known.series, "same seed, same permutation");
        assert_eq!(a.past.values, b.past.values);
        let other = permute(&c, &cols, 8).unwrap();
        assert_ne!(a.known.series, other.known.series, "another seed, another permutation");
        assert_ne!(a.known.series, c.known.series, "the values moved");
        let k = c.known.series_names.len();
        let (mut before, mut after) = (Vec::new(), Vec::new());
        for s in 0..3 {
            for t in 0..7 {
                let (row, orig) = (&a.known.series[s][t * k..(t + 1) * k], &c.known.series[s][t * k..(t + 1) * k]);
                // Untouched columns stay; discount and promo keep their pairing (promo = discount + 1).
                assert_eq!(&row[2..], &orig[2..], "series {s} period {t}");
                assert_eq!(row[1], row[0] + 1.0);
                before.push(orig[0] as i64);
                after.push(row[0] as i64);
            }
        }
        before.sort();
        after.sort();
        assert_eq!(before, after, "the multiset of values is kept");
        // Past values stay within the history, and their multiset is kept too.
        let mut pb: Vec<i64> = c.past.values.iter().flat_map(|v| v.iter().step_by(4).map(|x| *x as i64)).collect();
        let mut pa: Vec<i64> = a.past.values.iter().flat_map(|v| v.iter().step_by(4).map(|x| *x as i64)).collect();
        pb.sort();
        pa.sort();
        assert_eq!(pb, pa);
        assert_eq!(a.known.calendar, c.known.calendar, "calendar columns are not in the group");
    }

    #[test]
    fn calendar_columns_are_shuffled_over_the_periods() {
        let c = covariates();
        let a = permute(&c, &columns(&["is_event", "event_holiday"]), 3).unwrap();
        assert_eq!(a.known.series, c.known.series);
        let cal = c.known.calendar_names.len();
        let mut seen: Vec<i64> = (0..7).map(|t| a.known.calendar[t * cal] as i64).collect();
        for t in 0..7 {
            assert_eq!(a.known.calendar[t * cal + 1], a.known.calendar[t * cal] + 1.0);
            assert_eq!(a.known.calendar[t * cal + 2], c.known.calendar[t * cal + 2]);
        }
        seen.sort();
        assert_eq!(seen, (0..7).map(|t| 1000 + 10 * t).collect::<Vec<i64>>());
        assert!(permute(&c, &columns(&["no_such_column"]), 1).unwrap_err().to_string().contains("no_such_column"));
    }

    #[test]
    fn removal_sets_neutral_values() {
        let c = covariates();
        let n = neutralize(&c, &columns(&["promo", "days_to_next_event"])).unwrap();
        let (k, cal) = (c.known.series_names.len(), c.known.calendar_names.len());
        assert!(n.known.series.iter().all(|s| s.chunks(k).all(|r| r[1] == 0.0)));
        assert!(n.known.calendar.chunks(cal).all(|r| r[4] == 1.0));
        assert_eq!(n.known.series[2][k], c.known.series[2][k], "other columns stay");
    }

    #[test]
    fn spread_statistics() {
        assert_eq!(mean(&[1.0, 3.0]), Some(2.0));
        assert!((std(&[1.0, 3.0]).unwrap() - 2f64.sqrt()).abs() < 1e-12);
        assert_eq!(std(&[1.0]), Some(0.0));
        assert_eq!(mean(&[]), None);
    }
}
