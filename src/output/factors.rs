//! `factors` and `explain` as text: the estimates as tables with the demo generator's truth beside
//! them when the lake has one, the group importance, and one series' decomposition with the local
//! inputs (closures, events, known covariates) over its horizon.

use std::fmt::Write;

use chrono::NaiveDate;
use serde::Serialize;

use crate::demo::truth::Truth;
use crate::factors::FactorMetrics;
use crate::factors::estimates::Analysis;
use crate::factors::explain::ExplainRow;
use crate::factors::importance::Importance;
use crate::factors::local::LocalInputs;

/// `shelfcast factors`: the analysis (with the group importance when measured), what was written
/// to the lake, and the demo generator's truth when the lake has one.
#[derive(Debug, Clone, Serialize)]
pub struct FactorsDone {
    /// The last day of history used.
    pub cutoff: NaiveDate,
    /// Estimates, fitted models and the group importance.
    pub analysis: Analysis,
    /// The `factors/` dataset written (`--write`).
    pub written: Option<FactorMetrics>,
    /// The true effects of a demo lake.
    pub truth: Option<Truth>,
}

/// The estimates, then the group importance when measured.
pub fn factors(f: &FactorsDone) -> String {
    let mut out = analysis(&f.analysis, f.truth.as_ref());
    if let Some(imp) = &f.analysis.importance {
        out.push('\n');
        out.push_str(&importance(imp));
    }
    out
}

/// One series explained by `shelfcast explain`.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesExplained {
    /// The item.
    pub item: String,
    /// The location.
    pub location: String,
    /// The item's category, whose factor model explains it.
    pub category: String,
    /// One row per horizon period: level, multipliers, forecast.
    pub rows: Vec<ExplainRow>,
    /// Its closures, local events and known covariates over the horizon.
    pub local: LocalInputs,
}

/// Each series' decomposition with its local inputs under it.
pub fn explained(series: &[SeriesExplained]) -> String {
    let mut out = String::new();
    for e in series {
        let _ = writeln!(out, "{}", explain(&e.item, &e.location, &e.category, &e.rows));
        let _ = writeln!(out, "{}", local(&e.local));
    }
    out
}

/// The elasticities, promotions, weekly profile and driver shares as aligned tables.
pub fn analysis(a: &Analysis, truth: Option<&Truth>) -> String {
    let mut s = String::new();
    let cats: Vec<&str> = a.models.iter().map(|m| m.category.as_str()).collect();
    let t = |f: &dyn Fn(&Truth) -> Option<f64>| truth.and_then(f).map_or("-".to_string(), |v| format!("{v:.2}"));
    let ci = |lo: Option<f64>, hi: Option<f64>| match (lo, hi) {
        (Some(l), Some(h)) => format!("[{l:.2}, {h:.2}]"),
        _ => String::new(),
    };
    let _ = writeln!(
        s,
        "price elasticities (95% intervals){}",
        if truth.is_some() { "; true: the demo truth" } else { "" }
    );
    let _ =
        writeln!(s, "{:<14} {:>7} {:<18} {:>7} {:>7} {:<18} {:>7}", "category", "own", "", "true", "cross", "", "true");
    for c in &cats {
        let own = a.get("elasticity", c, "own_price");
        let cross = a.get("elasticity", c, "competitor_price");
        let _ = writeln!(
            s,
            "{:<14} {:>7} {:<18} {:>7} {:>7} {:<18} {:>7}",
            c,
            own.map_or("-".into(), |e| format!("{:.2}", e.value)),
            own.map_or(String::new(), |e| ci(e.low, e.high)),
            t(&|tr| tr.categories.get(*c).map(|x| x.price_elasticity)),
            cross.map_or("-".into(), |e| format!("{:.2}", e.value)),
            cross.map_or(String::new(), |e| ci(e.low, e.high)),
            t(&|tr| tr.categories.get(*c).map(|x| x.competitor_elasticity)),
        );
    }
    let _ = writeln!(
        s,
        "\npromotion uplift on top of the price effect, % (units over the history); total: with its price cut"
    );
    let _ = writeln!(
        s,
        "{:<14} {:<14} {:>7} {:<18} {:>7} {:>10} {:>8} {:>11}",
        "category", "kind", "uplift", "", "true", "units", "total", "total units"
    );
    for c in &cats {
        for e in a
            .estimates
            .iter()
            .filter(|e| e.category == *c && (e.section == "promotion" || e.section == "post_promotion"))
        {
            let want = truth.and_then(|tr| tr.categories.get(*c)).and_then(|x| {
                if e.section == "post_promotion" {
                    Some((x.post_promo_dip - 1.0) * 100.0)
                } else {
                    x.promo_uplift.get(&e.factor).map(|m| (m - 1.0) * 100.0)
                }
            });
            let total = a.get("promotion_total", c, &e.factor);
            let _ = writeln!(
                s,
                "{:<14} {:<14} {:>7.1} {:<18} {:>7} {:>10.0} {:>8} {:>11}",
                c,
                if e.section == "post_promotion" { "post-dip" } else { e.factor.as_str() },
                e.value,
                ci(e.low, e.high),
                want.map_or("-".into(), |w| format!("{w:.1}")),
                e.units.unwrap_or(0.0),
                total.map_or(String::new(), |t| format!("{:.1}", t.value)),
                total.and_then(|t| t.units).map_or(String::new(), |u| format!("{u:.0}")),
            );
        }
    }
    let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    if a.estimates.iter().any(|e| e.section == "weekly") {
        let _ =
            writeln!(s, "\nweekly index (1 = average day){}", if truth.is_some() { "; second line: true" } else { "" });
        let _ = writeln!(s, "{:<14} {}", "category", days.map(|d| format!("{d:>6}")).join(""));
        for c in &cats {
            let row: String = days
                .iter()
                .map(|d| a.get("weekly", c, d).map_or("     -".into(), |e| format!("{:>6.2}", e.value)))
                .collect();
            let _ = writeln!(s, "{c:<14} {row}");
            if let Some(x) = truth.and_then(|tr| tr.categories.get(*c)) {
                let row: String = x.weekly_profile.iter().map(|v| format!("{v:>6.2}")).collect();
                let _ = writeln!(s, "{:<14} {row}", "  true");
            }
        }
    }
    if a.estimates.iter().any(|e| e.section == "yearly") {
        let _ = writeln!(s, "\nyearly cycle (first harmonic of log demand)");
        let _ = writeln!(s, "{:<14} {:>9} {:>7} {:>9} {:>7}", "category", "amplitude", "true", "peak day", "true");
        for c in &cats {
            let x = truth.and_then(|tr| tr.categories.get(*c));
            let _ = writeln!(
                s,
                "{:<14} {:>9} {:>7} {:>9} {:>7}",
                c,
                a.get("yearly", c, "amplitude").map_or("-".into(), |e| format!("{:.2}", e.value)),
                x.map_or("-".into(), |x| format!("{:.2}", x.yearly_amplitude)),
                a.get("yearly", c, "peak_day").map_or("-".into(), |e| format!("{:.0}", e.value)),
                x.map_or("-".into(), |x| format!("{:.0}", x.yearly_peak_doy)),
            );
        }
    }
    if a.estimates.iter().any(|e| e.section == "event") {
        let _ = writeln!(s, "\nevent multipliers (demand on the event's period against a usual one)");
        for c in &cats {
            for e in a.estimates.iter().filter(|e| e.section == "event" && e.category == *c) {
                let want = truth
                    .and_then(|tr| Some(tr.events.get(&e.factor)?.powf(tr.categories.get(*c)?.event_sensitivity)))
                    .map(|w| format!("  (true {w:.2})"));
                let _ = writeln!(
                    s,
                    "{:<14} {:<20} {:>6.2} {:<18}{}",
                    c,
                    e.factor,
                    e.value,
                    ci(e.low, e.high),
                    want.unwrap_or_default()
                );
            }
        }
    }
    let locations: std::collections::BTreeSet<&str> =
        a.estimates.iter().filter(|e| e.section.starts_with("location_")).map(|e| e.category.as_str()).collect();
    if !locations.is_empty() {
        let _ = writeln!(
            s,
            "\nper location (its series fitted alone, categories pooled): elasticities; promotion uplift and dip, %"
        );
        for l in &locations {
            let cells: Vec<String> = a
                .estimates
                .iter()
                .filter(|e| {
                    e.category == *l
                        && ["location_elasticity", "location_promotion", "location_post_promotion"]
                            .contains(&e.section.as_str())
                })
                .map(|e| {
                    let name = if e.section == "location_post_promotion" { "post-dip" } else { e.factor.as_str() };
                    let v = if e.section == "location_elasticity" {
                        format!("{:.2}", e.value)
                    } else {
                        format!("{:.1}", e.value)
                    };
                    format!("{name} {v} {}", ci(e.low, e.high))
                })
                .collect();
            if !cells.is_empty() {
                let _ = writeln!(s, "{l:<14} {}", cells.join("  "));
            }
        }
    }
    let _ = writeln!(s, "\ndrivers by share of the variance of log demand");
    for e in a.estimates.iter().filter(|e| e.section == "driver_share" && e.category == "all") {
        let want =
            truth.and_then(|tr| tr.outcome.log_variance.get(&e.factor)).map(|v| format!("  (true variance {v:.4})"));
        let _ = writeln!(s, "  {:<12} {:>6.2}%{}", e.factor, e.value * 100.0, want.unwrap_or_default());
    }
    if let Some(tr) = truth {
        let _ = writeln!(s, "  true ranking: {}", tr.outcome.factor_ranking.join(", "));
    }
    for (c, why) in &a.skipped {
        let _ = writeln!(s, "skipped {c}: {why}");
    }
    s
}

/// A text table of the importance over all series: one row per model and group, the WAPE
/// increase (percentage points) and the MAE increase with their spreads.
pub fn importance(imp: &Importance) -> String {
    let mut out = String::new();
    let cutoffs: Vec<String> = imp.cutoffs.iter().map(|c| c.to_string()).collect();
    let _ = writeln!(
        out,
        "Group importance ({}, {} repeat(s), windows at {}, horizon {}): increase of WAPE (points) and MAE",
        imp.method,
        imp.repeats,
        cutoffs.join(", "),
        imp.horizon
    );
    let _ = writeln!(
        out,
        "{:<14} {:<14} {:>9} {:>10} {:>8} {:>9} {:>10} {:>8}  method",
        "model", "group", "WAPE%", "+WAPE", "±sd", "MAE", "+MAE", "±sd"
    );
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    for r in imp.rows.iter().filter(|r| r.scope == "all" && r.metric == "wape") {
        let mae = imp.get(&r.model, &r.group, "all", "mae");
        let _ = writeln!(
            out,
            "{:<14} {:<14} {:>9} {:>10} {:>8} {:>9} {:>10} {:>8}  {}",
            r.model,
            r.group,
            f(r.baseline, 2),
            f(r.increase, 3),
            f(r.std, 3),
            f(mae.and_then(|m| m.baseline), 3),
            f(mae.and_then(|m| m.increase), 4),
            f(mae.and_then(|m| m.std), 4),
            r.method
        );
    }
    out
}

/// The decomposition as an aligned text table.
pub fn explain(item: &str, location: &str, category: &str, rows: &[ExplainRow]) -> String {
    let drivers: Vec<&str> =
        rows.first().map(|r| r.multipliers.keys().map(String::as_str).collect()).unwrap_or_default();
    let mut s = format!("{item} at {location} ({category}): forecast = level × multipliers\n");
    s.push_str(&format!("{:<10} {:>8}", "date", "level"));
    for d in &drivers {
        s.push_str(&format!(" {:>10}", d));
    }
    s.push_str(&format!(" {:>9}\n", "forecast"));
    for r in rows {
        s.push_str(&format!("{:<10} {:>8.2}", r.date, r.level));
        for d in &drivers {
            s.push_str(&format!(" {:>10.3}", r.multipliers.get(*d).copied().unwrap_or(1.0)));
        }
        s.push_str(&format!(" {:>9.2}\n", r.forecast));
    }
    s
}

/// The local inputs as text, under the decomposition.
pub fn local(inputs: &LocalInputs) -> String {
    if inputs.is_empty() {
        return "no closures, local events or known covariates of its own over the horizon\n".into();
    }
    let mut s = String::new();
    if !inputs.closed.is_empty() {
        s.push_str("closed (forecast 0 when closed the whole period):\n");
        for (d, share, reason) in &inputs.closed {
            s.push_str(&format!("  {d}  {:>4.0}% closed  {}\n", share * 100.0, reason.as_deref().unwrap_or("")));
        }
    }
    if !inputs.events.is_empty() {
        s.push_str("events of its location or region:\n");
        for (d, e) in &inputs.events {
            s.push_str(&format!("  {d}  {e}\n"));
        }
    }
    for (name, values) in &inputs.covariates {
        let shown: Vec<String> = values.iter().map(|(d, v)| format!("{d} {v}")).collect();
        s.push_str(&format!("known covariate user:{name}: {}\n", shown.join(", ")));
    }
    s
}
