//! Forecast accuracy metrics: pure functions over actuals `y` and forecasts `f`.
//!
//! Definitions follow `score.py`, the scorer every system in our comparisons uses (errors are
//! `e = f − y`; percentages are 0–100):
//!
//! | metric | definition |
//! |---|---|
//! | MSE, RMSE, MAE | mean e², its root, mean \|e\| |
//! | R² | 1 − Σe² / Σ(y − ȳ)² |
//! | MAPE | 100 · mean \|e\|/\|y\| over rows with y ≠ 0 (zero-safe: those rows are skipped) |
//! | sMAPE | 100 · mean 2\|e\|/(\|y\| + \|f\|), a row with both 0 counting 0 (M4) |
//! | WAPE | 100 · Σ\|e\| / Σ\|y\| |
//! | bias, bias % | mean e, 100 · Σe / Σy |
//! | MASE | mean over (series, cutoff) of MAE / in-sample seasonal-naive MAE |
//! | pinball | mean of max(q(y − f), (q − 1)(y − f)) for the q-quantile forecast |
//! | coverage | share of rows with lo ≤ y ≤ hi |
//! | WRMSSE | M5: Σ over series of weight · √(mean (y − f)² / mean of squared in-sample first differences) |
//!
//! A metric whose denominator is zero (or whose input is empty) is `None`.

/// Mean of a slice, `None` when empty.
fn mean(xs: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = xs.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// Mean squared error.
pub fn mse(y: &[f64], f: &[f64]) -> Option<f64> {
    mean(y.iter().zip(f).map(|(y, f)| (f - y).powi(2)))
}

/// Root mean squared error.
pub fn rmse(y: &[f64], f: &[f64]) -> Option<f64> {
    mse(y, f).map(f64::sqrt)
}

/// Mean absolute error.
pub fn mae(y: &[f64], f: &[f64]) -> Option<f64> {
    mean(y.iter().zip(f).map(|(y, f)| (f - y).abs()))
}

/// Coefficient of determination, pooled over all rows.
pub fn r2(y: &[f64], f: &[f64]) -> Option<f64> {
    let ybar = mean(y.iter().copied())?;
    let sst: f64 = y.iter().map(|y| (y - ybar).powi(2)).sum();
    let sse: f64 = y.iter().zip(f).map(|(y, f)| (f - y).powi(2)).sum();
    (sst > 0.0).then(|| 1.0 - sse / sst)
}

/// Mean absolute percentage error over the rows with y ≠ 0, in percent.
pub fn mape(y: &[f64], f: &[f64]) -> Option<f64> {
    mean(y.iter().zip(f).filter(|(y, _)| **y != 0.0).map(|(y, f)| 100.0 * (f - y).abs() / y.abs()))
}

/// Symmetric MAPE (M4), in percent; a row with y = f = 0 counts 0.
pub fn smape(y: &[f64], f: &[f64]) -> Option<f64> {
    mean(y.iter().zip(f).map(|(y, f)| {
        let den = y.abs() + f.abs();
        if den > 0.0 { 100.0 * 2.0 * (f - y).abs() / den } else { 0.0 }
    }))
}

/// Weighted absolute percentage error, in percent.
pub fn wape(y: &[f64], f: &[f64]) -> Option<f64> {
    let sy: f64 = y.iter().map(|y| y.abs()).sum();
    let se: f64 = y.iter().zip(f).map(|(y, f)| (f - y).abs()).sum();
    (sy > 0.0 && !y.is_empty()).then(|| 100.0 * se / sy)
}

/// Mean error (positive: over-forecast).
pub fn bias(y: &[f64], f: &[f64]) -> Option<f64> {
    mean(y.iter().zip(f).map(|(y, f)| f - y))
}

/// Total error over total actual, in percent.
pub fn bias_pct(y: &[f64], f: &[f64]) -> Option<f64> {
    let sy: f64 = y.iter().sum();
    let se: f64 = y.iter().zip(f).map(|(y, f)| f - y).sum();
    (sy != 0.0).then(|| 100.0 * se / sy)
}

/// Pinball (quantile) loss of the `level`-quantile forecast `q`.
pub fn pinball(y: &[f64], q: &[f64], level: f64) -> Option<f64> {
    mean(y.iter().zip(q).map(|(y, q)| quantile_loss(*y, *q, level)))
}

/// The pinball loss of one `level`-quantile forecast `q` of the actual `y`.
pub fn quantile_loss(y: f64, q: f64, level: f64) -> f64 {
    let d = y - q;
    (level * d).max((level - 1.0) * d)
}

/// Share of actuals inside [lo, hi].
pub fn coverage(y: &[f64], lo: &[f64], hi: &[f64]) -> Option<f64> {
    mean(y.iter().zip(lo.iter().zip(hi)).map(|(y, (lo, hi))| if lo <= y && y <= hi { 1.0 } else { 0.0 }))
}

/// In-sample seasonal-naive MAE of a history (lag `season` by position), the MASE scale.
pub fn seasonal_naive_scale(history: &[f64], season: usize) -> Option<f64> {
    mean(history.windows(season + 1).map(|w| (w[season] - w[0]).abs()))
}

/// MASE from (MAE, scale) pairs, one per series and cutoff; pairs with a zero or missing scale
/// are left out. Returns the mean and how many pairs were left out.
pub fn mase(pairs: &[(f64, Option<f64>)]) -> (Option<f64>, usize) {
    let ok: Vec<f64> = pairs.iter().filter_map(|(m, s)| s.filter(|s| *s > 0.0).map(|s| m / s)).collect();
    let excluded = pairs.len() - ok.len();
    (mean(ok.into_iter()), excluded)
}

/// One series (at any level of the hierarchy) for WRMSSE.
#[derive(Debug, Clone)]
pub struct WrmsseSeries<'a> {
    /// In-sample history up to the cutoff.
    pub history: &'a [f64],
    /// Actuals over the horizon.
    pub actual: &'a [f64],
    /// Forecasts over the horizon.
    pub forecast: &'a [f64],
    /// Weight (M5: its share of the level's dollar sales over the last 28 days).
    pub weight: f64,
}

/// Root mean squared scaled error of one series (M5): the scale is the mean squared first
/// difference of the history from its first non-zero value. `None` when the scale is 0.
pub fn rmsse(history: &[f64], actual: &[f64], forecast: &[f64]) -> Option<f64> {
    let start = history.iter().position(|v| *v != 0.0)?;
    let scale = mean(history[start..].windows(2).map(|w| (w[1] - w[0]).powi(2)))?;
    let m = mse(actual, forecast)?;
    (scale > 0.0).then(|| (m / scale).sqrt())
}

/// WRMSSE of one level: Σ weight · RMSSE over its series, weights normalised to sum to 1
/// (series without a scale are left out). Average the levels of a hierarchy for the M5 score.
pub fn wrmsse(series: &[WrmsseSeries<'_>]) -> Option<f64> {
    let scored: Vec<(f64, f64)> =
        series.iter().filter_map(|s| rmsse(s.history, s.actual, s.forecast).map(|r| (s.weight, r))).collect();
    let total: f64 = scored.iter().map(|(w, _)| w).sum();
    (total > 0.0).then(|| scored.iter().map(|(w, r)| w / total * r).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    const Y: [f64; 4] = [2.0, 0.0, 4.0, 6.0];
    const F: [f64; 4] = [3.0, 1.0, 2.0, 6.0];

    fn close(a: Option<f64>, b: f64) {
        let a = a.expect("a value");
        assert!((a - b).abs() < 1e-12, "{a} != {b}");
    }

    #[test]
    fn point_metrics_by_hand() {
        // errors: 1, 1, -2, 0
        close(mse(&Y, &F), 6.0 / 4.0);
        close(rmse(&Y, &F), 1.5f64.sqrt());
        close(mae(&Y, &F), 4.0 / 4.0);
        close(bias(&Y, &F), 0.0);
        close(bias_pct(&Y, &F), 0.0);
        // ȳ = 3; SST = 1 + 9 + 1 + 9 = 20; SSE = 6
        close(r2(&Y, &F), 1.0 - 6.0 / 20.0);
        // MAPE skips y = 0: (1/2 + 2/4 + 0) / 3
        close(mape(&Y, &F), 100.0 * (0.5 + 0.5 + 0.0) / 3.0);
        // sMAPE: 2/5, 2/1, 4/6, 0
        close(smape(&Y, &F), 100.0 * (0.4 + 2.0 + 4.0 / 6.0 + 0.0) / 4.0);
        close(wape(&Y, &F), 100.0 * 4.0 / 12.0);
    }

    #[test]
    fn interval_metrics_by_hand() {
        let lo = [1.0, 0.0, 5.0, 5.0];
        let hi = [3.0, 0.0, 6.0, 7.0];
        close(coverage(&Y, &lo, &hi), 3.0 / 4.0);
        // q = 0.1 of lo: d = y − lo = 1, 0, −1, 1 → 0.1, 0, 0.9, 0.1
        close(pinball(&Y, &lo, 0.1), (0.1 + 0.0 + 0.9 + 0.1) / 4.0);
    }

    #[test]
    fn mase_and_rmsse_by_hand() {
        // season 1: |0−2|, |4−0|, |6−4| → mean 8/3
        close(seasonal_naive_scale(&Y, 1), 8.0 / 3.0);
        assert_eq!(seasonal_naive_scale(&[1.0], 1), None);
        let (m, excluded) = mase(&[(2.0, Some(4.0)), (1.0, Some(1.0)), (3.0, Some(0.0)), (1.0, None)]);
        close(m, (0.5 + 1.0) / 2.0);
        assert_eq!(excluded, 2);
        // history from its first non-zero: 1, 3, 2 → squared diffs 4, 1 → scale 2.5
        let h = [0.0, 1.0, 3.0, 2.0];
        close(rmsse(&h, &[2.0, 2.0], &[3.0, 1.0]), (1.0f64 / 2.5).sqrt());
        let a = WrmsseSeries { history: &h, actual: &[2.0, 2.0], forecast: &[3.0, 1.0], weight: 3.0 };
        let b = WrmsseSeries { history: &h, actual: &[2.0, 2.0], forecast: &[2.0, 2.0], weight: 1.0 };
        close(wrmsse(&[a, b]), 0.75 * (1.0f64 / 2.5).sqrt());
    }

    #[test]
    fn empty_inputs_have_no_value() {
        assert_eq!(mae(&[], &[]), None);
        assert_eq!(wape(&[0.0], &[1.0]), None);
        assert_eq!(r2(&[1.0, 1.0], &[1.0, 2.0]), None);
    }
}
