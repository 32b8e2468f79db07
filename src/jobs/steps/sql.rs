//! The `sql` step: a job's read-only SQL file, its result optionally written as a dataset.

use super::{Rows, StepCx};
use crate::error::{Error, Result};

/// Runs the step; the rows it read and wrote.
pub(super) async fn run(cx: StepCx<'_>) -> Result<Rows> {
    let StepCx { env, job, step, ctx, run_id, run_date, params, report, .. } = cx;
    let sql = step.sql.as_ref().ok_or_else(|| Error::data(format!("sql step `{}` has no file", step.name)))?;
    let m = crate::jobs::sql::run(ctx, &env.lake, job, sql, params, run_date, run_id, env.clock.now()).await?;
    report.summary.outputs.extend(m.location);
    Ok((None, Some(m.rows)))
}
