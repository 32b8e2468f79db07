//! shelfcast: nightly demand forecasting over a Parquet lake.
//!
//! # Layout
//!
//! - [`period`]: the forecast grain ([`period::Frequency`]), its day arithmetic, durations in
//!   settings; a leaf the lower layers read instead of the settings.
//! - [`settings`]: `shelfcast.toml` + `SHELFCAST_*` + flags → one validated [`settings::Settings`].
//! - [`clock`]: injected time; only the binary reads the wall clock.
//! - [`lake`]: the object store behind a URL, THE path layout, Parquet I/O, atomic datasets.
//! - [`catalog`]: declared raw-table schemas, registered in DataFusion with type checks.
//! - [`engine`]: where SQL runs (a local `SessionContext`).
//! - [`query`]: read-only ad hoc SQL and its output formats.
//! - [`ingest`]: outside data into raw tables (`import` of files, `ingest` of configured sources).
//! - [`names`]: the names settings give (webhooks, sources, environment variables), checked.
//! - [`secrets`]: values of the environment variables settings name (signing keys, tokens).
//! - [`days`]: Arrow's day numbers as dates, an error (never a panic) beyond chrono's range.
//! - [`http`]: requests with a timeout, retries and backoff (webhooks, sources).
//! - [`reach`]: where those requests may go (origins, redirects, link-local addresses).
//! - [`demo`]: the seeded demo-lake generator, with the true effects it used.
//! - [`quality`]: data-quality checks in `sql/checks/`, quarantine, cleaned tables.
//! - [`features`]: the feature SQL in `sql/features/`, run for a cutoff and materialised.
//! - [`panel`]: feature rows → per-series arrays (and tensors, in [`models::nn`]).
//! - [`models`]: the `Forecaster` trait and its implementations.
//! - [`metrics`]: accuracy metrics (MASE, WAPE, pinball, WRMSSE, …), pure functions.
//! - [`evaluate`]: backtests, champions.
//! - [`factors`]: what moves demand: elasticities, promotion uplift, seasonal profile, driver
//!   shares, from a regression on the feature tables; `factors/` in the lake; `explain`.
//! - [`publish`]: forecast datasets with their manifest, written last; `latest` pointers,
//!   stability against the previous run, webhook notifications.
//! - [`plan`]: reorder points, order-up-to levels and orders from the forecasts (`replenishment/`).
//! - [`report`]: the run report (HTML with inline SVG charts, Markdown, JSON), read back from the lake.
//! - [`output`]: what the commands print: their typed reports as text or JSON (`--format json`).
//! - [`progress`]: long work counted (epochs, windows, fits) and shown as bars or log lines.
//! - [`jobs`]: job files, due times, the runner (leases, retries, records), the scheduler, run history.
//! - [`trim`]: the memory a step freed handed back to the operating system before the next.

#![warn(missing_docs)]

pub mod blocking;
pub mod catalog;
pub mod clock;
pub mod days;
pub mod demo;
pub mod engine;
pub mod error;
pub mod evaluate;
pub mod factors;
pub mod features;
pub mod http;
pub mod ingest;
pub mod jobs;
pub mod lake;
pub mod metrics;
pub mod models;
pub mod names;
pub mod output;
pub mod panel;
pub mod period;
pub mod plan;
pub mod progress;
pub mod publish;
pub mod quality;
pub mod query;
pub mod reach;
pub mod report;
pub mod secrets;
pub mod serve;
pub mod settings;
pub mod trim;

pub use error::{Error, Result};
