//! A store that fails or slows down on purpose: the fault-injection wrapper the fault tests use.
//!
//! [`FaultyStore`] wraps any [`ObjectStore`] the way `object_store`'s own `PrefixStore` does:
//! every call is delegated to the inner store, except that every `every`-th call of the chosen
//! [`Op`] kinds (optionally only on paths containing a given text) first sleeps, or fails with
//! the configured error instead of reaching the inner store. A failed call changes nothing in
//! the inner store, as a request that never reached the server would.
//!
//! ```
//! # use std::sync::Arc;
//! use shelfcast::lake::faults::{Fault, FaultyStore, Op};
//! let inner = Arc::new(object_store::memory::InMemory::new());
//! // Every put under `forecasts/` fails as a full disk would.
//! let store = FaultyStore::new(inner, Fault::disk_full()).on(&[Op::Put]).matching("forecasts/");
//! assert_eq!(store.injected(), 0);
//! ```

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};

/// The kinds of call a fault can be injected into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `put`, `put_opts` and multipart uploads.
    Put,
    /// `get`, `get_opts`, `get_range(s)`, `head`.
    Get,
    /// `list`, `list_with_offset`, `list_with_delimiter`.
    List,
    /// `delete` and `delete_stream`.
    Delete,
    /// `copy` and `rename`.
    Copy,
}

/// What an injected fault does.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Fail the call with an I/O error of this raw OS code (e.g. 28, `ENOSPC`) or, for `None`,
    /// a connection reset.
    Fail(Option<i32>),
    /// Wait this long, then run the call.
    Delay(Duration),
}

impl Fault {
    /// A full disk: `No space left on device (os error 28)`.
    pub fn disk_full() -> Self {
        Fault::Fail(Some(28))
    }

    /// A dropped connection.
    pub fn reset() -> Self {
        Fault::Fail(None)
    }

    /// The error this fault fails a call with; `None` for a delay.
    fn error(&self, op: Op, path: &str) -> Option<object_store::Error> {
        let source = match self {
            Fault::Fail(Some(code)) => std::io::Error::from_raw_os_error(*code),
            Fault::Fail(None) => std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer"),
            Fault::Delay(_) => return None,
        };
        Some(object_store::Error::Generic {
            store: "FaultyStore",
            source: format!("injected fault in {op:?} of {path}: {source}").into(),
        })
    }
}

/// A wrapper that injects a [`Fault`] into every `every`-th matching call.
#[derive(Debug, Clone)]
pub struct FaultyStore {
    inner: Arc<dyn ObjectStore>,
    fault: Fault,
    ops: Vec<Op>,
    every: u64,
    matching: Option<String>,
    // Shared by clones, so a stream of deletions counts with the store it came from.
    calls: Arc<AtomicU64>,
    injected: Arc<AtomicU64>,
}

impl fmt::Display for FaultyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaultyStore({:?} every {} {:?}, {})", self.fault, self.every, self.ops, self.inner)
    }
}

impl FaultyStore {
    /// Injects `fault` into every call of every kind; narrow it with [`on`](Self::on),
    /// [`every`](Self::every) and [`matching`](Self::matching).
    pub fn new(inner: Arc<dyn ObjectStore>, fault: Fault) -> Self {
        Self {
            inner,
            fault,
            ops: vec![Op::Put, Op::Get, Op::List, Op::Delete, Op::Copy],
            every: 1,
            matching: None,
            calls: Arc::default(),
            injected: Arc::default(),
        }
    }

    /// Only these kinds of call.
    pub fn on(mut self, ops: &[Op]) -> Self {
        self.ops = ops.to_vec();
        self
    }

    /// Only every `n`-th matching call (the `n`-th, `2n`-th, …); `n` ≥ 1.
    pub fn every(mut self, n: u64) -> Self {
        self.every = n.max(1);
        self
    }

    /// Only calls on paths (or list prefixes) containing `text`.
    pub fn matching(mut self, text: &str) -> Self {
        self.matching = Some(text.to_string());
        self
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::SeqCst)
    }

    /// Counts the call and applies the fault when it is due.
    async fn check(&self, op: Op, path: &str) -> object_store::Result<()> {
        if !self.ops.contains(&op) || self.matching.as_deref().is_some_and(|m| !path.contains(m)) {
            return Ok(());
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if !n.is_multiple_of(self.every) {
            return Ok(());
        }
        self.injected.fetch_add(1, Ordering::SeqCst);
        if let Fault::Delay(d) = &self.fault {
            tokio::time::sleep(*d).await;
        }
        match self.fault.error(op, path) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[async_trait::async_trait]
impl ObjectStore for FaultyStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.check(Op::Put, location.as_ref()).await?;
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.check(Op::Put, location.as_ref()).await?;
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> object_store::Result<GetResult> {
        self.check(Op::Get, location.as_ref()).await?;
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> object_store::Result<Vec<Bytes>> {
        self.check(Op::Get, location.as_ref()).await?;
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        if !self.ops.contains(&Op::Delete) {
            return self.inner.delete_stream(locations);
        }
        // Deletions are checked one by one, so a fault fails just the object it hits.
        let this = Arc::new(self.clone());
        let inner = Arc::clone(&self.inner);
        locations
            .then(move |loc| {
                let this = Arc::clone(&this);
                let inner = Arc::clone(&inner);
                async move {
                    let loc = loc?;
                    this.check(Op::Delete, loc.as_ref()).await?;
                    inner.delete(&loc).await?;
                    Ok(loc)
                }
            })
            .boxed()
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if let Some(e) = self.list_fault(prefix) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        if let Some(e) = self.list_fault(prefix) {
            return futures::stream::once(async move { Err(e) }).boxed();
        }
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.check(Op::List, prefix.map(|p| p.as_ref()).unwrap_or("")).await?;
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> object_store::Result<()> {
        self.check(Op::Copy, to.as_ref()).await?;
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> object_store::Result<()> {
        self.check(Op::Copy, to.as_ref()).await?;
        self.inner.rename_opts(from, to, options).await
    }
}

impl FaultyStore {
    /// A list call is synchronous up to its stream: delays are not applied to it, failures are.
    fn list_fault(&self, prefix: Option<&Path>) -> Option<object_store::Error> {
        let path = prefix.map(|p| p.as_ref()).unwrap_or("");
        if !self.ops.contains(&Op::List) || self.matching.as_deref().is_some_and(|m| !path.contains(m)) {
            return None;
        }
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if !n.is_multiple_of(self.every) {
            return None;
        }
        let e = self.fault.error(Op::List, path)?;
        self.injected.fetch_add(1, Ordering::SeqCst);
        Some(e)
    }
}
