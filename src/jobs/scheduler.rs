//! The scheduler behind `shelfcast schedule`: starts each job's runs when they are due, until
//! told to stop.
//!
//! **Waking.** `tokio-cron-scheduler` runs one cron entry, every second in UTC, whose only
//! effect is to wake the loop; what is due is decided by [`schedule::plan`] in each job's own
//! time zone. The crate's own time-zone support fixes the zone's UTC offset when an entry is
//! created, so a 02:00 Europe/Berlin entry would fire at 01:00 or 03:00 local after the next
//! DST change; deciding due times ourselves keeps them right and testable with a fixed clock.
//!
//! **State.** At start, each job's cursor (its last slot, and whether that run finished) is
//! read from the run history, so missed slots follow the job's `catch-up` policy and a run
//! that died is started again. Afterwards the cursor lives in memory.
//!
//! **Runs.** Each due slot is started as a task through the runner, which takes the date's
//! lease: when two schedulers share a lake, one runs the slot and the other finds the lease
//! held. That one looks again once the lease would expire: if the run finished, the history
//! says the slot is done; if its process died, the lease has lapsed and the run is taken over.
//! A slot due while the job's previous run (started by this scheduler) still goes on is
//! queued or skipped (`concurrency`); a skipped slot leaves a `skipped` record. Missed slots
//! being caught up are always queued.
//!
//! **Stopping.** [`Shutdown::drain`] (the first SIGTERM/SIGINT) stops starting runs and steps;
//! running steps may finish within the grace period, after which [`Shutdown::abort`] cancels
//! them. Either way their runs are recorded `cancelled`, and the next start runs them again.
//!
//! [`Shutdown::drain`]: super::runner::Shutdown::drain
//! [`Shutdown::abort`]: super::runner::Shutdown::abort

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Notify;
use tokio::task::{Id, JoinSet};
use tokio_cron_scheduler::{Job as CronEntry, JobScheduler};
use tracing::{error, info, warn};

use super::history::{self, RunReport, RunSummary, Status, StepRecord};
use super::runner::{self, Ran, RunEnv, RunRequest, Unless};
use super::schedule::{self, Concurrency, Cursor, Due};
use super::spec::JobSpec;
use crate::error::{Error, Result};

/// How often the loop wakes, as a cron expression (every second).
const WAKE: &str = "* * * * * *";

struct JobState {
    spec: Arc<JobSpec>,
    cursor: Cursor,
    /// The slot of the run this scheduler has going, if any.
    running: Option<Due>,
    queue: VecDeque<Due>,
    /// Slots found running elsewhere, to look at again after the instant given.
    rechecks: Vec<(Due, DateTime<Utc>)>,
}

type Outcome = (usize, Due, Result<Ran>);

/// Due-slot bookkeeping and the runs in flight; driven by [`Scheduler::tick`].
pub struct Scheduler {
    env: RunEnv,
    jobs: Vec<JobState>,
    started: DateTime<Utc>,
    tasks: JoinSet<Outcome>,
    in_flight: HashMap<Id, (usize, Due)>,
}

impl std::fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scheduler").field("jobs", &self.jobs.len()).field("running", &self.tasks.len()).finish()
    }
}

impl Scheduler {
    /// A scheduler for the jobs that have a schedule, starting now by the environment's clock;
    /// reads each job's cursor from the run history.
    pub async fn start(env: RunEnv, jobs: Vec<JobSpec>) -> Result<Self> {
        let started = env.clock.now();
        let mut states = Vec::new();
        for spec in jobs {
            let Some(schedule) = &spec.schedule else {
                info!(job = %spec.name, "no schedule; runs only by hand");
                continue;
            };
            let cursor = history::cursor(&env.lake, &spec.name).await?;
            info!(
                job = %spec.name,
                schedule = schedule.expr(),
                timezone = %schedule.tz(),
                last_slot = ?cursor.last_slot,
                unfinished = cursor.unfinished,
                next = ?schedule.next_after(started),
                "job loaded"
            );
            states.push(JobState {
                spec: Arc::new(spec),
                cursor,
                running: None,
                queue: VecDeque::new(),
                rechecks: Vec::new(),
            });
        }
        Ok(Self { env, jobs: states, started, tasks: JoinSet::new(), in_flight: HashMap::new() })
    }

    /// Jobs with a schedule.
    pub fn jobs(&self) -> impl Iterator<Item = &JobSpec> {
        self.jobs.iter().map(|j| j.spec.as_ref())
    }

    /// Runs in flight.
    pub fn running(&self) -> usize {
        self.tasks.len()
    }

    /// The next slot of any job after now.
    pub fn next_due(&self) -> Option<(String, DateTime<Utc>)> {
        let now = self.env.clock.now();
        self.jobs
            .iter()
            .filter_map(|j| j.spec.schedule.as_ref()?.next_after(now).map(|t| (j.spec.name.clone(), t)))
            .min_by_key(|(_, t)| *t)
    }

    /// Reaps finished runs, then starts what is due now: slots, queued slots, rechecks.
    pub async fn tick(&mut self) -> Result<()> {
        while let Some(res) = self.tasks.try_join_next_with_id() {
            self.finished(res).await?;
        }
        if self.env.shutdown.drain.is_cancelled() {
            return Ok(());
        }
        let now = self.env.clock.now();
        for i in 0..self.jobs.len() {
            let job = &mut self.jobs[i];
            let Some(schedule) = job.spec.schedule.as_ref() else { continue };
            let plan = schedule::plan(schedule, job.spec.catch_up, &job.cursor, self.started, now);
            job.cursor = Cursor { last_slot: plan.cursor, unfinished: false };
            for slot in &plan.skipped {
                info!(job = %job.spec.name, slot = %slot, "missed slot left out (catch-up policy)");
            }
            let (ready, later): (Vec<_>, Vec<_>) =
                std::mem::take(&mut job.rechecks).into_iter().partition(|(_, t)| *t <= now);
            job.rechecks = later;
            for due in plan.due.into_iter().chain(ready.into_iter().map(|(d, _)| d)) {
                self.launch(i, due).await?;
            }
        }
        Ok(())
    }

    /// Waits for every run in flight (and the queued runs they release) to end.
    pub async fn wait_idle(&mut self) -> Result<()> {
        while let Some(res) = self.tasks.join_next_with_id().await {
            self.finished(res).await?;
        }
        Ok(())
    }

    async fn launch(&mut self, i: usize, due: Due) -> Result<()> {
        let job = &mut self.jobs[i];
        if let Some(current) = job.running {
            if current == due || job.queue.contains(&due) {
                return Ok(());
            }
            if job.spec.concurrency == Concurrency::Queue || due.trigger == history::Trigger::CatchUp {
                info!(job = %job.spec.name, slot = %due.slot, running = %current.slot, "queued behind the running slot");
                job.queue.push_back(due);
            } else {
                warn!(job = %job.spec.name, slot = %due.slot, running = %current.slot,
                    "slot skipped: the previous run still goes on (concurrency = skip)");
                let record = skipped_record(&self.env, &job.spec, due, current);
                history::write(&self.env.lake, &record).await?;
            }
            return Ok(());
        }
        job.running = Some(due);
        info!(job = %job.spec.name, slot = %due.slot, run_date = %due.run_date, trigger = ?due.trigger, "slot due");
        let (env, spec) = (self.env.clone(), Arc::clone(&job.spec));
        let req = RunRequest {
            run_date: Some(due.run_date),
            trigger: due.trigger,
            scheduled_for: Some(due.slot),
            unless: Unless::SlotDone(due.slot),
        };
        let handle = self.tasks.spawn(async move { (i, due, runner::run(&env, &spec, req, &|_| {}).await) });
        self.in_flight.insert(handle.id(), (i, due));
        Ok(())
    }

    async fn finished(&mut self, res: std::result::Result<(Id, Outcome), tokio::task::JoinError>) -> Result<()> {
        let (i, due, outcome) = match res {
            Ok((id, (i, due, outcome))) => {
                self.in_flight.remove(&id);
                (i, due, outcome)
            }
            Err(e) => {
                let Some((i, due)) = self.in_flight.remove(&e.id()) else { return Ok(()) };
                (i, due, Err(Error::Join(e)))
            }
        };
        let job = &mut self.jobs[i];
        let name = job.spec.name.clone();
        job.running = None;
        match outcome {
            Ok(Ran::Done(r)) => info!(job = %name, run_id = %r.run_id, slot = %due.slot, "run succeeded"),
            Ok(Ran::AlreadyDone { run_id, status }) => {
                info!(job = %name, slot = %due.slot, by = %run_id, status = ?status, "slot already done")
            }
            Ok(Ran::Busy(lease)) => {
                let at = lease.expires_at + chrono::Duration::seconds(1);
                info!(job = %name, slot = %due.slot, holder = %lease.holder, recheck_at = %at,
                    "another process runs this slot; will look again when its lease would expire");
                job.rechecks.push((due, at));
            }
            Err(Error::Cancelled(why)) => warn!(job = %name, slot = %due.slot, reason = %why, "run cancelled"),
            Err(e) => error!(job = %name, slot = %due.slot, cause = %runner::error_chain(&e), "run failed"),
        }
        if !self.env.shutdown.drain.is_cancelled()
            && let Some(next) = self.jobs[i].queue.pop_front()
        {
            self.launch(i, next).await?;
        }
        Ok(())
    }
}

/// The record of a slot dropped because the job's previous run still went on.
fn skipped_record(env: &RunEnv, job: &JobSpec, due: Due, running: Due) -> RunReport {
    let now = env.clock.now();
    let reason = format!("the run for the slot of {} was still going (concurrency = skip)", running.slot);
    RunReport {
        run_id: runner::new_run_id(&job.name, now),
        job: job.name.clone(),
        run_date: due.run_date,
        cutoff: None,
        trigger: due.trigger,
        scheduled_for: Some(due.slot),
        retry_of: None,
        holder: env.holder.clone(),
        status: Status::Skipped,
        started_at: now,
        ended_at: now,
        params: Default::default(),
        steps: job.steps.iter().map(|s| StepRecord::new(s, Status::Skipped)).collect(),
        inputs: None,
        models: Vec::new(),
        quality: None,
        champions: Vec::new(),
        summary: RunSummary::default(),
        error: Some(reason),
    }
}

fn cron_err(e: tokio_cron_scheduler::JobSchedulerError) -> Error {
    Error::data(format!("cron scheduler: {e:?}"))
}

/// Runs the scheduler until `env.shutdown.drain` is cancelled; then waits up to `grace` for
/// running steps before cancelling them through `env.shutdown.abort`, and returns once every
/// run has recorded how it ended.
pub async fn run(env: RunEnv, jobs: Vec<JobSpec>, grace: Duration) -> Result<()> {
    let mut sched = Scheduler::start(env.clone(), jobs).await?;
    if sched.jobs.is_empty() {
        return Err(Error::data("no job has a schedule"));
    }
    let wake = Arc::new(Notify::new());
    let mut cron = JobScheduler::new().await.map_err(cron_err)?;
    let w = Arc::clone(&wake);
    let entry = CronEntry::new_async(WAKE, move |_, _| {
        let w = Arc::clone(&w);
        Box::pin(async move { w.notify_one() })
    })
    .map_err(cron_err)?;
    cron.add(entry).await.map_err(cron_err)?;
    cron.start().await.map_err(cron_err)?;
    info!(jobs = sched.jobs.len(), next = ?sched.next_due(), "scheduler started");

    let drain = env.shutdown.drain.clone();
    loop {
        if let Err(e) = sched.tick().await {
            // A lake hiccup must not stop the scheduler: try again at the next wake.
            error!(cause = %runner::error_chain(&e), "scheduler tick failed");
        }
        tokio::select! {
            _ = drain.cancelled() => break,
            _ = wake.notified() => {}
            Some(res) = sched.tasks.join_next_with_id() => {
                if let Err(e) = sched.finished(res).await {
                    error!(cause = %runner::error_chain(&e), "recording a finished run failed");
                }
            }
        }
    }

    info!(running = sched.running(), grace = %humantime::format_duration(grace), "shutting down: no new runs or steps");
    if let Err(e) = cron.shutdown().await {
        warn!(cause = ?e, "cron scheduler did not shut down cleanly");
    }
    let abort = env.shutdown.abort.clone();
    let grace_timer = async {
        tokio::time::sleep(grace).await;
        warn!("grace period over: cancelling the running steps");
        abort.cancel();
        std::future::pending::<()>().await
    };
    tokio::select! {
        r = sched.wait_idle() => r?,
        _ = grace_timer => {}
    }
    // After an abort the runs end promptly, recording themselves cancelled.
    sched.wait_idle().await?;
    info!("scheduler stopped");
    Ok(())
}
