//! The point forecast of a statistical baseline: its mean, its median, or a mix of the two, as a
//! held-out horizon chose, per demand class where a class has enough series.
//!
//! The baselines forecast a distribution: TSB and Croston a mixture of no demand and a demand
//! size, seasonal naive the value a season back plus the spread of its seasonal differences. Their
//! mean is what their smoothing estimates, yet MASE, WAPE and MAE are absolute errors, lowest at
//! the median of what follows, which for an intermittent count sits well below the mean (at 0
//! where demand comes less than one period in two). Which of the two misses by less is a property
//! of the data, so it is measured, not assumed.
//!
//! Fitting holds the last `horizon` periods out, fits the model on the rest and forecasts them.
//! Greedy selection over the two candidates (the learned ensemble's [`select`] with the model as
//! its one member) weighs them, for every series and per demand class with enough series; the
//! mean keeps all the weight unless another point beats it by [`select::MIN_GAIN_Z`] standard
//! errors, counted per series and per period. Then the model is fitted on everything. Only
//! [`Forecast::point`] changes: the mean column, which planning reads, and the quantiles stay the
//! model's own. With too little history to hold a horizon out the point is the mean.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use tracing::debug;

use super::ensemble::select::{self, Validation, Weights};
use super::framed;
use super::{FitReport, Forecast, Forecaster, card_with, ensemble, with_median};
use crate::error::Result;
use crate::panel::Panel;

/// Rounds of the greedy selection: the mix moves in tenths.
const ROUNDS: usize = 10;

/// Starts a stored state that carries the choice (older states are the model's own bytes).
const MAGIC: &[u8] = b"shelfcast-point-1\n";

/// What the held-out horizon chose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointChosen {
    /// Per demand class (and for every other series), the weight of the mean then of the median.
    pub weights: Weights,
    /// The held-out MASE of the mean alone, over every series.
    pub mean_error: Option<f64>,
    /// The held-out MASE of the median alone, over every series.
    pub median_error: Option<f64>,
    /// The held-out MASE of the chosen point: over every series (`all`) and per class with
    /// weights of its own.
    pub chosen_error: BTreeMap<String, f64>,
}

impl PointChosen {
    /// Whether the point is the mean everywhere.
    pub fn is_mean(&self) -> bool {
        !self.weights.weighs_medians(1)
    }
}

/// A model whose point forecast is chosen between its mean and its median on a held-out horizon.
#[derive(Debug)]
pub struct Pointed {
    inner: Box<dyn Forecaster>,
    horizon: usize,
    season: usize,
    chosen: Option<PointChosen>,
}

impl Pointed {
    /// Wraps `inner`, choosing on the last `horizon` periods (MASE-weighted with a seasonal
    /// naive scale of `season` periods, and demand classes read over two seasons, as the
    /// ensemble weighs its validation).
    pub fn new(inner: Box<dyn Forecaster>, horizon: usize, season: usize) -> Self {
        Self { inner, horizon: horizon.max(1), season: season.max(1), chosen: None }
    }

    /// The choice of the last fit (or load); `None`: no choice was possible, the point is the mean.
    pub fn chosen(&self) -> Option<&PointChosen> {
        self.chosen.as_ref()
    }

    /// The choice from forecasts of the panel without its last horizon.
    fn choose(&mut self, panel: &Panel) -> Result<Option<PointChosen>> {
        // The baselines read no covariates: cutting them too would copy their whole history.
        let (cut, index) = panel.cut_without_covariates(self.horizon);
        if cut.is_empty() {
            return Ok(None);
        }
        self.inner.fit(&cut)?;
        let forecast = self.inner.predict(&cut, self.horizon, &[0.5])?;
        let mut validation = Validation::new(1);
        validation.push(&cut, &index, panel, &[&forecast], self.horizon, self.season);
        let Some(chosen) = select::select(&validation, ROUNDS, true, true) else { return Ok(None) };
        Ok(Some(PointChosen {
            weights: chosen.weights,
            mean_error: validation.member_losses()[0],
            median_error: validation.member_median_losses()[0],
            chosen_error: chosen.losses,
        }))
    }
}

impl Forecaster for Pointed {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        self.chosen = match self.choose(panel) {
            Ok(chosen) => chosen,
            Err(e) => {
                debug!(model = self.inner.name(), error = %e, "point left the mean: the held-out fit failed");
                None
            }
        };
        if let Some(c) = &self.chosen {
            debug!(
                model = self.inner.name(),
                mean = c.mean_error,
                median = c.median_error,
                chosen = c.chosen_error.get("all"),
                median_weighed = !c.is_mean(),
                "point forecast chosen on the held-out horizon"
            );
        }
        self.inner.fit(panel)
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        let Some(chosen) = self.chosen.as_ref().filter(|c| !c.is_mean()) else {
            return self.inner.predict(panel, horizon, levels);
        };
        let asked = with_median(levels);
        let mid = asked.iter().position(|l| (l - 0.5).abs() < 1e-9).unwrap_or(0);
        let f = self.inner.predict(panel, horizon, &asked)?;
        let classes = ensemble::classes(panel, &chosen.weights, self.season);
        let mut point = vec![0.0f32; f.series() * horizon];
        for s in 0..f.series() {
            let w = classes.as_ref().map_or(chosen.weights.global.as_slice(), |c| chosen.weights.of(c[s]));
            let (on_mean, on_median) = (w.first().copied().unwrap_or(1.0), w.get(1).copied().unwrap_or(0.0));
            for h in 0..horizon {
                let p = on_mean * f64::from(f.mean_at(s, h)) + on_median * f64::from(f.quantile_at(s, h, mid));
                point[s * horizon + h] = p.max(0.0) as f32;
            }
        }
        let mut out = f.at_levels(levels);
        out.point = point;
        Ok(out)
    }

    fn save(&self) -> Result<Vec<u8>> {
        Ok(framed::frame(MAGIC, &serde_json::to_vec(&self.chosen)?, &self.inner.save()?))
    }

    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        match framed::wrapped(MAGIC, bytes, self.inner.name(), "point choice")? {
            Some((head, inner)) => {
                self.chosen = serde_json::from_slice(head)?;
                self.inner.load(inner)
            }
            // A state stored before the choice: the point is the mean.
            None => {
                self.chosen = None;
                self.inner.load(bytes)
            }
        }
    }

    fn card(&self) -> Option<serde_json::Value> {
        let point = serde_json::json!({
            "method": "the mean, the median or a mix in tenths, chosen per demand class on the last horizon held out",
            "chosen": self.chosen,
        });
        Some(card_with(self.inner.card(), "point", point))
    }

    fn needs_covariates(&self) -> bool {
        self.inner.needs_covariates()
    }

    fn reads_calendar(&self) -> bool {
        self.inner.reads_calendar()
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::models::baseline::{SeasonalNaive, Tsb};
    use crate::panel::SeriesKey;
    use crate::period::Frequency;

    /// `series` series of `n` days from `value(rng, day)`, seeded.
    fn panel(series: usize, n: usize, seed: u64, value: impl Fn(&mut ChaCha8Rng, usize) -> f32) -> Panel {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let keys = (0..series).map(|i| SeriesKey { item_id: format!("i{i}"), location_id: "s".into() }).collect();
        let values = (0..series).map(|_| (0..n).map(|t| value(&mut rng, t)).collect()).collect();
        Panel::new(keys, values, NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(), Frequency::Daily)
    }

    /// Sales on about one day in three, of 8 to 12 units.
    fn sparse(rng: &mut ChaCha8Rng, _: usize) -> f32 {
        if rng.random::<f64>() < 0.3 { rng.random_range(8..=12) as f32 } else { 0.0 }
    }

    /// Mean absolute error of `point(s, h)` over the `h` periods after `history`.
    fn mae(full: &Panel, history: &Panel, h: usize, point: impl Fn(usize, usize) -> f32) -> f64 {
        let mut total = 0.0;
        for s in 0..history.len() {
            let from = history.values[s].len();
            total += (0..h).map(|k| (full.values[s][from + k] - point(s, k)).abs() as f64).sum::<f64>();
        }
        total / (history.len() * h) as f64
    }

    #[test]
    fn an_intermittent_series_point_is_its_median_where_the_held_out_horizon_finds_it_misses_by_less() {
        let (h, levels) = (14, [0.1, 0.5, 0.9]);
        let full = panel(60, 200, 11, sparse);
        let (history, _) = full.cut(h);
        let mut model = Pointed::new(Box::new(Tsb::new(0.1, 0.1)), h, 7);
        model.fit(&history).unwrap();
        let chosen = model.chosen().expect("a choice");
        assert!(!chosen.is_mean(), "{chosen:?}");
        assert!(chosen.median_error < chosen.mean_error, "{chosen:?}");
        let f = model.predict(&history, h, &levels).unwrap();
        // The mean and the quantiles are TSB's own; only the point moves.
        let mut bare = Tsb::new(0.1, 0.1);
        bare.fit(&history).unwrap();
        let own = bare.predict(&history, h, &levels).unwrap();
        assert_eq!((&f.mean, &f.quantiles, &f.levels), (&own.mean, &own.quantiles, &own.levels));
        // On the periods after the cutoff, which the choice never saw, the point misses by less.
        let (point, mean) =
            (mae(&full, &history, h, |s, k| f.point_at(s, k)), mae(&full, &history, h, |s, k| f.mean_at(s, k)));
        assert!(point < 0.9 * mean, "point MAE {point:.3} against the mean's {mean:.3}");
        let card = model.card().unwrap();
        assert!(card["point"]["chosen"]["weights"]["global"].is_array(), "{card}");
    }

    #[test]
    fn where_the_median_gains_nothing_clear_the_point_stays_the_mean() {
        // A weekly pattern with symmetric noise: seasonal naive's median is its mean give or take
        // the noise of one horizon.
        let (h, levels) = (14, [0.1, 0.5, 0.9]);
        let weekly = |rng: &mut ChaCha8Rng, t: usize| {
            50.0 + [0.0, 4.0, 8.0, 6.0, 2.0, -3.0, -5.0][t % 7] + rng.random_range(-3.0..3.0)
        };
        let full = panel(40, 150, 5, weekly);
        let (history, _) = full.cut(h);
        let mut model = Pointed::new(Box::new(SeasonalNaive::new(7)), h, 7);
        model.fit(&history).unwrap();
        assert!(model.chosen().is_some_and(PointChosen::is_mean), "{:?}", model.chosen());
        let mut bare = SeasonalNaive::new(7);
        bare.fit(&history).unwrap();
        let f = model.predict(&history, h, &levels).unwrap();
        assert_eq!(f, bare.predict(&history, h, &levels).unwrap());
        assert!(f.point.is_empty());
    }

    #[test]
    fn a_stored_choice_forecasts_the_same_and_older_or_short_states_are_handled() {
        let (h, levels) = (14, [0.1, 0.9]);
        let full = panel(40, 150, 3, sparse);
        let mut model = Pointed::new(Box::new(Tsb::new(0.1, 0.1)), h, 7);
        model.fit(&full).unwrap();
        let first = model.predict(&full, h, &levels).unwrap();
        assert!(!first.point.is_empty() && first.levels == levels, "the median asked for the point is not returned");
        let mut restored = Pointed::new(Box::new(Tsb::new(0.1, 0.1)), h, 7);
        restored.load(&model.save().unwrap()).unwrap();
        assert_eq!(restored.chosen(), model.chosen());
        assert_eq!(restored.predict(&full, h, &levels).unwrap(), first);
        // A state the bare model saved (before the choice existed) loads with the mean as its point.
        let mut bare = Tsb::new(0.1, 0.1);
        bare.fit(&full).unwrap();
        let mut old = Pointed::new(Box::new(Tsb::new(0.1, 0.1)), h, 7);
        old.load(&bare.save().unwrap()).unwrap();
        assert!(old.chosen().is_none());
        assert_eq!(old.predict(&full, h, &levels).unwrap(), bare.predict(&full, h, &levels).unwrap());
        // A cut-short state is a clear error.
        let bytes = model.save().unwrap();
        let err = restored.load(&bytes[..MAGIC.len() + 4]).unwrap_err().to_string();
        assert!(err.contains("cut short"), "{err}");
        // Too short a history to hold a horizon out: the mean.
        let short = panel(3, 10, 1, sparse);
        let mut model = Pointed::new(Box::new(Tsb::new(0.1, 0.1)), h, 7);
        model.fit(&short).unwrap();
        assert!(model.chosen().is_none());
        assert!(model.predict(&short, 3, &levels).unwrap().point.is_empty());
    }
}
