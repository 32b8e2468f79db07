//! The replenishment policy of one series: safety stock, reorder point, order-up-to level and
//! the order to place now, from its forecast and its supply terms.
//!
//! With lead time `L` and review period `R` (days), service level `α` (the probability of not
//! running out in a replenishment cycle), and `D(t)` the demand over the next `t` days:
//!
//! | output | definition |
//! |---|---|
//! | reorder point | the α-quantile of `D(L)`, in whole units (rounded up): order when the inventory position falls to it |
//! | safety stock | reorder point − E\[`D(L)`\] |
//! | order-up-to level | the α-quantile of `D(L + R)`, in whole units: what a periodic review orders up to |
//! | inventory position | on hand + on order |
//! | suggested order | order-up-to level − inventory position, when positive, else 0 |
//!
//! The reorder point serves planners who review continuously; the suggested order follows the
//! periodic-review (R, S) policy, reviewed on this run's date.

use serde::Serialize;

use super::leadtime::{Choice, Family, LeadTimeDemand, Moments, accumulate};

/// The supply terms and stock of one series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Terms {
    /// Days from placing an order to receiving it.
    pub lead_time_days: f64,
    /// Days between two reviews (orders).
    pub review_period_days: f64,
    /// Probability of not running out within a cycle, in (0, 1).
    pub service_level: f64,
    /// Units on hand at the end of the cutoff.
    pub on_hand: f64,
    /// Units ordered and not yet received.
    pub on_order: f64,
}

/// What the planner recommends for one series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Recommendation {
    /// Demand over the lead time.
    pub lead_time_demand: LeadTimeDemand,
    /// Demand over the lead time plus the review period.
    pub protection_demand: LeadTimeDemand,
    /// Reorder point − expected lead-time demand.
    pub safety_stock: f64,
    /// α-quantile of lead-time demand, whole units.
    pub reorder_point: f64,
    /// α-quantile of demand over lead time + review period, whole units.
    pub order_up_to: f64,
    /// On hand + on order.
    pub inventory_position: f64,
    /// Units to order now (whole units, never negative).
    pub order_quantity: f64,
    /// Days of the protection period the forecast covered (less than L + R when the horizon is
    /// shorter; the outputs then understate demand).
    pub covered_days: f64,
}

impl Recommendation {
    /// The distribution family used.
    pub fn family(&self) -> Family {
        self.lead_time_demand.family
    }
}

/// The recommendation for a series whose forecast per period is `steps` (periods of
/// `period_days` days, the first one starting the day after the cutoff).
pub fn recommend(steps: &[Moments], period_days: f64, terms: &Terms, choice: Choice) -> Recommendation {
    let per = period_days.max(1.0);
    let (lt, _) = accumulate(steps, terms.lead_time_days / per);
    let (prot, covered) = accumulate(steps, (terms.lead_time_days + terms.review_period_days) / per);
    let lead_time_demand = LeadTimeDemand::new(lt, choice);
    let protection_demand = lead_time_demand.with_moments(prot);
    let reorder_point = whole(lead_time_demand.quantile(terms.service_level));
    let order_up_to = whole(protection_demand.quantile(terms.service_level)).max(reorder_point);
    let inventory_position = terms.on_hand + terms.on_order;
    Recommendation {
        lead_time_demand,
        protection_demand,
        safety_stock: reorder_point - lt.mean,
        reorder_point,
        order_up_to,
        inventory_position,
        order_quantity: whole(order_up_to - inventory_position).max(0.0),
        covered_days: covered * per,
    }
}

/// Rounds up to whole units, forgiving float noise (7.0000000001 is 7).
fn whole(x: f64) -> f64 {
    (x - 1e-9).ceil().max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(lead: f64, review: f64, on_hand: f64, on_order: f64) -> Terms {
        Terms { lead_time_days: lead, review_period_days: review, service_level: 0.95, on_hand, on_order }
    }

    #[test]
    fn a_normal_series_gets_the_textbook_policy() {
        // 28 days of N(100, 20²). L = 7: N(700, 2800) → ROP ⌈787.04⌉ = 788, safety stock 88.
        // L + R = 14: N(1400, 5600) → S = ⌈1400 + 1.6449·74.83⌉ = ⌈1523.09⌉ = 1524.
        let steps = vec![Moments { mean: 100.0, variance: 400.0 }; 28];
        let r = recommend(&steps, 1.0, &terms(7.0, 7.0, 600.0, 200.0), Choice::Normal);
        assert_eq!(r.reorder_point, 788.0);
        assert!((r.safety_stock - 88.0).abs() < 1e-9);
        assert_eq!(r.order_up_to, 1524.0);
        assert_eq!(r.inventory_position, 800.0);
        assert_eq!(r.order_quantity, 724.0);
        assert_eq!(r.covered_days, 14.0);
        // Enough stock: nothing to order.
        let r = recommend(&steps, 1.0, &terms(7.0, 7.0, 2000.0, 0.0), Choice::Normal);
        assert_eq!(r.order_quantity, 0.0);
    }

    #[test]
    fn a_slow_mover_is_planned_in_whole_units_from_the_poisson() {
        // 0.4 a day: L = 5 → Poisson(2), 95% point 5 (P(X ≤ 4) = 0.947, P(X ≤ 5) = 0.983).
        let steps = vec![Moments { mean: 0.4, variance: 0.4 }; 28];
        let r = recommend(&steps, 1.0, &terms(5.0, 0.0, 1.0, 0.0), Choice::Auto);
        assert_eq!(r.family(), Family::Poisson);
        assert_eq!(r.reorder_point, 5.0);
        assert_eq!(r.order_up_to, 5.0);
        assert_eq!(r.order_quantity, 4.0);
    }

    #[test]
    fn weekly_periods_take_the_lead_time_in_days() {
        // Weeks of N(70, 140): 14 days are two weeks.
        let steps = vec![Moments { mean: 70.0, variance: 140.0 }; 8];
        let r = recommend(&steps, 7.0, &terms(14.0, 7.0, 0.0, 0.0), Choice::Normal);
        assert!((r.lead_time_demand.moments.mean - 140.0).abs() < 1e-9);
        assert!((r.protection_demand.moments.mean - 210.0).abs() < 1e-9);
        // A horizon shorter than the protection period is reported.
        let r = recommend(&steps[..2], 7.0, &terms(14.0, 7.0, 0.0, 0.0), Choice::Normal);
        assert_eq!(r.covered_days, 14.0);
    }
}
