//! Runs a job once for a run date: under the date's lease, its steps in order, each recorded.
//!
//! 1. **Lease.** The run takes the lease of (job, run date) in the lake ([`crate::lake::lease`])
//!    and renews it in the background while it runs. If another process holds it, nothing
//!    runs ([`Ran::Busy`]); a lease whose holder died is taken over once it has expired, and
//!    that holder's record, left `running`, is marked `abandoned`.
//! 2. **Already done?** Scheduled and backfill runs check the history under the lease, so a
//!    slot two schedulers both saw, or a date a backfill already did, runs once.
//! 3. **Catalog.** The raw tables are checked before anything is written: a missing or
//!    mistyped table fails the run with no record and nothing written.
//! 4. **Steps.** The record (`runs/job=…/run_date=…/<run_id>.json`) is written when the run
//!    starts and after every step. A step runs once every step it comes `after` succeeded;
//!    each attempt is bounded by the step's timeout, and a failed attempt is retried after a
//!    backoff that doubles each time. A shutdown lets the running step finish (or cancels it,
//!    on a second signal) and starts no further step; the run is then recorded `cancelled`.
//!
//! Outputs are datasets that swap atomically (manifest last), so a rerun of a date, or the run
//! that retries a crashed one, replaces them whole; until then the last good ones stay visible.
//!
//! The run date's cutoff is the last day with sales on or before the day before it
//! ([`features::default_cutoff`]): sales dated later never move it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use super::history::{self, ModelVersion, RunReport, RunSummary, Status, StepRecord, Trigger};
use super::spec::{JobSpec, StepKind, StepSpec};
use crate::clock::Clock;
use crate::engine;
use crate::error::{Error, Result};
use crate::evaluate::backtest::{self, BacktestOptions};
use crate::evaluate::champion::{self, Evidence, Registry, SegmentBy};
use crate::evaluate::tracking;
use crate::features::{self, FeatureParams, queries};
use crate::lake::lease::{Acquired, Lease, LeaseState};
use crate::lake::{Lake, dataset, layout};
use crate::models::baseline::classify::classify;
use crate::models::{self, Forecast, Forecaster, store, warm};
use crate::panel::{Covariates, Panel};
use crate::plan::replenish;
use crate::publish::notify;
use crate::publish::{self, ForecastRelease, PublishMetrics};
use crate::quality;
use crate::secrets::Secrets;
use crate::settings::Settings;

/// Requests to stop, shared by everything a process runs.
///
/// `drain`: start no further step (the running one finishes); `abort`: cancel the running step
/// too. A scheduler cancels `drain` on the first SIGTERM/SIGINT and `abort` on the second or
/// when its grace period ends.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    /// Start no further step.
    pub drain: CancellationToken,
    /// Cancel the running step.
    pub abort: CancellationToken,
}

/// What a run needs from outside.
#[derive(Debug, Clone)]
pub struct RunEnv {
    /// Resolved settings.
    pub settings: Settings,
    /// The lake.
    pub lake: Lake,
    /// The clock: timestamps, lease expiry and retry backoff.
    pub clock: Arc<dyn Clock>,
    /// Who this process is, in leases and run records.
    pub holder: String,
    /// Stop requests.
    pub shutdown: Shutdown,
    /// Test hook: wait this long at the start of the named steps (from the
    /// `SHELFCAST_TEST_STEP_DELAY` variable the binary reads, `STEP:MILLIS[,…]`), so a test can
    /// kill a run in the middle of a step.
    pub step_delays: Vec<(String, StdDuration)>,
    /// Where webhook keys and source credentials are read (the process environment by default).
    pub secrets: Secrets,
}

impl RunEnv {
    /// An environment with a fresh holder id, no stop requests, no test delays, and secrets
    /// from the process environment; the lake keeps replaced files for the settings' grace.
    pub fn new(settings: Settings, lake: Lake, clock: Arc<dyn Clock>) -> Self {
        Self {
            lake: lake.with_grace(settings.superseded_grace),
            settings,
            clock,
            holder: holder_id(),
            shutdown: Shutdown::default(),
            step_delays: Vec::new(),
            secrets: Secrets::from_env(),
        }
    }
}

/// This process's identity in leases and records: host, process id and a random part.
pub fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string());
    format!("{host}:{}:{:04x}", std::process::id(), rand::random::<u16>())
}

/// Parses the `STEP:MILLIS[,STEP:MILLIS]` value of the step-delay test hook.
pub fn parse_step_delays(spec: &str) -> Vec<(String, StdDuration)> {
    spec.split(',')
        .filter_map(|p| {
            let (step, ms) = p.trim().split_once(':')?;
            Some((step.trim().to_string(), StdDuration::from_millis(ms.trim().parse().ok()?)))
        })
        .collect()
}

/// When a run may be skipped because its work is already done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unless {
    /// Always run (manual runs).
    Always,
    /// Skip when a run for this cron slot already ended (succeeded, failed or skipped).
    SlotDone(DateTime<Utc>),
    /// Skip when a run of this date already succeeded (backfill).
    DateSucceeded,
}

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct RunRequest {
    /// The run date (default: today by the clock).
    pub run_date: Option<NaiveDate>,
    /// What started it.
    pub trigger: Trigger,
    /// The cron slot, for scheduled and catch-up runs.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// When to skip it.
    pub unless: Unless,
}

impl RunRequest {
    /// A manual run of `run_date`.
    pub fn manual(run_date: Option<NaiveDate>) -> Self {
        Self { run_date, trigger: Trigger::Manual, scheduled_for: None, unless: Unless::Always }
    }
}

/// What came of a run request (a failed run is an `Err`, after its record is written).
#[derive(Debug)]
pub enum Ran {
    /// The run ended; its record.
    Done(Box<RunReport>),
    /// Skipped: this run of the date already exists.
    AlreadyDone {
        /// The run that did it.
        run_id: String,
        /// How it ended.
        status: Status,
    },
    /// Another process holds the date's lease.
    Busy(LeaseState),
}

#[derive(Default)]
struct State {
    params: Option<FeatureParams>,
    panel: Option<Arc<Panel>>,
    models: Vec<Box<dyn Forecaster>>,
    forecasts: Vec<Forecast>,
    /// The learned ensemble's weights at the cutoff, from the member forecasts of a backtest
    /// step that ran before the train step (its windows are the validation fitting would redo).
    ensemble_weights: Option<crate::models::ensemble::Learned>,
    /// The panel of actuals at the cutoff, without covariates (what tracking and backtests read).
    actuals: Option<Arc<Panel>>,
    /// This run's tracked accuracy, for the backtest step's decisions.
    tracked: Option<crate::evaluate::backtest::BacktestReport>,
}

/// Rows a step read and wrote.
type Rows = (Option<u64>, Option<u64>);

/// A new run id: the job, the start time and a random part.
pub fn new_run_id(job: &str, started_at: DateTime<Utc>) -> String {
    format!("{job}-{}-{:04x}", started_at.format("%Y%m%dT%H%M%S%3fZ"), rand::random::<u16>())
}

/// Runs `job` for `run_date` (today by the clock when `None`), as a manual run. Returns the
/// run's record; a failed run returns its error after its record is written, and a date
/// another process is running returns [`Error::LeaseHeld`].
pub async fn run_job(
    env: &RunEnv,
    job: &JobSpec,
    run_date: Option<NaiveDate>,
    trigger: Trigger,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<RunReport> {
    let req = RunRequest { trigger, ..RunRequest::manual(run_date) };
    match run(env, job, req, progress).await? {
        Ran::Done(report) => Ok(*report),
        Ran::Busy(lease) => Err(Error::LeaseHeld {
            job: job.name.clone(),
            run_date: run_date.unwrap_or_else(|| env.clock.today()),
            holder: lease.holder,
            expires_at: lease.expires_at,
        }),
        Ran::AlreadyDone { run_id, .. } => Err(Error::data(format!("already done by run {run_id}"))),
    }
}

/// Runs a request for `job`; see the module documentation for the order of things.
pub async fn run(env: &RunEnv, job: &JobSpec, req: RunRequest, progress: &(dyn Fn(&str) + Sync)) -> Result<Ran> {
    let started_at = env.clock.now();
    let run_date = req.run_date.unwrap_or_else(|| env.clock.today());
    let run_id = new_run_id(&job.name, started_at);
    let span = info_span!("run", job = %job.name, run_id = %run_id, run_date = %run_date, trigger = ?req.trigger);
    async move {
        let dir = layout::lease(&job.name, run_date);
        let (lease, taken_over) =
            match Lease::acquire(&env.lake, &dir, &env.holder, &run_id, job.lease_ttl, started_at).await? {
                Acquired::Busy(s) => {
                    info!(holder = %s.holder, expires_at = %s.expires_at, "another process runs this date");
                    return Ok(Ran::Busy(s));
                }
                Acquired::Held { lease, taken_over } => (lease, taken_over),
            };
        if let Some(old) = &taken_over {
            warn!(previous_holder = %old.holder, previous_run = %old.purpose, expired_at = %old.expires_at,
                "took over an expired lease");
        }
        // Every dataset commit and pointer move of the run checks first that the lease is
        // still held (its generation is the fencing token).
        let fenced = RunEnv { lake: env.lake.with_fence(lease.fence(Arc::clone(&env.clock))), ..env.clone() };
        let keeper = lease.keep(Arc::clone(&env.clock));
        let lost = keeper.lost();
        let result = leased(&fenced, job, req, run_date, &run_id, started_at, lost, progress).await;
        if let Err(e) = keeper.release().await {
            warn!(cause = %e, "could not release the lease; it lapses by itself");
        }
        result
    }
    .instrument(span)
    .await
}

#[allow(clippy::too_many_arguments)]
async fn leased(
    env: &RunEnv,
    job: &JobSpec,
    req: RunRequest,
    run_date: NaiveDate,
    run_id: &str,
    started_at: DateTime<Utc>,
    lost: CancellationToken,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Ran> {
    let before = history::for_date(&env.lake, &job.name, run_date).await?;
    let done = match req.unless {
        Unless::Always => None,
        Unless::SlotDone(slot) => before.iter().find(|r| r.scheduled_for == Some(slot) && r.status.is_final()),
        Unless::DateSucceeded => before.iter().find(|r| r.status == Status::Succeeded),
    };
    if let Some(r) = done {
        info!(by = %r.run_id, status = ?r.status, "already done");
        return Ok(Ran::AlreadyDone { run_id: r.run_id.clone(), status: r.status });
    }

    let s = &env.settings;
    progress("checking the lake");
    // Nothing is written before the catalog is known good.
    let (ctx, catalog) = engine::open_with(&env.lake, s.engine_options()).await?;
    let abandoned = history::mark_abandoned(&env.lake, &job.name, run_date, run_id).await?;
    for id in &abandoned {
        warn!(abandoned = %id, "a run of this date was left running by a process that died");
    }
    let retry_of = before.iter().find(|r| r.status.is_unfinished()).map(|r| r.run_id.clone());
    let wanted = run_date - Duration::days(1);
    let cutoff = features::default_cutoff(&ctx, run_date).await?;
    if cutoff < wanted {
        warn!(last_sales = %cutoff, wanted = %wanted, "no sales on the day before the run date; using the last day with sales before it");
    }
    let params = s.feature_params(cutoff);
    let mut record_params: serde_json::Map<String, serde_json::Value> =
        job.params.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
    record_params.insert("run_date".into(), run_date.to_string().into());
    record_params.insert("cutoff".into(), params.cutoff.to_string().into());
    let mut report = RunReport {
        run_id: run_id.to_string(),
        job: job.name.clone(),
        run_date,
        cutoff: Some(params.cutoff),
        trigger: req.trigger,
        scheduled_for: req.scheduled_for,
        retry_of,
        holder: env.holder.clone(),
        status: Status::Running,
        started_at,
        ended_at: started_at,
        params: record_params,
        steps: job.steps.iter().map(|s| StepRecord::new(s, Status::Pending)).collect(),
        inputs: Some(catalog),
        models: Vec::new(),
        quality: None,
        champions: Vec::new(),
        summary: RunSummary { horizon: s.horizon, ..Default::default() },
        error: None,
    };
    history::write(&env.lake, &report).await?;
    info!("run started");

    let mut state = State { params: Some(params), ..Default::default() };
    let result = execute(env, job, &ctx, run_date, run_id, &mut state, &mut report, &lost, progress).await;
    report.ended_at = env.clock.now();
    for st in report.steps.iter_mut().filter(|st| st.status == Status::Pending) {
        st.status = Status::Skipped;
    }
    report.status = match &result {
        Ok(()) => Status::Succeeded,
        Err(Error::Cancelled(_)) => Status::Cancelled,
        Err(_) => Status::Failed,
    };
    if let Err(e) = &result {
        report.error = Some(error_chain(e));
    }
    history::write(&env.lake, &report).await?;
    match &result {
        Ok(()) => info!(status = "succeeded", "run ended"),
        Err(e) => warn!(status = ?report.status, cause = %error_chain(e), "run ended"),
    }
    result.map(|()| Ran::Done(Box::new(report)))
}

/// Rewrites the record of a run in progress, its `ended_at` set to now.
async fn save(env: &RunEnv, report: &mut RunReport) -> Result<()> {
    report.ended_at = env.clock.now();
    history::write(&env.lake, report).await
}

/// Bounds a future by an optional timeout.
async fn within<T>(limit: Option<StdDuration>, fut: impl Future<Output = Result<T>>) -> Result<T> {
    match limit {
        None => fut.await,
        Some(d) => tokio::time::timeout(d, fut)
            .await
            .unwrap_or_else(|_| Err(Error::Timeout(humantime::format_duration(d).to_string()))),
    }
}

#[allow(clippy::too_many_arguments)]
async fn execute(
    env: &RunEnv,
    job: &JobSpec,
    ctx: &datafusion::prelude::SessionContext,
    run_date: NaiveDate,
    run_id: &str,
    state: &mut State,
    report: &mut RunReport,
    lost: &CancellationToken,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<()> {
    let mut first_error: Option<Error> = None;
    for (i, step) in job.steps.iter().enumerate() {
        let blocked = step
            .after
            .iter()
            .find(|a| report.steps.iter().find(|r| &r.name == *a).is_none_or(|r| r.status != Status::Succeeded));
        if let Some(dep) = blocked {
            report.steps[i].status = Status::Skipped;
            report.steps[i].error = Some(format!("not run: `{dep}` did not succeed"));
            continue;
        }
        let stop = if lost.is_cancelled() {
            Some("the lease was lost")
        } else if env.shutdown.drain.is_cancelled() || env.shutdown.abort.is_cancelled() {
            Some("shutting down")
        } else {
            None
        };
        if let Some(why) = stop {
            return Err(Error::Cancelled(format!("{why} before step `{}`", step.name)));
        }
        progress(&step.name);
        report.steps[i].status = Status::Running;
        report.steps[i].started_at = Some(env.clock.now());
        save(env, report).await?;
        let outcome = attempts(env, job, step, ctx, run_date, run_id, state, report, i, lost).await;
        report.steps[i].ended_at = Some(env.clock.now());
        match outcome {
            Ok((rows_in, rows_out)) => {
                report.steps[i].status = Status::Succeeded;
                report.steps[i].rows_in = rows_in;
                report.steps[i].rows_out = rows_out;
                report.steps[i].error = None;
                info!(step = %step.name, rows = rows_out.unwrap_or(0), attempts = report.steps[i].attempts, "step done");
            }
            Err(e) => {
                report.steps[i].error = Some(error_chain(&e));
                if let Error::Cancelled(why) = &e {
                    report.steps[i].status = Status::Cancelled;
                    warn!(step = %step.name, reason = %why, "step cancelled");
                    save(env, report).await?;
                    return Err(Error::Cancelled(format!("step `{}`: {why}", step.name)));
                }
                report.steps[i].status = Status::Failed;
                warn!(step = %step.name, cause = %error_chain(&e), attempts = report.steps[i].attempts, "step failed");
                first_error.get_or_insert(Error::Step {
                    job: job.name.clone(),
                    step: step.name.clone(),
                    source: Box::new(e),
                });
            }
        }
        save(env, report).await?;
    }
    first_error.map_or(Ok(()), Err)
}

/// Runs one step, with its timeout and retries; stops early on a lost lease or a shutdown abort.
#[allow(clippy::too_many_arguments)]
async fn attempts(
    env: &RunEnv,
    job: &JobSpec,
    step: &StepSpec,
    ctx: &datafusion::prelude::SessionContext,
    run_date: NaiveDate,
    run_id: &str,
    state: &mut State,
    report: &mut RunReport,
    i: usize,
    lost: &CancellationToken,
) -> Result<Rows> {
    let delay = env.step_delays.iter().find(|(n, _)| n == &step.name).map(|(_, d)| *d);
    loop {
        report.steps[i].attempts += 1;
        let attempt = report.steps[i].attempts;
        let work = async {
            if let Some(d) = delay {
                tokio::time::sleep(d).await;
            }
            run_step(env, job, step, ctx, run_id, run_date, state, report).await
        }
        .instrument(info_span!("step", step = %step.name, attempt));
        let outcome = tokio::select! {
            biased;
            _ = env.shutdown.abort.cancelled() => Err(Error::Cancelled("the process is shutting down".into())),
            _ = lost.cancelled() => Err(Error::Cancelled("the lease was lost".into())),
            r = within(step.timeout, work) => r,
        };
        let e = match outcome {
            Ok(rows) => return Ok(rows),
            Err(e @ Error::Cancelled(_)) => return Err(e),
            Err(e) if attempt > step.retries || env.shutdown.drain.is_cancelled() => return Err(e),
            Err(e) => e,
        };
        let wait = step.backoff_before(attempt);
        warn!(step = %step.name, attempt, retry_in = %humantime::format_duration(wait), cause = %error_chain(&e),
            "attempt failed; retrying");
        report.steps[i].error = Some(format!("attempt {attempt}: {}", error_chain(&e)));
        save(env, report).await?;
        tokio::select! {
            biased;
            _ = env.shutdown.drain.cancelled() => return Err(e),
            _ = lost.cancelled() => return Err(Error::Cancelled("the lease was lost".into())),
            _ = env.clock.sleep(wait) => {}
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_step(
    env: &RunEnv,
    job: &JobSpec,
    step: &StepSpec,
    ctx: &datafusion::prelude::SessionContext,
    run_id: &str,
    run_date: NaiveDate,
    state: &mut State,
    report: &mut RunReport,
) -> Result<Rows> {
    let s = &env.settings;
    // Set before the first step, in `leased`.
    let params = state.params.ok_or_else(|| Error::data("no feature parameters"))?;
    match step.kind {
        StepKind::Checks => {
            let q =
                quality::run(ctx, &env.lake, &s.quality, run_date, params.cutoff, run_id, env.clock.as_ref()).await?;
            let rows = (Some(q.sales_rows), Some(q.excluded_rows));
            report.quality = Some(q);
            Ok(rows)
        }
        StepKind::Features => {
            let metrics = features::materialize_all(ctx, &env.lake, params, run_id, env.clock.as_ref()).await?;
            let rows = metrics.iter().map(|m| m.rows).sum();
            report.summary.features.extend(metrics);
            Ok((None, Some(rows)))
        }
        StepKind::Train => {
            let mut built = Vec::new();
            for name in &s.models {
                built.push(build_model(env, name).await?);
            }
            let panel = Arc::new(
                attach_covariates(env, params, panel_for(env, params).await?, needs_covariates(&built)).await?,
            );
            let mut fitted: Vec<Box<dyn Forecaster>> = Vec::new();
            let task = crate::progress::Task::start("models fitted", built.len() as u64);
            for model in built {
                let _fitting = crate::progress::Task::start(format!("fit {}", model.name()), 0);
                // An ensemble takes the members fitted above on this panel as they are rather
                // than fitting each again.
                let p = Arc::clone(&panel);
                let learned = state.ensemble_weights.clone();
                // A deep model continues its newest stored version when it can (a warm start).
                let start = match model.warm_starts() {
                    true => Some(warm::choose(&env.lake, model.name(), params.cutoff, &s.train).await?),
                    false => None,
                };
                let (epochs, cutoff) = (s.train.fine_tune_epochs, params.cutoff);
                let (m, fit, back, lineage) = crate::blocking::run(move || {
                    let mut model = model;
                    let refs: Vec<&dyn Forecaster> = fitted.iter().map(|m| m.as_ref()).collect();
                    let reuse = crate::models::Reuse { fitted: &refs, ensemble: learned.as_ref() };
                    let (fit, lineage) = match start {
                        Some(start) => match fit_started(model.as_mut(), &p, start, epochs, cutoff) {
                            Ok((fit, lineage)) => (Ok(fit), Some(lineage)),
                            Err(e) => (Err(e), None),
                        },
                        None => match model.fit_reusing(&p, &reuse) {
                            Ok(Some(fit)) => {
                                info!(model = model.name(), "members fitted above reused");
                                (Ok(fit), None)
                            }
                            Ok(None) => (model.fit(&p), None),
                            Err(e) => (Err(e), None),
                        },
                    };
                    (model, fit, fitted, lineage)
                })
                .await?;
                let model = m;
                fitted = back;
                let fit = fit?;
                if let Some(l) = &lineage {
                    let note = match &l.parent {
                        Some(parent) => format!("{}: warm start from {parent} ({})", model.name(), l.reason),
                        None => format!("{}: full retrain ({})", model.name(), l.reason),
                    };
                    info!(model = model.name(), mode = %l.mode, reason = %l.reason, "train");
                    report.summary.notes.push(note);
                }
                let card = store::ModelCard {
                    model: model.name().to_string(),
                    version: run_id.to_string(),
                    created_at: env.clock.now(),
                    cutoff: params.cutoff.to_string(),
                    series: fit.series,
                    observations: fit.observations,
                    seed: s.seed,
                    frequency: s.frequency.as_str().to_string(),
                    state_bytes: 0,
                    details: model.card().unwrap_or_else(
                        || serde_json::json!({ "horizon": s.horizon, "season_length": s.season_length }),
                    ),
                    lineage,
                };
                store::save(&env.lake, model.as_ref(), &card).await?;
                use_model(report, model.name(), run_id);
                report.summary.fits.push(fit);
                fitted.push(model);
                task.inc(1);
            }
            report.summary.series = panel.len();
            let obs = panel.observations() as u64;
            state.panel = Some(panel);
            state.models = fitted;
            Ok((Some(obs), Some(obs)))
        }
        StepKind::Predict => {
            if state.models.is_empty() {
                // No train step in this job: use the latest trained version of each model.
                for name in &s.models {
                    let mut model = build_model(env, name).await?;
                    let card = store::load_latest(&env.lake, model.as_mut()).await?;
                    info!(model = %name, version = %card.version, "loaded from the lake");
                    use_model(report, name, &card.version);
                    state.models.push(model);
                }
            }
            let panel = match state.panel.clone() {
                Some(p) => p,
                None => Arc::new(
                    attach_covariates(env, params, panel_for(env, params).await?, needs_covariates(&state.models))
                        .await?,
                ),
            };
            report.summary.series = panel.len();
            state.panel = Some(Arc::clone(&panel));
            let mut rows = 0;
            state.forecasts.clear();
            for model in std::mem::take(&mut state.models) {
                let p = Arc::clone(&panel);
                let (h, levels) = (s.horizon, s.quantiles.clone());
                let (model, f) = crate::blocking::run(move || {
                    let f = model.predict(&p, h, &levels);
                    (model, f)
                })
                .await?;
                let f = f?;
                rows += f.mean.len() as u64;
                state.forecasts.push(f);
                state.models.push(model);
            }
            Ok((Some(panel.observations() as u64), Some(rows)))
        }
        StepKind::Backtest => {
            let c = &s.champion;
            let windows = step.windows.unwrap_or(c.windows);
            if windows == 0 {
                return Ok((None, None));
            }
            let panel = actuals(env, params, state).await?;
            let mut registry = Registry::read(&env.lake).await?;
            if !step.always && c.decide_on == Evidence::Tracked {
                // As many forecasts per model as the backtest would score, on common ground.
                let needed = windows * s.horizon * panel.len();
                let ground = match &state.tracked {
                    Some(t) => tracking::common_ground(t, &s.models, needed),
                    None => Err("no tracked accuracy in this run".to_string()),
                };
                match ground {
                    Ok(common) => {
                        let decisions = registry.decide(&common, c, run_id, Evidence::Tracked);
                        let rows = common.models.first().map_or(0, |m| m.overall.n);
                        registry.last_tracked = Some(crate::evaluate::champion::TrackedStamp {
                            run_id: run_id.to_string(),
                            cutoff: params.cutoff,
                            origins: common.cutoffs.len(),
                            rows,
                        });
                        let note = format!(
                            "champions decided on tracked accuracy: {rows} forecast(s) per model from {} earlier run date(s), no backtest",
                            common.cutoffs.len()
                        );
                        info!(reason = %note, "backtest not needed");
                        report.summary.notes.push(note);
                        state.ensemble_weights = stored_ensemble_weights(env).await;
                        write_registry(env, &registry, params.cutoff, report).await?;
                        report.champions = decisions;
                        return Ok((Some(panel.observations() as u64), None));
                    }
                    Err(why) => {
                        info!(reason = %why, "not decided on tracked accuracy");
                        report.summary.notes.push(format!("champions not decided on tracked accuracy: {why}"));
                    }
                }
            }
            let kept = match step.always {
                true => None,
                false => registry
                    .last_backtest
                    .as_ref()
                    .and_then(|st| st.still_fresh(params.cutoff, &s.models, s.horizon, windows, c.backtest_every)),
            };
            if let Some(note) = kept {
                info!(reason = %note, "backtest skipped");
                state.ensemble_weights = stored_ensemble_weights(env).await;
                report.summary.notes.push(note);
                return Ok((None, None));
            }
            let opts = BacktestOptions { windows, horizon: s.horizon, step: s.horizon, models: s.models.clone() };
            let bt = backtest::run_in_lake(
                ctx,
                &env.lake,
                Arc::clone(&panel),
                &s.backtest_config(),
                &opts,
                run_id,
                env.clock.as_ref(),
            )
            .await;
            let bt = match bt {
                Ok((bt, pool)) => {
                    if s.models.iter().any(|m| m == "ensemble") {
                        let members = models::ensemble_members(&s.models_config());
                        let config = models::ensemble::EnsembleConfig {
                            horizon: s.horizon,
                            ..models::ensemble_config(&s.models_config())
                        };
                        state.ensemble_weights = pool.weights_at_end(&panel, &members, &config);
                        if let Some(learned) = &state.ensemble_weights {
                            // For the runs that keep them (a job without a train step, the
                            // nights that decide on tracked accuracy).
                            let lake = &env.lake;
                            models::ensemble::kept::store(lake, run_id, params.cutoff, &members, learned).await?;
                        }
                    }
                    bt
                }
                Err(Error::Data(msg)) => {
                    // Too little history for the windows: keep the champions as they are.
                    warn!(reason = %msg, "backtest skipped");
                    return Ok((Some(panel.observations() as u64), None));
                }
                Err(e) => return Err(e),
            };
            let rows = backtest::store(&env.lake, run_id, &bt, serde_json::Map::new(), env.clock.as_ref()).await?;
            let n = rows.num_rows() as u64;
            let decisions = registry.decide(&bt, c, run_id, Evidence::Backtest);
            registry.last_backtest = Some(crate::evaluate::champion::BacktestStamp {
                run_id: run_id.to_string(),
                cutoff: params.cutoff,
                models: s.models.clone(),
                horizon: s.horizon,
                windows,
            });
            write_registry(env, &registry, params.cutoff, report).await?;
            report.champions = decisions;
            Ok((Some(panel.observations() as u64), Some(n)))
        }
        StepKind::Publish => {
            let panel = state.panel.clone().ok_or_else(|| Error::data("publish needs a train step before it"))?;
            let first = state.forecasts.first().ok_or_else(|| Error::data("publish needs a predict step before it"))?;
            // Each series gets the forecast of its segment's champion (when it was forecast).
            let registry = Registry::read(&env.lake).await?;
            let by_name: std::collections::HashMap<&str, &Forecast> =
                state.forecasts.iter().map(|f| (f.model.as_str(), f)).collect();
            let mut combined = first.clone();
            let mut series_models = Vec::with_capacity(panel.len());
            for (i, y) in panel.values.iter().enumerate() {
                let segment = match s.champion.segment_by {
                    SegmentBy::None => champion::ALL.to_string(),
                    SegmentBy::DemandClass => {
                        let class = classify(y, 2 * s.season_length);
                        serde_json::to_value(class)?.as_str().unwrap_or(champion::ALL).to_string()
                    }
                };
                let chosen = registry.champion_of(&segment).and_then(|m| by_name.get(m)).copied().unwrap_or(first);
                combined.copy_series(i, chosen);
                series_models.push(chosen.model.clone());
            }
            let forecast = &combined;
            let features: Vec<_> = report
                .summary
                .features
                .iter()
                .map(|f| serde_json::json!({ "name": f.name, "cutoff": f.cutoff, "rows": f.rows, "location": f.location }))
                .collect();
            let quality = report
                .quality
                .as_ref()
                .map(|q| serde_json::json!({ "excluded_rows": q.excluded_rows, "checks": q.checks }));
            let inputs = serde_json::json!({ "tables": report.inputs, "features": features, "quality": quality });
            let release = ForecastRelease {
                run_id,
                run_date,
                cutoff: params.cutoff,
                panel: &panel,
                forecast,
                model_version: run_id,
                series_models: &series_models,
                inputs,
                champions: serde_json::to_value(&registry.segments)?,
                settings: &s.publish,
            };
            let m: PublishMetrics = publish::publish_forecasts(&env.lake, &release, env.clock.as_ref()).await?;
            if s.tracking.shadow {
                // Every model's forecast, so challengers are tracked on the same actuals.
                let clock = env.clock.as_ref();
                let kept =
                    publish::shadow::write(&env.lake, run_id, run_date, params.cutoff, &panel, &state.forecasts, clock)
                        .await?;
                report.summary.shadow = Some(kept);
            }
            report.summary.forecast_rows = m.rows;
            let mut used: Vec<&str> = series_models.iter().map(String::as_str).collect();
            used.sort_unstable();
            used.dedup();
            report.summary.model = Some(used.join(", "));
            report.summary.output = Some(m.location.clone());
            report.summary.manifest = Some(m.manifest.clone());
            report.summary.stability = Some(m.stability);
            Ok((Some(forecast.mean.len() as u64), Some(m.rows)))
        }
        StepKind::Track => {
            let panel = actuals(env, params, state).await?;
            let t = &s.tracking;
            match tracking::measure(&env.lake, &panel, run_date, t, &s.quantiles, s.season_length).await? {
                None => {
                    let note = "tracked accuracy: no forecast of an earlier run date has actuals yet".to_string();
                    info!(reason = %note, "nothing tracked");
                    report.summary.notes.push(note);
                    Ok((Some(panel.observations() as u64), None))
                }
                Some(tracked) => {
                    let m = tracking::store(&env.lake, run_id, run_date, &tracked, env.clock.as_ref()).await?;
                    let rows = m.scored_rows as u64;
                    report.summary.tracking = Some(m);
                    state.tracked = Some(tracked);
                    Ok((Some(rows), Some(rows)))
                }
            }
        }
        StepKind::Plan => {
            let clock = env.clock.as_ref();
            let m = replenish::plan(ctx, &env.lake, &s.plan, s.publish.jump_threshold, run_id, run_date, clock).await?;
            let rows = m.rows;
            report.summary.replenishment = Some(m);
            Ok((None, Some(rows)))
        }
        StepKind::Notify => {
            let fdir = layout::forecasts(run_date);
            let forecasts = dataset::read_manifest(&env.lake, &fdir)
                .await?
                .ok_or_else(|| Error::data(format!("notify: no forecasts are published for {run_date}")))?;
            let mut sets = vec![(publish::DATASET, env.lake.folder_url(&fdir), serde_json::to_value(&forecasts)?)];
            let rdir = layout::replenishment(run_date);
            if let Some(r) = dataset::read_manifest(&env.lake, &rdir).await? {
                sets.push((replenish::DATASET, env.lake.folder_url(&rdir), serde_json::to_value(&r)?));
            }
            let body = notify::payload(run_id, run_date, env.lake.root().as_str(), &sets);
            let m = notify::notify(&env.lake, &s.webhooks, &env.secrets, &body, run_id, run_date, env.clock.as_ref())
                .await?;
            let rows = (Some((m.delivered + m.pending) as u64), Some(m.delivered as u64));
            report.summary.notifications = Some(m);
            Ok(rows)
        }
        StepKind::Ingest => {
            let name = step.source.as_deref().ok_or_else(|| Error::data("an ingest step needs `source`"))?;
            let source = s.sources.get(name).ok_or_else(|| Error::Source {
                name: name.to_string(),
                message: "no [sources.NAME] table of this name in settings".into(),
            })?;
            let r = crate::ingest::pull::ingest(&env.lake, name, source, &env.secrets, env.clock.as_ref()).await?;
            // A table that had no files when the run opened the catalog is registered empty: read it again.
            let absent = report.inputs.as_ref().and_then(|c| c.get(&r.table)).is_some_and(|t| !t.present);
            if absent && r.rows_written > 0 {
                let t = crate::catalog::refresh_table(ctx, &env.lake, &r.table).await?;
                if let Some(entry) = report.inputs.as_mut().and_then(|c| c.tables.iter_mut().find(|e| e.name == t.name))
                {
                    *entry = t;
                }
            }
            let rows = (Some(r.rows_read), Some(r.rows_written));
            report.summary.ingested.push(r);
            Ok(rows)
        }
        StepKind::Factors => {
            let clock = env.clock.as_ref();
            let (mut analysis, observations) =
                crate::factors::analyze_counted(ctx, Some(&env.lake), params, &s.factors).await?;
            if s.factors.importance.enabled {
                // After the analysis: measuring materialises the features of earlier cutoffs.
                let opts = s.importance_options();
                let imp = crate::factors::importance::run(
                    ctx,
                    &env.lake,
                    &s.backtest_config(),
                    &opts,
                    params.cutoff,
                    run_id,
                    clock,
                )
                .await?;
                analysis.importance = Some(imp);
            }
            let m = crate::factors::write(&env.lake, &analysis, observations, params, run_date, run_id, clock).await?;
            let rows = (Some(m.observations), Some(m.rows));
            report.summary.factors = Some(m);
            Ok(rows)
        }
        StepKind::Report => {
            let source = crate::report::Source {
                run_id: run_id.to_string(),
                job: Some(job.name.clone()),
                run_date: Some(run_date),
            };
            let (_, files) = crate::report::run(&env.lake, s, &source, env.clock.as_ref()).await?;
            report.summary.report = Some(files.location);
            Ok((None, None))
        }
        StepKind::Sql => {
            let sql = step.sql.as_ref().ok_or_else(|| Error::data(format!("sql step `{}` has no file", step.name)))?;
            let m = super::sql::run(ctx, &env.lake, job, sql, params, run_date, run_id, env.clock.now()).await?;
            report.summary.outputs.extend(m.location);
            Ok((None, Some(m.rows)))
        }
    }
}

/// Records that the run used `version` of model `name`.
fn use_model(report: &mut RunReport, name: &str, version: &str) {
    let v = ModelVersion { name: name.to_string(), version: version.to_string() };
    if !report.models.contains(&v) {
        report.models.push(v);
    }
}

/// A model of the registry; `torchscript` with its module from the lake.
async fn build_model(env: &RunEnv, name: &str) -> Result<Box<dyn Forecaster>> {
    let s = &env.settings;
    if name != "torchscript" {
        return models::build(name, &s.models_config());
    }
    let path = layout::torchscript_model(&s.torchscript_file);
    let bytes = env.lake.get_opt(&path).await?.ok_or_else(|| {
        Error::data(format!("the torchscript model needs a TorchScript module at {}", env.lake.display(&path)))
    })?;
    models::build_torchscript(&s.models_config(), &bytes)
}

/// The panel with the covariates of the cutoff when a model reads them.
async fn attach_covariates(env: &RunEnv, params: FeatureParams, panel: Panel, needed: bool) -> Result<Panel> {
    if !needed {
        return Ok(panel);
    }
    let history = models::covariate_history(&env.settings.models_config());
    let covariates = Covariates::load(&env.lake, params.cutoff, &panel, env.settings.horizon, history).await?;
    Ok(panel.with_covariates(covariates))
}

/// Whether any of the models reads covariates.
fn needs_covariates(models: &[Box<dyn Forecaster>]) -> bool {
    models.iter().any(|m| m.needs_covariates())
}

/// The panel of the `target` feature table at the cutoff.
/// Fits `model` as `start` says: continuing the parent for at most `epochs` epochs, or from
/// scratch (also when the model finds the parent incompatible); with the lineage for its card.
fn fit_started(
    model: &mut dyn Forecaster,
    panel: &Panel,
    start: warm::Start,
    epochs: usize,
    cutoff: chrono::NaiveDate,
) -> Result<(crate::models::FitReport, warm::Lineage)> {
    match start {
        warm::Start::Full(reason) => Ok((model.fit(panel)?, warm::Lineage::full(cutoff, reason))),
        warm::Start::Warm { card, state, full_retrain_cutoff } => match model.fit_warm(panel, &state, epochs)? {
            crate::models::Warm::Continued(fit) => {
                let lineage = warm::Lineage {
                    mode: "warm".into(),
                    reason: format!("fine-tuned at most {epochs} epochs from cutoff {}", card.cutoff),
                    parent: Some(card.version.clone()),
                    full_retrain_cutoff,
                };
                Ok((fit, lineage))
            }
            crate::models::Warm::Incompatible(why) => Ok((
                model.fit(panel)?,
                warm::Lineage::full(cutoff, format!("the stored {} does not fit: {why}", card.version)),
            )),
            crate::models::Warm::Unsupported => {
                Ok((model.fit(panel)?, warm::Lineage::full(cutoff, "the model has no warm start")))
            }
        },
    }
}

/// The learned ensemble's weights as last stored, when `ensemble` is configured and its stored
/// members are the configured ones: those the newest backtest left, or else the latest stored
/// version's; their selection card says where they were kept from.
async fn stored_ensemble_weights(env: &RunEnv) -> Option<crate::models::ensemble::Learned> {
    if !env.settings.models.iter().any(|m| m == "ensemble") {
        return None;
    }
    let members = models::ensemble_members(&env.settings.models_config());
    match models::ensemble::kept::read(&env.lake, &members).await {
        Ok(Some(learned)) => return Some(learned),
        Ok(None) => {}
        Err(err) => info!(error = %err, "stored backtest weights unreadable"),
    }
    let mut e = crate::models::learned_ensemble(&env.settings.models_config()).ok()?;
    match store::load_latest(&env.lake, &mut e).await {
        Ok(card) => e.learned().map(|mut l| {
            l.card.source = format!("kept from version {} (cutoff {})", card.version, card.cutoff);
            l
        }),
        Err(err) => {
            info!(error = %err, "no stored ensemble weights to keep: the ensemble validates again");
            None
        }
    }
}

/// Writes the champion registry; a note when a registry from later evidence is kept instead.
async fn write_registry(env: &RunEnv, registry: &Registry, cutoff: NaiveDate, report: &mut RunReport) -> Result<()> {
    if !registry.write(&env.lake).await? {
        let note = format!("champions kept: the registry comes from evidence at a cutoff after {cutoff}");
        info!(reason = %note, "champions not replaced");
        report.summary.notes.push(note);
    }
    Ok(())
}

/// The run's panel of actuals at the cutoff (no covariates), read once.
async fn actuals(env: &RunEnv, params: FeatureParams, state: &mut State) -> Result<Arc<Panel>> {
    if let Some(p) = &state.actuals {
        return Ok(Arc::clone(p));
    }
    let p = Arc::new(panel_for(env, params).await?);
    state.actuals = Some(Arc::clone(&p));
    Ok(p)
}

async fn panel_for(env: &RunEnv, params: FeatureParams) -> Result<Panel> {
    let dir = layout::features(queries::TARGET.name, params.cutoff);
    let end = params.frequency.period_start(params.cutoff);
    let closures = crate::panel::Closures::read(&env.lake, params.cutoff).await?;
    let panel = Panel::read(&env.lake, &dir, params.frequency, end).await?.with_closures(closures);
    if panel.is_empty() {
        return Err(Error::data(format!("no series have sales on or before {}", params.cutoff)));
    }
    Ok(panel)
}

/// An error and its causes on one line, `: `-separated.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}
