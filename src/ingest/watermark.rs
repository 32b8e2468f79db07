//! Watermark values of a source, typed: numbers, points in time, or text.
//!
//! A source's watermark field has one kind for all its records, so one odd value cannot sort
//! after every real one (`"soon"` or `"20260-04-01"` after every date, as text would):
//!
//! 1. the kind of the table column the field fills (a date column: time; a number column:
//!    number), else
//! 2. the kind remembered with the watermark, else
//! 3. the kind most of the fetched values read as (ties: time, then number, then text).
//!
//! Times are ISO dates (`YYYY-MM-DD`, four-digit years) or ISO/RFC 3339 timestamps, compared as
//! instants (UTC when no offset is given). A value that does not read as the kind is not a
//! position: its record is quarantined and the watermark does not move over it.

use std::cmp::Ordering;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::source::SourceSettings;
use crate::catalog::schema::{Kind, TableSpec};

/// The kind of a source's watermark values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MarkKind {
    /// Points in time: ISO dates and timestamps.
    Time,
    /// Numbers (JSON numbers or numeric text).
    Number,
    /// Anything else, compared as text.
    Text,
}

impl std::fmt::Display for MarkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MarkKind::Time => "a date or timestamp",
            MarkKind::Number => "a number",
            MarkKind::Text => "text",
        })
    }
}

/// One watermark value, read as its kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Mark {
    /// An instant (a date is its midnight, UTC).
    Time(DateTime<Utc>),
    /// A finite number.
    Number(f64),
    /// Text.
    Text(String),
}

impl Mark {
    /// Whether `self` is beyond `other`; marks of different kinds are never beyond each other.
    pub fn beyond(&self, other: &Mark) -> bool {
        let order = match (self, other) {
            (Mark::Time(a), Mark::Time(b)) => a.partial_cmp(b),
            (Mark::Number(a), Mark::Number(b)) => a.partial_cmp(b),
            (Mark::Text(a), Mark::Text(b)) => a.partial_cmp(b),
            _ => None,
        };
        order == Some(Ordering::Greater)
    }
}

/// The text of a JSON value used as a watermark (`None` for null, empty text, arrays, objects).
fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A time from an ISO date or timestamp with a four-digit year.
fn time_of(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() < 10 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    if s.len() == 10 {
        let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
        return Some(d.and_hms_opt(0, 0, 0)?.and_utc());
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .map(|t| t.and_utc())
}

/// Reads `v` as a mark of `kind`; `None` when it is not one.
pub fn read(kind: MarkKind, v: &Value) -> Option<Mark> {
    let text = text_of(v)?;
    match kind {
        MarkKind::Time => time_of(&text).map(Mark::Time),
        MarkKind::Number => text.parse::<f64>().ok().filter(|n| n.is_finite()).map(Mark::Number),
        MarkKind::Text => Some(Mark::Text(text)),
    }
}

/// Reads remembered text as a mark of `kind`.
pub fn read_text(kind: MarkKind, text: &str) -> Option<Mark> {
    read(kind, &Value::String(text.to_string()))
}

/// The kind one value reads as on its own: number, else time, else text.
fn own_kind(v: &Value) -> Option<MarkKind> {
    let text = text_of(v)?;
    Some(if text.parse::<f64>().is_ok_and(f64::is_finite) {
        MarkKind::Number
    } else if time_of(&text).is_some() {
        MarkKind::Time
    } else {
        MarkKind::Text
    })
}

/// The kind of `field`'s values (see the module documentation); `remembered` is the kind stored
/// with the watermark, `values` the field's fetched values.
pub fn kind_of<'a>(
    spec: &TableSpec,
    s: &SourceSettings,
    field: &str,
    remembered: Option<MarkKind>,
    values: impl Iterator<Item = &'a Value>,
) -> MarkKind {
    let column = spec.columns.iter().find(|c| s.field_of(c.name) == field).map(|c| c.kind);
    match (column, remembered) {
        (Some(Kind::Date), _) => return MarkKind::Time,
        (Some(Kind::Number), _) => return MarkKind::Number,
        (_, Some(k)) => return k,
        _ => {}
    }
    let (mut time, mut number, mut text) = (0usize, 0usize, 0usize);
    for v in values {
        match own_kind(v) {
            Some(MarkKind::Time) => time += 1,
            Some(MarkKind::Number) => number += 1,
            Some(MarkKind::Text) => text += 1,
            None => {}
        }
    }
    if time >= number && time >= text && time > 0 {
        MarkKind::Time
    } else if number >= text && number > 0 {
        MarkKind::Number
    } else if text > 0 {
        MarkKind::Text
    } else {
        MarkKind::Time
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::schema;
    use crate::ingest::source::Format;
    use serde_json::json;

    #[test]
    fn times_compare_as_instants_and_odd_text_is_not_a_time() {
        let t = |s: &str| read(MarkKind::Time, &json!(s));
        assert!(t("2026-04-02").unwrap().beyond(&t("2026-04-01").unwrap()));
        assert!(t("2026-04-01T10:00:00+02:00").unwrap().beyond(&t("2026-04-01T07:59:00Z").unwrap()));
        assert!(!t("2026-04-01").unwrap().beyond(&t("2026-04-01T00:00:00Z").unwrap()));
        for bad in ["soon", "20260-04-01", "2026-13-01", "", "99999"] {
            assert_eq!(t(bad), None, "{bad}");
        }
        let n = |v: Value| read(MarkKind::Number, &v);
        assert!(n(json!(10)).unwrap().beyond(&n(json!("9")).unwrap()));
        assert_eq!(n(json!("NaN")), None);
        assert!(!Mark::Number(2.0).beyond(&Mark::Text("1".into())));
    }

    #[test]
    fn the_kind_follows_the_column_else_the_memory_else_most_values() {
        let sales = schema::table("sales").unwrap();
        let mut s = SourceSettings::http("http://127.0.0.1/x", Format::Json, "sales");
        s.map.insert("date".into(), "day".into());
        let odd = [json!("soon"), json!("later")];
        assert_eq!(kind_of(sales, &s, "day", Some(MarkKind::Text), odd.iter()), MarkKind::Time);
        assert_eq!(kind_of(sales, &s, "seq", Some(MarkKind::Number), odd.iter()), MarkKind::Number);
        let mixed = [json!("2026-04-01T00:00:00Z"), json!("soon"), json!("2026-04-02T00:00:00Z")];
        assert_eq!(kind_of(sales, &s, "updated", None, mixed.iter()), MarkKind::Time);
        let ids = [json!(17), json!("18"), json!("x")];
        assert_eq!(kind_of(sales, &s, "seq", None, ids.iter()), MarkKind::Number);
    }
}
