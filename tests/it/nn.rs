//! The deep models learn: training loss falls, a known-future promotion signal beats seasonal
//! naive, same seed gives the same forecast; TorchScript modules run under the contract and in the
//! nightly job; covariates load from a lake's feature tables.

use chrono::{Duration, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use shelfcast::lake::{dataset, layout};
use shelfcast::models::nn::{self, NnConfig, PointLoss};
use shelfcast::models::{self, Forecaster};
use shelfcast::panel::{Covariates, Panel, SeriesKey, covariates};
use shelfcast::settings::{Frequency, SettingsFile};
use tch::{CModule, Kind, Tensor};

use crate::common::*;

const HORIZON: usize = 14;
const DAYS: usize = 200;

/// Series with weekly seasonality and promotions (known in advance) that double demand on random
/// days; the last `HORIZON` days are held out. Returns the training panel, with the promotions
/// (over the history and the held-out days) as covariates, and the held-out values.
fn promo_panel(series: usize, seed: u64) -> (Panel, Vec<Vec<f32>>) {
    promo_panel_from(series, seed, 0)
}

/// [`promo_panel`] with promotions only from day `first` on.
fn promo_panel_from(series: usize, seed: u64, first: usize) -> (Panel, Vec<Vec<f32>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let week = [0.8, 0.9, 1.0, 1.0, 1.1, 1.4, 1.2];
    let end = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
    let train_end = end - Duration::days(HORIZON as i64);
    let history = DAYS - HORIZON;
    let start = train_end - Duration::days(history as i64 - 1);
    let mut cov = Covariates::empty(start, series, history, HORIZON);
    // Per period, every per-series known feature (the price and promotion ones first).
    let k = cov.known.series_names.len();
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for s in 0..series {
        let level = 5.0 + 3.0 * (s % 5) as f32;
        let y: Vec<f32> = (0..DAYS)
            .map(|t| {
                let promo = rng.random_bool(0.12) && t >= first;
                if promo {
                    cov.known.series[s][t * k] = 0.3; // discount
                    cov.known.series[s][t * k + 1] = 1.0; // promo
                }
                let dow = (start + Duration::days(t as i64)).weekday_index();
                let mean = level * week[dow] * if promo { 2.0 } else { 1.0 };
                (mean + rng.random_range(-1.0..1.0f32) * 0.1 * mean).round().max(0.0)
            })
            .collect();
        train.push(y[..history].to_vec());
        test.push(y[history..].to_vec());
    }
    let keys = (0..series).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect();
    (Panel::new(keys, train, train_end, Frequency::Daily).with_covariates(cov), test)
}

trait WeekdayIndex {
    fn weekday_index(&self) -> usize;
}

impl WeekdayIndex for NaiveDate {
    fn weekday_index(&self) -> usize {
        use chrono::Datelike;
        self.weekday().num_days_from_monday() as usize
    }
}

fn learning_config() -> NnConfig {
    NnConfig {
        window: 28,
        hidden: 32,
        epochs: 12,
        samples_per_epoch: 1024,
        batch_size: 64,
        lr: 5e-3,
        warmup_steps: 10,
        patience: 12,
        ..NnConfig::fast(HORIZON)
    }
}

fn mae(m: &dyn Forecaster, panel: &Panel, test: &[Vec<f32>]) -> f64 {
    let f = m.predict(panel, HORIZON, &[0.5]).unwrap();
    let mut err = 0.0;
    for (s, actual) in test.iter().enumerate() {
        for (h, a) in actual.iter().enumerate() {
            err += (f.mean_at(s, h) - a).abs() as f64;
        }
    }
    err / (test.len() * HORIZON) as f64
}

/// Fits `model` on the promotion fixture, checks that it learnt, and gives it back with the panel.
fn learns_the_promotions(mut model: Box<dyn Forecaster>) -> (Box<dyn Forecaster>, Panel) {
    let (panel, test) = promo_panel(16, 3);
    model.fit(&panel).unwrap();
    let card = model.card().unwrap();
    let losses: Vec<f64> = serde_json::from_value(card["training"]["train_loss"].clone()).unwrap();
    assert!(losses.last().unwrap() < &(0.7 * losses[0]), "{}: training loss did not fall: {losses:?}", model.name());
    let known = covariates::CALENDAR.len() + covariates::PRICE_PROMO.len() + covariates::LOCAL.len();
    assert_eq!(card["layout"]["known"], known, "calendar, price, closure and local-event covariates are read");

    let snaive = models::build("seasonal_naive", &crate::models::settings().models_config()).unwrap();
    let (deep, naive) = (mae(model.as_ref(), &panel, &test), mae(snaive.as_ref(), &panel, &test));
    assert!(deep < 0.8 * naive, "{}: MAE {deep:.3} vs seasonal naive {naive:.3}", model.name());
    (model, panel)
}

#[test]
fn lstm_learns_a_known_future_promotion_and_beats_seasonal_naive() {
    learns_the_promotions(Box::new(nn::Lstm::new(learning_config())));
}

/// Windows drawn towards recent periods and heavy series, the weights averaged over the last
/// epoch, and targets capped at ten times their scale: the network still learns the promotion.
#[test]
fn lstm_learns_with_weighted_windows_averaged_weights_and_capped_targets() {
    let cfg = NnConfig {
        recency_half_life: 60,
        volume_sampling: 0.5,
        average_epochs: 1.0,
        target_cap: 10.0,
        ..learning_config()
    };
    let model = nn::Lstm::new(cfg);
    learns_the_promotions(Box::new(model));
}

/// Under the Tweedie deviance the network learns the promotion too, and its saved configuration
/// keeps the loss and its power: the loaded model forecasts the same.
#[test]
fn lstm_learns_under_the_tweedie_deviance_and_loads_with_it() {
    let cfg = NnConfig { point_loss: PointLoss::Tweedie, tweedie_power: 1.3, ..learning_config() };
    let (model, panel) = learns_the_promotions(Box::new(nn::Lstm::new(cfg)));
    let card = model.card().unwrap();
    assert_eq!(
        (card["config"]["point_loss"].as_str(), card["config"]["tweedie_power"].as_f64()),
        (Some("tweedie"), Some(1.3))
    );
    let levels = [0.1, 0.5, 0.9];
    let f = model.predict(&panel, HORIZON, &levels).unwrap();
    let mut loaded = nn::Lstm::new(NnConfig::fast(HORIZON));
    loaded.load(&model.save().unwrap()).unwrap();
    assert_eq!(loaded.predict(&panel, HORIZON, &levels).unwrap(), f);
}

/// Three networks from consecutive seeds: their averaged forecast learns the promotion, scores
/// on the validation samples at least as well as its members do on average, forecasts otherwise
/// than the first member alone, saves and loads as one, and warm-starts member by member.
#[test]
fn members_from_consecutive_seeds_learn_as_one_forecast_and_save_load_and_continue_together() {
    let cfg = NnConfig { members: 3, ..learning_config() };
    let (model, panel) = learns_the_promotions(Box::new(nn::Lstm::new(cfg.clone())));
    let card = model.card().unwrap();
    let best = |t: &serde_json::Value| {
        let losses: Vec<f64> = serde_json::from_value(t["validation_loss"].clone()).unwrap();
        losses.into_iter().fold(f64::INFINITY, f64::min)
    };
    let others = card["member_training"].as_array().unwrap();
    assert_eq!(others.len(), 2, "the card gives the training of every member after the first");
    let bests: Vec<f64> = std::iter::once(&card["training"]).chain(others).map(best).collect();
    assert!(bests[0] != bests[1] && bests[1] != bests[2], "members train from different seeds: {bests:?}");
    let together = card["members_validation_loss"].as_f64().unwrap();
    let mean = bests.iter().sum::<f64>() / 3.0;
    assert!(together <= mean + 1e-6, "averaged {together} against the members' mean {mean} ({bests:?})");

    // Member 0 is the network one member of the same seed trains.
    let mut single = nn::Lstm::new(NnConfig { members: 1, ..cfg.clone() });
    single.fit(&panel).unwrap();
    assert_eq!(best(&single.card().unwrap()["training"]), bests[0]);
    let levels = [0.1, 0.5, 0.9];
    let f = model.predict(&panel, HORIZON, &levels).unwrap();
    assert_ne!(single.predict(&panel, HORIZON, &levels).unwrap(), f);

    let state = model.save().unwrap();
    let mut loaded = nn::Lstm::new(NnConfig::fast(HORIZON));
    loaded.load(&state).unwrap();
    assert_eq!(loaded.predict(&panel, HORIZON, &levels).unwrap(), f);

    let mut warm = nn::Lstm::new(cfg);
    assert!(matches!(warm.fit_warm(&panel, &state, 1).unwrap(), models::Warm::Continued(_)));
    let card = warm.card().unwrap();
    assert_eq!((card["member_training"].as_array().unwrap().len(), card["training"]["epochs"].as_u64()), (2, Some(1)));
}

/// Weekly series whose year repeats at a level 15% higher each year, forecast just after the
/// year's trough (as after a holiday quarter), with two years of history: the LSTM, anchored on
/// the seasonal anchor by default at a weekly grain, forecasts last year's shape at this year's
/// level, ahead of seasonal naive (last year's values as they were) and well ahead of the same
/// network unanchored. It saves and loads with the anchor's weights.
#[test]
fn a_weekly_lstm_anchored_on_last_season_forecasts_its_shape_at_this_years_level() {
    const YEAR: usize = 52;
    let horizon = 13;
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let shape = |w: usize| match w % YEAR {
        40..=47 => 1.8,
        48..=51 | 0..=2 => 0.6,
        w => 1.0 + 0.2 * (w as f32 * 0.5).sin(),
    };
    let (weeks, series) = (2 * YEAR + 3 + horizon, 24);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for s in 0..series {
        let level = 20.0 + 5.0 * (s % 4) as f32;
        let y: Vec<f32> = (0..weeks)
            .map(|t| {
                let mean = level * 1.15f32.powf(t as f32 / YEAR as f32) * shape(t);
                (mean * (1.0 + rng.random_range(-0.05..0.05f32))).round()
            })
            .collect();
        train.push(y[..weeks - horizon].to_vec());
        test.push(y[weeks - horizon..].to_vec());
    }
    let keys = (0..series).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect();
    let panel = Panel::new(keys, train.clone(), NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(), Frequency::Weekly);
    let cfg = NnConfig {
        horizon,
        window: YEAR,
        history: YEAR + 2 * horizon + 365,
        season: YEAR,
        anchor: true,
        covariates: false,
        hidden: 16,
        epochs: 10,
        samples_per_epoch: 1024,
        batch_size: 64,
        warmup_steps: 10,
        patience: 10,
        ..NnConfig::fast(horizon)
    };
    assert!(cfg.anchored, "outputs are anchored by default");
    let mut model = nn::Lstm::new(cfg.clone());
    model.fit(&panel).unwrap();
    assert_eq!(model.card().unwrap()["layout"]["anchored"], true);

    let mut unanchored = nn::Lstm::new(NnConfig { anchored: false, ..cfg });
    unanchored.fit(&panel).unwrap();
    let f = model.predict(&panel, horizon, &[0.1, 0.5, 0.9]).unwrap();
    let g = unanchored.predict(&panel, horizon, &[0.5]).unwrap();
    let (mut deep, mut free, mut naive) = (0.0, 0.0, 0.0);
    for (s, actual) in test.iter().enumerate() {
        let n = train[s].len();
        for (h, a) in actual.iter().enumerate() {
            deep += (f.mean_at(s, h) - a).abs() as f64;
            free += (g.mean_at(s, h) - a).abs() as f64;
            naive += (train[s][n + h - YEAR] - a).abs() as f64;
        }
    }
    // Summed absolute errors: the free network carries the trough on, below seasonal naive.
    assert!(deep < 0.9 * naive, "anchored {deep:.1} against seasonal naive's {naive:.1}");
    assert!(deep < 0.8 * free, "anchored {deep:.1} against unanchored {free:.1}");

    let mut loaded = nn::Lstm::new(NnConfig::fast(horizon));
    loaded.load(&model.save().unwrap()).unwrap();
    assert_eq!(loaded.predict(&panel, horizon, &[0.1, 0.5, 0.9]).unwrap(), f);
}

#[test]
fn transformer_learns_a_known_future_promotion_and_beats_seasonal_naive() {
    learns_the_promotions(Box::new(nn::Transformer::new(NnConfig { heads: 4, ..learning_config() })));
}

/// Demand that began to grow within the last horizon before the cutoff, and goes on growing:
/// training keeps that horizon out to validate on, so only the catch-up passes over it show the
/// network a growing series before it forecasts the next periods.
#[test]
fn the_catch_up_learns_from_the_horizon_held_out_for_validation() {
    let (series, history) = (40, DAYS - HORIZON);
    let start = history - HORIZON;
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for s in 0..series {
        let level = 5.0 + 3.0 * (s % 5) as f32;
        let y: Vec<f32> = (0..DAYS)
            .map(|t| {
                let growth = 1.03f32.powi(t.saturating_sub(start) as i32);
                let mean = level * [0.8, 0.9, 1.0, 1.0, 1.1, 1.4, 1.2][t % 7] * growth;
                (mean + rng.random_range(-1.0..1.0f32) * 0.1 * mean).round()
            })
            .collect();
        train.push(y[..history].to_vec());
        test.push(y[history..].to_vec());
    }
    let keys = (0..series).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect();
    let end = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
    let panel = Panel::new(keys, train, end, Frequency::Daily);
    let fit = |catch_up: usize| {
        let mut m = nn::Lstm::new(NnConfig { catch_up, ..learning_config() });
        m.fit(&panel).unwrap();
        let loss = m.card().unwrap()["training"]["catch_up_loss"].as_f64();
        (mae(&m, &panel, &test), loss)
    };
    let ((without, none), (with, loss)) = (fit(0), fit(2));
    assert!(none.is_none() && loss.is_some_and(f64::is_finite), "{none:?} {loss:?}");
    assert!(with < 0.9 * without, "MAE with the catch-up {with:.3}, without {without:.3}");
}

/// Promotions first run in the last week before the cutoff (the horizon held out to validate on)
/// and in the periods forecast: training never saw them vary, so the network never learnt what
/// they mean, and the forecast reads them as they were in training instead of feeding them to
/// weights left as initialised.
#[test]
fn a_covariate_training_never_saw_vary_is_read_as_it_was_in_training() {
    let history = DAYS - HORIZON;
    let (panel, _) = promo_panel_from(16, 5, history - 7);
    let mut quiet = (**panel.covariates.as_ref().unwrap()).clone();
    let k = quiet.known.series_names.len();
    for series in &mut quiet.known.series {
        for t in history..DAYS {
            series[t * k] = 0.0;
            series[t * k + 1] = 0.0;
        }
    }
    let quiet = panel.clone().with_covariates(quiet);
    let forecasts = |hold_unseen: bool| {
        let mut m = nn::Lstm::new(NnConfig { hold_unseen, epochs: 3, ..learning_config() });
        m.fit(&panel).unwrap();
        let held: Vec<String> = m.card().unwrap()["held_covariates"]
            .as_array()
            .map(|h| h.iter().map(|h| h["feature"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        let means = |p: &Panel| {
            let f = m.predict(p, HORIZON, &[0.5]).unwrap();
            (0..p.len())
                .flat_map(|s| (0..HORIZON).map(move |h| (s, h)))
                .map(|(s, h)| f.mean_at(s, h))
                .collect::<Vec<_>>()
        };
        (held, means(&panel), means(&quiet))
    };
    let (held, with_promos, without) = forecasts(true);
    assert!(held.iter().any(|f| f == "promo") && held.iter().any(|f| f == "discount"), "{held:?}");
    assert_eq!(with_promos, without, "a promotion it never learnt moved the forecast");
    // Fed to the weights they start with, the same promotions move it.
    let (held, with_promos, without) = forecasts(false);
    assert!(held.is_empty());
    assert_ne!(with_promos, without);
}

#[test]
fn the_same_seed_gives_the_same_forecast_and_another_seed_another() {
    let (panel, _) = promo_panel(6, 5);
    let fit = |seed: u64| {
        let mut m = nn::Transformer::new(NnConfig { seed, dropout: 0.1, ..NnConfig::fast(HORIZON) });
        m.fit(&panel).unwrap();
        m.predict(&panel, HORIZON, &[0.1, 0.5, 0.9]).unwrap()
    };
    let a = fit(1);
    assert_eq!(a, fit(1));
    assert_ne!(a, fit(2));
}

#[test]
fn deep_models_fitted_side_by_side_forecast_as_they_do_one_after_another() {
    let (panel, _) = promo_panel(6, 7);
    let levels = [0.1, 0.5, 0.9];
    // One without dropout (trains beside the others), two with (each draws its masks from
    // libtorch's process-wide generator, so they take turns).
    let build = |i: usize| -> Box<dyn Forecaster> {
        match i {
            0 => Box::new(nn::Transformer::new(NnConfig { seed: 3, ..NnConfig::fast(HORIZON) })),
            i => Box::new(nn::Lstm::new(NnConfig { seed: i as u64, dropout: 0.2, ..NnConfig::fast(HORIZON) })),
        }
    };
    let fit = |i: usize| {
        let mut m = build(i);
        m.fit(&panel).unwrap();
        m.predict(&panel, HORIZON, &levels).unwrap()
    };
    let alone = models::lanes::Lanes { lanes: 1, threads: 1 }.run(vec![0, 1, 2], fit);
    let beside = models::lanes::Lanes { lanes: 3, threads: 1 }.run(vec![0, 1, 2], fit);
    assert_eq!(alone, beside);
    assert_ne!(alone[1], alone[2]);
}

#[test]
fn a_model_trained_with_covariates_refuses_a_panel_without_them() {
    let (panel, _) = promo_panel(4, 9);
    let mut m = nn::Lstm::new(NnConfig::fast(HORIZON));
    m.fit(&panel).unwrap();
    let bare = Panel::new(panel.keys.clone(), panel.values.clone(), panel.end, panel.frequency);
    let err = m.predict(&bare, HORIZON, &[0.5]).unwrap_err().to_string();
    assert!(err.contains("covariates"), "{err}");
    assert!(m.predict(&panel, HORIZON + 1, &[0.5]).is_err(), "longer than the trained horizon");
}

/// A TorchScript forecaster traced here: the history's mean times per-level factors, raised on
/// weekends (known input features 5 and 6: Saturday and Sunday).
fn traced_module() -> Vec<u8> {
    let _guard = nn::torch_lock();
    let history = Tensor::ones([3, 14], (Kind::Float, tch::Device::Cpu));
    let known = Tensor::zeros([3, 28, 11], (Kind::Float, tch::Device::Cpu));
    let factors = Tensor::from_slice(&[0.7f32, 1.0, 1.4]);
    let module = CModule::create_by_tracing("Forecaster", "forward", &[history, known], &mut |x| {
        let level = x[0].mean_dim(1, true, Kind::Float).unsqueeze(-1);
        let weekend = x[1].narrow(2, 5, 2).sum_dim_intlist(2, true, Kind::Float);
        vec![level * (weekend * 0.5 + 1.0) * &factors]
    })
    .unwrap();
    let file = tempfile::Builder::new().suffix(".pt").tempfile().unwrap();
    module.save(file.path()).unwrap();
    std::fs::read(file.path()).unwrap()
}

#[test]
fn torchscript_meets_the_contract() {
    let bytes = traced_module();
    let s = crate::models::settings();
    crate::models::contract("torchscript", &|| models::build_torchscript(&s.models_config(), &bytes).unwrap());

    // The module's scale is the series': a flat series of 10 (as long as the 56-day window)
    // forecasts 10 on weekdays, 15 on weekends.
    let m = models::build_torchscript(&s.models_config(), &bytes).unwrap();
    let f = m.predict(&Panel::single(&[10.0; 56]), 7, &[0.1, 0.5, 0.9]).unwrap();
    let means: Vec<f32> = (0..7).map(|h| f.mean_at(0, h)).collect();
    // Panel::single ends on Thursday 2026-01-01: steps 2 and 3 are the weekend.
    assert_eq!(means, [10.0, 15.0, 15.0, 10.0, 10.0, 10.0, 10.0]);
    assert!((f.quantile_at(0, 0, 0) - 7.0).abs() < 1e-5 && (f.quantile_at(0, 0, 2) - 14.0).abs() < 1e-5);
}

#[tokio::test]
async fn covariates_load_from_the_feature_tables_and_the_nightly_runs_a_torchscript_model() {
    let dir = tempfile::tempdir().unwrap();
    let (url, lake) = local_lake(dir.path());
    demo_lake(&lake, 6).await;
    lake.put(&layout::torchscript_model("forecaster.pt"), traced_module().into()).await.unwrap();
    let clock = clock();
    let file = SettingsFile { models: Some(vec!["torchscript".into()]), ..Default::default() };
    let env = env(settings(&url, dir.path(), file), &lake, &clock);
    let report = nightly(&env, date("2026-04-01")).await.unwrap();
    assert_eq!(report.summary.model.as_deref(), Some("torchscript"));
    assert_eq!(report.summary.forecast_rows, 6 * 28);

    // The covariates the train step loaded, read again from the cutoff's feature tables.
    let cutoff = date("2026-03-31");
    let (_, batches) = dataset::read(&lake, &layout::features("target", cutoff)).await.unwrap();
    let panel = Panel::from_batches(&batches, Frequency::Daily, cutoff).unwrap();
    let cov = Covariates::load(&lake, cutoff, &panel, 28, 100).await.unwrap();
    assert_eq!(cov.known_dim(), covariates::CALENDAR.len() + covariates::PRICE_PROMO.len() + covariates::LOCAL.len());
    assert_eq!(cov.known.series.len(), panel.len());
    assert!(cov.statics.values[0].iter().all(Option::is_some), "every demo item has a category");
    let promo = covariates::PRICE_PROMO.iter().position(|n| *n == "promo").unwrap();
    let k = cov.known.series_names.len();
    let promos: usize = cov.known.series.iter().map(|v| v.chunks(k).filter(|r| r[promo] > 0.0).count()).sum();
    assert!(promos > 0, "the demo lake runs promotions");
    let views = covariates::PAST.iter().position(|n| *n == "views_rel").unwrap();
    assert!(cov.past.values.iter().any(|v| v.chunks(cov.past_dim()).any(|r| r[views] > 0.0)), "traffic is read");
    // Views are relative to the item's own mean over the periods held: they average about 1.
    for v in &cov.past.values {
        let rel: Vec<f32> = v.chunks(cov.past_dim()).map(|r| r[views]).filter(|x| *x > 0.0).collect();
        let mean = rel.iter().sum::<f32>() / rel.len().max(1) as f32;
        assert!(rel.is_empty() || (0.8..1.25).contains(&mean), "views relative to the item mean average {mean}");
    }
    let events: f32 = cov.known.calendar.chunks(covariates::CALENDAR.len()).map(|r| r[0]).sum();
    assert!(events > 0.0, "the demo calendar has events");

    // A deep model fits on them and forecasts the horizon from the known covariates.
    let panel = panel.with_covariates(cov);
    let mut m = nn::Lstm::new(NnConfig::fast(28));
    m.fit(&panel).unwrap();
    let f = m.predict(&panel, 28, &[0.1, 0.5, 0.9]).unwrap();
    assert!(f.mean.iter().all(|v| v.is_finite() && *v >= 0.0));
    let mut loaded = nn::Lstm::new(NnConfig::fast(28));
    loaded.load(&m.save().unwrap()).unwrap();
    assert_eq!(loaded.predict(&panel, 28, &[0.1, 0.5, 0.9]).unwrap(), f);
}

/// A warm start continues the stored weights: its first fine-tuning epoch starts from a far lower
/// loss than training from scratch does, it still beats seasonal naive, it is deterministic, and
/// a parent of another configuration is refused with the reason.
#[test]
fn a_warm_start_continues_the_parent_and_an_incompatible_parent_is_refused() {
    let (panel, test) = promo_panel(16, 3);
    let mut parent = nn::Lstm::new(learning_config());
    parent.fit(&panel).unwrap();
    let scratch_first: f64 =
        serde_json::from_value(parent.card().unwrap()["training"]["train_loss"][0].clone()).unwrap();
    let state = parent.save().unwrap();

    let warm = || {
        let mut m = nn::Lstm::new(learning_config());
        match m.fit_warm(&panel, &state, 3).unwrap() {
            models::Warm::Continued(_) => m,
            other => panic!("expected a warm start, got {other:?}"),
        }
    };
    let m = warm();
    let card = m.card().unwrap();
    assert_eq!(card["warm_start"]["epochs"], 3, "{}", card["warm_start"]);
    let losses: Vec<f64> = serde_json::from_value(card["training"]["train_loss"].clone()).unwrap();
    assert!(losses.len() <= 3);
    assert!(losses[0] < 0.7 * scratch_first, "fine-tuning starts at {} vs {scratch_first} from scratch", losses[0]);
    let snaive = models::build("seasonal_naive", &crate::models::settings().models_config()).unwrap();
    let (deep, naive) = (mae(&m, &panel, &test), mae(snaive.as_ref(), &panel, &test));
    assert!(deep < 0.8 * naive, "warm-started MAE {deep:.3} vs seasonal naive {naive:.3}");
    let levels = [0.1, 0.5, 0.9];
    assert_eq!(m.predict(&panel, HORIZON, &levels).unwrap(), warm().predict(&panel, HORIZON, &levels).unwrap());

    let mut other = nn::Lstm::new(NnConfig { hidden: 16, ..learning_config() });
    match other.fit_warm(&panel, &state, 3).unwrap() {
        models::Warm::Incompatible(why) => assert!(why.contains("configuration"), "{why}"),
        w => panic!("a parent of another width must be refused, got {w:?}"),
    }
    let mut transformer = nn::Transformer::new(learning_config());
    assert!(matches!(transformer.fit_warm(&panel, &state, 3).unwrap(), models::Warm::Incompatible(_)));
}

/// The nightly's train step continues the deep model's previous version, records the lineage in
/// the card and the run record, retrains in full on schedule, and a rerun of a date continues
/// from the same parent (never from a model that saw that date's data).
#[tokio::test]
async fn the_nightly_warm_starts_the_deep_models_and_retrains_them_in_full_on_schedule() {
    use shelfcast::evaluate::champion::ChampionSettings;
    use shelfcast::models::params::ModelParams;
    use shelfcast::models::store;
    use shelfcast::models::warm::TrainSettings;
    let lake = shelfcast::lake::Lake::in_memory();
    demo_lake(&lake, 6).await;
    let dir = tempfile::tempdir().unwrap();
    let tiny = tiny_lstm();
    let gbt = shelfcast::models::params::GbtParams { trees: Some(30), ..Default::default() };
    let file = SettingsFile {
        models: Some(vec!["seasonal_naive".into(), "lstm".into(), "gbt".into()]),
        horizon: Some(7),
        champion: Some(ChampionSettings { windows: 0, ..Default::default() }),
        train: Some(TrainSettings { retrain_every: std::time::Duration::from_secs(2 * 86_400), ..Default::default() }),
        model: Some(ModelParams { lstm: tiny, gbt, ..Default::default() }),
        ..Default::default()
    };
    let s = settings("memory:///", dir.path(), file);
    let env = env(s.clone(), &lake, &clock());
    let night = |day: &'static str| {
        let env = &env;
        let lake = lake.clone();
        async move {
            let run = nightly(env, date(day)).await.unwrap();
            // This run's own version: a rerun of an older date does not become the latest.
            let card = lake.get(&layout::model("lstm", &run.run_id).join("card.json")).await.unwrap();
            let card: store::ModelCard = serde_json::from_slice(&card).unwrap();
            let trees = lake.get(&layout::model("gbt", &run.run_id).join("card.json")).await.unwrap();
            let trees: store::ModelCard = serde_json::from_slice(&trees).unwrap();
            let trees = trees.lineage.expect("the trees' card has their lineage");
            assert_eq!(trees.mode, card.lineage.as_ref().unwrap().mode, "gbt follows the same schedule: {trees:?}");
            if trees.mode == "warm" {
                assert!(trees.reason.starts_with(shelfcast::models::gbt::WARM_REFIT), "{trees:?}");
            }
            (run, card.lineage.expect("a deep model's card has its lineage"))
        }
    };
    let (first, l1) = night("2026-03-30").await;
    assert_eq!((l1.mode.as_str(), l1.parent.as_deref()), ("full", None), "{l1:?}");
    assert!(l1.reason.contains("no stored version"), "{l1:?}");
    let (second, l2) = night("2026-03-31").await;
    assert_eq!((l2.mode.as_str(), l2.parent.as_deref()), ("warm", Some(first.run_id.as_str())), "{l2:?}");
    assert!(second.summary.notes.iter().any(|n| n.starts_with("lstm: warm start from")), "{:?}", second.summary.notes);
    // Two days after the last full retrain: in full again.
    let (_, l3) = night("2026-04-01").await;
    assert_eq!(l3.mode, "full", "{l3:?}");
    assert!(l3.reason.contains("scheduled full retrain"), "{l3:?}");
    // A rerun of the second date continues from the first night's version again.
    let (_, again) = night("2026-03-31").await;
    assert_eq!(again.parent.as_deref(), Some(first.run_id.as_str()), "{again:?}");
}

/// A first nightly has no stored deep model to continue: its train step continues the state the
/// run's backtest reached at its last window (trained from scratch at the first window, on data
/// before each window's cutoff) instead of training from scratch again, and says so in the card;
/// with `[train] warm-backtest = false` it trains from scratch.
#[tokio::test]
async fn a_first_nightly_continues_its_backtests_deep_model_instead_of_training_it_again() {
    use shelfcast::evaluate::champion::ChampionSettings;
    use shelfcast::models::params::ModelParams;
    use shelfcast::models::store;
    use shelfcast::models::warm::TrainSettings;
    let first_lineage = |warm_backtest: bool| async move {
        let lake = shelfcast::lake::Lake::in_memory();
        demo_lake(&lake, 6).await;
        let dir = tempfile::tempdir().unwrap();
        let file = SettingsFile {
            models: Some(vec!["seasonal_naive".into(), "lstm".into()]),
            horizon: Some(7),
            champion: Some(ChampionSettings { windows: 2, ..Default::default() }),
            train: Some(TrainSettings { warm_backtest, ..Default::default() }),
            model: Some(ModelParams { lstm: tiny_lstm(), ..Default::default() }),
            ..Default::default()
        };
        let env = env(settings("memory:///", dir.path(), file), &lake, &clock());
        let run = nightly(&env, date("2026-04-01")).await.unwrap();
        let card = lake.get(&layout::model("lstm", &run.run_id).join("card.json")).await.unwrap();
        let card: store::ModelCard = serde_json::from_slice(&card).unwrap();
        (run, card.lineage.expect("a deep model's card has its lineage"))
    };
    let (run, l) = first_lineage(true).await;
    assert_eq!((l.mode.as_str(), l.parent.as_deref()), ("warm", None), "{l:?}");
    assert!(l.reason.contains("this run's backtest") && l.reason.contains("no stored version"), "{l:?}");
    assert_eq!(l.full_retrain_cutoff, date("2026-03-31"), "the line was trained from scratch in this run");
    assert!(
        run.summary.notes.iter().any(|n| n.starts_with("lstm: warm start from this run's backtest")),
        "{:?}",
        run.summary.notes
    );
    let (_, l) = first_lineage(false).await;
    assert_eq!((l.mode.as_str(), l.parent.as_deref()), ("full", None), "{l:?}");
}

/// A deep model small enough for a nightly in a test: one layer of 16, three short epochs.
fn tiny_lstm() -> shelfcast::models::params::NnParams {
    shelfcast::models::params::NnParams {
        window: Some(28),
        history_extra: Some(120),
        hidden: Some(16),
        layers: Some(1),
        epochs: Some(3),
        samples_per_epoch: Some(512),
        batch_size: Some(64),
        ..Default::default()
    }
}

/// The shares of `test` under the 0.1 quantile and over the 0.9 quantile of `model`'s
/// forecast, and its mean forecast.
fn tails(model: &dyn Forecaster, panel: &Panel, test: &[Vec<f32>]) -> (f64, f64, Vec<f32>) {
    let f = model.predict(panel, HORIZON, &[0.1, 0.5, 0.9]).unwrap();
    let (mut under, mut over, mut means) = (0usize, 0usize, Vec::new());
    for (s, actual) in test.iter().enumerate() {
        for (h, a) in actual.iter().enumerate() {
            under += usize::from(*a < f.quantile_at(s, h, 0));
            over += usize::from(*a > f.quantile_at(s, h, 2));
            means.push(f.mean_at(s, h));
        }
    }
    let n = (test.len() * HORIZON) as f64;
    (under as f64 / n, over as f64 / n, means)
}

/// A network trained briefly has quantiles that miss (here too wide below, too narrow above);
/// calibrated on the validation samples it held out, about 10% of the next horizon falls under
/// its 0.1 quantile and 10% over its 0.9 quantile, with the same mean forecast.
#[test]
fn a_deep_model_s_quantiles_are_calibrated_on_the_samples_it_held_out() {
    let (panel, test) = promo_panel(60, 11);
    let cfg = NnConfig { epochs: 1, samples_per_epoch: 128, lr: 1e-3, ..NnConfig::fast(HORIZON) };
    let mut own = nn::Lstm::new(cfg.clone()).calibrated(false);
    let mut calibrated = nn::Lstm::new(cfg);
    own.fit(&panel).unwrap();
    calibrated.fit(&panel).unwrap();
    assert!(own.card().unwrap().get("quantile_calibration").is_none());
    let factors = calibrated.card().unwrap()["quantile_calibration"].clone();
    let (own_under, own_over, own_mean) = tails(&own, &panel, &test);
    let (under, over, mean) = tails(&calibrated, &panel, &test);
    let seen = format!("own {own_under:.3} / {own_over:.3}, calibrated {under:.3} / {over:.3}, factors {factors}");
    assert_eq!(own_mean, mean, "calibration changes the quantiles only");
    assert!(
        (own_under - 0.1).abs().max((own_over - 0.1).abs()) > 0.07,
        "the brief fit's own quantiles should miss: {seen}"
    );
    assert!((0.05..=0.15).contains(&under) && (0.05..=0.15).contains(&over), "{seen}");

    // Saved and loaded, the factors travel with the weights.
    let mut back = nn::Lstm::new(NnConfig::fast(HORIZON));
    back.load(&calibrated.save().unwrap()).unwrap();
    assert_eq!(tails(&back, &panel, &test).0, under);
}

/// On sparse demand the median misses by less than the mean: the validation samples say so, the
/// point forecast is the median (the mean column stays the mean), it misses the next horizon by
/// less, the card gives both errors, and it survives save → load. Set to the mean, the point is
/// the mean.
#[test]
fn a_deep_model_s_point_forecast_is_the_median_where_validation_finds_it_misses_by_less() {
    let (panel, test) = sparse_panel(24, DAYS, HORIZON, 13);
    let cfg = NnConfig { epochs: 4, covariates: false, ..learning_config() };
    let mut auto = nn::Lstm::new(cfg.clone());
    auto.fit(&panel).unwrap();
    let point = auto.card().unwrap()["point"].clone();
    assert_eq!(point["median"], true, "{point}");
    assert!(point["median_error"].as_f64().unwrap() < point["mean_error"].as_f64().unwrap(), "{point}");

    let mae = |at: &dyn Fn(usize, usize) -> f32| test_mae(&test, at);
    let f = auto.predict(&panel, HORIZON, &[0.1, 0.9]).unwrap();
    let (on_point, on_mean) = (mae(&|s, h| f.point_at(s, h)), mae(&|s, h| f.mean_at(s, h)));
    assert!(on_point < 0.9 * on_mean, "MAE of the point {on_point:.3}, of the mean {on_mean:.3}");
    let mean = f.mean_at(0, 0);
    assert!((1.5..5.0).contains(&mean), "the mean column stays the mean: {mean}");

    let mut back = nn::Lstm::new(NnConfig::fast(HORIZON));
    back.load(&auto.save().unwrap()).unwrap();
    assert_eq!(back.predict(&panel, HORIZON, &[0.1, 0.9]).unwrap(), f);

    let mut at_mean = nn::Lstm::new(NnConfig { point: nn::PointChoice::Mean, ..cfg });
    at_mean.fit(&panel).unwrap();
    let f = at_mean.predict(&panel, HORIZON, &[0.5]).unwrap();
    assert!(f.point.is_empty(), "the point is the mean");
    assert_eq!(at_mean.card().unwrap()["point"]["median"], false);
}
