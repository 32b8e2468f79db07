//! Nelder–Mead minimisation for the few smoothing parameters of a baseline.
//!
//! Nelder & Mead (1965), with the standard coefficients (reflection 1, expansion 2,
//! contraction ½, shrink ½). Parameters are optimised unconstrained; callers map them into their
//! bounds (e.g. with a logistic), which keeps this routine free of constraints.

/// Minimises `f` from `start`; returns the best point and its value.
pub fn nelder_mead(f: impl Fn(&[f64]) -> f64, start: &[f64], step: f64, max_evals: usize) -> (Vec<f64>, f64) {
    let n = start.len();
    let mut simplex: Vec<(Vec<f64>, f64)> = Vec::with_capacity(n + 1);
    simplex.push((start.to_vec(), f(start)));
    for i in 0..n {
        let mut p = start.to_vec();
        p[i] += step;
        let v = f(&p);
        simplex.push((p, v));
    }
    let mut evals = n + 1;
    while evals < max_evals {
        simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (best, worst) = (simplex[0].1, simplex[n].1);
        if (worst - best).abs() <= 1e-10 * (best.abs() + 1e-10) {
            break;
        }
        let centroid: Vec<f64> = (0..n).map(|j| simplex[..n].iter().map(|p| p.0[j]).sum::<f64>() / n as f64).collect();
        let along =
            |t: f64| -> Vec<f64> { (0..n).map(|j| centroid[j] + t * (simplex[n].0[j] - centroid[j])).collect() };
        let reflected = along(-1.0);
        let fr = f(&reflected);
        evals += 1;
        if fr < simplex[0].1 {
            let expanded = along(-2.0);
            let fe = f(&expanded);
            evals += 1;
            simplex[n] = if fe < fr { (expanded, fe) } else { (reflected, fr) };
        } else if fr < simplex[n - 1].1 {
            simplex[n] = (reflected, fr);
        } else {
            let contracted = if fr < worst { along(-0.5) } else { along(0.5) };
            let fc = f(&contracted);
            evals += 1;
            if fc < worst.min(fr) {
                simplex[n] = (contracted, fc);
            } else {
                let best_point = simplex[0].0.clone();
                for p in simplex.iter_mut().skip(1) {
                    for (x, b) in p.0.iter_mut().zip(&best_point).take(n) {
                        *x = b + 0.5 * (*x - b);
                    }
                    p.1 = f(&p.0);
                    evals += 1;
                }
            }
        }
    }
    simplex.sort_by(|a, b| a.1.total_cmp(&b.1));
    let (p, v) = simplex.swap_remove(0);
    (p, v)
}

/// Maps an unconstrained value into (lo, hi).
pub fn bounded(x: f64, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) / (1.0 + (-x).exp())
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_the_minimum_of_a_bowl() {
        let (p, v) = super::nelder_mead(|x| (x[0] - 1.0).powi(2) + 3.0 * (x[1] + 2.0).powi(2), &[0.0, 0.0], 0.5, 2000);
        assert!((p[0] - 1.0).abs() < 1e-3 && (p[1] + 2.0).abs() < 1e-3, "{p:?}");
        assert!(v < 1e-6);
    }
}
