//! Leases: at most one holder of a name at a time, across processes and machines, with nothing
//! but the object store between them.
//!
//! A lease is a folder (`leases/job=…/run_date=…/`, from [`crate::lake::layout::lease`]) of *generation*
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
//! - **Release**: the holder creates `g + 1` marked `released`, then deletes its older
//!   generations. The lease is free, and the next acquirer goes on from `g + 2`: generations
//!   never restart, so a generation names one holder's tenure for good.
//! - **Fencing**: a generation is a fencing token. Writes made under a lease ([`Fence`], set on
//!   the lake with [`Lake::with_fence`]) check before they commit a manifest or move a pointer
//!   that the holder's lease has not expired by its own clock and that no higher generation
//!   exists; a holder that lost the lease (a pause longer than the TTL, a renewal that hung)
//!   fails instead of overwriting the new holder's results.
//! - **Expiry by the holder's clock**: the background renewal ([`Lease::keep`]) gives up, and
//!   signals the work to stop, when a renewal has not succeeded by the current `expires_at`,
//!   even if the renewal is still waiting on the store. A renewal that fails with a store error
//!   is retried at the next tick while the lease is still valid; a failed delete of an older
//!   generation is only logged (it is deleted later).
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

use std::sync::{Arc, Mutex};
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
    /// The holder gave the lease up: the lease is free (the generation stays, so the next one
    /// follows it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub released: bool,
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
    /// The state last written, shared with the lease's fences; `None` once lost.
    held: Arc<Mutex<Option<LeaseState>>>,
}

/// What writes made under a lease check before they commit: that the lease is still held.
#[derive(Debug, Clone)]
pub struct Fence {
    lake: Lake,
    dir: Path,
    clock: Arc<dyn Clock>,
    held: Arc<Mutex<Option<LeaseState>>>,
}

impl Fence {
    /// An error when the holder's lease has expired by its clock, was lost, or a higher
    /// generation exists (another process took it over).
    pub async fn check(&self) -> Result<()> {
        let lost = |message: String| Error::LeaseLost { lease: self.lake.display(&self.dir), message };
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let Some(state) = held else { return Err(lost("its renewal failed; nothing more is committed".into())) };
        let now = self.clock.now();
        if state.expired(now) {
            return Err(lost(format!("generation {} expired at {} (now {now})", state.generation, state.expires_at)));
        }
        if let Some(&g) = generations(&self.lake, &self.dir).await?.last()
            && g > state.generation
        {
            return Err(lost(format!("generation {g} follows this holder's {}", state.generation)));
        }
        Ok(())
    }
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

/// The current holder's state of the lease at `dir`, or `None` when free (never taken, or
/// released).
pub async fn current(lake: &Lake, dir: &Path) -> Result<Option<LeaseState>> {
    Ok(newest(lake, dir).await?.filter(|s| !s.released))
}

/// The highest generation of the lease at `dir`, released or not.
async fn newest(lake: &Lake, dir: &Path) -> Result<Option<LeaseState>> {
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
        let before = newest(lake, dir).await?;
        let taken_over = match &before {
            Some(s) if !s.released && !s.expired(now) => return Ok(Acquired::Busy(s.clone())),
            Some(s) if !s.released => Some(s.clone()),
            _ => None,
        };
        let generation = before.as_ref().map_or(1, |s| s.generation + 1);
        let state = LeaseState {
            released: false,
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
            if let Err(e) = lake.delete(&object(dir, g)).await {
                debug!(lease = %dir, generation = g, cause = %e, "older generation not deleted; the next writer tries again");
            }
        }
        debug!(lease = %dir, generation, "acquired");
        let held = Arc::new(Mutex::new(Some(state.clone())));
        let lease = Lease { lake: lake.clone(), dir: dir.clone(), ttl, state, mine: vec![generation], held };
        Ok(Acquired::Held { lease, taken_over })
    }

    /// The state this holder last wrote.
    pub fn state(&self) -> &LeaseState {
        &self.state
    }

    fn lost(&self, message: impl Into<String>) -> Error {
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Error::LeaseLost { lease: self.lake.display(&self.dir), message: message.into() }
    }

    /// A fence for writes made under this lease, judging expiry by `clock`; it follows the
    /// lease's renewals.
    pub fn fence(&self, clock: Arc<dyn Clock>) -> Fence {
        Fence { lake: self.lake.clone(), dir: self.dir.clone(), clock, held: Arc::clone(&self.held) }
    }

    /// Deletes generations of this holder's below the current one; a failure is left for later.
    async fn tidy(&mut self) {
        let current = self.state.generation;
        let mut kept = Vec::new();
        for g in std::mem::take(&mut self.mine) {
            if g >= current {
                kept.push(g);
            } else if let Err(e) = self.lake.delete(&object(&self.dir, g)).await {
                warn!(lease = %self.dir, generation = g, cause = %e, "older lease generation not deleted; tried again later");
                kept.push(g);
            }
        }
        self.mine = kept;
    }

    /// Extends the lease to `now + ttl`; an error when it was lost.
    pub async fn renew(&mut self, now: DateTime<Utc>) -> Result<()> {
        if self.state.expired(now) {
            return Err(self.lost(format!("it expired at {} before it was renewed", self.state.expires_at)));
        }
        let mut next = LeaseState {
            generation: self.state.generation + 1,
            renewed_at: now,
            expires_at: now + ttl_delta(self.ttl),
            ..self.state.clone()
        };
        let path = object(&self.dir, next.generation);
        if !self.lake.put_if_absent(&path, serde_json::to_vec_pretty(&next)?.into()).await? {
            // An earlier renewal whose answer was lost (a reset connection, a failed listing
            // after the write) may have written it: then it is this holder's.
            let found = self.lake.get_opt(&path).await?.and_then(|b| serde_json::from_slice::<LeaseState>(&b).ok());
            match found {
                Some(s) if !s.released && s.holder == next.holder && s.acquired_at == next.acquired_at => next = s,
                _ => return Err(self.lost("another process took it over")),
            }
        }
        self.mine.push(next.generation);
        if generations(&self.lake, &self.dir).await?.last().is_some_and(|&g| g > next.generation) {
            return Err(self.lost("another process took it over"));
        }
        self.state = next;
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(self.state.clone());
        self.tidy().await;
        Ok(())
    }

    /// Gives the lease up: writes the next generation marked released (unless someone took the
    /// lease over meanwhile), then deletes this holder's older generations.
    pub async fn release(mut self) -> Result<()> {
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let released = LeaseState { released: true, generation: self.state.generation + 1, ..self.state.clone() };
        let path = object(&self.dir, released.generation);
        if self.lake.put_if_absent(&path, serde_json::to_vec_pretty(&released)?.into()).await? {
            self.state = released;
        }
        self.tidy().await;
        debug!(lease = %self.dir, generation = self.state.generation, "released");
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
                            // The renewal must succeed before the lease expires by this
                            // holder's clock, however long the store takes to answer.
                            let expires_at = lease.state.expires_at;
                            let left = (expires_at - clock.now()).to_std().unwrap_or(Duration::ZERO);
                            let cause = match tokio::time::timeout(left, lease.renew(clock.now())).await {
                                Ok(Ok(())) => continue,
                                Ok(Err(e @ Error::LeaseLost { .. })) => e.to_string(),
                                Ok(Err(e)) => {
                                    warn!(lease = %lease.dir, cause = %e, %expires_at, "lease renewal failed; tried again at the next tick");
                                    continue;
                                }
                                Err(_) => format!("no renewal succeeded before it expired at {expires_at}"),
                            };
                            *lease.held.lock().unwrap_or_else(|e| e.into_inner()) = None;
                            warn!(lease = %lease.dir, cause = %cause, "lease lost");
                            lost2.cancel();
                            return None;
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
    async fn a_renewal_finds_the_generation_an_earlier_attempt_wrote_is_its_own() {
        let lake = Lake::in_memory();
        let Acquired::Held { lease: mut a, .. } = take(&lake, "a", t(0)).await else { panic!() };
        // A renewal wrote generation 2, then failed before it knew (its listing was refused).
        let written = LeaseState { generation: 2, renewed_at: t(20), expires_at: t(80), ..a.state().clone() };
        lake.put(&object(&dir(), 2), serde_json::to_vec(&written).unwrap().into()).await.unwrap();
        a.renew(t(40)).await.unwrap();
        assert_eq!(a.state().generation, 2);
        a.renew(t(50)).await.unwrap();
        assert_eq!(current(&lake, &dir()).await.unwrap().unwrap().generation, 3);
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
        assert!(current(&lake, &dir()).await.unwrap().is_none());
        assert_eq!(lake.list(&dir()).await.unwrap().len(), 1, "only the released generation stays");
    }

    #[tokio::test]
    async fn generations_go_on_after_a_release_and_a_release_is_no_takeover() {
        let lake = Lake::in_memory();
        let Acquired::Held { lease: mut a, .. } = take(&lake, "a", t(0)).await else { panic!() };
        a.renew(t(10)).await.unwrap();
        let last = a.state().generation;
        a.release().await.unwrap();
        let Acquired::Held { lease: b, taken_over } = take(&lake, "b", t(11)).await else { panic!() };
        assert!(taken_over.is_none(), "a released lease is free, not abandoned");
        assert!(b.state().generation > last, "generation {} after {last}", b.state().generation);
    }
}
