//! How wide `gbt`'s intervals are, series by series: its held-out errors measured in units of
//! each series' own noise.
//!
//! The trees' quantiles are conformal: the errors on the held-out periods, pooled over every
//! series, give the error quantiles per step ahead. Pooled in units of the series' scale (its
//! mean level) they give every series the same interval relative to its level, yet a series'
//! level is not its noise: an item selling two a day swings by most of its level from one day to
//! the next, one selling two hundred by a few percent. Its own noise says more. Normalised
//! nonconformity scores (Papadopoulos et al., 2008; Lei et al., 2018) divide each error by such a
//! measure, so the pooled quantiles widen the intervals of noisy series and narrow those of
//! steady ones, and the coverage pooled over the series stays what the held-out periods gave.
//!
//! A series' noise is the mean absolute change over the scale's window, as a share of its scale:
//! from one period to the next, or from one short season to the next where a season fits four
//! times in the window (a daily grain's weekdays, which the trees forecast, are not noise). The
//! errors are divided by the noise raised to a power: 0 is the scale alone, 1 the noise, ½ in
//! between. `auto` chooses the power whose quantiles have the lowest pinball loss on the held-out
//! periods, cross-fitted: the quantiles of half the series scored on the other half, and back.

use serde::{Deserialize, Serialize};

use crate::metrics::quantile_loss;
use crate::models::baseline::quantile_sorted;

/// The least noise a series is given, as a share of its scale (a flat series' is 0).
pub const NOISE_FLOOR: f64 = 0.01;

/// The powers `auto` chooses among.
pub const POWERS: [f64; 3] = [0.0, 0.5, 1.0];

/// The levels the choice scores.
const LEVELS: [f64; 7] = [0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95];

/// How the held-out errors are normalised, as fitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The power of the series' noise the errors are divided by (0: the scale alone).
    pub power: f64,
    /// Periods between the values whose changes measure the noise.
    pub lag: usize,
    /// The noise of a series with too short a history to measure its own: the median over the
    /// held-out rows.
    pub typical: f64,
    /// The cross-fitted pinball losses per power, when chosen.
    #[serde(default)]
    pub choice: Option<serde_json::Value>,
}

impl Default for Spread {
    /// The scale alone: models saved before the choice existed.
    fn default() -> Self {
        Self { power: 0.0, lag: 1, typical: 1.0, choice: None }
    }
}

impl Spread {
    /// The lag of the changes measuring the noise for a short `season` and a `window` of periods.
    pub fn lag_for(season: usize, window: usize) -> usize {
        if season > 1 && season * 4 <= window { season } else { 1 }
    }

    /// What the scaled errors of the series whose values are `y` are divided by at origin `o`.
    pub fn factor(&self, y: &[f32], o: usize, window: usize, scale: f64) -> f64 {
        if self.power == 0.0 {
            return 1.0;
        }
        noise(y, o, window, self.lag, scale).unwrap_or(self.typical).powf(self.power)
    }
}

/// The noise of series `y` at origin `o`: the mean absolute change between values `lag` periods
/// apart over the last `window` periods up to `o`, divided by `scale`, at least [`NOISE_FLOOR`];
/// `None` without a change to measure.
pub fn noise(y: &[f32], o: usize, window: usize, lag: usize, scale: f64) -> Option<f64> {
    let from = (o + 1).saturating_sub(window).max(lag);
    if o >= y.len() || from > o {
        return None;
    }
    let sum: f64 = (from..=o).map(|t| f64::from((y[t] - y[t - lag]).abs())).sum();
    Some((sum / (o + 1 - from) as f64 / scale).max(NOISE_FLOOR))
}

/// One held-out forecast, in units of its series' scale.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// The step ahead (0-based).
    pub step: usize,
    /// The series, whose parity splits the cross-fit.
    pub series: usize,
    /// The actual value.
    pub actual: f32,
    /// The forecast.
    pub predicted: f32,
    /// The series' noise at the forecast's origin ([`noise`]).
    pub noise: Option<f64>,
    /// Its weight in the held-out error.
    pub weight: f64,
}

impl Sample {
    /// The error in units of the noise raised to `power` (the `typical` noise without one).
    fn error(&self, power: f64, typical: f64) -> f32 {
        (f64::from(self.actual - self.predicted) / self.width(power, typical)) as f32
    }

    fn width(&self, power: f64, typical: f64) -> f64 {
        self.noise.unwrap_or(typical).powf(power)
    }
}

/// The spread for held-out `samples` over `steps` steps: `power` when given, else the power of
/// [`POWERS`] with the lowest cross-fitted pinball loss (the lowest power on a tie). Also returns
/// the sorted normalised errors per step.
pub fn fit(samples: &[Sample], steps: usize, power: Option<f64>, lag: usize) -> (Spread, Vec<Vec<f32>>) {
    let mut noises: Vec<f64> = samples.iter().filter_map(|s| s.noise).collect();
    noises.sort_by(f64::total_cmp);
    let typical = noises.get(noises.len() / 2).copied().unwrap_or(1.0);
    let (power, choice) = match power {
        Some(p) => (p, None),
        None => {
            let losses: Vec<f64> = POWERS.iter().map(|&p| cross_fitted(samples, steps, p, typical)).collect();
            let best = (0..POWERS.len()).min_by(|&a, &b| losses[a].total_cmp(&losses[b]).then(a.cmp(&b))).unwrap_or(0);
            let choice = serde_json::json!({
                "rule": "lowest pinball loss on the held-out periods, cross-fitted over two halves of the series",
                "powers": POWERS,
                "pinball": losses,
            });
            (POWERS[best], Some(choice))
        }
    };
    let errors =
        (0..steps).map(|h| sorted(samples.iter().filter(|s| s.step == h).map(|s| s.error(power, typical)))).collect();
    (Spread { power, lag, typical, choice }, errors)
}

fn sorted(errors: impl Iterator<Item = f32>) -> Vec<f32> {
    let mut v: Vec<f32> = errors.collect();
    v.sort_by(f32::total_cmp);
    v
}

/// The weighted pinball loss over [`LEVELS`] of each half of the series' forecasts with the
/// quantiles of the other half's errors normalised with `power` (forecasts clipped at zero, as
/// published).
fn cross_fitted(samples: &[Sample], steps: usize, power: f64, typical: f64) -> f64 {
    let (mut loss, mut weight) = (0.0, 0.0);
    for half in 0..2 {
        for h in 0..steps {
            let other =
                sorted(samples.iter().filter(|s| s.step == h && s.series % 2 != half).map(|s| s.error(power, typical)));
            if other.is_empty() {
                continue;
            }
            let qs: Vec<f64> = LEVELS.iter().map(|&l| f64::from(quantile_sorted(&other, l))).collect();
            for s in samples.iter().filter(|s| s.step == h && s.series % 2 == half) {
                let width = s.width(power, typical);
                for (&level, q) in LEVELS.iter().zip(&qs) {
                    let forecast = (f64::from(s.predicted) + q * width).max(0.0);
                    loss += s.weight * quantile_loss(f64::from(s.actual), forecast, level);
                }
                weight += s.weight * LEVELS.len() as f64;
            }
        }
    }
    loss / weight.max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn noise_is_the_mean_absolute_change_as_a_share_of_the_scale() {
        let y = [10.0, 12.0, 9.0, 9.0, 13.0];
        // Changes over the last three periods: 3, 0, 4.
        assert!((noise(&y, 4, 3, 1, 10.0).unwrap() - 7.0 / 30.0).abs() < 1e-12);
        // Changes a season of two apart over the window: |9 - 10|, |9 - 12|, |13 - 9|.
        assert!((noise(&y, 4, 5, 2, 1.0).unwrap() - 8.0 / 3.0).abs() < 1e-12);
        assert_eq!(noise(&[5.0; 8], 7, 8, 1, 5.0), Some(NOISE_FLOOR), "a flat series has the floor");
        assert_eq!(noise(&[5.0], 0, 8, 1, 5.0), None, "one value has no change");
        assert_eq!(Spread::lag_for(7, 365), 7);
        assert_eq!(Spread::lag_for(52, 52), 1);
    }

    /// Held-out forecasts of steady and noisy series: their errors' spread is `noise` times the
    /// series' own noise (`noise = 0`: the same for all).
    fn samples(spread_follows_noise: bool, seed: u64) -> Vec<Sample> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut out = Vec::new();
        for series in 0..200 {
            let noise = if series % 4 < 2 { 0.05 } else { 0.5 };
            let width = if spread_follows_noise { noise } else { 0.2 };
            for step in 0..4 {
                for _ in 0..10 {
                    let e: f64 = rng.random_range(-1.0..1.0) * width;
                    out.push(Sample {
                        step,
                        series,
                        actual: (2.0 + e) as f32,
                        predicted: 2.0,
                        noise: Some(noise),
                        weight: 1.0,
                    });
                }
            }
        }
        out
    }

    #[test]
    fn auto_divides_by_the_noise_where_it_sets_the_errors_spread() {
        let (spread, errors) = fit(&samples(true, 1), 4, None, 1);
        assert_eq!(spread.power, 1.0, "{:?}", spread.choice);
        // Normalised, every error lies within one unit of noise.
        assert!(errors.iter().flatten().all(|e| e.abs() <= 1.0));
        assert!(spread.choice.is_some());
    }

    #[test]
    fn auto_keeps_the_scale_where_the_noise_says_nothing_about_the_errors() {
        let (spread, errors) = fit(&samples(false, 2), 4, None, 1);
        assert_eq!(spread.power, 0.0, "{:?}", spread.choice);
        assert_eq!(errors.len(), 4);
        assert_eq!(errors[0].len(), 2000);
        assert!(errors[0].windows(2).all(|w| w[0] <= w[1]), "sorted");
    }

    #[test]
    fn a_set_power_is_used_as_it_is() {
        let (spread, errors) = fit(&samples(false, 3), 4, Some(1.0), 7);
        assert_eq!((spread.power, spread.lag, spread.choice), (1.0, 7, None));
        // Errors of the steady series (noise 0.05) now reach four units.
        assert!(errors[0].last().unwrap() > &3.0);
    }

    #[test]
    fn the_factor_is_the_noise_to_the_power_or_the_typical_noise_without_one() {
        let spread = Spread { power: 0.5, lag: 1, typical: 0.16, choice: None };
        let y = [4.0, 8.0, 4.0, 8.0];
        assert!((spread.factor(&y, 3, 4, 4.0) - 1.0).abs() < 1e-12, "changes of 4 at a scale of 4");
        assert!((spread.factor(&y, 0, 4, 4.0) - 0.4).abs() < 1e-12, "no change yet: the typical noise");
        assert_eq!(Spread::default().factor(&y, 3, 4, 4.0), 1.0);
    }
}
