//! Effect estimates per category from the factor regression: own-price and cross-price
//! elasticities with confidence intervals, promotion uplift per kind (as % and in units) with the
//! post-promotion dip, the weekly and yearly profile, event multipliers, and each driver's share of
//! the variance of log demand. With several locations, the elasticities, uplifts, dip and event
//! multipliers are also rolled up per location (the same regression on each location's series).
//!
//! # The model
//!
//! For the series `s` of a category and each period `t` at least 28 days after the series' first
//! sale (launch ramps):
//!
//! ```text
//! log E[units] = a_s + b_s·t + e·log(price) + c·log(competitor / price)
//!              + Σ_k u_k·[promotion of kind k] + d·[post-promotion] + Σ dow + yearly(2 harmonics)
//!              + Σ_event v_event
//! ```
//!
//! `e` is the own-price elasticity, `c` the cross-price elasticity to the cheapest competitor
//! (the demo generator's definitions: demand ∝ (price / regular)^e · (competitor / price)^c), and
//! `exp(u_k) − 1` the uplift of a promotion kind on top of its price effect — the generator's
//! `promo_uplift − 1`. The total uplift of a kind (its price cut included) is the fitted demand
//! over its promotion days against the same days with no promotion at the regular price.
//!
//! Sales on a stock-out period are censored demand: demand was at least the units sold. Leaving
//! those periods out would keep the low draws of high-demand days (promotions, price cuts) and
//! bias every effect towards zero; instead their demand enters at its expectation given the
//! bound, at the current fit (an EM step inside the reweighting).

use std::collections::{BTreeMap, HashMap};
use std::f64::consts::PI;

use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use super::data::Observations;
use super::groups::FactorSettings;
use super::regression::{self, Design};
use crate::error::Result;

/// Days after a series' first sale left out of the fit (launch ramps).
pub const WARMUP_DAYS: i64 = 28;

/// Confidence level of the intervals.
pub const LEVEL: f64 = 0.95;

/// One estimate: a row of the `factors/` dataset.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Estimate {
    /// `elasticity`, `promotion`, `promotion_total`, `post_promotion`, `weekly`, `yearly`,
    /// `event`, `driver_share` (per category, and pooled as category `all`); and the roll-ups per
    /// location `location_elasticity`, `location_promotion`, `location_post_promotion`,
    /// `location_event`.
    pub section: String,
    /// Category (`all` for pooled rows; the location for the `location_` sections).
    pub category: String,
    /// What is estimated: `own_price`, a promotion kind, `mon`…`sun`, `month_01`…, an event, a driver.
    pub factor: String,
    /// The estimate: an elasticity, a % uplift, an index (1 = average), or a share of variance.
    pub value: f64,
    /// Lower end of the 95% interval, where there is one.
    pub low: Option<f64>,
    /// Upper end of the 95% interval, where there is one.
    pub high: Option<f64>,
    /// Units attributed over the history's rows (promotions), where meaningful.
    pub units: Option<f64>,
    /// Rows the estimate rests on.
    pub rows: u64,
}

/// The fitted model of one category, kept to decompose forecasts (`explain`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CategoryModel {
    /// Category.
    pub category: String,
    /// Regressor names.
    pub names: Vec<String>,
    /// Coefficients.
    pub beta: Vec<f64>,
    /// The factor group of each regressor.
    pub groups: Vec<String>,
    /// Per series (`item|location`): level, trend per year, first day, and the series mean of
    /// every regressor over the fitted rows.
    pub series: BTreeMap<String, SeriesTerms>,
}

/// The fixed part of one series.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SeriesTerms {
    /// Log level at the series' first day.
    pub level: f64,
    /// Trend in log units per year.
    pub trend: f64,
    /// First day of the series (days since 1970-01-01).
    pub first_day: i64,
    /// Mean of each regressor over the fitted rows.
    pub means: Vec<f64>,
}

/// The analysis of a lake at a cutoff.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Analysis {
    /// Every estimate.
    pub estimates: Vec<Estimate>,
    /// The fitted models.
    pub models: Vec<CategoryModel>,
    /// Drivers by share of log-demand variance, largest first.
    pub ranking: Vec<String>,
    /// The factor groups, `level_trend` first.
    pub groups: Vec<String>,
    /// Categories that could not be fitted, with why.
    pub skipped: BTreeMap<String, String>,
    /// The group importance on backtest windows, when measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub importance: Option<super::importance::Importance>,
    /// Series the regression read, of the series in the history (fewer when sampled).
    #[serde(default)]
    pub series: (usize, usize),
}

impl Analysis {
    /// The estimate of a section, category and factor.
    pub fn get(&self, section: &str, category: &str, factor: &str) -> Option<&Estimate> {
        self.estimates.iter().find(|e| e.section == section && e.category == category && e.factor == factor)
    }
}

/// The regressors of one row (`None`: the row cannot be used).
pub fn regressor(name: &str, o: &Observations, i: usize) -> Option<f64> {
    let price = || o.price[i].filter(|p| *p > 0.0);
    Some(match name {
        "own_price" => price()?.ln(),
        "competitor_price" => (o.competitor[i].filter(|c| *c > 0.0)? / price()?).ln(),
        "post_promo" => f64::from(u8::from(o.post_promo[i] && o.promo_kind[i].is_none())),
        _ => {
            if let Some(kind) = name.strip_prefix("promo:") {
                f64::from(u8::from(o.promo_kind[i].as_deref() == Some(kind)))
            } else if let Some(d) = name.strip_prefix("dow:") {
                f64::from(u8::from(o.day_of_week[i].to_string() == d))
            } else if let Some(ev) = name.strip_prefix("event:") {
                f64::from(u8::from(o.event[i].as_deref() == Some(ev)))
            } else if let Some(h) = name.strip_prefix("yearly:") {
                let (f, k) = h.split_at(3);
                let theta = 2.0 * PI * k.parse::<f64>().unwrap_or(1.0) * o.day_of_year[i] as f64 / 365.25;
                if f == "cos" { theta.cos() } else { theta.sin() }
            } else {
                return None;
            }
        }
    })
}

/// Fits every category of `o`. `daily`: the grain has days of the week; `groups` make up the
/// drivers whose shares are reported.
pub fn analyze(o: &Observations, daily: bool, groups: &FactorSettings) -> Analysis {
    let mut by_cat: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    let mut first: HashMap<(&str, &str), i64> = HashMap::new();
    for i in 0..o.len() {
        first.entry((o.item[i].as_str(), o.location[i].as_str())).or_insert(o.day[i]);
    }
    for i in 0..o.len() {
        let f = first[&(o.item[i].as_str(), o.location[i].as_str())];
        if o.day[i] - f >= WARMUP_DAYS {
            by_cat.entry(o.category[i].as_str()).or_default().push(i);
        }
    }
    let names = groups.names();
    let g = names.len();
    let mut out = Analysis { groups: names.clone(), ..Default::default() };
    let mut variance_terms: Vec<Vec<f64>> = Vec::new();
    // Per category too when there are several (with one, the pooled row says it).
    let several = by_cat.len() > 1;
    let fitted: Vec<usize> = by_cat.values().flatten().copied().collect();
    for (cat, rows) in by_cat {
        let before = variance_terms.len();
        match fit_category(o, cat, &rows, daily, groups, &mut out.estimates, &mut variance_terms) {
            Ok(m) => {
                out.models.push(m);
                let shares = if several { shares(&variance_terms[before..], g) } else { vec![] };
                for (k, share) in shares.into_iter().enumerate() {
                    out.estimates.push(Estimate {
                        section: "driver_share".into(),
                        category: cat.to_string(),
                        factor: names[k].clone(),
                        value: share,
                        low: None,
                        high: None,
                        units: None,
                        rows: (variance_terms.len() - before) as u64,
                    });
                }
            }
            Err(e) => {
                warn!(category = cat, error = %e, "factor regression skipped");
                out.skipped.insert(cat.to_string(), e.to_string());
            }
        }
    }
    // Driver shares over every fitted row, pooled.
    if variance_terms.is_empty() {
        return out;
    }
    by_location(o, &fitted, daily, groups, &mut out.estimates);
    let share = shares(&variance_terms, g);
    let mut ranking: Vec<usize> = (0..g).collect();
    ranking.sort_by(|a, b| share[*b].total_cmp(&share[*a]));
    out.ranking = ranking.iter().map(|k| names[*k].clone()).collect();
    for k in ranking {
        out.estimates.push(Estimate {
            section: "driver_share".into(),
            category: "all".into(),
            factor: names[k].clone(),
            value: share[k],
            low: None,
            high: None,
            units: None,
            rows: variance_terms.len() as u64,
        });
    }
    out
}

/// The sections rolled up per location, and the section each becomes.
const LOCATION_SECTIONS: &[(&str, &str)] = &[
    ("elasticity", "location_elasticity"),
    ("promotion", "location_promotion"),
    ("post_promotion", "location_post_promotion"),
    ("event", "location_event"),
];

/// Roll-ups per location, when there are several: the same regression fitted on each location's
/// series (every category pooled), its elasticities, promotion uplifts, post-promotion dip and
/// event multipliers written as `location_<section>` rows whose `category` is the location.
fn by_location(o: &Observations, rows: &[usize], daily: bool, groups: &FactorSettings, out: &mut Vec<Estimate>) {
    let mut by_loc: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for &i in rows {
        by_loc.entry(o.location[i].as_str()).or_default().push(i);
    }
    if by_loc.len() < 2 {
        return;
    }
    for (loc, mut rows) in by_loc {
        rows.sort_unstable();
        let (mut est, mut terms) = (Vec::new(), Vec::new());
        if let Err(e) = fit_category(o, loc, &rows, daily, groups, &mut est, &mut terms) {
            debug!(location = loc, error = %e, "location roll-up skipped");
            continue;
        }
        for mut e in est {
            if let Some((_, section)) = LOCATION_SECTIONS.iter().find(|(s, _)| *s == e.section) {
                e.section = (*section).to_string();
                out.push(e);
            }
        }
    }
}

/// Each group's share of the summed variances of the group terms over `rows`.
fn shares(rows: &[Vec<f64>], g: usize) -> Vec<f64> {
    let n = rows.len().max(1) as f64;
    let var: Vec<f64> = (0..g)
        .map(|k| {
            let mean = rows.iter().map(|r| r[k]).sum::<f64>() / n;
            rows.iter().map(|r| (r[k] - mean).powi(2)).sum::<f64>() / n
        })
        .collect();
    let total: f64 = var.iter().sum::<f64>().max(1e-300);
    var.iter().map(|v| v / total).collect()
}

fn fit_category(
    o: &Observations,
    cat: &str,
    rows: &[usize],
    daily: bool,
    settings: &FactorSettings,
    est: &mut Vec<Estimate>,
    terms: &mut Vec<Vec<f64>>,
) -> Result<CategoryModel> {
    // Candidate regressors: those with enough rows and variation.
    let count = |pred: &dyn Fn(usize) -> bool| rows.iter().filter(|&&i| pred(i)).count();
    // Prices where most rows have them (a lake without prices is analysed without).
    let priced = |i: usize| o.price[i].is_some_and(|p| p > 0.0);
    let mut names = Vec::new();
    if count(&priced) * 2 > rows.len() {
        names.push("own_price".to_string());
    }
    if count(&|i| priced(i) && o.competitor[i].is_some_and(|c| c > 0.0)) * 2 > rows.len() {
        names.push("competitor_price".into());
    }
    let kinds: std::collections::BTreeSet<&str> = rows.iter().filter_map(|&i| o.promo_kind[i].as_deref()).collect();
    for k in kinds {
        if count(&|i| o.promo_kind[i].as_deref() == Some(k)) >= 10 {
            names.push(format!("promo:{k}"));
        }
    }
    if count(&|i| o.post_promo[i] && o.promo_kind[i].is_none()) >= 10 {
        names.push("post_promo".into());
    }
    if daily {
        names.extend((2..=7).map(|d| format!("dow:{d}")));
    }
    let span = rows.iter().map(|&i| o.day[i]).max().unwrap_or(0) - rows.iter().map(|&i| o.day[i]).min().unwrap_or(0);
    if span >= 300 {
        names.extend(["yearly:cos1", "yearly:sin1", "yearly:cos2", "yearly:sin2"].map(String::from));
    }
    let events: std::collections::BTreeSet<&str> = rows.iter().filter_map(|&i| o.event[i].as_deref()).collect();
    for ev in events {
        if count(&|i| o.event[i].as_deref() == Some(ev)) >= 3 {
            names.push(format!("event:{ev}"));
        }
    }
    // Rows where every regressor is defined, grouped by series.
    let mut keep: Vec<usize> = Vec::new();
    let mut xs: Vec<f64> = Vec::new();
    for &i in rows {
        let x: Option<Vec<f64>> = names.iter().map(|n| regressor(n, o, i)).collect();
        if let Some(x) = x {
            keep.push(i);
            xs.extend(x);
        }
    }
    let p0 = names.len();
    // Drop series with no sales, and regressors that never vary inside a series.
    let key = |i: usize| (o.item[i].as_str(), o.location[i].as_str());
    let mut groups = vec![];
    let mut start = 0;
    for r in 1..=keep.len() {
        if r == keep.len() || key(keep[r]) != key(keep[start]) {
            if r - start >= 20 && keep[start..r].iter().any(|&i| o.units[i] > 0.0) {
                groups.push((start, r));
            }
            start = r;
        }
    }
    let mut varies = vec![false; p0];
    for &(a, b) in &groups {
        for (j, v) in varies.iter_mut().enumerate() {
            let first = xs[a * p0 + j];
            if (a..b).any(|r| (xs[r * p0 + j] - first).abs() > 1e-9) {
                *v = true;
            }
        }
    }
    let cols: Vec<usize> = (0..p0).filter(|&j| varies[j]).collect();
    let names: Vec<String> = cols.iter().map(|&j| names[j].clone()).collect();
    let p = names.len();
    let (mut y, mut x, mut t, mut offsets, mut idx, mut censored) =
        (vec![], vec![], vec![], vec![0usize], vec![], vec![]);
    for &(a, b) in &groups {
        let f = o.day[keep[a]];
        for r in a..b {
            let i = keep[r];
            y.push(o.units[i]);
            censored.push(o.stock_out[i]);
            x.extend(cols.iter().map(|&j| xs[r * p0 + j]));
            t.push((o.day[i] - f) as f64 / 365.25);
            idx.push(i);
        }
        offsets.push(y.len());
    }
    if groups.len() < 2 || p == 0 {
        return Err(crate::Error::data(format!("category {cat}: too few series or no varying regressor")));
    }
    let mut items: HashMap<&str, usize> = HashMap::new();
    let clusters: Vec<usize> = groups
        .iter()
        .map(|&(a, _)| {
            let next = items.len();
            *items.entry(o.item[keep[a]].as_str()).or_insert(next)
        })
        .collect();
    let fit = regression::fit(&Design {
        y: &y,
        x: &x,
        p,
        groups: &offsets,
        t: &t,
        clusters: &clusters,
        censored: &censored,
    })?;
    let n = y.len() as u64;
    let pos = |name: &str| names.iter().position(|n| n == name);
    let push = |est: &mut Vec<Estimate>, section: &str, factor: &str, value: f64, ci: Option<(f64, f64)>, units| {
        est.push(Estimate {
            section: section.into(),
            category: cat.into(),
            factor: factor.into(),
            value,
            low: ci.map(|c| c.0),
            high: ci.map(|c| c.1),
            units,
            rows: n,
        })
    };
    let ln_ratio = |r: usize| {
        let i = idx[r];
        match (o.price[i], o.shelf_price[i]) {
            (Some(p), Some(s)) if p > 0.0 && s > 0.0 => (p / s).ln(),
            _ => 0.0,
        }
    };
    let e_own = pos("own_price").map_or(0.0, |j| fit.beta[j]);
    let e_comp = pos("competitor_price").map_or(0.0, |j| fit.beta[j]);
    for (name, label) in [("own_price", "own_price"), ("competitor_price", "competitor_price")] {
        if let Some(j) = pos(name) {
            push(est, "elasticity", label, fit.beta[j], Some(fit.interval(j, LEVEL)), None);
        }
    }
    for (j, name) in names.iter().enumerate() {
        let pct = |b: f64| (b.exp() - 1.0) * 100.0;
        let (lo, hi) = fit.interval(j, LEVEL);
        if let Some(kind) = name.strip_prefix("promo:") {
            let on: Vec<usize> = (0..y.len()).filter(|&r| x[r * p + j] > 0.5).collect();
            let fitted: f64 = on.iter().map(|&r| fit.mu[r]).sum();
            let incremental = fitted * (1.0 - (-fit.beta[j]).exp());
            push(est, "promotion", kind, pct(fit.beta[j]), Some((pct(lo), pct(hi))), Some(incremental));
            // With its price cut: against the same days with no promotion at the regular price.
            let cf: f64 = on.iter().map(|&r| fit.mu[r] * (-fit.beta[j] - (e_own - e_comp) * ln_ratio(r)).exp()).sum();
            push(est, "promotion_total", kind, (fitted / cf.max(1e-300) - 1.0) * 100.0, None, Some(fitted - cf));
        } else if name == "post_promo" {
            let on: f64 = (0..y.len()).filter(|&r| x[r * p + j] > 0.5).map(|r| fit.mu[r]).sum();
            let lost = on * (1.0 - (-fit.beta[j]).exp());
            push(est, "post_promotion", "dip", pct(fit.beta[j]), Some((pct(lo), pct(hi))), Some(lost));
        } else if let Some(ev) = name.strip_prefix("event:") {
            push(est, "event", ev, fit.beta[j].exp(), Some((lo.exp(), hi.exp())), None);
        }
    }
    if daily {
        let b: Vec<f64> = (1..=7).map(|d| pos(&format!("dow:{d}")).map_or(0.0, |j| fit.beta[j])).collect();
        let mean = b.iter().sum::<f64>() / 7.0;
        for (d, name) in ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].iter().enumerate() {
            push(est, "weekly", name, (b[d] - mean).exp(), None, None);
        }
    }
    if let (Some(c1), Some(s1)) = (pos("yearly:cos1"), pos("yearly:sin1")) {
        let (c2, s2) =
            (pos("yearly:cos2").map_or(0.0, |j| fit.beta[j]), pos("yearly:sin2").map_or(0.0, |j| fit.beta[j]));
        let (a, b) = (fit.beta[c1], fit.beta[s1]);
        push(est, "yearly", "amplitude", a.hypot(b), None, None);
        let peak = (b.atan2(a) * 365.25 / (2.0 * PI)).rem_euclid(365.25);
        push(est, "yearly", "peak_day", peak, None, None);
        let term = |doy: f64| {
            let th = 2.0 * PI * doy / 365.25;
            a * th.cos() + b * th.sin() + c2 * (2.0 * th).cos() + s2 * (2.0 * th).sin()
        };
        let months: Vec<f64> = (0..12).map(|m| term(15.0 + 30.44 * m as f64)).collect();
        let mean = months.iter().sum::<f64>() / 12.0;
        for (m, v) in months.iter().enumerate() {
            push(est, "yearly", &format!("month_{:02}", m + 1), (v - mean).exp(), None, None);
        }
    }
    let all_groups = settings.names();
    let regressor_groups: Vec<String> = names.iter().map(|n| settings.group_of(n).to_string()).collect();
    let group_index: Vec<usize> =
        regressor_groups.iter().map(|g| all_groups.iter().position(|a| a == g).unwrap_or(0)).collect();
    // Series terms and driver contributions (each regressor centred on its series mean; the
    // means join the level).
    let mut series = BTreeMap::new();
    for g in offsets.windows(2) {
        let (a, b) = (g[0], g[1]);
        let len = (b - a) as f64;
        let means: Vec<f64> = (0..p).map(|j| (a..b).map(|r| x[r * p + j]).sum::<f64>() / len).collect();
        // The fixed part is linear in t: recover level and trend from two rows.
        let (t0, t1) = (t[a], t[b - 1]);
        let trend = if t1 > t0 { (fit.fixed[b - 1] - fit.fixed[a]) / (t1 - t0) } else { 0.0 };
        let level = fit.fixed[a] - trend * t0;
        let i = idx[a];
        series.insert(
            format!("{}|{}", o.item[i], o.location[i]),
            SeriesTerms { level, trend, first_day: o.day[i], means: means.clone() },
        );
        let base: f64 = (0..p).map(|j| fit.beta[j] * means[j]).sum();
        for r in a..b {
            let mut c = vec![0.0; all_groups.len()];
            c[0] = fit.fixed[r] + base;
            for j in 0..p {
                c[group_index[j]] += fit.beta[j] * (x[r * p + j] - means[j]);
            }
            terms.push(c);
        }
    }
    Ok(CategoryModel { category: cat.to_string(), names, beta: fit.beta, groups: regressor_groups, series })
}
