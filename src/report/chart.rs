//! SVG charts drawn in Rust for the run report: line charts with shaded bands, horizontal bar
//! charts, axes with ticks and labels, legends.
//!
//! Every chart is one `<svg>` element with a `viewBox`, so it scales with the page and needs no
//! script, stylesheet or font from outside. Invariants the report's tests check:
//!
//! - every coordinate written is a finite number: points with a non-finite value are dropped
//!   before drawing, and a scale over an empty or one-point domain still maps to finite values;
//! - every piece of text is escaped ([`escape`]);
//! - axis ticks are "nice" numbers: 1, 2 or 5 times a power of ten ([`nice_ticks`]), or whole
//!   days, weeks and months on a date axis ([`date_ticks`]).
//!
//! ```
//! use shelfcast::report::chart::{Line, LineChart, XAxis};
//! let mut c = LineChart::new("Units", XAxis::Number { integer: true });
//! c.lines.push(Line::new("actual", "#333", vec![vec![(1.0, 2.0), (2.0, 3.5)]]));
//! assert!(c.render().starts_with("<svg"));
//! ```

use std::fmt::Write;

use chrono::{Datelike, Duration, NaiveDate};

/// Colours for series and models, in order (Tableau 10: distinct, and readable when printed in grey).
pub const PALETTE: [&str; 10] =
    ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"];

/// The colour of the `i`-th model or series.
pub fn color(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// Escapes text for XML and HTML content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A coordinate as written in the SVG: one decimal, never NaN or infinite.
fn n(v: f64) -> String {
    // Callers only pass mapped finite values; this keeps the document valid if one slips through.
    if v.is_finite() { format!("{:.1}", v) } else { "0".to_string() }
}

/// A linear map from a data domain onto a pixel range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LinearScale {
    /// Domain start.
    pub d0: f64,
    /// Domain end.
    pub d1: f64,
    /// Range start (pixels).
    pub r0: f64,
    /// Range end (pixels).
    pub r1: f64,
}

impl LinearScale {
    /// A scale over `[d0, d1]`; an empty domain maps everything to the middle of the range.
    pub fn new(d0: f64, d1: f64, r0: f64, r1: f64) -> Self {
        Self { d0, d1, r0, r1 }
    }

    /// The pixel position of `v`.
    pub fn map(&self, v: f64) -> f64 {
        let span = self.d1 - self.d0;
        if !span.is_finite() || span.abs() < f64::EPSILON {
            return (self.r0 + self.r1) / 2.0;
        }
        self.r0 + (v - self.d0) / span * (self.r1 - self.r0)
    }
}

/// A nice step for about `max_ticks` ticks over `span`: 1, 2 or 5 times a power of ten.
pub fn nice_step(span: f64, max_ticks: usize) -> f64 {
    let span = if span.is_finite() && span > 0.0 { span } else { 1.0 };
    let raw = span / max_ticks.saturating_sub(1).max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let m = raw / mag;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// Ticks for the data range `[lo, hi]`: multiples of a [`nice_step`], from the last one at or
/// below `lo` to the first one at or above `hi` (which become the axis' domain). A range that
/// is empty or not finite is widened so the axis still has two ticks.
pub fn nice_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<f64> {
    let (mut lo, mut hi) = if lo.is_finite() && hi.is_finite() { (lo.min(hi), lo.max(hi)) } else { (0.0, 1.0) };
    if hi - lo < 1e-12 {
        let pad = if lo.abs() > 1e-12 { lo.abs() * 0.1 } else { 1.0 };
        lo -= if lo >= 0.0 && lo - pad < 0.0 { lo } else { pad };
        hi += pad;
    }
    let step = nice_step(hi - lo, max_ticks);
    let decimals = (-step.log10().floor()).max(0.0) as i32;
    let round = |v: f64| {
        let f = 10f64.powi(decimals);
        (v * f).round() / f
    };
    // A bound within rounding of a multiple of the step is that multiple.
    let first = (lo / step + 1e-9).floor() as i64;
    let last = (hi / step - 1e-9).ceil() as i64;
    (first..=last).map(|i| round(i as f64 * step)).collect()
}

/// The label of a number tick: no more decimals than its step needs.
pub fn tick_label(v: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let s = format!("{v:.decimals$}");
    if s == "-0" { "0".to_string() } else { s }
}

/// Day number of a date (days since 1970-01-01), the x value of date axes.
pub fn day_number(d: NaiveDate) -> f64 {
    let epoch = crate::days::epoch();
    (d - epoch).num_days() as f64
}

fn from_day_number(v: f64) -> NaiveDate {
    crate::days::epoch() + Duration::days(v.round() as i64)
}

/// Ticks of a date axis over day numbers `[lo, hi]`, with labels: every day, every other day,
/// Mondays every one or two weeks, or the first of every 1, 2, 3, 6 or 12 months; the finest
/// that gives at most `max_ticks`.
pub fn date_ticks(lo: f64, hi: f64, max_ticks: usize) -> Vec<(f64, String)> {
    if !(lo.is_finite() && hi.is_finite()) || hi < lo {
        return Vec::new();
    }
    let (start, end) = (from_day_number(lo), from_day_number(hi));
    let span = (end - start).num_days().max(1);
    let max = max_ticks.max(2) as i64;
    for step in [1i64, 2, 7, 14] {
        if span / step < max {
            let mut d = start;
            if step >= 7 {
                // Mondays.
                while d.weekday() != chrono::Weekday::Mon {
                    d += Duration::days(1);
                }
            }
            let mut out = Vec::new();
            while d <= end {
                out.push((day_number(d), d.format("%b %d").to_string()));
                d += Duration::days(step);
            }
            return out;
        }
    }
    let months = (span / 30).max(1);
    let every = [1i64, 2, 3, 6, 12, 24, 48].into_iter().find(|m| months / m < max).unwrap_or(48);
    let mut out = Vec::new();
    let mut index = start.year() as i64 * 12 + start.month0() as i64;
    loop {
        let d = NaiveDate::from_ymd_opt(index.div_euclid(12) as i32, index.rem_euclid(12) as u32 + 1, 1)
            .expect("a first of the month");
        if d > end {
            break;
        }
        if d >= start && index % every == 0 {
            let label = if d.month() == 1 || out.is_empty() {
                d.format("%b %Y").to_string()
            } else {
                d.format("%b").to_string()
            };
            out.push((day_number(d), label));
        }
        index += 1;
    }
    out
}

/// The polygon of a band segment `(x, lo, hi)`: its upper edge left to right, then its lower
/// edge right to left, in pixels.
pub fn band_polygon(segment: &[(f64, f64, f64)], sx: &LinearScale, sy: &LinearScale) -> Vec<(f64, f64)> {
    let mut pts: Vec<(f64, f64)> = segment.iter().map(|(x, _, hi)| (sx.map(*x), sy.map(*hi))).collect();
    pts.extend(segment.iter().rev().map(|(x, lo, _)| (sx.map(*x), sy.map(*lo))));
    pts
}

/// What the x axis holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum XAxis {
    /// Day numbers ([`day_number`]), labelled as dates.
    Date,
    /// Plain numbers; `integer`: ticks only on whole numbers (horizon steps).
    Number {
        /// Ticks only on whole numbers.
        integer: bool,
    },
}

/// One line of a line chart: one or more separate segments, drawn in the same colour.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend name.
    pub name: String,
    /// Stroke colour.
    pub color: String,
    /// Segments of `(x, y)`, each drawn as its own polyline.
    pub segments: Vec<Vec<(f64, f64)>>,
    /// Dashed stroke.
    pub dashed: bool,
    /// Dots at the points.
    pub dots: bool,
}

impl Line {
    /// A solid line without dots; points with a non-finite coordinate are dropped.
    pub fn new(name: impl Into<String>, color: impl Into<String>, segments: Vec<Vec<(f64, f64)>>) -> Self {
        let segments = segments
            .into_iter()
            .map(|s| s.into_iter().filter(|(x, y)| x.is_finite() && y.is_finite()).collect::<Vec<_>>())
            .filter(|s| !s.is_empty())
            .collect();
        Self { name: name.into(), color: color.into(), segments, dashed: false, dots: false }
    }
}

/// A shaded band between a lower and an upper line (a quantile interval).
#[derive(Debug, Clone)]
pub struct Band {
    /// Legend name.
    pub name: String,
    /// Fill colour.
    pub color: String,
    /// Segments of `(x, lo, hi)`; points with a non-finite value are dropped.
    pub segments: Vec<Vec<(f64, f64, f64)>>,
}

impl Band {
    /// A band; points with a non-finite value are dropped.
    pub fn new(name: impl Into<String>, color: impl Into<String>, segments: Vec<Vec<(f64, f64, f64)>>) -> Self {
        let segments = segments
            .into_iter()
            .map(|s| {
                s.into_iter()
                    .filter(|(x, lo, hi)| x.is_finite() && lo.is_finite() && hi.is_finite())
                    .collect::<Vec<_>>()
            })
            .filter(|s| !s.is_empty())
            .collect();
        Self { name: name.into(), color: color.into(), segments }
    }
}

/// A vertical dashed line at `x` with a small label (a cutoff).
#[derive(Debug, Clone)]
pub struct Marker {
    /// Position on the x axis.
    pub x: f64,
    /// Label drawn at the top.
    pub label: String,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Title, drawn at the top and used as the SVG's accessible name.
    pub title: String,
    /// The y axis' label.
    pub y_label: String,
    /// What the x axis holds.
    pub x_axis: XAxis,
    /// Bands, drawn under the lines.
    pub bands: Vec<Band>,
    /// Lines.
    pub lines: Vec<Line>,
    /// Vertical markers.
    pub markers: Vec<Marker>,
    /// Whether the y axis starts at zero (demand never goes below it).
    pub y_from_zero: bool,
    /// Width in pixels (the `viewBox`).
    pub width: f64,
    /// Height in pixels.
    pub height: f64,
}

/// Pixels around the plot area.
#[derive(Debug, Clone, Copy)]
struct Margins {
    top: f64,
    right: f64,
    bottom: f64,
    left: f64,
}

/// Approximate width of text at the chart font size (no font metrics without a browser).
fn text_width(s: &str, size: f64) -> f64 {
    s.chars().count() as f64 * size * 0.58
}

/// How a legend item is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    /// A shaded box (a band).
    Fill,
    /// A solid box (a bar).
    Bar,
    /// A line.
    Line,
    /// A dashed line.
    Dashed,
}

/// One legend item: name, colour, key.
type Item = (String, String, Key);

/// Legend items laid out in rows within `width`: (x, row) per item.
fn legend_layout(items: &[Item], width: f64, left: f64) -> (Vec<(f64, usize)>, usize) {
    let mut out = Vec::with_capacity(items.len());
    let (mut x, mut row) = (left, 0);
    for (name, _, _) in items {
        let w = 22.0 + text_width(name, 11.0) + 14.0;
        if x + w > width - 8.0 && x > left {
            x = left;
            row += 1;
        }
        out.push((x, row));
        x += w;
    }
    (out, if items.is_empty() { 0 } else { row + 1 })
}

fn legend(svg: &mut String, items: &[Item], layout: &[(f64, usize)], top: f64) {
    for ((name, color, key), (x, row)) in items.iter().zip(layout) {
        let y = top + *row as f64 * 16.0;
        if matches!(key, Key::Fill | Key::Bar) {
            let opacity = if *key == Key::Fill { "0.25" } else { "1" };
            let _ = write!(
                svg,
                r#"<rect x="{}" y="{}" width="16" height="10" fill="{}" fill-opacity="{opacity}"/>"#,
                n(*x),
                n(y - 8.0),
                escape(color)
            );
        } else {
            let dash = if *key == Key::Dashed { r#" stroke-dasharray="4 2""# } else { "" };
            let _ = write!(
                svg,
                r#"<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}" stroke-width="2.5"{dash}/>"#,
                n(*x),
                n(y - 3.0),
                n(x + 16.0),
                n(y - 3.0),
                escape(color)
            );
        }
        let _ = write!(svg, r#"<text x="{}" y="{}" class="legend">{}</text>"#, n(x + 22.0), n(y), escape(name));
    }
}

fn open_svg(svg: &mut String, width: f64, height: f64, title: &str) {
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" role="img"><title>{t}</title>"#,
        w = n(width),
        h = n(height),
        t = escape(title)
    );
    let _ = write!(svg, r#"<text x="8" y="18" class="title">{}</text>"#, escape(title));
}

impl LineChart {
    /// An empty chart of the default size (640 × 300).
    pub fn new(title: impl Into<String>, x_axis: XAxis) -> Self {
        Self {
            title: title.into(),
            y_label: String::new(),
            x_axis,
            bands: Vec::new(),
            lines: Vec::new(),
            markers: Vec::new(),
            y_from_zero: true,
            width: 640.0,
            height: 300.0,
        }
    }

    /// Whether the chart has anything to draw.
    pub fn is_empty(&self) -> bool {
        self.lines.iter().all(|l| l.segments.is_empty()) && self.bands.iter().all(|b| b.segments.is_empty())
    }

    /// The chart as one `<svg>` element.
    pub fn render(&self) -> String {
        let xs = self
            .lines
            .iter()
            .flat_map(|l| l.segments.iter().flatten().map(|p| p.0))
            .chain(self.bands.iter().flat_map(|b| b.segments.iter().flatten().map(|p| p.0)))
            .chain(self.markers.iter().map(|m| m.x).filter(|x| x.is_finite()));
        let ys = self
            .lines
            .iter()
            .flat_map(|l| l.segments.iter().flatten().map(|p| p.1))
            .chain(self.bands.iter().flat_map(|b| b.segments.iter().flatten().flat_map(|p| [p.1, p.2])));
        let (x_lo, x_hi) = bounds(xs);
        let (mut y_lo, y_hi) = bounds(ys);
        if self.y_from_zero {
            y_lo = y_lo.min(0.0);
        }
        let y_ticks = nice_ticks(y_lo, y_hi, 6);
        let y_step = if y_ticks.len() > 1 { y_ticks[1] - y_ticks[0] } else { 1.0 };
        let label_w = y_ticks.iter().map(|t| text_width(&tick_label(*t, y_step), 11.0)).fold(0.0, f64::max);

        let mut items: Vec<Item> = self
            .lines
            .iter()
            .filter(|l| !l.name.is_empty())
            .map(|l| (l.name.clone(), l.color.clone(), if l.dashed { Key::Dashed } else { Key::Line }))
            .collect();
        items.extend(
            self.bands.iter().filter(|b| !b.name.is_empty()).map(|b| (b.name.clone(), b.color.clone(), Key::Fill)),
        );
        let m0 = Margins { top: 0.0, right: 16.0, bottom: 34.0, left: 22.0 + label_w + 8.0 };
        let (layout, rows) = legend_layout(&items, self.width, m0.left);
        // Marker labels sit in a strip above the plot, clear of the data.
        let strip = if self.markers.is_empty() { 0.0 } else { 12.0 };
        let m = Margins { top: 34.0 + rows as f64 * 16.0 + 6.0 + strip, ..m0 };
        let (px0, px1, py0, py1) = (m.left, self.width - m.right, self.height - m.bottom, m.top);

        let (x_ticks, x_lo, x_hi): (Vec<(f64, String)>, f64, f64) = match self.x_axis {
            XAxis::Date => (date_ticks(x_lo, x_hi, 8), x_lo, x_hi),
            XAxis::Number { integer } => {
                let mut t = nice_ticks(x_lo, x_hi, 10);
                if integer {
                    t.retain(|v| v.fract() == 0.0);
                }
                let step = if t.len() > 1 { t[1] - t[0] } else { 1.0 };
                let labels: Vec<(f64, String)> =
                    t.iter().filter(|v| **v >= x_lo && **v <= x_hi).map(|v| (*v, tick_label(*v, step))).collect();
                (labels, x_lo, x_hi)
            }
        };
        let sx = LinearScale::new(x_lo, x_hi, px0, px1);
        let sy = LinearScale::new(y_ticks[0], *y_ticks.last().unwrap_or(&1.0), py0, py1);

        let mut svg = String::new();
        open_svg(&mut svg, self.width, self.height, &self.title);
        legend(&mut svg, &items, &layout, 36.0);
        // Grid and y ticks.
        for t in &y_ticks {
            let y = sy.map(*t);
            let _ =
                write!(svg, r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="gridline"/>"#, n(px0), n(y), n(px1), n(y));
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" class="tick" text-anchor="end">{}</text>"#,
                n(px0 - 5.0),
                n(y + 4.0),
                escape(&tick_label(*t, y_step))
            );
        }
        for (x, label) in &x_ticks {
            let x = sx.map(*x);
            let _ = write!(
                svg,
                r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>"#,
                n(x),
                n(py0),
                n(x),
                n(py0 + 4.0)
            );
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
                n(x),
                n(py0 + 16.0),
                escape(label)
            );
        }
        let _ = write!(svg, r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>"#, n(px0), n(py0), n(px1), n(py0));
        let _ = write!(svg, r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>"#, n(px0), n(py0), n(px0), n(py1));
        if !self.y_label.is_empty() {
            let (x, y) = (12.0, (py0 + py1) / 2.0);
            let _ = write!(
                svg,
                r#"<text x="{x}" y="{y}" class="label" text-anchor="middle" transform="rotate(-90 {x} {y})">{}</text>"#,
                escape(&self.y_label),
                x = n(x),
                y = n(y)
            );
        }
        for b in &self.bands {
            for seg in &b.segments {
                let pts: Vec<String> =
                    band_polygon(seg, &sx, &sy).iter().map(|(x, y)| format!("{},{}", n(*x), n(*y))).collect();
                let _ = write!(
                    svg,
                    r#"<polygon points="{}" fill="{}" fill-opacity="0.22" stroke="none"/>"#,
                    pts.join(" "),
                    escape(&b.color)
                );
            }
        }
        for mk in self.markers.iter().filter(|m| m.x.is_finite()) {
            let x = sx.map(mk.x);
            let _ =
                write!(svg, r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="marker"/>"#, n(x), n(py0), n(x), n(py1));
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" class="marker-label" text-anchor="start">{}</text>"#,
                n(x + 3.0),
                n(py1 - 4.0),
                escape(&mk.label)
            );
        }
        for l in &self.lines {
            for seg in &l.segments {
                let pts: Vec<String> =
                    seg.iter().map(|(x, y)| format!("{},{}", n(sx.map(*x)), n(sy.map(*y)))).collect();
                let dash = if l.dashed { r#" stroke-dasharray="5 3""# } else { "" };
                let _ = write!(
                    svg,
                    r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="1.8"{dash}/>"#,
                    pts.join(" "),
                    escape(&l.color)
                );
                if l.dots {
                    for (x, y) in seg {
                        let _ = write!(
                            svg,
                            r#"<circle cx="{}" cy="{}" r="2.4" fill="{}"/>"#,
                            n(sx.map(*x)),
                            n(sy.map(*y)),
                            escape(&l.color)
                        );
                    }
                }
            }
        }
        svg.push_str("</svg>");
        svg
    }
}

/// The minimum and maximum of the finite values; (0, 1) when there are none.
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) =
        values.filter(|v| v.is_finite()).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) }
}

/// One group of bars (one colour) in a bar chart: a value per category.
#[derive(Debug, Clone)]
pub struct BarGroup {
    /// Legend name.
    pub name: String,
    /// Fill colour.
    pub color: String,
    /// Values per category; `None` (or non-finite): no bar.
    pub values: Vec<Option<f64>>,
}

/// A horizontal bar chart: one row per category, one bar per group in each row; bars start at
/// zero, so negative values (a model worse than its benchmark) point left.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Title.
    pub title: String,
    /// The value axis' label.
    pub x_label: String,
    /// Row labels (models).
    pub categories: Vec<String>,
    /// Bar groups.
    pub groups: Vec<BarGroup>,
    /// With a single group: a colour per category (each model in its own colour).
    pub category_colors: Vec<String>,
    /// Decimals of the value printed at the end of each bar.
    pub decimals: usize,
    /// Width in pixels.
    pub width: f64,
}

impl BarChart {
    /// An empty chart 640 pixels wide.
    pub fn new(title: impl Into<String>, categories: Vec<String>) -> Self {
        Self {
            title: title.into(),
            x_label: String::new(),
            categories,
            groups: Vec::new(),
            category_colors: Vec::new(),
            decimals: 3,
            width: 640.0,
        }
    }

    /// The chart as one `<svg>` element; its height follows from the rows.
    pub fn render(&self) -> String {
        let finite = |v: &Option<f64>| v.filter(|v| v.is_finite());
        let (mut lo, mut hi) = bounds(self.groups.iter().flat_map(|g| g.values.iter().filter_map(finite)));
        lo = lo.min(0.0);
        hi = hi.max(0.0);
        let ticks = nice_ticks(lo, hi, 6);
        let step = if ticks.len() > 1 { ticks[1] - ticks[0] } else { 1.0 };
        let label_w = self.categories.iter().map(|c| text_width(c, 11.0)).fold(0.0, f64::max);
        let items: Vec<Item> = self.groups.iter().map(|g| (g.name.clone(), g.color.clone(), Key::Bar)).collect();
        let left = 12.0 + label_w + 8.0;
        let (layout, rows) = if self.groups.len() > 1 { legend_layout(&items, self.width, left) } else { (vec![], 0) };
        let top = 34.0 + rows as f64 * 16.0 + 4.0;
        let bar_h = 12.0;
        let row_h = bar_h * self.groups.len().max(1) as f64 + 10.0;
        let plot_h = row_h * self.categories.len().max(1) as f64;
        let value_w = text_width(&format!("{:.*}", self.decimals, -hi.abs().max(lo.abs())), 10.0) + 8.0;
        let (px0, px1) = (left + if lo < 0.0 { value_w } else { 0.0 }, self.width - 16.0 - value_w);
        let height = top + plot_h + 38.0;
        let sx = LinearScale::new(ticks[0], *ticks.last().unwrap_or(&1.0), px0, px1);
        let py1 = top + plot_h;

        let mut svg = String::new();
        open_svg(&mut svg, self.width, height, &self.title);
        legend(&mut svg, &items, &layout, 36.0);
        for t in &ticks {
            let x = sx.map(*t);
            let _ =
                write!(svg, r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="gridline"/>"#, n(x), n(top), n(x), n(py1));
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" class="tick" text-anchor="middle">{}</text>"#,
                n(x),
                n(py1 + 14.0),
                escape(&tick_label(*t, step))
            );
        }
        let zero = sx.map(0.0);
        for (c, cat) in self.categories.iter().enumerate() {
            let y0 = top + c as f64 * row_h + 5.0;
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" class="category" text-anchor="end">{}</text>"#,
                n(left - 8.0),
                n(y0 + row_h / 2.0 - 1.0),
                escape(cat)
            );
            for (g, group) in self.groups.iter().enumerate() {
                let Some(v) = group.values.get(c).and_then(finite) else { continue };
                let y = y0 + g as f64 * bar_h;
                let x = sx.map(v);
                let (bx, bw) = if x >= zero { (zero, x - zero) } else { (x, zero - x) };
                let fill = match self.category_colors.get(c) {
                    Some(col) if self.groups.len() == 1 => col,
                    _ => &group.color,
                };
                let _ = write!(
                    svg,
                    r#"<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {:.*}</title></rect>"#,
                    n(bx),
                    n(y),
                    n(bw.max(0.5)),
                    n(bar_h - 2.0),
                    escape(fill),
                    escape(&format!("{cat}, {}", group.name)),
                    self.decimals,
                    v
                );
                let (tx, anchor) = if v >= 0.0 { (x + 4.0, "start") } else { (x - 4.0, "end") };
                let _ = write!(
                    svg,
                    r#"<text x="{}" y="{}" class="value" text-anchor="{anchor}">{:.*}</text>"#,
                    n(tx),
                    n(y + bar_h - 3.0),
                    self.decimals,
                    v
                );
            }
        }
        let _ =
            write!(svg, r#"<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>"#, n(zero), n(top), n(zero), n(py1));
        if !self.x_label.is_empty() {
            let _ = write!(
                svg,
                r#"<text x="{}" y="{}" class="label" text-anchor="middle">{}</text>"#,
                n((px0 + px1) / 2.0),
                n(py1 + 30.0),
                escape(&self.x_label)
            );
        }
        svg.push_str("</svg>");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_nice(step: f64) -> bool {
        let m = step / 10f64.powf(step.log10().floor());
        [1.0, 2.0, 5.0, 10.0].iter().any(|n| (m - n).abs() < 1e-9)
    }

    #[test]
    fn ticks_are_nice_numbers_that_cover_the_data() {
        assert_eq!(nice_ticks(0.0, 97.0, 6), vec![0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        assert_eq!(nice_ticks(0.12, 0.58, 6), vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
        assert_eq!(nice_ticks(-3.2, 7.9, 6), vec![-5.0, 0.0, 5.0, 10.0]);
        for (lo, hi) in [(0.0, 1.0), (3.0, 3.0), (0.0, 0.0), (-1e6, 2.5e6), (0.001, 0.0042), (12.5, 1234.5)] {
            let t = nice_ticks(lo, hi, 6);
            assert!(t.len() >= 2 && t.len() <= 8, "{lo}..{hi}: {t:?}");
            assert!(t[0] <= lo.min(hi) && *t.last().unwrap() >= hi, "{lo}..{hi}: {t:?}");
            let step = t[1] - t[0];
            assert!(is_nice(step), "{lo}..{hi}: step {step}");
            assert!(t.windows(2).all(|w| ((w[1] - w[0]) - step).abs() < step * 1e-9), "{t:?}");
            assert!(t.iter().all(|v| v.is_finite()));
        }
        assert!(nice_ticks(f64::NAN, f64::INFINITY, 6).iter().all(|v| v.is_finite()));
        assert_eq!(tick_label(0.30000000000000004, 0.1), "0.3");
        assert_eq!(tick_label(2000.0, 500.0), "2000");
    }

    #[test]
    fn scales_map_ends_to_ends_and_empty_domains_to_the_middle() {
        let s = LinearScale::new(0.0, 10.0, 100.0, 0.0);
        assert_eq!((s.map(0.0), s.map(10.0), s.map(5.0)), (100.0, 0.0, 50.0));
        assert_eq!(LinearScale::new(3.0, 3.0, 0.0, 10.0).map(3.0), 5.0);
    }

    #[test]
    fn the_band_polygon_runs_along_the_upper_edge_then_back_along_the_lower() {
        let sx = LinearScale::new(0.0, 2.0, 0.0, 200.0);
        let sy = LinearScale::new(0.0, 10.0, 100.0, 0.0);
        let p = band_polygon(&[(0.0, 1.0, 3.0), (1.0, 2.0, 6.0), (2.0, 2.0, 4.0)], &sx, &sy);
        assert_eq!(p, vec![(0.0, 70.0), (100.0, 40.0), (200.0, 60.0), (200.0, 80.0), (100.0, 80.0), (0.0, 90.0)]);
    }

    #[test]
    fn date_ticks_fall_on_mondays_or_month_starts() {
        let d = |s: &str| day_number(s.parse().unwrap());
        let weekly = date_ticks(d("2026-01-01"), d("2026-02-20"), 8);
        assert!(weekly.len() >= 4 && weekly.len() <= 8, "{weekly:?}");
        assert!(weekly.iter().all(|(x, _)| from_day_number(*x).weekday() == chrono::Weekday::Mon));
        let monthly = date_ticks(d("2025-01-10"), d("2026-03-01"), 8);
        assert!(monthly.iter().all(|(x, _)| from_day_number(*x).day() == 1), "{monthly:?}");
        assert!(monthly.len() <= 8 && monthly.len() >= 3, "{monthly:?}");
    }

    #[test]
    fn charts_escape_text_and_write_only_finite_numbers() {
        let mut c = LineChart::new("a <b> & \"c\"", XAxis::Number { integer: true });
        c.lines.push(Line::new("x<y", "#000", vec![vec![(1.0, f64::NAN), (2.0, 1.0), (f64::INFINITY, 3.0)]]));
        c.bands.push(Band::new("band", "#111", vec![vec![(1.0, 0.0, f64::NAN), (2.0, 0.5, 2.0)]]));
        let svg = c.render();
        assert!(svg.contains("a &lt;b&gt; &amp; &quot;c&quot;") && svg.contains("x&lt;y"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
        let mut b = BarChart::new("bars", vec!["m1".into(), "m2".into()]);
        b.groups.push(BarGroup { name: "g".into(), color: "#000".into(), values: vec![Some(-2.0), Some(f64::NAN)] });
        let svg = b.render();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>") && !svg.contains("NaN"), "{svg}");
    }
}
