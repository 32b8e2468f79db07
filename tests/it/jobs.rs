use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use shelfcast::Error;
use shelfcast::clock::FixedClock;
use shelfcast::jobs::history::{self, RunReport};
use shelfcast::jobs::runner::{self, RunRequest, Unless};
use shelfcast::jobs::scheduler::{self, Scheduler};
use shelfcast::jobs::{JobSpec, RunEnv, Status, Trigger, run_job};
use shelfcast::lake::dataset::read_manifest;
use shelfcast::lake::{Lake, layout};
use shelfcast::publish;
use shelfcast::settings::SettingsFile;

use crate::common::*;

/// A cheap job: one `sql` step writing a dataset, due every day at 02:00 UTC.
const COUNT_SQL: &str = "SELECT item_id, SUM(units) AS units FROM sales WHERE date <= $cutoff GROUP BY item_id";

fn count_job(dir: &Path, extra: &str) -> JobSpec {
    write_job(
        dir,
        "count",
        &format!(
            "name = \"count\"\nschedule = \"0 0 2 * * *\"\n{extra}\n\
             [[steps]]\nname = \"count\"\nkind = \"sql\"\nfile = \"../sql/count.sql\"\noutput = \"item_units\"\n"
        ),
    )
}

fn write_job(dir: &Path, name: &str, text: &str) -> JobSpec {
    std::fs::create_dir_all(dir.join("jobs")).unwrap();
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    std::fs::write(dir.join("sql/count.sql"), COUNT_SQL).unwrap();
    std::fs::write(dir.join("sql/broken.sql"), "SELECT * FROM no_such_table").unwrap();
    let path = dir.join(format!("jobs/{name}.toml"));
    std::fs::write(&path, text).unwrap();
    JobSpec::load(&dir.join("jobs"), name).unwrap()
}

fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 4, d, h, m, 0).unwrap()
}

async fn memory_env(series: usize, clock: &FixedClock) -> (tempfile::TempDir, Lake, RunEnv) {
    let lake = Lake::in_memory();
    demo_lake(&lake, series).await;
    let dir = tempfile::tempdir().unwrap();
    let env = env(settings("memory:///", dir.path(), SettingsFile::default()), &lake, clock);
    (dir, lake, env)
}

async fn runs(lake: &Lake, job: &str) -> Vec<RunReport> {
    history::recent(lake, Some(job), None).await.unwrap()
}

/// Polls the lake (real time) until a record of `job` satisfies `pred`.
async fn wait_for(lake: &Lake, job: &str, pred: impl Fn(&RunReport) -> bool) -> RunReport {
    for _ in 0..1500 {
        if let Some(r) = history::recent(lake, Some(job), None).await.unwrap().into_iter().find(|r| pred(r)) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no run of `{job}` reached the expected state");
}

fn step_running(r: &RunReport, step: &str) -> bool {
    r.steps.iter().any(|s| s.name == step && s.status == Status::Running)
}

#[tokio::test]
async fn retries_with_backoff_then_failure_are_recorded() {
    let clock = clock();
    let (dir, lake, env) = memory_env(3, &clock).await;
    let job = write_job(
        dir.path(),
        "flaky",
        "name = \"flaky\"\n\
         [[steps]]\nname = \"broken\"\nkind = \"sql\"\nfile = \"../sql/broken.sql\"\nretries = 2\nbackoff = \"1m\"\n\
         [[steps]]\nname = \"after_broken\"\nkind = \"sql\"\nfile = \"../sql/count.sql\"\n\
         [[steps]]\nname = \"independent\"\nkind = \"sql\"\nfile = \"../sql/count.sql\"\nafter = []\n",
    );
    let err = run_job(&env, &job, Some(date("2026-04-01")), Trigger::Manual, &|_| {}).await.unwrap_err();
    assert!(matches!(&err, Error::Step { step, .. } if step == "broken"), "{err}");

    let [r] = runs(&lake, "flaky").await.try_into().unwrap();
    assert_eq!(r.status, Status::Failed);
    let broken = &r.steps[0];
    assert_eq!((broken.name.as_str(), broken.status, broken.attempts), ("broken", Status::Failed, 3));
    assert!(broken.error.as_deref().unwrap().contains("no_such_table"), "{broken:?}");
    // The backoff waited 1 + 2 minutes of the clock's time, and no real time.
    assert!(r.ended_at - r.started_at >= chrono::Duration::minutes(3), "{} → {}", r.started_at, r.ended_at);
    assert_eq!(r.steps[1].status, Status::Skipped, "it comes after the failed step");
    assert_eq!(r.steps[2].status, Status::Succeeded, "it depends on nothing");
    assert!(r.error.as_deref().unwrap().contains("no_such_table"));
    assert!(r.inputs.is_none(), "not read back");
    assert_eq!(r.params["run_date"], "2026-04-01");
}

#[tokio::test]
async fn a_step_over_its_timeout_fails_with_the_limit() {
    let clock = clock();
    let (dir, lake, mut env) = memory_env(2, &clock).await;
    let job = count_job(dir.path(), "[defaults]\ntimeout = \"50ms\"");
    env.step_delays = vec![("count".into(), Duration::from_secs(10))];
    let err = run_job(&env, &job, Some(date("2026-04-01")), Trigger::Manual, &|_| {}).await.unwrap_err();
    assert!(runner::error_chain(&err).contains("timed out after 50ms"), "{err}");
    assert_eq!(runs(&lake, "count").await[0].steps[0].status, Status::Failed);
}

#[tokio::test]
async fn two_schedulers_on_one_lake_run_a_slot_once() {
    let clock = FixedClock::new(at(1, 1, 59));
    let (dir, lake, mut env) = memory_env(3, &clock).await;
    let job = count_job(dir.path(), "");
    // The step is slow enough for both schedulers to reach the lease while it runs.
    env.step_delays = vec![("count".into(), Duration::from_millis(300))];
    let mut a = Scheduler::start(env.clone(), vec![job.clone()]).await.unwrap();
    let mut b = Scheduler::start(RunEnv { holder: "other-host:1:0".into(), ..env.clone() }, vec![job]).await.unwrap();
    clock.set(at(1, 2, 0));
    let (ra, rb) = tokio::join!(a.tick(), b.tick());
    ra.unwrap();
    rb.unwrap();
    let (ra, rb) = tokio::join!(a.wait_idle(), b.wait_idle());
    ra.unwrap();
    rb.unwrap();
    // The scheduler that found the lease held looks again after it would expire: the slot is done.
    clock.set(at(1, 2, 10));
    a.tick().await.unwrap();
    b.tick().await.unwrap();
    a.wait_idle().await.unwrap();
    b.wait_idle().await.unwrap();

    let all = runs(&lake, "count").await;
    assert_eq!(all.len(), 1, "{all:#?}");
    let r = &all[0];
    assert_eq!((r.status, r.trigger, r.scheduled_for), (Status::Succeeded, Trigger::Schedule, Some(at(1, 2, 0))));
    let manifest = read_manifest(&lake, &layout::job_output("item_units", date("2026-04-01"))).await.unwrap().unwrap();
    assert_eq!(manifest.meta["run_id"], r.run_id.as_str());
    assert_eq!(manifest.row_count, 3, "one row per item");
    let lease = shelfcast::lake::lease::current(&lake, &layout::lease("count", date("2026-04-01"))).await.unwrap();
    assert!(lease.is_none(), "lease released");
}

#[tokio::test]
async fn catch_up_after_downtime_follows_the_policy() {
    for (policy, expected) in
        [("none", vec![]), ("latest", vec!["2026-04-04"]), ("all", vec!["2026-04-02", "2026-04-03", "2026-04-04"])]
    {
        let clock = FixedClock::new(at(1, 1, 0));
        let (dir, lake, env) = memory_env(2, &clock).await;
        let job = count_job(dir.path(), &format!("catch-up = \"{policy}\""));
        // Runs on 2026-04-01 at 02:00, then the machine is down until 2026-04-04 12:00.
        let mut s = Scheduler::start(env.clone(), vec![job.clone()]).await.unwrap();
        clock.set(at(1, 2, 0));
        s.tick().await.unwrap();
        s.wait_idle().await.unwrap();
        drop(s);
        clock.set(at(4, 12, 0));
        let mut s = Scheduler::start(env, vec![job]).await.unwrap();
        s.tick().await.unwrap();
        s.wait_idle().await.unwrap();

        let mut caught: Vec<String> = runs(&lake, "count")
            .await
            .into_iter()
            .filter(|r| r.trigger == Trigger::CatchUp)
            .map(|r| {
                assert_eq!(r.status, Status::Succeeded);
                r.run_date.to_string()
            })
            .collect();
        caught.sort();
        assert_eq!(caught, expected, "catch-up = {policy}");
        // The next night is due as scheduled, whatever the policy.
        clock.set(at(5, 2, 0));
        s.tick().await.unwrap();
        s.wait_idle().await.unwrap();
        assert_eq!(runs(&lake, "count").await[0].trigger, Trigger::Schedule);
    }
}

#[tokio::test]
async fn a_scheduled_run_that_died_is_run_again_when_the_scheduler_restarts() {
    let clock = FixedClock::new(at(1, 1, 59));
    let (dir, lake, mut env) = memory_env(3, &clock).await;
    let job = count_job(dir.path(), "");
    env.step_delays = vec![("count".into(), Duration::from_secs(60))];
    let mut s = Scheduler::start(env.clone(), vec![job.clone()]).await.unwrap();
    clock.set(at(1, 2, 0));
    s.tick().await.unwrap();
    let dying = wait_for(&lake, "count", |r| step_running(r, "count")).await;
    // Dropping the scheduler drops its runs mid-step, as a crash would: the record stays
    // `running` and the lease is not released.
    drop(s);
    assert!(!lake.list(&layout::lease("count", date("2026-04-01"))).await.unwrap().is_empty());

    // Ten minutes later (the lease has lapsed) a scheduler starts again.
    clock.set(at(1, 2, 10));
    env.step_delays.clear();
    let mut s = Scheduler::start(env, vec![job]).await.unwrap();
    s.tick().await.unwrap();
    s.wait_idle().await.unwrap();

    let all = runs(&lake, "count").await;
    assert_eq!(all.len(), 2);
    let (retry, old) = (&all[0], &all[1]);
    assert_eq!(old.run_id, dying.run_id);
    assert_eq!(old.status, Status::Abandoned);
    assert!(old.error.as_deref().unwrap().contains(&retry.run_id));
    assert_eq!((retry.status, retry.trigger), (Status::Succeeded, Trigger::CatchUp));
    assert_eq!(retry.retry_of.as_deref(), Some(dying.run_id.as_str()));
    assert_eq!(retry.scheduled_for, Some(at(1, 2, 0)));
}

#[tokio::test]
async fn shutdown_lets_the_scheduler_record_the_cancelled_step_and_a_restart_reruns_it() {
    let clock = FixedClock::new(at(1, 1, 59));
    let (dir, lake, mut env) = memory_env(2, &clock).await;
    let job = count_job(dir.path(), "");
    // One night done, so the next start finds the night after missed and catches it up at once.
    let mut s = Scheduler::start(env.clone(), vec![job.clone()]).await.unwrap();
    clock.set(at(1, 2, 0));
    s.tick().await.unwrap();
    s.wait_idle().await.unwrap();
    drop(s);

    // The real loop (tokio-cron-scheduler wakes it every second), held up in the step, then stopped.
    clock.set(at(2, 2, 30));
    env.step_delays = vec![("count".into(), Duration::from_secs(60))];
    let shutdown = env.shutdown.clone();
    let task = tokio::spawn(scheduler::run(env.clone(), vec![job.clone()], Duration::from_millis(100)));
    let _ = wait_for(&lake, "count", |r| step_running(r, "count")).await;
    shutdown.drain.cancel();
    tokio::time::timeout(Duration::from_secs(30), task).await.unwrap().unwrap().unwrap();

    let r = runs(&lake, "count").await.remove(0);
    assert_eq!((r.run_date, r.trigger), (date("2026-04-02"), Trigger::CatchUp));
    assert_eq!(r.status, Status::Cancelled);
    assert_eq!(r.steps[0].status, Status::Cancelled);
    assert!(r.error.as_deref().unwrap().contains("shutting down"), "{:?}", r.error);
    let lease = shelfcast::lake::lease::current(&lake, &layout::lease("count", date("2026-04-02"))).await.unwrap();
    assert!(lease.is_none(), "lease released");

    // The next start runs the cancelled slot again.
    env.step_delays.clear();
    env.shutdown = Default::default();
    clock.set(at(2, 3, 0));
    let mut s = Scheduler::start(env, vec![job]).await.unwrap();
    s.tick().await.unwrap();
    s.wait_idle().await.unwrap();
    let again = runs(&lake, "count").await.remove(0);
    assert_eq!((again.run_date, again.status), (date("2026-04-02"), Status::Succeeded));
    assert_eq!(again.retry_of.as_deref(), Some(r.run_id.as_str()));
}

#[tokio::test]
async fn a_run_request_for_a_done_slot_or_date_is_skipped() {
    let clock = clock();
    let (dir, lake, env) = memory_env(2, &clock).await;
    let job = count_job(dir.path(), "");
    let day = Some(date("2026-04-01"));
    let first =
        RunRequest { run_date: day, trigger: Trigger::Backfill, scheduled_for: None, unless: Unless::DateSucceeded };
    assert!(matches!(runner::run(&env, &job, first, &|_| {}).await.unwrap(), runner::Ran::Done(_)));
    clock.advance(chrono::Duration::minutes(1));
    assert!(matches!(runner::run(&env, &job, first, &|_| {}).await.unwrap(), runner::Ran::AlreadyDone { .. }));
    // A manual run always runs.
    run_job(&env, &job, day, Trigger::Manual, &|_| {}).await.unwrap();
    assert_eq!(runs(&lake, "count").await.len(), 2);
}

fn output(c: &mut Command) -> (bool, String, String) {
    let out = c.output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn kill_9_during_a_step_then_a_restart_completes_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (url, lake) = local_lake(d);
    demo_lake(&lake, 4).await;
    let day = date("2026-04-01");

    // The nightly job in a separate process, held up in its train step, killed there.
    let mut child = shelfcast(d)
        .args(["run", "nightly", "--date", "2026-04-01", "--horizon", "7", "-q"])
        .env("SHELFCAST_TEST_STEP_DELAY", "train:60000")
        .spawn()
        .unwrap();
    let dying = wait_for(&lake, "nightly", |r| step_running(r, "train")).await;
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(dying.steps[1].status, Status::Succeeded, "features were written before the kill");

    // While its lease is still valid, another process may not run the date.
    let (ok, _, err) = output(shelfcast(d).args(["run", "nightly", "--date", "2026-04-01", "--horizon", "7"]));
    assert!(!ok && err.contains("already running"), "{err}");

    // Once the lease has lapsed, the next run takes over and completes the date.
    let clock = FixedClock::new(Utc::now() + chrono::Duration::minutes(10));
    let file = SettingsFile { horizon: Some(7), ..Default::default() };
    let env = env(settings(&url, d, file.clone()), &lake, &clock);
    let report = nightly(&env, day).await.unwrap();
    assert_eq!(report.retry_of.as_deref(), Some(dying.run_id.as_str()));
    let old = history::for_date(&lake, "nightly", day).await.unwrap().into_iter().find(|r| r.run_id == dying.run_id);
    assert_eq!(old.unwrap().status, Status::Abandoned);

    // Its outputs are those of a run that was never interrupted.
    let (manifest, got) = publish::read_forecasts(&lake, day).await.unwrap();
    assert_eq!(manifest.meta["run_id"], report.run_id.as_str());
    let clean_dir = tempfile::tempdir().unwrap();
    let (clean_url, clean) = local_lake(clean_dir.path());
    demo_lake(&clean, 4).await;
    nightly(&env_for(&clean_url, clean_dir.path(), &clean, file, &clock), day).await.unwrap();
    let (_, want) = publish::read_forecasts(&clean, day).await.unwrap();
    for col in ["item_id", "location_id", "target_date", "mean", "q10", "q50", "q90", "model"] {
        let a: Vec<_> = got.iter().map(|b| b.column_by_name(col).unwrap().to_data()).collect();
        let b: Vec<_> = want.iter().map(|b| b.column_by_name(col).unwrap().to_data()).collect();
        assert_eq!(a, b, "column {col}");
    }
    // Every feature dataset holds exactly the files of its last manifest and those it retired:
    // the killed run's, kept for the grace period.
    for f in &report.summary.features {
        let dir = layout::features(&f.name, f.cutoff);
        let m = read_manifest(&lake, &dir).await.unwrap().unwrap();
        let mut parts: Vec<String> = lake
            .list(&dir)
            .await
            .unwrap()
            .into_iter()
            .filter(|o| o.location.as_ref().ends_with(".parquet"))
            .map(|o| o.location.filename().unwrap().to_string())
            .collect();
        let mut named: Vec<String> =
            m.files.iter().map(|f| f.path.clone()).chain(m.retired.iter().map(|r| r.path.clone())).collect();
        parts.sort();
        named.sort();
        assert_eq!(parts, named, "{}", f.name);
        assert!(m.retired.iter().all(|r| r.path.contains(&dying.run_id)), "{}", f.name);
    }
}

fn env_for(url: &str, dir: &Path, lake: &Lake, file: SettingsFile, clock: &FixedClock) -> RunEnv {
    RunEnv::new(settings(url, dir, file), lake.clone(), Arc::new(clock.clone()))
}

#[tokio::test]
async fn backfill_resumes_and_failures_show_in_runs_and_exit_codes() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_, lake) = local_lake(d);
    demo_lake(&lake, 2).await;
    count_job(d, "");
    write_job(d, "bad", "name = \"bad\"\n[[steps]]\nname = \"broken\"\nkind = \"sql\"\nfile = \"../sql/broken.sql\"\n");

    let (ok, out, err) = output(shelfcast(d).args(["backfill", "count", "--from", "2026-03-20", "--to", "2026-03-21"]));
    assert!(ok, "{err}");
    assert_eq!(out.matches("succeeded").count(), 2, "{out}");
    // Again with a wider range: the two dates done are skipped, the new one runs.
    let (ok, out, err) = output(shelfcast(d).args(["backfill", "count", "--from", "2026-03-20", "--to", "2026-03-22"]));
    assert!(ok, "{err}");
    assert_eq!((out.matches("already done").count(), out.matches("succeeded").count()), (2, 1), "{out}");
    let backfilled = runs(&lake, "count").await;
    assert_eq!(backfilled.len(), 3);
    assert!(backfilled.iter().all(|r| r.trigger == Trigger::Backfill && r.status == Status::Succeeded));

    let (ok, out, _) = output(shelfcast(d).args(["runs", "--job", "count"]));
    assert!(ok && out.lines().filter(|l| l.contains("backfill") && l.contains("succeeded")).count() == 3, "{out}");
    // The same records for scripts.
    let (ok, out, err) = output(shelfcast(d).args(["runs", "--job", "count", "--format", "json"]));
    assert!(ok, "{err}");
    let listed: Vec<RunReport> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|r| r.trigger == Trigger::Backfill && r.status == Status::Succeeded), "{out}");

    let (ok, _, err) = output(shelfcast(d).args(["backfill", "bad", "--from", "2026-03-20", "--to", "2026-03-22"]));
    assert!(!ok && err.contains("no_such_table"), "{err}");
    assert_eq!(runs(&lake, "bad").await.len(), 1, "a backfill stops at the first failed date");
    let (ok, out, err) = output(shelfcast(d).args(["runs", "--last", "2"]));
    assert!(!ok && out.contains("failed") && err.contains("`bad`"), "{out}\n{err}");

    // Job files are checked with file and line.
    std::fs::write(
        d.join("jobs/typo.toml"),
        "name = \"typo\"\n\nschedule = \"0 0 2 * *\"\n[[steps]]\nname = \"a\"\nkind = \"checks\"\n",
    )
    .unwrap();
    let (ok, out, _) = output(shelfcast(d).args(["jobs", "validate"]));
    assert!(!ok && out.contains("typo.toml") && out.contains("line 3"), "{out}");
    assert!(out.contains("ok") && out.contains("job `count`"), "{out}");
    std::fs::remove_file(d.join("jobs/typo.toml")).unwrap();
    let (ok, out, err) = output(shelfcast(d).args(["jobs", "list"]));
    assert!(ok && out.contains("count") && out.contains("0 0 2 * * *"), "{out}{err}");
    let (ok, out, err) = output(shelfcast(d).args(["jobs", "list", "--format", "json"]));
    assert!(ok, "{err}");
    let jobs: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    let count = jobs.iter().find(|j| j["job"] == "count").unwrap();
    assert_eq!(count["schedule"], "0 0 2 * * *", "{out}");
    assert!(count["next_due"].as_str().is_some_and(|t| t.ends_with('Z') || t.contains("+00:00")), "{out}");
    assert_eq!(count["last_run"]["status"], "succeeded", "{out}");
}

#[tokio::test]
async fn kill_9_during_publish_keeps_the_previous_forecasts_visible_and_a_rerun_replaces_them_whole() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (url, lake) = local_lake(d);
    demo_lake(&lake, 4).await;
    let day = date("2026-04-01");
    let file = SettingsFile { horizon: Some(7), ..Default::default() };
    let first = nightly(&env_for(&url, d, &lake, file.clone(), &clock()), day).await.unwrap();

    // A reader polls the published forecasts the whole time: each read must be a whole dataset.
    let stop = tokio_util::sync::CancellationToken::new();
    let reader = {
        let (lake, stop) = (lake.clone(), stop.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.is_cancelled() {
                let (m, rows) = publish::read_forecasts(&lake, day).await.expect("forecasts readable throughout");
                assert_eq!(rows.iter().map(|b| b.num_rows() as u64).sum::<u64>(), m.row_count);
                let id = m.meta["run_id"].as_str().unwrap().to_string();
                if seen.last() != Some(&id) {
                    seen.push(id);
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            seen
        })
    };

    // The nightly job in a separate process, killed with SIGKILL in its publish step.
    let mut child = shelfcast(d)
        .args(["run", "nightly", "--date", "2026-04-01", "--horizon", "7", "-q"])
        .env("SHELFCAST_TEST_STEP_DELAY", "publish:60000")
        .spawn()
        .unwrap();
    let dying = wait_for(&lake, "nightly", |r| r.run_id != first.run_id && step_running(r, "publish")).await;
    child.kill().unwrap();
    child.wait().unwrap();

    // Once its lease has lapsed, a rerun takes over and publishes whole.
    let later = FixedClock::new(Utc::now() + chrono::Duration::minutes(10));
    let report = nightly(&env_for(&url, d, &lake, file, &later), day).await.unwrap();
    assert_eq!(report.retry_of.as_deref(), Some(dying.run_id.as_str()));
    stop.cancel();
    let seen = reader.await.unwrap();
    assert_eq!(
        seen,
        vec![first.run_id.clone(), report.run_id.clone()],
        "the old run, then the new one, nothing between"
    );
    let folder = layout::forecasts(day);
    let m = read_manifest(&lake, &folder).await.unwrap().unwrap();
    let parts =
        lake.list(&folder).await.unwrap().into_iter().filter(|o| o.location.as_ref().ends_with(".parquet")).count();
    assert!(m.retired.iter().all(|r| r.path.contains(&first.run_id)), "the first run's files are retired");
    assert!(parts >= m.files.len() + m.retired.len(), "the new run's files and, for the grace period, the old");
    let latest = lake.get(&layout::latest("forecasts")).await.unwrap();
    assert!(String::from_utf8_lossy(&latest).contains(&report.run_id), "{}", String::from_utf8_lossy(&latest));
}
