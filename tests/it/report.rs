use std::collections::BTreeMap;
use std::process::Command;

use quick_xml::events::Event;
use serde_json::Value;
use shelfcast::jobs::Status;
use shelfcast::lake::{Lake, layout};
use shelfcast::settings::SettingsFile;

use crate::common::*;

/// A table of the HTML: header and body rows, as text.
type Rows = Vec<Vec<String>>;

/// What the report's HTML holds, read with an XML parser (which also proves it well-formed).
#[derive(Debug, Default)]
struct Page {
    /// Every `<svg>` element's numeric attributes, per chart.
    charts: Vec<Vec<(String, String)>>,
    /// Tables by id.
    tables: BTreeMap<String, Rows>,
    /// Table captions by id.
    captions: BTreeMap<String, String>,
    /// All text outside charts.
    text: String,
    /// Element names seen.
    elements: Vec<String>,
}

const NUMERIC: [&str; 13] = ["x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height", "points", "viewBox"];

fn entity(name: &str) -> String {
    match name {
        "amp" => "&".into(),
        "lt" => "<".into(),
        "gt" => ">".into(),
        "quot" => "\"".into(),
        "#39" => "'".into(),
        other => panic!("unexpected entity &{other};"),
    }
}

fn parse(html: &str) -> Page {
    let mut reader = quick_xml::Reader::from_str(html);
    reader.config_mut().check_end_names = true;
    let mut page = Page::default();
    let mut svg_depth = 0usize;
    let (mut table, mut cell, mut caption): (Option<String>, Option<String>, Option<String>) = (None, None, None);
    loop {
        let ev = reader.read_event().unwrap_or_else(|e| panic!("not well-formed at {}: {e}", reader.buffer_position()));
        let open = matches!(ev, Event::Start(_));
        match ev {
            Event::Eof => break,
            Event::Start(e) | Event::Empty(e) => {
                let name = String::from_utf8(e.name().as_ref().to_vec()).unwrap();
                page.elements.push(name.clone());
                if name == "svg" {
                    assert!(open, "an empty <svg/>");
                    svg_depth += 1;
                    page.charts.push(Vec::new());
                }
                let attrs: Vec<(String, String)> = e
                    .attributes()
                    .map(|a| {
                        let a = a.unwrap();
                        (String::from_utf8(a.key.as_ref().to_vec()).unwrap(), a.unescape_value().unwrap().to_string())
                    })
                    .collect();
                if svg_depth > 0 {
                    let chart = page.charts.last_mut().unwrap();
                    chart.extend(attrs.iter().filter(|(k, _)| NUMERIC.contains(&k.as_str())).cloned());
                }
                match name.as_str() {
                    "table" => {
                        let id = attrs.iter().find(|(k, _)| k == "id").map(|(_, v)| v.clone()).unwrap();
                        page.tables.insert(id.clone(), Vec::new());
                        table = Some(id);
                    }
                    "tr" if open => page.tables.get_mut(table.as_ref().unwrap()).unwrap().push(Vec::new()),
                    "td" | "th" if open => cell = Some(String::new()),
                    "caption" if open => caption = Some(String::new()),
                    _ => {}
                }
            }
            Event::End(e) => match e.name().as_ref() {
                b"svg" => svg_depth -= 1,
                b"td" | b"th" => {
                    let c = cell.take().unwrap();
                    page.tables
                        .get_mut(table.as_ref().unwrap())
                        .unwrap()
                        .last_mut()
                        .unwrap()
                        .push(c.trim().to_string());
                }
                b"table" => table = None,
                b"caption" => {
                    page.captions.insert(table.clone().unwrap(), caption.take().unwrap());
                }
                _ => {}
            },
            Event::Text(t) => {
                let s = t.decode().unwrap().to_string();
                if svg_depth > 0 {
                    assert!(!s.contains("NaN") && !s.contains("inf"), "chart text {s}");
                } else {
                    page.text.push_str(&s);
                }
                if let Some(c) = cell.as_mut().or(caption.as_mut()) {
                    c.push_str(&s);
                }
            }
            Event::GeneralRef(r) => {
                let s = entity(&r.decode().unwrap());
                if svg_depth == 0 {
                    page.text.push_str(&s);
                }
                if let Some(c) = cell.as_mut().or(caption.as_mut()) {
                    c.push_str(&s);
                }
            }
            _ => {}
        }
    }
    assert_eq!(svg_depth, 0);
    page
}

/// The rows of the Markdown table under `### caption`, header first.
fn markdown_table(md: &str, caption: &str) -> Rows {
    let start = md.find(&format!("### {caption}\n")).unwrap_or_else(|| panic!("no table `{caption}`"));
    md[start..]
        .lines()
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .filter(|l| !l.starts_with("| ---"))
        .map(|l| l.trim_matches('|').split(" | ").map(|c| c.trim().to_string()).collect())
        .collect()
}

fn three(v: &Value) -> String {
    v.as_f64().map_or("-".to_string(), |v| format!("{v:.3}"))
}

/// The scores table as the JSON says it should be printed: model, n, then every score with
/// three decimals.
fn expected_scores(json: &Value) -> Rows {
    let models = json["backtest"]["models"].as_array().unwrap();
    let levels: Vec<String> =
        json["backtest"]["levels"].as_array().unwrap().iter().map(|l| l.as_f64().unwrap().to_string()).collect();
    models
        .iter()
        .map(|m| {
            let o = &m["overall"];
            let mut row = vec![m["model"].as_str().unwrap().to_string(), o["n"].to_string()];
            for k in ["mae", "rmse", "wape", "smape", "mase", "r2", "bias", "bias_pct", "coverage_80"] {
                row.push(three(&o[k]));
            }
            row.extend(levels.iter().map(|l| three(&o["pinball"][l])));
            row
        })
        .collect()
}

async fn text(lake: &Lake, run_id: &str, file: &str) -> String {
    let bytes = lake.get(&layout::report(run_id).join(file)).await.unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[tokio::test]
async fn the_nightly_report_carries_the_backtest_scores_in_html_markdown_and_json() {
    let lake = Lake::in_memory();
    demo_lake(&lake, 8).await;
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let file = SettingsFile {
        models: Some(vec!["seasonal_naive".into(), "moving_average".into(), "croston".into()]),
        horizon: Some(14),
        ..Default::default()
    };
    let env = env(settings("memory:///", dir.path(), file), &lake, &clock);
    let run = nightly(&env, date("2026-04-01")).await.unwrap();
    let step = run.steps.iter().find(|s| s.name == "report").unwrap();
    assert_eq!(step.status, Status::Succeeded);
    assert_eq!(run.steps.last().unwrap().name, "report", "the report is the last step");
    assert!(run.summary.report.as_deref().unwrap().ends_with(&format!("reports/run_id={}", run.run_id)));

    // Three files, then a manifest naming them with their checksums.
    let manifest: Value =
        serde_json::from_slice(&lake.get(&layout::manifest(&layout::report(&run.run_id))).await.unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 3);
    for f in files {
        let bytes = lake.get(&layout::report(&run.run_id).join(f["path"].as_str().unwrap())).await.unwrap();
        assert_eq!(f["bytes"].as_u64().unwrap(), bytes.len() as u64);
        use sha2::Digest;
        assert_eq!(f["sha256"].as_str().unwrap(), hex::encode(sha2::Sha256::digest(&bytes)));
    }

    let json: Value = serde_json::from_str(&text(&lake, &run.run_id, "report.json").await).unwrap();
    let html = text(&lake, &run.run_id, "report.html").await;
    let md = text(&lake, &run.run_id, "report.md").await;

    // The JSON's scores are the backtest's, as stored in its manifest.
    let stored: Value =
        serde_json::from_slice(&lake.get(&layout::manifest(&layout::backtest(&run.run_id))).await.unwrap()).unwrap();
    let models = json["backtest"]["models"].as_array().unwrap();
    assert_eq!(models.len(), 3);
    for (m, s) in models.iter().zip(stored["report"]["models"].as_array().unwrap()) {
        assert_eq!(m["model"], s["model"]);
        for part in ["overall", "per_step", "per_class", "per_window"] {
            assert_eq!(m[part], s[part], "{} {part}", m["model"]);
        }
    }
    assert_eq!(json["run"]["run_id"], run.run_id.as_str());
    assert_eq!(json["run"]["cutoff"], "2026-03-31");
    let fva = &json["backtest"]["value_added"];
    assert_eq!(fva[0]["mase_pct"].as_f64(), Some(0.0), "seasonal naive adds nothing over itself");

    // The HTML: well-formed, self-contained, charts with finite coordinates only.
    let page = parse(&html);
    assert!(page.charts.len() >= 7, "bars ×3, steps, classes, series, totals: {}", page.charts.len());
    for chart in &page.charts {
        assert!(!chart.is_empty());
        for (k, v) in chart {
            for n in v.split([' ', ',']).filter(|s| !s.is_empty()) {
                let x: f64 = n.parse().unwrap_or_else(|_| panic!("{k}=\"{v}\" is not numeric"));
                assert!(x.is_finite(), "{k}=\"{v}\"");
            }
        }
    }
    for tag in ["script", "link", "img", "iframe"] {
        assert!(!page.elements.iter().any(|e| e == tag), "<{tag}> in a self-contained page");
    }
    assert!(!html.contains("src=") && !html.contains("href=") && !html.contains("url("));
    for m in models {
        assert!(page.text.contains(m["model"].as_str().unwrap()));
    }

    // The same numbers in the HTML's and the Markdown's scores tables.
    let expected = expected_scores(&json);
    let html_scores = &page.tables["scores"];
    assert_eq!(html_scores[0][0], "model");
    assert_eq!(&html_scores[1..], &expected[..]);
    let md_scores = markdown_table(&md, "Backtest scores, all windows");
    assert_eq!(md_scores[0], html_scores[0]);
    assert_eq!(&md_scores[1..], &expected[..]);
    // And per horizon step.
    let md_steps = markdown_table(&md, "MASE by horizon step");
    assert_eq!(md_steps.len(), 1 + 14);
    for (i, m) in models.iter().enumerate() {
        for step in 1..=14 {
            assert_eq!(md_steps[step][i + 1], three(&m["per_step"][step.to_string()]["mase"]));
        }
    }
    assert_eq!(page.tables["by-step"], md_steps);
    // Every table the HTML shows, the Markdown shows with the same cells.
    for (id, rows) in &page.tables {
        if rows.len() > 1 && rows[1].len() == rows[0].len() {
            assert_eq!(&markdown_table(&md, &page.captions[id]), rows, "table {id}");
        }
    }
    assert!(page.tables.len() >= 12, "{:?}", page.tables.keys());

    // Series: the three largest, then the worst of the rest.
    let series = json["series"].as_array().unwrap();
    assert_eq!(series.len(), 4);
    let why: Vec<&str> = series.iter().map(|s| s["why"].as_str().unwrap()).collect();
    assert_eq!(why, ["volume", "volume", "volume", "worst"]);
    let volume: Vec<f64> = series.iter().map(|s| s["volume"].as_f64().unwrap()).collect();
    assert!(volume[0] >= volume[1] && volume[1] >= volume[2]);
    for s in series {
        assert!(!s["actuals"].as_array().unwrap().is_empty());
        assert_eq!(s["backtest"].as_array().unwrap().len(), 2 * 14, "two windows of 14 periods");
        assert_eq!(s["forecast"].as_array().unwrap().len(), 14);
        let p = &s["forecast"][0];
        assert!(p["lo"].as_f64().unwrap() <= p["hi"].as_f64().unwrap());
    }
    assert_eq!(json["published"]["rows"], 8 * 14);
    assert_eq!(json["champions"]["decisions"].as_array().unwrap().len(), run.champions.len());
    assert_eq!(page.tables["decisions"].len(), 1 + run.champions.len());
}

#[tokio::test]
async fn a_failing_report_is_a_failed_step_and_the_forecasts_stay_published() {
    let dir = tempfile::tempdir().unwrap();
    let (url, lake) = local_lake(dir.path());
    demo_lake(&lake, 3).await;
    // A file where the reports folder would go: every write under it fails.
    std::fs::create_dir_all(dir.path().join("lake")).unwrap();
    std::fs::write(dir.path().join("lake/reports"), "not a folder").unwrap();
    let clock = clock();
    let file = SettingsFile { horizon: Some(7), ..Default::default() };
    let env = env(settings(&url, dir.path(), file), &lake, &clock);
    let err = nightly(&env, date("2026-04-01")).await.unwrap_err();
    assert!(shelfcast::jobs::runner::error_chain(&err).contains("report"), "{err}");

    let runs = shelfcast::jobs::history::recent(&lake, Some("nightly"), Some(1)).await.unwrap();
    let r = &runs[0];
    assert_eq!(r.status, Status::Failed);
    let status = |name: &str| r.steps.iter().find(|s| s.name == name).unwrap().status;
    assert_eq!(status("publish"), Status::Succeeded);
    assert_eq!(status("report"), Status::Failed);
    let (manifest, batches) = shelfcast::publish::read_forecasts(&lake, date("2026-04-01")).await.unwrap();
    assert_eq!(manifest.meta["run_id"], r.run_id.as_str());
    assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), 3 * 7);
}

fn shelfcast(dir: &std::path::Path) -> Command {
    let mut c = crate::common::shelfcast(dir);
    c.env("SHELFCAST_MODELS", "seasonal_naive,ets");
    c
}

#[test]
fn the_report_command_finds_the_latest_run_or_a_named_backtest() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = shelfcast(d).args(["report"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("nothing to report"));

    ok(shelfcast(d).args(["demo", "--series", "4", "--days", "90", "--end", "2026-03-31"]));
    let run = ok(shelfcast(d).args(["run", "nightly", "--date", "2026-04-01", "--horizon", "7"]));
    assert!(run.contains("report      "), "{run}");

    let out = ok(shelfcast(d).args(["report", "--output", "out"]));
    assert!(out.contains("report of run nightly-"), "{out}");
    for f in ["report.html", "report.json", "report.md"] {
        assert!(d.join("out").join(f).is_file(), "{f}");
    }
    let json: Value = serde_json::from_slice(&std::fs::read(d.join("out/report.json")).unwrap()).unwrap();
    assert_eq!(json["run"]["status"], "succeeded", "a report made after the run sees it ended");

    let bt = ok(shelfcast(d).args(["backtest", "--windows", "2", "--backtest-horizon", "7"]));
    let id = bt.split_whitespace().nth(1).unwrap().trim_end_matches(':').to_string();
    assert!(id.starts_with("backtest-"), "{bt}");
    let out = ok(shelfcast(d).args(["report", "--run", &id]));
    assert!(out.contains(&id));
    let json: Value =
        serde_json::from_slice(&std::fs::read(d.join(format!("lake/reports/run_id={id}/report.json"))).unwrap())
            .unwrap();
    assert_eq!(json["backtest"]["cutoffs"].as_array().unwrap().len(), 2);
    assert!(json["published"].is_null(), "a backtest publishes nothing");
    // The backtest's report for scripts: the same scores as one JSON document.
    let out = ok(shelfcast(d).args(["backtest", "--windows", "1", "--backtest-horizon", "7", "--format", "json"]));
    let bt: Value = serde_json::from_str(&out).unwrap();
    assert!(bt["run_id"].as_str().unwrap().starts_with("backtest-"), "{out}");
    assert_eq!(bt["report"]["cutoffs"].as_array().unwrap().len(), 1, "{out}");
    let models = bt["report"]["models"].as_array().unwrap();
    assert!(!models.is_empty() && models.iter().all(|m| m["overall"]["mase"].as_f64().is_some_and(f64::is_finite)));

    let out = shelfcast(d).args(["report", "--run", "nightly-nope"]).output().unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no run or backtest"));
}
