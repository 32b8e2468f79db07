//! The demo lake: a seeded, realistic e-commerce history written as raw tables.
//!
//! Demand for each item × location × day is the product of a level with trend,
//! weekly and yearly seasonality by category, holidays and shopping festivals,
//! promotions (with a post-promotion dip), own-price elasticity, the price of
//! the cheapest competitor, and a latent consumer-interest process that page
//! views show one day before sales do. Demand is drawn from a negative
//! binomial; an (s, S) inventory process with late deliveries censors sales to
//! the stock on hand. Some items sell rarely; some launch mid-history.
//!
//! With [`DemoOptions::local`] (the `shelfcast demo` default) the lake also has a local layer,
//! known in advance and given 120 days past the last sale: a third of the locations close on
//! Sundays from 60% into the history, every location closes on Christmas and New Year's Day,
//! half close a few days for works (the first location right after the last sale), each region
//! has three holidays of its own (`calendar` rows with a `region`) that lift demand, and a planned
//! `local_marketing` level (0–3 per location and week, in `known_covariates`) moves log demand by
//! 0.3 per unit; a store stocks up for it (its reorder and order-up-to levels grow by that effect
//! for the higher of this week's and next week's level), so the plan shows in sales rather than
//! in stock-outs. Nothing is sold on a closed day.
//!
//! The generator streams: items are produced in chunks and each chunk is
//! written as one Parquet file per table, so memory stays bounded at M5 scale
//! (`--series 30000 --days 1900`). Every item draws from its own ChaCha stream,
//! so the output does not depend on the chunk size. The effects used are
//! written to `_demo/truth.json` ([`truth::Truth`]).

pub mod events;
mod sim;
pub mod truth;

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Builder, Float64Builder, StringBuilder};
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tracing::{info, instrument};

use crate::catalog::schema;
use crate::error::{Error, Result};
use crate::lake::{Lake, layout};
use truth::Truth;

/// What to generate.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Number of item × location series.
    pub series: usize,
    /// Days of history.
    pub days: usize,
    /// Last day of history.
    pub end: NaiveDate,
    /// Seed for every random draw.
    pub seed: u64,
    /// Target series-days per chunk (bounds memory).
    pub chunk_rows: usize,
    /// Adds the local layer: closures (a weekly closing day at some locations, public holidays,
    /// works), regional holidays in `calendar` and the planned `local_marketing` covariate.
    pub local: bool,
}

impl DemoOptions {
    /// Options with the default chunk size.
    pub fn new(series: usize, days: usize, end: NaiveDate, seed: u64) -> Self {
        Self { series, days, end, seed, chunk_rows: 2_000_000, local: false }
    }
}

/// What the generator wrote.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    /// Series generated.
    pub series: usize,
    /// Items generated.
    pub items: usize,
    /// Locations generated.
    pub locations: usize,
    /// First day.
    pub start: NaiveDate,
    /// Last day.
    pub end: NaiveDate,
    /// Rows per table.
    pub rows: std::collections::BTreeMap<String, u64>,
}

/// Locations used for a number of series.
pub fn locations_for(series: usize) -> usize {
    match series {
        0..=3 => 1,
        4..=99 => 2,
        100..=999 => 5,
        _ => 10,
    }
}

/// Whether the lake already holds a sales table.
pub async fn lake_has_sales(lake: &Lake) -> Result<bool> {
    lake.has_files(&layout::raw_table("sales"), ".parquet").await
}

/// Deletes the raw tables and the demo truth.
pub async fn clear(lake: &Lake) -> Result<()> {
    for t in schema::TABLES {
        for obj in lake.list(&layout::raw_table(t.name)).await? {
            lake.delete(&obj.location).await?;
        }
    }
    lake.delete(&layout::demo_truth()).await
}

/// Generates the demo lake. `progress` is called with (items done, items total).
#[instrument(skip_all, fields(series = opts.series, days = opts.days, seed = opts.seed))]
pub async fn generate(lake: &Lake, opts: &DemoOptions, progress: &(dyn Fn(u64, u64) + Sync)) -> Result<DemoReport> {
    if opts.series == 0 || opts.days < 14 {
        return Err(Error::data(format!(
            "demo needs at least 1 series and 14 days, got {} series and {} days",
            opts.series, opts.days
        )));
    }
    let start = opts.end - chrono::Duration::days(opts.days as i64 - 1);
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut truth = Truth::draw(&mut rng, opts.seed, start, opts.end);
    let n_loc = locations_for(opts.series);
    let n_items = opts.series.div_ceil(n_loc);
    truth.series = opts.series;
    truth.items = n_items;
    truth.locations = n_loc;
    let world = Arc::new(sim::World::new(&truth, opts.seed, n_loc, opts.days, opts.local));
    truth.local = world.local_truth();

    // Static tables first.
    write_table(lake, "locations", 0, world.locations_batch()?, &mut truth).await?;
    write_table(lake, "calendar", 0, world.calendar_batch()?, &mut truth).await?;
    for (table, batch) in world.local_batches()? {
        // The regional calendar rows go in a file of their own beside the shared calendar.
        let part = if table == "calendar" { 1 } else { 0 };
        write_table(lake, table, part, batch, &mut truth).await?;
    }

    let items_per_chunk = (opts.chunk_rows / (opts.days * n_loc)).max(1);
    let mut acc = sim::Accumulator::default();
    let mut items = sim::ItemRows::default();
    let mut chunk = 0usize;
    let mut first = 0usize;
    while first < n_items {
        let last = (first + items_per_chunk).min(n_items);
        let w = Arc::clone(&world);
        let total_series = opts.series;
        let out = crate::blocking::run(move || w.simulate_items(first..last, total_series)).await?;
        acc.merge(&out.acc);
        let (batches, chunk_items) = out.finish()?;
        items.extend(chunk_items);
        for (table, batch) in batches {
            write_table(lake, table, chunk, batch, &mut truth).await?;
        }
        chunk += 1;
        first = last;
        progress(first as u64, n_items as u64);
    }
    write_table(lake, "items", 0, items.batch()?, &mut truth).await?;
    acc.finish(&mut truth.outcome);
    truth.outcome.intermittent_items = world.intermittent_count(n_items);
    truth.outcome.new_items = world.new_item_count(n_items);
    lake.put(&layout::demo_truth(), serde_json::to_vec_pretty(&truth)?.into()).await?;
    info!(items = n_items, locations = n_loc, "demo lake written");
    Ok(DemoReport {
        series: opts.series,
        items: n_items,
        locations: n_loc,
        start,
        end: opts.end,
        rows: truth.outcome.rows.clone(),
    })
}

/// Reads the demo truth of a lake.
pub async fn read_truth(lake: &Lake) -> Result<Truth> {
    let path = layout::demo_truth();
    let bytes = lake.get(&path).await?;
    serde_json::from_slice(&bytes).map_err(|e| Error::Dataset { path: lake.display(&path), message: e.to_string() })
}

async fn write_table(lake: &Lake, table: &str, chunk: usize, batch: RecordBatch, truth: &mut Truth) -> Result<()> {
    *truth.outcome.rows.entry(table.to_string()).or_default() += batch.num_rows() as u64;
    if batch.num_rows() == 0 && chunk > 0 {
        return Ok(());
    }
    let bytes = crate::lake::parquet::encode(&batch.schema(), &[batch])?;
    let path = layout::raw_table(table).join(format!("part-{chunk:05}.parquet").as_str());
    lake.put(&path, bytes).await
}

/// Column builders for one raw table, in its canonical schema.
struct TableBuilder {
    schema: SchemaRef,
    cols: Vec<Col>,
}

enum Col {
    Date(Date32Builder),
    Text(StringBuilder),
    Num(Float64Builder),
}

impl TableBuilder {
    fn new(table: &str) -> Self {
        let spec = schema::table(table).expect("demo writes declared tables only");
        let cols = spec
            .columns
            .iter()
            .map(|c| match c.kind {
                schema::Kind::Date => Col::Date(Date32Builder::new()),
                schema::Kind::Text => Col::Text(StringBuilder::new()),
                schema::Kind::Number => Col::Num(Float64Builder::new()),
            })
            .collect();
        Self { schema: spec.canonical_schema(), cols }
    }

    fn date(&mut self, i: usize, v: i32) {
        if let Col::Date(b) = &mut self.cols[i] {
            b.append_value(v)
        }
    }

    fn text(&mut self, i: usize, v: &str) {
        if let Col::Text(b) = &mut self.cols[i] {
            b.append_value(v)
        }
    }

    fn null(&mut self, i: usize) {
        match &mut self.cols[i] {
            Col::Date(b) => b.append_null(),
            Col::Text(b) => b.append_null(),
            Col::Num(b) => b.append_null(),
        }
    }

    fn num(&mut self, i: usize, v: f64) {
        if let Col::Num(b) = &mut self.cols[i] {
            b.append_value(v)
        }
    }

    fn finish(mut self) -> Result<RecordBatch> {
        let arrays: Vec<ArrayRef> = self
            .cols
            .iter_mut()
            .map(|c| -> ArrayRef {
                match c {
                    Col::Date(b) => Arc::new(b.finish()),
                    Col::Text(b) => Arc::new(b.finish()),
                    Col::Num(b) => Arc::new(b.finish()),
                }
            })
            .collect();
        Ok(RecordBatch::try_new(self.schema, arrays)?)
    }
}
