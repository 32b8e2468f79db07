//! Pointers that only move forward: small JSON objects (`models/<name>/latest.json`,
//! `models/champions.json`) naming the newest of something, which work on an older date (a
//! backfill, a late rerun) must never move back.
//!
//! [`advance`] writes a pointer only when what it points at ranks at least as high as what the
//! stored pointer points at (a cutoff, then a creation time). The check and the write are one
//! compare-and-swap where the store has one (memory, S3 with conditional puts, GCS, Azure): a
//! writer that lost a race reads the winner's pointer and compares again. On a store without
//! (local folders), two writers racing in the instant between the read and the write can still
//! leave the lower one; the next forward write corrects it.

use std::future::Future;

use bytes::Bytes;
use object_store::path::Path;
use tracing::debug;

use super::{Lake, Swap};
use crate::error::Result;

/// Attempts before giving up on a pointer that keeps changing under the writer.
const ATTEMPTS: usize = 8;

/// Writes `bytes` at `path` unless the stored pointer ranks higher than `rank`; `true` when it
/// was written. `rank_of` reads a stored pointer's rank (`None`: unknown, e.g. an older format,
/// which any new pointer replaces). Equal ranks are replaced, so a rerun of the newest date
/// moves the pointer to the rerun's result.
pub async fn advance<K, F, Fut>(lake: &Lake, path: &Path, bytes: Bytes, rank: &K, rank_of: F) -> Result<bool>
where
    K: Ord + std::fmt::Debug,
    F: Fn(Bytes) -> Fut,
    Fut: Future<Output = Result<Option<K>>>,
{
    for _ in 0..ATTEMPTS {
        let Some((current, version)) = lake.get_versioned(path).await? else {
            if lake.put_if_absent(path, bytes.clone()).await? {
                return Ok(true);
            }
            continue;
        };
        if let Some(stored) = rank_of(current).await?
            && stored > *rank
        {
            debug!(pointer = %path, ?stored, new = ?rank, "pointer kept: it already points further");
            return Ok(false);
        }
        match lake.put_if_unchanged(path, bytes.clone(), version).await? {
            Swap::Done => return Ok(true),
            Swap::Changed => continue,
            Swap::Unsupported => {
                lake.put(path, bytes).await?;
                return Ok(true);
            }
        }
    }
    Err(crate::error::Error::Dataset {
        path: lake.display(path),
        message: format!("the pointer changed under each of {ATTEMPTS} attempts to move it"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(b: Bytes) -> std::future::Ready<Result<Option<u32>>> {
        std::future::ready(Ok(std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok())))
    }

    async fn moves_forward_only(lake: &Lake) {
        let p = Path::from("p/latest.json");
        assert!(advance(lake, &p, "5".into(), &5, rank).await.unwrap());
        assert!(!advance(lake, &p, "3".into(), &3, rank).await.unwrap(), "an older rank leaves it");
        assert!(advance(lake, &p, "5".into(), &5, rank).await.unwrap(), "an equal rank replaces it");
        assert!(advance(lake, &p, "7".into(), &7, rank).await.unwrap());
        assert_eq!(lake.get(&p).await.unwrap(), Bytes::from("7"));
        // A pointer of unknown rank is replaced.
        lake.put(&p, "old format".into()).await.unwrap();
        assert!(advance(lake, &p, "1".into(), &1, rank).await.unwrap());
    }

    #[tokio::test]
    async fn moves_forward_only_in_memory_and_on_a_local_folder() {
        moves_forward_only(&Lake::in_memory()).await;
        let tmp = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(tmp.path()).unwrap();
        moves_forward_only(&Lake::open(url.as_str(), &Default::default()).unwrap()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_racing_writers_the_highest_rank_stays() {
        let lake = Lake::in_memory();
        let p = Path::from("p/latest.json");
        let writes: Vec<_> = (1..=20u32)
            .map(|r| {
                let (lake, p) = (lake.clone(), p.clone());
                tokio::spawn(async move { advance(&lake, &p, r.to_string().into(), &r, rank).await.unwrap() })
            })
            .collect();
        for w in writes {
            w.await.unwrap();
        }
        assert_eq!(lake.get(&p).await.unwrap(), Bytes::from("20"));
    }
}
