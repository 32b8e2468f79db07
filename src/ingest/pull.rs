//! `shelfcast ingest SOURCE` (and the `ingest` step): fetch a configured source, check its
//! records against the raw table, append them, quarantine the rest, remember the watermark.
//!
//! 1. The source's watermark is read from `ingest/source=<name>/watermark.json`.
//! 2. Every page is fetched (with the watermark sent as `watermark-param`, when set); a page
//!    that cannot be fetched after its retries, or a body that cannot be read, stops the
//!    ingestion with nothing written.
//! 3. Records at or before the watermark are skipped (the server may ignore the parameter).
//!    Values compare typed ([`super::watermark`]): a record whose watermark value does not read
//!    as the field's kind (or has none) is quarantined.
//! 4. Bad records go to `quarantine/source=<name>/ingest=<id>/` (page, record, reason; manifest
//!    last); the others are appended to `raw/<table>/` as one new Parquet file, written with a
//!    single atomic put, so readers see all of it or none.
//! 5. Only then is the watermark moved to the newest value of a record that was appended
//!    (never over a quarantined one). A crash between 4 and 5 fetches
//!    the same records again next time (the `duplicate_keys` check finds such repeats in sales).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tracing::{info, instrument};

use super::records;
use super::source::{self, SourceSettings};
use super::watermark::{self as mark, Mark, MarkKind};
use crate::catalog::schema;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::lake::dataset::DatasetWriter;
use crate::lake::{Lake, layout};
use crate::secrets::Secrets;

/// The remembered position of a source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// The source.
    pub source: String,
    /// The source field it is read from.
    pub field: String,
    /// The newest value delivered so far.
    pub value: String,
    /// The kind its values compare as (absent in watermarks written before kinds were kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<MarkKind>,
    /// When it was recorded.
    pub updated_at: DateTime<Utc>,
    /// The ingestion that recorded it.
    pub ingest_id: String,
}

/// What one ingestion did.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    /// The source.
    pub source: String,
    /// The raw table.
    pub table: String,
    /// Pages fetched.
    pub pages: usize,
    /// Records read.
    pub rows_read: u64,
    /// Records at or before the watermark, left out.
    pub rows_skipped: u64,
    /// Rows appended.
    pub rows_written: u64,
    /// Rows quarantined.
    pub rows_quarantined: u64,
    /// The new raw file.
    pub file: Option<String>,
    /// Where the quarantined rows are.
    pub quarantine: Option<String>,
    /// Watermark before.
    pub watermark_before: Option<String>,
    /// Watermark after.
    pub watermark_after: Option<String>,
}

/// Reads a source's watermark.
pub async fn watermark(lake: &Lake, name: &str) -> Result<Option<Watermark>> {
    let path = layout::watermark(name);
    match lake.get_opt(&path).await? {
        None => Ok(None),
        Some(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| Error::Dataset { path: lake.display(&path), message: format!("unreadable watermark: {e}") }),
    }
}

/// Ingests source `name` (see the module documentation).
#[instrument(skip_all, fields(source = name, table = %s.table))]
pub async fn ingest(
    lake: &Lake,
    name: &str,
    s: &SourceSettings,
    secrets: &Secrets,
    clock: &dyn Clock,
) -> Result<IngestReport> {
    let spec = schema::table(&s.table)
        .ok_or_else(|| Error::Source { name: name.to_string(), message: format!("no raw table `{}`", s.table) })?;
    let before = watermark(lake, name).await?.filter(|w| Some(&w.field) == s.watermark.as_ref());
    let since = before.as_ref().map(|w| w.value.clone());
    let (mut fetched, pages) = source::fetch(name, s, since.as_deref(), secrets, clock).await?;
    let rows_read = fetched.len() as u64;
    // Each kept record's watermark value, read as the field's kind.
    let mut marks: Vec<Option<(Mark, String)>> = Vec::with_capacity(fetched.len());
    let mut kind = None;
    let mut last = None;
    if let Some(field) = &s.watermark {
        let k = mark::kind_of(
            spec,
            s,
            field,
            before.as_ref().and_then(|w| w.kind),
            fetched.iter().filter_map(|r| r.get(field)),
        );
        if let Some(w) = &before {
            last = Some(mark::read_text(k, &w.value).ok_or_else(|| Error::Source {
                name: name.to_string(),
                message: format!(
                    "the remembered watermark `{}` in {} is not {k}; delete the file to ingest from the start",
                    w.value,
                    lake.display(&layout::watermark(name))
                ),
            })?);
        }
        kind = Some(k);
    }
    let mut kept = Vec::with_capacity(fetched.len());
    for mut r in fetched.drain(..) {
        let (Some(field), Some(k)) = (&s.watermark, kind) else {
            kept.push(r);
            marks.push(None);
            continue;
        };
        let value = r.get(field).cloned();
        let read = value.as_ref().and_then(|v| mark::read(k, v));
        let problem = match (&value, &read) {
            _ if r.problem.is_some() || r.fields.is_none() => None,
            (None, _) => Some(format!("watermark field `{field}` is empty")),
            (Some(v), None) => Some(format!("watermark field `{field}`: cannot read {v} as {k}")),
            _ => None,
        };
        if let (Some(m), Some(l)) = (&read, &last)
            && problem.is_none()
            && r.problem.is_none()
            && !m.beyond(l)
        {
            continue;
        }
        if problem.is_some() {
            r.problem = problem;
        }
        let text = value.as_ref().map(|v| match v {
            serde_json::Value::String(t) => t.trim().to_string(),
            other => other.to_string(),
        });
        marks.push(read.zip(text));
        kept.push(r);
    }
    let rows_skipped = rows_read - kept.len() as u64;
    let checked = records::check(spec, s, &kept)?;
    // The watermark moves only over records that were appended.
    let mut newest: Option<(Mark, String)> = None;
    for (m, ok) in marks.into_iter().zip(&checked.accepted) {
        if let (Some((m, text)), true) = (m, *ok)
            && last.as_ref().is_none_or(|l| m.beyond(l))
            && newest.as_ref().is_none_or(|(n, _)| m.beyond(n))
        {
            newest = Some((m, text));
        }
    }
    let newest = newest.map(|(_, text)| text).or_else(|| since.clone());
    let id = format!("{}-{}", name, clock.now().format("%Y%m%dT%H%M%S%3fZ"));
    let mut report = IngestReport {
        source: name.to_string(),
        table: s.table.clone(),
        pages,
        rows_read,
        rows_skipped,
        rows_written: checked.good.num_rows() as u64,
        rows_quarantined: checked.rejected.num_rows() as u64,
        file: None,
        quarantine: None,
        watermark_before: since.clone(),
        watermark_after: newest.clone(),
    };
    if checked.rejected.num_rows() > 0 {
        let dir = layout::ingest_quarantine(name, &id);
        let mut w =
            DatasetWriter::new(lake, dir.clone(), format!("quarantine/{}", s.table), &id, records::rejected_schema());
        w.write(checked.rejected).await?;
        let mut meta = serde_json::Map::new();
        meta.insert("source".into(), name.into());
        meta.insert("origin".into(), s.origin().into());
        meta.insert("table".into(), s.table.clone().into());
        w.commit(clock.now(), meta).await?;
        report.quarantine = Some(lake.display(&dir));
    }
    if checked.good.num_rows() > 0 {
        let bytes = crate::lake::parquet::encode(&spec.canonical_schema(), &[checked.good])?;
        let path = layout::raw_file(spec.name, &format!("ingest-{id}.parquet"));
        lake.put(&path, bytes).await?;
        report.file = Some(lake.display(&path));
    }
    if let (Some(field), Some(value)) = (&s.watermark, &newest)
        && newest != since
    {
        let w = Watermark {
            source: name.to_string(),
            field: field.clone(),
            value: value.clone(),
            kind,
            updated_at: clock.now(),
            ingest_id: id.clone(),
        };
        lake.put(&layout::watermark(name), serde_json::to_vec_pretty(&w)?.into()).await?;
    }
    info!(read = report.rows_read, skipped = report.rows_skipped, written = report.rows_written,
        quarantined = report.rows_quarantined, watermark = ?report.watermark_after, "ingested");
    Ok(report)
}
