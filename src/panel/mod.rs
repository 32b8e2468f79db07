//! The panel: feature rows turned into one dense array per series.
//!
//! Rows arrive as `item_id, location_id, date, units` (the `target` feature
//! table: zero-filled, one row per period). Every series ends on the same last
//! period (the one holding the cutoff); series start when they first sold.
//! The panel is the one place Arrow columns become numbers models read; the
//! tensor view of it lives in [`crate::models::nn`]. Deep models also read the panel's
//! [`Covariates`], when loaded: the other feature tables aligned with the same series.

pub mod calendar;
pub mod closures;
pub mod covariates;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Date32Array, Float64Array};
use arrow::compute::cast;
use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use chrono::{Duration, NaiveDate};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::period::Frequency;
pub use closures::Closures;
pub use covariates::Covariates;

/// Identifies one series.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct SeriesKey {
    /// The item.
    pub item_id: String,
    /// The location.
    pub location_id: String,
}

/// Per-series history on a common period grid.
#[derive(Debug, Clone)]
pub struct Panel {
    /// Series keys, sorted.
    pub keys: Vec<SeriesKey>,
    /// Values per series, oldest first; every series ends at [`Panel::end`].
    pub values: Vec<Vec<f32>>,
    /// First day of the last period.
    pub end: NaiveDate,
    /// The period grain.
    pub frequency: Frequency,
    /// Covariates aligned with the series, when loaded (shared: panels are cloned cheaply).
    pub covariates: Option<Arc<Covariates>>,
    /// The calendar models read is scrambled (only to measure its importance).
    pub scramble: Option<calendar::Scramble>,
    /// Closed periods, over the history and after it (keyed by series and date, so a panel cut
    /// at an earlier cutoff shares them).
    pub closures: Option<Arc<Closures>>,
}

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a arrow::array::ArrayRef> {
    batch.column_by_name(name).ok_or_else(|| Error::data(format!("feature rows have no column `{name}`")))
}

impl Panel {
    /// Builds a panel from feature rows whose last period starts on `end`.
    pub fn from_batches(batches: &[RecordBatch], frequency: Frequency, end: NaiveDate) -> Result<Self> {
        let mut builder = PanelBuilder::new(frequency, end);
        for b in batches {
            builder.push(b)?;
        }
        builder.finish()
    }

    /// Reads a committed feature dataset (`target`) file by file into a panel whose last period
    /// starts on `end`.
    pub async fn read(
        lake: &crate::lake::Lake,
        dir: &object_store::path::Path,
        frequency: Frequency,
        end: NaiveDate,
    ) -> Result<Self> {
        let mut builder = PanelBuilder::new(frequency, end);
        crate::lake::dataset::read_each(lake, dir, |part| part.iter().try_for_each(|b| builder.push(b))).await?;
        builder.finish()
    }

    /// Builds a panel from a stream of feature rows (a query's output), one batch at a time.
    pub async fn from_stream(
        mut stream: datafusion::execution::SendableRecordBatchStream,
        frequency: Frequency,
        end: NaiveDate,
    ) -> Result<Self> {
        use futures::StreamExt;
        let mut builder = PanelBuilder::new(frequency, end);
        while let Some(batch) = stream.next().await {
            builder.push(&batch?)?;
        }
        builder.finish()
    }

    /// A panel of these series, without covariates.
    pub fn new(keys: Vec<SeriesKey>, values: Vec<Vec<f32>>, end: NaiveDate, frequency: Frequency) -> Self {
        Self { keys, values, end, frequency, covariates: None, scramble: None, closures: None }
    }

    /// The same panel with covariates attached.
    pub fn with_covariates(mut self, covariates: Covariates) -> Self {
        self.covariates = Some(Arc::new(covariates));
        self
    }

    /// The panel's description (series, end, grain, covariates, closures) with no values; for
    /// building a panel of other values over the same series.
    pub fn clone_without_values(&self) -> Self {
        Self {
            keys: self.keys.clone(),
            values: Vec::new(),
            end: self.end,
            frequency: self.frequency,
            covariates: self.covariates.clone(),
            scramble: self.scramble,
            closures: self.closures.clone(),
        }
    }

    /// The panel as of `periods` periods before its end: every series cut that much shorter,
    /// series with nothing left dropped. Covariates stay attached, the cut periods moving from
    /// their history to their horizon (what was recorded over them, as of this panel's cutoff).
    /// Returns the panel and, per kept series, its index in this one.
    pub fn cut(&self, periods: usize) -> (Panel, Vec<usize>) {
        let (mut panel, index) = self.cut_without_covariates(periods);
        panel.covariates = self.covariates.as_ref().map(|c| Arc::new(c.cut(periods, &index)));
        (panel, index)
    }

    /// [`Panel::cut`] without the covariates, for models that read none: at tens of thousands of
    /// series a copy of the covariates' history is the largest part of a cut.
    pub fn cut_without_covariates(&self, periods: usize) -> (Panel, Vec<usize>) {
        let index: Vec<usize> = (0..self.len()).filter(|&s| self.values[s].len() > periods).collect();
        let values = index.iter().map(|&s| self.values[s][..self.values[s].len() - periods].to_vec()).collect();
        let keys = index.iter().map(|&s| self.keys[s].clone()).collect();
        let end = self.end - Duration::days(self.frequency.days() * periods as i64);
        let panel = Panel { keys, values, end, covariates: None, ..self.clone_without_values() };
        (panel, index)
    }

    /// The series `keep` (indices into this panel, in order) with their covariates and closures.
    pub fn select(&self, keep: &[usize]) -> Panel {
        let values = keep.iter().map(|&s| self.values[s].clone()).collect();
        let keys = keep.iter().map(|&s| self.keys[s].clone()).collect();
        let covariates = self.covariates.as_ref().map(|c| Arc::new(c.cut(0, keep)));
        Panel { keys, values, covariates, ..self.clone_without_values() }
    }

    /// The same panel with its closed periods attached (none when `closures` is `None`).
    pub fn with_closures(mut self, closures: Option<Closures>) -> Self {
        self.closures = closures.filter(|c| !c.is_empty()).map(Arc::new);
        self
    }

    /// A one-series daily panel ending 2026-01-01; for tests and examples.
    pub fn single(values: &[f32]) -> Self {
        Self::new(
            vec![SeriesKey { item_id: "item".into(), location_id: "location".into() }],
            vec![values.to_vec()],
            NaiveDate::from_ymd_opt(2026, 1, 1).expect("a valid date"),
            Frequency::Daily,
        )
    }

    /// The calendar models read for the period starting on `date` (scrambled when measuring).
    pub fn calendar(&self, date: NaiveDate) -> calendar::Calendar {
        match &self.scramble {
            Some(s) => s.apply(date),
            None => calendar::Calendar::of(date),
        }
    }

    /// Number of series.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the panel has no series.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Observations over all series.
    pub fn observations(&self) -> usize {
        self.values.iter().map(Vec::len).sum()
    }

    /// The first day of period `h` (1-based) after the end.
    pub fn target_date(&self, h: usize) -> NaiveDate {
        self.end + Duration::days(self.frequency.days() * h as i64)
    }
}

/// Builds a [`Panel`] batch by batch, so the feature rows need not all be held at once (see
/// `dataset::read_each`): memory holds one batch and 8 bytes per observation.
#[derive(Debug)]
pub struct PanelBuilder {
    frequency: Frequency,
    end: NaiveDate,
    index: HashMap<SeriesKey, usize>,
    /// (day since the epoch, units) per series, in arrival order.
    rows: Vec<Vec<(i32, f32)>>,
    /// The series of the previous row: rows come grouped by series, so most need no lookup.
    last: Option<(SeriesKey, usize)>,
}

impl PanelBuilder {
    /// A builder for a panel whose last period starts on `end`.
    pub fn new(frequency: Frequency, end: NaiveDate) -> Self {
        Self { frequency, end, index: HashMap::new(), rows: Vec::new(), last: None }
    }

    /// Adds feature rows (`item_id, location_id, date, units`).
    pub fn push(&mut self, b: &RecordBatch) -> Result<()> {
        let items = cast(column(b, "item_id")?, &DataType::Utf8)?;
        let locs = cast(column(b, "location_id")?, &DataType::Utf8)?;
        let dates = cast(column(b, "date")?, &DataType::Date32)?;
        let units = cast(column(b, "units")?, &DataType::Float64)?;
        let items = items.as_string::<i32>();
        let locs = locs.as_string::<i32>();
        let dates = dates.as_any().downcast_ref::<Date32Array>().expect("cast to Date32");
        let units = units.as_any().downcast_ref::<Float64Array>().expect("cast to Float64");
        for r in 0..b.num_rows() {
            if items.is_null(r) || locs.is_null(r) || dates.is_null(r) {
                return Err(Error::data(format!("feature row {r} has a null item_id, location_id or date")));
            }
            let (item, loc) = (items.value(r), locs.value(r));
            let i = match &self.last {
                Some((k, i)) if k.item_id == item && k.location_id == loc => *i,
                _ => {
                    let key = SeriesKey { item_id: item.to_string(), location_id: loc.to_string() };
                    let next = self.rows.len();
                    let i = *self.index.entry(key.clone()).or_insert(next);
                    if i == next {
                        self.rows.push(Vec::new());
                    }
                    self.last = Some((key, i));
                    i
                }
            };
            let v = if units.is_null(r) { 0.0 } else { units.value(r) as f32 };
            self.rows[i].push((dates.value(r), v));
        }
        Ok(())
    }

    /// The panel: series sorted by key, each checked to be on the period grid ending at `end`.
    pub fn finish(self) -> Result<Panel> {
        let Self { frequency, end, index, mut rows, .. } = self;
        let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
        let end_day = (end - epoch).num_days();
        let step = frequency.days();
        let mut keyed: Vec<(SeriesKey, Vec<(i32, f32)>)> =
            index.into_iter().map(|(k, i)| (k, std::mem::take(&mut rows[i]))).collect();
        drop(rows);
        keyed.sort_by(|a, b| a.0.cmp(&b.0));
        let mut keys = Vec::with_capacity(keyed.len());
        let mut values = Vec::with_capacity(keyed.len());
        for (key, mut obs) in keyed {
            obs.sort_by_key(|o| o.0);
            let last = obs.last().map(|o| o.0 as i64).unwrap_or(end_day);
            let contiguous = obs.windows(2).all(|w| (w[1].0 - w[0].0) as i64 == step);
            if last != end_day || !contiguous {
                return Err(Error::data(format!(
                    "series {}/{} is not on the period grid ending {end}: features must be zero-filled to the cutoff",
                    key.item_id, key.location_id
                )));
            }
            keys.push(key);
            values.push(obs.into_iter().map(|o| o.1).collect());
        }
        Ok(Panel::new(keys, values, end, frequency))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, StringArray};
    use std::sync::Arc;

    fn batch(rows: &[(&str, &str, i32, f64)]) -> RecordBatch {
        RecordBatch::try_from_iter(vec![
            ("item_id", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef),
            ("location_id", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.1))) as ArrayRef),
            ("date", Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.2))) as ArrayRef),
            ("units", Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.3))) as ArrayRef),
        ])
        .unwrap()
    }

    #[test]
    fn series_are_sorted_and_aligned_at_the_end() {
        let end = NaiveDate::from_ymd_opt(1970, 1, 4).unwrap();
        let b = batch(&[
            ("b", "s", 2, 1.0),
            ("a", "s", 1, 2.0),
            ("b", "s", 3, 4.0),
            ("a", "s", 2, 0.0),
            ("a", "s", 3, 5.0),
        ]);
        let p = Panel::from_batches(&[b], Frequency::Daily, end).unwrap();
        assert_eq!(p.keys[0].item_id, "a");
        assert_eq!(p.values, vec![vec![2.0, 0.0, 5.0], vec![1.0, 4.0]]);
        assert_eq!(p.target_date(1), NaiveDate::from_ymd_opt(1970, 1, 5).unwrap());
    }

    #[test]
    fn a_builder_fed_batch_by_batch_gives_the_same_panel() {
        let end = NaiveDate::from_ymd_opt(1970, 1, 4).unwrap();
        let rows = [("a", "s", 1, 2.0), ("a", "s", 2, 0.0), ("b", "s", 2, 1.0), ("a", "s", 3, 5.0), ("b", "s", 3, 4.0)];
        let whole = Panel::from_batches(&[batch(&rows)], Frequency::Daily, end).unwrap();
        let mut builder = PanelBuilder::new(Frequency::Daily, end);
        for part in rows.chunks(2) {
            builder.push(&batch(part)).unwrap();
        }
        let parts = builder.finish().unwrap();
        assert_eq!(parts.keys, whole.keys);
        assert_eq!(parts.values, vec![vec![2.0, 0.0, 5.0], vec![1.0, 4.0]]);
    }

    #[test]
    fn gaps_are_refused_naming_the_series() {
        let end = NaiveDate::from_ymd_opt(1970, 1, 4).unwrap();
        let b = batch(&[("a", "s", 1, 2.0), ("a", "s", 3, 5.0)]);
        let err = Panel::from_batches(&[b], Frequency::Daily, end).unwrap_err().to_string();
        assert!(err.contains("a/s"), "{err}");
    }
}
