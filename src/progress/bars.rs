//! Progress as bars on a terminal (indicatif): a spinner with the job's step, and a bar with the
//! time left for each running task.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::{Observer, Snapshot};

/// Draws the step and the running tasks on standard error.
pub struct Bars {
    multi: MultiProgress,
    step: Mutex<Option<ProgressBar>>,
    tasks: Mutex<HashMap<u64, ProgressBar>>,
}

impl Default for Bars {
    fn default() -> Self {
        Self::new()
    }
}

impl Bars {
    /// Bars on standard error.
    pub fn new() -> Self {
        Self {
            multi: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
            step: Mutex::new(None),
            tasks: Mutex::new(HashMap::new()),
        }
    }
}

impl Observer for Bars {
    fn step(&self, label: &str) {
        let mut step = self.step.lock().unwrap_or_else(|e| e.into_inner());
        if label.is_empty() {
            if let Some(pb) = step.take() {
                pb.finish_and_clear();
            }
            return;
        }
        let pb = step.get_or_insert_with(|| {
            let pb = self.multi.insert(0, ProgressBar::new_spinner());
            pb.set_style(ProgressStyle::with_template("{spinner} {elapsed:>4} {msg}").expect("valid template"));
            pb.enable_steady_tick(Duration::from_millis(120));
            pb
        });
        pb.set_message(label.to_string());
    }

    fn started(&self, task: &Snapshot) {
        let pb = self.multi.add(ProgressBar::new(task.total));
        // A task of unknown length (one model's fit) shows a spinner and the time so far.
        let style = match task.total {
            0 => ProgressStyle::with_template("  {prefix:<22} {spinner} {elapsed:>4}").expect("valid template"),
            _ => ProgressStyle::with_template("  {prefix:<22} [{bar:24}] {pos}/{len} {elapsed:>4} ETA {eta}")
                .expect("valid template")
                .progress_chars("=> "),
        };
        pb.set_style(style);
        if task.total == 0 {
            pb.enable_steady_tick(Duration::from_millis(200));
        }
        pb.set_prefix(task.label.clone());
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).insert(task.id, pb);
    }

    fn advanced(&self, task: &Snapshot) {
        if let Some(pb) = self.tasks.lock().unwrap_or_else(|e| e.into_inner()).get(&task.id) {
            pb.set_length(task.total);
            pb.set_position(task.done);
        }
    }

    fn suspend(&self, f: &mut dyn FnMut()) {
        self.multi.suspend(f)
    }

    fn finished(&self, task: &Snapshot) {
        if let Some(pb) = self.tasks.lock().unwrap_or_else(|e| e.into_inner()).remove(&task.id) {
            pb.finish_and_clear();
            self.multi.remove(&pb);
        }
    }
}
