//! Reads what a run produced from the lake into a [`Report`].
//!
//! Sources, each optional (a missing one becomes a note, not an error):
//!
//! | part | read from |
//! |---|---|
//! | the run | `runs/job=…/run_date=…/<run_id>.json` |
//! | scores | the manifest of `metrics/backtest/run_id=<run_id>/` (its `report`) |
//! | backtest forecasts | that dataset's rows (`unique_id, ds, cutoff, y_hat, y_lo, y_hi, method`) |
//! | actuals | `features/target/cutoff=<cutoff>/`, the table the run forecast from |
//! | champions | `models/champions.json` |
//! | published forecast | `forecasts/run_date=…/`, when its manifest names this run |
//!
//! The backtest rows are read twice, one file at a time: once to score each series, once to
//! keep the rows of the series shown, so memory holds the panel and a few series' rows.

use std::collections::{BTreeMap, HashMap, HashSet};

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Float64Type};
use arrow::record_batch::RecordBatch;
use chrono::{Duration, NaiveDate};

use super::{
    Actual, BacktestSection, ChampionSection, ForecastPoint, Held, HistoryRow, PeriodTotal, Published, Report, RunInfo,
    SCHEMA_VERSION, SeriesView, ValueAdded, Why,
};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::evaluate::backtest::BacktestReport;
use crate::evaluate::champion::Registry;
use crate::features::queries;
use crate::lake::{Lake, dataset, layout};
use crate::metrics;
use crate::panel::Panel;
use crate::publish;
use crate::settings::Settings;

/// How many of the largest series are shown.
pub const VOLUME_SERIES: usize = 3;

/// How many runs of the champion history are shown.
pub const HISTORY_RUNS: usize = 30;

/// Which run to report on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The run id: a job run's, or a backtest's (`backtest-…`).
    pub run_id: String,
    /// The job, for a job run (its record is read).
    pub job: Option<String>,
    /// The run date, for a job run.
    pub run_date: Option<NaiveDate>,
}

/// The id of the most recently written backtest in `metrics/backtest/`, if any.
pub async fn latest_backtest(lake: &Lake) -> Result<Option<String>> {
    let newest = lake
        .list(&layout::backtests())
        .await?
        .into_iter()
        .filter(|m| m.location.filename() == Some(layout::MANIFEST))
        .max_by_key(|m| m.last_modified);
    Ok(newest.and_then(|m| m.location.parts().find_map(|p| p.as_ref().strip_prefix("run_id=").map(str::to_string))))
}

/// The series key of score.py's format.
fn unique_id(item: &str, location: &str) -> String {
    format!("{item}/{location}")
}

fn column(b: &RecordBatch, name: &str, to: &DataType) -> Result<arrow::array::ArrayRef> {
    let c = b.column_by_name(name).ok_or_else(|| Error::data(format!("rows have no column `{name}`")))?;
    Ok(cast(c, to)?)
}

/// The panel's series by unique id, and the position of a period in them.
struct Actuals {
    panel: Panel,
    index: HashMap<String, usize>,
}

impl Actuals {
    fn new(panel: Panel) -> Self {
        let index = panel.keys.iter().enumerate().map(|(i, k)| (unique_id(&k.item_id, &k.location_id), i)).collect();
        Self { panel, index }
    }

    /// Position of the period starting `date` in series `i`.
    fn pos(&self, i: usize, date: NaiveDate) -> Option<usize> {
        let back = (self.panel.end - date).num_days();
        let days = self.panel.frequency.days();
        if back < 0 || back % days != 0 {
            return None;
        }
        let len = self.panel.values[i].len() as i64;
        let p = len - 1 - back / days;
        (p >= 0).then_some(p as usize)
    }

    fn y(&self, uid: &str, date: NaiveDate) -> Option<f64> {
        let i = *self.index.get(uid)?;
        self.pos(i, date).map(|p| self.panel.values[i][p] as f64)
    }

    /// The first day of period `t` of series `i`.
    fn date(&self, i: usize, t: usize) -> NaiveDate {
        let len = self.panel.values[i].len();
        self.panel.end - Duration::days(self.panel.frequency.days() * (len - 1 - t) as i64)
    }

    /// Units summed over every series, per period from `from` to the end.
    fn totals(&self, from: NaiveDate) -> Vec<PeriodTotal> {
        let mut sums: BTreeMap<NaiveDate, f64> = BTreeMap::new();
        for (i, y) in self.panel.values.iter().enumerate() {
            for (t, v) in y.iter().enumerate().rev() {
                let d = self.date(i, t);
                if d < from {
                    break;
                }
                *sums.entry(d).or_default() += *v as f64;
            }
        }
        sums.into_iter().map(|(date, units)| PeriodTotal { date, units }).collect()
    }

    /// In-sample seasonal-naive MAE of series `uid` up to `cutoff` (the backtest's MASE scale).
    fn scale(&self, uid: &str, cutoff: NaiveDate, season: usize) -> Option<f64> {
        let i = *self.index.get(uid)?;
        let last = self.pos(i, self.panel.frequency.period_start(cutoff))?;
        let history: Vec<f64> = self.panel.values[i][..=last].iter().map(|v| *v as f64).collect();
        metrics::seasonal_naive_scale(&history, season)
    }
}

/// The run's published forecast, by series.
struct PublishedRows {
    summary: Published,
    /// Per series: its model and its rows.
    series: HashMap<String, (String, Vec<ForecastPoint>)>,
    band: Option<(f64, f64)>,
}

/// Gathers the report of `source` from the lake.
pub async fn gather(lake: &Lake, settings: &Settings, source: &Source, clock: &dyn Clock) -> Result<Report> {
    let mut notes = Vec::new();
    let mut run = match (&source.job, source.run_date) {
        (Some(job), Some(date)) => {
            let path = layout::run_record(job, date, &source.run_id);
            let bytes = lake
                .get_opt(&path)
                .await?
                .ok_or_else(|| Error::data(format!("no record of run {} at {}", source.run_id, lake.display(&path))))?;
            serde_json::from_slice::<RunInfo>(&bytes).map_err(|e| Error::Dataset {
                path: lake.display(&path),
                message: format!("unreadable run record: {e}"),
            })?
        }
        _ => RunInfo { run_id: source.run_id.clone(), ..Default::default() },
    };
    // A report written by a step of the run itself sees the run still going: say how far it got.
    if run.status.as_deref() == Some("running") {
        let done = run.steps.iter().filter(|s| s.status == "succeeded").count();
        run.status =
            Some(format!("running ({done} of {} steps succeeded when this report was written)", run.steps.len()));
    }

    // The backtest's scores, from its manifest.
    let bt_dir = layout::backtest(&source.run_id);
    let bt_manifest = dataset::read_manifest(lake, &bt_dir).await?;
    let stored: Option<BacktestReport> = match bt_manifest.as_ref().and_then(|m| m.meta.get("report")) {
        Some(v) => Some(serde_json::from_value(v.clone()).map_err(|e| Error::Dataset {
            path: lake.display(&bt_dir),
            message: format!("unreadable backtest scores: {e}"),
        })?),
        None => None,
    };
    if stored.is_none() {
        notes.push(format!(
            "No backtest: {} has no scores (the run had no backtest step, too little history, or `[champion] windows = 0`).",
            lake.display(&bt_dir)
        ));
    }
    if run.cutoff.is_none() {
        run.cutoff = bt_manifest
            .as_ref()
            .and_then(|m| m.meta.get("last_sales_date"))
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok());
    }
    let metric = settings.champion.metric;

    // Actuals: the target table of the run's cutoff.
    let actuals = match run.cutoff {
        Some(cutoff) => {
            let dir = layout::features(queries::TARGET.name, cutoff);
            match dataset::read_manifest(lake, &dir).await? {
                Some(_) => {
                    let end = settings.frequency.period_start(cutoff);
                    Some(Actuals::new(Panel::read(lake, &dir, settings.frequency, end).await?))
                }
                None => {
                    notes.push(format!(
                        "No actuals: {} does not exist (`shelfcast features --cutoff {cutoff}` writes it); series are not shown.",
                        lake.display(&dir)
                    ));
                    None
                }
            }
        }
        None => {
            notes.push("No cutoff known for this run: series are not shown.".to_string());
            None
        }
    };

    let mut published = match run.run_date {
        Some(d) => read_published(lake, d, &source.run_id, &mut notes).await?,
        None => None,
    };

    let factors = match run.run_date {
        Some(d) => read_factors(lake, d, &source.run_id, &mut notes).await?,
        None => None,
    };

    if let (Some(p), Some(a)) = (published.as_mut(), &actuals) {
        let days = settings.frequency.days();
        let from = a.panel.end - Duration::days(days * (3 * p.summary.horizon.max(1) as i64 - 1));
        p.summary.actual_totals = a.totals(from);
    }

    let local = match run.cutoff {
        Some(cutoff) => super::local::read(lake, cutoff).await?,
        None => None,
    };

    let registry = Registry::read(lake).await?;
    let champions = champion_section(&registry, &source.run_id);

    // The model that serves a series: the one published for it, else the best in the backtest.
    let best = stored
        .as_ref()
        .and_then(|b| {
            b.models
                .iter()
                .filter_map(|m| metric.of(&m.overall).map(|v| (m.model.clone(), v)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map(|(m, _)| m)
        })
        .or_else(|| registry.champion_of(crate::evaluate::champion::ALL).map(str::to_string))
        .or_else(|| settings.models.first().cloned())
        .unwrap_or_default();
    let model_of = |uid: &str| -> String {
        published.as_ref().and_then(|p| p.series.get(uid).map(|(m, _)| m.clone())).unwrap_or_else(|| best.clone())
    };

    let mut series = Vec::new();
    if let Some(a) = &actuals {
        series = choose_series(lake, &bt_dir, stored.as_ref(), a, settings, &model_of).await?;
        for s in &mut series {
            let uid = unique_id(&s.item_id, &s.location_id);
            if let Some(p) = &published
                && let Some((_, rows)) = p.series.get(&uid)
            {
                s.forecast = rows.clone();
                s.forecast_band = p.band;
            }
        }
    }

    let backtest = stored.map(|b| {
        let (section, snaive) = section(b);
        if !snaive {
            notes.push("No forecast value added: seasonal_naive was not among the backtested models.".to_string());
        }
        section
    });
    let tracked = match run.run_date {
        Some(d) => match crate::evaluate::tracking::read(lake, d).await? {
            Some((by, t)) if by == source.run_id => Some(section(t).0),
            Some(_) => {
                notes.push(format!("The tracked accuracy of {d} was measured by another run: it is not shown."));
                None
            }
            None => None,
        },
        None => None,
    };

    Ok(Report {
        schema_version: SCHEMA_VERSION,
        generated_at: clock.now(),
        lake: lake.to_string(),
        run,
        frequency: settings.frequency,
        metric,
        backtest,
        tracked,
        champions,
        published: published.map(|p| p.summary),
        series,
        factors,
        local,
        notes,
    })
}

/// The report section of a backtest (or of tracked accuracy), with each model's value added over
/// seasonal naive; whether seasonal naive was among the models.
fn section(b: crate::evaluate::backtest::BacktestReport) -> (BacktestSection, bool) {
    use crate::evaluate::tracking::value_added as fva;
    let snaive = b.models.iter().find(|m| m.model == "seasonal_naive").map(|m| m.overall.clone());
    let value_added = b
        .models
        .iter()
        .map(|m| ValueAdded {
            model: m.model.clone(),
            mase_pct: fva(m.overall.mase, snaive.as_ref().and_then(|s| s.mase)),
            wape_pct: fva(m.overall.wape, snaive.as_ref().and_then(|s| s.wape)),
        })
        .collect();
    let section = BacktestSection {
        cutoffs: b.cutoffs,
        horizon: b.horizon,
        season: b.season,
        levels: b.levels,
        models: b.models,
        value_added,
    };
    (section, snaive.is_some())
}

/// The influence factors written for `run_date`, when `run_id` wrote them.
async fn read_factors(
    lake: &Lake,
    run_date: NaiveDate,
    run_id: &str,
    notes: &mut Vec<String>,
) -> Result<Option<super::FactorsSection>> {
    let dir = layout::factors(run_date);
    let Some(m) = dataset::read_manifest(lake, &dir).await? else {
        return Ok(None);
    };
    if m.meta.get("run_id").and_then(|v| v.as_str()) != Some(run_id) {
        notes.push(format!("The factors of {run_date} were written by another run: they are not shown."));
        return Ok(None);
    }
    Ok(crate::factors::read(lake, run_date).await?.map(|a| super::FactorsSection {
        estimates: a.estimates,
        ranking: a.ranking,
        importance: a.importance,
    }))
}

/// The champion section: the registry now, this run's decisions, and the history up to this run.
fn champion_section(registry: &Registry, run_id: &str) -> ChampionSection {
    let decisions: Vec<_> = registry.history.iter().filter(|d| d.run_id == run_id).cloned().collect();
    let upto = registry.history.iter().rposition(|d| d.run_id == run_id).map_or(registry.history.len(), |i| i + 1);
    let mut held: BTreeMap<String, Held> = BTreeMap::new();
    let mut history: Vec<HistoryRow> = Vec::new();
    for d in &registry.history[..upto] {
        if history.last().is_none_or(|r| r.run_id != d.run_id) {
            // A new run: what it did not decide stays as it was, not promoted by it.
            for h in held.values_mut() {
                h.promoted = false;
            }
            history.push(HistoryRow { run_id: d.run_id.clone(), held: BTreeMap::new() });
        }
        let h = if d.promoted {
            Held { model: d.challenger.clone(), promoted: true, score: Some(d.challenger_score) }
        } else {
            Held {
                model: d.champion.clone().unwrap_or_else(|| d.challenger.clone()),
                promoted: false,
                score: d.champion_score,
            }
        };
        held.insert(d.segment.clone(), h);
        if let Some(row) = history.last_mut() {
            row.held = held.clone();
        }
    }
    if history.len() > HISTORY_RUNS {
        history.drain(..history.len() - HISTORY_RUNS);
    }
    ChampionSection { metric: registry.metric, segments: registry.segments.clone(), decisions, history }
}

/// The forecast published for `run_date`, when `run_id` wrote it.
async fn read_published(
    lake: &Lake,
    run_date: NaiveDate,
    run_id: &str,
    notes: &mut Vec<String>,
) -> Result<Option<PublishedRows>> {
    let dir = layout::forecasts(run_date);
    let Some(manifest) = dataset::read_manifest(lake, &dir).await? else {
        notes.push(format!("No published forecast: {} was never written.", lake.display(&dir)));
        return Ok(None);
    };
    let by = manifest.meta.get("run_id").and_then(|v| v.as_str()).unwrap_or_default();
    if by != run_id {
        notes.push(format!("The forecast published for {run_date} is run {by}'s, not this run's: it is not shown."));
        return Ok(None);
    }
    let levels: Vec<f64> =
        manifest.meta.get("quantiles").and_then(|v| serde_json::from_value(v.clone()).ok()).unwrap_or_default();
    let band = match (levels.first(), levels.last()) {
        (Some(lo), Some(hi)) if lo < hi => Some((*lo, *hi)),
        _ => None,
    };
    let mut series: HashMap<String, (String, Vec<ForecastPoint>)> = HashMap::new();
    let mut totals: BTreeMap<NaiveDate, f64> = BTreeMap::new();
    let cutoff: Option<NaiveDate> = manifest.meta.get("cutoff").and_then(|v| v.as_str()).and_then(|s| s.parse().ok());
    let mut horizon = 0usize;
    let manifest = dataset::read_each(lake, &dir, |batches| {
        for b in &batches {
            let item = column(b, "item_id", &DataType::Utf8)?;
            let loc = column(b, "location_id", &DataType::Utf8)?;
            let date = column(b, "target_date", &DataType::Date32)?;
            let mean = column(b, "mean", &DataType::Float64)?;
            let model = column(b, "model", &DataType::Utf8)?;
            let (item, loc, date, mean, model) = (
                item.as_string::<i32>(),
                loc.as_string::<i32>(),
                date.as_primitive::<Date32Type>(),
                mean.as_primitive::<Float64Type>(),
                model.as_string::<i32>(),
            );
            let q = |l: f64| column(b, &publish::quantile_column(l), &DataType::Float64);
            let (lo, hi) = match band {
                Some((l, h)) => (Some(q(l)?), Some(q(h)?)),
                None => (None, None),
            };
            for r in 0..b.num_rows() {
                let d = crate::days::date(date.value(r) as i64, "forecasts.target_date")?;
                let e = series
                    .entry(unique_id(item.value(r), loc.value(r)))
                    .or_insert_with(|| (model.value(r).to_string(), Vec::new()));
                let at =
                    |c: &Option<arrow::array::ArrayRef>| c.as_ref().map(|c| c.as_primitive::<Float64Type>().value(r));
                e.1.push(ForecastPoint { cutoff, date: d, mean: mean.value(r), lo: at(&lo), hi: at(&hi) });
                horizon = horizon.max(e.1.len());
                *totals.entry(d).or_default() += mean.value(r);
            }
        }
        Ok(())
    })
    .await?;
    let mut models: BTreeMap<String, usize> = BTreeMap::new();
    for (m, rows) in series.values_mut() {
        *models.entry(m.clone()).or_default() += 1;
        rows.sort_by_key(|p| p.date);
    }
    let summary = Published {
        location: lake.display(&dir),
        run_date,
        cutoff,
        rows: manifest.row_count,
        series: series.len(),
        horizon,
        quantiles: levels,
        models,
        totals: totals.into_iter().map(|(date, units)| PeriodTotal { date, units }).collect(),
        actual_totals: Vec::new(),
    };
    Ok(Some(PublishedRows { summary, series, band }))
}

/// One row of the backtest dataset.
struct BtRow<'a> {
    uid: &'a str,
    ds: NaiveDate,
    cutoff: NaiveDate,
    y_hat: f64,
    y_lo: Option<f64>,
    y_hi: Option<f64>,
    method: &'a str,
}

/// Calls `f` with every row of the stored backtest, one file at a time.
async fn each_backtest_row(lake: &Lake, dir: &object_store::path::Path, mut f: impl FnMut(BtRow<'_>)) -> Result<()> {
    dataset::read_each(lake, dir, |batches| {
        for b in &batches {
            let uid = column(b, "unique_id", &DataType::Utf8)?;
            let ds = column(b, "ds", &DataType::Date32)?;
            let cutoff = column(b, "cutoff", &DataType::Date32)?;
            let y_hat = column(b, "y_hat", &DataType::Float64)?;
            let y_lo = column(b, "y_lo", &DataType::Float64)?;
            let y_hi = column(b, "y_hi", &DataType::Float64)?;
            let method = column(b, "method", &DataType::Utf8)?;
            let (uid, ds, cutoff, y_hat, y_lo, y_hi, method) = (
                uid.as_string::<i32>(),
                ds.as_primitive::<Date32Type>(),
                cutoff.as_primitive::<Date32Type>(),
                y_hat.as_primitive::<Float64Type>(),
                y_lo.as_primitive::<Float64Type>(),
                y_hi.as_primitive::<Float64Type>(),
                method.as_string::<i32>(),
            );
            let opt = |a: &arrow::array::PrimitiveArray<Float64Type>, r: usize| (!a.is_null(r)).then(|| a.value(r));
            for r in 0..b.num_rows() {
                f(BtRow {
                    uid: uid.value(r),
                    ds: crate::days::date(ds.value(r) as i64, "backtest.ds")?,
                    cutoff: crate::days::date(cutoff.value(r) as i64, "backtest.cutoff")?,
                    y_hat: y_hat.value(r),
                    y_lo: opt(y_lo, r),
                    y_hi: opt(y_hi, r),
                    method: method.value(r),
                });
            }
        }
        Ok(())
    })
    .await?;
    Ok(())
}

/// The series shown: the largest by volume, then the worst by MASE of the model serving it,
/// with their actuals and backtest forecasts.
async fn choose_series(
    lake: &Lake,
    bt_dir: &object_store::path::Path,
    stored: Option<&BacktestReport>,
    a: &Actuals,
    settings: &Settings,
    model_of: &(dyn Fn(&str) -> String + Sync),
) -> Result<Vec<SeriesView>> {
    let days = settings.frequency.days();
    // The periods the volume is summed over, and the first period of actuals shown.
    let (from, to, shown_from) = match stored.filter(|b| !b.cutoffs.is_empty()) {
        Some(b) => {
            let first = b.cutoffs[0];
            let last = *b.cutoffs.last().unwrap_or(&first);
            let h = Duration::days(days * b.horizon as i64);
            (first + Duration::days(1), last + h, first - h + Duration::days(1))
        }
        None => {
            let h = Duration::days(days * settings.horizon as i64);
            let end = a.panel.end + Duration::days(days - 1);
            (end - h + Duration::days(1), end, end - h * 3 + Duration::days(1))
        }
    };
    let mut volumes: Vec<(f64, usize)> = (0..a.panel.len())
        .map(|i| {
            let v: f64 = (0..a.panel.values[i].len())
                .filter(|&t| {
                    let d = a.date(i, t);
                    d >= from && d <= to
                })
                .map(|t| a.panel.values[i][t] as f64)
                .sum();
            (v, i)
        })
        .collect();
    volumes.sort_by(|x, y| y.0.total_cmp(&x.0).then(x.1.cmp(&y.1)));
    let mut chosen: Vec<(usize, Why)> = volumes.iter().take(VOLUME_SERIES).map(|(_, i)| (*i, Why::Volume)).collect();

    // MASE per series, of the model that serves it.
    let mut mase: HashMap<String, f64> = HashMap::new();
    if let Some(b) = stored {
        let mut err: HashMap<(String, NaiveDate), (f64, usize)> = HashMap::new();
        let mut served: HashMap<String, String> = HashMap::new();
        each_backtest_row(lake, bt_dir, |r| {
            let model = served.entry(r.uid.to_string()).or_insert_with(|| model_of(r.uid));
            if r.method != model.as_str() {
                return;
            }
            if let Some(y) = a.y(r.uid, r.ds) {
                let e = err.entry((r.uid.to_string(), r.cutoff)).or_insert((0.0, 0));
                e.0 += (r.y_hat - y).abs();
                e.1 += 1;
            }
        })
        .await?;
        let mut per: HashMap<String, (f64, usize)> = HashMap::new();
        for ((uid, cutoff), (sum, count)) in err {
            if let Some(scale) = a.scale(&uid, cutoff, b.season).filter(|s| *s > 0.0) {
                let e = per.entry(uid).or_insert((0.0, 0));
                e.0 += sum / count as f64 / scale;
                e.1 += 1;
            }
        }
        mase = per.into_iter().map(|(uid, (s, c))| (uid, s / c as f64)).collect();
        let taken: HashSet<usize> = chosen.iter().map(|c| c.0).collect();
        let worst = mase
            .iter()
            .filter_map(|(uid, v)| a.index.get(uid).map(|i| (*i, *v)))
            .filter(|(i, _)| !taken.contains(i))
            .max_by(|x, y| x.1.total_cmp(&y.1).then(y.0.cmp(&x.0)));
        if let Some((i, _)) = worst {
            chosen.push((i, Why::Worst));
        }
    }

    let mut views: Vec<SeriesView> = chosen
        .iter()
        .map(|&(i, why)| {
            let k = &a.panel.keys[i];
            let uid = unique_id(&k.item_id, &k.location_id);
            let actuals = (0..a.panel.values[i].len())
                .filter(|&t| a.date(i, t) >= shown_from)
                .map(|t| Actual { date: a.date(i, t), y: a.panel.values[i][t] as f64 })
                .collect();
            SeriesView {
                item_id: k.item_id.clone(),
                location_id: k.location_id.clone(),
                why,
                model: model_of(&uid),
                mase: mase.get(&uid).copied(),
                volume: volumes.iter().find(|v| v.1 == i).map_or(0.0, |v| v.0),
                actuals,
                backtest: Vec::new(),
                forecast: Vec::new(),
                forecast_band: None,
            }
        })
        .collect();

    if stored.is_some() && !views.is_empty() {
        let want: HashMap<String, (usize, String)> = views
            .iter()
            .enumerate()
            .map(|(j, v)| (unique_id(&v.item_id, &v.location_id), (j, v.model.clone())))
            .collect();
        let mut rows: Vec<Vec<ForecastPoint>> = vec![Vec::new(); views.len()];
        each_backtest_row(lake, bt_dir, |r| {
            if let Some((j, model)) = want.get(r.uid)
                && r.method == model.as_str()
            {
                rows[*j].push(ForecastPoint {
                    cutoff: Some(r.cutoff),
                    date: r.ds,
                    mean: r.y_hat,
                    lo: r.y_lo,
                    hi: r.y_hi,
                });
            }
        })
        .await?;
        for (v, mut r) in views.iter_mut().zip(rows) {
            r.sort_by_key(|p| (p.cutoff, p.date));
            v.backtest = r;
        }
    }
    Ok(views)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::champion::{Decision, Metric};

    fn decision(run: &str, segment: &str, champion: Option<&str>, challenger: &str, promoted: bool) -> Decision {
        Decision {
            run_id: run.into(),
            segment: segment.into(),
            champion: champion.map(str::to_string),
            champion_score: champion.map(|_| 1.0),
            challenger: challenger.into(),
            challenger_score: 0.9,
            promoted,
            value_added_pct: None,
            evidence: crate::evaluate::champion::Evidence::Backtest,
        }
    }

    #[test]
    fn the_history_replays_decisions_up_to_the_run() {
        let registry = Registry {
            metric: Metric::Mase,
            segments: BTreeMap::new(),
            history: vec![
                decision("r1", "all", None, "ets", true),
                decision("r1", "smooth", None, "naive", true),
                decision("r2", "all", Some("ets"), "tsb", false),
                decision("r3", "all", Some("ets"), "tsb", true),
            ],
            last_backtest: None,
            last_tracked: None,
        };
        let s = champion_section(&registry, "r2");
        assert_eq!(s.decisions.len(), 1);
        assert_eq!(s.history.len(), 2, "rows up to the run reported on");
        assert_eq!(s.history[0].held["all"], Held { model: "ets".into(), promoted: true, score: Some(0.9) });
        assert_eq!(s.history[1].held["all"], Held { model: "ets".into(), promoted: false, score: Some(1.0) });
        assert!(!s.history[1].held["smooth"].promoted, "a segment r2 did not decide is carried over");
        let all = champion_section(&registry, "elsewhere");
        assert_eq!(all.history.len(), 3);
        assert_eq!(all.history[2].held["all"].model, "tsb");
    }
}
