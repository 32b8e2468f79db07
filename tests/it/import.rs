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

    let text = quarantined(&lake, "").await;
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

/// A tiny Walmart-shaped dataset: two stores, three weeks of sales, markdowns in features.csv.
fn walmart_fixture(dir: &std::path::Path) {
    let mut train = String::from("Store,Dept,Date,Weekly_Sales,IsHoliday\n");
    for week in ["2012-01-06", "2012-01-13", "2012-01-20"] {
        for (store, dept, sales) in [(1, 1, 100.0), (1, 2, 100.0), (2, 1, 50.0)] {
            train.push_str(&format!("{store},{dept},{week},{sales},FALSE\n"));
        }
    }
    // Store 2's department 9 sells in one week only: the sales preset leaves it out.
    train.push_str("2,9,2012-01-06,50,FALSE\n");
    std::fs::write(dir.join("train.csv"), train).unwrap();
    std::fs::write(dir.join("stores.csv"), "Store,Type,Size\n1,A,150000\n2,B,90000\n").unwrap();
    std::fs::write(
        dir.join("features.csv"),
        "Store,Date,Temperature,Fuel_Price,MarkDown1,MarkDown2,MarkDown3,MarkDown4,MarkDown5,CPI,Unemployment,IsHoliday\n\
         1,2012-01-06,40.1,3.1,NA,NA,NA,NA,NA,211.1,8.1,FALSE\n\
         1,2012-01-13,41.2,3.1,100,NA,50,NA,NA,211.2,8.1,FALSE\n\
         1,2012-01-20,39.0,3.2,300,NA,NA,NA,NA,211.3,8.1,FALSE\n\
         1,2012-01-27,38.5,3.2,NA,20,NA,NA,NA,211.4,8.1,FALSE\n\
         2,2012-01-06,50.0,3.0,NA,-10.5,NA,NA,NA,130.1,4.6,FALSE\n\
         2,2012-01-13,51.0,3.0,NA,NA,NA,NA,10,130.2,4.6,FALSE\n\
         2,2012-01-20,52.0,3.0,NA,abc,NA,NA,NA,130.3,4.6,FALSE\n\
         1,soon,53.0,3.0,5,NA,NA,NA,NA,130.4,4.6,FALSE\n",
    )
    .unwrap();
}

/// The rows of `sql` as pretty-printed lines that contain `marker`, with runs of spaces made one,
/// and the whole table (for messages).
async fn table_lines(ctx: &datafusion::prelude::SessionContext, sql: &str, marker: &str) -> (Vec<String>, String) {
    let rows = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let text = arrow::util::pretty::pretty_format_batches(&rows).unwrap().to_string();
    let lines = text
        .lines()
        .filter(|l| l.contains(marker))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    (lines, text)
}

/// The quarantined rows of the import whose quarantine folder names `table` ("": the first), as text.
async fn quarantined(lake: &Lake, table: &str) -> String {
    let q = lake.list(&object_store::path::Path::from("quarantine")).await.unwrap();
    let manifest = q
        .iter()
        .find(|m| m.location.as_ref().ends_with("_manifest.json") && m.location.as_ref().contains(table))
        .unwrap();
    let folder: object_store::path::Path = manifest.location.parts().take(3).collect();
    let (_, bad) = dataset::read(lake, &folder).await.unwrap();
    arrow::util::pretty::pretty_format_batches(&bad).unwrap().to_string()
}

#[tokio::test]
async fn the_walmart_preset_maps_markdowns_to_promotions_and_quarantines_unreadable_rows() {
    let dir = tempfile::tempdir().unwrap();
    walmart_fixture(dir.path());
    let lake = Lake::in_memory();
    let reports = import::import_preset(&lake, "walmart", dir.path(), &clock()).await.unwrap();
    let promo = reports.iter().find(|r| r.table == "promotions").unwrap();
    // 8 features rows: 2 unreadable; of the rest, 4 weeks with a positive markdown, one per
    // department the sales keep (store 1: 2, store 2: 1).
    assert_eq!((promo.rows_read, promo.rows_written, promo.rows_quarantined), (9, 7, 2), "{promo:?}");
    let sales = reports.iter().find(|r| r.table == "sales").unwrap();
    assert_eq!((sales.rows_written, sales.rows_quarantined), (9, 0));

    let (ctx, _) = shelfcast::engine::open(&lake, 1).await.unwrap();
    let (got, text) = table_lines(
        &ctx,
        "SELECT item_id, location_id, CAST(start_date AS VARCHAR) AS s, CAST(end_date AS VARCHAR) AS e, kind, \
         round(discount, 3) AS d FROM promotions ORDER BY location_id, end_date, item_id",
        "dept_",
    )
    .await;
    // Store 1 sells 200 a week on average, store 2 about 66.7; the markdown at or above the
    // store's median is `markdown_deep`; a depth above 0.95 is capped.
    let want = [
        "| dept_1 | store_1 | 2012-01-07 | 2012-01-13 | markdown_deep | 0.75 |",
        "| dept_2 | store_1 | 2012-01-07 | 2012-01-13 | markdown_deep | 0.75 |",
        "| dept_1 | store_1 | 2012-01-14 | 2012-01-20 | markdown_deep | 0.95 |",
        "| dept_2 | store_1 | 2012-01-14 | 2012-01-20 | markdown_deep | 0.95 |",
        "| dept_1 | store_1 | 2012-01-21 | 2012-01-27 | markdown | 0.1 |",
        "| dept_2 | store_1 | 2012-01-21 | 2012-01-27 | markdown | 0.1 |",
        "| dept_1 | store_2 | 2012-01-07 | 2012-01-13 | markdown_deep | 0.15 |",
    ];
    assert_eq!(got, want, "{text}");

    let text = quarantined(&lake, "promotions").await;
    assert!(text.contains("Date: cannot read 'soon' as date"), "{text}");
    assert!(text.contains("MarkDown2: cannot read 'abc' as double"), "{text}");
}

#[tokio::test]
async fn the_walmart_preset_brings_the_weather_and_economy_as_location_covariates() {
    let dir = tempfile::tempdir().unwrap();
    walmart_fixture(dir.path());
    let lake = Lake::in_memory();
    let reports = import::import_preset(&lake, "walmart", dir.path(), &clock()).await.unwrap();
    let cov = reports.iter().find(|r| r.table == "known_covariates").unwrap();
    // 8 features rows × 4 columns; the row dated 'soon' is quarantined once per column.
    assert_eq!((cov.rows_read, cov.rows_written, cov.rows_quarantined), (32, 28, 4), "{cov:?}");
    let (ctx, _) = shelfcast::engine::open(&lake, 1).await.unwrap();
    let (got, text) = table_lines(
        &ctx,
        "SELECT name, COUNT(*) AS n, MIN(location_id) AS l, COUNT(item_id) AS items FROM known_covariates \
         WHERE CAST(date AS DATE) = DATE '2012-01-13' GROUP BY name ORDER BY name",
        "store_",
    )
    .await;
    let want = [
        "| cpi | 2 | store_1 | 0 |",
        "| fuel_price | 2 | store_1 | 0 |",
        "| temperature | 2 | store_1 | 0 |",
        "| unemployment | 2 | store_1 | 0 |",
    ];
    assert_eq!(got, want, "{text}");
}

#[tokio::test]
async fn a_wide_file_becomes_one_covariate_per_column_and_bad_cells_are_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("plan.csv");
    std::fs::write(
        &csv,
        "Day,Shop,Spend,Temp,Revised\n\
         2026-03-01,s1,100,12.5,2026-02-01\n\
         2026-03-02,s1,,13.0,2026-02-01\n\
         2026-03-03,s1,lots,NA,2026-02-01\n\
         2026-03-04,s2,80,inf,2026-02-15\n",
    )
    .unwrap();
    let map: BTreeMap<String, String> = [("date", "Day"), ("location_id", "Shop"), ("known_at", "Revised")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    let lake = Lake::in_memory();
    demo_lake(&lake, 2).await;
    let columns = vec!["Spend".to_string(), "Temp".to_string()];
    let r = import::import_wide(&lake, "known_covariates", &csv, &map, &columns, None, &clock()).await.unwrap();
    // Spend: 3 cells (one empty), 'lots' quarantined; Temp: 3 cells (one NA), 'inf' quarantined.
    assert_eq!((r.rows_read, r.rows_written, r.rows_quarantined), (6, 4, 2), "{r:?}");
    let (ctx, _) = shelfcast::engine::open(&lake, 1).await.unwrap();
    let (got, text) = table_lines(
        &ctx,
        "SELECT name, location_id, CAST(date AS VARCHAR) AS d, value, CAST(known_at AS VARCHAR) AS k \
         FROM known_covariates ORDER BY name, date",
        "2026-",
    )
    .await;
    let want = [
        "| Spend | s1 | 2026-03-01 | 100.0 | 2026-02-01 |",
        "| Spend | s2 | 2026-03-04 | 80.0 | 2026-02-15 |",
        "| Temp | s1 | 2026-03-01 | 12.5 | 2026-02-01 |",
        "| Temp | s1 | 2026-03-02 | 13.0 | 2026-02-01 |",
    ];
    assert_eq!(got, want, "{text}");
    let text = quarantined(&lake, "").await;
    assert!(text.contains("Spend: cannot read 'lots' as a number"), "{text}");
    assert!(text.contains("Temp: 'inf' is not a finite number"), "{text}");
    // Only the covariate tables take a wide file.
    let err = import::import_wide(&lake, "sales", &csv, &map, &columns, None, &clock()).await.unwrap_err();
    assert!(err.to_string().contains("known_covariates or observed_covariates"), "{err}");
}

fn sales_map() -> BTreeMap<String, String> {
    [("date", "Week"), ("item_id", "Dept"), ("location_id", "Store"), ("units", "Sales")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[tokio::test]
async fn non_finite_undecodable_and_late_bad_values_quarantine_their_row_alone() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();

    // NaN and inf are not units, as they are not from a source.
    let csv = dir.path().join("finite.csv");
    std::fs::write(&csv, "Store,Dept,Week,Sales\n1,7,2026-01-02,NaN\n1,7,2026-01-09,inf\n1,7,2026-01-16,3\n").unwrap();
    let lake = Lake::in_memory();
    let r = import::import_file(&lake, "sales", &csv, &sales_map(), None, &clock).await.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (1, 2));
    let text = quarantined(&lake, "").await;
    assert!(text.contains("units: 'NaN' is not a finite number"), "{text}");
    assert!(text.contains("units: 'inf' is not a finite number"), "{text}");

    // With --date-format, one date that does not read is that row's problem only.
    let csv = dir.path().join("us.csv");
    std::fs::write(&csv, "Store,Dept,Week,Sales\n1,7,01/02/2026,4\n1,7,soon,5\n").unwrap();
    let lake = Lake::in_memory();
    let r = import::import_file(&lake, "sales", &csv, &sales_map(), Some("%m/%d/%Y"), &clock).await.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (1, 1));
    assert!(quarantined(&lake, "").await.contains("date: cannot read 'soon' as date"));

    // A bad value after the first 100,000 rows, and a line that is not UTF-8.
    let csv = dir.path().join("long.csv");
    let mut body = b"Store,Dept,Week,Sales\n".to_vec();
    for _ in 0..100_010 {
        body.extend_from_slice(b"1,7,2026-01-02,1\n");
    }
    body.extend_from_slice(b"1,7,2026-01-02,lots\n1,caf\xe9,2026-01-02,1\n");
    std::fs::write(&csv, body).unwrap();
    let lake = Lake::in_memory();
    let r = import::import_file(&lake, "sales", &csv, &sales_map(), None, &clock).await.unwrap();
    assert_eq!((r.rows_read, r.rows_written, r.rows_quarantined), (100_012, 100_010, 2));
    let text = quarantined(&lake, "").await;
    assert!(text.contains("units: cannot read 'lots' as double"), "{text}");
    assert!(text.contains("line 100013: field 2 is not valid UTF-8"), "{text}");
}

#[tokio::test]
async fn file_names_are_read_or_refused_alike_whatever_their_case() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    for name in ["UPPER.CSV", "plain.txt"] {
        let csv = dir.path().join(name);
        std::fs::write(&csv, "Store,Dept,Week,Sales\n1,7,2026-01-02,2\n").unwrap();
        let r = import::import_file(&Lake::in_memory(), "sales", &csv, &sales_map(), None, &clock).await.unwrap();
        assert_eq!(r.rows_written, 1, "{name}");
    }
    let gz = dir.path().join("sales.csv.gz");
    std::fs::write(&gz, b"\x1f\x8b\x08\x00").unwrap();
    let err = import::import_file(&Lake::in_memory(), "sales", &gz, &sales_map(), None, &clock).await.unwrap_err();
    let err = err.to_string();
    assert!(err.contains("sales.csv.gz") && err.contains("compressed"), "{err}");
}

#[tokio::test]
async fn a_file_in_the_tables_shape_needs_no_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("sales.csv");
    // The table's own column names, one in another case, plus a column the table does not have.
    std::fs::write(&csv, "date,item_id,location_id,Units,note\n2026-01-02,A,L1,3,x\n2026-01-03,A,L1,4,y\n").unwrap();
    let lake = Lake::in_memory();
    let r = import::import_file(&lake, "sales", &csv, &BTreeMap::new(), None, &clock()).await.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (2, 0));
    let (ctx, _) = shelfcast::engine::open(&lake, 1).await.unwrap();
    let (lines, all) =
        table_lines(&ctx, "SELECT item_id, location_id, SUM(units) AS u FROM sales GROUP BY 1, 2", "L1").await;
    assert_eq!(lines, ["| A | L1 | 7.0 |"], "{all}");

    // An explicit mapping still wins over a same-named column.
    let map: BTreeMap<String, String> = [("units".to_string(), "date".to_string())].into();
    let lake = Lake::in_memory();
    let r = import::import_file(&lake, "sales", &csv, &map, None, &clock()).await.unwrap();
    assert_eq!((r.rows_written, r.rows_quarantined), (0, 2), "dates are not units");

    // A mapping to a column the file lacks names the file and its columns.
    let map: BTreeMap<String, String> = [("units".to_string(), "Qty".to_string())].into();
    let err = import::import_file(&Lake::in_memory(), "sales", &csv, &map, None, &clock()).await.unwrap_err();
    let err = err.to_string();
    assert!(err.contains("sales.csv") && err.contains("no column `Qty`") && err.contains("Units"), "{err}");
}

#[tokio::test]
async fn a_bad_line_in_a_presets_file_stops_it_before_any_table_is_written() {
    let dir = tempfile::tempdir().unwrap();
    walmart_fixture(dir.path());
    // The last file the preset reads has a line with a missing field, long after its first batch.
    let mut features = std::fs::read_to_string(dir.path().join("features.csv")).unwrap();
    features.push_str("2,2012-01-27,53.0\n");
    std::fs::write(dir.path().join("features.csv"), features).unwrap();
    let lake = Lake::in_memory();
    let err = import::import_preset(&lake, "walmart", dir.path(), &clock()).await.unwrap_err();
    let err = err.to_string();
    assert!(err.contains("features.csv") && err.contains("line 10"), "{err}");
    assert!(lake.list(&layout::raw_table("sales")).await.unwrap().is_empty(), "no table written");
}
