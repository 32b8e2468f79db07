//! Blocking work (fitting models, estimating factors, simulating a demo, reading an import
//! file) moved off the async runtime's threads, inside the tracing span of the caller, so its
//! log lines carry the step, run and model fields around it.

use tokio::task::{JoinError, JoinHandle};

/// Starts `f` on the blocking thread pool in the current span.
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let span = tracing::Span::current();
    tokio::task::spawn_blocking(move || span.in_scope(f))
}

/// Runs `f` on the blocking thread pool in the current span; its result, or the task's panic.
pub async fn run<F, T>(f: F) -> Result<T, JoinError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    spawn(f).await
}
