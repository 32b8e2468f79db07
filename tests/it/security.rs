use std::path::Path;
use std::process::Command;

use shelfcast::Error;
use shelfcast::jobs::JobSpec;
use shelfcast::lake::layout;
use shelfcast::settings::SettingsFile;

use crate::common::*;

#[tokio::test]
async fn ad_hoc_sql_reads_and_writes_nothing_outside_the_lake() {
    let dir = tempfile::tempdir().unwrap();
    let (_, lake) = local_lake(dir.path());
    demo_lake(&lake, 4).await;
    // A file just outside the lake, in a format DataFusion could read if it were asked to.
    let outside = dir.path().join("outside.csv");
    std::fs::write(&outside, "secret\n42\n").unwrap();
    let o = outside.display();
    let (ctx, _) = shelfcast::engine::open(&lake, 1).await.unwrap();
    for sql in [
        format!("SELECT * FROM '{o}'"),
        format!("SELECT * FROM 'file://{o}'"),
        "SELECT * FROM '/etc/hostname'".to_string(),
        format!("SELECT * FROM read_csv('{o}')"),
        "SELECT * FROM read_parquet('/etc/x.parquet')".to_string(),
        format!("CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{o}'"),
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/'".to_string(),
        format!("COPY (SELECT 1 AS a) TO '{}/copied.csv'", dir.path().display()),
        format!("COPY sales TO '{}/copied/' STORED AS PARQUET", dir.path().display()),
        "SET datafusion.catalog.information_schema = false".to_string(),
    ] {
        let err = shelfcast::query::run(&ctx, &sql).await.expect_err(&sql);
        assert!(!err.to_string().contains("42"), "{sql}: {err}");
    }
    assert!(!dir.path().join("copied.csv").exists() && !dir.path().join("copied").exists());
    // The lake's own tables still read.
    assert!(shelfcast::query::run(&ctx, "SELECT COUNT(*) FROM sales").await.is_ok());
}

#[test]
fn names_that_would_leave_their_folder_are_refused() {
    for name in ["../x", "a/b", "/etc", "..", "a\\b", ""] {
        let text = format!("name = \"{name}\"\n[[steps]]\nname = \"s\"\nkind = \"features\"\n");
        let err = JobSpec::parse(&text, "j.toml").unwrap_err();
        assert!(matches!(err, Error::JobSpec { .. }), "{name}: {err}");
        let text =
            format!("name = \"j\"\n[[steps]]\nname = \"s\"\nkind = \"sql\"\nfile = \"x.sql\"\noutput = \"{name}\"\n");
        assert!(JobSpec::parse(&text, "j.toml").is_err(), "output {name}");
        for table in ["webhooks", "sources"] {
            let text = format!("[{table}.\"{name}\"]\nurl = \"http://127.0.0.1:1/\"\n");
            let file = SettingsFile::parse(&text, Path::new("s.toml"));
            let resolved = file.and_then(|f| {
                shelfcast::settings::Settings::resolve(f, Default::default(), Path::new("/srv").to_path_buf(), None)
            });
            assert!(resolved.is_err(), "{table}.{name}");
        }
    }
    // And should one reach the layout anyway, it stays one segment inside its folder.
    let d = date("2026-04-01");
    for bad in ["../../etc", "/etc/passwd", ".."] {
        let p = layout::job_output(bad, d);
        assert!(p.as_ref().starts_with("outputs/") && p.parts().count() == 3, "{p}");
        assert!(!p.parts().any(|s| s.as_ref() == ".."), "{p}");
    }
}

#[tokio::test]
async fn item_ids_that_look_like_paths_stay_data() {
    use arrow::array::{ArrayRef, Date32Array, Float64Array, StringArray};
    use arrow::record_batch::RecordBatch;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let (url, lake) = local_lake(dir.path());
    // 120 days of sales for three items whose ids are paths.
    let ids = ["../../escaped", "/etc/passwd", "a/../../b"];
    let start = (end() - chrono::Duration::days(119) - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days();
    let n = 120 * ids.len();
    let batch = RecordBatch::try_from_iter(vec![
        (
            "date",
            Arc::new(Date32Array::from_iter_values((0..n).map(|i| (start + (i % 120) as i64) as i32))) as ArrayRef,
        ),
        ("item_id", Arc::new(StringArray::from_iter_values((0..n).map(|i| ids[i / 120]))) as ArrayRef),
        ("location_id", Arc::new(StringArray::from_iter_values((0..n).map(|_| "../store"))) as ArrayRef),
        ("units", Arc::new(Float64Array::from_iter_values((0..n).map(|i| (i % 7) as f64))) as ArrayRef),
        ("revenue", Arc::new(Float64Array::from_iter_values((0..n).map(|i| (i % 7) as f64 * 2.0))) as ArrayRef),
        ("price", Arc::new(Float64Array::from_iter_values((0..n).map(|_| 2.0))) as ArrayRef),
    ])
    .unwrap();
    let bytes = shelfcast::lake::parquet::encode(&batch.schema(), &[batch]).unwrap();
    lake.put(&layout::raw_file("sales", "part-0.parquet"), bytes).await.unwrap();
    let env = env(settings(&url, dir.path(), SettingsFile::default()), &lake, &clock());
    let report = nightly(&env, date("2026-04-01")).await.unwrap();
    let (_, rows) = shelfcast::publish::read_forecasts(&lake, date("2026-04-01")).await.unwrap();
    assert!(rows.iter().map(|b| b.num_rows()).sum::<usize>() > 0, "{report:?}");
    // Everything written is inside the lake folder: the temp dir holds only `lake/`.
    let top: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(top, vec![std::ffi::OsString::from("lake")]);
    assert!(!Path::new("/escaped").exists() && !dir.path().join("escaped").exists());
}

fn shelfcast(dir: &Path) -> Command {
    let mut c = crate::common::shelfcast(dir);
    c.env_remove("RUST_LOG");
    c
}

/// Secrets that the process has in its environment; none may appear in any output.
pub const SECRETS: [(&str, &str); 4] = [
    ("AWS_ACCESS_KEY_ID", "AKIASHELFCASTDUMMY01"),
    ("AWS_SECRET_ACCESS_KEY", "shelfcast-dummy-secret-7f3a9c"),
    ("AWS_SESSION_TOKEN", "shelfcast-dummy-session-token-51e2"),
    ("ERP_WEBHOOK_KEY", "shelfcast-dummy-webhook-key-0b8d"),
];

/// Runs the binary with every secret in its environment and `-vv`; panics if one shows.
pub fn run_without_leaks(dir: &Path, args: &[&str], extra_env: &[(&str, String)]) -> String {
    let mut c = shelfcast(dir);
    c.arg("-vv").args(args).envs(SECRETS).envs(extra_env.iter().map(|(k, v)| (*k, v.as_str())));
    let out = c.output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{args:?}: {text}");
    for (name, value) in SECRETS {
        assert!(!text.contains(value), "{name}'s value appears in the output of {args:?}");
    }
    text
}

#[tokio::test]
async fn secrets_in_the_environment_never_reach_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A webhook whose key comes from the environment, on a port that refuses: the failed
    // delivery is logged, its key must not be.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    std::fs::write(
        d.join("shelfcast.toml"),
        format!(
            "[webhooks.erp]\nurl = \"http://127.0.0.1:{port}/hook\"\nsecret-env = \"ERP_WEBHOOK_KEY\"\nretries = 0\n"
        ),
    )
    .unwrap();
    run_without_leaks(d, &["demo", "--series", "4", "--days", "120"], &[]);
    let log = run_without_leaks(d, &["run", "nightly", "--horizon", "7"], &[]);
    assert!(log.contains("DEBUG") || log.contains("debug"), "the logs were verbose: {log}");
    run_without_leaks(d, &["query", "SELECT COUNT(*) AS n FROM sales"], &[]);
}

/// A sales source on `url` whose credential goes in `X-Api-Key`, read from the secrets below.
fn keyed_source(url: String) -> shelfcast::ingest::source::SourceSettings {
    use shelfcast::ingest::source::{Format, Pagination, SourceSettings};
    let mut s = SourceSettings::http(&url, Format::Json, "sales");
    s.records = "/data".into();
    s.pagination = Pagination::NextUrl;
    s.auth_env = Some("ERP_KEY".into());
    s.auth_header = "X-Api-Key".into();
    s.retries = 0;
    s.timeout = std::time::Duration::from_secs(5);
    s
}

#[tokio::test]
async fn a_sources_credential_never_reaches_a_server_an_answer_names() {
    use crate::server::{Reply, Server};
    use shelfcast::ingest::pull::ingest;
    use shelfcast::secrets::Secrets;

    let secrets = Secrets::from_pairs([("ERP_KEY", "k-0123456789")]);
    let row = serde_json::json!({ "date": "2026-03-30", "item_id": "A", "location_id": "S1", "units": 1 });
    // The second server: whatever asks it, it answers an empty last page.
    let other = Server::start(|_, _| Reply::With(200, r#"{"data": [], "next": null}"#.into())).await;
    let elsewhere = other.url("/collect");

    // A next page on another origin is refused before it is asked.
    let (to, page) = (elsewhere.clone(), row.clone());
    let source = Server::start(move |_, _| {
        Reply::With(200, serde_json::json!({ "data": [page.clone()], "next": to.clone() }).to_string())
    })
    .await;
    let lake = shelfcast::lake::Lake::in_memory();
    let s = keyed_source(source.url("/api"));
    let err = ingest(&lake, "erp", &s, &secrets, &clock()).await.unwrap_err().to_string();
    assert!(err.contains("next URL refused") && err.contains("another origin"), "{err}");
    assert!(other.requests().is_empty(), "the other server was never asked");
    assert!(listing(&lake).await.is_empty(), "nothing written");

    // A redirect to another origin fails the request; the other server is never asked.
    let to = elsewhere.clone();
    let redirecting = Server::start(move |_, _| Reply::Redirect(302, to.clone())).await;
    let err = ingest(&lake, "erp", &keyed_source(redirecting.url("/api")), &secrets, &clock()).await.unwrap_err();
    assert!(err.to_string().contains("redirect refused"), "{err}");
    assert!(other.requests().is_empty(), "the other server was never asked");

    // An origin the source allows gets the next page's request, without the credential.
    let mut s = keyed_source(source.url("/api"));
    s.allow_origins = vec![format!("http://{}", other.addr)];
    let r = ingest(&lake, "erp", &s, &secrets, &clock()).await.unwrap();
    assert_eq!((r.pages, r.rows_written), (2, 1));
    assert_eq!(source.requests().last().unwrap().header("x-api-key"), Some("k-0123456789"));
    let asked = other.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(asked[0].header("x-api-key"), None, "{:?}", asked[0].headers);

    // Metadata addresses are refused for sources and webhooks, unless allowed; loopback is not.
    let err = ingest(&lake, "erp", &keyed_source("http://169.254.169.254/latest".into()), &secrets, &clock())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("allow-link-local"), "{err}");
    for table in [
        "[sources.meta]\nurl = \"http://169.254.169.254/x\"\nformat = \"json\"\ntable = \"sales\"\n",
        "[webhooks.meta]\nurl = \"http://[fd00:ec2::254]/x\"\nsecret-env = \"K\"\n",
    ] {
        let err = SettingsFile::parse(table, Path::new("s.toml"))
            .and_then(|f| shelfcast::settings::Settings::resolve(f, Default::default(), "/tmp".into(), None))
            .unwrap_err()
            .to_string();
        assert!(err.contains("allow-link-local"), "{err}");
        let allowed = table
            .replace("[sources.meta]\n", "[sources.meta]\nallow-link-local = true\n")
            .replace("[webhooks.meta]\n", "[webhooks.meta]\nallow-link-local = true\n");
        SettingsFile::parse(&allowed, Path::new("s.toml"))
            .and_then(|f| shelfcast::settings::Settings::resolve(f, Default::default(), "/tmp".into(), None))
            .unwrap();
    }
}
