//! Progress as log lines, for standard error that is not a terminal (cron, CI, `make run` piped):
//! a line when a job moves to a new step, and otherwise at most one line per interval naming the
//! step and every running task with done/total and the time left.

use std::io::Write;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Observer, Snapshot, short};

/// Writes progress lines to a writer, at most one per `every` between steps.
pub struct Lines {
    every: Duration,
    began: Instant,
    state: Mutex<State>,
}

struct State {
    out: Box<dyn Write + Send>,
    step: String,
    running: Vec<Snapshot>,
    last_line: Instant,
}

impl Lines {
    /// Progress lines on `out`, at most one per `every` while a step runs.
    pub fn new(out: Box<dyn Write + Send>, every: Duration) -> Self {
        let now = Instant::now();
        Self {
            every,
            began: now,
            state: Mutex::new(State { out, step: String::new(), running: Vec::new(), last_line: now }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A task advanced at `now`; writes a line when the last one is at least `every` old.
    pub fn advanced_at(&self, task: &Snapshot, now: Instant) {
        let mut st = self.lock();
        match st.running.iter_mut().find(|t| t.id == task.id) {
            Some(t) => *t = task.clone(),
            None => st.running.push(task.clone()),
        }
        if now.saturating_duration_since(st.last_line) < self.every {
            return;
        }
        st.last_line = now;
        let mut line = format!("[{:>6}] progress", short(now.saturating_duration_since(self.began)));
        if !st.step.is_empty() {
            line.push_str(&format!(" {}", st.step));
        }
        for t in &st.running {
            line.push_str(&format!(" · {}", t.label));
            match (t.done, t.total) {
                (0, 0) => {}
                (done, 0) => line.push_str(&format!(" {done}")),
                (done, total) => line.push_str(&format!(" {done}/{total}")),
            }
            if let Some(eta) = t.eta(now) {
                line.push_str(&format!(" (ETA {})", short(eta)));
            }
        }
        // Progress is a courtesy: a closed pipe must not fail the work.
        let _ = writeln!(st.out, "{line}");
        let _ = st.out.flush();
    }
}

impl Observer for Lines {
    fn step(&self, label: &str) {
        let now = Instant::now();
        let mut st = self.lock();
        st.step = label.to_string();
        if label.is_empty() {
            return;
        }
        st.last_line = now;
        let line = format!("[{:>6}] step {label}", short(now.saturating_duration_since(self.began)));
        let _ = writeln!(st.out, "{line}");
        let _ = st.out.flush();
    }

    fn started(&self, task: &Snapshot) {
        self.lock().running.push(task.clone());
    }

    fn advanced(&self, task: &Snapshot) {
        self.advanced_at(task, Instant::now());
    }

    fn finished(&self, task: &Snapshot) {
        self.lock().running.retain(|t| t.id != task.id);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_come_at_most_once_per_interval_with_done_total_and_time_left() {
        let buf = Shared::default();
        let lines = Lines::new(Box::new(buf.clone()), Duration::from_secs(30));
        lines.step("nightly: train");
        let t0 = Instant::now();
        let mut task = Snapshot { id: 7, label: "lstm epochs".into(), done: 0, total: 40, started: t0 };
        lines.started(&task);
        for s in 1..=20u64 {
            task.done = s;
            lines.advanced_at(&task, t0 + Duration::from_secs(5 * s));
        }
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let got: Vec<&str> = text.lines().collect();
        // The step line, then one line per 30 s of the 100 s run: at 30, 60 and 90 s.
        assert_eq!(got.len(), 4, "{text}");
        assert!(got[0].ends_with("step nightly: train"), "{text}");
        assert!(got[1].contains("nightly: train · lstm epochs 6/40 (ETA 2m50s)"), "{text}");
        assert!(got[3].contains("lstm epochs 18/40"), "{text}");
        lines.finished(&task);
        lines.advanced_at(
            &Snapshot { id: 8, label: "windows".into(), done: 1, total: 2, started: t0 },
            t0 + Duration::from_secs(500),
        );
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let last = text.lines().last().unwrap();
        assert!(last.contains("windows 1/2") && !last.contains("lstm"), "a finished task is not shown: {last}");
    }
}
