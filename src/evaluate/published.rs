//! The published forecast of a backtest: what the nightly would have delivered at each window.
//!
//! The nightly does not publish one model: each segment (every series, or each demand class)
//! gets the forecast of its champion, crowned by [`super::champion::Registry::decide`] on the
//! windows before. A backtest replays that rule. At each scored cutoff the registry decides on
//! the latest earlier windows whose periods have all passed by that cutoff (at most
//! `[champion] windows` of them, unscored warm-up windows included), then every series takes
//! its segment champion's rows of that window. The registry carries from one window to the next,
//! so a challenger needs the margin to take over, as it would across nights. A model is a
//! candidate when it forecast every one of those windows, as the nightly scores every model on
//! all of its windows, so one that failed a scored window is not. The warm-up windows fit only
//! the learned ensemble's members, and the ensemble itself only where it has an earlier window to
//! learn its weights on; the evidence stops short of a warm-up window at which a model that
//! forecast the latest earlier window has no forecast, so every model is compared on the same,
//! fewer windows rather than the ensemble being left out (with one more warm-up window,
//! [`super::backtest::BacktestOptions::ensemble_from_first`], it competes from the first scored
//! window on). A window with no earlier window is not published.
//!
//! Each series' quantiles are its champion's, scaled by the champion's calibration in the
//! registry at that cutoff (`[champion] calibrate`; none for a champion that calibrates its own
//! quantiles): factors from the champion's rows of its segment on the same evidence, so the
//! intervals a window publishes are calibrated on earlier windows only, as the nightly's are.
//!
//! At debug level (`-vv`) the replay logs each cutoff's evidence (every candidate's score, overall
//! and per demand class) and each segment's decision, so a published choice can be traced.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::backtest::{BacktestReport, ModelBacktest, ScoredRow, summarise};
use super::champion::{self, ALL, ChampionSettings, Evidence, Registry, SegmentBy};
use crate::models::ensemble::calibrate;

/// The model name the published forecast's rows carry.
pub const PUBLISHED: &str = "published";

/// The published forecast's scores and, per cutoff, the champion of each segment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Published {
    /// Its scores, as a model named [`PUBLISHED`].
    pub scores: ModelBacktest,
    /// Per scored cutoff, segment → the model whose forecast it published.
    pub champions: BTreeMap<NaiveDate, BTreeMap<String, String>>,
    /// Per scored cutoff, segment → the (level, factor) its champion's quantiles were scaled by
    /// (segments published with their champion's own quantiles left out).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub calibration: BTreeMap<NaiveDate, BTreeMap<String, Vec<(f64, f64)>>>,
}

/// The published forecast over `cutoffs` from every model's rows (`rows`, in the configured
/// order, warm-up windows included; `self_calibrated`: the models among them that calibrate their
/// own quantiles); `None` with fewer than two models (one model is its own published forecast)
/// or no window with an earlier one.
pub fn replay(
    rows: &[(&str, &[ScoredRow])],
    cutoffs: &[NaiveDate],
    settings: &ChampionSettings,
    levels: &[f64],
    season: usize,
    self_calibrated: &[String],
) -> Option<Published> {
    if rows.len() < 2 {
        return None;
    }
    // Per model, its rows by cutoff.
    let by_cutoff: Vec<(&str, BTreeMap<NaiveDate, Vec<&ScoredRow>>)> = rows
        .iter()
        .map(|&(name, rs)| {
            let mut m: BTreeMap<NaiveDate, Vec<&ScoredRow>> = BTreeMap::new();
            for r in rs {
                m.entry(r.cutoff).or_default().push(r);
            }
            (name, m)
        })
        .collect();
    let every: BTreeSet<NaiveDate> = by_cutoff.iter().flat_map(|(_, m)| m.keys().copied()).collect();
    let mut registry = Registry::default();
    let (mut out, mut champions, mut calibration) = (Vec::new(), BTreeMap::new(), BTreeMap::new());
    let scored: BTreeSet<NaiveDate> = cutoffs.iter().copied().collect();
    for &cutoff in cutoffs {
        let earlier: Vec<NaiveDate> = every.range(..cutoff).rev().take(settings.windows.max(1)).copied().collect();
        let Some(&latest) = earlier.first() else { continue };
        // A warm-up window some model of the latest window did not forecast ends the evidence.
        let evidence: Vec<NaiveDate> = earlier
            .into_iter()
            .take_while(|c| {
                scored.contains(c) || by_cutoff.iter().all(|(_, m)| !m.contains_key(&latest) || m.contains_key(c))
            })
            .collect();
        let candidates: Vec<usize> =
            (0..by_cutoff.len()).filter(|&m| evidence.iter().all(|c| by_cutoff[m].1.contains_key(c))).collect();
        // Only the periods known at the cutoff count (windows closer than a horizon overlap it).
        let models = candidates
            .iter()
            .map(|&m| {
                let (name, windows) = &by_cutoff[m];
                let known = evidence.iter().flat_map(|c| &windows[c]).filter(|r| r.target_date <= cutoff);
                summarise(name, known.map(|r| (*r).clone()).collect(), levels)
            })
            .collect();
        let report = BacktestReport {
            cutoffs: evidence,
            horizon: 0,
            levels: levels.to_vec(),
            season,
            models,
            published: None,
            self_calibrated: self_calibrated.to_vec(),
        };
        // (The scores are only formatted when someone reads them.)
        for m in report.models.iter().filter(|_| tracing::enabled!(tracing::Level::DEBUG)) {
            let per_class: Vec<String> =
                m.per_class.iter().filter_map(|(c, s)| settings.metric.of(s).map(|v| format!("{c}={v:.5}"))).collect();
            tracing::debug!(
                %cutoff, model = %m.model, overall = ?settings.metric.of(&m.overall), per_class = %per_class.join(","),
                "published: evidence"
            );
        }
        for d in registry.decide(&report, settings, &format!("backtest window {cutoff}"), Evidence::Backtest) {
            tracing::debug!(
                %cutoff, segment = %d.segment, champion = ?d.champion, champion_score = ?d.champion_score,
                challenger = %d.challenger, challenger_score = d.challenger_score, promoted = d.promoted,
                evidence = ?report.cutoffs, "published: champion decision"
            );
        }
        let Some((_, first)) = by_cutoff.iter().find(|(_, m)| m.contains_key(&cutoff)) else { continue };
        // Each series takes its segment champion's rows (the stand-in's without one).
        let forecast: Vec<usize> = (0..by_cutoff.len()).filter(|&m| by_cutoff[m].1.contains_key(&cutoff)).collect();
        let stand_in = champion::stand_in(forecast.iter().map(|&m| by_cutoff[m].0)).map_or(0, |i| forecast[i]);
        let mut series: HashMap<&str, HashMap<(&str, &str), Vec<&ScoredRow>>> = HashMap::new();
        let mut chosen: BTreeMap<String, String> = BTreeMap::new();
        let mut scaled: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
        let mut done: BTreeSet<(&str, &str)> = BTreeSet::new();
        for r in &first[&cutoff] {
            let key = (r.item_id.as_str(), r.location_id.as_str());
            if !done.insert(key) {
                continue;
            }
            let segment = match settings.segment_by {
                SegmentBy::None => ALL.to_string(),
                SegmentBy::DemandClass => r.class.as_str().to_string(),
            };
            let model = registry
                .champion_of(&segment)
                .and_then(|c| by_cutoff.iter().position(|(n, m)| *n == c && m.contains_key(&cutoff)))
                .unwrap_or(stand_in);
            let (name, windows) = &by_cutoff[model];
            // The champion's calibration, unless another model stands in for it.
            let factors =
                registry.champion_in(&segment).filter(|c| c.model == *name).map_or(&[][..], |c| &c.calibration);
            if !factors.is_empty() {
                scaled.insert(segment.clone(), factors.to_vec());
            }
            chosen.insert(segment, name.to_string());
            let of_model = series.entry(name).or_insert_with(|| {
                let mut s: HashMap<(&str, &str), Vec<&ScoredRow>> = HashMap::new();
                for r in &windows[&cutoff] {
                    s.entry((r.item_id.as_str(), r.location_id.as_str())).or_default().push(r);
                }
                s
            });
            out.extend(of_model.get(&key).into_iter().flatten().map(|r| {
                let mut r = (*r).clone();
                calibrate::rescale(levels, factors, &mut r.quantiles);
                r
            }));
        }
        champions.insert(cutoff, chosen);
        if !scaled.is_empty() {
            calibration.insert(cutoff, scaled);
        }
    }
    (!champions.is_empty()).then(|| Published { scores: summarise(PUBLISHED, out, levels), champions, calibration })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::baseline::classify::DemandClass;

    fn d(day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 1, day).unwrap()
    }

    /// One series' rows at `cutoff`, two steps, forecasting `actual + error`.
    fn rows(item: &str, class: DemandClass, cutoff: NaiveDate, error: f64) -> Vec<ScoredRow> {
        (1..=2)
            .map(|step| ScoredRow {
                item_id: item.into(),
                location_id: "s".into(),
                cutoff,
                target_date: cutoff + chrono::Duration::days(step as i64),
                step,
                y: 10.0,
                y_hat: 10.0 + error,
                quantiles: vec![10.0 + error],
                class,
                scale: Some(1.0),
            })
            .collect()
    }

    fn borrowed(all: &[(String, Vec<ScoredRow>)]) -> Vec<(&str, &[ScoredRow])> {
        all.iter().map(|(n, r)| (n.as_str(), &r[..])).collect()
    }

    #[test]
    fn each_window_publishes_the_champion_crowned_on_the_windows_before_it() {
        let (smooth, lumpy) = (DemandClass::Smooth, DemandClass::Lumpy);
        // `good` wins on smooth series until the third window, where it fails; `snaive` wins on
        // lumpy series. A window's own errors never decide which model it publishes.
        let model = |errors: [f64; 4], lumpy_errors: [f64; 4]| {
            [d(2), d(4), d(6), d(8)]
                .iter()
                .zip(errors.iter().zip(lumpy_errors))
                .flat_map(|(c, (e, le))| [rows("a", smooth, *c, *e), rows("b", lumpy, *c, le)].concat())
                .collect::<Vec<_>>()
        };
        let all = vec![
            ("seasonal_naive".to_string(), model([2.0, 2.0, 2.0, 2.0], [1.0, 1.0, 1.0, 1.0])),
            ("good".to_string(), model([1.0, 1.0, 9.0, 1.0], [3.0, 3.0, 3.0, 3.0])),
        ];
        let settings = ChampionSettings { windows: 1, ..Default::default() };
        // d(2) is the warm-up window: published from d(4) on.
        let p = replay(&borrowed(&all), &[d(4), d(6), d(8)], &settings, &[0.5], 1, &[]).unwrap();
        assert_eq!(p.champions.keys().copied().collect::<Vec<_>>(), vec![d(4), d(6), d(8)]);
        assert_eq!(p.champions[&d(4)]["smooth"], "good");
        assert_eq!(p.champions[&d(4)]["lumpy"], "seasonal_naive");
        // At d(6) `good` is still the champion (its failure at d(6) is not known yet) …
        assert_eq!(p.champions[&d(6)]["smooth"], "good");
        // … and at d(8) it has lost to seasonal naive on d(6): it goes.
        assert_eq!(p.champions[&d(8)]["smooth"], "seasonal_naive");
        let errors: Vec<f64> = p.scores.rows.iter().map(|r| r.y_hat - r.y).collect();
        assert_eq!(errors, vec![1.0, 1.0, 1.0, 1.0, 9.0, 9.0, 1.0, 1.0, 2.0, 2.0, 1.0, 1.0]);
        assert_eq!(p.scores.model, PUBLISHED);
        assert_eq!(p.scores.per_window.len(), 3);
        // One model publishes itself: no replay.
        assert!(replay(&borrowed(&all[..1]), &[d(4)], &settings, &[0.5], 1, &[]).is_none());
    }

    /// 30 series' rows at `cutoff`, five steps each: a forecast of `100 + bias` with its 0.1 and
    /// 0.9 quantiles `half` either side, the actuals spread evenly over 100 ± `spread`.
    fn spread(cutoff: NaiveDate, bias: f64, half: f64, spread: f64) -> Vec<ScoredRow> {
        (0..150)
            .map(|i| ScoredRow {
                item_id: format!("i{}", i % 30),
                location_id: "s".into(),
                cutoff,
                target_date: cutoff + chrono::Duration::days(1 + (i / 30) as i64),
                step: 1 + i / 30,
                y: 100.0 + spread * ((i * 8 % 21) as f64 - 10.0) / 10.0,
                y_hat: 100.0 + bias,
                quantiles: vec![100.0 + bias - half, 100.0 + bias, 100.0 + bias + half],
                class: DemandClass::Smooth,
                scale: Some(5.0),
            })
            .collect()
    }

    #[test]
    fn each_window_s_intervals_are_calibrated_on_the_champion_s_rows_before_it_only() {
        let levels = [0.1, 0.5, 0.9];
        // `good` wins, with intervals of ±5 where the actuals spread ±10 (d(7): ±`last`); each
        // window's five days have passed by the next cutoff.
        let all = |last: f64| {
            let at = |bias: f64| {
                [spread(d(1), bias, 5.0, 10.0), spread(d(7), bias, 5.0, last), spread(d(13), bias, 5.0, 10.0)].concat()
            };
            vec![("seasonal_naive".to_string(), at(6.0)), ("good".to_string(), at(0.0))]
        };
        let settings =
            |calibrate| ChampionSettings { windows: 1, segment_by: SegmentBy::None, calibrate, ..Default::default() };
        let p = replay(&borrowed(&all(10.0)), &[d(7), d(13)], &settings(true), &levels, 1, &[]).unwrap();
        assert!(p.champions.values().all(|c| c["all"] == "good"));
        let share = |rows: &[ScoredRow]| {
            rows.iter().filter(|r| r.quantiles[0] <= r.y && r.y <= r.quantiles[2]).count() as f64 / rows.len() as f64
        };
        let covered = share(&p.scores.rows);
        assert!((0.78..=0.86).contains(&covered), "calibrated coverage {covered}: {:?}", p.calibration);
        let own = replay(&borrowed(&all(10.0)), &[d(7), d(13)], &settings(false), &levels, 1, &[]).unwrap();
        assert!(share(&own.scores.rows) < 0.6, "the champion's own intervals cover {}", share(&own.scores.rows));
        assert!(own.calibration.is_empty());
        // A champion that calibrates its own quantiles publishes them, whatever its evidence.
        let itself = replay(&borrowed(&all(10.0)), &[d(7), d(13)], &settings(true), &levels, 1, &["good".to_string()]);
        let itself = itself.unwrap();
        assert!(itself.calibration.is_empty(), "{:?}", itself.calibration);
        assert_eq!(share(&itself.scores.rows), share(&own.scores.rows));
        // d(7)'s factors come from d(1)'s rows alone: a d(7) whose actuals spread three times as
        // far leaves them as they were, and moves d(13)'s, which learn from d(7).
        let wider = replay(&borrowed(&all(30.0)), &[d(7), d(13)], &settings(true), &levels, 1, &[]).unwrap();
        assert_eq!(wider.calibration[&d(7)], p.calibration[&d(7)]);
        let hi = |p: &Published, c: u32| calibrate::factor_at(&p.calibration[&d(c)]["all"], 0.9);
        assert!(hi(&wider, 13) > 2.0 * hi(&p, 13), "{:?} against {:?}", wider.calibration, p.calibration);
        // The point is the champion's own.
        assert!(p.scores.rows.iter().all(|r| r.y_hat == 100.0));
    }

    #[test]
    fn a_warm_up_window_the_ensemble_did_not_forecast_is_left_out_of_the_evidence() {
        let smooth = DemandClass::Smooth;
        let all = vec![
            ("seasonal_naive".to_string(), [rows("a", smooth, d(2), 2.0), rows("a", smooth, d(4), 2.0)].concat()),
            // The ensemble has no forecast at the warm-up window d(2).
            ("ensemble".to_string(), rows("a", smooth, d(4), 0.5)),
        ];
        let settings = ChampionSettings { windows: 2, segment_by: SegmentBy::None, ..Default::default() };
        let p = replay(&borrowed(&all), &[d(4), d(6)], &settings, &[0.5], 1, &[]).unwrap();
        // d(2) is the only window before d(4): the ensemble has nothing to be compared on.
        assert_eq!(p.champions[&d(4)]["all"], "seasonal_naive");
        // Not yet published at d(6): nothing was forecast at d(6) in this fixture.
        assert!(!p.champions.contains_key(&d(6)));
        // Both models forecast one more window, with the errors they had before.
        let later: Vec<(String, Vec<ScoredRow>)> = all
            .iter()
            .zip([2.0, 0.5])
            .map(|((name, r), error)| (name.clone(), [r.clone(), rows("a", smooth, d(6), error)].concat()))
            .collect();
        let p = replay(&borrowed(&later), &[d(4), d(6)], &settings, &[0.5], 1, &[]).unwrap();
        // At d(6) both are compared on d(4) alone, not on d(2) where only seasonal naive
        // forecast: the ensemble wins by more than the margin and takes over.
        assert_eq!(p.champions[&d(6)]["all"], "ensemble");
        let errors: Vec<f64> = p.scores.rows.iter().map(|r| r.y_hat - r.y).collect();
        assert_eq!(errors, vec![2.0, 2.0, 0.5, 0.5]);
    }

    #[test]
    fn without_evidence_the_learned_ensemble_stands_in() {
        let smooth = DemandClass::Smooth;
        // At the warm-up window d(2) the series is too short to have a MASE scale: no model has
        // a score there, so d(4) has no champion. From d(4) on it has one.
        let at = |error: f64| {
            let mut r = rows("a", smooth, d(2), error);
            r.iter_mut().for_each(|r| r.scale = None);
            [r, rows("a", smooth, d(4), error), rows("a", smooth, d(6), error)].concat()
        };
        let all = vec![
            ("seasonal_naive".to_string(), at(2.0)),
            ("gbt".to_string(), at(1.0)),
            ("ensemble".to_string(), at(1.5)),
        ];
        let settings = ChampionSettings { windows: 1, segment_by: SegmentBy::None, ..Default::default() };
        let p = replay(&borrowed(&all), &[d(4), d(6)], &settings, &[0.5], 1, &[]).unwrap();
        assert_eq!(p.champions[&d(4)]["all"], "ensemble", "not the first model, seasonal naive");
        // Scored on d(4), `gbt` wins and is crowned.
        assert_eq!(p.champions[&d(6)]["all"], "gbt");
        let errors: Vec<f64> = p.scores.rows.iter().map(|r| r.y_hat - r.y).collect();
        assert_eq!(errors, vec![1.5, 1.5, 1.0, 1.0]);
        // Without an ensemble, the median of the models stands in; without either, the first.
        assert_eq!(champion::stand_in(["seasonal_naive", "median", "gbt"]), Some(1));
        assert_eq!(champion::stand_in(["seasonal_naive", "median", "ensemble"]), Some(2));
        assert_eq!(champion::stand_in(["seasonal_naive", "gbt"]), Some(0));
        assert_eq!(champion::stand_in([]), None);
    }

    #[test]
    fn a_model_that_failed_a_scored_window_is_no_candidate() {
        let smooth = DemandClass::Smooth;
        let at = |days: &[u32], error: f64| days.iter().flat_map(|&day| rows("a", smooth, d(day), error)).collect();
        let all = vec![
            ("seasonal_naive".to_string(), at(&[2, 4, 6, 8, 10], 2.0)),
            // Far better, but it failed the scored window d(6).
            ("good".to_string(), at(&[2, 4, 8, 10], 0.5)),
        ];
        let settings = ChampionSettings { windows: 2, segment_by: SegmentBy::None, ..Default::default() };
        let p = replay(&borrowed(&all), &[d(4), d(6), d(8), d(10)], &settings, &[0.5], 1, &[]).unwrap();
        // Crowned at d(4) on the warm-up window; at d(6) it has no forecast to publish.
        assert_eq!(p.champions[&d(4)]["all"], "good");
        assert_eq!(p.champions[&d(6)]["all"], "seasonal_naive");
        // At d(8) and d(10) it misses d(6), a scored window before them: no candidate, though it
        // forecast d(8) and d(10) and won on d(8).
        assert_eq!(p.champions[&d(8)]["all"], "seasonal_naive");
        assert_eq!(p.champions[&d(10)]["all"], "seasonal_naive");
    }
}
