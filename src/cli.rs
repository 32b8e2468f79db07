//! The command line: one subcommand per verb. The only place that reads the
//! wall clock, the environment and the terminal, and the only user of `anyhow`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::NaiveDate;
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use shelfcast::clock::{Clock, ShiftedClock, SystemClock};
use shelfcast::demo::{self, DemoOptions};
use shelfcast::factors;
use shelfcast::features::{self, FeatureParams};
use shelfcast::jobs::backfill::{self, DateOutcome};
use shelfcast::jobs::history::{self, RunReport, Status, Trigger};
use shelfcast::jobs::runner::{RunEnv, Shutdown};
use shelfcast::jobs::scheduler;
use shelfcast::jobs::{JobSpec, StepKind, runner};
use shelfcast::lake::Lake;
use shelfcast::progress;
use shelfcast::query::{self, Format};
use shelfcast::settings::{self, Frequency, Overrides, Settings};
use shelfcast::{engine, models};
use tracing_subscriber::EnvFilter;

/// Nightly demand forecasting over a Parquet lake.
///
/// Settings come from shelfcast.toml (see `shelfcast init`), then SHELFCAST_* environment
/// variables, then these flags.
#[derive(Debug, Parser)]
#[command(name = "shelfcast", version, about, long_about = None)]
pub struct Cli {
    /// Settings file (default: ./shelfcast.toml when present).
    #[arg(long, short = 'c', global = true, env = "SHELFCAST_CONFIG")]
    config: Option<PathBuf>,
    /// Lake location: a path or a URL (file://, memory://, s3://…).
    #[arg(long, global = true, env = "SHELFCAST_LAKE")]
    lake: Option<String>,
    /// Forecast grain.
    #[arg(long, global = true, env = "SHELFCAST_FREQUENCY", value_enum)]
    frequency: Option<Frequency>,
    /// Periods to forecast.
    #[arg(long, global = true, env = "SHELFCAST_HORIZON")]
    horizon: Option<usize>,
    /// Last day of a week for the weekly grain (sunday, friday, …).
    #[arg(long, global = true, env = "SHELFCAST_WEEK_ENDS_ON")]
    week_ends_on: Option<String>,
    /// Quantile levels, comma-separated (e.g. 0.1,0.5,0.9).
    #[arg(long, global = true, env = "SHELFCAST_QUANTILES", value_delimiter = ',')]
    quantiles: Option<Vec<f64>>,
    /// Models to fit, comma-separated; the first is published.
    #[arg(long, global = true, env = "SHELFCAST_MODELS", value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Seed for every random choice.
    #[arg(long, global = true, env = "SHELFCAST_SEED")]
    seed: Option<u64>,
    /// Worker threads (0: all cores).
    #[arg(long, global = true, env = "SHELFCAST_THREADS")]
    threads: Option<usize>,
    /// More log output on stderr (-v: info, -vv: debug). RUST_LOG overrides.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors on stderr, and no progress display.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    },
    /// Pull a source declared in settings ([sources.NAME]) into its raw table.
    Ingest {
        /// The source's name.
        source: String,
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
        format: Format,
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
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Fit the configured models on the features of a run date and store them in the lake.
    Train {
        /// Run date (default: today); the cutoff is the day before.
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// Forecast with the latest trained models from the lake, publish, plan and notify.
    Predict {
        /// Run date (default: today); the cutoff is the day before.
        #[arg(long)]
        date: Option<NaiveDate>,
    },
    /// Run a job (e.g. `nightly`) once now.
    Run {
        /// Job name: jobs/<name>.toml.
        job: String,
        /// Run date (default: today); the cutoff is the day before.
        #[arg(long)]
        date: Option<NaiveDate>,
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
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
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
    },
    /// Delete the dataset files that newer versions replaced more than `superseded-grace` ago,
    /// and files no manifest names (a crashed writer's) older than that. Safe while runs read
    /// and write: nothing a manifest names, or retired within the grace period, is touched.
    Vacuum {
        /// `text` (a line) or `json` (the files deleted, their bytes and the datasets read).
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
    /// Check and list job files.
    Jobs {
        #[command(subcommand)]
        command: JobsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum JobsCommand {
    /// Check job files (default: every file in the jobs folder); exits with an error if one is invalid.
    Validate {
        /// Job files.
        files: Vec<PathBuf>,
    },
    /// List the jobs with their schedule, next due time and last run.
    List {
        /// `text` (a table) or `json` (one object per job).
        #[arg(long, value_enum, default_value_t = ReportFormat::Text)]
        format: ReportFormat,
    },
}

/// How a command prints its report: for people, or for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReportFormat {
    /// Aligned text.
    Text,
    /// One JSON document on standard output.
    Json,
}

fn parse_mapping(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("expected TARGET=SOURCE, got `{s}`"))
}

/// Sets up logging on stderr.
pub fn init_tracing(verbose: u8, quiet: bool) {
    let default = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,shelfcast::serve=info",
        (false, 1) => "warn,shelfcast=info",
        (false, _) => "info,shelfcast=debug",
    };
    // Ballista's in-process scheduler (`engine = "ballista-standalone"`) logs stage metrics it cannot
    // lay over a plan as an error: a matter of its display, not a failure.
    let default = format!("{default},ballista_scheduler::display=off");
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// How often progress lines are written when standard error is not a terminal:
/// `SHELFCAST_PROGRESS_EVERY` (a duration such as `10s`), 30 s by default.
fn progress_every() -> anyhow::Result<Duration> {
    match std::env::var("SHELFCAST_PROGRESS_EVERY") {
        Ok(v) => humantime::parse_duration(&v)
            .with_context(|| format!("SHELFCAST_PROGRESS_EVERY = `{v}` is not a duration (e.g. `30s`)")),
        Err(_) => Ok(Duration::from_secs(30)),
    }
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let cwd = std::env::current_dir().context("cannot read the working directory")?;
    if let Command::Init { path, force } = &cli.command {
        return init(path, *force);
    }
    let overrides = Overrides {
        lake: cli.lake.clone(),
        frequency: cli.frequency,
        horizon: cli.horizon,
        week_ends_on: cli.week_ends_on.clone(),
        quantiles: cli.quantiles.clone(),
        models: cli.models.clone(),
        seed: cli.seed,
        threads: cli.threads,
    };
    let settings = Settings::load(cli.config.as_deref(), &cwd, overrides)?;
    let lake = Lake::open(&settings.lake, &settings.storage)?.with_grace(settings.superseded_grace);
    let clock = clock_from_env()?;
    let show_progress = !cli.quiet && std::io::stderr().is_terminal();
    if !cli.quiet {
        let observer: Arc<dyn progress::Observer> = if show_progress {
            Arc::new(progress::Bars::new())
        } else {
            Arc::new(progress::Lines::new(Box::new(std::io::stderr()), progress_every()?))
        };
        progress::install(observer);
    }
    let models_given = cli.models.is_some();
    match cli.command {
        Command::Init { .. } => unreachable!("handled above"),
        Command::Demo { series, days, end, if_empty, force, no_local } => {
            demo_cmd(&settings, &lake, clock.as_ref(), series, days, end, if_empty, force, !no_local, show_progress)
                .await
        }
        Command::Query { sql, file, format, output, cutoff } => {
            let sql = match (sql, file) {
                (Some(s), _) => s,
                (None, Some(f)) => {
                    std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?
                }
                (None, None) => bail!("give the SQL text or --file"),
            };
            query_cmd(&settings, &lake, clock.as_ref(), &sql, format, output, cutoff).await
        }
        Command::Import { source, table, map, mapping, date_format, preset, wide } => {
            let reports = match preset {
                Some(p) => shelfcast::ingest::import::import_preset(&lake, &p, &source, clock.as_ref()).await?,
                None => {
                    let mut m = match mapping {
                        Some(f) => shelfcast::ingest::import::read_mapping(&f)?,
                        None => Default::default(),
                    };
                    m.extend(map);
                    if !wide.is_empty() {
                        let r = shelfcast::ingest::import::import_wide(
                            &lake,
                            &table,
                            &source,
                            &m,
                            &wide,
                            date_format.as_deref(),
                            clock.as_ref(),
                        )
                        .await?;
                        print_imports(&[r]);
                        return Ok(());
                    }
                    vec![
                        shelfcast::ingest::import::import_file(
                            &lake,
                            &table,
                            &source,
                            &m,
                            date_format.as_deref(),
                            clock.as_ref(),
                        )
                        .await?,
                    ]
                }
            };
            print_imports(&reports);
            Ok(())
        }
        Command::Ingest { source } => {
            let spec = settings.sources.get(&source).with_context(|| {
                let names: Vec<&str> = settings.sources.keys().map(String::as_str).collect();
                format!(
                    "no source `{source}` in settings (sources: {})",
                    if names.is_empty() { "none".to_string() } else { names.join(", ") }
                )
            })?;
            let secrets = shelfcast::secrets::Secrets::from_env();
            let r = shelfcast::ingest::pull::ingest(&lake, &source, spec, &secrets, clock.as_ref()).await?;
            println!(
                "{} → {}: {} page(s), {} read, {} skipped (watermark), {} written, {} quarantined",
                r.source, r.table, r.pages, r.rows_read, r.rows_skipped, r.rows_written, r.rows_quarantined
            );
            if let Some(f) = &r.file {
                println!("  file        {f}");
            }
            if let Some(q) = &r.quarantine {
                println!("  quarantine  {q}");
            }
            println!(
                "  watermark   {} → {}",
                r.watermark_before.as_deref().unwrap_or("-"),
                r.watermark_after.as_deref().unwrap_or("-")
            );
            Ok(())
        }
        Command::Features { cutoff } => features_cmd(&settings, &lake, clock.as_ref(), cutoff).await,
        Command::Factors { cutoff, write, importance, repeats, method, windows } => {
            let importance = importance.then(|| {
                let mut o = settings.importance_options();
                if settings.factors.importance.models.is_empty() || models_given {
                    o.models = settings.models.clone();
                }
                o.repeats = repeats.unwrap_or(o.repeats);
                o.method = method.unwrap_or(o.method);
                o.windows = windows.unwrap_or(o.windows);
                o
            });
            factors_cmd(&settings, &lake, clock.as_ref(), cutoff, write, importance).await
        }
        Command::Explain { item, location, cutoff } => {
            explain_cmd(&settings, &lake, clock.as_ref(), &item, location, cutoff).await
        }
        Command::Run { job, date } => run_cmd(settings, lake, clock, &job, date).await,
        Command::Backfill { job, from, to } => backfill_cmd(settings, lake, clock, &job, from, to).await,
        Command::Schedule { jobs, grace } => schedule_cmd(settings, lake, clock, &jobs, grace).await,
        Command::Runs { job, last, format } => runs_cmd(&lake, job.as_deref(), last, format).await,
        Command::Serve { listen, flight_listen, cutoff } => {
            serve_cmd(settings, lake, clock, listen, flight_listen, cutoff).await
        }
        Command::Vacuum { format } => {
            let r = shelfcast::lake::vacuum::vacuum(&lake, clock.now()).await?;
            if format == ReportFormat::Json {
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
            }
            println!(
                "deleted {} file(s), {} bytes, from {} dataset(s) in {lake} (grace {})",
                r.deleted.len(),
                r.bytes,
                r.datasets,
                humantime::format_duration(lake.grace())
            );
            Ok(())
        }
        Command::Report { run, output } => report_cmd(&settings, &lake, clock.as_ref(), run, output).await,
        Command::Jobs { command: JobsCommand::Validate { files } } => validate_cmd(&settings, &files, clock.as_ref()),
        Command::Jobs { command: JobsCommand::List { format } } => {
            list_cmd(&settings, &lake, clock.as_ref(), format).await
        }
        Command::Train { date } => {
            let job = JobSpec::adhoc("train", &[StepKind::Checks, StepKind::Features, StepKind::Train]);
            run_spec(settings, lake, clock, job, "(train)", date).await
        }
        Command::Predict { date } => {
            let job = JobSpec::adhoc(
                "predict",
                &[
                    StepKind::Checks,
                    StepKind::Features,
                    StepKind::Predict,
                    StepKind::Publish,
                    StepKind::Plan,
                    StepKind::Notify,
                ],
            );
            run_spec(settings, lake, clock, job, "(predict)", date).await
        }
        Command::Backtest { windows, horizon, step, export, export_actuals, format } => {
            let exports = (export, export_actuals);
            backtest_cmd(&settings, &lake, clock.as_ref(), windows, horizon, step, exports, format).await
        }
    }
}

/// The wall clock, or with `SHELFCAST_NOW` set the wall clock's pace from that instant: what
/// every command takes as "now" and "today" (the default run date and cutoff, run records,
/// leases, schedules).
fn clock_from_env() -> anyhow::Result<Arc<dyn Clock>> {
    match std::env::var("SHELFCAST_NOW") {
        Ok(v) if !v.trim().is_empty() => {
            let start = ShiftedClock::parse_start(&v).map_err(|m| anyhow::anyhow!("SHELFCAST_NOW: {m}"))?;
            Ok(Arc::new(ShiftedClock::starting_at(start)))
        }
        _ => Ok(Arc::new(SystemClock)),
    }
}
fn init(path: &PathBuf, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} already exists; pass --force to replace it", path.display());
    }
    std::fs::write(path, settings::DEFAULT_FILE).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn demo_cmd(
    settings: &Settings,
    lake: &Lake,
    clock: &dyn Clock,
    series: usize,
    days: usize,
    end: Option<NaiveDate>,
    if_empty: bool,
    force: bool,
    local: bool,
    show: bool,
) -> anyhow::Result<()> {
    if demo::lake_has_sales(lake).await? {
        if if_empty {
            println!("lake {lake} already has sales; keeping it");
            return Ok(());
        }
        if !force {
            bail!("lake {lake} already has a sales table; pass --force to replace it or --if-empty to keep it");
        }
        demo::clear(lake).await?;
    }
    let end = end.unwrap_or_else(|| clock.today() - chrono::Duration::days(1));
    let opts = DemoOptions { local, ..DemoOptions::new(series, days, end, settings.seed) };
    let started = Instant::now();
    let pb = if show {
        let pb = ProgressBar::new(0);
        pb.set_draw_target(ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template("{elapsed:>4} [{bar:30}] {pos}/{len} items").expect("valid template"),
        );
        pb
    } else {
        ProgressBar::hidden()
    };
    let report = demo::generate(lake, &opts, &|done, total| {
        pb.set_length(total);
        pb.set_position(done);
    })
    .await?;
    pb.finish_and_clear();
    println!(
        "demo lake {}: {} series ({} items × {} locations), {} … {}, seed {}, {:.1} s",
        lake,
        report.series,
        report.items,
        report.locations,
        report.start,
        report.end,
        settings.seed,
        started.elapsed().as_secs_f64()
    );
    for (table, rows) in &report.rows {
        println!("  raw/{table:<18} {rows:>12} rows");
    }
    Ok(())
}

/// The parameters of `cutoff`, by default the nightly's cutoff for today.
async fn default_params(
    ctx: &datafusion::prelude::SessionContext,
    settings: &Settings,
    clock: &dyn Clock,
    cutoff: Option<NaiveDate>,
) -> anyhow::Result<FeatureParams> {
    let cutoff = match cutoff {
        Some(c) => c,
        None => features::default_cutoff(ctx, clock.today()).await?,
    };
    Ok(settings.feature_params(cutoff))
}

async fn query_cmd(
    settings: &Settings,
    lake: &Lake,
    clock: &dyn Clock,
    sql: &str,
    format: Format,
    output: Option<PathBuf>,
    cutoff: Option<NaiveDate>,
) -> anyhow::Result<()> {
    query::ensure_read_only(sql)?;
    if format == Format::Parquet && output.is_none() {
        bail!("--format parquet needs --output FILE");
    }
    let ctx = query::catalog::open(
        lake,
        settings.engine_options(),
        |cutoff| settings.feature_params(cutoff),
        clock.today(),
        cutoff,
        &[Arc::new(history::RunsTable)],
    )
    .await?;
    // Written batch by batch as the query produces them: the result is never held whole.
    let stream = query::stream(&ctx, sql).await?;
    match output {
        Some(path) => {
            let f = std::fs::File::create(&path).with_context(|| format!("cannot create {}", path.display()))?;
            match query::write_stream(stream, format, std::io::BufWriter::new(f)).await {
                Ok(rows) => eprintln!("wrote {rows} rows to {}", path.display()),
                Err(e) => {
                    // No half-written result is left behind.
                    let _ = std::fs::remove_file(&path);
                    return Err(e.into());
                }
            }
        }
        None => {
            query::write_stream(stream, format, std::io::BufWriter::new(std::io::stdout())).await?;
        }
    }
    Ok(())
}

async fn features_cmd(
    settings: &Settings,
    lake: &Lake,
    clock: &dyn Clock,
    cutoff: Option<NaiveDate>,
) -> anyhow::Result<()> {
    let (ctx, _) = engine::open_with(lake, settings.engine_options()).await?;
    let params = default_params(&ctx, settings, clock, cutoff).await?;
    let token = format!("features-{}", clock.now().format("%Y%m%dT%H%M%S%3fZ"));
    let q = shelfcast::quality::run(&ctx, lake, &settings.quality, clock.today(), params.cutoff, &token, clock).await?;
    for c in q.checks.iter().filter(|c| c.rows > 0) {
        eprintln!(
            "check {:<18} {:>8} rows{}  {}",
            c.name,
            c.rows,
            if c.excluded { " (left out)" } else { "" },
            c.quarantine.as_deref().unwrap_or("")
        );
    }
    for m in features::materialize_all(&ctx, lake, params, &token, clock).await? {
        println!("{:<12} cutoff {}  {:>10} rows  {} file(s)  {}", m.name, m.cutoff, m.rows, m.files, m.location);
    }
    Ok(())
}

async fn factors_cmd(
    settings: &Settings,
    lake: &Lake,
    clock: &dyn Clock,
    cutoff: Option<NaiveDate>,
    write: bool,
    importance: Option<factors::importance::ImportanceOptions>,
) -> anyhow::Result<()> {
    let (ctx, _) = engine::open_with(lake, settings.engine_options()).await?;
    let params = default_params(&ctx, settings, clock, cutoff).await?;
    let token = format!("factors-{}", clock.now().format("%Y%m%dT%H%M%S%3fZ"));
    let (mut analysis, observations) = factors::analyze_counted(&ctx, None, params, &settings.factors).await?;
    if let Some(opts) = importance {
        let started = Instant::now();
        let imp =
            factors::importance::run(&ctx, lake, &settings.backtest_config(), &opts, params.cutoff, &token, clock)
                .await?;
        eprintln!("importance measured in {:.1} s", started.elapsed().as_secs_f64());
        analysis.importance = Some(imp);
    }
    if write {
        let run_date = params.cutoff + chrono::Duration::days(1);
        let m = factors::write(lake, &analysis, observations, params, run_date, &token, clock).await?;
        eprintln!("wrote {} rows ({} importance rows) to {}", m.rows, m.importance_rows, m.location);
    }
    let truth = if lake.get_opt(&shelfcast::lake::layout::demo_truth()).await?.is_some() {
        Some(demo::read_truth(lake).await?)
    } else {
        None
    };
    print!("{}", factors::render::text(&analysis, truth.as_ref()));
    if let Some(imp) = &analysis.importance {
        println!();
        print!("{}", factors::importance::render(imp));
    }
    Ok(())
}

/// One line per imported table: rows read, written and quarantined, and where they went.
fn print_imports(reports: &[shelfcast::ingest::import::ImportReport]) {
    for r in reports {
        println!(
            "{:<20} {:>10} read  {:>10} written  {:>8} quarantined  {}",
            r.table,
            r.rows_read,
            r.rows_written,
            r.rows_quarantined,
            r.quarantine.as_deref().unwrap_or(r.file.as_deref().unwrap_or(""))
        );
    }
}

async fn explain_cmd(
    settings: &Settings,
    lake: &Lake,
    clock: &dyn Clock,
    item: &str,
    location: Option<String>,
    cutoff: Option<NaiveDate>,
) -> anyhow::Result<()> {
    let (ctx, _) = engine::open_with(lake, settings.engine_options()).await?;
    let params = default_params(&ctx, settings, clock, cutoff).await?;
    let analysis = factors::analyze(&ctx, params, &settings.factors, Some(item)).await?;
    let mut found = false;
    for model in &analysis.models {
        for key in model.series.keys() {
            let Some((i, l)) = key.split_once('|') else { continue };
            if i != item || location.as_deref().is_some_and(|want| want != l) {
                continue;
            }
            found = true;
            let h = factors::data::horizon(&ctx, params.cutoff, i, l).await?;
            let rows = factors::explain::decompose(model, &analysis.groups, i, l, &h)?;
            println!("{}", factors::explain::render(i, l, &model.category, &rows));
            let local = factors::local::read(&ctx, params, i, l).await?;
            println!("{}", factors::local::render(&local));
        }
    }
    if !found {
        bail!(
            "no fitted series for item {item}{}: the item is unknown, too new, or has no prices",
            location.map(|l| format!(" at {l}")).unwrap_or_default()
        );
    }
    Ok(())
}

async fn run_cmd(
    settings: Settings,
    lake: Lake,
    clock: Arc<dyn Clock>,
    job_name: &str,
    date: Option<NaiveDate>,
) -> anyhow::Result<()> {
    let job = JobSpec::load(&settings.jobs_dir, job_name)?;
    let origin = job.origin.clone();
    run_spec(settings, lake, clock, job, &origin, date).await
}

/// A run environment for this process: its stop signals wired, and the step-delay test hook.
fn run_env(settings: Settings, lake: Lake, clock: Arc<dyn Clock>) -> RunEnv {
    let mut env = RunEnv::new(settings, lake, clock);
    if let Ok(spec) = std::env::var("SHELFCAST_TEST_STEP_DELAY") {
        env.step_delays = runner::parse_step_delays(&spec);
    }
    on_stop_signals(env.shutdown.clone());
    env
}

/// SIGINT/SIGTERM: the first drains (no new run or step), the second aborts the running steps.
fn on_stop_signals(shutdown: Shutdown) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(cause = %e, "cannot listen for SIGTERM");
                return;
            }
        };
        for n in 0.. {
            #[cfg(unix)]
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            #[cfg(not(unix))]
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            if n == 0 {
                tracing::warn!(
                    "stop requested: no new runs or steps; running steps finish (signal again to cancel them)"
                );
                shutdown.drain.cancel();
            } else {
                tracing::warn!("cancelling the running steps");
                shutdown.abort.cancel();
                return;
            }
        }
    });
}

async fn run_spec(
    settings: Settings,
    lake: Lake,
    clock: Arc<dyn Clock>,
    job: JobSpec,
    origin: &str,
    date: Option<NaiveDate>,
) -> anyhow::Result<()> {
    let job_name = job.name.clone();
    for m in &settings.models {
        if !models::KNOWN.contains(&m.as_str()) {
            bail!("unknown model `{m}` in settings (known: {})", models::KNOWN.join(", "));
        }
    }
    let started = Instant::now();
    let env = run_env(settings.clone(), lake.clone(), clock);
    let step = |step: &str| progress::set_step(&format!("{job_name}: {step}"));
    let result = runner::run_job(&env, &job, date, Trigger::Manual, &step).await;
    progress::set_step("");
    let report = result.with_context(|| format!("job `{job_name}` ({origin}) failed"))?;
    let s = &report.summary;
    let unit = match settings.frequency {
        Frequency::Daily => "days",
        Frequency::Weekly => "weeks",
    };
    println!(
        "{} {}: run {} for {} (cutoff {}) succeeded in {:.1} s",
        report.job,
        origin,
        report.run_id,
        report.run_date,
        report.cutoff.map(|c| c.to_string()).unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
    println!("  series      {}", s.series);
    println!("  horizon     {} {unit}, quantiles {:?}", s.horizon, settings.quantiles);
    println!("  model       {}", s.model.as_deref().unwrap_or("-"));
    println!("  rows        {}", s.forecast_rows);
    for f in &s.features {
        println!("  features    {} ({} rows)", f.location, f.rows);
    }
    println!("  forecasts   {}", s.output.as_deref().unwrap_or("-"));
    println!("  manifest    {}", s.manifest.as_deref().unwrap_or("-"));
    if let Some(st) = &s.stability {
        match st.previous_run_date {
            Some(d) => println!(
                "  stability   against {d}: {} series, median |change| {:.1}%, {} jump(s) ≥ {:.0}%",
                st.series_compared,
                st.median_abs_change.unwrap_or(0.0) * 100.0,
                st.jumps,
                st.jump_threshold * 100.0
            ),
            None => println!("  stability   first publication: nothing to compare"),
        }
    }
    if let Some(p) = &s.replenishment {
        println!(
            "  plan        {} ({} series, {} at or below the reorder point, {} order line(s), {:.0} units)",
            p.location, p.rows, p.below_reorder_point, p.order_lines, p.units_to_order
        );
    }
    if let Some(n) = &s.notifications {
        match &n.note {
            Some(note) => println!("  notify      {note}"),
            None => println!("  notify      {} delivered, {} pending (retried next run)", n.delivered, n.pending),
        }
    }
    if let Some(t) = &s.tracking {
        let mase: Vec<String> =
            t.mase.iter().map(|(m, v)| format!("{m} {}", v.map_or("-".to_string(), |v| format!("{v:.3}")))).collect();
        println!(
            "  tracked     {} earlier run date(s), {} rows: MASE {} ({})",
            t.origins.len(),
            t.scored_rows,
            mase.join(", "),
            t.location
        );
    }
    for r in &s.ingested {
        println!(
            "  ingest      {} → {}: {} written, {} quarantined",
            r.source, r.table, r.rows_written, r.rows_quarantined
        );
    }
    for note in &s.notes {
        println!("  note        {note}");
    }
    if let Some(r) = &s.report {
        println!("  report      {r}");
    }
    print_step_times(&report);
    Ok(())
}

/// Where a run's time went: each step's seconds and share of the run, longest first.
fn print_step_times(report: &RunReport) {
    let times: Vec<(&str, f64)> = report
        .steps
        .iter()
        .filter_map(|st| {
            let (a, b) = (st.started_at?, st.ended_at?);
            Some((st.name.as_str(), (b - a).num_milliseconds().max(0) as f64 / 1000.0))
        })
        .collect();
    let total: f64 = times.iter().map(|(_, t)| t).sum();
    if times.is_empty() || total <= 0.0 {
        return;
    }
    let mut line = String::new();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (name, t) in sorted {
        if !line.is_empty() {
            line.push_str(", ");
        }
        line.push_str(&format!("{name} {t:.1} s ({:.0}%)", 100.0 * t / total));
    }
    println!("  time        {line}");
}

/// The job a run id names (`<job>-<YYYYMMDDTHHMMSSmmmZ>-<hex>`), when it has that form.
fn job_of_run_id(run_id: &str) -> Option<&str> {
    let mut parts = run_id.rsplitn(3, '-');
    let (_, stamp, job) = (parts.next()?, parts.next()?, parts.next()?);
    (stamp.len() == 19 && stamp.ends_with('Z') && stamp.as_bytes()[8] == b'T').then_some(job)
}

async fn report_cmd(
    settings: &Settings,
    lake: &Lake,
    clock: &dyn Clock,
    run: Option<String>,
    output: Option<PathBuf>,
) -> anyhow::Result<()> {
    use shelfcast::lake::{dataset, layout};
    use shelfcast::report::{self, Source};
    let of = |r: &RunReport| Source { run_id: r.run_id.clone(), job: Some(r.job.clone()), run_date: Some(r.run_date) };
    let source = match run {
        Some(id) => {
            let mut found = match job_of_run_id(&id) {
                Some(job) => history::recent(lake, Some(job), None).await?.into_iter().find(|r| r.run_id == id),
                None => None,
            };
            if found.is_none() {
                found = history::recent(lake, None, None).await?.into_iter().find(|r| r.run_id == id);
            }
            match found {
                Some(r) => of(&r),
                None if dataset::read_manifest(lake, &layout::backtest(&id)).await?.is_some() => {
                    Source { run_id: id, job: None, run_date: None }
                }
                None => bail!("no run or backtest `{id}` in {lake} (`shelfcast runs` lists the runs)"),
            }
        }
        None => match history::recent(lake, Some("nightly"), Some(1)).await?.first() {
            Some(r) => of(r),
            None => match report::gather::latest_backtest(lake).await? {
                Some(id) => Source { run_id: id, job: None, run_date: None },
                None => bail!("nothing to report in {lake}: run `shelfcast run nightly` or `shelfcast backtest` first"),
            },
        },
    };
    let (report, files) = report::run(lake, settings, &source, clock).await?;
    println!("report of run {}: {}", report.run.run_id, files.location);
    for f in &files.files {
        println!("  {:<12} {:>9} bytes", f.path, f.bytes);
    }
    if let Some(dir) = output {
        for p in report::write_local(&dir, &report)? {
            println!("  wrote {}", p.display());
        }
    }
    for n in &report.notes {
        eprintln!("note: {n}");
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn backtest_cmd(
    settings: &Settings,
    lake: &Lake,
    clock: &dyn Clock,
    windows: usize,
    horizon: Option<usize>,
    step: Option<usize>,
    (export, export_actuals): (Option<PathBuf>, Option<PathBuf>),
    format: ReportFormat,
) -> anyhow::Result<()> {
    use shelfcast::evaluate::backtest::{self, BacktestOptions};
    let horizon = horizon.unwrap_or(settings.horizon);
    let opts = BacktestOptions { windows, horizon, step: step.unwrap_or(horizon), models: settings.models.clone() };
    let started = Instant::now();
    progress::set_step("backtest: reading the lake");
    let (ctx, _) = engine::open_with(lake, settings.engine_options()).await?;
    let run_id = format!("backtest-{}", clock.now().format("%Y%m%dT%H%M%S%3fZ"));
    shelfcast::quality::run(&ctx, lake, &settings.quality, clock.today(), clock.today(), &run_id, clock).await?;
    let (full, last) = backtest::full_panel(&ctx, &settings.backtest_config()).await?;
    progress::set_step(&format!(
        "backtest: {} windows × {} models over {} series",
        windows,
        opts.models.len(),
        full.len()
    ));
    let full = Arc::new(full);
    let report =
        backtest::run_in_lake(&ctx, lake, Arc::clone(&full), &settings.backtest_config(), &opts, &run_id, clock)
            .await
            .map(|(r, _)| r);
    progress::set_step("");
    let report = report?;
    let mut extra = serde_json::Map::new();
    extra.insert("last_sales_date".into(), last.to_string().into());
    let rows = backtest::store(lake, &run_id, &report, extra, clock).await?;
    let dir = shelfcast::lake::layout::backtest(&run_id);
    if let Some(path) = export {
        std::fs::write(&path, shelfcast::lake::parquet::encode(&rows.schema(), &[rows])?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if let Some(path) = export_actuals {
        let a = backtest::actuals_batch(&full)?;
        std::fs::write(&path, shelfcast::lake::parquet::encode(&a.schema(), &[a])?)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    if format == ReportFormat::Json {
        let out = serde_json::json!({
            "run_id": run_id,
            "location": lake.display(&dir),
            "series": full.len(),
            "seconds": started.elapsed().as_secs_f64(),
            "report": report,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    let cutoffs: Vec<String> = report.cutoffs.iter().map(|c| c.to_string()).collect();
    println!(
        "backtest {run_id}: {} series, cutoffs {}, horizon {horizon}, {:.1} s",
        full.len(),
        cutoffs.join(", "),
        started.elapsed().as_secs_f64()
    );
    let f = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    println!(
        "{:<16} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {:>8} {:>7} {:>8}",
        "model", "MAE", "RMSE", "WAPE%", "sMAPE%", "MASE", "R2", "bias", "cov80", "pinball", "WRMSSE", "seconds"
    );
    for m in &report.models {
        let o = &m.overall;
        let pinball =
            if o.pinball.is_empty() { None } else { Some(o.pinball.values().sum::<f64>() / o.pinball.len() as f64) };
        println!(
            "{:<16} {:>9} {:>9} {:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {:>8} {:>7} {:>8.1}",
            m.model,
            f(o.mae),
            f(o.rmse),
            f(o.wape),
            f(o.smape),
            f(o.mase),
            f(o.r2),
            f(o.bias),
            f(o.coverage_80),
            f(pinball),
            f(m.wrmsse.get("mean").copied()),
            m.seconds
        );
    }
    if let Some(m) = report.models.first().filter(|m| !m.wrmsse.is_empty()) {
        let levels: Vec<&str> = m.wrmsse.keys().filter(|k| *k != "mean").map(String::as_str).collect();
        println!("WRMSSE by level: {}", levels.join(", "));
        for m in &report.models {
            let v: Vec<String> = levels.iter().map(|l| f(m.wrmsse.get(*l).copied())).collect();
            println!("  {:<14} {}", m.model, v.join("  "));
        }
    }
    println!("scores and forecasts: {}", lake.display(&dir));
    Ok(())
}

async fn backfill_cmd(
    settings: Settings,
    lake: Lake,
    clock: Arc<dyn Clock>,
    job_name: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<()> {
    let job = JobSpec::load(&settings.jobs_dir, job_name)?;
    let env = run_env(settings, lake, clock);
    let started = Instant::now();
    let step = |step: &str| progress::set_step(&format!("{job_name}: {step}"));
    let on_date = |day: NaiveDate, o: &DateOutcome| {
        progress::suspend(|| match o {
            DateOutcome::Ran { run_id } => println!("{day}  succeeded       {run_id}"),
            DateOutcome::AlreadyDone { run_id } => println!("{day}  already done    {run_id}"),
        })
    };
    let result = backfill::backfill(&env, &job, from, to, &step, &on_date).await;
    progress::set_step("");
    let done = result.with_context(|| {
        format!("backfill of `{job_name}` stopped; `shelfcast runs --job {job_name}` shows the failed run, and the same command resumes")
    })?;
    println!("{job_name}: {} dates from {from} to {to} done in {:.1} s", done.len(), started.elapsed().as_secs_f64());
    Ok(())
}

async fn schedule_cmd(
    settings: Settings,
    lake: Lake,
    clock: Arc<dyn Clock>,
    only: &[String],
    grace: Duration,
) -> anyhow::Result<()> {
    let mut jobs = JobSpec::load_dir(&settings.jobs_dir)?;
    for name in only {
        if !jobs.iter().any(|j| &j.name == name) {
            bail!("no job named `{name}` in {}", settings.jobs_dir.display());
        }
    }
    if !only.is_empty() {
        jobs.retain(|j| only.contains(&j.name));
    }
    let env = run_env(settings, lake, clock);
    eprintln!("shelfcast schedule: {} job(s), lake {}; SIGINT/SIGTERM to stop", jobs.len(), env.lake);
    scheduler::run(env, jobs, grace).await?;
    Ok(())
}

fn step_summary(r: &RunReport) -> String {
    r.steps
        .iter()
        .map(|s| {
            let status =
                serde_json::to_value(s.status).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
            if s.attempts > 1 {
                format!("{}:{}({} tries)", s.name, status, s.attempts)
            } else {
                format!("{}:{}", s.name, status)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn label<T: serde::Serialize>(v: T) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

async fn serve_cmd(
    settings: Settings,
    lake: Lake,
    clock: Arc<dyn Clock>,
    listen: Option<String>,
    flight_listen: Option<String>,
    cutoff: Option<NaiveDate>,
) -> anyhow::Result<()> {
    use shelfcast::serve::{self, Live, ServeOptions};
    let mut s = settings.serve.clone();
    if let Some(l) = listen {
        s.listen = l;
    }
    if let Some(l) = flight_listen {
        s.flight_listen = l;
    }
    let engine = settings.engine_options();
    let opts = ServeOptions::resolve(&s, |k| std::env::var(k).ok(), engine.memory_limit)?;
    let tls = opts.tls_acceptor()?;
    let endpoints = serve::bind(&opts, &s.password_env).await?;
    let addr = endpoints.pg.local_addr()?;
    let flight_addr = endpoints.flight.as_ref().map(|l| l.local_addr()).transpose()?;
    let params: serve::FeatureParamsAt = {
        let settings = settings.clone();
        Arc::new(move |c| settings.feature_params(c))
    };
    let runs: Arc<dyn query::catalog::Extra> = Arc::new(history::RunsTable);
    let source = serve::LakeSource::new(lake.clone(), settings.engine_options(), params, clock, cutoff, vec![runs]);
    let live = Arc::new(Live::open(Arc::new(source), serve::session::hooks()).await?);
    let security = format!(
        "{}, {}",
        if opts.tls.is_some() { "TLS available" } else { "no TLS" },
        if opts.login.is_some() { "password required" } else { "no password" },
    );
    eprintln!("shelfcast serve: listening on {addr} (PostgreSQL wire protocol; {security}); lake {lake}");
    if let Some(f) = flight_addr {
        let scheme = if opts.tls.is_some() { "grpc+tls" } else { "grpc" };
        eprintln!("shelfcast serve: Flight SQL on {scheme}://{f} (Arrow Flight SQL; {security})");
    }
    eprintln!("shelfcast serve: SIGINT/SIGTERM to stop");
    let shutdown = Shutdown::default();
    on_stop_signals(shutdown.clone());
    tokio::select! {
        r = serve::serve(endpoints, live, opts, tls, shutdown.drain.clone()) => r?,
        _ = shutdown.abort.cancelled() => {}
    }
    Ok(())
}

async fn runs_cmd(lake: &Lake, job: Option<&str>, last: usize, format: ReportFormat) -> anyhow::Result<()> {
    let runs = history::recent(lake, job, Some(last)).await?;
    if format == ReportFormat::Json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
        return latest_runs_ok(&runs);
    }
    if runs.is_empty() {
        println!("no runs{} in {lake}", job.map(|j| format!(" of job `{j}`")).unwrap_or_default());
        return Ok(());
    }
    println!(
        "{:<20}  {:<12} {:<10}  {:<9} {:<10} {:>8}  {:<40}  steps",
        "started (UTC)", "job", "run date", "trigger", "status", "took", "run id"
    );
    for r in &runs {
        let took = (r.ended_at - r.started_at).num_milliseconds() as f64 / 1000.0;
        println!(
            "{:<20}  {:<12} {:<10}  {:<9} {:<10} {:>7.1}s  {:<40}  {}",
            r.started_at.format("%Y-%m-%d %H:%M:%S"),
            r.job,
            r.run_date,
            label(r.trigger),
            label(r.status),
            took,
            r.run_id,
            step_summary(r)
        );
        if let Some(e) = &r.error {
            println!("{:>22}error: {e}", "");
        }
    }
    latest_runs_ok(&runs)
}

/// An error when the newest of `runs` (newest first) of any job failed, was cancelled or was
/// abandoned: the newest run of each job shown decides `runs`' exit code.
fn latest_runs_ok(runs: &[RunReport]) -> anyhow::Result<()> {
    let mut seen = Vec::new();
    for r in runs {
        if seen.contains(&r.job.as_str()) {
            continue;
        }
        seen.push(r.job.as_str());
        if matches!(r.status, Status::Failed | Status::Cancelled | Status::Abandoned) {
            bail!("the latest run of job `{}` ({}) is {}", r.job, r.run_id, label(r.status));
        }
    }
    Ok(())
}

fn describe_next(job: &JobSpec, clock: &dyn Clock) -> String {
    match &job.schedule {
        None => "by hand only".to_string(),
        Some(s) => match s.next_after(clock.now()) {
            Some(t) => format!(
                "{} ({} {})",
                t.format("%Y-%m-%d %H:%M:%SZ"),
                t.with_timezone(&s.tz()).format("%Y-%m-%d %H:%M:%S"),
                s.tz()
            ),
            None => "never".to_string(),
        },
    }
}

fn validate_cmd(settings: &Settings, files: &[PathBuf], clock: &dyn Clock) -> anyhow::Result<()> {
    let files: Vec<PathBuf> = if files.is_empty() {
        let mut f: Vec<PathBuf> = std::fs::read_dir(&settings.jobs_dir)
            .with_context(|| format!("cannot read the jobs folder {}", settings.jobs_dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        f.sort();
        f
    } else {
        files.to_vec()
    };
    let mut bad = 0;
    for f in &files {
        match JobSpec::load_files(std::slice::from_ref(f)) {
            Ok(jobs) => {
                for j in jobs {
                    println!(
                        "ok     {}: job `{}`, {} step(s), next {}",
                        f.display(),
                        j.name,
                        j.steps.len(),
                        describe_next(&j, clock)
                    );
                }
            }
            Err(e) => {
                bad += 1;
                println!("error  {e}");
            }
        }
    }
    // Names must also be unique across the files.
    if bad == 0 {
        JobSpec::load_files(&files)?;
    }
    if bad > 0 {
        bail!("{bad} of {} job file(s) are invalid", files.len());
    }
    Ok(())
}

async fn list_cmd(settings: &Settings, lake: &Lake, clock: &dyn Clock, format: ReportFormat) -> anyhow::Result<()> {
    let jobs = JobSpec::load_dir(&settings.jobs_dir)?;
    let mut listed = Vec::with_capacity(jobs.len());
    for j in &jobs {
        listed.push((j, history::recent(lake, Some(&j.name), Some(1)).await?.into_iter().next()));
    }
    if format == ReportFormat::Json {
        let out: Vec<serde_json::Value> = listed
            .iter()
            .map(|(j, last)| {
                serde_json::json!({
                    "job": j.name,
                    "schedule": j.schedule.as_ref().map(|s| s.expr()),
                    "time_zone": j.schedule.as_ref().map(|s| s.tz().to_string()),
                    "next_due": j.schedule.as_ref().and_then(|s| s.next_after(clock.now())),
                    "catch_up": j.catch_up,
                    "concurrency": j.concurrency,
                    "steps": j.steps.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
                    "last_run": last.as_ref().map(|r| serde_json::json!({
                        "run_id": r.run_id, "run_date": r.run_date, "status": r.status,
                    })),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{:<12} {:<16} {:<8} {:<11} {:<52} last run", "job", "schedule", "catch-up", "concurrency", "next due");
    for (j, last) in &listed {
        let last =
            last.as_ref().map_or("-".to_string(), |r| format!("{} {} ({})", r.run_date, label(r.status), r.run_id));
        println!(
            "{:<12} {:<16} {:<8} {:<11} {:<52} {}",
            j.name,
            j.schedule.as_ref().map_or("-", |s| s.expr()),
            label(j.catch_up),
            label(j.concurrency),
            describe_next(j, clock),
            last
        );
    }
    Ok(())
}
