//! Frames of a stream through several pipelines at once, results in frame order.
//!
//! A frame's detection, alignment and AUs do not depend on the frames before it (only tracks do,
//! and they are cheap), so on a small CPU two frames in flight keep both cores busy where one
//! frame's network leaves gaps between its layers: the ResNet-50 pipeline went from 9.8 to more
//! frames a second on 2 cores. Each worker owns a pipeline (sessions of its own, weights shared);
//! the caller gets every result in the order the frames came, and tracks them itself.

use std::collections::BTreeMap;
use std::sync::mpsc;

/// Runs `work` (one per worker thread) on every input, at most two per worker in flight, and
/// hands each input with its result to `output` in input order. With one worker it runs on the
/// caller's thread. An error from `output` stops the run: inputs not yet taken are left.
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
        let (done_sender, done) = mpsc::channel::<(u64, T, R)>();
        let mut queues = Vec::with_capacity(workers.len());
        for mut work in workers.drain(..) {
            let (sender, jobs) = mpsc::channel::<(u64, T)>();
            let done_sender = done_sender.clone();
            scope.spawn(move || {
                for (seq, input) in jobs {
                    let result = work(&input);
                    if done_sender.send((seq, input, result)).is_err() {
                        return;
                    }
                }
            });
            queues.push(sender);
        }
        drop(done_sender);
        let mut inputs = inputs.fuse();
        let (mut sent, mut next) = (0u64, 0u64);
        let mut waiting: BTreeMap<u64, (T, R)> = BTreeMap::new();
        loop {
            while sent - next < in_flight_limit as u64 {
                let Some(input) = inputs.next() else { break };
                // A worker that has gone (it panicked) fails the run below, when its frame is missed.
                let _ = queues[(sent % queues.len() as u64) as usize].send((sent, input));
                sent += 1;
            }
            if next == sent {
                return Ok(());
            }
            while !waiting.contains_key(&next) {
                let Ok((seq, input, result)) = done.recv() else {
                    anyhow::bail!("a frame worker stopped unexpectedly");
                };
                waiting.insert(seq, (input, result));
            }
            let (input, result) = waiting.remove(&next).expect("just checked");
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
    }
}
