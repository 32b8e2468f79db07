//! Webhooks: after publishing, the manifests are POSTed to every configured receiver.
//!
//! ```toml
//! [webhooks.planning]
//! url = "https://planning.example.com/hooks/shelfcast"
//! secret-env = "SHELFCAST_WEBHOOK_PLANNING_KEY"   # the variable holding the signing key
//! timeout = "10s"
//! retries = 3
//! backoff = "2s"
//! max-attempts = 50         # over every run; then the delivery is dropped, with a record
//! max-pending-age = "7d"    # a pending delivery older than this is dropped, with a record
//! ```
//!
//! The body is JSON (see [`payload`]). Every attempt is signed with HMAC-SHA256 under the key
//! read from the named environment variable, over its timestamp, the delivery id and the body
//! (see [`super::signature`]): `X-Shelfcast-Signature: sha256=<hex>`, `X-Shelfcast-Timestamp`
//! (Unix seconds), `X-Shelfcast-Delivery` (the run id: the same delivery retried carries the
//! same id, so receivers can drop repeats) and `X-Shelfcast-Event`.
//!
//! The run's delivery is written to `notifications/pending/webhook=<name>/<delivery>.json`, with
//! its exact body, before anything is sent, so a process killed mid-delivery leaves it for the
//! next run. Then the deliveries left by earlier runs are sent (oldest first), then the run's own,
//! each with the webhook's timeout, retries and backoff ([`crate::http`]). One that goes through
//! is deleted; one that fails stays, with its attempts counted, and the next notification to
//! that webhook tries it again. A delivery is dropped, its record written to
//! `notifications/dropped/webhook=<name>/<delivery>.json` with the reason, when the receiver
//! refuses it for good (a 4xx other than 408 and 429), when its attempts reach `max-attempts`,
//! or when it has waited longer than `max-pending-age`. A pending file that cannot be read is
//! moved to `quarantine/notifications/webhook=<name>/` and the others are sent. A failed delivery
//! never fails the run: the forecasts are published before anyone is told, and stay published.
//! Deleting a pending file drops that delivery.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use tracing::{Instrument, info, info_span, instrument, warn};

use super::signature;
pub use super::signature::{REPLAY_WINDOW, Received, Rejected, verify};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::http::{self, RetryPolicy};
use crate::lake::{Lake, layout};
use crate::names::{valid_env_name, valid_name};
use crate::secrets::Secrets;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Shelfcast-Signature";
/// The header naming the event.
pub const EVENT_HEADER: &str = "X-Shelfcast-Event";
/// The header carrying the delivery id.
pub const DELIVERY_HEADER: &str = "X-Shelfcast-Delivery";
/// The header carrying the time an attempt was signed, in Unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Shelfcast-Timestamp";
/// The event sent after a nightly publication.
pub const EVENT_PUBLISHED: &str = "forecasts.published";

/// One `[webhooks.NAME]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct WebhookSettings {
    /// Where to POST (http or https).
    pub url: String,
    /// The environment variable holding the HMAC key (never the key itself).
    pub secret_env: String,
    /// Longest one attempt may take.
    #[serde(default = "default_timeout", with = "crate::period::duration")]
    pub timeout: Duration,
    /// Attempts after the first, within one run.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Wait before the first retry; doubles for each further one.
    #[serde(default = "default_backoff", with = "crate::period::duration")]
    pub backoff: Duration,
    /// Whether a link-local or cloud metadata address may be reached (see [`crate::reach`]).
    #[serde(default)]
    pub allow_link_local: bool,
    /// Attempts of one delivery, over every run, after which it is dropped (with a record).
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// How long a delivery may wait in `notifications/pending/` before it is dropped (with a
    /// record) instead of sent again.
    #[serde(default = "default_max_pending_age", with = "crate::period::duration")]
    pub max_pending_age: Duration,
}

fn default_timeout() -> Duration {
    RetryPolicy::default().timeout
}
fn default_retries() -> u32 {
    RetryPolicy::default().retries
}
fn default_backoff() -> Duration {
    RetryPolicy::default().backoff
}
/// Attempts of one delivery, over every run, when the settings name none.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 50;
/// How long a delivery may stay pending when the settings name no limit: a week.
pub const DEFAULT_MAX_PENDING_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
fn default_max_attempts() -> u32 {
    DEFAULT_MAX_ATTEMPTS
}
fn default_max_pending_age() -> Duration {
    DEFAULT_MAX_PENDING_AGE
}

impl WebhookSettings {
    /// The retry policy of its deliveries.
    pub fn policy(&self) -> RetryPolicy {
        RetryPolicy { timeout: self.timeout, retries: self.retries, backoff: self.backoff }
    }

    /// What its deliveries may reach: its own origin; link-local addresses when allowed.
    pub fn reach(&self) -> crate::reach::Reach {
        crate::reach::Reach { origins: Vec::new(), link_local: self.allow_link_local }
    }

    /// Checks the URL and the variable name; `name` is the table's.
    pub fn validate(&self, name: &str) -> std::result::Result<(), String> {
        valid_name(name).map_err(|m| format!("webhook name {m}"))?;
        let url = url::Url::parse(&self.url).map_err(|e| format!("url `{}`: {e}", self.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("url `{}` must be http or https", self.url));
        }
        crate::reach::check_url(&url, &self.reach()).map_err(|m| format!("url {m}"))?;
        valid_env_name(&self.secret_env)?;
        if self.max_attempts == 0 {
            return Err("max-attempts must be at least 1".into());
        }
        if self.max_pending_age.is_zero() {
            return Err("max-pending-age must be longer than 0s".into());
        }
        Ok(())
    }
}

/// The notification body after a run published: the event, the run, and each dataset's
/// location and manifest.
pub fn payload(
    run_id: &str,
    run_date: NaiveDate,
    lake_root: &str,
    datasets: &[(&str, String, serde_json::Value)],
) -> serde_json::Value {
    let mut sets = serde_json::Map::new();
    for (name, location, manifest) in datasets {
        sets.insert(name.to_string(), serde_json::json!({ "location": location, "manifest": manifest }));
    }
    serde_json::json!({
        "event": EVENT_PUBLISHED,
        "run_id": run_id,
        "run_date": run_date.to_string(),
        "lake": lake_root,
        "datasets": sets,
    })
}

/// A delivery that has not gone through yet, as stored in the lake.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pending {
    /// Its id (the run that made it).
    pub delivery_id: String,
    /// The webhook.
    pub webhook: String,
    /// The event.
    pub event: String,
    /// The run date it announces.
    pub run_date: NaiveDate,
    /// When it was first tried.
    pub created_at: DateTime<Utc>,
    /// Attempts so far, over every run.
    pub attempts: u32,
    /// Why the last attempt failed.
    pub last_error: String,
    /// The exact body, sent again as it is.
    pub body: String,
}

/// A delivery given up, as recorded in `notifications/dropped/`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Dropped {
    /// When it was given up.
    pub dropped_at: DateTime<Utc>,
    /// Why: the receiver's refusal, the attempts or the age, with the last failure.
    pub reason: String,
    /// The delivery as it last stood, body included.
    #[serde(flatten)]
    pub delivery: Pending,
}

/// How a delivery ended in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered,
    /// It failed and waits in `notifications/pending/`.
    Pending,
    /// It was given up and recorded in `notifications/dropped/`.
    Dropped,
}

/// One delivery attempted in this run.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryReport {
    /// The webhook.
    pub webhook: String,
    /// The delivery id.
    pub delivery_id: String,
    /// The run date it announces.
    pub run_date: NaiveDate,
    /// Whether it was left pending by an earlier run.
    pub retry: bool,
    /// How it ended.
    pub outcome: Outcome,
    /// Attempts in this run.
    pub attempts: u32,
    /// The last failure, when pending; why it was given up, when dropped.
    pub error: Option<String>,
}

/// What a notification did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct NotifyMetrics {
    /// Webhooks configured.
    pub webhooks: usize,
    /// Deliveries that went through.
    pub delivered: usize,
    /// Deliveries left pending.
    pub pending: usize,
    /// Deliveries given up (recorded in `notifications/dropped/`).
    pub dropped: usize,
    /// Pending files that could not be read, moved to `quarantine/notifications/`.
    pub unreadable: Vec<String>,
    /// Each delivery.
    pub deliveries: Vec<DeliveryReport>,
    /// A remark (`no webhooks configured`).
    pub note: Option<String>,
}

/// Where the record of a delivery given up is written (beside `notifications/pending/`, whose
/// paths [`layout`] spells).
pub fn dropped_notification(webhook: &str, delivery_id: &str) -> Path {
    dropped_notifications(webhook).join(format!("{delivery_id}.json").as_str())
}

/// The folder of the records of deliveries to `webhook` given up.
pub fn dropped_notifications(webhook: &str) -> Path {
    Path::from_iter(["notifications".to_string(), "dropped".to_string(), format!("webhook={webhook}")])
}

/// Where a pending file that could not be read is moved.
pub fn unreadable_notification(webhook: &str, file: &str) -> Path {
    Path::from_iter(["quarantine".to_string(), "notifications".to_string(), format!("webhook={webhook}"), file.into()])
}

/// Sends `body` to every webhook after retrying its pending deliveries; records what fails.
#[instrument(skip_all, fields(run_id = run_id, run_date = %run_date, webhooks = webhooks.len()))]
pub async fn notify(
    lake: &Lake,
    webhooks: &BTreeMap<String, WebhookSettings>,
    secrets: &Secrets,
    body: &serde_json::Value,
    run_id: &str,
    run_date: NaiveDate,
    clock: &dyn Clock,
) -> Result<NotifyMetrics> {
    let mut m = NotifyMetrics { webhooks: webhooks.len(), ..Default::default() };
    if webhooks.is_empty() {
        info!("no webhooks configured");
        m.note = Some("no webhooks configured".into());
        return Ok(m);
    }
    let body = serde_json::to_string(body)?;
    for (name, hook) in webhooks {
        let new = Pending {
            delivery_id: run_id.to_string(),
            webhook: name.clone(),
            event: EVENT_PUBLISHED.to_string(),
            run_date,
            created_at: clock.now(),
            attempts: 0,
            last_error: String::new(),
            body: body.clone(),
        };
        let span = info_span!("webhook", webhook = %name);
        notify_one(lake, name, hook, secrets, new, clock, &mut m).instrument(span).await?;
    }
    info!(delivered = m.delivered, pending = m.pending, dropped = m.dropped, "notified");
    Ok(m)
}

/// The deliveries to one webhook: the run's own `new` saved first, then the waiting ones and it.
async fn notify_one(
    lake: &Lake,
    name: &str,
    hook: &WebhookSettings,
    secrets: &Secrets,
    new: Pending,
    clock: &dyn Clock,
    m: &mut NotifyMetrics,
) -> Result<()> {
    let client = http::client_with(hook.timeout, &hook.reach())?;
    let (mut queue, unreadable) = read_queue(lake, name).await?;
    for (path, why) in unreadable {
        let file = path.filename().unwrap_or("pending.json").to_string();
        let aside = unreadable_notification(name, &file);
        warn!(file = %lake.display(&path), cause = %why, to = %lake.display(&aside),
            "unreadable pending delivery; moved aside");
        if let Err(e) = lake.rename(&path, &aside).await {
            warn!(file = %lake.display(&path), cause = %e, "could not move the unreadable pending delivery; skipped");
        }
        m.unreadable.push(lake.display(&path));
    }
    // A rerun of the same run id replaces its own pending copy instead of sending it twice.
    queue.retain(|(_, p)| p.delivery_id != new.delivery_id);
    let retries = queue.len();
    let path = layout::pending_notification(name, &new.delivery_id);
    // Saved before anything is sent: a process killed from here on leaves it to the next run.
    lake.put(&path, serde_json::to_vec_pretty(&new)?.into()).await?;
    queue.push((path, new));
    for (i, (path, mut d)) in queue.into_iter().enumerate() {
        let retry = i < retries;
        let (outcome, attempts, error) = if let Some(why) = exhausted(hook, &d, clock.now()) {
            drop_delivery(lake, &path, &d, &why, clock).await?;
            (Outcome::Dropped, 0, Some(why))
        } else {
            match deliver(&client, hook, name, &d, secrets, clock).await {
                Ok(attempts) => {
                    lake.delete(&path).await?;
                    (Outcome::Delivered, attempts, None)
                }
                Err(f) => {
                    d.attempts += f.attempts;
                    d.last_error = f.message.clone();
                    let given_up = if f.refused {
                        Some(format!("the receiver refused it: {}", f.message))
                    } else {
                        exhausted(hook, &d, clock.now()).map(|why| format!("{why}; last failure: {}", f.message))
                    };
                    match given_up {
                        Some(why) => {
                            drop_delivery(lake, &path, &d, &why, clock).await?;
                            (Outcome::Dropped, f.attempts, Some(why))
                        }
                        None => {
                            warn!(delivery = %d.delivery_id, cause = %f.message, "delivery failed; kept for the next run");
                            lake.put(&path, serde_json::to_vec_pretty(&d)?.into()).await?;
                            (Outcome::Pending, f.attempts, Some(f.message))
                        }
                    }
                }
            }
        };
        match outcome {
            Outcome::Delivered => m.delivered += 1,
            Outcome::Pending => m.pending += 1,
            Outcome::Dropped => m.dropped += 1,
        }
        m.deliveries.push(DeliveryReport {
            webhook: name.to_string(),
            delivery_id: d.delivery_id.clone(),
            run_date: d.run_date,
            retry,
            outcome,
            attempts,
            error,
        });
    }
    Ok(())
}

/// Why `d` is not to be sent again: out of attempts, or waiting longer than the webhook allows.
fn exhausted(hook: &WebhookSettings, d: &Pending, now: DateTime<Utc>) -> Option<String> {
    if d.attempts >= hook.max_attempts {
        return Some(format!("{} attempts made (max-attempts = {})", d.attempts, hook.max_attempts));
    }
    let waited = now - d.created_at;
    let limit = chrono::Duration::from_std(hook.max_pending_age).unwrap_or(chrono::Duration::MAX);
    if waited > limit {
        let waited = waited.to_std().unwrap_or_default();
        return Some(format!(
            "pending since {} ({} ago; max-pending-age = {})",
            d.created_at.to_rfc3339(),
            humantime::format_duration(Duration::from_secs(waited.as_secs())),
            humantime::format_duration(hook.max_pending_age),
        ));
    }
    None
}

/// Gives `d` up: its record in `notifications/dropped/`, then its pending file deleted.
async fn drop_delivery(lake: &Lake, path: &Path, d: &Pending, why: &str, clock: &dyn Clock) -> Result<()> {
    warn!(delivery = %d.delivery_id, reason = %why, "delivery dropped");
    let record = Dropped { dropped_at: clock.now(), reason: why.to_string(), delivery: d.clone() };
    lake.put(&dropped_notification(&d.webhook, &d.delivery_id), serde_json::to_vec_pretty(&record)?.into()).await?;
    lake.delete(path).await
}

/// Why a delivery failed in this run.
struct Failure {
    /// Attempts made.
    attempts: u32,
    /// The last failure.
    message: String,
    /// Whether the receiver's answer is final: a 4xx other than 408 and 429.
    refused: bool,
}

/// One delivery with the webhook's retry policy, each attempt signed when sent: the attempts it
/// took, or why it failed.
async fn deliver(
    client: &reqwest::Client,
    hook: &WebhookSettings,
    name: &str,
    d: &Pending,
    secrets: &Secrets,
    clock: &dyn Clock,
) -> std::result::Result<u32, Failure> {
    let key = secrets.get(&hook.secret_env).ok_or_else(|| Failure {
        attempts: 0,
        message: format!("the signing key variable {} is not set", hook.secret_env),
        refused: false,
    })?;
    let build = || {
        let timestamp = clock.now().timestamp();
        let sig = signature::signature(key.as_bytes(), timestamp, &d.delivery_id, d.body.as_bytes());
        client
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, sig)
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(EVENT_HEADER, &d.event)
            .header(DELIVERY_HEADER, &d.delivery_id)
            .body(d.body.clone())
    };
    // Retries within the run stop where the delivery would pass max-attempts.
    let mut policy = hook.policy();
    policy.retries = policy.retries.min(hook.max_attempts.saturating_sub(d.attempts).saturating_sub(1));
    match http::send(build, &policy, clock, &format!("webhook `{name}`")).await {
        Ok(answer) => Ok(answer.attempts),
        Err(Error::Http { attempts, message, status, .. }) => {
            Err(Failure { attempts, refused: refused(status), message })
        }
        Err(e) => Err(Failure { attempts: 1, message: e.to_string(), refused: false }),
    }
}

/// Whether a failure is an answer that sending again cannot change: a 4xx other than 408
/// (request timeout) and 429 (too many requests).
fn refused(status: Option<u16>) -> bool {
    status.is_some_and(|c| (400..500).contains(&c) && c != 408 && c != 429)
}

/// The readable deliveries in `webhook`'s pending folder with their files, oldest first, and the
/// files that could not be read with why.
async fn read_queue(lake: &Lake, webhook: &str) -> Result<(Vec<(Path, Pending)>, Vec<(Path, String)>)> {
    let (mut out, mut unreadable) = (Vec::new(), Vec::new());
    for obj in lake.list(&layout::pending_notifications(webhook)).await? {
        if !obj.location.as_ref().ends_with(".json") {
            continue;
        }
        // Gone since the listing (another run delivered it): nothing to send.
        let Some(bytes) = lake.get_opt(&obj.location).await? else { continue };
        match serde_json::from_slice::<Pending>(&bytes) {
            Ok(p) => out.push((obj.location, p)),
            Err(e) => unreadable.push((obj.location, e.to_string())),
        }
    }
    out.sort_by(|(_, a), (_, b)| a.created_at.cmp(&b.created_at).then_with(|| a.delivery_id.cmp(&b.delivery_id)));
    Ok((out, unreadable))
}

/// The deliveries to `webhook` waiting from earlier runs, oldest first; files that cannot be read
/// are left out (the next notification moves them aside).
pub async fn pending(lake: &Lake, webhook: &str) -> Result<Vec<Pending>> {
    Ok(read_queue(lake, webhook).await?.0.into_iter().map(|(_, p)| p).collect())
}

/// The deliveries to `webhook` given up so far, in the order of their ids.
pub async fn dropped(lake: &Lake, webhook: &str) -> Result<Vec<Dropped>> {
    let mut out = Vec::new();
    for obj in lake.list(&dropped_notifications(webhook)).await? {
        let bytes = lake.get(&obj.location).await?;
        out.push(serde_json::from_slice(&bytes).map_err(|e| Error::Dataset {
            path: lake.display(&obj.location),
            message: format!("unreadable record of a dropped delivery: {e}"),
        })?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_final_4xx_answers_are_refusals() {
        assert!(refused(Some(410)));
        assert!(refused(Some(401)));
        assert!(!refused(Some(429)));
        assert!(!refused(Some(408)));
        assert!(!refused(Some(503)));
        assert!(!refused(None), "no answer (a timeout, a refused connection) is not a refusal");
    }

    #[test]
    fn settings_refuse_keys_in_place_of_variable_names() {
        let mut h = WebhookSettings {
            url: "https://example.com/h".into(),
            secret_env: "HOOK_KEY".into(),
            timeout: default_timeout(),
            retries: 1,
            backoff: default_backoff(),
            allow_link_local: false,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            max_pending_age: DEFAULT_MAX_PENDING_AGE,
        };
        h.validate("planning").unwrap();
        h.secret_env = "s3cr3t-value".into();
        assert!(h.validate("planning").unwrap_err().contains("environment variable"));
        h.secret_env = "HOOK_KEY".into();
        h.url = "ftp://example.com".into();
        assert!(h.validate("planning").is_err());
        h.url = "http://169.254.169.254/latest/meta-data".into();
        assert!(h.validate("planning").unwrap_err().contains("allow-link-local"));
        h.allow_link_local = true;
        h.validate("planning").unwrap();
        h.max_attempts = 0;
        assert!(h.validate("planning").unwrap_err().contains("max-attempts"));
    }

    #[test]
    fn bounds_read_as_written_and_default_to_fifty_attempts_and_a_week() {
        let h: WebhookSettings =
            toml::from_str("url = \"https://example.com/h\"\nsecret-env = \"K\"\nmax-pending-age = \"2d\"\n").unwrap();
        assert_eq!((h.max_attempts, h.max_pending_age), (50, Duration::from_secs(2 * 86_400)));
        let h: WebhookSettings = toml::from_str("url = \"https://example.com/h\"\nsecret-env = \"K\"\n").unwrap();
        assert_eq!(h.max_pending_age, DEFAULT_MAX_PENDING_AGE);
    }
}
