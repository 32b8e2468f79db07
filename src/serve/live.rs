//! The catalog a server answers from, as snapshots: each is a DataFusion session opened on the
//! lake as it was (see [`crate::query::catalog`]), with `pg_catalog` added for clients'
//! schema browsers. The lake is checked every `refresh`; when its version changed, a new
//! snapshot replaces the current one for queries that start afterwards, while running queries
//! finish on theirs. A snapshot that fails to open leaves the current one in place.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::SessionContext;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::setup_pg_catalog;
use datafusion_postgres::{DfSessionService, QueryHook};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::error::{Error, Result};

/// Where snapshots come from.
#[async_trait]
pub trait Source: Send + Sync {
    /// A digest of what [`Source::open`] would read: equal versions, equal catalogs.
    async fn version(&self) -> Result<String>;
    /// Opens the catalog as it is now.
    async fn open(&self) -> Result<SessionContext>;
}

/// One opened catalog.
pub struct Snapshot {
    /// The session holding the tables.
    pub ctx: SessionContext,
    /// The source's version it was opened at.
    pub version: String,
    /// Parses (and plans) statements against this snapshot.
    pub(crate) parser: Arc<DfSessionService>,
}

impl Snapshot {
    fn new(ctx: SessionContext, version: String, hooks: &[Arc<dyn QueryHook>]) -> Result<Self> {
        setup_pg_catalog(&ctx, &default_catalog(&ctx), EmptyContextProvider)
            .map_err(|e| Error::Data(format!("cannot add pg_catalog to the SQL catalog: {e}")))?;
        ctx.register_udf(version_udf());
        ctx.register_udf(to_regtype_udf());
        let parser = Arc::new(DfSessionService::new_with_hooks(Arc::new(ctx.clone()), hooks.to_vec()));
        Ok(Self { ctx, version, parser })
    }

    /// A session for one query: this snapshot's tables and functions, with a memory pool of
    /// its own of `memory` bytes (`None`: the snapshot's).
    pub fn query_session(&self, memory: Option<usize>) -> Result<SessionContext> {
        let state = self.ctx.state();
        let Some(limit) = memory else { return Ok(SessionContext::new_with_state(state)) };
        let runtime = RuntimeEnvBuilder::from_runtime_env(state.runtime_env())
            .with_memory_pool(Arc::new(FairSpillPool::new(limit)))
            .build_arc()?;
        let state = SessionStateBuilder::new_from_existing(state).with_runtime_env(runtime).build();
        Ok(SessionContext::new_with_state(state))
    }
}

/// `version()` as PostgreSQL words it (`PostgreSQL 16.6 …`): drivers and BI tools (SQLAlchemy,
/// Metabase) read the server's version from it and refuse text that does not start so.
fn version_udf() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    use datafusion::scalar::ScalarValue;
    let text = format!(
        "PostgreSQL 16.6 on {}-{}, shelfcast {} (Apache DataFusion {})",
        std::env::consts::ARCH,
        std::env::consts::OS,
        env!("CARGO_PKG_VERSION"),
        datafusion::DATAFUSION_VERSION
    );
    create_udf(
        "version",
        vec![],
        DataType::Utf8,
        Volatility::Immutable,
        Arc::new(move |_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(text.clone()))))),
    )
}

/// `to_regtype(name)`: the type's oid, NULL for every name, as PostgreSQL answers for a type it
/// lacks. Drivers ask it for extension types (psycopg's `TypeInfo`, SQLAlchemy's hstore check);
/// shelfcast has none.
fn to_regtype_udf() -> datafusion::logical_expr::ScalarUDF {
    use datafusion::arrow::datatypes::DataType;
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    use datafusion::scalar::ScalarValue;
    create_udf(
        "to_regtype",
        vec![DataType::Utf8],
        DataType::Int32,
        Volatility::Immutable,
        Arc::new(|_: &[ColumnarValue]| Ok(ColumnarValue::Scalar(ScalarValue::Int32(None)))),
    )
}

fn default_catalog(ctx: &SessionContext) -> String {
    ctx.state().config().options().catalog.default_catalog.clone()
}

/// The current snapshot of a source, replaced when the source changes.
pub struct Live {
    source: Arc<dyn Source>,
    hooks: Vec<Arc<dyn QueryHook>>,
    current: RwLock<Arc<Snapshot>>,
}

impl Live {
    /// Opens the first snapshot; `hooks` are the statement hooks every query goes through.
    pub async fn open(source: Arc<dyn Source>, hooks: Vec<Arc<dyn QueryHook>>) -> Result<Self> {
        let version = source.version().await?;
        let snapshot = Snapshot::new(source.open().await?, version, &hooks)?;
        Ok(Self { source, hooks, current: RwLock::new(Arc::new(snapshot)) })
    }

    /// The snapshot queries start on now.
    pub fn current(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The statement hooks.
    pub(crate) fn hooks(&self) -> &[Arc<dyn QueryHook>] {
        &self.hooks
    }

    /// Opens a new snapshot when the source's version moved; `true` when one was swapped in.
    pub async fn refresh(&self) -> Result<bool> {
        let version = self.source.version().await?;
        if version == self.current().version {
            return Ok(false);
        }
        let snapshot = Snapshot::new(self.source.open().await?, version, &self.hooks)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(snapshot);
        Ok(true)
    }
}

/// Refreshes `live` every `every` until `stop`; a failure is logged and the current snapshot kept.
pub async fn refresh_every(live: Arc<Live>, every: Duration, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        match live.refresh().await {
            Ok(true) => info!(version = %&live.current().version[..12], "catalog reopened: the lake changed"),
            Ok(false) => {}
            Err(e) => warn!(cause = %e, "cannot reopen the catalog; queries keep the previous one"),
        }
    }
}
