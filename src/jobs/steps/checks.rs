//! The `checks` step: the data-quality checks of the run date (bad rows quarantined, a blocking
//! failure stops the run), recorded in the run's `quality`.

use super::{Rows, StepCx};
use crate::error::Result;
use crate::quality;

/// Runs the step; the rows it read and wrote.
pub(super) async fn run(cx: StepCx<'_>) -> Result<Rows> {
    let StepCx { env, ctx, run_id, run_date, params, report, .. } = cx;
    let s = &env.settings;
    let q = quality::run(ctx, &env.lake, &s.quality, run_date, params.cutoff, run_id, env.clock.as_ref()).await?;
    let rows = (Some(q.sales_rows), Some(q.excluded_rows));
    report.quality = Some(q);
    Ok(rows)
}
