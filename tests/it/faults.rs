use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{ArrayRef, Date32Array, Float64Array, StringArray};
use arrow::record_batch::RecordBatch;
use object_store::ObjectStore;
use object_store::path::Path;
use shelfcast::Error;
use shelfcast::catalog::CorruptFiles;
use shelfcast::clock::Clock;
use shelfcast::jobs::{JobSpec, Status, Trigger, history, run_job};
use shelfcast::lake::dataset::{self, DatasetWriter, read_manifest};
use shelfcast::lake::faults::{Fault, FaultyStore, Op};
use shelfcast::lake::{Lake, layout};
use shelfcast::publish;
use shelfcast::settings::SettingsFile;

use crate::common::*;

/// The nightly job with `retries` more attempts of its publish step, 10 ms apart.
fn nightly_retrying_publish(retries: u32) -> JobSpec {
    let text = shelfcast::jobs::spec::NIGHTLY
        .replace("kind = \"publish\"", &format!("kind = \"publish\"\nretries = {retries}\nbackoff = \"10ms\""));
    JobSpec::parse(&text, "nightly.toml").unwrap()
}

fn faulty(lake: &Lake, make: impl FnOnce(Arc<dyn ObjectStore>) -> FaultyStore) -> (Lake, Arc<FaultyStore>) {
    let mut store = None;
    let lake = lake.map_store(|inner| {
        let s = Arc::new(make(inner));
        store = Some(Arc::clone(&s));
        s
    });
    (lake, store.unwrap())
}

/// A healthy lake with one published run for 2026-04-01: its dir, url, lake and that run's id.
async fn published() -> (tempfile::TempDir, String, Lake, String) {
    let dir = tempfile::tempdir().unwrap();
    let (url, lake) = local_lake(dir.path());
    demo_lake(&lake, 4).await;
    let env = env(settings(&url, dir.path(), SettingsFile::default()), &lake, &clock());
    let report = nightly(&env, date("2026-04-01")).await.unwrap();
    (dir, url, lake, report.run_id)
}

/// The published forecasts of 2026-04-01 are complete (checksums, row counts) and from `run_id`.
async fn forecasts_are_from(lake: &Lake, run_id: &str) {
    let (manifest, batches) = publish::read_forecasts(lake, date("2026-04-01")).await.unwrap();
    assert_eq!(manifest.meta["run_id"], run_id);
    assert_eq!(batches.iter().map(|b| b.num_rows() as u64).sum::<u64>(), manifest.row_count);
}

#[tokio::test]
async fn a_failing_store_is_retried_then_fails_clearly_and_the_previous_forecasts_stay() {
    let (dir, url, lake, first) = published().await;
    let latest_before = lake.get(&layout::latest("forecasts")).await.unwrap();
    // Every write under the run date's forecasts folder fails, as a connection dropped each
    // time would; features and models are written as usual.
    let (bad, store) =
        faulty(&lake, |s| FaultyStore::new(s, Fault::reset()).on(&[Op::Put]).matching("forecasts/run_date="));
    let env = env(settings(&url, dir.path(), SettingsFile::default()), &bad, &clock());
    let err = run_job(&env, &nightly_retrying_publish(2), Some(date("2026-04-01")), Trigger::Manual, &|_| {})
        .await
        .unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.contains("publish") && chain.contains("connection reset"), "{chain}");
    assert_eq!(store.injected(), 3, "three attempts, each stopped at its first write");

    let runs = history::for_date(&lake, "nightly", date("2026-04-01")).await.unwrap();
    let failed = runs.iter().find(|r| r.status == Status::Failed).expect("the failed run is recorded");
    let step = failed.steps.iter().find(|s| s.name == "publish").unwrap();
    assert_eq!((step.status, step.attempts), (Status::Failed, 3));
    // The previous run's forecasts are still the published ones, whole; no new manifest.
    forecasts_are_from(&lake, &first).await;
    assert_eq!(lake.get(&layout::latest("forecasts")).await.unwrap(), latest_before);
}

#[tokio::test]
async fn a_full_disk_mid_publish_leaves_the_previous_forecasts_and_a_rerun_completes() {
    let (dir, url, lake, first) = published().await;
    // The first write under forecasts/ (a part file) lands, the second (the manifest) finds the
    // disk full.
    let (bad, store) = faulty(&lake, |s| {
        FaultyStore::new(s, Fault::disk_full()).on(&[Op::Put]).matching("forecasts/run_date=").every(2)
    });
    let bad_env = env(settings(&url, dir.path(), SettingsFile::default()), &bad, &clock());
    let err = nightly(&bad_env, date("2026-04-01")).await.unwrap_err();
    let chain = format!("{:#}", anyhow::Error::from(err));
    assert!(chain.contains("No space left on device") && chain.contains("publish"), "{chain}");
    assert_eq!(store.injected(), 1);
    // A part file of the failed run is there, but nothing names it: readers see the old run.
    let folder = layout::forecasts(date("2026-04-01"));
    let parts = |l: &Lake| {
        let l = l.clone();
        let folder = folder.clone();
        async move {
            l.list(&folder).await.unwrap().into_iter().filter(|m| m.location.as_ref().ends_with(".parquet")).count()
        }
    };
    let m = read_manifest(&lake, &folder).await.unwrap().unwrap();
    assert_eq!(parts(&lake).await, m.files.len() + 1);
    forecasts_are_from(&lake, &first).await;

    // Space again: the rerun publishes whole and, with no grace period, clears the orphan and the
    // replaced version at once.
    let file = SettingsFile { superseded_grace: Some("0s".into()), ..Default::default() };
    let good = env(settings(&url, dir.path(), file), &lake, &clock());
    let report = nightly(&good, date("2026-04-01")).await.unwrap();
    forecasts_are_from(&lake, &report.run_id).await;
    let m = read_manifest(&lake, &folder).await.unwrap().unwrap();
    assert_eq!(parts(&lake).await, m.files.len());
}

#[tokio::test]
async fn slow_reads_only_slow_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (url, lake) = local_lake(dir.path());
    demo_lake(&lake, 4).await;
    let (slow, store) =
        faulty(&lake, |s| FaultyStore::new(s, Fault::Delay(Duration::from_millis(20))).on(&[Op::Get]).every(3));
    let env = env(settings(&url, dir.path(), SettingsFile::default()), &slow, &clock());
    let report = nightly(&env, date("2026-04-01")).await.unwrap();
    assert!(store.injected() > 0);
    forecasts_are_from(&lake, &report.run_id).await;
}

#[tokio::test]
async fn store_retries_and_timeouts_are_settings() {
    // A port on loopback nobody listens on: each request fails to connect at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let options: BTreeMap<String, String> = [
        ("aws_endpoint", format!("http://127.0.0.1:{port}")),
        ("aws_allow_http", "true".into()),
        ("aws_region", "us-east-1".into()),
        ("aws_virtual_hosted_style_request", "false".into()),
        // Explicit dummy credentials: the provider chain must never look for a metadata server.
        ("aws_access_key_id", "shelfcast-test".into()),
        ("aws_secret_access_key", "shelfcast-test-secret".into()),
        ("connect_timeout", "1s".into()),
        ("timeout", "2s".into()),
        ("retry_max_retries", "2".into()),
        ("retry_init_backoff", "10ms".into()),
        ("retry_max_backoff", "20ms".into()),
        ("retry_timeout", "5s".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let lake = Lake::open("s3://nowhere/lake", &options).unwrap();
    let started = Instant::now();
    let err = lake.get(&Path::from("x.json")).await.unwrap_err().to_string();
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    assert!(err.contains("after 2 retries"), "{err}");
    assert!(!err.contains("shelfcast-test-secret"), "{err}");

    let mut bad = options.clone();
    bad.insert("retry_max_retries".into(), "many".into());
    let err = Lake::open("s3://nowhere/lake", &bad).unwrap_err().to_string();
    assert!(err.contains("retry_max_retries") && err.contains("many"), "{err}");
    let err = Lake::open("memory:///", &[("retry_timeout".to_string(), "1s".to_string())].into()).unwrap_err();
    assert!(err.to_string().contains("s3://"), "{err}");
}

fn sales(units: ArrayRef, extra: Option<(&str, ArrayRef)>) -> RecordBatch {
    let mut cols = vec![
        ("date", Arc::new(Date32Array::from(vec![20_000])) as ArrayRef),
        ("item_id", Arc::new(StringArray::from(vec!["item_001"])) as ArrayRef),
        ("location_id", Arc::new(StringArray::from(vec!["store_01"])) as ArrayRef),
        ("units", units),
    ];
    cols.extend(extra);
    RecordBatch::try_from_iter(cols).unwrap()
}

async fn put_sales(lake: &Lake, name: &str, batch: RecordBatch) {
    let bytes = shelfcast::lake::parquet::encode(&batch.schema(), &[batch]).unwrap();
    lake.put(&layout::raw_file("sales", name), bytes).await.unwrap();
}

#[tokio::test]
async fn a_truncated_raw_file_is_named_and_stops_the_run_or_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let (url, lake) = local_lake(dir.path());
    demo_lake(&lake, 4).await;
    let good = shelfcast::lake::parquet::encode(
        &sales(Arc::new(Float64Array::from(vec![1.0])), None).schema(),
        &[sales(Arc::new(Float64Array::from(vec![1.0])), None)],
    )
    .unwrap();
    lake.put(&layout::raw_file("sales", "truncated.parquet"), good.slice(..good.len() / 2)).await.unwrap();
    lake.put(&layout::raw_file("sales", "garbage.parquet"), "not parquet at all".into()).await.unwrap();
    let before = listing(&lake).await;

    // Stop (the default): the run fails naming a file, and writes nothing.
    let stop = env(settings(&url, dir.path(), SettingsFile::default()), &lake, &clock());
    let err = nightly(&stop, date("2026-04-01")).await.unwrap_err();
    match &err {
        Error::CorruptFile { path, .. } => assert!(path.ends_with("raw/sales/garbage.parquet"), "{path}"),
        other => panic!("expected a corrupt file error, got {other}"),
    }
    assert!(err.to_string().contains("corrupt-files"), "{err}");
    assert_eq!(data_listing(&lake).await, before);

    // Quarantine: both files are moved aside and the run goes on without them.
    let file = SettingsFile { corrupt_files: Some(CorruptFiles::Quarantine), ..Default::default() };
    let env = env(settings(&url, dir.path(), file), &lake, &clock());
    let report = nightly(&env, date("2026-04-01")).await.unwrap();
    assert_eq!(report.status, Status::Succeeded);
    let all = listing(&lake).await;
    for name in ["garbage.parquet", "truncated.parquet"] {
        assert!(all.contains(&format!("quarantine/files/raw/sales/{name}")), "{all:?}");
        assert!(!all.contains(&format!("raw/sales/{name}")), "{all:?}");
    }
    forecasts_are_from(&lake, &report.run_id).await;
}

#[tokio::test]
async fn schema_drift_an_extra_column_is_kept_and_a_type_change_is_refused_by_name() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 4).await;
    let flags: ArrayRef = Arc::new(StringArray::from(vec!["endcap"]));
    put_sales(&lake, "extra.parquet", sales(Arc::new(Float64Array::from(vec![2.0])), Some(("display", flags)))).await;
    let (ctx, _) = shelfcast::engine::open(&lake, 1).await.unwrap();
    let rows = shelfcast::query::run(&ctx, "SELECT COUNT(*) AS n FROM sales WHERE display = 'endcap'").await.unwrap();
    assert_eq!(rows[0].num_rows(), 1);

    // A file in which `units` became text fails by table, column and types.
    put_sales(&lake, "drift.parquet", sales(Arc::new(StringArray::from(vec!["2"])), None)).await;
    let err = shelfcast::engine::open(&lake, 1).await.err().expect("the drifted file is refused");
    match &err {
        Error::ColumnType { table, column, expected, found } => {
            assert_eq!((table.as_str(), column.as_str()), ("sales", "units"));
            assert!(expected.contains("number") && found.contains("Utf8"), "{expected} / {found}");
        }
        other => panic!("expected a column type error, got {other}"),
    }
}

/// A one-column batch of these values.
fn ints(values: &[i64]) -> RecordBatch {
    RecordBatch::try_from_iter(vec![("v", Arc::new(arrow::array::Int64Array::from(values.to_vec())) as ArrayRef)])
        .unwrap()
}

/// A local lake and an in-memory one (which, unlike local folders, replaces a manifest with a
/// compare-and-swap).
fn two_lakes(dir: &std::path::Path) -> [Lake; 2] {
    [local_lake(dir).1, Lake::in_memory()]
}

#[tokio::test]
async fn two_writers_of_one_dataset_never_delete_each_others_files() {
    let tmp = tempfile::tempdir().unwrap();
    for lake in two_lakes(tmp.path()) {
        let folder = layout::features("target", end());
        let t0 = clock().now();
        // A writes, B writes, B commits, A commits.
        let mut a =
            DatasetWriter::new(&lake, folder.clone(), "features/target", "a", ints(&[]).schema()).with_rows_per_file(1);
        let mut b =
            DatasetWriter::new(&lake, folder.clone(), "features/target", "b", ints(&[]).schema()).with_rows_per_file(1);
        a.write(ints(&[1, 2, 3])).await.unwrap();
        b.write(ints(&[4, 5])).await.unwrap();
        let by_b = b.commit(t0, Default::default()).await.unwrap();
        let by_a = a.commit(t0 + chrono::Duration::seconds(1), Default::default()).await.unwrap();
        // The dataset is A's, whole.
        let (m, batches) = dataset::read(&lake, &folder).await.unwrap();
        assert_eq!(m.files, by_a.files);
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
        // A reader that followed B's manifest a moment before still reads B's files.
        for f in &by_b.files {
            assert!(lake.get_opt(&folder.clone().join(f.path.as_str())).await.unwrap().is_some(), "{lake}: {f:?}");
        }
    }
}

#[tokio::test]
async fn a_feature_query_whose_input_dataset_vanished_fails_and_commits_nothing() {
    use shelfcast::features::{self, FeatureParams, queries};
    use shelfcast::settings::Frequency;
    let lake = Lake::in_memory();
    demo_lake(&lake, 4).await;
    let (ctx, _) = shelfcast::engine::open(&lake, 1).await.unwrap();
    let params = FeatureParams::new(end(), Frequency::Daily, 7);
    let c = clock();
    let target = queries::by_name("target", Frequency::Daily).unwrap();
    let history = queries::by_name("history", Frequency::Daily).unwrap();
    features::materialize(&ctx, &lake, target, params, "a", &c).await.unwrap();
    // A newer version of `target` replaced this one and its files were deleted, before the
    // query that reads it ran.
    let input = read_manifest(&lake, &layout::features("target", end())).await.unwrap().unwrap();
    for f in &input.files {
        lake.delete(&layout::features("target", end()).join(f.path.as_str())).await.unwrap();
    }
    let err = features::materialize(&ctx, &lake, history, params, "a", &c).await.unwrap_err();
    assert!(err.to_string().contains(&input.files[0].path), "{err}");
    assert!(read_manifest(&lake, &layout::features("history", end())).await.unwrap().is_none(), "nothing committed");
}

#[tokio::test]
async fn replaced_files_stay_readable_for_the_grace_period_then_a_commit_or_vacuum_deletes_them() {
    use shelfcast::lake::vacuum::vacuum;
    let tmp = tempfile::tempdir().unwrap();
    for lake in two_lakes(tmp.path()) {
        assert_eq!(lake.grace(), Duration::from_secs(3600), "one hour unless set");
        let folder = layout::forecasts(date("2026-04-01"));
        let t0 = clock().now();
        let minutes = |m: i64| t0 + chrono::Duration::minutes(m);
        let commit = |token: &'static str, values: &'static [i64], at| {
            let (lake, folder) = (lake.clone(), folder.clone());
            async move {
                let mut w = DatasetWriter::new(&lake, folder, "forecasts", token, ints(values).schema());
                w.write(ints(values)).await.unwrap();
                w.commit(at, Default::default()).await.unwrap()
            }
        };
        let exists = |m: &dataset::Manifest| {
            let (lake, folder, m) = (lake.clone(), folder.clone(), m.clone());
            async move {
                let mut all = true;
                for f in &m.files {
                    all &= lake.get_opt(&folder.clone().join(f.path.as_str())).await.unwrap().is_some();
                }
                all
            }
        };
        let v1 = commit("v1", &[1], t0).await;
        // A reader follows v1's manifest; v2 replaces it.
        let v2 = commit("v2", &[2, 2], minutes(1)).await;
        assert_eq!(dataset::read(&lake, &folder).await.unwrap().0.row_count, 2, "readers of the folder get v2");
        assert!(exists(&v1).await, "v1's files stay for the reader that followed its manifest");
        assert_eq!(v2.retired.iter().map(|r| r.path.clone()).collect::<Vec<_>>(), [v1.files[0].path.clone()]);
        // Within the grace period of v1's retirement, neither a commit nor vacuum deletes them.
        let v3 = commit("v3", &[3, 3, 3], minutes(50)).await;
        assert!(exists(&v1).await && exists(&v2).await);
        assert!(vacuum(&lake, minutes(55)).await.unwrap().deleted.is_empty());
        // After it, the next commit deletes v1's; v2's, retired at 50 min, wait for vacuum.
        let v4 = commit("v4", &[4], minutes(62)).await;
        assert!(!exists(&v1).await && exists(&v2).await && exists(&v3).await);
        let report = vacuum(&lake, minutes(111)).await.unwrap();
        assert_eq!(report.deleted, [folder.clone().join(v2.files[0].path.as_str()).to_string()]);
        assert!(!exists(&v2).await && exists(&v3).await && exists(&v4).await);
        let (m, _) = dataset::read(&lake, &folder).await.unwrap();
        assert_eq!(m.files, v4.files);
    }
}

#[tokio::test]
async fn shelfcast_vacuum_deletes_what_the_grace_period_no_longer_protects() {
    let dir = tempfile::tempdir().unwrap();
    let (_, lake) = local_lake(dir.path());
    let folder = layout::forecasts(date("2026-04-01"));
    let t0 = clock().now();
    let mut old = DatasetWriter::new(&lake, folder.clone(), "forecasts", "old", ints(&[1]).schema());
    old.write(ints(&[1])).await.unwrap();
    let old = old.commit(t0, Default::default()).await.unwrap();
    let mut new = DatasetWriter::new(&lake, folder.clone(), "forecasts", "new", ints(&[2]).schema());
    new.write(ints(&[2])).await.unwrap();
    let new = new.commit(t0 + chrono::Duration::minutes(1), Default::default()).await.unwrap();
    // The old version was retired at t0 + 1 min by the fixed clock, long before the system's now.
    let old_file = folder.clone().join(old.files[0].path.as_str());
    let out = ok(shelfcast(dir.path()).args(["vacuum", "--format", "json"]));
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["deleted"], serde_json::json!([old_file.to_string()]), "{out}");
    assert!(report["bytes"].as_u64().is_some_and(|b| b > 0), "{out}");
    assert!(lake.get_opt(&old_file).await.unwrap().is_none());
    let out = ok(shelfcast(dir.path()).arg("vacuum"));
    assert!(out.contains("deleted 0 file(s)"), "a second vacuum finds nothing more: {out}");
    assert_eq!(dataset::read(&lake, &folder).await.unwrap().0.files, new.files);
}

#[tokio::test]
async fn a_failed_rerun_leaves_the_published_csv_matching_its_manifest() {
    use sha2::{Digest, Sha256};
    let dir = tempfile::tempdir().unwrap();
    let (url, lake) = local_lake(dir.path());
    demo_lake(&lake, 4).await;
    let csv = || SettingsFile {
        publish: Some(publish::PublishSettings { csv: true, ..Default::default() }),
        ..Default::default()
    };
    let first = nightly(&env(settings(&url, dir.path(), csv()), &lake, &clock()), date("2026-04-01")).await.unwrap();
    // A rerun writes its parts and its CSV copy, then fails to write the manifest.
    let folder = layout::forecasts(date("2026-04-01"));
    let (bad, store) = faulty(&lake, |s| {
        FaultyStore::new(s, Fault::reset()).on(&[Op::Put]).matching("forecasts/run_date=2026-04-01/_manifest.json")
    });
    let rerun = clock();
    rerun.advance(chrono::Duration::minutes(5));
    nightly(&env(settings(&url, dir.path(), csv()), &bad, &rerun), date("2026-04-01")).await.unwrap_err();
    assert!(store.injected() >= 1);
    // The published manifest is the first run's, and so is the CSV copy it names, byte for byte.
    let (m, _) = publish::read_forecasts(&lake, date("2026-04-01")).await.unwrap();
    assert_eq!(m.meta["run_id"], first.run_id.as_str());
    let copy = m.copy(publish::CSV_FILE).expect("the CSV copy is in the manifest");
    let bytes = lake.get(&folder.clone().join(copy.path.as_str())).await.unwrap();
    assert_eq!(hex::encode(Sha256::digest(&bytes)), copy.sha256, "the CSV matches the manifest's checksum");
    assert!(String::from_utf8(bytes.to_vec()).unwrap().lines().skip(1).all(|l| l.starts_with(&first.run_id)));
}

mod leases {
    use std::sync::Arc;
    use std::time::Duration;

    use chrono::{DateTime, Utc};
    use shelfcast::Error;
    use shelfcast::clock::{Clock, FixedClock, SystemClock};
    use shelfcast::jobs::history::{self, RunReport, Status};
    use shelfcast::lake::dataset::{DatasetWriter, read_manifest};
    use shelfcast::lake::faults::{Fault, FaultyStore, Op};
    use shelfcast::lake::lease::{self, Acquired, Lease};
    use shelfcast::lake::{Lake, layout};

    use super::{faulty, ints};
    use crate::common::*;

    const TTL: Duration = Duration::from_secs(60);

    fn dir() -> object_store::path::Path {
        layout::lease("nightly", date("2026-04-01"))
    }

    /// `holder` takes the lease at `clock`'s time; with the lake fenced by it.
    async fn take_fenced(lake: &Lake, holder: &str, clock: &FixedClock) -> (Lease, Lake) {
        let lease = take(lake, holder, clock.now()).await;
        let fenced = lake.with_fence(lease.fence(Arc::new(clock.clone())));
        (lease, fenced)
    }

    async fn take(lake: &Lake, holder: &str, now: DateTime<Utc>) -> Lease {
        match Lease::acquire(lake, &dir(), holder, "test", TTL, now).await.unwrap() {
            Acquired::Held { lease, .. } => lease,
            Acquired::Busy(s) => panic!("busy: {s:?}"),
        }
    }

    #[tokio::test]
    async fn a_failed_delete_of_an_old_generation_is_not_a_lost_lease() {
        let (lake, store) =
            faulty(&Lake::in_memory(), |s| FaultyStore::new(s, Fault::reset()).on(&[Op::Delete]).matching("leases/"));
        let t0 = clock().now();
        let mut a = take(&lake, "a", t0).await;
        a.renew(t0 + chrono::Duration::seconds(20)).await.unwrap();
        a.renew(t0 + chrono::Duration::seconds(40)).await.unwrap();
        assert!(store.injected() >= 2, "the deletes of the older generations failed");
        let held = lease::current(&lake, &dir()).await.unwrap().unwrap();
        assert_eq!((held.holder.as_str(), held.generation), ("a", 3));
        assert!(matches!(
            Lease::acquire(&lake, &dir(), "b", "test", TTL, t0 + chrono::Duration::seconds(90)).await.unwrap(),
            Acquired::Busy(_)
        ));
    }

    #[tokio::test]
    async fn a_renewal_stuck_longer_than_the_ttl_stops_the_work_and_its_commits() {
        // The second lease write (the first renewal) hangs far longer than the TTL.
        let (lake, _) = faulty(&Lake::in_memory(), |s| {
            FaultyStore::new(s, Fault::Delay(Duration::from_secs(30))).on(&[Op::Put]).matching("leases/").every(2)
        });
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let ttl = Duration::from_millis(300);
        let Acquired::Held { lease, .. } = Lease::acquire(&lake, &dir(), "a", "test", ttl, clock.now()).await.unwrap()
        else {
            panic!()
        };
        let fenced = lake.with_fence(lease.fence(Arc::clone(&clock)));
        let keeper = lease.keep(Arc::clone(&clock));
        // The holder learns it must stop by its own expiry, not when the store answers.
        tokio::time::timeout(Duration::from_secs(10), keeper.lost().cancelled())
            .await
            .expect("the work is told to stop once the lease expired unrenewed");
        let folder = layout::forecasts(date("2026-04-01"));
        let mut w = DatasetWriter::new(&fenced, folder.clone(), "forecasts", "a", ints(&[1]).schema());
        w.write(ints(&[1])).await.unwrap();
        let err = w.commit(clock.now(), Default::default()).await.unwrap_err();
        assert!(matches!(err, Error::LeaseLost { .. }), "{err}");
        assert!(read_manifest(&lake, &folder).await.unwrap().is_none(), "nothing committed");
        drop(keeper);
    }

    #[tokio::test]
    async fn a_holder_that_lost_its_lease_commits_nothing_over_the_new_holders_results() {
        let lake = Lake::in_memory();
        let clock = clock();
        let (_a, a_lake) = take_fenced(&lake, "a", &clock).await;
        // a stalls past its TTL; b takes the lease over and publishes.
        let b_clock = FixedClock::new(clock.now() + chrono::Duration::seconds(61));
        let (b, b_lake) = take_fenced(&lake, "b", &b_clock).await;
        let folder = layout::forecasts(date("2026-04-01"));
        let mut w = DatasetWriter::new(&b_lake, folder.clone(), "forecasts", "b", ints(&[2]).schema());
        w.write(ints(&[2])).await.unwrap();
        let by_b = w.commit(b_clock.now(), Default::default()).await.unwrap();
        // a wakes up, its clock still within its TTL: the higher generation fences it off.
        let mut w = DatasetWriter::new(&a_lake, folder.clone(), "forecasts", "a", ints(&[1]).schema());
        w.write(ints(&[1])).await.unwrap();
        let err = w.commit(clock.now() + chrono::Duration::seconds(30), Default::default()).await.unwrap_err();
        assert!(matches!(err, Error::LeaseLost { .. }), "{err}");
        assert_eq!(read_manifest(&lake, &folder).await.unwrap().unwrap().files, by_b.files);
        // Generations do not restart after a release: b's successor follows b.
        let last = b.state().generation;
        b.release().await.unwrap();
        let c = take(&lake, "c", b_clock.now()).await;
        assert!(c.state().generation > last);
    }

    fn record(run_id: &str, status: Status, at: DateTime<Utc>) -> RunReport {
        serde_json::from_value(serde_json::json!({
            "run_id": run_id, "job": "nightly", "run_date": "2026-04-01", "cutoff": null,
            "status": status, "started_at": at, "ended_at": at, "steps": [], "error": null,
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn a_holder_that_lost_its_lease_moves_no_watermark_pending_webhook_or_record_of_the_new_holder() {
        let lake = Lake::in_memory();
        let clock = clock();
        let (_a, a_lake) = take_fenced(&lake, "a", &clock).await;
        let watermark = layout::watermark("shop");
        let pending = layout::pending_notification("planner", "d-1");
        a_lake.put(&watermark, "a's watermark".into()).await.unwrap();
        a_lake.put(&pending, "a's delivery".into()).await.unwrap();
        history::write(&a_lake, &record("a-run", Status::Running, clock.now())).await.unwrap();

        // a stalls past its TTL; b takes over, marks a's run abandoned and moves the watermark.
        let b_clock = FixedClock::new(clock.now() + chrono::Duration::seconds(61));
        let (_b, b_lake) = take_fenced(&lake, "b", &b_clock).await;
        let abandoned = history::mark_abandoned(&b_lake, "nightly", date("2026-04-01"), "b-run").await.unwrap();
        assert_eq!(abandoned, ["a-run"]);
        b_lake.put(&watermark, "b's watermark".into()).await.unwrap();

        // a wakes up, its clock still within its TTL: every write it tries is refused.
        let lost = |r: shelfcast::Result<()>| matches!(r, Err(Error::LeaseLost { .. }));
        assert!(lost(a_lake.put(&watermark, "a's older watermark".into()).await));
        assert!(lost(a_lake.delete(&pending).await));
        assert!(lost(a_lake.rename(&pending, &layout::pending_notification("planner", "d-2")).await));
        assert!(matches!(
            a_lake.put_if_absent(&layout::watermark("other"), "x".into()).await,
            Err(Error::LeaseLost { .. })
        ));
        assert_eq!(lake.get(&watermark).await.unwrap(), "b's watermark");
        assert_eq!(lake.get(&pending).await.unwrap(), "a's delivery");
        // Its run's last record does not undo the new holder's word that it was abandoned ...
        history::write(&a_lake, &record("a-run", Status::Succeeded, clock.now())).await.unwrap();
        let stored = history::for_date(&lake, "nightly", date("2026-04-01")).await.unwrap();
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].status, Status::Abandoned, "{:?}", stored[0].error);
        // ... but a lost holder whose record nobody marked still says how its run ended.
        history::write(&a_lake, &record("a-run-2", Status::Failed, clock.now())).await.unwrap();
        let stored = history::for_date(&lake, "nightly", date("2026-04-01")).await.unwrap();
        assert!(stored.iter().any(|r| r.run_id == "a-run-2" && r.status == Status::Failed));
    }
}
