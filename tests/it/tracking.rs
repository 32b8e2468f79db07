use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Date32Builder, Float64Builder, RecordBatch, StringArray, StringBuilder};
use arrow::datatypes::{Date32Type, Float64Type};
use chrono::NaiveDate;
use shelfcast::evaluate::{backtest, tracking};
use shelfcast::lake::{Lake, dataset, layout};
use shelfcast::settings::SettingsFile;

use crate::common::*;
use crate::score::{close, python, score_py};

const RUNS: [&str; 3] = ["2026-03-11", "2026-03-18", "2026-04-01"];

/// The published and shadow forecasts of `run_date` in score.py's canonical format, every row
/// (score.py drops those without an actual).
async fn canonical(lake: &Lake, run_date: NaiveDate, out: &mut Vec<RecordBatch>) {
    for (dir, fixed) in [(layout::forecasts(run_date), Some("published")), (layout::shadow(run_date), None)] {
        let (m, batches) = dataset::read(lake, &dir).await.unwrap();
        let cutoff = m.meta["cutoff"].as_str().unwrap().parse::<NaiveDate>().unwrap();
        let cutoff = (cutoff - date("1970-01-01")).num_days() as i32;
        for b in batches {
            let s = |n: &str| b.column_by_name(n).unwrap().as_string::<i32>().clone();
            let f = |n: &str| b.column_by_name(n).unwrap().as_primitive::<Float64Type>().clone();
            let (item, loc, model) = (s("item_id"), s("location_id"), s("model"));
            let target = b.column_by_name("target_date").unwrap().as_primitive::<Date32Type>().clone();
            let (mut id, mut ds, mut cut, mut method) =
                (StringBuilder::new(), Date32Builder::new(), Date32Builder::new(), StringBuilder::new());
            for r in 0..b.num_rows() {
                id.append_value(format!("{}/{}", item.value(r), loc.value(r)));
                ds.append_value(target.value(r));
                cut.append_value(cutoff);
                method.append_value(fixed.unwrap_or(model.value(r)));
            }
            let mut yhat = Float64Builder::new();
            yhat.append_slice(f("mean").values());
            out.push(
                RecordBatch::try_from_iter(vec![
                    ("unique_id", Arc::new(id.finish()) as ArrayRef),
                    ("ds", Arc::new(ds.finish())),
                    ("cutoff", Arc::new(cut.finish())),
                    ("y_hat", Arc::new(yhat.finish())),
                    ("y_lo", Arc::new(f("q10")) as ArrayRef),
                    ("y_hi", Arc::new(f("q90")) as ArrayRef),
                    ("method", Arc::new(method.finish())),
                ])
                .unwrap(),
            );
        }
    }
}

#[tokio::test]
async fn earlier_forecasts_are_scored_as_their_actuals_arrive_like_score_py_and_shown_in_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let (url, lake) = local_lake(dir.path());
    demo_lake(&lake, 6).await;
    let file = || SettingsFile {
        models: Some(vec!["seasonal_naive".into(), "ets".into()]),
        horizon: Some(14),
        ..Default::default()
    };
    let s = settings(&url, dir.path(), file());
    let mut runs = Vec::new();
    for d in RUNS {
        runs.push(nightly(&env(settings(&url, dir.path(), file()), &lake, &clock()), date(d)).await.unwrap());
    }

    // Every run keeps every model's forecast beside the published one.
    for d in RUNS {
        let (m, batches) = dataset::read(&lake, &layout::shadow(date(d))).await.unwrap();
        assert_eq!(m.row_count, 2 * 6 * 14, "{d}: two models × six series × fourteen days");
        let models: BTreeSet<String> = batches
            .iter()
            .flat_map(|b| {
                let c = b.column_by_name("model").unwrap().as_any().downcast_ref::<StringArray>().unwrap().clone();
                (0..c.len()).map(move |i| c.value(i).to_string())
            })
            .collect();
        assert_eq!(models, BTreeSet::from(["ets".to_string(), "seasonal_naive".to_string()]));
    }

    // The first run has nothing to score, and says so.
    assert!(runs[0].summary.tracking.is_none());
    assert!(runs[0].summary.notes.iter().any(|n| n.contains("tracked accuracy")), "{:?}", runs[0].summary.notes);
    // The third scores both earlier run dates: every day of their horizons has arrived.
    let t = runs[2].summary.tracking.as_ref().expect("the third run tracks");
    assert_eq!(t.origins, [date("2026-03-10"), date("2026-03-17")]);
    assert_eq!(t.scored_rows, 3 * 2 * 6 * 14, "published, seasonal_naive, ets × two run dates × 6 × 14");
    let (by, stored) = tracking::read(&lake, date("2026-04-01")).await.unwrap().unwrap();
    assert_eq!(by, runs[2].run_id);
    let names: Vec<&str> = stored.models.iter().map(|m| m.model.as_str()).collect();
    assert_eq!(names, ["published", "ets", "seasonal_naive"]);

    // The same forecasts and actuals through score.py give the same numbers.
    let Some(py) = python() else {
        assert!(std::env::var_os("CI").is_none(), "CI must provide a Python with pandas and pyarrow");
        eprintln!("skipped the score.py comparison: no Python with pandas and pyarrow (set SHELFCAST_PYTHON)");
        return;
    };
    let mut rows = Vec::new();
    for d in &RUNS[..2] {
        canonical(&lake, date(d), &mut rows).await;
    }
    let (ctx, _) = shelfcast::engine::open(&lake, 2).await.unwrap();
    let (full, _) = backtest::full_panel(&ctx, &s.backtest_config()).await.unwrap();
    let theirs = score_py(&py, &rows, &backtest::actuals_batch(&full).unwrap(), s.season_length);
    for m in &stored.models {
        let (t, o) = (&theirs["methods"][&m.model]["overall"], &m.overall);
        assert_eq!(t["n"].as_u64(), Some(o.n as u64), "{}", m.model);
        close(o.mase, &t["MASE"], "MASE");
        close(o.wape, &t["WAPE"], "WAPE");
        close(o.bias, &t["bias"], "bias");
        close(o.coverage_80, &t["coverage"], "coverage");
        let windows = theirs["methods"][&m.model]["per_window"].as_array().unwrap();
        assert_eq!(windows.len(), m.per_window.len());
        for (cutoff, w) in &m.per_window {
            let tw = windows.iter().find(|x| x["cutoff"] == cutoff.to_string().as_str()).unwrap();
            close(w.mase, &tw["MASE"], "MASE per run date");
        }
    }

    // The dataset's pooled rows are the report's, with the value added over seasonal naive.
    let (_, batches) = dataset::read(&lake, &layout::accuracy(date("2026-04-01"))).await.unwrap();
    let b = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let col = |n: &str| b.column_by_name(n).unwrap().clone();
    let (model, origin, step, segment) = (col("model"), col("origin"), col("step"), col("segment"));
    let (mase, fva) = (col("mase"), col("fva_mase_pct"));
    let snaive = stored.models.iter().find(|m| m.model == "seasonal_naive").unwrap().overall.mase.unwrap();
    for m in &stored.models {
        let i = (0..b.num_rows())
            .find(|&i| {
                model.as_string::<i32>().value(i) == m.model
                    && origin.is_null(i)
                    && step.is_null(i)
                    && segment.as_string::<i32>().value(i) == "all"
            })
            .unwrap();
        let v = mase.as_primitive::<Float64Type>().value(i);
        assert!((v - m.overall.mase.unwrap()).abs() < 1e-12);
        let f = fva.as_primitive::<Float64Type>().value(i);
        assert!((f - 100.0 * (1.0 - v / snaive)).abs() < 1e-9, "{}: {f}", m.model);
    }

    // The report shows it, and the run before it had none to show.
    let md = |run_id: &str| {
        let (lake, run_id) = (lake.clone(), run_id.to_string());
        async move {
            String::from_utf8(lake.get(&layout::report(&run_id).join("report.md")).await.unwrap().to_vec()).unwrap()
        }
    };
    let last = md(&runs[2].run_id).await;
    assert!(last.contains("## Tracked accuracy") && last.contains("| published |"), "{last}");
    assert!(last.contains("2026-03-10") && last.contains("2026-03-17"), "the trend by forecast cutoff: {last}");
    assert!(!md(&runs[0].run_id).await.contains("## Tracked accuracy"));
    // The HTML draws the trend: a line per model over the two forecast cutoffs.
    let html =
        String::from_utf8(lake.get(&layout::report(&runs[2].run_id).join("report.html")).await.unwrap().to_vec())
            .unwrap();
    let at = html.find("Tracked MASE by forecast cutoff").expect("the trend chart");
    let svg = &html[at..at + html[at..].find("</svg>").unwrap()];
    assert_eq!(svg.matches("<polyline").count(), 3, "published, ets and seasonal_naive: {svg}");
}

#[tokio::test]
async fn without_shadows_only_the_published_forecast_is_tracked() {
    let dir = tempfile::tempdir().unwrap();
    let (url, lake) = local_lake(dir.path());
    demo_lake(&lake, 4).await;
    let file = || SettingsFile {
        models: Some(vec!["seasonal_naive".into(), "ets".into()]),
        horizon: Some(14),
        tracking: Some(tracking::TrackingSettings { shadow: false, runs: 1 }),
        ..Default::default()
    };
    let mut last = None;
    for d in RUNS {
        last = Some(nightly(&env(settings(&url, dir.path(), file()), &lake, &clock()), date(d)).await.unwrap());
    }
    assert!(lake.list(&object_store::path::Path::from("shadow")).await.unwrap().is_empty(), "no shadows kept");
    let t = last.unwrap().summary.tracking.unwrap();
    assert_eq!(t.origins, [date("2026-03-17")], "`runs = 1`: the latest earlier run date only");
    assert_eq!(t.mase.keys().collect::<Vec<_>>(), ["published"]);
}

/// With `decide-on = "tracked"` (the default), the nightly backtests until every configured model
/// has been tracked on as many forecasts as a backtest would score, then decides the champions on
/// the tracked accuracy (no backtest), and the learned ensemble keeps the weights the last backtest
/// learnt. The weekly job backtests whatever the tracking says; `decide-on = "backtest"` always
/// backtests.
#[tokio::test]
async fn the_nightly_decides_champions_on_tracked_accuracy_once_there_is_enough_and_backtests_until_then() {
    use shelfcast::evaluate::champion::{ChampionSettings, Evidence, Registry};
    use shelfcast::jobs::spec::{JobSpec, WEEKLY};
    use shelfcast::jobs::{Trigger, run_job};
    use shelfcast::models::{self, store};

    let nights = ["2026-03-28", "2026-03-29", "2026-03-30", "2026-03-31", "2026-04-01"];
    let run = |decide_on: Evidence| async move {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::in_memory();
        demo_lake(&lake, 6).await;
        let champion =
            ChampionSettings { windows: 1, backtest_every: std::time::Duration::ZERO, decide_on, ..Default::default() };
        let file = SettingsFile {
            models: Some(vec!["seasonal_naive".into(), "ets".into(), "ensemble".into()]),
            horizon: Some(7),
            champion: Some(champion),
            ..Default::default()
        };
        let s = settings("memory:///", dir.path(), file);
        let env = env(s.clone(), &lake, &clock());
        let mut reports = Vec::new();
        for d in nights {
            reports.push(nightly(&env, date(d)).await.unwrap());
        }
        (lake, env, s, reports)
    };
    let evidence =
        |r: &shelfcast::jobs::RunReport| -> BTreeSet<Evidence> { r.champions.iter().map(|d| d.evidence).collect() };
    let note =
        |r: &shelfcast::jobs::RunReport, start: &str| r.summary.notes.iter().find(|n| n.starts_with(start)).cloned();

    let (lake, env, s, reports) = run(Evidence::Tracked).await;
    // Four nights of backtests: the forecasts tracked for every model grow (per series 0, 1, 3,
    // 6), short of the 7 a one-window backtest of horizon 7 scores.
    for r in &reports[..4] {
        assert_eq!(evidence(r), BTreeSet::from([Evidence::Backtest]), "{}: {:?}", r.run_id, r.summary.notes);
        let why = note(r, "champions not decided on tracked accuracy").unwrap();
        assert!(why.contains("no tracked accuracy") || why.contains("would score 42"), "{why}");
    }
    // The fifth has 10 per series: it decides on them.
    let last = &reports[4];
    assert_eq!(evidence(last), BTreeSet::from([Evidence::Tracked]), "{:?}", last.summary.notes);
    let decided = note(last, "champions decided on tracked accuracy").unwrap();
    assert!(decided.contains("60 forecast(s) per model from 4 earlier run date(s)"), "{decided}");
    assert!(lake.list(&layout::backtest(&last.run_id)).await.unwrap().is_empty(), "no backtest that night");
    let registry = Registry::read(&lake).await.unwrap();
    assert_eq!(registry.last_tracked.as_ref().unwrap().run_id, last.run_id);
    assert_eq!(registry.last_backtest.as_ref().unwrap().run_id, reports[3].run_id);
    // Every model forecast every night, so the common ground is all the tracked rows: the scores
    // decided on are the tracked accuracy the run stored.
    let (_, tracked) = tracking::read(&lake, date("2026-04-01")).await.unwrap().unwrap();
    let all = last.champions.iter().find(|d| d.segment == "all").unwrap();
    let stored = tracked.models.iter().find(|m| m.model == all.challenger).unwrap();
    assert_eq!(stored.overall.n, 60);
    assert!((stored.overall.mase.unwrap() - all.challenger_score).abs() < 1e-12);
    let best = tracked
        .models
        .iter()
        .filter(|m| m.model != tracking::PUBLISHED)
        .filter_map(|m| m.overall.mase)
        .fold(f64::MAX, f64::min);
    assert!((all.challenger_score - best).abs() < 1e-12, "the best tracked model is the challenger");
    // The ensemble fitted that night kept the last backtest's weights.
    let mut e = models::learned_ensemble(&s.models_config()).unwrap();
    store::load_latest(&lake, &mut e).await.unwrap();
    let source = e.learned().unwrap().card.source;
    assert!(source.starts_with("kept from the backtest of run") && source.contains(&reports[3].run_id), "{source}");

    // The weekly job backtests although tracked accuracy could decide, over its own 4 windows.
    let weekly = JobSpec::parse(WEEKLY, "weekly.toml").unwrap();
    let w = run_job(&env, &weekly, Some(date("2026-04-01")), Trigger::Manual, &|_| {}).await.unwrap();
    assert_eq!(evidence(&w), BTreeSet::from([Evidence::Backtest]), "{:?}", w.summary.notes);
    let registry = Registry::read(&lake).await.unwrap();
    let stamp = registry.last_backtest.unwrap();
    assert_eq!((stamp.run_id.as_str(), stamp.windows), (w.run_id.as_str(), 4));
    let m = dataset::read_manifest(&lake, &layout::backtest(&w.run_id)).await.unwrap().unwrap();
    assert_eq!(m.meta["report"]["cutoffs"].as_array().unwrap().len(), 4);
    // Its ensemble weights wait for the next night's train step.
    let stored = lake.get(&layout::ensemble_weights()).await.unwrap();
    let stored: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(stored["run_id"], w.run_id.as_str());

    // decide-on = "backtest": the fifth night backtests like the others.
    let (_, _, _, reports) = run(Evidence::Backtest).await;
    assert!(reports.iter().all(|r| evidence(r) == BTreeSet::from([Evidence::Backtest])));
    assert!(reports.iter().all(|r| note(r, "champions").is_none()), "{:?}", reports[4].summary.notes);
}
