//! The median ensemble (`median`): the median of its members' forecasts, step by step and
//! quantile by quantile.
//!
//! Robust to one member going astray, but every member counts alike: a weak model pulls it
//! towards itself as much as the best one does. The learned [`super::ensemble`] weighs them by
//! their accuracy on validation forecasts instead. Members are the other configured models (or
//! `ensemble-members` in settings), fitted on the same panel.

use serde::{Deserialize, Serialize};

use super::{FitReport, Forecast, Forecaster, Reuse};
use crate::error::{Error, Result};
use crate::panel::Panel;

/// The median ensemble.
#[derive(Debug)]
pub struct Median {
    members: Vec<Box<dyn Forecaster>>,
}

#[derive(Serialize, Deserialize)]
struct Saved {
    members: Vec<(String, Vec<u8>)>,
}

/// The saved state of an ensemble whose members are `members`, already fitted: what
/// [`Forecaster::save`] of an ensemble fitted on the same panel gives, without fitting them again.
pub fn state_of(members: &[&dyn Forecaster]) -> Result<Vec<u8>> {
    let members = members.iter().map(|m| Ok((m.name().to_string(), m.save()?))).collect::<Result<Vec<_>>>()?;
    Ok(serde_json::to_vec(&Saved { members })?)
}

impl Median {
    /// An ensemble of `members` (at least one).
    pub fn new(members: Vec<Box<dyn Forecaster>>) -> Result<Self> {
        if members.is_empty() {
            return Err(Error::data("an ensemble needs at least one member"));
        }
        Ok(Self { members })
    }
}

fn median(xs: &mut [f32]) -> f32 {
    xs.sort_by(f32::total_cmp);
    let n = xs.len();
    if n % 2 == 1 { xs[n / 2] } else { (xs[n / 2 - 1] + xs[n / 2]) / 2.0 }
}

/// The ensemble's forecast from its members' forecasts (each of `series` × `horizon` at `levels`):
/// the median per step and per quantile. Callers that already hold the members' forecasts (a
/// backtest window) combine them without fitting the members again.
pub fn combine(forecasts: &[&Forecast], series: usize, horizon: usize, levels: &[f64]) -> Forecast {
    let mut out = Forecast::zeros("median", series, horizon, levels);
    let mut buf = vec![0.0f32; forecasts.len()];
    let mut qs = vec![0.0f32; levels.len()];
    for s in 0..series {
        for h in 0..horizon {
            for (b, f) in buf.iter_mut().zip(forecasts) {
                *b = f.mean_at(s, h);
            }
            let mean = median(&mut buf);
            for (k, q) in qs.iter_mut().enumerate() {
                for (b, f) in buf.iter_mut().zip(forecasts) {
                    *b = f.quantile_at(s, h, k);
                }
                *q = median(&mut buf);
            }
            out.set(s, h, mean, &mut qs);
        }
    }
    out
}

impl Forecaster for Median {
    fn name(&self) -> &str {
        "median"
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        for m in &mut self.members {
            m.fit(panel)?;
        }
        Ok(FitReport::new(self.name(), panel))
    }

    fn fit_reusing(&mut self, panel: &Panel, reuse: &Reuse<'_>) -> Result<Option<FitReport>> {
        let members = self
            .members
            .iter()
            .map(|m| reuse.fitted.iter().find(|f| f.name() == m.name()).copied())
            .collect::<Option<Vec<&dyn Forecaster>>>();
        let Some(members) = members else { return Ok(None) };
        self.load(&state_of(&members)?)?;
        Ok(Some(FitReport::new(self.name(), panel)))
    }

    fn needs_covariates(&self) -> bool {
        self.members.iter().any(|m| m.needs_covariates())
    }

    fn reads_calendar(&self) -> bool {
        self.members.iter().any(|m| m.reads_calendar())
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        let forecasts = self.members.iter().map(|m| m.predict(panel, horizon, levels)).collect::<Result<Vec<_>>>()?;
        Ok(combine(&forecasts.iter().collect::<Vec<_>>(), panel.len(), horizon, levels))
    }

    fn save(&self) -> Result<Vec<u8>> {
        state_of(&self.members.iter().map(|m| m.as_ref()).collect::<Vec<_>>())
    }

    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        let saved: Saved = serde_json::from_slice(bytes)?;
        for (name, state) in saved.members {
            let m = self.members.iter_mut().find(|m| m.name() == name).ok_or_else(|| {
                Error::data(format!("the stored median ensemble has a `{name}` member this one lacks"))
            })?;
            m.load(&state)?;
        }
        Ok(())
    }
}
