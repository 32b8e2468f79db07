//! Records from a source, checked against the raw table's declared columns.
//!
//! A body is split into records (JSON objects, or CSV lines keyed by the header). Each record is
//! read into the table's canonical types: text as it is (numbers become their text), numbers
//! from JSON numbers or numeric text, dates from `YYYY-MM-DD` (or the source's `date-format`;
//! the date part of an ISO timestamp is accepted). A record whose required column is missing,
//! empty or unreadable, or a CSV line with the wrong number of fields, is rejected with the
//! reason and goes to quarantine as it arrived.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Builder, Float64Builder, Int64Builder, RecordBatch, StringBuilder};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::NaiveDate;
use serde_json::Value;

use super::source::{Format, SourceSettings};
use crate::catalog::schema::{Kind, TableSpec};
use crate::error::Result;

/// One record as it arrived.
#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// The page it came on (from 1).
    pub page: usize,
    /// Its fields; `None` when the record could not be split into fields.
    pub fields: Option<BTreeMap<String, Value>>,
    /// The record's text (a JSON object or a CSV line), for quarantine.
    pub text: String,
    /// Why it could not be split into fields.
    pub problem: Option<String>,
}

impl RawRecord {
    /// The value of a field, `None` when absent or null.
    pub fn get(&self, field: &str) -> Option<&Value> {
        self.fields.as_ref()?.get(field).filter(|v| !v.is_null())
    }
}

/// Splits a body into records. A body that cannot be read at all is an error (the message says
/// why); single bad lines come back as records with a `problem`.
pub fn parse(s: &SourceSettings, body: &[u8], page: usize) -> std::result::Result<Vec<RawRecord>, String> {
    match s.format {
        Format::Json => {
            let doc: Value = serde_json::from_slice(body).map_err(|e| format!("not valid JSON: {e}"))?;
            let at = if s.records.is_empty() { Some(&doc) } else { doc.pointer(&s.records) };
            let items = at.and_then(Value::as_array).ok_or_else(|| {
                let place = if s.records.is_empty() { "the body".to_string() } else { format!("`{}`", s.records) };
                format!("expected an array of records at {place}")
            })?;
            Ok(items
                .iter()
                .map(|v| match v.as_object() {
                    Some(o) => RawRecord {
                        page,
                        fields: Some(o.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
                        text: v.to_string(),
                        problem: None,
                    },
                    None => {
                        RawRecord { page, fields: None, text: v.to_string(), problem: Some("not an object".into()) }
                    }
                })
                .collect())
        }
        Format::Csv => {
            let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(body);
            let headers = rdr.headers().map_err(|e| format!("unreadable CSV header: {e}"))?.clone();
            let mut out = Vec::new();
            for rec in rdr.records() {
                let rec = rec.map_err(|e| format!("unreadable CSV: {e}"))?;
                let text = rec.iter().collect::<Vec<_>>().join(",");
                if rec.len() != headers.len() {
                    let problem = format!("expected {} fields, found {}", headers.len(), rec.len());
                    out.push(RawRecord { page, fields: None, text, problem: Some(problem) });
                    continue;
                }
                let fields = headers
                    .iter()
                    .zip(rec.iter())
                    .map(|(h, v)| {
                        let v = v.trim();
                        (h.to_string(), if v.is_empty() { Value::Null } else { Value::String(v.to_string()) })
                    })
                    .collect();
                out.push(RawRecord { page, fields: Some(fields), text, problem: None });
            }
            Ok(out)
        }
    }
}

/// The checked rows: those to append (in the table's canonical schema) and those rejected.
#[derive(Debug)]
pub struct Checked {
    /// Rows to append.
    pub good: RecordBatch,
    /// Rejected rows: `page`, `record` (as it arrived), `reason`.
    pub rejected: RecordBatch,
    /// For each record given, whether it was kept.
    pub accepted: Vec<bool>,
}

/// The schema of rejected rows.
pub fn rejected_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("page", DataType::Int64, false),
        Field::new("record", DataType::Utf8, false),
        Field::new("reason", DataType::Utf8, false),
    ]))
}

enum Cell {
    Null,
    Text(String),
    Number(f64),
    Date(i32),
}

/// Reads records into `spec`'s canonical columns.
pub fn check(spec: &TableSpec, s: &SourceSettings, records: &[RawRecord]) -> Result<Checked> {
    let epoch = crate::days::epoch();
    let mut cols: Vec<Vec<Cell>> = spec.columns.iter().map(|_| Vec::new()).collect();
    let (mut page, mut text, mut reason) = (Int64Builder::new(), StringBuilder::new(), StringBuilder::new());
    let mut accepted = Vec::with_capacity(records.len());
    for r in records {
        let cells: std::result::Result<Vec<Cell>, String> = match (&r.fields, &r.problem) {
            (_, Some(p)) => Err(p.clone()),
            (None, None) => Err("no fields".into()),
            (Some(_), None) => spec
                .columns
                .iter()
                .map(|c| {
                    let field = s.field_of(c.name);
                    let cell = match r.get(field) {
                        None => Cell::Null,
                        Some(v) => read(c.kind, v, s.date_format.as_deref(), epoch)
                            .map_err(|why| format!("{}: cannot read {} as {why}", c.name, v))?,
                    };
                    if matches!(cell, Cell::Null) && !c.nullable {
                        return Err(format!("{} is empty (field `{field}`)", c.name));
                    }
                    Ok(cell)
                })
                .collect(),
        };
        match cells {
            Ok(cells) => {
                for (col, cell) in cols.iter_mut().zip(cells) {
                    col.push(cell);
                }
                accepted.push(true);
            }
            Err(why) => {
                accepted.push(false);
                page.append_value(r.page as i64);
                text.append_value(&r.text);
                reason.append_value(why);
            }
        }
    }
    let schema = spec.canonical_schema();
    let arrays: Vec<ArrayRef> = spec
        .columns
        .iter()
        .zip(cols)
        .map(|(c, cells)| -> ArrayRef {
            match c.kind {
                Kind::Text => {
                    let mut b = StringBuilder::new();
                    for x in cells {
                        match x {
                            Cell::Text(t) => b.append_value(t),
                            _ => b.append_null(),
                        }
                    }
                    Arc::new(b.finish())
                }
                Kind::Number => {
                    let mut b = Float64Builder::new();
                    for x in cells {
                        match x {
                            Cell::Number(n) => b.append_value(n),
                            _ => b.append_null(),
                        }
                    }
                    Arc::new(b.finish())
                }
                Kind::Date => {
                    let mut b = Date32Builder::new();
                    for x in cells {
                        match x {
                            Cell::Date(d) => b.append_value(d),
                            _ => b.append_null(),
                        }
                    }
                    Arc::new(b.finish())
                }
            }
        })
        .collect();
    let good = RecordBatch::try_new(schema, arrays)?;
    let rejected = RecordBatch::try_new(
        rejected_schema(),
        vec![Arc::new(page.finish()), Arc::new(text.finish()), Arc::new(reason.finish())],
    )?;
    Ok(Checked { good, rejected, accepted })
}

/// One value in a column's family; the error names what it should have been.
fn read(kind: Kind, v: &Value, date_format: Option<&str>, epoch: NaiveDate) -> std::result::Result<Cell, String> {
    match kind {
        Kind::Text => match v {
            Value::String(s) if s.trim().is_empty() => Ok(Cell::Null),
            Value::String(s) => Ok(Cell::Text(s.clone())),
            Value::Number(n) => Ok(Cell::Text(n.to_string())),
            Value::Bool(b) => Ok(Cell::Text(b.to_string())),
            _ => Err("text".into()),
        },
        Kind::Number => {
            let n = match v {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            };
            n.filter(|n| n.is_finite()).map(Cell::Number).ok_or_else(|| "a number".into())
        }
        Kind::Date => {
            let s = v.as_str().map(str::trim).ok_or("a date")?;
            let parsed = match date_format {
                Some(f) => NaiveDate::parse_from_str(s, f).ok(),
                None => iso_date(s).or_else(|| s.get(..10).and_then(iso_date)),
            };
            parsed.map(|d| Cell::Date((d - epoch).num_days() as i32)).ok_or_else(|| "a date".into())
        }
    }
}

/// A `YYYY-MM-DD` date with a four-digit year (chrono alone would read `20260-04-01`).
fn iso_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    if b.len() != 10 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::schema;

    fn source(format: Format) -> SourceSettings {
        let mut s = SourceSettings::http("http://127.0.0.1/x", format, "sales");
        s.map.insert("units".into(), "qty".into());
        s
    }

    #[test]
    fn json_records_are_read_and_bad_ones_rejected_with_reasons() {
        let s = source(Format::Json);
        let body = br#"[
            {"date": "2026-04-01", "item_id": "A", "location_id": 7, "qty": 3},
            {"date": "2026-04-01T10:00:00Z", "item_id": "B", "location_id": "S1", "qty": "2.5", "extra": true},
            {"date": "yesterday", "item_id": "C", "location_id": "S1", "qty": 1},
            {"date": "2026-04-01", "item_id": "D", "location_id": "S1"},
            {"date": "2026-04-01", "item_id": "E", "location_id": "S1", "qty": "many"},
            42
        ]"#;
        let records = parse(&s, body, 1).unwrap();
        assert_eq!(records.len(), 6);
        let c = check(schema::table("sales").unwrap(), &s, &records).unwrap();
        assert_eq!(c.good.num_rows(), 2);
        let reasons = arrow::util::pretty::pretty_format_batches(&[c.rejected]).unwrap().to_string();
        for want in [
            "date: cannot read \"yesterday\" as a date",
            "units is empty (field `qty`)",
            "units: cannot read \"many\" as a number",
            "not an object",
        ] {
            assert!(reasons.contains(want), "{want}\n{reasons}");
        }
        let good = arrow::util::pretty::pretty_format_batches(&[c.good]).unwrap().to_string();
        assert!(good.contains("| 7 ") && good.contains("2.5"), "{good}");
    }

    #[test]
    fn csv_lines_with_the_wrong_field_count_are_rejected() {
        let s = source(Format::Csv);
        let records = parse(&s, b"date,item_id,location_id,qty\n2026-04-01,A,S1,3\n2026-04-01,B,S1\n", 1).unwrap();
        let c = check(schema::table("sales").unwrap(), &s, &records).unwrap();
        assert_eq!((c.good.num_rows(), c.rejected.num_rows()), (1, 1));
        assert!(parse(&source(Format::Json), b"{not json", 1).unwrap_err().contains("not valid JSON"));
        let mut s = source(Format::Json);
        s.records = "/data".into();
        assert!(parse(&s, br#"{"rows": []}"#, 1).unwrap_err().contains("`/data`"));
    }
}
