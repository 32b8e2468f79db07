//! Closures: the periods in which a series cannot sell, known in advance (the `closed_periods`
//! feature table), and what they mean for every model.
//!
//! A closure belongs to a location, an item at a location, an item everywhere or everything (the
//! keys of the `closures` raw table, NULL meaning "every"); [`Closures`] keeps the rows at those
//! keys and resolves them per series on lookup, so a nationwide closure is one entry, not one per
//! series. Two rules follow for every model ([`crate::models::closed`] applies them):
//!
//! - **fitting**: a period closed the whole period carries no demand signal. Its value is replaced
//!   by the mean of the nearest open periods of the same phase of the week (the same weekday a few
//!   weeks around it), else of the nearest open periods either side, so no model learns "Sundays
//!   are low" from a closing day nor reads the days after a closure as a trend;
//! - **forecasting**: a period closed the whole period is forecast exactly 0, mean and every
//!   quantile. A period closed part of the time (a closed day in a week) is left to the models
//!   that read the `closed` covariate.

use std::collections::HashMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Float64Type};
use chrono::NaiveDate;

use super::{Panel, SeriesKey};
use crate::error::{Error, Result};
use crate::lake::{Lake, dataset, layout};

/// A share of the period at or above this is "closed the whole period".
pub const FULLY_CLOSED: f32 = 0.999;

/// Same-phase periods (this many cycles either side) an imputed value is the mean of.
const CYCLES: usize = 4;

/// (period's first day since the epoch, closed share), sorted by day.
type Days = Vec<(i32, f32)>;

/// Closed periods by key.
#[derive(Debug, Clone, Default)]
pub struct Closures {
    /// Location → item → days.
    exact: HashMap<String, HashMap<String, Days>>,
    /// Location → days (every item there).
    location: HashMap<String, Days>,
    /// Item → days (at every location).
    item: HashMap<String, Days>,
    /// Days closed everywhere.
    everywhere: Days,
    /// Rows read.
    rows: usize,
}

impl Closures {
    /// Closures from rows of the `closed_periods` feature table (`location_id, item_id, date,
    /// closed_share`).
    pub fn from_batches(batches: &[RecordBatch]) -> Result<Self> {
        let mut c = Self::default();
        for b in batches {
            c.push(b)?;
        }
        c.finish();
        Ok(c)
    }

    /// The closures materialised with the feature tables of `cutoff` (`None` when there are none,
    /// or the table was not materialised).
    pub async fn read(lake: &Lake, cutoff: NaiveDate) -> Result<Option<Self>> {
        let dir = layout::features("closed_periods", cutoff);
        if dataset::read_manifest(lake, &dir).await?.is_none() {
            return Ok(None);
        }
        let mut c = Self::default();
        dataset::read_each(lake, &dir, |part| part.iter().try_for_each(|b| c.push(b))).await?;
        c.finish();
        Ok((!c.is_empty()).then_some(c))
    }

    /// The closures of the `closed_periods` feature query run in `ctx` for `params` (`None` when there
    /// are none).
    pub async fn query(
        ctx: &datafusion::prelude::SessionContext,
        params: crate::features::FeatureParams,
    ) -> Result<Option<Self>> {
        let q = crate::features::queries::by_name("closed_periods", params.frequency)
            .ok_or_else(|| Error::data("no `closed_periods` feature query"))?;
        let batches = crate::features::dataframe(ctx, q, params).await?.collect().await?;
        let c = Self::from_batches(&batches)?;
        Ok((!c.is_empty()).then_some(c))
    }

    /// Whether no period is closed anywhere.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    fn push(&mut self, b: &RecordBatch) -> Result<()> {
        let text = |n: &str| -> Result<arrow::array::StringArray> {
            let c = b.column_by_name(n).ok_or_else(|| Error::data(format!("closures rows have no `{n}` column")))?;
            Ok(cast(c, &DataType::Utf8)?.as_string::<i32>().clone())
        };
        let (locs, items) = (text("location_id")?, text("item_id")?);
        let dates = b.column_by_name("date").ok_or_else(|| Error::data("closures rows have no `date` column"))?;
        let dates = cast(dates, &DataType::Date32)?;
        let dates = dates.as_primitive::<Date32Type>();
        let share =
            b.column_by_name("closed_share").ok_or_else(|| Error::data("closures rows have no `closed_share`"))?;
        let share = cast(share, &DataType::Float64)?;
        let share = share.as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            if dates.is_null(r) || share.is_null(r) {
                continue;
            }
            let day = (dates.value(r), share.value(r).clamp(0.0, 1.0) as f32);
            let loc = (!locs.is_null(r)).then(|| locs.value(r).to_string());
            let item = (!items.is_null(r)).then(|| items.value(r).to_string());
            let days = match (loc, item) {
                (Some(l), Some(i)) => self.exact.entry(l).or_default().entry(i).or_default(),
                (Some(l), None) => self.location.entry(l).or_default(),
                (None, Some(i)) => self.item.entry(i).or_default(),
                (None, None) => &mut self.everywhere,
            };
            days.push(day);
            self.rows += 1;
        }
        Ok(())
    }

    fn finish(&mut self) {
        let sort = |d: &mut Days| d.sort_by_key(|x| x.0);
        self.exact.values_mut().flat_map(|m| m.values_mut()).for_each(sort);
        self.location.values_mut().for_each(sort);
        self.item.values_mut().for_each(sort);
        sort(&mut self.everywhere);
    }

    /// The closed periods of one series: (period's first day, closed share), sorted, the largest
    /// share where several keys close the same period.
    pub fn series_days(&self, key: &SeriesKey) -> Vec<(i32, f32)> {
        let mut out: Vec<(i32, f32)> = Vec::new();
        let lists = [
            self.exact.get(&key.location_id).and_then(|m| m.get(&key.item_id)),
            self.location.get(&key.location_id),
            self.item.get(&key.item_id),
            Some(&self.everywhere),
        ];
        for days in lists.into_iter().flatten() {
            out.extend_from_slice(days);
        }
        out.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));
        out.dedup_by_key(|d| d.0);
        out
    }

    /// Per period of series `s` of `panel` (its values, then `horizon` periods after the end): the
    /// closed share.
    pub fn shares(&self, panel: &Panel, s: usize, horizon: usize) -> Vec<f32> {
        let n = panel.values[s].len();
        let step = panel.frequency.days();
        let end_day = (panel.end - NaiveDate::default()).num_days();
        let first = end_day - step * (n as i64 - 1);
        let mut out = vec![0.0; n + horizon];
        for (day, share) in self.series_days(&panel.keys[s]) {
            let off = day as i64 - first;
            if off >= 0 && off % step == 0 && ((off / step) as usize) < out.len() {
                out[(off / step) as usize] = share;
            }
        }
        out
    }
}

/// The values of a series with its fully closed periods replaced (see the module docs); `shares`
/// from [`Closures::shares`], at least as long as `y`. `phase` is the cycle of the same weekday
/// (7 daily, 1 weekly).
pub fn impute(y: &[f32], shares: &[f32], phase: usize) -> Vec<f32> {
    let closed = |i: usize| shares.get(i).is_some_and(|s| *s >= FULLY_CLOSED);
    let mut out = y.to_vec();
    let phase = phase.max(1);
    for i in (0..y.len()).filter(|&i| closed(i)) {
        let mut same_phase = Vec::new();
        for k in 1..=CYCLES {
            let d = k * phase;
            if i >= d && !closed(i - d) {
                same_phase.push(y[i - d]);
            }
            if i + d < y.len() && !closed(i + d) {
                same_phase.push(y[i + d]);
            }
        }
        let mut pool = same_phase;
        if pool.is_empty() {
            // Nearest open periods either side, up to a cycle away.
            for d in 1..=phase.max(7) {
                if i >= d && !closed(i - d) {
                    pool.push(y[i - d]);
                    break;
                }
            }
            for d in 1..=phase.max(7) {
                if i + d < y.len() && !closed(i + d) {
                    pool.push(y[i + d]);
                    break;
                }
            }
        }
        if !pool.is_empty() {
            out[i] = pool.iter().sum::<f32>() / pool.len() as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::period::Frequency;
    use arrow::array::{ArrayRef, Date32Array, Float64Array, StringArray};
    use std::sync::Arc;

    fn rows(r: &[(Option<&str>, Option<&str>, i32, f64)]) -> RecordBatch {
        RecordBatch::try_from_iter(vec![
            ("location_id", Arc::new(StringArray::from(r.iter().map(|x| x.0).collect::<Vec<_>>())) as ArrayRef),
            ("item_id", Arc::new(StringArray::from(r.iter().map(|x| x.1).collect::<Vec<_>>())) as ArrayRef),
            ("date", Arc::new(Date32Array::from(r.iter().map(|x| x.2).collect::<Vec<_>>())) as ArrayRef),
            ("closed_share", Arc::new(Float64Array::from(r.iter().map(|x| x.3).collect::<Vec<_>>())) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn keys_resolve_per_series_and_the_largest_share_wins() {
        let c = Closures::from_batches(&[rows(&[
            (Some("s1"), None, 10, 1.0),
            (Some("s1"), Some("a"), 11, 0.5),
            (None, None, 12, 1.0),
            (None, Some("b"), 13, 1.0),
            (Some("s2"), None, 11, 1.0),
        ])])
        .unwrap();
        let key = |i: &str, l: &str| SeriesKey { item_id: i.into(), location_id: l.into() };
        assert_eq!(c.series_days(&key("a", "s1")), vec![(10, 1.0), (11, 0.5), (12, 1.0)]);
        assert_eq!(c.series_days(&key("b", "s1")), vec![(10, 1.0), (12, 1.0), (13, 1.0)]);
        assert_eq!(c.series_days(&key("a", "s3")), vec![(12, 1.0)]);
        // Shares on the panel's grid: a 5-day series ending on day 12, and 2 days after.
        let panel = Panel::new(
            vec![key("a", "s1")],
            vec![vec![1.0; 5]],
            NaiveDate::default() + chrono::Duration::days(12),
            Frequency::Daily,
        );
        assert_eq!(c.shares(&panel, 0, 2), vec![0.0, 0.0, 1.0, 0.5, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn closed_periods_take_the_same_weekday_around_them_not_zero() {
        // Three weeks, Sundays (index 6, 13) sell 20; the middle Sunday is closed.
        let mut y = vec![10.0f32; 21];
        y[6] = 20.0;
        y[13] = 0.0;
        y[20] = 20.0;
        let mut shares = vec![0.0; 21];
        shares[13] = 1.0;
        let out = impute(&y, &shares, 7);
        assert_eq!(out[13], 20.0);
        assert_eq!(&out[..13], &y[..13]);
        // Every Sunday closed: the days either side.
        let mut all = vec![0.0; 21];
        for i in [6, 13, 20] {
            all[i] = 1.0;
        }
        let mut y2 = y.clone();
        y2[5] = 8.0;
        y2[7] = 12.0;
        assert_eq!(impute(&y2, &all, 7)[6], 10.0);
    }
}
