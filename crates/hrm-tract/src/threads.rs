//! Thread pools for tract's matrix products that take their threads with them when dropped.
//!
//! A rayon pool only tells its threads to stop; a library that a host process loads and unloads
//! must not leave threads (or their per-thread state) behind. So a [`Pool`] keeps its workers'
//! join handles, joins them when the last user drops it, and lets crossbeam-epoch (rayon's
//! scheduler) free the records those threads registered. A program that frees every libhrm
//! object then exits with no libhrm thread running and nothing lost (valgrind checks this).

use hrm_backend::error::panic_message;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::TractResult;

/// Runs `work` with `executor` as tract's executor on this thread; its error, or a panic inside it
/// (an allocation tract cannot make, a bug), becomes an error message.
///
/// The panic is caught inside tract's scope on purpose: the scope only restores the thread's
/// previous executor when its closure returns, so a panic unwinding through it would leave the
/// thread-local holding a handle to the pool. The pool's threads would then never be told to stop,
/// and [`Pool`]'s drop, which joins them, would wait forever (the CLI never exited, and C's
/// `hrm_runtime_free` never returned).
pub(crate) fn run_in<R>(executor: Executor, work: impl FnOnce() -> TractResult<R>) -> Result<R, String> {
    match multithread_tract_scope(executor, || catch_unwind(AssertUnwindSafe(work))) {
        Ok(result) => result.map_err(|e| format!("{e:#}")),
        Err(panic) => Err(format!("internal error: {}", panic_message(&*panic))),
    }
}

pub(crate) struct Pool {
    executor: Executor,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// `threads` threads for matrix products; none (tract runs on the caller's thread) for one.
    pub fn new(threads: usize) -> Arc<Pool> {
        if threads <= 1 {
            return Arc::new(Pool { executor: Executor::SingleThread, workers: Vec::new() });
        }
        let workers = Arc::new(Mutex::new(Vec::with_capacity(threads)));
        let spawned = workers.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("hrm-tract-{i}"))
            .spawn_handler(move |thread| {
                let mut builder = std::thread::Builder::new();
                if let Some(name) = thread.name() {
                    builder = builder.name(name.to_owned());
                }
                if let Some(size) = thread.stack_size() {
                    builder = builder.stack_size(size);
                }
                let handle = builder.spawn(|| thread.run())?;
                spawned.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(handle);
                Ok(())
            })
            .build();
        let workers = std::mem::take(&mut *workers.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        match pool {
            Ok(pool) => Arc::new(Pool { executor: Executor::MultiThread(Arc::new(pool)), workers }),
            // No threads to be had: run on the caller's thread rather than fail.
            Err(_) => Arc::new(Pool { executor: Executor::SingleThread, workers }),
        }
    }

    pub fn executor(&self) -> Executor {
        self.executor.clone()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // Dropping the last handle to the rayon pool tells its threads to finish.
        self.executor = Executor::SingleThread;
        if self.workers.is_empty() {
            return;
        }
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
        // Each exited thread left its crossbeam-epoch record marked for removal; a few
        // collections unlink and free them (each needs the epoch to move on twice).
        for _ in 0..4 {
            crossbeam_epoch::pin().flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_panic_inside_a_run_becomes_an_error_and_the_pool_still_joins() {
        let pool = Pool::new(2);
        let result = run_in(pool.executor(), || -> TractResult<usize> { panic!("allocation failed") });
        assert_eq!(result.unwrap_err(), "internal error: allocation failed");
        // The run after it works, on the same pool.
        assert_eq!(run_in(pool.executor(), || Ok(7)), Ok(7));
        let (done, joined) = mpsc::channel();
        std::thread::spawn(move || {
            drop(pool);
            done.send(()).unwrap();
        });
        joined.recv_timeout(Duration::from_secs(30)).expect("dropping the pool after a panic must not hang");
    }
}
