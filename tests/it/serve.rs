//! `shelfcast serve` queried by real clients: on the PostgreSQL wire psycopg and pandas through
//! SQLAlchemy (PyPI, through `serve_client.py`), `psql`/`pg_isready` (Debian's PostgreSQL
//! client) and Debian's JDBC driver; on Arrow Flight SQL ADBC's Flight SQL driver (PyPI,
//! through `flight_client.py`). Results equal `shelfcast query`'s; writes, engine settings and
//! wrong passwords are refused; timeouts, the limit on concurrent queries, a publication during
//! a query, the catalog reopened on a new publication and SIGTERM with a query running.
//!
//! Needs a Python with psycopg, pandas, SQLAlchemy and adbc-driver-flightsql:
//! `SHELFCAST_PYTHON`, or `python3` when it has them. `.ci/run` provides one; elsewhere a test says it skipped unless `CI` is set,
//! when a missing client fails it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;
use shelfcast::settings::SettingsFile;

use crate::common::*;

/// A Python that has the clients, or `None` (a failure in CI).
fn python() -> Option<String> {
    let candidates = std::env::var("SHELFCAST_PYTHON").into_iter().chain(["python3".to_string()]);
    for py in candidates {
        let ok = Command::new(&py)
            .args(["-c", "import psycopg, pandas, sqlalchemy, adbc_driver_flightsql.dbapi"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Some(py);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must provide a Python with psycopg, pandas, SQLAlchemy and adbc-driver-flightsql (SHELFCAST_PYTHON)"
    );
    eprintln!("skipped: no Python with psycopg, pandas, SQLAlchemy and adbc-driver-flightsql (set SHELFCAST_PYTHON)");
    None
}

/// A tiny local demo lake in `dir` with one nightly published (seasonal naive).
async fn published_lake(dir: &Path) {
    let (url, lake) = local_lake(dir);
    demo_lake(&lake, 4).await;
    let env = env(settings(&url, dir, SettingsFile::default()), &lake, &clock());
    nightly(&env, date("2026-04-01")).await.unwrap();
}

/// A running `shelfcast serve`, killed when dropped.
struct Server {
    child: Child,
    /// The PostgreSQL wire endpoint's port.
    port: u16,
    /// The Flight SQL endpoint's URI (`grpc://…` or `grpc+tls://…`).
    flight: String,
    log: mpsc::Receiver<String>,
}

impl Server {
    /// Starts `shelfcast serve` on free loopback ports in `dir` (settings from
    /// `dir/shelfcast.toml`) and waits for its banner.
    fn start(dir: &Path, env: &[(&str, &str)]) -> Server {
        let mut cmd = shelfcast(dir);
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--flight-listen", "127.0.0.1:0"]);
        cmd.stderr(Stdio::piped()).stdout(Stdio::null());
        cmd.env_remove("SHELFCAST_SERVE_PASSWORD").env("RUST_LOG", "warn,shelfcast::serve=info");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let (tx, log) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(120);
        let (mut port, mut flight) = (None, None);
        loop {
            let line = log
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .unwrap_or_else(|_| panic!("shelfcast serve did not start: {:?}", child.try_wait()));
            if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
                port = rest.split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().ok();
            }
            if let Some(rest) = line.split("Flight SQL on ").nth(1) {
                flight = rest.split_whitespace().next().map(str::to_string);
            }
            if let (Some(port), Some(flight)) = (port, &flight) {
                return Server { child, port, flight: flight.clone(), log };
            }
        }
    }

    /// The log lines written so far.
    fn lines(&self) -> Vec<String> {
        self.log.try_iter().collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/serve_client.py")
}

/// Runs `sqls` through psycopg on `port`; one JSON object per statement.
fn psycopg(py: &str, port: u16, flags: &[&str], sqls: &[&str]) -> Vec<Value> {
    let out = Command::new(py).arg(client_script()).arg(port.to_string()).args(flags).args(sqls).output().unwrap();
    assert!(out.status.success(), "serve_client.py failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn flight_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/flight_client.py")
}

/// Runs `sqls` through ADBC's Flight SQL driver on `uri`; one JSON object per statement.
fn adbc(py: &str, uri: &str, flags: &[&str], sqls: &[&str]) -> Vec<Value> {
    let out = Command::new(py).arg(flight_script()).arg(uri).args(flags).args(sqls).output().unwrap();
    assert!(out.status.success(), "flight_client.py failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// Asserts that `got` (a client's result of `sql`) holds the rows `shelfcast query` gives.
fn assert_same_rows(dir: &Path, sql: &str, got: &Value, client: &str) {
    let want = query_json(dir, sql);
    let columns: Vec<&str> = got["columns"]
        .as_array()
        .unwrap_or_else(|| panic!("{client}: {sql}: {got}"))
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let rows = got["rows"].as_array().unwrap();
    assert_eq!(rows.len(), want.len(), "{client}: {sql}: row count");
    for (r, (row, expected)) in rows.iter().zip(&want).enumerate() {
        for (c, name) in columns.iter().enumerate() {
            let (a, b) = (&row[c], expected.get(*name).unwrap_or(&Value::Null));
            assert!(same(a, b), "{client}: {sql}: row {r} column {name}: {a} vs query's {b}");
        }
    }
}

/// `shelfcast query --format json` of `sql` in `dir`: one object per row.
fn query_json(dir: &Path, sql: &str) -> Vec<serde_json::Map<String, Value>> {
    let text = ok(shelfcast(dir).args(["query", "--format", "json", sql]));
    let rows: Value = serde_json::from_str(text.trim()).unwrap();
    rows.as_array().unwrap().iter().map(|r| r.as_object().unwrap().clone()).collect()
}

/// Values equal as a client sees them: numbers (and decimals) to 1e-9 relative, the rest as text.
fn same(a: &Value, b: &Value) -> bool {
    let num = |v: &Value| match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse::<f64>().ok(),
        _ => None,
    };
    match (a, b) {
        (Value::Null, Value::Null) => true,
        _ => match (num(a), num(b)) {
            (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
            _ => a == b,
        },
    }
}

fn write_settings(dir: &Path, serve: &str) {
    std::fs::write(dir.join("shelfcast.toml"), format!("[serve]\n{serve}\n")).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_psql_and_adbc_get_what_query_gives() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    published_lake(dir.path()).await;
    let server = Server::start(dir.path(), &[]);
    let queries = [
        // A join, dates and a window function.
        "SELECT s.date, s.item_id, s.location_id, s.units, i.category, \
         SUM(s.units) OVER (PARTITION BY s.item_id, s.location_id ORDER BY s.date ROWS 6 PRECEDING) AS week \
         FROM sales s JOIN items i ON i.item_id = s.item_id ORDER BY s.date, s.item_id, s.location_id",
        // Decimals, NULLs and timestamps.
        "SELECT item_id, CAST(AVG(units) AS DECIMAL(12, 3)) AS mean, CAST(NULL AS DOUBLE) AS nothing, \
         CASE WHEN item_id LIKE '%1' THEN NULL ELSE item_id END AS sometimes, \
         CAST(MAX(date) AS TIMESTAMP) AS last_at FROM sales GROUP BY item_id ORDER BY item_id",
        // The published forecasts and the run history.
        "SELECT * FROM forecasts ORDER BY item_id, location_id, target_date",
        "SELECT job, run_date, status, trigger FROM runs ORDER BY run_date",
        // A feature view at the default cutoff.
        "SELECT * FROM calendar_features ORDER BY date LIMIT 50",
        // An empty result.
        "SELECT item_id, units FROM sales WHERE units < 0",
    ];
    // pandas through SQLAlchemy's psycopg dialect, as notebooks read.
    let sql = "SELECT item_id, location_id, units FROM sales ORDER BY date, item_id, location_id LIMIT 20";
    let via = psycopg(&py, server.port, &["--sqlalchemy"], &[sql]);
    let want = query_json(dir.path(), sql);
    let rows = via[0]["rows"].as_array().unwrap_or_else(|| panic!("{}", via[0]));
    assert_eq!(rows.len(), want.len());
    for (row, w) in rows.iter().zip(&want) {
        for (c, name) in ["item_id", "location_id", "units"].iter().enumerate() {
            assert!(same(&row[c], &w[*name]), "SQLAlchemy {row} vs query {w:?}");
        }
    }
    // Drivers read the server's version as PostgreSQL words it.
    let version = psycopg(&py, server.port, &[], &["SELECT version()"]);
    assert!(version[0]["rows"][0][0].as_str().unwrap().starts_with("PostgreSQL 16"), "{}", version[0]);
    let got = psycopg(&py, server.port, &[], &queries);
    for (sql, got) in queries.iter().zip(&got) {
        assert_same_rows(dir.path(), sql, got, "psycopg");
    }
    assert!(got[2]["rows"].as_array().unwrap().len() > 10, "forecasts are served");
    // The same through Flight SQL (ADBC), the catalog listed by GetObjects.
    let got = adbc(&py, &server.flight, &["--objects"], &queries);
    let tables = got[0]["tables"].as_array().unwrap_or_else(|| panic!("{}", got[0]));
    for t in ["sales", "forecasts", "runs", "calendar_features"] {
        assert!(tables.contains(&Value::from(t)), "GetObjects lacks {t}: {tables:?}");
    }
    for (sql, got) in queries.iter().zip(&got[1..]) {
        assert_same_rows(dir.path(), sql, got, "ADBC Flight SQL");
    }
    let big = adbc(&py, &server.flight, &["--summary"], &["SELECT value FROM range(0, 500000)"]);
    assert_eq!(big[0]["count"], 500_000, "{}", big[0]);
    assert_eq!(big[0]["sum"].as_f64().unwrap(), 499_999.0 * 500_000.0 / 2.0);
    assert!(big[0]["batches"].as_i64().unwrap() > 1, "the result came as one batch: {}", big[0]);
    // A large result, streamed through a server-side cursor.
    let big = psycopg(&py, server.port, &["--summary"], &["SELECT value FROM range(0, 500000)"]);
    assert_eq!(big[0]["count"], 500_000, "{}", big[0]);
    assert_eq!(big[0]["sum"].as_f64().unwrap(), 499_999.0 * 500_000.0 / 2.0);
    // Through a named (server-side) cursor: DECLARE, FETCH 10,000 at a time, CLOSE.
    let named = psycopg(&py, server.port, &["--summary", "--named"], &["SELECT value FROM range(0, 25000)"]);
    assert_eq!(
        (named[0]["count"].as_i64(), named[0]["sum"].as_f64()),
        (Some(25_000), Some(24_999.0 * 12_500.0)),
        "{}",
        named[0]
    );
    // psql (and pg_isready, a health check) where Debian's client is installed.
    let port = server.port.to_string();
    match Command::new("psql")
        .args(["-h", "127.0.0.1", "-p", &port, "-U", "analyst", "-d", "shelfcast", "-Atc"])
        .arg("SELECT COUNT(*) FROM sales")
        .output()
    {
        Ok(out) => {
            assert!(out.status.success(), "psql: {}", String::from_utf8_lossy(&out.stderr));
            let want = query_json(dir.path(), "SELECT COUNT(*) AS n FROM sales")[0]["n"].clone();
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want.to_string());
            let ready = Command::new("pg_isready").args(["-h", "127.0.0.1", "-p", &port]).status().unwrap();
            assert!(ready.success(), "pg_isready: the server does not accept connections");
        }
        Err(_) => eprintln!("psql not installed: checked with psycopg only"),
    }
    // One log line per query, with the user, the rows and the time.
    let lines = server.lines();
    assert!(
        lines.iter().any(|l| l.contains("query") && l.contains("user=analyst") && l.contains("rows=500000")),
        "{lines:#?}"
    );
    assert!(lines.iter().any(|l| l.contains("protocol=\"flight\"") && l.contains("rows=500000")), "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_and_engine_settings_are_refused_and_the_lake_is_unchanged() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    published_lake(dir.path()).await;
    let (_, lake) = local_lake(dir.path());
    let before = listing(&lake).await;
    let server = Server::start(dir.path(), &[]);
    let refused = [
        "INSERT INTO sales SELECT * FROM sales",
        "DROP TABLE sales",
        "COPY sales TO '/tmp/shelfcast-serve-copy.csv'",
        "CREATE TABLE t AS SELECT 1",
        "WITH a AS (SELECT 1 AS x) DELETE FROM sales",
        "SET datafusion.execution.batch_size = 1",
    ];
    let got = psycopg(&py, server.port, &[], &refused);
    for (sql, got) in refused.iter().zip(&got) {
        assert_eq!(got["sqlstate"], "25006", "{sql}: {got}");
        assert!(got["message"].as_str().unwrap().contains("read-only"), "{sql}: {got}");
    }
    // Flight SQL refuses the same, with the same words (gRPC's PERMISSION_DENIED).
    let got = adbc(&py, &server.flight, &[], &refused);
    for (sql, got) in refused.iter().zip(&got) {
        assert_eq!(got["status"], "UNAUTHORIZED", "{sql}: {got}");
        assert!(got["message"].as_str().unwrap().contains("read-only"), "{sql}: {got}");
    }
    let got = adbc(&py, &server.flight, &[], &["SELECT * FROM '/etc/passwd'"]);
    assert!(got[0].get("status").is_some(), "a file path read as a table over Flight SQL: {}", got[0]);
    // A client's own session settings are accepted; a file path is not a table.
    let got = psycopg(
        &py,
        server.port,
        &[],
        &["SET application_name = 'notebook'", "SELECT * FROM '/etc/passwd'", "SELECT COUNT(*) FROM sales"],
    );
    assert!(got[0].get("sqlstate").is_none(), "{}", got[0]);
    assert!(got[1].get("sqlstate").is_some(), "a file path read as a table: {}", got[1]);
    assert!(got[2].get("rows").is_some(), "{}", got[2]);
    assert_eq!(listing(&lake).await, before, "the lake changed");
    assert!(!Path::new("/tmp/shelfcast-serve-copy.csv").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_is_checked_and_required_off_loopback() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    published_lake(dir.path()).await;
    write_settings(dir.path(), "user = \"analyst\"\npassword-env = \"TEST_SERVE_PASSWORD\"");
    // Off loopback without a password: refused before listening, naming the variable.
    let out = shelfcast(dir.path())
        .args(["serve", "--listen", "0.0.0.0:0"])
        .env_remove("TEST_SERVE_PASSWORD")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TEST_SERVE_PASSWORD"), "{err}");

    let server = Server::start(dir.path(), &[("TEST_SERVE_PASSWORD", "s3cret-pw")]);
    let right = psycopg(&py, server.port, &["--password", "s3cret-pw"], &["SELECT 1 AS one"]);
    assert_eq!(right[0]["rows"], serde_json::json!([[1]]), "{}", right[0]);
    for flags in [vec!["--password", "wrong"], vec!["--password", "s3cret-pw", "--user", "someone"], vec![]] {
        let got = psycopg(&py, server.port, &flags, &["SELECT 1"]);
        let e = got[0]["connect_error"].as_str().unwrap_or_else(|| panic!("{flags:?} let in: {}", got[0]));
        assert!(e.contains("password") || e.contains("authentication"), "{flags:?}: {e}");
    }
    // Flight SQL: the same user and password (basic authentication, then a token).
    let right = adbc(&py, &server.flight, &["--password", "s3cret-pw"], &["SELECT 1 AS one"]);
    assert_eq!(right[0]["rows"], serde_json::json!([[1]]), "{}", right[0]);
    for flags in [vec!["--password", "wrong"], vec!["--password", "s3cret-pw", "--user", "someone"]] {
        let got = adbc(&py, &server.flight, &flags, &["SELECT 1"]);
        let e = got[0]["connect_error"].as_str().unwrap_or_else(|| panic!("{flags:?} let in: {}", got[0]));
        assert!(e.contains("UNAUTHENTICATED"), "{flags:?}: {e}");
    }
    let anonymous = adbc(&py, &server.flight, &[], &["SELECT 1"]);
    assert_eq!(anonymous[0]["status"], "UNAUTHENTICATED", "{}", anonymous[0]);
    let lines = server.lines().join("\n");
    assert!(!lines.contains("s3cret-pw"), "the password was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_cancel_and_concurrent_queries_are_limited() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    published_lake(dir.path()).await;
    write_settings(dir.path(), "query-timeout = \"3s\"\nmax-queries = 2\nqueue-wait = \"0s\"\nquery-memory-mb = 4");
    let server = Server::start(dir.path(), &[]);
    // Ten billion rows: far longer than any timeout here.
    let slow = "SELECT SUM(value % 7) AS s FROM range(0, 10000000000)";
    let got = psycopg(&py, server.port, &["--parallel"], &[slow, slow, slow]);
    let states: Vec<&str> = got.iter().map(|g| g["sqlstate"].as_str().unwrap_or("ok")).collect();
    let busy = states.iter().filter(|s| **s == "53300").count();
    let cancelled: Vec<&Value> = got.iter().filter(|g| g["sqlstate"] == "57014").collect();
    assert_eq!((busy, cancelled.len()), (1, 2), "{got:#?}");
    for c in &cancelled {
        let s = c["seconds"].as_f64().unwrap();
        assert!((2.5..20.0).contains(&s), "cancelled after {s} s, the limit is 3 s");
        assert!(c["message"].as_str().unwrap().contains("timeout"), "{c}");
    }
    let refused = got.iter().find(|g| g["sqlstate"] == "53300").unwrap();
    assert!(refused["message"].as_str().unwrap().contains("max-queries"), "{refused}");
    // The slots are free again; a client's own statement_timeout shortens the limit.
    let got = psycopg(&py, server.port, &[], &["SELECT 1 AS one", "SET statement_timeout = '1s'", slow]);
    assert_eq!(got[0]["rows"], serde_json::json!([[1]]));
    assert_eq!(got[2]["sqlstate"], "57014", "{}", got[2]);
    assert!(got[2]["seconds"].as_f64().unwrap() < 2.9, "{}", got[2]);
    // A query past its memory budget fails with out_of_memory, naming the setting; a sort
    // spills and finishes.
    let got = psycopg(
        &py,
        server.port,
        &[],
        &[
            "SELECT cardinality(array_agg(value)) AS n FROM range(0, 3000000)",
            "SELECT value FROM range(0, 2000000) ORDER BY value DESC LIMIT 1",
        ],
    );
    assert_eq!(got[0]["sqlstate"], "53200", "{}", got[0]);
    assert!(got[0]["message"].as_str().unwrap().contains("query-memory-mb"), "{}", got[0]);
    assert_eq!(got[1]["rows"], serde_json::json!([[1999999]]), "{}", got[1]);
    // Flight SQL goes through the same gate: two run into the timeout, the third is refused.
    let got = adbc(&py, &server.flight, &["--parallel"], &[slow, slow, slow]);
    let refused: Vec<&Value> =
        got.iter().filter(|g| g["message"].as_str().is_some_and(|m| m.contains("max-queries"))).collect();
    let cancelled: Vec<&Value> = got.iter().filter(|g| g["status"] == "TIMEOUT").collect();
    assert_eq!((refused.len(), cancelled.len()), (1, 2), "{got:#?}");
    for c in &cancelled {
        assert!((2.5..20.0).contains(&c["seconds"].as_f64().unwrap()), "{c}");
        assert!(c["message"].as_str().unwrap().contains("query-timeout"), "{c}");
    }
    let got = adbc(&py, &server.flight, &[], &["SELECT cardinality(array_agg(value)) AS n FROM range(0, 3000000)"]);
    assert!(got[0]["message"].as_str().is_some_and(|m| m.contains("query-memory-mb")), "{}", got[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_during_a_query_leaves_it_whole_and_shows_up_without_a_restart() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    published_lake(dir.path()).await;
    write_settings(dir.path(), "refresh = \"500ms\"");
    let server = Server::start(dir.path(), &[]);
    let runs = "SELECT COUNT(*) AS n FROM runs";
    let before = psycopg(&py, server.port, &[], &[runs, "SELECT COUNT(*) AS n FROM forecasts"]);
    // A long read of the forecasts while the nightly publishes the same date again.
    let long = "SELECT r.value, f.item_id, f.target_date FROM forecasts f CROSS JOIN range(0, 20000) r";
    let (py2, port) = (py.clone(), server.port);
    let reader = std::thread::spawn(move || psycopg(&py2, port, &["--summary"], &[long]));
    let (url, lake) = local_lake(dir.path());
    let env = env(settings(&url, dir.path(), SettingsFile::default()), &lake, &clock());
    nightly(&env, date("2026-04-01")).await.unwrap();
    let read = reader.join().unwrap();
    let forecasts = before[1]["rows"][0][0].as_i64().unwrap();
    assert!(read[0].get("sqlstate").is_none(), "the publication broke a running query: {}", read[0]);
    assert_eq!(read[0]["count"].as_i64().unwrap(), forecasts * 20_000);
    // A new run record is in `runs` once the catalog is reopened, without a restart.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = psycopg(&py, server.port, &[], &[runs]);
        if now[0]["rows"][0][0].as_i64() > before[0]["rows"][0][0].as_i64() {
            break;
        }
        assert!(Instant::now() < deadline, "the new run never showed: {} then {}", before[0], now[0]);
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_running_query_finish_then_stops() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    published_lake(dir.path()).await;
    let mut server = Server::start(dir.path(), &[]);
    // A Flight SQL query too, started once its client has connected.
    let ready = dir.path().join("flight-ready");
    let (py3, uri, flag) = (py.clone(), server.flight.clone(), ready.to_str().unwrap().to_string());
    let flight_query = "SELECT SUM(value % 7) AS s FROM range(0, 60000000)";
    let flight_running = std::thread::spawn(move || adbc(&py3, &uri, &["--ready", &flag], &[flight_query]));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(Instant::now() < deadline, "the Flight SQL client never connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The PostgreSQL query likewise, once its client has connected (a loaded machine can take
    // longer than the pause below to start the client).
    let connected = dir.path().join("pg-ready");
    let (py2, port, flag) = (py.clone(), server.port, connected.to_str().unwrap().to_string());
    let query = "SELECT SUM(value % 7) AS s FROM range(0, 30000000)";
    let running = std::thread::spawn(move || psycopg(&py2, port, &["--ready", &flag], &[query]));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !connected.exists() {
        assert!(Instant::now() < deadline, "the PostgreSQL client never connected");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(700));
    let pid = server.child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let got = running.join().unwrap();
    assert_eq!(got[0]["rows"][0][0].as_f64(), Some(89_999_995.0), "the running query did not finish: {}", got[0]);
    let got = flight_running.join().unwrap();
    assert_eq!(got[0]["rows"][0][0].as_f64(), Some(179_999_994.0), "the Flight SQL query did not finish: {}", got[0]);
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the server did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    let after = psycopg(&py, port, &[], &["SELECT 1"]);
    assert!(after[0].get("connect_error").is_some(), "still accepting after stop: {}", after[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_configured_certificate() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    published_lake(dir.path()).await;
    let made = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(dir.path())
        .output();
    if !made.is_ok_and(|o| o.status.success()) {
        assert!(std::env::var_os("CI").is_none(), "CI must have openssl to make a test certificate");
        eprintln!("skipped: no openssl to make a test certificate");
        return;
    }
    write_settings(
        dir.path(),
        "tls-cert = \"cert.pem\"\ntls-key = \"key.pem\"\npassword-env = \"TEST_SERVE_PASSWORD\"",
    );
    let server = Server::start(dir.path(), &[("TEST_SERVE_PASSWORD", "over-tls")]);
    let flags = ["--sslmode", "require", "--password", "over-tls", "--user", "shelfcast"];
    let got = psycopg(&py, server.port, &flags, &["SELECT COUNT(*) AS n FROM sales"]);
    assert!(got[0].get("rows").is_some(), "{}", got[0]);
    // Flight SQL over TLS, the client trusting the test certificate; plain gRPC gets nothing.
    assert!(server.flight.starts_with("grpc+tls://"), "{}", server.flight);
    let cert = dir.path().join("cert.pem");
    let flags = ["--password", "over-tls", "--user", "shelfcast", "--root-cert", cert.to_str().unwrap()];
    let got = adbc(&py, &server.flight, &flags, &["SELECT COUNT(*) AS n FROM sales"]);
    assert!(got[0].get("rows").is_some(), "{}", got[0]);
    let plain = server.flight.replace("grpc+tls://", "grpc://");
    let got = adbc(&py, &plain, &["--password", "over-tls", "--user", "shelfcast"], &["SELECT 1"]);
    assert!(got[0].get("connect_error").is_some(), "plain gRPC reached a TLS endpoint: {}", got[0]);
    // A key that does not go with the certificate is refused at start, naming the file.
    std::fs::write(dir.path().join("key.pem"), "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
        .unwrap();
    let out = shelfcast(dir.path())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("TEST_SERVE_PASSWORD", "x")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("key.pem"), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Debian's PostgreSQL JDBC driver (`libpostgresql-jdbc-java`), when it and a JDK are installed.
const JDBC_JAR: &str = "/usr/share/java/postgresql.jar";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jdbc_reads_the_metadata_and_runs_prepared_statements() {
    let dir = tempfile::tempdir().unwrap();
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/it/ServeProbe.java");
    let compiled = Path::new(JDBC_JAR).is_file()
        && Command::new("javac").arg("-d").arg(dir.path()).arg(&source).status().is_ok_and(|s| s.success());
    if !compiled {
        eprintln!("skipped: no JDK or no {JDBC_JAR} (apt-get install default-jdk-headless libpostgresql-jdbc-java)");
        return;
    }
    published_lake(dir.path()).await;
    let server = Server::start(dir.path(), &[]);
    let out = Command::new("java")
        .arg("-cp")
        .arg(format!("{}:{JDBC_JAR}", dir.path().display()))
        .arg("ServeProbe")
        .arg(server.port.to_string())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}{}", String::from_utf8_lossy(&out.stderr));
    let want = query_json(
        dir.path(),
        "SELECT item_id, SUM(units) AS u FROM sales WHERE location_id = 'store_01' GROUP BY item_id ORDER BY item_id",
    );
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("row ")).collect();
    assert_eq!(rows.len(), want.len(), "{text}");
    for (line, w) in rows.iter().zip(&want) {
        let parts: Vec<&str> = line.split(' ').collect();
        assert_eq!(parts[1], w["item_id"].as_str().unwrap(), "{text}");
        assert!(same(&serde_json::json!(parts[2].parse::<f64>().unwrap()), &w["u"]), "{line} vs {w:?}");
    }
    assert!(text.contains("sales_columns ") && !text.contains("sales_columns 0"), "{text}");
    assert!(text.contains("insert_refused 25006"), "{text}");
}
