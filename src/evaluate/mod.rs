//! Evaluation: forecast accuracy metrics.

pub mod metrics;
