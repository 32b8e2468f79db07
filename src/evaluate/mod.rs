//! Evaluation: accuracy metrics and rolling-origin backtests.

pub mod backtest;
pub mod metrics;
