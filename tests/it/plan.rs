use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Poisson};
use shelfcast::catalog::schema;
use shelfcast::lake::{Lake, dataset, layout};
use shelfcast::models::Forecaster;
use shelfcast::models::baseline::MovingAverage;
use shelfcast::panel::{Panel, SeriesKey};
use shelfcast::plan::leadtime::{Moments, moments};
use shelfcast::plan::policy::{Terms, recommend};
use shelfcast::plan::{Choice, replenish};
use shelfcast::publish::{self, latest};
use shelfcast::settings::{Frequency, SettingsFile};

use crate::common::*;

fn f64s(batches: &[RecordBatch], col: &str) -> Vec<f64> {
    batches
        .iter()
        .flat_map(|b| b.column_by_name(col).unwrap().as_primitive::<Float64Type>().values().to_vec())
        .collect()
}

fn texts(batches: &[RecordBatch], col: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = arrow::compute::cast(b.column_by_name(col).unwrap(), &arrow::datatypes::DataType::Utf8).unwrap();
            (0..c.len()).map(|i| c.as_string::<i32>().value(i).to_string()).collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn nightly_publishes_replenishment_pointers_and_stability() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 6).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let env = env(settings("memory:///", dir.path(), SettingsFile::default()), &lake, &clock);
    let report = nightly(&env, date("2026-04-01")).await.unwrap();
    let plan = report.summary.replenishment.as_ref().unwrap();
    assert_eq!(plan.rows, 6);
    assert_eq!(plan.with_stock, 6, "the demo lake has inventory for every series");
    let note = report.summary.notifications.as_ref().unwrap().note.clone();
    assert_eq!(note.as_deref(), Some("no webhooks configured"));
    assert!(report.steps.iter().all(|s| s.status == shelfcast::jobs::Status::Succeeded));

    let (manifest, rows) = dataset::read(&lake, &layout::replenishment(date("2026-04-01"))).await.unwrap();
    assert_eq!(manifest.meta["contract_version"], 1);
    assert_eq!(manifest.schema.len(), replenish::schema().fields().len());
    let rop = f64s(&rows, "reorder_point");
    let up_to = f64s(&rows, "order_up_to");
    let position = f64s(&rows, "inventory_position");
    let order = f64s(&rows, "suggested_order_qty");
    let ltd = f64s(&rows, "lead_time_demand_mean");
    let prot = f64s(&rows, "protection_demand_mean");
    for i in 0..rows.iter().map(|b| b.num_rows()).sum() {
        assert!(rop[i] >= 0.0 && rop[i].fract() == 0.0, "whole units");
        assert!(up_to[i] >= rop[i]);
        assert!(prot[i] >= ltd[i]);
        assert_eq!(order[i], (up_to[i] - position[i]).ceil().max(0.0));
    }
    // Stock comes from the cutoff's inventory row.
    let stock_dates = rows[0].column_by_name("stock_date").unwrap().as_primitive::<Date32Type>();
    assert_eq!(stock_dates.value_as_date(0), Some(date("2026-03-31")));
    assert!(
        texts(&rows, "distribution").iter().all(|d| ["normal", "poisson", "negative-binomial"].contains(&d.as_str()))
    );
    // First publication: nothing to compare.
    assert!(rows[0].column_by_name("forecast_change").unwrap().is_null(0));

    let f = latest::read(&lake, "forecasts").await.unwrap().unwrap();
    assert_eq!((f.run_date, f.run_id.as_str()), (date("2026-04-01"), report.run_id.as_str()));
    assert_eq!(f.manifest, "forecasts/run_date=2026-04-01/_manifest.json");
    assert!(latest::read(&lake, "replenishment").await.unwrap().is_some());
    // `query` sees the newest publications by name.
    let (ctx, _) = shelfcast::engine::open(&lake, 1).await.unwrap();
    let names = latest::register(&ctx, &lake, &["forecasts", "replenishment", "never_published"]).await.unwrap();
    assert_eq!(names, ["forecasts", "replenishment"]);
    let n = ctx
        .sql("SELECT COUNT(*) AS n FROM replenishment WHERE reorder_point >= 0")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(n[0].column(0).as_primitive::<arrow::datatypes::Int64Type>().value(0), 6);

    // The next night compares with this one; the same data forecasts the same numbers.
    let next = nightly(&env, date("2026-04-02")).await.unwrap();
    let st = next.summary.stability.as_ref().unwrap();
    assert_eq!(st.previous_run_date, Some(date("2026-04-01")));
    assert_eq!((st.series_compared, st.jumps), (6, 0));
    let (m, _) = publish::read_forecasts(&lake, date("2026-04-02")).await.unwrap();
    assert_eq!(m.meta["stability"]["series_compared"], 6);
    let (_, rows) = dataset::read(&lake, &layout::replenishment(date("2026-04-02"))).await.unwrap();
    assert!(f64s(&rows, "forecast_change").iter().all(|c| c.abs() < 1e-9));
    assert_eq!(latest::read(&lake, "forecasts").await.unwrap().unwrap().run_date, date("2026-04-02"));
    // Rerunning the older date leaves the pointer on the newer one.
    nightly(&env, date("2026-04-01")).await.unwrap();
    assert_eq!(latest::read(&lake, "forecasts").await.unwrap().unwrap().run_date, date("2026-04-02"));
}

#[tokio::test]
async fn supply_terms_override_the_settings_and_the_csv_copy_survives_reruns() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 3).await;
    // One series gets its own terms; a service level of 1.5 is out of range and replaced.
    let spec = schema::table("supply").unwrap();
    let (_, targets) = {
        let (ctx, _) = shelfcast::engine::open(&lake, 1).await.unwrap();
        let b = ctx
            .sql("SELECT DISTINCT item_id, location_id FROM sales ORDER BY 1, 2")
            .await
            .unwrap()
            .collect()
            .await
            .unwrap();
        (ctx, b)
    };
    let (item, loc) = (texts(&targets, "item_id")[0].clone(), texts(&targets, "location_id")[0].clone());
    let other = (texts(&targets, "item_id")[1].clone(), texts(&targets, "location_id")[1].clone());
    let batch = RecordBatch::try_new(
        spec.canonical_schema(),
        vec![
            Arc::new(arrow::array::Date32Array::from(vec![20_500, 20_500])),
            Arc::new(arrow::array::StringArray::from(vec![item.clone(), other.0.clone()])),
            Arc::new(arrow::array::StringArray::from(vec![loc.clone(), other.1.clone()])),
            Arc::new(arrow::array::Float64Array::from(vec![Some(14.0), None])),
            Arc::new(arrow::array::Float64Array::from(vec![Some(0.0), None])),
            Arc::new(arrow::array::Float64Array::from(vec![Some(0.99), Some(1.5)])),
            Arc::new(arrow::array::Float64Array::from(vec![Some(40.0), None])),
        ],
    )
    .unwrap();
    let bytes = shelfcast::lake::parquet::encode(&spec.canonical_schema(), &[batch]).unwrap();
    lake.put(&layout::raw_file("supply", "terms.parquet"), bytes).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let file = SettingsFile::parse(
        "[publish]\ncsv = true\n[plan]\nlead-time-days = 5\nservice-level = 0.9\non-order = 3\n",
        std::path::Path::new("s.toml"),
    )
    .unwrap();
    let env = env(settings("memory:///", dir.path(), file), &lake, &clock);
    let report = nightly(&env, date("2026-04-01")).await.unwrap();
    assert_eq!(report.summary.replenishment.as_ref().unwrap().invalid_terms, 1);
    let (_, rows) = dataset::read(&lake, &layout::replenishment(date("2026-04-01"))).await.unwrap();
    let items = texts(&rows, "item_id");
    let locs = texts(&rows, "location_id");
    let at = |k: &(String, String)| (0..items.len()).find(|i| items[*i] == k.0 && locs[*i] == k.1).unwrap();
    let (a, b) = (at(&(item, loc)), at(&other));
    let (lt, rp, sl, oo) = (
        f64s(&rows, "lead_time_days"),
        f64s(&rows, "review_period_days"),
        f64s(&rows, "service_level"),
        f64s(&rows, "on_order"),
    );
    assert_eq!((lt[a], rp[a], sl[a], oo[a]), (14.0, 0.0, 0.99, 40.0));
    assert_eq!((lt[b], rp[b], sl[b], oo[b]), (5.0, 7.0, 0.9, 3.0), "nulls and bad values fall back to [plan]");

    // The CSV copy is in the folder and in the manifest, under a name of its run's; a rerun
    // writes its own beside it and names that one.
    let dir = layout::forecasts(date("2026-04-01"));
    let (m, _) = publish::read_forecasts(&lake, date("2026-04-01")).await.unwrap();
    let first = m.copy(publish::CSV_FILE).unwrap();
    assert!(first.path.starts_with("forecasts-") && first.path.ends_with(".csv"), "{first:?}");
    let csv = String::from_utf8(lake.get(&dir.clone().join(first.path.as_str())).await.unwrap().to_vec()).unwrap();
    assert!(csv.starts_with("run_id,item_id,location_id,target_date,horizon,mean,q10,q50,q90,model,model_version"));
    assert_eq!(csv.lines().count(), 1 + 3 * 28);
    clock.advance(chrono::Duration::minutes(1));
    nightly(&env, date("2026-04-01")).await.unwrap();
    let (m, _) = publish::read_forecasts(&lake, date("2026-04-01")).await.unwrap();
    let second = m.copy(publish::CSV_FILE).unwrap();
    assert_ne!(second.path, first.path);
    assert_eq!((second.name.as_deref(), second.rows), (Some(publish::CSV_FILE), 3 * 28));
    assert!(lake.get_opt(&dir.clone().join(second.path.as_str())).await.unwrap().is_some());
    assert!(lake.get_opt(&dir.join(first.path.as_str())).await.unwrap().is_some(), "kept for the grace period");
}

/// Generated demand with known dispersion: each series is negative binomial (a Poisson whose
/// rate is gamma distributed), i.i.d. by day.
fn generated(series: usize, days: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<f32>> {
    (0..series)
        .map(|_| {
            let mean = rng.random_range(4.0..20.0);
            let shape = 5.0; // variance = mean + mean² / 5
            let gamma = Gamma::new(shape, mean / shape).unwrap();
            (0..days)
                .map(|_| {
                    let rate: f64 = gamma.sample(rng);
                    if rate <= 0.0 { 0.0 } else { Poisson::new(rate).unwrap().sample(rng) as f32 }
                })
                .collect()
        })
        .collect()
}

#[test]
fn reorder_points_at_95_percent_cover_lead_time_demand_about_95_percent_of_the_time() {
    // A rolling-origin backtest on generated data: at each cutoff a moving average is fitted on
    // the history, its quantile forecast planned with a 7-day lead time, and the reorder point
    // compared with the demand of the 7 days after the cutoff.
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    let (series, days, lead) = (300, 420, 7);
    let data = generated(series, days, &mut rng);
    let levels = [0.05, 0.1, 0.5, 0.9, 0.95];
    let terms = Terms {
        lead_time_days: lead as f64,
        review_period_days: 0.0,
        service_level: 0.95,
        on_hand: 0.0,
        on_order: 0.0,
    };
    let (mut covered, mut covered_by_sums, mut n) = (0, 0, 0);
    for cutoff in [364, 378, 392, 406] {
        let keys = (0..series).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "l".into() }).collect();
        let values = data.iter().map(|y| y[..cutoff].to_vec()).collect();
        let panel = Panel::new(keys, values, date("2026-01-01"), Frequency::Daily);
        let mut model = MovingAverage::new(182);
        model.fit(&panel).unwrap();
        let f = model.predict(&panel, 14, &levels).unwrap();
        for (s, y) in data.iter().enumerate() {
            let steps: Vec<Moments> = (0..14)
                .map(|h| {
                    let q: Vec<f64> = (0..levels.len()).map(|k| f.quantile_at(s, h, k) as f64).collect();
                    moments(f.mean_at(s, h) as f64, &levels, &q)
                })
                .collect();
            let r = recommend(&steps, 1.0, &terms, Choice::Auto);
            let actual: f64 = y[cutoff..cutoff + lead].iter().map(|v| *v as f64).sum();
            // What adding the daily 95% quantiles would have asked for.
            let summed: f64 = (0..lead).map(|h| f.quantile_at(s, h, 4) as f64).sum();
            covered += (actual <= r.reorder_point) as usize;
            covered_by_sums += (actual <= summed) as usize;
            n += 1;
        }
    }
    let share = covered as f64 / n as f64;
    let by_sums = covered_by_sums as f64 / n as f64;
    eprintln!("95% reorder point covered {share:.3} of {n} lead times; summed daily quantiles {by_sums:.3}");
    assert!((0.93..=0.975).contains(&share), "the 95% reorder point covered {share:.3} of {n} lead times");
    assert!(by_sums > 0.99, "summed daily quantiles over-cover: {by_sums:.3}");
}
