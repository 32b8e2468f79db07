//! The feature rows of the gradient-boosted-trees model: one row per series, forecast origin and
//! step ahead, read from the series' own history (scaled), the calendar of the target period, the
//! known-future covariates at the target period, the observed covariates at the origin (stock-out,
//! consumer behaviour, the user's) and the series' categorical attributes.
//!
//! Every value of the series enters divided by the series' scale at the origin (the mean absolute
//! value over the last year, at least 1), and so does the target: one model serves series of every
//! size, and its forecast is multiplied back by the scale.
//!
//! Nothing after the origin is read except known-future covariates and the calendar: a seasonal
//! lag that would fall after the origin takes the same phase one more cycle back.

use chrono::{Duration, NaiveDate};

use crate::models::pooled::PooledIndex;
use crate::panel::Panel;
use crate::panel::covariates::Covariates;
use crate::period::Frequency;

/// Missing values (a lag before the series starts) are NaN: the trees learn where they go.
const MISSING: f64 = f64::NAN;

/// Columns of the yearly anchors, when the layout reads them.
const ANCHORS: usize = 2;

/// Columns of the item's pooled seasonal index, when the layout reads it.
const POOLED: usize = 3;

/// Columns of the item's pooled growth, when the layout reads it.
const POOLED_GROWTH: usize = 2;

/// Largest number of distinct values of a categorical column the trees read (as codes); an id
/// column with more (thousands of items) says little a code split can use.
pub const MAX_CATEGORIES: usize = 250;

/// How the features are laid out for one panel grain.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    /// Periods per short seasonal cycle (7 daily, 52 weekly).
    pub season: usize,
    /// Periods per year (364 daily, 52 weekly): whole weeks, so the weekday lines up.
    pub year: usize,
    /// Recent values read as lags (`y[o]`, `y[o − 1]`, …).
    pub lags: usize,
    /// Trailing means over these many periods.
    pub means: Vec<usize>,
    /// Means of the same phase of the short cycle (the same weekday at a daily grain) over these
    /// many cycles before the target period: the weekday's recent level, which one seasonal lag
    /// reads with all its noise. Empty in models saved before they were read.
    #[serde(default)]
    pub phase_means: Vec<usize>,
    /// Reads the year-ago value carried to the current level (see [`row`]): the seasonal naive
    /// forecast moved by the year's growth, and by the level's change since a year ago. Trees
    /// split on one column at a time and cannot form these products and differences of columns
    /// themselves. False in models saved before they were read.
    #[serde(default)]
    pub anchors: bool,
    /// Reads the item's seasonal index pooled over its locations ([`PooledIndex`]) a year and two
    /// before the target period, and the first times the series' growth; the number is how many
    /// periods after a period its level may read (`None`: not read, as in models saved before).
    #[serde(default)]
    pub pooled: Option<usize>,
    /// With the pooled index, also reads the item's growth pooled over its locations at the
    /// origin ([`PooledIndex::with_growth`]), and the series' year-ago value times it. False in
    /// models saved before it existed.
    #[serde(default)]
    pub pooled_growth: bool,
    /// Periods over which the scale is the mean absolute value.
    pub scale_window: usize,
    /// Daily grain (day-of-week features) or weekly.
    pub daily: bool,
    /// Known-future covariate columns read at the target period.
    pub known: usize,
    /// Their names (empty in models saved before names were kept: read in the panel's order).
    #[serde(default)]
    pub known_names: Vec<String>,
    /// The observed (past-only) covariates read at the origin, the last value known when the
    /// forecast is made: the built-in ones (stock-out, consumer behaviour) where they vary in the
    /// panel's history, and the user's (`user:NAME` past columns). Only the user's in models
    /// saved before the built-in ones were read.
    #[serde(default)]
    pub observed: Vec<String>,
    /// The user's covariates are left out (read as their defaults): they did not help on the
    /// held-out periods when the model was fitted.
    #[serde(default)]
    pub user_off: bool,
    /// Categorical columns: location, item, then static attributes, where the panel has few
    /// enough distinct values; `None` where a column is left out.
    pub categorical: Vec<Option<String>>,
}

impl Layout {
    /// The layout for a panel: its grain and seasonal cycle, its covariates and its categories.
    pub fn for_panel(panel: &Panel, season: usize) -> Self {
        let daily = panel.frequency == Frequency::Daily;
        let (lags, means) = if daily { (7, vec![7, 28]) } else { (4, vec![4, 13]) };
        let year = panel.frequency.year();
        // A short cycle of a few periods (a week of days) repeats often enough to average; a
        // yearly one (52 weeks) is read through the yearly lags instead.
        let phase_means = if season.max(1) <= 14 && season > 1 { vec![4, 8] } else { Vec::new() };
        let known = panel.covariates.as_ref().map_or(0, |c| c.known_dim());
        let known_names = panel.covariates.as_ref().map_or_else(Vec::new, |c| c.known_names());
        let observed = panel.covariates.as_ref().map_or_else(Vec::new, |c| observed_columns(c));
        let mut categorical = vec![Some("location".to_string()), Some("item".to_string())];
        if let Some(c) = &panel.covariates {
            categorical.extend(c.statics.names.iter().map(|n| Some(n.clone())));
        }
        Self {
            season: season.max(1),
            year,
            lags,
            means,
            phase_means,
            anchors: true,
            pooled: None,
            pooled_growth: false,
            scale_window: year,
            daily,
            known,
            known_names,
            observed,
            user_off: false,
            categorical,
        }
    }

    /// Whether the layout reads any of the user's covariates.
    pub fn has_user(&self) -> bool {
        self.observed.iter().chain(&self.known_names).any(|n| is_user(n))
    }

    /// Columns per row.
    pub fn width(&self) -> usize {
        // step, lags, means, season lag ±1 (3), phase means, year lag ±1 (3), two years,
        // year-on-year growth, the yearly anchors (2), the pooled index (3), calendar (2), known
        // covariates, observed covariates at the origin, categoricals.
        1 + self.lags
            + self.means.len()
            + 3
            + self.phase_means.len()
            + 3
            + 1
            + 1
            + if self.anchors { ANCHORS } else { 0 }
            + if self.pooled.is_some() { POOLED } else { 0 }
            + if self.pooled.is_some() && self.pooled_growth { POOLED_GROWTH } else { 0 }
            + 2
            + self.known
            + self.observed.len()
            + self.categorical.len()
    }
}

/// Codes of the categorical columns per series (as f64 category numbers; NaN when unknown).
#[derive(Debug, Clone)]
pub struct Categories {
    /// Per categorical column of the layout, per series.
    pub codes: Vec<Vec<f64>>,
    /// Where each known column of the layout is among the panel's known covariates, when the
    /// panel lays them out otherwise than the data the model was fitted on (`None`: same order).
    pub known_index: Option<Vec<Option<usize>>>,
    /// Where each observed covariate of the layout is among the panel's past covariates.
    pub observed_index: Vec<Option<usize>>,
    /// The items' pooled seasonal index, when the layout reads it.
    pub pooled: Option<PooledIndex>,
}

impl Categories {
    /// Codes the panel's categorical columns with `vocab` (value → code per column), adding new
    /// values to it while a column has fewer than [`MAX_CATEGORIES`]; a column that outgrows it is
    /// dropped from `layout` (fit time only: `grow` false keeps the vocabulary fixed).
    pub fn code(panel: &Panel, layout: &mut Layout, vocab: &mut Vec<Vec<String>>, grow: bool) -> Self {
        vocab.resize(layout.categorical.len(), Vec::new());
        let mut codes = Vec::with_capacity(layout.categorical.len());
        for (c, name) in layout.categorical.iter_mut().enumerate() {
            let values: Vec<Option<&str>> = (0..panel.len()).map(|s| category_value(panel, c, s)).collect();
            if grow && name.is_some() {
                let mut seen: Vec<&str> = values.iter().flatten().copied().collect();
                seen.sort_unstable();
                seen.dedup();
                if seen.len() > MAX_CATEGORIES || seen.len() < 2 {
                    *name = None;
                } else {
                    vocab[c] = seen.iter().map(|v| v.to_string()).collect();
                }
            }
            let column = if name.is_some() {
                values
                    .iter()
                    .map(|v| {
                        v.and_then(|v| vocab[c].binary_search_by(|x| x.as_str().cmp(v)).ok())
                            .map_or(MISSING, |i| i as f64)
                    })
                    .collect()
            } else {
                vec![MISSING; panel.len()]
            };
            codes.push(column);
        }
        let known_index = panel.covariates.as_ref().and_then(|c| {
            (!layout.known_names.is_empty() && c.known_names() != layout.known_names)
                .then(|| c.known_index(&layout.known_names))
        });
        let observed_index = layout
            .observed
            .iter()
            .map(|name| panel.covariates.as_ref().and_then(|c| c.past.names.iter().position(|n| n == name)))
            .collect();
        let growth_window = layout.means.last().copied().unwrap_or(1);
        let pooled = layout
            .pooled
            .map(|lead| PooledIndex::new(panel, layout.year / 2, lead).with_growth(panel, layout.year, growth_window));
        Self { codes, known_index, observed_index, pooled }
    }
}

/// Whether a covariate column is the user's.
fn is_user(name: &str) -> bool {
    name.starts_with(crate::panel::covariates::USER)
}

/// The past columns a layout reads at the origin: every user column, and the built-in ones that
/// take more than one value over the history (a lake without inventory or traffic has them at 0
/// throughout, and an empty column would only take another's place in each tree's column sample).
fn observed_columns(c: &Covariates) -> Vec<String> {
    let known = c.known_dim();
    let constant: Vec<usize> = c.constant_before(c.history).iter().filter_map(|(j, _)| j.checked_sub(known)).collect();
    c.past
        .names
        .iter()
        .enumerate()
        .filter(|(j, n)| is_user(n) || !constant.contains(j))
        .map(|(_, n)| n.clone())
        .collect()
}

fn category_value(panel: &Panel, column: usize, s: usize) -> Option<&str> {
    match column {
        0 => Some(panel.keys[s].location_id.as_str()),
        1 => Some(panel.keys[s].item_id.as_str()),
        c => panel.covariates.as_ref().and_then(|cov| cov.statics.values.get(c - 2)).and_then(|v| v[s].as_deref()),
    }
}

/// The scale of a series at origin `o`: mean absolute value over the last `window` periods, at least 1.
pub fn scale(y: &[f32], o: usize, window: usize) -> f64 {
    let from = (o + 1).saturating_sub(window);
    let n = (o + 1 - from) as f64;
    let mean = y[from..=o].iter().map(|v| f64::from(v.abs())).sum::<f64>() / n;
    mean.max(1.0)
}

/// A forecast origin of one series, as a feature row reads it.
#[derive(Debug, Clone, Copy)]
pub struct Origin {
    /// The series (index into the panel).
    pub s: usize,
    /// The series' length at the panel's end, which dates the periods: the values read may be
    /// fewer (an origin held out) or more (forecasts fed back as history).
    pub n: usize,
    /// Index of the last value read; nothing after it is.
    pub o: usize,
    /// Index of the last period observed, where the user's observed covariates are read: `o`,
    /// except when the values up to `o` include forecasts fed back.
    pub seen: usize,
}

impl Origin {
    /// Origin `o` of series `s`, whose values up to it are all observed.
    pub fn observed(s: usize, n: usize, o: usize) -> Self {
        Self { s, n, o, seen: o }
    }
}

/// Writes the feature row of the series' values `y` at origin `at` and step `h` (1-based) into
/// `row` (cleared first). `scale` is [`scale`] at the origin.
#[allow(clippy::too_many_arguments)]
pub fn row(
    layout: &Layout,
    panel: &Panel,
    categories: &Categories,
    y: &[f32],
    at: Origin,
    h: usize,
    scale: f64,
    row: &mut Vec<f64>,
) {
    let Origin { s, n, o, seen } = at;
    row.clear();
    let value =
        |i: isize| -> f64 { if i >= 0 && (i as usize) <= o { f64::from(y[i as usize]) / scale } else { MISSING } };
    let (o_i, h_i) = (o as isize, h as isize);
    row.push(h as f64);
    for k in 0..layout.lags as isize {
        row.push(value(o_i - k));
    }
    for &w in &layout.means {
        row.push(mean(y, o, w) / scale);
    }
    // The same phase of the short cycle, as many cycles back as needed to be before the origin.
    let m = layout.season as isize;
    let back = ((h_i + m - 1) / m) * m;
    for d in -1..=1 {
        row.push(value(o_i + h_i - back + d));
    }
    for &cycles in &layout.phase_means {
        let (mut sum, mut k) = (0.0, 0);
        for c in 0..cycles as isize {
            let v = value(o_i + h_i - back - c * m);
            if !v.is_nan() {
                sum += v;
                k += 1;
            }
        }
        row.push(if k > 0 { sum / k as f64 } else { MISSING });
    }
    // A year back (and two), whole cycles again when the horizon is longer than a year.
    let yr = layout.year as isize;
    let year_back = ((h_i + yr - 1) / yr) * yr;
    let wk = if layout.daily { 7 } else { 1 };
    for d in [-wk, 0, wk] {
        row.push(value(o_i + h_i - year_back + d));
    }
    row.push(value(o_i + h_i - year_back - yr));
    // Growth of the last `means[1]` periods over the same periods a year earlier.
    let w = layout.means[layout.means.len() - 1];
    let growth = if o + 1 >= layout.year + w {
        let last_year = mean(y, o - layout.year, w);
        if last_year.abs() >= 1.0 { mean(y, o, w) / last_year } else { MISSING }
    } else {
        MISSING
    };
    row.push(growth);
    if layout.anchors {
        // The year-ago value of the target period carried to this year's level, two ways: times
        // the growth above, and plus the change of the recent mean (the last `lags` periods,
        // a whole week at a daily grain) since the same periods a year before the origin.
        let year_ago = value(o_i + h_i - year_back);
        row.push(if growth.is_nan() || year_ago.is_nan() { MISSING } else { year_ago * growth });
        let w = layout.lags.max(1);
        let then_end = o_i - year_back;
        row.push(if then_end + 1 >= w as isize && !year_ago.is_nan() {
            let now = mean(y, o, w) / scale;
            let then = mean(y, then_end as usize, w) / scale;
            now + year_ago - then
        } else {
            MISSING
        });
    }
    if layout.pooled.is_some() {
        let index = categories.pooled.as_ref();
        let at = |i: isize| index.map_or(MISSING, |p| if i <= o_i { p.at(s, n, i) } else { MISSING });
        let year_ago = at(o_i + h_i - year_back);
        row.push(year_ago);
        row.push(at(o_i + h_i - year_back - yr));
        row.push(year_ago * growth);
        if layout.pooled_growth {
            // The item's growth over its locations, and the series' year-ago value carried by it.
            let item_growth = index.map_or(MISSING, |p| p.growth_at(s, n, o_i));
            row.push(item_growth);
            row.push(value(o_i + h_i - year_back) * item_growth);
        }
    }
    // Calendar of the target period.
    let date = period_date(panel, n, o + h);
    let cal = panel.calendar(date);
    if layout.daily {
        row.push(f64::from(cal.weekday0));
        row.push(f64::from(cal.ordinal0 + 1));
    } else {
        row.push(f64::from(cal.iso_week));
        row.push(f64::from(cal.month));
    }
    if layout.known > 0 {
        let mut known = Vec::with_capacity(layout.known);
        if let Some(cov) = &panel.covariates {
            cov.known_at(s, cov.index(n, (o + h) as isize), &mut known);
        }
        let from = row.len();
        match &categories.known_index {
            // A column the panel lacks reads as its default, 0.
            Some(index) => {
                row.extend(index.iter().map(|i| i.and_then(|i| known.get(i)).map_or(0.0, |v| f64::from(*v))))
            }
            None => {
                known.resize(layout.known, 0.0);
                row.extend(known.iter().map(|v| f64::from(*v)));
            }
        }
        if layout.user_off {
            for (v, name) in row[from..].iter_mut().zip(&layout.known_names) {
                if is_user(name) {
                    *v = 0.0;
                }
            }
        }
    }
    if !layout.observed.is_empty() {
        let mut past = Vec::new();
        let cov = panel.covariates.as_ref();
        if let Some(cov) = cov {
            cov.past_at(s, cov.index(n, seen as isize), &mut past);
        }
        for k in 0..layout.observed.len() {
            let off = layout.user_off && is_user(&layout.observed[k]);
            let index = categories.observed_index.get(k).copied().flatten().filter(|_| !off);
            row.push(index.and_then(|i| past.get(i)).map_or(MISSING, |v| f64::from(*v)));
        }
    }
    for column in &categories.codes {
        row.push(column[s]);
    }
}

/// Mean of the `w` values up to and including index `o` (fewer at the start).
fn mean(y: &[f32], o: usize, w: usize) -> f64 {
    let from = (o + 1).saturating_sub(w.max(1));
    y[from..=o].iter().map(|v| f64::from(*v)).sum::<f64>() / (o + 1 - from) as f64
}

/// The first day of period `i` of a series of `n` values ending at the panel's end
/// (`i ≥ n`: after the end).
pub fn period_date(panel: &Panel, n: usize, i: usize) -> NaiveDate {
    panel.end + Duration::days(panel.frequency.days() * (i as i64 - (n as i64 - 1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::SeriesKey;

    fn weekly(values: Vec<f32>) -> Panel {
        Panel::new(
            vec![SeriesKey { item_id: "a".into(), location_id: "x".into() }],
            vec![values],
            NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
            Frequency::Weekly,
        )
    }

    /// Two locations of one item: the pooled columns of rows at an origin are the same whatever
    /// either series does after it, and they are the item's index a year before the target.
    #[test]
    fn the_pooled_index_reads_nothing_after_the_origin() {
        let (o, horizon, n) = (120usize, 13usize, 200usize);
        let make = |after: f32| {
            let y = |s: usize| (0..n).map(|t| if t > o { after } else { (10 * (s + 1) + t % 5) as f32 }).collect();
            let keys = ["x", "y"].map(|l| SeriesKey { item_id: "a".into(), location_id: l.into() }).to_vec();
            Panel::new(keys, vec![y(0), y(1)], NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(), Frequency::Weekly)
        };
        let (calm, wild) = (make(10.0), make(1.0e6));
        let pooled_columns = |panel: &Panel, h: usize| {
            let mut layout = Layout::for_panel(panel, 52);
            layout.pooled = Some((layout.year / 2).min(layout.year - horizon));
            layout.pooled_growth = true;
            let cats = Categories::code(panel, &mut layout, &mut Vec::new(), true);
            let y = &panel.values[0];
            let mut r = Vec::new();
            row(&layout, panel, &cats, y, Origin::observed(0, n, o), h, scale(y, o, layout.scale_window), &mut r);
            assert_eq!(r.len(), layout.width());
            let from = 1 + layout.lags + layout.means.len() + 3 + layout.phase_means.len() + 3 + 2 + ANCHORS;
            (r[from..from + POOLED + POOLED_GROWTH].to_vec(), cats.pooled.unwrap().at(0, n, (o + h - 52) as isize))
        };
        for h in 1..=horizon {
            let ((a, year_ago), (b, _)) = (pooled_columns(&calm, h), pooled_columns(&wild, h));
            assert!(a[0].is_finite() && a[0] == year_ago, "h={h}: {a:?} against {year_ago}");
            assert_eq!(a, b, "h={h}: the pooled index read past the origin");
        }
    }

    #[test]
    fn reads_nothing_after_the_origin() {
        // Values equal their index: any value read after the origin would exceed it.
        let y: Vec<f32> = (0..200).map(|i| i as f32).collect();
        let panel = weekly(y.clone());
        let mut layout = Layout::for_panel(&panel, 52);
        let cats = Categories::code(&panel, &mut layout, &mut Vec::new(), true);
        let o = 120;
        let sc = scale(&y, o, layout.scale_window);
        let mut r = Vec::new();
        for h in 1..=60 {
            row(&layout, &panel, &cats, &y, Origin::observed(0, y.len(), o), h, sc, &mut r);
            assert_eq!(r.len(), layout.width());
            // Series-derived columns: lags, means, seasonal lags and means, yearly lags.
            let series_cols = 1 + layout.lags + layout.means.len() + 7 + layout.phase_means.len();
            for v in &r[1..series_cols] {
                assert!(v.is_nan() || *v * sc <= o as f64 + 1e-9, "h={h}: read {} after origin {o}", v * sc);
            }
        }
        // Step 1: the season lag is the value 52 periods before the target, the lag 0 the origin.
        row(&layout, &panel, &cats, &y, Origin::observed(0, y.len(), o), 1, sc, &mut r);
        assert!((r[1] * sc - 120.0).abs() < 1e-9);
        let season = 1 + layout.lags + layout.means.len() + 1;
        assert!((r[season] * sc - (121.0 - 52.0)).abs() < 1e-9);
    }

    #[test]
    fn the_weekday_means_read_the_same_weekday_before_the_origin() {
        // Daily values equal their index; the weekday means average the same weekday 1–4 and 1–8
        // weeks before the target, moved back whole weeks to stay at or before the origin.
        let y: Vec<f32> = (0..120).map(|i| i as f32).collect();
        let panel = Panel::new(
            vec![SeriesKey { item_id: "a".into(), location_id: "x".into() }],
            vec![y.clone()],
            NaiveDate::from_ymd_opt(2026, 1, 2).unwrap(),
            Frequency::Daily,
        );
        let mut layout = Layout::for_panel(&panel, 7);
        assert_eq!(layout.phase_means, vec![4, 8]);
        let cats = Categories::code(&panel, &mut layout, &mut Vec::new(), true);
        let (o, mut r) = (100, Vec::new());
        let at = 1 + layout.lags + layout.means.len() + 3;
        for h in 1..=28 {
            row(&layout, &panel, &cats, &y, Origin::observed(0, y.len(), o), h, 1.0, &mut r);
            assert_eq!(r.len(), layout.width());
            let last = (o + h - 7 * h.div_ceil(7)) as f64;
            assert!((r[at] - (last - 3.0 * 7.0 / 2.0)).abs() < 1e-9, "h={h}: {}", r[at]);
            assert!((r[at + 1] - (last - 7.0 * 7.0 / 2.0)).abs() < 1e-9, "h={h}: {}", r[at + 1]);
        }
    }

    #[test]
    fn the_anchors_carry_the_year_ago_value_to_this_year_and_read_nothing_after_the_origin() {
        // A linear series: last year's value at the target period, moved by the recent level's
        // change since a year before the origin, is the target's own value; times the growth it
        // is last year's value scaled by the ratio of the 13-week means.
        let y: Vec<f32> = (0..200).map(|i| i as f32).collect();
        let panel = weekly(y.clone());
        let mut layout = Layout::for_panel(&panel, 52);
        assert!(layout.anchors);
        let cats = Categories::code(&panel, &mut layout, &mut Vec::new(), true);
        let (o, mut r, mut cut) = (120, Vec::new(), Vec::new());
        let at = 1 + layout.lags + layout.means.len() + 3 + layout.phase_means.len() + 3 + 1 + 1;
        // The same values up to the origin and others after it.
        let mut other = y.clone();
        other[o + 1..].iter_mut().for_each(|v| *v = -5.0);
        for h in 1..=52 {
            row(&layout, &panel, &cats, &y, Origin::observed(0, y.len(), o), h, 1.0, &mut r);
            assert_eq!(r.len(), layout.width());
            let (year_ago, growth) = ((o + h - 52) as f64, (o as f64 - 6.0) / (o as f64 - 52.0 - 6.0));
            assert!((r[at] - year_ago * growth).abs() < 1e-9, "h={h}: {}", r[at]);
            assert!((r[at + 1] - (o + h) as f64).abs() < 1e-9, "h={h}: {}", r[at + 1]);
            row(&layout, &panel, &cats, &other, Origin::observed(0, y.len(), o), h, 1.0, &mut cut);
            assert_eq!(r[at..at + 2], cut[at..at + 2], "h={h}");
        }
        // Without a year of history before the origin, they are missing.
        row(&layout, &panel, &cats, &y, Origin::observed(0, y.len(), 40), 1, 1.0, &mut r);
        assert!(r[at].is_nan() && r[at + 1].is_nan());
        // Left out, the row is two columns narrower.
        let off = Layout { anchors: false, ..layout.clone() };
        row(&off, &panel, &cats, &y, Origin::observed(0, y.len(), o), 1, 1.0, &mut r);
        assert_eq!(r.len(), layout.width() - 2);
        assert_eq!(off.width(), layout.width() - 2);
    }

    #[test]
    fn scale_is_at_least_one_and_the_mean_absolute_value() {
        assert_eq!(scale(&[0.0; 10], 9, 52), 1.0);
        assert!((scale(&[2.0, -4.0, 6.0], 2, 52) - 4.0).abs() < 1e-12);
        assert!((scale(&[100.0, 2.0, 4.0], 2, 2) - 3.0).abs() < 1e-12);
    }

    #[test]
    fn a_single_category_or_too_many_are_left_out() {
        let panel = weekly(vec![1.0; 60]);
        let mut layout = Layout::for_panel(&panel, 52);
        Categories::code(&panel, &mut layout, &mut Vec::new(), true);
        // One location and one item: nothing to split on.
        assert!(layout.categorical.iter().all(Option::is_none));
    }
}
