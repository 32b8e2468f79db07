use std::time::Duration;

use arrow::array::AsArray;
use arrow::datatypes::Float64Type;
use shelfcast::Error;
use shelfcast::ingest::pull::{self, ingest};
use shelfcast::ingest::source::{Format, Pagination, SourceSettings};
use shelfcast::lake::{Lake, dataset, layout};
use shelfcast::secrets::Secrets;

use crate::common::*;
use crate::server::{Reply, Server};

fn record(day: &str, item: &str, qty: f64) -> serde_json::Value {
    serde_json::json!({ "day": day, "sku": item, "store": "S1", "qty": qty })
}

fn orders(url: String) -> SourceSettings {
    let mut s = SourceSettings::http(&url, Format::Json, "sales");
    s.records = "/data".into();
    s.map = [("date", "day"), ("item_id", "sku"), ("location_id", "store"), ("units", "qty")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    s.retries = 0;
    s.timeout = Duration::from_secs(5);
    s
}

async fn units(lake: &Lake, table: &str) -> f64 {
    let (ctx, _) = shelfcast::engine::open(lake, 1).await.unwrap();
    let b = ctx
        .sql(&format!("SELECT CAST(COALESCE(SUM(units), 0) AS DOUBLE) AS u FROM {table}"))
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    b[0].column(0).as_primitive::<Float64Type>().value(0)
}

async fn raw_files(lake: &Lake, table: &str) -> usize {
    lake.list(&layout::raw_table(table)).await.unwrap().len()
}

#[tokio::test]
async fn pages_are_followed_with_credentials_and_the_watermark_keeps_later_runs_to_new_rows() {
    // Three pages of two, then an empty one; the server ignores `since`, so the filtering is ours.
    let rows = std::sync::Arc::new(std::sync::Mutex::new(vec![
        record("2026-04-01", "A", 1.0),
        record("2026-04-01", "B", 2.0),
        record("2026-04-02", "A", 3.0),
        record("2026-04-02", "B", 4.0),
        record("2026-04-03", "A", 5.0),
    ]));
    let data = std::sync::Arc::clone(&rows);
    let server = Server::start(move |req, _| {
        if req.header("authorization") != Some("Bearer t0ken") {
            return Reply::With(401, "who are you".into());
        }
        let page: usize = req.param("page").unwrap().parse().unwrap();
        let all = data.lock().unwrap().clone();
        let chunk: Vec<_> = all.into_iter().skip((page - 1) * 2).take(2).collect();
        Reply::With(200, serde_json::json!({ "data": chunk }).to_string())
    })
    .await;
    let mut s = orders(server.url("/api/sales"));
    s.pagination = Pagination::Page;
    s.auth_env = Some("ERP_TOKEN".into());
    s.watermark = Some("day".into());
    s.watermark_param = Some("since".into());
    let secrets = Secrets::from_pairs([("ERP_TOKEN", "Bearer t0ken")]);
    let lake = Lake::in_memory();
    let clock = clock();

    let r = ingest(&lake, "orders", &s, &secrets, &clock).await.unwrap();
    assert_eq!((r.pages, r.rows_read, r.rows_written, r.rows_quarantined), (4, 5, 5, 0));
    assert_eq!(r.watermark_after.as_deref(), Some("2026-04-03"));
    assert_eq!(units(&lake, "sales").await, 15.0);
    assert_eq!(server.requests()[0].param("since"), None);
    let w = pull::watermark(&lake, "orders").await.unwrap().unwrap();
    assert_eq!((w.field.as_str(), w.value.as_str()), ("day", "2026-04-03"));

    // A day later the source holds one more day; only it is appended.
    rows.lock().unwrap().push(record("2026-04-04", "B", 6.0));
    clock.advance(chrono::Duration::days(1));
    let before = server.requests().len();
    let r = ingest(&lake, "orders", &s, &secrets, &clock).await.unwrap();
    assert_eq!((r.rows_read, r.rows_skipped, r.rows_written), (6, 5, 1));
    assert_eq!(server.requests()[before].param("since").as_deref(), Some("2026-04-03"));
    assert_eq!(units(&lake, "sales").await, 21.0);
    assert_eq!(raw_files(&lake, "sales").await, 2);

    // Without the credential nothing is fetched.
    let err =
        ingest(&lake, "orders", &s, &Secrets::from_pairs(Vec::<(String, String)>::new()), &clock).await.unwrap_err();
    assert!(err.to_string().contains("ERP_TOKEN is not set"), "{err}");
}

#[tokio::test]
async fn a_malformed_body_fails_and_writes_nothing() {
    let server = Server::start(|_, _| Reply::With(200, "{\"data\": [{\"day\": \"2026-04-01\",".into())).await;
    let lake = Lake::in_memory();
    let mut s = orders(server.url("/api/sales"));
    s.watermark = Some("day".into());
    let err = ingest(&lake, "orders", &s, &Secrets::default(), &clock()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Source { name, message } if name == "orders" && message.contains("page 1: not valid JSON")),
        "{err}"
    );
    assert!(listing(&lake).await.is_empty(), "no raw file, quarantine or watermark");
}

#[tokio::test]
async fn a_500_then_success_is_retried_and_a_timeout_fails_cleanly() {
    let body = serde_json::json!({ "data": [record("2026-04-01", "A", 2.0)] }).to_string();
    let server =
        Server::start(
            move |_, n| if n == 0 { Reply::With(500, "try later".into()) } else { Reply::With(200, body.clone()) },
        )
        .await;
    let lake = Lake::in_memory();
    let mut s = orders(server.url("/api/sales"));
    s.retries = 2;
    s.backoff = Duration::from_secs(30);
    let r = ingest(&lake, "orders", &s, &Secrets::default(), &clock()).await.unwrap();
    assert_eq!(r.rows_written, 1);
    assert_eq!(server.requests().len(), 2);

    let slow = Server::start(|_, _| Reply::Hang(Duration::from_secs(3))).await;
    let mut s = orders(slow.url("/api/sales"));
    s.timeout = Duration::from_millis(200);
    s.retries = 1;
    let lake = Lake::in_memory();
    let err = ingest(&lake, "orders", &s, &Secrets::default(), &clock()).await.unwrap_err();
    assert!(matches!(&err, Error::Http { attempts: 2, message, .. } if message.contains("timed out")), "{err}");
    assert_eq!(slow.requests().len(), 2);
    assert!(listing(&lake).await.is_empty());
}

#[tokio::test]
async fn next_url_pages_and_bad_records_are_quarantined_with_reasons() {
    let server = Server::start(|req, _| {
        let page = if req.target.contains("cursor=2") { 2 } else { 1 };
        let body = if page == 1 {
            serde_json::json!({ "data": [record("2026-04-01", "A", 1.0), { "day": "soon", "sku": "B", "store": "S1", "qty": 1 }], "next": "/api/sales?cursor=2" })
        } else {
            serde_json::json!({ "data": [record("2026-04-02", "A", 2.0), { "day": "2026-04-02", "sku": "C", "store": "S1" }], "next": null })
        };
        Reply::With(200, body.to_string())
    })
    .await;
    let mut s = orders(server.url("/api/sales"));
    s.pagination = Pagination::NextUrl;
    let lake = Lake::in_memory();
    let r = ingest(&lake, "orders", &s, &Secrets::default(), &clock()).await.unwrap();
    assert_eq!((r.pages, r.rows_read, r.rows_written, r.rows_quarantined), (2, 4, 2, 2));
    let q = lake.list(&object_store::path::Path::from("quarantine/source=orders")).await.unwrap();
    let manifest = q.iter().find(|m| m.location.as_ref().ends_with("_manifest.json")).unwrap();
    let folder: object_store::path::Path = manifest.location.parts().take(3).collect();
    let (_, bad) = dataset::read(&lake, &folder).await.unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&bad).unwrap().to_string();
    assert!(text.contains("date: cannot read \"soon\" as a date"), "{text}");
    assert!(text.contains("units is empty (field `qty`)"), "{text}");
}

#[tokio::test]
async fn an_ingest_step_feeds_the_steps_after_it_from_a_local_csv() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("drops")).unwrap();
    std::fs::write(
        dir.path().join("drops/supply.csv"),
        "date,item_id,location_id,lead_time_days,review_period_days,service_level,on_order\n\
         2026-03-30,I1,L1,10,,0.98,4\n2026-03-30,I2,L1,,,,\nnot-a-date,I3,L1,1,1,0.9,0\n",
    )
    .unwrap();
    std::fs::create_dir_all(dir.path().join("sql")).unwrap();
    std::fs::write(dir.path().join("sql/n.sql"), "SELECT COUNT(*) AS n, SUM(on_order) AS on_order FROM supply")
        .unwrap();
    std::fs::create_dir_all(dir.path().join("jobs")).unwrap();
    std::fs::write(
        dir.path().join("jobs/pull.toml"),
        "name = \"pull\"\n[[steps]]\nname = \"supply\"\nkind = \"ingest\"\nsource = \"supply\"\n\
         [[steps]]\nname = \"count\"\nkind = \"sql\"\nfile = \"../sql/n.sql\"\noutput = \"supply_count\"\n",
    )
    .unwrap();
    let job = shelfcast::jobs::JobSpec::load(&dir.path().join("jobs"), "pull").unwrap();
    let file = shelfcast::settings::SettingsFile::parse(
        "[sources.supply]\npath = \"drops/supply.csv\"\nformat = \"csv\"\ntable = \"supply\"\n",
        std::path::Path::new("s.toml"),
    )
    .unwrap();
    let lake = Lake::in_memory();
    demo_lake(&lake, 2).await;
    let clock = clock();
    let env = env(settings("memory:///", dir.path(), file), &lake, &clock);
    let report =
        shelfcast::jobs::run_job(&env, &job, Some(date("2026-04-01")), shelfcast::jobs::Trigger::Manual, &|_| {})
            .await
            .unwrap();
    let r = &report.summary.ingested[0];
    assert_eq!((r.rows_read, r.rows_written, r.rows_quarantined), (3, 2, 1));
    assert!(report.inputs.as_ref().unwrap().get("supply").unwrap().present, "the new table is registered");
    let (_, rows) = dataset::read(&lake, &layout::job_output("supply_count", date("2026-04-01"))).await.unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string();
    assert!(
        text.contains("| 2 ") && text.contains("| 4.0"),
        "the sql step after the ingest step sees its rows:\n{text}"
    );

    // A job file naming an ingest step without a source is refused.
    let err = shelfcast::jobs::JobSpec::parse("name = \"x\"\n[[steps]]\nname = \"a\"\nkind = \"ingest\"\n", "x.toml")
        .unwrap_err();
    assert!(err.to_string().contains("needs `source`"), "{err}");
}

#[tokio::test]
async fn a_bad_record_neither_moves_the_watermark_nor_hides_later_rows() {
    // Run 1: one good row, a date that is text, a five-digit year, and a row without units whose
    // corrected copy arrives later. Run 2: the corrected row and a new day.
    let rows = std::sync::Arc::new(std::sync::Mutex::new(vec![
        record("2026-04-01", "A", 1.0),
        serde_json::json!({ "day": "soon", "sku": "B", "store": "S1", "qty": 1 }),
        serde_json::json!({ "day": "20260-04-01", "sku": "C", "store": "S1", "qty": 1 }),
        serde_json::json!({ "day": "2026-04-05", "sku": "D", "store": "S1" }),
    ]));
    let data = std::sync::Arc::clone(&rows);
    let server = Server::start(move |_, _| {
        Reply::With(200, serde_json::json!({ "data": data.lock().unwrap().clone() }).to_string())
    })
    .await;
    let mut s = orders(server.url("/api/sales"));
    s.watermark = Some("day".into());
    let lake = Lake::in_memory();
    let clock = clock();
    let r = ingest(&lake, "orders", &s, &Secrets::default(), &clock).await.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (1, 3));
    assert_eq!(r.watermark_after.as_deref(), Some("2026-04-01"), "only the accepted row moves it");

    *rows.lock().unwrap() =
        vec![record("2026-04-01", "A", 1.0), record("2026-04-02", "E", 2.0), record("2026-04-05", "D", 4.0)];
    clock.advance(chrono::Duration::days(1));
    let r = ingest(&lake, "orders", &s, &Secrets::default(), &clock).await.unwrap();
    assert_eq!((r.rows_skipped, r.rows_written, r.rows_quarantined), (1, 2, 0));
    assert_eq!(r.watermark_after.as_deref(), Some("2026-04-05"));
    assert_eq!(units(&lake, "sales").await, 7.0);
}

#[tokio::test]
async fn an_answer_longer_than_the_sources_cap_fails_and_writes_nothing() {
    let big = serde_json::json!({ "data": [record("2026-04-01", &"A".repeat(3 << 20), 1.0)] }).to_string();
    let server = Server::start(move |_, _| Reply::With(200, big.clone())).await;
    let mut s = orders(server.url("/api/sales"));
    s.max_body_mb = 2;
    s.retries = 2;
    let lake = Lake::in_memory();
    let err = ingest(&lake, "orders", &s, &Secrets::default(), &clock()).await.unwrap_err();
    assert!(
        matches!(&err, Error::Http { attempts: 1, message, .. } if message.contains("longer than 2097152 bytes")),
        "{err}"
    );
    assert!(listing(&lake).await.is_empty());
    s.max_body_mb = 4;
    assert_eq!(ingest(&lake, "orders", &s, &Secrets::default(), &clock()).await.unwrap().rows_written, 1);
}
