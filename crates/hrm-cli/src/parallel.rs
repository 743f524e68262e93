//! Frames of a stream through several pipelines at once, results in frame order.
//!
//! A frame's detection, alignment and AUs do not depend on the frames before it (only tracks do,
//! and they are cheap), so two frames in flight, each on one thread, keep both cores of a small
//! CPU busy where one frame on two threads leaves gaps between its layers: a ResNet-50 video went
//! from 7.3 to 11.5 frames a second on 2 cores. Each worker owns a pipeline (sessions of its own,
//! weights shared); the caller gets every result in the order the frames came, and tracks them
//! itself.

use hrm_core::error::panic_message;
use hrm_core::pipeline::FaceResult;
use hrm_core::Runtime;
use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc;

/// What finds a frame's faces on a worker: a pipeline of `runtime`'s.
pub type FrameWork = Box<dyn FnMut(&crate::video::Frame) -> hrm_core::Result<Vec<FaceResult>> + Send>;

/// `jobs` pipelines of `runtime`, as frame workers (keeping each face's crop when asked).
pub fn frame_workers(runtime: &Runtime, jobs: u64, keep_crops: bool) -> anyhow::Result<Vec<FrameWork>> {
    (0..jobs.max(1))
        .map(|_| {
            let mut pipeline = runtime.pipeline()?;
            pipeline.keep_crops(keep_crops);
            Ok(Box::new(move |frame: &crate::video::Frame| pipeline.process(&frame.image.view())) as FrameWork)
        })
        .collect()
}

/// Runs `work` (one per worker thread) on every input, at most two per worker in flight, and
/// hands each input with its result to `output` in input order. With one worker it runs on the
/// caller's thread. An error from `output`, or a worker that panics, stops the run: inputs not
/// yet taken are left.
pub fn in_order<T, R, W>(
    mut workers: Vec<W>,
    inputs: impl Iterator<Item = T>,
    mut output: impl FnMut(T, R) -> anyhow::Result<()>,
) -> anyhow::Result<()>
where
    T: Send,
    R: Send,
    W: FnMut(&T) -> R + Send,
{
    if workers.len() <= 1 {
        let Some(work) = workers.first_mut() else { return Ok(()) };
        for input in inputs {
            let result = work(&input);
            output(input, result)?;
        }
        return Ok(());
    }
    let in_flight_limit = 2 * workers.len();
    std::thread::scope(|scope| {
        let (done_sender, done) = mpsc::channel::<(u64, T, Result<R, String>)>();
        let mut queues = Vec::with_capacity(workers.len());
        for mut work in workers.drain(..) {
            let (sender, jobs) = mpsc::channel::<(u64, T)>();
            let done_sender = done_sender.clone();
            scope.spawn(move || {
                for (seq, input) in jobs {
                    let result = catch_unwind(AssertUnwindSafe(|| work(&input))).map_err(|p| panic_message(&*p));
                    let panicked = result.is_err();
                    if done_sender.send((seq, input, result)).is_err() || panicked {
                        return;
                    }
                }
            });
            queues.push(sender);
        }
        drop(done_sender);
        let mut inputs = inputs.fuse();
        let (mut sent, mut next) = (0u64, 0u64);
        let mut waiting: BTreeMap<u64, (T, Result<R, String>)> = BTreeMap::new();
        loop {
            while sent - next < in_flight_limit as u64 {
                let Some(input) = inputs.next() else { break };
                if queues[(sent % queues.len() as u64) as usize].send((sent, input)).is_err() {
                    anyhow::bail!("a frame worker has stopped (input {sent} could not be given to it)");
                }
                sent += 1;
            }
            if next == sent {
                return Ok(());
            }
            while !waiting.contains_key(&next) {
                let Ok((seq, input, result)) = done.recv() else {
                    anyhow::bail!("the frame workers stopped before input {next} was done");
                };
                waiting.insert(seq, (input, result));
            }
            let (input, result) = waiting.remove(&next).expect("just checked");
            let result = result.map_err(|panic| anyhow::anyhow!("internal error on input {next}: {panic}"))?;
            next += 1;
            output(input, result)?;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_in_input_order_whatever_the_workers_speed() {
        let workers: Vec<_> = (0..3u64)
            .map(|w| {
                move |x: &u64| {
                    std::thread::sleep(std::time::Duration::from_millis((x * 7 + w) % 5));
                    x * 10
                }
            })
            .collect();
        let mut seen = Vec::new();
        in_order(workers, 0..40u64, |x, r| {
            seen.push((x, r));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen.len(), 40);
        assert!(seen.iter().enumerate().all(|(i, &(x, r))| x == i as u64 && r == x * 10), "{seen:?}");
        let mut count = 0;
        let err = in_order(vec![|x: &u64| *x, |x: &u64| *x], 0..100u64, |x, _| {
            count += 1;
            if x == 5 {
                anyhow::bail!("stop at 5")
            }
            Ok(())
        });
        assert_eq!((err.unwrap_err().to_string(), count), ("stop at 5".to_string(), 6));
        // A worker that panics ends the run with an error, not a hang.
        fn fails_on_7(x: &u64) -> u64 {
            assert_ne!(*x, 7, "bad frame");
            *x
        }
        let workers: Vec<fn(&u64) -> u64> = vec![fails_on_7, fails_on_7];
        let mut done = 0;
        let err = in_order(workers, 0..100u64, |_, _| {
            done += 1;
            Ok(())
        });
        assert_eq!(done, 7);
        let err = err.unwrap_err().to_string();
        assert!(err.contains("internal error on input 7: ") && err.contains("bad frame"), "{err}");
    }
}
