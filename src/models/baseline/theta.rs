//! The Theta method, per series: robust where ETS is fragile (zero days, short or noisy series).
//!
//! Assimakopoulos & Nikolopoulos (2000); Hyndman & Billah (2003) showed it is simple exponential
//! smoothing with a drift of half the series' linear trend, which is how it is computed here:
//!
//! 1. **Season.** When the autocorrelation at the seasonal lag is significant (90%, the test of
//!    the M4 Theta benchmark) and there are at least two cycles, the series is deseasonalised by
//!    classical decomposition: multiplicative when every value is positive, additive otherwise (a
//!    day with no sales would make a multiplicative index 0 and break it).
//! 2. **Level and drift.** Simple exponential smoothing of the deseasonalised series, `α` chosen
//!    by least squares of the one-step errors, plus the drift `b/2 · (h − 1 + 1/α − (1 − α)ⁿ/α)`
//!    with `b` the least-squares slope over the history.
//! 3. **Intervals.** Normal, with the one-step error variance of the smoothing growing as
//!    `1 + (h − 1)α²`, reseasonalised like the point forecast.
//!
//! The fitted state is `α` per series; the decomposition, slope and level are read again from
//! the history a forecast starts from.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::optimize::nelder_mead;
use super::{normal_quantiles, per_series, recent, series_key};
use crate::error::Result;
use crate::models::{FitReport, Forecast, Forecaster};
use crate::panel::Panel;

/// The seasonal component of a series.
#[derive(Debug, Clone, PartialEq)]
enum Seasonal {
    None,
    /// Indices per phase (mean 1): divide, then multiply back.
    Multiplicative(Vec<f64>),
    /// Offsets per phase (mean 0): subtract, then add back.
    Additive(Vec<f64>),
}

impl Seasonal {
    /// The component of `y` with cycle `m`, when the seasonal autocorrelation is significant.
    fn of(y: &[f64], m: usize) -> Self {
        let n = y.len();
        if m < 2 || n < 2 * m || !significant(y, m) {
            return Self::None;
        }
        // Centred moving average of order m (2×m when m is even).
        let half = m / 2;
        let mut trend = vec![f64::NAN; n];
        for (t, out) in trend.iter_mut().enumerate().take(n - half).skip(half) {
            *out = if m % 2 == 1 {
                y[t - half..=t + half].iter().sum::<f64>() / m as f64
            } else {
                let inner: f64 = y[t + 1 - half..t + half].iter().sum();
                (inner + 0.5 * (y[t - half] + y[t + half])) / m as f64
            };
        }
        let multiplicative = y.iter().all(|v| *v > 0.0);
        let mut sums = vec![0.0; m];
        let mut counts = vec![0usize; m];
        for t in 0..n {
            if trend[t].is_finite() && (!multiplicative || trend[t] > 0.0) {
                sums[t % m] += if multiplicative { y[t] / trend[t] } else { y[t] - trend[t] };
                counts[t % m] += 1;
            }
        }
        if counts.contains(&0) {
            return Self::None;
        }
        let raw: Vec<f64> = sums.iter().zip(&counts).map(|(s, c)| s / *c as f64).collect();
        let mean = raw.iter().sum::<f64>() / m as f64;
        // Phases are counted from the first value held: index (t % m).
        if multiplicative {
            if mean <= 0.0 {
                return Self::None;
            }
            Self::Multiplicative(raw.iter().map(|r| r / mean).collect())
        } else {
            Self::Additive(raw.iter().map(|r| r - mean).collect())
        }
    }

    fn remove(&self, t: usize, v: f64) -> f64 {
        match self {
            Self::None => v,
            Self::Multiplicative(ix) => v / ix[t % ix.len()],
            Self::Additive(ix) => v - ix[t % ix.len()],
        }
    }

    fn restore(&self, t: usize, v: f64) -> f64 {
        match self {
            Self::None => v,
            Self::Multiplicative(ix) => v * ix[t % ix.len()],
            Self::Additive(ix) => v + ix[t % ix.len()],
        }
    }

    fn scale(&self, t: usize) -> f64 {
        match self {
            Self::Multiplicative(ix) => ix[t % ix.len()],
            _ => 1.0,
        }
    }
}

/// Whether the autocorrelation at lag `m` is significant at 90% (Bartlett's standard error).
fn significant(y: &[f64], m: usize) -> bool {
    let n = y.len();
    let mean = y.iter().sum::<f64>() / n as f64;
    let var: f64 = y.iter().map(|v| (v - mean).powi(2)).sum();
    if var <= 0.0 {
        return false;
    }
    let acf = |k: usize| (k..n).map(|t| (y[t] - mean) * (y[t - k] - mean)).sum::<f64>() / var;
    let r: Vec<f64> = (1..=m).map(acf).collect();
    let limit = 1.645 * ((1.0 + 2.0 * r[..m - 1].iter().map(|x| x * x).sum::<f64>()) / n as f64).sqrt();
    r[m - 1].abs() > limit
}

/// Simple exponential smoothing of `x` from level `x[0]`: the final level and the sum of squared
/// one-step errors.
fn ses(x: &[f64], alpha: f64) -> (f64, f64) {
    let mut level = x[0];
    let mut sse = 0.0;
    for v in &x[1..] {
        let e = v - level;
        sse += e * e;
        level += alpha * e;
    }
    (level, sse)
}

/// The least-squares slope of `x` over its index.
fn slope(x: &[f64]) -> f64 {
    let n = x.len() as f64;
    let tm = (n - 1.0) / 2.0;
    let xm = x.iter().sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (t, v) in x.iter().enumerate() {
        num += (t as f64 - tm) * (v - xm);
        den += (t as f64 - tm).powi(2);
    }
    if den > 0.0 { num / den } else { 0.0 }
}

/// `α` in (0.01, 0.99) from an unbounded parameter.
fn alpha_of(p: f64) -> f64 {
    0.01 + 0.98 / (1.0 + (-p).exp())
}

/// One series' fit: its smoothing weight.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct Fit {
    alpha: f64,
}

fn fit_one(y: &[f64], m: usize) -> Fit {
    let season = Seasonal::of(y, m);
    let x: Vec<f64> = y.iter().enumerate().map(|(t, v)| season.remove(t, *v)).collect();
    let (p, _) = nelder_mead(|p| ses(&x, alpha_of(p[0])).1, &[-1.0], 1.0, 60);
    Fit { alpha: alpha_of(p[0]) }
}

/// The Theta model: `α` per series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Theta {
    season: usize,
    #[serde(skip)]
    threads: usize,
    fits: HashMap<String, Fit>,
}

impl Theta {
    /// Theta with season length `season`, fitting over `threads` threads.
    pub fn new(season: usize, threads: usize) -> Self {
        Self { season: season.max(1), threads, fits: HashMap::new() }
    }
}

impl Forecaster for Theta {
    fn name(&self) -> &str {
        "theta"
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        let m = self.season;
        let fits = per_series(panel.len(), self.threads, |s| {
            let y = recent(&panel.values[s]);
            (y.len() >= 3 && y.iter().any(|v| *v != y[0])).then(|| fit_one(&y, m))
        });
        self.fits = panel.keys.iter().zip(fits).filter_map(|(k, f)| f.map(|f| (series_key(k), f))).collect();
        Ok(FitReport::new(self.name(), panel))
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        let mut out = Forecast::zeros(self.name(), panel.len(), horizon, levels);
        let mut qs = vec![0.0f32; levels.len()];
        for (s, k) in panel.keys.iter().enumerate() {
            let y = recent(&panel.values[s]);
            let Some(fit) = self.fits.get(&series_key(k)).filter(|_| y.len() >= 3) else {
                // Constant, too short or unseen: repeat the last value, no spread.
                let last = y.last().copied().unwrap_or(0.0);
                for h in 0..horizon {
                    normal_quantiles(last, 0.0, levels, &mut qs);
                    out.set(s, h, last as f32, &mut qs);
                }
                continue;
            };
            let season = Seasonal::of(&y, self.season);
            let x: Vec<f64> = y.iter().enumerate().map(|(t, v)| season.remove(t, *v)).collect();
            let (n, a) = (x.len(), fit.alpha);
            let (level, sse) = ses(&x, a);
            let sigma = (sse / (n - 1).max(1) as f64).sqrt();
            let drift = slope(&x) / 2.0;
            let tail = (1.0 / a) - (1.0 - a).powi(n as i32) / a;
            for h in 1..=horizon {
                let t = n - 1 + h;
                let point = level + drift * (h as f64 - 1.0 + tail);
                let sd = sigma * (1.0 + (h as f64 - 1.0) * a * a).sqrt() * season.scale(t);
                let mean = season.restore(t, point);
                normal_quantiles(mean, sd, levels, &mut qs);
                out.set(s, h - 1, mean as f32, &mut qs);
            }
        }
        Ok(out)
    }

    fn save(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }

    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        let threads = self.threads;
        *self = serde_json::from_slice(bytes)?;
        self.threads = threads;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forecast(y: &[f32], m: usize, h: usize) -> Forecast {
        let panel = Panel::single(y);
        let mut t = Theta::new(m, 1);
        t.fit(&panel).unwrap();
        t.predict(&panel, h, &[0.1, 0.5, 0.9]).unwrap()
    }

    #[test]
    fn a_trend_continues_at_about_half_its_slope_plus_the_level() {
        let y: Vec<f32> = (0..100).map(|t| 10.0 + 0.5 * t as f32 + if t % 2 == 0 { 0.4 } else { -0.4 }).collect();
        let f = forecast(&y, 1, 10);
        // SES tracks the level near the end (about 59.5) and the drift adds b/2 per step.
        let (first, last) = (f.mean_at(0, 0), f.mean_at(0, 9));
        assert!((55.0..65.0).contains(&first), "{first}");
        assert!(((last - first) - 9.0 * 0.25).abs() < 0.5, "{first} → {last}");
    }

    #[test]
    fn a_weekly_season_with_closed_days_is_kept_additively() {
        // Sundays at zero (a closing day): a multiplicative index would be 0 and the season lost.
        let week = [10.0, 12.0, 11.0, 13.0, 18.0, 25.0, 0.0];
        let y: Vec<f32> = (0..140).map(|t| week[t % 7] + ((t * 7919) % 5) as f32 / 5.0).collect();
        let f = forecast(&y, 7, 14);
        for h in 0..14 {
            let want = week[(140 + h) % 7];
            assert!((f.mean_at(0, h) - want).abs() < 2.5, "step {h}: {} vs {want}", f.mean_at(0, h));
        }
        // Intervals widen with the horizon and hold the point.
        assert!(f.quantile_at(0, 0, 0) <= f.mean_at(0, 0) && f.mean_at(0, 0) <= f.quantile_at(0, 0, 2));
        let width = |h: usize| f.quantile_at(0, h, 2) - f.quantile_at(0, h, 0);
        assert!(width(12) >= width(5));
    }

    #[test]
    fn a_multiplicative_season_scales_with_the_level() {
        let week = [0.6, 0.8, 1.0, 1.0, 1.3, 1.7, 1.6];
        let y: Vec<f32> = (0..210).map(|t| (50.0 + 0.2 * t as f32) * week[t % 7]).collect();
        assert!(matches!(
            Seasonal::of(&y.iter().map(|v| *v as f64).collect::<Vec<_>>(), 7),
            Seasonal::Multiplicative(_)
        ));
        let f = forecast(&y, 7, 7);
        for h in 0..7 {
            let want = (50.0 + 0.2 * (210 + h) as f32) * week[(210 + h) % 7];
            assert!((f.mean_at(0, h) - want).abs() / want < 0.05, "step {h}: {} vs {want}", f.mean_at(0, h));
        }
    }
}
