//! Where SQL runs: a local DataFusion `SessionContext` sized to the thread budget,
//! with the lake's store and raw tables registered.

use datafusion::prelude::{SessionConfig, SessionContext};

use crate::catalog::{self, CatalogReport};
use crate::error::Result;
use crate::lake::Lake;

/// A local session using `threads` partitions, with `information_schema` on
/// (so `SHOW TABLES` and `DESCRIBE` work in `query`).
pub fn local_context(threads: usize) -> SessionContext {
    let config = SessionConfig::new()
        .with_target_partitions(threads.max(1))
        .with_information_schema(true)
        .with_batch_size(16 * 1024);
    SessionContext::new_with_config(config)
}

/// A local session with the lake's raw tables registered.
pub async fn open(lake: &Lake, threads: usize) -> Result<(SessionContext, CatalogReport)> {
    let ctx = local_context(threads);
    let report = catalog::register(&ctx, lake).await?;
    Ok((ctx, report))
}
