//! The `plan` step: reorder points and orders from the published forecasts (`replenishment/`).

use super::{Rows, StepCx};
use crate::error::Result;
use crate::plan::replenish;

/// Runs the step; the rows it read and wrote.
pub(super) async fn run(cx: StepCx<'_>) -> Result<Rows> {
    let StepCx { env, ctx, run_id, run_date, report, .. } = cx;
    let s = &env.settings;
    let clock = env.clock.as_ref();
    let m = replenish::plan(ctx, &env.lake, &s.plan, s.publish.jump_threshold, run_id, run_date, clock).await?;
    let rows = m.rows;
    report.summary.replenishment = Some(m);
    Ok((None, Some(rows)))
}
