//! Evaluation: rolling-origin backtests, the champion of each segment, hierarchical scores; the
//! accuracy metrics themselves are [`crate::metrics`] (re-exported here), which models read too.

pub mod backtest;
pub mod champion;
pub mod hierarchy;
pub mod published;
pub mod tracking;
pub mod window;
pub use crate::metrics;
