//! The `ingest` step: one ingestion source pulled into its raw table.

use super::{Rows, StepCx};
use crate::error::{Error, Result};

/// Runs the step; the rows it read and wrote.
pub(super) async fn run(cx: StepCx<'_>) -> Result<Rows> {
    let StepCx { env, step, ctx, report, .. } = cx;
    let s = &env.settings;
    let name = step.source.as_deref().ok_or_else(|| Error::data("an ingest step needs `source`"))?;
    let source = s.sources.get(name).ok_or_else(|| Error::Source {
        name: name.to_string(),
        message: "no [sources.NAME] table of this name in settings".into(),
    })?;
    let r = crate::ingest::pull::ingest(&env.lake, name, source, &env.secrets, env.clock.as_ref()).await?;
    // A table that had no files when the run opened the catalog is registered empty: read it again.
    let absent = report.inputs.as_ref().and_then(|c| c.get(&r.table)).is_some_and(|t| !t.present);
    if absent && r.rows_written > 0 {
        let t = crate::catalog::refresh_table(ctx, &env.lake, &r.table).await?;
        if let Some(entry) = report.inputs.as_mut().and_then(|c| c.tables.iter_mut().find(|e| e.name == t.name)) {
            *entry = t;
        }
    }
    let rows = (Some(r.rows_read), Some(r.rows_written));
    report.summary.ingested.push(r);
    Ok(rows)
}
