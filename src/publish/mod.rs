//! Publishing forecasts: the dataset planners read, and telling them it is there.
//!
//! - [`latest`]: the `_latest.json` pointer to a dataset's newest run date.
//! - [`stability`]: how far each series' forecast moved since the previous run.
//! - [`notify`]: webhook deliveries of the manifests, signed, retried, never blocking.
//! - [`signature`]: how a delivery is signed, and the receiver's check.
//!
//! `forecasts/run_date=YYYY-MM-DD/part-<run>-*.parquet` (and `forecasts-<run>-*.csv`, with
//! `[publish] csv = true`, named in the manifest's `copies` as `forecasts.csv`), then `_manifest.json` (run id, row count, schema, checksums,
//! inputs, model, stability), written last, then `forecasts/_latest.json`. Rows
//! are one per item × location × target date:
//!
//! | column | type | meaning |
//! |---|---|---|
//! | run_id | Utf8 | the run that produced the row |
//! | item_id, location_id | Utf8 | the series |
//! | target_date | Date32 | the day (or week's Monday) forecast |
//! | horizon | Int32 | periods after the cutoff, from 1 |
//! | mean | Float64 | expected demand |
//! | q10, q50, q90, … | Float64 | quantiles, one column per configured level (`q2_5` for 0.025) |
//! | model, model_version | Utf8 | what produced the row |
//!
//! Re-running a date replaces its output: the new manifest is swapped in
//! atomically; the older files stay for readers of the previous manifest for the lake's grace
//! period (see [`crate::lake::dataset`]). The contract is versioned
//! ([`CONTRACT_VERSION`], in every manifest and pointer): a column is never renamed,
//! retyped or removed without a new version.

pub mod latest;
pub mod notify;
pub mod shadow;
pub mod signature;
pub mod stability;

use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Builder, Float64Builder, Int32Builder, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tracing::{info, instrument};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::lake::dataset::{DatasetWriter, Manifest};
use crate::lake::{Lake, layout};
use crate::models::Forecast;
use crate::panel::Panel;

/// The forecast contract version, recorded in every manifest.
pub const CONTRACT_VERSION: u32 = 1;

/// Rows per record batch while building the dataset.
const BATCH_ROWS: usize = 64 * 1024;

/// The dataset name of the forecasts (its root folder, and its `latest` pointer's name).
pub const DATASET: &str = "forecasts";

/// The CSV copy's name in the manifest's `copies`; its file carries the writer's token.
pub const CSV_FILE: &str = "forecasts.csv";

/// The `[publish]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PublishSettings {
    /// Also write a CSV copy (same columns, ISO dates) beside the Parquet files.
    #[serde(default)]
    pub csv: bool,
    /// `|change|` of a series' forecast against the previous run that counts as a jump.
    #[serde(default = "default_jump_threshold")]
    pub jump_threshold: f64,
}

fn default_jump_threshold() -> f64 {
    0.5
}

impl Default for PublishSettings {
    fn default() -> Self {
        Self { csv: false, jump_threshold: default_jump_threshold() }
    }
}

/// The column name of a quantile level: `q10` for 0.1, `q2_5` for 0.025.
pub fn quantile_column(level: f64) -> String {
    let pct = format!("{:.4}", level * 100.0);
    let pct = pct.trim_end_matches('0').trim_end_matches('.');
    format!("q{}", pct.replace('.', "_"))
}

/// The schema of the forecasts dataset for these quantile levels.
pub fn schema(levels: &[f64]) -> SchemaRef {
    let mut fields = vec![
        Field::new("run_id", DataType::Utf8, false),
        Field::new("item_id", DataType::Utf8, false),
        Field::new("location_id", DataType::Utf8, false),
        Field::new("target_date", DataType::Date32, false),
        Field::new("horizon", DataType::Int32, false),
        Field::new("mean", DataType::Float64, false),
    ];
    fields.extend(levels.iter().map(|l| Field::new(quantile_column(*l), DataType::Float64, false)));
    fields.push(Field::new("model", DataType::Utf8, false));
    fields.push(Field::new("model_version", DataType::Utf8, false));
    fields.push(Field::new("point", DataType::Float64, false));
    Arc::new(Schema::new(fields))
}

/// One forecast publication.
#[derive(Debug)]
pub struct ForecastRelease<'a> {
    /// The run producing it.
    pub run_id: &'a str,
    /// The run date (the partition).
    pub run_date: NaiveDate,
    /// Last day of data used.
    pub cutoff: NaiveDate,
    /// The series.
    pub panel: &'a Panel,
    /// The forecast, aligned with the panel's series.
    pub forecast: &'a Forecast,
    /// Version of the model that produced it.
    pub model_version: &'a str,
    /// The model behind each series' rows when they differ (the champion of its segment); empty:
    /// `forecast.model` for every row.
    pub series_models: &'a [String],
    /// What was read (tables, feature datasets), recorded in the manifest.
    pub inputs: serde_json::Value,
    /// The champion model of each segment, recorded in the manifest.
    pub champions: serde_json::Value,
    /// CSV copy, jump threshold.
    pub settings: &'a PublishSettings,
}

/// What publishing wrote.
#[derive(Debug, Clone, Serialize)]
pub struct PublishMetrics {
    /// Rows written.
    pub rows: u64,
    /// Data files written.
    pub files: usize,
    /// Where the dataset lives.
    pub location: String,
    /// The manifest's location.
    pub manifest: String,
    /// The change against the previous run.
    pub stability: stability::StabilitySummary,
    /// Whether `forecasts/_latest.json` now points at this run date (false: a newer one exists).
    pub latest: bool,
}

/// Writes the forecasts of a run date, manifest last.
#[instrument(skip_all, fields(run_id = r.run_id, run_date = %r.run_date, model = %r.forecast.model))]
pub async fn publish_forecasts(lake: &Lake, r: &ForecastRelease<'_>, clock: &dyn Clock) -> Result<PublishMetrics> {
    let f = r.forecast;
    if f.series() != r.panel.len() {
        return Err(Error::data(format!("forecast has {} series, panel {}", f.series(), r.panel.len())));
    }
    let schema = schema(&f.levels);
    let dir = layout::forecasts(r.run_date);
    let mut writer = DatasetWriter::new(lake, dir.clone(), DATASET, r.run_id, Arc::clone(&schema));
    let mut csv = r.settings.csv.then(|| arrow::csv::WriterBuilder::new().with_header(true).build(Vec::new()));
    let mut means = stability::SeriesMeans::new();
    let epoch = crate::days::epoch();
    for (s, key) in r.panel.keys.iter().enumerate() {
        let series = means.entry((key.item_id.clone(), key.location_id.clone())).or_default();
        for h in 0..f.horizon {
            let target = (r.panel.target_date(h + 1) - epoch).num_days() as i32;
            series.insert(target, f.mean_at(s, h) as f64);
        }
    }
    for batch in ContractRows::new(r.panel, f, r.series_models, r.run_id, r.model_version) {
        let batch = batch?;
        if let Some(w) = csv.as_mut() {
            w.write(&batch)?;
        }
        writer.write(batch).await?;
    }
    let rows = (r.panel.len() * f.horizon) as u64;
    if let Some(w) = csv {
        writer.attach(CSV_FILE, rows, w.into_inner().into()).await?;
    }
    let stability = stability::against_previous(lake, DATASET, r.run_date, &means, r.settings.jump_threshold).await?;
    let mut meta = serde_json::Map::new();
    meta.insert("contract_version".into(), CONTRACT_VERSION.into());
    meta.insert("run_id".into(), r.run_id.into());
    meta.insert("run_date".into(), r.run_date.to_string().into());
    meta.insert("cutoff".into(), r.cutoff.to_string().into());
    meta.insert("frequency".into(), r.panel.frequency.as_str().into());
    meta.insert("horizon".into(), f.horizon.into());
    meta.insert("quantiles".into(), serde_json::json!(f.levels));
    meta.insert("series".into(), r.panel.len().into());
    meta.insert("model".into(), serde_json::json!({ "name": f.model, "version": r.model_version }));
    meta.insert("inputs".into(), r.inputs.clone());
    meta.insert("champions".into(), r.champions.clone());
    meta.insert("stability".into(), serde_json::to_value(&stability.summary)?);
    let manifest = writer.commit(clock.now(), meta).await?;
    // The pointer moves only once the manifest is in place.
    let pointer = latest::Latest {
        dataset: DATASET.to_string(),
        run_date: r.run_date,
        run_id: r.run_id.to_string(),
        manifest: layout::manifest(&dir).to_string(),
        contract_version: CONTRACT_VERSION,
        updated_at: clock.now(),
    };
    let moved = latest::advance(lake, &pointer).await?;
    info!(rows = manifest.row_count, jumps = stability.summary.jumps, latest = moved, "forecasts published");
    Ok(PublishMetrics {
        rows: manifest.row_count,
        files: manifest.files.len(),
        location: lake.display(&dir),
        manifest: lake.display(&layout::manifest(&dir)),
        stability: stability.summary,
        latest: moved,
    })
}

/// Reads the published forecasts of a run date through its manifest.
pub async fn read_forecasts(lake: &Lake, run_date: NaiveDate) -> Result<(Manifest, Vec<RecordBatch>)> {
    crate::lake::dataset::read(lake, &layout::forecasts(run_date)).await
}

/// The rows of one forecast in the contract's schema ([`schema`]), at most `BATCH_ROWS` per batch:
/// one per series × horizon step, in the panel's series order.
pub(crate) struct ContractRows<'a> {
    panel: &'a Panel,
    forecast: &'a Forecast,
    series_models: &'a [String],
    run_id: &'a str,
    version: &'a str,
    schema: SchemaRef,
    next: usize,
}

impl<'a> ContractRows<'a> {
    /// The rows of `forecast` over `panel`'s series; `series_models`: the model of each series
    /// when they differ (empty: `forecast.model` for every row).
    pub(crate) fn new(
        panel: &'a Panel,
        forecast: &'a Forecast,
        series_models: &'a [String],
        run_id: &'a str,
        version: &'a str,
    ) -> Self {
        Self { panel, forecast, series_models, run_id, version, schema: schema(&forecast.levels), next: 0 }
    }
}

impl Iterator for ContractRows<'_> {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let f = self.forecast;
        let total = self.panel.len() * f.horizon;
        if self.next >= total || f.horizon == 0 {
            return None;
        }
        let epoch = crate::days::epoch();
        let mut b = Builders::new(f.levels.len());
        let end = (self.next + BATCH_ROWS).min(total);
        for row in self.next..end {
            let (s, h) = (row / f.horizon, row % f.horizon);
            let key = &self.panel.keys[s];
            b.run_id.append_value(self.run_id);
            b.item.append_value(&key.item_id);
            b.location.append_value(&key.location_id);
            b.target.append_value((self.panel.target_date(h + 1) - epoch).num_days() as i32);
            b.horizon.append_value(h as i32 + 1);
            b.mean.append_value(f.mean_at(s, h) as f64);
            for (q, col) in b.quantiles.iter_mut().enumerate() {
                col.append_value(f.quantile_at(s, h, q) as f64);
            }
            b.model.append_value(self.series_models.get(s).unwrap_or(&f.model));
            b.version.append_value(self.version);
            b.point.append_value(f.point_at(s, h) as f64);
        }
        self.next = end;
        Some(b.finish(&self.schema))
    }
}

struct Builders {
    run_id: StringBuilder,
    item: StringBuilder,
    location: StringBuilder,
    target: Date32Builder,
    horizon: Int32Builder,
    mean: Float64Builder,
    quantiles: Vec<Float64Builder>,
    model: StringBuilder,
    version: StringBuilder,
    point: Float64Builder,
}

impl Builders {
    fn new(levels: usize) -> Self {
        Self {
            run_id: StringBuilder::new(),
            item: StringBuilder::new(),
            location: StringBuilder::new(),
            target: Date32Builder::new(),
            horizon: Int32Builder::new(),
            mean: Float64Builder::new(),
            quantiles: (0..levels).map(|_| Float64Builder::new()).collect(),
            model: StringBuilder::new(),
            version: StringBuilder::new(),
            point: Float64Builder::new(),
        }
    }

    fn finish(&mut self, schema: &SchemaRef) -> Result<RecordBatch> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.run_id.finish()),
            Arc::new(self.item.finish()),
            Arc::new(self.location.finish()),
            Arc::new(self.target.finish()),
            Arc::new(self.horizon.finish()),
            Arc::new(self.mean.finish()),
        ];
        cols.extend(self.quantiles.iter_mut().map(|q| Arc::new(q.finish()) as ArrayRef));
        cols.push(Arc::new(self.model.finish()));
        cols.push(Arc::new(self.version.finish()));
        cols.push(Arc::new(self.point.finish()));
        Ok(RecordBatch::try_new(Arc::clone(schema), cols)?)
    }
}

#[cfg(test)]
mod tests {
    use super::quantile_column;

    #[test]
    fn quantile_columns_are_readable() {
        assert_eq!(quantile_column(0.1), "q10");
        assert_eq!(quantile_column(0.5), "q50");
        assert_eq!(quantile_column(0.025), "q2_5");
        assert_eq!(quantile_column(0.975), "q97_5");
    }
}
