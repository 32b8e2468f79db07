use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, StringArray};
use arrow::record_batch::RecordBatch;
use shelfcast::Error;
use shelfcast::lake::{Lake, layout};
use shelfcast::settings::SettingsFile;

use crate::common::*;

#[tokio::test]
async fn a_lake_without_sales_fails_naming_the_table_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (url, lake) = local_lake(dir.path());
    let clock = clock();
    let env = env(settings(&url, dir.path(), SettingsFile::default()), &lake, &clock);
    let err = nightly(&env, date("2026-04-01")).await.unwrap_err();
    assert!(matches!(&err, Error::MissingTable { table, .. } if table == "sales"), "{err}");
    assert!(err.to_string().contains("raw/sales"), "{err}");
    assert!(data_listing(&lake).await.is_empty());
}

async fn write_bad_sales(lake: &Lake) {
    let batch = RecordBatch::try_from_iter(vec![
        ("date", Arc::new(Date32Array::from(vec![20_000, 20_001])) as ArrayRef),
        ("item_id", Arc::new(StringArray::from(vec!["a", "a"])) as ArrayRef),
        ("location_id", Arc::new(StringArray::from(vec!["s", "s"])) as ArrayRef),
        ("units", Arc::new(StringArray::from(vec!["3", "four"])) as ArrayRef),
        ("revenue", Arc::new(StringArray::from(vec!["1", "2"])) as ArrayRef),
        ("price", Arc::new(StringArray::from(vec!["1", "2"])) as ArrayRef),
    ])
    .unwrap();
    let bytes = shelfcast::lake::parquet::encode(&batch.schema(), &[batch]).unwrap();
    lake.put(&layout::raw_table("sales").join("part-0.parquet"), bytes).await.unwrap();
}

#[tokio::test]
async fn a_mistyped_column_names_table_column_and_types_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (url, lake) = local_lake(dir.path());
    write_bad_sales(&lake).await;
    let before = listing(&lake).await;
    let clock = clock();
    let env = env(settings(&url, dir.path(), SettingsFile::default()), &lake, &clock);
    let err = nightly(&env, date("2026-04-01")).await.unwrap_err();
    match &err {
        Error::ColumnType { table, column, expected, found } => {
            assert_eq!(table, "sales");
            assert_eq!(column, "units");
            assert!(expected.contains("number"), "{expected}");
            assert!(found.contains("Utf8"), "{found}");
        }
        other => panic!("expected a column type error, got {other}"),
    }
    assert_eq!(data_listing(&lake).await, before, "nothing may be written");
}

#[tokio::test]
async fn a_missing_column_is_named() {
    let lake = Lake::in_memory();
    let batch = RecordBatch::try_from_iter(vec![
        ("date", Arc::new(Date32Array::from(vec![20_000])) as ArrayRef),
        ("item_id", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
    ])
    .unwrap();
    let bytes = shelfcast::lake::parquet::encode(&batch.schema(), &[batch]).unwrap();
    lake.put(&layout::raw_table("sales").join("part-0.parquet"), bytes).await.unwrap();
    let ctx = shelfcast::engine::local_context(1);
    let err = shelfcast::catalog::register(&ctx, &lake).await.unwrap_err();
    assert!(
        matches!(&err, Error::MissingColumn { table, column, .. } if table == "sales" && column == "location_id"),
        "{err}"
    );
}

#[tokio::test]
async fn absent_optional_tables_are_registered_empty() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 2).await;
    for t in ["traffic", "inventory"] {
        for o in lake.list(&layout::raw_table(t)).await.unwrap() {
            lake.delete(&o.location).await.unwrap();
        }
    }
    let ctx = shelfcast::engine::local_context(1);
    let report = shelfcast::catalog::register(&ctx, &lake).await.unwrap();
    assert!(!report.get("traffic").unwrap().present);
    assert!(report.get("sales").unwrap().present);
    let rows = ctx.sql("SELECT COUNT(*) FROM traffic").await.unwrap().collect().await.unwrap();
    assert_eq!(arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string().matches("| 0 ").count(), 1);
}

#[tokio::test]
async fn a_sort_larger_than_the_memory_budget_spills_instead_of_failing() {
    use shelfcast::engine::{EngineOptions, context};
    let sql = "SELECT MAX(r) FROM (SELECT ROW_NUMBER() OVER (ORDER BY v DESC) AS r \
               FROM (SELECT value AS v FROM range(0, 8000000)))";
    let ctx = context(EngineOptions { memory_limit: Some(32 << 20), ..EngineOptions::threads(2) });
    let out = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    assert_eq!(arrow::util::pretty::pretty_format_batches(&out).unwrap().to_string().matches("8000000").count(), 1);
}
