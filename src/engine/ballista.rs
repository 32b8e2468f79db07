//! The feature SQL on a DataFusion Ballista cluster (cargo feature `ballista`).
//!
//! A [`Cluster`] is attached to the local session by [`super::open_with`] when settings say
//! `engine = "ballista://HOST:PORT"` or `"ballista-standalone"`. A feature query is planned by the
//! local session, against the tables registered there, and its logical plan is handed to a
//! Ballista session ([`Cluster::execute_stream`]), which sends it to the scheduler; the
//! scheduler plans the stages, the executors read the lake and shuffle among themselves, and
//! the result partitions stream back here, where [`crate::features::materialize`] writes them
//! to the lake as it does with the local engine.
//!
//! What travels: the lake's raw tables and committed feature datasets are Parquet listing
//! tables (their URLs and schema), absent tables are empty tables, and both serialise with
//! DataFusion's own codec, so any Ballista 55 scheduler decodes them. In-memory tables (the keys
//! of the rows data-quality checks leave out) have no such codec: [`portable`] replaces each by a
//! view over its rows as `VALUES` (up to [`MAX_INLINE_ROWS`]), which does. The custom
//! [`super::RollingWindowRule`] is not installed on the cluster's session: Ballista serialises
//! physical plans, and [`super::RollingWindowExec`] has no codec, so lags and rolling windows run
//! in DataFusion's standard window operators there (same results, more memory per partition).
//!
//! Where the lake is read: the lake's store is registered in the Ballista session's runtime,
//! which the in-process scheduler and executor of `ballista-standalone` share (so even a
//! `memory://` lake works there). A remote cluster's scheduler and executors open the lake's
//! URL themselves: a `file://` lake must be mounted at the same path on every executor, an
//! `s3://` lake needs `AWS_*` variables (credentials, `AWS_ENDPOINT`, `AWS_REGION`) in their
//! environment; the `[storage]` options of `shelfcast.toml` do not travel.

use std::sync::Arc;

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::catalog::empty::EmptyTable;
use datafusion::common::tree_node::Transformed;
use datafusion::common::{DFSchema, ScalarValue, TableReference, plan_datafusion_err};
use datafusion::dataframe::DataFrame;
use datafusion::datasource::{MemTable, ViewTable, provider_as_source, source_as_provider};
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::logical_expr::{LogicalPlan, LogicalPlanBuilder, TableScanBuilder, TableSource, col, lit};
use datafusion::prelude::{SessionConfig, SessionContext};
use tokio::sync::OnceCell;
use tracing::{info, instrument};

use super::{EngineKind, EngineOptions};
use crate::error::{Error, Result};
use crate::lake::Lake;

/// Rows an in-memory table may have to travel to the cluster inline, as `VALUES`.
pub const MAX_INLINE_ROWS: usize = 100_000;

/// Lake URL schemes a remote cluster's stock executors can open themselves.
const REMOTE_SCHEMES: &[&str] = &["file", "s3"];

/// The Ballista session feature queries run on; connected (or, standalone, started) at the
/// first query.
pub struct Cluster {
    engine: EngineKind,
    state: SessionState,
    ctx: OnceCell<SessionContext>,
}

impl Cluster {
    /// A cluster session sized like the local one, with the lake's store registered; refuses a
    /// remote cluster for a lake its executors cannot open.
    pub fn new(lake: &Lake, opts: &EngineOptions) -> Result<Self> {
        let scheme = lake.store_url().scheme();
        if matches!(opts.engine, EngineKind::Ballista { .. }) && !REMOTE_SCHEMES.contains(&scheme) {
            return Err(Error::InvalidSetting {
                key: "engine".into(),
                message: format!(
                    "the executors of `{}` cannot open the lake `{lake}`: a remote Ballista cluster reads \
                     file:// lakes (mounted at the same path on every executor) or s3:// lakes, not {scheme}://",
                    opts.engine
                ),
            });
        }
        let threads = opts.threads.max(1);
        let config = SessionConfig::new_with_ballista()
            .with_target_partitions(threads)
            .with_batch_size(16 * 1024)
            .with_ballista_standalone_parallelism(threads)
            .with_ballista_job_name("shelfcast features")
            .with_ballista_adaptive_query_planner(false);
        let runtime = super::runtime(opts);
        runtime.register_object_store(lake.store_url(), lake.store());
        // No RollingWindowRule: its operator cannot be serialised to the executors.
        let state =
            SessionStateBuilder::new().with_config(config).with_runtime_env(runtime).with_default_features().build();
        Ok(Self { engine: opts.engine.clone(), state, ctx: OnceCell::new() })
    }

    /// The `engine` setting this cluster was made for.
    pub fn engine(&self) -> &EngineKind {
        &self.engine
    }

    fn error(&self, message: impl Into<String>) -> Error {
        Error::Ballista { engine: self.engine.to_string(), message: message.into() }
    }

    /// The Ballista session, connected or started on first use.
    async fn context(&self) -> Result<&SessionContext> {
        self.ctx.get_or_try_init(|| self.connect()).await
    }

    #[instrument(skip_all, fields(engine = %self.engine))]
    async fn connect(&self) -> Result<SessionContext> {
        let state = self.state.clone();
        let ctx = match &self.engine {
            EngineKind::BallistaStandalone => SessionContext::standalone_with_state(state)
                .await
                .map_err(|e| self.error(format!("cannot start the in-process scheduler and executor: {e}")))?,
            EngineKind::Ballista { host, port } => {
                SessionContext::remote_with_state(&format!("df://{host}:{port}"), state)
                    .await
                    .map_err(|e| self.error(format!("cannot reach the scheduler: {e}")))?
            }
            EngineKind::Local => return Err(self.error("not a Ballista engine")),
        };
        info!(session = %ctx.session_id(), "feature SQL runs on Ballista");
        Ok(ctx)
    }

    /// Runs a plan made by the local session on the cluster; the batches stream back here.
    #[instrument(skip_all, fields(engine = %self.engine))]
    pub async fn execute_stream(&self, df: DataFrame) -> Result<SendableRecordBatchStream> {
        let ctx = self.context().await?;
        let (_, plan) = df.into_parts();
        let plan = portable(plan).map_err(|e| self.error(e.to_string()))?;
        DataFrame::new(ctx.state(), plan).execute_stream().await.map_err(|e| self.error(e.to_string()))
    }
}

/// The plan with every in-memory table it reads, in subqueries too, replaced: an empty one by an
/// empty table, the others by a view over their rows as `VALUES`. The scans keep their names and
/// schemas, so nothing above them changes.
pub fn portable(plan: LogicalPlan) -> datafusion::error::Result<LogicalPlan> {
    let rewritten = plan.transform_up_with_subqueries(|node| {
        let LogicalPlan::TableScan(scan) = &node else { return Ok(Transformed::no(node)) };
        let provider = source_as_provider(&scan.source)?;
        let Some(mem) = provider.downcast_ref::<MemTable>() else { return Ok(Transformed::no(node)) };
        let source = inline(&scan.table_name, mem)?;
        let scan = TableScanBuilder::new(scan.table_name.clone(), source)
            .with_projection(scan.projection.clone())
            .with_filters(scan.filters.clone())
            .with_fetch(scan.fetch)
            .build()?;
        Ok(Transformed::yes(LogicalPlan::TableScan(scan)))
    })?;
    Ok(rewritten.data)
}

/// An in-memory table's rows as a source that serialises: an empty table, or a view over `VALUES`
/// with the table's column names, types and nullability.
fn inline(name: &TableReference, mem: &MemTable) -> datafusion::error::Result<Arc<dyn TableSource>> {
    use datafusion::catalog::TableProvider;
    let schema = mem.schema();
    let mut batches = Vec::new();
    for partition in &mem.batches {
        let rows = partition.try_read().map_err(|_| {
            plan_datafusion_err!("in-memory table `{name}` is being written while its query is planned")
        })?;
        batches.extend(rows.iter().cloned());
    }
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if rows == 0 {
        return Ok(provider_as_source(Arc::new(EmptyTable::new(schema))));
    }
    if rows > MAX_INLINE_ROWS {
        return Err(plan_datafusion_err!(
            "in-memory table `{name}` has {rows} rows, more than the {MAX_INLINE_ROWS} a plan sent to Ballista \
             carries inline"
        ));
    }
    let mut values = Vec::with_capacity(rows);
    for b in &batches {
        for r in 0..b.num_rows() {
            values.push(
                b.columns()
                    .iter()
                    .map(|c| ScalarValue::try_from_array(c, r).map(lit))
                    .collect::<datafusion::error::Result<Vec<_>>>()?,
            );
        }
    }
    // VALUES names its columns column1, column2, …; the projection gives them the table's names.
    let names = schema.fields().iter().enumerate().map(|(i, f)| col(format!("column{}", i + 1)).alias(f.name()));
    let plan = LogicalPlanBuilder::values_with_schema(values, &Arc::new(DFSchema::try_from(schema.as_ref().clone())?))?
        .project(names)?
        .build()?;
    Ok(provider_as_source(Arc::new(ViewTable::new(plan, None))))
}
