//! Admission of queries, whichever protocol they come by: one pool of `max-queries` slots
//! over every connection of both endpoints, a deadline per query, a session of its own with
//! its own memory pool, and the one log line each query leaves when it is over.
//!
//! A protocol module ([`super::session`] for the PostgreSQL wire, [`super::flight`] for
//! Flight SQL) asks the [`Gate`] for a [`Pass`], runs the query on the pass's session, holds
//! the pass until the last row is sent, and tells the refusal or failure in its own terms.

use std::future::Future as _;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use datafusion::prelude::SessionContext;
use futures::Stream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use super::live::Live;

/// Limits on each query.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Longest a query may run, rows streamed included.
    pub timeout: Duration,
    /// Memory pool of one query in bytes; `None`: the session's.
    pub memory: Option<usize>,
    /// Queries running at once.
    pub max_queries: usize,
    /// How long a query waits for a slot.
    pub queue_wait: Duration,
}

/// Why a query was not let in.
#[derive(Debug)]
pub enum Refusal {
    /// The server is shutting down.
    ShuttingDown,
    /// No slot came free within `queue-wait`.
    Busy {
        /// `max-queries`.
        max_queries: usize,
        /// `queue-wait`.
        queue_wait: Duration,
    },
    /// The query's session could not be made.
    Session(crate::error::Error),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ShuttingDown => write!(f, "the server is shutting down; reconnect later"),
            Self::Busy { max_queries, queue_wait } => write!(
                f,
                "too many queries: {max_queries} are running (serve.max-queries); none finished within {} \
                 (serve.queue-wait), try again",
                humantime::format_duration(*queue_wait)
            ),
            Self::Session(e) => write!(f, "cannot open a session for the query: {e}"),
        }
    }
}

/// Who sent a query, for its log line.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The user name the client logged in as (empty when none).
    pub user: String,
    /// The client's address.
    pub peer: String,
    /// The protocol (`pg`, `flight`).
    pub protocol: &'static str,
}

/// Lets queries in, shared by every connection of both endpoints.
pub struct Gate {
    live: Arc<Live>,
    limits: Limits,
    slots: Arc<Semaphore>,
    draining: AtomicBool,
}

impl Gate {
    /// A gate over `live` with `limits`.
    pub fn new(live: Arc<Live>, limits: Limits) -> Self {
        let slots = Arc::new(Semaphore::new(limits.max_queries));
        Self { live, limits, slots, draining: AtomicBool::new(false) }
    }

    /// The catalog queries run on.
    pub fn live(&self) -> &Arc<Live> {
        &self.live
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Refuses every query from now on (shutdown).
    pub fn drain(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Queries running now.
    pub fn running(&self) -> usize {
        self.limits.max_queries - self.slots.available_permits()
    }

    /// Returns once no query is running.
    pub async fn idle(&self) {
        let _all = self.slots.acquire_many(self.limits.max_queries as u32).await;
    }

    /// Admits one query: a slot within `queue-wait`, a deadline (the server's timeout, or the
    /// client's when shorter), a session of its own over the current snapshot. A refusal is
    /// logged as the query's line.
    pub async fn admit(&self, client: Client, sql: &str, client_limit: Option<Duration>) -> Result<Pass, Refusal> {
        let log = QueryLog::new(client, sql);
        if self.draining.load(Ordering::SeqCst) {
            log.fail("shutting down");
            return Err(Refusal::ShuttingDown);
        }
        let permit = match tokio::time::timeout(self.limits.queue_wait, Arc::clone(&self.slots).acquire_owned()).await {
            Ok(Ok(p)) => p,
            _ => {
                log.fail("no free slot");
                return Err(Refusal::Busy { max_queries: self.limits.max_queries, queue_wait: self.limits.queue_wait });
            }
        };
        let limit = client_limit.filter(|c| !c.is_zero()).map_or(self.limits.timeout, |c| c.min(self.limits.timeout));
        let session = match self.live.current().query_session(self.limits.memory) {
            Ok(s) => s,
            Err(e) => {
                log.fail(&e.to_string());
                return Err(Refusal::Session(e));
            }
        };
        Ok(Pass {
            session,
            memory: self.limits.memory,
            deadline: Instant::now() + limit,
            limit,
            log: Arc::new(log),
            permit: Arc::new(permit),
        })
    }
}

/// A query let in: its session, deadline, log line and slot (held while any clone lives).
#[derive(Clone)]
pub struct Pass {
    /// The session the query runs on.
    pub session: SessionContext,
    /// The memory pool of the session in bytes.
    pub memory: Option<usize>,
    /// When the query is stopped.
    pub deadline: Instant,
    /// The time limit the deadline came from (for the message).
    pub limit: Duration,
    /// The query's log line.
    pub log: Arc<QueryLog>,
    /// The slot.
    pub permit: Arc<OwnedSemaphorePermit>,
}

impl Pass {
    /// The message of a query stopped at its deadline.
    pub fn timeout_message(&self) -> String {
        timeout_message(self.limit)
    }

    /// DataFusion's "Resources exhausted" told as the server's budget, naming the setting;
    /// `None` when `text` is another error.
    pub fn over_budget(&self, text: &str) -> Option<String> {
        over_budget(text, self.memory)
    }
}

/// How a guarded stream of results stopped early.
#[derive(Debug)]
pub enum Stop<E> {
    /// At the query's deadline.
    Timeout,
    /// With this error from the query.
    Failed(E),
}

/// A query's results (rows, batches): stopped at the pass's deadline even when they stream
/// without pause, counted into its log line (`count` tells how many rows one item holds),
/// holding the pass (and so the slot) until the last one is sent or the stream is dropped.
pub struct Guarded<S, T> {
    items: S,
    sleep: Pin<Box<Sleep>>,
    pass: Pass,
    count: fn(&T) -> u64,
    done: bool,
}

impl<S, T> Guarded<S, T> {
    /// Guards `items` with `pass`.
    pub fn new(items: S, pass: Pass, count: fn(&T) -> u64) -> Self {
        let sleep = Box::pin(tokio::time::sleep_until(pass.deadline));
        Self { items, sleep, pass, count, done: false }
    }
}

impl<S, T, E> Stream for Guarded<S, T>
where
    S: Stream<Item = Result<T, E>> + Unpin,
    E: std::fmt::Display,
{
    type Item = Result<T, Stop<E>>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        if self.sleep.as_mut().poll(cx).is_ready() {
            self.done = true;
            self.pass.log.fail("timed out");
            return Poll::Ready(Some(Err(Stop::Timeout)));
        }
        match Pin::new(&mut self.items).poll_next(cx) {
            Poll::Ready(Some(Ok(item))) => {
                self.pass.log.add_rows((self.count)(&item));
                Poll::Ready(Some(Ok(item)))
            }
            Poll::Ready(Some(Err(e))) => {
                self.done = true;
                let text = e.to_string();
                self.pass.log.fail(&self.pass.over_budget(&text).unwrap_or(text));
                Poll::Ready(Some(Err(Stop::Failed(e))))
            }
            Poll::Ready(None) => {
                self.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The message of a query stopped after `limit`.
pub fn timeout_message(limit: Duration) -> String {
    format!(
        "canceling statement due to statement timeout ({}; serve.query-timeout or the client's statement_timeout)",
        humantime::format_duration(limit)
    )
}

/// The message of a query past its memory pool of `memory` bytes, when `text` is DataFusion's
/// "Resources exhausted"; `None` otherwise.
pub fn over_budget(text: &str, memory: Option<usize>) -> Option<String> {
    match (text.contains("Resources exhausted"), memory) {
        (true, Some(bytes)) => Some(format!(
            "the query needs more than its memory budget of {} MiB (serve.query-memory-mb): {}",
            bytes / (1024 * 1024),
            text.trim_start_matches("SQL error: ")
        )),
        _ => None,
    }
}

/// The log line of one query, written when the query is over (its last rows sent, or failed).
pub struct QueryLog {
    client: Client,
    sql: String,
    started: Instant,
    rows: AtomicU64,
    failure: Mutex<Option<String>>,
}

/// Longest statement text a log line carries.
const LOGGED_SQL: usize = 300;

impl QueryLog {
    /// The line of `sql` from `client`, its clock started now.
    pub fn new(client: Client, sql: &str) -> Self {
        let mut text: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.len() > LOGGED_SQL {
            let mut end = LOGGED_SQL;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        Self { client, sql: text, started: Instant::now(), rows: AtomicU64::new(0), failure: Mutex::new(None) }
    }

    /// Counts `n` rows sent.
    pub fn add_rows(&self, n: u64) {
        self.rows.fetch_add(n, Ordering::Relaxed);
    }

    /// Records why the query failed (the first reason wins).
    pub fn fail(&self, why: &str) {
        let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none() {
            *f = Some(why.to_string());
        }
    }
}

impl Drop for QueryLog {
    fn drop(&mut self) {
        let ms = self.started.elapsed().as_millis() as u64;
        let rows = self.rows.load(Ordering::Relaxed);
        let failure = self.failure.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Client { user, peer, protocol } = &self.client;
        match failure {
            None => tracing::info!(%user, %peer, protocol, ms, rows, sql = %self.sql, "query"),
            Some(error) => tracing::info!(%user, %peer, protocol, ms, rows, sql = %self.sql, %error, "query failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_told_by_their_setting() {
        assert!(timeout_message(Duration::from_secs(2)).contains("serve.query-timeout"));
        let m = over_budget("Resources exhausted: Failed to allocate", Some(64 << 20)).unwrap();
        assert!(m.contains("64 MiB") && m.contains("serve.query-memory-mb"), "{m}");
        assert!(over_budget("Resources exhausted", None).is_none());
        assert!(over_budget("table not found", Some(1)).is_none());
        let busy = Refusal::Busy { max_queries: 2, queue_wait: Duration::from_secs(1) }.to_string();
        assert!(busy.contains("serve.max-queries") && busy.contains("serve.queue-wait"), "{busy}");
    }
}
