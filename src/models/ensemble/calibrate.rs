//! Calibrated quantiles for the learned ensemble, conformal on its validation forecasts.
//!
//! The weighted mean of the members' quantiles is as wide as they are on average: too wide when
//! they disagree little and each is already wide, too narrow when they all miss. For each level τ
//! other than the median, one factor `c_τ` scales the combined quantile's distance from the
//! combined median, `q'_τ = m + c_τ (q_τ − m)`, chosen so that on the validation rows a share τ of
//! the actuals falls at or below `q'_τ` above the median, and a share τ strictly below it under the
//! median (split conformal calibration of the spread; Romano et al., 2019, do the same with an
//! additive margin). The two sides count as an interval's coverage does, `lo ≤ y ≤ hi`: an actual
//! of 0 on a lower quantile of 0 (a slow seller's day without a sale, its forecasts floored at
//! zero) is inside, so it does not push the lower quantiles, and with them the coverage, down. Factors come from the validation before the cutoff
//! only, like the weights, and are bounded to [[`MIN_FACTOR`], [`MAX_FACTOR`]]; with too few
//! validation rows, or no median level, the quantiles stay as combined.

use super::select::{Validation, Weights};

/// Fewest validation rows to calibrate on.
pub const MIN_ROWS: usize = 100;
/// Narrowest factor.
pub const MIN_FACTOR: f64 = 0.25;
/// Widest factor.
pub const MAX_FACTOR: f64 = 4.0;

/// The ensemble's quantile at held level `k` of validation row `r`.
fn combined(v: &Validation, weights: &Weights, r: usize, k: usize) -> f64 {
    let w = weights.members_of(v.classes()[r], v.members());
    w.iter().enumerate().filter(|(_, w)| **w > 0.0).map(|(m, w)| w * v.quantile(m, r, k) as f64).sum()
}

/// The factor of each level of the validation other than 0.5 (empty when it cannot calibrate).
pub fn factors(v: &Validation, weights: &Weights) -> Vec<(f64, f64)> {
    let y: Vec<f64> = v.actuals().iter().map(|y| f64::from(*y)).collect();
    factors_of(v.levels(), &y, |r, k| combined(v, weights, r, k))
}

/// The factor of each level other than 0.5 for rows whose actual is `y[r]` and whose forecast at
/// `levels[k]` is `quantile(r, k)` (before the floor at zero every forecast gets); empty when the
/// levels lack the median or there are fewer than [`MIN_ROWS`] rows.
pub fn factors_of(levels: &[f64], y: &[f64], quantile: impl Fn(usize, usize) -> f64) -> Vec<(f64, f64)> {
    let Some(center) = centers(levels, y, &quantile) else { return Vec::new() };
    (0..levels.len())
        .filter(|&k| (levels[k] - 0.5).abs() >= 1e-9)
        .filter_map(|k| level_factor(levels[k], y, &center, |r| quantile(r, k)).map(|c| (levels[k], c)))
        .collect()
}

/// Each row's median forecast; `None` when the levels lack the median or there are fewer than
/// [`MIN_ROWS`] rows (nothing is calibrated then).
fn centers(levels: &[f64], y: &[f64], quantile: impl Fn(usize, usize) -> f64) -> Option<Vec<f64>> {
    let mid = levels.iter().position(|l| (l - 0.5).abs() < 1e-9)?;
    (y.len() >= MIN_ROWS).then(|| (0..y.len()).map(|r| quantile(r, mid)).collect())
}

/// The factor of level `tau` alone, its forecast of row `r` being `quantile(r)` and the row's
/// median `center[r]`; `None` when every row counts whatever the factor.
fn level_factor(tau: f64, y: &[f64], center: &[f64], quantile: impl Fn(usize) -> f64) -> Option<f64> {
    let n = y.len();
    let upper = tau > 0.5;
    // Rows count whatever the factor when their quantile sits on the median (above the median:
    // at or below it; under: strictly below), and when the floor at zero decides (an actual of 0
    // or less is at or below any upper quantile; one below 0 under any lower one). The others
    // fall on that side of the calibrated quantile when their ratio is on the right side of the
    // factor.
    let (mut fixed, mut ratios) = (0usize, Vec::new());
    for r in 0..n {
        let spread = quantile(r) - center[r];
        let d = y[r] - center[r];
        if upper && y[r] <= 0.0 || !upper && y[r] < 0.0 {
            fixed += 1;
        } else if spread.abs() < 1e-9 {
            fixed += usize::from(if upper { d <= 0.0 } else { d < 0.0 });
        } else {
            ratios.push(d / spread);
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    let c = if upper {
        // Above the median: at or below q' when ratio ≤ c; the smallest c with at least `need`
        // of them (a share τ or more under the quantile).
        match (tau * n as f64).ceil() as i64 - fixed as i64 {
            i64::MIN..=0 => MIN_FACTOR,
            j if j as usize > ratios.len() => MAX_FACTOR,
            j => ratios[j as usize - 1],
        }
    } else {
        // Under the median (negative spread): strictly below q' when ratio > c; the smallest c
        // with at most `need` of them (a share τ or less under the quantile).
        match (tau * n as f64).floor() as i64 - fixed as i64 {
            j if j >= ratios.len() as i64 => MIN_FACTOR,
            i64::MIN..=0 => ratios[ratios.len() - 1],
            j => ratios[ratios.len() - 1 - j as usize],
        }
    };
    Some(c.clamp(MIN_FACTOR, MAX_FACTOR))
}

/// Like [`factors_of`], but one factor for each pair of levels mirrored around the median (0.1
/// and 0.9): the smallest that puts a share `τ_hi − τ_lo` of the actuals inside the pair's scaled
/// interval, whichever side they miss on. A forecast biased one way on the rows it is calibrated
/// on, and the other way later, moves neither side alone. Levels without a mirror keep their own
/// factor.
pub fn paired_factors_of(levels: &[f64], y: &[f64], quantile: impl Fn(usize, usize) -> f64) -> Vec<(f64, f64)> {
    let Some(center) = centers(levels, y, &quantile) else { return Vec::new() };
    let mirror = |k: usize| levels.iter().position(|l| (l - (1.0 - levels[k])).abs() < 1e-9);
    let mut out = Vec::new();
    for (k, &tau) in levels.iter().enumerate() {
        if (tau - 0.5).abs() < 1e-9 {
            continue;
        }
        match mirror(k) {
            // The pair's factor, once, from its upper level.
            Some(lo) if tau > 0.5 => {
                let c = pair_factor(tau, y, &center, |r| quantile(r, lo), |r| quantile(r, k));
                out.extend([(levels[lo], c), (tau, c)]);
            }
            Some(_) => {}
            None => out.extend(level_factor(tau, y, &center, |r| quantile(r, k)).map(|c| (tau, c))),
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

/// The factor of the interval between the levels `1 − tau` and `tau`, whose forecasts of row `r`
/// are `lower(r)` and `upper(r)` around the median `center[r]`.
fn pair_factor(tau: f64, y: &[f64], center: &[f64], lower: impl Fn(usize) -> f64, upper: impl Fn(usize) -> f64) -> f64 {
    let n = y.len();
    // Per row, the smallest factor that keeps its actual inside the interval.
    let mut need: Vec<f64> = (0..n)
        .map(|r| {
            let m = center[r];
            let outside = |gap: f64, spread: f64| match (gap > 0.0, spread > 1e-9) {
                (false, _) => 0.0,
                (true, true) => gap / spread,
                (true, false) => f64::INFINITY,
            };
            // (The floor at zero is in the ratio: an actual of 0 is inside once `m − c (m − q_lo)`
            // reaches it.)
            outside(m - y[r], m - lower(r)).max(outside(y[r] - m, upper(r) - m))
        })
        .collect();
    need.sort_by(f64::total_cmp);
    let k = (((2.0 * tau - 1.0) * n as f64).ceil() as usize).clamp(1, n);
    need[k - 1].clamp(MIN_FACTOR, MAX_FACTOR)
}

/// The factor of level `tau`: its own, else interpolated between the nearest calibrated levels
/// on the same side of the median, else 1.
pub fn factor_at(calibration: &[(f64, f64)], tau: f64) -> f64 {
    if let Some((_, c)) = calibration.iter().find(|(l, _)| (l - tau).abs() < 1e-9) {
        return *c;
    }
    let side: Vec<&(f64, f64)> = calibration.iter().filter(|(l, _)| (*l > 0.5) == (tau > 0.5)).collect();
    let below = side.iter().filter(|(l, _)| *l < tau).max_by(|a, b| a.0.total_cmp(&b.0));
    let above = side.iter().filter(|(l, _)| *l > tau).min_by(|a, b| a.0.total_cmp(&b.0));
    match (below, above) {
        (Some(a), Some(b)) => a.1 + (b.1 - a.1) * (tau - a.0) / (b.0 - a.0),
        (Some(a), None) | (None, Some(a)) => a.1,
        (None, None) => 1.0,
    }
}

/// Scales one forecast's quantiles (`q[k]` at `levels[k]`, ascending) by `calibration`: each
/// level's distance from the median times its factor ([`factor_at`]), floored at zero and kept in
/// order. Unchanged without factors or without a median level.
pub fn rescale(levels: &[f64], calibration: &[(f64, f64)], q: &mut [f64]) {
    let Some(mid) = levels.iter().position(|l| (l - 0.5).abs() < 1e-9) else { return };
    if calibration.is_empty() || q.len() != levels.len() {
        return;
    }
    let m = q[mid];
    for (k, (q, l)) in q.iter_mut().zip(levels).enumerate() {
        if k != mid {
            *q = (m + factor_at(calibration, *l) * (*q - m)).max(0.0);
        }
    }
    q.sort_by(f64::total_cmp);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Forecast;
    use crate::models::ensemble::{EnsembleConfig, learn};
    use crate::panel::{Panel, SeriesKey};
    use crate::period::Frequency;
    use chrono::NaiveDate;

    /// A member whose 0.1 and 0.9 quantiles at ±16 from the median cover every actual, the
    /// actuals spreading evenly around 100 (±1 … ±10 from the median): intervals about twice too
    /// wide.
    fn too_wide() -> Validation {
        let (series, h) = (40, 10);
        let n = 60;
        let keys = (0..series).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect();
        let values = (0..series)
            .map(|s| {
                (0..n)
                    .map(|t| {
                        if t < n - h {
                            100.0 + (t % 7) as f32 + 0.01 * t as f32
                        } else {
                            100.0 + ((s * 7 + t) % 21) as f32 - 10.0
                        }
                    })
                    .collect()
            })
            .collect();
        let full = Panel::new(keys, values, NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(), Frequency::Daily);
        let (cut, index) = full.cut(h);
        let levels = [0.1, 0.5, 0.9];
        let mut f = Forecast::zeros("m", cut.len(), h, &levels);
        for s in 0..cut.len() {
            for step in 0..h {
                f.set(s, step, 100.0, &mut [84.0, 100.0, 116.0]);
            }
        }
        let mut v = Validation::new(1);
        v.push(&cut, &index, &full, &[&f], h, 7);
        v
    }

    #[test]
    fn rescaling_moves_each_level_from_the_median_floors_at_zero_and_keeps_the_order() {
        let levels = [0.1, 0.5, 0.9];
        let mut q = [6.0, 10.0, 14.0];
        rescale(&levels, &[(0.1, 3.0), (0.9, 0.5)], &mut q);
        assert_eq!(q, [0.0, 10.0, 12.0], "10 - 3 × 4 floors at zero; 10 + 0.5 × 4");
        // Without factors, or without a median to scale around, the quantiles stay.
        let mut q = [6.0, 10.0, 14.0];
        rescale(&levels, &[], &mut q);
        assert_eq!(q, [6.0, 10.0, 14.0]);
        rescale(&[0.1, 0.4, 0.9], &[(0.1, 2.0)], &mut q);
        assert_eq!(q, [6.0, 10.0, 14.0]);
        // Factors that would cross two levels keep them in order.
        let mut q = [2.0, 4.0, 10.0, 11.0, 30.0];
        rescale(&[0.05, 0.25, 0.5, 0.75, 0.95], &[(0.75, 4.0), (0.95, 0.1)], &mut q);
        assert_eq!(q, [2.0, 4.0, 10.0, 12.0, 14.0], "0.75 → 14 and 0.95 → 12, swapped into order");
    }

    /// Actuals all above the median on the rows calibrated on: the sides one by one shrink the
    /// lower quantile to the narrowest factor, which a later bias the other way leaves far too
    /// narrow. The pair gets one factor that covers 80% of the rows between them.
    #[test]
    fn a_pair_of_levels_shares_one_factor_that_covers_its_share_whatever_side_the_actuals_miss() {
        let levels = [0.1, 0.5, 0.9];
        // Forecast 100 ± 10; actuals 101 … 120 evenly.
        let y: Vec<f64> = (0..200).map(|i| 101.0 + (i % 20) as f64).collect();
        let q = |_: usize, k: usize| [90.0, 100.0, 110.0][k];
        let sides = factors_of(&levels, &y, q);
        assert_eq!(factor_at(&sides, 0.1), MIN_FACTOR, "{sides:?}");
        let paired = paired_factors_of(&levels, &y, q);
        let (lo, hi) = (factor_at(&paired, 0.1), factor_at(&paired, 0.9));
        assert_eq!(lo, hi, "{paired:?}");
        let inside = y.iter().filter(|y| **y >= 100.0 - 10.0 * lo && **y <= 100.0 + 10.0 * hi).count();
        assert_eq!(inside, 160, "80% of 200 inside with {paired:?}");
        // Mirrored: the same factor.
        let mirrored: Vec<f64> = y.iter().map(|y| 200.0 - y).collect();
        assert_eq!(paired_factors_of(&levels, &mirrored, q), paired);
        // A level without its mirror keeps its own; too few rows, none.
        let odd = paired_factors_of(&[0.1, 0.5, 0.8], &y, |_, k| [90.0, 100.0, 110.0][k]);
        assert_eq!(odd, factors_of(&[0.1, 0.5, 0.8], &y, |_, k| [90.0, 100.0, 110.0][k]));
        assert!(paired_factors_of(&levels, &y[..50], q).is_empty());
    }

    #[test]
    fn intervals_twice_too_wide_are_halved_and_the_levels_interpolate() {
        // Both factors land near 8/16.
        let c = factors(&too_wide(), &Weights::equal(1));
        let (lo, hi) = (factor_at(&c, 0.1), factor_at(&c, 0.9));
        assert!((0.35..=0.65).contains(&hi), "{c:?}");
        assert!((0.35..=0.65).contains(&lo), "{c:?}");
        assert!((factor_at(&c, 0.95) - hi).abs() < 1e-12);
        assert_eq!(factor_at(&[], 0.9), 1.0);
        assert!((factor_at(&[(0.8, 1.0), (0.9, 2.0)], 0.85) - 1.5).abs() < 1e-12);
    }

    /// Slow sellers whose median and 0.1 quantile are 0 and that sell nothing on most days: an
    /// actual of 0 is inside their interval (`lo ≤ y`), so it must not count as a miss under the
    /// lower quantile. Counted as one, it filled the lower tail's share alone and every other
    /// series' lower quantile went to the widest factor: 80% intervals that covered 90%.
    #[test]
    fn zeros_on_a_zero_lower_quantile_are_inside_and_the_intervals_cover_eighty_percent() {
        let (series, h, n) = (50, 10, 60);
        let slow = |s: usize| s % 5 < 2;
        let keys = (0..series).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect();
        let values = (0..series)
            .map(|s| {
                (0..n)
                    .map(|t| match (slow(s), t < n - h) {
                        // A sale of 1 to 3 on one day in three (history) or one in four (scored).
                        (true, true) => f32::from(u8::from(t % 3 == 0)) * (1 + t % 3) as f32,
                        (true, false) => f32::from(u8::from((s + t) % 4 == 0)) * (1 + (s + t) % 3) as f32,
                        (false, true) => 100.0 + (t % 5) as f32,
                        (false, false) => 100.0 + ((s * 7 + t) % 21) as f32 - 10.0,
                    })
                    .collect()
            })
            .collect();
        let full = Panel::new(keys, values, NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(), Frequency::Daily);
        let (cut, index) = full.cut(h);
        let levels = [0.1, 0.5, 0.9];
        let mut f = Forecast::zeros("m", cut.len(), h, &levels);
        for (s, &i) in index.iter().enumerate() {
            for step in 0..h {
                if slow(i) {
                    f.set(s, step, 0.5, &mut [0.0, 0.0, 2.0]);
                } else {
                    f.set(s, step, 100.0, &mut [90.0, 100.0, 110.0]);
                }
            }
        }
        let mut v = Validation::new(1);
        v.push(&cut, &index, &full, &[&f], h, 7);
        let c = factors(&v, &Weights::equal(1));
        let (lo, hi) = (factor_at(&c, 0.1), factor_at(&c, 0.9));
        // Calibrated and floored at zero as a forecast is, then counted as `score.py` counts.
        let (mut below, mut above) = (0usize, 0usize);
        for r in 0..v.rows() {
            let (q_lo, m, q_hi) = (v.quantile(0, r, 0) as f64, v.quantile(0, r, 1) as f64, v.quantile(0, r, 2) as f64);
            let y = v.actuals()[r] as f64;
            below += usize::from(y < (m + lo * (q_lo - m)).max(0.0));
            above += usize::from(y > (m + hi * (q_hi - m)).max(0.0));
        }
        let rows = v.rows() as f64;
        let (below, above) = (below as f64 / rows, above as f64 / rows);
        assert!((0.07..=0.10).contains(&below), "share under the lower quantile {below}, factors {c:?}");
        assert!((0.07..=0.10).contains(&above), "share over the upper quantile {above}, factors {c:?}");
        assert!((0.78..=0.86).contains(&(1.0 - below - above)), "coverage {}, factors {c:?}", 1.0 - below - above);
    }

    /// Members that calibrate their own quantiles at each fit keep them: the validation holds
    /// older fits' intervals, and their miss is not the fresh fits'. A member that does not is
    /// calibrated on the validation.
    #[test]
    fn members_that_calibrate_themselves_keep_their_own_quantiles() {
        let v = too_wide();
        let config = |own: Vec<bool>| EnsembleConfig { self_calibrated: own, ..EnsembleConfig::new(10, 7) };
        let (own, _) = learn(&v, &config(vec![true]), 1);
        assert!(own.calibration.is_empty(), "{:?}", own.calibration);
        let (rescaled, _) = learn(&v, &config(vec![false]), 1);
        assert!((0.35..=0.65).contains(&factor_at(&rescaled.calibration, 0.9)), "{:?}", rescaled.calibration);
        // Unlisted members do not calibrate themselves.
        let (unlisted, _) = learn(&v, &config(Vec::new()), 1);
        assert_eq!(unlisted.calibration, rescaled.calibration);
    }
}
