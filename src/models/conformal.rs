//! Quantiles calibrated on a held-out horizon, for models whose intervals come from assumptions
//! (in-sample residuals, a Gaussian or Poisson spread) rather than from their own errors out of
//! sample: the statistical baselines, whose 80% intervals cover anywhere from 70% to 90% of the
//! actuals on real data.
//!
//! Fitting holds the last `horizon` periods out, fits the model on the rest and forecasts them.
//! On those forecasts one factor per level scales the quantile's distance from the median so that
//! the level's share of the actuals falls at or below it (split conformal calibration of the
//! spread, the learned ensemble's [`calibrate`] on one member). Then the model is fitted on
//! everything, and its quantiles are scaled by those factors. The mean and the median are never
//! changed; with too little held-out data (or a model that cannot fit the shorter history) the
//! quantiles stay the model's own.

use tracing::debug;

use super::ensemble::calibrate;
use super::ensemble::select::{Validation, Weights};
use super::framed;
use super::{FitReport, Forecast, Forecaster, card_with, with_median};
use crate::error::Result;
use crate::panel::Panel;

/// Levels forecast on the held-out periods; others interpolate between them.
const LEVELS: [f64; 9] = [0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.975];

/// Starts a stored state that carries factors (older states are the model's own bytes).
const MAGIC: &[u8] = b"shelfcast-conformal-1\n";

/// A model whose quantiles are calibrated on its errors over a held-out horizon.
#[derive(Debug)]
pub struct Conformal {
    inner: Box<dyn Forecaster>,
    horizon: usize,
    season: usize,
    /// (level, factor) per calibrated level; empty: the model's own quantiles.
    factors: Vec<(f64, f64)>,
}

impl Conformal {
    /// Wraps `inner`, calibrating on the last `horizon` periods (MASE-weighted with a seasonal
    /// naive scale of `season` periods, as the ensemble weighs its validation).
    pub fn new(inner: Box<dyn Forecaster>, horizon: usize, season: usize) -> Self {
        Self { inner, horizon: horizon.max(1), season: season.max(1), factors: Vec::new() }
    }

    /// The factors of the last fit (or load).
    pub fn factors(&self) -> &[(f64, f64)] {
        &self.factors
    }

    /// The factors from forecasts of the panel without its last horizon.
    fn calibrate(&mut self, panel: &Panel) -> Result<Vec<(f64, f64)>> {
        // The baselines read no covariates: cutting them too would copy their whole history.
        let (cut, index) = panel.cut_without_covariates(self.horizon);
        if cut.is_empty() {
            return Ok(Vec::new());
        }
        self.inner.fit(&cut)?;
        let forecast = self.inner.predict(&cut, self.horizon, &LEVELS)?;
        let mut validation = Validation::new(1);
        validation.push(&cut, &index, panel, &[&forecast], self.horizon, self.season);
        Ok(calibrate::factors(&validation, &Weights::equal(1)))
    }
}

impl Forecaster for Conformal {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        self.factors = match self.calibrate(panel) {
            Ok(factors) => factors,
            Err(e) => {
                debug!(model = self.inner.name(), error = %e, "quantiles not calibrated: the held-out fit failed");
                Vec::new()
            }
        };
        self.inner.fit(panel)
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        if self.factors.is_empty() {
            return self.inner.predict(panel, horizon, levels);
        }
        // The median is the centre the factors scale around: forecast it even when not asked.
        let asked = with_median(levels);
        let at = |l: f64| asked.iter().position(|x| (x - l).abs() < 1e-9).unwrap_or(0);
        let median = at(0.5);
        let position: Vec<usize> = levels.iter().map(|l| at(*l)).collect();
        let f = self.inner.predict(panel, horizon, &asked)?;
        let factors: Vec<f64> = levels.iter().map(|l| calibrate::factor_at(&self.factors, *l)).collect();
        let mut out = Forecast::zeros(&f.model, f.series(), horizon, levels);
        let mut qs = vec![0.0f32; levels.len()];
        for s in 0..f.series() {
            for h in 0..horizon {
                let m = f.quantile_at(s, h, median);
                for (k, q) in qs.iter_mut().enumerate() {
                    *q = m + (factors[k] * f64::from(f.quantile_at(s, h, position[k]) - m)) as f32;
                }
                out.set(s, h, f.mean_at(s, h), &mut qs);
            }
        }
        out.point = f.point;
        Ok(out)
    }

    fn save(&self) -> Result<Vec<u8>> {
        Ok(framed::frame(MAGIC, &serde_json::to_vec(&self.factors)?, &self.inner.save()?))
    }

    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        match framed::wrapped(MAGIC, bytes, self.inner.name(), "calibration")? {
            Some((head, inner)) => {
                self.factors = serde_json::from_slice(head)?;
                self.inner.load(inner)
            }
            // A state stored before calibration: the model's own quantiles.
            None => {
                self.factors.clear();
                self.inner.load(bytes)
            }
        }
    }

    fn card(&self) -> Option<serde_json::Value> {
        let calibration = serde_json::json!({
            "method": "quantile spread scaled per level on the last horizon held out",
            "factors": self.factors,
        });
        Some(card_with(self.inner.card(), "quantile_calibration", calibration))
    }

    fn needs_covariates(&self) -> bool {
        self.inner.needs_covariates()
    }

    fn reads_calendar(&self) -> bool {
        self.inner.reads_calendar()
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;

    use super::*;
    use crate::models::baseline::SeasonalNaive;
    use crate::panel::SeriesKey;
    use crate::period::Frequency;

    /// Forecasts 100 with quantiles ±16 at 0.1/0.9 (±8 at 0.25/0.75), whatever it saw.
    #[derive(Debug)]
    struct Wide;

    impl Forecaster for Wide {
        fn name(&self) -> &str {
            "wide"
        }
        fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
            Ok(FitReport::new("wide", panel))
        }
        fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
            let mut f = Forecast::zeros("wide", panel.len(), horizon, levels);
            for s in 0..panel.len() {
                for h in 0..horizon {
                    let mut qs: Vec<f32> = levels.iter().map(|l| 100.0 + 80.0 * (*l as f32 - 0.5)).collect();
                    f.set(s, h, 100.0, &mut qs);
                }
            }
            Ok(f)
        }
        fn save(&self) -> Result<Vec<u8>> {
            Ok(b"wide".to_vec())
        }
        fn load(&mut self, bytes: &[u8]) -> Result<()> {
            assert_eq!(bytes, b"wide");
            Ok(())
        }
    }

    /// Series around 100 whose values spread evenly over ±10 (a weekly pattern for the
    /// seasonal-naive scale), `n` days.
    fn panel(series: usize, n: usize) -> Panel {
        let keys = (0..series).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect();
        let values =
            (0..series).map(|s| (0..n).map(|t| 100.0 + ((s * 7 + t * 5) % 21) as f32 - 10.0).collect()).collect();
        Panel::new(keys, values, NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(), Frequency::Daily)
    }

    fn coverage(f: &Forecast, actuals: &Panel, from: usize) -> f64 {
        let (mut inside, mut n) = (0, 0);
        for s in 0..f.series() {
            for h in 0..f.horizon {
                let y = actuals.values[s][from + h];
                n += 1;
                inside += usize::from(f.quantile_at(s, h, 0) <= y && y <= f.quantile_at(s, h, 2));
            }
        }
        inside as f64 / n as f64
    }

    #[test]
    fn intervals_too_wide_are_narrowed_to_their_level_and_the_mean_is_kept() {
        let (h, levels) = (14, [0.1, 0.5, 0.9]);
        let full = panel(40, 120);
        let (history, _) = full.cut(h);
        let raw = Wide.predict(&history, h, &levels).unwrap();
        assert_eq!(coverage(&raw, &full, history.values[0].len()), 1.0, "the model's own intervals cover all");
        let mut model = Conformal::new(Box::new(Wide), h, 7);
        model.fit(&history).unwrap();
        let f = model.predict(&history, h, &levels).unwrap();
        let c = coverage(&f, &full, history.values[0].len());
        assert!((0.7..=0.9).contains(&c), "calibrated 80% coverage {c:.3}, factors {:?}", model.factors());
        assert_eq!(f.mean, raw.mean, "the mean is the model's");
        for s in 0..f.series() {
            assert_eq!(f.quantile_at(s, 0, 1), 100.0, "the median is the model's");
        }
        // Levels not held out interpolate between the calibrated ones, and stay ordered.
        let wide = model.predict(&history, h, &[0.05, 0.2, 0.8, 0.95]).unwrap();
        assert!(wide.quantile_at(0, 0, 0) <= wide.quantile_at(0, 0, 1));
        assert!(wide.quantile_at(0, 0, 1) < 100.0 && wide.quantile_at(0, 0, 2) > 100.0);
        let card = model.card().unwrap();
        assert_eq!(card["quantile_calibration"]["factors"].as_array().unwrap().len(), LEVELS.len() - 1, "{card}");
    }

    #[test]
    fn stored_factors_forecast_the_same_and_older_states_load_as_they_were() {
        let (h, levels) = (7, [0.1, 0.5, 0.9]);
        let full = panel(30, 90);
        let mut model = Conformal::new(Box::new(SeasonalNaive::new(7)), h, 7);
        model.fit(&full).unwrap();
        assert!(!model.factors().is_empty());
        let first = model.predict(&full, h, &levels).unwrap();
        let mut restored = Conformal::new(Box::new(SeasonalNaive::new(7)), h, 7);
        restored.load(&model.save().unwrap()).unwrap();
        assert_eq!(restored.predict(&full, h, &levels).unwrap(), first);
        // A state saved by the bare model (before calibration existed) loads without factors.
        let mut bare = SeasonalNaive::new(7);
        bare.fit(&full).unwrap();
        let mut old = Conformal::new(Box::new(SeasonalNaive::new(7)), h, 7);
        old.load(&bare.save().unwrap()).unwrap();
        assert!(old.factors().is_empty());
        assert_eq!(old.predict(&full, h, &levels).unwrap(), bare.predict(&full, h, &levels).unwrap());
        // A cut-short state is a clear error.
        let bytes = model.save().unwrap();
        let err = restored.load(&bytes[..MAGIC.len() + 4]).unwrap_err().to_string();
        assert!(err.contains("cut short"), "{err}");
    }

    #[test]
    fn too_short_to_hold_out_keeps_the_model_quantiles() {
        let full = panel(3, 10);
        let mut model = Conformal::new(Box::new(Wide), 14, 7);
        model.fit(&full).unwrap();
        assert!(model.factors().is_empty());
        assert_eq!(model.predict(&full, 3, &[0.1, 0.9]).unwrap(), Wide.predict(&full, 3, &[0.1, 0.9]).unwrap());
    }
}
