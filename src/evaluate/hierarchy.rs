//! WRMSSE over a hierarchy of aggregation levels, as scored in the M5 competition.
//!
//! The backtest's rows are forecasts of item × location series. Summed over groups they give the
//! forecasts of the levels above: each location, each category (when the items' categories are
//! known), each item over its locations, and the total. At every level each group is scored by
//! its RMSSE (errors scaled by the mean squared first difference of its own history, see
//! [`metrics::rmsse`]), weighted by its share of the level's units over the last horizon before
//! the cutoff (M5 weighs by dollar sales; the panel holds units), and the level's WRMSSE is the
//! weighted sum. Levels are averaged over the backtest's cutoffs, and `mean` is the average of the
//! levels, M5's headline number.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use super::backtest::ScoredRow;
use crate::metrics::{self, WrmsseSeries};
use crate::panel::Panel;

/// The levels scored, bottom-up; `category` only when categories are known.
pub const LEVELS: &[&str] = &["series", "item", "category", "location", "total"];

/// Key of a series' group at `level`; `None` when the level cannot be formed.
fn group_of(level: &str, item: &str, location: &str, categories: &HashMap<String, String>) -> Option<String> {
    match level {
        "series" => Some(format!("{item}/{location}")),
        "item" => Some(item.to_string()),
        "category" if !categories.is_empty() => {
            Some(categories.get(item).cloned().unwrap_or_else(|| "(unknown)".to_string()))
        }
        "location" => Some(location.to_string()),
        "total" => Some(String::new()),
        _ => None,
    }
}

#[derive(Default)]
struct Group {
    history: Vec<f64>,
    actual: Vec<f64>,
    forecast: Vec<f64>,
}

/// Adds `y` to `acc`, aligned at the end (series of a panel all end on its last period).
fn add_aligned(acc: &mut Vec<f64>, y: &[f32]) {
    if acc.len() < y.len() {
        let mut grown = vec![0.0; y.len() - acc.len()];
        grown.append(acc);
        *acc = grown;
    }
    let off = acc.len() - y.len();
    for (a, v) in acc[off..].iter_mut().zip(y) {
        *a += *v as f64;
    }
}

/// WRMSSE per level (and their `mean`) of one model's backtest rows against `full`, the panel
/// the backtest was cut from; `categories` maps items to categories (may be empty).
pub fn wrmsse_by_level(
    full: &Panel,
    rows: &[ScoredRow],
    categories: &HashMap<String, String>,
) -> BTreeMap<String, f64> {
    let index: HashMap<(&str, &str), usize> =
        full.keys.iter().enumerate().map(|(i, k)| ((k.item_id.as_str(), k.location_id.as_str()), i)).collect();
    let step_days = full.frequency.days();
    let mut by_cutoff: BTreeMap<NaiveDate, Vec<&ScoredRow>> = BTreeMap::new();
    for r in rows {
        by_cutoff.entry(r.cutoff).or_default().push(r);
    }
    let mut sums: BTreeMap<&str, (f64, usize)> = BTreeMap::new();
    for (cutoff, rows) in by_cutoff {
        // Periods between the cutoff's period and the panel's last one.
        let cutoff_period = cutoff - chrono::Duration::days(step_days - 1);
        let from_end = ((full.end - cutoff_period).num_days() / step_days).max(0) as usize;
        let horizon = rows.iter().map(|r| r.step).max().unwrap_or(0);
        for level in LEVELS {
            let mut groups: BTreeMap<String, Group> = BTreeMap::new();
            let mut seen: BTreeMap<(String, usize), ()> = BTreeMap::new();
            for r in &rows {
                let Some(key) = group_of(level, &r.item_id, &r.location_id, categories) else { continue };
                let Some(&i) = index.get(&(r.item_id.as_str(), r.location_id.as_str())) else { continue };
                let g = groups.entry(key.clone()).or_insert_with(|| Group {
                    actual: vec![0.0; horizon],
                    forecast: vec![0.0; horizon],
                    ..Default::default()
                });
                g.actual[r.step - 1] += r.y;
                g.forecast[r.step - 1] += r.y_hat;
                // Each member's history is added once per group.
                if seen.insert((key, i), ()).is_none() {
                    let y = &full.values[i];
                    add_aligned(&mut g.history, &y[..y.len().saturating_sub(from_end)]);
                }
            }
            if groups.is_empty() {
                continue;
            }
            let series: Vec<WrmsseSeries<'_>> = groups
                .values()
                .map(|g| WrmsseSeries {
                    history: &g.history,
                    actual: &g.actual,
                    forecast: &g.forecast,
                    weight: g.history[g.history.len().saturating_sub(horizon)..].iter().sum(),
                })
                .collect();
            if let Some(w) = metrics::wrmsse(&series) {
                let e = sums.entry(level).or_default();
                e.0 += w;
                e.1 += 1;
            }
        }
    }
    let mut out: BTreeMap<String, f64> = sums.into_iter().map(|(l, (s, n))| (l.to_string(), s / n as f64)).collect();
    if !out.is_empty() {
        let mean = out.values().sum::<f64>() / out.len() as f64;
        out.insert("mean".to_string(), mean);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::baseline::classify::DemandClass;
    use crate::panel::SeriesKey;
    use crate::period::Frequency;

    fn row(item: &str, loc: &str, step: usize, y: f64, y_hat: f64) -> ScoredRow {
        let cutoff = NaiveDate::from_ymd_opt(2026, 1, 4).unwrap();
        ScoredRow {
            item_id: item.into(),
            location_id: loc.into(),
            cutoff,
            target_date: cutoff + chrono::Duration::days(step as i64),
            step,
            y,
            y_hat,
            quantiles: vec![],
            class: DemandClass::Smooth,
            scale: None,
        }
    }

    #[test]
    fn levels_by_hand() {
        // Two series at two locations, history to Jan 4 then two days forecast (ending Jan 6).
        let keys = vec![
            SeriesKey { item_id: "a".into(), location_id: "s1".into() },
            SeriesKey { item_id: "b".into(), location_id: "s2".into() },
        ];
        let values = vec![vec![1.0, 2.0, 1.0, 2.0, 2.0, 2.0], vec![3.0, 3.0, 5.0, 3.0, 4.0, 4.0]];
        let full = Panel::new(keys, values, NaiveDate::from_ymd_opt(2026, 1, 6).unwrap(), Frequency::Daily);
        let rows = vec![
            row("a", "s1", 1, 2.0, 2.0),
            row("a", "s1", 2, 2.0, 2.0),
            row("b", "s2", 1, 4.0, 3.0),
            row("b", "s2", 2, 4.0, 5.0),
        ];
        let cats: HashMap<String, String> = [("a", "x"), ("b", "x")].map(|(i, c)| (i.into(), c.into())).into();
        let w = wrmsse_by_level(&full, &rows, &cats);
        // Series b: history 3,3,5,3: squared diffs 0,4,4 → scale 8/3; MSE 1 → RMSSE √(3/8).
        // Its weight: the last 2 periods, 5 + 3 = 8 against a's 1 + 2 = 3; a is perfect.
        let b = (3.0f64 / 8.0).sqrt();
        let series = 8.0 / 11.0 * b;
        assert!((w["series"] - series).abs() < 1e-12);
        assert!((w["item"] - series).abs() < 1e-12 && (w["location"] - series).abs() < 1e-12);
        // Total: history 4,5,6,5: diffs 1,1,1 → scale 1; errors 1, −1 → RMSSE 1. One category: the same.
        assert!((w["total"] - 1.0).abs() < 1e-12 && (w["category"] - 1.0).abs() < 1e-12);
        assert!((w["mean"] - (3.0 * series + 2.0) / 5.0).abs() < 1e-12);
        // Without categories the level is left out.
        assert!(!wrmsse_by_level(&full, &rows, &HashMap::new()).contains_key("category"));
    }
}
