//! Vocabularies of static categorical attributes (item, location, category, …) mapped to small
//! integer ids for embeddings.
//!
//! Id 0 is "unknown": a value not seen when the model was fitted, or a missing attribute. Known
//! values take ids 1.. in sorted order, so the mapping does not depend on the panel's row order.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::panel::Panel;

/// The id of an unknown value.
pub const UNKNOWN: i64 = 0;

/// One vocabulary per attribute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Vocabularies {
    /// Attribute names, in the order of the ids per series.
    pub names: Vec<String>,
    /// Per attribute: its known values, sorted (value `k` has id `k + 1`).
    pub values: Vec<Vec<String>>,
}

impl Vocabularies {
    /// The attributes of a panel: item and location from its keys, then the covariates' static
    /// attributes when loaded (`use_covariates`).
    pub fn fit(panel: &Panel, use_covariates: bool) -> Self {
        let (names, columns) = attributes(panel, use_covariates);
        let values = columns
            .into_iter()
            .map(|col| {
                let mut v: Vec<String> = col.into_iter().flatten().collect();
                v.sort();
                v.dedup();
                v
            })
            .collect();
        Self { names, values }
    }

    /// Number of ids per attribute, unknown included.
    pub fn sizes(&self) -> Vec<usize> {
        self.values.iter().map(|v| v.len() + 1).collect()
    }

    /// Ids of every series of `panel`: one per attribute.
    pub fn ids(&self, panel: &Panel) -> Vec<Vec<i64>> {
        let use_covariates = self.names.len() > 2;
        let (_, columns) = attributes(panel, use_covariates);
        let maps: Vec<BTreeMap<&str, i64>> = self
            .values
            .iter()
            .map(|v| v.iter().enumerate().map(|(k, s)| (s.as_str(), k as i64 + 1)).collect())
            .collect();
        (0..panel.len())
            .map(|s| {
                (0..self.names.len())
                    .map(|a| {
                        columns
                            .get(a)
                            .and_then(|c| c[s].as_deref())
                            .and_then(|v| maps[a].get(v).copied())
                            .unwrap_or(UNKNOWN)
                    })
                    .collect()
            })
            .collect()
    }
}

/// Attribute names and, per attribute, each series' value.
fn attributes(panel: &Panel, use_covariates: bool) -> (Vec<String>, Vec<Vec<Option<String>>>) {
    let mut names = vec!["item".to_string(), "location".to_string()];
    let mut columns = vec![
        panel.keys.iter().map(|k| Some(k.item_id.clone())).collect::<Vec<_>>(),
        panel.keys.iter().map(|k| Some(k.location_id.clone())).collect(),
    ];
    if let Some(c) = panel.covariates.as_deref().filter(|_| use_covariates) {
        names.extend(c.statics.names.iter().cloned());
        columns.extend(c.statics.values.iter().cloned());
    }
    (names, columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::SeriesKey;
    use crate::period::Frequency;

    #[test]
    fn unseen_values_map_to_unknown() {
        let key = |i: &str, l: &str| SeriesKey { item_id: i.into(), location_id: l.into() };
        let end = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).unwrap();
        let fitted = Panel::new(vec![key("b", "x"), key("a", "x")], vec![vec![1.0], vec![2.0]], end, Frequency::Daily);
        let v = Vocabularies::fit(&fitted, false);
        assert_eq!(v.sizes(), vec![3, 2]);
        let other = Panel::new(vec![key("a", "x"), key("c", "y")], vec![vec![1.0], vec![2.0]], end, Frequency::Daily);
        assert_eq!(v.ids(&other), vec![vec![1, 1], vec![UNKNOWN, UNKNOWN]]);
    }
}
