//! Seasonal naive: each step repeats the value one season earlier.
//!
//! Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, §5.2 and
//! §5.5: the h-step forecast is `y[T + h − m(k)]` with `k = ⌊(h − 1)/m⌋ + 1`, and
//! its error spread grows with `√k`. Quantiles come from the empirical
//! distribution of recent seasonal differences `y[t] − y[t − m]`, scaled by
//! `√k`. Series shorter than one season fall back to the naive method (last
//! value, first differences).

use super::quantile_sorted;
use crate::error::Result;
use crate::models::{FitReport, Forecast, Forecaster};
use crate::panel::Panel;

/// Seasons of history whose residuals set the intervals.
const RESIDUAL_SEASONS: usize = 8;

/// The seasonal naive model.
#[derive(Debug, Clone)]
pub struct SeasonalNaive {
    season: usize,
}

impl SeasonalNaive {
    /// A model with season length `season` (periods).
    pub fn new(season: usize) -> Self {
        Self { season: season.max(1) }
    }
}

impl Forecaster for SeasonalNaive {
    fn name(&self) -> &str {
        "seasonal_naive"
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        // Nothing to learn beyond the history itself, which predict reads.
        Ok(FitReport::new(self.name(), panel))
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        let mut out = Forecast::zeros(self.name(), panel.len(), horizon, levels);
        let mut qs = vec![0.0f32; levels.len()];
        for (s, y) in panel.values.iter().enumerate() {
            let m = if y.len() > self.season { self.season } else { 1 };
            let n = y.len();
            // Residuals of the method in sample, over the last few seasons.
            let from = n.saturating_sub(RESIDUAL_SEASONS * m.max(7)).max(m);
            let mut resid: Vec<f32> = (from..n).map(|t| y[t] - y[t - m]).collect();
            resid.sort_by(f32::total_cmp);
            for h in 0..horizon {
                let point = if n == 0 { 0.0 } else { y[n - m + (h % m)] };
                let k = (h / m + 1) as f32;
                for (q, level) in qs.iter_mut().zip(levels) {
                    *q = point + quantile_sorted(&resid, *level) * k.sqrt();
                }
                out.set(s, h, point, &mut qs);
            }
        }
        Ok(out)
    }

    fn save(&self) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec(&self.season)?)
    }

    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        self.season = serde_json::from_slice(bytes)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::period::Frequency;
    use chrono::NaiveDate;

    fn panel(values: Vec<Vec<f32>>) -> Panel {
        let keys = (0..values.len())
            .map(|i| crate::panel::SeriesKey { item_id: format!("i{i}"), location_id: "l".into() })
            .collect();
        Panel::new(keys, values, NaiveDate::from_ymd_opt(2026, 1, 31).unwrap(), Frequency::Daily)
    }

    #[test]
    fn repeats_the_last_season_and_widens_with_distance() {
        let week = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let mut y: Vec<f32> = Vec::new();
        for w in 0..10 {
            y.extend(week.iter().map(|v| v + if w % 2 == 0 { 0.5 } else { -0.5 }));
        }
        let p = panel(vec![y.clone()]);
        let f = SeasonalNaive::new(7).predict(&p, 14, &[0.1, 0.5, 0.9]).unwrap();
        for h in 0..14 {
            assert_eq!(f.mean_at(0, h), y[y.len() - 7 + h % 7]);
            assert!(
                f.quantile_at(0, h, 0) <= f.quantile_at(0, h, 1) && f.quantile_at(0, h, 1) <= f.quantile_at(0, h, 2)
            );
        }
        let width = |h| f.quantile_at(0, h, 2) - f.quantile_at(0, h, 0);
        assert!(width(7) > width(0), "intervals widen in the second season");
    }

    #[test]
    fn short_series_fall_back_to_naive_and_never_go_negative() {
        let p = panel(vec![vec![3.0, 0.0, 2.0], vec![]]);
        let f = SeasonalNaive::new(7).predict(&p, 3, &[0.05, 0.95]).unwrap();
        assert_eq!(f.mean_at(0, 0), 2.0);
        assert_eq!(f.mean_at(1, 2), 0.0);
        assert!(f.quantiles.iter().all(|q| *q >= 0.0));
    }
}
