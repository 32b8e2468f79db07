//! `shelfcast vacuum`: deletes the dataset files whose grace period is over, without waiting for
//! the next commit to their folder.
//!
//! In every folder whose `_manifest.json` is a dataset manifest, it deletes the files the
//! manifest lists as retired more than [`Lake::grace`] ago, and the files no manifest names
//! (a crashed writer's) last modified more than the grace period ago. Files the manifest names,
//! files retired within the grace period, and folders without a dataset manifest are left
//! alone, so vacuuming while runs read and write is safe.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use object_store::ObjectMeta;
use object_store::path::Path;
use serde::Serialize;
use tracing::{debug, info};

use super::dataset::Manifest;
use super::{Lake, layout};
use crate::error::Result;

/// What a vacuum did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VacuumReport {
    /// Dataset folders looked at.
    pub datasets: usize,
    /// Files deleted, lake-relative.
    pub deleted: Vec<String>,
    /// Their bytes.
    pub bytes: u64,
}

/// Deletes, in every dataset of the lake, what is past the grace period at `now`.
#[tracing::instrument(skip_all, fields(lake = %lake))]
pub async fn vacuum(lake: &Lake, now: DateTime<Utc>) -> Result<VacuumReport> {
    let grace = chrono::Duration::from_std(lake.grace()).unwrap_or(chrono::Duration::MAX);
    let mut folders: BTreeMap<Path, Vec<ObjectMeta>> = BTreeMap::new();
    for obj in lake.list(&Path::from("")).await? {
        let parts: Vec<_> = obj.location.parts().collect();
        let dir: Path = parts[..parts.len().saturating_sub(1)].iter().cloned().collect();
        folders.entry(dir).or_default().push(obj);
    }
    let mut report = VacuumReport::default();
    for (dir, files) in folders {
        if !files.iter().any(|f| f.location.filename() == Some(layout::MANIFEST)) {
            continue;
        }
        let Some(bytes) = lake.get_opt(&layout::manifest(&dir)).await? else { continue };
        let Ok(manifest) = serde_json::from_slice::<Manifest>(&bytes) else {
            debug!(folder = %dir, "not a dataset manifest: left alone");
            continue;
        };
        report.datasets += 1;
        let live = manifest.live();
        for f in files {
            let name = f.location.filename().unwrap_or_default();
            if name == layout::MANIFEST || live.iter().any(|l| l == name) {
                continue;
            }
            let past = match manifest.retired.iter().find(|r| r.path == name) {
                Some(r) => now.signed_duration_since(r.retired_at) >= grace,
                None => now.signed_duration_since(f.last_modified) >= grace,
            };
            if past {
                lake.delete(&f.location).await?;
                report.bytes += f.size;
                report.deleted.push(f.location.to_string());
            }
        }
    }
    info!(datasets = report.datasets, files = report.deleted.len(), bytes = report.bytes, "vacuumed");
    Ok(report)
}
