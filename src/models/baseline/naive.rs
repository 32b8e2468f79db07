//! Naive and moving-average forecasts.
//!
//! Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, §5.2: the naive forecast
//! repeats the last value (h-step spread σ√h, σ from first differences); the moving average
//! repeats the mean of the last `window` values (spread of its in-sample one-step errors).

use serde::{Deserialize, Serialize};

use super::{normal_quantiles, std_dev};
use crate::error::Result;
use crate::models::{FitReport, Forecast, Forecaster};
use crate::panel::Panel;

/// The naive model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Naive;

impl Forecaster for Naive {
    fn name(&self) -> &str {
        "naive"
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        Ok(FitReport::new(self.name(), panel))
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        let mut out = Forecast::zeros(self.name(), panel.len(), horizon, levels);
        let mut qs = vec![0.0f32; levels.len()];
        for (s, y) in panel.values.iter().enumerate() {
            let last = y.last().copied().unwrap_or(0.0) as f64;
            let diffs: Vec<f64> = y.windows(2).map(|w| (w[1] - w[0]) as f64).collect();
            let sigma = std_dev(&diffs);
            for h in 0..horizon {
                normal_quantiles(last, sigma * ((h + 1) as f64).sqrt(), levels, &mut qs);
                out.set(s, h, last as f32, &mut qs);
            }
        }
        Ok(out)
    }

    fn save(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }

    fn load(&mut self, _bytes: &[u8]) -> Result<()> {
        Ok(())
    }
}

/// The moving-average model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MovingAverage {
    window: usize,
}

impl MovingAverage {
    /// A moving average over the last `window` periods.
    pub fn new(window: usize) -> Self {
        Self { window: window.max(1) }
    }
}

impl Forecaster for MovingAverage {
    fn name(&self) -> &str {
        "moving_average"
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        Ok(FitReport::new(self.name(), panel))
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        let mut out = Forecast::zeros(self.name(), panel.len(), horizon, levels);
        let mut qs = vec![0.0f32; levels.len()];
        for (s, y) in panel.values.iter().enumerate() {
            let n = y.len();
            let w = self.window.min(n.max(1));
            let mean = if n == 0 { 0.0 } else { y[n - w..].iter().map(|v| *v as f64).sum::<f64>() / w as f64 };
            // One-step errors of the same moving average in sample.
            let errors: Vec<f64> =
                (w..n).map(|t| y[t] as f64 - y[t - w..t].iter().map(|v| *v as f64).sum::<f64>() / w as f64).collect();
            let sigma = std_dev(&errors);
            for h in 0..horizon {
                normal_quantiles(mean, sigma, levels, &mut qs);
                out.set(s, h, mean as f32, &mut qs);
            }
        }
        Ok(out)
    }

    fn save(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(self)?)
    }

    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        *self = serde_json::from_slice(bytes)?;
        Ok(())
    }
}
