use std::collections::BTreeMap;

use shelfcast::ingest::import;
use shelfcast::lake::{Lake, dataset, layout};

use crate::common::*;

#[tokio::test]
async fn a_csv_maps_into_sales_and_bad_rows_are_quarantined_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("weekly.csv");
    std::fs::write(
        &csv,
        "Store,Dept,Week,Sales\n1,7,2026-01-02,100.5\n1,7,2026-01-09,abc\n2,7,,30\n2,7,2026-01-09,-5\n",
    )
    .unwrap();
    let lake = Lake::in_memory();
    let map: BTreeMap<String, String> =
        [("date", "Week"), ("item_id", "Dept"), ("location_id", "Store"), ("units", "Sales")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
    let r = import::import_file(&lake, "sales", &csv, &map, None, &clock()).await.unwrap();
    assert_eq!((r.rows_read, r.rows_written, r.rows_quarantined), (4, 2, 2));

    let (ctx, _) = shelfcast::engine::open(&lake, 1).await.unwrap();
    let rows = ctx.sql("SELECT SUM(units) AS u FROM sales").await.unwrap().collect().await.unwrap();
    assert!(arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string().contains("95.5"));

    let q = lake.list(&object_store::path::Path::from("quarantine")).await.unwrap();
    let manifest = q.iter().find(|m| m.location.as_ref().ends_with("_manifest.json")).unwrap();
    let folder: object_store::path::Path = manifest.location.parts().take(3).collect();
    let (_, bad) = dataset::read(&lake, &folder).await.unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&bad).unwrap().to_string();
    assert!(text.contains("units: cannot read 'abc' as double"), "{text}");
    assert!(text.contains("date is empty"), "{text}");
    assert!(lake.list(&layout::raw_table("sales")).await.unwrap().len() == 1);
}

#[tokio::test]
async fn a_mapping_must_cover_the_required_columns() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("s.csv");
    std::fs::write(&csv, "a,b\n1,2\n").unwrap();
    let map: BTreeMap<String, String> = [("date".to_string(), "a".to_string())].into();
    let err = import::import_file(&Lake::in_memory(), "sales", &csv, &map, None, &clock()).await.unwrap_err();
    assert!(err.to_string().contains("needs column `item_id`"), "{err}");
}
