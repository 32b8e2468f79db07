//! Writes a report: to the lake next to the run, and optionally to a local folder.
//!
//! In the lake, `reports/run_id=<id>/` gets `report.html`, `report.json` and `report.md`, each
//! one atomic `put`, then `_manifest.json` naming the three with their sizes and SHA-256, last,
//! as every dataset of the lake: a reader that follows the manifest sees three files of the same
//! report. Writing a run's report again replaces them.

use std::path::{Path as LocalPath, PathBuf};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Report, html, markdown};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::lake::{Lake, layout};

/// Version of the report manifest.
pub const MANIFEST_VERSION: u32 = 1;

/// The three renderings of a report: (file name, media type, bytes).
pub fn render(report: &Report) -> Result<Vec<(&'static str, &'static str, Bytes)>> {
    Ok(vec![
        ("report.html", "text/html; charset=utf-8", Bytes::from(html::render(report))),
        ("report.json", "application/json", Bytes::from(serde_json::to_vec_pretty(report)?)),
        ("report.md", "text/markdown; charset=utf-8", Bytes::from(markdown::render(report))),
    ])
}

/// One file of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFile {
    /// File name in the report folder.
    pub path: String,
    /// Media type.
    pub media_type: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Hex SHA-256 of the bytes.
    pub sha256: String,
}

/// The manifest of a report folder, written last.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReportManifest {
    /// Manifest format version.
    pub schema_version: u32,
    /// Always `reports`.
    pub dataset: String,
    /// The run reported on.
    pub run_id: String,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// The files.
    pub files: Vec<ReportFile>,
}

/// Where a report was written.
#[derive(Debug, Clone, Serialize)]
pub struct ReportFiles {
    /// The lake folder (a local path for local lakes).
    pub location: String,
    /// The files, as written.
    pub files: Vec<ReportFile>,
}

/// Writes the report to `reports/run_id=<id>/` in the lake, manifest last.
pub async fn write(lake: &Lake, report: &Report, clock: &dyn Clock) -> Result<ReportFiles> {
    let dir = layout::report(&report.run.run_id);
    let mut files = Vec::new();
    for (name, media, bytes) in render(report)? {
        files.push(ReportFile {
            path: name.to_string(),
            media_type: media.to_string(),
            bytes: bytes.len() as u64,
            sha256: hex::encode(Sha256::digest(&bytes)),
        });
        lake.put(&dir.clone().join(name), bytes).await?;
    }
    let manifest = ReportManifest {
        schema_version: MANIFEST_VERSION,
        dataset: "reports".into(),
        run_id: report.run.run_id.clone(),
        created_at: clock.now(),
        files: files.clone(),
    };
    lake.put(&layout::manifest(&dir), serde_json::to_vec_pretty(&manifest)?.into()).await?;
    Ok(ReportFiles { location: lake.display(&dir), files })
}

/// Reads a report's manifest, or `None` when the run has no report.
pub async fn read_manifest(lake: &Lake, run_id: &str) -> Result<Option<ReportManifest>> {
    let path = layout::manifest(&layout::report(run_id));
    match lake.get_opt(&path).await? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Dataset { path: lake.display(&path), message: e.to_string() }),
    }
}

/// Writes the three files into a local folder (created if needed); returns their paths.
pub fn write_local(dir: &LocalPath, report: &Report) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut out = Vec::new();
    for (name, _, bytes) in render(report)? {
        let path = dir.join(name);
        // Write beside, then rename: a reader never sees half a file.
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, &bytes)?;
        std::fs::rename(&tmp, &path)?;
        out.push(path);
    }
    Ok(out)
}
