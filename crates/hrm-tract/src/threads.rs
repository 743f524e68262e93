//! Thread pools for tract's matrix products that take their threads with them when dropped.
//!
//! A rayon pool only tells its threads to stop; a library that a host process loads and unloads
//! must not leave threads (or their per-thread state) behind. So a [`Pool`] keeps its workers'
//! join handles, joins them when the last user drops it, and lets crossbeam-epoch (rayon's
//! scheduler) free the records those threads registered. A program that frees every libhrm
//! object then exits with no libhrm thread running and nothing lost (valgrind checks this).

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use tract_linalg::multithread::Executor;

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
