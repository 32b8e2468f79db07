//! Webhooks: after publishing, the manifests are POSTed to every configured receiver.
//!
//! ```toml
//! [webhooks.planning]
//! url = "https://planning.example.com/hooks/shelfcast"
//! secret-env = "SHELFCAST_WEBHOOK_PLANNING_KEY"   # the variable holding the signing key
//! timeout = "10s"
//! retries = 3
//! backoff = "2s"
//! ```
//!
//! The body is JSON (see [`payload`]); its bytes are signed with HMAC-SHA256 under the key read
//! from the named environment variable, and the signature sent as
//! `X-Shelfcast-Signature: sha256=<hex>`, with `X-Shelfcast-Event` and `X-Shelfcast-Delivery`
//! (the run id: the same delivery retried carries the same id, so receivers can drop repeats).
//!
//! A delivery is tried with the webhook's timeout, retries and backoff ([`crate::http`]). One
//! that still fails is written to `notifications/pending/webhook=<name>/<delivery>.json`, with
//! its exact body, and the next notification to that webhook first retries it (oldest first). A
//! failed delivery never fails the run: the forecasts are published before anyone is told, and
//! stay published. Pending deliveries are retried on every run until they go through; deleting
//! the file drops one.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tracing::{info, instrument, warn};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::http::{self, RetryPolicy};
use crate::lake::{Lake, layout};
use crate::secrets::Secrets;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Shelfcast-Signature";
/// The header naming the event.
pub const EVENT_HEADER: &str = "X-Shelfcast-Event";
/// The header carrying the delivery id.
pub const DELIVERY_HEADER: &str = "X-Shelfcast-Delivery";
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
    #[serde(default = "default_timeout", with = "crate::settings::duration")]
    pub timeout: Duration,
    /// Attempts after the first, within one run.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Wait before the first retry; doubles for each further one.
    #[serde(default = "default_backoff", with = "crate::settings::duration")]
    pub backoff: Duration,
    /// Whether a link-local or cloud metadata address may be reached (see [`crate::reach`]).
    #[serde(default)]
    pub allow_link_local: bool,
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
        Ok(())
    }
}

/// Whether `s` is a usable name (letters, digits, `_`, `-`).
pub fn valid_name(s: &str) -> std::result::Result<(), String> {
    if s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return Err(format!("`{s}` may only hold letters, digits, `_` and `-`"));
    }
    Ok(())
}

/// Whether `s` looks like an environment variable's name (so a key pasted there is refused).
pub fn valid_env_name(s: &str) -> std::result::Result<(), String> {
    let ok = s.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
    if !ok {
        return Err(format!("`{s}` is not the name of an environment variable (A–Z, 0–9, _)"));
    }
    Ok(())
}

/// `sha256=<hex HMAC-SHA256 of body under key>`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body` under `key`, compared in constant time; what a
/// receiver does.
pub fn verify(key: &[u8], body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else { return false };
    let Ok(sig) = hex::decode(hex_sig) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(body);
    mac.verify_slice(&sig).is_ok()
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

/// How a delivery ended in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The receiver answered 2xx.
    Delivered,
    /// It failed and waits in `notifications/pending/`.
    Pending,
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
    /// The last failure, when pending.
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
    /// Each delivery.
    pub deliveries: Vec<DeliveryReport>,
    /// A remark (`no webhooks configured`).
    pub note: Option<String>,
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
        let client = http::client_with(hook.timeout, &hook.reach())?;
        let mut queue = pending(lake, name).await?;
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
        // A rerun of the same run id replaces its own pending copy instead of sending it twice.
        queue.retain(|p| p.delivery_id != new.delivery_id);
        let retries = queue.len();
        queue.push(new);
        for (i, mut d) in queue.into_iter().enumerate() {
            let retry = i < retries;
            let path = layout::pending_notification(name, &d.delivery_id);
            let (outcome, attempts, error) = match deliver(&client, hook, name, &d, secrets, clock).await {
                Ok(attempts) => {
                    lake.delete(&path).await?;
                    (Outcome::Delivered, attempts, None)
                }
                Err((attempts, why)) => {
                    warn!(webhook = %name, delivery = %d.delivery_id, cause = %why, "delivery failed; kept for the next run");
                    d.attempts += attempts;
                    d.last_error = why.clone();
                    lake.put(&path, serde_json::to_vec_pretty(&d)?.into()).await?;
                    (Outcome::Pending, attempts, Some(why))
                }
            };
            match outcome {
                Outcome::Delivered => m.delivered += 1,
                Outcome::Pending => m.pending += 1,
            }
            m.deliveries.push(DeliveryReport {
                webhook: name.clone(),
                delivery_id: d.delivery_id.clone(),
                run_date: d.run_date,
                retry,
                outcome,
                attempts,
                error,
            });
        }
    }
    info!(delivered = m.delivered, pending = m.pending, "notified");
    Ok(m)
}

/// One delivery with the webhook's retry policy: the attempts it took, or the attempts and why
/// it failed.
async fn deliver(
    client: &reqwest::Client,
    hook: &WebhookSettings,
    name: &str,
    d: &Pending,
    secrets: &Secrets,
    clock: &dyn Clock,
) -> std::result::Result<u32, (u32, String)> {
    let key = secrets
        .get(&hook.secret_env)
        .ok_or_else(|| (0, format!("the signing key variable {} is not set", hook.secret_env)))?;
    let sig = signature(key.as_bytes(), d.body.as_bytes());
    let build = || {
        client
            .post(&hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, &sig)
            .header(EVENT_HEADER, &d.event)
            .header(DELIVERY_HEADER, &d.delivery_id)
            .body(d.body.clone())
    };
    match http::send(build, &hook.policy(), clock, &format!("webhook `{name}`")).await {
        Ok(answer) => Ok(answer.attempts),
        Err(Error::Http { attempts, message, .. }) => Err((attempts, message)),
        Err(e) => Err((1, e.to_string())),
    }
}

/// The deliveries to `webhook` waiting from earlier runs, oldest first.
pub async fn pending(lake: &Lake, webhook: &str) -> Result<Vec<Pending>> {
    let mut out = Vec::new();
    for obj in lake.list(&layout::pending_notifications(webhook)).await? {
        if !obj.location.as_ref().ends_with(".json") {
            continue;
        }
        let bytes = lake.get(&obj.location).await?;
        let p: Pending = serde_json::from_slice(&bytes).map_err(|e| Error::Dataset {
            path: lake.display(&obj.location),
            message: format!("unreadable pending delivery: {e}"),
        })?;
        out.push(p);
    }
    out.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.delivery_id.cmp(&b.delivery_id)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_and_verify() {
        // RFC 4231 test case 2.
        let sig = signature(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert!(verify(b"Jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"Jefe", b"what do ya want for nothing!", &sig));
        assert!(!verify(b"jefe", b"what do ya want for nothing?", &sig));
        assert!(!verify(b"Jefe", b"x", "md5=00"));
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
    }
}
