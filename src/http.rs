//! HTTP with a timeout, retries and backoff: what webhook deliveries and ingestion sources share.
//!
//! An attempt that times out, cannot connect, or gets a 5xx or 429 answer is retried after a
//! backoff that doubles each time; any other 4xx is final (retrying would get the same answer).
//! Waits go through the injected [`Clock`], so tests of several retries take no time. Each
//! attempt, body included, is bounded by the policy's timeout. Redirects and addresses are
//! guarded as [`crate::reach`] says.

use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tracing::warn;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::reach::Reach;

/// How hard to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Longest one attempt may take, answer body included.
    #[serde(with = "crate::period::duration")]
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// Wait before the first retry; doubles for each further one.
    #[serde(with = "crate::period::duration")]
    pub backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(10), retries: 3, backoff: Duration::from_secs(2) }
    }
}

impl RetryPolicy {
    /// The wait before retry number `retry` (1 for the first), at most an hour.
    pub fn backoff_before(&self, retry: u32) -> Duration {
        let factor = 1u32.checked_shl(retry.saturating_sub(1)).unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(Duration::from_secs(3600))
    }
}

/// A successful answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// HTTP status (2xx).
    pub status: u16,
    /// Response headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub body: Bytes,
    /// Attempts it took.
    pub attempts: u32,
}

/// A client whose every request is bounded by `timeout`, following redirects within one origin
/// only and refusing link-local and metadata addresses.
pub fn client(timeout: Duration) -> Result<reqwest::Client> {
    client_with(timeout, &Reach::default())
}

/// A client like [`client`], with what `reach` allows.
pub fn client_with(timeout: Duration, reach: &Reach) -> Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(timeout)
        .user_agent(concat!("shelfcast/", env!("CARGO_PKG_VERSION")))
        .redirect(crate::reach::redirect_policy(reach.clone()))
        .dns_resolver(crate::reach::GuardedResolver::new(reach.clone()))
        .build()
        .map_err(|e| Error::Http { target: "(client)".into(), attempts: 0, message: e.to_string(), status: None })
}

/// The most bytes of an answer body read when the caller sets no cap of its own.
pub const DEFAULT_MAX_BODY: u64 = 16 * 1024 * 1024;

/// Sends the request `build` makes (once per attempt) until it gets a 2xx answer or the policy
/// gives up; `target` names it in errors and logs (a URL without credentials). Answers longer
/// than [`DEFAULT_MAX_BODY`] fail.
pub async fn send(
    build: impl Fn() -> reqwest::RequestBuilder,
    policy: &RetryPolicy,
    clock: &dyn Clock,
    target: &str,
) -> Result<Answer> {
    send_capped(build, policy, DEFAULT_MAX_BODY, clock, target).await
}

/// [`send`], reading at most `max_body` bytes of an answer: a longer one fails (without retries),
/// its body never held whole.
pub async fn send_capped(
    build: impl Fn() -> reqwest::RequestBuilder,
    policy: &RetryPolicy,
    max_body: u64,
    clock: &dyn Clock,
    target: &str,
) -> Result<Answer> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let Failed { message, retryable, status } = match attempt_once(build(), max_body).await {
            Ok(mut answer) => {
                answer.attempts = attempt;
                return Ok(answer);
            }
            Err(failure) => failure,
        };
        if !retryable || attempt > policy.retries {
            return Err(Error::Http { target: target.to_string(), attempts: attempt, message, status });
        }
        let wait = policy.backoff_before(attempt);
        warn!(target = %target, attempt, retry_in = %humantime::format_duration(wait), cause = %message,
            "request failed; retrying");
        clock.sleep(wait).await;
    }
}

/// Why one attempt failed.
struct Failed {
    message: String,
    /// Whether another attempt may help.
    retryable: bool,
    /// The answer's status, when there was an answer.
    status: Option<u16>,
}

/// One attempt: the answer, or why it failed.
async fn attempt_once(req: reqwest::RequestBuilder, max_body: u64) -> std::result::Result<Answer, Failed> {
    let failed = |message: String, retryable: bool| Failed { message, retryable, status: None };
    let mut resp = req.send().await.map_err(|e| failed(describe(&e), !e.is_redirect()))?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let too_long = || failed(format!("the answer is longer than {max_body} bytes (the cap on its body)"), false);
    if resp.content_length().is_some_and(|n| n > max_body) {
        return Err(too_long());
    }
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| failed(describe(&e), true))? {
        if (body.len() + chunk.len()) as u64 > max_body {
            return Err(too_long());
        }
        body.extend_from_slice(&chunk);
    }
    let body = body.freeze();
    if status.is_success() {
        return Ok(Answer { status: status.as_u16(), headers, body, attempts: 0 });
    }
    let retryable = status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
    let text = String::from_utf8_lossy(&body[..body.len().min(200)]).trim().to_string();
    Err(Failed {
        message: format!("HTTP {status}{}", if text.is_empty() { String::new() } else { format!(": {text}") }),
        retryable,
        status: Some(status.as_u16()),
    })
}

/// A reqwest error with its kind first (`timed out`, `connection failed`).
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed"
    } else {
        "request failed"
    };
    match std::error::Error::source(e) {
        Some(cause) => format!("{kind}: {cause}"),
        None => kind.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let p = RetryPolicy { timeout: Duration::from_secs(1), retries: 5, backoff: Duration::from_secs(2) };
        assert_eq!(p.backoff_before(1), Duration::from_secs(2));
        assert_eq!(p.backoff_before(3), Duration::from_secs(8));
        assert_eq!(p.backoff_before(40), Duration::from_secs(3600));
    }
}
