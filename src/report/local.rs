//! The report's section on the user's own inputs at the run's cutoff: the closures that zero the
//! forecast over the horizon, and the covariates and local events the models read (from the
//! feature tables the run materialised).

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::lake::{Lake, dataset, layout};

/// The user's own inputs of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LocalSection {
    /// Closures over the horizon, per key and reason.
    pub closures: Vec<ClosureRow>,
    /// The covariates read, per name.
    pub covariates: Vec<CovariateRow>,
    /// Location × period rows with a local event (history and horizon).
    pub local_events: u64,
}

/// Closed periods after the cutoff of one key and reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ClosureRow {
    /// The location (`None`: every location).
    pub location_id: Option<String>,
    /// The item (`None`: every item).
    pub item_id: Option<String>,
    /// The reason given.
    pub reason: Option<String>,
    /// Periods closed the whole period (forecast 0).
    pub closed: u64,
    /// Periods closed part of the time.
    pub partly: u64,
    /// First and last closed period.
    pub first: NaiveDate,
    /// Last closed period.
    pub last: NaiveDate,
}

/// One covariate the models read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CovariateRow {
    /// Its input name (`user:NAME`).
    pub name: String,
    /// `known` (plans over the horizon) or `observed` (history only).
    pub kind: String,
    /// Rows read (key × period).
    pub rows: u64,
    /// Of which after the cutoff.
    pub ahead: u64,
    /// Keys: `everywhere`, `per location`, `per item`, `per series`, or a mix.
    pub keys: String,
}

/// A closure's location, item and reason.
type ClosureKey = (Option<String>, Option<String>, Option<String>);

fn text(b: &RecordBatch, name: &str) -> Result<Option<arrow::array::StringArray>> {
    b.column_by_name(name).map(|c| Ok(cast(c, &DataType::Utf8)?.as_string::<i32>().clone())).transpose()
}

fn opt(a: &Option<arrow::array::StringArray>, r: usize) -> Option<String> {
    a.as_ref().filter(|a| !a.is_null(r)).map(|a| a.value(r).to_string())
}

/// Reads the section from the feature tables of `cutoff` (`None` when the run used none of these
/// inputs).
pub async fn read(lake: &Lake, cutoff: NaiveDate) -> Result<Option<LocalSection>> {
    let mut out = LocalSection::default();
    let mut closures: BTreeMap<ClosureKey, ClosureRow> = BTreeMap::new();
    let dir = layout::features("closed_periods", cutoff);
    if dataset::read_manifest(lake, &dir).await?.is_some() {
        dataset::read_each(lake, &dir, |batches| {
            for b in &batches {
                let (loc, item, reason) = (text(b, "location_id")?, text(b, "item_id")?, text(b, "reason")?);
                let dates = cast(b.column_by_name("date").expect("closed_periods has dates"), &DataType::Date32)?;
                let share = cast(b.column_by_name("closed_share").expect("and shares"), &DataType::Float64)?;
                let (dates, share) =
                    (dates.as_primitive::<Date32Type>(), share.as_primitive::<arrow::datatypes::Float64Type>());
                for r in 0..b.num_rows() {
                    let Some(d) = dates.value_as_date(r).filter(|d| *d > cutoff) else { continue };
                    let key = (opt(&loc, r), opt(&item, r), opt(&reason, r));
                    let e = closures.entry(key.clone()).or_insert(ClosureRow {
                        location_id: key.0,
                        item_id: key.1,
                        reason: key.2,
                        closed: 0,
                        partly: 0,
                        first: d,
                        last: d,
                    });
                    if share.value(r) as f32 >= crate::panel::closures::FULLY_CLOSED {
                        e.closed += 1;
                    } else {
                        e.partly += 1;
                    }
                    e.first = e.first.min(d);
                    e.last = e.last.max(d);
                }
            }
            Ok(())
        })
        .await?;
    }
    out.closures = closures.into_values().collect();
    for (table, kind) in [("user_known", "known"), ("user_observed", "observed")] {
        let dir = layout::features(table, cutoff);
        if dataset::read_manifest(lake, &dir).await?.is_none() {
            continue;
        }
        let mut per: BTreeMap<String, (u64, u64, [bool; 4])> = BTreeMap::new();
        dataset::read_each(lake, &dir, |batches| {
            for b in &batches {
                let (name, loc, item) = (text(b, "name")?, text(b, "location_id")?, text(b, "item_id")?);
                let dates = cast(b.column_by_name("date").expect("covariates have dates"), &DataType::Date32)?;
                let dates = dates.as_primitive::<Date32Type>();
                for r in 0..b.num_rows() {
                    let Some(n) = opt(&name, r) else { continue };
                    let e = per.entry(n).or_insert((0, 0, [false; 4]));
                    e.0 += 1;
                    e.1 += u64::from(dates.value_as_date(r).is_some_and(|d| d > cutoff));
                    let level = usize::from(opt(&item, r).is_some()) + 2 * usize::from(opt(&loc, r).is_some());
                    e.2[level] = true;
                }
            }
            Ok(())
        })
        .await?;
        for (name, (rows, ahead, levels)) in per {
            let names = ["everywhere", "per item", "per location", "per series"];
            let keys: Vec<&str> = (0..4).filter(|l| levels[*l]).map(|l| names[l]).collect();
            out.covariates.push(CovariateRow {
                name: format!("{}{name}", crate::panel::covariates::USER),
                kind: kind.to_string(),
                rows,
                ahead,
                keys: keys.join(", "),
            });
        }
    }
    let dir = layout::features("local_calendar", cutoff);
    if let Some(m) = dataset::read_manifest(lake, &dir).await? {
        out.local_events = m.row_count;
    }
    let empty = out.closures.is_empty() && out.covariates.is_empty() && out.local_events == 0;
    Ok((!empty).then_some(out))
}
