use std::collections::BTreeMap;
use std::time::Duration;

use shelfcast::clock::Clock;
use shelfcast::lake::Lake;
use shelfcast::publish::notify::{self, Outcome, Pending, Received, Rejected, WebhookSettings};
use shelfcast::secrets::Secrets;
use shelfcast::settings::SettingsFile;

use crate::common::*;
use crate::server::{Reply, Request, Server};

const KEY: &str = "not-a-real-key-0123";

fn hook(url: String, timeout_ms: u64, retries: u32) -> WebhookSettings {
    WebhookSettings {
        url,
        secret_env: "HOOK_KEY".into(),
        timeout: Duration::from_millis(timeout_ms),
        retries,
        backoff: Duration::from_secs(5),
        allow_link_local: false,
        max_attempts: notify::DEFAULT_MAX_ATTEMPTS,
        max_pending_age: notify::DEFAULT_MAX_PENDING_AGE,
    }
}

/// Whether `r` carries a valid signature under `key` at `now`.
fn signed(key: &[u8], r: &Request, now: chrono::DateTime<chrono::Utc>) -> Result<(), Rejected> {
    let got = Received {
        timestamp: r.header("x-shelfcast-timestamp").unwrap_or(""),
        delivery_id: r.header("x-shelfcast-delivery").unwrap_or(""),
        signature: r.header("x-shelfcast-signature").unwrap_or(""),
        body: &r.body,
    };
    notify::verify(key, &got, now, notify::REPLAY_WINDOW)
}

/// `r` with the header `name` set to `value`.
fn with_header(r: &Request, name: &str, value: &str) -> Request {
    let mut r = r.clone();
    r.headers.iter_mut().filter(|(k, _)| k.eq_ignore_ascii_case(name)).for_each(|h| h.1 = value.to_string());
    r
}

/// A delivery as an earlier run left it pending.
async fn left_pending(lake: &Lake, id: &str, created_at: chrono::DateTime<chrono::Utc>, attempts: u32) {
    let p = Pending {
        delivery_id: id.into(),
        webhook: "erp".into(),
        event: "forecasts.published".into(),
        run_date: created_at.date_naive(),
        created_at,
        attempts,
        last_error: "HTTP 503 Service Unavailable".into(),
        body: format!("{{\"run_id\":\"{id}\"}}"),
    };
    let path = format!("notifications/pending/webhook=erp/{id}.json");
    lake.put(&path.as_str().into(), serde_json::to_vec(&p).unwrap().into()).await.unwrap();
}

#[tokio::test]
async fn the_nightly_job_posts_signed_manifests_to_its_webhooks() {
    let server = Server::start(|_, _| Reply::With(204, String::new())).await;
    let lake = Lake::in_memory();
    demo_lake(&lake, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let text =
        format!("[webhooks.planning]\nurl = \"{}\"\nsecret-env = \"HOOK_KEY\"\n", server.url("/hooks/shelfcast"));
    let file = SettingsFile::parse(&text, std::path::Path::new("s.toml")).unwrap();
    let mut env = env(settings("memory:///", dir.path(), file), &lake, &clock);
    env.secrets = Secrets::from_pairs([("HOOK_KEY", KEY)]);
    let report = nightly(&env, date("2026-04-01")).await.unwrap();
    let n = report.summary.notifications.as_ref().unwrap();
    assert_eq!((n.delivered, n.pending), (1, 0));

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!((r.method.as_str(), r.target.as_str()), ("POST", "/hooks/shelfcast"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("x-shelfcast-event"), Some("forecasts.published"));
    assert_eq!(r.header("x-shelfcast-delivery"), Some(report.run_id.as_str()));
    assert_eq!(signed(KEY.as_bytes(), r, clock.now()), Ok(()), "the signature verifies");
    assert_eq!(signed(b"another key", r, clock.now()), Err(Rejected::Mismatch));
    let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body["run_date"], "2026-04-01");
    let forecasts = &body["datasets"]["forecasts"];
    assert_eq!(forecasts["manifest"]["row_count"], 3 * 28);
    assert_eq!(forecasts["manifest"]["contract_version"], 1);
    assert_eq!(body["datasets"]["replenishment"]["manifest"]["row_count"], 3);
}

#[tokio::test]
async fn a_500_is_retried_within_the_run() {
    let server =
        Server::start(|_, n| if n == 0 { Reply::With(500, "busy".into()) } else { Reply::With(200, "{}".into()) })
            .await;
    let lake = Lake::in_memory();
    let hooks = BTreeMap::from([("erp".to_string(), hook(server.url("/h"), 2000, 2))]);
    let secrets = Secrets::from_pairs([("HOOK_KEY", KEY)]);
    let clock = clock();
    let body = serde_json::json!({ "event": "forecasts.published" });
    let m = notify::notify(&lake, &hooks, &secrets, &body, "run-1", date("2026-04-01"), &clock).await.unwrap();
    assert_eq!((m.delivered, m.pending), (1, 0));
    assert_eq!(m.deliveries[0].attempts, 2);
    assert_eq!(server.requests().len(), 2);
    assert!(notify::pending(&lake, "erp").await.unwrap().is_empty());
    // The backoff was waited on the run's clock.
    assert_eq!(clock.now() - date("2026-04-01").and_hms_opt(2, 0, 0).unwrap().and_utc(), chrono::Duration::seconds(5));
}

#[tokio::test]
async fn a_timed_out_delivery_is_recorded_and_retried_by_the_next_run() {
    let answering = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&answering);
    let server = Server::start(move |_, _| {
        if flag.load(std::sync::atomic::Ordering::SeqCst) {
            Reply::With(200, "{}".into())
        } else {
            Reply::Hang(Duration::from_secs(3))
        }
    })
    .await;
    let lake = Lake::in_memory();
    let hooks = BTreeMap::from([("erp".to_string(), hook(server.url("/h"), 200, 1))]);
    let secrets = Secrets::from_pairs([("HOOK_KEY", KEY)]);
    let clock = clock();
    let first = serde_json::json!({ "event": "forecasts.published", "run_date": "2026-04-01" });
    let m = notify::notify(&lake, &hooks, &secrets, &first, "run-1", date("2026-04-01"), &clock).await.unwrap();
    assert_eq!((m.delivered, m.pending), (0, 1), "a failed delivery does not fail the step");
    let error = m.deliveries[0].error.clone().unwrap();
    assert!(error.contains("timed out"), "{error}");
    let waiting = notify::pending(&lake, "erp").await.unwrap();
    assert_eq!(waiting.len(), 1);
    assert_eq!((waiting[0].delivery_id.as_str(), waiting[0].attempts), ("run-1", 2));
    assert!(listing(&lake).await.contains(&"notifications/pending/webhook=erp/run-1.json".to_string()));

    // The receiver is back: the next run delivers the waiting one first, then its own.
    answering.store(true, std::sync::atomic::Ordering::SeqCst);
    let before = server.requests().len();
    let second = serde_json::json!({ "event": "forecasts.published", "run_date": "2026-04-02" });
    let m = notify::notify(&lake, &hooks, &secrets, &second, "run-2", date("2026-04-02"), &clock).await.unwrap();
    assert_eq!((m.delivered, m.pending), (2, 0));
    assert!(m.deliveries[0].retry && m.deliveries[0].outcome == Outcome::Delivered);
    assert_eq!(m.deliveries[0].delivery_id, "run-1");
    assert!(notify::pending(&lake, "erp").await.unwrap().is_empty());
    let sent = &server.requests()[before..];
    assert_eq!(sent[0].header("x-shelfcast-delivery"), Some("run-1"));
    let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
    assert_eq!(body["run_date"], "2026-04-01", "the retry sends the original body");
    assert_eq!(signed(KEY.as_bytes(), &sent[0], clock.now()), Ok(()), "the retry is signed afresh");
}

#[tokio::test]
async fn a_missing_signing_key_leaves_the_delivery_pending() {
    let server = Server::start(|_, _| Reply::With(200, "{}".into())).await;
    let lake = Lake::in_memory();
    let hooks = BTreeMap::from([("erp".to_string(), hook(server.url("/h"), 500, 0))]);
    let m = notify::notify(
        &lake,
        &hooks,
        &Secrets::from_pairs(Vec::<(String, String)>::new()),
        &serde_json::json!({}),
        "r",
        date("2026-04-01"),
        &clock(),
    )
    .await
    .unwrap();
    assert_eq!(m.pending, 1);
    assert!(m.deliveries[0].error.as_deref().unwrap().contains("HOOK_KEY is not set"));
    assert!(server.requests().is_empty(), "nothing unsigned is sent");
}

#[tokio::test]
async fn the_signature_covers_the_time_and_the_delivery_id_and_expires_after_the_replay_window() {
    let server = Server::start(|_, _| Reply::With(204, String::new())).await;
    let lake = Lake::in_memory();
    let hooks = BTreeMap::from([("erp".to_string(), hook(server.url("/h"), 2000, 0))]);
    let secrets = Secrets::from_pairs([("HOOK_KEY", KEY)]);
    let clock = clock();
    let sent_at = clock.now();
    let body = serde_json::json!({ "event": "forecasts.published" });
    let m = notify::notify(&lake, &hooks, &secrets, &body, "run-1", date("2026-04-01"), &clock).await.unwrap();
    assert_eq!(m.delivered, 1);
    let r = &server.requests()[0];
    assert_eq!(r.header("x-shelfcast-timestamp"), Some(sent_at.timestamp().to_string().as_str()));
    assert_eq!(signed(KEY.as_bytes(), r, sent_at), Ok(()));

    // The same signature does not cover another delivery id, another time or another body.
    let other = with_header(r, "x-shelfcast-delivery", "run-2");
    assert_eq!(signed(KEY.as_bytes(), &other, sent_at), Err(Rejected::Mismatch));
    let other = with_header(r, "x-shelfcast-timestamp", &(sent_at.timestamp() + 60).to_string());
    assert_eq!(signed(KEY.as_bytes(), &other, sent_at + chrono::Duration::seconds(60)), Err(Rejected::Mismatch));
    let mut other = r.clone();
    other.body.push(b' ');
    assert_eq!(signed(KEY.as_bytes(), &other, sent_at), Err(Rejected::Mismatch));

    // Replayed as it is, it is accepted within the window and refused after it.
    assert_eq!(signed(KEY.as_bytes(), r, sent_at + chrono::Duration::seconds(299)), Ok(()));
    let stale = signed(KEY.as_bytes(), r, sent_at + chrono::Duration::seconds(301));
    assert_eq!(stale, Err(Rejected::Stale { off_s: 301, window_s: 300 }));
}

#[tokio::test]
async fn the_runs_delivery_is_pending_before_it_is_sent_so_a_crash_cannot_lose_it() {
    // The receiver never answers the first request; the process "dies" while it waits.
    let server =
        Server::start(
            |_, n| {
                if n == 0 { Reply::Hang(Duration::from_secs(600)) } else { Reply::With(200, "{}".into()) }
            },
        )
        .await;
    let lake = Lake::in_memory();
    let hooks = BTreeMap::from([("erp".to_string(), hook(server.url("/h"), 60_000, 0))]);
    let secrets = Secrets::from_pairs([("HOOK_KEY", KEY)]);
    let clock = clock();
    let first = serde_json::json!({ "event": "forecasts.published", "run_date": "2026-04-01" });
    {
        let run = notify::notify(&lake, &hooks, &secrets, &first, "run-1", date("2026-04-01"), &clock);
        tokio::pin!(run);
        let sent = async {
            while server.requests().is_empty() {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::select! {
            _ = &mut run => panic!("the receiver never answers, so the delivery cannot end"),
            _ = sent => {}
        }
        // Dropping the future here is the crash: nothing after the send runs.
    }
    let waiting = notify::pending(&lake, "erp").await.unwrap();
    assert_eq!(waiting.len(), 1, "the delivery in flight was saved before it was sent");
    assert_eq!(waiting[0].delivery_id, "run-1");
    assert_eq!(waiting[0].body.as_bytes(), server.requests()[0].body.as_slice());

    // The next run sends it, then its own.
    let second = serde_json::json!({ "event": "forecasts.published", "run_date": "2026-04-02" });
    let m = notify::notify(&lake, &hooks, &secrets, &second, "run-2", date("2026-04-02"), &clock).await.unwrap();
    assert_eq!((m.delivered, m.pending), (2, 0));
    let ids: Vec<_> = m.deliveries.iter().map(|d| d.delivery_id.as_str()).collect();
    assert_eq!(ids, ["run-1", "run-2"]);
    assert!(notify::pending(&lake, "erp").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_permanent_4xx_drops_the_delivery_with_a_record() {
    let server = Server::start(|_, _| Reply::With(410, "no such hook".into())).await;
    let lake = Lake::in_memory();
    let hooks = BTreeMap::from([("erp".to_string(), hook(server.url("/h"), 2000, 3))]);
    let secrets = Secrets::from_pairs([("HOOK_KEY", KEY)]);
    let clock = clock();
    let body = serde_json::json!({ "event": "forecasts.published" });
    let m = notify::notify(&lake, &hooks, &secrets, &body, "run-1", date("2026-04-01"), &clock).await.unwrap();
    assert_eq!((m.delivered, m.pending, m.dropped), (0, 0, 1));
    assert_eq!(m.deliveries[0].outcome, Outcome::Dropped);
    assert_eq!(server.requests().len(), 1, "a refusal is not retried");
    assert!(notify::pending(&lake, "erp").await.unwrap().is_empty(), "nor kept for the next run");
    let dropped = notify::dropped(&lake, "erp").await.unwrap();
    assert_eq!(dropped.len(), 1);
    assert_eq!(dropped[0].delivery.delivery_id, "run-1");
    assert!(dropped[0].reason.contains("410"), "{}", dropped[0].reason);
    assert_eq!(dropped[0].delivery.body, serde_json::to_string(&body).unwrap(), "the record keeps the body");
    assert!(listing(&lake).await.contains(&"notifications/dropped/webhook=erp/run-1.json".to_string()));

    // A 429 is not a refusal: it stays pending.
    let busy = Server::start(|_, _| Reply::With(429, String::new())).await;
    let hooks = BTreeMap::from([("erp".to_string(), hook(busy.url("/h"), 2000, 0))]);
    let m = notify::notify(&lake, &hooks, &secrets, &body, "run-2", date("2026-04-02"), &clock).await.unwrap();
    assert_eq!((m.pending, m.dropped), (1, 0));
}

#[tokio::test]
async fn pending_deliveries_are_dropped_with_a_record_once_too_old_or_out_of_attempts() {
    let server = Server::start(|_, _| Reply::With(503, "down".into())).await;
    let lake = Lake::in_memory();
    let mut h = hook(server.url("/h"), 2000, 1);
    h.max_attempts = 10;
    h.max_pending_age = Duration::from_secs(7 * 86_400);
    let hooks = BTreeMap::from([("erp".to_string(), h)]);
    let secrets = Secrets::from_pairs([("HOOK_KEY", KEY)]);
    let clock = clock();
    let now = clock.now();
    left_pending(&lake, "old", now - chrono::Duration::days(8), 2).await;
    left_pending(&lake, "tired", now - chrono::Duration::days(1), 9).await;
    left_pending(&lake, "young", now - chrono::Duration::days(1), 2).await;
    let body = serde_json::json!({ "event": "forecasts.published" });
    let m = notify::notify(&lake, &hooks, &secrets, &body, "run-1", date("2026-04-01"), &clock).await.unwrap();

    let by_id: BTreeMap<_, _> = m.deliveries.iter().map(|d| (d.delivery_id.as_str(), d)).collect();
    assert_eq!(by_id["old"].outcome, Outcome::Dropped);
    assert_eq!(by_id["old"].attempts, 0, "one past its age is not sent again");
    assert!(by_id["old"].error.as_deref().unwrap().contains("max-pending-age"));
    assert_eq!(by_id["tired"].outcome, Outcome::Dropped, "its tenth attempt failed");
    assert_eq!(by_id["tired"].attempts, 1, "retries within the run stop at max-attempts");
    assert!(by_id["tired"].error.as_deref().unwrap().contains("max-attempts"));
    assert_eq!((by_id["young"].outcome, by_id["run-1"].outcome), (Outcome::Pending, Outcome::Pending));
    assert_eq!((m.pending, m.dropped), (2, 2));
    let sent: Vec<_> =
        server.requests().iter().map(|r| r.header("x-shelfcast-delivery").unwrap().to_string()).collect();
    assert!(!sent.contains(&"old".to_string()), "{sent:?}");
    assert_eq!(sent.iter().filter(|id| *id == "tired").count(), 1, "stopped at max-attempts, not retried on");

    let waiting: Vec<_> = notify::pending(&lake, "erp").await.unwrap().into_iter().map(|p| p.delivery_id).collect();
    assert_eq!(waiting, ["young", "run-1"]);
    let dropped = notify::dropped(&lake, "erp").await.unwrap();
    let ids: Vec<_> = dropped.iter().map(|d| d.delivery.delivery_id.as_str()).collect();
    assert_eq!(ids, ["old", "tired"]);
    assert_eq!(dropped[1].delivery.attempts, 10);
}

#[tokio::test]
async fn an_unreadable_pending_file_is_moved_aside_and_the_others_are_sent() {
    let server = Server::start(|_, _| Reply::With(200, "{}".into())).await;
    let lake = Lake::in_memory();
    let hooks = BTreeMap::from([("erp".to_string(), hook(server.url("/h"), 2000, 0))]);
    let secrets = Secrets::from_pairs([("HOOK_KEY", KEY)]);
    let clock = clock();
    left_pending(&lake, "run-0", clock.now() - chrono::Duration::days(1), 1).await;
    let broken = "notifications/pending/webhook=erp/broken.json";
    lake.put(&broken.into(), bytes::Bytes::from_static(b"{\"delivery_id\": \"x\", trunc")).await.unwrap();
    let body = serde_json::json!({ "event": "forecasts.published" });
    let m = notify::notify(&lake, &hooks, &secrets, &body, "run-1", date("2026-04-01"), &clock).await.unwrap();
    assert_eq!((m.delivered, m.pending), (2, 0), "the readable one and the run's own go through");
    assert_eq!(m.unreadable.len(), 1);
    assert!(m.unreadable[0].ends_with(broken), "{:?}", m.unreadable);
    let files = listing(&lake).await;
    assert!(!files.contains(&broken.to_string()));
    assert!(files.contains(&"quarantine/notifications/webhook=erp/broken.json".to_string()), "{files:?}");
    assert!(notify::pending(&lake, "erp").await.unwrap().is_empty());
}
