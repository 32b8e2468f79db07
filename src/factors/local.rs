//! What a series' own inputs say about its horizon, for `explain`: the periods it is closed (and
//! so forecast 0), the events of its location or region, and the user's known-in-advance
//! covariates that reach it, as the feature tables of the cutoff read them (point in time).

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Float64Type};
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use serde::Serialize;

use crate::error::Result;
use crate::features::{self, FeatureParams};

/// The local inputs of one series over the horizon.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LocalInputs {
    /// Periods with a closed day: (period, closed share, reason).
    pub closed: Vec<(NaiveDate, f64, Option<String>)>,
    /// Periods with an event of the series' location or region: (period, event).
    pub events: Vec<(NaiveDate, String)>,
    /// Per known covariate: its value per period (the revision known at the cutoff).
    pub covariates: BTreeMap<String, Vec<(NaiveDate, f64)>>,
}

impl LocalInputs {
    /// Whether the series has none of these inputs over the horizon.
    pub fn is_empty(&self) -> bool {
        self.closed.is_empty() && self.events.is_empty() && self.covariates.is_empty()
    }
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Reads the horizon's closures, local events and known covariates of `item` at `location`.
pub async fn read(ctx: &SessionContext, params: FeatureParams, item: &str, location: &str) -> Result<LocalInputs> {
    features::register_views(ctx, params).await?;
    let (i, l, after) = (literal(item), literal(location), literal(&params.cutoff.to_string()));
    let mut out = LocalInputs::default();
    let keyed = format!(
        "(location_id IS NULL OR location_id = {l}) AND (item_id IS NULL OR item_id = {i}) AND date > CAST({after} AS DATE)"
    );
    let sql = format!(
        "SELECT date, MAX(closed_share) AS share, MIN(reason) AS reason FROM closed_periods WHERE {keyed} \
         GROUP BY date ORDER BY date"
    );
    for b in ctx.sql(&sql).await?.collect().await? {
        let (d, share) = (b.column(0).as_primitive::<Date32Type>(), cast(b.column(1), &DataType::Float64)?);
        let reason = cast(b.column(2), &DataType::Utf8)?;
        let (share, reason) = (share.as_primitive::<Float64Type>(), reason.as_string::<i32>());
        for r in 0..b.num_rows() {
            if let Some(date) = d.value_as_date(r) {
                out.closed.push((date, share.value(r), (!reason.is_null(r)).then(|| reason.value(r).to_string())));
            }
        }
    }
    let sql = format!(
        "SELECT date, event FROM local_calendar WHERE location_id = {l} AND date > CAST({after} AS DATE) ORDER BY date"
    );
    for b in ctx.sql(&sql).await?.collect().await? {
        let d = b.column(0).as_primitive::<Date32Type>();
        let e = cast(b.column(1), &DataType::Utf8)?;
        let e = e.as_string::<i32>();
        for r in 0..b.num_rows() {
            if let (Some(date), false) = (d.value_as_date(r), e.is_null(r)) {
                out.events.push((date, e.value(r).to_string()));
            }
        }
    }
    // The most specific row of a period wins, as the models read it.
    let sql = format!(
        "SELECT name, date, value FROM (SELECT name, date, value, ROW_NUMBER() OVER (PARTITION BY name, date \
         ORDER BY (CASE WHEN item_id IS NULL THEN 0 ELSE 1 END) + 2 * (CASE WHEN location_id IS NULL THEN 0 ELSE 1 END) DESC) AS k \
         FROM user_known WHERE {keyed}) WHERE k = 1 ORDER BY name, date"
    );
    for b in ctx.sql(&sql).await?.collect().await? {
        let n = cast(b.column(0), &DataType::Utf8)?;
        let (n, d) = (n.as_string::<i32>(), b.column(1).as_primitive::<Date32Type>());
        let v = cast(b.column(2), &DataType::Float64)?;
        let v = v.as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            if let (Some(date), false) = (d.value_as_date(r), n.is_null(r) || v.is_null(r)) {
                out.covariates.entry(n.value(r).to_string()).or_default().push((date, v.value(r)));
            }
        }
    }
    Ok(out)
}
