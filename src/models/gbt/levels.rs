//! Per-level training: one `gbt` per location, or per value of a static attribute (category,
//! brand, region, format), instead of one over every series, as the M5 winners trained per store.
//! On a large panel each group's trees fit faster and specialise; a group smaller than
//! `min-series` is pooled with the other small ones (and the series without the attribute) into
//! one shared group, which also forecasts series whose group was not seen when fitting.
//!
//! Turned on by `[model.gbt] per = "location"` (or an attribute's name), only from `per-from`
//! series up; below that, or with one group only, the single global model is fitted as without it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tracing::{debug, info_span};

use super::{Gbt, GbtConfig};
use crate::error::{Error, Result};
use crate::models::framed::{frame, unframe};
use crate::models::{FitReport, Forecast, Forecaster, Warm, warm};
use crate::panel::Panel;

/// First line of a saved per-level model.
const MAGIC: &[u8] = b"shelfcast-gbt-levels\n";

/// The name of the group pooling the small groups and the series without the attribute.
pub const POOLED: &str = "(pooled)";

/// How the series are split.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Levels {
    /// `location`, or the name of a static attribute.
    pub per: String,
    /// Least series in a group of its own.
    pub min_series: usize,
    /// Least series in the panel for the split to apply.
    pub from_series: usize,
}

/// `gbt` fitted per group of series.
#[derive(Debug)]
pub struct PerLevel {
    config: GbtConfig,
    levels: Levels,
    /// The groups, in order; one (`POOLED`) when not split.
    groups: Vec<Group>,
}

/// A group's name, the series it was fitted on, and its model.
#[derive(Debug)]
struct Group {
    name: String,
    series: usize,
    model: Gbt,
}

/// The header of a saved per-level model: each group's name, series, and the length of its state.
#[derive(Serialize, Deserialize)]
struct Head {
    levels: Levels,
    groups: Vec<(String, usize, usize)>,
}

impl PerLevel {
    /// An unfitted model.
    pub fn new(config: GbtConfig, levels: Levels) -> Self {
        Self { config, levels, groups: Vec::new() }
    }

    /// Each series' label at this level: its location, or its value of the attribute.
    fn labels(&self, panel: &Panel) -> Result<Vec<Option<String>>> {
        if self.levels.per == "location" {
            return Ok(panel.keys.iter().map(|k| Some(k.location_id.clone())).collect());
        }
        let statics = panel.covariates.as_ref().map(|c| &c.statics);
        let column = statics.and_then(|st| st.names.iter().position(|n| *n == self.levels.per));
        match (statics, column) {
            (Some(st), Some(c)) => Ok(st.values[c].clone()),
            _ => Err(Error::data(format!(
                "gbt: `per = \"{}\"` names no static attribute of the series (known: location{})",
                self.levels.per,
                statics.map(|st| st.names.iter().map(|n| format!(", {n}")).collect::<String>()).unwrap_or_default()
            ))),
        }
    }

    /// The groups fitted: per label with at least `min-series` series, the rest pooled; a single
    /// pooled group when the panel is below `from-series` or splits no further.
    fn split(&self, panel: &Panel) -> Result<BTreeMap<String, Vec<usize>>> {
        let mut groups: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        if panel.len() < self.levels.from_series {
            groups.insert(POOLED.to_string(), (0..panel.len()).collect());
            return Ok(groups);
        }
        let labels = self.labels(panel)?;
        for (s, label) in labels.into_iter().enumerate() {
            groups.entry(label.unwrap_or_else(|| POOLED.to_string())).or_default().push(s);
        }
        let small: Vec<String> = groups
            .iter()
            .filter(|(name, series)| *name != POOLED && series.len() < self.levels.min_series)
            .map(|(name, _)| name.clone())
            .collect();
        for name in small {
            let series = groups.remove(&name).unwrap_or_default();
            groups.entry(POOLED.to_string()).or_default().extend(series);
        }
        if let Some(pooled) = groups.get_mut(POOLED) {
            pooled.sort_unstable();
        }
        if groups.len() == 1 {
            let all = groups.into_values().next().unwrap_or_default();
            return Ok(BTreeMap::from([(POOLED.to_string(), all)]));
        }
        Ok(groups)
    }

    /// Fits a model per group, continuing the group of the same name in `parent` when it has one.
    fn fit_groups(&mut self, panel: &Panel, parent: Option<&PerLevel>, epochs: usize) -> Result<FitReport> {
        let span = info_span!("gbt_levels_fit", per = %self.levels.per, series = panel.len());
        let _guard = span.enter();
        let groups = self.split(panel)?;
        let mut fitted = Vec::with_capacity(groups.len());
        for (name, series) in groups {
            debug!(group = %name, series = series.len(), "gbt: fitting a group");
            let mut model = Gbt::new(self.config.clone());
            let part = if series.len() == panel.len() { panel.clone() } else { panel.select(&series) };
            let stored = parent.and_then(|p| p.groups.iter().find(|g| g.name == name));
            let fit = match stored {
                Some(g) => g.model.save().and_then(|bytes| warm::continue_or_fit(&mut model, &part, &bytes, epochs)),
                None => model.fit(&part).map(|fit| (fit, None)),
            };
            fit.map_err(|e| Error::data(format!("gbt: group `{name}`: {e}")))?;
            fitted.push(Group { name, series: series.len(), model });
        }
        self.groups = fitted;
        Ok(FitReport::new(self.name(), panel))
    }

    /// The group of each series when forecasting: its own when fitted, else the pooled one, else
    /// the largest.
    fn assign(&self, panel: &Panel) -> Result<Vec<usize>> {
        if self.groups.len() == 1 {
            return Ok(vec![0; panel.len()]);
        }
        let fallback = self
            .groups
            .iter()
            .position(|g| g.name == POOLED)
            .unwrap_or_else(|| (0..self.groups.len()).max_by_key(|&g| self.groups[g].series).unwrap_or(0));
        let labels = self.labels(panel)?;
        Ok(labels
            .into_iter()
            .map(|l| l.and_then(|l| self.groups.iter().position(|g| g.name == l)).unwrap_or(fallback))
            .collect())
    }
}

impl Forecaster for PerLevel {
    fn name(&self) -> &str {
        "gbt"
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        self.fit_groups(panel, None, 0)
    }

    /// Each group refits with the choices of the stored group of the same name (see
    /// [`Gbt::fit_warm`]); a group the parent lacks, or whose stored model does not fit, is
    /// fitted in full.
    fn fit_warm(&mut self, panel: &Panel, parent: &[u8], epochs: usize) -> Result<Warm> {
        let mut stored = PerLevel::new(self.config.clone(), self.levels.clone());
        if let Err(e) = stored.load(parent) {
            return Ok(Warm::Incompatible(format!("the stored trees cannot be read: {e}")));
        }
        Ok(Warm::Continued(self.fit_groups(panel, Some(&stored), epochs)?))
    }

    fn warm_starts(&self) -> bool {
        true
    }

    fn warm_start_does(&self, _epochs: usize) -> String {
        super::WARM_REFIT.to_string()
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        if self.groups.is_empty() {
            return Err(Error::data("gbt: predict before fit"));
        }
        let assigned = self.assign(panel)?;
        let mut out = Forecast::zeros(self.name(), panel.len(), horizon, levels);
        for (g, Group { model, .. }) in self.groups.iter().enumerate() {
            let series: Vec<usize> = (0..panel.len()).filter(|&s| assigned[s] == g).collect();
            if series.is_empty() {
                continue;
            }
            if series.len() == panel.len() {
                return model.predict(panel, horizon, levels);
            }
            let part = model.predict(&panel.select(&series), horizon, levels)?;
            for (i, &s) in series.iter().enumerate() {
                out.copy_series_from(s, &part, i);
            }
        }
        Ok(out)
    }

    fn save(&self) -> Result<Vec<u8>> {
        if self.groups.is_empty() {
            return Err(Error::data("gbt: save before fit"));
        }
        let mut body = Vec::new();
        let mut lengths = Vec::with_capacity(self.groups.len());
        for g in &self.groups {
            let bytes = g.model.save()?;
            lengths.push((g.name.clone(), g.series, bytes.len()));
            body.extend_from_slice(&bytes);
        }
        let head = serde_json::to_vec(&Head { levels: self.levels.clone(), groups: lengths })?;
        Ok(frame(MAGIC, &head, &body))
    }

    /// Reads a per-level state, or a single model's (stored before `per` was set), which then
    /// forecasts every series.
    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        let Ok((head, mut body)) = unframe(MAGIC, bytes) else {
            let mut model = Gbt::new(self.config.clone());
            model.load(bytes)?;
            self.groups = vec![Group { name: POOLED.to_string(), series: 0, model }];
            return Ok(());
        };
        let head: Head = serde_json::from_slice(head)?;
        let mut groups = Vec::with_capacity(head.groups.len());
        for (name, series, len) in head.groups {
            let (bytes, rest) = body
                .split_at_checked(len)
                .ok_or_else(|| Error::data(format!("gbt: the stored state ends inside group `{name}`")))?;
            let mut model = Gbt::new(self.config.clone());
            model.load(bytes)?;
            groups.push(Group { name, series, model });
            body = rest;
        }
        self.levels = head.levels;
        self.groups = groups;
        Ok(())
    }

    fn card(&self) -> Option<serde_json::Value> {
        let groups: Vec<serde_json::Value> = self
            .groups
            .iter()
            .map(|g| serde_json::json!({ "group": g.name, "series": g.series, "card": g.model.card() }))
            .collect();
        Some(serde_json::json!({ "per": self.levels, "groups": groups }))
    }

    fn reads_calendar(&self) -> bool {
        true
    }

    fn needs_covariates(&self) -> bool {
        // The attribute's values are read from the covariates' static attributes.
        self.config.covariates || self.levels.per != "location"
    }
}

#[cfg(test)]
mod tests {
    use super::super::Target;
    use super::super::tests::{mae, naive_mae, panel};
    use super::*;

    fn model(horizon: usize, per: &str, min_series: usize, from_series: usize) -> PerLevel {
        let config = GbtConfig { trees: 60, target: Target::Ratio, ..GbtConfig::new(horizon, 7) };
        PerLevel::new(config, Levels { per: per.to_string(), min_series, from_series })
    }

    fn groups(m: &PerLevel) -> Vec<(String, usize)> {
        m.groups.iter().map(|g| (g.name.clone(), g.series)).collect()
    }

    /// Three locations of eight series: a model each, which learns, stores and reloads; a series
    /// at a location not seen is forecast by the largest group; small groups are pooled.
    #[test]
    fn fits_a_model_per_location_and_pools_the_small_groups() {
        let horizon = 14;
        let (panel, actuals) = panel(24, 300, horizon);
        let levels = [0.1, 0.5, 0.9];
        let mut m = model(horizon, "location", 8, 0);
        m.fit(&panel).unwrap();
        let named = |n: &str| (n.to_string(), 8);
        assert_eq!(groups(&m), vec![named("l0"), named("l1"), named("l2")]);
        assert_eq!(m.card().unwrap()["groups"].as_array().unwrap().len(), 3);
        let forecast = m.predict(&panel, horizon, &levels).unwrap();
        let naive = naive_mae(&panel, &actuals);
        let ours = mae(&forecast, &actuals);
        assert!(ours < 0.7 * naive, "per location MAE {ours:.3} against seasonal naive's {naive:.3}");
        let mut restored = model(1, "location", 1, 0);
        restored.load(&m.save().unwrap()).unwrap();
        assert_eq!(restored.predict(&panel, horizon, &levels).unwrap(), forecast);

        // A warm refit carries each group's choices from the stored group of the same name.
        let mut warm = model(horizon, "location", 8, 0);
        assert!(matches!(warm.fit_warm(&panel, &m.save().unwrap(), 4).unwrap(), Warm::Continued(_)));
        let card = warm.card().unwrap();
        assert!(card["groups"].as_array().unwrap().iter().all(|g| g["card"]["choices_carried"] == true), "{card}");

        // Series 0 moved to a location not seen: the largest group (the last of equals) has it.
        let mut moved = panel.clone();
        moved.keys[0].location_id = "new".into();
        let unseen = m.predict(&moved, horizon, &levels).unwrap();
        moved.keys[0].location_id = "l2".into();
        let in_l2 = m.predict(&moved, horizon, &levels).unwrap();
        assert_eq!(unseen.mean[..horizon], in_l2.mean[..horizon]);
        assert_ne!(unseen.mean[..horizon], forecast.mean[..horizon], "another group's trees");

        // Groups under the least size are pooled; a panel under `from-series` is not split.
        let mut pooled = model(horizon, "location", 9, 0);
        pooled.fit(&panel).unwrap();
        assert_eq!(groups(&pooled), vec![(POOLED.to_string(), 24)]);
        let mut small = model(horizon, "location", 8, 25);
        small.fit(&panel).unwrap();
        assert_eq!(groups(&small), vec![(POOLED.to_string(), 24)]);
        // A single model's stored state loads and forecasts every series.
        let mut single = Gbt::new(small.config.clone());
        single.fit(&panel).unwrap();
        let mut from_single = model(horizon, "location", 8, 0);
        from_single.load(&single.save().unwrap()).unwrap();
        assert_eq!(
            from_single.predict(&panel, horizon, &levels).unwrap(),
            single.predict(&panel, horizon, &levels).unwrap()
        );
    }

    #[test]
    fn an_attribute_the_series_lack_is_a_clear_error() {
        let (panel, _) = panel(6, 60, 7);
        let mut m = model(7, "colour", 1, 0);
        let err = m.fit(&panel).unwrap_err().to_string();
        assert!(err.contains("`per = \"colour\"`") && err.contains("category"), "{err}");
    }
}
