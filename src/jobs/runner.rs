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
//!    What each step kind does lives in its own file under `jobs/steps/`.
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

use super::history::{self, RunReport, RunSummary, Status, StepRecord, Trigger};
use super::spec::{JobSpec, StepSpec};
use super::steps::{Rows, State};
use crate::clock::Clock;
use crate::engine;
use crate::error::{Error, Result};
use crate::features::{self};
use crate::lake::lease::{Acquired, Lease, LeaseState};
use crate::lake::{Lake, layout};
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
        // What the step freed goes back to the system, so the next step's peak does not come on
        // top of it.
        crate::trim::release();
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
            super::steps::run(env, job, step, ctx, run_id, run_date, state, report).await
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
