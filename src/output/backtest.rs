//! `backtest` as text: one row of scores per model (MAE, RMSE, WAPE, sMAPE, MASE, R², bias, 80%
//! coverage, mean pinball loss, WRMSSE and the seconds it took) and one for the published
//! forecast, the models that could not forecast some cutoff and why, the champions it published
//! at each cutoff, then WRMSSE per level.

use std::fmt::Write;

use chrono::NaiveDate;
use serde::Serialize;

use super::num3;
use crate::evaluate::backtest::BacktestReport;
use crate::evaluate::champion::calibration_text;

/// A finished `shelfcast backtest`: where its scores are stored and the whole report.
#[derive(Debug, Clone, Serialize)]
pub struct BacktestDone {
    /// The backtest's id (`backtest-<time>`), also its folder in the lake.
    pub run_id: String,
    /// Where the scores and forecasts are stored.
    pub location: String,
    /// Series backtested.
    pub series: usize,
    /// The last day with sales.
    pub last_sales_date: NaiveDate,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Cutoffs, scores per model, segment and horizon step.
    pub report: BacktestReport,
}

/// The score table.
pub fn backtest(b: &BacktestDone) -> String {
    let mut out = String::new();
    let report = &b.report;
    let cutoffs: Vec<String> = report.cutoffs.iter().map(|c| c.to_string()).collect();
    let _ = writeln!(
        out,
        "backtest {}: {} series, cutoffs {}, horizon {}, {:.1} s",
        b.run_id,
        b.series,
        cutoffs.join(", "),
        report.horizon,
        b.seconds
    );
    let _ = writeln!(
        out,
        "{:<16} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {:>8} {:>7} {:>8}",
        "model", "MAE", "RMSE", "WAPE%", "sMAPE%", "MASE", "R2", "bias", "cov80", "pinball", "WRMSSE", "seconds"
    );
    for m in report.with_published() {
        let o = &m.overall;
        let pinball =
            if o.pinball.is_empty() { None } else { Some(o.pinball.values().sum::<f64>() / o.pinball.len() as f64) };
        let _ = writeln!(
            out,
            "{:<16} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {:>8} {:>7} {:>8.1}",
            m.model,
            num3(o.mae),
            num3(o.rmse),
            num3(o.wape),
            num3(o.smape),
            num3(o.mase),
            num3(o.r2),
            num3(o.bias),
            num3(o.coverage_80),
            num3(pinball),
            num3(m.wrmsse.get("mean").copied()),
            m.seconds
        );
    }
    for m in report.models.iter().filter(|m| !m.failed.is_empty()) {
        let scored = report.cutoffs.len() - m.failed.len();
        let _ = writeln!(
            out,
            "{} could not forecast {} of {} cutoffs (scored on the other {scored}, no candidate for champion):",
            m.model,
            m.failed.len(),
            report.cutoffs.len()
        );
        for (cutoff, why) in &m.failed {
            let _ = writeln!(out, "  {cutoff}: {why}");
        }
    }
    if let Some(p) = &report.published {
        let _ = writeln!(
            out,
            "published: each segment's champion, crowned on the windows before each cutoff ({} of {} cutoffs)",
            p.champions.len(),
            report.cutoffs.len()
        );
        for (cutoff, chosen) in &p.champions {
            let factors = p.calibration.get(cutoff);
            let v: Vec<String> = chosen
                .iter()
                .map(|(segment, model)| match factors.and_then(|f| f.get(segment)) {
                    Some(f) => format!("{segment} {model} ({})", calibration_text(f)),
                    None => format!("{segment} {model}"),
                })
                .collect();
            let _ = writeln!(out, "  {cutoff}: {}", v.join(", "));
        }
    }
    if let Some(m) = report.models.first().filter(|m| !m.wrmsse.is_empty()) {
        let levels: Vec<&str> = m.wrmsse.keys().filter(|k| *k != "mean").map(String::as_str).collect();
        let _ = writeln!(out, "WRMSSE by level: {}", levels.join(", "));
        for m in report.with_published() {
            let v: Vec<String> = levels.iter().map(|l| num3(m.wrmsse.get(*l).copied())).collect();
            let _ = writeln!(out, "  {:<14} {}", m.model, v.join("  "));
        }
    }
    let _ = writeln!(out, "scores and forecasts: {}", b.location);
    out
}
