//! Lead-time demand: the distribution of demand summed over several periods, from the forecast
//! of each period.
//!
//! Quantiles do not add: the 95% quantile of a week's demand is far below the sum of the seven
//! daily 95% quantiles (that sum is reached only if every day is a bad day). So the planner
//! never adds quantiles. It reads from each period's forecast a mean and a variance, sums them
//! over the protection period, and takes quantiles of a distribution with the summed moments:
//!
//! - **Per-period variance.** The model's quantiles are read under a normal assumption: the
//!   standard deviation is the least-squares slope of the quantiles against the standard
//!   normal's quantiles at the same levels (for 0.1/0.9 that is `(q90 − q10) / 2.563`). With
//!   only the median, there is no spread to read, and the Poisson variance (the mean) is used.
//! - **Summing.** Means add; variances add, which assumes the periods' errors are independent
//!   (demand shocks that persist for days make the true spread wider). A fractional last period
//!   (a 10-day lead time in weeks) contributes that fraction of its mean and variance.
//! - **Family.** `normal`, `poisson` (mean only), `negative-binomial` (mean and variance; a
//!   Poisson when the variance does not exceed the mean), or `auto`: a count distribution below
//!   a mean of [`AUTO_NORMAL_FROM`] units (Poisson when the variance is at most
//!   [`POISSON_DISPERSION`] × the mean, negative binomial above), normal from there up, where the
//!   count distributions are normal in all but name.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ContinuousCDF, DiscreteCDF, NegativeBinomial, Normal, Poisson};

/// `auto` uses the normal from this lead-time mean (units) up.
pub const AUTO_NORMAL_FROM: f64 = 100.0;

/// `auto` reads demand as Poisson while its variance is at most this multiple of its mean.
pub const POISSON_DISPERSION: f64 = 1.05;

/// Which distribution the lead-time demand follows (the `[plan] distribution` setting).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Choice {
    /// Count distributions for low volumes, normal for high ones.
    #[default]
    Auto,
    /// Normal with the summed mean and variance (floored at zero).
    Normal,
    /// Poisson with the summed mean.
    Poisson,
    /// Negative binomial with the summed mean and variance.
    NegativeBinomial,
}

/// The distribution used for one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Family {
    /// Normal.
    Normal,
    /// Poisson.
    Poisson,
    /// Negative binomial.
    NegativeBinomial,
}

impl Family {
    /// The name written in the replenishment dataset.
    pub fn as_str(self) -> &'static str {
        match self {
            Family::Normal => "normal",
            Family::Poisson => "poisson",
            Family::NegativeBinomial => "negative-binomial",
        }
    }
}

/// One period's forecast, as moments.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Moments {
    /// Expected demand.
    pub mean: f64,
    /// Variance of demand.
    pub variance: f64,
}

/// The standard normal quantile at `level` in (0, 1).
pub fn z(level: f64) -> f64 {
    // Normal::new(0, 1) cannot fail: the parameters are finite and the deviation positive.
    Normal::new(0.0, 1.0).map(|n| n.inverse_cdf(level)).unwrap_or(f64::NAN)
}

/// A period's moments from its forecast mean and quantiles (see the module documentation).
pub fn moments(mean: f64, levels: &[f64], quantiles: &[f64]) -> Moments {
    let mean = mean.max(0.0);
    let pts: Vec<(f64, f64)> = levels
        .iter()
        .zip(quantiles)
        .filter(|(l, q)| **l > 0.0 && **l < 1.0 && q.is_finite())
        .map(|(l, q)| (z(*l), *q))
        .collect();
    let sd = match pts.len() {
        0 => None,
        1 if pts[0].0.abs() < 1e-9 => None,
        1 => Some((pts[0].1 - mean) / pts[0].0),
        n => {
            let zbar = pts.iter().map(|p| p.0).sum::<f64>() / n as f64;
            let qbar = pts.iter().map(|p| p.1).sum::<f64>() / n as f64;
            let sxx: f64 = pts.iter().map(|p| (p.0 - zbar).powi(2)).sum();
            (sxx > 1e-12).then(|| pts.iter().map(|p| (p.0 - zbar) * (p.1 - qbar)).sum::<f64>() / sxx)
        }
    };
    let variance = match sd {
        Some(s) if s.is_finite() => s.max(0.0).powi(2),
        _ => mean,
    };
    Moments { mean, variance }
}

/// The summed moments of the first `periods` periods (fractional: the last one counts in part).
/// Returns the moments and the periods actually covered (less than asked when the forecast is
/// shorter).
pub fn accumulate(steps: &[Moments], periods: f64) -> (Moments, f64) {
    let periods = periods.max(0.0);
    let mut sum = Moments { mean: 0.0, variance: 0.0 };
    let mut covered = 0.0;
    for (i, m) in steps.iter().enumerate() {
        let share = (periods - i as f64).clamp(0.0, 1.0);
        if share == 0.0 {
            break;
        }
        sum.mean += share * m.mean;
        sum.variance += share * m.variance;
        covered += share;
    }
    (sum, covered)
}

/// Demand over a protection period: its moments and the family its quantiles come from.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LeadTimeDemand {
    /// Summed moments.
    pub moments: Moments,
    /// The distribution.
    pub family: Family,
}

impl LeadTimeDemand {
    /// The family `choice` gives for these moments.
    pub fn new(moments: Moments, choice: Choice) -> Self {
        let Moments { mean, variance } = moments;
        let family = match choice {
            Choice::Normal => Family::Normal,
            Choice::Poisson => Family::Poisson,
            Choice::NegativeBinomial if variance > mean => Family::NegativeBinomial,
            Choice::NegativeBinomial => Family::Poisson,
            Choice::Auto if mean >= AUTO_NORMAL_FROM => Family::Normal,
            Choice::Auto if variance <= POISSON_DISPERSION * mean => Family::Poisson,
            Choice::Auto => Family::NegativeBinomial,
        };
        Self { moments, family }
    }

    /// The same family, for other moments (the longer protection period of the order-up-to level).
    pub fn with_moments(self, moments: Moments) -> Self {
        let family = match self.family {
            Family::NegativeBinomial if moments.variance <= moments.mean => Family::Poisson,
            f => f,
        };
        Self { moments, family }
    }

    /// Standard deviation of the distribution used (a Poisson's is the square root of its mean).
    pub fn sd(&self) -> f64 {
        match self.family {
            Family::Poisson => self.moments.mean.sqrt(),
            _ => self.moments.variance.sqrt(),
        }
    }

    /// The demand that is not exceeded with probability `level`: the smallest such whole number
    /// of units for the count families, the continuous quantile (floored at zero) for the normal.
    pub fn quantile(&self, level: f64) -> f64 {
        let Moments { mean, variance } = self.moments;
        if mean <= 0.0 {
            return 0.0;
        }
        let level = level.clamp(1e-9, 1.0 - 1e-9);
        match self.family {
            Family::Normal => (mean + variance.max(0.0).sqrt() * z(level)).max(0.0),
            Family::Poisson => Poisson::new(mean).map(|p| p.inverse_cdf(level) as f64).unwrap_or(mean),
            Family::NegativeBinomial => {
                // statrs: mean r(1−p)/p, variance r(1−p)/p², so p = mean/variance, r = mean²/(variance − mean).
                let p = mean / variance;
                let r = mean * mean / (variance - mean);
                NegativeBinomial::new(r, p).map(|d| d.inverse_cdf(level) as f64).unwrap_or(mean)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn normal_quantiles_give_back_their_standard_deviation() {
        // N(10, 3²): q10 = 10 − 1.2816·3, q90 = 10 + 1.2816·3.
        let m = moments(10.0, &[0.1, 0.5, 0.9], &[10.0 - 3.0 * 1.281_551_6, 10.0, 10.0 + 3.0 * 1.281_551_6]);
        assert!(close(m.variance, 9.0, 1e-6), "{m:?}");
        // Only the median: no spread to read, the Poisson variance.
        assert_eq!(moments(4.0, &[0.5], &[4.0]).variance, 4.0);
        // One non-median level.
        let m = moments(10.0, &[0.9], &[10.0 + 2.0 * 1.281_551_6]);
        assert!(close(m.variance, 4.0, 1e-6));
    }

    #[test]
    fn normal_lead_time_demand_has_the_textbook_reorder_point() {
        // 7 days of N(100, 20²) each: N(700, 7·400), the 95% point is 700 + 1.6449·√2800 = 787.04.
        let day = Moments { mean: 100.0, variance: 400.0 };
        let (sum, covered) = accumulate(&[day; 10], 7.0);
        assert_eq!(covered, 7.0);
        assert!(close(sum.mean, 700.0, 1e-9) && close(sum.variance, 2800.0, 1e-9));
        let d = LeadTimeDemand::new(sum, Choice::Normal);
        assert!(close(d.quantile(0.95), 787.04, 0.01), "{}", d.quantile(0.95));
        // Adding the daily 95% quantiles would ask for 7 × (100 + 1.6449·20) = 930.3.
        assert!(d.quantile(0.95) < 7.0 * (100.0 + z(0.95) * 20.0) - 100.0);
    }

    #[test]
    fn poisson_lead_time_demand_matches_its_table() {
        // Poisson(2) per day over 5 days is Poisson(10): P(X ≤ 15) = 0.9513, P(X ≤ 14) = 0.9165.
        let day = Moments { mean: 2.0, variance: 2.0 };
        let (sum, _) = accumulate(&[day; 5], 5.0);
        let d = LeadTimeDemand::new(sum, Choice::Auto);
        assert_eq!(d.family, Family::Poisson);
        assert_eq!(d.quantile(0.95), 15.0);
        assert_eq!(d.quantile(0.90), 14.0);
        // Poisson(0.5): P(X = 0) = 0.6065, P(X ≤ 1) = 0.9098, P(X ≤ 2) = 0.9856.
        let d = LeadTimeDemand::new(Moments { mean: 0.5, variance: 0.5 }, Choice::Poisson);
        assert_eq!((d.quantile(0.5), d.quantile(0.9), d.quantile(0.95)), (0.0, 1.0, 2.0));
        assert_eq!(LeadTimeDemand::new(Moments { mean: 0.0, variance: 0.0 }, Choice::Auto).quantile(0.99), 0.0);
    }

    #[test]
    fn overdispersed_counts_use_the_negative_binomial() {
        // Mean 4, variance 12: r = 2, p = 1/3. P(X ≤ 9) = 0.9249, P(X ≤ 10) = 0.9460, P(X ≤ 11) = 0.9615.
        let d = LeadTimeDemand::new(Moments { mean: 4.0, variance: 12.0 }, Choice::Auto);
        assert_eq!(d.family, Family::NegativeBinomial);
        assert_eq!(d.quantile(0.95), 11.0);
        assert_eq!(d.quantile(0.93), 10.0);
        // Above the normal threshold, auto is normal.
        assert_eq!(LeadTimeDemand::new(Moments { mean: 500.0, variance: 900.0 }, Choice::Auto).family, Family::Normal);
    }

    #[test]
    fn fractional_periods_count_in_part_and_short_forecasts_say_so() {
        let week = Moments { mean: 70.0, variance: 140.0 };
        let (sum, covered) = accumulate(&[week; 4], 10.0 / 7.0);
        assert!(close(sum.mean, 100.0, 1e-9) && close(sum.variance, 200.0, 1e-9) && close(covered, 10.0 / 7.0, 1e-12));
        let (_, covered) = accumulate(&[week; 2], 3.0);
        assert_eq!(covered, 2.0);
    }
}
