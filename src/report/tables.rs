//! The report's tables, built once from a [`Report`] and rendered by both the HTML and the
//! Markdown writers, so the two always print the same numbers.
//!
//! Numbers are formatted here and only here: scores with three decimals ([`score`]), shares of
//! a model's series and unit totals with none, a missing value as `-`. A table's `id` names it
//! in both outputs (`<table id="scores">`, and the Markdown heading above it).

use super::{Report, Why};
use crate::evaluate::backtest::Scores;
use crate::evaluate::champion::{Metric, calibration_text};

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The text shown.
    pub text: String,
    /// Right-aligned (a number).
    pub numeric: bool,
    /// The model the cell names, for a colour swatch in HTML.
    pub model: Option<String>,
}

impl Cell {
    /// A text cell.
    pub fn text(s: impl Into<String>) -> Self {
        Self { text: s.into(), numeric: false, model: None }
    }

    /// A number, already formatted.
    pub fn num(s: impl Into<String>) -> Self {
        Self { text: s.into(), numeric: true, model: None }
    }

    /// A model's name.
    pub fn model(name: &str) -> Self {
        Self { text: name.to_string(), numeric: false, model: Some(name.to_string()) }
    }
}

/// A table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Stable id (HTML `id`, Markdown anchor).
    pub id: &'static str,
    /// Caption.
    pub caption: String,
    /// Column headers.
    pub header: Vec<String>,
    /// Rows.
    pub rows: Vec<Vec<Cell>>,
}

/// A score as printed: three decimals, `-` when missing.
pub fn score(v: Option<f64>) -> String {
    match v {
        Some(v) if v.is_finite() => format!("{v:.3}"),
        _ => "-".to_string(),
    }
}

/// A count or unit total as printed: no decimals.
pub fn whole(v: f64) -> String {
    if v.is_finite() { format!("{v:.0}") } else { "-".to_string() }
}

/// The display name of a metric.
pub fn metric_name(m: Metric) -> &'static str {
    match m {
        Metric::Mase => "MASE",
        Metric::Wape => "WAPE %",
        Metric::Rmse => "RMSE",
        Metric::Mae => "MAE",
        Metric::Smape => "sMAPE %",
        Metric::Pinball => "mean pinball",
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The run: id, job, dates, status.
pub fn run(r: &Report) -> Table {
    let u = &r.run;
    let kv = |k: &str, v: String| vec![Cell::text(k), Cell::text(v)];
    Table {
        id: "run",
        caption: "Run".into(),
        header: vec!["field".into(), "value".into()],
        rows: vec![
            kv("run id", u.run_id.clone()),
            kv("job", opt(u.job.as_ref())),
            kv("run date", opt(u.run_date)),
            kv("cutoff", opt(u.cutoff)),
            kv("status", opt(u.status.as_ref())),
            kv("started", opt(u.started_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC")))),
            kv("last update", opt(u.ended_at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC")))),
            kv("frequency", r.frequency.as_str().to_string()),
            kv("lake", r.lake.clone()),
            kv("report made", r.generated_at.format("%Y-%m-%d %H:%M:%S UTC").to_string()),
        ],
    }
}

/// The run's steps.
pub fn steps(r: &Report) -> Table {
    Table {
        id: "steps",
        caption: "Steps".into(),
        header: ["step", "kind", "status", "attempts", "rows out", "error"].map(String::from).to_vec(),
        rows: r
            .run
            .steps
            .iter()
            .map(|s| {
                vec![
                    Cell::text(&s.name),
                    Cell::text(&s.kind),
                    Cell::text(&s.status),
                    Cell::num(s.attempts.to_string()),
                    Cell::num(opt(s.rows_out)),
                    Cell::text(s.error.clone().unwrap_or_default()),
                ]
            })
            .collect(),
    }
}

/// A column of the scores table: its header and how to read its value.
type ScoreColumn = (String, Box<dyn Fn(&Scores) -> Option<f64>>);

/// The columns of [`scores`] after `model` and `n`.
fn score_columns(levels: &[f64]) -> Vec<ScoreColumn> {
    let mut cols: Vec<ScoreColumn> = vec![
        ("MAE".into(), Box::new(|s: &Scores| s.mae)),
        ("RMSE".into(), Box::new(|s: &Scores| s.rmse)),
        ("WAPE %".into(), Box::new(|s: &Scores| s.wape)),
        ("sMAPE %".into(), Box::new(|s: &Scores| s.smape)),
        ("MASE".into(), Box::new(|s: &Scores| s.mase)),
        ("R²".into(), Box::new(|s: &Scores| s.r2)),
        ("bias".into(), Box::new(|s: &Scores| s.bias)),
        ("bias %".into(), Box::new(|s: &Scores| s.bias_pct)),
        ("coverage 80".into(), Box::new(|s: &Scores| s.coverage_80)),
    ];
    for l in levels {
        let key = format!("{l}");
        cols.push((format!("pinball {l}"), Box::new(move |s: &Scores| s.pinball.get(&key).copied())));
    }
    cols
}

/// Every model's scores over all backtest windows.
pub fn scores(r: &Report) -> Option<Table> {
    let b = r.backtest.as_ref()?;
    let cols = score_columns(&b.levels);
    let mut header = vec!["model".to_string(), "n".to_string()];
    header.extend(cols.iter().map(|(h, _)| h.clone()));
    let rows = b
        .models
        .iter()
        .map(|m| {
            let mut row = vec![Cell::model(&m.model), Cell::num(m.overall.n.to_string())];
            row.extend(cols.iter().map(|(_, f)| Cell::num(score(f(&m.overall)))));
            row
        })
        .collect();
    Some(Table { id: "scores", caption: "Backtest scores, all windows".into(), header, rows })
}

/// Forecast value added over seasonal naive.
pub fn value_added(r: &Report) -> Option<Table> {
    let b = r.backtest.as_ref()?;
    let rows = b
        .models
        .iter()
        .zip(&b.value_added)
        .map(|(m, v)| {
            vec![
                Cell::model(&m.model),
                Cell::num(score(m.overall.mase)),
                Cell::num(score(v.mase_pct)),
                Cell::num(score(m.overall.wape)),
                Cell::num(score(v.wape_pct)),
            ]
        })
        .collect();
    Some(Table {
        id: "fva",
        caption: "Forecast value added over seasonal naive (%, positive: better)".into(),
        header: ["model", "MASE", "FVA on MASE %", "WAPE %", "FVA on WAPE %"].map(String::from).to_vec(),
        rows,
    })
}

/// A metric per key (step, class, window) and model.
fn by_key<K: ToString>(
    b: &super::BacktestSection,
    id: &'static str,
    caption: String,
    key: &str,
    keys: Vec<K>,
    get: impl Fn(&crate::evaluate::backtest::ModelBacktest, &K) -> Option<f64>,
) -> Option<Table> {
    let mut header = vec![key.to_string()];
    header.extend(b.models.iter().map(|m| m.model.clone()));
    let rows = keys
        .iter()
        .map(|k| {
            let mut row = vec![Cell::text(k.to_string())];
            row.extend(b.models.iter().map(|m| Cell::num(score(get(m, k)))));
            row
        })
        .collect();
    Some(Table { id, caption, header, rows })
}

/// The champion metric per horizon step and model.
pub fn by_step(r: &Report) -> Option<Table> {
    let b = r.backtest.as_ref()?;
    let steps: Vec<usize> = (1..=b.horizon).collect();
    let metric = r.metric;
    by_key(b, "by-step", format!("{} by horizon step", metric_name(metric)), "step", steps, |m, k| {
        m.per_step.get(k).and_then(|s| metric.of(s))
    })
}

/// The champion metric per demand class and model.
pub fn by_class(r: &Report) -> Option<Table> {
    let b = r.backtest.as_ref()?;
    let mut classes: Vec<String> = b.models.iter().flat_map(|m| m.per_class.keys().cloned()).collect();
    classes.sort();
    classes.dedup();
    let metric = r.metric;
    by_key(b, "by-class", format!("{} by demand class", metric_name(metric)), "class", classes, |m, k| {
        m.per_class.get(k).and_then(|s| metric.of(s))
    })
}

/// The champion metric per backtest window and model.
pub fn by_window(r: &Report) -> Option<Table> {
    let b = r.backtest.as_ref()?;
    let metric = r.metric;
    by_key(
        b,
        "by-window",
        format!("{} by window (cutoff)", metric_name(metric)),
        "cutoff",
        b.cutoffs.clone(),
        |m, k| m.per_window.get(k).and_then(|s| metric.of(s)),
    )
}

/// The tracked accuracy of earlier forecasts, per model, over every tracked run date.
pub fn tracked(r: &Report) -> Option<Table> {
    let t = r.tracked.as_ref()?;
    let rows = t
        .models
        .iter()
        .zip(&t.value_added)
        .map(|(m, v)| {
            let s = &m.overall;
            vec![
                Cell::model(&m.model),
                Cell::num(s.n.to_string()),
                Cell::num(score(s.mase)),
                Cell::num(score(s.wape)),
                Cell::num(score(s.bias)),
                Cell::num(score(s.coverage_80)),
                Cell::num(score(v.mase_pct)),
            ]
        })
        .collect();
    Some(Table {
        id: "tracked",
        caption: format!(
            "Tracked accuracy: the forecasts of {} earlier run date(s) against the actuals since",
            t.cutoffs.len()
        ),
        header: ["model", "n", "MASE", "WAPE %", "bias", "coverage 80", "FVA on MASE %"].map(String::from).to_vec(),
        rows,
    })
}

/// The champion metric of earlier forecasts per forecast cutoff and model: the trend.
pub fn tracked_trend(r: &Report) -> Option<Table> {
    let t = r.tracked.as_ref()?;
    let metric = r.metric;
    let caption = format!("Tracked {} by forecast cutoff (the trend)", metric_name(metric));
    by_key(t, "tracked-trend", caption, "cutoff", t.cutoffs.clone(), |m, k| {
        m.per_window.get(k).and_then(|s| metric.of(s))
    })
}

/// The champion metric of earlier forecasts per horizon step and model.
pub fn tracked_by_step(r: &Report) -> Option<Table> {
    let t = r.tracked.as_ref()?;
    let metric = r.metric;
    let mut steps: Vec<usize> = t.models.iter().flat_map(|m| m.per_step.keys().copied()).collect();
    steps.sort_unstable();
    steps.dedup();
    let caption = format!("Tracked {} by horizon step", metric_name(metric));
    by_key(t, "tracked-by-step", caption, "step", steps, |m, k| m.per_step.get(k).and_then(|s| metric.of(s)))
}

/// This run's champion decisions.
pub fn decisions(r: &Report) -> Table {
    let c = &r.champions;
    Table {
        id: "decisions",
        caption: format!("Champion decisions of this run ({})", metric_name(c.metric)),
        header: [
            "segment",
            "champion before",
            "its score",
            "best challenger",
            "its score",
            "promoted",
            "FVA %",
            "decided on",
        ]
        .map(String::from)
        .to_vec(),
        rows: c
            .decisions
            .iter()
            .map(|d| {
                vec![
                    Cell::text(&d.segment),
                    d.champion.as_deref().map_or_else(|| Cell::text("-"), Cell::model),
                    Cell::num(score(d.champion_score)),
                    Cell::model(&d.challenger),
                    Cell::num(score(Some(d.challenger_score))),
                    Cell::text(if d.promoted { "yes" } else { "no" }),
                    Cell::num(score(d.value_added_pct)),
                    Cell::text(d.evidence.as_str()),
                ]
            })
            .collect(),
    }
}

/// The champion of each segment now.
pub fn champions(r: &Report) -> Table {
    let c = &r.champions;
    Table {
        id: "champions",
        caption: format!("Champions in the registry ({})", metric_name(c.metric)),
        header: ["segment", "champion", "score", "since run", "published intervals"].map(String::from).to_vec(),
        rows: c
            .segments
            .iter()
            .map(|(seg, ch)| {
                vec![
                    Cell::text(seg),
                    Cell::model(&ch.model),
                    Cell::num(score(Some(ch.score))),
                    Cell::text(&ch.since),
                    Cell::text(calibration_text(&ch.calibration)),
                ]
            })
            .collect(),
    }
}

/// Who held each segment after each run (`↑`: promoted by that run).
pub fn history(r: &Report) -> Table {
    let c = &r.champions;
    let mut segments: Vec<&String> = c.history.iter().flat_map(|h| h.held.keys()).collect();
    segments.sort();
    segments.dedup();
    let mut header = vec!["run".to_string()];
    header.extend(segments.iter().map(|s| s.to_string()));
    let rows = c
        .history
        .iter()
        .map(|h| {
            let mut row = vec![Cell::text(&h.run_id)];
            row.extend(segments.iter().map(|s| match h.held.get(*s) {
                Some(held) => {
                    let mut cell = Cell::model(&held.model);
                    if held.promoted {
                        cell.text.push_str(" ↑");
                    }
                    cell
                }
                None => Cell::text("-"),
            }));
            row
        })
        .collect();
    Table { id: "history", caption: "Champion history (↑: promoted by that run)".into(), header, rows }
}

/// The series shown in detail.
pub fn series(r: &Report) -> Table {
    Table {
        id: "series",
        caption: "Series shown".into(),
        header: ["series", "shown for", "model", "MASE", "units"].map(String::from).to_vec(),
        rows: r
            .series
            .iter()
            .map(|s| {
                vec![
                    Cell::text(format!("{} / {}", s.item_id, s.location_id)),
                    Cell::text(match s.why {
                        Why::Volume => "volume",
                        Why::Worst => "worst MASE",
                    }),
                    Cell::model(&s.model),
                    Cell::num(score(s.mase)),
                    Cell::num(whole(s.volume)),
                ]
            })
            .collect(),
    }
}

/// The published forecast: where, how much, which quantiles.
pub fn published(r: &Report) -> Option<Table> {
    let p = r.published.as_ref()?;
    let kv = |k: &str, v: String| vec![Cell::text(k), Cell::text(v)];
    let q: Vec<String> = p.quantiles.iter().map(|q| q.to_string()).collect();
    Some(Table {
        id: "published",
        caption: "Published forecast".into(),
        header: vec!["field".into(), "value".into()],
        rows: vec![
            kv("location", p.location.clone()),
            kv("run date", p.run_date.to_string()),
            kv("cutoff", opt(p.cutoff)),
            kv("rows", p.rows.to_string()),
            kv("series", p.series.to_string()),
            kv("horizon", p.horizon.to_string()),
            kv("quantiles", q.join(", ")),
        ],
    })
}

/// Series per published model.
pub fn published_models(r: &Report) -> Option<Table> {
    let p = r.published.as_ref()?;
    Some(Table {
        id: "published-models",
        caption: "Series per published model".into(),
        header: vec!["model".into(), "series".into()],
        rows: p.models.iter().map(|(m, n)| vec![Cell::model(m), Cell::num(n.to_string())]).collect(),
    })
}

/// Units summed over the series per period: actual before the cutoff, mean forecast after it.
pub fn totals(r: &Report) -> Option<Table> {
    let p = r.published.as_ref()?;
    let actual = p
        .actual_totals
        .iter()
        .map(|t| vec![Cell::text(t.date.to_string()), Cell::num(score(Some(t.units))), Cell::num(score(None))]);
    let forecast = p
        .totals
        .iter()
        .map(|t| vec![Cell::text(t.date.to_string()), Cell::num(score(None)), Cell::num(score(Some(t.units)))]);
    Some(Table {
        id: "totals",
        caption: "Total units per period, all series".into(),
        header: vec!["period".into(), "actual".into(), "forecast mean".into()],
        rows: actual.chain(forecast).collect(),
    })
}

/// The price elasticities of each category with their 95% intervals.
pub fn elasticities(r: &Report) -> Option<Table> {
    let f = r.factors.as_ref()?;
    let mut rows = Vec::new();
    for e in f.estimates.iter().filter(|e| e.section == "elasticity") {
        rows.push(vec![
            Cell::text(&e.category),
            Cell::text(if e.factor == "own_price" { "own price" } else { "competitor price" }),
            Cell::num(format!("{:.2}", e.value)),
            Cell::num(score(e.low).replace(".000", ".00")),
            Cell::num(score(e.high).replace(".000", ".00")),
            Cell::num(e.rows.to_string()),
        ]);
    }
    (!rows.is_empty()).then(|| Table {
        id: "elasticities",
        caption: "Price elasticities per category (log-linear fit, 95% intervals)".into(),
        header: ["category", "price", "elasticity", "low", "high", "rows"].map(String::from).to_vec(),
        rows,
    })
}

/// Promotion uplift per category and kind (on top of the price effect, and with it), and the
/// post-promotion dip.
pub fn promotions(r: &Report) -> Option<Table> {
    let f = r.factors.as_ref()?;
    let mut rows = Vec::new();
    for e in f.estimates.iter().filter(|e| e.section == "promotion" || e.section == "post_promotion") {
        let total = f
            .estimates
            .iter()
            .find(|t| t.section == "promotion_total" && t.category == e.category && t.factor == e.factor);
        rows.push(vec![
            Cell::text(&e.category),
            Cell::text(if e.section == "post_promotion" { "after a promotion" } else { e.factor.as_str() }),
            Cell::num(format!("{:.1}", e.value)),
            Cell::num(e.low.zip(e.high).map_or("-".into(), |(l, h)| format!("{l:.1} … {h:.1}"))),
            Cell::num(e.units.map_or("-".into(), whole)),
            Cell::num(total.map_or("-".into(), |t| format!("{:.1}", t.value))),
            Cell::num(total.and_then(|t| t.units).map_or("-".into(), whole)),
        ]);
    }
    (!rows.is_empty()).then(|| Table {
        id: "promotions",
        caption:
            "Promotion uplift, % on top of the price effect (units over the history), and in total with the price cut"
                .into(),
        header: ["category", "kind", "uplift %", "95% interval", "units", "total %", "total units"]
            .map(String::from)
            .to_vec(),
        rows,
    })
}

/// Each driver's share of the variance of log demand.
pub fn drivers(r: &Report) -> Option<Table> {
    let f = r.factors.as_ref()?;
    let rows: Vec<Vec<Cell>> = f
        .estimates
        .iter()
        .filter(|e| e.section == "driver_share" && e.category == "all")
        .map(|e| vec![Cell::text(&e.factor), Cell::num(format!("{:.2}", e.value * 100.0))])
        .collect();
    (!rows.is_empty()).then(|| Table {
        id: "drivers",
        caption: "Drivers by share of the variance of log demand".into(),
        header: ["driver", "share %"].map(String::from).to_vec(),
        rows,
    })
}

/// The group importance over all series: each model's loss of accuracy when a group is taken
/// away, mean and spread over the repeats.
pub fn importance(r: &Report) -> Option<Table> {
    let imp = r.factors.as_ref()?.importance.as_ref()?;
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    let rows: Vec<Vec<Cell>> = imp
        .rows
        .iter()
        .filter(|x| x.scope == "all" && x.metric == "wape")
        .map(|x| {
            let mae = imp.get(&x.model, &x.group, "all", "mae");
            vec![
                Cell::text(&x.model),
                Cell::text(&x.group),
                Cell::text(&x.method),
                Cell::num(f(x.baseline, 2)),
                Cell::num(f(x.increase, 3)),
                Cell::num(f(x.std, 3)),
                Cell::num(match (x.min, x.max) {
                    (Some(lo), Some(hi)) => format!("{lo:.3} … {hi:.3}"),
                    _ => "-".into(),
                }),
                Cell::num(f(mae.and_then(|m| m.increase), 4)),
                Cell::num(f(mae.and_then(|m| m.std), 4)),
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        id: "importance",
        caption: format!(
            "Group importance ({}, {} repeat(s), {} window(s)): increase of WAPE (points) and MAE when the group's covariates are taken away",
            imp.method,
            imp.repeats,
            imp.cutoffs.len()
        ),
        header: ["model", "group", "method", "WAPE %", "+WAPE", "sd", "min … max", "+MAE", "sd"]
            .map(String::from)
            .to_vec(),
        rows,
    })
}

/// The closures over the horizon: each key's closed periods (forecast 0) and partly closed ones.
pub fn closures(r: &Report) -> Option<Table> {
    let l = r.local.as_ref()?;
    let rows: Vec<Vec<Cell>> = l
        .closures
        .iter()
        .map(|c| {
            vec![
                Cell::text(c.location_id.as_deref().unwrap_or("every location")),
                Cell::text(c.item_id.as_deref().unwrap_or("every item")),
                Cell::text(c.reason.as_deref().unwrap_or("")),
                Cell::num(c.closed.to_string()),
                Cell::num(c.partly.to_string()),
                Cell::text(c.first.to_string()),
                Cell::text(c.last.to_string()),
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        id: "closures",
        caption: "Closures over the horizon: periods closed the whole period are forecast 0".into(),
        header: ["location", "item", "reason", "closed", "partly", "first", "last"].map(String::from).to_vec(),
        rows,
    })
}

/// The user's covariates the models read, with the local events.
pub fn covariates(r: &Report) -> Option<Table> {
    let l = r.local.as_ref()?;
    let mut rows: Vec<Vec<Cell>> = l
        .covariates
        .iter()
        .map(|c| {
            vec![
                Cell::text(&c.name),
                Cell::text(&c.kind),
                Cell::text(&c.keys),
                Cell::num(c.rows.to_string()),
                Cell::num(c.ahead.to_string()),
            ]
        })
        .collect();
    if l.local_events > 0 {
        rows.push(vec![
            Cell::text("local_event, local_holiday"),
            Cell::text("known"),
            Cell::text("per location"),
            Cell::num(l.local_events.to_string()),
            Cell::num("-"),
        ]);
    }
    (!rows.is_empty()).then(|| Table {
        id: "covariates",
        caption: "Your covariates and local events read by gbt and the deep models".into(),
        header: ["input", "kind", "keys", "rows", "after the cutoff"].map(String::from).to_vec(),
        rows,
    })
}

/// The measured group importance per category and per location.
pub fn importance_rollup(r: &Report) -> Option<Table> {
    let imp = r.factors.as_ref()?.importance.as_ref()?;
    let f = |v: Option<f64>, d: usize| v.map_or("-".to_string(), |v| format!("{v:.d$}"));
    let rows: Vec<Vec<Cell>> = imp
        .rows
        .iter()
        .filter(|x| x.scope != "all" && x.metric == "wape" && (x.method == "permute" || x.method == "refit"))
        .map(|x| {
            vec![
                Cell::text(&x.model),
                Cell::text(&x.group),
                Cell::text(&x.scope),
                Cell::text(&x.scope_value),
                Cell::num(x.series.to_string()),
                Cell::num(f(x.baseline, 2)),
                Cell::num(f(x.increase, 3)),
                Cell::num(f(x.std, 3)),
            ]
        })
        .collect();
    (!rows.is_empty()).then(|| Table {
        id: "importance-rollup",
        caption: "Group importance per category and location: increase of WAPE (points)".into(),
        header: ["model", "group", "scope", "value", "series", "WAPE %", "+WAPE", "sd"].map(String::from).to_vec(),
        rows,
    })
}
