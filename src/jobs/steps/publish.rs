//! The `publish` step: each series gets its segment champion's forecast, its quantiles scaled by
//! the champion's calibration in the registry, written as the forecasts dataset with its manifest,
//! and every model's forecast (its own quantiles) as a shadow.

use std::collections::HashMap;

use super::{Rows, StepCx};
use crate::error::{Error, Result};
use crate::evaluate::champion::{self, Champion, Registry, SegmentBy};
use crate::models::Forecast;
use crate::models::baseline::classify::classify;
use crate::publish::{self, ForecastRelease, PublishMetrics};

/// Runs the step; the rows it read and wrote.
pub(super) async fn run(cx: StepCx<'_>) -> Result<Rows> {
    let StepCx { env, step: _, run_id, run_date, params, state, report, .. } = cx;
    let s = &env.settings;
    let panel = state.panel.clone().ok_or_else(|| Error::data("publish needs a train step before it"))?;
    let first = state.forecasts.first().ok_or_else(|| Error::data("publish needs a predict step before it"))?;
    // Each series gets the forecast of its segment's champion (when it was forecast).
    let registry = Registry::read(&env.lake).await?;
    let by_name: HashMap<&str, &Forecast> = state.forecasts.iter().map(|f| (f.model.as_str(), f)).collect();
    let stand_in = &state.forecasts[champion::stand_in(state.forecasts.iter().map(|f| f.model.as_str())).unwrap_or(0)];
    let mut combined = first.clone();
    let mut series_models = Vec::with_capacity(panel.len());
    for (i, y) in panel.values.iter().enumerate() {
        let segment = match s.champion.segment_by {
            SegmentBy::None => champion::ALL.to_string(),
            SegmentBy::DemandClass => classify(y, 2 * s.season_length).as_str().to_string(),
        };
        // A champion left out of this run (it could not fit): the whole lake's, else the
        // stand-in (its own quantiles), which no champion yet also publishes.
        let (chosen, factors) = forecast_of(&by_name, registry.champion_in(&segment))
            .or_else(|| forecast_of(&by_name, registry.segments.get(champion::ALL)))
            .unwrap_or((stand_in, &[]));
        combined.copy_series(i, chosen);
        // Factors a kept decision holds are not applied once the settings turn calibration off.
        if s.champion.calibrate {
            combined.rescale_series(i, factors);
        }
        series_models.push(chosen.model.clone());
    }
    let forecast = &combined;
    // The manifest lists the factors that were applied.
    let mut champions = registry.segments.clone();
    if !s.champion.calibrate {
        champions.values_mut().for_each(|c| c.calibration.clear());
    }
    let features: Vec<_> = report
        .summary
        .features
        .iter()
        .map(|f| serde_json::json!({ "name": f.name, "cutoff": f.cutoff, "rows": f.rows, "location": f.location }))
        .collect();
    let quality =
        report.quality.as_ref().map(|q| serde_json::json!({ "excluded_rows": q.excluded_rows, "checks": q.checks }));
    let inputs = serde_json::json!({ "tables": report.inputs, "features": features, "quality": quality });
    let release = ForecastRelease {
        run_id,
        run_date,
        cutoff: params.cutoff,
        panel: &panel,
        forecast,
        model_version: run_id,
        series_models: &series_models,
        inputs,
        champions: serde_json::to_value(&champions)?,
        settings: &s.publish,
    };
    let m: PublishMetrics = publish::publish_forecasts(&env.lake, &release, env.clock.as_ref()).await?;
    if s.tracking.shadow {
        // Every model's forecast, so challengers are tracked on the same actuals.
        let clock = env.clock.as_ref();
        let kept =
            publish::shadow::write(&env.lake, run_id, run_date, params.cutoff, &panel, &state.forecasts, clock).await?;
        report.summary.shadow = Some(kept);
    }
    report.summary.forecast_rows = m.rows;
    let mut used: Vec<&str> = series_models.iter().map(String::as_str).collect();
    used.sort_unstable();
    used.dedup();
    report.summary.model = Some(used.join(", "));
    report.summary.output = Some(m.location.clone());
    report.summary.manifest = Some(m.manifest.clone());
    report.summary.stability = Some(m.stability);
    Ok((Some(forecast.mean.len() as u64), Some(m.rows)))
}

/// A champion's forecast in this run, with its calibration; `None` when it was not forecast.
fn forecast_of<'a>(
    by_name: &HashMap<&str, &'a Forecast>,
    champion: Option<&'a Champion>,
) -> Option<(&'a Forecast, &'a [(f64, f64)])> {
    champion.and_then(|c| by_name.get(c.model.as_str()).map(|f| (*f, c.calibration.as_slice())))
}
