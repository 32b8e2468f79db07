//! Time, injected.
//!
//! Only the binary's edge reads the wall clock; everything below it takes a
//! [`Clock`] (or an explicit date), so tests can pin "now" and two runs on the
//! same data produce the same output.
//!
//! Waits that belong to the schedule of a job (the backoff before a retry) go
//! through [`Clock::sleep`] too: the wall clock really waits, a [`FixedClock`]
//! moves itself forward and returns at once, so a test of three retries with a
//! minute of backoff takes no time and still records the minutes.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;

use chrono::{DateTime, NaiveDate, Utc};

/// A source of the current time.
pub trait Clock: std::fmt::Debug + Send + Sync {
    /// The current instant.
    fn now(&self) -> DateTime<Utc>;

    /// The current UTC date.
    fn today(&self) -> NaiveDate {
        self.now().date_naive()
    }

    /// Waits `d` of this clock's time.
    fn sleep(&self, d: std::time::Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// The wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// The wall clock's pace from a chosen start: `now()` is `start` plus the time elapsed since
/// the clock was made. The binary uses it when `SHELFCAST_NOW` pins the start (a rerun of a
/// past night as it ran then, a reproducible test), so sleeps, timeouts and leases still run
/// in real time.
#[derive(Debug, Clone, Copy)]
pub struct ShiftedClock {
    start: DateTime<Utc>,
    made: std::time::Instant,
}

impl ShiftedClock {
    /// A clock reading `start` now and moving on at the wall clock's pace.
    pub fn starting_at(start: DateTime<Utc>) -> Self {
        Self { start, made: std::time::Instant::now() }
    }

    /// Reads `SHELFCAST_NOW`'s value: an RFC 3339 instant (`2026-04-02T06:00:00Z`) or a date
    /// (`2026-04-02`, read as midnight UTC).
    pub fn parse_start(value: &str) -> Result<DateTime<Utc>, String> {
        let v = value.trim();
        if let Ok(t) = DateTime::parse_from_rfc3339(v) {
            return Ok(t.with_timezone(&Utc));
        }
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc())
            .ok_or_else(|| format!("`{v}` is neither an RFC 3339 time (2026-04-02T06:00:00Z) nor a date (2026-04-02)"))
    }
}

impl Clock for ShiftedClock {
    fn now(&self) -> DateTime<Utc> {
        self.start + chrono::Duration::from_std(self.made.elapsed()).unwrap_or_default()
    }
}

/// A clock that only moves when told to; for tests.
#[derive(Debug, Clone)]
pub struct FixedClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl FixedClock {
    /// A clock stopped at `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self { now: Arc::new(Mutex::new(now)) }
    }

    /// Moves the clock to `now`.
    pub fn set(&self, now: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = now;
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        let mut guard = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *guard += by;
    }
}

impl Clock for FixedClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the clock forward by `d` instead of waiting.
    fn sleep(&self, d: std::time::Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            self.advance(chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::days(36_500)));
            tokio::task::yield_now().await;
        })
    }
}
