//! Covariates: the feature tables of a cutoff, aligned with a panel's series and periods.
//!
//! Three kinds, kept apart by type because they may be used differently:
//!
//! - [`Known`]: known in advance, held over the history **and** the horizon (calendar events from
//!   `calendar_features`, planned prices and promotions from `price_promo`, and the own price
//!   against the cheapest competitor from `competitor`, whose last observed price carries forward
//!   over the horizon; the share of the period the series is closed from `closed_periods`; events of
//!   the series' location or region from `local_calendar`; and the user's own known-in-advance
//!   covariates from `user_known`, one column `user:NAME` each);
//! - [`Past`]: observed, held over the history only (`target.stock_out`, lagged traffic from
//!   `behaviour`, the user's observed covariates from `user_observed` as `user:NAME`); a model may
//!   read them in its encoder, never for the periods it forecasts;
//! - [`Statics`]: categorical attributes of a series (`attributes`: category, brand, region,
//!   format), as strings; models map them to their own vocabularies.
//!
//! Every value is an `f32` near the unit range: flags are 0/1, NULLs take a neutral default (no
//! promotion, a relative price of 1, no event nearby), ratios are clipped. A user covariate whose
//! values all lie in [0, 1] (a flag, a share, a categorical value's indicator) is read as it is;
//! any other is standardised by the mean and standard deviation of the values read, clipped to
//! ±5, and reads 0 (its mean) where it has no value. Rows whose item or location is NULL apply to
//! every item or location; the most specific row of a period wins. Only the last
//! `history` periods up to the panel's end are held (plus the horizon for known ones), so a
//! 30 000-series panel with a few hundred periods stays within a few GB.
//!
//! Periods are indexed by `t` in `0..history + horizon`; `t = history − 1` is the panel's last
//! period and `t = history + h` the `h`-th (0-based) period after it. A value `y[i]` of a series of
//! `n` values sits at `t = history − n + i`.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, Date32Array, Float64Array, RecordBatch, StringArray};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use chrono::{Duration, NaiveDate};
use tracing::warn;

use super::Panel;
use crate::error::Result;
use crate::lake::{Lake, dataset, layout};

/// Calendar features, shared by every series.
pub const CALENDAR: &[&str] =
    &["is_event", "event_holiday", "event_festival", "event_season", "days_to_next_event", "days_since_last_event"];
/// Price and promotion features, per series (the last one from the `competitor` table).
pub const PRICE_PROMO: &[&str] = &[
    "discount",
    "promo",
    "post_promo",
    "promo_share",
    "price_rel_own_28",
    "price_rel_category",
    "price_rel_competitor",
];
/// Closures and local events, per series, after [`PRICE_PROMO`].
pub const LOCAL: &[&str] = &["closed", "local_event", "local_holiday"];
/// Past-only features, per series.
pub const PAST: &[&str] = &["stock_out", "views_rel", "conversion_lag_1", "cart_rate_lag_1"];
/// Prefix of the columns of the user's covariates (`user:NAME`).
pub const USER: &str = "user:";
/// Most user covariates read of each kind (the ones with the most rows); the others are left out
/// with a warning.
pub const MAX_USER_COVARIATES: usize = 64;
/// Static attributes, per series.
pub const STATIC: &[&str] = &["category", "brand", "region", "format"];

/// Days to or since an event saturate here (features in [0, 1]).
const EVENT_DAYS: f32 = 28.0;

/// Known-future covariates over the history and the horizon.
#[derive(Debug, Clone)]
pub struct Known {
    /// Names of the shared calendar features.
    pub calendar_names: Vec<String>,
    /// `[t × calendar]`, shared by every series.
    pub calendar: Vec<f32>,
    /// Names of the per-series features.
    pub series_names: Vec<String>,
    /// Per series, `[t × features]`.
    pub series: Vec<Vec<f32>>,
}

impl Known {
    /// The shared part (names and calendar), without the per-series values.
    fn clone_shared(&self) -> Self {
        Self {
            calendar_names: self.calendar_names.clone(),
            calendar: self.calendar.clone(),
            series_names: self.series_names.clone(),
            series: Vec::new(),
        }
    }
}

/// Past-only covariates over the history.
#[derive(Debug, Clone)]
pub struct Past {
    /// Feature names.
    pub names: Vec<String>,
    /// Per series, `[t × features]` for `t < history`.
    pub values: Vec<Vec<f32>>,
}

/// Static categorical attributes.
#[derive(Debug, Clone)]
pub struct Statics {
    /// Attribute names.
    pub names: Vec<String>,
    /// Per attribute, per series: the value (`None` when unknown).
    pub values: Vec<Vec<Option<String>>>,
}

/// Covariates of a panel, aligned with its series (same order) and periods.
#[derive(Debug, Clone)]
pub struct Covariates {
    /// First day of the first period held.
    pub start: NaiveDate,
    /// Periods held up to and including the panel's end.
    pub history: usize,
    /// Periods held after the panel's end (known covariates only).
    pub horizon: usize,
    /// Known-future covariates.
    pub known: Known,
    /// Past-only covariates.
    pub past: Past,
    /// Static attributes.
    pub statics: Statics,
}

impl Covariates {
    /// Empty covariates (every feature at its default) for `series` series.
    pub fn empty(start: NaiveDate, series: usize, history: usize, horizon: usize) -> Self {
        Self::with_user(start, series, history, horizon, &[], &[])
    }

    /// Empty covariates with the user's known and observed covariates of these names (columns
    /// `user:NAME`).
    pub fn with_user(
        start: NaiveDate,
        series: usize,
        history: usize,
        horizon: usize,
        user_known: &[String],
        user_past: &[String],
    ) -> Self {
        let series_names: Vec<String> = names(PRICE_PROMO)
            .into_iter()
            .chain(names(LOCAL))
            .chain(user_known.iter().map(|n| format!("{USER}{n}")))
            .collect();
        let past_names: Vec<String> =
            names(PAST).into_iter().chain(user_past.iter().map(|n| format!("{USER}{n}"))).collect();
        let periods = history + horizon;
        let mut calendar = vec![0.0; periods * CALENDAR.len()];
        for t in 0..periods {
            // No event within reach: both distances saturate.
            calendar[t * CALENDAR.len() + 4] = 1.0;
            calendar[t * CALENDAR.len() + 5] = 1.0;
        }
        Self {
            start,
            history,
            horizon,
            known: Known {
                calendar_names: names(CALENDAR),
                calendar,
                series: vec![vec![0.0; periods * series_names.len()]; series],
                series_names,
            },
            past: Past { values: vec![vec![0.0; history * past_names.len()]; series], names: past_names },
            statics: Statics { names: names(STATIC), values: vec![vec![None; series]; STATIC.len()] },
        }
    }

    /// Reads the materialised feature tables of `cutoff` for the series of `panel`: the last
    /// `history` periods up to the panel's end, and `horizon` periods after it. A table that was
    /// not materialised leaves its features at their defaults (with a warning).
    pub async fn load(lake: &Lake, cutoff: NaiveDate, panel: &Panel, horizon: usize, history: usize) -> Result<Self> {
        let history = history.max(1);
        let step = panel.frequency.days();
        let start = panel.end - Duration::days(step * (history as i64 - 1));
        let grid = Grid { start_day: epoch_day(start), step, periods: history + horizon };
        let mut known_rows = Vec::new();
        read_table(lake, "user_known", cutoff, |b| user_rows(&b, &grid, &mut known_rows)).await?;
        let mut past_rows = Vec::new();
        read_table(lake, "user_observed", cutoff, |b| user_rows(&b, &grid, &mut past_rows)).await?;
        let (known_names, past_names) =
            (user_names(&known_rows, "user_known"), user_names(&past_rows, "user_observed"));
        let mut cov = Self::with_user(start, panel.len(), history, horizon, &known_names, &past_names);
        let series: HashMap<(&str, &str), usize> =
            panel.keys.iter().enumerate().map(|(s, k)| ((k.item_id.as_str(), k.location_id.as_str()), s)).collect();
        let mut by_item: HashMap<&str, Vec<usize>> = HashMap::new();
        for (s, k) in panel.keys.iter().enumerate() {
            by_item.entry(k.item_id.as_str()).or_default().push(s);
        }

        // One file at a time: memory holds the covariates and one file, not the feature tables.
        read_table(lake, "calendar_features", cutoff, |b| cov.fill_calendar(&b, &grid)).await?;
        read_table(lake, "price_promo", cutoff, |b| cov.fill_price_promo(&b, &grid, &series)).await?;
        read_table(lake, "competitor", cutoff, |b| cov.fill_competitor(&b, &grid, &series)).await?;
        read_table(lake, "target", cutoff, |b| cov.fill_stock_out(&b, &grid, &series)).await?;
        let mut views_sum = HashMap::new();
        read_table(lake, "behaviour", cutoff, |b| cov.fill_behaviour(&b, &grid, &by_item, &mut views_sum)).await?;
        cov.finish_behaviour(&by_item, &views_sum);
        read_table(lake, "attributes", cutoff, |b| cov.fill_statics(&b, &series)).await?;
        let mut by_location: HashMap<&str, Vec<usize>> = HashMap::new();
        for (s, k) in panel.keys.iter().enumerate() {
            by_location.entry(k.location_id.as_str()).or_default().push(s);
        }
        read_table(lake, "local_calendar", cutoff, |b| cov.fill_local(&b, &grid, &by_location)).await?;
        // Closures are planned: those the panel carries are the cutoff's (read once per panel).
        match &panel.closures {
            Some(closures) => cov.fill_closed(panel, closures),
            None => {
                if let Some(closures) = super::Closures::read(lake, cutoff).await? {
                    cov.fill_closed(panel, &closures);
                }
            }
        }
        let keys = Keys { series: &series, by_item: &by_item, by_location: &by_location, all: panel.len() };
        cov.fill_user(known_rows, &known_names, true, &keys);
        cov.fill_user(past_rows, &past_names, false, &keys);
        Ok(cov)
    }

    /// The index of each of `names` among the known features (`None`: this panel has no such
    /// feature); for a model fitted on covariates laid out otherwise.
    pub fn known_index(&self, names: &[String]) -> Vec<Option<usize>> {
        let own = self.known_names();
        names.iter().map(|n| own.iter().position(|o| o == n)).collect()
    }

    /// Writes the closed share of each series' periods into the `closed` column.
    fn fill_closed(&mut self, panel: &Panel, closures: &super::Closures) {
        let k = self.known.series_names.len();
        let at = PRICE_PROMO.len();
        for s in 0..panel.len() {
            let n = panel.values[s].len();
            for (i, share) in closures.shares(panel, s, self.horizon).into_iter().enumerate() {
                if share > 0.0
                    && let Some(t) = self.index(n, i as isize)
                {
                    self.known.series[s][t * k + at] = share;
                }
            }
        }
    }

    /// Writes the local events of each location onto its series.
    fn fill_local(
        &mut self,
        batches: &[RecordBatch],
        grid: &Grid,
        by_location: &HashMap<&str, Vec<usize>>,
    ) -> Result<()> {
        let k = self.known.series_names.len();
        let at = PRICE_PROMO.len() + 1;
        for b in batches {
            let locs = key_column(b, "location_id")?;
            let dates = date_column(b)?;
            let event = float_column(b, "local_event")?;
            let holiday = float_column(b, "local_holiday")?;
            for r in 0..b.num_rows() {
                let Some(series) = (!locs.is_null(r)).then(|| by_location.get(locs.value(r))).flatten() else {
                    continue;
                };
                let Some(t) = grid.index(&dates, r) else { continue };
                for &s in series {
                    self.known.series[s][t * k + at] = value(&event, r).unwrap_or(0.0).clamp(0.0, 1.0);
                    self.known.series[s][t * k + at + 1] = value(&holiday, r).unwrap_or(0.0).clamp(0.0, 1.0);
                }
            }
        }
        Ok(())
    }

    /// Writes the user's covariate rows onto the series their keys reach (the broadest first, so
    /// the most specific row of a period wins), standardised per covariate.
    fn fill_user(&mut self, mut rows: Vec<UserRow>, names: &[String], known: bool, keys: &Keys<'_>) {
        if names.is_empty() {
            return;
        }
        let (width, first) = if known {
            (self.known.series_names.len(), PRICE_PROMO.len() + LOCAL.len())
        } else {
            (self.past.names.len(), PAST.len())
        };
        let periods = if known { self.history + self.horizon } else { self.history };
        let column: HashMap<&str, usize> = names.iter().enumerate().map(|(i, n)| (n.as_str(), first + i)).collect();
        rows.sort_by_key(|r| u8::from(r.item.is_some()) + 2 * u8::from(r.location.is_some()));
        // Per covariate: raw values as they are when all lie in [0, 1], else (mean, sd).
        let mut stats: HashMap<&str, (f64, f64, usize, bool)> = HashMap::new();
        for r in &rows {
            let e = stats.entry(r.name.as_str()).or_insert((0.0, 0.0, 0, true));
            e.0 += r.value as f64;
            e.1 += (r.value as f64).powi(2);
            e.2 += 1;
            e.3 &= (0.0..=1.0).contains(&r.value);
        }
        let scale: HashMap<&str, Option<(f64, f64)>> = stats
            .iter()
            .map(|(n, (sum, sumsq, count, unit))| {
                let mean = sum / (*count).max(1) as f64;
                let sd = (sumsq / (*count).max(1) as f64 - mean * mean).max(0.0).sqrt();
                (*n, (!unit).then_some((mean, if sd > 1e-12 { sd } else { 1.0 })))
            })
            .collect();
        let all: Vec<usize> = (0..keys.all).collect();
        for r in &rows {
            let Some(&c) = column.get(r.name.as_str()) else { continue };
            if r.t >= periods {
                continue;
            }
            let v = match scale.get(r.name.as_str()).copied().flatten() {
                Some((mean, sd)) => ((r.value as f64 - mean) / sd).clamp(-5.0, 5.0) as f32,
                None => r.value,
            };
            let one;
            let series: &[usize] = match (&r.item, &r.location) {
                (Some(i), Some(l)) => match keys.series.get(&(i.as_str(), l.as_str())) {
                    Some(&s) => {
                        one = [s];
                        &one
                    }
                    None => &[],
                },
                (Some(i), None) => keys.by_item.get(i.as_str()).map_or(&[], |v| v.as_slice()),
                (None, Some(l)) => keys.by_location.get(l.as_str()).map_or(&[], |v| v.as_slice()),
                (None, None) => &all,
            };
            for &s in series {
                if known {
                    self.known.series[s][r.t * width + c] = v;
                } else {
                    self.past.values[s][r.t * width + c] = v;
                }
            }
        }
    }

    /// The covariates of the series `keep` (indices, in order) as of `periods` periods before
    /// the end: those periods move from the history to the horizon (see [`super::Panel::cut`]).
    pub fn cut(&self, periods: usize, keep: &[usize]) -> Self {
        let periods = periods.min(self.history);
        let pick = |v: &Vec<Vec<f32>>| keep.iter().map(|&s| v[s].clone()).collect::<Vec<_>>();
        let p = self.past.names.len();
        Self {
            start: self.start,
            history: self.history - periods,
            horizon: self.horizon + periods,
            known: Known { series: pick(&self.known.series), ..self.known.clone_shared() },
            past: Past {
                names: self.past.names.clone(),
                values: keep.iter().map(|&s| self.past.values[s][..(self.history - periods) * p].to_vec()).collect(),
            },
            statics: Statics {
                names: self.statics.names.clone(),
                values: self.statics.values.iter().map(|col| keep.iter().map(|&s| col[s].clone()).collect()).collect(),
            },
        }
    }

    /// The features that hold one value at every period before period `before` of every series:
    /// (column, that value), columns numbered as [`Covariates::known_at`] then
    /// [`Covariates::past_at`] write them (known first). A model that trained on those periods
    /// alone never saw such a feature vary, so it cannot have learnt what a change means (a feed
    /// that starts after them, markdowns first run in the last weeks). None before period 1.
    pub fn constant_before(&self, before: usize) -> Vec<(usize, f32)> {
        let before = before.min(self.history);
        if before == 0 {
            return Vec::new();
        }
        let (c, k, p) = (self.known.calendar_names.len(), self.known.series_names.len(), self.past.names.len());
        fn constant(mut values: impl Iterator<Item = f32>) -> Option<f32> {
            let first = values.next()?;
            values.all(|v| v == first).then_some(first)
        }
        let calendar =
            (0..c).filter_map(|j| constant((0..before).map(|t| self.known.calendar[t * c + j])).map(|v| (j, v)));
        let series = (0..k).filter_map(|j| {
            constant(self.known.series.iter().flat_map(|v| (0..before).map(move |t| v[t * k + j]))).map(|v| (c + j, v))
        });
        let past = (0..p).filter_map(|j| {
            constant(self.past.values.iter().flat_map(|v| (0..before).map(move |t| v[t * p + j])))
                .map(|v| (c + k + j, v))
        });
        calendar.chain(series).chain(past).collect()
    }

    /// Number of known features per period (calendar, then per series).
    pub fn known_dim(&self) -> usize {
        self.known.calendar_names.len() + self.known.series_names.len()
    }

    /// Number of past features per period.
    pub fn past_dim(&self) -> usize {
        self.past.names.len()
    }

    /// Names of the known features, in the order [`Covariates::known_at`] writes them.
    pub fn known_names(&self) -> Vec<String> {
        self.known.calendar_names.iter().chain(&self.known.series_names).cloned().collect()
    }

    /// The period index of value `i` of a series of `n` values (`i ≥ n`: after the end), if held.
    pub fn index(&self, n: usize, i: isize) -> Option<usize> {
        let t = self.history as isize - n as isize + i;
        (t >= 0 && (t as usize) < self.history + self.horizon).then_some(t as usize)
    }

    /// Appends the known features of series `s` at period `t` (defaults when `t` is not held).
    pub fn known_at(&self, s: usize, t: Option<usize>, out: &mut Vec<f32>) {
        let c = self.known.calendar_names.len();
        let k = self.known.series_names.len();
        match t.filter(|t| *t < self.history + self.horizon) {
            Some(t) => {
                out.extend_from_slice(&self.known.calendar[t * c..(t + 1) * c]);
                out.extend_from_slice(&self.known.series[s][t * k..(t + 1) * k]);
            }
            None => out.extend(std::iter::repeat_n(0.0, c + k)),
        }
    }

    /// Appends the past features of series `s` at period `t` (zeros when `t` is not in the history).
    pub fn past_at(&self, s: usize, t: Option<usize>, out: &mut Vec<f32>) {
        let p = self.past.names.len();
        match t.filter(|t| *t < self.history) {
            Some(t) => out.extend_from_slice(&self.past.values[s][t * p..(t + 1) * p]),
            None => out.extend(std::iter::repeat_n(0.0, p)),
        }
    }

    fn fill_calendar(&mut self, batches: &[RecordBatch], grid: &Grid) -> Result<()> {
        let c = CALENDAR.len();
        for b in batches {
            let dates = date_column(b)?;
            let is_event = float_column(b, "is_event")?;
            let kind = string_column(b, "event_kind")?;
            let next = float_column(b, "days_to_next_event")?;
            let last = float_column(b, "days_since_last_event")?;
            for r in 0..b.num_rows() {
                let Some(t) = grid.index(&dates, r) else { continue };
                let row = &mut self.known.calendar[t * c..(t + 1) * c];
                row[0] = value(&is_event, r).unwrap_or(0.0).clamp(0.0, 1.0);
                let kind = kind.as_ref().filter(|k| !k.is_null(r)).map(|k| k.value(r));
                row[1] = f32::from(kind == Some("holiday"));
                row[2] = f32::from(kind == Some("festival"));
                row[3] = f32::from(kind == Some("season"));
                row[4] = value(&next, r).map_or(1.0, |d| d.clamp(0.0, EVENT_DAYS) / EVENT_DAYS);
                row[5] = value(&last, r).map_or(1.0, |d| d.clamp(0.0, EVENT_DAYS) / EVENT_DAYS);
            }
        }
        Ok(())
    }

    fn fill_price_promo(
        &mut self,
        batches: &[RecordBatch],
        grid: &Grid,
        series: &HashMap<(&str, &str), usize>,
    ) -> Result<()> {
        let k = self.known.series_names.len();
        let period_days = grid.step as f32;
        for b in batches {
            let discount = float_column(b, "discount")?;
            let promo = float_column(b, "promo")?;
            let post = float_column(b, "post_promo")?;
            let days = float_column(b, "promo_days")?;
            let rel_own = float_column(b, "price_rel_own_28")?;
            let rel_cat = float_column(b, "price_rel_category")?;
            each_cell(b, grid, series, |s, t, r| {
                let row = &mut self.known.series[s][t * k..(t + 1) * k];
                row[0] = value(&discount, r).unwrap_or(0.0).clamp(0.0, 1.0);
                row[1] = value(&promo, r).unwrap_or(0.0).clamp(0.0, 1.0);
                row[2] = value(&post, r).unwrap_or(0.0).clamp(0.0, 1.0);
                row[3] = (value(&days, r).unwrap_or(0.0) / period_days).clamp(0.0, 1.0);
                // Relative prices as deviations from 1, so a missing price reads as "as usual".
                row[4] = relative(value(&rel_own, r));
                row[5] = relative(value(&rel_cat, r));
            })?;
        }
        Ok(())
    }

    fn fill_competitor(
        &mut self,
        batches: &[RecordBatch],
        grid: &Grid,
        series: &HashMap<(&str, &str), usize>,
    ) -> Result<()> {
        let k = self.known.series_names.len();
        let at = PRICE_PROMO.len() - 1;
        for b in batches {
            let rel = float_column(b, "price_rel_competitor")?;
            // No competitor reads as level with it.
            each_cell(b, grid, series, |s, t, r| self.known.series[s][t * k + at] = relative(value(&rel, r)))?;
        }
        Ok(())
    }

    fn fill_stock_out(
        &mut self,
        batches: &[RecordBatch],
        grid: &Grid,
        series: &HashMap<(&str, &str), usize>,
    ) -> Result<()> {
        let (p, history) = (self.past.names.len(), self.history);
        for b in batches {
            let stock_out = float_column(b, "stock_out")?;
            each_cell(b, grid, series, |s, t, r| {
                if t < history {
                    self.past.values[s][t * p] = value(&stock_out, r).unwrap_or(0.0).clamp(0.0, 1.0);
                }
            })?;
        }
        Ok(())
    }

    /// Writes the lagged behaviour of each item onto its series; views are raw until
    /// [`Covariates::finish_behaviour`] divides them by the item's mean (sums kept in `views_sum`).
    fn fill_behaviour(
        &mut self,
        batches: &[RecordBatch],
        grid: &Grid,
        by_item: &HashMap<&str, Vec<usize>>,
        views_sum: &mut HashMap<String, (f64, usize)>,
    ) -> Result<()> {
        let p = self.past.names.len();
        for b in batches {
            let items = key_column(b, "item_id")?;
            let dates = date_column(b)?;
            let views = float_column(b, "views_lag_1")?;
            let conv = float_column(b, "conversion_lag_1")?;
            let cart = float_column(b, "cart_rate_lag_1")?;
            for r in 0..b.num_rows() {
                let Some(series) = (!items.is_null(r)).then(|| by_item.get(items.value(r))).flatten() else {
                    continue;
                };
                let Some(t) = grid.index(&dates, r).filter(|t| *t < self.history) else { continue };
                let v = value(&views, r).unwrap_or(0.0).max(0.0);
                let e = views_sum.entry(items.value(r).to_string()).or_default();
                e.0 += v as f64;
                e.1 += 1;
                let conv = value(&conv, r).unwrap_or(0.0).clamp(0.0, 1.0);
                let cart = value(&cart, r).unwrap_or(0.0).clamp(0.0, 1.0);
                for &s in series {
                    let row = &mut self.past.values[s][t * p..(t + 1) * p];
                    row[1] = v;
                    row[2] = conv;
                    row[3] = cart;
                }
            }
        }
        Ok(())
    }

    /// Views differ by orders of magnitude between items: each is read relative to the item's
    /// own mean over the periods held (clipped at 5).
    fn finish_behaviour(&mut self, by_item: &HashMap<&str, Vec<usize>>, views_sum: &HashMap<String, (f64, usize)>) {
        let p = self.past.names.len();
        for (item, series) in by_item {
            let mean = views_sum.get(*item).map_or(0.0, |(sum, n)| sum / (*n).max(1) as f64);
            for &s in series {
                for row in self.past.values[s].chunks_exact_mut(p) {
                    row[1] = if mean > 0.0 { (row[1] as f64 / mean).min(5.0) as f32 } else { 0.0 };
                }
            }
        }
    }

    fn fill_statics(&mut self, batches: &[RecordBatch], series: &HashMap<(&str, &str), usize>) -> Result<()> {
        for b in batches {
            let (items, locs) = (key_column(b, "item_id")?, key_column(b, "location_id")?);
            let columns: Vec<Option<StringArray>> =
                STATIC.iter().map(|n| string_column(b, n)).collect::<Result<_>>()?;
            for r in 0..b.num_rows() {
                let Some(s) = lookup(series, &items, &locs, r) else { continue };
                for (a, col) in columns.iter().enumerate() {
                    self.statics.values[a][s] = col.as_ref().filter(|c| !c.is_null(r)).map(|c| c.value(r).to_string());
                }
            }
        }
        Ok(())
    }
}

/// One row of a user covariate table, on the grid.
struct UserRow {
    name: String,
    item: Option<String>,
    location: Option<String>,
    t: usize,
    value: f32,
}

/// The series of a panel by key, by item and by location.
struct Keys<'a> {
    series: &'a HashMap<(&'a str, &'a str), usize>,
    by_item: &'a HashMap<&'a str, Vec<usize>>,
    by_location: &'a HashMap<&'a str, Vec<usize>>,
    all: usize,
}

/// Collects the rows of a user covariate table (`name, item_id, location_id, date, value`) that
/// fall on the grid.
fn user_rows(batches: &[RecordBatch], grid: &Grid, out: &mut Vec<UserRow>) -> Result<()> {
    for b in batches {
        let name = key_column(b, "name")?;
        let (items, locs) = (key_column(b, "item_id")?, key_column(b, "location_id")?);
        let dates = date_column(b)?;
        let values = float_column(b, "value")?;
        for r in 0..b.num_rows() {
            let (Some(t), Some(v)) = (grid.index(&dates, r), value(&values, r)) else { continue };
            if name.is_null(r) {
                continue;
            }
            out.push(UserRow {
                name: name.value(r).to_string(),
                item: (!items.is_null(r)).then(|| items.value(r).to_string()),
                location: (!locs.is_null(r)).then(|| locs.value(r).to_string()),
                t,
                value: v,
            });
        }
    }
    Ok(())
}

/// The covariates of `rows`, sorted by name; beyond [`MAX_USER_COVARIATES`] the ones with the
/// most rows.
fn user_names(rows: &[UserRow], table: &str) -> Vec<String> {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in rows {
        *counts.entry(r.name.as_str()).or_default() += 1;
    }
    let mut names: Vec<(&str, usize)> = counts.into_iter().collect();
    names.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    if names.len() > MAX_USER_COVARIATES {
        let dropped: Vec<&str> = names[MAX_USER_COVARIATES..].iter().map(|n| n.0).collect();
        warn!(table, kept = MAX_USER_COVARIATES, dropped = %dropped.join(", "), "too many covariates; the rarest are left out");
        names.truncate(MAX_USER_COVARIATES);
    }
    let mut out: Vec<String> = names.into_iter().map(|n| n.0.to_string()).collect();
    out.sort();
    out
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The period grid held: day numbers of each period's first day.
struct Grid {
    start_day: i64,
    step: i64,
    periods: usize,
}

impl Grid {
    fn index(&self, dates: &Date32Array, r: usize) -> Option<usize> {
        if dates.is_null(r) {
            return None;
        }
        let off = dates.value(r) as i64 - self.start_day;
        (off >= 0 && off % self.step == 0 && ((off / self.step) as usize) < self.periods)
            .then(|| (off / self.step) as usize)
    }
}

fn epoch_day(d: NaiveDate) -> i64 {
    (d - NaiveDate::default()).num_days()
}

/// Hands each file of a feature table to `f`; a table that was not materialised is skipped.
async fn read_table(
    lake: &Lake,
    name: &str,
    cutoff: NaiveDate,
    f: impl FnMut(Vec<RecordBatch>) -> Result<()>,
) -> Result<()> {
    let dir = layout::features(name, cutoff);
    if dataset::read_manifest(lake, &dir).await?.is_none() {
        warn!(table = name, %cutoff, "feature table not materialised; its covariates keep their defaults");
        return Ok(());
    }
    dataset::read_each(lake, &dir, f).await?;
    Ok(())
}

/// Calls `f(series, period, row)` for each row of `b` whose series is in the panel and whose
/// period is held.
fn each_cell(
    b: &RecordBatch,
    grid: &Grid,
    series: &HashMap<(&str, &str), usize>,
    mut f: impl FnMut(usize, usize, usize),
) -> Result<()> {
    let (items, locs) = (key_column(b, "item_id")?, key_column(b, "location_id")?);
    let dates = date_column(b)?;
    for r in 0..b.num_rows() {
        let Some(s) = lookup(series, &items, &locs, r) else { continue };
        let Some(t) = grid.index(&dates, r) else { continue };
        f(s, t, r);
    }
    Ok(())
}

/// A relative price as its deviation from 1, clipped to ±1; none reads as 0 ("as usual").
fn relative(v: Option<f32>) -> f32 {
    v.map_or(0.0, |v| (v - 1.0).clamp(-1.0, 1.0))
}

fn lookup(series: &HashMap<(&str, &str), usize>, items: &StringArray, locs: &StringArray, r: usize) -> Option<usize> {
    if items.is_null(r) || locs.is_null(r) {
        return None;
    }
    series.get(&(items.value(r), locs.value(r))).copied()
}

fn value(col: &Option<Float64Array>, r: usize) -> Option<f32> {
    col.as_ref().filter(|c| !c.is_null(r)).map(|c| c.value(r) as f32).filter(|v| v.is_finite())
}

fn date_column(b: &RecordBatch) -> Result<Date32Array> {
    let col = b.column_by_name("date").ok_or_else(|| crate::Error::data("a feature table has no `date` column"))?;
    Ok(cast(col, &DataType::Date32)?.as_primitive::<arrow::datatypes::Date32Type>().clone())
}

fn key_column(b: &RecordBatch, name: &str) -> Result<StringArray> {
    string_column(b, name)?.ok_or_else(|| crate::Error::data(format!("a feature table has no `{name}` column")))
}

/// A column as strings, `None` when the table does not have it.
fn string_column(b: &RecordBatch, name: &str) -> Result<Option<StringArray>> {
    b.column_by_name(name).map(|c| Ok(cast(c, &DataType::Utf8)?.as_string::<i32>().clone())).transpose()
}

/// A numeric or boolean column as f64, `None` when the table does not have it.
fn float_column(b: &RecordBatch, name: &str) -> Result<Option<Float64Array>> {
    b.column_by_name(name)
        .map(|c| Ok(cast(c, &DataType::Float64)?.as_primitive::<arrow::datatypes::Float64Type>().clone()))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feature_is_constant_before_a_period_when_every_series_held_one_value_there() {
        let mut c = Covariates::empty(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(), 2, 10, 3);
        let (cal, k, p) = (CALENDAR.len(), c.known.series_names.len(), c.past.names.len());
        // An event at period 2 (calendar), a promotion of series 1 from period 8 on (known), and
        // traffic that differs between the two series (past).
        c.known.calendar[2 * cal] = 1.0;
        for t in 8..13 {
            c.known.series[1][t * k + 1] = 1.0;
        }
        c.past.values[1][p] = 0.5;
        let held = c.constant_before(8);
        let columns: Vec<usize> = held.iter().map(|(j, _)| *j).collect();
        assert!(!columns.contains(&0), "the event varied");
        assert!(columns.contains(&1) && columns.contains(&(cal + 1)), "the promotion starts at period 8");
        assert!(!columns.contains(&(cal + k)), "the traffic varied across series");
        assert_eq!(held.iter().find(|(j, _)| *j == cal + 1), Some(&(cal + 1, 0.0)));
        assert!(!c.constant_before(9).iter().any(|(j, _)| *j == cal + 1), "period 8 holds the promotion");
        assert!(c.constant_before(0).is_empty(), "no period: nothing seen");
    }

    #[test]
    fn periods_are_indexed_from_the_end() {
        let c = Covariates::empty(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap(), 2, 10, 3);
        // A series of 4 values: its last value sits at the panel's end (t = 9).
        assert_eq!(c.index(4, 3), Some(9));
        assert_eq!(c.index(4, 4), Some(10), "first period after the end");
        assert_eq!(c.index(20, 0), None, "older than the periods held");
        assert_eq!(c.index(4, 7), None, "beyond the horizon held");
        let mut out = Vec::new();
        c.known_at(1, Some(12), &mut out);
        c.past_at(1, Some(12), &mut out);
        assert_eq!(out.len(), c.known_dim() + c.past_dim());
        assert_eq!(out[4], 1.0, "no event nearby by default");
    }
}
