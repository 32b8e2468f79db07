//! Jobs: job files, when they are due, the runner that executes their steps under a lease, the
//! scheduler that starts them, and the run history they leave in the lake.
//!
//! - [`spec`]: `jobs/*.toml`, checked (cron, time zone, steps, retries, policies).
//! - [`schedule`]: pure due-time and catch-up rules.
//! - [`runner`]: one run of a job for a date: lease, steps, retries, timeouts, records.
//! - [`sql`]: the `sql` step.
//! - [`history`]: run records in `runs/`.
//! - [`backfill`]: a range of dates in order, resuming where it stopped.
//! - [`scheduler`]: the long-running loop behind `shelfcast schedule`.

pub mod backfill;
pub mod history;
pub mod runner;
pub mod schedule;
pub mod scheduler;
pub mod spec;
pub mod sql;
mod steps;

pub use history::{RunReport, Status, Trigger};
pub use runner::{RunEnv, run_job};
pub use spec::{JobSpec, StepKind, StepSpec};
