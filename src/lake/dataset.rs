//! Atomic datasets: data files first, manifest last, stale files removed after.
//!
//! A dataset is a folder of `part-<token>-<n>.parquet` files and one
//! `_manifest.json` naming exactly the files that belong to it, with row counts
//! and SHA-256 checksums. Readers follow the manifest, never a folder listing,
//! so the previous version stays complete and readable until the new manifest
//! replaces it in one atomic `put`; only then are files of older versions (or
//! of a crashed writer) deleted.

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Lake, layout};
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
    /// Dataset-specific fields (run id, inputs, model, …).
    #[serde(flatten)]
    pub meta: serde_json::Map<String, serde_json::Value>,
}

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
    /// A writer for `dir`; `token` makes this version's file names unique (e.g. the run id).
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
            token: token.into(),
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
        self.files.push(FileEntry { path: name, rows, bytes: size, sha256 });
        Ok(())
    }

    /// Writes another rendering of the rows (a CSV copy) into the folder. It is listed in the
    /// manifest under `copies` (name, rows, bytes, SHA-256), not under `files`, and kept when the
    /// commit clears out files of older versions.
    pub async fn attach(&mut self, name: &str, rows: u64, bytes: bytes::Bytes) -> Result<()> {
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let size = bytes.len() as u64;
        self.lake.put(&self.dir.clone().join(name), bytes).await?;
        self.copies.retain(|c| c.path != name);
        self.copies.push(FileEntry { path: name.to_string(), rows, bytes: size, sha256 });
        Ok(())
    }

    /// Writes the remaining rows, then the manifest, then deletes files no manifest names.
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
        let manifest = Manifest {
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
            meta,
        };
        let json = serde_json::to_vec_pretty(&manifest)?;
        self.lake.put(&layout::manifest(&self.dir), json.into()).await?;
        // The new version is visible; files of older versions are now garbage.
        for obj in self.lake.list(&self.dir).await? {
            let name = obj.location.filename().unwrap_or_default();
            let named = manifest.files.iter().chain(&self.copies).any(|f| f.path == name);
            if name != layout::MANIFEST && !named {
                self.lake.delete(&obj.location).await?;
            }
        }
        Ok(manifest)
    }
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
