//! Features: the SQL in `sql/features/`, run for a cutoff and materialised.
//!
//! Every query takes its parameters bound, never spliced: `$1` is the cutoff
//! (the last day whose data may be read) and `$2` the period length in days.
//! [`materialize`] writes a query's result to `features/<name>/cutoff=…/` as an
//! atomic dataset; [`register_views`] exposes every query as a view so
//! analysts can `query` it.

pub mod queries;

use arrow::array::{Array, Date32Array};
use chrono::{Datelike, Duration, NaiveDate, Weekday};
use datafusion::dataframe::DataFrame;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use serde::Serialize;
use tracing::instrument;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::lake::dataset::DatasetWriter;
use crate::lake::{Lake, layout};
use crate::period::Frequency;
pub use queries::FeatureQuery;

/// The parameters every feature query is run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct FeatureParams {
    /// Last day whose data may be read (for weekly: a Sunday).
    pub cutoff: NaiveDate,
    /// The period grain.
    pub frequency: Frequency,
    /// Periods after the cutoff that known-future tables cover.
    pub horizon: usize,
    /// The last day of a week (weekly grain): Sunday by default, Friday for data reported in
    /// weeks ending on Friday.
    pub week_end: Weekday,
}

impl FeatureParams {
    /// Parameters for a requested cutoff; weekly cutoffs move back to the Sunday closing the last full week.
    pub fn new(cutoff: NaiveDate, frequency: Frequency, horizon: usize) -> Self {
        Self::with_week_end(cutoff, frequency, horizon, Weekday::Sun)
    }

    /// Parameters whose weeks end on `week_end`; a weekly cutoff moves back to the last such day.
    pub fn with_week_end(cutoff: NaiveDate, frequency: Frequency, horizon: usize, week_end: Weekday) -> Self {
        let cutoff = match frequency {
            Frequency::Daily => cutoff,
            Frequency::Weekly => {
                let back = (cutoff.weekday().num_days_from_monday() as i64 - week_end.num_days_from_monday() as i64)
                    .rem_euclid(7);
                cutoff - Duration::days(back)
            }
        };
        Self { cutoff, frequency, horizon, week_end }
    }

    /// A day (days since 1970-01-01) on which a period starts: the day after a week's end.
    pub fn anchor(&self) -> i64 {
        // 1970-01-01 was a Thursday: day 4 is a Monday.
        (4 + self.week_end.succ().num_days_from_monday() as i64) % 7
    }

    /// The first period after the cutoff.
    pub fn first_forecast_date(&self) -> NaiveDate {
        self.cutoff + Duration::days(1)
    }

    fn values(&self) -> Vec<ScalarValue> {
        vec![
            ScalarValue::Utf8(Some(self.cutoff.to_string())),
            ScalarValue::Int64(Some(self.frequency.days())),
            ScalarValue::Int64(Some(self.horizon as i64)),
            ScalarValue::Int64(Some(self.anchor())),
        ]
    }
}

/// What materialising one feature query produced.
#[derive(Debug, Clone, Serialize)]
pub struct FeatureMetrics {
    /// Query name.
    pub name: String,
    /// Cutoff used.
    pub cutoff: NaiveDate,
    /// Rows written.
    pub rows: u64,
    /// Files written.
    pub files: usize,
    /// Where the dataset lives.
    pub location: String,
}

/// A query planned with its parameters bound.
pub async fn dataframe(ctx: &SessionContext, q: &FeatureQuery, params: FeatureParams) -> Result<DataFrame> {
    let df = ctx.sql(q.sql).await.map_err(|e| Error::data(format!("feature query `{}`: {e}", q.name)))?;
    Ok(df.with_param_values(params.values())?)
}

/// Registers every feature query as a view (named as the query) for ad hoc SQL.
pub async fn register_views(ctx: &SessionContext, params: FeatureParams) -> Result<()> {
    for q in queries::for_frequency(params.frequency) {
        register_view(ctx, q, params).await?;
    }
    Ok(())
}

/// Registers one feature query as a view, in place of any table of its name.
async fn register_view(ctx: &SessionContext, q: &FeatureQuery, params: FeatureParams) -> Result<()> {
    let df = dataframe(ctx, q, params).await?;
    let _ = ctx.deregister_table(q.name)?;
    ctx.register_table(q.name, df.into_view())?;
    Ok(())
}

/// Registers the feature tables of `params` for analysis: the dataset committed for the cutoff
/// where there is one (what the models of a run read), else the query as a view.
pub async fn register_committed(ctx: &SessionContext, lake: &Lake, params: FeatureParams) -> Result<()> {
    for q in queries::for_frequency(params.frequency) {
        let dir = crate::lake::layout::features(q.name, params.cutoff);
        match crate::lake::dataset::read_manifest(lake, &dir).await? {
            Some(manifest) => register_dataset(ctx, lake, q.name, &dir, &manifest).await?,
            None => register_view(ctx, q, params).await?,
        }
    }
    Ok(())
}

/// Materialises every feature query of the grain, in order; each reads the ones before it from
/// their written datasets.
pub async fn materialize_all(
    ctx: &SessionContext,
    lake: &Lake,
    params: FeatureParams,
    token: &str,
    clock: &dyn Clock,
) -> Result<Vec<FeatureMetrics>> {
    ensure_sales_by(ctx, params.cutoff).await?;
    let mut out = Vec::new();
    for q in queries::for_frequency(params.frequency) {
        out.push(materialize(ctx, lake, q, params, token, clock).await?);
    }
    Ok(out)
}

/// Registers a committed dataset as a table: exactly the files its manifest names.
pub async fn register_dataset(
    ctx: &SessionContext,
    lake: &Lake,
    name: &str,
    dir: &object_store::path::Path,
    manifest: &crate::lake::dataset::Manifest,
) -> Result<()> {
    use datafusion::datasource::file_format::parquet::ParquetFormat;
    use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
    let _ = ctx.deregister_table(name)?;
    if manifest.files.is_empty() {
        // An empty table (not an empty in-memory one): its plans serialise, for Ballista.
        let empty = datafusion::catalog::empty::EmptyTable::new(std::sync::Arc::new(manifest_schema(manifest)?));
        ctx.register_table(name, std::sync::Arc::new(empty))?;
        return Ok(());
    }
    let urls = manifest
        .files
        .iter()
        .map(|f| ListingTableUrl::parse(format!("{}{}", lake.folder_url(dir), f.path)))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let options = ListingOptions::new(std::sync::Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let config =
        ListingTableConfig::new_with_multi_paths(urls).with_listing_options(options).infer_schema(&ctx.state()).await?;
    ctx.register_table(name, std::sync::Arc::new(ListingTable::try_new(config)?))?;
    Ok(())
}

fn manifest_schema(m: &crate::lake::dataset::Manifest) -> Result<arrow::datatypes::Schema> {
    let fields = m
        .schema
        .iter()
        .map(|c| {
            let dt: arrow::datatypes::DataType = c
                .data_type
                .parse()
                .map_err(|e| Error::data(format!("manifest of {}: column {}: {e}", m.dataset, c.name)))?;
            Ok(arrow::datatypes::Field::new(&c.name, dt, c.nullable))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(arrow::datatypes::Schema::new(fields))
}

/// The last day with sales in the lake, if any.
pub async fn last_sales_date(ctx: &SessionContext) -> Result<Option<NaiveDate>> {
    max_sales_date(ctx, None).await
}

/// The cutoff of a run on `today` when none is asked for: the last day with sales on or before
/// the day before `today`. Sales dated later (today's, still arriving, or a row years ahead from a
/// load error) never move it, so no series stretches to them. The nightly and the commands that
/// default their cutoff (`features`, `query`, `factors`, `explain`) all take it from here.
#[instrument(skip_all, fields(today = %today))]
pub async fn default_cutoff(ctx: &SessionContext, today: NaiveDate) -> Result<NaiveDate> {
    let latest = today.pred_opt().unwrap_or(today);
    max_sales_date(ctx, Some(latest))
        .await?
        .ok_or_else(|| Error::data(format!("the sales table has no rows on or before {latest}")))
}

/// An error unless the sales table has rows on or before `cutoff`: features at a cutoff before
/// the first sale (a mistyped date) would be empty tables that look like a success.
pub async fn ensure_sales_by(ctx: &SessionContext, cutoff: NaiveDate) -> Result<()> {
    if max_sales_date(ctx, Some(cutoff)).await?.is_some() {
        return Ok(());
    }
    let first = ctx.sql("SELECT MIN(CAST(date AS DATE)) AS d FROM sales").await?.collect().await?;
    let first = first
        .iter()
        .filter_map(|b| b.column(0).as_any().downcast_ref::<Date32Array>().filter(|a| !a.is_empty() && a.is_valid(0)))
        .map(|a| crate::days::date(a.value(0) as i64, "sales.date"))
        .next()
        .transpose()?;
    Err(Error::data(match first {
        Some(first) => format!("the cutoff {cutoff} is before the first day of the sales table ({first})"),
        None => "the sales table has no rows".to_string(),
    }))
}

/// The last day with sales, on or before `until` when given.
async fn max_sales_date(ctx: &SessionContext, until: Option<NaiveDate>) -> Result<Option<NaiveDate>> {
    let batches = match until {
        None => ctx.sql("SELECT MAX(CAST(date AS DATE)) AS d FROM sales").await?.collect().await?,
        Some(until) => {
            ctx.sql("SELECT MAX(CAST(date AS DATE)) AS d FROM sales WHERE CAST(date AS DATE) <= CAST($1 AS DATE)")
                .await?
                .with_param_values(vec![ScalarValue::Utf8(Some(until.to_string()))])?
                .collect()
                .await?
        }
    };
    for b in batches {
        let arr =
            b.column(0).as_any().downcast_ref::<Date32Array>().ok_or_else(|| Error::data("MAX(date) is not a date"))?;
        if !arr.is_empty() && arr.is_valid(0) {
            return Ok(Some(crate::days::date(arr.value(0) as i64, "sales.date")?));
        }
    }
    Ok(None)
}

/// Runs a feature query and writes its result to `features/<name>/cutoff=…/` atomically.
#[instrument(skip_all, fields(feature = q.name, cutoff = %params.cutoff))]
pub async fn materialize(
    ctx: &SessionContext,
    lake: &Lake,
    q: &FeatureQuery,
    params: FeatureParams,
    token: &str,
    clock: &dyn Clock,
) -> Result<FeatureMetrics> {
    let df = dataframe(ctx, q, params).await?;
    let schema = std::sync::Arc::new(df.schema().as_arrow().clone());
    let dir = layout::features(q.name, params.cutoff);
    let mut writer = DatasetWriter::new(lake, dir.clone(), format!("features/{}", q.name), token, schema);
    let plan = df.logical_plan().clone();
    writer.write_stream(crate::engine::execute_stream(ctx, df).await?).await?;
    crate::engine::inputs::ensure_inputs_exist(ctx, &plan).await?;
    let mut meta = serde_json::Map::new();
    meta.insert("cutoff".into(), params.cutoff.to_string().into());
    meta.insert("frequency".into(), params.frequency.as_str().into());
    meta.insert("query".into(), q.file.into());
    meta.insert("role".into(), serde_json::to_value(q.role)?);
    meta.insert("horizon".into(), params.horizon.into());
    let manifest = writer.commit(clock.now(), meta).await?;
    register_dataset(ctx, lake, q.name, &dir, &manifest).await?;
    Ok(FeatureMetrics {
        name: q.name.to_string(),
        cutoff: params.cutoff,
        rows: manifest.row_count,
        files: manifest.files.len(),
        location: lake.display(&dir),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A session whose `sales` table holds one row per day number.
    fn sales(days: Vec<i32>) -> SessionContext {
        let batch = arrow::record_batch::RecordBatch::try_from_iter(vec![(
            "date",
            std::sync::Arc::new(Date32Array::from(days)) as _,
        )])
        .unwrap();
        let ctx = SessionContext::new();
        ctx.register_batch("sales", batch).unwrap();
        ctx
    }

    fn day(s: &str) -> i32 {
        (s.parse::<NaiveDate>().unwrap() - crate::days::epoch()).num_days() as i32
    }

    #[tokio::test]
    async fn a_date_beyond_chronos_range_is_an_error_naming_the_column() {
        let err = last_sales_date(&sales(vec![day("2026-03-31"), i32::MAX])).await.unwrap_err();
        assert!(err.to_string().contains("sales.date"), "{err}");
        let err = default_cutoff(&sales(vec![i32::MIN]), "2026-04-01".parse().unwrap()).await.unwrap_err();
        assert!(err.to_string().contains("sales.date"), "{err}");
    }

    #[tokio::test]
    async fn the_default_cutoff_is_the_last_day_with_sales_before_today() {
        let today: NaiveDate = "2026-04-01".parse().unwrap();
        let ctx = sales(vec![day("2026-03-30"), day("2099-01-01"), i32::MAX]);
        assert_eq!(default_cutoff(&ctx, today).await.unwrap(), "2026-03-30".parse::<NaiveDate>().unwrap());
        let ctx = sales(vec![day("2026-03-30"), day("2026-03-31"), day("2026-04-01")]);
        assert_eq!(default_cutoff(&ctx, today).await.unwrap(), "2026-03-31".parse::<NaiveDate>().unwrap());
        let err = default_cutoff(&sales(vec![day("2026-04-01")]), today).await.unwrap_err();
        assert!(err.to_string().contains("no rows on or before 2026-03-31"), "{err}");
    }

    #[test]
    fn weekly_cutoff_is_a_sunday() {
        let wed = NaiveDate::from_ymd_opt(2026, 11, 25).unwrap();
        assert_eq!(
            FeatureParams::new(wed, Frequency::Weekly, 4).cutoff,
            NaiveDate::from_ymd_opt(2026, 11, 22).unwrap()
        );
        let sun = NaiveDate::from_ymd_opt(2026, 11, 22).unwrap();
        assert_eq!(FeatureParams::new(sun, Frequency::Weekly, 4).cutoff, sun);
        assert_eq!(FeatureParams::new(wed, Frequency::Daily, 4).cutoff, wed);
        let fri = FeatureParams::with_week_end(wed, Frequency::Weekly, 4, Weekday::Fri);
        assert_eq!(fri.cutoff, NaiveDate::from_ymd_opt(2026, 11, 20).unwrap());
        // Weeks ending on Friday start on Saturday: 1970-01-03 is day 2.
        assert_eq!(fri.anchor(), 2);
        assert_eq!(FeatureParams::new(wed, Frequency::Weekly, 4).anchor(), 4);
    }
}
