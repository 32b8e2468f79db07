//! The demand simulation behind the demo lake (see the module docs of `demo`).

use std::collections::BTreeMap;
use std::f64::consts::PI;
use std::ops::Range;

use arrow::record_batch::RecordBatch;
use chrono::{Datelike, NaiveDate};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Normal, Poisson};

use super::TableBuilder;
use super::truth::{CategoryTruth, Outcome, PROMO_KINDS, Truth};
use crate::error::Result;

const COMPONENTS: [&str; 8] =
    ["level_trend", "weekly", "yearly", "events", "promotion", "price", "competitor", "behaviour"];
const COMPETITORS: [&str; 2] = ["comp_a", "comp_b"];

/// Everything shared by all items: calendar, categories, locations.
pub(super) struct World {
    seed: u64,
    days: usize,
    start: NaiveDate,
    start_day: i32,
    /// Monday-first weekday of each day.
    dow: Vec<usize>,
    /// Day of year of each day.
    doy: Vec<f64>,
    /// Sum of log event multipliers on each day.
    event_log: Vec<f64>,
    events: Vec<super::events::EventDay>,
    categories: Vec<(String, CategoryTruth)>,
    locations: Vec<Location>,
    dispersion: f64,
    traffic: super::truth::TrafficTruth,
    post_days: usize,
    /// The local layer, when generated.
    local: Option<LocalWorld>,
}

/// Per location and day (sales days, then `days_ahead` more): closures, regional holidays and the
/// planned covariate.
struct LocalWorld {
    truth: super::truth::LocalTruth,
    /// Closed, per location and day.
    closed: Vec<Vec<bool>>,
    /// Log multiplier of regional holidays, per location and day.
    regional_log: Vec<Vec<f64>>,
    /// The covariate's value, per location and day.
    covariate: Vec<Vec<f64>>,
    /// Regional holiday days: (day, name, region).
    regional_days: Vec<(usize, String, &'static str)>,
}

/// Regions of the demo's locations, in turn.
const REGIONS: [&str; 4] = ["north", "south", "east", "west"];

impl LocalWorld {
    fn draw(seed: u64, start: NaiveDate, days: usize, locations: &[Location]) -> Self {
        use super::truth::{LocalTruth, WeeklyClosing};
        let ahead = 120usize;
        let total = days + ahead;
        let date = |d: usize| start + chrono::Duration::days(d as i64);
        let mut rng = stream(seed, 7);
        let n_loc = locations.len();
        let mut closed = vec![vec![false; total]; n_loc];
        // A third of the locations start closing on Sundays from 60% into the history.
        let from = days * 6 / 10;
        let mut weekly_closing = Vec::new();
        for (l, loc) in locations.iter().enumerate().filter(|(l, _)| l % 3 == 1) {
            for (d, c) in closed[l].iter_mut().enumerate().skip(from) {
                *c |= date(d).weekday() == chrono::Weekday::Sun;
            }
            weekly_closing.push(WeeklyClosing { location_id: loc.id.clone(), weekday: 6, from: date(from) });
        }
        // Christmas and New Year's Day, everywhere.
        let mut closed_everywhere = Vec::new();
        for d in 0..total {
            let day = date(d);
            if (day.month() == 12 && day.day() == 25) || (day.month() == 1 && day.day() == 1) {
                closed_everywhere.push(day);
                closed.iter_mut().for_each(|c| c[d] = true);
            }
        }
        // Works at half the locations, 3 to 7 days; the first location's right after the end.
        let mut renovations = Vec::new();
        for (l, loc) in locations.iter().enumerate() {
            let (first, len) = if l == 0 {
                (days + 4, 3)
            } else if rng.random::<f64>() < 0.5 && days > 120 {
                (rng.random_range(60..total - 10), rng.random_range(3..=7))
            } else {
                continue;
            };
            for c in closed[l].iter_mut().skip(first).take(len) {
                *c = true;
            }
            renovations.push((loc.id.clone(), date(first), date(first + len - 1)));
        }
        // Three holidays a year per region, on fixed days of the year.
        let mut regional_events = BTreeMap::new();
        let mut regional_days = Vec::new();
        let mut regional_log = vec![vec![0.0; total]; n_loc];
        for region in REGIONS {
            for k in 0..3 {
                let name = format!("{region}_day_{}", k + 1);
                let doy = rng.random_range(20..340u32);
                let mult: f64 = rng.random_range(1.6..2.4);
                for d in (0..total).filter(|&d| date(d).ordinal() == doy) {
                    regional_days.push((d, name.clone(), region));
                    for (l, loc) in locations.iter().enumerate() {
                        if loc.region == region {
                            regional_log[l][d] += mult.ln();
                        }
                    }
                }
                regional_events.insert(name, mult);
            }
        }
        regional_days.sort();
        // Planned local marketing: a level 0–3 per location and week.
        let mut covariate = vec![vec![0.0; total]; n_loc];
        for values in covariate.iter_mut() {
            let mut level = 0.0;
            for (d, v) in values.iter_mut().enumerate() {
                if d % 7 == 0 {
                    let u: f64 = rng.random();
                    level = if u < 0.4 {
                        0.0
                    } else if u < 0.7 {
                        1.0
                    } else if u < 0.9 {
                        2.0
                    } else {
                        3.0
                    };
                }
                *v = level;
            }
        }
        let truth = LocalTruth {
            weekly_closing,
            closed_everywhere,
            renovations,
            regional_events,
            covariate: "local_marketing".to_string(),
            covariate_effect: 0.3,
            days_ahead: ahead as u32,
        };
        Self { truth, closed, regional_log, covariate, regional_days }
    }
}

struct Location {
    id: String,
    size: f64,
    price_mult: f64,
    region: &'static str,
    format: &'static str,
}

/// Per-item draws, a function of (seed, item) only.
struct Item {
    id: String,
    category: usize,
    brand: String,
    level: f64,
    slow: bool,
    launch: usize,
    launch_date: NaiveDate,
    trend: f64,
    base_price: f64,
}

impl World {
    pub(super) fn new(truth: &Truth, seed: u64, n_loc: usize, days: usize, local: bool) -> Self {
        let start = truth.start;
        let epoch = crate::days::epoch();
        let start_day = (start - epoch).num_days() as i32;
        let dates: Vec<NaiveDate> = (0..days).map(|d| start + chrono::Duration::days(d as i64)).collect();
        let events = super::events::events(start, truth.end);
        let mut event_log = vec![0.0; days];
        for (date, name, _) in &events {
            let d = (*date - start).num_days() as usize;
            event_log[d] += truth.events[*name].ln();
        }
        let mut rng = stream(seed, 1);
        let locations: Vec<Location> = (0..n_loc)
            .map(|l| {
                let size: f64 = Normal::new(0.0f64, 0.35).expect("sd > 0").sample(&mut rng).exp();
                Location {
                    id: format!("store_{:02}", l + 1),
                    size,
                    price_mult: 1.0 + rng.random_range(-0.03..0.03),
                    region: REGIONS[l % 4],
                    format: if size > 1.3 {
                        "hypermarket"
                    } else if size > 0.8 {
                        "supermarket"
                    } else {
                        "express"
                    },
                }
            })
            .collect();
        let local = local.then(|| LocalWorld::draw(seed, start, days, &locations));
        Self {
            local,
            seed,
            days,
            start,
            start_day,
            dow: dates.iter().map(|d| d.weekday().num_days_from_monday() as usize).collect(),
            doy: dates.iter().map(|d| d.ordinal() as f64).collect(),
            event_log,
            events,
            categories: truth.categories.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            locations,
            dispersion: truth.demand_dispersion,
            traffic: truth.traffic.clone(),
            post_days: truth.post_promo_days as usize,
        }
    }

    pub(super) fn locations_batch(&self) -> Result<RecordBatch> {
        let mut t = TableBuilder::new("locations");
        for l in &self.locations {
            t.text(0, &l.id);
            t.text(1, l.region);
            t.text(2, l.format);
        }
        t.finish()
    }

    pub(super) fn calendar_batch(&self) -> Result<RecordBatch> {
        let mut t = TableBuilder::new("calendar");
        for (date, name, kind) in &self.events {
            t.date(0, self.start_day + (*date - self.start).num_days() as i32);
            t.text(1, name);
            t.text(2, kind);
            t.null(3);
            t.null(4);
        }
        t.finish()
    }

    /// The truth of the local layer, when generated.
    pub(super) fn local_truth(&self) -> Option<super::truth::LocalTruth> {
        self.local.as_ref().map(|l| l.truth.clone())
    }

    /// The local layer's tables: closures, known covariates, and the regional calendar rows (to
    /// append to `calendar`); empty without it.
    pub(super) fn local_batches(&self) -> Result<Vec<(&'static str, RecordBatch)>> {
        let Some(local) = &self.local else { return Ok(Vec::new()) };
        let mut closures = TableBuilder::new("closures");
        for w in &local.truth.weekly_closing {
            let l = self.locations.iter().position(|l| l.id == w.location_id).expect("a demo location");
            for (d, c) in local.closed[l].iter().enumerate() {
                let day = self.start + chrono::Duration::days(d as i64);
                if *c && day >= w.from && day.weekday().num_days_from_monday() == w.weekday {
                    closures.text(0, &w.location_id);
                    closures.null(1);
                    closures.date(2, self.start_day + d as i32);
                    closures.date(3, self.start_day + d as i32);
                    closures.text(4, "closed on Sundays");
                }
            }
        }
        for day in &local.truth.closed_everywhere {
            let d = self.start_day + (*day - self.start).num_days() as i32;
            closures.null(0);
            closures.null(1);
            closures.date(2, d);
            closures.date(3, d);
            closures.text(4, "public holiday");
        }
        for (loc, first, last) in &local.truth.renovations {
            closures.text(0, loc);
            closures.null(1);
            closures.date(2, self.start_day + (*first - self.start).num_days() as i32);
            closures.date(3, self.start_day + (*last - self.start).num_days() as i32);
            closures.text(4, "works");
        }
        let mut known = TableBuilder::new("known_covariates");
        for (l, values) in local.covariate.iter().enumerate() {
            for (d, v) in values.iter().enumerate() {
                known.date(0, self.start_day + d as i32);
                known.null(1);
                known.text(2, &self.locations[l].id);
                known.text(3, &local.truth.covariate);
                known.num(4, *v);
                known.null(5);
                known.null(6);
            }
        }
        let mut calendar = TableBuilder::new("calendar");
        for (d, name, region) in &local.regional_days {
            calendar.date(0, self.start_day + *d as i32);
            calendar.text(1, name);
            calendar.text(2, "holiday");
            calendar.null(3);
            calendar.text(4, region);
        }
        Ok(vec![
            ("closures", closures.finish()?),
            ("known_covariates", known.finish()?),
            ("calendar", calendar.finish()?),
        ])
    }

    fn item(&self, i: usize) -> Item {
        let mut rng = stream(self.seed, 1000 + i as u64);
        let category = rng.random_range(0..self.categories.len());
        let cat = &self.categories[category].1;
        let slow = rng.random::<f64>() < 0.2;
        let level = if slow {
            rng.random_range(0.05f64.ln()..0.6f64.ln()).exp()
        } else {
            rng.random_range(2f64.ln()..25f64.ln()).exp()
        };
        let launch =
            if self.days > 180 && rng.random::<f64>() < 0.1 { rng.random_range(60..self.days - 30) } else { 0 };
        let launch_date = if launch > 0 {
            self.start + chrono::Duration::days(launch as i64)
        } else {
            self.start - chrono::Duration::days(rng.random_range(30..1500))
        };
        let price_noise: f64 = Normal::new(0.0, 0.4).expect("sd > 0").sample(&mut rng);
        Item {
            id: format!("item_{i:05}"),
            category,
            brand: format!("{}_brand_{}", &self.categories[category].0[..3], rng.random_range(0..8)),
            level,
            slow,
            launch,
            launch_date,
            trend: Normal::new(0.0, 0.15).expect("sd > 0").sample(&mut rng),
            base_price: (cat.typical_price * price_noise.exp() * 100.0).round() / 100.0,
        }
    }

    pub(super) fn intermittent_count(&self, n_items: usize) -> usize {
        (0..n_items).filter(|&i| self.item(i).slow).count()
    }

    pub(super) fn new_item_count(&self, n_items: usize) -> usize {
        (0..n_items).filter(|&i| self.item(i).launch > 0).count()
    }

    /// Simulates items `range` at their locations; series beyond `total_series` are not generated.
    pub(super) fn simulate_items(&self, range: Range<usize>, total_series: usize) -> ChunkOutput {
        let mut out = ChunkOutput::new();
        let n_loc = self.locations.len();
        for i in range {
            let item = self.item(i);
            let n_series = n_loc.min(total_series.saturating_sub(i * n_loc));
            if n_series == 0 {
                break;
            }
            self.simulate_item(&item, n_series, &mut out);
            out.items.push(&item, &self.categories[item.category].0);
        }
        out
    }

    fn simulate_item(&self, item: &Item, n_series: usize, out: &mut ChunkOutput) {
        let days = self.days;
        let cat = &self.categories[item.category].1;
        let mut rng = stream(self.seed, 1_000_000_000 + item.id_num());
        let gauss = Normal::new(0.0, 1.0).expect("sd > 0");

        // Latent consumer interest: AR(1), seen in views on day d and in sales on day d + 1.
        let mut interest = vec![0.0f64; days];
        let mut x = 0.0;
        for v in interest.iter_mut() {
            x = self.traffic.interest_ar * x + self.traffic.interest_sd * gauss.sample(&mut rng);
            *v = x;
        }

        // Promotions run at every location of the item.
        let mut promo: Vec<Option<(usize, f64)>> = vec![None; days];
        let mut post = vec![false; days];
        let mut next_allowed = item.launch + 14;
        let mut d = next_allowed;
        while d < days {
            if rng.random::<f64>() < 1.0 / 40.0 {
                let kind = rng.random_range(0..PROMO_KINDS.len());
                let len = rng.random_range(3..=10usize);
                let discount: f64 = match kind {
                    0 => rng.random_range(0.10..0.40),
                    1 => 0.0,
                    _ => rng.random_range(0.05..0.20),
                };
                let discount = (discount * 100.0).round() / 100.0;
                let end = (d + len).min(days);
                for p in promo.iter_mut().take(end).skip(d) {
                    *p = Some((kind, discount));
                }
                for p in post.iter_mut().take((end + self.post_days).min(days)).skip(end) {
                    *p = true;
                }
                for l in 0..n_series {
                    out.promotions.text(0, &item.id);
                    out.promotions.text(1, &self.locations[l].id);
                    out.promotions.date(2, self.start_day + d as i32);
                    out.promotions.date(3, self.start_day + end as i32 - 1);
                    out.promotions.text(4, PROMO_KINDS[kind]);
                    out.promotions.num(5, discount);
                }
                out.acc.promotions += 1;
                next_allowed = end + self.post_days + 7;
                d = next_allowed;
            } else {
                d += 1;
            }
        }

        // Competitors price weekly (weeks start on Monday); now and then they run a promotion.
        let first_monday = (7 - self.dow[0]) % 7;
        let week_of = |d: usize| (d + 7 - first_monday) / 7; // week 0 is the partial week before the first Monday
        let weeks = week_of(days - 1) + 1;
        let mut comp_min = vec![f64::INFINITY; weeks];
        for comp in COMPETITORS {
            for (w, m) in comp_min.iter_mut().enumerate() {
                let promo = if rng.random::<f64>() < 0.08 { 0.8 } else { 1.0 };
                let p = (item.base_price * (0.06 * gauss.sample(&mut rng)).exp() * promo * 100.0).round() / 100.0;
                *m = m.min(p);
                let day = if w == 0 { 0 } else { first_monday + (w - 1) * 7 };
                if day >= item.launch {
                    out.competitor_prices.date(0, self.start_day + day as i32);
                    out.competitor_prices.text(1, &item.id);
                    out.competitor_prices.text(2, comp);
                    out.competitor_prices.num(3, p);
                }
            }
        }

        let el = cat.price_elasticity;
        let cross = cat.competitor_elasticity;
        let mut views_mean = vec![0.0f64; days];
        for l in 0..n_series {
            let loc = &self.locations[l];
            let regular = item.base_price * loc.price_mult;
            // Shelf price: weekly, with occasional permanent changes that revert when they drift too far.
            let mut shelf = vec![regular; weeks];
            let mut p = regular;
            for (w, s) in shelf.iter_mut().enumerate() {
                if rng.random::<f64>() < 0.04 {
                    p *= rng.random_range(-0.12f64..0.12).exp();
                    if (p / regular).ln().abs() > 0.25 {
                        p = regular;
                    }
                }
                *s = (p * 100.0).round() / 100.0;
                let day = if w == 0 { 0 } else { first_monday + (w - 1) * 7 };
                if day >= item.launch {
                    out.prices.date(0, self.start_day + day as i32);
                    out.prices.text(1, &item.id);
                    out.prices.text(2, &loc.id);
                    out.prices.num(3, *s);
                }
            }
            let level = item.level * loc.size;
            let s_max = (level * 21.0).ceil() + 3.0;
            let s_min = (level * 7.0).ceil() + 1.0;
            let mut on_hand = s_max;
            let mut arrival: Option<(usize, f64)> = None;
            let gamma = Gamma::new(self.dispersion, 1.0 / self.dispersion).expect("shape > 0");
            for d in item.launch..days {
                let w = week_of(d);
                let (promo_mult, discount) = match promo[d] {
                    Some((k, disc)) => (cat.promo_uplift[PROMO_KINDS[k]], disc),
                    None => (if post[d] { cat.post_promo_dip } else { 1.0 }, 0.0),
                };
                let paid = ((shelf[w] * (1.0 - discount)) * 100.0).round() / 100.0;
                let age = (d - item.launch) as f64;
                let ramp = if item.launch > 0 { 1.0 - (-age / 10.0).exp() } else { 1.0 };
                let c = [
                    (level * ramp).ln() + item.trend * d as f64 / 365.25,
                    cat.weekly_profile[self.dow[d]].ln(),
                    cat.yearly_amplitude * (2.0 * PI * (self.doy[d] - cat.yearly_peak_doy) / 365.25).cos(),
                    cat.event_sensitivity * self.event_log[d],
                    promo_mult.ln(),
                    el * (paid / regular).ln(),
                    cross * (comp_min[w] / paid).ln(),
                    if d > 0 { interest[d - 1] } else { 0.0 },
                ];
                let (closed, local_log) = match &self.local {
                    Some(lw) => {
                        (lw.closed[l][d], lw.regional_log[l][d] + lw.truth.covariate_effect * lw.covariate[l][d])
                    }
                    None => (false, 0.0),
                };
                let log_lambda: f64 = c.iter().sum::<f64>() + local_log;
                let lambda = if closed { 0.0 } else { log_lambda.exp() };
                out.acc.add(&c);
                views_mean[d] += lambda / c[7].exp() * interest[d].exp();
                let rate = lambda * gamma.sample(&mut rng);
                let demand = if rate > 1e-9 { Poisson::new(rate).expect("rate > 0").sample(&mut rng) } else { 0.0 };
                if let Some((day, qty)) = arrival
                    && day == d
                {
                    on_hand += qty;
                    arrival = None;
                }
                let sold = demand.min(on_hand);
                on_hand -= sold;
                out.acc.demand_units += demand;
                out.acc.sales_units += sold;
                if on_hand <= 0.0 {
                    out.acc.stockout_days += 1;
                }
                // A store stocks up for the marketing it has planned: the higher of today's level and the
                // level a week ahead.
                let planned = match &self.local {
                    Some(lw) => {
                        let ahead = lw.covariate[l][(d + 7).min(lw.covariate[l].len() - 1)];
                        (lw.truth.covariate_effect * ahead.max(lw.covariate[l][d])).exp()
                    }
                    None => 1.0,
                };
                if on_hand <= s_min * planned && arrival.is_none() {
                    let late = if rng.random::<f64>() < 0.08 { rng.random_range(5..15) } else { 0 };
                    arrival = Some((d + rng.random_range(3..=8) + late, (s_max * planned - on_hand).max(0.0)));
                }
                let date = self.start_day + d as i32;
                if sold > 0.0 {
                    out.sales.date(0, date);
                    out.sales.text(1, &item.id);
                    out.sales.text(2, &loc.id);
                    out.sales.num(3, sold);
                    out.sales.num(4, ((sold * paid) * 100.0).round() / 100.0);
                    out.sales.num(5, paid);
                }
                out.inventory.date(0, date);
                out.inventory.text(1, &item.id);
                out.inventory.text(2, &loc.id);
                out.inventory.num(3, on_hand);
            }
        }
        for (d, m) in views_mean.iter().enumerate().skip(item.launch) {
            let mean = m * self.traffic.views_per_unit;
            let views = if mean > 1e-9 { Poisson::new(mean).expect("mean > 0").sample(&mut rng) } else { 0.0 };
            let carts = if views > 0.0 {
                Poisson::new(views * self.traffic.add_to_cart_rate).expect("mean > 0").sample(&mut rng).min(views)
            } else {
                0.0
            };
            out.traffic.date(0, self.start_day + d as i32);
            out.traffic.text(1, &item.id);
            out.traffic.num(2, views);
            out.traffic.num(3, carts);
        }
    }
}

impl Item {
    fn id_num(&self) -> u64 {
        self.id[5..].parse().unwrap_or(0)
    }
}

fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// The rows of one chunk of items, per table.
pub(super) struct ChunkOutput {
    sales: TableBuilder,
    prices: TableBuilder,
    promotions: TableBuilder,
    competitor_prices: TableBuilder,
    traffic: TableBuilder,
    inventory: TableBuilder,
    pub(super) items: ItemRows,
    pub(super) acc: Accumulator,
}

impl ChunkOutput {
    fn new() -> Self {
        Self {
            sales: TableBuilder::new("sales"),
            prices: TableBuilder::new("prices"),
            promotions: TableBuilder::new("promotions"),
            competitor_prices: TableBuilder::new("competitor_prices"),
            traffic: TableBuilder::new("traffic"),
            inventory: TableBuilder::new("inventory"),
            items: ItemRows::default(),
            acc: Accumulator::default(),
        }
    }

    /// Finishes every table of the chunk; hands back the item rows.
    pub(super) fn finish(self) -> Result<(Vec<(&'static str, RecordBatch)>, ItemRows)> {
        let batches = vec![
            ("sales", self.sales.finish()?),
            ("prices", self.prices.finish()?),
            ("promotions", self.promotions.finish()?),
            ("competitor_prices", self.competitor_prices.finish()?),
            ("traffic", self.traffic.finish()?),
            ("inventory", self.inventory.finish()?),
        ];
        Ok((batches, self.items))
    }
}

/// Rows of the `items` table, gathered over all chunks (one per item: small).
#[derive(Default)]
pub(super) struct ItemRows {
    rows: Vec<(String, String, String, NaiveDate, f64)>,
}

impl ItemRows {
    fn push(&mut self, item: &Item, category: &str) {
        self.rows.push((item.id.clone(), category.to_string(), item.brand.clone(), item.launch_date, item.base_price));
    }

    pub(super) fn extend(&mut self, other: ItemRows) {
        self.rows.extend(other.rows);
    }

    pub(super) fn batch(&self) -> Result<RecordBatch> {
        let epoch = crate::days::epoch();
        let mut t = TableBuilder::new("items");
        for (id, cat, brand, launch, price) in &self.rows {
            t.text(0, id);
            t.text(1, cat);
            t.text(2, brand);
            t.date(3, (*launch - epoch).num_days() as i32);
            t.num(4, *price);
        }
        t.finish()
    }
}

/// Running sums for the outcome: variance of each driver in log demand, units, stock-outs.
#[derive(Default, Clone)]
pub(super) struct Accumulator {
    n: f64,
    sum: [f64; 8],
    sumsq: [f64; 8],
    pub(super) demand_units: f64,
    pub(super) sales_units: f64,
    pub(super) stockout_days: u64,
    pub(super) promotions: u64,
}

impl Accumulator {
    fn add(&mut self, c: &[f64; 8]) {
        self.n += 1.0;
        for ((sum, sumsq), v) in self.sum.iter_mut().zip(self.sumsq.iter_mut()).zip(c) {
            *sum += v;
            *sumsq += v * v;
        }
    }

    pub(super) fn merge(&mut self, o: &Accumulator) {
        self.n += o.n;
        for k in 0..8 {
            self.sum[k] += o.sum[k];
            self.sumsq[k] += o.sumsq[k];
        }
        self.demand_units += o.demand_units;
        self.sales_units += o.sales_units;
        self.stockout_days += o.stockout_days;
        self.promotions += o.promotions;
    }

    pub(super) fn finish(&self, out: &mut Outcome) {
        let mut var = BTreeMap::new();
        for (k, name) in COMPONENTS.iter().enumerate() {
            let n = self.n.max(1.0);
            let mean = self.sum[k] / n;
            var.insert(name.to_string(), (self.sumsq[k] / n - mean * mean).max(0.0));
        }
        let mut ranking: Vec<String> = var.keys().cloned().collect();
        ranking.sort_by(|a, b| var[b].total_cmp(&var[a]));
        out.log_variance = var;
        out.factor_ranking = ranking;
        out.demand_units = self.demand_units;
        out.sales_units = self.sales_units;
        out.stockout_days = self.stockout_days;
        out.promotions = self.promotions;
    }
}
