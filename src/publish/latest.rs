//! The `latest` pointer of a published dataset: `<dataset>/_latest.json`, naming the newest run
//! date and its manifest.
//!
//! It is written only after that run date's manifest, so a reader that follows it always finds
//! a complete dataset. It only moves forward: publishing an older date (a backfill, a rerun of
//! last week) leaves it on the newer one, with a compare-and-swap where the store has one (see
//! [`crate::lake::pointer`]).

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::lake::{Lake, layout, pointer};

/// The pointer's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Latest {
    /// The dataset (`forecasts`, `replenishment`).
    pub dataset: String,
    /// The newest run date published.
    pub run_date: NaiveDate,
    /// The run that published it.
    pub run_id: String,
    /// The manifest to read, relative to the lake root.
    pub manifest: String,
    /// The contract version of that dataset.
    pub contract_version: u32,
    /// When the pointer was written.
    pub updated_at: DateTime<Utc>,
}

/// Reads a dataset's pointer; `None` before its first publication.
pub async fn read(lake: &Lake, dataset: &str) -> Result<Option<Latest>> {
    let path = layout::latest(dataset);
    match lake.get_opt(&path).await? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Dataset { path: lake.display(&path), message: format!("unreadable pointer: {e}") }),
    }
}

/// Points the dataset at `latest` unless it already points at a newer run date; `true` when
/// the pointer was written. Call only after the run date's manifest is written.
pub async fn advance(lake: &Lake, latest: &Latest) -> Result<bool> {
    let rank_of = |b: bytes::Bytes| async move { Ok(serde_json::from_slice::<Latest>(&b).ok().map(|l| l.run_date)) };
    let bytes = serde_json::to_vec_pretty(latest)?.into();
    pointer::advance(lake, &layout::latest(&latest.dataset), bytes, &latest.run_date, rank_of).await
}

/// Registers the newest run date of each published dataset (`forecasts`, `replenishment`) in
/// `ctx` under the dataset's name, read through its pointer and manifest (checksums checked);
/// datasets never published are left out. Returns the names registered.
pub async fn register(
    ctx: &datafusion::prelude::SessionContext,
    lake: &Lake,
    datasets: &[&str],
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for name in datasets {
        let Some(pointer) = read(lake, name).await? else { continue };
        let dir = layout::dataset_root(name).join(format!("run_date={}", pointer.run_date).as_str());
        let (_, batches) = crate::lake::dataset::read(lake, &dir).await?;
        let Some(schema) = batches.first().map(|b| b.schema()) else { continue };
        let table = datafusion::datasource::MemTable::try_new(schema, vec![batches])?;
        ctx.deregister_table(*name)?;
        ctx.register_table(*name, std::sync::Arc::new(table))?;
        out.push(name.to_string());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(day: &str, run: &str) -> Latest {
        Latest {
            dataset: "forecasts".into(),
            run_date: day.parse().unwrap(),
            run_id: run.into(),
            manifest: format!("forecasts/run_date={day}/_manifest.json"),
            contract_version: 1,
            updated_at: DateTime::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn the_pointer_only_moves_forward() {
        let lake = Lake::in_memory();
        assert!(read(&lake, "forecasts").await.unwrap().is_none());
        assert!(advance(&lake, &at("2026-04-02", "b")).await.unwrap());
        assert!(!advance(&lake, &at("2026-04-01", "a")).await.unwrap(), "an older date leaves it");
        assert!(advance(&lake, &at("2026-04-02", "c")).await.unwrap(), "a rerun of the same date moves it");
        assert_eq!(read(&lake, "forecasts").await.unwrap().unwrap().run_id, "c");
    }
}
