//! Forecast stability: how much each series' forecast moved since the previous run.
//!
//! For every series published both now and by the previous run date (the newest forecasts
//! dataset before this one), the two forecasts are compared over the target dates both cover:
//! `change = (new total − old total) / max(old total, 1)`, the relative change of the expected
//! demand over those dates (the denominator is at least one unit, so a series going from 0.01 to
//! 0.05 units is not a 400% jump). A series whose `|change|` reaches the threshold
//! (`[publish] jump-threshold`) is a *jump*. The summary (quantiles of `|change|`, the number of
//! jumps and the largest ones) goes into the forecast manifest and the run record; the change of
//! each series is a column of the replenishment dataset.

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::lake::{Lake, dataset, layout};

/// Largest jumps listed in the summary.
pub const TOP: usize = 10;

/// An item × location.
pub type Key = (String, String);

/// Forecast means per series and target date (days since 1970-01-01).
pub type SeriesMeans = HashMap<Key, BTreeMap<i32, f64>>;

/// How one series moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesChange {
    /// The item.
    pub item_id: String,
    /// The location.
    pub location_id: String,
    /// Expected demand over the shared target dates, previous run.
    pub previous_total: f64,
    /// The same, this run.
    pub total: f64,
    /// Relative change (see the module documentation).
    pub change: f64,
    /// Target dates compared.
    pub days: usize,
}

/// The summary written to the manifest and the run record.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct StabilitySummary {
    /// The run date compared against; `None` for a first publication.
    pub previous_run_date: Option<NaiveDate>,
    /// Series compared.
    pub series_compared: usize,
    /// Series without a forecast in the previous run.
    pub new_series: usize,
    /// Series of the previous run without a forecast now.
    pub dropped_series: usize,
    /// Median of `|change|`.
    pub median_abs_change: Option<f64>,
    /// 90th percentile of `|change|`.
    pub p90_abs_change: Option<f64>,
    /// Largest `|change|`.
    pub max_abs_change: Option<f64>,
    /// Relative change of the total over every compared series.
    pub total_change: Option<f64>,
    /// The threshold a jump reaches.
    pub jump_threshold: f64,
    /// Series whose `|change|` reaches it.
    pub jumps: usize,
    /// The largest changes, largest first.
    pub largest: Vec<SeriesChange>,
}

/// The comparison: the summary and each series' change.
#[derive(Debug, Clone, Default)]
pub struct Stability {
    /// For the manifest and report.
    pub summary: StabilitySummary,
    /// Per series.
    pub per_series: HashMap<Key, SeriesChange>,
}

/// The newest run date before `run_date` with a committed dataset under `dataset`.
pub async fn previous_run_date(lake: &Lake, dataset: &str, run_date: NaiveDate) -> Result<Option<NaiveDate>> {
    Ok(run_dates(lake, dataset).await?.into_iter().rfind(|d| *d < run_date))
}

/// The run dates with a committed dataset under `dataset` (`forecasts`, `shadow`), oldest first.
pub async fn run_dates(lake: &Lake, dataset: &str) -> Result<Vec<NaiveDate>> {
    let mut dates = Vec::new();
    for obj in lake.list(&layout::dataset_root(dataset)).await? {
        let parts: Vec<_> = obj.location.parts().map(|p| p.as_ref().to_string()).collect();
        if parts.len() != 3 || parts[2] != layout::MANIFEST {
            continue;
        }
        dates.extend(parts[1].strip_prefix("run_date=").and_then(|d| d.parse::<NaiveDate>().ok()));
    }
    dates.sort_unstable();
    dates.dedup();
    Ok(dates)
}

/// Means per series from forecast rows (`item_id`, `location_id`, `target_date`, `mean`).
pub fn means_from_batches(batches: &[RecordBatch]) -> Result<SeriesMeans> {
    let mut out = SeriesMeans::new();
    for b in batches {
        let col = |name: &str, ty: &DataType| -> Result<arrow::array::ArrayRef> {
            let c = b.column_by_name(name).ok_or_else(|| Error::data(format!("forecast rows have no `{name}`")))?;
            Ok(cast(c, ty)?)
        };
        let items = col("item_id", &DataType::Utf8)?;
        let locs = col("location_id", &DataType::Utf8)?;
        let dates = col("target_date", &DataType::Int32)?;
        let means = col("mean", &DataType::Float64)?;
        let (items, locs) = (items.as_string::<i32>(), locs.as_string::<i32>());
        let dates = dates.as_primitive::<arrow::datatypes::Int32Type>();
        let means = means.as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            if means.is_null(r) || dates.is_null(r) {
                continue;
            }
            out.entry((items.value(r).to_string(), locs.value(r).to_string()))
                .or_default()
                .insert(dates.value(r), means.value(r));
        }
    }
    Ok(out)
}

/// Compares `current` with the forecasts of the newest run date before `run_date`.
pub async fn against_previous(
    lake: &Lake,
    dataset_name: &str,
    run_date: NaiveDate,
    current: &SeriesMeans,
    threshold: f64,
) -> Result<Stability> {
    let Some(prev_date) = previous_run_date(lake, dataset_name, run_date).await? else {
        let summary = StabilitySummary { new_series: current.len(), jump_threshold: threshold, ..Default::default() };
        return Ok(Stability { summary, per_series: HashMap::new() });
    };
    let dir = layout::dataset_root(dataset_name).join(format!("run_date={prev_date}").as_str());
    let (_, batches) = dataset::read(lake, &dir).await?;
    let previous = means_from_batches(&batches)?;
    Ok(compare(Some(prev_date), &previous, current, threshold))
}

/// Compares two runs' means (see the module documentation).
pub fn compare(
    previous_run_date: Option<NaiveDate>,
    previous: &SeriesMeans,
    current: &SeriesMeans,
    threshold: f64,
) -> Stability {
    let mut per_series = HashMap::new();
    let (mut new_series, mut old_sum, mut new_sum) = (0, 0.0, 0.0);
    for (key, now) in current {
        let Some(before) = previous.get(key) else {
            new_series += 1;
            continue;
        };
        let shared: Vec<i32> = now.keys().filter(|d| before.contains_key(d)).copied().collect();
        if shared.is_empty() {
            new_series += 1;
            continue;
        }
        let total: f64 = shared.iter().map(|d| now[d]).sum();
        let previous_total: f64 = shared.iter().map(|d| before[d]).sum();
        old_sum += previous_total;
        new_sum += total;
        let change = (total - previous_total) / previous_total.max(1.0);
        per_series.insert(
            key.clone(),
            SeriesChange {
                item_id: key.0.clone(),
                location_id: key.1.clone(),
                previous_total,
                total,
                change,
                days: shared.len(),
            },
        );
    }
    let mut abs: Vec<f64> = per_series.values().map(|c| c.change.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let pick = |q: f64| (!abs.is_empty()).then(|| abs[((abs.len() - 1) as f64 * q).round() as usize]);
    let mut largest: Vec<SeriesChange> = per_series.values().cloned().collect();
    largest.sort_by(|a, b| {
        b.change
            .abs()
            .total_cmp(&a.change.abs())
            .then_with(|| (&a.item_id, &a.location_id).cmp(&(&b.item_id, &b.location_id)))
    });
    largest.truncate(TOP);
    let summary = StabilitySummary {
        previous_run_date,
        series_compared: per_series.len(),
        new_series,
        dropped_series: previous.keys().filter(|k| !current.contains_key(*k)).count(),
        median_abs_change: pick(0.5),
        p90_abs_change: pick(0.9),
        max_abs_change: abs.last().copied(),
        total_change: (!per_series.is_empty()).then(|| (new_sum - old_sum) / old_sum.max(1.0)),
        jump_threshold: threshold,
        jumps: abs.iter().filter(|a| **a >= threshold).count(),
        largest,
    };
    Stability { summary, per_series }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn means(rows: &[(&str, &[(i32, f64)])]) -> SeriesMeans {
        rows.iter().map(|(item, vals)| ((item.to_string(), "L".to_string()), vals.iter().copied().collect())).collect()
    }

    #[test]
    fn changes_are_measured_over_shared_dates_and_jumps_counted() {
        // Yesterday's run forecast days 1..3, today's 2..4: days 2 and 3 are compared.
        let prev =
            means(&[("a", &[(1, 5.0), (2, 10.0), (3, 10.0)]), ("b", &[(2, 1.0), (3, 1.0)]), ("gone", &[(2, 1.0)])]);
        let now =
            means(&[("a", &[(2, 11.0), (3, 11.0), (4, 50.0)]), ("b", &[(2, 3.0), (3, 3.0)]), ("new", &[(2, 1.0)])]);
        let s = compare(NaiveDate::from_ymd_opt(2026, 4, 1), &prev, &now, 0.5);
        let a = &s.per_series[&("a".to_string(), "L".to_string())];
        assert_eq!((a.previous_total, a.total, a.days), (20.0, 22.0, 2));
        assert!((a.change - 0.1).abs() < 1e-12);
        let b = &s.per_series[&("b".to_string(), "L".to_string())];
        assert!((b.change - 2.0).abs() < 1e-12, "2 → 6 units is +200%");
        let sum = &s.summary;
        assert_eq!((sum.series_compared, sum.new_series, sum.dropped_series, sum.jumps), (2, 1, 1, 1));
        assert_eq!(sum.largest[0].item_id, "b");
        assert_eq!(sum.max_abs_change, Some(2.0));
        assert!((sum.total_change.unwrap() - (28.0 - 22.0) / 22.0).abs() < 1e-12);
    }

    #[test]
    fn tiny_series_do_not_jump_by_division() {
        let prev = means(&[("a", &[(1, 0.01)])]);
        let now = means(&[("a", &[(1, 0.05)])]);
        let s = compare(None, &prev, &now, 0.5);
        assert!(s.summary.jumps == 0 && (s.summary.max_abs_change.unwrap() - 0.04).abs() < 1e-12);
    }
}
