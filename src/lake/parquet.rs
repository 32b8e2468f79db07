//! Parquet encoding and decoding for lake objects.
//!
//! Files are encoded whole in memory (callers bound their size, e.g. one demo
//! chunk or one million feature rows) so that each object is written with a
//! single atomic `put` and its checksum is known before it lands.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::Lake;
use crate::error::{Error, Result};

/// How lake Parquet files are written (Snappy; readable by DuckDB, pandas, Spark), with row
/// groups of at most `row_group_rows` rows.
pub fn properties(row_group_rows: usize) -> WriterProperties {
    WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(row_group_rows.max(1)))
        .set_created_by(format!("shelfcast {}", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Encodes batches as one Parquet file (Snappy; readable by DuckDB, pandas, Spark).
pub fn encode(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Bytes> {
    let props = properties(1 << 20);
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, Arc::clone(schema), Some(props))?;
    for b in batches {
        writer.write(b)?;
    }
    writer.close()?;
    Ok(Bytes::from(buf))
}

/// Decodes a whole Parquet file.
pub fn decode(bytes: Bytes) -> Result<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.with_batch_size(64 * 1024).build()?;
    Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
}

/// Reads one Parquet object of the lake; errors name the file.
pub async fn read(lake: &Lake, rel: &Path) -> Result<Vec<RecordBatch>> {
    let bytes = lake.get(rel).await?;
    decode(bytes).map_err(|e| Error::Dataset { path: lake.display(rel), message: e.to_string() })
}
