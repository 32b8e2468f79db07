//! Greedy ensemble selection with replacement (Caruana et al., 2004, "Ensemble selection from
//! libraries of models"; the weighted ensemble of AutoGluon works the same way).
//!
//! Given each member's forecasts of validation periods whose actuals are known, start from an
//! empty bag; at each round add (with replacement) the member whose inclusion gives the bag's
//! average the lowest validation loss; keep the bag of the round with the lowest loss. A member's
//! weight is its share of that bag. The loss is MASE over the validation rows: each series' mean
//! absolute error over a window divided by its in-sample seasonal-naive MAE, averaged over series
//! and windows, so weights are chosen on the metric champions are chosen on and every series
//! counts alike whatever its volume. Ties go to the member listed first, so a selection is
//! deterministic.
//!
//! The candidates are each member's mean and, unless switched off, its median (its 0.5 quantile):
//! MASE, an absolute error, is lowest at the median of what follows, which for skewed counts sits
//! below the mean, so a member's median can be the better point. The bag's average is the
//! ensemble's point forecast; a member's weight in its mean and quantiles is the share of both of
//! its candidates.
//!
//! The reference is the best member's mean. Any other point, a mix or a member's median alone, is
//! kept only when it beats that reference clearly: its MASE gains must have a mean at least
//! [`MIN_GAIN_Z`] standard errors above 0, summed per series × window and, separately, per
//! period forecast (the lower of the two counts), since a gain many series make on the same few
//! dates is the evidence of those dates only. Otherwise the best single candidate carries the
//! weight when it passes the same test, else the reference: a gain within the noise of one
//! validation window does not carry over to the periods after the cutoff.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::metrics::seasonal_naive_scale;
use crate::models::Forecast;
use crate::models::baseline::classify::{DemandClass, classify};
use crate::panel::Panel;

/// Fewest series × windows of a demand class for the class to get weights of its own.
pub const MIN_CLASS_PAIRS: usize = 30;

/// Standard errors the mean gain of a mix over the best single member must reach to be kept.
pub const MIN_GAIN_Z: f64 = 2.0;

/// Validation forecasts of every member with their actuals, row by row.
#[derive(Debug, Clone, Default)]
pub struct Validation {
    /// Actual per row.
    y: Vec<f32>,
    /// Per row: 1 / (rows of its series and window × the series' scale), its share of a MASE.
    weight: Vec<f64>,
    /// Demand class of the row's series at its window's cutoff.
    class: Vec<DemandClass>,
    /// Per member, its forecast (mean) per row.
    forecasts: Vec<Vec<f32>>,
    /// Per member, its median (0.5 quantile; its mean when it has none) per row.
    medians: Vec<Vec<f32>>,
    /// Quantile levels held (those of the first window added).
    levels: Vec<f64>,
    /// Per member, its quantile forecasts per row × level.
    quantiles: Vec<Vec<f32>>,
    /// Series × windows held, by demand class.
    pairs: BTreeMap<DemandClass, usize>,
    /// Per row, the series × window it belongs to (numbered from 0).
    pair: Vec<usize>,
    /// Per row, the period it forecasts (window × horizon + step, numbered from 0).
    period: Vec<usize>,
    /// Series × windows held.
    pair_count: usize,
    /// Windows held.
    windows: usize,
}

impl Validation {
    /// No validation yet, for `members` members.
    pub fn new(members: usize) -> Self {
        Self {
            forecasts: vec![Vec::new(); members],
            medians: vec![Vec::new(); members],
            quantiles: vec![Vec::new(); members],
            ..Default::default()
        }
    }

    /// Adds a window: `cut` is `full` as of the window's cutoff (`index[s]`: series `s` of `cut`
    /// in `full`), `forecasts` each member's forecast of `cut` (same member order), scored on the
    /// periods of `full` after the cutoff (at most `horizon`). Series without a seasonal-naive
    /// scale (too short, or constant) are left out, as MASE leaves them out.
    pub fn push(
        &mut self,
        cut: &Panel,
        index: &[usize],
        full: &Panel,
        forecasts: &[&Forecast],
        horizon: usize,
        season: usize,
    ) {
        debug_assert_eq!(forecasts.len(), self.forecasts.len());
        if self.windows == 0 {
            self.levels = forecasts.first().map(|f| f.levels.clone()).unwrap_or_default();
        }
        // Per member, the position of each held level in its forecast (none: its mean).
        let positions: Vec<Vec<Option<usize>>> = forecasts
            .iter()
            .map(|f| self.levels.iter().map(|l| f.levels.iter().position(|x| (x - l).abs() < 1e-9)).collect())
            .collect();
        let mid: Vec<Option<usize>> =
            forecasts.iter().map(|f| f.levels.iter().position(|x| (x - 0.5).abs() < 1e-9)).collect();
        for (s, &i) in index.iter().enumerate() {
            let history = &cut.values[s];
            let actual = &full.values[i][history.len().min(full.values[i].len())..];
            let steps = actual.len().min(horizon).min(forecasts.iter().map(|f| f.horizon).min().unwrap_or(0));
            let hist64: Vec<f64> = history.iter().map(|v| *v as f64).collect();
            let Some(scale) = seasonal_naive_scale(&hist64, season).filter(|s| *s > 0.0) else { continue };
            if steps == 0 {
                continue;
            }
            let class = classify(history, 2 * season);
            *self.pairs.entry(class).or_default() += 1;
            let id = self.pair_count;
            self.pair_count += 1;
            for (h, y) in actual.iter().take(steps).enumerate() {
                self.y.push(*y);
                self.pair.push(id);
                self.period.push(self.windows * horizon + h);
                self.weight.push(1.0 / (steps as f64 * scale));
                self.class.push(class);
                for (m, f) in forecasts.iter().enumerate() {
                    self.forecasts[m].push(f.mean_at(s, h));
                    self.medians[m].push(mid[m].map_or(f.mean_at(s, h), |k| f.quantile_at(s, h, k)));
                    for p in &positions[m] {
                        self.quantiles[m].push(p.map_or(f.mean_at(s, h), |k| f.quantile_at(s, h, k)));
                    }
                }
            }
        }
        self.windows += 1;
    }

    /// Whether no row was added.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Members held.
    pub fn members(&self) -> usize {
        self.forecasts.len()
    }

    /// Windows added.
    pub fn windows(&self) -> usize {
        self.windows
    }

    /// Rows added.
    pub fn rows(&self) -> usize {
        self.y.len()
    }

    /// The actual of each row.
    pub fn actuals(&self) -> &[f32] {
        &self.y
    }

    /// The demand class of each row's series.
    pub fn classes(&self) -> &[DemandClass] {
        &self.class
    }

    /// The quantile levels held.
    pub fn levels(&self) -> &[f64] {
        &self.levels
    }

    /// Member `m`'s quantile forecast of row `r` at held level `k`.
    pub fn quantile(&self, m: usize, r: usize, k: usize) -> f32 {
        self.quantiles[m][r * self.levels.len() + k]
    }

    /// The MASE of each member's mean over the rows (`None` when there are none).
    pub fn member_losses(&self) -> Vec<Option<f64>> {
        self.losses_of(&self.forecasts)
    }

    /// The MASE of each member's median over the rows (`None` when there are none).
    pub fn member_median_losses(&self) -> Vec<Option<f64>> {
        self.losses_of(&self.medians)
    }

    fn losses_of(&self, points: &[Vec<f32>]) -> Vec<Option<f64>> {
        let all: Vec<usize> = (0..self.rows()).collect();
        let pairs = self.pairs.values().sum();
        points.iter().map(|f| loss_of(self, &all, pairs, |r| f[r] as f64)).collect()
    }

    /// The candidate points, each a forecast per row: every member's mean, then (with
    /// `medians`) every member's median.
    fn candidates(&self, medians: bool) -> Vec<&[f32]> {
        let extra = if medians { self.medians.as_slice() } else { &[] };
        self.forecasts.iter().chain(extra).map(Vec::as_slice).collect()
    }
}

/// MASE of `forecast(row)` over `rows` (which hold `pairs` series × windows).
fn loss_of(v: &Validation, rows: &[usize], pairs: usize, forecast: impl Fn(usize) -> f64) -> Option<f64> {
    (pairs > 0 && !rows.is_empty())
        .then(|| rows.iter().map(|&r| v.weight[r] * (v.y[r] as f64 - forecast(r)).abs()).sum::<f64>() / pairs as f64)
}

/// What a selection chose and its validation loss.
#[derive(Debug, Clone)]
pub struct Selection {
    /// Weight per candidate (summing to 1): the members' means, then their medians when they
    /// were candidates.
    pub weights: Vec<f64>,
    /// Validation MASE of the weighted ensemble.
    pub loss: f64,
    /// Whether a mix was kept (false: the best single member, alone or because its mix's gain
    /// was within the noise).
    pub mixed: bool,
}

/// Greedy selection over the candidates `c` (per candidate, its point per row of `v`) on the rows
/// `rows` of `v` (which hold `pairs` series × windows), `rounds` rounds at most.
fn select_rows(v: &Validation, c: &[&[f32]], rows: &[usize], pairs: usize, rounds: usize) -> Option<Selection> {
    let candidates = c.len();
    if candidates == 0 || rows.is_empty() || pairs == 0 {
        return None;
    }
    let mut sum = vec![0f64; rows.len()];
    let mut counts = vec![0usize; candidates];
    let mut best: Option<(f64, Vec<usize>)> = None;
    for round in 1..=rounds.max(1) {
        let k = round as f64;
        let mut choice: Option<(f64, usize)> = None;
        for (m, f) in c.iter().enumerate() {
            let l = rows
                .iter()
                .zip(&sum)
                .map(|(&r, s)| v.weight[r] * (v.y[r] as f64 - (s + f[r] as f64) / k).abs())
                .sum::<f64>()
                / pairs as f64;
            if choice.is_none_or(|(b, _)| l < b) {
                choice = Some((l, m));
            }
        }
        let (l, m) = choice?;
        counts[m] += 1;
        for (s, &r) in sum.iter_mut().zip(rows) {
            *s += c[m][r] as f64;
        }
        if best.as_ref().is_none_or(|(b, _)| l < *b) {
            best = Some((l, counts.clone()));
        }
    }
    let (loss, counts) = best?;
    let total = counts.iter().sum::<usize>() as f64;
    let weights: Vec<f64> = counts.iter().map(|c| *c as f64 / total).collect();
    let alone = |m: usize| -> Vec<f64> { (0..candidates).map(|k| if k == m { 1.0 } else { 0.0 }).collect() };
    let best_of = |among: std::ops::Range<usize>| {
        among.min_by(|a, b| single_loss(v, c[*a], rows, pairs).total_cmp(&single_loss(v, c[*b], rows, pairs)))
    };
    // The reference is the best member's mean (the first of equals, as the first round picks):
    // any other point, a mix or a member's median, must beat it clearly.
    let anchor = best_of(0..v.members().min(candidates))?;
    if weights == alone(anchor) {
        return Some(Selection { weights, loss, mixed: false });
    }
    if gain_z(v, c, rows, &weights, anchor) >= MIN_GAIN_Z {
        let mixed = weights.iter().filter(|w| **w > 0.0).count() > 1;
        return Some(Selection { weights, loss, mixed });
    }
    // The bag was not clearly better: the best single candidate, when it is.
    let single = best_of(0..candidates)?;
    let chosen =
        if single != anchor && gain_z(v, c, rows, &alone(single), anchor) >= MIN_GAIN_Z { single } else { anchor };
    Some(Selection { weights: alone(chosen), loss: single_loss(v, c[chosen], rows, pairs), mixed: false })
}

/// MASE of the candidate `point` alone over `rows`.
fn single_loss(v: &Validation, point: &[f32], rows: &[usize], pairs: usize) -> f64 {
    loss_of(v, rows, pairs, |r| point[r] as f64).unwrap_or(f64::INFINITY)
}

/// How clearly the mix `weights` of the candidates `c` beats candidate `single` over `rows`: its
/// mean gain (scaled absolute error) in standard errors of that mean, counted twice, per series ×
/// window and per period forecast, and the lower of the two. Series are not independent
/// evidence: a gain made on a few dates (a holiday every series shares) is many series' gain but
/// a few periods', and does not carry over to periods without them.
fn gain_z(v: &Validation, c: &[&[f32]], rows: &[usize], weights: &[f64], single: usize) -> f64 {
    let (mut by_pair, mut by_period): (BTreeMap<usize, f64>, BTreeMap<usize, f64>) = Default::default();
    for &r in rows {
        let y = v.y[r] as f64;
        let mix: f64 = weights.iter().enumerate().map(|(m, w)| w * c[m][r] as f64).sum();
        let g = v.weight[r] * ((y - c[single][r] as f64).abs() - (y - mix).abs());
        *by_pair.entry(v.pair[r]).or_default() += g;
        *by_period.entry(v.period[r]).or_default() += g;
    }
    z_of(&by_pair).min(z_of(&by_period))
}

/// The mean of `gains` in standard errors of that mean (0 with fewer than two).
fn z_of(gains: &BTreeMap<usize, f64>) -> f64 {
    let n = gains.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let mean = gains.values().sum::<f64>() / n;
    let var = gains.values().map(|g| (g - mean).powi(2)).sum::<f64>() / (n - 1.0);
    if var <= 0.0 {
        return if mean > 0.0 { f64::INFINITY } else { 0.0 };
    }
    mean / (var / n).sqrt()
}

/// Ensemble weights: for every series, or per demand class where a class had enough validation.
///
/// Each weight vector holds one weight per member on its mean and, when the members' medians were
/// candidates, one per member on its median after them (`2 × members` entries, summing to 1).
/// The point forecast is the weighted sum of those points; a member's weight in the mean and the
/// quantiles is the sum of its two ([`Weights::members_of`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Weights {
    /// Weight per candidate, for every series (or a class without weights of its own).
    pub global: Vec<f64>,
    /// Weight per candidate for the series of a demand class.
    #[serde(default)]
    pub by_class: BTreeMap<DemandClass, Vec<f64>>,
    /// Per quantile level, the factor the combined quantile's distance from the combined median
    /// is multiplied by so the level holds on the validation ([`super::calibrate`]).
    #[serde(default)]
    pub calibration: Vec<(f64, f64)>,
}

impl Weights {
    /// The same weight for each of `members` members (nothing to choose from).
    pub fn equal(members: usize) -> Self {
        Self { global: vec![1.0 / members.max(1) as f64; members], by_class: BTreeMap::new(), calibration: Vec::new() }
    }

    /// The candidate weights of a series of class `class`.
    pub fn of(&self, class: DemandClass) -> &[f64] {
        self.by_class.get(&class).unwrap_or(&self.global)
    }

    /// Per member, its weight in the mean and quantiles of a series of class `class`: the weight
    /// on its mean plus that on its median.
    pub fn members_of(&self, class: DemandClass, members: usize) -> Vec<f64> {
        member_weights(self.of(class), members)
    }

    /// Whether member `m` (of `members`) has a weight somewhere, on its mean or its median.
    pub fn uses(&self, m: usize, members: usize) -> bool {
        std::iter::once(&self.global).chain(self.by_class.values()).any(|w| member_weights(w, members)[m] > 0.0)
    }

    /// Whether a median has a weight somewhere (the point is then not the mean).
    pub fn weighs_medians(&self, members: usize) -> bool {
        std::iter::once(&self.global).chain(self.by_class.values()).any(|w| w.iter().skip(members).any(|x| *x > 0.0))
    }
}

/// Per member (of `members`), its candidate weights in `w` summed: the weight on its mean, plus
/// that on its median when `w` holds the medians' weights after the means'.
pub fn member_weights(w: &[f64], members: usize) -> Vec<f64> {
    (0..members).map(|m| w.get(m).copied().unwrap_or(0.0) + w.get(members + m).copied().unwrap_or(0.0)).collect()
}

/// What [`select`] chose.
#[derive(Debug, Clone)]
pub struct Chosen {
    /// The weights.
    pub weights: Weights,
    /// Validation MASE of the weighted ensemble: overall (`all`) and per class with own weights.
    pub losses: BTreeMap<String, f64>,
    /// Per the same keys, whether a mix was kept (false: the best single member alone).
    pub mixed: BTreeMap<String, bool>,
}

/// The selection over every row and, with `by_class`, per demand class with at least
/// [`MIN_CLASS_PAIRS`] series × windows; `None` when `v` holds no row. With `medians` the
/// members' medians are candidates beside their means.
pub fn select(v: &Validation, rounds: usize, by_class: bool, medians: bool) -> Option<Chosen> {
    let all: Vec<usize> = (0..v.rows()).collect();
    let c = v.candidates(medians);
    let global = select_rows(v, &c, &all, v.pairs.values().sum(), rounds)?;
    let mut losses = BTreeMap::from([("all".to_string(), global.loss)]);
    let mut mixed = BTreeMap::from([("all".to_string(), global.mixed)]);
    let mut weights = Weights { global: global.weights, by_class: BTreeMap::new(), calibration: Vec::new() };
    if by_class {
        for (&class, &pairs) in &v.pairs {
            if pairs < MIN_CLASS_PAIRS {
                continue;
            }
            let rows: Vec<usize> = all.iter().copied().filter(|&r| v.class[r] == class).collect();
            if let Some(s) = select_rows(v, &c, &rows, pairs, rounds) {
                losses.insert(class.as_str().to_string(), s.loss);
                mixed.insert(class.as_str().to_string(), s.mixed);
                weights.by_class.insert(class, s.weights);
            }
        }
    }
    Some(Chosen { weights, losses, mixed })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::SeriesKey;
    use crate::period::Frequency;
    use chrono::NaiveDate;

    /// Series with a weekly cycle and a trend; the last `h` periods are the validation actuals.
    fn full(series: usize, n: usize) -> Panel {
        let keys = (0..series).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect();
        let values = (0..series).map(|k| {
            (0..n).map(|t| 10.0 + k as f32 + 0.1 * t as f32 + [0.0, 1.0, 2.0, 3.0, 2.0, 1.0, 0.0][t % 7]).collect()
        });
        Panel::new(keys, values.collect(), NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(), Frequency::Daily)
    }

    fn forecast(cut: &Panel, h: usize, f: impl Fn(usize, usize) -> f32) -> Forecast {
        let mut out = Forecast::zeros("m", cut.len(), h, &[0.5]);
        for s in 0..cut.len() {
            for step in 0..h {
                out.set(s, step, f(s, step), &mut [f(s, step)]);
            }
        }
        out
    }

    #[test]
    fn the_better_member_gets_the_weight_and_two_biased_ones_are_averaged() {
        let (h, full) = (7, full(4, 70));
        let (cut, index) = full.cut(h);
        let truth = |s: usize, step: usize| full.values[index[s]][cut.values[s].len() + step];
        let exact = forecast(&cut, h, truth);
        let high = forecast(&cut, h, |s, step| truth(s, step) + 2.0);
        let low = forecast(&cut, h, |s, step| truth(s, step) - 2.0);
        let flat = forecast(&cut, h, |_, _| 5.0);

        let mut v = Validation::new(2);
        v.push(&cut, &index, &full, &[&flat, &exact], h, 7);
        let c = select(&v, 20, false, false).unwrap();
        assert_eq!(c.weights.global, vec![0.0, 1.0]);
        assert!(c.losses["all"] < 1e-9);
        assert!(!c.mixed["all"]);

        // Neither biased member is right alone; their even mix is exact.
        let mut v = Validation::new(3);
        v.push(&cut, &index, &full, &[&flat, &high, &low], h, 7);
        let c = select(&v, 20, false, false).unwrap();
        assert_eq!(c.weights.global, vec![0.0, 0.5, 0.5]);
        assert!(c.losses["all"] < 1e-6, "{:?}", c.losses);
        assert!(c.mixed["all"]);
        let alone = v.member_losses();
        assert!(alone[1].unwrap() > 0.1 && alone[2].unwrap() > 0.1);
    }

    /// The selection over two members one unit high on forty series, except that the second is
    /// one unit low where `low(series, step)`: there their even mix is exact.
    fn one_unit_high_but_low_where(low: impl Fn(usize, usize) -> bool) -> Chosen {
        let (h, full) = (7, full(40, 70));
        let (cut, index) = full.cut(h);
        let truth = |s: usize, step: usize| full.values[index[s]][cut.values[s].len() + step];
        let a = forecast(&cut, h, |s, step| truth(s, step) + 1.0);
        let b = forecast(&cut, h, |s, step| truth(s, step) + if low(s, step) { -1.0 } else { 1.0 });
        let mut v = Validation::new(2);
        v.push(&cut, &index, &full, &[&a, &b], h, 7);
        select(&v, 20, false, false).unwrap()
    }

    #[test]
    fn a_mix_whose_gain_is_within_the_noise_gives_way_to_the_best_member() {
        // The second member is low on one series of forty: the mix lowers the validation loss,
        // but one series is no evidence.
        let c = one_unit_high_but_low_where(|s, _| s == 0);
        assert!(!c.mixed["all"], "{c:?}");
        assert_eq!(c.weights.global, vec![1.0, 0.0]);
        // The same gain on every series and every period is evidence: the mix is kept.
        let c = one_unit_high_but_low_where(|_, _| true);
        assert!(c.mixed["all"]);
        assert_eq!(c.weights.global, vec![0.5, 0.5]);
    }

    #[test]
    fn a_members_median_is_chosen_as_the_point_where_it_beats_the_means() {
        // A skewed member: its mean runs three units above what follows, its median is right.
        let (h, full) = (7, full(6, 70));
        let (cut, index) = full.cut(h);
        let truth = |s: usize, step: usize| full.values[index[s]][cut.values[s].len() + step];
        let three = |mean: f32, low: f32, mid: f32, high: f32| {
            let mut f = Forecast::zeros("m", cut.len(), h, &[0.1, 0.5, 0.9]);
            for s in 0..cut.len() {
                for step in 0..h {
                    let y = truth(s, step);
                    f.set(s, step, y + mean, &mut [y + low, y + mid, y + high]);
                }
            }
            f
        };
        let skewed = three(3.0, -2.0, 0.0, 9.0);
        // A member one unit high, mean and median alike.
        let near = three(1.0, -1.0, 1.0, 3.0);
        let mut v = Validation::new(2);
        v.push(&cut, &index, &full, &[&near, &skewed], h, 7);
        assert_eq!(v.member_median_losses()[1], Some(0.0));

        let c = select(&v, 20, false, true).unwrap();
        assert_eq!(c.weights.global, vec![0.0, 0.0, 0.0, 1.0], "the skewed member's median alone");
        assert!(c.losses["all"] < 1e-9);
        assert!(c.weights.uses(1, 2) && !c.weights.uses(0, 2) && c.weights.weighs_medians(2));
        assert_eq!(c.weights.members_of(DemandClass::Smooth, 2), vec![0.0, 1.0]);
        let f = super::super::combine(&[&near, &skewed], &c.weights, None, cut.len(), h, &[0.1, 0.5, 0.9]);
        for s in 0..cut.len() {
            for step in 0..h {
                assert_eq!(f.point_at(s, step), truth(s, step), "the point is the median");
                assert_eq!(f.mean_at(s, step), truth(s, step) + 3.0, "the mean stays the member's mean");
            }
        }

        // Without the medians the nearer mean wins, and the point is the mean.
        let c = select(&v, 20, false, false).unwrap();
        assert_eq!(c.weights.global, vec![1.0, 0.0]);
        assert!(!c.weights.weighs_medians(2));
        let f = super::super::combine(&[&near, &skewed], &c.weights, None, cut.len(), h, &[0.1, 0.5, 0.9]);
        assert!(f.point.is_empty());
        assert_eq!(f.point_at(0, 0), f.mean_at(0, 0));
    }

    #[test]
    fn a_gain_every_series_makes_on_one_date_only_is_not_evidence() {
        // The second member is low on the last day of the window (a holiday every series
        // shares): the mix is exact there on all forty series and no better on the other days.
        // Per series the gain is the same everywhere; per period it is one date's.
        let c = one_unit_high_but_low_where(|_, step| step == 6);
        assert!(!c.mixed["all"], "{c:?}");
        // One of the two alone (they tie but for rounding).
        assert!(c.weights.global.contains(&1.0), "{c:?}");
    }

    #[test]
    fn each_demand_class_gets_the_member_that_forecasts_it_by_default() {
        // Forty smooth series, then forty intermittent ones (a sale of 5 every third day). The
        // first member is exact on the smooth series and two units high on the others; the
        // second the other way round. One set of weights cannot be exact on both.
        let (h, n) = (7, 70);
        let smooth = full(40, n);
        let keys = (0..80).map(|i| SeriesKey { item_id: format!("i{i:02}"), location_id: "s".into() }).collect();
        let sparse = (0..40).map(|k| (0..n).map(|t| if (t + k) % 3 == 0 { 5.0 } else { 0.0 }).collect());
        let values = smooth.values.iter().cloned().chain(sparse).collect();
        let full = Panel::new(keys, values, smooth.end, Frequency::Daily);
        let (cut, index) = full.cut(h);
        let truth = |s: usize, step: usize| full.values[index[s]][cut.values[s].len() + step];
        let a = forecast(&cut, h, |s, step| truth(s, step) + if s < 40 { 0.0 } else { 2.0 });
        let b = forecast(&cut, h, |s, step| truth(s, step) + if s < 40 { 2.0 } else { 0.0 });
        let mut v = Validation::new(2);
        v.push(&cut, &index, &full, &[&a, &b], h, 7);

        let config = super::super::EnsembleConfig::new(h, 7);
        assert!(config.by_class, "weights per class unless told otherwise");
        let c = select(&v, config.rounds, config.by_class, false).unwrap();
        assert_eq!(c.weights.of(DemandClass::Smooth), [1.0, 0.0]);
        assert_eq!(c.weights.of(DemandClass::Intermittent), [0.0, 1.0]);
        // Each series is combined with its class's weights: exact everywhere.
        let classes = super::super::classes(&cut, &c.weights, 7).unwrap();
        let f = super::super::combine(&[&a, &b], &c.weights, Some(&classes), cut.len(), h, &[0.5]);
        for s in 0..cut.len() {
            for step in 0..h {
                assert_eq!(f.point_at(s, step), truth(s, step), "series {s}, step {step}");
            }
        }

        // One set of weights misses one class or the other.
        let one = select(&v, config.rounds, false, false).unwrap();
        assert!(one.weights.by_class.is_empty());
        assert!(one.losses["all"] > 0.1, "{one:?}");
    }

    #[test]
    fn an_empty_validation_selects_nothing() {
        let full = full(2, 5);
        let (cut, index) = full.cut(2);
        let f = forecast(&cut, 2, |_, _| 1.0);
        let mut v = Validation::new(1);
        // Three periods of history: no seasonal-naive scale at season 7.
        v.push(&cut, &index, &full, &[&f], 2, 7);
        assert!(v.is_empty());
        assert!(select(&v, 10, true, true).is_none());
        assert_eq!(Weights::equal(4).global, vec![0.25; 4]);
    }
}
