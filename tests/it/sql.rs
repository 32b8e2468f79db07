//! Runs `tests/sql/*.slt`: the business rules of each query in `sql/` on tiny hand-checked inputs.
//!
//! Every raw table starts empty (canonical schema) and files fill them with `INSERT`. A
//! `FEATURES cutoff=YYYY-MM-DD [frequency=daily|weekly] [horizon=N]` statement registers every
//! feature query as a view with those parameters, exactly as `shelfcast query` does. A query
//! `RUN <file under sql/> [PARAM ...]` runs that file with positional parameters `$1`, `$2`, …,
//! bound as the code binds them: `date:YYYY-MM-DD` a date, anything else text. Floats print
//! rounded to 6 decimals with trailing zeros trimmed; NULL prints as `NULL`.

use std::path::PathBuf;

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use shelfcast::features::{self, FeatureParams};
use shelfcast::settings::Frequency;
use sqllogictest::{DBOutput, DefaultColumnType};

struct FeatureDb {
    ctx: SessionContext,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct DbError(String);

impl From<shelfcast::Error> for DbError {
    fn from(e: shelfcast::Error) -> Self {
        DbError(e.to_string())
    }
}

impl From<datafusion::error::DataFusionError> for DbError {
    fn from(e: datafusion::error::DataFusionError) -> Self {
        DbError(e.to_string())
    }
}

fn parse_features(args: &str) -> Result<FeatureParams, DbError> {
    let (mut cutoff, mut frequency, mut horizon) = (None, Frequency::Daily, 7);
    for kv in args.split_whitespace() {
        let (k, v) = kv.split_once('=').ok_or_else(|| DbError(format!("FEATURES: expected key=value, got {kv}")))?;
        match k {
            "cutoff" => cutoff = Some(v.parse().map_err(|e| DbError(format!("cutoff: {e}")))?),
            "frequency" => frequency = if v == "weekly" { Frequency::Weekly } else { Frequency::Daily },
            "horizon" => horizon = v.parse().map_err(|e| DbError(format!("horizon: {e}")))?,
            _ => return Err(DbError(format!("FEATURES: unknown key {k}"))),
        }
    }
    let cutoff = cutoff.ok_or_else(|| DbError("FEATURES needs cutoff=".into()))?;
    Ok(FeatureParams::new(cutoff, frequency, horizon))
}

/// A `RUN` parameter: `date:YYYY-MM-DD` a date, anything else text.
fn param(word: &str) -> Result<ScalarValue, DbError> {
    match word.strip_prefix("date:") {
        Some(d) => {
            let d: chrono::NaiveDate = d.parse().map_err(|e| DbError(format!("{word}: {e}")))?;
            Ok(ScalarValue::Date32(Some((d - shelfcast::days::epoch()).num_days() as i32)))
        }
        None => Ok(ScalarValue::Utf8(Some(word.to_string()))),
    }
}

fn cell(col: &ArrayRef, row: usize) -> Result<String, DbError> {
    if col.is_null(row) {
        return Ok("NULL".into());
    }
    let float = match col.data_type() {
        DataType::Float64 => Some(col.as_primitive::<Float64Type>().value(row)),
        DataType::Float32 => Some(col.as_primitive::<Float32Type>().value(row) as f64),
        _ => None,
    };
    if let Some(v) = float {
        if v.is_nan() {
            return Ok("NaN".into());
        }
        let s = format!("{v:.6}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return Ok(if s == "-0" { "0".into() } else { s.to_string() });
    }
    let f = ArrayFormatter::try_new(col.as_ref(), &FormatOptions::default()).map_err(|e| DbError(e.to_string()))?;
    let s = f.value(row).to_string();
    Ok(if s.is_empty() { "(empty)".into() } else { s })
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for FeatureDb {
    type Error = DbError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, DbError> {
        let trimmed = sql.trim();
        if let Some(args) = trimmed.strip_prefix("FEATURES") {
            features::register_views(&self.ctx, parse_features(args)?).await?;
            return Ok(DBOutput::StatementComplete(0));
        }
        let first = trimmed.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
        let batches = if let Some(rest) = trimmed.strip_prefix("RUN ") {
            let mut words = rest.split_whitespace();
            let file = words.next().ok_or_else(|| DbError("RUN needs a file under sql/".into()))?;
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql").join(file);
            let sql = std::fs::read_to_string(&path).map_err(|e| DbError(format!("{}: {e}", path.display())))?;
            let params: Vec<ScalarValue> = words.map(param).collect::<Result<_, _>>()?;
            let df = self.ctx.sql(&sql).await?;
            let df = if params.is_empty() { df } else { df.with_param_values(params)? };
            df.collect().await?
        } else {
            self.ctx.sql(trimmed).await?.collect().await?
        };
        if !matches!(first.as_str(), "SELECT" | "WITH" | "VALUES" | "EXPLAIN" | "RUN") {
            return Ok(DBOutput::StatementComplete(0));
        }
        let mut rows = Vec::new();
        let mut types = Vec::new();
        for b in &batches {
            if types.is_empty() {
                types = b
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| match f.data_type() {
                        t if t.is_integer() => DefaultColumnType::Integer,
                        t if t.is_floating() => DefaultColumnType::FloatingPoint,
                        DataType::Utf8 | DataType::Utf8View | DataType::LargeUtf8 => DefaultColumnType::Text,
                        _ => DefaultColumnType::Any,
                    })
                    .collect();
            }
            for r in 0..b.num_rows() {
                rows.push(b.columns().iter().map(|c| cell(c, r)).collect::<Result<Vec<_>, _>>()?);
            }
        }
        Ok(DBOutput::Rows { types, rows })
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "shelfcast"
    }
}

fn slt_files() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sql");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

/// The folders under `sql/` whose every file a `.slt` file runs with `RUN`.
const RUN_FOLDERS: &[&str] = &["checks", "plan", "factors"];

#[tokio::test]
async fn every_sql_file_has_its_rules_checked() {
    let files = slt_files();
    for q in features::queries::ALL {
        let stem = q.file.trim_end_matches(".sql");
        assert!(
            files.iter().any(|f| f.file_stem().is_some_and(|s| s.to_string_lossy().starts_with(stem))),
            "no tests/sql/{stem}*.slt for sql/features/{}",
            q.file
        );
    }
    let texts: Vec<String> = files.iter().map(|f| std::fs::read_to_string(f).unwrap()).collect();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("sql");
    for folder in RUN_FOLDERS {
        for entry in std::fs::read_dir(root.join(folder)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            let run = format!("RUN {folder}/{name}");
            assert!(texts.iter().any(|t| t.contains(&run)), "no tests/sql/*.slt runs sql/{folder}/{name} (`{run}`)");
        }
    }
    let mut failures = Vec::new();
    for file in files {
        let mut runner = sqllogictest::Runner::new(|| async {
            let ctx = shelfcast::engine::local_context(2);
            shelfcast::catalog::register_empty(&ctx).map_err(DbError::from)?;
            Ok::<_, DbError>(FeatureDb { ctx })
        });
        if let Err(e) = runner.run_file_async(&file).await {
            failures.push(format!("{}: {e}", file.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
