//! Closures for every model: a wrapper that fits on a history whose closed periods carry no
//! demand signal and forecasts exactly 0 over the closed periods of the horizon (see
//! [`crate::panel::closures`]). [`super::build`] wraps every model in it; without closures on the
//! panel it changes nothing.

use std::borrow::Cow;

use super::{FitReport, Forecast, Forecaster, Reuse, Warm};
use crate::error::Result;
use crate::panel::Panel;
use crate::panel::closures::{FULLY_CLOSED, impute};
use crate::period::Frequency;

/// A model that knows about closures.
#[derive(Debug)]
pub struct Closed {
    inner: Box<dyn Forecaster>,
}

impl Closed {
    /// Wraps `inner`.
    pub fn new(inner: Box<dyn Forecaster>) -> Self {
        Self { inner }
    }
}

/// The panel a model reads: fully closed periods imputed, closures taken off (so a wrapped
/// member of a wrapped ensemble does not impute again). Borrowed when there is nothing to do.
fn prepared(panel: &Panel) -> Cow<'_, Panel> {
    let Some(closures) = &panel.closures else { return Cow::Borrowed(panel) };
    let phase = match panel.frequency {
        Frequency::Daily => 7,
        Frequency::Weekly => 1,
    };
    let values = (0..panel.len())
        .map(|s| {
            let shares = closures.shares(panel, s, 0);
            if shares.iter().any(|v| *v >= FULLY_CLOSED) {
                impute(&panel.values[s], &shares, phase)
            } else {
                panel.values[s].clone()
            }
        })
        .collect();
    Cow::Owned(Panel { values, closures: None, ..panel.clone_without_values() })
}

/// Sets every fully closed period of the horizon to 0: mean, point and quantiles.
fn zero_closed(panel: &Panel, f: &mut Forecast) {
    let Some(closures) = &panel.closures else { return };
    let (h, q) = (f.horizon, f.levels.len());
    for s in 0..panel.len().min(f.series()) {
        let n = panel.values[s].len();
        let shares = closures.shares(panel, s, h);
        for step in 0..h {
            if shares[n + step] >= FULLY_CLOSED {
                f.mean[s * h + step] = 0.0;
                if let Some(p) = f.point.get_mut(s * h + step) {
                    *p = 0.0;
                }
                f.quantiles[(s * h + step) * q..(s * h + step + 1) * q].fill(0.0);
            }
        }
    }
}

impl Forecaster for Closed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        self.inner.fit(&prepared(panel))
    }

    fn fit_reusing(&mut self, panel: &Panel, reuse: &Reuse<'_>) -> Result<Option<FitReport>> {
        self.inner.fit_reusing(&prepared(panel), reuse)
    }

    fn warm_starts(&self) -> bool {
        self.inner.warm_starts()
    }

    fn fit_warm(&mut self, panel: &Panel, parent: &[u8], epochs: usize) -> Result<Warm> {
        self.inner.fit_warm(&prepared(panel), parent, epochs)
    }

    fn warm_start_does(&self, epochs: usize) -> String {
        self.inner.warm_start_does(epochs)
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        let mut f = self.inner.predict(&prepared(panel), horizon, levels)?;
        zero_closed(panel, &mut f);
        Ok(f)
    }

    fn save(&self) -> Result<Vec<u8>> {
        self.inner.save()
    }

    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        self.inner.load(bytes)
    }

    fn card(&self) -> Option<serde_json::Value> {
        self.inner.card()
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
    use super::*;
    use crate::models::baseline::SeasonalNaive;
    use crate::panel::{Closures, SeriesKey};
    use arrow::array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};
    use chrono::NaiveDate;
    use std::sync::Arc;

    #[test]
    fn closed_days_are_forecast_zero_and_not_learnt_as_low() {
        // Four weeks of 10 a day, the last Sunday closed (0 sold); the next Sunday is open, the
        // Wednesday after it closed.
        let end = NaiveDate::from_ymd_opt(2026, 1, 4).unwrap(); // a Sunday
        let mut y = vec![10.0f32; 28];
        y[27] = 0.0;
        let day = |d: NaiveDate| (d - NaiveDate::default()).num_days() as i32;
        let closed = [day(end), day(end + chrono::Duration::days(3))];
        let batch = RecordBatch::try_from_iter(vec![
            ("location_id", Arc::new(StringArray::from(vec![Some("s"), Some("s")])) as ArrayRef),
            ("item_id", Arc::new(StringArray::from(vec![None::<&str>, None])) as ArrayRef),
            ("date", Arc::new(Date32Array::from(closed.to_vec())) as ArrayRef),
            ("closed_share", Arc::new(Float64Array::from(vec![1.0, 1.0])) as ArrayRef),
        ])
        .unwrap();
        let panel = Panel::new(
            vec![SeriesKey { item_id: "a".into(), location_id: "s".into() }],
            vec![y],
            end,
            Frequency::Daily,
        )
        .with_closures(Some(Closures::from_batches(&[batch]).unwrap()));
        let mut m = Closed::new(Box::new(SeasonalNaive::new(7)));
        m.fit(&panel).unwrap();
        let f = m.predict(&panel, 7, &[0.1, 0.5, 0.9]).unwrap();
        // Wednesday (step 3) closed: exactly 0 everywhere.
        assert_eq!(f.mean_at(0, 2), 0.0);
        assert!((0..3).all(|q| f.quantile_at(0, 2, q) == 0.0));
        // Next Sunday (step 7) open: forecast from the open Sundays, not the closed one.
        assert!((f.mean_at(0, 6) - 10.0).abs() < 1e-4, "{}", f.mean_at(0, 6));
        // Without closures the same model forecasts 0 for Sunday.
        let bare = Panel { closures: None, ..panel.clone() };
        let f = SeasonalNaive::new(7).predict(&bare, 7, &[0.5]).unwrap();
        assert_eq!(f.mean_at(0, 6), 0.0);
    }
}
