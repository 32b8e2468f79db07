//! Exponential smoothing (ETS), chosen per series by AICc.
//!
//! Hyndman, Koehler, Ord & Snyder, *Forecasting with Exponential Smoothing: The State Space
//! Approach* (2008), additive-error models: level with no, additive or damped trend, and no,
//! additive or multiplicative season (Holt-Winters). Smoothing parameters are fitted by maximum
//! likelihood (for additive errors: least squares of the one-step errors) with Nelder–Mead inside
//! the usual bounds; initial states come from the first seasons. The model with the lowest AICc,
//! counting parameters and initial states, wins. Prediction intervals use the h-step variance
//! σ²(1 + Σ ψⱼ²), with ψⱼ the response of the forecast j steps on to a unit error (exact for the
//! linear models, a first-order approximation for the multiplicative season).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::optimize::{bounded, nelder_mead};
use super::{normal_quantiles, per_series, recent, series_key};
use crate::error::Result;
use crate::models::{FitReport, Forecast, Forecaster};
use crate::panel::Panel;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Trend {
    None,
    Additive,
    Damped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
enum Season {
    None,
    Additive,
    Multiplicative,
}

/// One fitted series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Fit {
    trend: Trend,
    season: Season,
    alpha: f64,
    beta: f64,
    gamma: f64,
    phi: f64,
    sigma: f64,
    /// Only used to choose the model; not stored (it is infinite for the fallback).
    #[serde(skip)]
    aicc: f64,
}

#[derive(Debug, Clone)]
struct State {
    level: f64,
    trend: f64,
    season: Vec<f64>,
    t: usize,
}

impl Fit {
    fn damp(&self) -> f64 {
        match self.trend {
            Trend::None => 0.0,
            Trend::Additive => 1.0,
            Trend::Damped => self.phi,
        }
    }

    fn init(&self, y: &[f64], m: usize) -> State {
        match self.season {
            Season::None => {
                let level = y[..y.len().min(3)].iter().sum::<f64>() / y.len().min(3) as f64;
                let trend = if self.trend != Trend::None && y.len() > 1 {
                    (y[y.len().min(4) - 1] - y[0]) / (y.len().min(4) - 1) as f64
                } else {
                    0.0
                };
                State { level, trend, season: vec![0.0], t: 0 }
            }
            _ => {
                let first = y[..m].iter().sum::<f64>() / m as f64;
                let second = y[m..2 * m].iter().sum::<f64>() / m as f64;
                let trend = if self.trend != Trend::None { (second - first) / m as f64 } else { 0.0 };
                let season = y[..m]
                    .iter()
                    .map(|v| if self.season == Season::Additive { v - first } else { v / first })
                    .collect();
                State { level: first, trend, season, t: 0 }
            }
        }
    }

    /// One step: returns the one-step forecast, and updates the state with error `e` (given
    /// the observation, or forced when `observed` is `None`).
    fn step(&self, s: &mut State, observed: Option<f64>, forced_error: f64, m: usize) -> Option<f64> {
        let phib = self.damp() * s.trend;
        let base = s.level + phib;
        let idx = s.t % m;
        let st = s.season[idx.min(s.season.len() - 1)];
        let yhat = match self.season {
            Season::None => base,
            Season::Additive => base + st,
            Season::Multiplicative => base * st,
        };
        let e = observed.map_or(forced_error, |y| y - yhat);
        match self.season {
            Season::None => {
                s.level = base + self.alpha * e;
                s.trend = phib + self.beta * e;
            }
            Season::Additive => {
                s.level = base + self.alpha * e;
                s.trend = phib + self.beta * e;
                s.season[idx] = st + self.gamma * e;
            }
            Season::Multiplicative => {
                if st.abs() < 1e-6 || base.abs() < 1e-6 {
                    return None;
                }
                s.level = base + self.alpha * e / st;
                s.trend = phib + self.beta * e / st;
                s.season[idx] = st + self.gamma * e / base;
            }
        }
        s.t += 1;
        Some(yhat)
    }

    /// Sum of squared one-step errors and the final state; `None` when the filter breaks down.
    fn filter(&self, y: &[f64], m: usize) -> Option<(f64, State)> {
        let mut s = self.init(y, m);
        let mut sse = 0.0;
        for v in y {
            let yhat = self.step(&mut s, Some(*v), 0.0, m)?;
            sse += (v - yhat).powi(2);
            if !sse.is_finite() {
                return None;
            }
        }
        Some((sse, s))
    }

    fn forecast(&self, s: &State, h: usize, m: usize) -> f64 {
        let b = match self.trend {
            Trend::None => 0.0,
            Trend::Additive => h as f64 * s.trend,
            Trend::Damped => s.trend * (1..=h).map(|j| self.phi.powi(j as i32)).sum::<f64>(),
        };
        let base = s.level + b;
        let st = s.season[(s.t + h - 1) % m % s.season.len()];
        match self.season {
            Season::None => base,
            Season::Additive => base + st,
            Season::Multiplicative => base * st,
        }
    }

    fn states(&self) -> usize {
        1 + usize::from(self.trend != Trend::None)
    }
}

fn params_of(x: &[f64], trend: Trend, season: Season) -> (f64, f64, f64, f64) {
    let alpha = bounded(x[0], 1e-4, 0.9999);
    let mut i = 1;
    let beta = if trend != Trend::None {
        i += 1;
        alpha * bounded(x[i - 1], 1e-3, 0.999)
    } else {
        0.0
    };
    let gamma = if season != Season::None {
        i += 1;
        (1.0 - alpha) * bounded(x[i - 1], 1e-3, 0.999)
    } else {
        0.0
    };
    let phi = if trend == Trend::Damped { bounded(x[i], 0.8, 0.98) } else { 1.0 };
    (alpha, beta, gamma, phi)
}

fn fit_one(y: &[f64], m: usize) -> Fit {
    let n = y.len();
    let seasonal = m > 1 && n >= 2 * m + 2;
    let positive = y.iter().all(|v| *v > 0.0);
    let mut candidates = vec![(Trend::None, Season::None)];
    if n >= 6 {
        candidates.extend([(Trend::Additive, Season::None), (Trend::Damped, Season::None)]);
    }
    if seasonal {
        for t in [Trend::None, Trend::Additive, Trend::Damped] {
            candidates.push((t, Season::Additive));
            if positive {
                candidates.push((t, Season::Multiplicative));
            }
        }
    }
    let mut best: Option<Fit> = None;
    for (trend, season) in candidates {
        let dims = 1
            + usize::from(trend != Trend::None)
            + usize::from(season != Season::None)
            + usize::from(trend == Trend::Damped);
        let make = |x: &[f64]| {
            let (alpha, beta, gamma, phi) = params_of(x, trend, season);
            Fit { trend, season, alpha, beta, gamma, phi, sigma: 0.0, aicc: f64::INFINITY }
        };
        let objective = |x: &[f64]| make(x).filter(y, m).map_or(f64::INFINITY, |(sse, _)| sse);
        let (x, sse) = nelder_mead(objective, &vec![-1.0; dims], 1.0, 80 * dims + 100);
        if !sse.is_finite() {
            continue;
        }
        let mut fit = make(&x);
        let k = dims + 1 + fit.states() + if season != Season::None { m - 1 } else { 0 };
        let nf = n as f64;
        let kf = k as f64;
        if nf - kf - 1.0 <= 0.0 {
            continue;
        }
        let mse = (sse / nf).max(1e-12);
        fit.aicc = nf * mse.ln() + 2.0 * kf + 2.0 * kf * (kf + 1.0) / (nf - kf - 1.0);
        fit.sigma = (sse / (nf - dims as f64).max(1.0)).sqrt();
        if best.as_ref().is_none_or(|b| fit.aicc < b.aicc) {
            best = Some(fit);
        }
    }
    best.unwrap_or(Fit {
        trend: Trend::None,
        season: Season::None,
        alpha: 0.5,
        beta: 0.0,
        gamma: 0.0,
        phi: 1.0,
        sigma: super::std_dev(y),
        aicc: f64::INFINITY,
    })
}

/// The ETS model: one fitted specification and parameter set per series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ets {
    season: usize,
    #[serde(skip)]
    threads: usize,
    fits: HashMap<String, Fit>,
}

impl Ets {
    /// ETS with season length `season`, fitting over `threads` threads.
    pub fn new(season: usize, threads: usize) -> Self {
        Self { season: season.max(1), threads, fits: HashMap::new() }
    }
}

impl Forecaster for Ets {
    fn name(&self) -> &str {
        "ets"
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        let m = self.season;
        let fits = per_series(panel.len(), self.threads, |s| {
            let y = recent(&panel.values[s]);
            if y.len() < 2 || y.iter().all(|v| *v == y[0]) { None } else { Some(fit_one(&y, m)) }
        });
        self.fits = panel.keys.iter().zip(fits).filter_map(|(k, f)| f.map(|f| (series_key(k), f))).collect();
        Ok(FitReport::new(self.name(), panel))
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        let m = self.season;
        let mut out = Forecast::zeros(self.name(), panel.len(), horizon, levels);
        let mut qs = vec![0.0f32; levels.len()];
        for (s, k) in panel.keys.iter().enumerate() {
            let y = recent(&panel.values[s]);
            let fitted = self.fits.get(&series_key(k)).and_then(|f| f.filter(&y, m).map(|(_, st)| (f, st)));
            let Some((fit, state)) = fitted else {
                // Constant, too short or unseen: repeat the last value, no spread.
                let last = y.last().copied().unwrap_or(0.0);
                for h in 0..horizon {
                    normal_quantiles(last, 0.0, levels, &mut qs);
                    out.set(s, h, last as f32, &mut qs);
                }
                continue;
            };
            // ψ weights: the forecast's response to a unit error at the first forecast step.
            let mut base = state.clone();
            let mut shocked = state.clone();
            fit.step(&mut base, None, 0.0, m);
            fit.step(&mut shocked, None, 1.0, m);
            let mut var_sum = 1.0;
            for h in 1..=horizon {
                if h > 1 {
                    let psi = fit.forecast(&shocked, h - 1, m) - fit.forecast(&base, h - 1, m);
                    var_sum += psi * psi;
                }
                let point = fit.forecast(&state, h, m);
                normal_quantiles(point, fit.sigma * var_sum.sqrt(), levels, &mut qs);
                out.set(s, h - 1, point as f32, &mut qs);
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

    #[test]
    fn a_trend_is_found_and_extrapolated() {
        let y: Vec<f64> = (0..60).map(|t| 10.0 + 0.5 * t as f64 + if t % 2 == 0 { 0.3 } else { -0.3 }).collect();
        let fit = fit_one(&y, 1);
        assert_ne!(fit.trend, Trend::None, "{fit:?}");
        let (_, s) = fit.filter(&y, 1).unwrap();
        let f10 = fit.forecast(&s, 10, 1);
        assert!((f10 - (10.0 + 0.5 * 69.0)).abs() < 2.0, "{f10}");
    }

    #[test]
    fn a_weekly_season_beats_no_season() {
        let week = [1.0, 1.0, 1.2, 1.1, 1.6, 2.4, 2.0];
        let y: Vec<f64> = (0..140).map(|t| 20.0 * week[t % 7] + ((t * 7919) % 13) as f64 / 13.0).collect();
        let fit = fit_one(&y, 7);
        assert_ne!(fit.season, Season::None, "{fit:?}");
        let (_, s) = fit.filter(&y, 7).unwrap();
        for h in 1..=7 {
            let want = 20.0 * week[(140 + h - 1) % 7];
            assert!((fit.forecast(&s, h, 7) - want).abs() < 3.0);
        }
    }
}
