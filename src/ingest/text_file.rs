//! The files `shelfcast import` reads: which ones, and delimited text read line by line.
//!
//! [`FileKind::of`] decides from the name, whatever its case: `.parquet` and `.pq` are Parquet;
//! `.csv` and `.txt` are comma-separated text with a header line. Anything else, compressed
//! files (`.gz`, `.zst`, …) included, is refused naming the file, before anything is read; the
//! readers accept exactly what it accepts.
//!
//! Text is read with every column as text (no type guessed from the first rows, so a late odd
//! value cannot fail the read: the mapping's checked casts judge each value). A line that is not
//! valid UTF-8, or has the wrong number of fields, becomes a row whose fields are NULL and whose
//! [`LINE_REASON`] column says why (with the line's text, lossily decoded), so the import
//! quarantines that row alone; with `strict` it fails the read, naming the file and the line.
//! [`Lines`] reads a file a bounded batch at a time; [`read`] collects them.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};

use crate::error::{Error, Result};

/// The column of a text file's rows that holds why its line could not be read (NULL when it could).
pub const LINE_REASON: &str = "_shelfcast_line_reason";

/// Rows per batch read from a text file.
const BATCH_ROWS: usize = 8192;

/// What a file to import is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// Parquet (`.parquet`, `.pq`).
    Parquet,
    /// Comma-separated text with a header (`.csv`, `.txt`).
    Text,
}

impl FileKind {
    /// The kind of `path` by its name (any case); an error naming the file for any other.
    pub fn of(path: &Path) -> Result<FileKind> {
        let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
        if name.ends_with(".parquet") || name.ends_with(".pq") {
            return Ok(FileKind::Parquet);
        }
        if name.ends_with(".csv") || name.ends_with(".txt") {
            return Ok(FileKind::Text);
        }
        let compressed = [".gz", ".zst", ".bz2", ".xz", ".zip"].iter().any(|e| name.ends_with(e));
        Err(Error::data(if compressed {
            format!("{}: compressed files are not read; decompress it to a .csv or .parquet file first", path.display())
        } else {
            format!("{}: expected a .csv, .txt or .parquet file", path.display())
        }))
    }
}

/// Reads a text file into batches of text columns named by its header, plus [`LINE_REASON`].
pub fn read(path: &Path, strict: bool) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let lines = Lines::open(path, strict, BATCH_ROWS)?;
    let schema = lines.schema();
    let mut batches = lines.collect::<Result<Vec<_>>>()?;
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(Arc::clone(&schema)));
    }
    Ok((schema, batches))
}

/// A text file read a batch at a time: the header when opened, then at most `batch_rows`
/// lines per batch, so only one batch of the file is in memory at once.
pub struct Lines {
    path: std::path::PathBuf,
    strict: bool,
    batch_rows: usize,
    names: usize,
    schema: SchemaRef,
    rdr: csv::Reader<std::io::BufReader<std::fs::File>>,
    rec: csv::ByteRecord,
    done: bool,
}

impl std::fmt::Debug for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lines").field("path", &self.path).field("batch_rows", &self.batch_rows).finish()
    }
}

impl Lines {
    /// Opens `path` and reads its header; errors name the file. `strict`: a bad line is an
    /// error naming the file and the line instead of a row with a reason.
    pub fn open(path: &Path, strict: bool, batch_rows: usize) -> Result<Lines> {
        let at = |m: String| Error::data(format!("{}: {m}", path.display()));
        let file = std::fs::File::open(path).map_err(|e| at(e.to_string()))?;
        let mut rdr =
            csv::ReaderBuilder::new().flexible(true).has_headers(true).from_reader(std::io::BufReader::new(file));
        let header = rdr.byte_headers().map_err(|e| at(format!("unreadable header: {e}")))?.clone();
        let mut names = Vec::with_capacity(header.len());
        for (i, h) in header.iter().enumerate() {
            let h = std::str::from_utf8(h).map_err(|_| at(format!("header field {} is not valid UTF-8", i + 1)))?;
            if names.iter().any(|n| n == h) {
                return Err(at(format!("the header names column `{h}` twice")));
            }
            names.push(h.to_string());
        }
        if names.is_empty() || (names.len() == 1 && names[0].trim().is_empty()) {
            return Err(at("no header line".into()));
        }
        let mut fields: Vec<Field> = names.iter().map(|n| Field::new(n, DataType::Utf8, true)).collect();
        fields.push(Field::new(LINE_REASON, DataType::Utf8, true));
        Ok(Lines {
            path: path.to_path_buf(),
            strict,
            batch_rows: batch_rows.max(1),
            names: names.len(),
            schema: Arc::new(Schema::new(fields)),
            rdr,
            rec: csv::ByteRecord::new(),
            done: false,
        })
    }

    /// The columns: the header's, as text, then [`LINE_REASON`].
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// The next batch, `None` at the end of the file.
    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let path = self.path.display();
        let at = |m: String| Error::data(format!("{path}: {m}"));
        let names = self.names;
        let mut builders = (0..=names).map(|_| StringBuilder::new()).collect::<Vec<_>>();
        let mut rows = 0usize;
        let rec = &mut self.rec;
        while rows < self.batch_rows {
            match self.rdr.read_byte_record(rec) {
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Ok(true) => {}
                Err(e) => return Err(at(format!("unreadable CSV: {e}"))),
            }
            let line = rec.position().map_or(0, |p| p.line());
            let texts: std::result::Result<Vec<&str>, usize> =
                rec.iter().enumerate().map(|(i, f)| std::str::from_utf8(f).map_err(|_| i + 1)).collect();
            let problem = match &texts {
                Err(field) => Some(format!("field {field} is not valid UTF-8")),
                Ok(t) if t.len() != names => Some(format!("expected {} fields, found {}", names, t.len())),
                Ok(_) => None,
            };
            match (problem, texts) {
                (None, Ok(values)) => {
                    for (b, v) in builders.iter_mut().zip(&values) {
                        if v.is_empty() { b.append_null() } else { b.append_value(v) }
                    }
                    builders[names].append_null();
                }
                (Some(why), _) => {
                    if self.strict {
                        return Err(at(format!("line {line}: {why}")));
                    }
                    let text: String = rec
                        .iter()
                        .map(|f| String::from_utf8_lossy(f).into_owned())
                        .collect::<Vec<_>>()
                        .join(",")
                        .chars()
                        .take(200)
                        .collect();
                    for b in builders.iter_mut().take(names) {
                        b.append_null();
                    }
                    builders[names].append_value(format!("line {line}: {why}: {text}"));
                }
                (None, Err(_)) => unreachable!("a field that is not UTF-8 is a problem"),
            }
            rows += 1;
        }
        if rows == 0 {
            return Ok(None);
        }
        finish(&self.schema, &mut builders).map(Some)
    }
}

impl Iterator for Lines {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let next = self.next_batch();
        if next.is_err() {
            self.done = true;
        }
        next.transpose()
    }
}

fn finish(schema: &SchemaRef, builders: &mut [StringBuilder]) -> Result<RecordBatch> {
    let cols: Vec<ArrayRef> = builders.iter_mut().map(|b| Arc::new(b.finish()) as ArrayRef).collect();
    Ok(RecordBatch::try_new(Arc::clone(schema), cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_judged_whatever_their_case_and_compressed_files_are_refused() {
        assert_eq!(FileKind::of(Path::new("/x/SALES.CSV")).unwrap(), FileKind::Text);
        assert_eq!(FileKind::of(Path::new("/x/s.txt")).unwrap(), FileKind::Text);
        assert_eq!(FileKind::of(Path::new("/x/s.Parquet")).unwrap(), FileKind::Parquet);
        let err = FileKind::of(Path::new("/x/s.csv.gz")).unwrap_err().to_string();
        assert!(err.contains("/x/s.csv.gz") && err.contains("compressed"), "{err}");
        assert!(FileKind::of(Path::new("/x/s.json")).unwrap_err().to_string().contains("/x/s.json"));
    }

    #[test]
    fn undecodable_and_short_lines_are_rows_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, b"a,b\n1,x\n2,caf\xe9\n3\n4,\n").unwrap();
        let (schema, batches) = read(&p, false).unwrap();
        assert_eq!(schema.fields().len(), 3);
        let text = arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        assert!(text.contains("line 3: field 2 is not valid UTF-8: 2,caf\u{FFFD}"), "{text}");
        assert!(text.contains("line 4: expected 2 fields, found 1: 3"), "{text}");
        assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 4);
        let err = read(&p, true).unwrap_err().to_string();
        assert!(err.contains("s.csv: line 3: field 2 is not valid UTF-8"), "{err}");
    }
}
