//! Leases: at most one holder of a name at a time, across processes and machines, with nothing
//! but the object store between them.
//!
//! A lease is a folder (`leases/job=…/run_date=…/`, from [`layout::lease`]) of *generation*
//! objects `00000000000000000001.json`, `…02.json`, …, each written with a conditional put that
//! only succeeds when the object does not exist yet ([`Lake::put_if_absent`]). The highest
//! generation present is the lease's current state: who holds it and until when.
//!
//! - **Acquire**: read the highest generation `g`. If it is held by someone else and not expired
//!   (by the caller's clock), the lease is busy. Otherwise create `g + 1`: of several processes
//!   racing for a free or expired lease, exactly one creates it; the others find it exists and
//!   are told the lease is busy.
//! - **Renew**: the holder creates `g + 1` again, with a later expiry. If someone created it
//!   first (they saw our lease expired and took it over), the holder has lost the lease and must
//!   stop. A holder never renews a lease it already lets expire by its own clock.
//! - **Release**: the holder deletes its generations, so the next acquirer starts afresh.
//!
//! Why generations instead of one object updated with `PutMode::Update` (compare-and-swap on the
//! ETag): the local file system store of `object_store` 0.13 does not implement `Update`, while
//! create-if-absent works on local folders (a hard link), in memory and on S3 (`If-None-Match`).
//! Deleting an expired object and creating it again would not do either: two takers could both
//! delete and one would delete the other's fresh lease.
//!
//! Generations below the current one are deleted by whoever creates a newer one (best effort),
//! so a lease folder holds one or two objects. Because a generation may have been deleted and
//! re-created, the holder lists the folder after each renewal and gives the lease up if a
//! higher generation than its own exists.
//!
//! Expiry is judged with each process's own clock: keep the TTL well above the clock skew
//! between machines and the renewal interval (a third of the TTL) well below the TTL.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::Lake;
use crate::clock::Clock;
use crate::error::{Error, Result};

/// One generation of a lease, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaseState {
    /// Who holds it (host, process and a random part).
    pub holder: String,
    /// What the holder does under it (e.g. the run id).
    pub purpose: String,
    /// The generation number (the object's name).
    pub generation: u64,
    /// When the holder first acquired it.
    pub acquired_at: DateTime<Utc>,
    /// When this generation was written.
    pub renewed_at: DateTime<Utc>,
    /// When it lapses unless renewed.
    pub expires_at: DateTime<Utc>,
}

impl LeaseState {
    /// Whether the lease has lapsed at `now`.
    pub fn expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }
}

/// The outcome of [`Lease::acquire`].
// Short-lived and matched at once: not worth boxing the lease.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Acquired {
    /// The caller holds the lease now. `taken_over` is the expired state it replaced, if any.
    Held {
        /// The lease.
        lease: Lease,
        /// The previous holder's lapsed state, when the lease was taken over.
        taken_over: Option<LeaseState>,
    },
    /// Someone else holds it.
    Busy(LeaseState),
}

/// A lease this process holds.
#[derive(Debug)]
pub struct Lease {
    lake: Lake,
    dir: Path,
    ttl: Duration,
    state: LeaseState,
    /// Generations this holder wrote and has not deleted yet.
    mine: Vec<u64>,
}

fn object(dir: &Path, generation: u64) -> Path {
    dir.clone().join(format!("{generation:020}.json"))
}

fn generation_of(p: &Path) -> Option<u64> {
    p.filename()?.strip_suffix(".json")?.parse().ok()
}

fn ttl_delta(ttl: Duration) -> chrono::Duration {
    chrono::Duration::from_std(ttl).unwrap_or_else(|_| chrono::Duration::days(365))
}

/// The generations present in a lease folder, highest last.
async fn generations(lake: &Lake, dir: &Path) -> Result<Vec<u64>> {
    let mut g: Vec<u64> = lake.list(dir).await?.iter().filter_map(|m| generation_of(&m.location)).collect();
    g.sort_unstable();
    Ok(g)
}

/// The current state of the lease at `dir`: its highest generation, or `None` when free.
pub async fn current(lake: &Lake, dir: &Path) -> Result<Option<LeaseState>> {
    // A generation may vanish between the listing and the read (its holder released it):
    // then list again.
    for _ in 0..5 {
        let Some(&g) = generations(lake, dir).await?.last() else { return Ok(None) };
        if let Some(bytes) = lake.get_opt(&object(dir, g)).await? {
            let state = serde_json::from_slice(&bytes).map_err(|e| Error::Dataset {
                path: lake.display(&object(dir, g)),
                message: format!("unreadable lease: {e}"),
            })?;
            return Ok(Some(state));
        }
    }
    Ok(None)
}

impl Lease {
    /// Tries to take the lease at `dir` for `ttl`, as `holder`, for `purpose`.
    pub async fn acquire(
        lake: &Lake,
        dir: &Path,
        holder: &str,
        purpose: &str,
        ttl: Duration,
        now: DateTime<Utc>,
    ) -> Result<Acquired> {
        let before = current(lake, dir).await?;
        let taken_over = match &before {
            Some(s) if !s.expired(now) => return Ok(Acquired::Busy(s.clone())),
            other => other.clone(),
        };
        let generation = before.as_ref().map_or(1, |s| s.generation + 1);
        let state = LeaseState {
            holder: holder.to_string(),
            purpose: purpose.to_string(),
            generation,
            acquired_at: now,
            renewed_at: now,
            expires_at: now + ttl_delta(ttl),
        };
        if !lake.put_if_absent(&object(dir, generation), serde_json::to_vec_pretty(&state)?.into()).await? {
            // Someone else created this generation first.
            return match current(lake, dir).await? {
                Some(s) => Ok(Acquired::Busy(s)),
                None => Ok(Acquired::Busy(state)),
            };
        }
        for g in generations(lake, dir).await?.into_iter().filter(|&g| g < generation) {
            lake.delete(&object(dir, g)).await?;
        }
        debug!(lease = %dir, generation, "acquired");
        let lease = Lease { lake: lake.clone(), dir: dir.clone(), ttl, state, mine: vec![generation] };
        Ok(Acquired::Held { lease, taken_over })
    }

    /// The state this holder last wrote.
    pub fn state(&self) -> &LeaseState {
        &self.state
    }

    fn lost(&self, message: impl Into<String>) -> Error {
        Error::LeaseLost { lease: self.lake.display(&self.dir), message: message.into() }
    }

    /// Extends the lease to `now + ttl`; an error when it was lost.
    pub async fn renew(&mut self, now: DateTime<Utc>) -> Result<()> {
        if self.state.expired(now) {
            return Err(self.lost(format!("it expired at {} before it was renewed", self.state.expires_at)));
        }
        let next = LeaseState {
            generation: self.state.generation + 1,
            renewed_at: now,
            expires_at: now + ttl_delta(self.ttl),
            ..self.state.clone()
        };
        if !self
            .lake
            .put_if_absent(&object(&self.dir, next.generation), serde_json::to_vec_pretty(&next)?.into())
            .await?
        {
            return Err(self.lost("another process took it over"));
        }
        self.mine.push(next.generation);
        if generations(&self.lake, &self.dir).await?.last().is_some_and(|&g| g > next.generation) {
            return Err(self.lost("another process took it over"));
        }
        let previous = std::mem::replace(&mut self.state, next);
        self.lake.delete(&object(&self.dir, previous.generation)).await?;
        self.mine.retain(|&g| g != previous.generation);
        Ok(())
    }

    /// Gives the lease up.
    pub async fn release(self) -> Result<()> {
        for g in &self.mine {
            self.lake.delete(&object(&self.dir, *g)).await?;
        }
        debug!(lease = %self.dir, "released");
        Ok(())
    }

    /// Renews the lease in the background every third of its TTL until [`Keeper::release`].
    /// `lost` is cancelled if a renewal fails, so the work under the lease can stop.
    ///
    /// The renewals run on a thread of their own (with a one-thread runtime), not on the
    /// caller's runtime: the work under the lease (DataFusion's operators, model fits) can keep
    /// every worker of that runtime busy in long polls for longer than the TTL, and a renewal
    /// queued behind them would find the lease already expired.
    pub fn keep(self, clock: Arc<dyn Clock>) -> Keeper {
        let lost = CancellationToken::new();
        let stop = CancellationToken::new();
        let every = (self.ttl / 3).max(Duration::from_millis(10));
        let (lost2, stop2) = (lost.clone(), stop.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let renewals = move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    warn!(lease = %self.dir, cause = %e, "no runtime for the lease renewals");
                    lost2.cancel();
                    let _ = tx.send(None);
                    return;
                }
            };
            let kept = runtime.block_on(async move {
                let mut lease = self;
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tokio::select! {
                        _ = stop2.cancelled() => return Some(lease),
                        _ = tick.tick() => {
                            if let Err(e) = lease.renew(clock.now()).await {
                                warn!(lease = %lease.dir, cause = %e, "lease lost");
                                lost2.cancel();
                                return None;
                            }
                        }
                    }
                }
            });
            let _ = tx.send(kept);
        };
        if let Err(e) = std::thread::Builder::new().name("shelfcast-lease".into()).spawn(renewals) {
            warn!(cause = %e, "no thread for the lease renewals");
            lost.cancel();
        }
        Keeper { kept: Some(rx), stop, lost }
    }
}

/// A lease being renewed in the background; see [`Lease::keep`].
///
/// Dropping a keeper stops the renewals without releasing the lease, as a crash would: the
/// lease then lapses after its TTL.
#[derive(Debug)]
pub struct Keeper {
    /// The lease, handed back by the renewal thread when it stops (`None` when it was lost).
    kept: Option<tokio::sync::oneshot::Receiver<Option<Lease>>>,
    stop: CancellationToken,
    lost: CancellationToken,
}

impl Keeper {
    /// Cancelled when a renewal fails.
    pub fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    /// Stops the renewals and releases the lease (when it was not lost).
    pub async fn release(mut self) -> Result<()> {
        self.stop.cancel();
        match self.kept.take() {
            Some(rx) => match rx.await {
                Ok(Some(lease)) => lease.release().await,
                // Lost, or the renewal thread could not start: nothing of ours to delete.
                Ok(None) | Err(_) => Ok(()),
            },
            None => Ok(()),
        }
    }
}

impl Drop for Keeper {
    fn drop(&mut self) {
        // The thread sees the stop, hands the lease to a receiver that is gone, and ends.
        self.stop.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lake::layout;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 4, 1, 2, 0, 0).unwrap() + chrono::Duration::seconds(s)
    }

    fn dir() -> Path {
        layout::lease("nightly", chrono::NaiveDate::from_ymd_opt(2026, 4, 1).unwrap())
    }

    const TTL: Duration = Duration::from_secs(60);

    async fn take(lake: &Lake, holder: &str, now: DateTime<Utc>) -> Acquired {
        Lease::acquire(lake, &dir(), holder, "test", TTL, now).await.unwrap()
    }

    #[tokio::test]
    async fn one_holder_at_a_time_and_takeover_only_after_expiry() {
        let lake = Lake::in_memory();
        let Acquired::Held { lease: mut a, taken_over: None } = take(&lake, "a", t(0)).await else { panic!() };
        let Acquired::Busy(s) = take(&lake, "b", t(30)).await else { panic!("b must wait") };
        assert_eq!(s.holder, "a");
        a.renew(t(40)).await.unwrap();
        assert!(matches!(take(&lake, "b", t(90)).await, Acquired::Busy(_)), "renewed until t(100)");
        let Acquired::Held { lease: b, taken_over: Some(old) } = take(&lake, "b", t(101)).await else { panic!() };
        assert_eq!(old.holder, "a");
        // a was too late: its lease expired by its own clock, and b has a newer generation anyway.
        assert!(matches!(a.renew(t(95)).await, Err(Error::LeaseLost { .. })));
        assert_eq!(current(&lake, &dir()).await.unwrap().unwrap().holder, "b");
        b.release().await.unwrap();
        assert!(current(&lake, &dir()).await.unwrap().is_none());
        assert!(matches!(take(&lake, "c", t(102)).await, Acquired::Held { .. }));
    }

    #[tokio::test]
    async fn of_racing_takers_exactly_one_wins() {
        let lake = Lake::in_memory();
        let Acquired::Held { .. } = take(&lake, "dead", t(0)).await else { panic!() };
        let (x, y) = tokio::join!(take(&lake, "x", t(100)), take(&lake, "y", t(100)));
        let held = [&x, &y].iter().filter(|a| matches!(a, Acquired::Held { .. })).count();
        assert_eq!(held, 1, "{x:?} {y:?}");
    }

    #[tokio::test]
    async fn a_stale_holder_finds_out_at_its_next_renewal() {
        let lake = Lake::in_memory();
        let Acquired::Held { lease: mut a, .. } = take(&lake, "a", t(0)).await else { panic!() };
        // b judges a's lease expired (its clock runs ahead), takes it over and renews twice.
        let Acquired::Held { lease: mut b, .. } = take(&lake, "b", t(61)).await else { panic!() };
        b.renew(t(70)).await.unwrap();
        b.renew(t(80)).await.unwrap();
        // a's clock says its lease is still valid, but a newer generation exists.
        assert!(matches!(a.renew(t(50)).await, Err(Error::LeaseLost { .. })));
        assert_eq!(current(&lake, &dir()).await.unwrap().unwrap().holder, "b");
    }

    #[tokio::test]
    async fn works_on_a_local_folder() {
        let tmp = tempfile::tempdir().unwrap();
        let url = url::Url::from_directory_path(tmp.path()).unwrap();
        let lake = Lake::open(url.as_str(), &Default::default()).unwrap();
        let Acquired::Held { lease: mut a, .. } = take(&lake, "a", t(0)).await else { panic!() };
        assert!(matches!(take(&lake, "b", t(1)).await, Acquired::Busy(_)));
        a.renew(t(2)).await.unwrap();
        a.release().await.unwrap();
        assert!(lake.list(&dir()).await.unwrap().is_empty());
    }
}
