use shelfcast::demo::{self, DemoOptions};
use shelfcast::engine;
use shelfcast::factors::{self, Analysis};
use shelfcast::features::FeatureParams;
use shelfcast::jobs::history::Status;
use shelfcast::lake::{Lake, dataset, layout};
use shelfcast::settings::{Frequency, SettingsFile};

use crate::common::*;

/// Series and days of the recovery lake: enough price and promotion variation per category to
/// pin the elasticities, small enough to stay fast.
const SERIES: usize = 400;
const DAYS: usize = 730;

async fn analysed(lake: &Lake) -> Analysis {
    demo::generate(lake, &DemoOptions::new(SERIES, DAYS, end(), 5), &|_, _| {}).await.unwrap();
    let (ctx, _) = engine::open_with(lake, engine::EngineOptions::threads(2)).await.unwrap();
    let params = FeatureParams::new(end(), Frequency::Daily, 14);
    factors::analyze(&ctx, params, &Default::default(), None).await.unwrap()
}

/// The recovery test: the generator's true effects against the estimates. Elasticities within
/// ±20% per category; promotion uplift (on top of the price effect, as the generator defines it)
/// within ±25% per kind over the categories, and inside its 95% interval for most category × kind
/// pairs; the post-promotion dip within ±25% per category; the ranking of the drivers the regression models matches the generator's.
#[tokio::test]
async fn recovers_the_demo_truth() {
    let lake = Lake::in_memory();
    let a = analysed(&lake).await;
    let truth = demo::read_truth(&lake).await.unwrap();
    let (mut covered, mut intervals) = (0, 0);
    let mut kinds: std::collections::BTreeMap<&str, (f64, f64)> = Default::default();
    for (cat, t) in &truth.categories {
        let own = a.get("elasticity", cat, "own_price").unwrap();
        let cross = a.get("elasticity", cat, "competitor_price").unwrap();
        eprintln!(
            "{cat:<12} own {:>6.2} (true {:>6.2}) [{:.2}, {:.2}]  cross {:>5.2} (true {:>5.2})",
            own.value,
            t.price_elasticity,
            own.low.unwrap(),
            own.high.unwrap(),
            cross.value,
            t.competitor_elasticity
        );
        let rel = (own.value - t.price_elasticity).abs() / t.price_elasticity.abs();
        assert!(rel <= 0.20, "{cat}: own-price elasticity {:.2}, true {:.2}", own.value, t.price_elasticity);
        for (kind, m) in &t.promo_uplift {
            let e = a.get("promotion", cat, kind).unwrap();
            let want = (m - 1.0) * 100.0;
            eprintln!(
                "    promo {kind:<10} {:>6.1}% (true {want:>6.1}%) [{:.1}, {:.1}]",
                e.value,
                e.low.unwrap(),
                e.high.unwrap()
            );
            intervals += 1;
            covered += usize::from(e.low.unwrap() <= want && want <= e.high.unwrap());
            let k = kinds.entry(kind.as_str()).or_default();
            k.0 += e.value;
            k.1 += want;
        }
        let dip = a.get("post_promotion", cat, "dip").unwrap();
        let want = (t.post_promo_dip - 1.0) * 100.0;
        eprintln!("    dip {:>6.1}% (true {want:>6.1}%)", dip.value);
        assert!(
            (dip.value - want).abs() <= 0.25 * want.abs(),
            "{cat}: post-promotion dip {:.1}%, true {want:.1}%",
            dip.value
        );
    }
    for (kind, (est, want)) in kinds {
        assert!((est - want).abs() <= 0.25 * want, "{kind}: mean uplift {est:.1}% over categories, true {want:.1}%");
    }
    assert!(covered * 10 >= intervals * 8, "{covered} of {intervals} promotion intervals hold the truth");
    // The drivers the regression models, ranked by their variance in log demand.
    let modelled = |r: &[String]| -> Vec<String> {
        let groups = factors::FactorSettings::default().names();
        r.iter().filter(|d| groups[1..].contains(d)).cloned().collect()
    };
    let (est, want) = (modelled(&a.ranking), modelled(&truth.outcome.factor_ranking));
    eprintln!("ranking {est:?}\ntruth   {want:?}");
    assert_eq!(est[0], want[0], "dominant driver");
    let top = |r: &[String]| r[..3].iter().cloned().collect::<std::collections::BTreeSet<_>>();
    assert_eq!(top(&est), top(&want), "the three dominant drivers");
    assert_eq!(est.last(), want.last(), "the weakest driver");
    // Roll-ups per location: each store's series fitted alone, categories pooled, so its
    // elasticity lies among the categories' and every promotion kind has an uplift.
    let locations: std::collections::BTreeSet<&str> =
        a.estimates.iter().filter(|e| e.section == "location_elasticity").map(|e| e.category.as_str()).collect();
    assert!(locations.len() >= 2, "locations rolled up: {locations:?}");
    let elasticities = truth.categories.values().map(|t| t.price_elasticity);
    let (lo, hi) = elasticities.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), e| (l.min(e), h.max(e)));
    for l in &locations {
        let own = a.get("location_elasticity", l, "own_price").unwrap();
        eprintln!("{l:<12} own {:>6.2} [{:.2}, {:.2}]", own.value, own.low.unwrap(), own.high.unwrap());
        assert!(own.value >= 1.2 * lo && own.value <= 0.8 * hi, "{l}: own-price elasticity {:.2}", own.value);
        for kind in truth.categories.values().flat_map(|t| t.promo_uplift.keys()) {
            assert!(a.get("location_promotion", l, kind).is_some(), "{l}: no uplift for {kind}");
        }
    }
    // Shares per category as well, summing to one in each.
    for cat in truth.categories.keys() {
        let sum: f64 =
            a.estimates.iter().filter(|e| e.section == "driver_share" && &e.category == cat).map(|e| e.value).sum();
        assert!((sum - 1.0).abs() < 1e-9, "{cat}: shares sum to {sum}");
    }
}

/// The nightly job's `factors` step writes `factors/run_date=…/` (estimates and the fitted
/// models, manifest last), and the run report shows them.
#[tokio::test]
async fn the_nightly_writes_the_factors_and_the_report_shows_them() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 24).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let file = SettingsFile { horizon: Some(7), ..Default::default() };
    let env = env(settings("memory:///", dir.path(), file), &lake, &clock);
    let run_date = date("2026-04-01");
    let run = nightly(&env, run_date).await.unwrap();
    let step = run.steps.iter().find(|s| s.name == "factors").unwrap();
    assert_eq!(step.status, Status::Succeeded, "{:?}", step.error);
    let m = run.summary.factors.as_ref().unwrap();
    assert!(m.rows > 0 && m.categories > 0, "{m:?}");
    let manifest = dataset::read_manifest(&lake, &layout::factors(run_date)).await.unwrap().unwrap();
    assert_eq!(manifest.meta["run_id"], run.run_id.as_str());
    assert_eq!(manifest.row_count, m.rows);
    let a = factors::read(&lake, run_date).await.unwrap().unwrap();
    assert!(a.get("elasticity", &a.models[0].category, "own_price").is_some());
    assert_eq!(a.ranking.len(), factors::FactorSettings::default().names().len());
    let html =
        String::from_utf8(lake.get(&layout::report(&run.run_id).join("report.html")).await.unwrap().to_vec()).unwrap();
    assert!(html.contains(r#"<section id="factors">"#) && html.contains(r#"<table id="elasticities">"#));
    assert!(html.contains("Price elasticity by category"));
    let md =
        String::from_utf8(lake.get(&layout::report(&run.run_id).join("report.md")).await.unwrap().to_vec()).unwrap();
    assert!(md.contains("## What moves demand"), "{md}");
}

/// `explain` prints one row per horizon period whose multipliers multiply to the forecast.
#[tokio::test]
async fn explain_decomposes_a_series_forecast() {
    let dir = tempfile::tempdir().unwrap();
    let (_, lake) = local_lake(dir.path());
    demo_lake(&lake, 24).await;
    let (ctx, _) = engine::open_with(&lake, engine::EngineOptions::threads(2)).await.unwrap();
    let a = factors::analyze(&ctx, FeatureParams::new(end(), Frequency::Daily, 7), &Default::default(), None)
        .await
        .unwrap();
    let key = a.models[0].series.keys().next().unwrap().clone();
    let (item, location) = key.split_once('|').unwrap();
    let out = shelfcast(dir.path())
        .args(["--lake", "lake", "--horizon", "7", "explain", "--item", item, "--location", location, "-q"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = text.lines().filter(|l| l.starts_with("2026-04")).collect();
    assert_eq!(rows.len(), 7, "{text}");
    for r in rows {
        let v: Vec<f64> = r.split_whitespace().skip(1).map(|x| x.parse().unwrap()).collect();
        let product: f64 = v[..v.len() - 1].iter().product();
        assert!((product - v[v.len() - 1]).abs() <= 0.02 * product.max(1.0), "{r}");
    }
    let unknown =
        shelfcast(dir.path()).args(["--lake", "lake", "explain", "--item", "no_such_item", "-q"]).output().unwrap();
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no_such_item"));
}

/// Above `max-series` the regression reads a fixed sample of the series, the same share of every
/// category; the same lake gives the same sample, and `explain`'s item is read whatever the sample.
#[tokio::test]
async fn the_regression_reads_a_fixed_sample_of_series_above_max_series() {
    let lake = Lake::in_memory();
    demo::generate(&lake, &DemoOptions::new(720, 120, end(), 7), &|_, _| {}).await.unwrap();
    let (ctx, _) = engine::open_with(&lake, engine::EngineOptions::threads(2)).await.unwrap();
    let params = FeatureParams::new(end(), Frequency::Daily, 7);
    let groups = factors::FactorSettings { max_series: 360, ..Default::default() };
    let fitted = |a: &Analysis| -> std::collections::BTreeSet<String> {
        a.models.iter().flat_map(|m| m.series.keys().cloned()).collect()
    };

    let all = factors::analyze(&ctx, params, &factors::FactorSettings { max_series: 0, ..Default::default() }, None)
        .await
        .unwrap();
    assert_eq!(all.series, (720, 720));
    let a = factors::analyze(&ctx, params, &groups, None).await.unwrap();
    let (read, total) = a.series;
    assert_eq!(total, 720);
    assert!((300..=380).contains(&read), "{read} series read of {total}");
    assert_eq!(a.models.len(), all.models.len(), "every category is still fitted");
    for m in &a.models {
        let full = all.models.iter().find(|f| f.category == m.category).unwrap();
        let share = m.series.len() as f64 / full.series.len() as f64;
        assert!((0.3..=0.7).contains(&share), "{}: {} of {} series", m.category, m.series.len(), full.series.len());
    }
    let again = factors::analyze(&ctx, params, &groups, None).await.unwrap();
    assert_eq!(fitted(&a), fitted(&again), "the same lake gives the same sample");
    assert_eq!(a.estimates, again.estimates);

    let left_out = fitted(&all).difference(&fitted(&a)).next().cloned().unwrap();
    let (item, _) = left_out.split_once('|').unwrap();
    let b = factors::analyze(&ctx, params, &groups, Some(item)).await.unwrap();
    assert!(fitted(&b).contains(&left_out), "{left_out} is read for explain");
}
