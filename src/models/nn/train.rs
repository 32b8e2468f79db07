//! Training of the deep models: configuration, loss and the loop.
//!
//! Adam (Kingma & Ba, 2015) with a linear warm-up then cosine decay of the learning rate
//! (Loshchilov & Hutter, 2017), gradient-norm clipping, and early stopping on the validation
//! window: the weights of the best validation epoch are kept. The loss is the pinball (quantile)
//! loss over the trained quantile levels, as in MQ-RNN (Wen et al., 2017) and TFT (Lim et al.,
//! 2021), plus a point loss for the mean (squared error on the scaled target, or the Poisson or
//! Tweedie deviance).
//! Settings may draw windows towards recent periods and heavy series ([`Weighting`]), validate
//! and keep a moving average of the weights ([`Average`]), and cap the targets training reads;
//! all are off by default.
//!
//! Deterministic on the CPU for a seed: libtorch's generator is seeded with `tch::manual_seed`
//! and windows are drawn from a seeded ChaCha stream. libtorch's generator is process-wide, so a
//! fit holds [`super::torch_lock`] while it draws from it: while it draws the initial weights,
//! and through training only with dropout (without, fits train side by side).

use std::collections::HashMap;
use std::time::Instant;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};
use tracing::info;

use super::average::Average;
use super::data::{Batch, Sampler, Weighting, Windows};
use crate::error::Result;
use crate::models::ModelsConfig;
use crate::period::Frequency;

/// The learning rate at the end of the cosine decay, as a share of the peak.
const LR_FLOOR: f64 = 0.1;

/// Windows drawn from the whole training range per recent cut point in a catch-up pass
/// ([`catch_up`]).
const REHEARSAL: usize = 1;

/// The point loss for the mean output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointLoss {
    /// Squared error on the scaled target.
    Mse,
    /// Poisson deviance (the mean goes through a softplus), for counts.
    Poisson,
    /// Tweedie deviance of power `tweedie-power` (the mean goes through a softplus): a variance
    /// growing as the mean to that power, between Poisson (1) and gamma (2), so a spike weighs
    /// less than under Poisson and many zeros with occasional sales are a likely outcome, not
    /// a poor fit (what the M5 competition's leading tree models were trained on).
    Tweedie,
}

impl PointLoss {
    /// Whether the mean output goes through a softplus (a count's mean is positive).
    pub fn softplus(self) -> bool {
        matches!(self, PointLoss::Poisson | PointLoss::Tweedie)
    }
}

/// Which of the network's outputs is the point forecast: the one the backtest scores, the
/// champion is chosen on and the published `point` column holds (the mean column stays the mean).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PointChoice {
    /// The mean (what configurations saved before the choice existed forecast).
    #[default]
    Mean,
    /// The median (the 0.5 level): an absolute error is lowest at the median of what follows,
    /// which for skewed counts sits below the mean.
    Median,
    /// Whichever of the two has the lower absolute error, each series in units of its own scale,
    /// on the validation samples (each series' last horizon, which training never read).
    Auto,
}

/// Hyperparameters of a deep model and its training.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NnConfig {
    /// Encoder steps (periods of history read per forecast).
    pub window: usize,
    /// Decoder steps trained for (the longest horizon the model forecasts).
    pub horizon: usize,
    /// Periods before the end from which training windows are cut (and covariates kept).
    pub history: usize,
    /// Hidden width (LSTM state, Transformer model width).
    pub hidden: usize,
    /// Layers (LSTM layers, Transformer blocks on each side).
    pub layers: usize,
    /// Attention heads (Transformer); falls back to 1 when it does not divide `hidden`.
    pub heads: usize,
    /// Widest embedding of a static attribute.
    pub embed_max: usize,
    /// Dropout rate while training.
    pub dropout: f64,
    /// Most epochs.
    pub epochs: usize,
    /// Samples per optimiser step.
    pub batch_size: usize,
    /// Windows drawn per epoch; 0 draws 32 per series, between 2 048 and 65 536.
    pub samples_per_epoch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Steps of linear warm-up before the cosine decay.
    pub warmup_steps: usize,
    /// Largest gradient L2 norm.
    pub clip_norm: f64,
    /// Epochs without a better validation loss before stopping.
    pub patience: usize,
    /// Adam weight decay.
    pub weight_decay: f64,
    /// Quantile levels trained (others are interpolated).
    pub quantiles: Vec<f64>,
    /// Point loss for the mean.
    pub point_loss: PointLoss,
    /// Power of the Tweedie deviance with `point_loss` Tweedie, in (1, 2); 1.5 in configurations
    /// saved before it existed.
    #[serde(default = "default_tweedie_power")]
    pub tweedie_power: f64,
    /// Weighs samples by the volume of their series (an unscaled loss would favour them too).
    pub volume_weighting: bool,
    /// Reads the panel's covariates when it has them.
    pub covariates: bool,
    /// Seasonal cycle of the decoder's seasonal lags (0: none).
    #[serde(default)]
    pub season: usize,
    /// Whether the decoder also reads the seasonal anchor (see [`super::data::Layout::anchor`]);
    /// false in configurations saved before it existed.
    #[serde(default)]
    pub anchor: bool,
    /// Whether, with the anchor, the outputs are offsets from it ([`super::anchored`]); false in
    /// configurations saved before it existed.
    #[serde(default)]
    pub anchored: bool,
    /// Whether covariates the training periods never saw vary are read at the value they held
    /// there ([`super::data::Windows::holding`]); false in configurations saved before it existed.
    #[serde(default)]
    pub hold_unseen: bool,
    /// The point forecast: the mean, the median, or the one of them validation chose
    /// ([`PointChoice`]); the mean in configurations saved before it existed.
    #[serde(default)]
    pub point: PointChoice,
    /// Whether the decoder also reads the yearly lags where the season is shorter than a year and
    /// the history long enough (see [`super::data::Layout::year`]); false in configurations saved
    /// before they existed.
    #[serde(default)]
    pub yearly: bool,
    /// Whether the decoder also reads each item's seasonal index pooled over its locations a
    /// year back (see [`super::data::Layout::pooled`]); false in configurations saved before it
    /// existed.
    #[serde(default)]
    pub pooled: bool,
    /// Passes over the cut points whose targets reach into the validation horizon, after early
    /// stopping and calibration ([`catch_up`]); 0 in configurations saved before it existed.
    #[serde(default)]
    pub catch_up: usize,
    /// Periods back from a series' latest training window at which a window's chance of being
    /// drawn halves (0: every window alike; see [`Weighting`]); 0 in configurations saved before
    /// it existed.
    #[serde(default)]
    pub recency_half_life: usize,
    /// Power of a series' volume in its chance of being drawn (0: by its window count alone; see
    /// [`Weighting`]); 0 in configurations saved before it existed.
    #[serde(default)]
    pub volume_sampling: f64,
    /// Half-life in epochs of the moving average of the weights that validation reads and the
    /// fit keeps ([`Average`]; 0: the weights of the last step); 0 in configurations saved before
    /// it existed.
    #[serde(default)]
    pub average_epochs: f64,
    /// Highest scaled target training reads (a period at more than this many times its series'
    /// scale counts as this many; 0: no cap); validation reads the targets as they are. 0 in
    /// configurations saved before it existed.
    #[serde(default)]
    pub target_cap: f64,
    /// Networks trained from consecutive seeds and averaged ([`super::members`]); 1 in
    /// configurations saved before members existed.
    #[serde(default = "one")]
    pub members: usize,
    /// Seed for initialisation, dropout and sampling.
    pub seed: u64,
    /// libtorch intra-op threads.
    pub threads: usize,
}

fn one() -> usize {
    1
}

fn default_tweedie_power() -> f64 {
    1.5
}

/// Whether the decoder reads the seasonal anchor unless the settings say: when a season spans the
/// encoder window, so the window a season earlier does not overlap the current one and the
/// change of level between them is news. With a shorter season (a week of a daily window of eight)
/// the two windows share most of their periods, the anchor is nearly the seasonal lag the decoder
/// already reads, and on small daily panels it made the Transformer learn a promotion less well.
pub fn anchor_by_default(season: usize, window: usize) -> bool {
    season > 0 && season >= window
}

impl NnConfig {
    /// Defaults for a grain and horizon, sized for the demo lake.
    pub fn new(frequency: Frequency, horizon: usize) -> Self {
        let window = match frequency {
            Frequency::Daily => 56,
            Frequency::Weekly => 52,
        };
        Self {
            window,
            horizon,
            history: window + 2 * horizon + 365,
            hidden: 64,
            layers: 2,
            heads: 4,
            embed_max: 16,
            // No dropout: on the same validation windows a lower loss than 0.1 (LSTM: demo
            // −1.9%, Walmart −3.3%; Transformer: Walmart −4.3%, demo within 0.1%), in about half
            // the Transformer's time; and fits without it train side by side (see `torch_lock`).
            dropout: 0.0,
            // Ten epochs of batches of 128 at a peak rate of 0.003: on the validation window
            // inside the training data (demo and Walmart), a lower loss than twenty epochs of 256
            // at 0.001, in half the time (README, "Deep models' training defaults").
            epochs: 10,
            batch_size: 128,
            samples_per_epoch: 0,
            lr: 3e-3,
            warmup_steps: 50,
            clip_norm: 1.0,
            patience: 4,
            weight_decay: 0.0,
            quantiles: vec![0.1, 0.5, 0.9],
            point_loss: PointLoss::Poisson,
            tweedie_power: default_tweedie_power(),
            volume_weighting: false,
            covariates: true,
            season: frequency.default_season(),
            anchor: anchor_by_default(frequency.default_season(), window),
            anchored: true,
            hold_unseen: true,
            // Chosen by each fit on its own validation samples: a daily count's median is often
            // below its mean, and a weekly department's often not.
            point: PointChoice::Auto,
            yearly: true,
            // Off: on the validation loss of the backtests (inside the training data) the LSTM
            // reading it lost on Walmart (0.3087 against 0.3006 over three windows) and on the
            // demo (1.2921 against 1.2812), where `gbt`'s rows gained from it.
            pooled: false,
            // One pass over the validation horizon's cut points, with as many older windows: on
            // backtests inside the training data (README, "Deep models' catch-up"), the LSTM's
            // MASE fell 17% on Walmart and 1.5% on the demo, the Transformer's 1% on the demo.
            catch_up: 1,
            recency_half_life: 0,
            volume_sampling: 0.0,
            average_epochs: 0.0,
            target_cap: 0.0,
            members: 1,
            seed: 42,
            threads: 1,
        }
    }

    /// Defaults for the settings: their grain, horizon, quantiles (with the median), seed and threads.
    pub fn for_settings(s: &ModelsConfig) -> Self {
        let mut quantiles = s.quantiles.clone();
        quantiles.push(0.5);
        quantiles.sort_by(f64::total_cmp);
        quantiles.dedup();
        let base = Self::new(s.frequency, s.horizon);
        Self {
            quantiles,
            seed: s.seed,
            threads: s.threads,
            season: s.season_length,
            anchor: anchor_by_default(s.season_length, base.window),
            ..base
        }
    }

    /// A tiny model trained briefly: for tests and smoke runs (seconds on a CPU).
    pub fn fast(horizon: usize) -> Self {
        Self {
            window: 14,
            history: 14 + 2 * horizon + 120,
            hidden: 16,
            layers: 1,
            heads: 2,
            embed_max: 4,
            dropout: 0.0,
            epochs: 3,
            batch_size: 64,
            samples_per_epoch: 512,
            lr: 5e-3,
            warmup_steps: 5,
            patience: 2,
            threads: 1,
            ..Self::new(Frequency::Daily, horizon)
        }
    }

    /// Windows drawn per epoch for a panel of `series` trainable series.
    pub fn samples_for(&self, series: usize) -> usize {
        match self.samples_per_epoch {
            0 => (series * 32).clamp(2048, 65_536),
            n => n,
        }
    }

    /// How training windows are drawn.
    pub fn weighting(&self) -> Weighting {
        Weighting { half_life: self.recency_half_life, volume: self.volume_sampling }
    }

    /// The targets training reads: no higher than the cap (validation reads them as they are).
    pub fn training_target(&self, target: &Tensor) -> Tensor {
        if self.target_cap > 0.0 { target.clamp_max(self.target_cap) } else { target.shallow_clone() }
    }

    /// The trained quantile levels as a tensor on `device`, for the loss.
    pub(super) fn levels(&self, device: tch::Device) -> Tensor {
        Tensor::from_slice(&self.quantiles.iter().map(|q| *q as f32).collect::<Vec<_>>()).to_device(device)
    }

    /// The learning rate at optimiser step `step` of `total`.
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        if step < self.warmup_steps {
            return self.lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = total.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        self.lr * (LR_FLOOR + (1.0 - LR_FLOOR) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
    }
}

/// A network mapping a batch to per-step outputs.
pub trait Net: std::fmt::Debug + Send {
    /// `[B, H, 1 + Q]`: the raw mean, then one output per trained quantile level, in the scaled space.
    fn forward(&self, batch: &Batch, train: bool) -> Tensor;
}

/// The mean from the raw mean output.
pub fn point_mean(raw: &Tensor, point: PointLoss) -> Tensor {
    if point.softplus() { raw.softplus() } else { raw.shallow_clone() }
}

/// Per-sample loss `[B]` against `target` (`[B, H]`, scaled): mean pinball loss over steps and
/// levels plus `cfg`'s point loss.
pub fn sample_loss(out: &Tensor, target: &Tensor, levels: &Tensor, cfg: &NnConfig) -> Tensor {
    let q = levels.size()[0];
    loss_of(&point_mean(&out.select(2, 0), cfg.point_loss), &out.narrow(2, 1, q), target, levels, cfg)
}

/// [`sample_loss`] of a forecast given as its mean (`[B, H]`) and quantiles (`[B, H, Q]`).
pub fn loss_of(mean: &Tensor, quantiles: &Tensor, target: &Tensor, levels: &Tensor, cfg: &NnConfig) -> Tensor {
    let diff = target.unsqueeze(-1) - quantiles;
    let pinball = (levels * &diff).maximum(&((levels - 1.0) * &diff)).mean_dim(&[1i64, 2][..], false, Kind::Float);
    // Each deviance is the negative log-likelihood less that of a perfect fit, so a perfect
    // forecast scores 0 (the gradient is the likelihood's).
    let point = match cfg.point_loss {
        PointLoss::Mse => (mean - target).square().mean_dim(1, false, Kind::Float),
        PointLoss::Poisson => {
            let mu = mean + 1e-6;
            let saturated = target - target * target.clamp_min(1e-6).log();
            (&mu - target * mu.log() - saturated).mean_dim(1, false, Kind::Float)
        }
        PointLoss::Tweedie => {
            // Half the unit deviance: y^(2−p) / ((1−p)(2−p)) − y μ^(1−p) / (1−p) + μ^(2−p) / (2−p).
            // The floor under μ bounds the gradient y μ^(−p) of a sale forecast near zero.
            let p = cfg.tweedie_power;
            let mu = mean + 1e-3;
            let saturated = target.clamp_min(0.0).pow_tensor_scalar(2.0 - p) / ((1.0 - p) * (2.0 - p));
            let fit = -(target * mu.pow_tensor_scalar(1.0 - p)) / (1.0 - p) + mu.pow_tensor_scalar(2.0 - p) / (2.0 - p);
            (fit + saturated).mean_dim(1, false, Kind::Float)
        }
    };
    pinball + point
}

/// What training did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// Epochs run.
    pub epochs: usize,
    /// The epoch whose weights were kept (1-based).
    pub best_epoch: usize,
    /// Mean training loss per epoch.
    pub train_loss: Vec<f64>,
    /// Validation loss per epoch (empty without validation windows).
    pub validation_loss: Vec<f64>,
    /// Training windows available.
    pub windows: u64,
    /// Validation samples.
    pub validation_samples: usize,
    /// Training samples per second.
    pub samples_per_s: f64,
    /// Seconds per epoch, mean over the epochs run.
    pub epoch_s: f64,
    /// Share of training time spent building batches (outside libtorch's forward and backward).
    pub data_share: f64,
    /// The training loss of the last catch-up pass over the validation horizon ([`catch_up`]);
    /// `None` without one.
    #[serde(default)]
    pub catch_up_loss: Option<f64>,
}

/// Trains `net` (whose variables live in `vs`) on windows drawn by `sampler`, stopping early on
/// the loss of the `validation` samples; leaves the best weights in `vs`.
pub fn train(
    name: &str,
    net: &dyn Net,
    vs: &nn::VarStore,
    windows: &Windows,
    sampler: &Sampler,
    validation: &[(usize, usize)],
    cfg: &NnConfig,
) -> Result<TrainReport> {
    let device = vs.device();
    let levels = cfg.levels(device);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut opt = nn::adam(0.9, 0.999, cfg.weight_decay).build(vs, cfg.lr)?;
    let per_epoch = cfg.samples_for(sampler.series());
    let batch_size = cfg.batch_size.max(1);
    let total_steps = cfg.epochs * per_epoch.div_ceil(batch_size);
    let mut average = Average::new(vs, cfg.average_epochs, per_epoch.div_ceil(batch_size));
    let mut report = TrainReport {
        epochs: 0,
        best_epoch: 0,
        train_loss: Vec::new(),
        validation_loss: Vec::new(),
        windows: sampler.windows(),
        validation_samples: validation.len(),
        samples_per_s: 0.0,
        epoch_s: 0.0,
        data_share: 0.0,
        catch_up_loss: None,
    };
    let mut data_time = std::time::Duration::ZERO;
    let mut best: Option<(f64, HashMap<String, Tensor>)> = None;
    let mut stale = 0;
    let mut step = 0;
    let (mut seen, started) = (0usize, Instant::now());
    let task = crate::progress::Task::start(format!("{name} epochs"), cfg.epochs as u64);
    for epoch in 1..=cfg.epochs {
        let t0 = Instant::now();
        let samples = sampler.draw(&mut rng, per_epoch);
        let mut sum = 0.0;
        for chunk in samples.chunks(batch_size) {
            let tb = Instant::now();
            let batch = windows.batch(chunk, cfg.horizon, device);
            data_time += tb.elapsed();
            opt.set_lr(cfg.lr_at(step, total_steps));
            sum += optimise(net, &mut opt, &batch, &levels, cfg)? * chunk.len() as f64;
            if let Some(a) = average.as_mut() {
                a.update();
            }
            step += 1;
        }
        seen += samples.len();
        let train_loss = sum / samples.len().max(1) as f64;
        report.train_loss.push(train_loss);
        report.epochs = epoch;
        task.inc(1);
        let rate = samples.len() as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        // Validation reads the averaged weights, and a snapshot keeps them; without validation
        // windows the last epoch's are kept.
        if let Some(a) = average.as_mut() {
            a.swap();
        }
        let val = evaluate(net, windows, validation, cfg, &levels)?;
        info!(
            model = name,
            epoch,
            train_loss,
            validation_loss = val,
            samples_per_s = rate,
            lr = cfg.lr_at(step, total_steps),
            "epoch"
        );
        let score = match val {
            Some(v) => {
                report.validation_loss.push(v);
                v
            }
            None => train_loss,
        };
        if best.as_ref().is_none_or(|(b, _)| score < *b) {
            let snapshot = vs.variables().into_iter().map(|(k, v)| (k, v.detach().copy())).collect();
            best = Some((score, snapshot));
            report.best_epoch = epoch;
            stale = 0;
        } else {
            stale += 1;
        }
        if let Some(a) = average.as_mut() {
            a.swap();
        }
        if stale >= cfg.patience.max(1) {
            break;
        }
    }
    if let Some((_, weights)) = best {
        tch::no_grad(|| {
            for (name, mut var) in vs.variables() {
                if let Some(w) = weights.get(&name) {
                    var.copy_(w);
                }
            }
        });
    }
    let total = started.elapsed().as_secs_f64().max(1e-9);
    report.samples_per_s = seen as f64 / total;
    report.epoch_s = total / report.epochs.max(1) as f64;
    report.data_share = data_time.as_secs_f64() / total;
    Ok(report)
}

/// Passes of training over the cut points whose targets reach into the validation horizon,
/// which [`train`] kept out ([`Sampler::recent`]), after the best weights are restored and the
/// quantiles calibrated, so the network has seen the latest periods before it forecasts past
/// them, as `gbt` refits on them. Each pass mixes them with as many windows drawn by `sampler` (a
/// rehearsal of the older periods, so the latest do not pull the network off what it learnt
/// there), at the learning rate's floor. Returns the mean loss of the last pass (`None`: no
/// pass).
pub fn catch_up(
    name: &str,
    net: &dyn Net,
    vs: &nn::VarStore,
    windows: &Windows,
    sampler: &Sampler,
    cfg: &NnConfig,
) -> Result<Option<f64>> {
    let recent = sampler.recent(cfg.horizon);
    if cfg.catch_up == 0 || recent.is_empty() {
        return Ok(None);
    }
    let device = vs.device();
    let levels = cfg.levels(device);
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x5eed_ca7c);
    let mut opt = nn::adam(0.9, 0.999, cfg.weight_decay).build(vs, cfg.lr * LR_FLOOR)?;
    let mut last = 0.0;
    for pass in 1..=cfg.catch_up {
        let mut samples = recent.clone();
        samples.extend(sampler.draw(&mut rng, recent.len() * REHEARSAL));
        samples.shuffle(&mut rng);
        let mut sum = 0.0;
        for chunk in samples.chunks(cfg.batch_size.max(1)) {
            let batch = windows.batch(chunk, cfg.horizon, device);
            sum += optimise(net, &mut opt, &batch, &levels, cfg)? * chunk.len() as f64;
        }
        last = sum / samples.len() as f64;
        info!(model = name, pass, samples = samples.len(), train_loss = last, "catch-up on the validation horizon");
    }
    Ok(Some(last))
}

/// One optimiser step on `batch`: its weighted mean loss, back-propagated with the gradient
/// clipped; returns that loss.
fn optimise(net: &dyn Net, opt: &mut nn::Optimizer, batch: &Batch, levels: &Tensor, cfg: &NnConfig) -> Result<f64> {
    let per = sample_loss(&net.forward(batch, true), &cfg.training_target(&batch.target), levels, cfg);
    let loss = (&per * &batch.weight).sum(Kind::Float) / batch.weight.sum(Kind::Float);
    opt.backward_step_clip_norm(&loss, cfg.clip_norm);
    Ok(f64::try_from(&loss)?)
}

/// Mean loss over the validation samples, or `None` without any.
fn evaluate(
    net: &dyn Net,
    windows: &Windows,
    validation: &[(usize, usize)],
    cfg: &NnConfig,
    levels: &Tensor,
) -> Result<Option<f64>> {
    if validation.is_empty() {
        return Ok(None);
    }
    let device = levels.device();
    let mut sum = 0.0;
    for chunk in validation.chunks(cfg.batch_size.max(1) * 4) {
        let batch = windows.batch(chunk, cfg.horizon, device);
        let per = tch::no_grad(|| sample_loss(&net.forward(&batch, false), &batch.target, levels, cfg));
        sum += f64::try_from(per.sum(Kind::Float))?;
    }
    Ok(Some(sum / validation.len() as f64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rate_warms_up_then_decays() {
        let cfg = NnConfig { lr: 1.0, warmup_steps: 10, ..NnConfig::fast(7) };
        assert!((cfg.lr_at(0, 100) - 0.1).abs() < 1e-9);
        assert!((cfg.lr_at(10, 100) - 1.0).abs() < 1e-9);
        assert!(cfg.lr_at(55, 100) < 0.6 && cfg.lr_at(55, 100) > 0.5);
        assert!((cfg.lr_at(100, 100) - 0.1).abs() < 1e-9);
    }

    #[test]
    fn pinball_loss_is_zero_on_target_and_asymmetric() {
        use super::super::data::Batch;
        let target = Tensor::from_slice(&[2.0f32]).view([1, 1]);
        let batch = |t: &Tensor| Batch {
            encoder: Tensor::zeros([1, 1, 1], (Kind::Float, tch::Device::Cpu)),
            decoder: Tensor::zeros([1, 1, 1], (Kind::Float, tch::Device::Cpu)),
            statics: Tensor::zeros([1, 0], (Kind::Int64, tch::Device::Cpu)),
            target: t.shallow_clone(),
            weight: Tensor::ones([1], (Kind::Float, tch::Device::Cpu)),
            scale: vec![1.0],
            no_demand: vec![false],
        };
        let levels = Tensor::from_slice(&[0.9f32]);
        let with = |point_loss| NnConfig { point_loss, ..NnConfig::fast(1) };
        let mse = with(PointLoss::Mse);
        let loss = |mean: f32, q: f32| {
            let out = Tensor::from_slice(&[mean, q]).view([1, 1, 2]);
            f64::try_from(sample_loss(&out, &batch(&target).target, &levels, &mse)).unwrap()
        };
        assert!(loss(2.0, 2.0).abs() < 1e-9);
        // Under-forecasting the 0.9 quantile costs 9× more than over-forecasting it.
        assert!((loss(2.0, 1.0) - 0.9).abs() < 1e-6 && (loss(2.0, 3.0) - 0.1).abs() < 1e-6);

        // The Poisson deviance is 0 when the mean (softplus of the raw output) equals the target,
        // positive either side, and 0 for a zero target forecast near zero.
        let raw = |mu: f32| (mu.exp() - 1.0).ln(); // softplus⁻¹
        let deviance = |cfg: &NnConfig, mean: f32, t: &Tensor| {
            let out = Tensor::from_slice(&[raw(mean), 2.0]).view([1, 1, 2]);
            f64::try_from(sample_loss(&out, &batch(t).target, &levels, cfg)).unwrap()
        };
        let poisson = |mean: f32, t: &Tensor| deviance(&with(PointLoss::Poisson), mean, t);
        assert!(poisson(2.0, &target).abs() < 1e-5);
        assert!(poisson(1.0, &target) > 0.1 && poisson(3.0, &target) > 0.1);
        let zero = Tensor::from_slice(&[0.0f32]).view([1, 1]);
        let q_cost = 0.1 * 2.0; // the 0.9 quantile at 2 over a target of 0
        assert!((poisson(1e-4, &zero) - q_cost).abs() < 1e-3);

        // So is the Tweedie deviance (up to its floor under the mean) …
        let tweedie = |power: f64, mean: f32, t: &Tensor| {
            deviance(&NnConfig { tweedie_power: power, ..with(PointLoss::Tweedie) }, mean, t)
        };
        assert!(tweedie(1.5, 2.0, &target).abs() < 1e-3);
        assert!(tweedie(1.5, 1.0, &target) > 0.05 && tweedie(1.5, 3.0, &target) > 0.05);
        assert!((tweedie(1.5, 1e-4, &zero) - q_cost).abs() < 0.1);
        // … near Poisson's at a power near 1, and a spike of ten times the forecast costs less
        // relative to a miss by the same factor below at a higher power: the variance grows faster
        // with the mean, so the spike is likelier.
        assert!((tweedie(1.01, 1.0, &target) - poisson(1.0, &target)).abs() < 0.01);
        let point = |power: f64, y: f32| {
            let cfg = NnConfig { tweedie_power: power, ..with(PointLoss::Tweedie) };
            let t = Tensor::from_slice(&[y]).view([1, 1]);
            // The quantile on the target: the point loss alone.
            f64::try_from(loss_of(&Tensor::from_slice(&[1.0f32]).view([1, 1]), &t.unsqueeze(-1), &t, &levels, &cfg))
                .unwrap()
        };
        let ratio = |power: f64| point(power, 10.0) / point(power, 0.1);
        assert!(ratio(1.8) < ratio(1.2), "{} {}", ratio(1.8), ratio(1.2));
    }

    #[test]
    fn a_capped_target_weighs_in_training_as_the_cap() {
        let levels = Tensor::from_slice(&[0.5f32]);
        let out = Tensor::from_slice(&[1.0f32, 1.0]).view([1, 1, 2]);
        let loss = |cfg: &NnConfig, y: f32| {
            let target = cfg.training_target(&Tensor::from_slice(&[y]).view([1, 1]));
            f64::try_from(sample_loss(&out, &target, &levels, &NnConfig { point_loss: PointLoss::Mse, ..cfg.clone() }))
                .unwrap()
        };
        let capped = NnConfig { target_cap: 10.0, ..NnConfig::fast(1) };
        // A period at 1,000 times its scale costs what one at 10 does, not a hundred times more …
        assert_eq!(loss(&capped, 1000.0), loss(&capped, 10.0));
        // … targets under the cap are read as they are, and without a cap nothing changes.
        assert_eq!(loss(&capped, 3.0), loss(&NnConfig::fast(1), 3.0));
        assert!(loss(&NnConfig::fast(1), 1000.0) > 1000.0 * loss(&capped, 10.0));
    }
}
