//! Statistical baselines, fitted per series.

mod seasonal_naive;

pub use seasonal_naive::SeasonalNaive;

/// The empirical `level` quantile of sorted values (linear interpolation, as numpy's default).
pub fn quantile_sorted(sorted: &[f32], level: f64) -> f32 {
    if sorted.is_empty() {
        return 0.0;
    }
    let pos = level.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let w = (pos - lo as f64) as f32;
    sorted[lo] * (1.0 - w) + sorted[hi] * w
}

#[cfg(test)]
mod tests {
    #[test]
    fn quantiles_interpolate() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(super::quantile_sorted(&v, 0.5), 3.0);
        assert!((super::quantile_sorted(&v, 0.1) - 1.4).abs() < 1e-6);
        assert_eq!(super::quantile_sorted(&v, 1.0), 5.0);
    }
}
