//! What the commands print. The library's operations return typed reports (a run record, a
//! backtest report, the factor analysis, import counts, …); this module is the one place that
//! turns them into output: aligned text for people, or one JSON document for scripts
//! (`--format json`). One file per family of commands:
//!
//! - [`data`]: `demo`, `import`, `ingest`, `features`, `vacuum`, `report`;
//! - [`factors`]: `factors` (estimates, group importance) and `explain`;
//! - [`runs`]: `run`/`train`/`predict` (the run summary and where the time went), `runs`, `jobs`;
//! - [`backtest`]: `backtest`'s score table.
//!
//! A JSON document is the report itself, serialised with the field names of the library's types,
//! so that what a script reads is what the run records, manifests and `report.json` hold.

pub mod backtest;
pub mod data;
pub mod factors;
pub mod runs;

use std::io::Write;

use serde::Serialize;

use crate::error::Result;

/// How a command prints its report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text, for people.
    #[default]
    Text,
    /// One JSON document on standard output, for scripts.
    Json,
}

/// Writes `value` to `out`: as pretty JSON, or as the text `text` makes of it.
pub fn write<T: Serialize + ?Sized>(
    out: &mut dyn Write,
    format: Format,
    value: &T,
    text: impl FnOnce(&T) -> String,
) -> Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, value)?;
            writeln!(out)?;
        }
        Format::Text => out.write_all(text(value).as_bytes())?,
    }
    out.flush()?;
    Ok(())
}

/// [`write`] to standard output.
pub fn print<T: Serialize + ?Sized>(format: Format, value: &T, text: impl FnOnce(&T) -> String) -> Result<()> {
    write(&mut std::io::stdout().lock(), format, value, text)
}

/// A value to three decimals, `-` when missing.
pub fn num3(v: Option<f64>) -> String {
    v.map_or("-".to_string(), |v| format!("{v:.3}"))
}

/// A serialisable enum's name as it appears in JSON (`succeeded`, `manual`, …).
pub fn label<T: Serialize>(v: T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Counts {
        table: &'static str,
        rows: u64,
    }

    #[test]
    fn json_is_the_report_and_text_is_what_the_renderer_makes_of_it() {
        let c = Counts { table: "sales", rows: 3 };
        let mut out = Vec::new();
        write(&mut out, Format::Json, &c, |_| unreachable!("no text in JSON")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!((v["table"].as_str(), v["rows"].as_u64()), (Some("sales"), Some(3)));
        let mut out = Vec::new();
        write(&mut out, Format::Text, &c, |c| format!("{} {}\n", c.table, c.rows)).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "sales 3\n");
    }
}
