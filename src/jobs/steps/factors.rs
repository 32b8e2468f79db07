//! The `factors` step: what moves demand (and, when enabled, factor-group importance), written
//! to `factors/run_date=…/`.

use super::{Rows, StepCx};
use crate::error::Result;

/// Runs the step; the rows it read and wrote.
pub(super) async fn run(cx: StepCx<'_>) -> Result<Rows> {
    let StepCx { env, ctx, run_id, run_date, params, report, .. } = cx;
    let s = &env.settings;
    let clock = env.clock.as_ref();
    let (mut analysis, observations) =
        crate::factors::analyze_counted(ctx, Some(&env.lake), params, &s.factors).await?;
    if s.factors.importance.enabled {
        // After the analysis: measuring materialises the features of earlier cutoffs.
        let opts = s.importance_options();
        let imp =
            crate::factors::importance::run(ctx, &env.lake, &s.backtest_config(), &opts, params.cutoff, run_id, clock)
                .await?;
        analysis.importance = Some(imp);
    }
    let m = crate::factors::write(&env.lake, &analysis, observations, params, run_date, run_id, clock).await?;
    let rows = (Some(m.observations), Some(m.rows));
    report.summary.factors = Some(m);
    Ok(rows)
}
