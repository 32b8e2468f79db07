//! The rows the factor analysis reads: `sql/factors/observations.sql` over the feature views of
//! a cutoff, collected into columns.

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;

use crate::error::{Error, Result};
use crate::features::{self, FeatureParams};

/// The observations statement.
pub const OBSERVATIONS_SQL: &str = include_str!("../../sql/factors/observations.sql");

/// One row per series × period, sorted by series then date.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// Item of each row.
    pub item: Vec<String>,
    /// Location of each row.
    pub location: Vec<String>,
    /// Category of each row.
    pub category: Vec<String>,
    /// Days since 1970-01-01.
    pub day: Vec<i64>,
    /// Units sold.
    pub units: Vec<f64>,
    /// Stock ran out in the period.
    pub stock_out: Vec<bool>,
    /// Stock on hand when the period opened.
    pub opening_stock: Vec<Option<f64>>,
    /// Price paid.
    pub price: Vec<Option<f64>>,
    /// Regular price.
    pub shelf_price: Vec<Option<f64>>,
    /// Promotion kind running.
    pub promo_kind: Vec<Option<String>>,
    /// Within the days after a promotion.
    pub post_promo: Vec<bool>,
    /// Cheapest competitor's price.
    pub competitor: Vec<Option<f64>>,
    /// 1 = Monday … 7 = Sunday.
    pub day_of_week: Vec<i64>,
    /// 1 … 366.
    pub day_of_year: Vec<i64>,
    /// Calendar event.
    pub event: Vec<Option<String>>,
}

impl Observations {
    /// Rows.
    pub fn len(&self) -> usize {
        self.day.len()
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.day.is_empty()
    }
}

/// The horizon statement (one series, after the cutoff).
pub const HORIZON_SQL: &str = include_str!("../../sql/factors/horizon.sql");

/// The covariates of one series over the horizon, in the columns of the observations. The
/// feature views of the cutoff must be registered ([`load`] does).
pub async fn horizon(
    ctx: &SessionContext,
    cutoff: chrono::NaiveDate,
    item: &str,
    location: &str,
) -> Result<Observations> {
    let df = ctx.sql(HORIZON_SQL).await.map_err(|e| Error::data(format!("factors horizon: {e}")))?;
    let df = df.with_param_values(vec![
        ScalarValue::Utf8(Some(cutoff.to_string())),
        ScalarValue::Utf8(Some(item.to_string())),
        ScalarValue::Utf8(Some(location.to_string())),
    ])?;
    let mut o = Observations::default();
    for b in &df.collect().await? {
        append(&mut o, b)?;
    }
    Ok(o)
}

/// Registers the feature views of `params` and collects the observations up to the cutoff.
pub async fn load(ctx: &SessionContext, params: FeatureParams) -> Result<Observations> {
    features::register_views(ctx, params).await?;
    let df = ctx.sql(OBSERVATIONS_SQL).await.map_err(|e| Error::data(format!("factors observations: {e}")))?;
    let df = df.with_param_values(vec![ScalarValue::Utf8(Some(params.cutoff.to_string()))])?;
    let batches = df.collect().await?;
    let mut o = Observations::default();
    for b in &batches {
        append(&mut o, b)?;
    }
    Ok(o)
}

fn column(b: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let c = b.column_by_name(name).ok_or_else(|| Error::data(format!("factors observations: no column `{name}`")))?;
    Ok(arrow::compute::cast(c, to)?)
}

fn append(o: &mut Observations, b: &RecordBatch) -> Result<()> {
    let text = |name: &str| -> Result<Vec<Option<String>>> {
        let a = column(b, name, &DataType::Utf8)?;
        let s = a.as_string::<i32>();
        Ok((0..s.len()).map(|i| s.is_valid(i).then(|| s.value(i).to_string())).collect())
    };
    let num = |name: &str| -> Result<Vec<Option<f64>>> {
        let a = column(b, name, &DataType::Float64)?;
        let s = a.as_primitive::<Float64Type>();
        Ok((0..s.len()).map(|i| s.is_valid(i).then(|| s.value(i))).collect())
    };
    let int = |name: &str| -> Result<Vec<i64>> {
        let a = column(b, name, &DataType::Int64)?;
        let s = a.as_primitive::<Int64Type>();
        Ok((0..s.len()).map(|i| if s.is_valid(i) { s.value(i) } else { 0 }).collect())
    };
    let flag = |name: &str| -> Result<Vec<bool>> {
        let a = column(b, name, &DataType::Boolean)?;
        let s = a.as_boolean();
        Ok((0..s.len()).map(|i| s.is_valid(i) && s.value(i)).collect())
    };
    o.item.extend(text("item_id")?.into_iter().map(Option::unwrap_or_default));
    o.location.extend(text("location_id")?.into_iter().map(Option::unwrap_or_default));
    o.category.extend(text("category")?.into_iter().map(Option::unwrap_or_default));
    o.day.extend(int("day")?);
    o.units.extend(num("units")?.into_iter().map(|v| v.unwrap_or(0.0).max(0.0)));
    o.stock_out.extend(flag("stock_out")?);
    o.opening_stock.extend(num("opening_stock")?);
    o.price.extend(num("price")?);
    o.shelf_price.extend(num("shelf_price")?);
    o.promo_kind.extend(text("promo_kind")?);
    o.post_promo.extend(flag("post_promo")?);
    o.competitor.extend(num("competitor_min_price")?);
    o.day_of_week.extend(int("day_of_week")?);
    o.day_of_year.extend(int("day_of_year")?);
    o.event.extend(text("event")?);
    Ok(())
}
