//! Champion and challengers: which model's forecast is published, per segment.
//!
//! The registry (`models/champions.json` in the lake) names the champion of each segment (every
//! series, or each demand class). After a backtest, the best challenger of a segment replaces
//! its champion only when it beats it on the primary metric by the configured relative margin
//! over the same windows; otherwise the champion stays and its forecast is published. A champion
//! that loses to seasonal naive on its segment is replaced by the best model whatever the margin,
//! so no segment keeps a model a naive forecast beats. Every decision is kept in the registry's
//! history.
//!
//! Each champion also carries the calibration of its published intervals (`[champion]
//! calibrate`): per pair of quantile levels mirrored around the median (0.1 and 0.9), one factor
//! that scales their spread from the median so that, on the champion's own forecasts in the
//! evidence for its segment, the pair's interval holds its share of the actuals (split conformal;
//! see [`crate::models::ensemble::calibrate::paired_factors_of`]). One factor for both sides: a
//! bias one way on the evidence windows and the other way later moves neither side alone. A
//! model's own quantiles can miss on a segment in a way its own fit cannot see; the evidence the
//! champion was chosen on does. A champion that calibrates its own quantiles at each fit (`gbt`,
//! the learned ensemble, the models `[model.calibration]` lists) keeps them: it calibrates on the
//! periods just before its cutoff, those of the newest evidence window.
//!
//! The evidence is either a backtest (forecasts re-created at earlier cutoffs) or the tracked
//! accuracy of the forecasts the nightly actually made ([`super::tracking`]): with
//! [`Evidence::Tracked`], a run decides on tracked accuracy once every configured model has been
//! scored on as many forecasts as the backtest would score, on the same rows
//! ([`super::tracking::common_ground`]), and backtests only until then (first runs, a new model).
//!
//! The registry only moves forward: evidence at an earlier cutoff than the one the stored
//! registry comes from (a backfill of an old date) does not replace it.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::backtest::{BacktestReport, ScoredRow, Scores};
use crate::error::Result;
use crate::lake::{Lake, layout, pointer};
use crate::models::ensemble::calibrate;

/// The metric champions are chosen on (lower is better).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Mean absolute scaled error.
    #[default]
    Mase,
    /// Weighted absolute percentage error.
    Wape,
    /// Root mean squared error.
    Rmse,
    /// Mean absolute error.
    Mae,
    /// Symmetric MAPE.
    Smape,
    /// Mean pinball loss over the quantile levels.
    Pinball,
}

impl Metric {
    /// The metric's value in a set of scores.
    pub fn of(self, s: &Scores) -> Option<f64> {
        match self {
            Metric::Mase => s.mase,
            Metric::Wape => s.wape,
            Metric::Rmse => s.rmse,
            Metric::Mae => s.mae,
            Metric::Smape => s.smape,
            Metric::Pinball => {
                (!s.pinball.is_empty()).then(|| s.pinball.values().sum::<f64>() / s.pinball.len() as f64)
            }
        }
    }
}

/// How series are grouped into segments.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentBy {
    /// One champion for every series.
    None,
    /// One champion per demand class (smooth, erratic, intermittent, lumpy, new).
    #[default]
    DemandClass,
}

/// What champion decisions are made on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// The tracked accuracy of the forecasts made on recent run dates, when every configured
    /// model has enough of it; a backtest otherwise.
    #[default]
    Tracked,
    /// A rolling-origin backtest.
    Backtest,
}

impl Evidence {
    /// The name written in settings and records.
    pub fn as_str(self) -> &'static str {
        match self {
            Evidence::Tracked => "tracked",
            Evidence::Backtest => "backtest",
        }
    }
}

/// The `[champion]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ChampionSettings {
    /// Primary metric.
    #[serde(default)]
    pub metric: Metric,
    /// Relative improvement a challenger needs (0.02: 2% better).
    #[serde(default = "default_margin")]
    pub margin: f64,
    /// Segments.
    #[serde(default)]
    pub segment_by: SegmentBy,
    /// Backtest windows of the nightly job (0: no backtest; publish the [`stand_in`]).
    #[serde(default = "default_windows")]
    pub windows: usize,
    /// How often a job's backtest step runs: when the last backtest (same models, horizon and
    /// windows) is younger than this at the run's cutoff, the step keeps its champions and the
    /// learned ensemble keeps its weights. `0s`: every run.
    #[serde(default = "default_backtest_every", with = "crate::period::duration")]
    pub backtest_every: std::time::Duration,
    /// What a backtest step decides on: `tracked` (tracked accuracy once there is enough of it
    /// for every model, a backtest until then) or `backtest`.
    #[serde(default)]
    pub decide_on: Evidence,
    /// Whether each segment's published quantiles are calibrated on its champion's forecasts in
    /// the evidence (`false`: every champion's own quantiles).
    #[serde(default = "default_calibrate")]
    pub calibrate: bool,
}

fn default_calibrate() -> bool {
    true
}

fn default_backtest_every() -> std::time::Duration {
    std::time::Duration::from_secs(7 * 86_400)
}

fn default_margin() -> f64 {
    0.02
}

fn default_windows() -> usize {
    2
}

impl Default for ChampionSettings {
    fn default() -> Self {
        Self {
            metric: Metric::default(),
            margin: default_margin(),
            segment_by: SegmentBy::default(),
            windows: default_windows(),
            backtest_every: default_backtest_every(),
            decide_on: Evidence::default(),
            calibrate: default_calibrate(),
        }
    }
}

/// The champion of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Champion {
    /// Model name.
    pub model: String,
    /// Its metric in the backtest that crowned it or kept it.
    pub score: f64,
    /// The run that crowned it.
    pub since: String,
    /// (level, factor) per quantile level other than the median (one factor for a level and its
    /// mirror), from its forecasts in the last evidence for its segment: the published quantile
    /// is `m + factor × (q − m)`, `m` its median. Empty: its own quantiles (calibration off, too
    /// few rows, no median level).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub calibration: Vec<(f64, f64)>,
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// The run that made it.
    pub run_id: String,
    /// Segment.
    pub segment: String,
    /// The champion before.
    pub champion: Option<String>,
    /// Its score in this backtest.
    pub champion_score: Option<f64>,
    /// The best challenger.
    pub challenger: String,
    /// Its score.
    pub challenger_score: f64,
    /// Whether the challenger became champion.
    pub promoted: bool,
    /// Forecast value added by the winner over seasonal naive, % of seasonal naive's metric.
    pub value_added_pct: Option<f64>,
    /// What the scores come from.
    #[serde(default = "backtest_evidence")]
    pub evidence: Evidence,
}

fn backtest_evidence() -> Evidence {
    Evidence::Backtest
}

/// The champion registry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Registry {
    /// Metric the champions were chosen on.
    pub metric: Metric,
    /// Champion per segment.
    pub segments: BTreeMap<String, Champion>,
    /// Every decision, oldest first.
    pub history: Vec<Decision>,
    /// The last backtest that decided (or was kept for its freshness).
    #[serde(default)]
    pub last_backtest: Option<BacktestStamp>,
    /// The last decision on tracked accuracy.
    #[serde(default)]
    pub last_tracked: Option<TrackedStamp>,
}

/// Which tracked accuracy decided: when, and over how much.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackedStamp {
    /// The run that decided.
    pub run_id: String,
    /// Its cutoff.
    pub cutoff: NaiveDate,
    /// Forecast cutoffs (earlier run dates) the scores come from.
    pub origins: usize,
    /// Rows scored for every model.
    pub rows: usize,
}

/// Which backtest decided: when, of which models, over what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestStamp {
    /// The run that ran it.
    pub run_id: String,
    /// Its cutoff (the last period of data it saw).
    pub cutoff: NaiveDate,
    /// Models backtested.
    pub models: Vec<String>,
    /// Periods forecast at each window.
    pub horizon: usize,
    /// Windows scored.
    pub windows: usize,
}

impl BacktestStamp {
    /// Why a backtest at `cutoff` of `models` need not run again (`None`: it must): the stamp's is
    /// of the same models and horizon, over at least as many windows, at a cutoff no later than
    /// `cutoff` and less than `every` before it.
    pub fn still_fresh(
        &self,
        cutoff: NaiveDate,
        models: &[String],
        horizon: usize,
        windows: usize,
        every: std::time::Duration,
    ) -> Option<String> {
        let age = (cutoff - self.cutoff).num_days();
        let same = self.models == models && self.horizon == horizon && self.windows >= windows;
        (same && age >= 0 && (age as u64) * 86_400 < every.as_secs()).then(|| {
            format!(
                "backtest kept: run {} at cutoff {} ({age} day(s) before this cutoff; backtest-every = {})",
                self.run_id,
                self.cutoff,
                humantime::format_duration(every)
            )
        })
    }
}

impl Registry {
    /// Reads the registry, empty when there is none yet.
    pub async fn read(lake: &Lake) -> Result<Self> {
        match lake.get_opt(&layout::champions()).await? {
            Some(b) => Ok(serde_json::from_slice(&b)?),
            None => Ok(Self::default()),
        }
    }

    /// The cutoff of the newest evidence the champions come from.
    pub fn decided_at(&self) -> Option<NaiveDate> {
        let backtest = self.last_backtest.as_ref().map(|b| b.cutoff);
        backtest.max(self.last_tracked.as_ref().map(|t| t.cutoff))
    }

    /// Writes the registry unless the stored one comes from evidence at a later cutoff; `true`
    /// when it was written.
    pub async fn write(&self, lake: &Lake) -> Result<bool> {
        let rank = self.decided_at();
        let rank_of =
            |b: bytes::Bytes| async move { Ok(serde_json::from_slice::<Registry>(&b).ok().map(|r| r.decided_at())) };
        pointer::advance(lake, &layout::champions(), serde_json::to_vec_pretty(self)?.into(), &rank, rank_of).await
    }

    /// The champion model of a segment, falling back to the whole-lake champion.
    pub fn champion_of(&self, segment: &str) -> Option<&str> {
        self.champion_in(segment).map(|c| c.model.as_str())
    }

    /// The champion of a segment, falling back to the whole-lake champion.
    pub fn champion_in(&self, segment: &str) -> Option<&Champion> {
        self.segments.get(segment).or_else(|| self.segments.get(ALL))
    }

    /// Applies a backtest or tracked accuracy (`evidence`): per segment, promote the best
    /// challenger when it wins by the margin. Models that could not forecast one of the
    /// backtest's windows ([`super::backtest::ModelBacktest::failed`]) are not candidates.
    pub fn decide(
        &mut self,
        report: &BacktestReport,
        settings: &ChampionSettings,
        run_id: &str,
        evidence: Evidence,
    ) -> Vec<Decision> {
        if self.metric != settings.metric {
            // Scores on another metric are not comparable: start over.
            self.segments.clear();
            self.metric = settings.metric;
        }
        let mut segments: BTreeMap<String, Vec<(&str, &Scores)>> = BTreeMap::new();
        // A model that could not forecast some window is scored on fewer: no candidate.
        for m in report.models.iter().filter(|m| m.failed.is_empty()) {
            match settings.segment_by {
                SegmentBy::None => segments.entry(ALL.to_string()).or_default().push((&m.model, &m.overall)),
                SegmentBy::DemandClass => {
                    segments.entry(ALL.to_string()).or_default().push((&m.model, &m.overall));
                    for (class, s) in &m.per_class {
                        segments.entry(class.clone()).or_default().push((&m.model, s));
                    }
                }
            }
        }
        let mut decisions = Vec::new();
        for (segment, scored) in segments {
            let values: Vec<(&str, f64)> =
                scored.iter().filter_map(|(m, s)| settings.metric.of(s).map(|v| (*m, v))).collect();
            let Some(&(best, best_score)) = values.iter().min_by(|a, b| a.1.total_cmp(&b.1)) else { continue };
            let current = self.segments.get(&segment).cloned();
            let current_score =
                current.as_ref().and_then(|c| values.iter().find(|(m, _)| *m == c.model).map(|(_, v)| *v));
            let snaive = values.iter().find(|(m, _)| *m == "seasonal_naive").map(|(_, v)| *v);
            // A champion that loses to seasonal naive on its segment goes, whatever the margin.
            let promoted = match (&current, current_score) {
                (None, _) | (Some(_), None) => true,
                (Some(c), Some(cs)) => {
                    c.model != best && (best_score < cs * (1.0 - settings.margin) || snaive.is_some_and(|sn| cs > sn))
                }
            };
            let winner_score = if promoted { best_score } else { current_score.unwrap_or(best_score) };
            let value_added_pct = snaive.filter(|s| *s > 0.0).map(|s| 100.0 * (1.0 - winner_score / s));
            if promoted {
                let champion = Champion {
                    model: best.to_string(),
                    score: best_score,
                    since: run_id.to_string(),
                    calibration: Vec::new(),
                };
                self.segments.insert(segment.clone(), champion);
            } else if let Some(c) = self.segments.get_mut(&segment) {
                c.score = winner_score;
            }
            if let Some(c) = self.segments.get_mut(&segment) {
                c.calibration = match settings.calibrate {
                    true => calibration(report, &c.model, &segment),
                    false => Vec::new(),
                };
            }
            decisions.push(Decision {
                run_id: run_id.to_string(),
                segment,
                champion: current.map(|c| c.model),
                champion_score: current_score,
                challenger: best.to_string(),
                challenger_score: best_score,
                promoted,
                value_added_pct,
                evidence,
            });
        }
        self.history.extend(decisions.iter().cloned());
        decisions
    }
}

/// The segment holding every series.
pub const ALL: &str = "all";

/// Which of the models forecast (`names`, in settings order) a segment publishes while it has no
/// champion (no evidence yet: the first runs, a history too short to score any model on): the
/// learned ensemble, else the median of the models, else the first. With nothing to say which
/// model is best, a combination of them is the safer forecast. `None` when nothing was forecast.
pub fn stand_in<'a>(names: impl IntoIterator<Item = &'a str>) -> Option<usize> {
    let names: Vec<&str> = names.into_iter().collect();
    ["ensemble", "median"]
        .iter()
        .find_map(|combined| names.iter().position(|n| n == combined))
        .or((!names.is_empty()).then_some(0))
}

/// Calibration factors as a report shows them: `q10 ×0.91, q90 ×1.07`; `own` when there are none.
pub fn calibration_text(calibration: &[(f64, f64)]) -> String {
    if calibration.is_empty() {
        return "own".to_string();
    }
    let v: Vec<String> =
        calibration.iter().map(|(l, c)| format!("{} ×{c:.2}", crate::publish::quantile_column(*l))).collect();
    v.join(", ")
}

/// The calibration factors of `model`'s quantiles on its rows of `segment` in `report` (every
/// row for [`ALL`], else the rows of that demand class); none for a model that calibrates its
/// own quantiles ([`BacktestReport::self_calibrated`]).
///
/// Such a model re-scales its quantiles at each fit on forecasts of the periods just before its
/// cutoff: the periods of the newest evidence window, when the windows are a horizon apart. What
/// its evidence shows beyond that is how its calibration carried from one window to the next, a
/// drift that changes from window to window; factors from it correct the last windows' drift and
/// add their error to a forecast that is calibrated already. On a lake with 15 months of weekly
/// history, the learned ensemble's intervals, too wide on the windows before (92% of the
/// actuals inside on the latest), were narrowed ×0.51 and held 51% of the next window's actuals,
/// where its own held 79%.
fn calibration(report: &BacktestReport, model: &str, segment: &str) -> Vec<(f64, f64)> {
    if report.self_calibrated.iter().any(|s| s == model) {
        return Vec::new();
    }
    let Some(m) = report.models.iter().find(|m| m.model == model) else { return Vec::new() };
    let rows: Vec<&ScoredRow> = m
        .rows
        .iter()
        .filter(|r| r.quantiles.len() == report.levels.len() && (segment == ALL || r.class.as_str() == segment))
        .collect();
    let y: Vec<f64> = rows.iter().map(|r| r.y).collect();
    calibrate::paired_factors_of(&report.levels, &y, |r, k| rows[r].quantiles[k])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::backtest::ModelBacktest;
    use crate::models::baseline::classify::DemandClass;

    fn report(scores: &[(&str, f64)]) -> BacktestReport {
        BacktestReport {
            cutoffs: vec![],
            horizon: 7,
            levels: vec![0.5],
            season: 7,
            models: scores
                .iter()
                .map(|(m, v)| ModelBacktest {
                    model: m.to_string(),
                    overall: Scores { mase: Some(*v), ..Default::default() },
                    per_window: Default::default(),
                    per_step: Default::default(),
                    per_class: Default::default(),
                    wrmsse: Default::default(),
                    seconds: 0.0,
                    failed: Default::default(),
                    rows: vec![],
                })
                .collect(),
            published: None,
            self_calibrated: vec![],
        }
    }

    /// `n` rows of class `class` whose actuals spread evenly over 100 ± 10 around a forecast of
    /// `100 + bias`, with 0.1 and 0.9 quantiles `half` below and above it.
    fn spread_rows(n: usize, class: DemandClass, bias: f64, half: f64) -> Vec<ScoredRow> {
        let start = NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        (0..n)
            .map(|i| ScoredRow {
                item_id: format!("i{}", i % 10),
                location_id: "s".into(),
                cutoff: start,
                target_date: start + chrono::Duration::days(1 + (i / 10) as i64),
                step: 1 + i / 10,
                y: 100.0 + (i % 21) as f64 - 10.0,
                y_hat: 100.0 + bias,
                quantiles: vec![100.0 + bias - half, 100.0 + bias, 100.0 + bias + half],
                class,
                scale: Some(5.0),
            })
            .collect()
    }

    /// The share of `rows` inside their 0.1–0.9 interval once scaled by `calibration`.
    fn coverage(rows: &[ScoredRow], calibration: &[(f64, f64)]) -> f64 {
        let inside = rows
            .iter()
            .filter(|r| {
                let mut q = r.quantiles.clone();
                calibrate::rescale(&[0.1, 0.5, 0.9], calibration, &mut q);
                q[0] <= r.y && r.y <= q[2]
            })
            .count();
        inside as f64 / rows.len() as f64
    }

    #[test]
    fn each_champion_keeps_the_factors_that_make_its_intervals_cover_eighty_percent_on_its_segment() {
        use crate::evaluate::backtest::summarise;
        let levels = [0.1, 0.5, 0.9];
        // ets wins both classes; its intervals are too narrow on smooth series (±5 where the
        // actuals spread ±10) and too wide on erratic ones (±30).
        let ets = [spread_rows(420, DemandClass::Smooth, 0.0, 5.0), spread_rows(420, DemandClass::Erratic, 0.0, 30.0)];
        let naive = [spread_rows(420, DemandClass::Smooth, 8.0, 5.0), spread_rows(420, DemandClass::Erratic, 8.0, 5.0)];
        let report = BacktestReport {
            cutoffs: vec![],
            horizon: 42,
            levels: levels.to_vec(),
            season: 7,
            models: vec![summarise("seasonal_naive", naive.concat(), &levels), summarise("ets", ets.concat(), &levels)],
            published: None,
            self_calibrated: vec![],
        };
        let mut r = Registry::default();
        r.decide(&report, &ChampionSettings::default(), "run1", Evidence::Backtest);
        for (class, rows) in [("smooth", &ets[0]), ("erratic", &ets[1])] {
            let c = &r.segments[class];
            assert_eq!(c.model, "ets");
            let (own, calibrated) = (coverage(rows, &[]), coverage(rows, &c.calibration));
            assert!((0.78..=0.86).contains(&calibrated), "{class}: {own} → {calibrated} with {:?}", c.calibration);
        }
        assert!(calibrate::factor_at(&r.segments["smooth"].calibration, 0.9) > 1.0, "too narrow: widened");
        assert!(calibrate::factor_at(&r.segments["erratic"].calibration, 0.9) < 1.0, "too wide: narrowed");
        // A kept champion's factors follow the newest evidence; off, there are none.
        let off = ChampionSettings { calibrate: false, ..Default::default() };
        r.decide(&report, &off, "run2", Evidence::Backtest);
        assert!(r.segments.values().all(|c| c.model == "ets" && c.calibration.is_empty()), "{:?}", r.segments);
        // Fewer than 100 rows in a segment: its champion's own quantiles.
        let few = BacktestReport {
            models: vec![
                summarise("seasonal_naive", naive[0][..60].to_vec(), &levels),
                summarise("ets", ets[0][..60].to_vec(), &levels),
            ],
            ..report
        };
        let mut r = Registry::default();
        r.decide(&few, &ChampionSettings::default(), "run1", Evidence::Backtest);
        assert!(r.segments["smooth"].calibration.is_empty());
    }

    #[test]
    fn a_champion_that_calibrates_itself_keeps_its_own_quantiles() {
        use crate::evaluate::backtest::summarise;
        let levels = [0.1, 0.5, 0.9];
        // ets wins the smooth class with intervals twice too wide (± 16 where ± 8 covers 80%).
        let calibration = |own: bool| {
            let report = BacktestReport {
                cutoffs: vec![],
                horizon: 42,
                levels: levels.to_vec(),
                season: 7,
                models: vec![
                    summarise("seasonal_naive", spread_rows(420, DemandClass::Smooth, 8.0, 5.0), &levels),
                    summarise("ets", spread_rows(420, DemandClass::Smooth, 0.0, 16.0), &levels),
                ],
                published: None,
                self_calibrated: if own { vec!["ets".to_string()] } else { vec![] },
            };
            let mut r = Registry::default();
            r.decide(&report, &ChampionSettings::default(), "run1", Evidence::Backtest);
            assert_eq!(r.segments["smooth"].model, "ets");
            r.segments["smooth"].calibration.clone()
        };
        // Without a calibration of its own, its intervals are halved; with one, they are its own.
        let pooled = calibration(false);
        assert!((calibrate::factor_at(&pooled, 0.9) - 0.5).abs() < 0.05, "{pooled:?}");
        assert!(calibration(true).is_empty(), "{:?}", calibration(true));
    }

    #[test]
    fn a_challenger_needs_the_margin_to_take_over() {
        let s = ChampionSettings { segment_by: SegmentBy::None, ..Default::default() };
        let mut r = Registry::default();
        r.decide(&report(&[("seasonal_naive", 1.0), ("ets", 0.8)]), &s, "run1", Evidence::Backtest);
        assert_eq!(r.champion_of("all"), Some("ets"), "the first backtest crowns the best");
        // tsb is better, but by less than 2%: ets stays.
        let d =
            r.decide(&report(&[("seasonal_naive", 1.0), ("ets", 0.8), ("tsb", 0.79)]), &s, "run2", Evidence::Backtest);
        assert_eq!(r.champion_of("all"), Some("ets"));
        assert!(!d[0].promoted);
        assert!((d[0].value_added_pct.unwrap() - 20.0).abs() < 1e-9);
        // By more than the margin: promoted.
        r.decide(&report(&[("seasonal_naive", 1.0), ("ets", 0.8), ("tsb", 0.7)]), &s, "run3", Evidence::Backtest);
        assert_eq!(r.champion_of("all"), Some("tsb"));
        assert_eq!(r.segments["all"].since, "run3");
        assert_eq!(r.history.len(), 3);
    }

    #[test]
    fn a_champion_that_loses_to_seasonal_naive_goes_whatever_the_margin() {
        let s = ChampionSettings { segment_by: SegmentBy::None, ..Default::default() };
        let mut r = Registry::default();
        r.decide(&report(&[("seasonal_naive", 1.0), ("tsb", 0.9)]), &s, "run1", Evidence::Backtest);
        assert_eq!(r.champion_of("all"), Some("tsb"));
        // tsb now does worse than seasonal naive, by less than the margin: it still goes.
        let d = r.decide(&report(&[("seasonal_naive", 1.0), ("tsb", 1.01)]), &s, "run2", Evidence::Backtest);
        assert_eq!(r.champion_of("all"), Some("seasonal_naive"));
        assert!(d[0].promoted);
        // Within the margin of a better challenger but ahead of seasonal naive: it stays.
        r.decide(&report(&[("seasonal_naive", 1.0), ("tsb", 0.9)]), &s, "run3", Evidence::Backtest);
        r.decide(&report(&[("seasonal_naive", 1.0), ("tsb", 0.9), ("ets", 0.89)]), &s, "run4", Evidence::Backtest);
        assert_eq!(r.champion_of("all"), Some("tsb"));
    }
}
