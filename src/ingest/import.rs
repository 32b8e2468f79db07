//! `shelfcast import`: a CSV or Parquet file mapped into a raw table, or a known public dataset
//! through its preset SQL in `sql/import/`.
//!
//! A mapping names, for each column of the target table, the source column it comes from
//! (`--map units=Weekly_Sales`, or a TOML file of `column = "source"` lines); a column it leaves
//! out is read from the file's column of the same name (in any case), so a file already in the
//! table's shape imports with no mapping at all. Every value is read
//! with a checked cast; rows whose required columns are missing or unreadable, whose mapped
//! optional columns hold a value that does not read, whose numbers are not finite (`NaN`, `inf`),
//! whose dates do not read with `--date-format`, or whose line is not valid UTF-8 or has the wrong
//! number of fields ([`super::text_file`]), are quarantined with the reason
//! (`quarantine/import=<id>/`), the rest are appended to `raw/<table>/` as one new file written
//! atomically. The import reports how many rows went where.
//!
//! Rows flow in bounded batches ([`BATCH_ROWS`]): a file is read a batch at a time, each batch
//! is mapped and checked, and its rows go to the new raw file a row group at a time (uploaded as
//! they fill, and visible only once the upload completes, so a failed import leaves no file) and
//! to the quarantine's part files. A preset's files are read through once first (a batch at a
//! time too), so that a bad line fails it before any of its tables is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;
use datafusion::catalog::streaming::StreamingTable;
use datafusion::error::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use futures::StreamExt;
use object_store::buffered::BufWriter;
use object_store::path::Path as ObjectPath;
use parquet::arrow::AsyncArrowWriter;
use serde::Serialize;
use tracing::{debug, info, instrument};

use super::text_file::{self, FileKind, LINE_REASON};
use crate::catalog::schema::{self, Kind, TableSpec};
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::lake::dataset::DatasetWriter;
use crate::lake::{Lake, layout};

/// A known dataset: the files it reads and the SQL that maps them to raw tables.
#[derive(Debug, Clone, Copy)]
pub struct Preset {
    /// Preset name.
    pub name: &'static str,
    /// Source tables: (name in the SQL, file name in the dataset folder).
    pub sources: &'static [(&'static str, &'static str)],
    /// Target tables and the SQL producing them: the table's columns, and optionally a `reason`
    /// column saying why a row cannot be kept (NULL when it can), checked before the table's own
    /// checks.
    pub tables: &'static [(&'static str, &'static str)],
}

/// The presets shelfcast knows.
pub const PRESETS: &[Preset] = &[Preset {
    name: "walmart",
    sources: &[("walmart_train", "train.csv"), ("walmart_stores", "stores.csv"), ("walmart_features", "features.csv")],
    tables: &[
        ("sales", include_str!("../../sql/import/walmart_sales.sql")),
        ("calendar", include_str!("../../sql/import/walmart_calendar.sql")),
        ("locations", include_str!("../../sql/import/walmart_locations.sql")),
        ("promotions", include_str!("../../sql/import/walmart_promotions.sql")),
        ("known_covariates", include_str!("../../sql/import/walmart_covariates.sql")),
    ],
}];

/// What one import wrote.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    /// Target table.
    pub table: String,
    /// Rows read from the source.
    pub rows_read: u64,
    /// Rows appended to the raw table.
    pub rows_written: u64,
    /// Rows quarantined.
    pub rows_quarantined: u64,
    /// The new raw file.
    pub file: Option<String>,
    /// Where the quarantined rows are.
    pub quarantine: Option<String>,
}

fn sql_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Date => "DATE",
        Kind::Text => "VARCHAR",
        Kind::Number => "DOUBLE",
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Rows per batch an import reads, checks and writes (and per row group of the new raw file).
pub const BATCH_ROWS: usize = 64 * 1024;

/// A session for imports: two threads, batches of `batch_rows`, and the date function of
/// `--date-format`.
fn context(batch_rows: usize) -> SessionContext {
    let opts = crate::engine::EngineOptions {
        sql_options: vec![("datafusion.execution.batch_size".into(), batch_rows.max(1).to_string())],
        ..crate::engine::EngineOptions::threads(2)
    };
    let ctx = crate::engine::context(opts);
    ctx.register_udf(super::date_format::udf());
    ctx
}

/// A text file as a table read a batch at a time, each time it is scanned.
#[derive(Debug)]
struct TextSource {
    path: PathBuf,
    schema: SchemaRef,
    batch_rows: usize,
    strict: bool,
}

impl PartitionStream for TextSource {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        // The file is read off the async threads, at most two batches ahead of the query.
        let (tx, rx) = tokio::sync::mpsc::channel::<datafusion::error::Result<RecordBatch>>(2);
        let (path, batch_rows, strict) = (self.path.clone(), self.batch_rows, self.strict);
        crate::blocking::spawn(move || {
            let lines = match text_file::Lines::open(&path, strict, batch_rows) {
                Ok(l) => l,
                Err(e) => {
                    let _ = tx.blocking_send(Err(DataFusionError::External(Box::new(e))));
                    return;
                }
            };
            for batch in lines {
                let failed = batch.is_err();
                // A closed channel: the query stopped reading.
                if tx.blocking_send(batch.map_err(|e| DataFusionError::External(Box::new(e)))).is_err() || failed {
                    return;
                }
            }
        });
        let batches = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (b, rx)) });
        Box::pin(RecordBatchStreamAdapter::new(Arc::clone(&self.schema), batches))
    }
}

/// Registers a CSV or Parquet file as `name`; text files are read with every column as text and
/// a [`LINE_REASON`] column. `strict`: a bad line fails the import instead (naming the file and line).
async fn register_file(ctx: &SessionContext, name: &str, path: &Path, strict: bool) -> Result<()> {
    let p = path.to_str().ok_or_else(|| Error::data(format!("{} is not valid UTF-8", path.display())))?;
    let kind = FileKind::of(path)?;
    if !path.is_file() {
        return Err(Error::data(format!("{}: no such file", path.display())));
    }
    match kind {
        FileKind::Parquet => {
            // The listing selects files by extension: give it this file's own, in its own case.
            let ext = p.rfind('.').map_or("", |i| &p[i..]);
            let options = ParquetReadOptions { file_extension: ext, ..Default::default() };
            ctx.register_parquet(name, p, options)
                .await
                .map_err(|e| Error::data(format!("{}: {e}", path.display())))?;
        }
        FileKind::Text => {
            // The header is read now, so its errors come before anything else.
            let batch_rows = ctx.copied_config().batch_size();
            let lines = text_file::Lines::open(path, strict, batch_rows)?;
            let schema = lines.schema();
            if strict {
                // A preset's file is read through once first, a batch at a time, so a bad line
                // fails the import before any of its tables is written.
                crate::blocking::run(move || lines.into_iter().try_for_each(|b| b.map(|_| ()))).await??;
            }
            let source = TextSource { path: path.to_path_buf(), schema: Arc::clone(&schema), batch_rows, strict };
            let table = StreamingTable::try_new(schema, vec![Arc::new(source)])?;
            ctx.register_table(name, Arc::new(table))?;
        }
    }
    Ok(())
}

/// The reason column a registered source carries for its unreadable lines, if any.
async fn line_reason(ctx: &SessionContext, source: &str) -> Result<Option<&'static str>> {
    Ok(ctx.table(source).await?.schema().field_with_unqualified_name(LINE_REASON).is_ok().then_some(LINE_REASON))
}

/// The statement that reads `source` into `spec`'s columns with checked casts, plus a `reason`
/// column saying why a row cannot be kept (NULL when it can). `source_reason`: a column of
/// `source` with a reason of its own, which comes first.
fn mapping_sql(
    spec: &TableSpec,
    source: &str,
    map: &BTreeMap<String, String>,
    date_format: Option<&str>,
    source_reason: Option<&str>,
) -> Result<String> {
    for k in map.keys() {
        if !spec.columns.iter().any(|c| c.name == k) {
            let names: Vec<_> = spec.columns.iter().map(|c| c.name).collect();
            return Err(Error::data(format!(
                "table `{}` has no column `{k}` (columns: {})",
                spec.name,
                names.join(", ")
            )));
        }
    }
    let mut select = Vec::new();
    let mut reasons = Vec::new();
    for c in spec.columns {
        match map.get(c.name) {
            Some(src) => {
                let raw = format!("CAST({} AS VARCHAR)", quote(src));
                let value = match (c.kind, date_format) {
                    (Kind::Date, Some(fmt)) => {
                        format!("{}({raw}, '{}')", super::date_format::NAME, fmt.replace('\'', "''"))
                    }
                    _ => format!("TRY_CAST({} AS {})", quote(src), sql_type(c.kind)),
                };
                select.push(format!("{value} AS {}", c.name));
                let ty = sql_type(c.kind).to_lowercase();
                let empty = if c.nullable {
                    String::new()
                } else {
                    format!("WHEN {raw} IS NULL OR trim({raw}) = '' THEN '{col} is empty' ", col = c.name)
                };
                // NaN and ±inf read as doubles; like the sources, they are not numbers a table keeps.
                let finite = if c.kind == Kind::Number {
                    format!(
                        "WHEN NOT (abs({value}) <= 1.7976931348623157e308) \
                         THEN '{col}: ''' || {raw} || ''' is not a finite number' ",
                        col = c.name
                    )
                } else {
                    String::new()
                };
                reasons.push(format!(
                    "CASE {empty}WHEN {value} IS NULL AND trim({raw}) <> '' \
                     THEN '{col}: cannot read ''' || {raw} || ''' as {ty}' {finite}END",
                    col = c.name,
                ));
            }
            None if c.nullable => select.push(format!("CAST(NULL AS {}) AS {}", sql_type(c.kind), c.name)),
            None => {
                return Err(Error::data(format!(
                    "table `{}` needs column `{}`: map it, e.g. --map {}=SOURCE_COLUMN",
                    spec.name, c.name, c.name
                )));
            }
        }
    }
    if let Some(r) = source_reason {
        reasons.insert(0, format!("CAST({} AS VARCHAR)", quote(r)));
    }
    let reason = if reasons.is_empty() {
        "CAST(NULL AS VARCHAR)".to_string()
    } else {
        format!("COALESCE({})", reasons.join(", "))
    };
    Ok(format!("SELECT {}, {reason} AS reason FROM {source}", select.join(", ")))
}

/// The mapping an import uses: `map` as given, each mapped source column checked to exist in the
/// file, and every table column it leaves out read from the file's column of the same name (the
/// same letters in any case, when only one column matches), so a file already in the table's
/// shape needs no `--map`.
fn complete_mapping(
    spec: &TableSpec,
    map: &BTreeMap<String, String>,
    found: &arrow::datatypes::Schema,
    path: &Path,
) -> Result<BTreeMap<String, String>> {
    let names: Vec<&str> = found.fields().iter().map(|f| f.name().as_str()).filter(|n| *n != LINE_REASON).collect();
    for (column, source) in map {
        if !names.contains(&source.as_str()) {
            return Err(Error::data(format!(
                "{}: no column `{source}` to map to `{column}` (columns: {})",
                path.display(),
                names.join(", ")
            )));
        }
    }
    let mut out = map.clone();
    for c in spec.columns {
        if out.contains_key(c.name) {
            continue;
        }
        let same = if names.contains(&c.name) {
            Some(c.name)
        } else {
            let folded: Vec<&str> = names.iter().copied().filter(|n| n.eq_ignore_ascii_case(c.name)).collect();
            (folded.len() == 1).then(|| folded[0])
        };
        if let Some(source) = same {
            out.insert(c.name.to_string(), source.to_string());
        }
    }
    Ok(out)
}

/// Imports one file into `table` with a column mapping.
#[instrument(skip_all, fields(table = table, source = %path.display()))]
pub async fn import_file(
    lake: &Lake,
    table: &str,
    path: &Path,
    map: &BTreeMap<String, String>,
    date_format: Option<&str>,
    clock: &dyn Clock,
) -> Result<ImportReport> {
    import_file_in_batches(lake, table, path, map, date_format, clock, BATCH_ROWS).await
}

/// [`import_file`] in batches of `batch_rows` rows.
async fn import_file_in_batches(
    lake: &Lake,
    table: &str,
    path: &Path,
    map: &BTreeMap<String, String>,
    date_format: Option<&str>,
    clock: &dyn Clock,
    batch_rows: usize,
) -> Result<ImportReport> {
    let spec = schema::table(table).ok_or_else(|| {
        let names: Vec<_> = schema::TABLES.iter().map(|t| t.name).collect();
        Error::data(format!("no raw table `{table}` (tables: {})", names.join(", ")))
    })?;
    let ctx = context(batch_rows);
    register_file(&ctx, "source", path, false).await?;
    let found = ctx.table("source").await?.schema().as_arrow().clone();
    let map = complete_mapping(spec, map, &found, path)?;
    let sql = mapping_sql(spec, "source", &map, date_format, line_reason(&ctx, "source").await?)?;
    let token = format!("import-{}", clock.now().format("%Y%m%dT%H%M%S%3fZ"));
    write(lake, &ctx, spec, &sql, &token, &path.display().to_string(), clock).await
}

/// Imports a wide file into a covariate table (`known_covariates` or `observed_covariates`): each
/// of `columns` is one covariate, named as the column, and becomes one row per source row with a
/// value. `map` maps the keys (`date`, and optionally `item_id`, `location_id`, `known_at`; a key
/// it leaves out is read from the file's column of that name, in any case, if there is one); an
/// empty cell (or `NA`) is no row, and a cell that is not a number is quarantined with the column
/// and the value in the reason.
#[instrument(skip_all, fields(table = table, source = %path.display(), columns = columns.len()))]
pub async fn import_wide(
    lake: &Lake,
    table: &str,
    path: &Path,
    map: &BTreeMap<String, String>,
    columns: &[String],
    date_format: Option<&str>,
    clock: &dyn Clock,
) -> Result<ImportReport> {
    if !matches!(table, "known_covariates" | "observed_covariates") {
        return Err(Error::data(format!("--wide imports into known_covariates or observed_covariates, not `{table}`")));
    }
    let spec = schema::table(table).ok_or_else(|| Error::data(format!("no raw table `{table}`")))?;
    let known = table == "known_covariates";
    for k in map.keys() {
        let key = matches!(k.as_str(), "date" | "item_id" | "location_id") || (known && k == "known_at");
        if !key {
            return Err(Error::data(format!(
                "--wide maps the keys of `{table}` (date, item_id, location_id{}), not `{k}`",
                if known { ", known_at" } else { "" }
            )));
        }
    }
    if columns.is_empty() {
        return Err(Error::data("--wide needs at least one covariate column"));
    }
    let ctx = context(BATCH_ROWS);
    register_file(&ctx, "source", path, false).await?;
    let found = ctx.table("source").await?.schema().clone();
    let lines = line_reason(&ctx, "source").await?;
    for c in columns.iter().chain(map.values()) {
        if c == LINE_REASON || found.field_with_unqualified_name(c).is_err() {
            let names: Vec<_> = found.fields().iter().map(|f| f.name().clone()).filter(|n| n != LINE_REASON).collect();
            return Err(Error::data(format!("{}: no column `{c}` (columns: {})", path.display(), names.join(", "))));
        }
    }
    // Keys the mapping leaves out are read from the file's column of the same name, if any.
    let mut map = map.clone();
    for k in ["date", "item_id", "location_id", "known_at"] {
        let taken = map.contains_key(k) || (k == "known_at" && !known);
        let same = found.fields().iter().map(|f| f.name()).find(|n| n.eq_ignore_ascii_case(k));
        if let (false, Some(n)) = (taken, same)
            && !columns.contains(n)
        {
            map.insert(k.to_string(), n.clone());
        }
    }
    let key =
        |k: &str| map.get(k).map_or("CAST(NULL AS VARCHAR)".to_string(), |s| format!("CAST({} AS VARCHAR)", quote(s)));
    let mut parts = Vec::new();
    for c in columns {
        let raw = format!("trim(CAST({} AS VARCHAR))", quote(c));
        let name = c.replace('\'', "''");
        let value = format!("TRY_CAST({raw} AS DOUBLE)");
        parts.push(format!(
            "SELECT {date} AS date, {item} AS item_id, {loc} AS location_id, '{name}' AS name, {value} AS value, \
             CAST(NULL AS VARCHAR) AS label, {known_at} AS known_at, \
             CASE WHEN {value} IS NULL THEN '{name}: cannot read ''' || {raw} || ''' as a number' \
                  WHEN isnan({value}) OR abs({value}) >= 1e300 THEN '{name}: ''' || {raw} || ''' is not a finite number' \
             END AS wide_reason \
             FROM source WHERE {raw} IS NOT NULL AND {raw} <> '' AND upper({raw}) NOT IN ('NA', 'NULL'){good_line}",
            good_line = lines.map_or(String::new(), |l| format!(" AND {} IS NULL", quote(l))),
            date = key("date"),
            item = key("item_id"),
            loc = key("location_id"),
            known_at = key("known_at"),
        ));
    }
    if let Some(l) = lines {
        // An unreadable line is one quarantined row, whatever its columns.
        parts.push(format!(
            "SELECT CAST(NULL AS VARCHAR) AS date, CAST(NULL AS VARCHAR) AS item_id, \
             CAST(NULL AS VARCHAR) AS location_id, CAST(NULL AS VARCHAR) AS name, CAST(NULL AS DOUBLE) AS value, \
             CAST(NULL AS VARCHAR) AS label, CAST(NULL AS VARCHAR) AS known_at, {l} AS wide_reason \
             FROM source WHERE {l} IS NOT NULL",
            l = quote(l)
        ));
    }
    let rows =
        ctx.sql(&parts.join(" UNION ALL ")).await.map_err(|e| Error::data(format!("{}: {e}", path.display())))?;
    ctx.register_table("wide_rows", rows.into_view())?;
    let identity: BTreeMap<String, String> = spec
        .columns
        .iter()
        .filter(|c| c.name != "known_at" || known)
        .map(|c| (c.name.to_string(), c.name.to_string()))
        .collect();
    let sql = mapping_sql(spec, "wide_rows", &identity, date_format, Some("wide_reason"))?;
    let token = format!("import-{}", clock.now().format("%Y%m%dT%H%M%S%3fZ"));
    write(lake, &ctx, spec, &sql, &token, &path.display().to_string(), clock).await
}

/// Imports a known dataset from its folder (e.g. `walmart` from `../shared/data/walmart`).
pub async fn import_preset(lake: &Lake, name: &str, dir: &Path, clock: &dyn Clock) -> Result<Vec<ImportReport>> {
    let preset = PRESETS.iter().find(|p| p.name == name).ok_or_else(|| {
        let names: Vec<_> = PRESETS.iter().map(|p| p.name).collect();
        Error::data(format!("no import preset `{name}` (presets: {})", names.join(", ")))
    })?;
    let ctx = context(BATCH_ROWS);
    for (table, file) in preset.sources {
        register_file(&ctx, table, &dir.join(file), true).await?;
    }
    let token = format!("import-{}", clock.now().format("%Y%m%dT%H%M%S%3fZ"));
    let mut out = Vec::new();
    for (table, sql) in preset.tables {
        let spec = schema::table(table)
            .ok_or_else(|| Error::data(format!("preset `{name}` writes unknown table `{table}`")))?;
        // The preset's SQL produces the table's columns; the checks are the same as for a file.
        let rows = ctx.sql(sql).await.map_err(|e| Error::data(format!("preset `{name}`, table `{table}`: {e}")))?;
        let own_reason = rows.schema().field_with_unqualified_name("reason").is_ok().then_some("reason");
        ctx.register_table("preset_rows", rows.into_view())?;
        // Optional columns the preset does not produce stay NULL.
        let produced = ctx.table("preset_rows").await?.schema().clone();
        let identity: BTreeMap<String, String> = spec
            .columns
            .iter()
            .filter(|c| !c.nullable || produced.field_with_unqualified_name(c.name).is_ok())
            .map(|c| (c.name.to_string(), c.name.to_string()))
            .collect();
        let checked = mapping_sql(spec, "preset_rows", &identity, None, own_reason)?;
        out.push(write(lake, &ctx, spec, &checked, &token, &format!("{name} preset"), clock).await?);
        ctx.deregister_table("preset_rows")?;
    }
    Ok(out)
}

/// An error of the import's query: an error of the import's own (a line that does not read) as
/// it is, anything else naming what was being read.
fn reading(origin: &str, e: DataFusionError) -> Error {
    match e.find_root() {
        DataFusionError::External(own) if own.downcast_ref::<Error>().is_some() => Error::data(own.to_string()),
        _ => Error::data(format!("reading {origin}: {e}")),
    }
}

/// The new raw file: row groups uploaded as they fill, the object visible only once closed.
struct RawFile {
    writer: AsyncArrowWriter<BufWriter>,
    location: String,
}

impl RawFile {
    fn create(lake: &Lake, rel: &ObjectPath, schema: &SchemaRef, row_group_rows: usize) -> Result<Self> {
        let location = lake.display(rel);
        let out = BufWriter::new(lake.store(), lake.path(rel));
        let props = crate::lake::parquet::properties(row_group_rows);
        let writer = AsyncArrowWriter::try_new(out, Arc::clone(schema), Some(props))
            .map_err(|e| Error::data(format!("writing {location}: {e}")))?;
        Ok(RawFile { writer, location })
    }

    async fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.writer.write(batch).await.map_err(|e| Error::data(format!("writing {}: {e}", self.location)))
    }

    /// Completes the file: it appears whole.
    async fn close(self) -> Result<()> {
        self.writer.close().await.map_err(|e| Error::data(format!("writing {}: {e}", self.location)))?;
        Ok(())
    }

    /// Abandons the file: nothing of it appears.
    async fn abort(self) {
        let mut out = self.writer.into_inner();
        if let Err(e) = out.abort().await {
            debug!(file = %self.location, cause = %e, "abandoned upload not aborted");
        }
    }
}

#[instrument(skip_all, fields(table = spec.name, batch_rows = ctx.copied_config().batch_size()))]
async fn write(
    lake: &Lake,
    ctx: &SessionContext,
    spec: &TableSpec,
    sql: &str,
    token: &str,
    origin: &str,
    clock: &dyn Clock,
) -> Result<ImportReport> {
    let stream = ctx.sql(sql).await?.execute_stream().await.map_err(|e| reading(origin, e))?;
    let schema = spec.canonical_schema();
    let path = layout::raw_table(spec.name).join(format!("{token}.parquet").as_str());
    let mut raw = RawFile::create(lake, &path, &schema, ctx.copied_config().batch_size())?;
    let mut fields: Vec<_> = schema.fields().iter().map(|f| f.as_ref().clone().with_nullable(true)).collect();
    fields.push(arrow::datatypes::Field::new("reason", DataType::Utf8, true));
    let qschema = Arc::new(arrow::datatypes::Schema::new(fields));
    let dir = layout::import_quarantine(token, spec.name);
    let mut bad =
        DatasetWriter::new(lake, dir.clone(), format!("quarantine/{}", spec.name), token, Arc::clone(&qschema));
    let counts = match split(stream, &schema, &qschema, &mut raw, &mut bad, origin).await {
        Ok(c) => c,
        Err(e) => {
            raw.abort().await;
            return Err(e);
        }
    };
    let (read, written, quarantined) = counts;
    let mut report = ImportReport {
        table: spec.name.to_string(),
        rows_read: read,
        rows_written: written,
        rows_quarantined: quarantined,
        file: None,
        quarantine: None,
    };
    if quarantined > 0 {
        let mut meta = serde_json::Map::new();
        meta.insert("source".into(), origin.into());
        if let Err(e) = bad.commit(clock.now(), meta).await {
            raw.abort().await;
            return Err(e);
        }
        report.quarantine = Some(lake.display(&dir));
    }
    if written > 0 {
        raw.close().await?;
        report.file = Some(lake.display(&path));
    } else {
        raw.abort().await;
    }
    info!(table = spec.name, read, written, quarantined, "imported");
    Ok(report)
}

/// Splits the query's batches as they come: kept rows to the raw file, the others (with their
/// reason) to the quarantine. Rows read, written and quarantined.
async fn split(
    mut stream: SendableRecordBatchStream,
    schema: &SchemaRef,
    qschema: &SchemaRef,
    raw: &mut RawFile,
    bad: &mut DatasetWriter,
    origin: &str,
) -> Result<(u64, u64, u64)> {
    let (mut read, mut written, mut quarantined) = (0u64, 0u64, 0u64);
    while let Some(b) = stream.next().await {
        let b = b.map_err(|e| reading(origin, e))?;
        read += b.num_rows() as u64;
        let reason = b.column_by_name("reason").ok_or_else(|| Error::data("import query has no reason column"))?;
        let keep = arrow::compute::is_null(reason)?;
        let drop = arrow::compute::not(&keep)?;
        let cols = schema
            .fields()
            .iter()
            .map(|f| {
                let c = b
                    .column_by_name(f.name())
                    .ok_or_else(|| Error::data(format!("import query has no column `{}`", f.name())))?;
                Ok(arrow::compute::cast(c, f.data_type())?)
            })
            .collect::<Result<Vec<_>>>()?;
        let kept_cols = cols.iter().map(|c| Ok(arrow::compute::filter(c, &keep)?)).collect::<Result<Vec<_>>>()?;
        let kept = RecordBatch::try_new(Arc::clone(schema), kept_cols)
            .map_err(|e| Error::data(format!("{origin}: rows {}..{}: {e}", read - b.num_rows() as u64 + 1, read)))?;
        if kept.num_rows() > 0 {
            written += kept.num_rows() as u64;
            raw.write(&kept).await?;
        }
        let mut qcols = cols;
        qcols.push(arrow::compute::cast(reason, &DataType::Utf8)?);
        let qbatch = RecordBatch::try_new(Arc::clone(qschema), qcols)?;
        let rejected = arrow::compute::filter_record_batch(&qbatch, &drop)?;
        quarantined += rejected.num_rows() as u64;
        bad.write(rejected).await?;
        debug!(read, written, quarantined, "batch imported");
    }
    Ok((read, written, quarantined))
}

/// Reads a TOML mapping file: `column = "source column"` lines.
pub fn read_mapping(path: &PathBuf) -> Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::SettingsRead { path: path.clone(), source })?;
    toml::from_str(&text).map_err(|e| Error::SettingsParse { path: path.clone(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::FixedClock;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    /// The rows of a lake's raw `sales` file, its row groups, and the quarantined rows, sorted.
    async fn outcome(lake: &Lake, r: &ImportReport) -> (Vec<String>, usize, Vec<String>) {
        let files = lake.list(&layout::raw_table("sales")).await.unwrap();
        assert_eq!(files.len(), 1, "{files:?}");
        let bytes = lake.get(&files[0].location).await.unwrap();
        let groups = SerializedFileReader::new(bytes.clone()).unwrap().metadata().num_row_groups();
        let lines = |batches: &[RecordBatch]| {
            let text = arrow::util::pretty::pretty_format_batches(batches).unwrap().to_string();
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines.sort();
            lines
        };
        let rows = lines(&crate::lake::parquet::decode(bytes).unwrap());
        assert!(r.quarantine.is_some());
        let token = files[0].location.filename().unwrap().trim_end_matches(".parquet").to_string();
        let (_, bad) = crate::lake::dataset::read(lake, &layout::import_quarantine(&token, "sales")).await.unwrap();
        (rows, groups, lines(&bad))
    }

    #[tokio::test]
    async fn a_file_of_several_batches_is_written_a_row_group_per_batch_with_the_same_rows_and_quarantine() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("weekly.csv");
        let mut body = b"Store,Dept,Week,Sales\n".to_vec();
        for i in 0..1_000 {
            let line = match i % 97 {
                13 => format!("{i},7,2026-01-02,abc\n"),
                29 => format!("{i},7\n"),
                41 => format!("{i},7,,5\n"),
                _ => format!("{i},7,2026-01-02,{i}.5\n"),
            };
            body.extend_from_slice(line.as_bytes());
        }
        body.extend_from_slice(b"1,caf\xe9,2026-01-02,1\n");
        std::fs::write(&csv, body).unwrap();
        let map: BTreeMap<String, String> =
            [("date", "Week"), ("item_id", "Dept"), ("location_id", "Store"), ("units", "Sales")]
                .into_iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect();
        let clock = FixedClock::new(chrono::DateTime::from_timestamp(1_767_000_000, 0).unwrap());

        let batched = Lake::in_memory();
        let small = import_file_in_batches(&batched, "sales", &csv, &map, None, &clock, 100).await.unwrap();
        let whole = Lake::in_memory();
        let one = import_file_in_batches(&whole, "sales", &csv, &map, None, &clock, 1 << 20).await.unwrap();

        let counts = |r: &ImportReport| (r.rows_read, r.rows_written, r.rows_quarantined);
        assert_eq!(counts(&small), (1_001, 968, 33));
        assert_eq!(counts(&small), counts(&one));
        let (rows, groups, bad) = outcome(&batched, &small).await;
        let (all_rows, one_group, all_bad) = outcome(&whole, &one).await;
        assert_eq!(one_group, 1);
        assert!(groups >= 10, "{groups} row groups");
        assert_eq!(rows, all_rows);
        assert_eq!(bad, all_bad);
        let text = bad.join("\n");
        assert!(text.contains("units: cannot read 'abc' as double"), "{text}");
        assert!(text.contains("line 31: expected 4 fields, found 2: 29,7"), "{text}");
        assert!(text.contains("line 1002: field 2 is not valid UTF-8"), "{text}");
    }
}
