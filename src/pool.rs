//! The binary's rayon pool, set up for a VM where a sleeping worker takes
//! from 30 µs to milliseconds to wake: the main thread is one of the workers
//! (a fork starts on its share at once), and while a command runs the other
//! workers spin instead of sleeping between a step's parallel phases. Only
//! scheduling changes: every split and reduction is fixed by the sizes, so
//! the results are the same bits with or without either.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// The global pool, with this thread as one of its workers.
pub fn build_global() -> Result<(), rayon::ThreadPoolBuildError> {
    rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global()
}

/// Runs `f` (on this thread, a worker of the pool) while every other worker
/// spins on `rayon::yield_now`, which runs any work this thread forks. (A
/// spinner that gave its core back with `sched_yield` made a run twice as
/// slow on this VM; with more workers than cores the OS's time slices
/// still share them out.) Not for a caller that waits on another process:
/// the spinners would take its cores.
pub fn with_awake_workers<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let others = rayon::current_num_threads().saturating_sub(1);
    let (started, done) = (AtomicUsize::new(0), AtomicBool::new(false));
    rayon::scope(|scope| {
        for _ in 0..others {
            scope.spawn(|_| {
                started.fetch_add(1, Ordering::AcqRel);
                while !done.load(Ordering::Acquire) {
                    if rayon::yield_now() != Some(rayon::Yield::Executed) {
                        std::hint::spin_loop();
                    }
                }
            });
        }
        // Every spinner must be running on another worker before `f` forks:
        // one still queued here could be taken by this thread while it waits
        // inside `f`, and would never return.
        while started.load(Ordering::Acquire) < others {
            std::hint::spin_loop();
        }
        // The spinners stop however `f` ends: the scope waits for them
        // before it returns, or before it passes a panic on.
        let _stop = Stop(&done);
        f()
    })
}

/// Sets the flag when dropped.
struct Stop<'a>(&'a AtomicBool);

impl Drop for Stop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A panic inside `f` reaches the caller instead of leaving the scope
    /// waiting for spinners that never stop (which would hang: the test
    /// gives it 20 s).
    #[test]
    fn a_panic_inside_stops_the_spinners() {
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap();
            let caught = pool
                .install(|| std::panic::catch_unwind(|| with_awake_workers(|| panic!("inside"))));
            let after = pool.install(|| with_awake_workers(|| rayon::join(|| 1, || 2)));
            sender.send((caught.is_err(), after)).unwrap();
        });
        let outcome = receiver.recv_timeout(std::time::Duration::from_secs(20));
        assert_eq!(outcome, Ok((true, (1, 2))), "the spinners did not stop");
    }
}
