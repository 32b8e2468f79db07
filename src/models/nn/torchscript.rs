//! A user-supplied forecaster exported as TorchScript (`torch.jit.trace` / `torch.jit.script`),
//! run through libtorch's `CModule`. The nightly job reads it from the lake at
//! `models/torchscript/<torchscript-file>` (setting `torchscript-file`, default `forecaster.pt`).
//!
//! # Convention
//!
//! The module's `forward(history, known)` is called with, for a batch of `B` series:
//!
//! - `history`: `[B, L]` float32, each series' last `L` periods (oldest first) divided by its scale
//!   ν, left-padded with zeros for series shorter than `L`; ν is the mean absolute value of those
//!   `L` periods (of the whole history when they are all zero), floored at 1;
//! - `known`: `[B, H, K]` float32, per horizon step: 11 date features of the period's first day
//!   (day of week one-hot Monday…Sunday, then sin and cos of 2π·d/365.25 and of 4π·d/365.25 with
//!   `d` the 0-based day of the year), followed by the panel's known covariates when it has them
//!   (in the order of [`crate::panel::Covariates::known_names`]).
//!
//! It returns `[B, H', Q]` float32 with `H' ≥ H`: the quantiles at the model's `Q` levels
//! (ascending; the configured `quantiles` by default), in the scaled units. shelfcast multiplies
//! them by ν, interpolates other requested levels, takes the median as the mean, and forecasts
//! zero for series that never sold. `fit` learns nothing: the module is already trained.

use serde::{Deserialize, Serialize};
use tch::{CModule, Device, Tensor};

use super::data::{DATE_FEATURES, date_features};
use super::interpolate_level;
use crate::error::{Error, Result};
use crate::models::{FitReport, Forecast, Forecaster};
use crate::panel::Panel;

const MAGIC: &[u8] = b"SHELFCAST-TS 1\n";

/// What the saved state holds besides the module.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TorchScriptCard {
    /// History periods passed (`L`).
    pub window: usize,
    /// Quantile levels the module returns, ascending.
    pub levels: Vec<f64>,
}

/// The `torchscript` model.
#[derive(Debug)]
pub struct TorchScript {
    card: TorchScriptCard,
    module: Option<(CModule, Vec<u8>)>,
}

impl TorchScript {
    /// A model without a module yet, passing `window` periods and expecting `levels`.
    pub fn new(window: usize, levels: &[f64]) -> Self {
        let mut levels = levels.to_vec();
        levels.sort_by(f64::total_cmp);
        Self { card: TorchScriptCard { window: window.max(1), levels }, module: None }
    }

    /// A model running the TorchScript module serialised in `bytes`.
    pub fn from_module(bytes: &[u8], window: usize, levels: &[f64]) -> Result<Self> {
        let mut m = Self::new(window, levels);
        m.set_module(bytes)?;
        Ok(m)
    }

    /// Replaces the module by the one serialised in `bytes`.
    pub fn set_module(&mut self, bytes: &[u8]) -> Result<()> {
        let mut module = CModule::load_data_on_device(&mut &bytes[..], super::device())?;
        module.f_set_eval()?;
        self.module = Some((module, bytes.to_vec()));
        Ok(())
    }

    fn module(&self) -> Result<&CModule> {
        self.module.as_ref().map(|m| &m.0).ok_or_else(|| {
            Error::data("torchscript: no module loaded (put one in the lake at models/torchscript/<torchscript-file>)")
        })
    }
}

impl Forecaster for TorchScript {
    fn name(&self) -> &str {
        "torchscript"
    }

    fn fit(&mut self, panel: &Panel) -> Result<FitReport> {
        self.module()?;
        Ok(FitReport::new(self.name(), panel))
    }

    fn predict(&self, panel: &Panel, horizon: usize, levels: &[f64]) -> Result<Forecast> {
        let module = self.module()?;
        let (l, nq) = (self.card.window, self.card.levels.len());
        let cov = panel.covariates.as_deref();
        let k = DATE_FEATURES + cov.map_or(0, |c| c.known_dim());
        let mut out = Forecast::zeros(self.name(), panel.len(), horizon, levels);
        let mut qs = vec![0f32; levels.len()];
        let series: Vec<usize> = (0..panel.len()).collect();
        for chunk in series.chunks(1024) {
            let mut history = vec![0f32; chunk.len() * l];
            let mut known = Vec::with_capacity(chunk.len() * horizon * k);
            let mut scales = Vec::with_capacity(chunk.len());
            for (r, &s) in chunk.iter().enumerate() {
                let y = &panel.values[s];
                let take = y.len().min(l);
                let mean = |v: &[f32]| {
                    if v.is_empty() { 0.0 } else { v.iter().map(|x| x.abs()).sum::<f32>() / v.len() as f32 }
                };
                let mut m = mean(&y[y.len() - take..]);
                if m == 0.0 {
                    m = mean(y);
                }
                scales.push((m > 0.0).then_some(m.max(1.0)));
                let nu = m.max(1.0);
                for (dst, v) in history[(r + 1) * l - take..(r + 1) * l].iter_mut().zip(&y[y.len() - take..]) {
                    *dst = v / nu;
                }
                for h in 0..horizon {
                    date_features(panel.calendar(panel.target_date(h + 1)), &mut known);
                    if let Some(c) = cov {
                        c.known_at(s, c.index(y.len(), (y.len() + h) as isize), &mut known);
                    }
                }
            }
            let b = chunk.len() as i64;
            let device = super::device();
            let history = Tensor::from_slice(&history).view([b, l as i64]).to_device(device);
            let known = Tensor::from_slice(&known).view([b, horizon as i64, k as i64]).to_device(device);
            let result = tch::no_grad(|| module.forward_ts(&[history, known]))?;
            let size = result.size();
            if size.len() != 3 || size[0] != b || size[1] < horizon as i64 || size[2] != nq as i64 {
                return Err(Error::data(format!(
                    "torchscript: the module returned shape {size:?}, expected [{b}, ≥{horizon}, {nq}] (batch, horizon, quantile levels)"
                )));
            }
            let values = Vec::<f32>::try_from(
                result.narrow(1, 0, horizon as i64).to_device(Device::Cpu).contiguous().view([-1]),
            )?;
            for (r, &s) in chunk.iter().enumerate() {
                let Some(nu) = scales[r] else { continue };
                for h in 0..horizon {
                    let at = (r * horizon + h) * nq;
                    let mut row = values[at..at + nq].to_vec();
                    row.sort_by(f32::total_cmp);
                    for (q, level) in qs.iter_mut().zip(levels) {
                        *q = interpolate_level(&self.card.levels, &row, *level) * nu;
                    }
                    let median = interpolate_level(&self.card.levels, &row, 0.5) * nu;
                    out.set(s, h, median, &mut qs);
                }
            }
        }
        Ok(out)
    }

    fn save(&self) -> Result<Vec<u8>> {
        let (_, bytes) =
            self.module.as_ref().ok_or_else(|| Error::data("torchscript: nothing to save without a module"))?;
        let card = serde_json::to_vec(&self.card)?;
        let mut out = Vec::with_capacity(MAGIC.len() + 8 + card.len() + bytes.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(card.len() as u64).to_le_bytes());
        out.extend_from_slice(&card);
        out.extend_from_slice(bytes);
        Ok(out)
    }

    fn load(&mut self, bytes: &[u8]) -> Result<()> {
        let bad = || Error::data("torchscript: not a saved torchscript model");
        let rest = bytes.strip_prefix(MAGIC).ok_or_else(bad)?;
        let (len, rest) = rest.split_at_checked(8).ok_or_else(bad)?;
        let len = u64::from_le_bytes(len.try_into().map_err(|_| bad())?) as usize;
        let (card, module) = rest.split_at_checked(len).ok_or_else(bad)?;
        self.card = serde_json::from_slice(card)?;
        self.set_module(module)
    }

    fn card(&self) -> Option<serde_json::Value> {
        serde_json::to_value(&self.card).ok()
    }

    fn reads_calendar(&self) -> bool {
        true
    }

    fn needs_covariates(&self) -> bool {
        true
    }
}
