use arrow::array::{Array, AsArray, BooleanArray};
use arrow::compute::filter_record_batch;
use arrow::datatypes::{DataType, Date32Type, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use chrono::NaiveDate;
use shelfcast::catalog::schema::TABLES;
use shelfcast::features::{self, FeatureParams, queries};
use shelfcast::lake::{Lake, dataset, layout};
use shelfcast::settings::Frequency;

use crate::common::*;

/// Tables whose rows are observations, not plans: a lake "as of T" has none of them after T.
const OBSERVED: &[&str] = &["sales", "traffic", "inventory", "competitor_prices", "observed_covariates"];

/// Copies the raw tables, dropping observed rows after `cutoff`.
async fn copy_as_of(from: &Lake, to: &Lake, cutoff: NaiveDate) {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let limit = (cutoff - epoch).num_days() as i32;
    for t in TABLES {
        for obj in from.list(&layout::raw_table(t.name)).await.unwrap() {
            let mut batches = shelfcast::lake::parquet::read(from, &obj.location).await.unwrap();
            if OBSERVED.contains(&t.name) {
                batches = batches
                    .iter()
                    .map(|b| {
                        let d = b.column_by_name("date").unwrap().as_primitive::<Date32Type>();
                        let keep: BooleanArray = d.iter().map(|v| v.map(|v| v <= limit)).collect();
                        filter_record_batch(b, &keep).unwrap()
                    })
                    .collect();
            }
            // Plans revised after the cutoff were not known then.
            if t.name == "known_covariates" {
                batches = batches
                    .iter()
                    .map(|b| {
                        let d = b.column_by_name("known_at").unwrap().as_primitive::<Date32Type>();
                        let keep: BooleanArray = d.iter().map(|v| Some(v.is_none_or(|v| v <= limit))).collect();
                        filter_record_batch(b, &keep).unwrap()
                    })
                    .collect();
            }
            let schema = batches[0].schema();
            let bytes = shelfcast::lake::parquet::encode(&schema, &batches).unwrap();
            to.put(&obj.location, bytes).await.unwrap();
        }
    }
}

/// Every row of a feature dataset as text, sorted; floats to 9 decimals (sums over rows that
/// arrive in a different order may differ in the last bit).
async fn rows(lake: &Lake, name: &str, cutoff: NaiveDate) -> Vec<String> {
    let (_, batches) = dataset::read(lake, &layout::features(name, cutoff)).await.unwrap();
    let opts = FormatOptions::default().with_null("NULL");
    let mut out = Vec::new();
    for b in &batches {
        let fmts: Vec<_> = b.columns().iter().map(|c| ArrayFormatter::try_new(c.as_ref(), &opts).unwrap()).collect();
        for r in 0..b.num_rows() {
            let cells = b.columns().iter().zip(&fmts).map(|(c, f)| match c.data_type() {
                DataType::Float64 if c.is_valid(r) => format!("{:.9}", c.as_primitive::<Float64Type>().value(r)),
                _ => f.value(r).to_string(),
            });
            out.push(cells.collect::<Vec<_>>().join("|"));
        }
    }
    out.sort();
    out
}

fn first_difference(a: &[String], b: &[String]) -> Option<String> {
    if a.len() != b.len() {
        return Some(format!("{} rows against {}", a.len(), b.len()));
    }
    a.iter().zip(b).find(|(x, y)| x != y).map(|(x, y)| format!("{x}\n  vs\n{y}"))
}

async fn materialize(lake: &Lake, params: FeatureParams) {
    let (ctx, _) = shelfcast::engine::open(lake, 2).await.unwrap();
    features::materialize_all(&ctx, lake, params, "t", &clock()).await.unwrap();
}

#[tokio::test]
async fn features_at_a_cutoff_ignore_everything_observed_after_it() {
    let cutoff = date("2026-03-10");
    for frequency in [Frequency::Daily, Frequency::Weekly] {
        let full = Lake::in_memory();
        demo_lake(&full, 8).await;
        let as_of = Lake::in_memory();
        copy_as_of(&full, &as_of, cutoff).await;
        let params = FeatureParams::new(cutoff, frequency, 14);
        materialize(&full, params).await;
        materialize(&as_of, params).await;
        for q in queries::for_frequency(frequency) {
            let a = rows(&full, q.name, params.cutoff).await;
            let b = rows(&as_of, q.name, params.cutoff).await;
            assert!(!a.is_empty() || LOCAL.contains(&q.name), "{} ({frequency:?}) is empty", q.name);
            if let Some(d) = first_difference(&a, &b) {
                panic!("{} ({frequency:?}) changes with data after the cutoff:\n{d}", q.name);
            }
        }
    }
}

/// Feature tables of the local layer and the user's covariates, empty in a lake without them.
const LOCAL: &[&str] = &["closed_periods", "local_calendar", "user_known", "user_observed"];

/// The local layer (closures, regional calendar, planned covariate) plus observed covariates
/// and plan revisions made after the cutoff: the feature tables at the cutoff are the same as in
/// a lake holding nothing recorded after it.
#[tokio::test]
async fn local_and_user_tables_at_a_cutoff_ignore_everything_recorded_after_it() {
    use arrow::array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let cutoff = date("2026-03-10");
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
    let day = |d: NaiveDate| (d - epoch).num_days() as i32;
    for frequency in [Frequency::Daily, Frequency::Weekly] {
        let full = Lake::in_memory();
        let opts = shelfcast::demo::DemoOptions { local: true, ..shelfcast::demo::DemoOptions::new(8, 200, end(), 3) };
        shelfcast::demo::generate(&full, &opts, &|_, _| {}).await.unwrap();
        let days: Vec<NaiveDate> = (0..60).map(|i| date("2026-02-01") + chrono::Duration::days(i)).collect();
        let observed = RecordBatch::try_from_iter(vec![
            ("date", Arc::new(Date32Array::from_iter_values(days.iter().map(|d| day(*d)))) as ArrayRef),
            ("location_id", Arc::new(StringArray::from(vec!["store_01"; days.len()])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec!["footfall"; days.len()])) as ArrayRef),
            ("value", Arc::new(Float64Array::from_iter_values((0..days.len()).map(|i| 100.0 + i as f64))) as ArrayRef),
        ])
        .unwrap();
        let revision = RecordBatch::try_from_iter(vec![
            ("date", Arc::new(Date32Array::from(vec![day(cutoff) + 3, day(cutoff) + 4])) as ArrayRef),
            ("location_id", Arc::new(StringArray::from(vec!["store_01", "store_02"])) as ArrayRef),
            ("name", Arc::new(StringArray::from(vec!["local_marketing"; 2])) as ArrayRef),
            ("value", Arc::new(Float64Array::from(vec![7.0, 8.0])) as ArrayRef),
            ("known_at", Arc::new(Date32Array::from(vec![day(cutoff) + 1, day(cutoff) + 2])) as ArrayRef),
        ])
        .unwrap();
        for (table, batch) in [("observed_covariates", observed), ("known_covariates", revision)] {
            let bytes = shelfcast::lake::parquet::encode(&batch.schema(), &[batch]).unwrap();
            full.put(&layout::raw_table(table).join("extra.parquet"), bytes).await.unwrap();
        }
        let as_of = Lake::in_memory();
        copy_as_of(&full, &as_of, cutoff).await;
        let params = FeatureParams::new(cutoff, frequency, 14);
        materialize(&full, params).await;
        materialize(&as_of, params).await;
        for q in queries::for_frequency(frequency) {
            let a = rows(&full, q.name, params.cutoff).await;
            let b = rows(&as_of, q.name, params.cutoff).await;
            assert!(!a.is_empty(), "{} ({frequency:?}) is empty", q.name);
            if let Some(d) = first_difference(&a, &b) {
                panic!("{} ({frequency:?}) changes with data after the cutoff:\n{d}", q.name);
            }
        }
    }
}

#[tokio::test]
async fn materialised_features_replace_a_cutoff_and_known_tables_cover_the_horizon() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 4).await;
    let cutoff = date("2026-03-10");
    let params = FeatureParams::new(cutoff, Frequency::Daily, 14);
    materialize(&lake, params).await;
    materialize(&lake, params).await;
    for q in queries::for_frequency(Frequency::Daily) {
        let dir = layout::features(q.name, cutoff);
        let manifest = dataset::read_manifest(&lake, &dir).await.unwrap().unwrap();
        let files = lake.list(&dir).await.unwrap();
        // The replaced version's files stay for readers for the grace period, listed as retired.
        assert_eq!(manifest.retired.len(), manifest.files.len(), "{}: the first version is retired", q.name);
        assert_eq!(
            files.len(),
            manifest.files.len() + manifest.retired.len() + 1,
            "{}: files no manifest names left behind",
            q.name
        );
        assert_eq!(manifest.meta["role"], serde_json::to_value(q.role).unwrap());
    }
    let (ctx, _) = shelfcast::engine::open(&lake, 2).await.unwrap();
    features::register_views(&ctx, params).await.unwrap();
    let max_date = |table: &str| {
        let ctx = ctx.clone();
        let sql = format!("SELECT CAST(MAX(date) AS VARCHAR) FROM {table}");
        async move {
            let b = ctx.sql(&sql).await.unwrap().collect().await.unwrap();
            b[0].column(0).as_string_view().value(0).to_string()
        }
    };
    // Known-future tables reach the end of the horizon; past-only ones stop at the as-of row.
    assert_eq!(max_date("calendar_features").await, "2026-03-24");
    assert_eq!(max_date("price_promo").await, "2026-03-24");
    assert_eq!(max_date("target").await, "2026-03-10");
    assert_eq!(max_date("history").await, "2026-03-11");
}

/// A cross join holds its whole left input in memory, outside what spilling can bound: in every
/// feature query, as planned when the nightly materialises it, the left input of each cross join
/// is the one row of parameters, never a table (at 30,000 series a period table there took more
/// than a 4 GiB memory budget). Likewise a window whose frame runs to the end of its partition
/// (`WindowAggExec`) holds its whole input: only the calendar's days (a few thousand rows) may.
#[tokio::test]
async fn cross_joins_hold_only_the_parameter_row() {
    use datafusion::physical_plan::{ExecutionPlan, displayable};
    type Plan = std::sync::Arc<dyn ExecutionPlan>;
    /// At most one row: the parameters' literals, a global aggregate, and what passes them on.
    fn one_row(p: &Plan) -> bool {
        match p.name() {
            // An empty table: nothing to hold.
            "PlaceholderRowExec" | "EmptyExec" => true,
            "AggregateExec" => displayable(p.as_ref()).one_line().to_string().contains("gby=[]"),
            "CrossJoinExec" | "NestedLoopJoinExec" => p.children().into_iter().all(one_row),
            "ProjectionExec" | "FilterExec" | "CoalescePartitionsExec" | "RepartitionExec" | "CoalesceBatchesExec" => {
                one_row(p.children()[0])
            }
            _ => false,
        }
    }
    fn check(plan: &Plan, query: &str) {
        assert!(
            plan.name() != "WindowAggExec" || query == "calendar_features",
            "{query}: a window holds all of its input:\n{}",
            displayable(plan.as_ref()).indent(true)
        );
        if plan.name() == "CrossJoinExec" || plan.name() == "NestedLoopJoinExec" {
            let left = plan.children()[0];
            assert!(
                one_row(left),
                "{query}: a {} buffers more than a row:\n{}",
                plan.name(),
                displayable(left.as_ref()).indent(true)
            );
        }
        for child in plan.children() {
            check(child, query);
        }
    }
    for frequency in [Frequency::Daily, Frequency::Weekly] {
        let lake = Lake::in_memory();
        demo_lake(&lake, 6).await;
        let (ctx, _) = shelfcast::engine::open(&lake, 2).await.unwrap();
        let params = FeatureParams::new(end(), frequency, 14);
        for q in queries::for_frequency(frequency) {
            let plan = features::dataframe(&ctx, q, params).await.unwrap().create_physical_plan().await.unwrap();
            check(&plan, q.name);
            features::materialize(&ctx, &lake, q, params, "t", &clock()).await.unwrap();
        }
    }
}

#[tokio::test]
async fn an_open_ended_promotion_expands_over_the_horizon_not_to_the_year_9999() {
    use arrow::array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};
    use datafusion::physical_plan::{ExecutionPlan, collect};
    use std::sync::Arc;
    let lake = Lake::in_memory();
    demo_lake(&lake, 2).await;
    let (ctx, _) = shelfcast::engine::open(&lake, 2).await.unwrap();
    let item = ctx.sql("SELECT item_id, location_id FROM sales LIMIT 1").await.unwrap().collect().await.unwrap();
    let fmt = |c: usize| {
        ArrayFormatter::try_new(item[0].column(c).as_ref(), &FormatOptions::default()).unwrap().value(0).to_string()
    };
    let spec = TABLES.iter().find(|t| t.name == "promotions").unwrap();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![fmt(0)])),
        Arc::new(StringArray::from(vec![fmt(1)])),
        Arc::new(Date32Array::from(vec![20_500])),
        Arc::new(Date32Array::from(vec![2_932_896])), // 9999-12-31
        Arc::new(StringArray::from(vec!["open_ended"])),
        Arc::new(Float64Array::from(vec![0.1])),
    ];
    let batch = RecordBatch::try_new(spec.canonical_schema(), cols).unwrap();
    let bytes = shelfcast::lake::parquet::encode(&spec.canonical_schema(), &[batch]).unwrap();
    lake.put(&layout::raw_file("promotions", "open-ended.parquet"), bytes).await.unwrap();

    let (ctx, _) = shelfcast::engine::open(&lake, 2).await.unwrap();
    let params = FeatureParams::new(end(), Frequency::Daily, 14);
    features::register_views(&ctx, params).await.unwrap();
    let df =
        features::dataframe(&ctx, queries::by_name("price_promo", Frequency::Daily).unwrap(), params).await.unwrap();
    let plan = df.create_physical_plan().await.unwrap();
    let rows: usize = collect(Arc::clone(&plan), ctx.task_ctx()).await.unwrap().iter().map(|b| b.num_rows()).sum();
    fn unnested(p: &Arc<dyn ExecutionPlan>) -> usize {
        let own = if p.name() == "UnnestExec" { p.metrics().and_then(|m| m.output_rows()).unwrap_or(0) } else { 0 };
        p.children().into_iter().map(unnested).max().unwrap_or(0).max(own)
    }
    let most = unnested(&plan);
    assert!(rows > 0 && most < 10_000, "an unnest produced {most} rows for {rows} output rows");
}

#[test]
fn a_sale_dated_far_ahead_does_not_move_the_default_cutoff_of_features() {
    use arrow::array::{ArrayRef, Date32Array, Float64Array, RecordBatch, StringArray};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(shelfcast(d).args(["demo", "--series", "4", "--days", "60", "--end", "2026-03-31"]));
    let (_, lake) = local_lake(d);
    // One row of a load error, dated 2099-01-01, beside sales that end 2026-03-31.
    let far = (date("2099-01-01") - date("1970-01-01")).num_days() as i32;
    let spec = TABLES.iter().find(|t| t.name == "sales").unwrap();
    let cols: Vec<ArrayRef> = vec![
        Arc::new(Date32Array::from(vec![far])),
        Arc::new(StringArray::from(vec!["item_00000"])),
        Arc::new(StringArray::from(vec!["store_01"])),
        Arc::new(Float64Array::from(vec![3.0])),
        Arc::new(Float64Array::from(vec![6.0])),
        Arc::new(Float64Array::from(vec![2.0])),
    ];
    let batch = RecordBatch::try_new(spec.canonical_schema(), cols).unwrap();
    let bytes = shelfcast::lake::parquet::encode(&spec.canonical_schema(), &[batch]).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(lake.put(&layout::raw_file("sales", "far-ahead.parquet"), bytes)).unwrap();

    // The binary's "today" is injected (SHELFCAST_NOW), so the test does not depend on the day
    // it runs: the default cutoff is the last day with sales before it.
    let out = ok(shelfcast(d).env("SHELFCAST_NOW", "2026-04-02T06:00:00Z").args(["features", "--horizon", "7"]));
    assert!(out.contains("cutoff 2026-03-31") && !out.contains("cutoff 2099"), "{out}");
    let earlier = ok(shelfcast(d).env("SHELFCAST_NOW", "2026-03-20").args(["features", "--horizon", "7"]));
    assert!(earlier.contains("cutoff 2026-03-19"), "{earlier}");
    let bad = shelfcast(d).env("SHELFCAST_NOW", "soon").args(["features"]).output().unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && err.contains("SHELFCAST_NOW") && err.contains("`soon`"), "{err}");
    // A cutoff before the first sale (a mistyped year) is an error, not empty feature tables.
    let typo = shelfcast(d).args(["features", "--horizon", "7", "--cutoff", "2025-03-31"]).output().unwrap();
    let err = String::from_utf8_lossy(&typo.stderr);
    assert!(!typo.status.success() && err.contains("before the first day of the sales table (2026-"), "{err}");
    let stored = rt.block_on(listing(&lake));
    assert!(stored.iter().all(|p| !p.contains("cutoff=2099")), "{stored:?}");
    // No feature table reaches past the horizon of the cutoff.
    let last = (date("2026-04-07") - date("1970-01-01")).num_days() as i32;
    for q in queries::for_frequency(Frequency::Daily) {
        let (_, batches) = rt.block_on(dataset::read(&lake, &layout::features(q.name, end()))).unwrap();
        for b in &batches {
            for (field, col) in b.schema().fields().iter().zip(b.columns()) {
                if field.data_type() == &DataType::Date32 {
                    let most = col.as_primitive::<Date32Type>().iter().flatten().max();
                    assert!(most.is_none_or(|m| m <= last), "{}.{} reaches day {most:?}", q.name, field.name());
                }
            }
        }
    }
}
