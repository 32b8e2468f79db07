//! A global deep model behind the [`Forecaster`](crate::models::Forecaster) trait: fitting, forecasting, and the saved state
//! (the weights as safetensors with a JSON card describing how they were made).
//!
//! One network is trained on every series of the panel (a global model, as DeepAR). Predicting
//! reads each series' last `window` periods and the known covariates of the horizon, and turns
//! the network's scaled outputs back into units; quantile levels other than the trained ones are
//! interpolated between them. Series that never sold forecast zero.
//!
//! Calibrated quantiles (the default): after training, the network forecasts its validation
//! samples (each series' last horizon, which it never trained on), and one factor per trained
//! level scales a quantile's distance from the median so that the level's share of those actuals
//! holds (split conformal, [`calibrate`]); the card's `quantile_calibration` gives the factors.
//! The mean and the median stay the network's own. A fine-tuned network's pinball loss is the
//! same on fewer epochs, so its intervals drift narrower than they should; calibration mends that
//! at the cost of one forward pass.
//!
//! The point forecast (what the backtest scores and the champion is chosen on) is the mean, the
//! median, or by default whichever of the two has the lower absolute error on those same
//! validation samples ([`PointChoice`]); the card's `point` gives the choice and both errors.
//!
//! With `members` above 1 the model is several networks trained from consecutive seeds, whose
//! forecasts are averaged ([`members`](super::members)); calibration reads their averaged
//! forecast, and the card gives each member's training and the validation loss they score together.
//!
//! Saved state: `SHELFCAST-NN 1\n`, the card's length (u64, little-endian), the card (JSON: the
//! configuration, feature and covariate names, vocabularies, scaling rule, training data range,
//! losses, seed), then the weights in the safetensors format (every member's, see
//! [`members::saved_name`]).

use std::sync::MutexGuard;

use serde::{Deserialize, Serialize};
use tch::nn;
use tracing::{debug, info};

use super::data::{DATE_FEATURES, Layout, Sampler, Windows};
use super::lstm::lstm_net;
use super::members::{self, Member};
use super::train::{Net, NnConfig, PointChoice, TrainReport, catch_up, train};
use super::transformer::transformer_net;
use super::vocab::Vocabularies;
use super::{TempFile, interpolate_level, torch_lock};
use crate::error::{Error, Result};
use crate::models::ensemble::calibrate;
use crate::models::framed::{self, Unframe};
use crate::models::pooled::PooledIndex;
use crate::models::{FitReport, Forecast};
use crate::panel::Panel;
use crate::period::Frequency;

const MAGIC: &[u8] = b"SHELFCAST-NN 1\n";

/// Most validation series read per epoch (evenly spaced over the panel).
const MAX_VALIDATION: usize = 4096;

/// The network family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// Sequence-to-sequence LSTM.
    Lstm,
    /// Encoder–decoder Transformer.
    Transformer,
}

impl Architecture {
    /// The registry name.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Lstm => "lstm",
            Architecture::Transformer => "transformer",
        }
    }
}

/// The data a model was trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataRange {
    /// Series in the panel.
    pub series: usize,
    /// Observations in the panel.
    pub observations: usize,
    /// First day of the panel's last period.
    pub end: chrono::NaiveDate,
    /// The grain.
    pub frequency: Frequency,
}

/// What a saved model holds besides its weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Card {
    /// Model name.
    pub model: String,
    /// Network family.
    pub architecture: Architecture,
    /// Hyperparameters.
    pub config: NnConfig,
    /// Input shapes.
    pub layout: Layout,
    /// Encoder inputs per step, in order.
    pub encoder_features: Vec<String>,
    /// Decoder inputs per step, in order.
    pub decoder_features: Vec<String>,
    /// Static attributes and their values.
    pub vocabularies: Vocabularies,
    /// How series are scaled.
    pub scaling: String,
    /// The training data.
    pub data: DataRange,
    /// Training history.
    pub training: TrainReport,
    /// Device trained on.
    pub device: String,
    /// Set when the fit continued a model trained at an earlier cutoff.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm_start: Option<WarmStart>,
    /// (level, factor) per trained level other than the median, from the validation samples
    /// (empty: the network's own quantiles).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quantile_calibration: Vec<(f64, f64)>,
    /// The training of the members after the first (whose is `training`); empty with one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub member_training: Vec<TrainReport>,
    /// The validation loss of the members' averaged forecast (after early stopping, before the
    /// catch-up), to set against each member's best; `None` with one member.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub members_validation_loss: Option<f64>,
    /// The covariates the training periods never saw vary, read at the value they held there
    /// wherever they change (empty in models saved before it existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub held_covariates: Vec<HeldCovariate>,
    /// The point forecast and how it was chosen; `None` (the mean) in models saved before the
    /// choice existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub point: Option<PointChosen>,
}

/// The point forecast a fit settled on ([`PointChoice`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PointChosen {
    /// Whether the point is the median (else the mean).
    pub median: bool,
    /// Mean absolute error of the mean on the validation samples, each series in units of its
    /// scale (`None` when the choice was set, not measured).
    pub mean_error: Option<f64>,
    /// The same for the median.
    pub median_error: Option<f64>,
}

impl PointChosen {
    /// What `choice` settles on, given the validation samples' errors when measured.
    fn of(choice: PointChoice, errors: Option<(f64, f64)>) -> Self {
        let (mean_error, median_error) = errors.map_or((None, None), |(a, b)| (Some(a), Some(b)));
        let median = match choice {
            PointChoice::Mean => false,
            PointChoice::Median => true,
            // Without validation samples to tell, the mean (what the loss trained).
            PointChoice::Auto => errors.is_some_and(|(mean, median)| median < mean),
        };
        Self { median, mean_error, median_error }
    }
}

/// A fit that continued a model trained at an earlier cutoff.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WarmStart {
    /// The last period the parent was trained on.
    pub parent_end: chrono::NaiveDate,
    /// Most epochs of fine-tuning (early stopping may end sooner).
    pub epochs: usize,
}

/// What training on a panel reads.
struct Inputs {
    layout: Layout,
    vocabularies: Vocabularies,
    ids: Vec<Vec<i64>>,
    sampler: Sampler,
    validation: Vec<(usize, usize)>,
    known: Vec<String>,
    past: Vec<String>,
    /// Covariate columns held at one value ([`Windows::holding`]).
    held: Vec<(usize, f32)>,
}

impl Inputs {
    fn feature_names(&self) -> (Vec<String>, Vec<String>) {
        feature_names(&self.layout, &self.known, &self.past)
    }

    /// The samples of `panel` as this fit reads them.
    fn windows<'a>(&'a self, panel: &'a Panel, volume_weighting: bool) -> Result<Windows<'a>> {
        Ok(Windows::new(panel, self.layout, &self.ids, volume_weighting)?.holding(&self.held))
    }

    /// The held columns, named, for the card.
    fn held_covariates(&self) -> Vec<HeldCovariate> {
        let names: Vec<&String> = self.known.iter().chain(&self.past).collect();
        self.held
            .iter()
            .map(|&(column, value)| HeldCovariate { feature: names[column].clone(), column, value })
            .collect()
    }
}

/// A covariate the training periods never saw vary, read at the value it held there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldCovariate {
    /// Its name.
    pub feature: String,
    /// Its column among the covariates (known, then past).
    pub column: usize,
    /// The value it is read at.
    pub value: f32,
}

#[derive(Debug)]
struct Fitted {
    members: Vec<Member>,
    card: Card,
}

/// What [`DeepModel::learn`] made of the members.
struct Learnt {
    members: Vec<Member>,
    training: Vec<TrainReport>,
    calibration: Vec<(f64, f64)>,
    point: PointChosen,
    validation_loss: Option<f64>,
}

/// The members' averaged forecasts of the validation samples, in the scaled space, on the
/// steps of the series with demand: per row the actual, the mean and the trained levels.
#[derive(Debug, Default)]
struct Validated {
    y: Vec<f64>,
    mean: Vec<f64>,
    /// The median (the trained levels read at 0.5).
    median: Vec<f64>,
    /// Row-major, one value per trained level, sorted.
    quantiles: Vec<f64>,
}

impl Validated {
    /// Mean absolute error of the mean and of the median over the rows (`None` without rows).
    fn point_errors(&self) -> Option<(f64, f64)> {
        let mae = |point: &[f64]| point.iter().zip(&self.y).map(|(p, y)| (p - y).abs()).sum::<f64>();
        let n = self.y.len() as f64;
        (!self.y.is_empty()).then(|| (mae(&self.mean) / n, mae(&self.median) / n))
    }
}

/// The members' averaged forecasts of the `validation` samples (series, cut point).
fn validate(members: &[Member], windows: &Windows, validation: &[(usize, usize)], cfg: &NnConfig) -> Result<Validated> {
    let nq = cfg.quantiles.len();
    let mut v = Validated::default();
    for chunk in validation.chunks(cfg.batch_size.max(1) * 4) {
        let batch = windows.batch(chunk, cfg.horizon, super::device());
        let out = members::forward(members, &batch, cfg.point_loss, nq);
        let to_vec = |t: &tch::Tensor| Vec::<f32>::try_from(t.to_device(tch::Device::Cpu).contiguous().view([-1]));
        let (mean, quant, target) = (to_vec(&out.mean)?, to_vec(&out.quantiles)?, to_vec(&batch.target)?);
        for k in (0..chunk.len()).filter(|k| !batch.no_demand[*k]) {
            for h in 0..cfg.horizon {
                let at = k * cfg.horizon + h;
                let mut row = quant[at * nq..(at + 1) * nq].to_vec();
                row.sort_by(f32::total_cmp);
                v.y.push(f64::from(target[at]));
                v.mean.push(f64::from(mean[at]));
                v.median.push(f64::from(interpolate_level(&cfg.quantiles, &row, 0.5)));
                v.quantiles.extend(row.into_iter().map(f64::from));
            }
        }
    }
    Ok(v)
}

/// A deep model of either architecture.
#[derive(Debug)]
pub struct DeepModel {
    architecture: Architecture,
    cfg: NnConfig,
    /// Whether fits calibrate their quantiles on the validation samples.
    calibrate: bool,
    fitted: Option<Fitted>,
}

const SCALING: &str = "each series is divided by the mean absolute value of its encoder window, floored at 1 \
     (the history before the window when it holds no demand); series that never sold forecast zero";

fn build_net(
    architecture: Architecture,
    vs: &nn::VarStore,
    layout: &Layout,
    sizes: &[usize],
    cfg: &NnConfig,
) -> Box<dyn Net> {
    let p = vs.root();
    match architecture {
        Architecture::Lstm => Box::new(lstm_net(&p, layout, sizes, cfg)),
        Architecture::Transformer => Box::new(transformer_net(&p, layout, sizes, cfg)),
    }
}

/// The periods a year back the decoder's yearly lags read (0: none): when the settings ask for
/// them, the season is not already a year, and the longest series holds a year before a training
/// window and the two horizons after it.
fn yearly_period(cfg: &NnConfig, panel: &Panel) -> usize {
    let year = panel.frequency.year();
    let longest = panel.values.iter().map(Vec::len).max().unwrap_or(0);
    let enough = longest >= year + cfg.window + 2 * cfg.horizon;
    if cfg.yearly && cfg.season != year && enough { year } else { 0 }
}

fn feature_names(layout: &Layout, panel_known: &[String], panel_past: &[String]) -> (Vec<String>, Vec<String>) {
    let dates: Vec<String> = (1..=7)
        .map(|d| format!("day_of_week_{d}"))
        .chain(["doy_sin", "doy_cos", "doy_sin2", "doy_cos2"].map(String::from))
        .collect();
    debug_assert_eq!(dates.len(), DATE_FEATURES);
    let known: &[String] = if layout.known > 0 { panel_known } else { &[] };
    let past: &[String] = if layout.past > 0 { panel_past } else { &[] };
    let enc = ["target_scaled", "observed", "log_scale"]
        .map(String::from)
        .into_iter()
        .chain(dates.clone())
        .chain(known.iter().cloned())
        .chain(past.iter().cloned())
        .collect();
    let seasonal: &[&str] = match (layout.season > 0, layout.anchor) {
        (false, _) => &[],
        (true, false) => &["seasonal_last", "seasonal_mean"],
        (true, true) => &["seasonal_last", "seasonal_mean", "seasonal_anchor"],
    };
    let yearly: &[&str] = if layout.year > 0 { &["yearly_last", "yearly_anchor"] } else { &[] };
    let pooled: &[&str] = if layout.pooled > 0 { &["pooled_index"] } else { &[] };
    let dec = ["horizon_position", "log_scale"]
        .map(String::from)
        .into_iter()
        .chain(dates)
        .chain(known.iter().cloned())
        .chain(seasonal.iter().chain(yearly).chain(pooled).map(|s| s.to_string()))
        .collect();
    (enc, dec)
}

impl DeepModel {
    /// An unfitted model whose fits calibrate their quantiles.
    pub fn new(architecture: Architecture, cfg: NnConfig) -> Self {
        Self { architecture, cfg, calibrate: true, fitted: None }
    }

    /// Whether fits calibrate their quantiles on the validation samples (else the network's own).
    pub fn calibrated(self, calibrate: bool) -> Self {
        Self { calibrate, ..self }
    }

    /// The registry name.
    pub fn name(&self) -> &str {
        self.architecture.name()
    }

    /// The fitted model's card.
    pub fn card(&self) -> Option<&Card> {
        self.fitted.as_ref().map(|f| &f.card)
    }

    /// Trains on every series of `panel` (and its covariates, when loaded and configured).
    pub fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        let inputs = self.inputs(panel)?;
        super::set_threads(self.cfg.threads);
        // libtorch's generator is process-wide: hold it from seeding to the end of the draws
        // (through training only with dropout).
        let held = while_training(&self.cfg);
        let windows = inputs.windows(panel, self.cfg.volume_weighting)?;
        let sizes = inputs.vocabularies.sizes();
        let build = |cfg: &NnConfig| {
            let _guard = held.is_none().then(torch_lock);
            tch::manual_seed(cfg.seed as i64);
            let vs = nn::VarStore::new(super::device());
            let net = build_net(self.architecture, &vs, &inputs.layout, &sizes, cfg);
            Some(Member { vs, net })
        };
        let learnt = self.learn(build, &windows, &inputs, &self.cfg)?;
        self.fitted = Some(self.fitted_from(panel, inputs, learnt, None));
        Ok(FitReport::new(self.name(), panel))
    }

    /// Continues training `parent` (a state [`DeepModel::save`] wrote, trained at an earlier
    /// cutoff) on `panel` for `epochs` epochs instead of training from scratch: a warm start.
    /// `Ok(Err(reason))` when the parent does not fit this panel and configuration (another
    /// architecture or configuration, other covariate columns, new items, locations or
    /// attribute values): the caller then trains from scratch.
    pub fn fit_warm(
        &mut self,
        panel: &Panel,
        parent: &[u8],
        epochs: usize,
    ) -> Result<std::result::Result<FitReport, String>> {
        let mut prev = DeepModel::new(self.architecture, self.cfg.clone());
        if let Err(e) = prev.load(parent) {
            return Ok(Err(format!("the stored model cannot be read: {e}")));
        }
        let Some(Fitted { members: parents, card }) = prev.fitted else {
            return Ok(Err("nothing stored".into()));
        };
        if (NnConfig { threads: self.cfg.threads, ..card.config.clone() }) != self.cfg {
            return Ok(Err("its configuration differs from the current one".into()));
        }
        let inputs = self.inputs(panel)?;
        let (encoder, decoder) = inputs.feature_names();
        if card.layout != inputs.layout || card.encoder_features != encoder || card.decoder_features != decoder {
            return Ok(Err("its input features (covariate columns) differ from this panel's".into()));
        }
        if card.vocabularies != inputs.vocabularies {
            return Ok(Err("the panel has items, locations or attribute values it has no embedding for".into()));
        }
        let cfg = NnConfig { epochs: epochs.max(1), warmup_steps: 0, ..self.cfg.clone() };
        super::set_threads(cfg.threads);
        let held = while_training(&cfg);
        let windows = inputs.windows(panel, cfg.volume_weighting)?;
        let mut parents = parents.into_iter();
        let resume = |member: &NnConfig| {
            let _guard = held.is_none().then(torch_lock);
            tch::manual_seed(member.seed as i64);
            parents.next()
        };
        let learnt = self.learn(resume, &windows, &inputs, &cfg)?;
        let warm = WarmStart { parent_end: card.data.end, epochs: cfg.epochs };
        self.fitted = Some(self.fitted_from(panel, inputs, learnt, Some(warm)));
        Ok(Ok(FitReport::new(self.name(), panel)))
    }

    /// What training on `panel` reads: the layout, vocabularies, windows and their split.
    fn inputs(&self, panel: &Panel) -> Result<Inputs> {
        let cfg = &self.cfg;
        if cfg.quantiles.is_empty() || cfg.horizon == 0 || cfg.window == 0 {
            return Err(Error::data(format!("{}: window, horizon and quantiles must not be empty", self.name())));
        }
        let covariates = panel.covariates.as_deref().filter(|_| cfg.covariates);
        let vocabularies = Vocabularies::fit(panel, covariates.is_some());
        let layout = Layout {
            window: cfg.window,
            horizon: cfg.horizon,
            known: covariates.map_or(0, |c| c.known_dim()),
            past: covariates.map_or(0, |c| c.past_dim()),
            statics: vocabularies.names.len(),
            season: cfg.season,
            anchor: cfg.season > 0 && cfg.anchor,
            year: yearly_period(cfg, panel),
            pooled: 0,
            anchored: cfg.season > 0 && cfg.anchor && cfg.anchored,
        };
        // The yearly cycle: the yearly lags' where the decoder reads them, else a season of a year.
        let cycle = if layout.year > 0 {
            layout.year
        } else if cfg.season == panel.frequency.year() {
            cfg.season
        } else {
            0
        };
        let layout = Layout { pooled: if cfg.pooled && PooledIndex::applies(panel) { cycle } else { 0 }, ..layout };
        let history = covariates.map_or(cfg.history, |c| c.history.min(cfg.history));
        let ids = vocabularies.ids(panel);
        let (sampler, mut validation) = Sampler::split(panel, layout, history, cfg.weighting());
        if sampler.is_empty() {
            return Err(Error::data(format!(
                "{}: no series has the {} periods a training window needs (2 × horizon + 1, within the last {history})",
                self.name(),
                2 * cfg.horizon + 1
            )));
        }
        if validation.len() > MAX_VALIDATION {
            let every = validation.len().div_ceil(MAX_VALIDATION);
            validation = validation.into_iter().step_by(every).collect();
        }
        let (known, past) = covariates.map_or((vec![], vec![]), |c| (c.known_names(), c.past.names.clone()));
        // What training never saw vary: the periods before the validation horizon.
        let held = match covariates {
            Some(c) if cfg.hold_unseen => c.constant_before(c.history.saturating_sub(cfg.horizon)),
            _ => Vec::new(),
        };
        if !held.is_empty() {
            let names: Vec<&String> = known.iter().chain(&past).collect();
            let held: Vec<&String> = held.iter().map(|(j, _)| names[*j]).collect();
            debug!(model = self.name(), ?held, "covariates that never varied in training held at their value");
        }
        Ok(Inputs { layout, vocabularies, ids, sampler, validation, known, past, held })
    }

    /// Trains each member with early stopping (`start` gives member `m` its network, seeded by
    /// its configuration: built fresh, or the parent's to continue), calibrates the quantiles of
    /// their averaged forecast on the validation samples, then catches each up on the cut points
    /// those kept out of training: what a fit from scratch and a warm start both do.
    fn learn(
        &self,
        mut start: impl FnMut(&NnConfig) -> Option<Member>,
        windows: &Windows,
        inputs: &Inputs,
        cfg: &NnConfig,
    ) -> Result<Learnt> {
        let count = cfg.member_count();
        // Each member's epochs are logged under its own name (`lstm#1`) when there are several.
        let label = |m: usize| if count == 1 { self.name().to_string() } else { format!("{}#{m}", self.name()) };
        let (mut members, mut training) = (Vec::with_capacity(count), Vec::with_capacity(count));
        for m in 0..count {
            let member_cfg = cfg.member(m);
            let member = start(&member_cfg).ok_or_else(|| {
                Error::data(format!("{}: the stored model has fewer than {count} members", self.name()))
            })?;
            let _span = tracing::info_span!("member", model = self.name(), member = m, of = count).entered();
            training.push(train(
                &label(m),
                member.net.as_ref(),
                &member.vs,
                windows,
                &inputs.sampler,
                &inputs.validation,
                &member_cfg,
            )?);
            members.push(member);
        }
        let validation_loss =
            if count > 1 { members::validation_loss(&members, windows, &inputs.validation, cfg)? } else { None };
        if let Some(loss) = validation_loss {
            let best: Vec<f64> =
                training.iter().filter_map(|t| t.validation_loss.iter().copied().reduce(f64::min)).collect();
            info!(model = self.name(), members = count, validation_loss = loss, ?best, "members averaged");
        }
        let validated = if self.calibrate || cfg.point == PointChoice::Auto {
            validate(&members, windows, &inputs.validation, cfg)?
        } else {
            Validated::default()
        };
        let calibration = self.calibration(&validated, cfg);
        let errors = if cfg.point == PointChoice::Auto { validated.point_errors() } else { None };
        let point = PointChosen::of(cfg.point, errors);
        if let Some((mean, median)) = errors {
            info!(
                model = self.name(),
                mean,
                median,
                median_chosen = point.median,
                "point forecast chosen on the validation samples"
            );
        }
        for (m, (member, report)) in members.iter().zip(&mut training).enumerate() {
            let _span = tracing::info_span!("member", model = self.name(), member = m, of = count).entered();
            report.catch_up_loss =
                catch_up(&label(m), member.net.as_ref(), &member.vs, windows, &inputs.sampler, &cfg.member(m))?;
        }
        Ok(Learnt { members, training, calibration, point, validation_loss })
    }

    /// The factors of the trained levels, from the members' averaged forecasts of the validation
    /// samples (empty when not calibrating, or with too few of them).
    fn calibration(&self, validated: &Validated, cfg: &NnConfig) -> Vec<(f64, f64)> {
        if !self.calibrate {
            return Vec::new();
        }
        let nq = cfg.quantiles.len();
        let factors = calibrate::factors_of(&cfg.quantiles, &validated.y, |r, k| validated.quantiles[r * nq + k]);
        debug!(
            model = self.name(),
            rows = validated.y.len(),
            ?factors,
            "quantiles calibrated on the validation samples"
        );
        factors
    }

    fn fitted_from(&self, panel: &Panel, inputs: Inputs, learnt: Learnt, warm_start: Option<WarmStart>) -> Fitted {
        let Learnt { members, training, calibration, point, validation_loss } = learnt;
        let mut training = training.into_iter();
        let (encoder_features, decoder_features) = inputs.feature_names();
        let held_covariates = inputs.held_covariates();
        let card = Card {
            model: self.name().to_string(),
            architecture: self.architecture,
            config: self.cfg.clone(),
            layout: inputs.layout,
            encoder_features,
            decoder_features,
            vocabularies: inputs.vocabularies,
            scaling: SCALING.to_string(),
            data: DataRange {
                series: panel.len(),
                observations: panel.observations(),
                end: panel.end,
                frequency: panel.frequency,
            },
            training: training.next().expect("at least one member"),
            device: super::device_name(),
            warm_start,
            quantile_calibration: calibration,
            member_training: training.collect(),
            members_validation_loss: validation_loss,
            held_covariates,
            point: Some(point),
        };
        Fitted { members, card }
    }

    /// Forecasts `horizon` periods (at most the trained horizon) after the panel's end.
    pub fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        let f =
            self.fitted.as_ref().ok_or_else(|| Error::data(format!("{}: predict before fit or load", self.name())))?;
        let card = &f.card;
        if horizon > card.layout.horizon {
            return Err(Error::data(format!(
                "{}: trained for {} periods, asked for {horizon}",
                self.name(),
                card.layout.horizon
            )));
        }
        let ids = card.vocabularies.ids(panel);
        let held: Vec<(usize, f32)> = card.held_covariates.iter().map(|h| (h.column, h.value)).collect();
        let windows = Windows::new(panel, card.layout, &ids, false)?.holding(&held);
        let trained = &card.config.quantiles;
        let nq = trained.len();
        let mut out = Forecast::zeros(self.name(), panel.len(), horizon, levels);
        let mut qs = vec![0f32; levels.len()];
        let calibrated = !card.quantile_calibration.is_empty();
        if card.point.is_some_and(|p| p.median) {
            out.point = vec![0.0; panel.len() * horizon];
        }
        let factors: Vec<f32> =
            levels.iter().map(|l| calibrate::factor_at(&card.quantile_calibration, *l) as f32).collect();
        let device = f.members[0].vs.device();
        let samples: Vec<(usize, usize)> = panel.values.iter().enumerate().map(|(s, y)| (s, y.len())).collect();
        for chunk in samples.chunks(card.config.batch_size.max(1) * 4) {
            let batch = windows.batch(chunk, horizon, device);
            let averaged = members::forward(&f.members, &batch, card.config.point_loss, nq);
            let mean = Vec::<f32>::try_from(averaged.mean.to_device(tch::Device::Cpu).contiguous().view([-1]))?;
            let quant = Vec::<f32>::try_from(averaged.quantiles.to_device(tch::Device::Cpu).contiguous().view([-1]))?;
            for (k, &(s, _)) in chunk.iter().enumerate() {
                if batch.no_demand[k] {
                    continue;
                }
                let nu = batch.scale[k];
                for h in 0..horizon {
                    let at = (k * horizon + h) * nq;
                    let mut row: Vec<f32> = quant[at..at + nq].to_vec();
                    row.sort_by(f32::total_cmp);
                    let median = interpolate_level(trained, &row, 0.5);
                    for ((q, level), c) in qs.iter_mut().zip(levels).zip(&factors) {
                        let own = interpolate_level(trained, &row, *level);
                        *q = if calibrated { median + c * (own - median) } else { own } * nu;
                    }
                    out.set(s, h, mean[k * horizon + h] * nu, &mut qs);
                    if let Some(p) = out.point.get_mut(s * horizon + h) {
                        *p = (median * nu).max(0.0);
                    }
                }
            }
        }
        Ok(out)
    }

    /// The card and weights as one blob.
    pub fn save(&self) -> Result<Vec<u8>> {
        let f =
            self.fitted.as_ref().ok_or_else(|| Error::data(format!("{}: nothing to save before fit", self.name())))?;
        let card = serde_json::to_vec(&f.card)?;
        let mut named: Vec<(String, tch::Tensor)> = f
            .members
            .iter()
            .enumerate()
            .flat_map(|(m, member)| {
                member.vs.variables().into_iter().map(move |(k, v)| {
                    (members::saved_name(m, &k), v.detach().to_device(tch::Device::Cpu).contiguous())
                })
            })
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let tmp = TempFile::new("safetensors");
        tch::Tensor::write_safetensors(&named, tmp.path())?;
        let weights = std::fs::read(tmp.path())?;
        Ok(framed::frame(MAGIC, &card, &weights))
    }

    /// Restores a blob written by [`DeepModel::save`].
    pub fn load(&mut self, bytes: &[u8]) -> Result<()> {
        let bad = |why: &str| Error::data(format!("{}: not a saved model ({why})", self.name()));
        let (card, weights) = framed::unframe(MAGIC, bytes).map_err(|e| {
            bad(match e {
                Unframe::NoHeader => "no header",
                Unframe::Truncated => "truncated",
                Unframe::TruncatedHeader => "truncated card",
            })
        })?;
        let card: Card = serde_json::from_slice(card)?;
        if card.architecture != self.architecture {
            return Err(bad(&format!("it holds a {} model", card.architecture.name())));
        }
        let tmp = TempFile::new("safetensors");
        std::fs::write(tmp.path(), weights)?;
        let stored: std::collections::HashMap<String, tch::Tensor> =
            tch::Tensor::read_safetensors(tmp.path())?.into_iter().collect();
        let mut loaded = Vec::with_capacity(card.config.member_count());
        for m in 0..card.config.member_count() {
            let vs = nn::VarStore::new(super::device());
            // Building draws initial weights from libtorch's generator, which a concurrent fit may be using.
            let net = {
                let _guard = torch_lock();
                build_net(card.architecture, &vs, &card.layout, &card.vocabularies.sizes(), &card.config)
            };
            let mut vars = vs.variables();
            tch::no_grad(|| -> Result<()> {
                for (name, var) in vars.iter_mut() {
                    let name = members::saved_name(m, name);
                    let src = stored.get(&name).ok_or_else(|| bad(&format!("no weights for `{name}`")))?;
                    if src.size() != var.size() {
                        return Err(bad(&format!("`{name}` has shape {:?}, expected {:?}", src.size(), var.size())));
                    }
                    var.copy_(&src.to_device(vs.device()));
                }
                Ok(())
            })?;
            loaded.push(Member { vs, net });
        }
        self.cfg = card.config.clone();
        self.fitted = Some(Fitted { members: loaded, card });
        Ok(())
    }
}

/// Implements [`crate::models::Forecaster`] for a newtype over [`DeepModel`].
macro_rules! delegate_forecaster {
    ($ty:ident) => {
        impl $ty {
            /// Whether fits calibrate their quantiles on the validation samples (the default).
            pub fn calibrated(self, calibrate: bool) -> Self {
                Self(self.0.calibrated(calibrate))
            }
        }

        impl crate::models::Forecaster for $ty {
            fn name(&self) -> &str {
                self.0.name()
            }

            fn fit(&mut self, panel: &crate::panel::Panel) -> crate::error::Result<crate::models::FitReport> {
                self.0.fit(panel)
            }

            fn warm_starts(&self) -> bool {
                true
            }

            fn fit_warm(
                &mut self,
                panel: &crate::panel::Panel,
                parent: &[u8],
                epochs: usize,
            ) -> crate::error::Result<crate::models::Warm> {
                Ok(match self.0.fit_warm(panel, parent, epochs)? {
                    Ok(fit) => crate::models::Warm::Continued(fit),
                    Err(reason) => crate::models::Warm::Incompatible(reason),
                })
            }

            fn predict(
                &self,
                panel: &crate::panel::Panel,
                horizon: usize,
                levels: &[f64],
            ) -> crate::error::Result<crate::models::Forecast> {
                self.0.predict(panel, horizon, levels)
            }

            fn save(&self) -> crate::error::Result<Vec<u8>> {
                self.0.save()
            }

            fn load(&mut self, bytes: &[u8]) -> crate::error::Result<()> {
                self.0.load(bytes)
            }

            fn card(&self) -> Option<serde_json::Value> {
                self.0.card().and_then(|c| serde_json::to_value(c).ok())
            }

            fn reads_calendar(&self) -> bool {
                true
            }

            fn needs_covariates(&self) -> bool {
                true
            }
        }
    };
}
pub(crate) use delegate_forecaster;

/// The generator's lock, held through training when it draws dropout masks; `None` when it does
/// not, and each member then takes it only while its weights are seeded and drawn, so that other
/// fits train beside this one and every fit stays deterministic.
fn while_training(cfg: &NnConfig) -> Option<MutexGuard<'static, ()>> {
    (cfg.dropout > 0.0).then(torch_lock)
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::panel::SeriesKey;

    fn panel(periods: usize, frequency: Frequency) -> Panel {
        let keys = vec![SeriesKey { item_id: "i".into(), location_id: "s".into() }];
        Panel::new(keys, vec![vec![1.0; periods]], NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(), frequency)
    }

    #[test]
    fn auto_takes_the_point_with_the_lower_validation_error_and_the_mean_without_one() {
        let median = |choice, errors| PointChosen::of(choice, errors).median;
        assert!(median(PointChoice::Auto, Some((0.5, 0.4))));
        assert!(!median(PointChoice::Auto, Some((0.4, 0.5))));
        assert!(!median(PointChoice::Auto, Some((0.4, 0.4))), "a tie keeps the mean the loss trained");
        assert!(!median(PointChoice::Auto, None), "no validation samples: the mean");
        assert!(median(PointChoice::Median, None) && !median(PointChoice::Mean, None));

        // Errors over rows: the median and the mean against each actual.
        let v = Validated { y: vec![0.0, 0.0, 9.0], mean: vec![3.0; 3], median: vec![0.0; 3], quantiles: Vec::new() };
        let (mean, median) = v.point_errors().unwrap();
        assert!((mean - 4.0).abs() < 1e-9 && (median - 3.0).abs() < 1e-9, "{mean} {median}");
        assert_eq!(Validated::default().point_errors(), None);
    }

    #[test]
    fn the_yearly_lags_are_read_where_the_season_is_shorter_than_a_year_and_a_year_is_held() {
        let daily = NnConfig::new(Frequency::Daily, 28);
        let need = 364 + daily.window + 2 * 28;
        assert_eq!(yearly_period(&daily, &panel(need, Frequency::Daily)), 364);
        assert_eq!(yearly_period(&daily, &panel(need - 1, Frequency::Daily)), 0, "no year before a training window");
        let off = NnConfig { yearly: false, ..daily.clone() };
        assert_eq!(yearly_period(&off, &panel(need, Frequency::Daily)), 0, "turned off");
        let weekly = NnConfig::new(Frequency::Weekly, 13);
        assert_eq!(yearly_period(&weekly, &panel(400, Frequency::Weekly)), 0, "a 52-week season is the year");
        assert_eq!(yearly_period(&NnConfig { season: 4, ..weekly }, &panel(400, Frequency::Weekly)), 52);

        // The decoder's names and width agree with and without them.
        let layout = Layout::plain(56, 28);
        for layout in [layout, Layout { year: 364, ..layout }, Layout { year: 364, pooled: 364, ..layout }] {
            let (_, decoder) = feature_names(&layout, &[], &[]);
            assert_eq!(decoder.len(), layout.decoder_dim());
            assert_eq!(decoder.iter().any(|n| n == "yearly_last"), layout.year > 0);
            assert_eq!(decoder.last().is_some_and(|n| n == "pooled_index"), layout.pooled > 0);
        }
    }

    /// With `pooled` on, a weekly network over an item sold at two locations reads the item's
    /// pooled index a season back, trains, and forecasts the same once stored and loaded; an
    /// item at one location has nothing to pool.
    #[test]
    fn a_network_reading_the_pooled_index_trains_and_reloads() {
        let (weeks, horizon) = (90, 6);
        let shape = |t: usize| 10.0 + 8.0 * ((t % 52) as f32 / 52.0 * std::f32::consts::TAU).sin();
        let keys = ["x", "y"].map(|l| SeriesKey { item_id: "a".into(), location_id: l.into() }).to_vec();
        let values = (0..2).map(|s| (0..weeks).map(|t| (s + 1) as f32 * shape(t)).collect()).collect();
        let panel = Panel::new(keys, values, NaiveDate::from_ymd_opt(2026, 3, 27).unwrap(), Frequency::Weekly);
        let cfg = NnConfig {
            window: 13,
            history: 200,
            season: 52,
            anchor: true,
            pooled: true,
            epochs: 2,
            ..NnConfig::fast(horizon)
        };
        let mut model = DeepModel::new(Architecture::Lstm, cfg.clone());
        model.fit(&panel).unwrap();
        let card = model.card().unwrap();
        assert_eq!(card.layout.pooled, 52);
        assert_eq!(card.decoder_features.last().map(String::as_str), Some("pooled_index"));
        let forecast = model.predict(&panel, horizon, &[0.1, 0.5, 0.9]).unwrap();
        assert!((0..2).all(|s| (0..horizon).all(|h| forecast.mean_at(s, h).is_finite())));
        let mut restored = DeepModel::new(Architecture::Lstm, cfg.clone());
        restored.load(&model.save().unwrap()).unwrap();
        assert_eq!(restored.predict(&panel, horizon, &[0.1, 0.5, 0.9]).unwrap(), forecast);
        let alone = Panel { keys: vec![SeriesKey { item_id: "b".into(), location_id: "x".into() }], ..panel.clone() };
        let alone = Panel { values: vec![panel.values[0].clone()], ..alone };
        let mut single = DeepModel::new(Architecture::Lstm, cfg);
        single.fit(&alone).unwrap();
        assert_eq!(single.card().unwrap().layout.pooled, 0);
    }
}
