//! The decomposition of one series' forecast by the factor model: for each period of the
//! horizon, the level (with trend) times one multiplier per driver (weekly, yearly, events,
//! promotion, own price, competitor price).
//!
//! Each multiplier is `exp(Σ β·(x − x̄))` over the regressors of the driver, `x̄` being the
//! series' mean over the fitted history, so a multiplier of 1 means "as usual for this series";
//! the means join the level. The product is the factor model's forecast of mean demand.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::data::Observations;
use super::estimates::{CategoryModel, regressor};
use super::groups::LEVEL;
use crate::error::{Error, Result};

/// One period of the decomposition.
#[derive(Debug, Clone, Serialize)]
pub struct ExplainRow {
    /// The period.
    pub date: NaiveDate,
    /// Level with trend, in units.
    pub level: f64,
    /// Multiplier per driver (every driver but `level_trend`).
    pub multipliers: BTreeMap<String, f64>,
    /// The model's mean demand: level × every multiplier.
    pub forecast: f64,
}

/// Decomposes the horizon rows `h` of one series with the model of its category; `groups` are
/// the factor groups of the analysis (`level_trend` first).
pub fn decompose(
    model: &CategoryModel,
    groups: &[String],
    item: &str,
    location: &str,
    h: &Observations,
) -> Result<Vec<ExplainRow>> {
    let terms = model.series.get(&format!("{item}|{location}")).ok_or_else(|| {
        Error::data(format!(
            "explain: series {item} at {location} was not in the fit of category {} (too short, no sales, or \
             no prices)",
            model.category
        ))
    })?;
    let base: f64 = model.beta.iter().zip(&terms.means).map(|(b, m)| b * m).sum();
    let mut out = Vec::new();
    for i in 0..h.len() {
        let t = (h.day[i] - terms.first_day) as f64 / 365.25;
        let level = (terms.level + terms.trend * t + base).exp();
        let mut logs: BTreeMap<String, f64> =
            groups.iter().filter(|g| g.as_str() != LEVEL).map(|g| (g.clone(), 0.0)).collect();
        for (j, name) in model.names.iter().enumerate() {
            // A regressor undefined over the horizon (no price, no competitor) is taken as usual.
            let x = regressor(name, h, i).unwrap_or(terms.means[j]);
            let group = &model.groups[j];
            let term = model.beta[j] * (x - terms.means[j]);
            if group == LEVEL {
                // A regressor in no group moves the level.
                logs.entry(LEVEL.to_string()).or_default();
            }
            *logs.entry(group.clone()).or_default() += term;
        }
        let level = level * logs.remove(LEVEL).unwrap_or(0.0).exp();
        let multipliers: BTreeMap<String, f64> = logs.into_iter().map(|(k, v)| (k, v.exp())).collect();
        let forecast = level * multipliers.values().product::<f64>();
        let date = crate::days::date(h.day[i], &format!("explain: a horizon day of {item} at {location}"))?;
        out.push(ExplainRow { date, level, multipliers, forecast });
    }
    Ok(out)
}
