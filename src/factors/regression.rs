//! Log-linear demand regression with series fixed effects: a Poisson pseudo-likelihood fit
//! (`log E[units] = a_s + b_s·t + x·β`) by iteratively reweighted least squares.
//!
//! Each series has its own level `a_s` and trend `b_s`; they are concentrated out by a
//! weighted within-transformation (each column residualised on `[1, t]` inside its series), so
//! only the shared coefficients `β` enter the normal equations. Regressors that are logs of
//! prices make `β` elasticities: this is the log-log demand model, fitted on units rather than
//! on `log(units)` so that days with zero sales count and nothing is added to them.
//!
//! Standard errors are cluster-robust by series (the sandwich `B⁻¹ M B⁻¹`), so the serial
//! correlation of demand shocks inside a series does not make the intervals too narrow.

use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::error::{Error, Result};

/// One fitted model.
#[derive(Debug, Clone)]
pub struct Fit {
    /// Coefficients, in the order of the columns of `x`.
    pub beta: Vec<f64>,
    /// Their cluster-robust standard errors.
    pub se: Vec<f64>,
    /// Degrees of freedom of the t quantiles (clusters − 1).
    pub df: f64,
    /// The fixed part of the log mean of each row: the series level plus its trend.
    pub fixed: Vec<f64>,
    /// Fitted means.
    pub mu: Vec<f64>,
    /// Iterations used.
    pub iterations: usize,
}

impl Fit {
    /// The `level` (e.g. 0.95) confidence interval of coefficient `j`.
    pub fn interval(&self, j: usize, level: f64) -> (f64, f64) {
        let q = StudentsT::new(0.0, 1.0, self.df.max(1.0)).map(|t| t.inverse_cdf(0.5 + level / 2.0)).unwrap_or(1.96);
        (self.beta[j] - q * self.se[j], self.beta[j] + q * self.se[j])
    }
}

/// The rows to fit: `x` is row-major (`n × p`), `group` the series of each row (rows of a series
/// contiguous), `t` a time index per row (years, say).
pub struct Design<'a> {
    /// Units per row.
    pub y: &'a [f64],
    /// Regressors, row-major.
    pub x: &'a [f64],
    /// Number of regressors.
    pub p: usize,
    /// Start offsets of each series' rows, plus the end.
    pub groups: &'a [usize],
    /// Time per row.
    pub t: &'a [f64],
    /// The cluster of each series (0-based) for the standard errors: series that share shocks
    /// (the locations of one item share its promotions) belong to one cluster.
    pub clusters: &'a [usize],
    /// Rows whose units are a lower bound (the stock ran out): their demand enters as its
    /// expectation given that it was at least the units sold, at the current fit (EM).
    pub censored: &'a [bool],
}

/// `E[Y | Y ≥ c]` for a negative binomial of mean `mu` and shape `k` (Poisson when `k` is ∞).
pub fn censored_mean(c: f64, mu: f64, k: f64) -> f64 {
    if c <= 0.0 {
        return mu;
    }
    let q = if k.is_finite() { mu / (k + mu) } else { 0.0 };
    let mut pj = if k.is_finite() { (k * (k / (k + mu)).ln()).exp() } else { (-mu).exp() };
    let (mut below, mut below_mean) = (0.0, 0.0);
    let n = c as usize;
    for j in 0..n {
        below += pj;
        below_mean += j as f64 * pj;
        let jf = j as f64;
        pj *= if k.is_finite() { (jf + k) / (jf + 1.0) * q } else { mu / (jf + 1.0) };
    }
    let tail = 1.0 - below;
    if tail < 1e-9 { c } else { ((mu - below_mean) / tail).max(c) }
}

/// Method-of-moments shape `k` of the variance `μ + μ²/k` (∞ when there is no overdispersion).
fn dispersion(y: &[f64], mu: &[f64]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (y, m) in y.iter().zip(mu) {
        num += m * m;
        den += (y - m).powi(2) - m;
    }
    if den <= 0.0 { f64::INFINITY } else { (num / den).max(0.1) }
}

/// Fits the log-linear model with series levels and trends: the quasi-likelihood of the variance
/// `μ + μ²/k` (`k` estimated from the residuals; Poisson when there is no overdispersion), whose
/// estimating equations hold whenever the mean is right.
pub fn fit(d: &Design<'_>) -> Result<Fit> {
    let n = d.y.len();
    let p = d.p;
    if d.x.len() != n * p || d.t.len() != n {
        return Err(Error::data("regression: design dimensions do not match"));
    }
    // Start from each series' mean.
    let mut mu = vec![0.0; n];
    for g in d.groups.windows(2) {
        let m = d.y[g[0]..g[1]].iter().sum::<f64>() / (g[1] - g[0]).max(1) as f64;
        for (i, v) in mu[g[0]..g[1]].iter_mut().enumerate() {
            *v = (0.5 * (d.y[g[0] + i] + m)).max(0.1 * m).max(1e-3);
        }
    }
    let mut eta: Vec<f64> = mu.iter().map(|m| m.ln()).collect();
    let mut beta = vec![0.0; p];
    let mut fixed = vec![0.0; n];
    let mut xt = vec![0.0; n * p];
    let mut zt = vec![0.0; n];
    let mut iterations = 0;
    let mut y = d.y.to_vec();
    // Negative-binomial shape of the variance μ + μ²/k (∞: Poisson), re-estimated each pass.
    let mut shape = f64::INFINITY;
    for it in 0..100 {
        iterations = it + 1;
        let w: Vec<f64> = mu.iter().map(|m| m / (1.0 + m / shape)).collect();
        for i in 0..n {
            y[i] = if d.censored[i] { censored_mean(d.y[i], mu[i], shape) } else { d.y[i] };
        }
        let z: Vec<f64> = (0..n).map(|i| eta[i] + (y[i] - mu[i]) / mu[i]).collect();
        // Within-transform z and every column of x by series, weighted.
        xt.copy_from_slice(d.x);
        zt.copy_from_slice(&z);
        for g in d.groups.windows(2) {
            let (a, b) = (g[0], g[1]);
            let proj = Projector::new(&w[a..b], &d.t[a..b]);
            proj.residualise(&mut zt[a..b], 1, 0);
            for j in 0..p {
                proj.residualise(&mut xt[a * p..b * p], p, j);
            }
        }
        let (xtwx, xtwz) = normal_equations(&xt, &zt, &w, p);
        let new = solve_spd(&xtwx, &xtwz, p)?;
        let change = new.iter().zip(&beta).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        beta = new;
        // The fixed part: the weighted fit of z − xβ on [1, t] in each series.
        for g in d.groups.windows(2) {
            let (a, b) = (g[0], g[1]);
            let proj = Projector::new(&w[a..b], &d.t[a..b]);
            let mut r: Vec<f64> = (a..b).map(|i| z[i] - dot(&d.x[i * p..(i + 1) * p], &beta)).collect();
            let fitted: Vec<f64> = r.clone();
            proj.residualise(&mut r, 1, 0);
            for (k, i) in (a..b).enumerate() {
                fixed[i] = fitted[k] - r[k];
            }
        }
        for i in 0..n {
            eta[i] = (fixed[i] + dot(&d.x[i * p..(i + 1) * p], &beta)).clamp(-30.0, 30.0);
            mu[i] = eta[i].exp().max(1e-10);
        }
        shape = dispersion(&y, &mu);
        if change < 1e-7 && it > 2 {
            break;
        }
    }
    // Sandwich: B = X̃'WX̃ at the solution, M = Σ_c (Σ_i x̃_i w_i (y_i − μ_i) / μ_i)(…)' over clusters.
    let w: Vec<f64> = mu.iter().map(|m| m / (1.0 + m / shape)).collect();
    xt.copy_from_slice(d.x);
    for g in d.groups.windows(2) {
        let proj = Projector::new(&w[g[0]..g[1]], &d.t[g[0]..g[1]]);
        for j in 0..p {
            proj.residualise(&mut xt[g[0] * p..g[1] * p], p, j);
        }
    }
    let (bmat, _) = normal_equations(&xt, &zt, &w, p);
    let binv = invert_spd(&bmat, p)?;
    let mut meat = vec![0.0; p * p];
    let n_clusters = d.clusters.iter().max().map_or(0, |c| c + 1);
    let mut scores = vec![0.0; n_clusters * p];
    for (g, &c) in d.groups.windows(2).zip(d.clusters) {
        for i in g[0]..g[1] {
            let r = w[i] * (y[i] - mu[i]) / mu[i];
            for j in 0..p {
                scores[c * p + j] += xt[i * p + j] * r;
            }
        }
    }
    for s in scores.chunks(p.max(1)) {
        for j in 0..p {
            for k in 0..p {
                meat[j * p + k] += s[j] * s[k];
            }
        }
    }
    let clusters = n_clusters;
    let scale = if clusters > 1 { clusters as f64 / (clusters - 1) as f64 } else { 1.0 };
    let cov = mat_mul(&mat_mul(&binv, &meat, p), &binv, p);
    let se = (0..p).map(|j| (cov[j * p + j] * scale).max(0.0).sqrt()).collect();
    Ok(Fit { beta, se, df: clusters.saturating_sub(1) as f64, fixed, mu, iterations })
}

/// Weighted projection onto `[1, t]` within one series.
struct Projector<'a> {
    w: &'a [f64],
    t: &'a [f64],
    /// Weighted mean of t, and the weighted sum of squares of t about it (0: no trend fitted).
    tbar: f64,
    stt: f64,
    sw: f64,
}

impl<'a> Projector<'a> {
    fn new(w: &'a [f64], t: &'a [f64]) -> Self {
        let sw: f64 = w.iter().sum::<f64>().max(1e-300);
        let tbar = w.iter().zip(t).map(|(w, t)| w * t).sum::<f64>() / sw;
        let stt = w.iter().zip(t).map(|(w, t)| w * (t - tbar).powi(2)).sum::<f64>();
        Self { w, t, tbar, stt, sw }
    }

    /// Replaces column `col` of a row-major block of `stride` columns with its residual.
    fn residualise(&self, v: &mut [f64], stride: usize, col: usize) {
        let n = self.w.len();
        let mean = (0..n).map(|i| self.w[i] * v[i * stride + col]).sum::<f64>() / self.sw;
        let slope = if self.stt > 1e-12 {
            (0..n).map(|i| self.w[i] * (self.t[i] - self.tbar) * v[i * stride + col]).sum::<f64>() / self.stt
        } else {
            0.0
        };
        for i in 0..n {
            v[i * stride + col] -= mean + slope * (self.t[i] - self.tbar);
        }
    }
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(a, b)| a * b).sum()
}

fn normal_equations(x: &[f64], z: &[f64], w: &[f64], p: usize) -> (Vec<f64>, Vec<f64>) {
    let mut xtwx = vec![0.0; p * p];
    let mut xtwz = vec![0.0; p];
    for (i, (&wi, &zi)) in w.iter().zip(z).enumerate() {
        let row = &x[i * p..(i + 1) * p];
        for j in 0..p {
            let a = wi * row[j];
            xtwz[j] += a * zi;
            for k in j..p {
                xtwx[j * p + k] += a * row[k];
            }
        }
    }
    for j in 0..p {
        for k in 0..j {
            xtwx[j * p + k] = xtwx[k * p + j];
        }
    }
    (xtwx, xtwz)
}

/// Cholesky factor (lower, row-major) of a symmetric positive definite matrix.
fn cholesky(a: &[f64], p: usize) -> Result<Vec<f64>> {
    let mut l = vec![0.0; p * p];
    for j in 0..p {
        let mut d = a[j * p + j];
        for k in 0..j {
            d -= l[j * p + k] * l[j * p + k];
        }
        if d <= 1e-12 * a[j * p + j].abs().max(1e-300) {
            return Err(Error::data(format!("regression: regressor {j} is collinear with the others")));
        }
        let d = d.sqrt();
        l[j * p + j] = d;
        for i in j + 1..p {
            let mut s = a[i * p + j];
            for k in 0..j {
                s -= l[i * p + k] * l[j * p + k];
            }
            l[i * p + j] = s / d;
        }
    }
    Ok(l)
}

fn solve_with(l: &[f64], b: &[f64], p: usize) -> Vec<f64> {
    let mut y = vec![0.0; p];
    for i in 0..p {
        let s: f64 = (0..i).map(|k| l[i * p + k] * y[k]).sum();
        y[i] = (b[i] - s) / l[i * p + i];
    }
    let mut x = vec![0.0; p];
    for i in (0..p).rev() {
        let s: f64 = (i + 1..p).map(|k| l[k * p + i] * x[k]).sum();
        x[i] = (y[i] - s) / l[i * p + i];
    }
    x
}

/// Solves `A x = b` for symmetric positive definite `A`.
pub fn solve_spd(a: &[f64], b: &[f64], p: usize) -> Result<Vec<f64>> {
    Ok(solve_with(&cholesky(a, p)?, b, p))
}

fn invert_spd(a: &[f64], p: usize) -> Result<Vec<f64>> {
    let l = cholesky(a, p)?;
    let mut inv = vec![0.0; p * p];
    for j in 0..p {
        let mut e = vec![0.0; p];
        e[j] = 1.0;
        let col = solve_with(&l, &e, p);
        for i in 0..p {
            inv[i * p + j] = col[i];
        }
    }
    Ok(inv)
}

fn mat_mul(a: &[f64], b: &[f64], p: usize) -> Vec<f64> {
    let mut c = vec![0.0; p * p];
    for i in 0..p {
        for k in 0..p {
            let aik = a[i * p + k];
            for j in 0..p {
                c[i * p + j] += aik * b[k * p + j];
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_distr::{Distribution, Poisson};

    #[test]
    fn censored_mean_is_the_tail_expectation() {
        assert!((censored_mean(0.0, 3.0, f64::INFINITY) - 3.0).abs() < 1e-12);
        // Poisson(2) given Y ≥ 1: 2 / (1 − e^−2).
        let want = 2.0 / (1.0 - (-2.0f64).exp());
        assert!((censored_mean(1.0, 2.0, f64::INFINITY) - want).abs() < 1e-9);
        assert!(censored_mean(5.0, 2.0, 8.0) > 5.0);
        assert_eq!(censored_mean(500.0, 2.0, 8.0), 500.0);
    }

    #[test]
    fn recovers_a_poisson_elasticity_with_levels_and_trends() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (mut y, mut x, mut t, mut groups) = (vec![], vec![], vec![], vec![0]);
        for s in 0..30 {
            let level = 1.0 + s as f64 * 0.1;
            let trend = (s as f64 - 15.0) * 0.02;
            for d in 0..200 {
                let lp: f64 = rng.random_range(-0.3..0.1);
                let promo = if rng.random::<f64>() < 0.1 { 1.0 } else { 0.0 };
                let tt = d as f64 / 365.0;
                let mu = (level + trend * tt - 1.5 * lp + 0.3 * promo).exp();
                y.push(Poisson::new(mu).unwrap().sample(&mut rng));
                x.extend([lp, promo]);
                t.push(tt);
            }
            groups.push(y.len());
        }
        let clusters: Vec<usize> = (0..30).collect();
        let censored = vec![false; y.len()];
        let f = fit(&Design { y: &y, x: &x, p: 2, groups: &groups, t: &t, clusters: &clusters, censored: &censored })
            .unwrap();
        assert!((f.beta[0] + 1.5).abs() < 0.1, "{:?}", f.beta);
        assert!((f.beta[1] - 0.3).abs() < 0.05, "{:?}", f.beta);
        let (lo, hi) = f.interval(0, 0.95);
        assert!(lo < -1.5 && hi > -1.5 && hi - lo < 0.4, "{lo} {hi}");
    }
}
