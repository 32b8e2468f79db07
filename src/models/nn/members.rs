//! Several networks of one deep model, trained alike from different seeds, forecasting as one: a
//! deep ensemble (Lakshminarayanan et al., 2017).
//!
//! One fit of a network on a few thousand series lands in one of many local optima, and two
//! seeds' forecasts of the same window differ by about as much as any training setting moves
//! them. Averaging the networks keeps what they agree on and cancels part of what each got by
//! chance. Member `m` is seeded `seed + m` (initial weights, dropout, the windows it draws), so
//! member 0 is the single network `members = 1` trains. The forecast's mean is the members'
//! means averaged; each quantile is the members' quantiles at that level averaged (each member's
//! sorted first: quantile averaging, which keeps the levels in order).

use tch::{Kind, Tensor, nn};

use super::data::{Batch, Windows};
use super::train::{Net, NnConfig, PointLoss, loss_of, point_mean};
use crate::error::Result;

/// One network of a deep model and the store of its weights.
#[derive(Debug)]
pub struct Member {
    /// Its variables.
    pub vs: nn::VarStore,
    /// The network reading them.
    pub net: Box<dyn Net>,
}

/// The members' forecast of a batch, in the scaled space.
#[derive(Debug)]
pub struct Output {
    /// `[B, H]`: the mean.
    pub mean: Tensor,
    /// `[B, H, Q]`: one value per trained level, in increasing order.
    pub quantiles: Tensor,
}

/// The members' averaged forecast of `batch` (no gradient).
pub fn forward(members: &[Member], batch: &Batch, point: PointLoss, levels: usize) -> Output {
    tch::no_grad(|| {
        let outs: Vec<Output> = members
            .iter()
            .map(|m| {
                let raw = m.net.forward(batch, false);
                let (sorted, _) = raw.narrow(2, 1, levels as i64).sort(2, false);
                Output { mean: point_mean(&raw.select(2, 0), point), quantiles: sorted }
            })
            .collect();
        if outs.len() == 1 {
            return outs.into_iter().next().expect("one member");
        }
        let mean = Tensor::stack(&outs.iter().map(|o| &o.mean).collect::<Vec<_>>(), 0).mean_dim(0, false, Kind::Float);
        let quantiles =
            Tensor::stack(&outs.iter().map(|o| &o.quantiles).collect::<Vec<_>>(), 0).mean_dim(0, false, Kind::Float);
        Output { mean, quantiles }
    })
}

/// The mean loss of the members' averaged forecast over the `validation` samples (`None`
/// without any): what the members score together, to set against each one's.
pub fn validation_loss(
    members: &[Member],
    windows: &Windows,
    validation: &[(usize, usize)],
    cfg: &NnConfig,
) -> Result<Option<f64>> {
    let Some(first) = members.first() else { return Ok(None) };
    if validation.is_empty() {
        return Ok(None);
    }
    let device = first.vs.device();
    let levels = cfg.levels(device);
    let mut sum = 0.0;
    for chunk in validation.chunks(cfg.batch_size.max(1) * 4) {
        let batch = windows.batch(chunk, cfg.horizon, device);
        let out = forward(members, &batch, cfg.point_loss, cfg.quantiles.len());
        let per = tch::no_grad(|| loss_of(&out.mean, &out.quantiles, &batch.target, &levels, cfg));
        sum += f64::try_from(per.sum(Kind::Float))?;
    }
    Ok(Some(sum / validation.len() as f64))
}

/// The name member `m`'s variable `name` is saved under: member 0's as it is (so models saved
/// before members existed load as one), the others' behind their number.
pub fn saved_name(m: usize, name: &str) -> String {
    if m == 0 { name.to_string() } else { format!("member{m}/{name}") }
}

impl NnConfig {
    /// The members a fit trains (at least one).
    pub fn member_count(&self) -> usize {
        self.members.max(1)
    }

    /// Member `m`'s configuration: this one, seeded `seed + m`.
    pub fn member(&self, m: usize) -> NnConfig {
        NnConfig { seed: self.seed.wrapping_add(m as u64), ..self.clone() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A network that forecasts fixed outputs.
    #[derive(Debug)]
    struct Fixed(Vec<f32>);

    impl Net for Fixed {
        fn forward(&self, batch: &Batch, _: bool) -> Tensor {
            let b = batch.target.size()[0];
            Tensor::from_slice(&self.0).view([1, 1, -1]).repeat([b, 1, 1])
        }
    }

    fn batch() -> Batch {
        let cpu = tch::Device::Cpu;
        Batch {
            encoder: Tensor::zeros([1, 1, 1], (Kind::Float, cpu)),
            decoder: Tensor::zeros([1, 1, 1], (Kind::Float, cpu)),
            statics: Tensor::zeros([1, 0], (Kind::Int64, cpu)),
            target: Tensor::zeros([1, 1], (Kind::Float, cpu)),
            weight: Tensor::ones([1], (Kind::Float, cpu)),
            scale: vec![1.0],
            no_demand: vec![false],
        }
    }

    fn member(out: &[f32]) -> Member {
        Member { vs: nn::VarStore::new(tch::Device::Cpu), net: Box::new(Fixed(out.to_vec())) }
    }

    #[test]
    fn members_average_their_means_and_their_sorted_quantiles() {
        // Raw means 1 and 3 (squared error: the mean is the raw output); the second member's
        // quantiles come out of order and are sorted before the average.
        let members = [member(&[1.0, 0.0, 2.0, 4.0]), member(&[3.0, 6.0, 2.0, 4.0])];
        let out = forward(&members, &batch(), PointLoss::Mse, 3);
        assert_eq!(Vec::<f32>::try_from(out.mean.view([-1])).unwrap(), vec![2.0]);
        assert_eq!(Vec::<f32>::try_from(out.quantiles.view([-1])).unwrap(), vec![1.0, 3.0, 5.0]);
        // One member forecasts as its network does.
        let one = forward(&members[..1], &batch(), PointLoss::Mse, 3);
        assert_eq!(Vec::<f32>::try_from(one.quantiles.view([-1])).unwrap(), vec![0.0, 2.0, 4.0]);
    }

    #[test]
    fn member_zero_keeps_the_seed_and_its_saved_names() {
        let cfg = NnConfig { members: 3, ..NnConfig::fast(7) };
        assert_eq!(cfg.member(0), cfg);
        assert_eq!(cfg.member(2).seed, cfg.seed + 2);
        assert_eq!((cfg.member_count(), NnConfig { members: 0, ..cfg }.member_count()), (3, 1));
        assert_eq!(saved_name(0, "enc.w"), "enc.w");
        assert_eq!(saved_name(2, "enc.w"), "member2/enc.w");
    }
}
