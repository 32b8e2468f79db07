//! The contract every forecaster meets, run against each model of the registry, and checks that
//! the fitted baselines learn.

use chrono::NaiveDate;
use shelfcast::models::nn::{self, NnConfig};
use shelfcast::models::{self, Forecaster};
use shelfcast::panel::{Panel, SeriesKey};
use shelfcast::settings::{Frequency, Overrides, Settings, SettingsFile};

pub fn settings() -> Settings {
    let o = Overrides { threads: Some(2), ..Default::default() };
    // The ensemble's members: the baselines (the deep models are tested with tiny configurations).
    let file =
        SettingsFile { models: Some(vec!["seasonal_naive".into(), "ets".into(), "tsb".into()]), ..Default::default() };
    Settings::resolve(file, o, std::path::PathBuf::from("/tmp"), None).unwrap()
}

/// Smooth seasonal series, an intermittent one, a short one and an all-zero one.
pub fn panel() -> Panel {
    let week = [0.8, 0.9, 1.0, 1.0, 1.2, 1.5, 1.3];
    let mut values = Vec::new();
    for s in 0..4 {
        values.push(
            (0..120).map(|t| ((10 + 5 * s) as f64 * week[t % 7] + ((t * 31 + s * 7) % 5) as f64) as f32).collect(),
        );
    }
    values.push((0..120).map(|t| if t % 9 == 0 { 3.0 } else { 0.0 }).collect());
    values.push(vec![2.0, 3.0, 1.0]);
    values.push(vec![0.0; 50]);
    let keys = (0..values.len()).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect();
    Panel::new(keys, values, NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(), Frequency::Daily)
}

/// The registry's model; the deep models with a tiny configuration, so the suite takes seconds.
fn build(name: &str) -> Box<dyn Forecaster> {
    let s = settings();
    let tiny = || NnConfig { seed: s.seed, quantiles: s.quantiles.clone(), ..NnConfig::fast(s.horizon) };
    match name {
        "lstm" => Box::new(nn::Lstm::new(tiny())),
        "transformer" => Box::new(nn::Transformer::new(tiny())),
        _ => models::build(name, &s.models_config()).unwrap(),
    }
}

/// The contract, for models made by `make`.
pub fn contract(name: &str, make: &dyn Fn() -> Box<dyn Forecaster>) {
    contract_in(&settings(), name, make);
}

/// The contract under settings `s` (a stored state is loaded into a model they build).
pub fn contract_in(s: &Settings, name: &str, make: &dyn Fn() -> Box<dyn Forecaster>) {
    let p = panel();
    let levels = [0.1, 0.5, 0.9];
    let horizon = 14;
    let mut m = make();
    assert_eq!(m.name(), name);
    m.fit(&p).unwrap();
    let f = m.predict(&p, horizon, &levels).unwrap();
    assert_eq!(f.mean.len(), p.len() * horizon, "{name}: shape of the mean");
    assert_eq!(f.quantiles.len(), p.len() * horizon * levels.len(), "{name}: shape of the quantiles");
    for s in 0..p.len() {
        for h in 0..horizon {
            let q: Vec<f32> = (0..levels.len()).map(|k| f.quantile_at(s, h, k)).collect();
            assert!(q.windows(2).all(|w| w[0] <= w[1]), "{name}: quantiles cross for series {s} step {h}: {q:?}");
            assert!(q[0] >= 0.0 && f.mean_at(s, h) >= 0.0, "{name}: negative forecast");
            assert!(f.mean_at(s, h).is_finite());
            // The point (the mean unless the model chose another) is what backtests score.
            let point = f.point_at(s, h);
            assert!(point.is_finite() && point >= 0.0, "{name}: point {point} for series {s} step {h}");
        }
    }
    assert!(f.point.is_empty() || f.point.len() == f.mean.len(), "{name}: shape of the point");
    // The all-zero series forecasts zero.
    assert!((0..horizon).all(|h| f.mean_at(6, h) == 0.0 && f.point_at(6, h) == 0.0), "{name}: zeros in, zeros out");

    // Deterministic: a second model on the same data gives the same forecast.
    let mut again = make();
    again.fit(&p).unwrap();
    assert_eq!(again.predict(&p, horizon, &levels).unwrap(), f, "{name}: not deterministic");

    // Save, load into a fresh model from the registry, same forecast.
    let bytes = m.save().unwrap();
    let mut loaded = models::build(name, &s.models_config()).unwrap();
    loaded.load(&bytes).unwrap();
    assert_eq!(loaded.predict(&p, horizon, &levels).unwrap(), f, "{name}: save/load changed the forecast");
}

/// One contract test per model of the registry, so one model's failure does not hide another's.
macro_rules! contract_tests {
    ($($test:ident => $name:literal),* $(,)?) => {
        /// The models these tests cover (checked against the registry).
        const COVERED: &[&str] = &[$($name),*];
        $(
            #[test]
            fn $test() {
                contract($name, &|| build($name));
            }
        )*
    };
}

contract_tests! {
    naive_meets_the_contract => "naive",
    seasonal_naive_meets_the_contract => "seasonal_naive",
    moving_average_meets_the_contract => "moving_average",
    ets_meets_the_contract => "ets",
    theta_meets_the_contract => "theta",
    croston_meets_the_contract => "croston",
    tsb_meets_the_contract => "tsb",
    ensemble_meets_the_contract => "ensemble",
    median_meets_the_contract => "median",
    gbt_meets_the_contract => "gbt",
    lstm_meets_the_contract => "lstm",
    transformer_meets_the_contract => "transformer",
}

/// `gbt` per location, with the count objectives, meets the contract too.
#[test]
fn gbt_variants_meet_the_contract() {
    for model in ["per = \"location\"\nper-min-series = 1\ntarget = \"tweedie\"", "target = \"poisson\""] {
        let file = SettingsFile::parse(&format!("[model.gbt]\n{model}\n"), std::path::Path::new("gbt.toml")).unwrap();
        let o = Overrides { threads: Some(2), ..Default::default() };
        let s = Settings::resolve(file, o, std::path::PathBuf::from("/tmp"), None).unwrap();
        let config = s.models_config();
        contract_in(&s, "gbt", &|| models::build("gbt", &config).unwrap());
    }
}

#[test]
fn every_model_of_the_registry_has_a_contract_test() {
    for name in models::KNOWN {
        assert_eq!(models::build(name, &settings().models_config()).unwrap().name(), *name);
        // A TorchScript model needs a module to run: see `nn::torchscript_meets_the_contract`.
        if *name != "torchscript" {
            assert!(COVERED.contains(name), "{name} has no contract test: add it to contract_tests!");
        }
    }
}

fn mae(name: &str, train: &Panel, test: &[Vec<f32>], horizon: usize) -> f64 {
    let mut m = models::build(name, &settings().models_config()).unwrap();
    m.fit(train).unwrap();
    let f = m.predict(train, horizon, &[0.5]).unwrap();
    let mut err = 0.0;
    for (s, actual) in test.iter().enumerate() {
        for (h, y) in actual.iter().enumerate().take(horizon) {
            err += (f.mean_at(s, h) - y).abs() as f64;
        }
    }
    err / (test.len() * horizon) as f64
}

#[test]
fn ets_learns_season_and_trend_better_than_naive() {
    let week = [0.7, 0.8, 1.0, 1.0, 1.3, 1.6, 1.2];
    let series: Vec<Vec<f32>> = (0..6)
        .map(|s| {
            (0..168)
                .map(|t| ((20.0 + 0.1 * t as f64 + s as f64) * week[t % 7] + ((t * 13 + s) % 3) as f64) as f32)
                .collect()
        })
        .collect();
    let horizon = 14;
    let train = Panel::new(
        (0..6).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect(),
        series.iter().map(|y| y[..168 - horizon].to_vec()).collect(),
        NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        Frequency::Daily,
    );
    let test: Vec<Vec<f32>> = series.iter().map(|y| y[168 - horizon..].to_vec()).collect();
    let ets = mae("ets", &train, &test, horizon);
    let naive = mae("naive", &train, &test, horizon);
    let snaive = mae("seasonal_naive", &train, &test, horizon);
    assert!(ets < 0.5 * naive, "ets {ets} vs naive {naive}");
    assert!(ets < snaive, "ets {ets} vs seasonal naive {snaive}");
}

/// Two good members and two weak ones: the learned ensemble weighs them by their validation
/// error and forecasts as well as the best of them (2% at most behind), where the median of the
/// four is pulled towards the weak ones.
#[test]
fn the_learned_ensemble_keeps_up_with_its_best_member_where_the_median_does_not() {
    let week = [0.6, 0.8, 1.0, 1.0, 1.3, 1.7, 1.2];
    let (n, horizon) = (252, 14);
    let series: Vec<Vec<f32>> = (0..12)
        .map(|s| {
            (0..n)
                .map(|t| {
                    let level = 20.0 + 2.0 * s as f64 + 0.05 * t as f64;
                    (level * week[t % 7] + ((t * 17 + s * 5) % 7) as f64 - 3.0).max(0.0) as f32
                })
                .collect()
        })
        .collect();
    let keys: Vec<SeriesKey> =
        (0..12).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect();
    let train = Panel::new(
        keys,
        series.iter().map(|y| y[..n - horizon].to_vec()).collect(),
        NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        Frequency::Daily,
    );
    let test: Vec<Vec<f32>> = series.iter().map(|y| y[n - horizon..].to_vec()).collect();
    let o = Overrides {
        threads: Some(2),
        horizon: Some(horizon),
        models: Some(["naive", "seasonal_naive", "moving_average", "ets"].map(String::from).to_vec()),
        ..Default::default()
    };
    let s = Settings::resolve(SettingsFile::default(), o, std::path::PathBuf::from("/tmp"), None).unwrap();
    let mae = |name: &str| {
        let mut m = models::build(name, &s.models_config()).unwrap();
        m.fit(&train).unwrap();
        let f = m.predict(&train, horizon, &[0.1, 0.5, 0.9]).unwrap();
        let err: f64 = test
            .iter()
            .enumerate()
            .flat_map(|(i, y)| y.iter().enumerate().map(move |(h, v)| (i, h, *v)))
            .map(|(i, h, v)| (f.point_at(i, h) - v).abs() as f64)
            .sum();
        (err / (test.len() * horizon) as f64, m.card())
    };
    let members: Vec<f64> = ["naive", "seasonal_naive", "moving_average", "ets"].iter().map(|m| mae(m).0).collect();
    let best = members.iter().copied().fold(f64::INFINITY, f64::min);
    let (learned, card) = mae("ensemble");
    let (median, _) = mae("median");
    let card = card.unwrap();
    let on = |key: &str| -> Vec<f64> { serde_json::from_value(card[key].clone()).unwrap() };
    let (means, medians) = (on("weights"), on("median_weights"));
    let weight = |m: usize| means[m] + medians.get(m).copied().unwrap_or(0.0);
    // The weak members (naive, the moving average) get little or no weight, mean or median.
    assert!(weight(0) + weight(2) < 0.3, "weights {means:?}, on the medians {medians:?}");
    assert!(learned <= best * 1.02, "learned {learned} vs best member {best} ({members:?})");
    assert!(learned < median, "learned {learned} vs median {median}");
}

#[tokio::test]
async fn models_fitted_side_by_side_forecast_as_they_do_one_after_another() {
    use shelfcast::evaluate::backtest::{self, BacktestOptions};
    use shelfcast::models::params::{GbtParams, ModelParams};
    let lake = shelfcast::lake::Lake::in_memory();
    crate::common::demo_lake(&lake, 6).await;
    let names = ["gbt", "ets", "seasonal_naive", "theta", "ensemble"];
    let settings_with = |parallel_fits: usize| {
        let file = SettingsFile {
            models: Some(names.iter().map(|m| m.to_string()).collect()),
            parallel_fits: Some(parallel_fits),
            model: Some(ModelParams { gbt: GbtParams { trees: Some(30), ..Default::default() }, ..Default::default() }),
            ..Default::default()
        };
        let o = Overrides { threads: Some(2), ..Default::default() };
        Settings::resolve(file, o, std::path::PathBuf::from("/tmp"), None).unwrap()
    };
    let (ctx, _) = shelfcast::engine::open(&lake, 2).await.unwrap();
    let (one, two) = (settings_with(1), settings_with(0));
    assert_eq!(two.models_config().lanes(4).lanes, 2, "two fits at once on two threads");
    let (full, _) = backtest::full_panel(&ctx, &one.backtest_config()).await.unwrap();
    let opts = BacktestOptions::new(2, 14, 14, names.iter().map(|m| m.to_string()).collect());
    let a = backtest::run(&full, &one.backtest_config(), &opts).unwrap();
    let b = backtest::run(&full, &two.backtest_config(), &opts).unwrap();
    assert_eq!(backtest::canonical_batch(&a).unwrap(), backtest::canonical_batch(&b).unwrap());
    assert_eq!(a.models.len(), names.len());
}

/// The registry's statistical baselines choose their point on a held-out horizon: on sparse
/// demand TSB's point is its median, which misses the next horizon by less than its mean, while
/// the mean column stays the mean; with `[model.point] models = []` the point is the mean.
#[test]
fn a_baseline_s_point_is_its_median_on_sparse_demand_unless_the_settings_keep_the_mean() {
    let horizon = 14;
    let (panel, test) = crate::common::sparse_panel(40, 200, horizon, 21);
    let config = settings().models_config();
    let mut tsb = models::build("tsb", &config).unwrap();
    tsb.fit(&panel).unwrap();
    let f = tsb.predict(&panel, horizon, &[0.1, 0.5, 0.9]).unwrap();
    let point = tsb.card().unwrap()["point"]["chosen"].clone();
    assert!(point["median_error"].as_f64().unwrap() < point["mean_error"].as_f64().unwrap(), "{point}");
    let (on_point, on_mean) = (
        crate::common::test_mae(&test, &|s, h| f.point_at(s, h)),
        crate::common::test_mae(&test, &|s, h| f.mean_at(s, h)),
    );
    assert!(on_point < 0.9 * on_mean, "MAE of the point {on_point:.3}, of the mean {on_mean:.3}");

    let mut kept = config.clone();
    kept.model.point.models = Some(Vec::new());
    let mut at_mean = models::build("tsb", &kept).unwrap();
    at_mean.fit(&panel).unwrap();
    let g = at_mean.predict(&panel, horizon, &[0.1, 0.5, 0.9]).unwrap();
    assert!(g.point.is_empty(), "the point is the mean");
    assert_eq!((&g.mean, &g.quantiles), (&f.mean, &f.quantiles), "only the point differs");
}
