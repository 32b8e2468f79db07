//! The seasonal index an item shows across its locations, pooled: for each period, the item's
//! sales summed over its series divided by their levels summed (each series' mean absolute value
//! over about a year around the period). One series' year-ago value carries that series' noise
//! (a stock-out, a local event, a markdown); the same week summed over every location that sells
//! the item carries the item's seasonal shape with little of it. The trees split on one column at
//! a time and cannot form that sum across series themselves, and a deep model's decoder reads one
//! series at a time. Both read it: `gbt`'s rows a year and two before the target period, the
//! deep models' decoder a year before each step.
//!
//! Nothing after a forecast origin is read: a row reads the index a year (or two) before its
//! target period, and the level around a period reads at most `lead` periods after it, where
//! `lead` is at most the year minus the horizon (the gap between a year-ago period and the
//! origin). Series end together at the panel's end, so period `i` of a series of `n` values is
//! period `longest − n + i` of the panel.

use crate::panel::Panel;

/// Fewest series observed at a period for the item's index there (a single series' index is its
/// own year-ago value, which the rows already read).
const MIN_SERIES: usize = 2;

/// The pooled seasonal index of each item with at least two series, per period of the panel.
#[derive(Debug, Clone, Default)]
pub struct PooledIndex {
    /// Per series, its item's group (None: the item has one series).
    group: Vec<Option<usize>>,
    /// Per group, the index per period of the panel (NaN where fewer than [`MIN_SERIES`] sell).
    index: Vec<Vec<f32>>,
    /// Per group, the item's growth per period: its sales over the `window` periods up to it,
    /// summed over its locations, over the same periods a year earlier (empty until
    /// [`PooledIndex::with_growth`]).
    growth: Vec<Vec<f32>>,
    /// Periods of the panel (its longest series).
    longest: usize,
}

impl PooledIndex {
    /// The index of `panel`'s items, each period's level reading `half` periods before it and at
    /// most `lead` after (both clipped to the series).
    pub fn new(panel: &Panel, half: usize, lead: usize) -> Self {
        let longest = panel.values.iter().map(Vec::len).max().unwrap_or(0);
        let shared = shared_items(panel);
        let group: Vec<Option<usize>> =
            panel.keys.iter().map(|k| shared.binary_search(&k.item_id.as_str()).ok()).collect();
        let mut sales = vec![vec![0.0f64; longest]; shared.len()];
        let mut levels = vec![vec![0.0f64; longest]; shared.len()];
        let mut sellers = vec![vec![0usize; longest]; shared.len()];
        for (s, y) in panel.values.iter().enumerate() {
            let Some(g) = group[s] else { continue };
            let n = y.len();
            let offset = longest - n;
            // Prefix sums of |y| for the level's window.
            let prefix = prefix_sums(y, f32::abs);
            for (i, v) in y.iter().enumerate() {
                if !v.is_finite() {
                    continue;
                }
                let (from, to) = (i.saturating_sub(half), (i + lead).min(n - 1));
                let level = ((prefix[to + 1] - prefix[from]) / (to + 1 - from) as f64).max(1.0);
                sales[g][offset + i] += f64::from(*v);
                levels[g][offset + i] += level;
                sellers[g][offset + i] += 1;
            }
        }
        let index = (0..shared.len())
            .map(|g| {
                (0..longest)
                    .map(|t| if sellers[g][t] >= MIN_SERIES { (sales[g][t] / levels[g][t]) as f32 } else { f32::NAN })
                    .collect()
            })
            .collect();
        Self { group, index, growth: Vec::new(), longest }
    }

    /// Adds the items' growth: at each period, the sales of the `window` periods up to it over
    /// those a `year` earlier, each summed over the locations that sold in both (NaN where fewer
    /// than [`MIN_SERIES`] did, or the year before sold under 1).
    pub fn with_growth(mut self, panel: &Panel, year: usize, window: usize) -> Self {
        let groups = self.index.len();
        let (mut now, mut then, mut sellers) = (
            vec![vec![0.0f64; self.longest]; groups],
            vec![vec![0.0f64; self.longest]; groups],
            vec![vec![0usize; self.longest]; groups],
        );
        for (s, y) in panel.values.iter().enumerate() {
            let Some(g) = self.group[s] else { continue };
            let offset = self.longest - y.len();
            let prefix = prefix_sums(y, |v| v);
            for i in (year + window - 1)..y.len() {
                now[g][offset + i] += prefix[i + 1] - prefix[i + 1 - window];
                then[g][offset + i] += prefix[i + 1 - year] - prefix[i + 1 - year - window];
                sellers[g][offset + i] += 1;
            }
        }
        self.growth = (0..groups)
            .map(|g| {
                (0..self.longest)
                    .map(|t| {
                        if sellers[g][t] >= MIN_SERIES && then[g][t] >= 1.0 {
                            (now[g][t] / then[g][t]) as f32
                        } else {
                            f32::NAN
                        }
                    })
                    .collect()
            })
            .collect();
        self
    }

    /// The growth of series `s`'s item up to period `i` (see [`PooledIndex::at`]); NaN where
    /// there is none.
    pub fn growth_at(&self, s: usize, n: usize, i: isize) -> f64 {
        self.read(&self.growth, s, n, i)
    }

    /// Whether any item of `panel` has two series or more (else there is no index to read).
    pub fn applies(panel: &Panel) -> bool {
        !shared_items(panel).is_empty()
    }

    /// The index of series `s`'s item at period `i` of the series, which has `n` values at the
    /// panel's end; NaN where there is none (a lone item, before the panel or after its end).
    pub fn at(&self, s: usize, n: usize, i: isize) -> f64 {
        self.read(&self.index, s, n, i)
    }

    fn read(&self, table: &[Vec<f32>], s: usize, n: usize, i: isize) -> f64 {
        let Some(g) = self.group.get(s).copied().flatten() else { return f64::NAN };
        let t = self.longest as isize - n as isize + i;
        if i < 0 || t < 0 || t as usize >= self.longest {
            return f64::NAN;
        }
        table.get(g).map_or(f64::NAN, |row| f64::from(row[t as usize]))
    }
}

/// Sums of `f` of the first `i` values of `y` for every `i` (`y.len() + 1` of them); values that
/// are not finite add nothing.
fn prefix_sums(y: &[f32], f: impl Fn(f32) -> f32) -> Vec<f64> {
    let mut sums = Vec::with_capacity(y.len() + 1);
    let mut total = 0.0f64;
    sums.push(total);
    for v in y {
        if v.is_finite() {
            total += f64::from(f(*v));
        }
        sums.push(total);
    }
    sums
}

/// The items with at least [`MIN_SERIES`] series, sorted.
fn shared_items(panel: &Panel) -> Vec<&str> {
    let mut items: Vec<&str> = panel.keys.iter().map(|k| k.item_id.as_str()).collect();
    items.sort_unstable();
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for item in items {
        match counts.last_mut() {
            Some((last, n)) if *last == item => *n += 1,
            _ => counts.push((item, 1)),
        }
    }
    counts.into_iter().filter(|(_, n)| *n >= MIN_SERIES).map(|(i, _)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::SeriesKey;
    use crate::period::Frequency;
    use chrono::NaiveDate;

    fn panel(keys: &[(&str, &str)], values: Vec<Vec<f32>>) -> Panel {
        let keys = keys.iter().map(|(i, l)| SeriesKey { item_id: (*i).into(), location_id: (*l).into() }).collect();
        Panel::new(keys, values, NaiveDate::from_ymd_opt(2026, 1, 30).unwrap(), Frequency::Weekly)
    }

    #[test]
    fn an_item_sold_at_two_locations_pools_their_shape_and_a_lone_item_has_none() {
        // Two locations of item a at levels 10 and 100 with the same shape (every fourth period
        // doubles); item b at one location.
        let shape = |level: f32, n: usize| (0..n).map(|t| if t % 4 == 0 { 2.0 * level } else { level }).collect();
        let p = panel(&[("a", "x"), ("a", "y"), ("b", "x")], vec![shape(10.0, 40), shape(100.0, 40), shape(5.0, 40)]);
        let index = PooledIndex::new(&p, 6, 1);
        // Two whole cycles around a period: the level is 1.25 of the base, a peak reads 2 / 1.25,
        // a plain period 1 / 1.25.
        assert!((index.at(0, 40, 20) - 1.6).abs() < 0.05, "{}", index.at(0, 40, 20));
        assert!((index.at(1, 40, 21) - 0.8).abs() < 0.05, "{}", index.at(1, 40, 21));
        assert!(index.at(2, 40, 20).is_nan());
        assert!(index.at(0, 40, 40).is_nan() && index.at(0, 40, -1).is_nan());
    }

    #[test]
    fn the_level_around_a_period_reads_at_most_lead_periods_after_it() {
        // A jump at period 30 of both series: with a lead of 2, the index at 20 does not see it.
        let jump = |n: usize| (0..n).map(|t| if t >= 30 { 1000.0 } else { 10.0 }).collect();
        let p = panel(&[("a", "x"), ("a", "y")], vec![jump(40), jump(40)]);
        let index = PooledIndex::new(&p, 8, 2);
        assert!((index.at(0, 40, 20) - 1.0).abs() < 1e-6);
        assert!(index.at(0, 40, 29) < 0.1, "the window from 29 reads the jump: {}", index.at(0, 40, 29));
        // A shorter series (it starts later) lines up with the panel's end.
        let p = panel(
            &[("a", "x"), ("a", "y")],
            vec![jump(40), (10..40).map(|t| if t >= 30 { 1000.0 } else { 10.0 }).collect()],
        );
        let index = PooledIndex::new(&p, 8, 2);
        assert_eq!(index.at(1, 30, 10), index.at(0, 40, 20));
    }
    #[test]
    fn the_items_growth_sums_its_locations_over_the_same_periods_a_year_earlier() {
        // Location x doubles after a year; y stays. Over the window of 4 up to 13: (80 + 40) / (40 + 40).
        let (year, n) = (10, 30);
        let x = (0..n).map(|t| if t >= year { 20.0 } else { 10.0 }).collect();
        let p = panel(&[("a", "x"), ("a", "y"), ("b", "x")], vec![x, vec![10.0; n], vec![10.0; n]]);
        let index = PooledIndex::new(&p, 5, 2).with_growth(&p, year, 4);
        assert!((index.growth_at(0, n, 13) - 1.5).abs() < 1e-6, "{}", index.growth_at(0, n, 13));
        assert_eq!(index.growth_at(1, n, 13), index.growth_at(0, n, 13));
        assert!((index.growth_at(0, n, 25) - 1.0).abs() < 1e-6, "both years doubled");
        // Not a year and a window of history yet; a lone item has none.
        assert!(index.growth_at(0, n, 12).is_nan() && index.growth_at(2, n, 25).is_nan());
    }
}
