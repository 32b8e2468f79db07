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
//! DataFusion's own codec, so any Ballista 55 scheduler decodes them. The custom
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

use ballista::prelude::{SessionConfigExt, SessionContextExt};
use datafusion::dataframe::DataFrame;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::session_state::{SessionState, SessionStateBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};
use tokio::sync::OnceCell;
use tracing::{info, instrument};

use super::{EngineKind, EngineOptions};
use crate::error::{Error, Result};
use crate::lake::Lake;

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
        DataFrame::new(ctx.state(), plan).execute_stream().await.map_err(|e| self.error(e.to_string()))
    }
}
