//! Planner outputs: how much stock each item × location needs, from the published forecasts.
//!
//! - [`leadtime`]: the distribution of demand over a lead time, from per-period means and
//!   quantiles (moments add; quantiles never do).
//! - [`policy`]: safety stock, reorder point, order-up-to level and the order to place.
//! - [`replenish`]: the `plan` step: reads a run date's forecasts, stock and supply terms from
//!   the lake, writes `replenishment/run_date=…/` (manifest last) and its `latest` pointer.
//!
//! Supply terms (lead time, review period, service level) and on-order quantities come from
//! the optional raw table `supply`, stock from `inventory`; what they do not give comes from
//! the `[plan]` settings.

pub mod leadtime;
pub mod policy;
pub mod replenish;

use serde::{Deserialize, Serialize};

pub use leadtime::Choice;

/// The `[plan]` settings: the defaults for series the lake gives no terms for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct PlanSettings {
    /// Days from order to delivery.
    #[serde(default = "default_lead_time")]
    pub lead_time_days: f64,
    /// Days between two orders.
    #[serde(default = "default_review_period")]
    pub review_period_days: f64,
    /// Probability of not running out within a replenishment cycle.
    #[serde(default = "default_service_level")]
    pub service_level: f64,
    /// Distribution of lead-time demand: auto, normal, poisson, negative-binomial.
    #[serde(default)]
    pub distribution: Choice,
    /// Units on hand for series without an `inventory` row on or before the cutoff.
    #[serde(default)]
    pub on_hand: f64,
    /// Units on order for series without a `supply` row giving them.
    #[serde(default)]
    pub on_order: f64,
}

fn default_lead_time() -> f64 {
    7.0
}
fn default_review_period() -> f64 {
    7.0
}
fn default_service_level() -> f64 {
    0.95
}

impl Default for PlanSettings {
    fn default() -> Self {
        Self {
            lead_time_days: default_lead_time(),
            review_period_days: default_review_period(),
            service_level: default_service_level(),
            distribution: Choice::default(),
            on_hand: 0.0,
            on_order: 0.0,
        }
    }
}

impl PlanSettings {
    /// Checks ranges; the error names the key.
    pub fn validate(&self) -> std::result::Result<(), (String, String)> {
        let days = [("plan.lead-time-days", self.lead_time_days), ("plan.review-period-days", self.review_period_days)];
        for (key, v) in days {
            if !(v.is_finite() && (0.0..=3650.0).contains(&v)) {
                return Err((key.into(), format!("must be between 0 and 3650 days, got {v}")));
            }
        }
        if !(self.service_level > 0.0 && self.service_level < 1.0) {
            return Err((
                "plan.service-level".into(),
                format!("must be strictly between 0 and 1, got {}", self.service_level),
            ));
        }
        for (key, v) in [("plan.on-hand", self.on_hand), ("plan.on-order", self.on_order)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err((key.into(), format!("must be a number of units ≥ 0, got {v}")));
            }
        }
        Ok(())
    }
}
