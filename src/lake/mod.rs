//! The lake: one object store, addressed by a URL, holding every dataset.
//!
//! [`Lake::open`] turns `file:///…`, `memory://…`, `s3://…` (and the other
//! schemes `object_store` knows) into a store plus the prefix of the lake
//! inside it. All paths handed to a [`Lake`] are relative to the lake root and
//! come from [`layout`]; no other module spells a path by hand.
//!
//! Credentials are never part of the URL or the settings: S3 reads them from
//! the environment (`AWS_ACCESS_KEY_ID`, …) or the standard provider chain; Google Cloud
//! Storage (`gs://`, cargo feature `gcs`) and Azure (`az://`, `abfss://`, feature `azure`)
//! from their `GOOGLE_*` and `AZURE_*` variables.
//!
//! Requests to a cloud store are bounded and retried by `object_store`'s HTTP client. Its
//! timeouts are plain store options (`timeout`, `connect_timeout`); its retries are set with
//! the shelfcast-specific options in [`RETRY_OPTIONS`] (`retry_max_retries`, `retry_timeout`,
//! `retry_init_backoff`, `retry_max_backoff`), which [`Lake::open`] turns into a `RetryConfig`.

pub mod dataset;
#[cfg(any(test, feature = "faults"))]
pub mod faults;
pub mod layout;
pub mod lease;
pub mod parquet;
pub mod pointer;
pub mod vacuum;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{BackoffConfig, RetryConfig};
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use url::Url;

use crate::error::{Error, Result};

/// The outcome of [`Lake::put_if_unchanged`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swap {
    /// The object was replaced.
    Done,
    /// Someone changed (or deleted) the object since it was read; nothing was written.
    Changed,
    /// The store cannot update conditionally; nothing was written.
    Unsupported,
}

/// A handle on the lake: the store, the URL it was opened from, and the lake's prefix in the store.
#[derive(Clone)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    root: Url,
    store_url: Url,
    prefix: Path,
    grace: std::time::Duration,
    fence: Option<Arc<lease::Fence>>,
}

/// How long files a newer dataset version replaced stay readable, unless set otherwise.
pub const DEFAULT_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

impl fmt::Debug for Lake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lake").field("root", &self.root.as_str()).finish()
    }
}

impl fmt::Display for Lake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.root.as_str())
    }
}

/// Store options that shelfcast reads itself to build the HTTP client's `RetryConfig`; every
/// other option goes to the store's builder as it is.
pub const RETRY_OPTIONS: &[&str] = &["retry_max_retries", "retry_timeout", "retry_init_backoff", "retry_max_backoff"];

/// The retry policy of the `retry_*` options; `None` when none is set (the store's default).
fn retry_config(url: &str, options: &BTreeMap<String, String>) -> Result<Option<RetryConfig>> {
    if !options.keys().any(|k| RETRY_OPTIONS.contains(&k.as_str())) {
        return Ok(None);
    }
    let bad = |k: &str, v: &str, what: &str| Error::LakeUrl {
        url: url.to_string(),
        message: format!("storage option `{k}` = `{v}`: {what}"),
    };
    let duration = |k: &str, d: std::time::Duration| -> Result<std::time::Duration> {
        match options.get(k) {
            None => Ok(d),
            Some(v) => humantime::parse_duration(v).map_err(|_| bad(k, v, "not a duration like 500ms, 10s or 2m")),
        }
    };
    let defaults = RetryConfig::default();
    let max_retries = match options.get("retry_max_retries") {
        None => defaults.max_retries,
        Some(v) => v.parse().map_err(|_| bad("retry_max_retries", v, "not a whole number"))?,
    };
    Ok(Some(RetryConfig {
        max_retries,
        retry_timeout: duration("retry_timeout", defaults.retry_timeout)?,
        backoff: BackoffConfig {
            init_backoff: duration("retry_init_backoff", defaults.backoff.init_backoff)?,
            max_backoff: duration("retry_max_backoff", defaults.backoff.max_backoff)?,
            base: defaults.backoff.base,
        },
    }))
}

/// Builds a cloud store: credentials from the environment (the builder's `from_env`), the URL,
/// the retry policy, then every option through `with_config`, an unknown key naming itself.
macro_rules! cloud_store {
    ($builder:expr, $root:expr, $url:expr, $options:expr, $retry:expr) => {{
        let mut b = $builder.with_url($root.as_str());
        if let Some(retry) = $retry {
            b = b.with_retry(retry);
        }
        for (k, v) in $options {
            let key = k.parse().map_err(|e: object_store::Error| Error::LakeUrl {
                url: $url.to_string(),
                message: format!("storage option `{k}`: {e}"),
            })?;
            b = b.with_config(key, v);
        }
        Arc::new(b.build()?) as Arc<dyn ObjectStore>
    }};
}

impl Lake {
    /// Opens the lake at `url` with store `options` (e.g. `aws_endpoint`, `timeout`,
    /// `retry_max_retries`; never credentials).
    pub fn open(url: &str, options: &BTreeMap<String, String>) -> Result<Self> {
        let retry = retry_config(url, options)?;
        let options: BTreeMap<String, String> = options
            .iter()
            .filter(|(k, _)| !RETRY_OPTIONS.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let mut root = Url::parse(url).map_err(|e| Error::LakeUrl { url: url.to_string(), message: e.to_string() })?;
        if !root.path().ends_with('/') {
            let p = format!("{}/", root.path());
            root.set_path(&p);
        }
        let store: Arc<dyn ObjectStore> = match root.scheme() {
            "s3" | "s3a" => {
                cloud_store!(object_store::aws::AmazonS3Builder::from_env(), root, url, &options, retry)
            }
            #[cfg(feature = "gcs")]
            "gs" => cloud_store!(object_store::gcp::GoogleCloudStorageBuilder::from_env(), root, url, &options, retry),
            #[cfg(feature = "azure")]
            "az" | "adl" | "azure" | "abfs" | "abfss" => {
                cloud_store!(object_store::azure::MicrosoftAzureBuilder::from_env(), root, url, &options, retry)
            }
            scheme if retry.is_some() => {
                return Err(Error::LakeUrl {
                    url: url.to_string(),
                    message: format!(
                        "the retry_* storage options apply to cloud stores (s3://, gs://, az://), not {scheme}://"
                    ),
                });
            }
            "memory" => Arc::new(object_store::memory::InMemory::new()),
            _ => {
                let (store, _) = object_store::parse_url_opts(&root, options.iter())
                    .map_err(|e| Error::LakeUrl { url: url.to_string(), message: e.to_string() })?;
                Arc::from(store)
            }
        };
        let prefix = Path::from_url_path(root.path())?;
        let store_url = Url::parse(&format!("{}://{}", root.scheme(), root.host_str().unwrap_or("")))
            .map_err(|e| Error::LakeUrl { url: url.to_string(), message: e.to_string() })?;
        Ok(Self { store, root, store_url, prefix, grace: DEFAULT_GRACE, fence: None })
    }

    /// An in-memory lake; for tests and dry runs.
    pub fn in_memory() -> Self {
        Self::open("memory:///", &BTreeMap::new()).expect("memory:/// is a valid lake URL")
    }

    /// The same lake over a store wrapped by `wrap` (the fault tests' `FaultyStore`, a throttle, …).
    pub fn map_store(&self, wrap: impl FnOnce(Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore>) -> Self {
        Self { store: wrap(self.store()), ..self.clone() }
    }

    /// The same lake, keeping the files a newer dataset version replaced (and files no manifest
    /// names) for `grace` before they may be deleted; see [`dataset`].
    pub fn with_grace(&self, grace: std::time::Duration) -> Self {
        Self { grace, ..self.clone() }
    }

    /// How long replaced and unnamed files are kept.
    pub fn grace(&self) -> std::time::Duration {
        self.grace
    }

    /// The same lake, every write of which (puts, conditional puts, deletes, renames: dataset
    /// parts and manifests, pointers, run records, watermarks, pending webhooks, reports) first
    /// checks `fence`, the lease the writes are made under, and fails with
    /// [`Error::LeaseLost`] once it is lost. Reads are not fenced.
    pub fn with_fence(&self, fence: lease::Fence) -> Self {
        Self { fence: Some(Arc::new(fence)), ..self.clone() }
    }

    /// The same lake without its fence: for the one write a holder that lost its lease still
    /// makes, its own run record saying how the run ended (see `jobs::history::write`).
    pub fn unfenced(&self) -> Self {
        Self { fence: None, ..self.clone() }
    }

    /// Checks the lake's fence, if it has one: an error when the lease it stands for is lost.
    pub async fn check_fence(&self) -> Result<()> {
        match &self.fence {
            Some(f) => f.check().await,
            None => Ok(()),
        }
    }

    /// The underlying store (the whole bucket or file system, not just the lake prefix).
    pub fn store(&self) -> Arc<dyn ObjectStore> {
        Arc::clone(&self.store)
    }

    /// The URL DataFusion must register [`Lake::store`] under (`scheme://authority`).
    pub fn store_url(&self) -> &Url {
        &self.store_url
    }

    /// The lake root URL, ending in `/`.
    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The full object path of a lake-relative path.
    pub fn path(&self, rel: &Path) -> Path {
        self.prefix.parts().chain(rel.parts()).collect()
    }

    /// The URL of a lake-relative folder, ending in `/` (for DataFusion listing tables).
    pub fn folder_url(&self, rel: &Path) -> String {
        format!("{}{}/", self.root, rel.as_ref())
    }

    /// A human-readable location of a lake-relative path: a local path for `file://` lakes.
    pub fn display(&self, rel: &Path) -> String {
        let url = format!("{}{}", self.root, rel.as_ref());
        match Url::parse(&url).ok().filter(|u| u.scheme() == "file").and_then(|u| u.to_file_path().ok()) {
            Some(p) => p.display().to_string(),
            None => url,
        }
    }

    /// Writes an object atomically.
    pub async fn put(&self, rel: &Path, bytes: Bytes) -> Result<()> {
        self.check_fence().await?;
        self.store.put(&self.path(rel), PutPayload::from_bytes(bytes)).await?;
        Ok(())
    }

    /// Writes an object only if none exists at the path (a conditional put): `false` when one
    /// already did. Atomic on every store shelfcast supports (local files by a hard link,
    /// memory, S3 with `If-None-Match`), so of two writers racing for a path exactly one wins.
    pub async fn put_if_absent(&self, rel: &Path, bytes: Bytes) -> Result<bool> {
        self.check_fence().await?;
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&self.path(rel), PutPayload::from_bytes(bytes), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a whole object with its version (ETag, and the store's version id where it keeps
    /// one), or `None` when it does not exist; hand the version to [`Lake::put_if_unchanged`].
    pub async fn get_versioned(&self, rel: &Path) -> Result<Option<(Bytes, UpdateVersion)>> {
        match self.store.get(&self.path(rel)).await {
            Ok(r) => {
                let version = UpdateVersion { e_tag: r.meta.e_tag.clone(), version: r.meta.version.clone() };
                Ok(Some((r.bytes().await?, version)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Replaces an object only if it is still the version read (a compare-and-swap).
    /// [`Swap::Unsupported`] where the store has no conditional update (local folders; S3
    /// without a conditional-put setting): the caller then decides whether a plain put will do.
    pub async fn put_if_unchanged(&self, rel: &Path, bytes: Bytes, read: UpdateVersion) -> Result<Swap> {
        self.check_fence().await?;
        let opts = PutOptions { mode: PutMode::Update(read), ..Default::default() };
        match self.store.put_opts(&self.path(rel), PutPayload::from_bytes(bytes), opts).await {
            Ok(_) => Ok(Swap::Done),
            Err(object_store::Error::Precondition { .. } | object_store::Error::NotFound { .. }) => Ok(Swap::Changed),
            Err(object_store::Error::NotImplemented { .. }) => Ok(Swap::Unsupported),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a whole object.
    pub async fn get(&self, rel: &Path) -> Result<Bytes> {
        Ok(self.store.get(&self.path(rel)).await?.bytes().await?)
    }

    /// Reads a whole object, or `None` when it does not exist.
    pub async fn get_opt(&self, rel: &Path) -> Result<Option<Bytes>> {
        match self.store.get(&self.path(rel)).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Whether an object exists.
    pub async fn exists(&self, rel: &Path) -> Result<bool> {
        match self.store.head(&self.path(rel)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, rel: &Path) -> Result<()> {
        self.check_fence().await?;
        match self.store.delete(&self.path(rel)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Moves an object (a copy then a delete where the store cannot rename).
    pub async fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.check_fence().await?;
        self.store.rename(&self.path(from), &self.path(to)).await?;
        Ok(())
    }

    /// Every object under a lake-relative folder (recursively), with lake-relative locations, sorted.
    pub async fn list(&self, rel: &Path) -> Result<Vec<ObjectMeta>> {
        let full = self.path(rel);
        let skip = self.prefix.parts().count();
        let mut out: Vec<ObjectMeta> = self
            .store
            .list(Some(&full))
            .map_ok(|mut m| {
                m.location = m.location.parts().skip(skip).collect();
                m
            })
            .try_collect()
            .await?;
        out.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(out)
    }

    /// Whether any object whose name ends in `suffix` lies under the folder.
    pub async fn has_files(&self, rel: &Path, suffix: &str) -> Result<bool> {
        Ok(self.list(rel).await?.iter().any(|m| m.location.as_ref().ends_with(suffix)))
    }
}
