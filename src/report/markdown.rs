//! The report as Markdown: the tables of [`super::tables`] under headings, no charts.

use std::fmt::Write;

use super::Report;
use super::tables::{self, Table};

/// Escapes a cell: pipes and line breaks would end it.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// Writes a table under a `###` heading of its caption.
pub fn table(out: &mut String, t: &Table) {
    let _ = writeln!(out, "### {}\n", t.caption);
    if t.rows.is_empty() {
        let _ = writeln!(out, "(none)\n");
        return;
    }
    let _ = writeln!(out, "| {} |", t.header.iter().map(|h| cell(h)).collect::<Vec<_>>().join(" | "));
    let rule: Vec<&str> = (0..t.header.len())
        .map(|i| if t.rows.first().and_then(|r| r.get(i)).is_some_and(|c| c.numeric) { "---:" } else { "---" })
        .collect();
    let _ = writeln!(out, "| {} |", rule.join(" | "));
    for r in &t.rows {
        let _ = writeln!(out, "| {} |", r.iter().map(|c| cell(&c.text)).collect::<Vec<_>>().join(" | "));
    }
    out.push('\n');
}

/// The whole report.
pub fn render(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Run report: {}\n", r.run.run_id);
    let what = match (&r.run.job, r.run.run_date) {
        (Some(job), Some(d)) => format!("Job `{job}` for {d}"),
        _ => "Backtest".to_string(),
    };
    let _ = writeln!(
        out,
        "{what}, cutoff {}, status {}. The charts are in `report.html` beside this file; every number is also in `report.json`.\n",
        r.run.cutoff.map_or("-".to_string(), |c| c.to_string()),
        r.run.status.as_deref().unwrap_or("-"),
    );
    if let Some(b) = &r.backtest {
        let cutoffs: Vec<String> = b.cutoffs.iter().map(|c| c.to_string()).collect();
        let _ = writeln!(out, "## Model comparison\n");
        let _ = writeln!(
            out,
            "{} models backtested on {} windows (cutoffs {}), horizon {}, MASE season {}.\n",
            b.models.len(),
            b.cutoffs.len(),
            cutoffs.join(", "),
            b.horizon,
            b.season
        );
        for t in [tables::scores(r), tables::value_added(r)].into_iter().flatten() {
            table(&mut out, &t);
        }
        let _ = writeln!(out, "## Error by horizon step\n");
        for t in [tables::by_step(r)].into_iter().flatten() {
            table(&mut out, &t);
        }
        let _ = writeln!(out, "## By segment and window\n");
        for t in [tables::by_class(r), tables::by_window(r)].into_iter().flatten() {
            table(&mut out, &t);
        }
    }
    if r.tracked.is_some() {
        let _ = writeln!(out, "## Tracked accuracy\n");
        for t in [tables::tracked(r), tables::tracked_trend(r), tables::tracked_by_step(r)].into_iter().flatten() {
            table(&mut out, &t);
        }
    }
    if !r.series.is_empty() {
        let _ = writeln!(out, "## Series\n");
        table(&mut out, &tables::series(r));
    }
    let _ = writeln!(out, "## Champions\n");
    for t in [tables::decisions(r), tables::champions(r), tables::history(r)] {
        table(&mut out, &t);
    }
    if r.published.is_some() {
        let _ = writeln!(out, "## Published forecast\n");
        for t in [tables::published(r), tables::published_models(r), tables::totals(r)].into_iter().flatten() {
            table(&mut out, &t);
        }
    }
    if r.factors.is_some() {
        let _ = writeln!(out, "## What moves demand\n");
        for t in [
            tables::elasticities(r),
            tables::promotions(r),
            tables::drivers(r),
            tables::importance(r),
            tables::importance_rollup(r),
        ]
        .into_iter()
        .flatten()
        {
            table(&mut out, &t);
        }
    }
    if r.local.is_some() {
        let _ = writeln!(out, "## Your own inputs\n");
        for t in [tables::closures(r), tables::covariates(r)].into_iter().flatten() {
            table(&mut out, &t);
        }
    }
    let _ = writeln!(out, "## Run\n");
    table(&mut out, &tables::run(r));
    table(&mut out, &tables::steps(r));
    if !r.notes.is_empty() {
        let _ = writeln!(out, "## Notes\n");
        for n in &r.notes {
            let _ = writeln!(out, "- {}", n.replace('\n', " "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::tables::Cell;

    #[test]
    fn cells_cannot_break_the_table() {
        let t = Table {
            id: "t",
            caption: "T".into(),
            header: vec!["a".into(), "b".into()],
            rows: vec![vec![Cell::text("x|y\nz"), Cell::num("1.000")]],
        };
        let mut out = String::new();
        table(&mut out, &t);
        assert_eq!(out, "### T\n\n| a | b |\n| --- | ---: |\n| x\\|y z | 1.000 |\n\n");
    }
}
