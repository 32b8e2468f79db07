//! Freed memory handed back to the operating system between the steps of a run.
//!
//! glibc's allocator keeps the memory a program frees in its arenas (one per thread that
//! allocated, up to eight per core) for later allocations of the same thread. After a step that
//! peaked at gigabytes (the feature queries, a backtest's fits on worker threads) the process
//! would go on holding that memory through the steps after it, whose own peak then comes on top.
//! [`release`] asks glibc to return every arena's free pages (`malloc_trim(0)`); elsewhere it
//! does nothing.

use tracing::debug;

/// Returns the allocator's free memory to the operating system, where the allocator is glibc's;
/// whether it could.
pub fn release() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim takes a plain size and only walks the allocator's own structures,
        // under its locks; it is safe to call from any thread at any time.
        let returned = unsafe { libc::malloc_trim(0) } != 0;
        debug!(returned, "allocator's free memory handed back");
        true
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    fn freed_memory_goes_back_to_the_system() {
        fn resident_kib() -> u64 {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
            line.split_whitespace().nth(1).unwrap().parse().unwrap()
        }
        // Small blocks (below the mmap threshold, so they live in an arena), touched, then freed
        // but for one in a hundred, which keeps every stretch of the arena from being trimmed
        // at its top on the spot: without a release the freed memory stays resident.
        let mut blocks: Vec<Vec<u8>> = (0..100_000).map(|i| vec![i as u8; 4_000]).collect();
        let keep: Vec<Vec<u8>> = blocks.iter_mut().step_by(100).map(std::mem::take).collect();
        drop(blocks);
        let before = resident_kib();
        assert!(release());
        let after = resident_kib();
        // About 400 MB were freed; most of it must leave the process.
        assert!(after + 250_000 < before, "resident {before} KiB before the release, {after} KiB after");
        drop(keep);
    }
}
