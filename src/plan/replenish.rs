//! The `plan` step: `replenishment/run_date=YYYY-MM-DD/` from the run date's published
//! forecasts, the stock in `inventory` and the terms in `supply`.
//!
//! It reads the forecasts through their manifest (the published contract, not the run's
//! memory), so it can run in a later job or again on its own. One row per item × location:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | run_id | Utf8 | the run that planned |
//! | item_id, location_id | Utf8 | the series |
//! | cutoff | Date32 | last day of data behind the forecast |
//! | model | Utf8 | the model whose forecast was used |
//! | lead_time_days, review_period_days, service_level | Float64 | the terms used (`supply`, else settings) |
//! | distribution | Utf8 | `normal`, `poisson` or `negative-binomial` |
//! | lead_time_demand_mean, lead_time_demand_sd | Float64 | demand over the lead time |
//! | protection_demand_mean, protection_demand_sd | Float64 | demand over lead time + review period |
//! | safety_stock | Float64 | reorder point − mean lead-time demand |
//! | reorder_point | Float64 | service-level quantile of lead-time demand, whole units |
//! | order_up_to | Float64 | service-level quantile of demand over lead time + review period, whole units |
//! | on_hand, on_order, inventory_position | Float64 | stock (`inventory`, else settings), open orders, their sum |
//! | stock_date | Date32? | the `inventory` day on_hand comes from (null: the settings default) |
//! | suggested_order_qty | Float64 | order-up-to − inventory position, at least 0, whole units |
//! | below_reorder_point | Boolean | inventory position ≤ reorder point |
//! | forecast_change | Float64? | the series' forecast change against the previous run (null: none to compare) |
//! | covered_days | Float64 | days of lead time + review period the horizon covered (less: outputs understate) |

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanBuilder, Date32Builder, Float64Builder, RecordBatch, StringBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Date32Type, Field, Float64Type, Int32Type, Schema, SchemaRef};
use chrono::NaiveDate;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use serde::Serialize;
use tracing::{info, instrument, warn};

use super::PlanSettings;
use super::leadtime::{Moments, moments};
use super::policy::{Terms, recommend};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::lake::dataset::DatasetWriter;
use crate::lake::{Lake, layout};
use crate::publish::{self, latest, stability};

/// The replenishment contract version, in its manifest and pointer.
pub const CONTRACT_VERSION: u32 = 1;

/// The dataset's name (root folder and pointer).
pub const DATASET: &str = "replenishment";

const STOCK_SQL: &str = include_str!("../../sql/plan/stock.sql");
const SUPPLY_SQL: &str = include_str!("../../sql/plan/supply.sql");

/// The schema of the replenishment dataset.
pub fn schema() -> SchemaRef {
    let f = |n: &str| Field::new(n, DataType::Float64, false);
    Arc::new(Schema::new(vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("location_id", DataType::Utf8, false),
        Field::new("cutoff", DataType::Date32, false),
        Field::new("model", DataType::Utf8, false),
        f("lead_time_days"),
        f("review_period_days"),
        f("service_level"),
        Field::new("distribution", DataType::Utf8, false),
        f("lead_time_demand_mean"),
        f("lead_time_demand_sd"),
        f("protection_demand_mean"),
        f("protection_demand_sd"),
        f("safety_stock"),
        f("reorder_point"),
        f("order_up_to"),
        f("on_hand"),
        f("on_order"),
        f("inventory_position"),
        Field::new("stock_date", DataType::Date32, true),
        f("suggested_order_qty"),
        Field::new("below_reorder_point", DataType::Boolean, false),
        Field::new("forecast_change", DataType::Float64, true),
        f("covered_days"),
    ]))
}

/// What planning wrote.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PlanMetrics {
    /// Rows (series) written.
    pub rows: u64,
    /// The dataset folder.
    pub location: String,
    /// Its manifest.
    pub manifest: String,
    /// Series at or below their reorder point.
    pub below_reorder_point: u64,
    /// Series with a suggested order.
    pub order_lines: u64,
    /// Units suggested over all series.
    pub units_to_order: f64,
    /// Series whose horizon is shorter than lead time + review period.
    pub short_horizon: u64,
    /// Series with stock from `inventory` (the others use the settings default).
    pub with_stock: u64,
    /// Supply values outside their range, replaced by the settings default.
    pub invalid_terms: u64,
    /// Series per distribution family.
    pub distributions: std::collections::BTreeMap<String, u64>,
    /// Whether `replenishment/_latest.json` now points here.
    pub latest: bool,
}

/// One series' forecast, read from the published rows.
#[derive(Debug, Default)]
struct SeriesForecast {
    model: String,
    steps: Vec<(i32, Moments)>,
}

#[derive(Debug, Clone, Copy)]
struct Stock {
    date: i32,
    on_hand: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Supply {
    lead_time_days: Option<f64>,
    review_period_days: Option<f64>,
    service_level: Option<f64>,
    on_order: Option<f64>,
}

/// Plans every series forecast for `run_date` and publishes the replenishment dataset.
#[instrument(skip_all, fields(run_id = run_id, run_date = %run_date))]
pub async fn plan(
    ctx: &SessionContext,
    lake: &Lake,
    settings: &PlanSettings,
    jump_threshold: f64,
    run_id: &str,
    run_date: NaiveDate,
    clock: &dyn Clock,
) -> Result<PlanMetrics> {
    let (manifest, batches) = publish::read_forecasts(lake, run_date).await?;
    let meta = |k: &str| manifest.meta.get(k).cloned().unwrap_or_default();
    let levels: Vec<f64> = serde_json::from_value(meta("quantiles"))?;
    let cutoff: NaiveDate = serde_json::from_value(meta("cutoff"))?;
    let period_days = match meta("frequency").as_str() {
        Some("weekly") => 7.0,
        _ => 1.0,
    };
    let forecasts_run = meta("run_id");
    let series = read_series(&batches, &levels)?;
    let changes = stability::against_previous(
        lake,
        publish::DATASET,
        run_date,
        &stability::means_from_batches(&batches)?,
        jump_threshold,
    )
    .await?
    .per_series;
    let stock = read_stock(ctx, cutoff).await?;
    let supply = read_supply(ctx, cutoff).await?;

    let schema = schema();
    let dir = layout::replenishment(run_date);
    let mut writer = DatasetWriter::new(lake, dir.clone(), DATASET, run_id, Arc::clone(&schema));
    let mut rows = Rows::default();
    let mut m = PlanMetrics::default();
    let epoch = crate::days::epoch();
    let cutoff_day = (cutoff - epoch).num_days() as i32;
    let mut keys: Vec<&(String, String)> = series.keys().collect();
    keys.sort();
    for key in keys {
        let f = &series[key];
        let s = supply.get(key).copied().unwrap_or_default();
        let mut pick = |v: Option<f64>, ok: fn(f64) -> bool, default: f64| match v {
            Some(x) if ok(x) => x,
            Some(_) => {
                m.invalid_terms += 1;
                default
            }
            None => default,
        };
        let days_ok = |x: f64| x.is_finite() && (0.0..=3650.0).contains(&x);
        let stock_row = stock.get(key).copied();
        let terms = Terms {
            lead_time_days: pick(s.lead_time_days, days_ok, settings.lead_time_days),
            review_period_days: pick(s.review_period_days, days_ok, settings.review_period_days),
            service_level: pick(s.service_level, |x| x > 0.0 && x < 1.0, settings.service_level),
            on_hand: stock_row.map_or(settings.on_hand, |st| st.on_hand),
            on_order: pick(s.on_order, |x| x.is_finite() && x >= 0.0, settings.on_order),
        };
        let steps: Vec<Moments> = f.steps.iter().map(|(_, mo)| *mo).collect();
        let r = recommend(&steps, period_days, &terms, settings.distribution);
        let family = r.family();
        *m.distributions.entry(family.as_str().to_string()).or_default() += 1;
        if r.covered_days + 1e-9 < terms.lead_time_days + terms.review_period_days {
            m.short_horizon += 1;
        }
        let below = r.inventory_position <= r.reorder_point;
        m.below_reorder_point += below as u64;
        m.order_lines += (r.order_quantity > 0.0) as u64;
        m.units_to_order += r.order_quantity;
        m.with_stock += stock_row.is_some() as u64;
        rows.run_id.append_value(run_id);
        rows.item.append_value(&key.0);
        rows.location.append_value(&key.1);
        rows.cutoff.append_value(cutoff_day);
        rows.model.append_value(&f.model);
        rows.lead_time.append_value(terms.lead_time_days);
        rows.review.append_value(terms.review_period_days);
        rows.service.append_value(terms.service_level);
        rows.distribution.append_value(family.as_str());
        rows.ltd_mean.append_value(r.lead_time_demand.moments.mean);
        rows.ltd_sd.append_value(r.lead_time_demand.sd());
        rows.prot_mean.append_value(r.protection_demand.moments.mean);
        rows.prot_sd.append_value(r.protection_demand.sd());
        rows.safety.append_value(r.safety_stock);
        rows.rop.append_value(r.reorder_point);
        rows.out.append_value(r.order_up_to);
        rows.on_hand.append_value(terms.on_hand);
        rows.on_order.append_value(terms.on_order);
        rows.position.append_value(r.inventory_position);
        rows.stock_date.append_option(stock_row.map(|st| st.date));
        rows.order.append_value(r.order_quantity);
        rows.below.append_value(below);
        rows.change.append_option(changes.get(key).map(|c| c.change));
        rows.covered.append_value(r.covered_days);
        m.rows += 1;
    }
    writer.write(rows.finish(&schema)?).await?;
    if m.short_horizon > 0 {
        warn!(series = m.short_horizon, "the horizon is shorter than lead time + review period for some series");
    }
    let mut meta = serde_json::Map::new();
    meta.insert("contract_version".into(), CONTRACT_VERSION.into());
    meta.insert("run_id".into(), run_id.into());
    meta.insert("run_date".into(), run_date.to_string().into());
    meta.insert("cutoff".into(), cutoff.to_string().into());
    meta.insert("forecasts".into(), serde_json::json!({ "run_id": forecasts_run, "manifest": layout::manifest(&layout::forecasts(run_date)).to_string() }));
    meta.insert("defaults".into(), serde_json::to_value(settings)?);
    meta.insert("summary".into(), serde_json::to_value(&m)?);
    writer.commit(clock.now(), meta).await?;
    m.latest = latest::advance(
        lake,
        &latest::Latest {
            dataset: DATASET.to_string(),
            run_date,
            run_id: run_id.to_string(),
            manifest: layout::manifest(&dir).to_string(),
            contract_version: CONTRACT_VERSION,
            updated_at: clock.now(),
        },
    )
    .await?;
    m.location = lake.display(&dir);
    m.manifest = lake.display(&layout::manifest(&dir));
    info!(rows = m.rows, order_lines = m.order_lines, below = m.below_reorder_point, "replenishment published");
    Ok(m)
}

/// Each series' steps (ordered by horizon) as moments, and its model.
fn read_series(batches: &[RecordBatch], levels: &[f64]) -> Result<HashMap<(String, String), SeriesForecast>> {
    let mut out: HashMap<(String, String), SeriesForecast> = HashMap::new();
    let names: Vec<String> = levels.iter().map(|l| publish::quantile_column(*l)).collect();
    for b in batches {
        let col = |name: &str, ty: &DataType| -> Result<ArrayRef> {
            let c = b.column_by_name(name).ok_or_else(|| Error::data(format!("forecast rows have no `{name}`")))?;
            Ok(cast(c, ty)?)
        };
        let (items, locs, models) =
            (col("item_id", &DataType::Utf8)?, col("location_id", &DataType::Utf8)?, col("model", &DataType::Utf8)?);
        let horizon = col("horizon", &DataType::Int32)?;
        let mean = col("mean", &DataType::Float64)?;
        let qs = names.iter().map(|n| col(n, &DataType::Float64)).collect::<Result<Vec<_>>>()?;
        let (items, locs, models) = (items.as_string::<i32>(), locs.as_string::<i32>(), models.as_string::<i32>());
        let horizon = horizon.as_primitive::<Int32Type>();
        let mean = mean.as_primitive::<Float64Type>();
        let qs: Vec<_> = qs.iter().map(|q| q.as_primitive::<Float64Type>()).collect();
        let mut qv = vec![0.0; qs.len()];
        for r in 0..b.num_rows() {
            for (k, q) in qs.iter().enumerate() {
                qv[k] = if q.is_null(r) { f64::NAN } else { q.value(r) };
            }
            let entry = out.entry((items.value(r).to_string(), locs.value(r).to_string())).or_default();
            if entry.model.is_empty() {
                entry.model = models.value(r).to_string();
            }
            entry.steps.push((horizon.value(r), moments(mean.value(r), levels, &qv)));
        }
    }
    for s in out.values_mut() {
        s.steps.sort_by_key(|(h, _)| *h);
    }
    Ok(out)
}

fn date_param(d: NaiveDate) -> ScalarValue {
    let epoch = crate::days::epoch();
    ScalarValue::Date32(Some((d - epoch).num_days() as i32))
}

async fn query(ctx: &SessionContext, sql: &str, cutoff: NaiveDate) -> Result<Vec<RecordBatch>> {
    Ok(ctx.sql(sql).await?.with_param_values(vec![date_param(cutoff)])?.collect().await?)
}

fn f64_col(b: &RecordBatch, name: &str) -> Result<ArrayRef> {
    let c = b.column_by_name(name).ok_or_else(|| Error::data(format!("plan query has no `{name}`")))?;
    Ok(cast(c, &DataType::Float64)?)
}

async fn read_stock(ctx: &SessionContext, cutoff: NaiveDate) -> Result<HashMap<(String, String), Stock>> {
    let mut out = HashMap::new();
    for b in query(ctx, STOCK_SQL, cutoff).await? {
        let items = cast(b.column(0), &DataType::Utf8)?;
        let locs = cast(b.column(1), &DataType::Utf8)?;
        let dates = cast(b.column(2), &DataType::Date32)?;
        let on_hand = f64_col(&b, "on_hand")?;
        let (items, locs) = (items.as_string::<i32>(), locs.as_string::<i32>());
        let dates = dates.as_primitive::<Date32Type>();
        let on_hand = on_hand.as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            let key = (items.value(r).to_string(), locs.value(r).to_string());
            out.insert(key, Stock { date: dates.value(r), on_hand: on_hand.value(r).max(0.0) });
        }
    }
    Ok(out)
}

async fn read_supply(ctx: &SessionContext, cutoff: NaiveDate) -> Result<HashMap<(String, String), Supply>> {
    let mut out = HashMap::new();
    for b in query(ctx, SUPPLY_SQL, cutoff).await? {
        let items = cast(b.column(0), &DataType::Utf8)?;
        let locs = cast(b.column(1), &DataType::Utf8)?;
        let (items, locs) = (items.as_string::<i32>(), locs.as_string::<i32>());
        let cols = ["lead_time_days", "review_period_days", "service_level", "on_order"]
            .iter()
            .map(|n| f64_col(&b, n))
            .collect::<Result<Vec<_>>>()?;
        let v = |c: usize, r: usize| {
            let a = cols[c].as_primitive::<Float64Type>();
            (!a.is_null(r)).then(|| a.value(r))
        };
        for r in 0..b.num_rows() {
            let key = (items.value(r).to_string(), locs.value(r).to_string());
            out.insert(
                key,
                Supply {
                    lead_time_days: v(0, r),
                    review_period_days: v(1, r),
                    service_level: v(2, r),
                    on_order: v(3, r),
                },
            );
        }
    }
    Ok(out)
}

#[derive(Default)]
struct Rows {
    run_id: StringBuilder,
    item: StringBuilder,
    location: StringBuilder,
    cutoff: Date32Builder,
    model: StringBuilder,
    lead_time: Float64Builder,
    review: Float64Builder,
    service: Float64Builder,
    distribution: StringBuilder,
    ltd_mean: Float64Builder,
    ltd_sd: Float64Builder,
    prot_mean: Float64Builder,
    prot_sd: Float64Builder,
    safety: Float64Builder,
    rop: Float64Builder,
    out: Float64Builder,
    on_hand: Float64Builder,
    on_order: Float64Builder,
    position: Float64Builder,
    stock_date: Date32Builder,
    order: Float64Builder,
    below: BooleanBuilder,
    change: Float64Builder,
    covered: Float64Builder,
}

impl Rows {
    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let cols: Vec<ArrayRef> = vec![
            Arc::new(self.run_id.finish()),
            Arc::new(self.item.finish()),
            Arc::new(self.location.finish()),
            Arc::new(self.cutoff.finish()),
            Arc::new(self.model.finish()),
            Arc::new(self.lead_time.finish()),
            Arc::new(self.review.finish()),
            Arc::new(self.service.finish()),
            Arc::new(self.distribution.finish()),
            Arc::new(self.ltd_mean.finish()),
            Arc::new(self.ltd_sd.finish()),
            Arc::new(self.prot_mean.finish()),
            Arc::new(self.prot_sd.finish()),
            Arc::new(self.safety.finish()),
            Arc::new(self.rop.finish()),
            Arc::new(self.out.finish()),
            Arc::new(self.on_hand.finish()),
            Arc::new(self.on_order.finish()),
            Arc::new(self.position.finish()),
            Arc::new(self.stock_date.finish()),
            Arc::new(self.order.finish()),
            Arc::new(self.below.finish()),
            Arc::new(self.change.finish()),
            Arc::new(self.covered.finish()),
        ];
        Ok(RecordBatch::try_new(Arc::clone(schema), cols)?)
    }
}
