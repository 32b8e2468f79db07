use std::collections::BTreeMap;
use std::time::Duration;

use shelfcast::clock::Clock;
use shelfcast::lake::Lake;
use shelfcast::publish::notify::{self, Outcome, WebhookSettings};
use shelfcast::secrets::Secrets;
use shelfcast::settings::SettingsFile;

use crate::common::*;
use crate::server::{Reply, Server};

const KEY: &str = "not-a-real-key-0123";

fn hook(url: String, timeout_ms: u64, retries: u32) -> WebhookSettings {
    WebhookSettings {
        url,
        secret_env: "HOOK_KEY".into(),
        timeout: Duration::from_millis(timeout_ms),
        retries,
        backoff: Duration::from_secs(5),
        allow_link_local: false,
    }
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
    let sig = r.header("x-shelfcast-signature").unwrap();
    assert!(notify::verify(KEY.as_bytes(), &r.body, sig), "the signature verifies over the body");
    assert!(!notify::verify(b"another key", &r.body, sig));
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
    assert!(notify::verify(KEY.as_bytes(), &sent[0].body, sent[0].header("x-shelfcast-signature").unwrap()));
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
