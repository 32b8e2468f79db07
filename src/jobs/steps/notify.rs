//! The `notify` step: the run's manifests POSTed to the configured webhooks.

use super::{Rows, StepCx};
use crate::error::{Error, Result};
use crate::lake::{dataset, layout};
use crate::plan::replenish;
use crate::publish::notify;
use crate::publish::{self};

/// Runs the step; the rows it read and wrote.
pub(super) async fn run(cx: StepCx<'_>) -> Result<Rows> {
    let StepCx { env, run_id, run_date, report, .. } = cx;
    let s = &env.settings;
    let fdir = layout::forecasts(run_date);
    let forecasts = dataset::read_manifest(&env.lake, &fdir)
        .await?
        .ok_or_else(|| Error::data(format!("notify: no forecasts are published for {run_date}")))?;
    let mut sets = vec![(publish::DATASET, env.lake.folder_url(&fdir), serde_json::to_value(&forecasts)?)];
    let rdir = layout::replenishment(run_date);
    if let Some(r) = dataset::read_manifest(&env.lake, &rdir).await? {
        sets.push((replenish::DATASET, env.lake.folder_url(&rdir), serde_json::to_value(&r)?));
    }
    let body = notify::payload(run_id, run_date, env.lake.root().as_str(), &sets);
    let m = notify::notify(&env.lake, &s.webhooks, &env.secrets, &body, run_id, run_date, env.clock.as_ref()).await?;
    let rows = (Some((m.delivered + m.pending) as u64), Some(m.delivered as u64));
    report.summary.notifications = Some(m);
    Ok(rows)
}
