//! The `report` step: the run report (HTML, Markdown, JSON) written next to the run.

use super::{Rows, StepCx};
use crate::error::Result;

/// Runs the step; the rows it read and wrote.
pub(super) async fn run(cx: StepCx<'_>) -> Result<Rows> {
    let StepCx { env, job, run_id, run_date, report, .. } = cx;
    let s = &env.settings;
    let source =
        crate::report::Source { run_id: run_id.to_string(), job: Some(job.name.clone()), run_date: Some(run_date) };
    let (_, files) = crate::report::run(&env.lake, s, &source, env.clock.as_ref()).await?;
    report.summary.report = Some(files.location);
    Ok((None, None))
}
