//! Progress of long work: epochs, backtest windows, model fits, series.
//!
//! Library code opens a [`Task`] with a label and a total and advances it; whoever drives the
//! process installs one [`Observer`] that shows them: [`Bars`] on a terminal, [`Lines`] (a log
//! line at most every so often, with the step, done/total and an estimate of the time left)
//! when standard error is a file or a pipe, nothing with `-q`. With no observer installed a task
//! costs one atomic load, so tests and embedders pay nothing.
//!
//! Tasks nest (a backtest window fits models, a model runs epochs); an observer sees each task's
//! start, advances and end, and the current step of a job run through [`set_step`].

mod bars;
mod lines;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub use bars::Bars;
pub use lines::Lines;

static OBSERVER: OnceLock<Arc<dyn Observer>> = OnceLock::new();
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Where a task stands, as an observer sees it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// Unique within the process.
    pub id: u64,
    /// What is being done, e.g. `lstm epochs` or `backtest windows`.
    pub label: String,
    /// Units done.
    pub done: u64,
    /// Units in all (0 when unknown).
    pub total: u64,
    /// When the task started.
    pub started: Instant,
}

impl Snapshot {
    /// Time left at the rate so far, once one unit is done and the total is known.
    pub fn eta(&self, now: Instant) -> Option<Duration> {
        if self.done == 0 || self.total == 0 || self.done >= self.total {
            return None;
        }
        let per_unit = now.saturating_duration_since(self.started).as_secs_f64() / self.done as f64;
        Some(Duration::from_secs_f64(per_unit * (self.total - self.done) as f64))
    }
}

/// Shows tasks and steps; installed once per process with [`install`].
pub trait Observer: Send + Sync {
    /// A job run moved to a new step (`nightly: train`).
    fn step(&self, label: &str);
    /// A task began.
    fn started(&self, task: &Snapshot);
    /// A task advanced.
    fn advanced(&self, task: &Snapshot);
    /// A task ended (done or abandoned).
    fn finished(&self, task: &Snapshot);
    /// Runs `f`, which prints, with the display out of its way.
    fn suspend(&self, f: &mut dyn FnMut()) {
        f()
    }
}

/// Installs the process's observer; false when one already is (the first one stays).
pub fn install(observer: Arc<dyn Observer>) -> bool {
    OBSERVER.set(observer).is_ok()
}

/// Tells the installed observer, if any, that a job run moved to a new step.
pub fn set_step(label: &str) {
    if let Some(o) = OBSERVER.get() {
        o.step(label);
    }
}

/// Runs `f`, which prints to the terminal, with any progress display out of its way.
pub fn suspend(mut f: impl FnMut()) {
    match OBSERVER.get() {
        Some(o) => o.suspend(&mut f),
        None => f(),
    }
}

/// A unit of long work being counted; ends when dropped.
pub struct Task {
    inner: Option<(Arc<dyn Observer>, Mutex<Snapshot>)>,
}

impl Task {
    /// Starts a task of `total` units (0 when unknown) reported to the installed observer.
    pub fn start(label: impl Into<String>, total: u64) -> Self {
        match OBSERVER.get() {
            Some(o) => Self::start_with(o.clone(), label, total),
            None => Self { inner: None },
        }
    }

    /// Starts a task reported to `observer`.
    pub fn start_with(observer: Arc<dyn Observer>, label: impl Into<String>, total: u64) -> Self {
        let snap = Snapshot {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            label: label.into(),
            done: 0,
            total,
            started: Instant::now(),
        };
        observer.started(&snap);
        Self { inner: Some((observer, Mutex::new(snap))) }
    }

    /// Marks `n` more units done.
    pub fn inc(&self, n: u64) {
        self.update(|s| s.done = s.done.saturating_add(n));
    }

    /// Sets the total, e.g. when it becomes known after the start.
    pub fn set_total(&self, total: u64) {
        self.update(|s| s.total = total);
    }

    fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        if let Some((observer, snap)) = &self.inner {
            let snap = {
                let mut s = snap.lock().unwrap_or_else(|e| e.into_inner());
                f(&mut s);
                s.clone()
            };
            observer.advanced(&snap);
        }
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        if let Some((observer, snap)) = &self.inner {
            let snap = snap.lock().unwrap_or_else(|e| e.into_inner()).clone();
            observer.finished(&snap);
        }
    }
}

/// `1h02m`, `3m05s`, `42s`: a duration as a person reads it in a progress line.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Record(Mutex<Vec<String>>);

    impl Observer for Record {
        fn step(&self, label: &str) {
            self.0.lock().unwrap().push(format!("step {label}"));
        }
        fn started(&self, t: &Snapshot) {
            self.0.lock().unwrap().push(format!("start {} {}/{}", t.label, t.done, t.total));
        }
        fn advanced(&self, t: &Snapshot) {
            self.0.lock().unwrap().push(format!("at {} {}/{}", t.label, t.done, t.total));
        }
        fn finished(&self, t: &Snapshot) {
            self.0.lock().unwrap().push(format!("end {} {}/{}", t.label, t.done, t.total));
        }
    }

    #[test]
    fn a_task_reports_its_start_advances_and_end() {
        let rec = Arc::new(Record::default());
        {
            let t = Task::start_with(rec.clone(), "epochs", 3);
            t.inc(1);
            t.inc(1);
        }
        let seen = rec.0.lock().unwrap().clone();
        assert_eq!(seen, ["start epochs 0/3", "at epochs 1/3", "at epochs 2/3", "end epochs 2/3"]);
    }

    #[test]
    fn the_time_left_follows_the_rate_so_far() {
        let t0 = Instant::now();
        let s = Snapshot { id: 1, label: "x".into(), done: 2, total: 10, started: t0 };
        let eta = s.eta(t0 + Duration::from_secs(20)).unwrap();
        assert_eq!(eta.as_secs(), 80);
        assert!(Snapshot { done: 0, ..s.clone() }.eta(t0).is_none());
        assert!(Snapshot { total: 0, ..s }.eta(t0).is_none());
        assert_eq!(short(Duration::from_secs(185)), "3m05s");
        assert_eq!(short(Duration::from_secs(3720)), "1h02m");
    }
}
