//! Live accuracy tracking: the forecasts of earlier run dates scored against the actuals that
//! arrived since.
//!
//! A backtest re-creates forecasts; tracking scores the ones that were made. Each run reads the
//! forecasts of the most recent earlier run dates ([`TrackingSettings::runs`]): the published
//! one (`forecasts/run_date=…/`, scored as the model `published`) and every configured model's
//! shadow forecast (`shadow/run_date=…/`, see [`crate::publish::shadow`]). Each row whose target
//! period has an actual in the run's panel is scored as a backtest row would be, the run date's
//! cutoff playing the part of the window's cutoff: the MASE scale is the series' in-sample
//! seasonal-naive error up to that cutoff, the demand class is the series' at that cutoff. The
//! result is a [`BacktestReport`] (per model: overall, per origin, per horizon step, per demand
//! class), so every metric is computed by [`super::backtest::scores`], the same code `score.py`
//! is checked against, and the report shows it with the backtest's own tables.
//!
//! [`store`] writes it to `metrics/accuracy/run_date=…/`: one row per model × origin (or all
//! origins) × horizon step (or all) × segment (demand class, or `all`) with n, MASE, WAPE, bias,
//! coverage and the forecast value added over seasonal naive, and the whole report in the manifest.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Date32Builder, Float64Builder, Int32Builder, StringBuilder, UInt64Builder};
use arrow::datatypes::{Date32Type, Float64Type, Int32Type};
use arrow::record_batch::RecordBatch;
use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use tracing::{info, instrument, warn};

use super::backtest::{BacktestReport, ScoredRow, Scores, summarise};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::lake::dataset::{self, DatasetWriter, Manifest};
use crate::lake::{Lake, layout};
use crate::metrics;
use crate::models::baseline::classify::classify;
use crate::panel::Panel;
use crate::publish;

/// The model name under which the published forecast (the champions' combination) is tracked.
pub const PUBLISHED: &str = "published";

/// The segment of every series together.
pub const ALL: &str = "all";

/// The `[tracking]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TrackingSettings {
    /// Keep every configured model's forecast of a run (`shadow/`), not only the published one.
    #[serde(default = "yes")]
    pub shadow: bool,
    /// Earlier run dates whose forecasts each run scores (the most recent ones); 0 turns tracking off.
    #[serde(default = "default_runs")]
    pub runs: usize,
}

fn yes() -> bool {
    true
}

fn default_runs() -> usize {
    28
}

impl Default for TrackingSettings {
    fn default() -> Self {
        Self { shadow: true, runs: default_runs() }
    }
}

/// Where a series' values sit in the panel.
struct Series<'a> {
    values: &'a [f32],
    /// Scale and class per origin cutoff, computed once.
    at: HashMap<NaiveDate, (Option<f64>, crate::models::baseline::classify::DemandClass)>,
}

/// Scores the forecasts of the (at most `settings.runs`) run dates before `run_date` against the
/// actuals of `actuals` (the run's panel); `self_calibrated` names the models among them that
/// calibrate their own quantiles ([`BacktestReport::self_calibrated`]). `None` when no earlier
/// forecast has an actual yet.
#[instrument(skip_all, fields(run_date = %run_date, runs = settings.runs))]
pub async fn measure(
    lake: &Lake,
    actuals: &Panel,
    run_date: NaiveDate,
    settings: &TrackingSettings,
    levels: &[f64],
    season: usize,
    self_calibrated: Vec<String>,
) -> Result<Option<BacktestReport>> {
    if settings.runs == 0 {
        return Ok(None);
    }
    let mut dates = publish::stability::run_dates(lake, publish::DATASET).await?;
    dates.extend(publish::stability::run_dates(lake, publish::shadow::DATASET).await?);
    dates.sort_unstable();
    dates.dedup();
    dates.retain(|d| *d < run_date);
    let dates = &dates[dates.len().saturating_sub(settings.runs)..];

    let step = actuals.frequency.days();
    let keys: HashMap<(&str, &str), usize> =
        actuals.keys.iter().enumerate().map(|(i, k)| ((k.item_id.as_str(), k.location_id.as_str()), i)).collect();
    let mut series: Vec<Series<'_>> = actuals.values.iter().map(|v| Series { values: v, at: HashMap::new() }).collect();
    // Index of a period in a series of `len` values ending at the panel's last period.
    let index = |len: usize, day: NaiveDate| -> Option<usize> {
        let back = (actuals.end - day).num_days();
        if back < 0 || back % step != 0 {
            return None;
        }
        (len as i64 - 1).checked_sub(back / step).and_then(|i| usize::try_from(i).ok())
    };

    let mut per_model: BTreeMap<String, Vec<ScoredRow>> = BTreeMap::new();
    let mut order: Vec<String> = vec![PUBLISHED.to_string()];
    let mut cutoffs = Vec::new();
    for &date in dates {
        for (dir, fixed) in [(layout::forecasts(date), Some(PUBLISHED)), (layout::shadow(date), None)] {
            let Some(manifest) = dataset::read_manifest(lake, &dir).await? else { continue };
            let Some(cutoff) = origin_cutoff(&manifest, actuals) else {
                warn!(dataset = %dir, "no cutoff in the manifest: not tracked");
                continue;
            };
            let columns: Option<Vec<String>> = levels
                .iter()
                .map(|l| {
                    let c = publish::quantile_column(*l);
                    manifest.schema.iter().any(|s| s.name == c).then_some(c)
                })
                .collect();
            let Some(columns) = columns else {
                warn!(dataset = %dir, "its quantile levels differ from the settings': not tracked");
                continue;
            };
            let mut scored = 0usize;
            dataset::read_each(lake, &dir, |batches| {
                for b in &batches {
                    let at = (&keys, series.as_mut_slice());
                    scored += score_batch(b, fixed, cutoff, &columns, at, &index, season, &mut per_model)?;
                }
                Ok(())
            })
            .await?;
            if scored > 0 && !cutoffs.contains(&cutoff) {
                cutoffs.push(cutoff);
            }
        }
    }
    for m in per_model.keys() {
        if !order.contains(m) {
            order.push(m.clone());
        }
    }
    if per_model.values().all(Vec::is_empty) {
        return Ok(None);
    }
    cutoffs.sort_unstable();
    let horizon = per_model.values().flatten().map(|r| r.step).max().unwrap_or(0);
    let models = order
        .into_iter()
        .filter_map(|name| per_model.remove(&name).map(|rows| summarise(&name, rows, levels)))
        .collect();
    Ok(Some(BacktestReport {
        cutoffs,
        horizon,
        levels: levels.to_vec(),
        season,
        models,
        published: None,
        self_calibrated,
    }))
}

/// The first day of the period a forecast's cutoff (from its manifest) falls in.
fn origin_cutoff(manifest: &Manifest, actuals: &Panel) -> Option<NaiveDate> {
    let cutoff = manifest.meta.get("cutoff")?.as_str()?.parse::<NaiveDate>().ok()?;
    Some(actuals.frequency.period_start(cutoff))
}

/// Scores the rows of one batch of forecast rows (the contract's columns) that have an actual.
#[allow(clippy::too_many_arguments)]
fn score_batch(
    b: &RecordBatch,
    fixed: Option<&str>,
    cutoff: NaiveDate,
    quantiles: &[String],
    (keys, series): (&HashMap<(&str, &str), usize>, &mut [Series<'_>]),
    index: &dyn Fn(usize, NaiveDate) -> Option<usize>,
    season: usize,
    out: &mut BTreeMap<String, Vec<ScoredRow>>,
) -> Result<usize> {
    let col = |name: &str| -> Result<&ArrayRef> {
        b.column_by_name(name).ok_or_else(|| Error::data(format!("forecast rows have no column `{name}`")))
    };
    let item = col("item_id")?.as_string::<i32>();
    let location = col("location_id")?.as_string::<i32>();
    let target = col("target_date")?.as_primitive::<Date32Type>();
    let horizon = col("horizon")?.as_primitive::<Int32Type>();
    // The point the champion was chosen on; files written before it was published: the mean.
    let point = col("point").or_else(|_| col("mean"))?.as_primitive::<Float64Type>();
    let model = col("model")?.as_string::<i32>();
    let qs: Vec<_> =
        quantiles.iter().map(|q| col(q).map(|c| c.as_primitive::<Float64Type>())).collect::<Result<_>>()?;
    let epoch = crate::days::epoch();
    let mut scored = 0;
    for r in 0..b.num_rows() {
        let Some(&i) = keys.get(&(item.value(r), location.value(r))) else { continue };
        let s = &mut series[i];
        let day = epoch + Duration::days(target.value(r) as i64);
        let Some(t) = index(s.values.len(), day) else { continue };
        // The history the forecast was made from: the periods up to its cutoff.
        let Some(upto) = index(s.values.len(), cutoff) else { continue };
        if t <= upto {
            continue;
        }
        let values = s.values;
        let (scale, class) = *s.at.entry(cutoff).or_insert_with(|| {
            let history = &values[..=upto];
            let h64: Vec<f64> = history.iter().map(|v| *v as f64).collect();
            (metrics::seasonal_naive_scale(&h64, season), classify(history, 2 * season))
        });
        let name = fixed.unwrap_or_else(|| model.value(r));
        out.entry(name.to_string()).or_default().push(ScoredRow {
            item_id: item.value(r).to_string(),
            location_id: location.value(r).to_string(),
            cutoff,
            target_date: day,
            step: horizon.value(r).max(1) as usize,
            y: s.values[t] as f64,
            y_hat: point.value(r),
            quantiles: qs.iter().map(|q| q.value(r)).collect(),
            class,
            scale,
        });
        scored += 1;
    }
    Ok(scored)
}

/// The tracked accuracy of `models` on common ground, for champion decisions: each model's rows
/// cut to the forecasts every one of them made (same series, origin and target period), so a
/// model added later or missing a night is not compared on other rows. `Err` says why it is not
/// enough to decide on: a model not tracked yet, or fewer common rows than `needed` (what the
/// backtest it replaces would score: windows × horizon × series).
pub fn common_ground(
    report: &BacktestReport,
    models: &[String],
    needed: usize,
) -> std::result::Result<BacktestReport, String> {
    type Key<'a> = (&'a str, &'a str, NaiveDate, NaiveDate);
    fn key(r: &ScoredRow) -> Key<'_> {
        (r.item_id.as_str(), r.location_id.as_str(), r.cutoff, r.target_date)
    }
    let mut tracked = Vec::with_capacity(models.len());
    for name in models {
        match report.models.iter().find(|m| &m.model == name) {
            Some(m) if !m.rows.is_empty() => tracked.push(m),
            _ => return Err(format!("`{name}` has no tracked forecasts yet")),
        }
    }
    let Some((first, rest)) = tracked.split_first() else { return Err("no models to decide among".into()) };
    let mut common: std::collections::HashSet<Key<'_>> = first.rows.iter().map(key).collect();
    for m in rest {
        let own: std::collections::HashSet<Key<'_>> = m.rows.iter().map(key).collect();
        common.retain(|k| own.contains(k));
    }
    if common.len() < needed {
        return Err(format!("{} forecast(s) tracked for every model, a backtest would score {needed}", common.len()));
    }
    let summarised: Vec<_> = tracked
        .iter()
        .map(|m| {
            let rows: Vec<ScoredRow> = m.rows.iter().filter(|r| common.contains(&key(r))).cloned().collect();
            summarise(&m.model, rows, &report.levels)
        })
        .collect();
    let mut cutoffs: Vec<NaiveDate> = common.iter().map(|k| k.2).collect();
    cutoffs.sort_unstable();
    cutoffs.dedup();
    Ok(BacktestReport {
        cutoffs,
        horizon: report.horizon,
        levels: report.levels.clone(),
        season: report.season,
        models: summarised,
        published: None,
        self_calibrated: report.self_calibrated.clone(),
    })
}

/// Forecast value added over seasonal naive on a metric: `100 · (1 − model / seasonal naive)`.
pub fn value_added(model: Option<f64>, seasonal_naive: Option<f64>) -> Option<f64> {
    match (model, seasonal_naive) {
        (Some(m), Some(s)) if s > 0.0 => Some(100.0 * (1.0 - m / s)),
        _ => None,
    }
}

/// What [`store`] wrote.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrackingMetrics {
    /// Run dates whose forecasts were scored (their cutoffs).
    pub origins: Vec<NaiveDate>,
    /// Forecast rows scored, over every model.
    pub scored_rows: usize,
    /// Overall MASE per model.
    pub mase: BTreeMap<String, Option<f64>>,
    /// Where the dataset is.
    pub location: String,
}

/// Writes a tracking report to `metrics/accuracy/run_date=…/`: one row per model × origin ×
/// step × segment (NULL origin or step: all of them) and the report in the manifest.
pub async fn store(
    lake: &Lake,
    run_id: &str,
    run_date: NaiveDate,
    report: &BacktestReport,
    clock: &dyn Clock,
) -> Result<TrackingMetrics> {
    let batch = rows(report)?;
    let dir = layout::accuracy(run_date);
    let mut w = DatasetWriter::new(lake, dir.clone(), "metrics/accuracy", run_id, batch.schema());
    w.write(batch).await?;
    let mut meta = serde_json::Map::new();
    meta.insert("run_id".into(), run_id.into());
    meta.insert("run_date".into(), run_date.to_string().into());
    meta.insert("report".into(), serde_json::to_value(report)?);
    w.commit(clock.now(), meta).await?;
    let m = TrackingMetrics {
        origins: report.cutoffs.clone(),
        scored_rows: report.models.iter().map(|m| m.overall.n).sum(),
        mase: report.models.iter().map(|m| (m.model.clone(), m.overall.mase)).collect(),
        location: lake.display(&dir),
    };
    info!(origins = m.origins.len(), rows = m.scored_rows, "tracked accuracy stored");
    Ok(m)
}

/// The tracking report a run stored for `run_date`, if any.
pub async fn read(lake: &Lake, run_date: NaiveDate) -> Result<Option<(String, BacktestReport)>> {
    let Some(m) = dataset::read_manifest(lake, &layout::accuracy(run_date)).await? else { return Ok(None) };
    let run_id = m.meta.get("run_id").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let report = m.meta.get("report").cloned().ok_or_else(|| Error::data("tracked accuracy has no report"))?;
    Ok(Some((run_id, serde_json::from_value(report)?)))
}

/// The newest run date with tracked accuracy in the lake.
pub async fn latest_run_date(lake: &Lake) -> Result<Option<NaiveDate>> {
    let mut newest = None;
    for obj in lake.list(&layout::accuracies()).await? {
        let parts: Vec<_> = obj.location.parts().map(|p| p.as_ref().to_string()).collect();
        if parts.len() == 4 && parts[3] == layout::MANIFEST {
            let date = parts[2].strip_prefix("run_date=").and_then(|d| d.parse::<NaiveDate>().ok());
            newest = newest.max(date);
        }
    }
    Ok(newest)
}

/// Registers the newest tracked accuracy as the table `accuracy` (nothing when there is none).
pub async fn register_latest(ctx: &datafusion::prelude::SessionContext, lake: &Lake) -> Result<()> {
    let Some(date) = latest_run_date(lake).await? else { return Ok(()) };
    let dir = layout::accuracy(date);
    if let Some(m) = dataset::read_manifest(lake, &dir).await? {
        crate::features::register_dataset(ctx, lake, "accuracy", &dir, &m).await?;
    }
    Ok(())
}

/// The long table of a tracking report.
fn rows(report: &BacktestReport) -> Result<RecordBatch> {
    let (mut model, mut origin, mut step, mut segment) =
        (StringBuilder::new(), Date32Builder::new(), Int32Builder::new(), StringBuilder::new());
    let (mut n, mut mase, mut wape, mut bias, mut coverage, mut fva) = (
        UInt64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
        Float64Builder::new(),
    );
    let snaive = report.models.iter().find(|m| m.model == "seasonal_naive");
    let epoch = crate::days::epoch();
    for m in &report.models {
        let mut push = |o: Option<NaiveDate>, st: Option<usize>, seg: &str, s: &Scores, base: Option<&Scores>| {
            model.append_value(&m.model);
            origin.append_option(o.map(|d| (d - epoch).num_days() as i32));
            step.append_option(st.map(|v| v as i32));
            segment.append_value(seg);
            n.append_value(s.n as u64);
            mase.append_option(s.mase);
            wape.append_option(s.wape);
            bias.append_option(s.bias);
            coverage.append_option(s.coverage_80);
            fva.append_option(value_added(s.mase, base.and_then(|b| b.mase)));
        };
        push(None, None, ALL, &m.overall, snaive.map(|s| &s.overall));
        for (o, s) in &m.per_window {
            push(Some(*o), None, ALL, s, snaive.and_then(|b| b.per_window.get(o)));
        }
        for (st, s) in &m.per_step {
            push(None, Some(*st), ALL, s, snaive.and_then(|b| b.per_step.get(st)));
        }
        for (c, s) in &m.per_class {
            push(None, None, c, s, snaive.and_then(|b| b.per_class.get(c)));
        }
    }
    Ok(RecordBatch::try_from_iter_with_nullable(vec![
        ("model", Arc::new(model.finish()) as ArrayRef, false),
        ("origin", Arc::new(origin.finish()), true),
        ("step", Arc::new(step.finish()), true),
        ("segment", Arc::new(segment.finish()), false),
        ("n", Arc::new(n.finish()), false),
        ("mase", Arc::new(mase.finish()), true),
        ("wape", Arc::new(wape.finish()), true),
        ("bias", Arc::new(bias.finish()), true),
        ("coverage_80", Arc::new(coverage.finish()), true),
        ("fva_mase_pct", Arc::new(fva.finish()), true),
    ])?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::baseline::classify::DemandClass;

    fn row(item: &str, cutoff: u32, target: u32, y_hat: f64) -> ScoredRow {
        let day = |d: u32| NaiveDate::from_ymd_opt(2026, 3, d).unwrap();
        ScoredRow {
            item_id: item.into(),
            location_id: "L1".into(),
            cutoff: day(cutoff),
            target_date: day(target),
            step: (target - cutoff) as usize,
            y: 10.0,
            y_hat,
            quantiles: vec![y_hat],
            class: DemandClass::Smooth,
            scale: Some(1.0),
        }
    }

    #[test]
    fn models_are_compared_only_on_the_forecasts_all_of_them_made() {
        // ets was tracked from the first origin on; gbt was added one night later and misses
        // the first origin, where ets did badly.
        let ets = vec![row("A", 1, 2, 0.0), row("A", 1, 3, 0.0), row("A", 2, 3, 9.0), row("B", 2, 3, 9.0)];
        let gbt = vec![row("A", 2, 3, 8.0), row("B", 2, 3, 8.0)];
        let levels = [0.5];
        let report = BacktestReport {
            cutoffs: vec![],
            horizon: 2,
            levels: levels.to_vec(),
            season: 7,
            models: vec![summarise("ets", ets, &levels), summarise("gbt", gbt, &levels)],
            published: None,
            self_calibrated: vec![],
        };
        assert!(report.models[0].overall.mase > report.models[1].overall.mase, "ets loses on all its rows");
        let models = vec!["ets".to_string(), "gbt".to_string()];
        let common = common_ground(&report, &models, 2).unwrap();
        assert!(common.models.iter().all(|m| m.overall.n == 2));
        assert!(common.models[0].overall.mase < common.models[1].overall.mase, "on common rows ets wins");
        assert_eq!(common.cutoffs.len(), 1);
        // Not enough: fewer common rows than needed, or a model never tracked.
        let why = common_ground(&report, &models, 3).unwrap_err();
        assert!(why.contains("2 forecast(s)") && why.contains("would score 3"), "{why}");
        let why = common_ground(&report, &["ets".to_string(), "lstm".to_string()], 1).unwrap_err();
        assert!(why.contains("`lstm`"), "{why}");
    }

    #[test]
    fn value_added_is_the_share_of_seasonal_naives_error_removed() {
        assert!((value_added(Some(0.8), Some(1.0)).unwrap() - 20.0).abs() < 1e-9);
        assert!((value_added(Some(1.2), Some(1.0)).unwrap() + 20.0).abs() < 1e-9);
        assert_eq!(value_added(Some(1.0), Some(0.0)), None);
        assert_eq!(value_added(None, Some(1.0)), None);
    }
}
