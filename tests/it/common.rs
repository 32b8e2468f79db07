use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{Duration, NaiveDate, TimeZone, Utc};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shelfcast::clock::FixedClock;
use shelfcast::demo::{self, DemoOptions};
use shelfcast::jobs::{JobSpec, RunEnv, RunReport, Trigger, run_job};
use shelfcast::lake::Lake;
use shelfcast::panel::{Panel, SeriesKey};
use shelfcast::settings::{Frequency, Overrides, Settings, SettingsFile};

pub fn date(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// Last day of every fixture lake's history.
pub fn end() -> NaiveDate {
    date("2026-03-31")
}

pub fn clock() -> FixedClock {
    FixedClock::new(Utc.with_ymd_and_hms(2026, 4, 1, 2, 0, 0).unwrap())
}

pub fn settings(lake: &str, base: &Path, mut file: SettingsFile) -> Settings {
    // The default models include the deep ones; tests that train them say so.
    file.models.get_or_insert_with(|| vec!["seasonal_naive".into()]);
    let o = Overrides { lake: Some(lake.to_string()), threads: Some(2), ..Default::default() };
    Settings::resolve(file, o, base.to_path_buf(), None).unwrap()
}

/// A tiny demo lake: `series` series over 120 days ending [`end`].
pub async fn demo_lake(lake: &Lake, series: usize) {
    let opts = DemoOptions::new(series, 120, end(), 7);
    demo::generate(lake, &opts, &|_, _| {}).await.unwrap();
}

/// A tiny demo lake with the local layer (closures, regional holidays, the planned covariate) and
/// an observed covariate (`footfall` per location over the last 60 days): every feature table has
/// rows.
pub async fn local_demo_lake(lake: &Lake, series: usize) {
    use arrow::array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};
    let opts = DemoOptions { local: true, ..DemoOptions::new(series, 120, end(), 7) };
    demo::generate(lake, &opts, &|_, _| {}).await.unwrap();
    let last = (end() - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
    let (mut dates, mut locs, mut values) = (Vec::new(), Vec::new(), Vec::new());
    for l in 0..demo::locations_for(series) {
        for d in 0..60 {
            dates.push(last - d);
            locs.push(format!("store_{:02}", l + 1));
            values.push(100.0 + (d * 7 % 13) as f64 + l as f64);
        }
    }
    let n = dates.len();
    let batch = RecordBatch::try_from_iter(vec![
        ("date", Arc::new(Date32Array::from(dates)) as ArrayRef),
        ("location_id", Arc::new(StringArray::from(locs)) as ArrayRef),
        ("name", Arc::new(StringArray::from(vec!["footfall"; n])) as ArrayRef),
        ("value", Arc::new(Float64Array::from(values)) as ArrayRef),
    ])
    .unwrap();
    let bytes = shelfcast::lake::parquet::encode(&batch.schema(), &[batch]).unwrap();
    lake.put(&shelfcast::lake::layout::raw_table("observed_covariates").join("footfall.parquet"), bytes).await.unwrap();
    // A regional fair and one store's event in March, whatever days the regional holidays drew.
    let events = RecordBatch::try_from_iter(vec![
        ("date", Arc::new(Date32Array::from(vec![last - 26, last - 19])) as ArrayRef),
        ("event", Arc::new(StringArray::from(vec!["north_fair", "store_event"])) as ArrayRef),
        ("kind", Arc::new(StringArray::from(vec!["festival", "festival"])) as ArrayRef),
        ("location_id", Arc::new(StringArray::from(vec![None, Some("store_01")])) as ArrayRef),
        ("region", Arc::new(StringArray::from(vec![Some("north"), None])) as ArrayRef),
    ])
    .unwrap();
    let bytes = shelfcast::lake::parquet::encode(&events.schema(), &[events]).unwrap();
    lake.put(&shelfcast::lake::layout::raw_table("calendar").join("fairs.parquet"), bytes).await.unwrap();
}

pub fn env(settings: Settings, lake: &Lake, clock: &FixedClock) -> RunEnv {
    RunEnv::new(settings, lake.clone(), Arc::new(clock.clone()))
}

pub async fn nightly(env: &RunEnv, run_date: NaiveDate) -> shelfcast::Result<RunReport> {
    let job = JobSpec::parse(shelfcast::jobs::spec::NIGHTLY, "nightly.toml").unwrap();
    run_job(env, &job, Some(run_date), Trigger::Manual, &|_| {}).await
}

pub fn local_lake(dir: &Path) -> (String, Lake) {
    let url = shelfcast::settings::resolve_lake_url("lake", dir).unwrap();
    let lake = Lake::open(&url, &BTreeMap::new()).unwrap();
    (url, lake)
}

/// Every object in the lake, as lake-relative paths.
pub async fn listing(lake: &Lake) -> Vec<String> {
    lake.list(&object_store::path::Path::from("")).await.unwrap().into_iter().map(|m| m.location.to_string()).collect()
}

/// Every object in the lake but the leases' (a run that failed leaves its lease's released
/// generation, so the next holder's generation follows it).
pub async fn data_listing(lake: &Lake) -> Vec<String> {
    listing(lake).await.into_iter().filter(|p| !p.starts_with("leases/")).collect()
}

/// The binary, run in `dir` with settings from there only: the lake and config variables of the
/// caller's environment removed, two threads, and baseline models (the default models include
/// the deep ones, slow in a debug build).
pub fn shelfcast(dir: &Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_shelfcast"));
    c.current_dir(dir)
        .env_remove("SHELFCAST_LAKE")
        .env_remove("SHELFCAST_CONFIG")
        .env_remove("SHELFCAST_TEST_STEP_DELAY")
        .env("SHELFCAST_MODELS", "seasonal_naive")
        .env("SHELFCAST_THREADS", "2");
    c
}

/// Runs `c`, asserting it succeeds; its standard output.
pub fn ok(c: &mut std::process::Command) -> String {
    let out = c.output().unwrap();
    assert!(out.status.success(), "{c:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// Sparse series, `days` long, the last `horizon` held out as the test: on about one day in three
/// a sale of 8 to 12, else nothing. Their mean is about 3, their median 0, so a forecast at the
/// mean misses every day by about 3 or 7. The history ends a horizon before [`end`].
pub fn sparse_panel(series: usize, days: usize, horizon: usize, seed: u64) -> (Panel, Vec<Vec<f32>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for _ in 0..series {
        let y: Vec<f32> =
            (0..days).map(|_| if rng.random_bool(0.3) { rng.random_range(8..=12) as f32 } else { 0.0 }).collect();
        train.push(y[..days - horizon].to_vec());
        test.push(y[days - horizon..].to_vec());
    }
    let keys = (0..series).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect();
    (Panel::new(keys, train, end() - Duration::days(horizon as i64), Frequency::Daily), test)
}

/// Mean absolute error of `at(series, step)` against `test` (per series, the periods after the
/// history).
pub fn test_mae(test: &[Vec<f32>], at: &dyn Fn(usize, usize) -> f32) -> f64 {
    let n: usize = test.iter().map(Vec::len).sum();
    let errors = test.iter().enumerate().flat_map(|(s, y)| y.iter().enumerate().map(move |(h, a)| (s, h, *a)));
    errors.map(|(s, h, a)| f64::from((at(s, h) - a).abs())).sum::<f64>() / n.max(1) as f64
}
