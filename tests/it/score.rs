//! shelfcast's metrics equal `score.py`'s (the scorer every system is compared with) on the same
//! backtest forecasts, to 1e-9 relative.
//!
//! Needs a Python with pandas and pyarrow: `SHELFCAST_PYTHON`, or `python3` when it has them.
//! `.ci/run` provides one; elsewhere the test says it skipped unless `CI` is set, when a missing
//! Python fails it.

use std::path::PathBuf;
use std::process::Command;

use shelfcast::evaluate::backtest::{self, BacktestOptions};
use shelfcast::lake::Lake;
use shelfcast::settings::{Overrides, Settings, SettingsFile};

use crate::common::*;

pub fn python() -> Option<String> {
    let candidates = std::env::var("SHELFCAST_PYTHON").into_iter().chain(["python3".to_string()]);
    for py in candidates {
        let ok = Command::new(&py).args(["-c", "import pandas, pyarrow"]).output().is_ok_and(|o| o.status.success());
        if ok {
            return Some(py);
        }
    }
    None
}

pub fn close(ours: Option<f64>, theirs: &serde_json::Value, what: &str) {
    match (ours, theirs.as_f64()) {
        (Some(a), Some(b)) => {
            assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-12), "{what}: shelfcast {a} vs score.py {b}")
        }
        (None, None) => {}
        (a, _) => panic!("{what}: shelfcast {a:?} vs score.py {theirs}"),
    }
}

/// `score.py`'s JSON for these forecasts (its canonical columns) and actuals, run with `py`.
pub fn score_py(
    py: &str,
    forecasts: &[arrow::record_batch::RecordBatch],
    actuals: &arrow::record_batch::RecordBatch,
    season: usize,
) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/bench/score.py");
    assert!(script.is_file(), "score.py not found at {}", script.display());
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, b: &[arrow::record_batch::RecordBatch]| {
        let p = dir.path().join(name);
        std::fs::write(&p, shelfcast::lake::parquet::encode(&b[0].schema(), b).unwrap()).unwrap();
        p
    };
    let fc = write("fc.parquet", forecasts);
    let act = write("actuals.parquet", std::slice::from_ref(actuals));
    let out = dir.path().join("score.json");
    let run = Command::new(py)
        .arg(&script)
        .args(["--forecasts".as_ref(), fc.as_os_str(), "--actuals".as_ref(), act.as_os_str()])
        .args(["--season", &season.to_string(), "--json"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "score.py failed: {}", String::from_utf8_lossy(&run.stderr));
    serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap()
}

#[tokio::test]
async fn metrics_equal_score_py_on_the_same_forecasts() {
    let Some(py) = python() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must provide a Python with pandas and pyarrow (SHELFCAST_PYTHON)"
        );
        eprintln!("skipped: no Python with pandas and pyarrow (set SHELFCAST_PYTHON)");
        return;
    };
    let lake = Lake::in_memory();
    demo_lake(&lake, 8).await;
    let o = Overrides { threads: Some(2), ..Default::default() };
    let settings = Settings::resolve(SettingsFile::default(), o, PathBuf::from("/tmp"), None).unwrap();
    let (ctx, _) = shelfcast::engine::open(&lake, 2).await.unwrap();
    let (full, _) = backtest::full_panel(&ctx, &settings.backtest_config()).await.unwrap();
    let opts = BacktestOptions::new(2, 14, 14, vec!["seasonal_naive".into(), "ets".into(), "tsb".into()]);
    let report = backtest::run(&full, &settings.backtest_config(), &opts).unwrap();

    let fc = backtest::canonical_batch(&report).unwrap();
    let theirs = score_py(&py, &[fc], &backtest::actuals_batch(&full).unwrap(), settings.season_length);
    for m in &report.models {
        let t = &theirs["methods"][&m.model]["overall"];
        let o = &m.overall;
        assert_eq!(t["n"].as_u64(), Some(o.n as u64));
        close(o.mae, &t["MAE"], "MAE");
        close(o.rmse, &t["RMSE"], "RMSE");
        close(o.wape, &t["WAPE"], "WAPE");
        close(o.smape, &t["sMAPE"], "sMAPE");
        close(o.mase, &t["MASE"], "MASE");
        close(o.r2, &t["R2"], "R2");
        close(o.bias, &t["bias"], "bias");
        close(o.bias_pct, &t["bias_pct"], "bias_pct");
        close(o.coverage_80, &t["coverage"], "coverage");
        let pinball = (o.pinball["0.1"] + o.pinball["0.9"]) / 2.0;
        close(Some(pinball), &t["pinball"], "pinball");
    }
}
