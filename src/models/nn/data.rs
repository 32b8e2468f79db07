//! Training windows and batches: `(series, cut point)` samples turned into tensors.
//!
//! A sample cut at `t` reads the encoder window `[t − L, t)`: per step the scaled target, an
//! "observed" flag (0 on left padding before a series starts), the log of the series scale,
//! 11 date features, the known covariates and the past covariates. The decoder reads `[t, t + H)`:
//! per step the position in the horizon, the log scale, the date features, the known covariates,
//! and two seasonal lags known at the cut (as MQ-RNN's decoder reads seasonal context): the scaled
//! value one or more whole seasons back that lies before `t`, and the mean of the same phase over
//! the last four seasons before `t`. Targets are `y[t..t + H)` divided by the scale.
//!
//! Scaling follows DeepAR (Salinas et al., 2020, §3.3): ν = the mean absolute value of the encoder
//! window, floored at 1 (so low-volume series are read in units); a window without demand falls
//! back to the mean of the whole history before `t`, and a series that never sold is flagged:
//! models forecast it as zero.
//!
//! The last `H` periods before the panel's end are kept for validation: a training sample's
//! targets end before them, and the validation sample of a series is cut at `n − H`.

use chrono::Duration;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

use crate::error::{Error, Result};
use crate::models::pooled::PooledIndex;
use crate::panel::calendar::Calendar;
use crate::panel::{Covariates, Panel};

/// Date features per step: day of week one-hot (7), then two harmonics of the day of the year.
pub const DATE_FEATURES: usize = 11;

/// Appends the date features of a period's calendar (see [`Panel::calendar`]).
pub fn date_features(cal: Calendar, out: &mut Vec<f32>) {
    let dow = cal.weekday0 as usize;
    out.extend((0..7).map(|d| f32::from(d == dow)));
    let a = std::f32::consts::TAU * cal.ordinal0 as f32 / 365.25;
    out.extend([a.sin(), a.cos(), (2.0 * a).sin(), (2.0 * a).cos()]);
}

/// The shapes a network is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layout {
    /// Encoder steps `L`.
    pub window: usize,
    /// Decoder steps `H` trained for.
    pub horizon: usize,
    /// Known covariates per step (0 without covariates).
    pub known: usize,
    /// Past covariates per step (0 without covariates).
    pub past: usize,
    /// Static ids per series (item, location, then the covariates' attributes).
    pub statics: usize,
    /// Seasonal cycle in periods for the decoder's seasonal lags; 0 reads none (models saved
    /// before the lags existed).
    #[serde(default)]
    pub season: usize,
    /// Whether the decoder also reads the seasonal anchor (the last season's value over the level
    /// of the encoder window a season earlier); false in models saved before it existed.
    #[serde(default)]
    pub anchor: bool,
    /// Periods a year back for the decoder's yearly lags (364 at a daily grain: whole weeks, so
    /// the weekday lines up); 0 reads none (a season that is already a year, a history too short,
    /// or models saved before they existed).
    #[serde(default)]
    pub year: usize,
    /// Periods of the yearly cycle back which the decoder reads the item's seasonal index pooled
    /// over its locations ([`PooledIndex`]); 0 reads none (an item at one location only, or
    /// models saved before it existed).
    #[serde(default)]
    pub pooled: usize,
    /// Whether the outputs are offsets from the seasonal anchor ([`super::anchored`]); false in
    /// models saved before it existed.
    #[serde(default)]
    pub anchored: bool,
}

/// Seasonal lag features per decoder step when the layout has a season.
pub const SEASONAL_FEATURES: usize = 2;

/// Yearly lag features per decoder step when the layout has a year.
pub const YEARLY_FEATURES: usize = 2;

/// Seasons averaged by the second seasonal lag.
const SEASONS_AVERAGED: usize = 4;

impl Layout {
    /// Features per encoder step.
    pub fn encoder_dim(&self) -> usize {
        3 + DATE_FEATURES + self.known + self.past
    }

    /// Features per decoder step.
    pub fn decoder_dim(&self) -> usize {
        let seasonal = match (self.season > 0, self.anchor) {
            (false, _) => 0,
            (true, false) => SEASONAL_FEATURES,
            (true, true) => SEASONAL_FEATURES + 1,
        };
        let yearly = if self.year > 0 { YEARLY_FEATURES } else { 0 };
        2 + DATE_FEATURES + self.known + seasonal + yearly + usize::from(self.pooled > 0)
    }

    /// Periods after a period the pooled index's level may read: none reaches the cut of a
    /// sample whose decoder reads it (a cycle back from a step, less the horizon).
    pub fn pooled_lead(&self) -> usize {
        (self.pooled / 2).min(self.pooled.saturating_sub(self.horizon))
    }

    /// The decoder column of the seasonal anchor, when the decoder reads it.
    pub fn anchor_column(&self) -> Option<usize> {
        (self.season > 0 && self.anchor).then_some(2 + DATE_FEATURES + self.known + SEASONAL_FEATURES)
    }

    /// Whether the network reads covariates.
    pub fn uses_covariates(&self) -> bool {
        self.known + self.past > 0
    }
}

#[cfg(test)]
impl Layout {
    /// A layout for tests: `window` and `horizon`, two static ids, a weekly season of days, no
    /// covariates, anchor, yearly lags or pooled index.
    pub(crate) fn plain(window: usize, horizon: usize) -> Self {
        Self {
            window,
            horizon,
            known: 0,
            past: 0,
            statics: 2,
            season: 7,
            anchor: false,
            year: 0,
            pooled: 0,
            anchored: false,
        }
    }
}

/// A batch of samples as tensors.
#[derive(Debug)]
pub struct Batch {
    /// `[B, L, encoder_dim]`.
    pub encoder: Tensor,
    /// `[B, H, decoder_dim]`.
    pub decoder: Tensor,
    /// `[B, statics]` int64 ids.
    pub statics: Tensor,
    /// `[B, H]` scaled targets (zeros beyond the data).
    pub target: Tensor,
    /// `[B]` loss weights.
    pub weight: Tensor,
    /// Scale ν per sample.
    pub scale: Vec<f32>,
    /// Samples whose series never sold before the cut.
    pub no_demand: Vec<bool>,
}

/// Builds samples of one panel for one layout.
#[derive(Debug)]
pub struct Windows<'a> {
    panel: &'a Panel,
    layout: Layout,
    covariates: Option<&'a Covariates>,
    ids: &'a [Vec<i64>],
    volume_weighting: bool,
    pooled: Option<PooledIndex>,
    held: Vec<(usize, f32)>,
}

impl<'a> Windows<'a> {
    /// Samples of `panel` for `layout`; `ids` holds each series' static ids.
    pub fn new(panel: &'a Panel, layout: Layout, ids: &'a [Vec<i64>], volume_weighting: bool) -> Result<Self> {
        let covariates = if layout.uses_covariates() {
            let c = panel.covariates.as_deref().ok_or_else(|| {
                Error::data("the model was trained with covariates, but the panel has none: load them for its cutoff")
            })?;
            if c.known_dim() != layout.known || c.past_dim() != layout.past {
                return Err(Error::data(format!(
                    "the panel's covariates ({} known, {} past) differ from the model's ({} known, {} past)",
                    c.known_dim(),
                    c.past_dim(),
                    layout.known,
                    layout.past
                )));
            }
            Some(c)
        } else {
            None
        };
        if ids.len() != panel.len() || ids.iter().any(|i| i.len() != layout.statics) {
            return Err(Error::data("static ids do not match the panel's series"));
        }
        let pooled = (layout.pooled > 0).then(|| PooledIndex::new(panel, layout.pooled / 2, layout.pooled_lead()));
        Ok(Self { panel, layout, covariates, ids, volume_weighting, pooled, held: Vec::new() })
    }

    /// The same samples with these covariate columns (numbered as
    /// [`Covariates::constant_before`] numbers them) held at these values everywhere: the
    /// features the network never saw vary in training, whose weights it never learnt, read as
    /// they were in training wherever they change later.
    pub fn holding(self, held: &[(usize, f32)]) -> Self {
        Self { held: held.to_vec(), ..self }
    }

    /// The scale ν of series `s` cut at `t`, and whether it never sold before `t`.
    pub fn scale(&self, s: usize, t: usize) -> (f32, bool) {
        let y = &self.panel.values[s][..t.min(self.panel.values[s].len())];
        let mut m = mean_abs(&y[y.len().saturating_sub(self.layout.window)..]);
        if m == 0.0 {
            m = mean_abs(y);
        }
        (m.max(1.0), m == 0.0)
    }

    /// The tensors of `samples` (`(series, cut)`), with a decoder of `horizon` steps.
    pub fn batch(&self, samples: &[(usize, usize)], horizon: usize, device: Device) -> Batch {
        let (l, b) = (self.layout.window, samples.len());
        let (ed, dd) = (self.layout.encoder_dim(), self.layout.decoder_dim());
        let mut enc = Vec::with_capacity(b * l * ed);
        let mut dec = Vec::with_capacity(b * horizon * dd);
        let mut target = Vec::with_capacity(b * horizon);
        let mut statics = Vec::with_capacity(b * self.layout.statics);
        let (mut scales, mut no_demand) = (Vec::with_capacity(b), Vec::with_capacity(b));
        let step = self.panel.frequency.days();
        for &(s, t) in samples {
            let y = &self.panel.values[s];
            let n = y.len();
            let (nu, none) = self.scale(s, t);
            let log_scale = (1.0 + nu).ln() / 5.0;
            let date = |i: isize| self.panel.end + Duration::days(step * (i - (n as isize - 1)) as i64);
            for i in t as isize - l as isize..t as isize {
                let observed = i >= 0 && (i as usize) < n;
                enc.push(if observed { y[i as usize] / nu } else { 0.0 });
                enc.push(f32::from(observed));
                enc.push(log_scale);
                date_features(self.panel.calendar(date(i)), &mut enc);
                if let Some(c) = self.covariates {
                    let (at, from) = (c.index(n, i), enc.len());
                    c.known_at(s, at, &mut enc);
                    c.past_at(s, at, &mut enc);
                    hold(&mut enc[from..], &self.held);
                }
            }
            for h in 0..horizon {
                let i = (t + h) as isize;
                dec.push((h + 1) as f32 / self.layout.horizon.max(1) as f32);
                dec.push(log_scale);
                date_features(self.panel.calendar(date(i)), &mut dec);
                if let Some(c) = self.covariates {
                    let from = dec.len();
                    c.known_at(s, c.index(n, i), &mut dec);
                    hold(&mut dec[from..], &self.held);
                }
                if self.layout.season > 0 {
                    seasonal_lags(y, t, h, self.layout.season, nu, &mut dec);
                    if self.layout.anchor {
                        dec.push(seasonal_anchor(y, t, h, self.layout.season, l, nu));
                    }
                }
                if self.layout.year > 0 {
                    yearly_lags(y, t, h, self.layout.year, l, nu, &mut dec);
                }
                if let Some(index) = &self.pooled {
                    let at = before_cut(y, t, h, cycles_back(h, self.layout.pooled));
                    dec.push(at.map(|j| index.at(s, n, j as isize) as f32).filter(|v| v.is_finite()).unwrap_or(0.0));
                }
                target.push(if (i as usize) < n { y[i as usize] / nu } else { 0.0 });
            }
            statics.extend_from_slice(&self.ids[s]);
            scales.push(nu);
            no_demand.push(none);
        }
        let weight: Vec<f32> = if self.volume_weighting {
            // Heavier series weigh more, as an unscaled loss would; normalised to a mean of 1.
            let mean = scales.iter().sum::<f32>() / b.max(1) as f32;
            scales.iter().map(|s| s / mean).collect()
        } else {
            vec![1.0; b]
        };
        let (b, l, h) = (b as i64, l as i64, horizon as i64);
        Batch {
            encoder: Tensor::from_slice(&enc).view([b, l, ed as i64]).to_device(device),
            decoder: Tensor::from_slice(&dec).view([b, h, dd as i64]).to_device(device),
            statics: Tensor::from_slice(&statics)
                .view([b, self.layout.statics as i64])
                .to_kind(Kind::Int64)
                .to_device(device),
            target: Tensor::from_slice(&target).view([b, h]).to_device(device),
            weight: Tensor::from_slice(&weight).to_device(device),
            scale: scales,
            no_demand,
        }
    }
}

/// Sets the `held` columns of one step's covariates (`row`: the known ones, then the past ones
/// where the step reads them) to their held values.
fn hold(row: &mut [f32], held: &[(usize, f32)]) {
    for &(j, v) in held {
        if let Some(x) = row.get_mut(j) {
            *x = v;
        }
    }
}

/// The mean absolute value of `v` (0 when empty): a series' scale over a window, and its volume.
fn mean_abs(v: &[f32]) -> f32 {
    if v.is_empty() { 0.0 } else { v.iter().map(|x| x.abs()).sum::<f32>() / v.len() as f32 }
}

/// Appends the seasonal lags of decoder step `h` of a sample cut at `t`: the scaled value of the
/// same phase in the last season before `t`, and the mean of that phase over up to
/// [`SEASONS_AVERAGED`] seasons (0 where the series had not started).
fn seasonal_lags(y: &[f32], t: usize, h: usize, season: usize, nu: f32, out: &mut Vec<f32>) {
    let first = h / season + 1;
    let at = |k: usize| before_cut(y, t, h, k * season).map(|j| y[j] / nu);
    out.push(at(first).unwrap_or(0.0));
    let seen: Vec<f32> = (first..first + SEASONS_AVERAGED).filter_map(at).collect();
    out.push(if seen.is_empty() { 0.0 } else { seen.iter().sum::<f32>() / seen.len() as f32 });
}

/// The seasonal anchor of decoder step `h` of a sample cut at `t`: the value of the same phase in
/// the last season before `t`, scaled by `nu` and multiplied by the change of level since, the
/// current scale `nu` over the mean absolute value of the `window` periods before the cut a
/// season earlier (floored at 1, as the scale is). That is the seasonal naive forecast moved to the
/// current level, which the network would otherwise have to form by dividing two of its inputs.
/// The change of level is clamped to [`MAX_LEVEL_CHANGE`] either way, so a series that was only
/// starting a season earlier does not feed the decoder a value many times its targets. Without the
/// earlier window it is the lag over `nu`; 0 where the series had not started.
fn seasonal_anchor(y: &[f32], t: usize, h: usize, season: usize, window: usize, nu: f32) -> f32 {
    let back = cycles_back(h, season);
    let Some(j) = before_cut(y, t, h, back) else { return 0.0 };
    let end = (t - back.min(t)).min(y.len());
    let earlier = &y[end.saturating_sub(window)..end];
    if earlier.is_empty() {
        return y[j] / nu;
    }
    let level = (earlier.iter().map(|v| v.abs()).sum::<f32>() / earlier.len() as f32).max(1.0);
    y[j] / nu * (nu / level).clamp(1.0 / MAX_LEVEL_CHANGE, MAX_LEVEL_CHANGE)
}

/// Appends the yearly lags of decoder step `h` of a sample cut at `t`: the scaled value of the
/// same period a year back (whole years back, none after the cut), and that value moved to the
/// current level as [`seasonal_anchor`] moves the last season's (0 where the series had not
/// started). A daily network's window holds weeks, not the same weeks last year: without them it
/// learns the yearly pattern of every series together from the date features alone, where the
/// trees read each series' own year-ago value.
fn yearly_lags(y: &[f32], t: usize, h: usize, year: usize, window: usize, nu: f32, out: &mut Vec<f32>) {
    out.push(before_cut(y, t, h, cycles_back(h, year)).map_or(0.0, |j| y[j] / nu));
    out.push(seasonal_anchor(y, t, h, year, window, nu));
}

/// Periods back from decoder step `h` to the same phase of the last cycle before the cut: whole
/// cycles of `period`, one more than the cycles the step lies ahead.
fn cycles_back(h: usize, period: usize) -> usize {
    (h / period + 1) * period
}

/// The index `back` periods before decoder step `h` of a sample cut at `t`, when it holds a value
/// observed before the cut.
fn before_cut(y: &[f32], t: usize, h: usize, back: usize) -> Option<usize> {
    (t + h).checked_sub(back).filter(|j| *j < y.len().min(t))
}

/// The largest change of level, up or down, the seasonal anchor carries from one season to the next.
const MAX_LEVEL_CHANGE: f32 = 3.0;

/// How training cut points are drawn: uniformly over every window of every series, or weighted
/// towards recent cuts and high-volume series.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Weighting {
    /// Periods back from a series' latest training cut at which a cut's weight halves (0: every
    /// cut weighs the same).
    pub half_life: usize,
    /// Power of a series' volume (its mean absolute value over its training periods, floored
    /// at 1) in its weight (0: every series weighs by its cut count alone; 1: in proportion to
    /// its volume).
    pub volume: f64,
}

impl Weighting {
    /// Whether every window weighs the same.
    pub fn is_uniform(&self) -> bool {
        self.half_life == 0 && self.volume == 0.0
    }

    /// The factor a cut's weight takes per period back (1 without a half-life).
    fn decay(&self) -> f64 {
        if self.half_life == 0 { 1.0 } else { 0.5f64.powf(1.0 / self.half_life as f64) }
    }
}

/// The summed weight of the ages `0..count` when the weight of age `a` is `decay^a`.
fn recency_mass(decay: f64, count: usize) -> f64 {
    if decay >= 1.0 { count as f64 } else { (1.0 - decay.powi(count as i32)) / (1.0 - decay) }
}

/// The age in `0..count` whose cumulative weight first exceeds the share `u` (in `[0, 1)`) of
/// [`recency_mass`]: the inverse of the truncated geometric distribution.
fn recency_age(decay: f64, count: usize, u: f64) -> usize {
    if decay >= 1.0 {
        return ((u * count as f64) as usize).min(count - 1);
    }
    // The share `u` of the mass, as a share of the untruncated distribution's (1 / (1 − decay)).
    let a = (1.0 - u * recency_mass(decay, count) * (1.0 - decay)).ln() / decay.ln();
    (a.max(0.0) as usize).min(count - 1)
}

/// Training cut points, drawn over every window of every series (see [`Weighting`]).
#[derive(Debug, Clone)]
pub struct Sampler {
    /// `(series, first cut, last cut)`, inclusive.
    ranges: Vec<(usize, usize, usize)>,
    /// Cumulative window counts, for drawing in proportion.
    cumulative: Vec<u64>,
    /// Cumulative series weights when drawing is weighted.
    weighted: Option<Vec<f64>>,
    /// Per-period factor of a cut's weight back from its series' latest.
    decay: f64,
}

impl Sampler {
    /// Windows of `panel` whose targets end before its last `horizon` periods, and whose encoder
    /// lies within its last `history` periods, drawn as `weighting` says. Also returns the
    /// validation samples: each series cut `horizon` periods before its end.
    pub fn split(panel: &Panel, layout: Layout, history: usize, weighting: Weighting) -> (Self, Vec<(usize, usize)>) {
        let (l, h) = (layout.window, layout.horizon);
        let mut ranges = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        let mut validation = Vec::new();
        for (s, y) in panel.values.iter().enumerate() {
            let n = y.len();
            if n > h {
                validation.push((s, n - h));
            }
            if n < 2 * h + 1 {
                continue;
            }
            let lo = (n + l).saturating_sub(history).max(1);
            let hi = n - 2 * h;
            if lo <= hi {
                total += (hi - lo + 1) as u64;
                ranges.push((s, lo, hi));
                cumulative.push(total);
            }
        }
        let decay = weighting.decay();
        let weighted = (!weighting.is_uniform()).then(|| {
            let mut sum = 0.0;
            ranges
                .iter()
                .map(|&(s, lo, hi)| {
                    // The periods its training targets may reach, within the history.
                    let seen = &panel.values[s][lo.saturating_sub(l)..hi + h];
                    let volume = f64::from(mean_abs(seen).max(1.0));
                    sum += volume.powf(weighting.volume) * recency_mass(decay, hi - lo + 1);
                    sum
                })
                .collect()
        });
        (Self { ranges, cumulative, weighted, decay }, validation)
    }

    /// The cut points whose targets reach into the last `horizon` periods, which
    /// [`Sampler::split`] keeps out of training to validate on: one per period of the validation
    /// horizon and series (the validation sample included), for the series it trains on.
    pub fn recent(&self, horizon: usize) -> Vec<(usize, usize)> {
        self.ranges.iter().flat_map(|&(s, _, last)| (last + 1..=last + horizon).map(move |t| (s, t))).collect()
    }

    /// Whether there is no training window.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Number of series with a training window.
    pub fn series(&self) -> usize {
        self.ranges.len()
    }

    /// Number of training windows.
    pub fn windows(&self) -> u64 {
        self.cumulative.last().copied().unwrap_or(0)
    }

    /// `count` samples drawn with `rng`.
    pub fn draw(&self, rng: &mut ChaCha8Rng, count: usize) -> Vec<(usize, usize)> {
        let total = self.windows();
        if total == 0 {
            return Vec::new();
        }
        if let Some(weights) = &self.weighted {
            let mass = weights.last().copied().unwrap_or(0.0);
            return (0..count)
                .map(|_| {
                    let k = rng.random::<f64>() * mass;
                    let r = weights.partition_point(|c| *c <= k).min(self.ranges.len() - 1);
                    let (s, lo, hi) = self.ranges[r];
                    (s, hi - recency_age(self.decay, hi - lo + 1, rng.random::<f64>()))
                })
                .collect();
        }
        (0..count)
            .map(|_| {
                let k = rng.random_range(0..total);
                let r = self.cumulative.partition_point(|c| *c <= k);
                let (s, lo, _) = self.ranges[r];
                let before = if r == 0 { 0 } else { self.cumulative[r - 1] };
                (s, lo + (k - before) as usize)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::period::Frequency;
    use chrono::NaiveDate;
    use rand::SeedableRng;

    /// A daily panel of items `i0`, `i1`, … at one location, holding `values`.
    fn panel_of(values: Vec<Vec<f32>>) -> Panel {
        let keys = (0..values.len())
            .map(|i| crate::panel::SeriesKey { item_id: format!("i{i}"), location_id: "l".into() })
            .collect();
        Panel::new(keys, values, NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(), Frequency::Daily)
    }

    fn panel() -> Panel {
        panel_of(vec![(0..40).map(|t| (t % 7) as f32 * 2.0).collect(), vec![0.0, 0.0, 5.0]])
    }

    #[test]
    fn windows_keep_the_validation_horizon_out_of_training() {
        let layout = Layout::plain(8, 5);
        let (sampler, validation) = Sampler::split(&panel(), layout, 1000, Weighting::default());
        assert_eq!(validation, vec![(0, 35)], "the short series has no validation window");
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let draws = sampler.draw(&mut rng, 200);
        assert!(draws.iter().all(|(s, t)| *s == 0 && *t >= 1 && t + 5 <= 35));
        assert!(draws.iter().any(|(_, t)| *t == 1) && draws.iter().any(|(_, t)| *t == 30), "every cut is reachable");
        // The cuts training left out: those whose targets reach into the last five periods, up
        // to the validation sample's.
        let recent = sampler.recent(5);
        assert_eq!(recent, (31..=35).map(|t| (0, t)).collect::<Vec<_>>());
        assert!(recent.iter().all(|(_, t)| t + 5 > 35 && !draws.contains(&(0, *t))));
    }

    /// One series of `n` periods per level, each at its level.
    fn flat(levels: &[f32], n: usize) -> Panel {
        panel_of(levels.iter().map(|l| vec![*l; n]).collect())
    }

    #[test]
    fn weighted_draws_favour_recent_windows_and_heavy_series() {
        let layout = Layout::plain(8, 5);
        let draws = |panel: &Panel, weighting: Weighting| {
            let (sampler, _) = Sampler::split(panel, layout, 1000, weighting);
            sampler.draw(&mut ChaCha8Rng::seed_from_u64(7), 40_000)
        };
        // One series of 200 periods: cuts 1..=190. With a half-life of 20 periods, the last 20
        // cuts are drawn about twice as often as the 20 before them, and the oldest still are.
        let p = flat(&[10.0], 200);
        let recent = draws(&p, Weighting { half_life: 20, volume: 0.0 });
        let count =
            |d: &[(usize, usize)], from: usize, to: usize| d.iter().filter(|(_, t)| (from..to).contains(t)).count();
        let ratio = count(&recent, 171, 191) as f64 / count(&recent, 151, 171) as f64;
        assert!((1.8..2.2).contains(&ratio), "{ratio}");
        assert!(recent.iter().all(|(_, t)| (1..=190).contains(t)));
        assert!(recent.iter().any(|(_, t)| *t < 20) && recent.iter().any(|(_, t)| *t == 190));
        // Uniform draws: the two spans alike.
        let uniform = draws(&p, Weighting::default());
        let ratio = count(&uniform, 171, 191) as f64 / count(&uniform, 151, 171) as f64;
        assert!((0.9..1.1).contains(&ratio), "{ratio}");
        // Two series of one length, at 1 and 100 a period: drawn alike, by the square root of
        // their volume (1 : 10), or in proportion to it (1 : 100).
        let p = flat(&[1.0, 100.0], 60);
        let heavy = |volume: f64| {
            let d = draws(&p, Weighting { half_life: 0, volume });
            d.iter().filter(|(s, _)| *s == 1).count() as f64 / d.len() as f64
        };
        assert!((heavy(0.0) - 0.5).abs() < 0.02);
        assert!((heavy(0.5) - 10.0 / 11.0).abs() < 0.02);
        assert!((heavy(1.0) - 100.0 / 101.0).abs() < 0.01);
    }

    #[test]
    fn the_recency_inverse_lands_every_age_in_its_share() {
        // Ages 0..4 at a decay of 1/2 weigh 8 : 4 : 2 : 1 of 15.
        let ages: Vec<usize> =
            [0.0, 0.5, 0.54, 0.79, 0.81, 0.93, 0.94, 0.999].iter().map(|u| recency_age(0.5, 4, *u)).collect();
        assert_eq!(ages, [0, 0, 1, 1, 2, 2, 3, 3]);
        assert!((recency_mass(0.5, 4) - 1.875).abs() < 1e-12);
        assert_eq!((recency_mass(1.0, 4), recency_age(1.0, 4, 0.99)), (4.0, 3));
    }

    #[test]
    fn batches_scale_pad_and_flag() {
        let p = panel();
        let layout = Layout::plain(4, 3);
        let ids = vec![vec![1, 1], vec![2, 1]];
        let w = Windows::new(&p, layout, &ids, false).unwrap();
        let b = w.batch(&[(0, 10), (1, 2), (1, 1)], 3, Device::Cpu);
        assert_eq!(b.encoder.size(), [3, 4, layout.encoder_dim() as i64]);
        assert_eq!(b.decoder.size(), [3, 3, layout.decoder_dim() as i64]);
        // Series 0 at t = 10: the window 6..10 is [12, 0, 2, 4], mean 4.5.
        assert_eq!(b.scale[0], 4.5);
        let first = f32::try_from(b.encoder.get(0).get(0).get(0)).unwrap();
        assert_eq!(first, 12.0 / 4.5);
        // Series 1 cut at 2 has only zeros behind it: flagged, scale 1; its window is left-padded.
        assert!(b.no_demand[1] && !b.no_demand[0]);
        let observed = f32::try_from(b.encoder.get(1).get(0).get(1)).unwrap();
        assert_eq!(observed, 0.0);
        let target = f32::try_from(b.target.get(1).get(0)).unwrap();
        assert_eq!(target, 5.0);
    }

    /// Two locations of one weekly item: the decoder's last column is the item's pooled index a
    /// year before each step, the same whatever the series do after the cut.
    #[test]
    fn the_decoder_reads_the_items_pooled_index_a_year_back_and_nothing_after_the_cut() {
        let (n, t, horizon) = (150usize, 120usize, 13usize);
        let make = |after: f32| {
            let keys =
                ["x", "y"].map(|l| crate::panel::SeriesKey { item_id: "a".into(), location_id: l.into() }).to_vec();
            let y = |s: usize| (0..n).map(|i| if i >= t { after } else { (5 * (s + 1) + i % 9) as f32 }).collect();
            Panel::new(keys, vec![y(0), y(1)], NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(), Frequency::Weekly)
        };
        let layout = Layout { season: 52, anchor: true, pooled: 52, ..Layout::plain(52, horizon) };
        let ids = vec![vec![1, 1], vec![1, 2]];
        let last = |p: &Panel| {
            let b = Windows::new(p, layout, &ids, false).unwrap().batch(&[(0, t)], horizon, Device::Cpu);
            let d = layout.decoder_dim() as i64;
            (0..horizon as i64).map(|h| f32::try_from(b.decoder.get(0).get(h).get(d - 1)).unwrap()).collect::<Vec<_>>()
        };
        let (calm, wild) = (make(1.0), make(1.0e6));
        let index = PooledIndex::new(&calm, 26, layout.pooled_lead());
        let year_ago: Vec<f32> = (0..horizon).map(|h| index.at(0, n, (t + h - 52) as isize) as f32).collect();
        assert!(year_ago.iter().all(|v| *v > 0.0));
        assert_eq!(last(&calm), year_ago);
        assert_eq!(last(&wild), year_ago, "the pooled index read past the cut");
    }

    #[test]
    fn seasonal_lags_read_only_values_before_the_cut() {
        // y[j] = j: the lag of step h at cut t is the latest t + h − k·7 below t.
        let y: Vec<f32> = (0..40).map(|j| j as f32).collect();
        let mut out = Vec::new();
        seasonal_lags(&y, 30, 0, 7, 1.0, &mut out);
        assert_eq!(out, [23.0, (23.0 + 16.0 + 9.0 + 2.0) / 4.0]);
        out.clear();
        seasonal_lags(&y, 30, 9, 7, 2.0, &mut out);
        // Step 9 is period 39: one season back (32) is after the cut, two (25) is not.
        assert_eq!(out, [12.5, (25.0 + 18.0 + 11.0 + 4.0) / 8.0]);
        out.clear();
        // Near the start fewer seasons exist; before it there is nothing.
        seasonal_lags(&y, 3, 0, 7, 1.0, &mut out);
        assert_eq!(out, [0.0, 0.0]);
    }

    #[test]
    fn the_yearly_lags_read_the_same_period_a_year_back_and_nothing_after_the_cut() {
        let y: Vec<f32> = (0..40).map(|j| j as f32 + 1.0).collect();
        let (year, window, nu) = (10, 4, 2.0);
        let mut out = Vec::new();
        // Cut at 25, step 3: period 28, a year back 18 (before the cut).
        yearly_lags(&y, 25, 3, year, window, nu, &mut out);
        assert_eq!(out[0], y[18] / nu);
        assert_eq!(out[1], seasonal_anchor(&y, 25, 3, year, window, nu));
        // Step 12 (period 37): a year back is 27, after the cut, so two years back (17).
        out.clear();
        yearly_lags(&y, 25, 12, year, window, nu, &mut out);
        assert_eq!(out[0], y[17] / nu);
        // Before the series started: 0.
        out.clear();
        yearly_lags(&y, 5, 0, year, window, nu, &mut out);
        assert_eq!(out, [0.0, 0.0]);
    }

    #[test]
    fn the_seasonal_anchor_is_the_last_seasons_value_over_that_seasons_level() {
        // A weekly pattern whose level doubles every 7 periods: the value of the same weekday a
        // week back, over the level of that week's encoder window, is this week's value over this
        // week's level, so the anchor times the current scale is the actual.
        let week = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let y: Vec<f32> = (0..28).map(|j| week[j % 7] * 2f32.powi(j as i32 / 7)).collect();
        let level = |from: usize, to: usize| y[from..to].iter().sum::<f32>() / (to - from) as f32;
        let (t, window) = (21, 7);
        let nu = level(t - window, t);
        for h in 0..7 {
            let anchor = seasonal_anchor(&y, t, h, 7, window, nu);
            assert!((anchor * nu - y[t + h]).abs() < 1e-3, "step {h}: {} against {}", anchor * nu, y[t + h]);
        }
        // Step 9 reads two seasons back, over the window two seasons back; nothing after the cut.
        // The level quadrupled since, more than the anchor carries: it moves by the clamp.
        let two_back = seasonal_anchor(&y, t, 9, 7, window, nu);
        assert!(nu / level(0, 7) > MAX_LEVEL_CHANGE);
        assert!((two_back - y[16] / nu * MAX_LEVEL_CHANGE).abs() < 1e-6);
        // A level that fell to a quarter is clamped the same way.
        let falling: Vec<f32> = (0..28).map(|j| week[j % 7] * 4f32.powi(3 - j as i32 / 7)).collect();
        let nu = falling[t - window..t].iter().sum::<f32>() / window as f32;
        let down = seasonal_anchor(&falling, t, 0, 7, window, nu);
        assert!((down - falling[14] / nu / MAX_LEVEL_CHANGE).abs() < 1e-6, "{down}");
        // Without an earlier window: the lag over the current scale; before the start: 0.
        assert_eq!(seasonal_anchor(&y, 7, 0, 7, 7, 4.0), y[0] / 4.0);
        assert_eq!(seasonal_anchor(&y, 3, 0, 7, 7, 1.0), 0.0);
    }
}
