//! Keeping the thread pool awake through a batch's decoding.
//!
//! A decoding step runs about fifty short parallel sections (each matrix product, each
//! attention), with a little serial work between them. Rayon's idle threads yield a few dozen
//! times and then sleep, and waking a sleeping thread costs tens of microseconds on a virtual
//! machine: about twenty sleeps and wake-ups per step, each delaying the section that needs the
//! thread. For the duration of a batch, [`hot`] keeps every other thread of the pool looking for
//! work instead (what OpenMP runtimes do with an active wait policy): they run the same jobs,
//! only without falling asleep between them.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a thread polls without finding work before it goes back to rayon's own waiting
/// (far longer than the serial work between two parallel sections of a decoding step).
const IDLE: Duration = Duration::from_millis(2);

/// Runs `f` inside the current thread pool while its other threads poll for work; returns
/// `f`'s result. With one thread it just runs `f`.
pub fn hot<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_num_threads() < 2 {
        return f();
    }
    let done = AtomicBool::new(false);
    // Inside the pool (a worker thread runs `f`), so that the parallel sections of `f` are
    // pushed to this worker's queue and stolen, not injected from outside.
    rayon::scope(|s| {
        let caller = rayon::current_thread_index();
        let done = &done;
        s.spawn_broadcast(move |_, ctx| {
            // The thread running `f` must not wait here for `f` to end: it would never end.
            if Some(ctx.index()) == caller {
                return;
            }
            // Bounded: a poller can start on top of a job that waits for another job (rayon runs
            // other work while it waits). If `f` comes to need that job, nothing is left to do
            // here; the poller then gives up after IDLE and the job below it goes on.
            let mut idle_since: Option<Instant> = None;
            let mut idle_rounds = 0u32;
            while !done.load(Ordering::Acquire) {
                match rayon::yield_now() {
                    Some(rayon::Yield::Executed) => {
                        idle_since = None;
                        idle_rounds = 0;
                    }
                    Some(rayon::Yield::Idle) => {
                        // The clock is read every 64 idle rounds only.
                        idle_rounds = idle_rounds.wrapping_add(1);
                        if idle_rounds.is_multiple_of(64) {
                            let since = *idle_since.get_or_insert_with(Instant::now);
                            if since.elapsed() > IDLE {
                                break;
                            }
                        }
                        std::hint::spin_loop();
                    }
                    None => break,
                }
            }
        });
        // Set even if `f` panics, so that the pollers stop and the panic reaches the caller.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _stop = Stop(done);
        f()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rayon::prelude::*;

    #[test]
    fn runs_the_work_and_returns_in_pools_of_any_size() {
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let sum = pool.install(|| {
                hot(|| {
                    (0..100)
                        .map(|i| (0..1000u64).into_par_iter().map(|x| x * i).sum::<u64>())
                        .sum::<u64>()
                })
            });
            assert_eq!(sum, 4950 * 499_500, "{threads} threads");
        }
    }

    /// Several callers at once, from outside the pool, with nested parallel work: every call
    /// ends (a poller sitting on top of a job that another call needs gives up). Without that
    /// bound this hangs in about one run in three; a hang fails the test after a minute.
    #[test]
    fn concurrent_callers_all_finish() {
        let pool = std::sync::Arc::new(
            rayon::ThreadPoolBuilder::new()
                .num_threads(2)
                .build()
                .unwrap(),
        );
        let rounds = 300u64;
        let work = move |t: u64, i: u64| {
            (0..64u64)
                .into_par_iter()
                .map(|x| (0..x).into_par_iter().map(|y| y + t + i).sum::<u64>())
                .sum::<u64>()
        };
        let (tx, rx) = std::sync::mpsc::channel();
        for t in 0..4u64 {
            let (pool, tx) = (pool.clone(), tx.clone());
            std::thread::spawn(move || {
                let sum: u64 = (0..rounds)
                    .map(|i| pool.install(|| hot(|| work(t, i))))
                    .sum();
                let _ = tx.send((t, sum));
            });
        }
        for _ in 0..4 {
            let (t, sum) = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("a caller never finished: the pool is deadlocked");
            let want: u64 = (0..rounds)
                .map(|i| {
                    (0..64u64)
                        .map(|x| (0..x).map(|y| y + t + i).sum::<u64>())
                        .sum::<u64>()
                })
                .sum();
            assert_eq!(sum, want);
        }
    }

    #[test]
    fn a_panic_in_the_work_reaches_the_caller_and_the_pool_keeps_working() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pool.install(|| hot(|| panic!("boom")))
        }));
        assert!(r.is_err());
        assert_eq!(pool.install(|| hot(|| 7)), 7);
    }
}
