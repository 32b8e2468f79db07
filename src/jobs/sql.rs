//! The `sql` step: one read-only SQL file run for the run's date, its result counted or written
//! as a dataset.
//!
//! The query sees every raw table and every feature table at the run's cutoff (the ones a
//! `features` step of the same run wrote, views over the raw tables otherwise). Parameters are
//! bound, never spliced into the text: `$run_date` and `$cutoff` (dates) and each of the job's
//! `[params]` as `$name`. With `output = "name"` the result is written to
//! `outputs/<name>/run_date=…/` like every dataset: data files first, manifest last, so a rerun
//! of the date replaces it atomically.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::execution::context::SQLOptions;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use futures::StreamExt;

use super::spec::{JobSpec, Param, SqlStep};
use crate::error::{Error, Result};
use crate::features::{self, FeatureParams, queries};
use crate::lake::dataset::DatasetWriter;
use crate::lake::{Lake, layout};

/// What a `sql` step did.
#[derive(Debug, Clone)]
pub struct SqlMetrics {
    /// Rows the query returned.
    pub rows: u64,
    /// Where they were written, when the step has an `output`.
    pub location: Option<String>,
}

fn date_value(d: NaiveDate) -> ScalarValue {
    let days = d.signed_duration_since(NaiveDate::default()).num_days();
    ScalarValue::Date32(Some(days as i32))
}

/// The values bound to a `sql` step's parameters.
pub fn param_values(job: &JobSpec, run_date: NaiveDate, cutoff: NaiveDate) -> Vec<(String, ScalarValue)> {
    let mut out = vec![("run_date".to_string(), date_value(run_date)), ("cutoff".to_string(), date_value(cutoff))];
    for (k, v) in &job.params {
        let value = match v {
            Param::Text(s) => ScalarValue::Utf8(Some(s.clone())),
            Param::Int(i) => ScalarValue::Int64(Some(*i)),
            Param::Float(f) => ScalarValue::Float64(Some(*f)),
            Param::Bool(b) => ScalarValue::Boolean(Some(*b)),
            Param::Date(d) => date_value(*d),
        };
        out.push((k.clone(), value));
    }
    out
}

/// Registers a view for each feature query the session does not have as a table yet.
async fn ensure_feature_tables(ctx: &SessionContext, params: FeatureParams) -> Result<()> {
    for q in queries::for_frequency(params.frequency) {
        if !ctx.table_exist(q.name)? {
            let df = features::dataframe(ctx, q, params).await?;
            ctx.register_table(q.name, df.into_view())?;
        }
    }
    Ok(())
}

/// Runs the step's SQL.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    ctx: &SessionContext,
    lake: &Lake,
    job: &JobSpec,
    sql: &SqlStep,
    params: FeatureParams,
    run_date: NaiveDate,
    run_id: &str,
    now: DateTime<Utc>,
) -> Result<SqlMetrics> {
    crate::query::ensure_read_only(&sql.text)?;
    ensure_feature_tables(ctx, params).await?;
    let options = SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false);
    let file = sql.file.display().to_string();
    let df = ctx
        .sql_with_options(&sql.text, options)
        .await
        .and_then(|df| df.with_param_values(param_values(job, run_date, params.cutoff)))
        .map_err(|e| Error::data(format!("{file}: {e}")))?;
    match &sql.output {
        None => {
            let mut stream = df.execute_stream().await?;
            let mut rows = 0u64;
            while let Some(b) = stream.next().await {
                rows += b?.num_rows() as u64;
            }
            Ok(SqlMetrics { rows, location: None })
        }
        Some(name) => {
            let schema = Arc::new(df.schema().as_arrow().clone());
            let dir = layout::job_output(name, run_date);
            let mut writer = DatasetWriter::new(lake, dir.clone(), format!("outputs/{name}"), run_id, schema);
            let plan = df.logical_plan().clone();
            writer.write_stream(df.execute_stream().await?).await?;
            // A feature table the query read that was replaced and deleted under it fails the step.
            crate::engine::inputs::ensure_inputs_exist(ctx, &plan).await?;
            let mut meta = serde_json::Map::new();
            meta.insert("run_id".into(), run_id.into());
            meta.insert("run_date".into(), run_date.to_string().into());
            meta.insert("cutoff".into(), params.cutoff.to_string().into());
            meta.insert("job".into(), job.name.clone().into());
            meta.insert("query".into(), file.into());
            let manifest = writer.commit(now, meta).await?;
            Ok(SqlMetrics { rows: manifest.row_count, location: Some(lake.display(&dir)) })
        }
    }
}
