//! Statistical baselines, fitted per series: the floor every model must beat and the fallback
//! for series where deep models cannot help.
//!
//! | name | method |
//! |---|---|
//! | `naive` | last value; spread of first differences, growing with √h |
//! | `seasonal_naive` | value one season earlier; spread of seasonal differences |
//! | `moving_average` | mean of the last window; spread of its one-step errors |
//! | `ets` | exponential smoothing (Holt-Winters family), chosen per series by AICc |
//! | `theta` | the Theta method: SES with half the linear trend as drift, on the deseasonalised series |
//! | `croston`, `tsb` | intermittent demand: Croston/SBA and Teunter–Syntetos–Babai |
//!
//! Fitting runs per series in parallel over the configured threads.

pub mod classify;
mod croston;
mod ets;
mod naive;
mod optimize;
mod seasonal_naive;
mod theta;

pub use croston::{Croston, CrostonVariant, Tsb};
pub use ets::Ets;
pub use naive::{MovingAverage, Naive};
pub use seasonal_naive::SeasonalNaive;
pub use theta::Theta;

use statrs::distribution::{ContinuousCDF, Normal};

/// Most recent periods the per-series smoothing models fit on (older history adds cost, not
/// accuracy).
const MAX_FIT_PERIODS: usize = 730;

/// The last [`MAX_FIT_PERIODS`] values of a series, as f64.
fn recent(y: &[f32]) -> Vec<f64> {
    y[y.len().saturating_sub(MAX_FIT_PERIODS)..].iter().map(|v| *v as f64).collect()
}

/// The key a per-series fit is stored under.
fn series_key(k: &crate::panel::SeriesKey) -> String {
    format!("{}\u{1f}{}", k.item_id, k.location_id)
}

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

/// The standard normal quantile.
pub fn z(level: f64) -> f64 {
    Normal::standard().inverse_cdf(level.clamp(1e-9, 1.0 - 1e-9))
}

/// Quantiles of a normal with this mean and standard deviation, written into `out`.
pub fn normal_quantiles(mean: f64, sd: f64, levels: &[f64], out: &mut [f32]) {
    for (o, l) in out.iter_mut().zip(levels) {
        *o = (mean + z(*l) * sd.max(0.0)) as f32;
    }
}

/// Sample standard deviation (n − 1), 0 below two values.
pub fn std_dev(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return 0.0;
    }
    let m = xs.iter().sum::<f64>() / xs.len() as f64;
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

/// Runs `f` over every series, in parallel over `threads` worker threads, keeping the order.
pub fn per_series<T: Send, F>(n: usize, threads: usize, f: F) -> Vec<T>
where
    F: Fn(usize) -> T + Sync,
{
    let threads = threads.clamp(1, n.max(1));
    if threads == 1 {
        return (0..n).map(&f).collect();
    }
    let chunk = n.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let f = &f;
                scope.spawn(move || (t * chunk..((t + 1) * chunk).min(n)).map(f).collect::<Vec<T>>())
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("a baseline worker panicked")).collect()
    })
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

    #[test]
    fn normal_quantiles_are_symmetric() {
        assert!((super::z(0.975) - 1.959964).abs() < 1e-5);
        assert!((super::z(0.1) + super::z(0.9)).abs() < 1e-9);
        let got = super::per_series(10, 3, |i| i * 2);
        assert_eq!(got, (0..10).map(|i| i * 2).collect::<Vec<_>>());
    }
}
