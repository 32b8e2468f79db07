//! The verbs that run jobs and read their history: `run`, `train` and `predict` (ad hoc jobs of
//! the same steps), `backfill`, `schedule`, `runs` and `jobs validate|list`. The runner does the
//! work ([`shelfcast::jobs::runner`]); these wire the process's stop signals to it and print its
//! records.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::NaiveDate;
use shelfcast::jobs::backfill::{self, DateOutcome};
use shelfcast::jobs::history::{self, RunReport, Status, Trigger};
use shelfcast::jobs::runner::{self, RunEnv, Shutdown};
use shelfcast::jobs::{JobSpec, scheduler};
use shelfcast::output::{self, Format, label};
use shelfcast::{models, progress};

use super::Cx;

pub(super) async fn run(cx: Cx, job_name: &str, date: Option<NaiveDate>, format: Format) -> anyhow::Result<()> {
    let job = JobSpec::load(&cx.settings.jobs_dir, job_name)?;
    let origin = job.origin.clone();
    run_spec(cx, job, &origin, date, format).await
}

/// A run environment for this process: its stop signals wired, and the step-delay test hook.
fn run_env(cx: Cx) -> RunEnv {
    let mut env = RunEnv::new(cx.settings, cx.lake, cx.clock);
    if let Ok(spec) = std::env::var("SHELFCAST_TEST_STEP_DELAY") {
        env.step_delays = runner::parse_step_delays(&spec);
    }
    on_stop_signals(env.shutdown.clone());
    env
}

/// SIGINT/SIGTERM: the first drains (no new run or step), the second aborts the running steps.
pub(super) fn on_stop_signals(shutdown: Shutdown) {
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

/// Runs `job` once for `date` and prints its record.
pub(super) async fn run_spec(
    cx: Cx,
    job: JobSpec,
    origin: &str,
    date: Option<NaiveDate>,
    format: Format,
) -> anyhow::Result<()> {
    let job_name = job.name.clone();
    for m in &cx.settings.models {
        if !models::KNOWN.contains(&m.as_str()) {
            bail!("unknown model `{m}` in settings (known: {})", models::KNOWN.join(", "));
        }
    }
    let (frequency, quantiles) = (cx.settings.frequency, cx.settings.quantiles.clone());
    let started = Instant::now();
    let env = run_env(cx);
    let step = |step: &str| progress::set_step(&format!("{job_name}: {step}"));
    let result = runner::run_job(&env, &job, date, Trigger::Manual, &step).await;
    progress::set_step("");
    let report = result.with_context(|| format!("job `{job_name}` ({origin}) failed"))?;
    let seconds = started.elapsed().as_secs_f64();
    Ok(output::print(format, &report, |r| output::runs::run_summary(r, origin, seconds, frequency, &quantiles))?)
}

pub(super) async fn backfill(cx: Cx, job_name: &str, from: NaiveDate, to: NaiveDate) -> anyhow::Result<()> {
    let job = JobSpec::load(&cx.settings.jobs_dir, job_name)?;
    let env = run_env(cx);
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

pub(super) async fn schedule(cx: Cx, only: &[String], grace: Duration) -> anyhow::Result<()> {
    let mut jobs = JobSpec::load_dir(&cx.settings.jobs_dir)?;
    for name in only {
        if !jobs.iter().any(|j| &j.name == name) {
            bail!("no job named `{name}` in {}", cx.settings.jobs_dir.display());
        }
    }
    if !only.is_empty() {
        jobs.retain(|j| only.contains(&j.name));
    }
    let env = run_env(cx);
    eprintln!("shelfcast schedule: {} job(s), lake {}; SIGINT/SIGTERM to stop", jobs.len(), env.lake);
    scheduler::run(env, jobs, grace).await?;
    Ok(())
}

pub(super) async fn runs(cx: &Cx, job: Option<&str>, last: usize, format: Format) -> anyhow::Result<()> {
    let runs = history::recent(&cx.lake, job, Some(last)).await?;
    let empty = format!("no runs{} in {}", job.map(|j| format!(" of job `{j}`")).unwrap_or_default(), cx.lake);
    output::print(format, &runs, |r| output::runs::runs(r, &empty))?;
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

pub(super) fn validate(cx: &Cx, files: &[PathBuf]) -> anyhow::Result<()> {
    let (settings, clock) = (&cx.settings, cx.clock.as_ref());
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
                        output::runs::JobListing::new(&j, None, clock.now()).next()
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

pub(super) async fn list(cx: &Cx, format: Format) -> anyhow::Result<()> {
    let now = cx.clock.now();
    let mut listed = Vec::new();
    for j in &JobSpec::load_dir(&cx.settings.jobs_dir)? {
        let last = history::recent(&cx.lake, Some(&j.name), Some(1)).await?.into_iter().next();
        listed.push(output::runs::JobListing::new(j, last.as_ref(), now));
    }
    Ok(output::print(format, &listed, |l| output::runs::jobs(l))?)
}
