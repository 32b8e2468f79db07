//! Bringing outside data into the lake's raw tables.
//!
//! - [`import`]: a file or a known public dataset, mapped by hand (`shelfcast import`).
//! - [`text_file`]: which files an import reads, and text read line by line.
//! - [`date_format`]: dates read with `--date-format`, NULL when one does not read.
//! - [`source`]: the sources declared in settings (`[sources.NAME]`), over HTTP(S) or from files.
//! - [`records`]: their records checked against the raw table's columns.
//! - [`watermark`]: the typed values a source's position is remembered by.
//! - [`pull`]: one ingestion of a source (`shelfcast ingest SOURCE`, the `ingest` step).

pub mod date_format;
pub mod import;
pub mod pull;
pub mod records;
pub mod source;
pub mod text_file;
pub mod watermark;
