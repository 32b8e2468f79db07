//! Data-quality gates: the checks in `sql/checks/`, quarantine, and the cleaned tables.
//!
//! Every check is one query returning the rows that violate it, each with a
//! `reason`, in one shape (`table_name, date, item_id, location_id, units,
//! revenue, price, reason`). Violations are written to
//! `quarantine/check=<name>/run_date=…/` as a dataset, and:
//!
//! - *row* checks (duplicates, returns when `returns = "drop"`, impossible
//!   prices, future dates, unknown items) leave their rows out: `sales` (and
//!   `prices`) are re-registered as views without them, so every feature reads
//!   clean data while the lake's files stay as they are;
//! - *finding* checks (missing periods, level breaks) are recorded only.
//!
//! A check marked `blocking` with a threshold stops the run when its violations
//! exceed it, before any feature or forecast is written, so the last good output
//! stays untouched.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use chrono::NaiveDate;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use serde::{Deserialize, Serialize};
use tracing::{info, instrument, warn};

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::lake::dataset::DatasetWriter;
use crate::lake::{Lake, layout};

/// What a check's rows mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// Violating rows of a table: quarantined and left out of the features.
    Rows,
    /// Findings about the data (a missing day, a level break): recorded only.
    Findings,
}

/// A data-quality check.
#[derive(Debug, Clone, Copy)]
pub struct Check {
    /// Name, also the file `sql/checks/<name>.sql`.
    pub name: &'static str,
    /// The query: `$1` run date, `$2` cutoff.
    pub sql: &'static str,
    /// What its rows mean.
    pub kind: CheckKind,
    /// Optional tables it checks: when none has a row the check finds nothing without reading
    /// `sales` (empty: it always runs).
    pub requires: &'static [&'static str],
}

macro_rules! check {
    ($name:literal, $kind:expr) => {
        check!($name, $kind, &[])
    };
    ($name:literal, $kind:expr, $requires:expr) => {
        Check {
            name: $name,
            sql: include_str!(concat!("../../sql/checks/", $name, ".sql")),
            kind: $kind,
            requires: $requires,
        }
    };
}

/// Every check, in the order they run (duplicates first: the others see one row per key).
pub const CHECKS: &[Check] = &[
    check!("duplicate_keys", CheckKind::Rows),
    check!("negative_units", CheckKind::Rows),
    check!("impossible_prices", CheckKind::Rows),
    check!("future_dates", CheckKind::Rows),
    check!("unknown_items", CheckKind::Rows),
    check!("closed_sales", CheckKind::Rows, &["closures"]),
    check!("missing_periods", CheckKind::Findings),
    check!("level_breaks", CheckKind::Findings),
    check!("bad_covariates", CheckKind::Findings, &["closures", "known_covariates", "observed_covariates"]),
    check!("bad_promotions", CheckKind::Findings, &["promotions"]),
];

const DEDUP_SALES: &str = include_str!("../../sql/checks/dedup_sales.sql");

/// What to do with negative units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Returns {
    /// Keep them: returns net against sales in the period.
    #[default]
    Net,
    /// Quarantine them and leave them out.
    Drop,
}

/// Settings of one check.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CheckSettings {
    /// Stop the run when the threshold is exceeded.
    #[serde(default)]
    pub blocking: bool,
    /// Most violating rows allowed (blocking checks).
    pub max_rows: Option<u64>,
    /// Largest share of the table's rows allowed to violate, 0–1 (blocking checks).
    pub max_share: Option<f64>,
}

/// The `[quality]` settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct QualitySettings {
    /// Negative units: `net` (keep) or `drop` (quarantine).
    #[serde(default)]
    pub returns: Returns,
    /// Per-check settings, by check name.
    #[serde(default)]
    pub checks: BTreeMap<String, CheckSettings>,
}

impl QualitySettings {
    /// Refuses unknown check names and out-of-range thresholds.
    pub fn validate(&self) -> Result<()> {
        for (name, c) in &self.checks {
            if !CHECKS.iter().any(|k| k.name == name) {
                let known: Vec<_> = CHECKS.iter().map(|k| k.name).collect();
                return Err(Error::InvalidSetting {
                    key: format!("quality.checks.{name}"),
                    message: format!("no such check (known: {})", known.join(", ")),
                });
            }
            if let Some(s) = c.max_share
                && !(0.0..=1.0).contains(&s)
            {
                return Err(Error::InvalidSetting {
                    key: format!("quality.checks.{name}.max-share"),
                    message: format!("must be between 0 and 1, got {s}"),
                });
            }
        }
        Ok(())
    }

    fn for_check(&self, name: &str) -> CheckSettings {
        self.checks.get(name).cloned().unwrap_or_default()
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    /// Check name.
    pub name: String,
    /// What its rows mean.
    pub kind: CheckKind,
    /// Violations found.
    pub rows: u64,
    /// Their share of the sales rows.
    pub share: f64,
    /// Whether the rows were left out of the features.
    pub excluded: bool,
    /// Whether the check can stop the run.
    pub blocking: bool,
    /// Whether it stopped the run.
    pub failed: bool,
    /// Where the violations were written.
    pub quarantine: Option<String>,
}

/// The outcome of all checks.
#[derive(Debug, Clone, Serialize)]
pub struct QualityReport {
    /// Sales rows read.
    pub sales_rows: u64,
    /// Per check.
    pub checks: Vec<CheckResult>,
    /// Rows left out of the features, over all checks.
    pub excluded_rows: u64,
}

impl QualityReport {
    /// The checks that stopped the run.
    pub fn failures(&self) -> Vec<&CheckResult> {
        self.checks.iter().filter(|c| c.failed).collect()
    }
}

async fn count(ctx: &SessionContext, table: &str) -> Result<u64> {
    Ok(ctx.table(table).await?.count().await? as u64)
}

/// Runs every check, writes the quarantine, and replaces `sales`/`prices` in `ctx` with views
/// without the excluded rows. Fails with [`Error::QualityGate`] when a blocking check's threshold is
/// exceeded (after writing the quarantine, before anything else).
#[instrument(skip_all, fields(run_date = %run_date, cutoff = %cutoff))]
pub async fn run(
    ctx: &SessionContext,
    lake: &Lake,
    settings: &QualitySettings,
    run_date: NaiveDate,
    cutoff: NaiveDate,
    token: &str,
    clock: &dyn Clock,
) -> Result<QualityReport> {
    let sales_rows = count(ctx, "sales").await?;
    let params = vec![ScalarValue::Utf8(Some(run_date.to_string())), ScalarValue::Utf8(Some(cutoff.to_string()))];
    let mut results = Vec::new();
    let mut excluded: Vec<RecordBatch> = Vec::new();
    let mut duplicates = 0;
    for check in CHECKS {
        let mut needed = check.requires.is_empty();
        for t in check.requires {
            needed = needed || count(ctx, t).await? > 0;
        }
        if !needed {
            results.push(CheckResult {
                name: check.name.to_string(),
                kind: check.kind,
                rows: 0,
                share: 0.0,
                excluded: false,
                blocking: settings.for_check(check.name).blocking,
                failed: false,
                quarantine: None,
            });
            continue;
        }
        let df = ctx
            .sql(check.sql)
            .await
            .map_err(|e| Error::data(format!("check `{}`: {e}", check.name)))?
            .with_param_values(params.clone())?;
        let batches = df
            .collect()
            .await
            .map_err(|e| Error::data(format!("check `{}`: {e}", check.name)))?
            .iter()
            .map(|b| conform(check.name, b))
            .collect::<Result<Vec<_>>>()?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        let cfg = settings.for_check(check.name);
        let excludes =
            check.kind == CheckKind::Rows && (check.name != "negative_units" || settings.returns == Returns::Drop);
        let share = if sales_rows == 0 { 0.0 } else { rows as f64 / sales_rows as f64 };
        let over = cfg.max_rows.is_some_and(|m| rows > m)
            || cfg.max_share.is_some_and(|m| share > m)
            || (cfg.max_rows.is_none() && cfg.max_share.is_none() && rows > 0);
        let failed = cfg.blocking && over;
        let dir = quarantine_dir(check.name, run_date);
        let mut writer =
            DatasetWriter::new(lake, dir.clone(), format!("quarantine/{}", check.name), token, violation_schema());
        for b in &batches {
            writer.write(b.clone()).await?;
        }
        let mut meta = serde_json::Map::new();
        meta.insert("check".into(), check.name.into());
        meta.insert("run_date".into(), run_date.to_string().into());
        meta.insert("cutoff".into(), cutoff.to_string().into());
        meta.insert("excluded".into(), excludes.into());
        writer.commit(clock.now(), meta).await?;
        if rows > 0 {
            warn!(check = check.name, rows, share, excluded = excludes, "data-quality violations");
        }
        if excludes && check.name == "duplicate_keys" {
            duplicates = rows;
        } else if excludes {
            excluded.extend(batches);
        }
        results.push(CheckResult {
            name: check.name.to_string(),
            kind: check.kind,
            rows,
            share,
            excluded: excludes && rows > 0,
            blocking: cfg.blocking,
            failed,
            quarantine: (rows > 0).then(|| lake.display(&dir)),
        });
        // Later checks see one row per key.
        if check.name == "duplicate_keys" && rows > 0 {
            let dedup = ctx.sql(DEDUP_SALES).await?;
            replace(ctx, "sales", dedup)?;
        }
    }
    let excluded_rows = duplicates + excluded.iter().map(|b| b.num_rows() as u64).sum::<u64>();
    let report = QualityReport { sales_rows, checks: results, excluded_rows };
    let failures = report.failures();
    if !failures.is_empty() {
        let detail: Vec<String> = failures
            .iter()
            .map(|c| {
                format!(
                    "{}: {} rows ({:.2}% of sales), quarantined in {}",
                    c.name,
                    c.rows,
                    c.share * 100.0,
                    c.quarantine.clone().unwrap_or_default()
                )
            })
            .collect();
        return Err(Error::QualityGate { failures: detail.join("; ") });
    }
    if !excluded.is_empty() {
        exclude(ctx, "sales", &excluded).await?;
        exclude(ctx, "prices", &excluded).await?;
    }
    info!(excluded = report.excluded_rows, "quality checks done");
    Ok(report)
}

/// Where a check's violations for a run date go.
pub fn quarantine_dir(check: &str, run_date: NaiveDate) -> object_store::path::Path {
    layout::quarantine(check, run_date)
}

/// Replaces `table` in `ctx` with `view`. A view's plan holds the providers it was planned
/// against, so a view built over the current `table` keeps reading the original.
fn replace(ctx: &SessionContext, table: &str, view: datafusion::dataframe::DataFrame) -> Result<()> {
    ctx.deregister_table(table)?;
    ctx.register_table(table, view.into_view())?;
    Ok(())
}

/// The one schema of every check's output (and of every quarantine dataset).
pub fn violation_schema() -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema};
    let text = |n| Field::new(n, DataType::Utf8, true);
    let num = |n| Field::new(n, DataType::Float64, true);
    Arc::new(Schema::new(vec![
        text("table_name"),
        Field::new("date", DataType::Date32, true),
        text("item_id"),
        text("location_id"),
        num("units"),
        num("revenue"),
        num("price"),
        text("reason"),
    ]))
}

/// Casts a check's output to [`violation_schema`]; errors name the check.
fn conform(check: &str, batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = violation_schema();
    let arrays = schema
        .fields()
        .iter()
        .map(|f| {
            let c = batch
                .column_by_name(f.name())
                .ok_or_else(|| Error::data(format!("check `{check}` returns no column `{}`", f.name())))?;
            Ok(arrow::compute::cast(c, f.data_type())?)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// Replaces `table` with a view that leaves out the keys of the excluded rows of that table.
async fn exclude(ctx: &SessionContext, table: &str, excluded: &[RecordBatch]) -> Result<()> {
    let keys = MemTable::try_new(violation_schema(), vec![excluded.to_vec()])?;
    let name = format!("_excluded_{table}");
    ctx.register_table(name.as_str(), Arc::new(keys))?;
    let sql = format!(
        "SELECT t.* FROM {table} t WHERE NOT EXISTS (SELECT 1 FROM {name} x WHERE x.table_name = '{table}' \
         AND x.date = CAST(t.date AS DATE) AND x.item_id = CAST(t.item_id AS VARCHAR) \
         AND x.location_id = CAST(t.location_id AS VARCHAR))"
    );
    let view = ctx.sql(&sql).await?;
    replace(ctx, table, view)
}
