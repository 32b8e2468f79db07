use arrow::array::{Array, AsArray};
use arrow::datatypes::{Date32Type, Float64Type, Int32Type};
use chrono::{Datelike, Duration, Weekday};
use shelfcast::lake::{Lake, layout};
use shelfcast::publish;
use shelfcast::settings::{Frequency, SettingsFile};

use crate::common::*;

#[tokio::test]
async fn nightly_publishes_every_series_with_ordered_quantiles_and_a_matching_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let (url, lake) = local_lake(dir.path());
    demo_lake(&lake, 10).await;
    let clock = clock();
    let env = env(settings(&url, dir.path(), SettingsFile::default()), &lake, &clock);
    let run_date = date("2026-04-01");
    let report = nightly(&env, run_date).await.unwrap();

    assert_eq!(report.cutoff, Some(date("2026-03-31")));
    assert_eq!(report.summary.series, 10);
    let (manifest, batches) = publish::read_forecasts(&lake, run_date).await.unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 10 * 28, "one row per series × horizon step");
    assert_eq!(manifest.row_count as usize, rows);
    assert_eq!(manifest.meta["run_id"], report.run_id.as_str());
    assert_eq!(manifest.meta["model"]["name"], "seasonal_naive");
    let names: Vec<&str> = manifest.schema.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "run_id",
            "item_id",
            "location_id",
            "target_date",
            "horizon",
            "mean",
            "q10",
            "q50",
            "q90",
            "model",
            "model_version",
            "point"
        ]
    );
    assert_eq!(batches[0].schema().fields().len(), names.len());

    for b in &batches {
        let q10 = b.column_by_name("q10").unwrap().as_primitive::<Float64Type>();
        let q50 = b.column_by_name("q50").unwrap().as_primitive::<Float64Type>();
        let q90 = b.column_by_name("q90").unwrap().as_primitive::<Float64Type>();
        let mean = b.column_by_name("mean").unwrap().as_primitive::<Float64Type>();
        let point = b.column_by_name("point").unwrap().as_primitive::<Float64Type>();
        let h = b.column_by_name("horizon").unwrap().as_primitive::<Int32Type>();
        let target = b.column_by_name("target_date").unwrap().as_primitive::<Date32Type>();
        for r in 0..b.num_rows() {
            assert!(0.0 <= q10.value(r) && q10.value(r) <= q50.value(r) && q50.value(r) <= q90.value(r), "row {r}");
            assert!(mean.value(r) >= 0.0);
            assert_eq!(point.value(r), mean.value(r), "seasonal naive's point is its mean");
            assert!((1..=28).contains(&h.value(r)));
            let d = target.value_as_date(r).unwrap();
            assert_eq!(d, date("2026-03-31") + Duration::days(h.value(r) as i64));
        }
    }
    // The run left its record.
    let records = lake.list(&object_store::path::Path::from("runs")).await.unwrap();
    assert_eq!(records.len(), 1);
}

#[tokio::test]
async fn rerunning_a_date_replaces_its_output_and_forecasts_are_deterministic() {
    let dir = tempfile::tempdir().unwrap();
    let (url, lake) = local_lake(dir.path());
    demo_lake(&lake, 6).await;
    let clock = clock();
    let env = env(settings(&url, dir.path(), SettingsFile::default()), &lake, &clock);
    let run_date = date("2026-04-01");
    let first = nightly(&env, run_date).await.unwrap();
    let (_, before) = publish::read_forecasts(&lake, run_date).await.unwrap();
    clock.advance(Duration::minutes(5));
    let second = nightly(&env, run_date).await.unwrap();
    assert_ne!(first.run_id, second.run_id);

    let (manifest, after) = publish::read_forecasts(&lake, run_date).await.unwrap();
    assert_eq!(manifest.meta["run_id"], second.run_id.as_str());
    // The new version's files, and the old one's, retired and kept for the grace period.
    let files = lake.list(&layout::forecasts(run_date)).await.unwrap();
    let parquet: Vec<_> = files.iter().filter(|m| m.location.as_ref().ends_with(".parquet")).collect();
    assert_eq!(parquet.len(), manifest.files.len() + manifest.retired.len());
    assert!(manifest.files.iter().all(|f| f.path.contains(&second.run_id)));
    assert!(manifest.retired.iter().all(|r| r.path.contains(&first.run_id)));
    // Same data, same forecasts.
    for col in ["item_id", "target_date", "mean", "q10", "q50", "q90"] {
        let a: Vec<_> = before.iter().map(|b| b.column_by_name(col).unwrap().to_data()).collect();
        let b: Vec<_> = after.iter().map(|b| b.column_by_name(col).unwrap().to_data()).collect();
        assert_eq!(a, b, "column {col} differs between runs");
    }
}

#[tokio::test]
async fn weekly_runs_forecast_mondays_from_complete_weeks() {
    let dir = tempfile::tempdir().unwrap();
    let (url, lake) = local_lake(dir.path());
    demo_lake(&lake, 4).await;
    let clock = clock();
    let file = SettingsFile { frequency: Some(Frequency::Weekly), horizon: Some(6), ..Default::default() };
    let env = env(settings(&url, dir.path(), file), &lake, &clock);
    let report = nightly(&env, date("2026-04-01")).await.unwrap();
    // 2026-03-31 is a Tuesday: the last complete week closed on Sunday 2026-03-29.
    assert_eq!(report.cutoff, Some(date("2026-03-29")));
    let (_, batches) = publish::read_forecasts(&lake, date("2026-04-01")).await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4 * 6);
    for b in &batches {
        let target = b.column_by_name("target_date").unwrap().as_primitive::<Date32Type>();
        for r in 0..b.num_rows() {
            assert_eq!(target.value_as_date(r).unwrap().weekday(), Weekday::Mon);
        }
        assert!(b.column_by_name("q50").unwrap().null_count() == 0);
    }
}

#[tokio::test]
async fn an_in_memory_lake_runs_the_same_pipeline() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 3).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let env = env(settings("memory:///", dir.path(), SettingsFile::default()), &lake, &clock);
    let report = nightly(&env, date("2026-04-01")).await.unwrap();
    assert_eq!(report.summary.forecast_rows, 3 * 28);
    assert!(listing(&lake).await.iter().any(|p| p.ends_with("forecasts/run_date=2026-04-01/_manifest.json")));
}

#[tokio::test]
async fn predict_uses_the_models_train_stored_in_the_lake() {
    use shelfcast::jobs::{JobSpec, StepKind, Trigger, run_job};
    let lake = Lake::in_memory();
    demo_lake(&lake, 4).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    // The model's own quantiles: the nightly's backtest would otherwise calibrate the intervals it
    // publishes, and the predict job before it has no champion to take factors from.
    let champion = shelfcast::evaluate::champion::ChampionSettings { calibrate: false, ..Default::default() };
    let file = SettingsFile { models: Some(vec!["ets".into()]), champion: Some(champion), ..Default::default() };
    let env = env(settings("memory:///", dir.path(), file), &lake, &clock);
    let day = date("2026-04-01");
    // Without a trained model, predict says what to do.
    let predict =
        JobSpec::adhoc("predict", &[StepKind::Checks, StepKind::Features, StepKind::Predict, StepKind::Publish]);
    let err = run_job(&env, &predict, Some(day), Trigger::Manual, &|_| {}).await.unwrap_err();
    assert!(shelfcast::jobs::runner::error_chain(&err).contains("shelfcast train"), "{err}");

    let train = JobSpec::adhoc("train", &[StepKind::Checks, StepKind::Features, StepKind::Train]);
    let trained = run_job(&env, &train, Some(day), Trigger::Manual, &|_| {}).await.unwrap();
    assert!(listing(&lake).await.iter().any(|p| p == &format!("models/ets/{}/state.bin", trained.run_id)));
    run_job(&env, &predict, Some(day), Trigger::Manual, &|_| {}).await.unwrap();
    let (_, from_lake) = publish::read_forecasts(&lake, day).await.unwrap();
    nightly(&env, day).await.unwrap();
    let (_, fresh) = publish::read_forecasts(&lake, day).await.unwrap();
    let col = |b: &[arrow::record_batch::RecordBatch], c: &str| {
        b.iter().map(|b| b.column_by_name(c).unwrap().to_data()).collect::<Vec<_>>()
    };
    assert_eq!(col(&from_lake, "q90"), col(&fresh, "q90"), "a stored model forecasts as the one just fitted");
}

#[tokio::test]
async fn the_nightly_backtest_crowns_champions_and_publishes_their_forecasts() {
    use shelfcast::evaluate::champion::Registry;
    let lake = Lake::in_memory();
    demo_lake(&lake, 6).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let file = SettingsFile {
        models: Some(vec!["seasonal_naive".into(), "moving_average".into()]),
        horizon: Some(14),
        ..Default::default()
    };
    let env = env(settings("memory:///", dir.path(), file), &lake, &clock);
    let report = nightly(&env, date("2026-04-01")).await.unwrap();
    assert!(!report.champions.is_empty(), "the backtest step decided");
    let registry = Registry::read(&lake).await.unwrap();
    let champion = registry.champion_of("all").unwrap().to_string();
    assert!(["seasonal_naive", "moving_average"].contains(&champion.as_str()));
    let (manifest, batches) = publish::read_forecasts(&lake, date("2026-04-01")).await.unwrap();
    assert_eq!(manifest.meta["champions"]["all"]["model"], champion.as_str());
    for b in &batches {
        let models =
            arrow::compute::cast(b.column_by_name("model").unwrap(), &arrow::datatypes::DataType::Utf8).unwrap();
        let models = models.as_string::<i32>();
        for r in 0..b.num_rows() {
            let m = models.value(r);
            assert!(registry.segments.values().any(|c| c.model == m), "row model {m} is no segment's champion");
        }
    }

    // The stored backtest scores WRMSSE at every level of the hierarchy (demo items have categories).
    let id = shelfcast::report::gather::latest_backtest(&lake).await.unwrap().unwrap();
    let stored = shelfcast::lake::dataset::read_manifest(&lake, &shelfcast::lake::layout::backtest(&id)).await;
    let stored = stored.unwrap().unwrap();
    for m in stored.meta["report"]["models"].as_array().unwrap() {
        let w = &m["wrmsse"];
        for level in ["series", "item", "category", "location", "total", "mean"] {
            let v = w[level].as_f64().unwrap_or(f64::NAN);
            assert!(v.is_finite() && v >= 0.0, "{}: WRMSSE {level} = {v}", m["model"]);
        }
    }
}

/// Per (item, location, target date, model): q10, q50, q90 of a forecast dataset's rows.
async fn quantile_rows(
    lake: &Lake,
    dir: &object_store::path::Path,
) -> std::collections::BTreeMap<(String, String, i32, String), [f64; 3]> {
    let (_, batches) = shelfcast::lake::dataset::read(lake, dir).await.unwrap();
    let mut out = std::collections::BTreeMap::new();
    for b in &batches {
        let s =
            |n: &str| arrow::compute::cast(b.column_by_name(n).unwrap(), &arrow::datatypes::DataType::Utf8).unwrap();
        let (item, loc, model) = (s("item_id"), s("location_id"), s("model"));
        let f = |n: &str| b.column_by_name(n).unwrap().as_primitive::<Float64Type>().clone();
        let (q10, q50, q90) = (f("q10"), f("q50"), f("q90"));
        let target = b.column_by_name("target_date").unwrap().as_primitive::<Date32Type>().clone();
        for r in 0..b.num_rows() {
            let key = (
                item.as_string::<i32>().value(r).to_string(),
                loc.as_string::<i32>().value(r).to_string(),
                target.value(r),
                model.as_string::<i32>().value(r).to_string(),
            );
            out.insert(key, [q10.value(r), q50.value(r), q90.value(r)]);
        }
    }
    out
}

/// The published intervals are the champion's own scaled by the factors its backtest rows gave
/// (kept in the registry and the manifest), the median untouched; `calibrate = false` publishes
/// the champion's own quantiles, which the shadow keeps either way, even on a night that keeps
/// the last backtest's decisions and their factors. (Neither model calibrates its own quantiles
/// here, so the factors come from the champion's backtest rows pooled.)
#[tokio::test]
async fn the_published_intervals_are_the_champion_s_scaled_by_its_calibration_unless_turned_off() {
    use shelfcast::evaluate::champion::{ChampionSettings, Registry, SegmentBy};
    use shelfcast::models::params::{CalibrationParams, ModelParams};
    let lake = Lake::in_memory();
    demo_lake(&lake, 6).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let file = |calibrate: bool| SettingsFile {
        models: Some(vec!["seasonal_naive".into(), "moving_average".into()]),
        model: Some(ModelParams { calibration: CalibrationParams { models: Some(vec![]) }, ..Default::default() }),
        horizon: Some(14),
        champion: Some(ChampionSettings {
            segment_by: SegmentBy::None,
            calibrate,
            // The second night (calibration off) keeps the first one's backtest and factors.
            ..Default::default()
        }),
        ..Default::default()
    };
    let run = date("2026-04-01");
    for calibrate in [true, false] {
        let env = env(settings("memory:///", dir.path(), file(calibrate)), &lake, &clock);
        nightly(&env, run).await.unwrap();
        let registry = Registry::read(&lake).await.unwrap();
        let champion = &registry.segments["all"];
        // Six series × 14 days × 2 windows: enough rows to calibrate on.
        assert!(!champion.calibration.is_empty(), "{champion:?}");
        let (manifest, _) = publish::read_forecasts(&lake, run).await.unwrap();
        let listed = manifest.meta["champions"]["all"].get("calibration").cloned();
        assert_eq!(listed.is_some(), calibrate, "the manifest lists the factors applied: {listed:?}");
        let published = quantile_rows(&lake, &layout::forecasts(run)).await;
        let shadow = quantile_rows(&lake, &layout::shadow(run)).await;
        let applied = if calibrate { champion.calibration.clone() } else { Vec::new() };
        let factor = |level: f64| applied.iter().find(|(l, _)| *l == level).map_or(1.0, |(_, c)| *c);
        let (lo, hi) = (factor(0.1), factor(0.9));
        if calibrate {
            assert!(lo != 1.0 || hi != 1.0, "the factors move the intervals: {:?}", champion.calibration);
        }
        assert_eq!(published.len(), 6 * 14);
        for ((item, loc, day, model), [q10, q50, q90]) in &published {
            assert_eq!(model, &champion.model);
            let own = shadow[&(item.clone(), loc.clone(), *day, model.clone())];
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-3 * (1.0 + b.abs());
            assert!(close(*q50, own[1]), "the median stays: {q50} against {}", own[1]);
            let (want_lo, want_hi) = ((own[1] + lo * (own[0] - own[1])).max(0.0), own[1] + hi * (own[2] - own[1]));
            assert!(close(*q10, want_lo), "{item}/{loc} q10 {q10}, want {want_lo} (own {own:?})");
            assert!(close(*q90, want_hi), "{item}/{loc} q90 {q90}, want {want_hi} (own {own:?})");
        }
    }
}

/// Runs a job of `steps` on 2026-04-01 over a six-series demo lake with `ets`, `tsb` and the
/// learned `ensemble` (horizon 14); the run, the ensemble it stored, an ensemble fitted on its own
/// on the same cutoff's panel, and that panel.
async fn trained_ensemble(
    steps: &[shelfcast::jobs::StepKind],
) -> (
    shelfcast::jobs::RunReport,
    Box<dyn shelfcast::models::Forecaster>,
    Box<dyn shelfcast::models::Forecaster>,
    shelfcast::panel::Panel,
) {
    use shelfcast::jobs::{JobSpec, Trigger, run_job};
    use shelfcast::models::{self, store};
    let lake = Lake::in_memory();
    demo_lake(&lake, 6).await;
    let dir = tempfile::tempdir().unwrap();
    let file = SettingsFile {
        models: Some(vec!["ets".into(), "tsb".into(), "ensemble".into()]),
        horizon: Some(14),
        ..Default::default()
    };
    let s = settings("memory:///", dir.path(), file);
    let env = env(s.clone(), &lake, &clock());
    let job = JobSpec::adhoc("nightly", steps);
    let run = run_job(&env, &job, Some(date("2026-04-01")), Trigger::Manual, &|_| {}).await.unwrap();

    let cutoff = date("2026-03-31");
    let (_, batches) = shelfcast::lake::dataset::read(&lake, &layout::features("target", cutoff)).await.unwrap();
    let panel = shelfcast::panel::Panel::from_batches(&batches, Frequency::Daily, cutoff).unwrap();
    let mut stored = models::build("ensemble", &s.models_config()).unwrap();
    store::load_latest(&lake, stored.as_mut()).await.unwrap();
    let mut fresh = models::build("ensemble", &s.models_config()).unwrap();
    fresh.fit(&panel).unwrap();
    (run, stored, fresh, panel)
}

/// The train step's ensemble takes the members fitted before it (no second fit), and forecasts
/// what an ensemble fitted on its own on the same panel does.
#[tokio::test]
async fn the_trained_ensemble_reuses_its_fitted_members() {
    use shelfcast::jobs::StepKind;
    let (run, stored, fresh, panel) = trained_ensemble(&[StepKind::Checks, StepKind::Features, StepKind::Train]).await;
    assert_eq!(run.summary.fits.len(), 3);
    let levels = [0.1, 0.5, 0.9];
    let (a, b) = (stored.predict(&panel, 14, &levels).unwrap(), fresh.predict(&panel, 14, &levels).unwrap());
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
    // The card names the members and the weights learnt on the validation before the cutoff.
    let card = stored.card().unwrap();
    assert_eq!(card["members"], serde_json::json!(["ets", "tsb"]));
    // Their means' weights and their medians' sum to 1.
    let weights: Vec<f64> = serde_json::from_value(card["weights"].clone()).unwrap();
    let medians: Vec<f64> = serde_json::from_value(card["median_weights"].clone()).unwrap();
    assert!((weights.iter().chain(&medians).sum::<f64>() - 1.0).abs() < 1e-9, "{weights:?} {medians:?}");
    assert_eq!(card["validation"]["windows"], 1);
}

/// With the backtest before the train step (the nightly's order), the trained ensemble takes its
/// weights from the backtest's last windows instead of fitting its members again at the same
/// cutoff, and forecasts exactly what fitting it on its own gives.
#[tokio::test]
async fn the_trained_ensemble_takes_its_weights_from_the_backtest_run_before_it() {
    use shelfcast::jobs::StepKind;
    let steps = [StepKind::Checks, StepKind::Features, StepKind::Backtest, StepKind::Train];
    let (_, stored, fresh, panel) = trained_ensemble(&steps).await;
    let card = stored.card().unwrap();
    assert_eq!(card["validation"]["source"], "backtest", "{card}");
    assert_eq!(fresh.card().unwrap()["validation"]["source"], "inner split");
    assert_eq!(card["weights"], fresh.card().unwrap()["weights"]);
    let levels = [0.1, 0.5, 0.9];
    let (a, b) = (stored.predict(&panel, 14, &levels).unwrap(), fresh.predict(&panel, 14, &levels).unwrap());
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

/// The nightly backtests once per `backtest-every`: the night after, it keeps the champions and
/// the learned ensemble keeps its stored weights, and the run record says so; `0s` backtests
/// every night.
#[tokio::test]
async fn the_nightly_backtests_on_its_schedule_and_keeps_champions_and_weights_between() {
    use shelfcast::evaluate::champion::{ChampionSettings, Registry};
    use shelfcast::models::{self, store};
    let run_twice = |every: std::time::Duration| async move {
        let lake = Lake::in_memory();
        demo_lake(&lake, 6).await;
        let dir = tempfile::tempdir().unwrap();
        let file = SettingsFile {
            models: Some(vec!["ets".into(), "tsb".into(), "ensemble".into()]),
            horizon: Some(7),
            champion: Some(ChampionSettings { backtest_every: every, ..Default::default() }),
            ..Default::default()
        };
        let s = settings("memory:///", dir.path(), file);
        let env = env(s.clone(), &lake, &clock());
        let first = nightly(&env, date("2026-03-31")).await.unwrap();
        let mut e = models::learned_ensemble(&s.models_config()).unwrap();
        store::load_latest(&lake, &mut e).await.unwrap();
        let first_weights = e.learned().unwrap().weights;
        let second = nightly(&env, date("2026-04-01")).await.unwrap();
        let mut e = models::learned_ensemble(&s.models_config()).unwrap();
        store::load_latest(&lake, &mut e).await.unwrap();
        let registry = Registry::read(&lake).await.unwrap();
        (first, second, first_weights, e.learned().unwrap(), registry)
    };

    // The notes about the backtest (the track step adds its own: nothing to track yet).
    let backtest_notes = |r: &shelfcast::jobs::RunReport| {
        r.summary.notes.iter().filter(|n| n.starts_with("backtest")).cloned().collect::<Vec<_>>()
    };
    let (first, second, weights, kept, registry) = run_twice(std::time::Duration::from_secs(7 * 86_400)).await;
    assert!(!first.champions.is_empty() && backtest_notes(&first).is_empty(), "{:?}", first.summary.notes);
    assert!(second.champions.is_empty(), "no backtest, no decisions: {:?}", second.champions);
    assert_eq!(backtest_notes(&second).len(), 1, "{:?}", second.summary.notes);
    let note = &backtest_notes(&second)[0];
    assert!(note.starts_with("backtest kept") && note.contains(&first.run_id), "{note}");
    assert!(kept.card.source.starts_with("kept from the backtest of run"), "{}", kept.card.source);
    assert!(kept.card.source.contains(&first.run_id), "{}", kept.card.source);
    assert_eq!(kept.weights.global, weights.global);
    assert_eq!(registry.last_backtest.unwrap().run_id, first.run_id);
    // Published all the same, by the champions of the first night.
    assert!(second.summary.forecast_rows > 0);

    let (_, second, _, learned, registry) = run_twice(std::time::Duration::ZERO).await;
    assert!(!second.champions.is_empty() && backtest_notes(&second).is_empty(), "{:?}", second.summary.notes);
    assert_eq!(learned.card.source, "backtest");
    assert_eq!(registry.last_backtest.unwrap().run_id, second.run_id);
}

#[tokio::test]
async fn a_backfill_of_an_old_date_leaves_the_model_and_champion_pointers_on_the_newest() {
    use shelfcast::evaluate::champion::Registry;
    let lake = Lake::in_memory();
    demo_lake(&lake, 6).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let file = SettingsFile {
        models: Some(vec!["seasonal_naive".into(), "moving_average".into()]),
        horizon: Some(7),
        ..Default::default()
    };
    let env = env(settings("memory:///", dir.path(), file), &lake, &clock);
    let newest = nightly(&env, date("2026-04-01")).await.unwrap();
    let pointer = |b: bytes::Bytes| serde_json::from_slice::<serde_json::Value>(&b).unwrap()["version"].clone();
    let latest = layout::model_latest("seasonal_naive");
    assert_eq!(pointer(lake.get(&latest).await.unwrap()), newest.run_id.as_str());
    let champions = Registry::read(&lake).await.unwrap();
    assert_eq!(champions.last_backtest.as_ref().unwrap().cutoff, date("2026-03-31"));

    // A backfill of an earlier date, run afterwards.
    clock.advance(Duration::minutes(10));
    let old = nightly(&env, date("2026-03-15")).await.unwrap();
    assert_eq!(old.cutoff, Some(date("2026-03-14")));
    assert!(lake.get_opt(&layout::model("seasonal_naive", &old.run_id).join("card.json")).await.unwrap().is_some());
    assert_eq!(pointer(lake.get(&latest).await.unwrap()), newest.run_id.as_str(), "latest.json moved back");
    assert_eq!(Registry::read(&lake).await.unwrap(), champions, "champions.json moved back");

    // A later run moves the model pointer forward again.
    clock.advance(Duration::days(1));
    let next = nightly(&env, date("2026-04-02")).await.unwrap();
    assert_eq!(pointer(lake.get(&latest).await.unwrap()), next.run_id.as_str());
}

/// A model the history is too short for is left out of the night with a note saying why; the
/// others are fitted, and every series is published from them.
#[tokio::test]
async fn a_model_that_cannot_fit_is_left_out_and_the_night_publishes_the_others() {
    let lake = Lake::in_memory();
    // 50 days: too short for the LSTM's training windows (2 × 28 + 1 periods).
    let opts = shelfcast::demo::DemoOptions::new(6, 50, end(), 7);
    shelfcast::demo::generate(&lake, &opts, &|_, _| {}).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let file = SettingsFile { models: Some(vec!["seasonal_naive".into(), "lstm".into()]), ..Default::default() };
    let env = env(settings("memory:///", dir.path(), file), &lake, &clock);
    let report = nightly(&env, date("2026-04-01")).await.unwrap();
    let note = report.summary.notes.iter().find(|n| n.starts_with("lstm: not fitted")).cloned();
    assert!(
        note.as_deref().is_some_and(|n| n.contains("periods a training window needs")),
        "{:?}",
        report.summary.notes
    );
    assert_eq!(report.summary.model.as_deref(), Some("seasonal_naive"));
    let (_, batches) = publish::read_forecasts(&lake, date("2026-04-01")).await.unwrap();
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 6 * 28);

    // With no model able to fit, the night fails and says why.
    let lake = Lake::in_memory();
    shelfcast::demo::generate(&lake, &opts, &|_, _| {}).await.unwrap();
    let file = SettingsFile { models: Some(vec!["lstm".into()]), ..Default::default() };
    let env = crate::common::env(settings("memory:///", dir.path(), file), &lake, &clock);
    let e = nightly(&env, date("2026-04-01")).await.unwrap_err();
    let chain = format!("{e:#}")
        + &std::iter::successors(std::error::Error::source(&e), |e| e.source())
            .map(|e| e.to_string())
            .collect::<String>();
    assert!(chain.contains("no model could be fitted"), "{chain}");
}
