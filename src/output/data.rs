//! Data in and out of the lake as text: `demo` (rows per generated table), `import` and `ingest`
//! (rows read, written and quarantined, and where they went), `features` (the data-quality
//! findings and the tables materialised), `vacuum` (what it deleted) and `report` (the files
//! written). The reports that hold more than one library value are defined here.

use std::fmt::Write;

use chrono::NaiveDate;
use serde::Serialize;

use crate::demo::DemoReport;
use crate::features::FeatureMetrics;
use crate::ingest::import::ImportReport;
use crate::ingest::pull::IngestReport;
use crate::lake::vacuum::VacuumReport;
use crate::quality::QualityReport;
use crate::report::ReportFiles;

/// A generated demo lake.
#[derive(Debug, Clone, Serialize)]
pub struct DemoDone {
    /// The lake.
    pub lake: String,
    /// The seed every draw came from.
    pub seed: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// What was generated.
    #[serde(flatten)]
    pub demo: DemoReport,
}

/// The demo lake's series and rows per raw table.
pub fn demo(d: &DemoDone) -> String {
    let r = &d.demo;
    let mut out = format!(
        "demo lake {}: {} series ({} items × {} locations), {} … {}, seed {}, {:.1} s\n",
        d.lake, r.series, r.items, r.locations, r.start, r.end, d.seed, d.seconds
    );
    for (table, rows) in &r.rows {
        let _ = writeln!(out, "  raw/{table:<18} {rows:>12} rows");
    }
    out
}

/// One line per imported table: rows read, written and quarantined, and where they went.
pub fn imports(reports: &[ImportReport]) -> String {
    let mut out = String::new();
    for r in reports {
        let _ = writeln!(
            out,
            "{:<20} {:>10} read  {:>10} written  {:>8} quarantined  {}",
            r.table,
            r.rows_read,
            r.rows_written,
            r.rows_quarantined,
            r.quarantine.as_deref().unwrap_or(r.file.as_deref().unwrap_or(""))
        );
    }
    out
}

/// A source pulled: pages, rows, the file and quarantine written, the watermark moved.
pub fn ingest(r: &IngestReport) -> String {
    let mut out = format!(
        "{} → {}: {} page(s), {} read, {} skipped (watermark), {} written, {} quarantined\n",
        r.source, r.table, r.pages, r.rows_read, r.rows_skipped, r.rows_written, r.rows_quarantined
    );
    if let Some(f) = &r.file {
        let _ = writeln!(out, "  file        {f}");
    }
    if let Some(q) = &r.quarantine {
        let _ = writeln!(out, "  quarantine  {q}");
    }
    let _ = writeln!(
        out,
        "  watermark   {} → {}",
        r.watermark_before.as_deref().unwrap_or("-"),
        r.watermark_after.as_deref().unwrap_or("-")
    );
    out
}

/// `shelfcast features`: the checks run on the raw tables and the feature tables materialised.
#[derive(Debug, Clone, Serialize)]
pub struct FeaturesDone {
    /// The cutoff the features were computed for.
    pub cutoff: NaiveDate,
    /// The data-quality checks.
    pub quality: QualityReport,
    /// Each feature table written.
    pub tables: Vec<FeatureMetrics>,
}

/// The checks that found rows, then one line per feature table.
pub fn features(f: &FeaturesDone) -> String {
    let mut out = String::new();
    for c in f.quality.checks.iter().filter(|c| c.rows > 0) {
        let _ = writeln!(
            out,
            "check {:<18} {:>8} rows{}  {}",
            c.name,
            c.rows,
            if c.excluded { " (left out)" } else { "" },
            c.quarantine.as_deref().unwrap_or("")
        );
    }
    for m in &f.tables {
        let _ = writeln!(
            out,
            "{:<12} cutoff {}  {:>10} rows  {} file(s)  {}",
            m.name, m.cutoff, m.rows, m.files, m.location
        );
    }
    out
}

/// `shelfcast vacuum`: what it deleted, in a line.
pub fn vacuum(r: &VacuumReport, lake: &str, grace: std::time::Duration) -> String {
    format!(
        "deleted {} file(s), {} bytes, from {} dataset(s) in {lake} (grace {})\n",
        r.deleted.len(),
        r.bytes,
        r.datasets,
        humantime::format_duration(grace)
    )
}

/// `shelfcast report`: the files written to the lake and to a local folder.
#[derive(Debug, Clone, Serialize)]
pub struct ReportDone {
    /// The run or backtest reported on.
    pub run_id: String,
    /// The files in the lake.
    #[serde(flatten)]
    pub files: ReportFiles,
    /// The copies written to `--output`.
    pub local: Vec<String>,
    /// What the report could not show, and why.
    pub notes: Vec<String>,
}

/// Where the report went, one line per file.
pub fn report(r: &ReportDone) -> String {
    let mut out = format!("report of run {}: {}\n", r.run_id, r.files.location);
    for f in &r.files.files {
        let _ = writeln!(out, "  {:<12} {:>9} bytes", f.path, f.bytes);
    }
    for p in &r.local {
        let _ = writeln!(out, "  wrote {p}");
    }
    out
}
