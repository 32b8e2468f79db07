//! The `features` step: every feature table materialised as of the run's cutoff.

use super::{Rows, StepCx};
use crate::error::Result;
use crate::features::{self};

/// Runs the step; the rows it read and wrote.
pub(super) async fn run(cx: StepCx<'_>) -> Result<Rows> {
    let StepCx { env, ctx, run_id, params, report, .. } = cx;
    let metrics = features::materialize_all(ctx, &env.lake, params, run_id, env.clock.as_ref()).await?;
    let rows = metrics.iter().map(|m| m.rows).sum();
    report.summary.features.extend(metrics);
    Ok((None, Some(rows)))
}
