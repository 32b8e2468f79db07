//! The catalog analysts query, the same for `shelfcast query` and `shelfcast serve`: the raw
//! tables, the feature views at a cutoff, the newest published `forecasts` and `replenishment`,
//! the newest tracked `accuracy` ([`crate::evaluate::tracking`]), and the tables a caller adds ([`Extra`]: the binary adds `runs`, the run history that
//! [`crate::jobs::history`] keeps).
//!
//! [`version`] names what the catalog would be opened on (the raw files, the publication
//! pointers and the run records, listed): a long-running server opens a new catalog when it
//! changes, and a client never sees a dataset half published, because a publication becomes
//! visible only through its pointer, written after its manifest.

use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use sha2::{Digest, Sha256};

use crate::engine::{self, EngineOptions};
use crate::error::Result;
use crate::features::{self, FeatureParams};
use crate::lake::{Lake, layout};

/// Tables a layer above `query` adds to the catalog, read from the lake each time the catalog
/// opens (the run history).
#[async_trait::async_trait]
pub trait Extra: Send + Sync {
    /// Registers its tables in `ctx`.
    async fn register(&self, ctx: &SessionContext, lake: &Lake) -> Result<()>;
}

/// Opens the catalog on `lake`: raw tables, feature views at `cutoff` (default: the last day
/// with sales before `today`), the latest publications and the `extra` tables. `params` turns
/// the cutoff into the feature parameters.
pub async fn open(
    lake: &Lake,
    engine: EngineOptions,
    params: impl FnOnce(NaiveDate) -> FeatureParams,
    today: NaiveDate,
    cutoff: Option<NaiveDate>,
    extra: &[Arc<dyn Extra>],
) -> Result<SessionContext> {
    let (ctx, _) = engine::open_with(lake, engine).await?;
    let cutoff = match cutoff {
        Some(c) => c,
        None => features::default_cutoff(&ctx, today).await?,
    };
    features::register_views(&ctx, params(cutoff)).await?;
    crate::publish::latest::register(&ctx, lake, &[crate::publish::DATASET, crate::plan::replenish::DATASET]).await?;
    crate::evaluate::tracking::register_latest(&ctx, lake).await?;
    for e in extra {
        e.register(&ctx, lake).await?;
    }
    Ok(ctx)
}

/// What the catalog would be opened on, as a digest: every raw file (path, size, tag), the
/// publication pointers (content), and the run records (path, size, tag). Equal digests mean
/// [`open`] would register the same tables.
pub async fn version(lake: &Lake) -> Result<String> {
    let mut h = Sha256::new();
    for prefix in [object_store::path::Path::from("raw"), layout::runs(), layout::accuracies()] {
        for m in lake.list(&prefix).await? {
            h.update(m.location.as_ref().as_bytes());
            h.update(m.size.to_le_bytes());
            h.update(m.e_tag.as_deref().unwrap_or_default().as_bytes());
            h.update(m.last_modified.timestamp_millis().to_le_bytes());
        }
    }
    for dataset in [crate::publish::DATASET, crate::plan::replenish::DATASET] {
        if let Some(bytes) = lake.get_opt(&layout::latest(dataset)).await? {
            h.update(dataset.as_bytes());
            h.update(&bytes);
        }
    }
    Ok(hex::encode(h.finalize()))
}
