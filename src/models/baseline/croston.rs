//! Intermittent demand: Croston (with the Syntetos–Boylan approximation) and TSB.
//!
//! Croston (1972) smooths non-zero demand sizes `z` and the intervals `p` between them, both
//! with `alpha`; the forecast is `z / p`, and SBA (Syntetos & Boylan, 2005) multiplies it by
//! `1 − alpha/2` to remove Croston's bias. TSB (Teunter, Syntetos & Babai, 2011) smooths the
//! probability of demand every period (with `beta`), so forecasts decay when demand stops.
//! Quantiles come from the implied mixture: no demand with probability `1 − π`, otherwise a size
//! drawn from the series' own non-zero sizes, rescaled to the smoothed size.

use serde::{Deserialize, Serialize};

use super::quantile_sorted;
use crate::error::Result;
use crate::models::{FitReport, Forecast, Forecaster};
use crate::panel::Panel;

/// Croston's method or its bias-corrected form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CrostonVariant {
    /// The original `z / p`.
    Classic,
    /// Syntetos–Boylan: `(1 − α/2) z / p`.
    Sba,
}

/// Writes the mixture quantiles for demand probability `prob`, mean size `size`.
#[allow(clippy::too_many_arguments)]
fn mixture(
    out: &mut Forecast,
    s: usize,
    horizon: usize,
    levels: &[f64],
    mean: f64,
    prob: f64,
    size: f64,
    sizes: &[f32],
) {
    let prob = prob.clamp(0.0, 1.0);
    let avg = if sizes.is_empty() { 0.0 } else { sizes.iter().map(|v| *v as f64).sum::<f64>() / sizes.len() as f64 };
    let scale = if avg > 0.0 { (size / avg) as f32 } else { 0.0 };
    let scaled: Vec<f32> = sizes.iter().map(|v| v * scale).collect();
    let mut qs: Vec<f32> = levels
        .iter()
        .map(
            |l| if *l <= 1.0 - prob || prob == 0.0 { 0.0 } else { quantile_sorted(&scaled, (l - (1.0 - prob)) / prob) },
        )
        .collect();
    for h in 0..horizon {
        let mut q = qs.clone();
        out.set(s, h, mean as f32, &mut q);
    }
    qs.clear();
}

fn sorted_sizes(y: &[f32]) -> Vec<f32> {
    let mut sizes: Vec<f32> = y.iter().copied().filter(|v| *v > 0.0).collect();
    sizes.sort_by(f32::total_cmp);
    sizes
}

/// Croston / SBA.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Croston {
    alpha: f64,
    variant: CrostonVariant,
}

impl Croston {
    /// Croston with smoothing `alpha` (0.1 is usual).
    pub fn new(alpha: f64, variant: CrostonVariant) -> Self {
        Self { alpha: alpha.clamp(0.01, 1.0), variant }
    }

    /// Smoothed size and interval after the whole history, `None` without demand.
    fn smooth(&self, y: &[f32]) -> Option<(f64, f64)> {
        let mut state: Option<(f64, f64)> = None;
        let mut since = 0.0;
        for v in y {
            since += 1.0;
            if *v > 0.0 {
                let v = *v as f64;
                state = Some(match state {
                    None => (v, since),
                    Some((z, p)) => (z + self.alpha * (v - z), p + self.alpha * (since - p)),
                });
                since = 0.0;
            }
        }
        state
    }
}

impl Forecaster for Croston {
    fn name(&self) -> &str {
        "croston"
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        Ok(FitReport::new(self.name(), panel))
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        let mut out = Forecast::zeros(self.name(), panel.len(), horizon, levels);
        for (s, y) in panel.values.iter().enumerate() {
            let Some((z, p)) = self.smooth(y) else { continue };
            let correction = match self.variant {
                CrostonVariant::Classic => 1.0,
                CrostonVariant::Sba => 1.0 - self.alpha / 2.0,
            };
            let p = p.max(1.0);
            mixture(&mut out, s, horizon, levels, correction * z / p, 1.0 / p, correction * z, &sorted_sizes(y));
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

/// Teunter–Syntetos–Babai.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tsb {
    alpha: f64,
    beta: f64,
}

impl Tsb {
    /// TSB with size smoothing `alpha` and probability smoothing `beta`.
    pub fn new(alpha: f64, beta: f64) -> Self {
        Self { alpha: alpha.clamp(0.01, 1.0), beta: beta.clamp(0.01, 1.0) }
    }
}

impl Forecaster for Tsb {
    fn name(&self) -> &str {
        "tsb"
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        Ok(FitReport::new(self.name(), panel))
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        let mut out = Forecast::zeros(self.name(), panel.len(), horizon, levels);
        for (s, y) in panel.values.iter().enumerate() {
            let Some(first) = y.iter().position(|v| *v > 0.0) else { continue };
            let mut z = y[first] as f64;
            let mut prob = 1.0 / (first + 1) as f64;
            for v in &y[first + 1..] {
                let d = if *v > 0.0 { 1.0 } else { 0.0 };
                prob += self.beta * (d - prob);
                if *v > 0.0 {
                    z += self.alpha * (*v as f64 - z);
                }
            }
            mixture(&mut out, s, horizon, levels, prob * z, prob, z, &sorted_sizes(y));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn croston_averages_size_over_interval_and_sba_shrinks_it() {
        let y = [0.0, 0.0, 4.0, 0.0, 0.0, 4.0, 0.0, 0.0, 4.0];
        let c = Croston::new(0.1, CrostonVariant::Classic);
        let (z, p) = c.smooth(&y).unwrap();
        assert!((z - 4.0).abs() < 1e-9 && (p - 3.0).abs() < 1e-9);
        let panel = crate::panel::Panel::single(&y);
        let f = c.predict(&panel, 2, &[0.5, 0.9]).unwrap();
        assert!((f.mean_at(0, 0) - 4.0 / 3.0).abs() < 1e-5);
        let sba = Croston::new(0.1, CrostonVariant::Sba).predict(&panel, 2, &[0.5]).unwrap();
        assert!((sba.mean_at(0, 0) - 0.95 * 4.0 / 3.0).abs() < 1e-5);
        // P(demand) = 1/3: the median is 0, the 90% quantile a full size.
        assert_eq!(f.quantile_at(0, 0, 0), 0.0);
        assert!((f.quantile_at(0, 0, 1) - 4.0).abs() < 1e-5);
    }

    #[test]
    fn tsb_decays_after_demand_stops() {
        let mut y = vec![3.0f32; 10];
        y.extend([0.0; 30]);
        let f = Tsb::new(0.1, 0.1).predict(&crate::panel::Panel::single(&y), 1, &[0.5]).unwrap();
        assert!(f.mean_at(0, 0) < 0.2 * 3.0, "{}", f.mean_at(0, 0));
    }
}
