//! The report as one self-contained HTML page: inline CSS (`report.css`, embedded), inline SVG
//! charts ([`super::chart`]), and the tables of [`super::tables`]. Nothing is fetched when the
//! page opens: no script, stylesheet, font or image from elsewhere.
//!
//! The page is also well-formed XML (void elements are closed, all text is escaped), so tests
//! can parse it with an XML reader.

use std::collections::BTreeMap;
use std::fmt::Write;

use super::chart::{self, Band, BarChart, BarGroup, Line, LineChart, Marker, XAxis, day_number, escape};
use super::tables::{self, Table};
use super::{Report, SeriesView, Why};

/// The page's stylesheet.
const CSS: &str = include_str!("report.css");

/// Colour of the actuals in series charts.
const ACTUAL: &str = "#374151";

/// A colour for every model the report names, stable across its charts and tables.
pub fn model_colors(r: &Report) -> BTreeMap<String, &'static str> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |m: &str| {
        if !m.is_empty() && !names.iter().any(|n| n == m) {
            names.push(m.to_string());
        }
    };
    if let Some(b) = &r.backtest {
        b.models.iter().for_each(|m| add(&m.model));
    }
    r.champions.segments.values().for_each(|c| add(&c.model));
    r.champions.history.iter().flat_map(|h| h.held.values()).for_each(|h| add(&h.model));
    r.champions.decisions.iter().for_each(|d| add(&d.challenger));
    if let Some(p) = &r.published {
        p.models.keys().for_each(|m| add(m));
    }
    if let Some(t) = &r.tracked {
        t.models.iter().for_each(|m| add(&m.model));
    }
    r.series.iter().for_each(|s| add(&s.model));
    names.into_iter().enumerate().map(|(i, n)| (n, chart::color(i))).collect()
}

fn table(out: &mut String, t: &Table, colors: &BTreeMap<String, &'static str>) {
    let _ = write!(
        out,
        r#"<div class="table-wrap"><table id="{}"><caption>{}</caption><thead><tr>"#,
        t.id,
        escape(&t.caption)
    );
    for h in &t.header {
        let _ = write!(out, "<th>{}</th>", escape(h));
    }
    out.push_str("</tr></thead><tbody>");
    if t.rows.is_empty() {
        let _ = write!(out, r#"<tr><td colspan="{}" class="empty">none</td></tr>"#, t.header.len().max(1));
    }
    for r in &t.rows {
        out.push_str("<tr>");
        for c in r {
            let class = if c.numeric { r#" class="num""# } else { "" };
            let swatch = c
                .model
                .as_ref()
                .and_then(|m| colors.get(m))
                .map(|col| format!(r#"<span class="swatch" style="background:{col}"></span>"#))
                .unwrap_or_default();
            let _ = write!(out, "<td{class}>{swatch}{}</td>", escape(&c.text));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table></div>");
}

fn figure(out: &mut String, svg: &str, caption: &str) {
    let _ = write!(out, r#"<figure>{svg}<figcaption>{}</figcaption></figure>"#, escape(caption));
}

/// Model comparison: MASE and WAPE per model.
fn comparison_charts(r: &Report, colors: &BTreeMap<String, &'static str>) -> Vec<(String, String)> {
    let Some(b) = &r.backtest else { return Vec::new() };
    let names: Vec<String> = b.models.iter().map(|m| m.model.clone()).collect();
    let model_colors: Vec<String> =
        names.iter().map(|n| colors.get(n).copied().unwrap_or("#999").to_string()).collect();
    let single = |title: &str, label: &str, values: Vec<Option<f64>>| {
        let mut c = BarChart::new(title, names.clone());
        c.x_label = label.to_string();
        c.width = 520.0;
        c.groups.push(BarGroup { name: label.to_string(), color: "#4e79a7".into(), values });
        c.category_colors = model_colors.clone();
        c.render()
    };
    vec![
        (
            single("MASE by model", "MASE (lower is better)", b.models.iter().map(|m| m.overall.mase).collect()),
            "Mean absolute scaled error over every backtest window.".to_string(),
        ),
        (
            single("WAPE by model", "WAPE % (lower is better)", b.models.iter().map(|m| m.overall.wape).collect()),
            "Weighted absolute percentage error over every backtest window.".to_string(),
        ),
    ]
}

/// Forecast value added over seasonal naive, two bars per model.
fn value_added_chart(r: &Report) -> Option<String> {
    let b = r.backtest.as_ref()?;
    let names: Vec<String> = b.models.iter().map(|m| m.model.clone()).collect();
    if b.value_added.iter().any(|v| v.mase_pct.is_some() || v.wape_pct.is_some()) {
        let mut c = BarChart::new("Forecast value added over seasonal naive", names.clone());
        c.x_label = "% better than seasonal naive".into();
        c.decimals = 1;
        c.width = 520.0;
        c.groups.push(BarGroup {
            name: "on MASE".into(),
            color: "#4e79a7".into(),
            values: b.value_added.iter().map(|v| v.mase_pct).collect(),
        });
        c.groups.push(BarGroup {
            name: "on WAPE".into(),
            color: "#a0cbe8".into(),
            values: b.value_added.iter().map(|v| v.wape_pct).collect(),
        });
        return Some(c.render());
    }
    None
}

/// Bar charts of the factors: elasticities and promotion uplift per category, driver shares.
fn factor_charts(r: &Report) -> Vec<(String, String)> {
    let Some(f) = &r.factors else { return vec![] };
    let mut out = Vec::new();
    let mut cats: Vec<String> =
        f.estimates.iter().filter(|e| e.section == "elasticity").map(|e| e.category.clone()).collect();
    cats.dedup();
    let value = |section: &str, cat: &str, factor: &str| {
        f.estimates.iter().find(|e| e.section == section && e.category == cat && e.factor == factor).map(|e| e.value)
    };
    if !cats.is_empty() {
        let mut c = BarChart::new("Price elasticity by category", cats.clone());
        c.x_label = "% change in demand per 1% change in price".into();
        c.decimals = 2;
        c.width = 520.0;
        for (i, (factor, name)) in
            [("own_price", "own price"), ("competitor_price", "competitor price")].iter().enumerate()
        {
            c.groups.push(BarGroup {
                name: name.to_string(),
                color: chart::color(i).into(),
                values: cats.iter().map(|cat| value("elasticity", cat, factor)).collect(),
            });
        }
        out.push((
            c.render(),
            "Own-price elasticity (< 0) and cross-price elasticity to the cheapest competitor.".into(),
        ));
        let mut kinds: Vec<String> =
            f.estimates.iter().filter(|e| e.section == "promotion").map(|e| e.factor.clone()).collect();
        kinds.sort();
        kinds.dedup();
        let mut c = BarChart::new("Promotion uplift by category", cats.clone());
        c.x_label = "% more demand on promotion days".into();
        c.decimals = 1;
        c.width = 520.0;
        for (i, k) in kinds.iter().enumerate() {
            c.groups.push(BarGroup {
                name: k.clone(),
                color: chart::color(i).into(),
                values: cats.iter().map(|cat| value("promotion", cat, k)).collect(),
            });
        }
        c.groups.push(BarGroup {
            name: "after a promotion".into(),
            color: chart::color(kinds.len()).into(),
            values: cats.iter().map(|cat| value("post_promotion", cat, "dip")).collect(),
        });
        out.push((
            c.render(),
            "On top of the price effect of the promotion's discount; the dip is the week after.".into(),
        ));
    }
    let shares: Vec<&crate::factors::Estimate> =
        f.estimates.iter().filter(|e| e.section == "driver_share" && e.category == "all").collect();
    if !shares.is_empty() {
        let mut c = BarChart::new("Drivers of demand", shares.iter().map(|e| e.factor.clone()).collect());
        c.x_label = "% of the variance of log demand".into();
        c.decimals = 2;
        c.width = 520.0;
        c.groups.push(BarGroup {
            name: "share".into(),
            color: chart::color(0).into(),
            values: shares.iter().map(|e| Some(e.value * 100.0)).collect(),
        });
        out.push((
            c.render(),
            "Each driver's fitted term; level and trend include the differences between series.".into(),
        ));
    }
    if let Some(c) = importance_chart(f.importance.as_ref()) {
        out.push((
            c,
            "Permutation importance on the backtest windows: how much worse each model forecasts when the \
             group's covariates are scrambled (or removed and the model refitted). Models that read no \
             covariates show 0; calendar groups are not measured."
                .into(),
        ));
    }
    out
}

/// Bars of the WAPE increase per group (all series), one bar per model.
fn importance_chart(imp: Option<&crate::factors::importance::Importance>) -> Option<String> {
    let imp = imp?;
    let all = |r: &&crate::factors::importance::ImportanceRow| r.scope == "all" && r.metric == "wape";
    let mut groups: Vec<String> =
        imp.rows.iter().filter(all).filter(|r| r.increase.is_some()).map(|r| r.group.clone()).collect();
    let mut seen = std::collections::BTreeSet::new();
    groups.retain(|g| seen.insert(g.clone()));
    if groups.is_empty() {
        return None;
    }
    let mut c = BarChart::new("Accuracy lost without each factor group", groups.clone());
    c.x_label = "WAPE increase, percentage points".into();
    c.decimals = 2;
    c.width = 520.0;
    for (i, m) in imp.models.iter().enumerate() {
        c.groups.push(BarGroup {
            name: m.clone(),
            color: chart::color(i).into(),
            values: groups.iter().map(|g| imp.get(m, g, "all", "wape").and_then(|r| r.increase)).collect(),
        });
    }
    Some(c.render())
}

/// The champion metric per horizon step, a line per model.
fn step_chart(r: &Report, colors: &BTreeMap<String, &'static str>) -> Option<String> {
    let b = r.backtest.as_ref()?;
    let name = tables::metric_name(r.metric);
    let mut c = LineChart::new(format!("{name} by horizon step"), XAxis::Number { integer: true });
    c.y_label = name.to_string();
    c.width = 1040.0;
    c.height = 320.0;
    for m in &b.models {
        let pts: Vec<(f64, f64)> =
            m.per_step.iter().filter_map(|(s, sc)| r.metric.of(sc).map(|v| (*s as f64, v))).collect();
        let mut l = Line::new(&m.model, colors.get(&m.model).copied().unwrap_or("#999"), vec![pts]);
        l.dots = b.horizon <= 60;
        c.lines.push(l);
    }
    (!c.is_empty()).then(|| c.render())
}

/// The tracked champion metric by forecast cutoff (the earlier run dates), a line per model: how
/// the accuracy of what was forecast moves from one run to the next.
fn tracked_chart(r: &Report, colors: &BTreeMap<String, &'static str>) -> Option<String> {
    let t = r.tracked.as_ref()?;
    let name = tables::metric_name(r.metric);
    let mut c = LineChart::new(format!("Tracked {name} by forecast cutoff"), XAxis::Date);
    c.y_label = name.to_string();
    c.width = 1040.0;
    c.height = 320.0;
    for m in &t.models {
        let pts: Vec<(f64, f64)> =
            m.per_window.iter().filter_map(|(d, sc)| r.metric.of(sc).map(|v| (day_number(*d), v))).collect();
        let mut l = Line::new(&m.model, colors.get(&m.model).copied().unwrap_or("#999"), vec![pts]);
        l.dots = true;
        l.dashed = m.model != crate::evaluate::tracking::PUBLISHED;
        c.lines.push(l);
    }
    (!c.is_empty()).then(|| c.render())
}

/// The champion metric per demand class, a bar per model.
fn class_chart(r: &Report, colors: &BTreeMap<String, &'static str>) -> Option<String> {
    let t = tables::by_class(r)?;
    let b = r.backtest.as_ref()?;
    if t.rows.is_empty() {
        return None;
    }
    let classes: Vec<String> = t.rows.iter().map(|row| row[0].text.clone()).collect();
    let name = tables::metric_name(r.metric);
    let mut c = BarChart::new(format!("{name} by demand class"), classes.clone());
    c.x_label = name.to_string();
    c.width = 1040.0;
    for m in &b.models {
        c.groups.push(BarGroup {
            name: m.model.clone(),
            color: colors.get(&m.model).copied().unwrap_or("#999").to_string(),
            values: classes.iter().map(|k| m.per_class.get(k).and_then(|s| r.metric.of(s))).collect(),
        });
    }
    Some(c.render())
}

/// The x of a period on a date axis: its middle (a period is labelled by its first day).
fn mid(r: &Report, first_day: chrono::NaiveDate) -> f64 {
    day_number(first_day) + r.frequency.days() as f64 / 2.0
}

/// The x of the end of a cutoff day: the boundary between history and forecast.
fn boundary(cutoff: chrono::NaiveDate) -> f64 {
    day_number(cutoff) + 1.0
}

/// Actuals, the backtest forecasts with their band, and the published forecast with its band.
fn series_chart(r: &Report, s: &SeriesView, color: &str) -> String {
    let mut c = LineChart::new(format!("{} / {}", s.item_id, s.location_id), XAxis::Date);
    c.y_label = "units".into();
    c.width = 560.0;
    c.height = 300.0;
    let mut windows: BTreeMap<Option<chrono::NaiveDate>, Vec<&super::ForecastPoint>> = BTreeMap::new();
    for p in &s.backtest {
        windows.entry(p.cutoff).or_default().push(p);
    }
    let band = |pts: &[&super::ForecastPoint]| -> Vec<(f64, f64, f64)> {
        pts.iter().filter_map(|p| Some((mid(r, p.date), p.lo?, p.hi?))).collect()
    };
    let mean =
        |pts: &[&super::ForecastPoint]| -> Vec<(f64, f64)> { pts.iter().map(|p| (mid(r, p.date), p.mean)).collect() };
    if !windows.is_empty() {
        c.bands.push(Band::new("10–90%", color, windows.values().map(|w| band(w)).collect()));
    }
    let published: Vec<&super::ForecastPoint> = s.forecast.iter().collect();
    if let (false, Some((lo, hi))) = (published.is_empty(), s.forecast_band) {
        // One legend entry when both bands are the 10–90% interval.
        let same = windows.is_empty() || ((lo - 0.1).abs() < 1e-9 && (hi - 0.9).abs() < 1e-9);
        let name =
            if same && !windows.is_empty() { String::new() } else { format!("{}–{}%", percent(lo), percent(hi)) };
        c.bands.push(Band::new(name, color, vec![band(&published)]));
    }
    c.lines.push(Line::new("actual", ACTUAL, vec![s.actuals.iter().map(|a| (mid(r, a.date), a.y)).collect()]));
    if !windows.is_empty() {
        c.lines.push(Line::new("backtest", color, windows.values().map(|w| mean(w)).collect()));
    }
    if !published.is_empty() {
        let mut l = Line::new("published", color, vec![mean(&published)]);
        l.dashed = true;
        c.lines.push(l);
    }
    if let Some(b) = &r.backtest {
        for (i, cut) in b.cutoffs.iter().enumerate() {
            c.markers.push(Marker { x: boundary(*cut), label: format!("window {}", i + 1) });
        }
    }
    if let Some(cut) = r.run.cutoff
        && !published.is_empty()
    {
        c.markers.push(Marker { x: boundary(cut), label: "cutoff".into() });
    }
    c.render()
}

/// A quantile level as a percentage, without float noise (0.025 → 2.5).
fn percent(level: f64) -> String {
    format!("{}", (level * 1000.0).round() / 10.0)
}

fn totals_chart(r: &Report) -> Option<String> {
    let p = r.published.as_ref()?;
    let mut c = LineChart::new("Total units over all series", XAxis::Date);
    c.y_label = "units".into();
    c.width = 1040.0;
    c.height = 280.0;
    let points = |t: &[super::PeriodTotal]| t.iter().map(|t| (mid(r, t.date), t.units)).collect::<Vec<_>>();
    c.lines.push(Line::new("actual", ACTUAL, vec![points(&p.actual_totals)]));
    let mut l = Line::new("forecast mean", "#4e79a7", vec![points(&p.totals)]);
    l.dashed = true;
    c.lines.push(l);
    if let Some(cut) = p.cutoff {
        c.markers.push(Marker { x: boundary(cut), label: "cutoff".into() });
    }
    (!c.is_empty()).then(|| c.render())
}

fn card(out: &mut String, label: &str, value: &str) {
    let _ = write!(
        out,
        r#"<div class="card"><div class="label">{}</div><div class="value">{}</div></div>"#,
        escape(label),
        escape(value)
    );
}

/// The whole page.
pub fn render(r: &Report) -> String {
    let colors = model_colors(r);
    let mut out = String::with_capacity(64 * 1024);
    let title = format!("shelfcast run report · {}", r.run.run_id);
    let _ = write!(
        out,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/><title>{}</title><style>{}</style></head><body>"#,
        escape(&title),
        CSS
    );
    let what = match (&r.run.job, r.run.run_date) {
        (Some(job), Some(d)) => format!("job {job} · run date {d}"),
        _ => "backtest".to_string(),
    };
    let _ = write!(
        out,
        r#"<header><h1>Run report</h1><p class="sub"><code>{}</code> · {} · cutoff {} · status <span class="status">{}</span></p></header><main>"#,
        escape(&r.run.run_id),
        escape(&what),
        r.run.cutoff.map_or("-".to_string(), |c| c.to_string()),
        escape(r.run.status.as_deref().unwrap_or("-"))
    );

    out.push_str(r#"<section class="cards">"#);
    if let Some(p) = &r.published {
        card(&mut out, "series published", &p.series.to_string());
        card(&mut out, "forecast rows", &p.rows.to_string());
    }
    if let Some(b) = &r.backtest {
        card(&mut out, "models backtested", &b.models.len().to_string());
        card(&mut out, "backtest windows", &format!("{} × {} periods", b.cutoffs.len(), b.horizon));
    }
    if let Some(c) = r.champions.segments.get(crate::evaluate::champion::ALL) {
        card(&mut out, "champion (all series)", &c.model);
    }
    let promoted = r.champions.decisions.iter().filter(|d| d.promoted).count();
    card(&mut out, "promotions this run", &promoted.to_string());
    out.push_str("</section>");

    if r.backtest.is_some() {
        out.push_str(r#"<section id="comparison"><h2>Model comparison</h2><div class="grid">"#);
        for (svg, caption) in comparison_charts(r, &colors) {
            figure(&mut out, &svg, &caption);
        }
        out.push_str("</div>");
        if let Some(t) = tables::scores(r) {
            table(&mut out, &t, &colors);
        }
        out.push_str(r#"<div class="grid">"#);
        if let Some(svg) = value_added_chart(r) {
            figure(&mut out, &svg, "FVA = 100 · (1 − model / seasonal naive); bars to the left are worse.");
        }
        if let Some(t) = tables::value_added(r) {
            table(&mut out, &t, &colors);
        }
        out.push_str("</div></section>");

        out.push_str(r#"<section id="horizon"><h2>Error by horizon step</h2>"#);
        if let Some(svg) = step_chart(r, &colors) {
            figure(&mut out, &svg, "Each model's error at each step after the cutoff, pooled over windows and series.");
        }
        if let Some(t) = tables::by_step(r) {
            let _ = write!(out, "<details><summary>{} (table)</summary>", escape(&t.caption));
            table(&mut out, &t, &colors);
            out.push_str("</details>");
        }
        out.push_str("</section>");

        out.push_str(r#"<section id="segments"><h2>By segment and window</h2>"#);
        if let Some(svg) = class_chart(r, &colors) {
            figure(&mut out, &svg, "Demand classes (Syntetos–Boylan) of the series at each cutoff.");
        }
        for t in [tables::by_class(r), tables::by_window(r)].into_iter().flatten() {
            table(&mut out, &t, &colors);
        }
        out.push_str("</section>");
    }

    if r.tracked.is_some() {
        out.push_str(r#"<section id="tracked"><h2>Tracked accuracy</h2><p class="note">The forecasts made on earlier run dates (the published one and every model's shadow forecast) against the actuals that arrived since.</p>"#);
        if let Some(svg) = tracked_chart(r, &colors) {
            let caption = "Each point scores the forecast made at that cutoff on the periods whose actuals have \
                           arrived since (the latest cutoffs on the fewest). Solid: the published forecast; dashed: \
                           each model's shadow forecast.";
            figure(&mut out, &svg, caption);
        }
        for t in [tables::tracked(r), tables::tracked_trend(r), tables::tracked_by_step(r)].into_iter().flatten() {
            table(&mut out, &t, &colors);
        }
        out.push_str("</section>");
    }

    if !r.series.is_empty() {
        out.push_str(r#"<section id="series"><h2>Series</h2><p class="note">Actuals, the backtest forecasts of the model serving each series with their 10–90% band, and the published forecast after the cutoff. The largest series by units over the backtest periods, then the one with the highest MASE.</p><div class="grid">"#);
        for s in &r.series {
            let color = colors.get(&s.model).copied().unwrap_or("#4e79a7");
            let why = match s.why {
                Why::Volume => "largest by volume",
                Why::Worst => "worst MASE",
            };
            let caption =
                format!("{why} · {} · MASE {} · {} units", s.model, tables::score(s.mase), tables::whole(s.volume));
            figure(&mut out, &series_chart(r, s, color), &caption);
        }
        out.push_str("</div>");
        table(&mut out, &tables::series(r), &colors);
        out.push_str("</section>");
    }

    out.push_str(r#"<section id="champions"><h2>Champions</h2>"#);
    for t in [tables::decisions(r), tables::champions(r), tables::history(r)] {
        table(&mut out, &t, &colors);
    }
    out.push_str("</section>");

    if r.published.is_some() {
        out.push_str(r#"<section id="published-forecast"><h2>Published forecast</h2>"#);
        if let Some(svg) = totals_chart(r) {
            figure(
                &mut out,
                &svg,
                "Actual units before the cutoff and the mean forecast after it, summed over every published series.",
            );
        }
        out.push_str(r#"<div class="grid">"#);
        for t in [tables::published(r), tables::published_models(r)].into_iter().flatten() {
            table(&mut out, &t, &colors);
        }
        out.push_str("</div>");
        if let Some(t) = tables::totals(r) {
            out.push_str("<details><summary>Total units per period (table)</summary>");
            table(&mut out, &t, &colors);
            out.push_str("</details>");
        }
        out.push_str("</section>");
    }

    if r.factors.is_some() {
        out.push_str(r#"<section id="factors"><h2>What moves demand</h2><p class="note">A log-linear regression of units on log prices, promotions, calendar and events, with a level and a trend per series, fitted per category on the history (stock-out days enter as censored demand).</p><div class="grid">"#);
        for (svg, caption) in factor_charts(r) {
            figure(&mut out, &svg, &caption);
        }
        out.push_str("</div>");
        for t in [tables::elasticities(r), tables::promotions(r), tables::drivers(r), tables::importance(r)]
            .into_iter()
            .flatten()
        {
            table(&mut out, &t, &colors);
        }
        if let Some(t) = tables::importance_rollup(r) {
            let _ = write!(out, "<details><summary>{} (table)</summary>", escape(&t.caption));
            table(&mut out, &t, &colors);
            out.push_str("</details>");
        }
        out.push_str("</section>");
    }

    if r.local.is_some() {
        out.push_str(r#"<section id="local"><h2>Your own inputs</h2>"#);
        for t in [tables::closures(r), tables::covariates(r)].into_iter().flatten() {
            table(&mut out, &t, &colors);
        }
        out.push_str("</section>");
    }

    out.push_str(r#"<section id="run"><h2>Run</h2><div class="grid">"#);
    table(&mut out, &tables::run(r), &colors);
    out.push_str("</div>");
    table(&mut out, &tables::steps(r), &colors);
    out.push_str("</section>");

    if !r.notes.is_empty() {
        out.push_str(r#"<section id="notes"><h2>Notes</h2><ul>"#);
        for n in &r.notes {
            let _ = write!(out, "<li>{}</li>", escape(n));
        }
        out.push_str("</ul></section>");
    }
    let _ = writeln!(
        out,
        "</main><footer>shelfcast {} · report schema {} · made {}</footer></body></html>",
        env!("CARGO_PKG_VERSION"),
        r.schema_version,
        r.generated_at.format("%Y-%m-%d %H:%M:%S UTC")
    );
    out
}
