//! Outputs anchored on the seasonal anchor: the network forecasts offsets from last season's
//! value moved to the current level, not the level itself.
//!
//! A network that forecasts the scaled level from scratch learns where it goes next from the
//! cut points training saw. With a year-long season and two or three years of history, training
//! holds each phase of the year about once with its seasonal lags: after the holiday quarter the
//! network carried January's trough forward (the recent weeks and last year's values agreed at
//! every phase it had seen, so it had no reason to prefer the lags). Anchoring puts the
//! seasonal naive forecast at the current level where an untrained network's output lands, so a
//! phase training barely saw starts from last year's shape, and what is learnt is the correction.
//!
//! With the anchor `a` of a decoder step (its `seasonal_anchor` input; 1, the encoder window's
//! level, where the series has no value a season back or sold nothing then), the outputs become
//! `mean = softplus(raw + w₀ · softplus⁻¹(a))` (Poisson, Tweedie) or `raw + w₀ · a` (squared
//! error), and `quantile_k = raw_k + w_k · a`. The weights `w` are learnt, from 1, so a set whose
//! seasons do not repeat can turn the anchor down.

use tch::{Tensor, nn};

use super::data::{Batch, Layout};
use super::train::PointLoss;

/// The smallest anchor read, so its softplus inverse stays finite.
const FLOOR: f64 = 0.05;

/// The anchoring of a network's outputs.
#[derive(Debug)]
pub struct Anchoring {
    /// The decoder column holding the seasonal anchor.
    column: i64,
    /// `[1 + Q]`: the anchor's weight in the mean and in each quantile.
    weight: Tensor,
    point: PointLoss,
}

impl Anchoring {
    /// The anchoring of a network built under `p` for `layout`, with `outputs` outputs per step
    /// (the mean and the quantiles); `None` when the layout is not anchored.
    pub fn new(p: &nn::Path, layout: &Layout, outputs: i64, point: PointLoss) -> Option<Self> {
        let column = layout.anchor_column().filter(|_| layout.anchored)? as i64;
        let weight = p.var("anchor_weight", &[outputs], nn::Init::Const(1.0));
        Some(Self { column, weight, point })
    }

    /// `out` (`[B, H, 1 + Q]`) moved by the anchor of each decoder step of `batch`.
    pub fn apply(&self, out: &Tensor, batch: &Batch) -> Tensor {
        let anchor = batch.decoder.select(2, self.column);
        let anchor = anchor.where_self(&anchor.gt(0.0), &anchor.ones_like()).clamp_min(FLOOR);
        let mean_base = match self.point.softplus() {
            // softplus⁻¹(a) = a + ln(1 − e^(−a)).
            true => &anchor + (-(-&anchor).exp()).log1p(),
            false => anchor.shallow_clone(),
        };
        let q = out.size()[2] - 1;
        let base = Tensor::cat(&[mean_base.unsqueeze(-1), anchor.unsqueeze(-1).expand([-1, -1, q], false)], 2);
        out + base * &self.weight
    }
}

/// A network's raw outputs `out` moved by its anchoring, when it has one.
pub fn apply(anchoring: Option<&Anchoring>, out: Tensor, batch: &Batch) -> Tensor {
    match anchoring {
        Some(a) => a.apply(&out, batch),
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, nn::VarStore};

    use super::*;
    use crate::models::nn::train::point_mean;

    fn layout() -> Layout {
        Layout { season: 52, anchor: true, anchored: true, ..Layout::plain(52, 3) }
    }

    /// A batch of one sample whose decoder holds `anchors` in the anchor's column.
    fn batch(layout: &Layout, anchors: &[f32]) -> Batch {
        let h = anchors.len() as i64;
        let dd = layout.decoder_dim();
        let mut dec = vec![0.0f32; anchors.len() * dd];
        let col = layout.anchor_column().unwrap();
        for (i, a) in anchors.iter().enumerate() {
            dec[i * dd + col] = *a;
        }
        Batch {
            encoder: Tensor::zeros([1, 1, layout.encoder_dim() as i64], (Kind::Float, Device::Cpu)),
            decoder: Tensor::from_slice(&dec).view([1, h, dd as i64]),
            statics: Tensor::zeros([1, 2], (Kind::Int64, Device::Cpu)),
            target: Tensor::zeros([1, h], (Kind::Float, Device::Cpu)),
            weight: Tensor::ones([1], (Kind::Float, Device::Cpu)),
            scale: vec![1.0],
            no_demand: vec![false],
        }
    }

    #[test]
    fn a_zero_output_forecasts_the_anchor_and_the_level_where_there_is_none() {
        let layout = layout();
        let vs = VarStore::new(Device::Cpu);
        let anchoring = Anchoring::new(&vs.root(), &layout, 3, PointLoss::Poisson).unwrap();
        let b = batch(&layout, &[1.5, 0.4, 0.0]);
        let out = anchoring.apply(&Tensor::zeros([1, 3, 3], (Kind::Float, Device::Cpu)), &b);
        let mean = Vec::<f32>::try_from(point_mean(&out.select(2, 0), PointLoss::Poisson).view([-1])).unwrap();
        // The third step has no anchor: the encoder window's level, 1.
        for (m, want) in mean.iter().zip([1.5, 0.4, 1.0]) {
            assert!((m - want).abs() < 1e-4, "{mean:?}");
        }
        let q = Vec::<f32>::try_from(out.select(2, 2).view([-1])).unwrap();
        assert_eq!(q, [1.5, 0.4, 1.0]);
        // Squared error adds the anchor as it is.
        let vs = VarStore::new(Device::Cpu);
        let mse = Anchoring::new(&vs.root(), &layout, 3, PointLoss::Mse).unwrap();
        let out = mse.apply(&Tensor::ones([1, 3, 3], (Kind::Float, Device::Cpu)), &b);
        assert_eq!(Vec::<f32>::try_from(out.select(2, 0).view([-1])).unwrap(), [2.5, 1.4, 2.0]);
    }

    #[test]
    fn only_an_anchored_layout_with_an_anchor_is_anchored() {
        let on = layout();
        assert!(Anchoring::new(&VarStore::new(Device::Cpu).root(), &on, 3, PointLoss::Poisson).is_some());
        for off in [Layout { anchored: false, ..on }, Layout { anchor: false, ..on }] {
            assert!(Anchoring::new(&VarStore::new(Device::Cpu).root(), &off, 3, PointLoss::Poisson).is_none());
        }
    }
}
