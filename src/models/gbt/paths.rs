//! The steps ahead from one origin per series, the two ways the trees can forecast them, and
//! their average.
//!
//! - **Direct**: every step read from the origin with its step number, as the trees were trained.
//! - **Recursive**: step 1 only, each forecast fed back as history for the next origin, so the
//!   lags, trailing means and scale of later steps read the forecasts before them (the M5
//!   winners averaged recursive and direct models).
//! - **Average**: the mean of the two.
//!
//! The model forecasts from each series' end. With [`Strategy::Auto`] the same code forecasts
//! the last `horizon` periods with the trees fitted without them, and the strategy with the
//! lowest error there is kept.

use forust_ml::{GradientBooster, Matrix};
use serde::{Deserialize, Serialize};

use super::Target;
use super::features::{self, Categories, Layout, Origin};
use crate::panel::Panel;

/// How the steps ahead are forecast.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Whichever of the three has the lowest error on the held-out periods.
    Auto,
    /// Each step from the origin.
    #[default]
    Direct,
    /// Step 1 repeatedly, each forecast fed back.
    Recursive,
    /// The mean of the direct and the recursive forecasts.
    Average,
}

impl Strategy {
    /// The name in settings and cards.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Auto => "auto",
            Strategy::Direct => "direct",
            Strategy::Recursive => "recursive",
            Strategy::Average => "average",
        }
    }

    /// The strategies `auto` chooses from, the default first (it wins ties).
    pub const CHOICES: [Strategy; 3] = [Strategy::Direct, Strategy::Recursive, Strategy::Average];
}

/// Fitted trees: one ensemble per part of the target, each part's predictions mapped back to the
/// scaled value, then averaged.
pub(super) struct Trees<'a> {
    pub parts: Vec<(&'a GradientBooster, Target)>,
    pub parallel: bool,
}

impl Trees<'_> {
    /// Scaled-value predictions of rows laid out row-major, `width` columns each.
    pub fn predict(&self, rows: &[f64], width: usize) -> Vec<f64> {
        let n = rows.len() / width.max(1);
        if n == 0 || self.parts.is_empty() {
            return vec![0.0; n];
        }
        let mut columns = Vec::with_capacity(rows.len());
        for c in 0..width {
            columns.extend((0..n).map(|r| rows[r * width + c]));
        }
        let matrix = Matrix::new(&columns, n, width);
        let mut out = vec![0.0; n];
        for (booster, target) in &self.parts {
            for (o, p) in out.iter_mut().zip(booster.predict(&matrix, self.parallel)) {
                *o += target.back(p);
            }
        }
        let k = self.parts.len() as f64;
        out.iter_mut().for_each(|o| *o /= k);
        out
    }
}

/// Where the forecasts start and what their rows read.
pub(super) struct Origins<'a> {
    pub layout: &'a Layout,
    pub panel: &'a Panel,
    pub cats: &'a Categories,
    /// The series forecast (indices into the panel); each needs more than `cut + 1` values.
    pub series: &'a [usize],
    /// Periods left out at the end of each series: the origin is the value before them.
    pub cut: usize,
    /// Steps the trees were trained for; the direct forecast of a later step reuses the last.
    pub trained: usize,
}

/// Forecasts of the series of [`Origins`], in their order: per series, the scale at the origin
/// and the forecast of each step divided by it.
#[derive(Clone)]
pub(super) struct Paths {
    pub scale: Vec<f64>,
    pub steps: Vec<Vec<f64>>,
}

impl Origins<'_> {
    fn origin(&self, s: usize) -> usize {
        self.panel.values[s].len() - 1 - self.cut
    }

    fn scales(&self) -> Vec<f64> {
        self.series
            .iter()
            .map(|&s| features::scale(&self.panel.values[s], self.origin(s), self.layout.scale_window))
            .collect()
    }

    /// Every step read from the origin.
    pub fn direct(&self, trees: &Trees, horizon: usize) -> Paths {
        let width = self.layout.width();
        let scale = self.scales();
        let mut data = Vec::with_capacity(self.series.len() * horizon * width);
        let mut row = Vec::with_capacity(width);
        for (&s, &sc) in self.series.iter().zip(&scale) {
            let y = &self.panel.values[s];
            for h in 1..=horizon {
                let step = h.min(self.trained);
                let at = Origin::observed(s, y.len(), self.origin(s));
                features::row(self.layout, self.panel, self.cats, y, at, step, sc, &mut row);
                data.extend_from_slice(&row);
            }
        }
        let predicted = trees.predict(&data, width);
        let steps = predicted.chunks(horizon.max(1)).map(<[f64]>::to_vec).collect();
        Paths { scale, steps }
    }

    /// Step 1 from the origin, then from each forecast in turn.
    pub fn recursive(&self, trees: &Trees, horizon: usize) -> Paths {
        let width = self.layout.width();
        let scale = self.scales();
        let mut history: Vec<Vec<f32>> = self
            .series
            .iter()
            .map(|&s| {
                let mut y = self.panel.values[s][..=self.origin(s)].to_vec();
                y.reserve(horizon);
                y
            })
            .collect();
        let mut steps = vec![Vec::with_capacity(horizon); self.series.len()];
        let mut data = Vec::with_capacity(self.series.len() * width);
        let mut row = Vec::with_capacity(width);
        let mut scales = Vec::with_capacity(self.series.len());
        for _ in 0..horizon {
            data.clear();
            scales.clear();
            for (&s, y) in self.series.iter().zip(&history) {
                let o = y.len() - 1;
                let sc = features::scale(y, o, self.layout.scale_window);
                // The user's observed covariates stay as they were at the real origin.
                let at = Origin { s, n: self.panel.values[s].len(), o, seen: self.origin(s) };
                features::row(self.layout, self.panel, self.cats, y, at, 1, sc, &mut row);
                data.extend_from_slice(&row);
                scales.push(sc);
            }
            let predicted = trees.predict(&data, width);
            for (i, p) in predicted.into_iter().enumerate() {
                // Demand fed back as the forecast published would be: never negative.
                let value = (p * scales[i]).max(0.0);
                history[i].push(value as f32);
                steps[i].push(value / scale[i]);
            }
        }
        Paths { scale, steps }
    }

    /// The forecast of a strategy (`Auto` reads as direct).
    pub fn forecast(&self, strategy: Strategy, trees: &Trees, horizon: usize) -> Paths {
        match strategy {
            Strategy::Auto | Strategy::Direct => self.direct(trees, horizon),
            Strategy::Recursive => self.recursive(trees, horizon),
            Strategy::Average => average(self.direct(trees, horizon), &self.recursive(trees, horizon)),
        }
    }
}

/// The mean of two forecasts of the same origins.
pub(super) fn average(mut a: Paths, b: &Paths) -> Paths {
    for (x, y) in a.steps.iter_mut().zip(&b.steps) {
        for (p, q) in x.iter_mut().zip(y) {
            *p = 0.5 * (*p + q);
        }
    }
    a
}
