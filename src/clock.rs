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
