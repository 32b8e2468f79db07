//! Backfill: a job run for every date of a range, oldest first, resuming where it stopped.
//!
//! Each date runs like a manual run (under its lease, with its record, trigger `backfill`),
//! except that a date whose history already holds a succeeded run is skipped. So a backfill
//! that failed or was stopped on some date is resumed by running the same command again: the
//! dates before it are skipped, the failed one runs again. The first failure stops the
//! backfill, as later dates usually depend on the same fix.

use chrono::NaiveDate;
use serde::Serialize;
use tracing::{info, instrument};

use super::history::{Status, Trigger};
use super::runner::{self, Ran, RunEnv, RunRequest, Unless};
use super::spec::JobSpec;
use crate::error::{Error, Result};

/// What happened to one date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum DateOutcome {
    /// It ran and succeeded.
    Ran {
        /// The run.
        run_id: String,
    },
    /// A run of it had already succeeded.
    AlreadyDone {
        /// That run.
        run_id: String,
    },
}

/// Runs `job` for each date in `from..=to`; `on_date` hears of each date as it ends. Stops at the
/// first failure with its error (its run record says more).
#[instrument(skip_all, fields(job = %job.name, from = %from, to = %to))]
pub async fn backfill(
    env: &RunEnv,
    job: &JobSpec,
    from: NaiveDate,
    to: NaiveDate,
    progress: &(dyn Fn(&str) + Sync),
    on_date: &(dyn Fn(NaiveDate, &DateOutcome) + Sync),
) -> Result<Vec<(NaiveDate, DateOutcome)>> {
    if from > to {
        return Err(Error::data(format!("--from {from} is after --to {to}")));
    }
    let mut out = Vec::new();
    for day in from.iter_days().take_while(|d| *d <= to) {
        if env.shutdown.drain.is_cancelled() {
            return Err(Error::Cancelled(format!("backfill stopped before {day}")));
        }
        let req = RunRequest {
            run_date: Some(day),
            trigger: Trigger::Backfill,
            scheduled_for: None,
            unless: Unless::DateSucceeded,
        };
        let outcome = match runner::run(env, job, req, progress).await? {
            Ran::Done(r) => DateOutcome::Ran { run_id: r.run_id },
            Ran::AlreadyDone { run_id, status } => {
                debug_assert_eq!(status, Status::Succeeded);
                DateOutcome::AlreadyDone { run_id }
            }
            Ran::Busy(lease) => {
                return Err(Error::LeaseHeld {
                    job: job.name.clone(),
                    run_date: day,
                    holder: lease.holder,
                    expires_at: lease.expires_at,
                });
            }
        };
        info!(date = %day, outcome = ?outcome, "backfill date done");
        on_date(day, &outcome);
        out.push((day, outcome));
    }
    Ok(out)
}
