//! The learned ensemble (`ensemble`): its members' forecasts weighted by how well each did on
//! validation forecasts made before the cutoff.
//!
//! Fitting holds out the last `windows` × horizon periods in turn: at each inner cutoff a fresh
//! copy of every member is fitted on the panel cut there and forecasts the horizon after it; those
//! forecasts against what followed are the validation ([`select::Validation`]), and greedy
//! ensemble selection ([`select`]) picks the weights, for every series or per demand class. Then
//! the members are fitted on the whole panel. Nothing after the cutoff reaches the weights: the
//! validation periods are all in the training data. A backtest whose windows are one horizon
//! apart reuses its earlier windows' member forecasts instead of fitting inner copies
//! ([`weights_from`]); they are the same forecasts.
//!
//! The forecast is the weighted mean of the members' means and of their quantiles, level by
//! level, each quantile's distance from the median then scaled so the level holds on the same
//! validation ([`calibrate`]). A member without weight is not asked to predict. With no validation possible (too short
//! a history) every member weighs the same. The median of the members stays available as the
//! `median` model ([`super::median`]).

pub mod calibrate;
pub mod kept;
pub mod select;

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::{debug, info};

pub use select::{Validation, Weights};

use super::baseline::classify::{DemandClass, classify};
use super::{FitReport, Forecast, Forecaster, Reuse};
use crate::error::{Error, Result};
use crate::panel::Panel;

/// How the ensemble learns its weights.
#[derive(Debug, Clone, PartialEq)]
pub struct EnsembleConfig {
    /// Periods forecast at each validation cutoff.
    pub horizon: usize,
    /// Season of the MASE scale and of the demand classes.
    pub season: usize,
    /// Rounds of greedy selection (weights are multiples of 1 / rounds at finest).
    pub rounds: usize,
    /// Validation windows, each one horizon before the next, the last ending at the cutoff.
    pub windows: usize,
    /// Weights per demand class where a class had enough validation.
    pub by_class: bool,
    /// Whether the members' medians are candidates for the point forecast beside their means.
    pub medians: bool,
    /// Quantile levels members forecast at validation.
    pub levels: Vec<f64>,
    /// Per member (member order), whether it calibrates its own quantiles when it is fitted
    /// (`gbt`, and the models `[model.calibration]` lists). Missing: it does not.
    pub self_calibrated: Vec<bool>,
}

impl EnsembleConfig {
    /// Defaults for a horizon and season: 40 rounds, one validation window, weights per demand
    /// class where a class has enough validation, the members' medians among the candidates.
    pub fn new(horizon: usize, season: usize) -> Self {
        Self {
            horizon,
            season,
            rounds: 40,
            windows: 1,
            // Per class: on a demo lake of another seed than the benchmark's (200 × 730 days, three
            // windows, none of them scored by a benchmark), the ensemble's MASE fell from 0.623 to
            // 0.588 (the weights went to tsb on the intermittent series, to gbt on the erratic
            // and smooth ones); a class without enough validation takes the global weights
            // (README, "Learned ensemble").
            by_class: true,
            medians: true,
            levels: vec![0.1, 0.5, 0.9],
            self_calibrated: Vec::new(),
        }
    }
}

/// Builds fresh, unfitted members (in the ensemble's member order).
pub type MemberBuilder = Arc<dyn Fn() -> Result<Vec<Box<dyn Forecaster>>> + Send + Sync>;

/// What the selection saw, for the model card.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SelectionCard {
    /// Validation windows used.
    pub windows: usize,
    /// Validation rows (series × steps × windows scored).
    pub rows: usize,
    /// Validation MASE of each member alone, in member order.
    pub member_mase: Vec<Option<f64>>,
    /// Validation MASE of each member's median alone, in member order (empty when the medians
    /// were not candidates).
    #[serde(default)]
    pub member_median_mase: Vec<Option<f64>>,
    /// Validation MASE of the weighted ensemble, overall (`all`) and per class with own weights.
    pub ensemble_mase: std::collections::BTreeMap<String, f64>,
    /// Per the same keys, whether a mix was kept rather than the best single member (a mix must
    /// beat it by [`select::MIN_GAIN_Z`] standard errors).
    #[serde(default)]
    pub mixed: std::collections::BTreeMap<String, bool>,
    /// Where the validation forecasts came from: `inner split` (members fitted again on the
    /// panel cut before its end) or `backtest` (the same run's backtest windows at those cutoffs).
    #[serde(default)]
    pub source: String,
}

/// The learned ensemble.
pub struct Ensemble {
    config: EnsembleConfig,
    members: Vec<Box<dyn Forecaster>>,
    build: MemberBuilder,
    weights: Option<Weights>,
    selection: Option<SelectionCard>,
}

impl std::fmt::Debug for Ensemble {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ensemble")
            .field("config", &self.config)
            .field("members", &self.members)
            .field("weights", &self.weights)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Saved {
    members: Vec<(String, Vec<u8>)>,
    weights: Option<Weights>,
    #[serde(default)]
    selection: Option<SelectionCard>,
}

impl Ensemble {
    /// An ensemble of the members `build` makes (at least one).
    pub fn new(config: EnsembleConfig, build: MemberBuilder) -> Result<Self> {
        let members = build()?;
        if members.is_empty() {
            return Err(Error::data("an ensemble needs at least one member"));
        }
        Ok(Self { config, members, build, weights: None, selection: None })
    }

    /// The weights learnt by the last fit (`None` before).
    pub fn weights(&self) -> Option<&Weights> {
        self.weights.as_ref()
    }

    /// The weights learnt by the last fit (or loaded) with what the selection saw.
    pub fn learned(&self) -> Option<Learned> {
        Some(Learned { weights: self.weights.clone()?, card: self.selection.clone()? })
    }

    /// Fits fresh members at each validation cutoff before `panel`'s end and collects their
    /// forecasts. A window where a member cannot fit (too short a history) is left out.
    fn validate(&self, panel: &Panel) -> Result<Validation> {
        let h = self.config.horizon;
        let mut v = Validation::new(self.members.len());
        for k in (1..=self.config.windows).rev() {
            let (inner, index) = panel.cut(k * h);
            if inner.is_empty() {
                continue;
            }
            let mut forecasts = Vec::new();
            let task = crate::progress::Task::start("ensemble validation fits", self.members.len() as u64);
            for mut m in (self.build)()? {
                let _fitting = crate::progress::Task::start(format!("fit {}", m.name()), 0);
                let f = m.fit(&inner).and_then(|_| m.predict(&inner, h, &self.config.levels));
                match f {
                    Ok(f) => {
                        forecasts.push(f);
                        task.inc(1);
                    }
                    Err(e) => {
                        debug!(member = m.name(), window = k, error = %e, "ensemble: validation window left out");
                        break;
                    }
                }
            }
            if forecasts.len() == self.members.len() {
                v.push(&inner, &index, panel, &forecasts.iter().collect::<Vec<_>>(), h, self.config.season);
            }
        }
        Ok(v)
    }

    /// Sets the weights from a validation.
    fn learn(&mut self, v: &Validation) {
        let (weights, card) = learn(v, &self.config, self.members.len());
        self.set(Learned { weights, card });
    }

    fn set(&mut self, learned: Learned) {
        info!(
            weights = ?learned.weights.global,
            members = ?self.members.iter().map(|m| m.name()).collect::<Vec<_>>(),
            windows = learned.card.windows,
            "ensemble weights"
        );
        self.weights = Some(learned.weights);
        self.selection = Some(learned.card);
    }
}

/// Weights learnt on a validation, with what the selection saw.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Learned {
    /// The weights.
    pub weights: Weights,
    /// What the selection saw, for the card.
    pub card: SelectionCard,
}

/// The weights a validation gives (equal weights when it holds nothing), with the card.
pub fn learn(v: &Validation, config: &EnsembleConfig, members: usize) -> (Weights, SelectionCard) {
    let chosen = select::select(v, config.rounds, config.by_class, config.medians);
    let (mut weights, losses, mixed) = match chosen {
        Some(c) => (c.weights, c.losses, c.mixed),
        None => (Weights::equal(members), Default::default(), Default::default()),
    };
    // Members that calibrate their own quantiles keep them, and their mix keeps their weighted
    // mean: each measured its quantiles at its own cutoff, on the horizon just before it, while
    // the validation here holds older fits' forecasts, whose misses the fresh fits have already
    // corrected (rescaling by them counts an old miss twice).
    let own = (0..members).filter(|m| weights.uses(*m, members)).all(|m| config.self_calibrated.get(m) == Some(&true));
    weights.calibration = if own { Vec::new() } else { calibrate::factors(v, &weights) };
    let card = SelectionCard {
        windows: v.windows(),
        rows: v.rows(),
        member_mase: v.member_losses(),
        member_median_mase: if config.medians { v.member_median_losses() } else { Vec::new() },
        ensemble_mase: losses,
        mixed,
        source: "inner split".into(),
    };
    (weights, card)
}

/// Member forecasts made at an earlier backtest cutoff.
#[derive(Debug)]
pub struct Earlier<'a> {
    /// The panel cut at that cutoff.
    pub panel: &'a Panel,
    /// Its series' indices in the full panel.
    pub index: &'a [usize],
    /// Periods between that cutoff and the full panel's end.
    pub from_end: usize,
    /// Each member's forecast there, in member order.
    pub forecasts: Vec<&'a Forecast>,
}

/// The weights of a backtest window from member forecasts already made at earlier cutoffs. Only
/// the windows one to `config.windows` horizons before `cutoff_from_end` count: what fitting the
/// ensemble at the cutoff would validate on (their forecasts end by the cutoff).
pub fn weights_from(
    full: &Panel,
    earlier: &[Earlier<'_>],
    cutoff_from_end: usize,
    config: &EnsembleConfig,
    members: usize,
) -> (Weights, SelectionCard) {
    let h = config.horizon;
    let mut v = Validation::new(members);
    for k in (1..=config.windows).rev() {
        let want = cutoff_from_end + k * h;
        // Its `horizon` periods end by this cutoff: actuals known at it.
        if let Some(e) = earlier.iter().find(|e| e.from_end == want) {
            v.push(e.panel, e.index, full, &e.forecasts, h, config.season);
        }
    }
    let (weights, mut card) = learn(&v, config, members);
    card.source = "backtest".into();
    (weights, card)
}

/// The weighted combination of the members' forecasts (member order), each series weighted by
/// the weights of its class (`classes[s]`; `None`: the global weights). The mean and quantiles
/// weigh each member by its candidates' weights summed; the point forecast weighs each member's
/// mean and median by their own (set only when a median has weight). A member without a 0.5
/// level offers its mean as its median.
pub fn combine(
    forecasts: &[&Forecast],
    weights: &Weights,
    classes: Option<&[DemandClass]>,
    series: usize,
    horizon: usize,
    levels: &[f64],
) -> Forecast {
    let members = forecasts.len();
    let mut out = Forecast::zeros("ensemble", series, horizon, levels);
    if weights.weighs_medians(members) {
        out.point = vec![0.0; series * horizon];
    }
    let mut qs = vec![0.0f32; levels.len()];
    let mid = levels.iter().position(|l| (l - 0.5).abs() < 1e-9);
    let factors: Vec<f32> = levels.iter().map(|l| calibrate::factor_at(&weights.calibration, *l) as f32).collect();
    for s in 0..series {
        let w = classes.map_or(weights.global.as_slice(), |c| weights.of(c[s]));
        let member = select::member_weights(w, members);
        for h in 0..horizon {
            let (mut mean, mut point) = (0.0f64, 0.0f64);
            qs.fill(0.0);
            for (m, (f, &wm)) in forecasts.iter().zip(&member).enumerate() {
                if wm == 0.0 {
                    continue;
                }
                let (on_mean, on_median) =
                    (w.get(m).copied().unwrap_or(0.0), w.get(members + m).copied().unwrap_or(0.0));
                mean += wm * f.mean_at(s, h) as f64;
                let median = mid.map_or(f.mean_at(s, h), |k| f.quantile_at(s, h, k));
                point += on_mean * f.mean_at(s, h) as f64 + on_median * median as f64;
                for (k, q) in qs.iter_mut().enumerate() {
                    *q += (wm * f.quantile_at(s, h, k) as f64) as f32;
                }
            }
            if let Some(p) = out.point.get_mut(s * horizon + h) {
                *p = point.max(0.0) as f32;
            }
            if !weights.calibration.is_empty() {
                let center = mid.map_or(mean as f32, |k| qs[k]);
                for (q, c) in qs.iter_mut().zip(&factors) {
                    *q = center + c * (*q - center);
                }
            }
            out.set(s, h, mean as f32, &mut qs);
        }
    }
    out
}

/// The demand class of each series of `panel`, when weights go by class.
pub fn classes(panel: &Panel, weights: &Weights, season: usize) -> Option<Vec<DemandClass>> {
    (!weights.by_class.is_empty()).then(|| panel.values.iter().map(|y| classify(y, 2 * season)).collect())
}

impl Forecaster for Ensemble {
    fn name(&self) -> &str {
        "ensemble"
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        let v = self.validate(panel)?;
        for m in &mut self.members {
            m.fit(panel)?;
        }
        self.learn(&v);
        Ok(FitReport::new(self.name(), panel))
    }

    fn fit_reusing(&mut self, panel: &Panel, reuse: &Reuse<'_>) -> Result<Option<FitReport>> {
        let states = self
            .members
            .iter()
            .map(|m| reuse.fitted.iter().find(|f| f.name() == m.name()).map(|f| f.save()).transpose())
            .collect::<Result<Option<Vec<_>>>>()?;
        if states.is_none() && reuse.ensemble.is_none() {
            return Ok(None);
        }
        let learned = match reuse.ensemble {
            Some(l) if [1, 2].map(|k| k * self.members.len()).contains(&l.weights.global.len()) => {
                info!(windows = l.card.windows, "ensemble weights from this run's backtest windows");
                l.clone()
            }
            _ => {
                let v = self.validate(panel)?;
                let (weights, card) = learn(&v, &self.config, self.members.len());
                Learned { weights, card }
            }
        };
        match states {
            Some(states) => {
                for (m, state) in self.members.iter_mut().zip(states) {
                    m.load(&state)?;
                }
            }
            None => {
                for m in &mut self.members {
                    m.fit(panel)?;
                }
            }
        }
        self.set(learned);
        Ok(Some(FitReport::new(self.name(), panel)))
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        let equal = Weights::equal(self.members.len());
        let weights = self.weights.as_ref().unwrap_or(&equal);
        let n = self.members.len();
        // A weighted median needs the members' 0.5 quantile, asked for even when not wanted.
        let mut asked = levels.to_vec();
        if weights.weighs_medians(n) && !levels.iter().any(|l| (l - 0.5).abs() < 1e-9) {
            asked.push(0.5);
            asked.sort_by(f64::total_cmp);
        }
        let unused = Forecast::zeros("unused", panel.len(), horizon, &asked);
        let forecasts = self
            .members
            .iter()
            .enumerate()
            .map(|(i, m)| if weights.uses(i, n) { m.predict(panel, horizon, &asked) } else { Ok(unused.clone()) })
            .collect::<Result<Vec<_>>>()?;
        let classes = classes(panel, weights, self.config.season);
        let out =
            combine(&forecasts.iter().collect::<Vec<_>>(), weights, classes.as_deref(), panel.len(), horizon, &asked);
        Ok(if asked.len() == levels.len() { out } else { out.at_levels(levels) })
    }

    fn save(&self) -> Result<Vec<u8>> {
        let members = self.members.iter().map(|m| Ok((m.name().to_string(), m.save()?))).collect::<Result<Vec<_>>>()?;
        Ok(serde_json::to_vec(&Saved { members, weights: self.weights.clone(), selection: self.selection.clone() })?)
    }

    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        let saved: Saved = serde_json::from_slice(bytes)?;
        if saved.members.len() != self.members.len()
            || saved.members.iter().zip(&self.members).any(|((n, _), m)| n != m.name())
        {
            let names: Vec<&str> = saved.members.iter().map(|(n, _)| n.as_str()).collect();
            return Err(Error::data(format!(
                "the stored ensemble's members ({}) are not the configured ones ({})",
                names.join(", "),
                self.members.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
            )));
        }
        for (m, (_, state)) in self.members.iter_mut().zip(saved.members) {
            m.load(&state)?;
        }
        self.weights = saved.weights;
        self.selection = saved.selection;
        Ok(())
    }

    fn card(&self) -> Option<serde_json::Value> {
        let names: Vec<&str> = self.members.iter().map(|m| m.name()).collect();
        let by_class: std::collections::BTreeMap<String, &Vec<f64>> =
            self.weights.iter().flat_map(|w| w.by_class.iter().map(|(c, v)| (c.as_str().to_string(), v))).collect();
        Some(serde_json::json!({
            "combination": "greedy ensemble selection with replacement over the members' means and medians; the point is the weighted sum of the points chosen, the mean and quantiles the members' weighted means",
            "members": names,
            "weights": self.weights.as_ref().map(|w| w.global.iter().take(names.len()).collect::<Vec<_>>()),
            "median_weights": self.weights.as_ref().map(|w| w.global.iter().skip(names.len()).collect::<Vec<_>>()),
            "weights_by_class": by_class,
            // Empty: the weighted members calibrate their own quantiles, which are kept (or too
            // little validation).
            "quantile_calibration": self.weights.as_ref().map(|w| &w.calibration),
            "rounds": self.config.rounds,
            "validation_windows": self.config.windows,
            "horizon": self.config.horizon,
            "validation": self.selection,
            "member_cards": self.members.iter().map(|m| (m.name().to_string(), m.card())).collect::<std::collections::BTreeMap<_, _>>(),
        }))
    }

    fn needs_covariates(&self) -> bool {
        self.members.iter().any(|m| m.needs_covariates())
    }

    fn reads_calendar(&self) -> bool {
        self.members.iter().any(|m| m.reads_calendar())
    }
}
