//! The true effects the demo generator uses, recorded in the lake
//! (`_demo/truth.json`) so analysis can be checked against them.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Promotion kinds: a price cut, an in-store display, a flyer feature.
pub const PROMO_KINDS: [&str; 3] = ["price_cut", "display", "feature"];

/// Everything the generator decided, and what it produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Truth {
    /// Seed used.
    pub seed: u64,
    /// First day of sales.
    pub start: NaiveDate,
    /// Last day of sales.
    pub end: NaiveDate,
    /// Series (item × location) generated.
    pub series: usize,
    /// Items generated.
    pub items: usize,
    /// Locations generated.
    pub locations: usize,
    /// Per-category effects.
    pub categories: BTreeMap<String, CategoryTruth>,
    /// Demand multiplier of each calendar event on its day (before category sensitivity).
    pub events: BTreeMap<String, f64>,
    /// Consumer-behaviour process: views lead sales.
    pub traffic: TrafficTruth,
    /// Post-promotion window length in days.
    pub post_promo_days: u32,
    /// Negative-binomial shape of demand noise (larger: closer to Poisson).
    pub demand_dispersion: f64,
    /// What was generated, and how much each driver moved demand.
    pub outcome: Outcome,
    /// Closures, regional holidays and a location-level planned covariate (`None`: a demo lake
    /// made without them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<LocalTruth>,
}

/// The demo's local layer: what only some locations see, all of it known in advance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LocalTruth {
    /// Locations that close every week on one day from a date on (through the horizon).
    pub weekly_closing: Vec<WeeklyClosing>,
    /// Days every location is closed.
    pub closed_everywhere: Vec<NaiveDate>,
    /// One location's closure for works: (location, first day, last day); some after the sales end.
    pub renovations: Vec<(String, NaiveDate, NaiveDate)>,
    /// Demand multiplier of each regional holiday on its day, at the locations of its region
    /// (`calendar` rows with a `region`).
    pub regional_events: BTreeMap<String, f64>,
    /// The covariate's name in `known_covariates` (per location and day, known in advance).
    pub covariate: String,
    /// Its true effect: log demand moves by this much per unit.
    pub covariate_effect: f64,
    /// Days after the last day of sales that closures, events and the covariate are given for.
    pub days_ahead: u32,
}

/// A location closed every week on one weekday.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WeeklyClosing {
    /// The location.
    pub location_id: String,
    /// Day of the week (0 = Monday … 6 = Sunday).
    pub weekday: u32,
    /// First day of the rule.
    pub from: NaiveDate,
}

/// True effects of one category.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CategoryTruth {
    /// Own-price elasticity: demand ∝ (price / regular price)^e.
    pub price_elasticity: f64,
    /// Cross-price elasticity to the cheapest competitor: demand ∝ (competitor / own price)^e.
    pub competitor_elasticity: f64,
    /// Demand multiplier of each promotion kind on top of its price effect.
    pub promo_uplift: BTreeMap<String, f64>,
    /// Demand multiplier in the days after a promotion (pantry loading).
    pub post_promo_dip: f64,
    /// Multiplier by day of week, Monday first (geometric mean 1).
    pub weekly_profile: [f64; 7],
    /// Amplitude of the yearly cycle in log demand.
    pub yearly_amplitude: f64,
    /// Day of year of the yearly peak.
    pub yearly_peak_doy: f64,
    /// Exponent applied to event multipliers (toys react more to Black Friday than groceries).
    pub event_sensitivity: f64,
    /// Typical regular price.
    pub typical_price: f64,
}

/// The consumer-behaviour process.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrafficTruth {
    /// Days by which page views lead sales.
    pub lead_days: u32,
    /// AR(1) coefficient of the latent interest process.
    pub interest_ar: f64,
    /// Innovation standard deviation of the interest process (log scale).
    pub interest_sd: f64,
    /// Views per unit of expected demand.
    pub views_per_unit: f64,
    /// Share of views that add to cart.
    pub add_to_cart_rate: f64,
}

/// What the generator produced.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    /// Rows written per table.
    pub rows: BTreeMap<String, u64>,
    /// Items that sell rarely (intermittent demand).
    pub intermittent_items: usize,
    /// Items launched after the first day.
    pub new_items: usize,
    /// Series-days with no stock on hand.
    pub stockout_days: u64,
    /// Units demanded (before stock-outs).
    pub demand_units: f64,
    /// Units sold.
    pub sales_units: f64,
    /// Promotions generated (per item; each runs at every location of the item).
    pub promotions: u64,
    /// Variance of each driver's term in log demand over all active series-days.
    pub log_variance: BTreeMap<String, f64>,
    /// Drivers ordered by that variance, largest first.
    pub factor_ranking: Vec<String>,
}

/// A category's character: (name, own elasticity, competitor elasticity, yearly amplitude, peak day
/// of year, event sensitivity, typical price, weekend lift).
type CategoryCharacter = (&'static str, f64, f64, f64, f64, f64, f64, f64);

/// Category names and their characters.
const CATEGORIES: [CategoryCharacter; 6] = [
    ("grocery", -1.2, 0.3, 0.08, 350.0, 0.6, 4.0, 0.25),
    ("household", -1.5, 0.5, 0.10, 90.0, 0.8, 9.0, 0.15),
    ("beauty", -1.0, 0.4, 0.15, 45.0, 1.0, 18.0, 0.10),
    ("apparel", -1.8, 0.6, 0.30, 160.0, 1.1, 35.0, 0.35),
    ("toys", -1.4, 0.7, 0.45, 355.0, 1.4, 25.0, 0.30),
    ("electronics", -2.0, 1.0, 0.25, 330.0, 1.3, 150.0, 0.20),
];

impl Truth {
    /// Draws the category effects for a seed. The structure is fixed; values are jittered by the seed.
    pub fn draw(rng: &mut impl Rng, seed: u64, start: NaiveDate, end: NaiveDate) -> Self {
        let mut categories = BTreeMap::new();
        for (name, el, cross, amp, peak, sens, price, weekend) in CATEGORIES {
            let j = |rng: &mut dyn rand::RngCore, x: f64, rel: f64| x * (1.0 + rel * (rng.random::<f64>() * 2.0 - 1.0));
            let mut weekly = [0.0; 7];
            for (d, w) in weekly.iter_mut().enumerate() {
                let base = match d {
                    4 => 0.5 * weekend, // Friday
                    5 => weekend,       // Saturday
                    6 => 0.7 * weekend, // Sunday
                    1 | 2 => -0.08,     // Tuesday, Wednesday are slow
                    _ => 0.0,
                };
                *w = base + 0.03 * (rng.random::<f64>() * 2.0 - 1.0);
            }
            let mean = weekly.iter().sum::<f64>() / 7.0;
            let weekly_profile = weekly.map(|w| (w - mean).exp());
            let mut promo_uplift = BTreeMap::new();
            for (kind, base) in PROMO_KINDS.iter().zip([1.10, 1.35, 1.60]) {
                promo_uplift.insert(kind.to_string(), j(rng, base - 1.0, 0.25) + 1.0);
            }
            categories.insert(
                name.to_string(),
                CategoryTruth {
                    price_elasticity: j(rng, el, 0.1),
                    competitor_elasticity: j(rng, cross, 0.1),
                    promo_uplift,
                    post_promo_dip: 1.0 - j(rng, 0.2, 0.3),
                    weekly_profile,
                    yearly_amplitude: j(rng, amp, 0.1),
                    yearly_peak_doy: peak,
                    event_sensitivity: sens,
                    typical_price: price,
                },
            );
        }
        let events = [
            ("new_year", 0.6),
            ("valentines_day", 1.2),
            ("618", 1.6),
            ("double_11", 2.0),
            ("black_friday", 2.5),
            ("cyber_monday", 1.7),
            ("christmas_shopping", 1.3),
            ("christmas_eve", 1.5),
            ("christmas", 0.3),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        Truth {
            seed,
            start,
            end,
            series: 0,
            items: 0,
            locations: 0,
            categories,
            events,
            traffic: TrafficTruth {
                lead_days: 1,
                interest_ar: 0.85,
                interest_sd: 0.12,
                views_per_unit: 25.0,
                add_to_cart_rate: 0.08,
            },
            post_promo_days: 7,
            demand_dispersion: 8.0,
            outcome: Outcome::default(),
            local: None,
        }
    }
}
