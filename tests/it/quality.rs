use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Date32Array, Float64Array, StringArray};
use arrow::compute::concat_batches;
use arrow::datatypes::{Date32Type, Float64Type};
use arrow::record_batch::RecordBatch;
use shelfcast::Error;
use shelfcast::lake::{Lake, dataset, layout};
use shelfcast::quality::{CheckSettings, QualitySettings, Returns};
use shelfcast::settings::SettingsFile;

use crate::common::*;

fn day(s: &str) -> i32 {
    (date(s) - date("1970-01-01")).num_days() as i32
}

/// Adds a file of bad sales rows: a copy of an existing row, an impossible price, a sale after
/// the run date, an unknown item and a return (the last three at a location with no other sales). Returns the copied row's (date, item, location, units).
pub(crate) async fn add_bad_rows(lake: &Lake) -> (i32, String, String, f64) {
    let files = lake.list(&layout::raw_table("sales")).await.unwrap();
    let first = shelfcast::lake::parquet::read(lake, &files[0].location).await.unwrap();
    let b = &first[0];
    let d = b.column(0).as_primitive::<Date32Type>().value(5);
    let item = b.column(1).as_string::<i32>().value(5).to_string();
    let loc = b.column(2).as_string::<i32>().value(5).to_string();
    let units = b.column(3).as_primitive::<Float64Type>().value(5);
    let rows: Vec<(i32, &str, &str, f64, f64)> = vec![
        (d, &item, &loc, units, 1.0),
        (day("2026-03-20"), "item_00000", "store_09", 2.0, -4.0),
        (day("2026-04-20"), "item_00000", "store_01", 3.0, 1.0),
        (day("2026-03-21"), "ghost", "store_01", 7.0, 1.0),
        (day("2026-03-22"), "item_00001", "store_09", -2.0, 1.0),
    ];
    let batch = RecordBatch::try_new(
        shelfcast::catalog::schema::table("sales").unwrap().canonical_schema(),
        vec![
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef,
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3 * r.4))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.4))),
        ],
    )
    .unwrap();
    let bytes = shelfcast::lake::parquet::encode(&batch.schema(), &[batch]).unwrap();
    lake.put(&layout::raw_table("sales").join("part-late-load.parquet"), bytes).await.unwrap();
    (d, item, loc, units)
}

async fn quarantined(lake: &Lake, check: &str) -> Vec<String> {
    let (_, batches) = dataset::read(lake, &layout::quarantine(check, date("2026-04-01"))).await.unwrap();
    batches
        .iter()
        .flat_map(|b| {
            let reasons = b.column_by_name("reason").unwrap().as_string::<i32>().clone();
            (0..b.num_rows()).map(move |r| reasons.value(r).to_string())
        })
        .collect()
}

#[tokio::test]
async fn bad_rows_are_quarantined_with_reasons_and_left_out_of_the_features() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 4).await;
    let (d, item, loc, units) = add_bad_rows(&lake).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let env = env(settings("memory:///", dir.path(), SettingsFile::default()), &lake, &clock);
    let report = nightly(&env, date("2026-04-01")).await.unwrap();

    let q = report.quality.as_ref().unwrap();
    let rows = |name: &str| q.checks.iter().find(|c| c.name == name).unwrap().rows;
    assert_eq!(rows("duplicate_keys"), 1);
    assert_eq!(rows("impossible_prices"), 1);
    assert_eq!(rows("future_dates"), 1);
    assert_eq!(rows("unknown_items"), 1);
    assert_eq!(rows("negative_units"), 1, "returns are counted");
    assert_eq!(q.excluded_rows, 4, "returns are kept by default (net)");
    assert!(quarantined(&lake, "unknown_items").await[0].contains("not in the items table"));
    assert!(quarantined(&lake, "duplicate_keys").await[0].contains("copy 2 of 2"));

    // The features read the cleaned sales: no ghost item, the copied row counted once.
    let (_, target) = dataset::read(&lake, &layout::features("target", date("2026-03-31"))).await.unwrap();
    let target = concat_batches(&target[0].schema(), &target).unwrap();
    let text =
        |c: &str| arrow::compute::cast(target.column_by_name(c).unwrap(), &arrow::datatypes::DataType::Utf8).unwrap();
    let (items, locs) = (text("item_id"), text("location_id"));
    let (items, locs) = (items.as_string::<i32>(), locs.as_string::<i32>());
    let dates = target.column_by_name("date").unwrap().as_primitive::<Date32Type>();
    let u = target.column_by_name("units").unwrap().as_primitive::<Float64Type>();
    assert!((0..target.num_rows()).all(|r| items.value(r) != "ghost"));
    let r = (0..target.num_rows())
        .find(|&r| items.value(r) == item && locs.value(r) == loc && dates.value(r) == d)
        .unwrap();
    assert_eq!(u.value(r), units, "a duplicated row must count once");
    assert!(
        (0..target.num_rows()).all(|r| !(items.value(r) == "item_00000" && locs.value(r) == "store_09")),
        "the row priced at -4 is left out"
    );
    let r = (0..target.num_rows()).find(|&r| items.value(r) == "item_00001" && locs.value(r) == "store_09").unwrap();
    assert_eq!(u.value(r), -2.0, "a return nets (returns = net)");
}

#[tokio::test]
async fn dropping_returns_quarantines_them() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 4).await;
    add_bad_rows(&lake).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut s = settings("memory:///", dir.path(), SettingsFile::default());
    s.quality.returns = Returns::Drop;
    let report = nightly(&env(s, &lake, &clock), date("2026-04-01")).await.unwrap();
    assert_eq!(report.quality.unwrap().excluded_rows, 5);
}

#[tokio::test]
async fn a_blocking_check_stops_the_run_and_the_last_good_output_stays() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut s = settings("memory:///", dir.path(), SettingsFile::default());
    s.quality = QualitySettings {
        checks: [("unknown_items".to_string(), CheckSettings { blocking: true, max_rows: Some(0), max_share: None })]
            .into(),
        ..Default::default()
    };
    let good = nightly(&env(s.clone(), &lake, &clock), date("2026-04-01")).await.unwrap();
    let before = dataset::read_manifest(&lake, &layout::forecasts(date("2026-04-01"))).await.unwrap().unwrap();

    add_bad_rows(&lake).await;
    clock.advance(chrono::Duration::hours(1));
    let err = nightly(&env(s, &lake, &clock), date("2026-04-01")).await.unwrap_err();
    let msg = shelfcast::jobs::runner::error_chain(&err);
    assert!(msg.contains("data-quality gate failed") && msg.contains("unknown_items: 1 rows"), "{msg}");
    assert!(matches!(&err, Error::Step { step, .. } if step == "checks"));

    let after = dataset::read_manifest(&lake, &layout::forecasts(date("2026-04-01"))).await.unwrap().unwrap();
    assert_eq!(after.meta["run_id"], good.run_id.as_str(), "the last good forecasts stay published");
    assert_eq!(after.files, before.files);
    assert!(!quarantined(&lake, "unknown_items").await.is_empty(), "the offending rows are in quarantine");
}

/// Promotions dated as no plan can mean (ending before they start, starting centuries ahead, or
/// open-ended) are recorded by `bad_promotions` with their reasons; the run goes on.
#[tokio::test]
async fn promotions_with_dates_that_cannot_be_meant_are_recorded_with_their_reasons() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 4).await;
    let rows: Vec<(&str, &str, &str)> = vec![
        ("2026-04-10", "2026-04-05", "backwards"),
        ("2207-04-10", "2207-04-20", "typo"),
        ("2026-04-10", "9999-12-31", "open"),
        ("2026-04-10", "2026-04-20", "fine"),
    ];
    let batch = RecordBatch::try_new(
        shelfcast::catalog::schema::table("promotions").unwrap().canonical_schema(),
        vec![
            Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "item_00000"))) as ArrayRef,
            Arc::new(StringArray::from_iter_values(rows.iter().map(|_| "store_01"))),
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| day(r.0)))),
            Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| day(r.1)))),
            Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.2))),
            Arc::new(Float64Array::from_iter_values(rows.iter().map(|_| 0.2))),
        ],
    )
    .unwrap();
    let bytes = shelfcast::lake::parquet::encode(&batch.schema(), &[batch]).unwrap();
    lake.put(&layout::raw_table("promotions").join("part-plans.parquet"), bytes).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let env = env(settings("memory:///", dir.path(), SettingsFile::default()), &lake, &clock);
    let report = nightly(&env, date("2026-04-01")).await.unwrap();

    let q = report.quality.as_ref().unwrap();
    let check = q.checks.iter().find(|c| c.name == "bad_promotions").unwrap();
    assert_eq!(check.rows, 3, "{check:?}");
    assert!(!check.excluded, "findings are recorded, not left out");
    let mut reasons = quarantined(&lake, "bad_promotions").await;
    reasons.sort();
    assert!(reasons[0].contains("end_date 2026-04-05 precedes start_date 2026-04-10"), "{reasons:?}");
    assert!(reasons[1].contains("end_date 9999-12-31") && reasons[1].contains("open-ended"), "{reasons:?}");
    assert!(reasons[2].contains("start_date 2207-04-10 is more than a year after the run date"), "{reasons:?}");
}
