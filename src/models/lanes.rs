//! Fitting several models side by side.
//!
//! On a few cores one model rarely keeps them all busy: a deep model's small matrices gain little
//! from a second libtorch thread, and the statistical models finish in seconds. [`Lanes`] runs
//! fits on up to `threads` lanes at once, each fit with its share of the threads, taking the next
//! fit as a lane frees up; results come back in the order the fits were given. Every fit stays
//! deterministic for its thread count (the deep models draw nothing from libtorch's shared
//! generator while they train without dropout, see [`super::nn::torch_lock`]).

use std::collections::VecDeque;
use std::sync::Mutex;

/// How many fits run at once, and the threads each gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lanes {
    /// Fits at once (at least 1).
    pub lanes: usize,
    /// Worker threads of each fit (at least 1).
    pub threads: usize,
}

impl Lanes {
    /// Lanes for `fits` fits on `threads` worker threads, at most `limit` at once (0: no limit
    /// beyond the threads; 1: one after another, each with every thread).
    pub fn new(threads: usize, limit: usize, fits: usize) -> Self {
        let threads = threads.max(1);
        let cap = if limit == 0 { threads } else { limit.min(threads) };
        let lanes = cap.min(fits).max(1);
        Self { lanes, threads: (threads / lanes).max(1) }
    }

    /// Runs `f` on every job, `self.lanes` at a time, started in the jobs' order; the results in
    /// the jobs' order. Each lane runs in the caller's tracing span.
    pub fn run<J, T, F>(&self, jobs: Vec<J>, f: F) -> Vec<T>
    where
        J: Send,
        T: Send,
        F: Fn(J) -> T + Sync,
    {
        self.run_starting_by(jobs, |_| 0, f)
    }

    /// [`Lanes::run`] with the jobs started in ascending order of `start` (ties in the jobs'
    /// order), e.g. the slowest first; the results still in the jobs' order.
    pub fn run_starting_by<J, T, K, S, F>(&self, jobs: Vec<J>, start: S, f: F) -> Vec<T>
    where
        J: Send,
        T: Send,
        K: Ord,
        S: Fn(&J) -> K,
        F: Fn(J) -> T + Sync,
    {
        let n = jobs.len();
        let mut queue: VecDeque<(usize, J)> = jobs.into_iter().enumerate().collect();
        queue.make_contiguous().sort_by_key(|(_, j)| start(j));
        if self.lanes <= 1 || n <= 1 {
            let mut done: Vec<(usize, T)> = queue.into_iter().map(|(i, j)| (i, f(j))).collect();
            done.sort_by_key(|(i, _)| *i);
            return done.into_iter().map(|(_, t)| t).collect();
        }
        let queue = Mutex::new(queue);
        let results: Mutex<Vec<Option<T>>> = Mutex::new((0..n).map(|_| None).collect());
        let span = tracing::Span::current();
        std::thread::scope(|scope| {
            for _ in 0..self.lanes.min(n) {
                let (queue, results, f, span) = (&queue, &results, &f, &span);
                scope.spawn(move || {
                    let _entered = span.enter();
                    loop {
                        let next = queue.lock().unwrap_or_else(|e| e.into_inner()).pop_front();
                        let Some((i, job)) = next else { break };
                        let out = f(job);
                        results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(out);
                    }
                });
            }
        });
        results.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().map(|r| r.expect("every job ran")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::Lanes;

    #[test]
    fn threads_are_shared_between_lanes() {
        assert_eq!(Lanes::new(2, 0, 6), Lanes { lanes: 2, threads: 1 });
        assert_eq!(Lanes::new(16, 0, 3), Lanes { lanes: 3, threads: 5 });
        assert_eq!(Lanes::new(8, 1, 6), Lanes { lanes: 1, threads: 8 });
        assert_eq!(Lanes::new(8, 2, 6), Lanes { lanes: 2, threads: 4 });
        assert_eq!(Lanes::new(1, 0, 6), Lanes { lanes: 1, threads: 1 });
        assert_eq!(Lanes::new(4, 0, 0), Lanes { lanes: 1, threads: 4 });
    }

    #[test]
    fn results_keep_the_order_of_the_jobs() {
        let lanes = Lanes { lanes: 3, threads: 1 };
        // Later jobs finish first; the results still come back in order.
        let out = lanes.run((0..7u64).collect(), |i| {
            std::thread::sleep(std::time::Duration::from_millis(5 * (7 - i)));
            i * 10
        });
        assert_eq!(out, vec![0, 10, 20, 30, 40, 50, 60]);
    }

    #[test]
    fn jobs_start_by_their_key_and_come_back_in_order() {
        let started = std::sync::Mutex::new(Vec::new());
        for lanes in [1, 2] {
            started.lock().unwrap().clear();
            let out = Lanes { lanes, threads: 1 }.run_starting_by(
                vec![3, 1, 2, 0],
                |j| *j,
                |j| {
                    started.lock().unwrap().push(j);
                    j * 10
                },
            );
            assert_eq!(out, vec![30, 10, 20, 0]);
            if lanes == 1 {
                assert_eq!(*started.lock().unwrap(), vec![0, 1, 2, 3]);
            }
        }
    }

    #[test]
    fn fits_run_side_by_side() {
        // Two jobs that each wait for the other to start can only finish on two lanes.
        let barrier = std::sync::Barrier::new(2);
        let out = Lanes { lanes: 2, threads: 1 }.run(vec![1, 2], |j| {
            barrier.wait();
            j
        });
        assert_eq!(out, vec![1, 2]);
    }
}
