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

mod rolling;

use std::sync::Arc;

use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};

pub use rolling::{RollingWindowExec, RollingWindowRule};

use crate::catalog::{self, CatalogReport, CorruptFiles};
use crate::error::Result;
use crate::lake::Lake;

/// How a session is sized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Partitions (worker threads) per query.
    pub threads: usize,
    /// Memory budget of a session in bytes; `None`: unlimited.
    pub memory_limit: Option<usize>,
    /// What to do with raw files that cannot be read.
    pub corrupt_files: CorruptFiles,
}

impl EngineOptions {
    /// `threads` partitions, no memory budget.
    pub fn threads(threads: usize) -> Self {
        Self { threads, memory_limit: None, corrupt_files: CorruptFiles::Stop }
    }

    /// From settings: threads, and `memory-limit-mb` (0: half of the machine's memory).
    pub fn from_settings(s: &crate::settings::Settings) -> Self {
        let limit = match s.memory_limit_mb {
            0 => total_memory().map(|m| m / 2),
            mb => Some(mb * 1024 * 1024),
        };
        Self { threads: s.threads, memory_limit: limit, corrupt_files: s.corrupt_files }
    }
}

/// Physical memory in bytes (Linux), if known.
fn total_memory() -> Option<usize> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kb: usize = info.lines().find(|l| l.starts_with("MemTotal:"))?.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// A local session using `threads` partitions, with `information_schema` on
/// (so `SHOW TABLES` and `DESCRIBE` work in `query`).
pub fn local_context(threads: usize) -> SessionContext {
    context(EngineOptions::threads(threads))
}

/// A local session sized by `opts`.
pub fn context(opts: EngineOptions) -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(opts.threads.max(1))
        .with_information_schema(true)
        .with_batch_size(16 * 1024);
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = opts.memory_limit {
        runtime = runtime.with_memory_pool(Arc::new(FairSpillPool::new(limit)));
    }
    let runtime = match runtime.build_arc() {
        Ok(rt) => rt,
        // The default runtime cannot fail to build; fall back to it rather than fail a query.
        Err(_) => Arc::new(RuntimeEnv::default()),
    };
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

/// A local session sized by `opts`, with the lake's raw tables registered.
pub async fn open_with(lake: &Lake, opts: EngineOptions) -> Result<(SessionContext, CatalogReport)> {
    let ctx = context(opts);
    let report = catalog::register_with(&ctx, lake, opts.corrupt_files).await?;
    Ok((ctx, report))
}
