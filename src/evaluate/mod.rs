//! Evaluation: accuracy metrics, rolling-origin backtests, and the champion of each segment.

pub mod backtest;
pub mod champion;
pub mod hierarchy;
pub mod metrics;
