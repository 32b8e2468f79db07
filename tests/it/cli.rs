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
