//! The formats `query` writes, one batch at a time: a result is written as it arrives and never
//! held whole.
//!
//! CSV and JSON write each batch as it comes; Parquet holds at most one row group. A table holds
//! its first rows (up to [`TABLE_PREVIEW_ROWS`]) to size its columns: a result that fits is
//! printed exactly as Arrow's pretty printer prints it; a longer one keeps the widths those rows
//! gave, and a longer value further down widens its own cell only.

use std::io::Write;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::execution::SendableRecordBatchStream;
use futures::StreamExt;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::Format;
use crate::error::{Error, Result};

/// Rows a table holds to size its columns before it prints any.
pub const TABLE_PREVIEW_ROWS: usize = 10_000;

/// A result being written in one format.
pub struct Output<W: Write + Send> {
    sink: Sink<W>,
    rows: u64,
}

enum Sink<W: Write + Send> {
    Table(Table<W>),
    Csv(arrow::csv::Writer<W>),
    Json(arrow::json::ArrayWriter<W>),
    /// The writer starts with the first batch's schema (the stream's when there is none).
    Parquet {
        out: Option<W>,
        writer: Option<ArrowWriter<W>>,
        schema: SchemaRef,
    },
}

impl<W: Write + Send> Output<W> {
    /// An output of rows of `schema` in `format` to `out`.
    pub fn new(format: Format, schema: SchemaRef, out: W) -> Self {
        let sink = match format {
            Format::Table => Sink::Table(Table::new(out, TABLE_PREVIEW_ROWS)),
            Format::Csv => Sink::Csv(arrow::csv::WriterBuilder::new().with_header(true).build(out)),
            Format::Json => Sink::Json(arrow::json::ArrayWriter::new(out)),
            Format::Parquet => Sink::Parquet { out: Some(out), writer: None, schema },
        };
        Self { sink, rows: 0 }
    }

    /// A table holds `rows` rows (at least one batch) to size its columns.
    pub fn with_table_preview(mut self, rows: usize) -> Self {
        if let Sink::Table(t) = &mut self.sink {
            t.preview = rows;
        }
        self
    }

    /// Writes one batch.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        match &mut self.sink {
            Sink::Table(t) => t.write(batch)?,
            Sink::Csv(w) => w.write(batch)?,
            Sink::Json(w) => w.write(batch)?,
            Sink::Parquet { out, writer, .. } => {
                if writer.is_none() {
                    *writer = Some(parquet_writer(out.take(), &batch.schema())?);
                }
                if let Some(w) = writer {
                    w.write(batch)?;
                }
            }
        }
        Ok(())
    }

    /// Writes every batch of `stream` as it arrives, then the end of the format; the rows written.
    pub async fn write_stream(mut self, mut stream: SendableRecordBatchStream) -> Result<u64> {
        while let Some(batch) = stream.next().await {
            self.write(&batch?)?;
        }
        self.finish()
    }

    /// Writes the end of the format (a table's last line, JSON's `]`, Parquet's footer); the rows
    /// written.
    pub fn finish(self) -> Result<u64> {
        match self.sink {
            Sink::Table(t) => t.finish()?,
            Sink::Csv(w) => {
                w.into_inner().flush()?;
            }
            Sink::Json(mut w) => {
                w.finish()?;
                w.into_inner().flush()?;
            }
            Sink::Parquet { out, writer, schema } => {
                let writer = match writer {
                    Some(w) => w,
                    None => parquet_writer(out, &schema)?,
                };
                writer.into_inner()?.flush()?;
            }
        }
        Ok(self.rows)
    }
}

/// Writes every batch of `stream` in `format` to `out` as it arrives; the rows written.
pub async fn write_stream<W: Write + Send>(stream: SendableRecordBatchStream, format: Format, out: W) -> Result<u64> {
    Output::new(format, stream.schema(), out).write_stream(stream).await
}

/// Parquet as the lake writes it (Snappy, row groups of 2^20 rows).
fn parquet_writer<W: Write + Send>(out: Option<W>, schema: &SchemaRef) -> Result<ArrowWriter<W>> {
    let out = out.ok_or_else(|| Error::data("the Parquet output was already started"))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(1 << 20))
        .set_created_by(format!("shelfcast {}", env!("CARGO_PKG_VERSION")))
        .build();
    Ok(ArrowWriter::try_new(out, Arc::clone(schema), Some(props))?)
}

/// An aligned text table: held until its first rows size the columns, then written as it comes.
struct Table<W: Write> {
    out: W,
    preview: usize,
    held: Vec<RecordBatch>,
    held_rows: usize,
    /// The column widths once rows are written as they come.
    widths: Option<Vec<usize>>,
}

impl<W: Write> Table<W> {
    fn new(out: W, preview: usize) -> Self {
        Self { out, preview, held: Vec::new(), held_rows: 0, widths: None }
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if let Some(widths) = &self.widths {
            write_rows(&mut self.out, widths, batch)?;
            self.out.flush()?;
            return Ok(());
        }
        self.held_rows += batch.num_rows();
        self.held.push(batch.clone());
        if self.held_rows > self.preview {
            let held = std::mem::take(&mut self.held);
            let widths = widths(&held)?;
            let border = border(&widths);
            let names: Vec<String> = held[0].schema().fields().iter().map(|f| f.name().clone()).collect();
            writeln!(self.out, "{border}")?;
            writeln!(self.out, "{}", line(&widths, &names))?;
            writeln!(self.out, "{border}")?;
            for b in &held {
                write_rows(&mut self.out, &widths, b)?;
            }
            self.out.flush()?;
            self.widths = Some(widths);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<()> {
        match &self.widths {
            Some(widths) => writeln!(self.out, "{}", border(widths))?,
            None => writeln!(self.out, "{}", arrow::util::pretty::pretty_format_batches(&self.held)?)?,
        }
        self.out.flush()?;
        Ok(())
    }
}

/// The text of every cell of `batch`, row by row, as the pretty printer shows it (one line each).
fn cells(batch: &RecordBatch) -> Result<Vec<Vec<String>>> {
    let options = FormatOptions::default();
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok((0..batch.num_rows())
        .map(|r| formatters.iter().map(|f| f.value(r).to_string().replace('\n', " ")).collect())
        .collect())
}

/// The widest header or cell of each column.
fn widths(batches: &[RecordBatch]) -> Result<Vec<usize>> {
    let mut widths: Vec<usize> = batches[0].schema().fields().iter().map(|f| f.name().chars().count()).collect();
    for b in batches {
        for row in cells(b)? {
            for (w, cell) in widths.iter_mut().zip(&row) {
                *w = (*w).max(cell.chars().count());
            }
        }
    }
    Ok(widths)
}

fn write_rows(out: &mut impl Write, widths: &[usize], batch: &RecordBatch) -> Result<()> {
    for row in cells(batch)? {
        writeln!(out, "{}", line(widths, &row))?;
    }
    Ok(())
}

/// `+------+----+`
fn border(widths: &[usize]) -> String {
    let mut s = String::from("+");
    for w in widths {
        s.push_str(&"-".repeat(w + 2));
        s.push('+');
    }
    s
}

/// `| a    | bc |`
fn line(widths: &[usize], cells: &[String]) -> String {
    let mut s = String::from("|");
    for (w, cell) in widths.iter().zip(cells) {
        s.push_str(&format!(" {cell:<w$} |"));
    }
    s
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use arrow::array::{ArrayRef, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    use super::*;

    /// A writer whose bytes the test can read while the output is being written.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn bytes(&self) -> Vec<u8> {
            self.0.lock().unwrap().clone()
        }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false), Field::new("name", DataType::Utf8, true)]))
    }

    /// Batch `i`: rows `1000 + 3i …`, three of them, each named after its number.
    fn batch(i: i64) -> RecordBatch {
        let n: Vec<i64> = (0..3).map(|k| 1000 + 3 * i + k).collect();
        let names: Vec<String> = n.iter().map(|v| format!("row_{v}")).collect();
        RecordBatch::try_new(
            schema(),
            vec![Arc::new(Int64Array::from(n)) as ArrayRef, Arc::new(StringArray::from(names)) as ArrayRef],
        )
        .unwrap()
    }

    /// Writes five batches from a stream in `format`; the output, and for each batch after the
    /// first whether the rows of the one before were already written when it was asked for.
    async fn streamed(format: Format, preview: usize) -> (Vec<u8>, Vec<bool>) {
        let out = Shared::default();
        let seen = out.clone();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let record = Arc::clone(&asked);
        let batches = futures::stream::iter(0..5).map(move |i| {
            if i > 0 {
                let previous = format!("row_{}", 1000 + 3 * i - 1);
                record.lock().unwrap().push(String::from_utf8_lossy(&seen.bytes()).contains(&previous));
            }
            Ok(batch(i))
        });
        let stream: SendableRecordBatchStream = Box::pin(RecordBatchStreamAdapter::new(schema(), batches));
        let rows = Output::new(format, schema(), out.clone()).with_table_preview(preview).write_stream(stream).await;
        assert_eq!(rows.unwrap(), 15);
        let asked = asked.lock().unwrap().clone();
        (out.bytes(), asked)
    }

    async fn streamed_text(format: Format, preview: usize) -> (String, Vec<bool>) {
        let (bytes, asked) = streamed(format, preview).await;
        (String::from_utf8(bytes).unwrap(), asked)
    }

    #[tokio::test]
    async fn a_stream_of_batches_is_written_batch_by_batch_completely_and_in_order() {
        let (csv, asked) = streamed_text(Format::Csv, TABLE_PREVIEW_ROWS).await;
        assert_eq!(asked, vec![true; 4], "each batch written before the next is read");
        let want: String =
            std::iter::once("n,name\n".to_string()).chain((1000..1015).map(|v| format!("{v},row_{v}\n"))).collect();
        assert_eq!(csv, want);

        let (json, asked) = streamed_text(Format::Json, TABLE_PREVIEW_ROWS).await;
        assert_eq!(asked, vec![true; 4]);
        let rows: Vec<serde_json::Value> = serde_json::from_str(&json).unwrap();
        let n: Vec<i64> = rows.iter().map(|r| r["n"].as_i64().unwrap()).collect();
        assert_eq!(n, (1000..1015).collect::<Vec<_>>());

        // A table past its preview (4 rows here) writes every later batch as it comes, in the
        // pretty printer's layout; one that fits its preview is the pretty printer's output.
        let all: Vec<RecordBatch> = (0..5).map(batch).collect();
        let pretty = format!("{}\n", arrow::util::pretty::pretty_format_batches(&all).unwrap());
        let (table, asked) = streamed_text(Format::Table, 4).await;
        assert_eq!(asked, vec![false, true, true, true], "the first two batches size the columns");
        assert_eq!(table, pretty);
        let (table, asked) = streamed_text(Format::Table, TABLE_PREVIEW_ROWS).await;
        assert_eq!((table, asked), (pretty, vec![false; 4]));

        let (pq, _) = streamed(Format::Parquet, TABLE_PREVIEW_ROWS).await;
        let back = crate::lake::parquet::decode(pq.into()).unwrap();
        let n: Vec<i64> = back
            .iter()
            .flat_map(|b| b.column(0).as_any().downcast_ref::<Int64Array>().unwrap().values().to_vec())
            .collect();
        assert_eq!(n, (1000..1015).collect::<Vec<_>>());
    }
}
