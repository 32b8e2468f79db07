use crate::common::{ok, shelfcast};

#[test]
fn init_demo_run_and_query_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(shelfcast(d).args(["init"]));
    assert!(d.join("shelfcast.toml").is_file());
    // init refuses to overwrite.
    assert!(!shelfcast(d).args(["init"]).output().unwrap().status.success());

    ok(shelfcast(d).args(["demo", "--series", "4", "--days", "60", "--end", "2026-03-31"]));
    let again = ok(shelfcast(d).args(["demo", "--if-empty"]));
    assert!(again.contains("keeping it"), "{again}");

    let out = ok(shelfcast(d).args(["run", "nightly", "--date", "2026-04-01", "--horizon", "7"]));
    assert!(out.contains("succeeded") && out.contains("rows        28"), "{out}");
    assert!(d.join("lake/forecasts/run_date=2026-04-01/_manifest.json").is_file());

    let csv = ok(shelfcast(d).args([
        "query",
        "--format",
        "csv",
        "SELECT COUNT(*) AS n FROM target WHERE date = DATE '2026-03-31'",
    ]));
    assert_eq!(csv.trim(), "n\n4");

    let out = shelfcast(d).args(["query", "DROP TABLE sales"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("read-only"));

    // Settings errors name the file and key.
    std::fs::write(d.join("shelfcast.toml"), "horizn = 3\n").unwrap();
    let out = shelfcast(d).args(["run", "nightly"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("shelfcast.toml") && err.contains("horizn"), "{err}");
}

#[test]
fn a_run_piped_reports_progress_lines_and_where_the_time_went_and_quiet_silences_progress() {
    let run = |quiet: bool| {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        ok(shelfcast(d).args(["demo", "--series", "4", "--days", "60", "--end", "2026-03-31"]));
        let mut c = shelfcast(d);
        c.env("SHELFCAST_PROGRESS_EVERY", "0s").env("RUST_LOG", "error");
        if quiet {
            c.arg("-q");
        }
        let out = c.args(["run", "nightly", "--date", "2026-04-01", "--horizon", "7"]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        (String::from_utf8(out.stdout).unwrap(), String::from_utf8(out.stderr).unwrap())
    };
    let (stdout, stderr) = run(false);
    assert!(stderr.contains("step nightly: train"), "{stderr}");
    assert!(stderr.contains("progress nightly: backtest · backtest windows 1/"), "{stderr}");
    let time = stdout.lines().find(|l| l.trim_start().starts_with("time")).unwrap_or_else(|| panic!("{stdout}"));
    for step in ["checks", "features", "train", "backtest", "publish", "report"] {
        assert!(time.contains(&format!("{step} ")), "{step} missing from {time}");
    }
    let (stdout, stderr) = run(true);
    assert!(!stderr.contains("progress") && !stderr.contains("step "), "{stderr}");
    assert!(stdout.contains("succeeded"), "{stdout}");
}

/// Every command that reports something prints it as one JSON document with `--format json`, so
/// that a script can read what a person reads: the generated demo, an import, an ingest, the
/// features, the factors, one series explained, a nightly run and its report.
#[test]
fn every_reporting_command_prints_json_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let json = |args: &[&str]| -> serde_json::Value {
        let mut all = vec!["-q"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--format", "json"]);
        let out = ok(shelfcast(d).args(&all));
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}\n{out}"))
    };
    let demo = json(&["demo", "--series", "4", "--days", "90", "--end", "2026-03-31"]);
    assert_eq!(demo["series"], 4, "{demo}");
    assert!(demo["rows"]["sales"].as_u64().unwrap() > 0, "{demo}");

    std::fs::write(d.join("plan.csv"), "Day,Shop,Spend\n2026-03-30,store_01,5\n2026-03-31,store_01,x\n").unwrap();
    let import = json(&[
        "import",
        "plan.csv",
        "--table",
        "known_covariates",
        "--wide",
        "Spend",
        "--map",
        "date=Day",
        "--map",
        "location_id=Shop",
    ]);
    let r = &import.as_array().unwrap()[0];
    assert_eq!(
        (r["table"].as_str(), r["rows_written"].as_u64(), r["rows_quarantined"].as_u64()),
        (Some("known_covariates"), Some(1), Some(1))
    );

    std::fs::write(d.join("supply.csv"), "date,item_id,location_id,on_order\n2026-03-30,item_00000,store_01,4\n")
        .unwrap();
    std::fs::write(
        d.join("shelfcast.toml"),
        "[sources.supply]\npath = \"supply.csv\"\nformat = \"csv\"\ntable = \"supply\"\n",
    )
    .unwrap();
    let ingest = json(&["ingest", "supply"]);
    assert_eq!((ingest["table"].as_str(), ingest["rows_written"].as_u64()), (Some("supply"), Some(1)), "{ingest}");

    let features = json(&["features", "--cutoff", "2026-03-31", "--horizon", "7"]);
    assert_eq!(features["cutoff"], "2026-03-31");
    let tables = features["tables"].as_array().unwrap();
    assert!(tables.iter().any(|t| t["name"] == "target" && t["rows"].as_u64() > Some(0)), "{features}");
    assert!(features["quality"]["checks"].as_array().is_some_and(|c| !c.is_empty()), "{features}");

    let factors = json(&["factors", "--cutoff", "2026-03-31", "--horizon", "7"]);
    assert_eq!(factors["cutoff"], "2026-03-31");
    assert!(factors["analysis"]["models"].as_array().is_some_and(|m| !m.is_empty()), "{factors}");
    assert!(factors["truth"]["seed"].is_u64(), "the demo's truth rides along: {factors}");

    let explained = json(&["explain", "--item", "item_00000", "--cutoff", "2026-03-31", "--horizon", "7"]);
    let first = &explained.as_array().unwrap()[0];
    assert_eq!(first["item"], "item_00000");
    assert_eq!(first["rows"].as_array().unwrap().len(), 7, "{first}");
    assert!(first["rows"][0]["forecast"].as_f64().is_some_and(f64::is_finite), "{first}");

    let run = json(&["run", "nightly", "--date", "2026-04-01", "--horizon", "7"]);
    assert_eq!((run["job"].as_str(), run["status"].as_str()), (Some("nightly"), Some("succeeded")), "{run}");
    assert_eq!(run["summary"]["forecast_rows"], 28, "{run}");
    let run_id = run["run_id"].as_str().unwrap();

    let report = json(&["report"]);
    assert_eq!(report["run_id"].as_str(), Some(run_id));
    assert!(report["files"].as_array().is_some_and(|f| f.len() == 3), "{report}");
}
