//! The rows the factor analysis reads: `sql/factors/observations.sql` over the feature tables of
//! a cutoff, streamed into columns.
//!
//! The regression needs many periods per series but not every series: above `max-series` (see
//! [`FactorSettings`](super::FactorSettings)) a fixed sample of the series is read, the same
//! share of each category (at least [`MIN_PER_CATEGORY`] series of each), chosen by a hash of the
//! series key, so the same lake gives the same sample and a new series does not reshuffle the
//! others. Item, location, category and the text columns are interned: a row costs the numbers
//! and a pointer per text.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use futures::StreamExt;
use tracing::info;

use crate::error::{Error, Result};
use crate::features::{self, FeatureParams};
use crate::lake::Lake;

/// Series of a category kept at least, when the series are sampled.
pub const MIN_PER_CATEGORY: usize = 50;

/// The table of the series analysed, registered for `observations.sql`.
pub const SERIES_TABLE: &str = "factor_series";

/// The series statement: every series of the target with its category.
const SERIES_SQL: &str = include_str!("../../sql/factors/series.sql");

/// An interned text value (item, location, category, promotion kind, event): cheap to clone and
/// compare, read as a `&str`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Name(Arc<str>);

impl Name {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Self(Arc::from(s))
    }
}

/// Hands out one [`Name`] per distinct text.
#[derive(Debug, Default)]
struct Interner(HashMap<Arc<str>, Name>);

impl Interner {
    fn get(&mut self, s: &str) -> Name {
        if let Some(n) = self.0.get(s) {
            return n.clone();
        }
        let n = Name::from(s);
        self.0.insert(Arc::clone(&n.0), n.clone());
        n
    }
}

/// The observations statement.
pub const OBSERVATIONS_SQL: &str = include_str!("../../sql/factors/observations.sql");

/// One row per series × period, sorted by series then date.
#[derive(Debug, Clone, Default)]
pub struct Observations {
    /// Item of each row.
    pub item: Vec<Name>,
    /// Location of each row.
    pub location: Vec<Name>,
    /// Category of each row.
    pub category: Vec<Name>,
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
    pub promo_kind: Vec<Option<Name>>,
    /// Within the days after a promotion.
    pub post_promo: Vec<bool>,
    /// Cheapest competitor's price.
    pub competitor: Vec<Option<f64>>,
    /// 1 = Monday … 7 = Sunday.
    pub day_of_week: Vec<i64>,
    /// 1 … 366.
    pub day_of_year: Vec<i64>,
    /// Calendar event.
    pub event: Vec<Option<Name>>,
    /// Series read, and series in the target (more when the series were sampled).
    pub series: (usize, usize),
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
    let (mut o, mut names) = (Observations::default(), Interner::default());
    for b in &df.collect().await? {
        append(&mut o, &mut names, b)?;
    }
    o.series = (1, 1);
    Ok(o)
}

/// Which series [`load`] reads.
#[derive(Debug, Clone, Default)]
pub struct SeriesChoice {
    /// At most this many series (0: all), sampled per category.
    pub max_series: usize,
    /// The series of this item are read whatever the sample (for `explain`).
    pub item: Option<String>,
}

/// Registers the feature tables of `params` and streams the observations up to the cutoff.
///
/// With `lake`, the feature datasets committed for the cutoff are read where they exist (what
/// the nightly's models read; the others are computed as views); without it, every feature
/// table is a view over the raw tables.
pub async fn load(
    ctx: &SessionContext,
    lake: Option<&Lake>,
    params: FeatureParams,
    choice: &SeriesChoice,
) -> Result<Observations> {
    match lake {
        Some(lake) => features::register_committed(ctx, lake, params).await?,
        None => features::register_views(ctx, params).await?,
    };
    let (chosen, total) = choose_series(ctx, choice).await?;
    let _ = ctx.deregister_table(SERIES_TABLE)?;
    let schema = Arc::new(Schema::new(vec![
        Field::new("item_id", DataType::Utf8, false),
        Field::new("location_id", DataType::Utf8, false),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            Arc::new(StringArray::from_iter_values(chosen.iter().map(|(i, _)| i.as_str()))) as ArrayRef,
            Arc::new(StringArray::from_iter_values(chosen.iter().map(|(_, l)| l.as_str()))),
        ],
    )?;
    ctx.register_table(SERIES_TABLE, Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))?;
    info!(series = chosen.len(), of = total, "factors: series read");

    let df = ctx.sql(OBSERVATIONS_SQL).await.map_err(|e| Error::data(format!("factors observations: {e}")))?;
    let df = df.with_param_values(vec![ScalarValue::Utf8(Some(params.cutoff.to_string()))])?;
    let mut stream = df.execute_stream().await?;
    let (mut o, mut names) = (Observations::default(), Interner::default());
    while let Some(b) = stream.next().await {
        append(&mut o, &mut names, &b?)?;
    }
    let _ = ctx.deregister_table(SERIES_TABLE)?;
    o.series = (chosen.len(), total);
    Ok(o)
}

/// The series to read (item, location), and how many there are.
async fn choose_series(ctx: &SessionContext, choice: &SeriesChoice) -> Result<(Vec<(String, String)>, usize)> {
    let mut by_category: BTreeMap<String, Vec<(u64, String, String)>> = BTreeMap::new();
    let mut total = 0;
    for b in ctx.sql(SERIES_SQL).await?.collect().await? {
        let col = |name: &str| column(&b, name, &DataType::Utf8);
        let (items, locs, cats) = (col("item_id")?, col("location_id")?, col("category")?);
        let (items, locs, cats) = (items.as_string::<i32>(), locs.as_string::<i32>(), cats.as_string::<i32>());
        for r in 0..b.num_rows() {
            let (item, loc) = (items.value(r).to_string(), locs.value(r).to_string());
            by_category.entry(cats.value(r).to_string()).or_default().push((key_hash(&item, &loc), item, loc));
            total += 1;
        }
    }
    let mut chosen = Vec::new();
    for (_, mut series) in by_category {
        let keep = quota(series.len(), total, choice.max_series);
        series.sort();
        for (rank, (_, item, loc)) in series.into_iter().enumerate() {
            if rank < keep || choice.item.as_deref() == Some(item.as_str()) {
                chosen.push((item, loc));
            }
        }
    }
    chosen.sort();
    Ok((chosen, total))
}

/// Series kept of a category of `n` out of `total` under `max` (0: no limit): its share of
/// `max`, but at least [`MIN_PER_CATEGORY`] (or all it has).
pub fn quota(n: usize, total: usize, max: usize) -> usize {
    if max == 0 || total <= max {
        return n;
    }
    let share = (n as f64 * max as f64 / total as f64).floor() as usize;
    share.max(MIN_PER_CATEGORY.min(n)).min(n)
}

/// FNV-1a of `item|location`: a fixed, platform-independent order of the series.
fn key_hash(item: &str, location: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in item.bytes().chain(std::iter::once(b'|')).chain(location.bytes()) {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

fn column(b: &RecordBatch, name: &str, to: &DataType) -> Result<ArrayRef> {
    let c = b.column_by_name(name).ok_or_else(|| Error::data(format!("factors observations: no column `{name}`")))?;
    Ok(arrow::compute::cast(c, to)?)
}

fn append(o: &mut Observations, names: &mut Interner, b: &RecordBatch) -> Result<()> {
    let mut text = |name: &str| -> Result<Vec<Option<Name>>> {
        let a = column(b, name, &DataType::Utf8)?;
        let s = a.as_string::<i32>();
        Ok((0..s.len()).map(|i| s.is_valid(i).then(|| names.get(s.value(i)))).collect())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_keep_each_categorys_share_and_a_floor() {
        assert_eq!(quota(300, 1_000, 0), 300, "0: no limit");
        assert_eq!(quota(300, 1_000, 2_000), 300, "under the limit: all");
        assert_eq!(quota(600, 1_000, 500), 300);
        assert_eq!(quota(40, 1_000, 500), 40, "a small category keeps all it has up to the floor");
        assert_eq!(quota(80, 1_000, 500), MIN_PER_CATEGORY);
    }

    #[test]
    fn the_series_order_is_fixed_and_names_are_shared() {
        assert_eq!(key_hash("item_1", "store_1"), key_hash("item_1", "store_1"));
        assert_ne!(key_hash("item_1", "store_1"), key_hash("item_1store_", "1"));
        let mut names = Interner::default();
        let (a, b) = (names.get("toys"), names.get("toys"));
        assert!(Arc::ptr_eq(&a.0, &b.0));
        assert_eq!(a.as_str(), "toys");
    }
}
