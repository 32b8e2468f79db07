//! Shadow forecasts: every configured model's forecast of a run date, kept beside the published one.
//!
//! The published forecast gives each series its segment champion's numbers; the challengers'
//! forecasts would be lost with the run. `shadow/run_date=YYYY-MM-DD/` keeps them all, in the
//! forecast contract's columns ([`super::schema`]; `model` names the model of each row, and
//! `model_version` is the run), so that [`crate::evaluate::tracking`] can score the champion and
//! every challenger on the same actuals as they arrive. Written like any dataset (files, then the
//! manifest); not a publication: no `_latest.json`, no CSV copy, no webhook.

use serde::Serialize;
use tracing::{info, instrument};

use super::ContractRows;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::lake::dataset::DatasetWriter;
use crate::lake::{Lake, layout};
use crate::models::Forecast;
use crate::panel::Panel;

/// The dataset name (its root folder).
pub const DATASET: &str = "shadow";

/// What writing the shadow forecasts wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ShadowMetrics {
    /// Rows written (models × series × horizon).
    pub rows: u64,
    /// The models kept.
    pub models: Vec<String>,
    /// Where the dataset lives.
    pub location: String,
}

/// Writes every forecast of a run (one per configured model) to `shadow/run_date=…/`.
#[instrument(skip_all, fields(run_id = run_id, run_date = %run_date, models = forecasts.len()))]
pub async fn write(
    lake: &Lake,
    run_id: &str,
    run_date: chrono::NaiveDate,
    cutoff: chrono::NaiveDate,
    panel: &Panel,
    forecasts: &[Forecast],
    clock: &dyn Clock,
) -> Result<ShadowMetrics> {
    let first = forecasts.first().ok_or_else(|| Error::data("no forecasts to keep as shadows"))?;
    for f in forecasts {
        if f.levels != first.levels || f.horizon != first.horizon || f.series() != panel.len() {
            return Err(Error::data(format!(
                "shadow forecasts: {} has {} series × {} steps at levels {:?}, {} has {} × {} at {:?}",
                f.model,
                f.series(),
                f.horizon,
                f.levels,
                first.model,
                first.series(),
                first.horizon,
                first.levels
            )));
        }
    }
    let dir = layout::shadow(run_date);
    let mut writer = DatasetWriter::new(lake, dir.clone(), DATASET, run_id, super::schema(&first.levels));
    for f in forecasts {
        for batch in ContractRows::new(panel, f, &[], run_id, run_id) {
            writer.write(batch?).await?;
        }
    }
    let models: Vec<String> = forecasts.iter().map(|f| f.model.clone()).collect();
    let mut meta = serde_json::Map::new();
    meta.insert("run_id".into(), run_id.into());
    meta.insert("run_date".into(), run_date.to_string().into());
    meta.insert("cutoff".into(), cutoff.to_string().into());
    meta.insert("frequency".into(), panel.frequency.as_str().into());
    meta.insert("horizon".into(), first.horizon.into());
    meta.insert("quantiles".into(), serde_json::json!(first.levels));
    meta.insert("models".into(), serde_json::json!(models));
    let manifest = writer.commit(clock.now(), meta).await?;
    info!(rows = manifest.row_count, "shadow forecasts kept");
    Ok(ShadowMetrics { rows: manifest.row_count, models, location: lake.display(&dir) })
}
