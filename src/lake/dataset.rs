//! Atomic datasets: data files first, manifest last, replaced files kept for a grace period.
//!
//! A dataset is a folder of `part-<token>-<n>.parquet` files and one `_manifest.json` naming
//! exactly the files that belong to it, with row counts and SHA-256 checksums. Readers follow
//! the manifest, never a folder listing, so the previous version stays complete and readable
//! until the new manifest replaces it in one atomic `put`.
//!
//! Several writers of one folder (two runs of one date, `features` started twice) cannot break
//! each other, because a writer deletes nothing that another may still need:
//!
//! - **Names unique per writer.** Every file a writer puts (parts, and copies such as
//!   `forecasts-<token>.csv`) carries its token, so no writer overwrites another's file; the
//!   manifest is the only object two writers both replace, and whichever lands last is the
//!   dataset.
//! - **Superseded files stay for the grace period** ([`Lake::grace`], setting
//!   `superseded-grace`, 1 h by default). The new manifest lists the files of the one it
//!   replaced under `retired`, with the time; a later commit to the folder, or `shelfcast
//!   vacuum`, deletes them once the grace period has passed. A reader that followed the old
//!   manifest (or `_latest.json`) a moment before the swap reads it whole.
//! - **Files no manifest names** (a crashed writer's, or one still writing) are deleted only
//!   when older than the grace period by the store's clock. A writer that needs longer than
//!   the grace period between its first file and its commit may find its files gone: it then
//!   fails naming the missing file, and commits nothing.
//! - **Compare-and-swap.** Where the store updates conditionally, the manifest is replaced only
//!   if it is still the one the writer read, so the files of a manifest that landed in between
//!   are retired, not orphaned (on other stores they are orphaned, which the age rule covers).

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Lake, Swap, layout};
use crate::error::{Error, Result};

/// Version of the manifest format.
pub const MANIFEST_VERSION: u32 = 1;

/// Rows buffered before a part file is written.
pub const DEFAULT_ROWS_PER_FILE: usize = 1 << 20;

/// One data file of a dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// File name, relative to the dataset folder.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// Hex SHA-256 of the file's bytes.
    pub sha256: String,
    /// What a copy is (`forecasts.csv`), when its file name carries the writer's token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A file of an earlier version, kept for readers until the grace period after `retired_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    /// File name, relative to the dataset folder.
    pub path: String,
    /// When a newer manifest stopped naming it (the commit's time).
    pub retired_at: DateTime<Utc>,
}

/// One column of a dataset's schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnEntry {
    /// Column name.
    pub name: String,
    /// Arrow data type, as Arrow prints it.
    pub data_type: String,
    /// Whether nulls may occur.
    pub nullable: bool,
}

/// The manifest of a dataset: written last, it is what makes the dataset visible.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub schema_version: u32,
    /// What the dataset is (`forecasts`, `features/target`, …).
    pub dataset: String,
    /// When it was committed (from the injected clock).
    pub created_at: DateTime<Utc>,
    /// Rows over all files.
    pub row_count: u64,
    /// Data files, in order.
    pub files: Vec<FileEntry>,
    /// Columns of every file.
    pub schema: Vec<ColumnEntry>,
    /// Files of earlier versions still kept for readers that followed an earlier manifest.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<Retired>,
    /// Dataset-specific fields (run id, inputs, model, …).
    #[serde(flatten)]
    pub meta: serde_json::Map<String, serde_json::Value>,
}

impl Manifest {
    /// The copies written beside the data files (`copies` in the manifest).
    pub fn copies(&self) -> Vec<FileEntry> {
        self.meta.get("copies").and_then(|c| serde_json::from_value(c.clone()).ok()).unwrap_or_default()
    }

    /// The copy `name` (`forecasts.csv`): its entry, whose `path` is the file to read.
    pub fn copy(&self, name: &str) -> Option<FileEntry> {
        self.copies().into_iter().find(|c| c.name.as_deref().unwrap_or(&c.path) == name)
    }

    /// Every file this version names: data files and copies.
    pub(crate) fn live(&self) -> Vec<String> {
        self.files.iter().map(|f| f.path.clone()).chain(self.copies().into_iter().map(|c| c.path)).collect()
    }
}

/// A copy's file name for a writer: `forecasts.csv` → `forecasts-<token>.csv`.
fn versioned(name: &str, token: &str) -> String {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => format!("{stem}-{token}.{ext}"),
        _ => format!("{name}-{token}"),
    }
}

/// Attempts at replacing a manifest that other writers keep replacing first.
const ATTEMPTS: usize = 8;

/// Writes one version of a dataset folder.
#[derive(Debug)]
pub struct DatasetWriter {
    lake: Lake,
    dir: Path,
    dataset: String,
    token: String,
    schema: SchemaRef,
    files: Vec<FileEntry>,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    rows_per_file: usize,
    copies: Vec<FileEntry>,
}

impl DatasetWriter {
    /// A writer for `dir`; `token` (e.g. the run id) starts this version's file names, which a
    /// random part makes unique to the writer.
    pub fn new(
        lake: &Lake,
        dir: Path,
        dataset: impl Into<String>,
        token: impl Into<String>,
        schema: SchemaRef,
    ) -> Self {
        Self {
            lake: lake.clone(),
            dir,
            dataset: dataset.into(),
            // The run's token plus a part of the writer's own: a step retried within one run
            // never overwrites a file the earlier attempt may have committed.
            token: format!("{}-{:08x}", token.into(), rand::random::<u32>()),
            schema,
            files: Vec::new(),
            pending: Vec::new(),
            pending_rows: 0,
            rows_per_file: DEFAULT_ROWS_PER_FILE,
            copies: Vec::new(),
        }
    }

    /// Sets how many rows go in one part file.
    pub fn with_rows_per_file(mut self, rows: usize) -> Self {
        self.rows_per_file = rows.max(1);
        self
    }

    /// Adds a batch; a part file is written whenever enough rows are buffered.
    pub async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if batch.schema().fields() != self.schema.fields() {
            return Err(Error::Dataset {
                path: self.lake.display(&self.dir),
                message: format!("batch schema {:?} differs from the dataset's {:?}", batch.schema(), self.schema),
            });
        }
        self.pending_rows += batch.num_rows();
        self.pending.push(batch);
        if self.pending_rows >= self.rows_per_file {
            self.flush().await?;
        }
        Ok(())
    }

    /// Adds every batch of a stream.
    pub async fn write_stream(
        &mut self,
        mut stream: datafusion::physical_plan::SendableRecordBatchStream,
    ) -> Result<()> {
        while let Some(batch) = stream.next().await {
            self.write(batch?).await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batches = std::mem::take(&mut self.pending);
        let rows = std::mem::take(&mut self.pending_rows) as u64;
        let name = format!("part-{}-{:05}.parquet", self.token, self.files.len());
        let bytes = super::parquet::encode(&self.schema, &batches)?;
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        self.lake.put(&self.dir.clone().join(name.as_str()), bytes).await?;
        self.files.push(FileEntry { path: name, rows, bytes: size, sha256, name: None });
        Ok(())
    }

    /// Writes another rendering of the rows (a CSV copy) into the folder, as `name` with the
    /// writer's token in it (`forecasts.csv` → `forecasts-<token>.csv`), so a failed or
    /// concurrent writer never changes the copy a published manifest names. It is listed in the
    /// manifest under `copies` (file, name, rows, bytes, SHA-256), not under `files`; find it
    /// with [`Manifest::copy`].
    pub async fn attach(&mut self, name: &str, rows: u64, bytes: bytes::Bytes) -> Result<()> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        let path = versioned(name, &self.token);
        self.lake.put(&self.dir.clone().join(path.as_str()), bytes).await?;
        self.copies.retain(|c| c.name.as_deref() != Some(name));
        self.copies.push(FileEntry { path, rows, bytes: size, sha256, name: Some(name.to_string()) });
        Ok(())
    }

    /// Writes the remaining rows, then the manifest (retiring the files of the version it
    /// replaces), then deletes what is past the grace period.
    #[tracing::instrument(skip_all, fields(dataset = %self.dir))]
    pub async fn commit(
        mut self,
        created_at: DateTime<Utc>,
        meta: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Manifest> {
        self.flush().await?;
        let mut meta = meta;
        if !self.copies.is_empty() {
            meta.insert("copies".into(), serde_json::to_value(&self.copies)?);
        }
        let mut manifest = Manifest {
            schema_version: MANIFEST_VERSION,
            dataset: self.dataset.clone(),
            created_at,
            row_count: self.files.iter().map(|f| f.rows).sum(),
            files: self.files.clone(),
            schema: self
                .schema
                .fields()
                .iter()
                .map(|f| ColumnEntry {
                    name: f.name().clone(),
                    data_type: f.data_type().to_string(),
                    nullable: f.is_nullable(),
                })
                .collect(),
            retired: Vec::new(),
            meta,
        };
        // Every file about to be named must still be there: a writer slower than the grace
        // period may have had its files removed as a crashed writer's.
        for f in manifest.files.iter().chain(&self.copies) {
            let path = self.dir.clone().join(f.path.as_str());
            if !self.lake.exists(&path).await? {
                return Err(Error::Dataset {
                    path: self.lake.display(&path),
                    message: format!(
                        "written by this commit but gone before its manifest (removed as an unnamed file after the \
                         grace period of {}?); nothing was committed",
                        humantime::format_duration(self.lake.grace())
                    ),
                });
            }
        }
        let path = layout::manifest(&self.dir);
        let grace = chrono::Duration::from_std(self.lake.grace()).unwrap_or(chrono::Duration::MAX);
        let mut expired = Vec::new();
        for attempt in 1..=ATTEMPTS {
            let previous = self.lake.get_versioned(&path).await?;
            let before = previous.as_ref().and_then(|(b, _)| serde_json::from_slice::<Manifest>(b).ok());
            (manifest.retired, expired) = retire(before.as_ref(), &manifest, created_at, grace);
            let json: bytes::Bytes = serde_json::to_vec_pretty(&manifest)?.into();
            // A writer whose lease was lost (see `lease::Fence`) commits nothing: the conditional
            // puts below check the lake's fence first.
            let swapped = match previous {
                None => self.lake.put_if_absent(&path, json).await?,
                Some((_, version)) => match self.lake.put_if_unchanged(&path, json.clone(), version).await? {
                    Swap::Done => true,
                    Swap::Changed => false,
                    Swap::Unsupported => {
                        self.lake.put(&path, json).await?;
                        true
                    }
                },
            };
            if swapped {
                break;
            }
            if attempt == ATTEMPTS {
                return Err(Error::Dataset {
                    path: self.lake.display(&path),
                    message: format!("replaced by other writers under each of {ATTEMPTS} attempts to commit"),
                });
            }
            tracing::debug!(attempt, "the manifest changed since it was read; retiring the newer one's files");
        }
        clean(&self.lake, &self.dir, &manifest, &expired).await?;
        Ok(manifest)
    }
}

/// The files `new` retires when it replaces `before`, and those whose grace period is over:
/// `before`'s files that `new` does not name are retired now; files `before` had retired stay
/// retired until `grace` after they were.
fn retire(
    before: Option<&Manifest>,
    new: &Manifest,
    now: DateTime<Utc>,
    grace: chrono::Duration,
) -> (Vec<Retired>, Vec<String>) {
    let Some(before) = before else { return (Vec::new(), Vec::new()) };
    let live = new.live();
    let (mut kept, mut expired) = (Vec::<Retired>::new(), Vec::new());
    let retired_now = before.live().into_iter().map(|path| Retired { path, retired_at: now });
    for r in before.retired.iter().cloned().chain(retired_now) {
        if live.contains(&r.path) || kept.iter().any(|k| k.path == r.path) {
            continue;
        }
        if now.signed_duration_since(r.retired_at) >= grace {
            expired.push(r.path);
        } else {
            kept.push(r);
        }
    }
    (kept, expired)
}

/// Deletes in `dir` the files whose grace period is over: `expired` (retired long enough ago)
/// and files no manifest names that are older than the grace period by the store's clock (the
/// new manifest's modification time).
async fn clean(lake: &Lake, dir: &Path, manifest: &Manifest, expired: &[String]) -> Result<()> {
    let listing = lake.list(dir).await?;
    let depth = dir.parts().count() + 1;
    let store_now = listing.iter().find(|o| o.location.filename() == Some(layout::MANIFEST)).map(|o| o.last_modified);
    let grace = chrono::Duration::from_std(lake.grace()).unwrap_or(chrono::Duration::MAX);
    let mut named = manifest.live();
    named.extend(manifest.retired.iter().map(|r| r.path.clone()));
    for obj in listing.iter().filter(|o| o.location.parts().count() == depth) {
        let name = obj.location.filename().unwrap_or_default();
        if name == layout::MANIFEST || named.iter().any(|n| n == name) {
            continue;
        }
        let old = store_now.is_some_and(|now| now.signed_duration_since(obj.last_modified) >= grace);
        if expired.iter().any(|e| e == name) || old {
            tracing::debug!(file = %obj.location, "deleted: past the grace period");
            lake.delete(&obj.location).await?;
        }
    }
    Ok(())
}

/// Reads a dataset's manifest, or `None` if the dataset was never committed.
pub async fn read_manifest(lake: &Lake, dir: &Path) -> Result<Option<Manifest>> {
    let path = layout::manifest(dir);
    match lake.get_opt(&path).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Dataset { path: lake.display(&path), message: e.to_string() }),
    }
}

/// Reads every file of a committed dataset, checking row counts and checksums against the manifest.
pub async fn read(lake: &Lake, dir: &Path) -> Result<(Manifest, Vec<RecordBatch>)> {
    let mut batches = Vec::new();
    let manifest = read_each(lake, dir, |part| {
        batches.extend(part);
        Ok(())
    })
    .await?;
    Ok((manifest, batches))
}

/// Reads a committed dataset one file at a time, handing each file's batches to `f` before the
/// next is fetched, so memory holds one file (writers bound a file's rows) rather than the
/// dataset. Row counts and checksums are checked against the manifest.
pub async fn read_each(lake: &Lake, dir: &Path, mut f: impl FnMut(Vec<RecordBatch>) -> Result<()>) -> Result<Manifest> {
    let manifest = read_manifest(lake, dir).await?.ok_or_else(|| Error::Dataset {
        path: lake.display(dir),
        message: "no manifest: the dataset was never committed".to_string(),
    })?;
    for file in &manifest.files {
        let rel = dir.clone().join(file.path.as_str());
        let bytes = lake.get(&rel).await?;
        let sum = hex::encode(Sha256::digest(&bytes));
        if sum != file.sha256 {
            return Err(Error::Dataset {
                path: lake.display(&rel),
                message: "checksum differs from the manifest".into(),
            });
        }
        let part = super::parquet::decode(bytes)
            .map_err(|e| Error::Dataset { path: lake.display(&rel), message: e.to_string() })?;
        let rows: usize = part.iter().map(|b| b.num_rows()).sum();
        if rows as u64 != file.rows {
            return Err(Error::Dataset {
                path: lake.display(&rel),
                message: format!("{rows} rows, manifest says {}", file.rows),
            });
        }
        f(part)?;
    }
    Ok(manifest)
}
