//! The pipeline against a real S3 API: an S3 server on loopback (moto) that scripts/s3_test.sh
//! starts, and whose endpoint and bucket it passes in `SHELFCAST_S3_ENDPOINT` and
//! `SHELFCAST_S3_BUCKET`. Without them every test here prints a notice and passes.
//!
//! Credentials come from the environment (dummy values the script sets); the endpoint is always
//! explicit and on loopback, so no request leaves the machine.

use std::collections::BTreeMap;

use chrono::Utc;
use shelfcast::lake::Lake;
use shelfcast::lake::lease::{Acquired, Lease};
use shelfcast::settings::SettingsFile;

use crate::common::*;
use crate::security::run_without_leaks;

/// The endpoint and bucket, or `None` (after a notice) when the S3 tests are not enabled.
fn target(test: &str) -> Option<(String, String)> {
    let (Ok(endpoint), Ok(bucket)) = (std::env::var("SHELFCAST_S3_ENDPOINT"), std::env::var("SHELFCAST_S3_BUCKET"))
    else {
        eprintln!("skipping {test}: SHELFCAST_S3_ENDPOINT is not set (scripts/s3_test.sh runs it against moto)");
        return None;
    };
    let host = url::Url::parse(&endpoint).unwrap().host_str().unwrap_or_default().to_string();
    assert!(host == "127.0.0.1" || host == "localhost", "S3 tests only talk to loopback, not {endpoint}");
    for v in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
        assert!(std::env::var(v).is_ok(), "{v} must be set (a dummy) so no credential provider looks further");
    }
    Some((endpoint, bucket))
}

/// Store options for the loopback server: path-style, plain HTTP, short timeouts and retries.
fn options(endpoint: &str) -> BTreeMap<String, String> {
    [
        ("aws_endpoint", endpoint),
        ("aws_region", "us-east-1"),
        ("aws_allow_http", "true"),
        ("aws_virtual_hosted_style_request", "false"),
        ("connect_timeout", "2s"),
        ("timeout", "30s"),
        ("retry_max_retries", "3"),
        ("retry_timeout", "20s"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A fresh lake folder in the bucket for one test.
fn lake_url(bucket: &str, test: &str) -> String {
    format!("s3://{bucket}/{test}-{}-{:04x}/", std::process::id(), rand::random::<u16>())
}

#[tokio::test]
async fn s3_demo_nightly_publish_and_read_back() {
    let Some((endpoint, bucket)) = target("s3_demo_nightly_publish_and_read_back") else { return };
    let url = lake_url(&bucket, "pipeline");
    let lake = Lake::open(&url, &options(&endpoint)).unwrap();
    demo_lake(&lake, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let env = env(settings(&url, dir.path(), SettingsFile::default()), &lake, &clock());
    let report = nightly(&env, date("2026-04-01")).await.unwrap();
    let (manifest, rows) = shelfcast::publish::read_forecasts(&lake, date("2026-04-01")).await.unwrap();
    assert_eq!(manifest.meta["run_id"], report.run_id.as_str());
    assert_eq!(rows.iter().map(|b| b.num_rows() as u64).sum::<u64>(), manifest.row_count);
    assert!(manifest.row_count > 0);

    // The binary, with its settings in a file and credentials in the environment only, runs the
    // next date on the same lake, and no secret shows in its verbose logs.
    let mut toml = format!("lake = \"{url}\"\n[storage]\n");
    for (k, v) in options(&endpoint) {
        toml.push_str(&format!("{k} = \"{v}\"\n"));
    }
    std::fs::write(dir.path().join("shelfcast.toml"), toml).unwrap();
    run_without_leaks(dir.path(), &["run", "nightly", "--date", "2026-04-02"], &[]);
    let out = run_without_leaks(dir.path(), &["query", "--format", "csv", "SELECT COUNT(*) AS n FROM sales"], &[]);
    assert!(out.contains("n\n"), "{out}");
    let (m2, _) = shelfcast::publish::read_forecasts(&lake, date("2026-04-02")).await.unwrap();
    assert!(m2.row_count > 0);
}

#[tokio::test]
async fn s3_leases_are_taken_once() {
    let Some((endpoint, bucket)) = target("s3_leases_are_taken_once") else { return };
    let lake = Lake::open(&lake_url(&bucket, "lease"), &options(&endpoint)).unwrap();
    let p = object_store::path::Path::from("leases/x/1.json");
    assert!(lake.put_if_absent(&p, "a".into()).await.unwrap(), "the first writer wins");
    assert!(!lake.put_if_absent(&p, "b".into()).await.unwrap(), "the second finds it taken");
    assert_eq!(lake.get(&p).await.unwrap(), "a");

    let dir = shelfcast::lake::layout::lease("nightly", date("2026-04-01"));
    let ttl = std::time::Duration::from_secs(120);
    let now = Utc::now();
    let first = Lease::acquire(&lake, &dir, "host-a", "test", ttl, now).await.unwrap();
    assert!(matches!(first, Acquired::Held { .. }));
    let second = Lease::acquire(&lake, &dir, "host-b", "test", ttl, now).await.unwrap();
    assert!(matches!(&second, Acquired::Busy(s) if s.holder == "host-a"), "{second:?}");
    // Once lapsed, another holder takes it over.
    let later = Lease::acquire(&lake, &dir, "host-b", "test", ttl, now + chrono::Duration::minutes(4)).await.unwrap();
    assert!(matches!(later, Acquired::Held { taken_over: Some(_), .. }));
}
