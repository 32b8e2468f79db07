//! Where SQL runs: a local DataFusion `SessionContext` sized to the thread budget and a memory
//! budget, with the lake's store and raw tables registered.
//!
//! Operators that can spill (sorts, aggregations) write to the OS temporary folder when the
//! memory budget is reached, so the feature SQL runs on lakes larger than memory; operators that
//! cannot (hash-join build sides) fail with a clear "resources exhausted" error instead of
//! taking the machine down.
//!
//! Lags and rolling aggregates over sorted series (`LAG`, `AVG`, `STDDEV`, … `OVER (PARTITION BY
//! … ORDER BY … ROWS BETWEEN …)`) run in [`RollingWindowExec`], column by column.
//!
//! With `engine = "ballista://HOST:PORT"` (or `"ballista-standalone"`) in settings and the
//! `ballista` cargo feature, the feature queries run on a DataFusion Ballista cluster instead
//! ([`execute_stream`]): they are planned here, against the tables registered in the local
//! session, and their plans are shipped to the cluster, whose executors read the lake
//! themselves; the results stream back here and are written to the lake as with the local
//! engine. Everything else (catalog checks, data quality, panels, models) stays local.

#[cfg(feature = "ballista")]
mod ballista;
pub mod inputs;
mod rolling;

use std::sync::Arc;

use datafusion::dataframe::DataFrame;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde::{Serialize, Serializer};

pub use rolling::{RollingWindowExec, RollingWindowRule};

use crate::catalog::{self, CatalogReport, CorruptFiles};
use crate::error::Result;
use crate::lake::Lake;

/// The port a Ballista scheduler listens on when `ballista://HOST` names none.
pub const BALLISTA_DEFAULT_PORT: u16 = 50050;

/// Where the feature SQL runs: the `engine` setting.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum EngineKind {
    /// In this process (`"local"`, the default).
    #[default]
    Local,
    /// On a Ballista scheduler and executor started inside this process, on loopback
    /// (`"ballista-standalone"`): the distributed plans and shuffles on one machine, for tests.
    BallistaStandalone,
    /// On the Ballista cluster whose scheduler listens at `host:port` (`"ballista://HOST:PORT"`).
    Ballista {
        /// The scheduler's host name or address.
        host: String,
        /// The scheduler's gRPC port.
        port: u16,
    },
}

impl EngineKind {
    /// Parses the `engine` setting; the error says what is accepted.
    pub fn parse(s: &str) -> std::result::Result<Self, String> {
        let s = s.trim();
        match s {
            "local" => return Ok(Self::Local),
            "ballista-standalone" => return Ok(Self::BallistaStandalone),
            _ => {}
        }
        let expected = "expected \"local\", \"ballista-standalone\" or \"ballista://HOST:PORT\"";
        let Some(rest) = s.strip_prefix("ballista://") else {
            return Err(format!("{expected}, got `{s}`"));
        };
        let url = url::Url::parse(&format!("ballista://{rest}")).map_err(|e| format!("{expected}, got `{s}`: {e}"))?;
        let host = url.host_str().filter(|h| !h.is_empty()).ok_or_else(|| format!("{expected}, got `{s}`: no host"))?;
        if !matches!(url.path(), "" | "/") || url.query().is_some() || !url.username().is_empty() {
            return Err(format!("{expected}, got `{s}`: only a host and a port are allowed"));
        }
        Ok(Self::Ballista { host: host.to_string(), port: url.port().unwrap_or(BALLISTA_DEFAULT_PORT) })
    }

    /// Whether the feature SQL runs on Ballista.
    pub fn is_ballista(&self) -> bool {
        !matches!(self, Self::Local)
    }
}

impl std::fmt::Display for EngineKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Local => f.write_str("local"),
            Self::BallistaStandalone => f.write_str("ballista-standalone"),
            Self::Ballista { host, port } => write!(f, "ballista://{host}:{port}"),
        }
    }
}

impl Serialize for EngineKind {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// How a session is sized, and where its feature SQL runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineOptions {
    /// Partitions (worker threads) per query.
    pub threads: usize,
    /// Memory budget of a session in bytes; `None`: unlimited.
    pub memory_limit: Option<usize>,
    /// What to do with raw files that cannot be read.
    pub corrupt_files: CorruptFiles,
    /// Where the feature SQL runs.
    pub engine: EngineKind,
    /// DataFusion configuration options (`datafusion.…` key, value) set on every session.
    pub sql_options: Vec<(String, String)>,
}

impl EngineOptions {
    /// `threads` partitions, no memory budget, the local engine.
    pub fn threads(threads: usize) -> Self {
        Self {
            threads,
            memory_limit: None,
            corrupt_files: CorruptFiles::Stop,
            engine: EngineKind::Local,
            sql_options: Vec::new(),
        }
    }

    /// The same sizing on the engine `engine`.
    pub fn with_engine(self, engine: EngineKind) -> Self {
        Self { engine, ..self }
    }
}

/// Checks the `[sql-options]` of a settings file against DataFusion's configuration and turns
/// them into (key, value) text; `datafusion.` may be left off the keys. An error names the key.
pub fn sql_options(
    options: std::collections::BTreeMap<String, toml::Value>,
) -> std::result::Result<Vec<(String, String)>, (String, String)> {
    let mut probe = datafusion::config::ConfigOptions::new();
    let mut out = Vec::with_capacity(options.len());
    for (key, value) in options {
        let full = if key.starts_with("datafusion.") { key.clone() } else { format!("datafusion.{key}") };
        let text = match &value {
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(_) | toml::Value::Float(_) | toml::Value::Boolean(_) => value.to_string(),
            other => return Err((key, format!("expected a string, number or boolean, found {}", other.type_str()))),
        };
        probe.set(&full, &text).map_err(|e| (key.clone(), e.strip_backtrace()))?;
        out.push((full, text));
    }
    Ok(out)
}

/// Physical memory in bytes (Linux), if known.
pub fn total_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: usize = info.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A local session using `threads` partitions, with `information_schema` on
/// (so `SHOW TABLES` and `DESCRIBE` work in `query`).
pub fn local_context(threads: usize) -> SessionContext {
    context(EngineOptions::threads(threads))
}

/// The runtime of a session: the memory budget, beyond which sorts and aggregations spill.
fn runtime(opts: &EngineOptions) -> Arc<RuntimeEnv> {
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = opts.memory_limit {
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
    }
    match runtime.build_arc() {
        Ok(rt) => rt,
        // The default runtime cannot fail to build; fall back to it rather than fail a query.
        Err(_) => Arc::new(RuntimeEnv::default()),
    }
}

/// A local session sized by `opts` (whatever its `engine`: the cluster is attached by [`open_with`]).
pub fn context(opts: EngineOptions) -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(opts.threads.max(1))
        .with_information_schema(true)
        .with_batch_size(16 * 1024);
    for (key, value) in &opts.sql_options {
        // Checked when the settings were read (see [`sql_options`]).
        if let Err(e) = config.options_mut().set(key, value) {
            tracing::warn!(key, cause = %e, "SQL option not applied");
        }
    }
    let runtime = runtime(&opts);
    let state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_physical_optimizer_rule(Arc::new(RollingWindowRule))
        .build();
    SessionContext::new_with_state(state)
}

/// A local session with the lake's raw tables registered.
pub async fn open(lake: &Lake, threads: usize) -> Result<(SessionContext, CatalogReport)> {
    open_with(lake, EngineOptions::threads(threads)).await
}

/// A local session sized by `opts`, with the lake's raw tables registered; with a Ballista
/// `engine`, the cluster its feature queries run on is attached to it (started, for
/// `ballista-standalone`, at the first query).
pub async fn open_with(lake: &Lake, opts: EngineOptions) -> Result<(SessionContext, CatalogReport)> {
    let corrupt = opts.corrupt_files;
    let ctx = attach_cluster(context(opts.clone()), lake, &opts)?;
    let report = catalog::register_with(&ctx, lake, corrupt).await?;
    Ok((ctx, report))
}

#[cfg(feature = "ballista")]
fn attach_cluster(ctx: SessionContext, lake: &Lake, opts: &EngineOptions) -> Result<SessionContext> {
    if opts.engine.is_ballista() {
        let cluster = Arc::new(ballista::Cluster::new(lake, opts)?);
        ctx.state_ref().write().config_mut().set_extension(cluster);
    }
    Ok(ctx)
}

#[cfg(not(feature = "ballista"))]
fn attach_cluster(ctx: SessionContext, _lake: &Lake, opts: &EngineOptions) -> Result<SessionContext> {
    if opts.engine.is_ballista() {
        return Err(crate::error::Error::InvalidSetting { key: "engine".into(), message: no_ballista(&opts.engine) });
    }
    Ok(ctx)
}

/// Why a Ballista `engine` is refused by a build without the `ballista` feature.
pub fn no_ballista(engine: &EngineKind) -> String {
    format!(
        "`{engine}` runs the feature SQL on DataFusion Ballista, which this build of shelfcast lacks: \
         build it with `--features ballista` (e.g. `cargo build --release --features ballista`)"
    )
}

/// Where the feature queries of a session from [`open_with`] run.
pub fn feature_engine(ctx: &SessionContext) -> EngineKind {
    #[cfg(feature = "ballista")]
    if let Some(cluster) = ctx.state_ref().read().config().get_extension::<ballista::Cluster>() {
        return cluster.engine().clone();
    }
    let _ = ctx;
    EngineKind::Local
}

/// Runs a feature query's plan where the session's `engine` says: on the Ballista cluster
/// attached by [`open_with`], or here. The plan was made by `ctx`, against its tables.
pub async fn execute_stream(ctx: &SessionContext, df: DataFrame) -> Result<SendableRecordBatchStream> {
    #[cfg(feature = "ballista")]
    {
        let cluster = ctx.state_ref().read().config().get_extension::<ballista::Cluster>();
        if let Some(cluster) = cluster {
            return cluster.execute_stream(df).await;
        }
    }
    let _ = ctx;
    Ok(df.execute_stream().await?)
}
