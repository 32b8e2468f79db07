//! The lake's path layout: the only place that spells a path.
//!
//! ```text
//! raw/<table>/…parquet                         raw tables (sales, items, prices, …)
//! features/<name>/cutoff=YYYY-MM-DD/           feature tables, one folder per cutoff
//! forecasts/run_date=YYYY-MM-DD/part-*.parquet + _manifest.json (+ forecasts-*.csv when asked for)
//! forecasts/_latest.json                       the newest published run date, written after its manifest
//! replenishment/run_date=YYYY-MM-DD/           planner outputs (reorder points, orders); replenishment/_latest.json
//! factors/run_date=YYYY-MM-DD/                 influence-factor estimates (+ analysis.json: the fitted models)
//! notifications/pending/webhook=<name>/<id>.json  webhook deliveries that failed, retried on the next run
//! ingest/source=<name>/watermark.json          the newest value each ingestion source has delivered
//! runs/job=<job>/run_date=YYYY-MM-DD/<run_id>.json
//! leases/job=<job>/run_date=YYYY-MM-DD/<generation>.json   who runs a job's date now (see lease.rs)
//! outputs/<name>/run_date=YYYY-MM-DD/          datasets written by a job's `sql` steps
//! models/<name>/<version>/state.bin + card.json; models/<name>/latest.json; models/champions.json
//! metrics/backtest/run_id=<id>/                 backtest forecasts; scores in its manifest
//! reports/run_id=<id>/report.{html,json,md}     the run report; _manifest.json written last
//! quarantine/check=<name>/run_date=YYYY-MM-DD/  rows that failed a data-quality check, with reasons
//! quarantine/files/raw/<table>/<file>          raw files that could not be read (corrupt-files = "quarantine")
//! quarantine/import=<id>/table=<table>/        rows an import could not read, with reasons
//! quarantine/source=<name>/ingest=<id>/        records an ingestion could not read, with reasons
//! _demo/truth.json                             true effects the demo generator used
//! ```
//!
//! Partition folders are Hive-style (`key=value`) so DuckDB, Spark and pandas
//! read them as they are. A dataset folder becomes visible when its
//! `_manifest.json` is written, and the manifest is always written last.

use chrono::NaiveDate;
use object_store::path::Path;

/// Name of the manifest file in every published dataset folder.
pub const MANIFEST: &str = "_manifest.json";

/// Name of the pointer to a dataset's newest run date, in the dataset's root folder.
pub const LATEST: &str = "_latest.json";

/// Folder of a raw table.
pub fn raw_table(table: &str) -> Path {
    Path::from_iter(["raw", table])
}

/// Folder of a feature table for one cutoff.
pub fn features(name: &str, cutoff: NaiveDate) -> Path {
    Path::from_iter(["features".to_string(), name.to_string(), format!("cutoff={cutoff}")])
}

/// Folder of the forecasts published for one run date.
pub fn forecasts(run_date: NaiveDate) -> Path {
    Path::from_iter(["forecasts".to_string(), format!("run_date={run_date}")])
}

/// Folder of every configured model's forecast for one run date (the shadow forecasts, beside
/// the published one, so challengers are tracked like the champion).
pub fn shadow(run_date: NaiveDate) -> Path {
    Path::from_iter(["shadow".to_string(), format!("run_date={run_date}")])
}

/// Folder of the tracked accuracy a run measured: earlier run dates' forecasts against the
/// actuals that arrived since.
pub fn accuracy(run_date: NaiveDate) -> Path {
    accuracies().join(format!("run_date={run_date}").as_str())
}

/// Every run date's tracked accuracy.
pub fn accuracies() -> Path {
    Path::from_iter(["metrics", "accuracy"])
}

/// The root folder of a published dataset (`forecasts`, `replenishment`).
pub fn dataset_root(dataset: &str) -> Path {
    Path::from(dataset)
}

/// The pointer to the newest published run date of a dataset (`forecasts/_latest.json`).
pub fn latest(dataset: &str) -> Path {
    Path::from_iter([dataset, LATEST])
}

/// Folder of the replenishment (planner) outputs of one run date.
pub fn replenishment(run_date: NaiveDate) -> Path {
    Path::from_iter(["replenishment".to_string(), format!("run_date={run_date}")])
}

/// Folder of the influence-factor estimates of one run date.
pub fn factors(run_date: NaiveDate) -> Path {
    Path::from_iter(["factors".to_string(), format!("run_date={run_date}")])
}

/// The folder of a webhook's deliveries that are waiting to be retried.
pub fn pending_notifications(webhook: &str) -> Path {
    Path::from_iter(["notifications".to_string(), "pending".to_string(), format!("webhook={webhook}")])
}

/// One delivery waiting to be retried.
pub fn pending_notification(webhook: &str, delivery_id: &str) -> Path {
    pending_notifications(webhook).join(format!("{delivery_id}.json").as_str())
}

/// The watermark of an ingestion source: the newest value of its watermark column delivered.
pub fn watermark(source: &str) -> Path {
    Path::from_iter(["ingest".to_string(), format!("source={source}"), "watermark.json".to_string()])
}

/// A new file of a raw table.
pub fn raw_file(table: &str, name: &str) -> Path {
    raw_table(table).join(name)
}

/// The manifest of a dataset folder.
pub fn manifest(dataset: &Path) -> Path {
    dataset.clone().join(MANIFEST)
}

/// The record of one job run.
pub fn run_record(job: &str, run_date: NaiveDate, run_id: &str) -> Path {
    Path::from_iter([
        "runs".to_string(),
        format!("job={job}"),
        format!("run_date={run_date}"),
        format!("{run_id}.json"),
    ])
}

/// Every run record, of every job.
pub fn runs() -> Path {
    Path::from("runs")
}

/// The run records of one job.
pub fn job_runs(job: &str) -> Path {
    Path::from_iter(["runs".to_string(), format!("job={job}")])
}

/// The run records of one job and run date.
pub fn date_runs(job: &str, run_date: NaiveDate) -> Path {
    Path::from_iter(["runs".to_string(), format!("job={job}"), format!("run_date={run_date}")])
}

/// The lease folder of one job and run date: one object per lease generation.
pub fn lease(job: &str, run_date: NaiveDate) -> Path {
    Path::from_iter(["leases".to_string(), format!("job={job}"), format!("run_date={run_date}")])
}

/// Folder of a dataset a job's `sql` step writes for one run date.
pub fn job_output(name: &str, run_date: NaiveDate) -> Path {
    Path::from_iter(["outputs".to_string(), name.to_string(), format!("run_date={run_date}")])
}

/// Where a data-quality check's violations for a run date go.
pub fn quarantine(check: &str, run_date: NaiveDate) -> Path {
    Path::from_iter(["quarantine".to_string(), format!("check={check}"), format!("run_date={run_date}")])
}

/// Folder of one version of a trained model.
pub fn model(name: &str, version: &str) -> Path {
    Path::from_iter(["models", name, version])
}

/// The champion registry.
pub fn champions() -> Path {
    Path::from_iter(["models", "champions.json"])
}

/// The learned ensemble's weights as the newest backtest left them.
pub fn ensemble_weights() -> Path {
    Path::from_iter(["models", "ensemble", "weights.json"])
}

/// The pointer to a model's latest version.
pub fn model_latest(name: &str) -> Path {
    Path::from_iter(["models", name, "latest.json"])
}

/// Where a backtest's scores and forecasts go.
pub fn backtest(run_id: &str) -> Path {
    Path::from_iter(["metrics".to_string(), "backtest".to_string(), format!("run_id={run_id}")])
}

/// Folder of the report of one run (or backtest).
pub fn report(run_id: &str) -> Path {
    Path::from_iter(["reports".to_string(), format!("run_id={run_id}")])
}

/// Every stored backtest.
pub fn backtests() -> Path {
    Path::from_iter(["metrics", "backtest"])
}

/// Where a raw file that could not be read is moved (`corrupt-files = "quarantine"`).
pub fn quarantined_file(table: &str, name: &str) -> Path {
    Path::from_iter(["quarantine", "files", "raw", table, name])
}

/// Where an import's rejected rows for one table go.
pub fn import_quarantine(import_id: &str, table: &str) -> Path {
    Path::from_iter(["quarantine".to_string(), format!("import={import_id}"), format!("table={table}")])
}

/// Where an ingestion's rejected records go.
pub fn ingest_quarantine(source: &str, ingest_id: &str) -> Path {
    Path::from_iter(["quarantine".to_string(), format!("source={source}"), format!("ingest={ingest_id}")])
}

/// A user-supplied TorchScript forecaster.
pub fn torchscript_model(file: &str) -> Path {
    Path::from_iter(["models", "torchscript", file])
}

/// Where the demo generator writes the true effects it used.
pub fn demo_truth() -> Path {
    Path::from_iter(["_demo", "truth.json"])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hive_style_partitions() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 1).unwrap();
        assert_eq!(forecasts(d).as_ref(), "forecasts/run_date=2026-03-01");
        assert_eq!(manifest(&forecasts(d)).as_ref(), "forecasts/run_date=2026-03-01/_manifest.json");
        assert_eq!(features("target", d).as_ref(), "features/target/cutoff=2026-03-01");
        assert_eq!(raw_table("sales").as_ref(), "raw/sales");
        assert_eq!(run_record("nightly", d, "r1").as_ref(), "runs/job=nightly/run_date=2026-03-01/r1.json");
        assert!(run_record("nightly", d, "r1").prefix_matches(&date_runs("nightly", d)));
        assert_eq!(lease("nightly", d).as_ref(), "leases/job=nightly/run_date=2026-03-01");
        assert_eq!(job_output("top", d).as_ref(), "outputs/top/run_date=2026-03-01");
        assert_eq!(report("r1").as_ref(), "reports/run_id=r1");
        assert!(backtest("r1").prefix_matches(&backtests()));
        assert_eq!(latest("forecasts").as_ref(), "forecasts/_latest.json");
        assert_eq!(replenishment(d).as_ref(), "replenishment/run_date=2026-03-01");
        assert_eq!(factors(d).as_ref(), "factors/run_date=2026-03-01");
        assert_eq!(pending_notification("erp", "x1").as_ref(), "notifications/pending/webhook=erp/x1.json");
        assert_eq!(watermark("orders").as_ref(), "ingest/source=orders/watermark.json");
        assert_eq!(quarantined_file("sales", "p.parquet").as_ref(), "quarantine/files/raw/sales/p.parquet");
    }
}
