//! An exponential moving average of a network's weights while it trains (Polyak averaging;
//! Polyak & Juditsky, 1992), read for validation and kept as the fit's weights.
//!
//! A loss over windows of many series is noisy from batch to batch; the weights of one step carry
//! that noise into the forecast, where an average over the last few hundred steps does not (the
//! same argument as stochastic weight averaging, Izmailov et al., 2018). The average's half-life
//! is set in epochs, so it spans the same share of training whatever the panel's size; early on
//! the decay is held lower (`(1 + n) / (10 + n)` after `n` updates, as TensorFlow's moving
//! average does), so the first epochs are not pulled back to the initial weights.

use tch::{Tensor, nn};

/// The averaged copy of a var store's weights.
#[derive(Debug)]
pub struct Average {
    /// The live weights (shallow clones of the var store's).
    live: Vec<Tensor>,
    /// Their averages, in the same order.
    shadow: Vec<Tensor>,
    /// Decay per update once past the start.
    decay: f64,
    /// Updates so far.
    updates: usize,
}

impl Average {
    /// An average of `vs`'s weights whose half-life is `half_life` epochs of `steps` optimiser
    /// steps each; `None` for a half-life of 0 (no averaging).
    pub fn new(vs: &nn::VarStore, half_life: f64, steps: usize) -> Option<Self> {
        if half_life <= 0.0 {
            return None;
        }
        let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let live: Vec<Tensor> = vars.into_iter().map(|(_, v)| v).collect();
        let shadow = live.iter().map(|v| v.detach().copy()).collect();
        let decay = 0.5f64.powf(1.0 / (half_life * steps.max(1) as f64));
        Some(Self { live, shadow, decay, updates: 0 })
    }

    /// Moves the average towards the live weights after an optimiser step.
    pub fn update(&mut self) {
        let n = self.updates as f64;
        let decay = self.decay.min((1.0 + n) / (10.0 + n));
        self.updates += 1;
        tch::no_grad(|| {
            for (shadow, live) in self.shadow.iter_mut().zip(&self.live) {
                let _ = shadow.lerp_(live, 1.0 - decay);
            }
        });
    }

    /// Exchanges the live weights and the average: the network then forecasts with the
    /// average; a second call puts the live weights back.
    pub fn swap(&mut self) {
        tch::no_grad(|| {
            for (shadow, live) in self.shadow.iter_mut().zip(self.live.iter_mut()) {
                let held = live.detach().copy();
                live.copy_(shadow);
                shadow.copy_(&held);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn the_average_trails_the_weights_and_swaps_in_and_out() {
        let vs = nn::VarStore::new(Device::Cpu);
        let mut w = vs.root().zeros("w", &[2]);
        // No averaging without a half-life.
        assert!(Average::new(&vs, 0.0, 10).is_none());
        let mut avg = Average::new(&vs, 1.0, 10).unwrap();
        // The live weight climbs by 1 per step; the average lags behind it but moves.
        for step in 1..=40 {
            tch::no_grad(|| w.copy_(&Tensor::full([2], step as f64, (Kind::Float, Device::Cpu))));
            avg.update();
        }
        avg.swap();
        let averaged = f64::try_from(w.get(0)).unwrap();
        assert!(averaged > 20.0 && averaged < 39.0, "{averaged}");
        avg.swap();
        assert_eq!(f64::try_from(w.get(1)).unwrap(), 40.0);
    }
}
