//! The command line: parse, set up logging and progress, load the settings, open the lake, and
//! hand each verb to its file. The only place that reads the wall clock, the environment and the
//! terminal, and the only user of `anyhow`. What a command prints goes through
//! [`shelfcast::output`]:
//!
//! - [`args`]: what clap reads;
//! - [`data`]: `demo`, `import`, `ingest`, `query`, `features`, `factors`, `explain`, `vacuum`;
//! - [`jobs`]: `run`, `train`, `predict`, `backfill`, `schedule`, `runs`, `jobs`;
//! - [`backtest`], [`report`], [`serve`]: one verb each.

mod args;
mod backtest;
mod data;
mod jobs;
mod report;
mod serve;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
pub use args::Cli;
use args::{Command, JobsCommand};
use shelfcast::clock::{Clock, ShiftedClock, SystemClock};
use shelfcast::jobs::{JobSpec, StepKind};
use shelfcast::lake::Lake;
use shelfcast::progress;
use shelfcast::settings::{self, Overrides, Settings};
use tracing_subscriber::EnvFilter;

/// What every command runs with: the settings, the lake, the clock, and whether progress is
/// drawn as bars (on a terminal).
pub(crate) struct Cx {
    pub settings: Settings,
    pub lake: Lake,
    pub clock: Arc<dyn Clock>,
    pub bars: bool,
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
    let bars = !cli.quiet && std::io::stderr().is_terminal();
    if !cli.quiet {
        let observer: Arc<dyn progress::Observer> = if bars {
            Arc::new(progress::Bars::new())
        } else {
            Arc::new(progress::Lines::new(Box::new(std::io::stderr()), progress_every()?))
        };
        progress::install(observer);
    }
    let models_given = cli.models.is_some();
    let cx = Cx { settings, lake, clock, bars };
    match cli.command {
        Command::Init { .. } => unreachable!("handled above"),
        Command::Demo { series, days, end, if_empty, force, no_local, format } => {
            let opts = data::DemoArgs { series, days, end, if_empty, force, local: !no_local };
            data::demo(&cx, opts, format).await
        }
        Command::Query { sql, file, format, output, cutoff } => {
            let sql = match (sql, file) {
                (Some(s), _) => s,
                (None, Some(f)) => {
                    std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?
                }
                (None, None) => bail!("give the SQL text or --file"),
            };
            data::query(&cx, &sql, format, output, cutoff).await
        }
        Command::Import { source, table, map, mapping, date_format, preset, wide, format } => {
            let opts = data::ImportArgs { source, table, map, mapping, date_format, preset, wide };
            data::import(&cx, opts, format).await
        }
        Command::Ingest { source, format } => data::ingest(&cx, &source, format).await,
        Command::Features { cutoff, format } => data::features(&cx, cutoff, format).await,
        Command::Factors { cutoff, write, importance, repeats, method, windows, format } => {
            let importance = importance.then(|| {
                let mut o = cx.settings.importance_options();
                if cx.settings.factors.importance.models.is_empty() || models_given {
                    o.models = cx.settings.models.clone();
                }
                o.repeats = repeats.unwrap_or(o.repeats);
                o.method = method.unwrap_or(o.method);
                o.windows = windows.unwrap_or(o.windows);
                o
            });
            data::factors(&cx, cutoff, write, importance, format).await
        }
        Command::Explain { item, location, cutoff, format } => {
            data::explain(&cx, &item, location, cutoff, format).await
        }
        Command::Vacuum { format } => data::vacuum(&cx, format).await,
        Command::Run { job, date, format } => jobs::run(cx, &job, date, format).await,
        Command::Train { date, format } => {
            let job = JobSpec::adhoc("train", &[StepKind::Checks, StepKind::Features, StepKind::Train]);
            jobs::run_spec(cx, job, "(train)", date, format).await
        }
        Command::Predict { date, format } => {
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
            jobs::run_spec(cx, job, "(predict)", date, format).await
        }
        Command::Backfill { job, from, to } => jobs::backfill(cx, &job, from, to).await,
        Command::Schedule { jobs: only, grace } => jobs::schedule(cx, &only, grace).await,
        Command::Runs { job, last, format } => jobs::runs(&cx, job.as_deref(), last, format).await,
        Command::Jobs { command: JobsCommand::Validate { files } } => jobs::validate(&cx, &files),
        Command::Jobs { command: JobsCommand::List { format } } => jobs::list(&cx, format).await,
        Command::Serve { listen, flight_listen, cutoff } => serve::serve(cx, listen, flight_listen, cutoff).await,
        Command::Report { run, output, format } => report::report(&cx, run, output, format).await,
        Command::Backtest { windows, horizon, step, export, export_actuals, format } => {
            let opts = backtest::BacktestArgs { windows, horizon, step, export, export_actuals };
            backtest::backtest(&cx, opts, format).await
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

fn init(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        bail!("{} already exists; pass --force to replace it", path.display());
    }
    std::fs::write(path, settings::DEFAULT_FILE).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(())
}
