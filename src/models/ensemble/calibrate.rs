//! Calibrated quantiles for the learned ensemble, conformal on its validation forecasts.
//!
//! The weighted mean of the members' quantiles is as wide as they are on average: too wide when
//! they disagree little and each is already wide, too narrow when they all miss. For each level τ
//! other than the median, one factor `c_τ` scales the combined quantile's distance from the
//! combined median, `q'_τ = m + c_τ (q_τ − m)`, chosen so that on the validation rows a share τ of
//! the actuals falls at or below `q'_τ` (split conformal calibration of the spread; Romano et al.,
//! 2019, do the same with an additive margin). Factors come from the validation before the cutoff
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
    let w = weights.of(v.classes()[r]);
    w.iter().enumerate().filter(|(_, w)| **w > 0.0).map(|(m, w)| w * v.quantile(m, r, k) as f64).sum()
}

/// The factor of each level of the validation other than 0.5 (empty when it cannot calibrate).
pub fn factors(v: &Validation, weights: &Weights) -> Vec<(f64, f64)> {
    let levels = v.levels();
    let Some(mid) = levels.iter().position(|l| (l - 0.5).abs() < 1e-9) else { return Vec::new() };
    let n = v.rows();
    if n < MIN_ROWS {
        return Vec::new();
    }
    let y = v.actuals();
    let center: Vec<f64> = (0..n).map(|r| combined(v, weights, r, mid)).collect();
    let mut out = Vec::new();
    for (k, &tau) in levels.iter().enumerate() {
        if k == mid {
            continue;
        }
        // Rows whose quantile sits on the median count whatever the factor; the others are
        // below the calibrated quantile when their ratio is on the right side of the factor.
        let (mut fixed, mut ratios) = (0usize, Vec::new());
        for r in 0..n {
            let spread = combined(v, weights, r, k) - center[r];
            let d = y[r] as f64 - center[r];
            if spread.abs() < 1e-9 {
                fixed += usize::from(d <= 0.0);
            } else {
                ratios.push(d / spread);
            }
        }
        if ratios.is_empty() {
            continue;
        }
        let need = (tau * n as f64).ceil() as i64 - fixed as i64;
        ratios.sort_by(f64::total_cmp);
        let c = if tau > 0.5 {
            // Above the median: below q' when ratio ≤ c; the smallest c with `need` of them.
            match need {
                i64::MIN..=0 => MIN_FACTOR,
                j if j as usize > ratios.len() => MAX_FACTOR,
                j => ratios[j as usize - 1],
            }
        } else {
            // Below the median (negative spread): below q' when ratio ≥ c; the largest c with
            // `need` of them.
            match need {
                i64::MIN..=0 => MAX_FACTOR,
                j if j as usize > ratios.len() => MIN_FACTOR,
                j => ratios[ratios.len() - j as usize],
            }
        };
        out.push((tau, c.clamp(MIN_FACTOR, MAX_FACTOR)));
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Forecast;
    use crate::panel::{Panel, SeriesKey};
    use crate::period::Frequency;
    use chrono::NaiveDate;

    #[test]
    fn intervals_twice_too_wide_are_halved_and_the_levels_interpolate() {
        // Actuals spread evenly around 100 (±1 … ±10 from the median); the member's 0.1 and
        // 0.9 quantiles at ±16 cover everything, so both factors land near 8/16.
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
        let c = factors(&v, &Weights::equal(1));
        let (lo, hi) = (factor_at(&c, 0.1), factor_at(&c, 0.9));
        assert!((0.35..=0.65).contains(&hi), "{c:?}");
        assert!((0.35..=0.65).contains(&lo), "{c:?}");
        assert!((factor_at(&c, 0.95) - hi).abs() < 1e-12);
        assert_eq!(factor_at(&[], 0.9), 1.0);
        assert!((factor_at(&[(0.8, 1.0), (0.9, 2.0)], 0.85) - 1.5).abs() < 1e-12);
    }
}
