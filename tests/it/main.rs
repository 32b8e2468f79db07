//! shelfcast's integration tests: one binary, one module per area.

/// Shared fixtures: tiny demo lakes, settings, a fixed clock.
mod common;
/// A tiny HTTP server on 127.0.0.1 that records requests and answers as told.
mod server;

/// The feature SQL on DataFusion Ballista: an in-process standalone cluster, and a stock
/// scheduler and executor on loopback, write the local engine's feature tables.
#[cfg(feature = "ballista")]
mod ballista;
/// Raw-table checks: missing and mistyped tables fail by name and write nothing.
mod catalog;
/// The command-line binary end to end: demo, run nightly, query.
mod cli;
/// Influence factors: elasticities, promotion uplift and driver ranking recovered from a demo
/// lake's truth; the factors step and dataset; `explain`.
mod factors;
/// Faults: a store that fails or stalls, a full disk, corrupt raw files, schema drift, store
/// retries and timeouts; the previous output stays readable throughout (`--features faults`).
#[cfg(feature = "faults")]
mod faults;
/// Feature tables: point-in-time correctness and materialisation.
mod features;
/// Importing outside files into raw tables.
mod import;
/// Group importance of the factor groups per model on backtest windows, rolled up per category
/// and location; in the factors step, the report and the command.
mod importance;
/// Ingestion sources over HTTP and files: pagination, watermarks, malformed bodies, retries,
/// timeouts, quarantine, the ingest step.
mod ingest;
/// Jobs: retries, timeouts, leases across schedulers and processes, catch-up, crash recovery,
/// shutdown, backfill, the run history and its commands.
mod jobs;
/// The user's own covariates, closures and local calendars: closed periods forecast 0 and
/// quarantined sales, plan revisions point in time, bad rows recorded, and `gbt` learning from them.
mod local;
/// The forecaster contract, run against every model, and learning checks.
mod models;
/// The deep models learn; TorchScript forecasters; covariates from the feature tables.
mod nn;
/// Webhook notifications: signatures, retries, pending deliveries retried by the next run.
mod notify;
/// The nightly pipeline on a tiny lake: rows, quantiles, manifest, reruns, determinism.
mod pipeline;
/// Planner outputs: replenishment, supply terms, latest pointers, stability, and the coverage
/// of reorder points in a backtest on generated data.
mod plan;
/// Data-quality checks: quarantine, cleaned tables, blocking gates.
mod quality;
/// Read-only ad hoc SQL.
mod query;
/// The run report: the backtest's numbers in its HTML, Markdown and JSON, well-formed charts, a
/// failed report leaving the forecasts published, and the `report` command.
mod report;
/// The pipeline, leases and the binary on an S3 server on loopback (run by scripts/s3_test.sh;
/// skipped with a notice without `SHELFCAST_S3_ENDPOINT`).
mod s3;
/// Our metrics against score.py's on the same forecasts.
mod score;
/// Security: secrets stay out of the logs, names and ids cannot leave the lake, ad hoc SQL
/// cannot touch files outside it.
mod security;
/// `shelfcast serve` queried by real PostgreSQL clients: psycopg and psql get what `query` gives;
/// writes and wrong passwords refused; timeouts, limits, publications and SIGTERM.
mod serve;
/// The business rules of every query in `sql/` (features, checks, plan inputs, factors), from
/// tests/sql/*.slt.
mod sql;
/// libtorch on the CPU.
mod torch;
/// Live accuracy tracking: shadow forecasts of every model, earlier run dates scored as their
/// actuals arrive (equal to score.py), the trend in the report and the `accuracy` table.
mod tracking;
