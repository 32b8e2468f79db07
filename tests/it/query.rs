use shelfcast::Error;
use shelfcast::lake::Lake;
use shelfcast::query;

use crate::common::*;

#[tokio::test]
async fn reads_work_and_drop_insert_copy_are_refused_leaving_the_lake_unchanged() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 4).await;
    let before = listing(&lake).await;
    let (ctx, _) = shelfcast::engine::open(&lake, 1).await.unwrap();
    let rows = query::run(&ctx, "SELECT item_id, SUM(units) AS u FROM sales GROUP BY item_id").await.unwrap();
    assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 2, "4 series: 2 items × 2 locations");
    for sql in [
        "DROP TABLE sales",
        "INSERT INTO sales SELECT * FROM sales",
        "COPY sales TO 'memory:///copy/' STORED AS PARQUET",
    ] {
        let err = query::run(&ctx, sql).await.unwrap_err();
        assert!(matches!(err, Error::ReadOnly { .. }), "{sql}: {err}");
    }
    assert_eq!(listing(&lake).await, before);
    // The table is still there.
    assert!(query::run(&ctx, "SELECT COUNT(*) FROM sales").await.is_ok());
}

#[tokio::test]
async fn writes_inside_with_or_explain_are_refused_leaving_the_lake_unchanged() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 4).await;
    let before = listing(&lake).await;
    let (ctx, _) = shelfcast::engine::open(&lake, 1).await.unwrap();
    for (sql, keyword) in [
        ("WITH s AS (SELECT * FROM sales) INSERT INTO sales SELECT * FROM s", "INSERT"),
        ("WITH s AS (SELECT 1 AS x) UPDATE sales SET units = 0", "UPDATE"),
        ("WITH s AS (SELECT 1 AS x) DELETE FROM sales", "DELETE"),
        ("EXPLAIN INSERT INTO sales SELECT * FROM sales", "INSERT"),
        ("EXPLAIN ANALYZE WITH s AS (SELECT * FROM sales) INSERT INTO sales SELECT * FROM s", "INSERT"),
        ("EXPLAIN DELETE FROM sales", "DELETE"),
    ] {
        let err = query::run(&ctx, sql).await.unwrap_err();
        assert!(matches!(err, Error::ReadOnly { .. }), "{sql}: {err}");
        assert!(err.to_string().contains(keyword), "{sql}: {err}");
    }
    assert_eq!(listing(&lake).await, before);
    // Reads in the same shapes still run.
    query::run(&ctx, "WITH s AS (SELECT * FROM sales) SELECT COUNT(*) FROM s").await.unwrap();
    query::run(&ctx, "EXPLAIN SELECT COUNT(*) FROM sales").await.unwrap();
}

#[tokio::test]
async fn output_formats_write_the_rows() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 4).await;
    let (ctx, _) = shelfcast::engine::open(&lake, 1).await.unwrap();
    let rows = query::run(&ctx, "SELECT location_id, region FROM locations ORDER BY location_id").await.unwrap();
    let mut csv = Vec::new();
    query::write(&rows, query::Format::Csv, &mut csv).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("location_id,region\nstore_01,"), "{csv}");
    let mut json = Vec::new();
    query::write(&rows, query::Format::Json, &mut json).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    let mut pq = Vec::new();
    query::write(&rows, query::Format::Parquet, &mut pq).unwrap();
    let back = shelfcast::lake::parquet::decode(pq.into()).unwrap();
    assert_eq!(back.iter().map(|b| b.num_rows()).sum::<usize>(), 2);
}
