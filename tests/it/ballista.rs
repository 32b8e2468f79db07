use std::collections::BTreeMap;
use std::future::Future;

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use ballista_core::serde::BallistaCodec;
use ballista_core::serde::protobuf::scheduler_grpc_client::SchedulerGrpcClient;
use shelfcast::engine::{self, EngineKind, EngineOptions};
use shelfcast::features::{self, FeatureParams, queries};
use shelfcast::lake::{Lake, dataset, layout};
use shelfcast::quality::QualitySettings;
use shelfcast::settings::Frequency;

use crate::common::*;

/// Stack of every thread of these tests: Ballista's plan (de)serialisation and its in-process
/// scheduler and executor recurse deeper than the default 2 MiB allows in a debug build.
const STACK: usize = 16 << 20;

/// Runs `test` on a thread and a two-worker runtime with [`STACK`]-sized stacks.
fn on_big_stacks<F: Future<Output = ()>>(test: impl FnOnce() -> F + Send + 'static) {
    let thread = std::thread::Builder::new().stack_size(STACK).spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_stack_size(STACK)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(test());
    });
    if let Err(panic) = thread.unwrap().join() {
        std::panic::resume_unwind(panic);
    }
}

/// A feature table's rows: the text of the cells that are not floats (sorted by it), and the floats.
type Rows = Vec<(String, Vec<Option<f64>>)>;

/// Rows of `batches`, sorted; the columns named in `skip` left out.
fn table_rows(batches: &[RecordBatch], skip: &[&str]) -> Rows {
    let opts = FormatOptions::default().with_null("NULL");
    let mut rows = Rows::new();
    for b in batches {
        let columns: Vec<_> = b
            .schema()
            .fields()
            .iter()
            .zip(b.columns())
            .filter(|(f, _)| !skip.contains(&f.name().as_str()))
            .map(|(_, c)| c.clone())
            .collect();
        let fmts: Vec<_> = columns.iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap()).collect();
        for r in 0..b.num_rows() {
            let mut text = Vec::new();
            let mut floats = Vec::new();
            for (c, f) in columns.iter().zip(&fmts) {
                match c.data_type() {
                    DataType::Float64 => floats.push(c.is_valid(r).then(|| c.as_primitive::<Float64Type>().value(r))),
                    DataType::Float32 => {
                        floats.push(c.is_valid(r).then(|| c.as_primitive::<Float32Type>().value(r) as f64))
                    }
                    _ => text.push(f.value(r).to_string()),
                }
            }
            rows.push((text.join("|"), floats));
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

/// Every feature table of `params` in the lake: its columns and rows.
async fn snapshot(lake: &Lake, params: FeatureParams) -> BTreeMap<&'static str, (Vec<String>, Rows)> {
    let mut out = BTreeMap::new();
    for q in queries::for_frequency(params.frequency) {
        let (manifest, batches) = dataset::read(lake, &layout::features(q.name, params.cutoff)).await.unwrap();
        let columns = manifest.schema.iter().map(|c| format!("{} {}", c.name, c.data_type)).collect();
        let rows = table_rows(&batches, &[]);
        assert_eq!(rows.len() as u64, manifest.row_count, "{}: rows against its manifest", q.name);
        out.insert(q.name, (columns, rows));
    }
    out
}

/// Floats equal to 1e-9 relative (sums over rows met in another order may differ in the last bits).
fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) if a.is_nan() && b.is_nan() => true,
        (Some(a), Some(b)) => a == b || (a - b).abs() <= 1e-9 * a.abs().max(b.abs()),
        _ => false,
    }
}

/// Asserts that every feature table the cluster wrote equals the local engine's.
fn assert_same(
    what: &str,
    local: &BTreeMap<&'static str, (Vec<String>, Rows)>,
    cluster: &BTreeMap<&'static str, (Vec<String>, Rows)>,
) {
    assert_eq!(local.keys().collect::<Vec<_>>(), cluster.keys().collect::<Vec<_>>(), "{what}: tables");
    for (name, (columns, rows)) in local {
        let (c_columns, c_rows) = &cluster[name];
        assert_eq!(columns, c_columns, "{what}: {name}: columns");
        assert_rows_close(&format!("{what}: {name}"), rows, c_rows);
    }
}

/// Asserts that two tables' rows are equal, their floats to 1e-9 relative.
fn assert_rows_close(what: &str, local: &Rows, cluster: &Rows) {
    assert_eq!(local.len(), cluster.len(), "{what}: row count");
    assert!(!local.is_empty(), "{what}: no rows to compare");
    for (a, b) in local.iter().zip(cluster) {
        assert_eq!(a.0, b.0, "{what}: rows differ");
        let same = a.1.len() == b.1.len() && a.1.iter().zip(&b.1).all(|(x, y)| close(*x, *y));
        assert!(same, "{what}: row {} has floats {:?} locally, {:?} on the cluster", a.0, a.1, b.1);
    }
}

/// Materialises every feature table of `params` with the feature SQL on `engine`; with
/// `quality`, after the data-quality checks have left rows out of the raw tables.
async fn materialize_on(lake: &Lake, params: FeatureParams, engine: EngineKind, quality: bool) {
    let opts = EngineOptions::threads(2).with_engine(engine.clone());
    let (ctx, _) = engine::open_with(lake, opts).await.unwrap();
    assert_eq!(engine::feature_engine(&ctx), engine);
    let token = format!("{}-{}", engine.to_string().replace([':', '/'], "_"), params.frequency.as_str());
    if quality {
        let run_date = params.cutoff + chrono::Duration::days(1);
        let settings = QualitySettings::default();
        let q =
            shelfcast::quality::run(&ctx, lake, &settings, run_date, params.cutoff, &token, &clock()).await.unwrap();
        assert!(q.excluded_rows > 0, "no row left out");
    }
    features::materialize_all(&ctx, lake, params, &token, &clock()).await.unwrap();
}

/// The feature tables of `params` on the local engine, then on `engine`, compared.
async fn compare(lake: &Lake, params: FeatureParams, engine: EngineKind, quality: bool) {
    materialize_on(lake, params, EngineKind::Local, quality).await;
    let local = snapshot(lake, params).await;
    materialize_on(lake, params, engine.clone(), quality).await;
    let cluster = snapshot(lake, params).await;
    assert_same(&format!("{engine} ({:?})", params.frequency), &local, &cluster);
}

#[test]
fn the_standalone_cluster_writes_the_local_engines_features() {
    on_big_stacks(standalone_cluster);
}

async fn standalone_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let (_, lake) = local_lake(dir.path());
    local_demo_lake(&lake, 6).await;
    for frequency in [Frequency::Daily, Frequency::Weekly] {
        let params = FeatureParams::new(date("2026-03-10"), frequency, 14);
        compare(&lake, params, EngineKind::BallistaStandalone, false).await;
    }
}

/// Starts a stock Ballista scheduler and executor on loopback, as `ballista-scheduler` and
/// `ballista-executor` run them: Ballista's default session, codec and object stores, sharing
/// nothing with shelfcast's session (they open `file://` lakes themselves). The scheduler's port.
async fn stock_cluster() -> u16 {
    let addr = ballista_scheduler::standalone::new_standalone_scheduler().await.unwrap();
    let url = format!("http://localhost:{}", addr.port());
    let mut tries = 0;
    let scheduler = loop {
        match SchedulerGrpcClient::connect(url.clone()).await {
            Ok(client) => break client,
            Err(_) if tries < 50 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("the scheduler at {url} does not answer: {e}"),
        }
    };
    ballista_executor::new_standalone_executor(scheduler, 2, BallistaCodec::default()).await.unwrap();
    addr.port()
}

#[test]
fn a_scheduler_and_executor_on_loopback_write_the_local_engines_features() {
    on_big_stacks(stock_cluster_on_loopback);
}

async fn stock_cluster_on_loopback() {
    let port = stock_cluster().await;
    let dir = tempfile::tempdir().unwrap();
    let (_, lake) = local_lake(dir.path());
    local_demo_lake(&lake, 6).await;
    // An optional table the lake lacks is registered empty, and travels to the cluster as such.
    for obj in lake.list(&layout::raw_table("competitor_prices")).await.unwrap() {
        lake.delete(&obj.location).await.unwrap();
    }
    // The keys of the rows the quality checks leave out are an in-memory table: they travel as VALUES.
    crate::quality::add_bad_rows(&lake).await;
    let params = FeatureParams::new(end(), Frequency::Daily, 14);
    compare(&lake, params, EngineKind::Ballista { host: "localhost".into(), port }, true).await;
}

#[tokio::test]
async fn a_remote_cluster_is_refused_a_lake_its_executors_cannot_open() {
    let lake = Lake::in_memory();
    let opts = EngineOptions::threads(1).with_engine(EngineKind::Ballista { host: "localhost".into(), port: 1 });
    let Err(err) = engine::open_with(&lake, opts).await else { panic!("a memory:// lake was accepted") };
    let err = err.to_string();
    assert!(err.contains("engine") && err.contains("memory://"), "{err}");
}

#[test]
fn the_nightly_runs_its_feature_sql_on_a_cluster_and_publishes_the_local_forecasts() {
    on_big_stacks(nightly_on_a_cluster);
}

async fn nightly_on_a_cluster() {
    let port = stock_cluster().await;
    let mut published = Vec::new();
    for engine in ["local".to_string(), format!("ballista://localhost:{port}")] {
        let dir = tempfile::tempdir().unwrap();
        let (url, lake) = local_lake(dir.path());
        demo_lake(&lake, 4).await;
        let file = shelfcast::settings::SettingsFile { engine: Some(engine.clone()), ..Default::default() };
        let clock = clock();
        let env = env(settings(&url, dir.path(), file), &lake, &clock);
        let report = nightly(&env, date("2026-04-01")).await.unwrap();
        assert_eq!(report.status, shelfcast::jobs::Status::Succeeded, "{engine}");
        let dir = layout::forecasts(date("2026-04-01"));
        let (_, batches) = dataset::read(&lake, &dir).await.unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 4 * 28, "{engine}: one row per series × horizon step");
        // Run ids differ between the two runs; everything else must not.
        published.push(table_rows(&batches, &["run_id", "model_version"]));
    }
    assert_rows_close("forecasts", &published[0], &published[1]);
}
