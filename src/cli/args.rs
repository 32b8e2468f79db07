//! The command line as clap reads it: the global flags, which override the settings file and
//! `SHELFCAST_*` variables, and one subcommand per verb. Commands that report something take
//! `--format text|json`.

use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use shelfcast::factors;
use shelfcast::output::Format;
use shelfcast::query;
use shelfcast::settings::{self, Frequency};

/// Nightly demand forecasting over a Parquet lake.
///
/// Settings come from shelfcast.toml (see `shelfcast init`), then SHELFCAST_* environment
/// variables, then these flags.
#[derive(Debug, Parser)]
#[command(name = "shelfcast", version, about, long_about = None)]
pub struct Cli {
    /// Settings file (default: ./shelfcast.toml when present).
    #[arg(long, short = 'c', global = true, env = "SHELFCAST_CONFIG")]
    pub(super) config: Option<PathBuf>,
    /// Lake location: a path or a URL (file://, memory://, s3://…).
    #[arg(long, global = true, env = "SHELFCAST_LAKE")]
    pub(super) lake: Option<String>,
    /// Forecast grain.
    #[arg(long, global = true, env = "SHELFCAST_FREQUENCY", value_enum)]
    pub(super) frequency: Option<Frequency>,
    /// Periods to forecast.
    #[arg(long, global = true, env = "SHELFCAST_HORIZON")]
    pub(super) horizon: Option<usize>,
    /// Last day of a week for the weekly grain (sunday, friday, …).
    #[arg(long, global = true, env = "SHELFCAST_WEEK_ENDS_ON")]
    pub(super) week_ends_on: Option<String>,
    /// Quantile levels, comma-separated (e.g. 0.1,0.5,0.9).
    #[arg(long, global = true, env = "SHELFCAST_QUANTILES", value_delimiter = ',')]
    pub(super) quantiles: Option<Vec<f64>>,
    /// Models to fit, comma-separated; the first is published.
    #[arg(long, global = true, env = "SHELFCAST_MODELS", value_delimiter = ',')]
    pub(super) models: Option<Vec<String>>,
    /// Seed for every random choice.
    #[arg(long, global = true, env = "SHELFCAST_SEED")]
    pub(super) seed: Option<u64>,
    /// Worker threads (0: all cores).
    #[arg(long, global = true, env = "SHELFCAST_THREADS")]
    pub(super) threads: Option<usize>,
    /// More log output on stderr (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr, and no progress display.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub(super) command: Command,
}

#[derive(Debug, Subcommand)]
pub(super) enum Command {
    /// Write a commented default settings file.
    Init {
        /// Where to write it.
        #[arg(default_value = settings::FILE_NAME)]
        path: PathBuf,
        /// Replace an existing file.
        #[arg(long)]
        force: bool,
    },
    /// Generate a realistic demo lake (seeded; true effects in _demo/truth.json).
    Demo {
        /// Item × location series.
        #[arg(long, default_value_t = 200)]
        series: usize,
        /// Days of history.
        #[arg(long, default_value_t = 1095)]
        days: usize,
        /// Last day of history (default: yesterday).
        #[arg(long)]
        end: Option<NaiveDate>,
        /// Do nothing when the lake already has sales.
        #[arg(long, conflicts_with = "force")]
        if_empty: bool,
        /// Replace the raw tables of a lake that already has sales.
        #[arg(long)]
        force: bool,
        /// Leave out the local layer (closures, regional holidays, the planned covariate).
        #[arg(long)]
        no_local: bool,
        /// `text` (aligned, for people) or `json` (one document, for scripts).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Import a CSV or Parquet file into a raw table, or a known dataset with --preset.
    Import {
        /// The file (or, with --preset, the dataset's folder).
        source: PathBuf,
        /// Target raw table (sales, items, prices, …).
        #[arg(long, default_value = "sales", conflicts_with = "preset")]
        table: String,
        /// Column mapping, TARGET=SOURCE (repeat), e.g. --map units=Weekly_Sales.
        #[arg(long = "map", value_parser = parse_mapping)]
        map: Vec<(String, String)>,
        /// A TOML file of `target = "source"` lines.
        #[arg(long)]
        mapping: Option<PathBuf>,
        /// Format of date columns when not ISO, e.g. %m/%d/%Y.
        #[arg(long)]
        date_format: Option<String>,
        /// A known dataset: walmart.
        #[arg(long)]
        preset: Option<String>,
        /// A wide file into known_covariates or observed_covariates: these columns are covariates,
        /// one each (comma-separated); --map names the key columns (date, item_id, location_id,
        /// known_at).
        #[arg(long, value_delimiter = ',', conflicts_with = "preset")]
        wide: Vec<String>,
        /// `text` (aligned, for people) or `json` (one document, for scripts).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Pull a source declared in settings ([sources.NAME]) into its raw table.
    Ingest {
        /// The source's name.
        source: String,
        /// `text` (aligned, for people) or `json` (one document, for scripts).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run read-only SQL over the lake's tables and feature views.
    Query {
        /// The SQL text (or use --file).
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        sql: Option<String>,
        /// Read the SQL from a file.
        #[arg(long, short = 'f')]
        file: Option<PathBuf>,
        /// Output format.
        #[arg(long, value_enum, default_value = "table")]
        format: query::Format,
        /// Write to this file instead of stdout (required for parquet).
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// Cutoff of the feature views (default: the last day with sales before today).
        #[arg(long)]
        cutoff: Option<NaiveDate>,
    },
    /// Materialise the feature tables for a cutoff.
    Features {
        /// Last day of data to use (default: the last day with sales before today).
        #[arg(long)]
        cutoff: Option<NaiveDate>,
        /// `text` (aligned, for people) or `json` (one document, for scripts).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Estimate what moves demand: price elasticities with intervals, promotion uplift and the
    /// post-promotion dip, weekly and yearly profiles, driver shares (against the demo truth when
    /// the lake has one).
    Factors {
        /// Last day of history to use (default: the last day with sales before today).
        #[arg(long)]
        cutoff: Option<NaiveDate>,
        /// Also write factors/run_date=<cutoff + 1>/ to the lake.
        #[arg(long)]
        write: bool,
        /// Also measure the group importance of the models (`--models`, or `[factors.importance]
        /// models`) on backtest windows: the accuracy lost when a group's covariates are permuted.
        #[arg(long)]
        importance: bool,
        /// Permutations per group (default: `[factors.importance] repeats`, 3).
        #[arg(long, requires = "importance")]
        repeats: Option<usize>,
        /// `permute` (fit once, predict with shuffled covariates) or `refit` (neutral covariates, refit).
        #[arg(long, requires = "importance")]
        method: Option<factors::importance::Method>,
        /// Backtest windows measured (default: `[factors.importance] windows`, 1).
        #[arg(long, requires = "importance")]
        windows: Option<usize>,
        /// `text` (aligned, for people) or `json` (one document, for scripts).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Decompose one series' forecast over the horizon: level × weekly × yearly × events ×
    /// promotion × price × competitor, from the factor model.
    Explain {
        /// The item.
        #[arg(long)]
        item: String,
        /// The location (default: every location of the item).
        #[arg(long)]
        location: Option<String>,
        /// Last day of history to use (default: the last day with sales before today).
        #[arg(long)]
        cutoff: Option<NaiveDate>,
        /// `text` (aligned, for people) or `json` (one document, for scripts).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Rolling-origin backtest of the configured models on the lake's history.
    Backtest {
        /// Number of cutoffs.
        #[arg(long, default_value_t = 3)]
        windows: usize,
        /// Periods forecast at each cutoff (default: the configured horizon).
        #[arg(long = "backtest-horizon", visible_alias = "h")]
        horizon: Option<usize>,
        /// Periods between cutoffs (default: the horizon).
        #[arg(long)]
        step: Option<usize>,
        /// Write the forecasts in score.py's canonical format (Parquet) to this file.
        #[arg(long)]
        export: Option<PathBuf>,
        /// Write the actuals in score.py's format (unique_id, ds, y) to this file.
        #[arg(long)]
        export_actuals: Option<PathBuf>,
        /// `text` (a table) or `json` (the run id, where the scores are and the whole report).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Fit the configured models on the features of a run date and store them in the lake.
    Train {
        /// Run date (default: today); the cutoff is the day before.
        #[arg(long)]
        date: Option<NaiveDate>,
        /// `text` (aligned, for people) or `json` (one document, for scripts).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Forecast with the latest trained models from the lake, publish, plan and notify.
    Predict {
        /// Run date (default: today); the cutoff is the day before.
        #[arg(long)]
        date: Option<NaiveDate>,
        /// `text` (aligned, for people) or `json` (one document, for scripts).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run a job (e.g. `nightly`) once now.
    Run {
        /// Job name: jobs/<name>.toml.
        job: String,
        /// Run date (default: today); the cutoff is the day before.
        #[arg(long)]
        date: Option<NaiveDate>,
        /// `text` (aligned, for people) or `json` (one document, for scripts).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Run a job for every date of a range, oldest first; dates that already succeeded are skipped,
    /// so running it again resumes where it stopped.
    Backfill {
        /// Job name: jobs/<name>.toml.
        job: String,
        /// First run date.
        #[arg(long)]
        from: NaiveDate,
        /// Last run date (inclusive).
        #[arg(long)]
        to: NaiveDate,
    },
    /// Run the scheduled jobs when they are due, until SIGTERM or SIGINT.
    ///
    /// The first signal starts no new run or step and lets running steps finish within --grace;
    /// a second signal, or the end of the grace period, cancels them. Runs end recorded either way.
    Schedule {
        /// Only these jobs (default: every job file with a schedule).
        #[arg(long, value_delimiter = ',')]
        jobs: Vec<String>,
        /// How long running steps may take to finish after a stop signal.
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        grace: Duration,
    },
    /// A read-only SQL endpoint over the lake, speaking the PostgreSQL wire protocol (psql,
    /// psycopg, JDBC/DBeaver, BI tools) and Arrow Flight SQL (ADBC, Arrow clients), until
    /// SIGTERM or SIGINT.
    ///
    /// The catalog is `query`'s, reopened when the lake changes. Settings: `[serve]` (listen
    /// address, password variable, TLS, query timeout, memory and concurrency limits). The first
    /// signal refuses new queries and lets running ones finish within `shutdown-grace`.
    Serve {
        /// Address to listen on (default: `[serve] listen`, 127.0.0.1:5433); port 0 takes a free one.
        #[arg(long)]
        listen: Option<String>,
        /// Address of the Flight SQL endpoint (default: `[serve] flight-listen`,
        /// 127.0.0.1:50051); port 0 takes a free one, "" turns it off.
        #[arg(long)]
        flight_listen: Option<String>,
        /// Cutoff of the feature views (default: the last day with sales before today, moving
        /// forward as sales arrive).
        #[arg(long)]
        cutoff: Option<NaiveDate>,
    },
    /// Show the run history from the lake (newest first). Exits with an error when the latest run
    /// of a job shown failed, was cancelled or abandoned.
    Runs {
        /// Only this job.
        #[arg(long)]
        job: Option<String>,
        /// How many runs.
        #[arg(long, default_value_t = 20)]
        last: usize,
        /// `text` (a table) or `json` (the run records, newest first).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Write the report of a run: HTML with charts, Markdown and JSON, to reports/run_id=…/ in the
    /// lake (and to --output).
    Report {
        /// A job run's id, or a backtest's (default: the latest nightly run, else the latest backtest).
        #[arg(long = "run")]
        run: Option<String>,
        /// Also write the three files into this local folder.
        #[arg(long, short = 'o')]
        output: Option<PathBuf>,
        /// `text` (aligned, for people) or `json` (one document, for scripts).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Delete the dataset files that newer versions replaced more than `superseded-grace` ago,
    /// and files no manifest names (a crashed writer's) older than that. Safe while runs read
    /// and write: nothing a manifest names, or retired within the grace period, is touched.
    Vacuum {
        /// `text` (a line) or `json` (the files deleted, their bytes and the datasets read).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Check and list job files.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum JobsCommand {
    /// Check job files (default: every file in the jobs folder); exits with an error if one is invalid.
    Validate {
        /// Job files.
        files: Vec<PathBuf>,
    },
    /// List the jobs with their schedule, next due time and last run.
    List {
        /// `text` (a table) or `json` (one object per job).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
}

pub(super) fn parse_mapping(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("expected TARGET=SOURCE, got `{s}`"))
}
