//! The `predict` step: every fitted model forecasts the horizon (a job without a train step loads
//! the latest stored version of each).

use std::sync::Arc;

use tracing::info;

use super::{Rows, StepCx, build_model, panel_as_of, use_model};
use crate::error::Result;
use crate::models::store;

/// Runs the step; the rows it read and wrote.
pub(super) async fn run(cx: StepCx<'_>) -> Result<Rows> {
    let StepCx { env, job: _, step: _, params, state, report, .. } = cx;
    let s = &env.settings;
    if state.models.is_empty() {
        // No train step in this job: use the latest trained version of each model.
        for name in &s.models {
            let mut model = build_model(env, name, &env.settings.models_config()).await?;
            let card = store::load_latest(&env.lake, model.as_mut()).await?;
            info!(model = %name, version = %card.version, "loaded from the lake");
            use_model(report, name, &card.version);
            state.models.push(model);
        }
    }
    let panel = match state.panel.clone() {
        Some(p) => p,
        None => Arc::new(panel_as_of(env, params, &state.models).await?),
    };
    report.summary.series = panel.len();
    state.panel = Some(Arc::clone(&panel));
    let mut rows = 0;
    state.forecasts.clear();
    for model in std::mem::take(&mut state.models) {
        let p = Arc::clone(&panel);
        let (h, levels) = (s.horizon, s.quantiles.clone());
        let (model, f) = crate::blocking::run(move || {
            let f = model.predict(&p, h, &levels);
            (model, f)
        })
        .await?;
        let f = f?;
        rows += f.mean.len() as u64;
        state.forecasts.push(f);
        state.models.push(model);
    }
    Ok((Some(panel.observations() as u64), Some(rows)))
}
