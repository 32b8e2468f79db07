//! The catalog: every raw table of the lake registered in a DataFusion
//! `SessionContext` under its declared name.
//!
//! Tables present in the lake are registered as Parquet listing tables after
//! their columns are checked against [`schema::TABLES`]; a required table that
//! is missing, a declared column that is absent, or a column of the wrong type
//! fails with an error naming the table, the column, and the expected and
//! found types. Optional tables that are absent are registered empty with their
//! canonical schema, so feature SQL can always join them.
//!
//! Every file's Parquet footer is read before the table is registered, so a truncated or
//! corrupt file fails with an error naming it ([`Error::CorruptFile`]) rather than somewhere
//! inside a query, or, with `corrupt-files = "quarantine"`, is moved to
//! `quarantine/files/raw/<table>/` with a warning and the table is read without it. Each file's
//! columns are checked on their own too, so a file whose column changed type is refused by
//! name even when the other files are right; columns nobody declared are kept and logged.

pub mod schema;

use std::sync::Arc;

use datafusion::catalog::empty::EmptyTable;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl};
use datafusion::datasource::physical_plan::parquet::metadata::DFParquetMetadata;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use futures::StreamExt;
use object_store::ObjectMeta;
use serde::{Deserialize, Serialize};
use tracing::{debug, instrument, warn};

use crate::error::{Error, Result};
use crate::lake::{Lake, layout};
use schema::TableSpec;

/// What to do with a raw Parquet file that cannot be read (`corrupt-files` in settings).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CorruptFiles {
    /// Fail the run, naming the file (the default).
    #[default]
    Stop,
    /// Move the file to `quarantine/files/raw/<table>/`, warn, and read the table without it.
    Quarantine,
}

/// What the catalog registered.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogReport {
    /// Per table: whether it was found in the lake, and its file count and bytes.
    pub tables: Vec<TableReport>,
}

/// One registered table.
#[derive(Debug, Clone, Serialize)]
pub struct TableReport {
    /// Table name.
    pub name: String,
    /// Whether files were found (false: registered empty).
    pub present: bool,
    /// Parquet files found.
    pub files: usize,
    /// Their total size.
    pub bytes: u64,
    /// A fingerprint of the files read (names, sizes, ETags or modification times): equal
    /// fingerprints mean the same data; empty when the table is absent.
    pub version: String,
    /// Files moved to quarantine because they could not be read (lake-relative paths).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quarantined: Vec<String>,
}

impl CatalogReport {
    /// The report of one table.
    pub fn get(&self, name: &str) -> Option<&TableReport> {
        self.tables.iter().find(|t| t.name == name)
    }
}

/// Registers the lake's store and every declared raw table in `ctx`; a corrupt file stops it.
pub async fn register(ctx: &SessionContext, lake: &Lake) -> Result<CatalogReport> {
    register_with(ctx, lake, CorruptFiles::Stop).await
}

/// Registers the lake's store and every declared raw table in `ctx`, treating unreadable files
/// as `corrupt` says.
#[instrument(skip_all, fields(lake = %lake))]
pub async fn register_with(ctx: &SessionContext, lake: &Lake, corrupt: CorruptFiles) -> Result<CatalogReport> {
    ctx.register_object_store(lake.store_url(), lake.store());
    let mut tables = Vec::new();
    for spec in schema::TABLES {
        tables.push(register_table(ctx, lake, spec, corrupt).await?);
    }
    Ok(CatalogReport { tables })
}

/// Footers read at once: each is one or two small range requests, so on a cloud store the
/// latency, not the bytes, is what this bounds.
const FOOTER_READS: usize = 16;

/// Reads the footer of every file: the files that can be read, and those moved to quarantine.
async fn check_files(
    lake: &Lake,
    spec: &TableSpec,
    files: Vec<ObjectMeta>,
    corrupt: CorruptFiles,
) -> Result<(Vec<ObjectMeta>, Vec<String>)> {
    let store = lake.store();
    let footers: Vec<_> = futures::stream::iter(files)
        .map(|m| {
            let store = Arc::clone(&store);
            async move {
                let full = ObjectMeta { location: lake.path(&m.location), ..m.clone() };
                let schema = DFParquetMetadata::new(store.as_ref(), &full).fetch_schema().await;
                (m, schema)
            }
        })
        .buffered(FOOTER_READS)
        .collect()
        .await;
    let mut good = Vec::with_capacity(footers.len());
    let mut quarantined = Vec::new();
    for (m, schema) in footers {
        match schema {
            Ok(found) => {
                check_types(spec, &found)?;
                good.push(m);
            }
            // A store failure is not the file's fault: it fails the run as it is.
            Err(DataFusionError::ObjectStore(e)) => return Err(Error::ObjectStore(*e)),
            Err(e) => {
                let path = lake.display(&m.location);
                if corrupt == CorruptFiles::Stop {
                    return Err(Error::CorruptFile { path, message: e.to_string() });
                }
                let name = m.location.filename().unwrap_or("file.parquet");
                let to = layout::quarantined_file(spec.name, name);
                lake.rename(&m.location, &to).await?;
                warn!(table = spec.name, file = %path, quarantine = %lake.display(&to), cause = %e, "corrupt Parquet file quarantined");
                quarantined.push(to.to_string());
            }
        }
    }
    Ok((good, quarantined))
}

async fn register_table(
    ctx: &SessionContext,
    lake: &Lake,
    spec: &TableSpec,
    corrupt: CorruptFiles,
) -> Result<TableReport> {
    let dir = layout::raw_table(spec.name);
    let files: Vec<_> =
        lake.list(&dir).await?.into_iter().filter(|m| m.location.as_ref().ends_with(".parquet")).collect();
    let (files, quarantined) = check_files(lake, spec, files, corrupt).await?;
    if files.is_empty() {
        if spec.required {
            return Err(Error::MissingTable { table: spec.name.to_string(), location: lake.display(&dir) });
        }
        debug!(table = spec.name, "absent; registered empty");
        // An empty table (not an empty in-memory one): its plans serialise, for Ballista.
        let empty = EmptyTable::new(spec.canonical_schema());
        ctx.register_table(spec.name, Arc::new(empty))?;
        return Ok(TableReport {
            name: spec.name.to_string(),
            present: false,
            files: 0,
            bytes: 0,
            version: String::new(),
            quarantined,
        });
    }
    let url = ListingTableUrl::parse(lake.folder_url(&dir))?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let found = options.infer_schema(&ctx.state(), &url).await.map_err(|e| Error::Dataset {
        path: lake.display(&dir),
        message: format!("cannot read the schema of table `{}`: {e}", spec.name),
    })?;
    let found = with_optional_columns(spec, &found);
    check_schema(spec, &found)?;
    for f in found.fields() {
        if !spec.columns.iter().any(|c| c.name == f.name()) {
            warn!(table = spec.name, column = %f.name(), data_type = %f.data_type(), "undeclared column kept");
        }
    }
    // Optional and undeclared columns may be absent from some files, whose rows then read as
    // null: the table must allow it even when the files that have the column say non-null.
    let found = Arc::new(arrow::datatypes::Schema::new_with_metadata(
        found
            .fields()
            .iter()
            .map(|f| {
                let required = spec.columns.iter().any(|c| c.name == f.name() && !c.nullable);
                Arc::new(f.as_ref().clone().with_nullable(f.is_nullable() || !required))
            })
            .collect::<Vec<_>>(),
        found.metadata().clone(),
    ));
    let config = ListingTableConfig::new(url).with_listing_options(options).with_schema(found);
    ctx.register_table(spec.name, Arc::new(ListingTable::try_new(config)?))?;
    let bytes = files.iter().map(|m| m.size).sum();
    debug!(table = spec.name, files = files.len(), bytes, "registered");
    Ok(TableReport {
        name: spec.name.to_string(),
        present: true,
        files: files.len(),
        bytes,
        version: fingerprint(&files),
        quarantined,
    })
}

/// The table's schema with every optional declared column its files lack added (as nulls): a
/// lake written before a column was declared keeps working.
fn with_optional_columns(spec: &TableSpec, found: &arrow::datatypes::Schema) -> arrow::datatypes::Schema {
    let mut fields: Vec<arrow::datatypes::FieldRef> = found.fields().iter().cloned().collect();
    for c in spec.columns.iter().filter(|c| c.nullable) {
        if found.field_with_name(c.name).is_err() {
            debug!(table = spec.name, column = c.name, "optional column absent; read as NULL");
            fields.push(Arc::new(arrow::datatypes::Field::new(c.name, c.kind.canonical(), true)));
        }
    }
    arrow::datatypes::Schema::new_with_metadata(fields, found.metadata().clone())
}

/// A short hash of the listing of a table's files.
fn fingerprint(files: &[object_store::ObjectMeta]) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for m in files {
        let tag = m.e_tag.clone().unwrap_or_else(|| m.last_modified.to_rfc3339());
        h.update(format!("{}\t{}\t{}\n", m.location, m.size, tag).as_bytes());
    }
    hex::encode(&h.finalize()[..8])
}

/// Registers raw table `name` again, so files added since the catalog was opened are read even
/// when the table had none then (it was registered empty). Tables that had files need no
/// refresh: listing tables list their files at every scan.
pub async fn refresh_table(ctx: &SessionContext, lake: &Lake, name: &str) -> Result<TableReport> {
    let spec = schema::table(name).ok_or_else(|| Error::data(format!("no raw table `{name}`")))?;
    ctx.deregister_table(spec.name)?;
    register_table(ctx, lake, spec, CorruptFiles::Stop).await
}

/// Registers every declared raw table empty, with its canonical schema, in `ctx`.
///
/// The tables accept `INSERT`, so SQL tests (and analysts trying a query) can fill them by hand.
pub fn register_empty(ctx: &SessionContext) -> Result<()> {
    for spec in schema::TABLES {
        let empty = MemTable::try_new(spec.canonical_schema(), vec![vec![]])?;
        ctx.register_table(spec.name, Arc::new(empty))?;
    }
    Ok(())
}

/// Checks that every declared column exists with a type of its family.
pub fn check_schema(spec: &TableSpec, found: &arrow::datatypes::Schema) -> Result<()> {
    for c in spec.columns {
        let field = found.field_with_name(c.name).map_err(|_| Error::MissingColumn {
            table: spec.name.to_string(),
            column: c.name.to_string(),
            expected: c.kind.describe().to_string(),
        })?;
        check_column(spec, c, field)?;
    }
    Ok(())
}

/// Checks that the declared columns a file has are of their family (files may lack optional
/// columns other files carry; presence is checked on the table's merged schema).
pub fn check_types(spec: &TableSpec, found: &arrow::datatypes::Schema) -> Result<()> {
    for c in spec.columns {
        if let Ok(field) = found.field_with_name(c.name) {
            check_column(spec, c, field)?;
        }
    }
    Ok(())
}

/// A column of `spec` found as `field`: an error naming table, column and types unless its type
/// is of the declared family.
fn check_column(spec: &TableSpec, c: &schema::ColumnSpec, field: &arrow::datatypes::Field) -> Result<()> {
    if c.kind.accepts(field.data_type()) {
        return Ok(());
    }
    Err(Error::ColumnType {
        table: spec.name.to_string(),
        column: c.name.to_string(),
        expected: c.kind.describe().to_string(),
        found: field.data_type().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{DataType, Field, Schema};

    #[test]
    fn wrong_type_names_table_column_and_types() {
        let spec = schema::table("sales").unwrap();
        let found = Schema::new(vec![
            Field::new("date", DataType::Date32, false),
            Field::new("item_id", DataType::Utf8View, false),
            Field::new("location_id", DataType::Utf8, false),
            Field::new("units", DataType::Utf8, false),
        ]);
        let msg = check_schema(spec, &found).unwrap_err().to_string();
        assert!(
            msg.contains("`sales`") && msg.contains("`units`") && msg.contains("number") && msg.contains("Utf8"),
            "{msg}"
        );
    }

    #[test]
    fn integer_units_and_timestamp_dates_are_accepted() {
        let spec = schema::table("sales").unwrap();
        let found = Schema::new(vec![
            Field::new("date", DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, None), true),
            Field::new("item_id", DataType::LargeUtf8, true),
            Field::new("location_id", DataType::Utf8, true),
            Field::new("units", DataType::Int32, true),
            Field::new("revenue", DataType::Float64, true),
            Field::new("price", DataType::Float32, true),
        ]);
        check_schema(spec, &found).unwrap();
    }
}
