//! Jobs: job files and the runner that executes their steps in order.

pub mod runner;
pub mod spec;

pub use runner::{RunEnv, RunReport, run_job};
pub use spec::{JobSpec, StepKind, StepSpec};
