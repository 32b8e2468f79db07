//! Boosting under the Tweedie deviance with a log link: the count objective of the M5 winners'
//! trees. The forecast is `exp(score)`, a mean that is never negative, and the deviance weighs an
//! error by the size of the value expected (variance `mean^power`), so a point mass at zero and
//! rare large values, common in daily item sales, pull the trees less than under squared loss.
//! `power = 1` is the Poisson deviance; between 1 and 2, a compound Poisson–gamma.
//!
//! `forust-ml` fits squared and logistic losses only; its trees take any gradient and hessian, so
//! this is the boosting loop with the deviance's: the trees are grown by `forust_ml::tree::Tree`
//! on the booster's own binning and splitter settings and kept in a `GradientBooster`, whose
//! prediction (base score plus the trees) is the score stored and read like any other.

use forust_ml::binning::bin_matrix;
use forust_ml::constraints::ConstraintMap;
use forust_ml::sampler::SampleMethod;
use forust_ml::splitter::MissingImputerSplitter;
use forust_ml::tree::Tree;
use forust_ml::{GradientBooster, Matrix};
use rand::seq::index;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// The largest step a leaf takes on the log scale per tree (XGBoost's default for Poisson): with
/// a small expected value the hessian is small and an unbounded Newton step would overshoot.
const MAX_DELTA_STEP: f32 = 0.7;

/// Scores are clamped here before `exp`, so a stray leaf cannot overflow a forecast.
pub const MAX_SCORE: f64 = 30.0;

/// The mean a score stands for.
pub fn mean(score: f64) -> f64 {
    score.min(MAX_SCORE).exp()
}

/// Rows the deviance is watched on while trees are added: growing stops once it has not fallen
/// for `stop_after` trees (the booster keeps every tree grown).
pub struct Watch<'a> {
    /// The watched rows' columns.
    pub data: &'a Matrix<'a, f64>,
    /// Their values (non-negative).
    pub y: &'a [f64],
    /// Their weights.
    pub weight: &'a [f64],
    /// Trees grown past the lowest deviance before growing stops.
    pub stop_after: usize,
}

/// Fits `booster`'s number of trees, with its depth, learning rate, regularisation, least leaf
/// weight (a hessian sum, as in `forust-ml`), bins, threads, and its column and row sampling
/// (`colsample_bytree`, and `subsample` when its sample method is random; drawn from its seed),
/// to non-negative targets `y` with weights `weight` under the Tweedie deviance of `power` (in
/// `[1, 2)`).
/// With `watch`, growing stops early on the deviance of the watched rows.
pub fn fit(
    mut booster: GradientBooster,
    data: &Matrix<f64>,
    y: &[f64],
    weight: &[f64],
    power: f64,
    watch: Option<Watch<'_>>,
) -> Result<GradientBooster> {
    if !(1.0..2.0).contains(&power) {
        return Err(Error::data(format!("gbt: the Tweedie power must be in [1, 2), got {power}")));
    }
    if y.iter().any(|v| !v.is_finite() || *v < 0.0) {
        return Err(Error::data("gbt: the Tweedie objective needs non-negative finite targets"));
    }
    let parallel = booster.parallel;
    let pool = match booster.num_threads {
        Some(n) if parallel && n > 1 => Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .map_err(|e| Error::data(format!("gbt: cannot start the tree threads: {e}")))?,
        ),
        _ => None,
    };
    let run = |booster: &mut GradientBooster| grow(booster, data, y, weight, power, watch.as_ref());
    match pool {
        Some(pool) => pool.install(|| run(&mut booster))?,
        None => run(&mut booster)?,
    }
    Ok(booster)
}

fn grow(
    booster: &mut GradientBooster,
    data: &Matrix<f64>,
    y: &[f64],
    weight: &[f64],
    power: f64,
    watch: Option<&Watch<'_>>,
) -> Result<()> {
    let total: f64 = weight.iter().sum();
    let weighted: f64 = y.iter().zip(weight).map(|(v, w)| v * w).sum();
    // The weighted mean, floored so an all-zero sample still has a finite start.
    booster.base_score = (weighted / total.max(f64::MIN_POSITIVE)).max(1e-6).ln();
    booster.trees.clear();
    let binned = bin_matrix(data, weight, booster.nbins, booster.missing, booster.parallel)
        .map_err(|e| Error::data(format!("gbt: cannot bin the training rows: {e}")))?;
    let bins = Matrix::new(&binned.binned_data, data.rows, data.cols);
    let splitter = MissingImputerSplitter::new(
        booster.l1,
        booster.l2,
        MAX_DELTA_STEP,
        booster.gamma,
        booster.min_leaf_weight,
        booster.learning_rate,
        booster.allow_missing_splits,
        ConstraintMap::new(),
    );
    let columns: Vec<usize> = (0..data.cols).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(booster.seed);
    let sampled_columns = ((data.cols as f64 * booster.colsample_bytree).floor() as usize).clamp(1, data.cols);
    let subsample = (booster.sample_method == SampleMethod::Random && booster.subsample < 1.0)
        .then_some(f64::from(booster.subsample));
    let mut score = vec![booster.base_score; y.len()];
    let (mut grad, mut hess) = (vec![0f32; y.len()], vec![0f32; y.len()]);
    let mut watched = watch.map(|w| vec![booster.base_score; w.y.len()]);
    // The lowest watched deviance and the tree count that reached it.
    let mut best: Option<(f64, usize)> = None;
    for round in 0..booster.iterations {
        for (i, (&s, (&v, &w))) in score.iter().zip(y.iter().zip(weight)).enumerate() {
            let (g, h) = gradient(v, s, power);
            grad[i] = (w * g) as f32;
            hess[i] = (w * h) as f32;
        }
        // This tree's columns and rows, as `forust-ml` samples them for its own losses.
        let picked;
        let tree_columns: &[usize] = if sampled_columns < data.cols {
            let mut drawn = index::sample(&mut rng, data.cols, sampled_columns).into_vec();
            drawn.sort_unstable();
            picked = drawn;
            &picked
        } else {
            &columns
        };
        let (rows, method) = match subsample {
            Some(share) => {
                (bins.index.iter().copied().filter(|_| rng.random::<f64>() < share).collect(), SampleMethod::Random)
            }
            None => (bins.index.clone(), SampleMethod::None),
        };
        let mut tree = Tree::new();
        tree.fit(
            &bins,
            rows,
            tree_columns,
            &binned.cuts,
            &grad,
            &hess,
            &splitter,
            booster.max_leaves,
            booster.max_depth,
            booster.parallel,
            &method,
            &booster.grow_policy,
        );
        for (s, step) in score.iter_mut().zip(tree.predict(data, booster.parallel, &booster.missing)) {
            *s = (*s + step).min(MAX_SCORE);
        }
        let stop = match (watch, watched.as_mut()) {
            (Some(w), Some(held)) => {
                for (s, step) in held.iter_mut().zip(tree.predict(w.data, booster.parallel, &booster.missing)) {
                    *s = (*s + step).min(MAX_SCORE);
                }
                let loss: f64 =
                    held.iter().zip(w.y.iter().zip(w.weight)).map(|(&s, (&v, &wt))| wt * deviance(v, s, power)).sum();
                match best {
                    Some((b, at)) if loss >= b => round - at >= w.stop_after,
                    _ => {
                        best = Some((loss, round));
                        false
                    }
                }
            }
            _ => false,
        };
        booster.trees.push(tree);
        if stop {
            break;
        }
    }
    Ok(())
}

/// The Tweedie deviance of `power` at the score `s` (log of the mean) for the value `y`, up to
/// terms that do not depend on `s` (enough to compare scores).
fn deviance(y: f64, s: f64, power: f64) -> f64 {
    if power == 1.0 {
        return s.min(MAX_SCORE).exp() - y * s;
    }
    -y * ((1.0 - power) * s).exp() / (1.0 - power) + ((2.0 - power) * s).exp() / (2.0 - power)
}

/// The gradient and hessian of the Tweedie deviance of `power` at the score `s` (log of the
/// mean) for the value `y`.
fn gradient(y: f64, s: f64, power: f64) -> (f64, f64) {
    let a = ((1.0 - power) * s).exp();
    let b = ((2.0 - power) * s).exp();
    (-y * a + b, -(1.0 - power) * y * a + (2.0 - power) * b)
}

#[cfg(test)]
mod tests {
    use forust_ml::objective::ObjectiveType;

    use super::*;

    /// Counts whose mean is 0.2 or 6 depending on one column, many of them zero: the trees find
    /// both means, and the deviance falls with each round.
    #[test]
    fn learns_the_mean_of_counts_with_many_zeros() {
        let n = 2_000;
        let x: Vec<f64> = (0..n).map(|i| (i % 2) as f64).collect();
        let mut state = 11u64;
        let mut uniform = move || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        // Poisson draws by inversion.
        let y: Vec<f64> = x
            .iter()
            .map(|&x| {
                let mean: f64 = if x > 0.5 { 6.0 } else { 0.2 };
                let (mut k, mut p, u) = (0.0, (-mean).exp(), uniform());
                let mut cdf = p;
                while u > cdf {
                    k += 1.0;
                    p *= mean / k;
                    cdf += p;
                }
                k
            })
            .collect();
        let zeros = y.iter().filter(|v| **v == 0.0).count();
        assert!(zeros > n / 3, "the sample is zero-heavy: {zeros} of {n}");
        let weight = vec![1.0; n];
        let data = Matrix::new(&x, n, 1);
        let shell = |trees| {
            GradientBooster::default()
                .set_objective_type(ObjectiveType::SquaredLoss)
                .set_iterations(trees)
                .set_learning_rate(0.3)
                .set_max_depth(2)
                .set_parallel(false)
        };
        let deviance = |booster: &GradientBooster| {
            let p = booster.predict(&data, false);
            y.iter().zip(&p).map(|(y, s)| mean(*s) - y * s).sum::<f64>() / n as f64
        };
        let few = fit(shell(2), &data, &y, &weight, 1.0, None).unwrap();
        let many = fit(shell(40), &data, &y, &weight, 1.0, None).unwrap();
        assert!(deviance(&many) < deviance(&few), "the deviance falls as trees are added");
        let p = many.predict(&Matrix::new(&[0.0, 1.0], 2, 1), false);
        let (low, high) = (mean(p[0]), mean(p[1]));
        assert!((low - 0.2).abs() < 0.1 && (high - 6.0).abs() < 0.6, "means {low:.3} and {high:.3}");
        // With a column of noise to overfit, the deviance of other rows drawn alike stops falling
        // and growing stops long before 2,000 trees.
        let half = n / 2;
        let noise: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1000) as f64).collect();
        let columns = |from: usize| -> Vec<f64> {
            x[from..from + half].iter().chain(&noise[from..from + half]).copied().collect()
        };
        let (fit_rows, held_rows) = (columns(0), columns(half));
        let watch =
            Watch { data: &Matrix::new(&held_rows, half, 2), y: &y[half..], weight: &weight[half..], stop_after: 5 };
        let watched =
            fit(shell(2_000), &Matrix::new(&fit_rows, half, 2), &y[..half], &weight[..half], 1.0, Some(watch)).unwrap();
        assert!(watched.trees.len() < 500, "stopped after {} trees", watched.trees.len());
        let tweedie = fit(shell(40), &data, &y, &weight, 1.5, None).unwrap();
        let p = tweedie.predict(&Matrix::new(&[0.0, 1.0], 2, 1), false);
        assert!(mean(p[0]) < 0.4 && (mean(p[1]) - 6.0).abs() < 0.8, "{p:?}");
    }

    #[test]
    fn negative_targets_and_a_power_outside_the_range_are_refused() {
        let data = Matrix::new(&[0.0, 1.0], 2, 1);
        let shell = GradientBooster::default;
        let err = fit(shell(), &data, &[1.0, -1.0], &[1.0, 1.0], 1.5, None).err().unwrap().to_string();
        assert!(err.contains("non-negative"), "{err}");
        let err = fit(shell(), &data, &[1.0, 1.0], &[1.0, 1.0], 2.5, None).err().unwrap().to_string();
        assert!(err.contains("power"), "{err}");
    }
}
