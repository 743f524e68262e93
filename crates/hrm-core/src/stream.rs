//! Streams: the frames of one video or camera, in order. Each frame goes through the same
//! pipeline as a photograph; a stream adds what only a sequence has: every face's track id, its
//! AU probabilities smoothed over time when configured, and HRM's atypicality score over the
//! track's last frames.

use crate::atypicality::{Atypicality, ScoreWindow};
use crate::config::{SmoothingKind, StreamConfig};
use crate::error::Result;
use crate::image::ImageView;
use crate::pipeline::{FaceResult, Pipeline};
use crate::track::{Tracker, TrackerConfig};
use std::collections::HashMap;
use std::sync::Arc;

/// The time step assumed when a frame's timestamp does not move forward (a source without
/// timestamps): one frame at 30 fps.
const DEFAULT_STEP_SECONDS: f64 = 1.0 / 30.0;

/// The atypicality model, and where each of its AUs is among the AU model's.
#[derive(Clone)]
pub struct AtypicalityInputs {
    pub model: Arc<Atypicality>,
    /// For each AU the regressor reads, its index in the AU model's results.
    pub columns: Vec<usize>,
}

/// What a stream keeps per track.
#[derive(Default)]
struct TrackState {
    window: ScoreWindow,
    /// The smoothed probabilities and their smoothed speeds (One-Euro), per AU; empty before the
    /// track's first estimate.
    smoothed: Vec<f32>,
    speed: Vec<f32>,
    /// When the track was last estimated, in seconds.
    last_time: Option<f64>,
}

/// A pipeline and the [`Tracks`] of the faces it sees: what `hrm_stream` is.
pub struct Stream {
    pipeline: Pipeline,
    tracks: Tracks,
}

impl Stream {
    pub fn new(pipeline: Pipeline, tracks: Tracks) -> Stream {
        Stream { pipeline, tracks }
    }

    /// Forgets every track (a cut, another camera); track ids go on increasing, never reused.
    pub fn reset(&mut self) {
        self.tracks.reset();
    }

    /// The next frame, `timestamp` seconds into the stream: its faces as [`Pipeline::process`]
    /// gives them, each with its `track_id`, smoothed AUs when configured, and `atypicality`
    /// once its track has a full window of frames with AUs.
    pub fn push(&mut self, frame: &ImageView<'_>, timestamp: f64) -> Result<Vec<FaceResult>> {
        let faces = self.pipeline.process(frame)?;
        self.tracks.track(faces, timestamp)
    }
}

/// The faces of a stream's frames followed over time, without the pipeline that finds them:
/// track ids, smoothing and the atypicality score. The frames' faces may come from pipelines on
/// other threads ([`Stream`] holds one of its own), but must come in frame order.
pub struct Tracks {
    tracker: Tracker,
    config: StreamConfig,
    /// Per AU of the AU model, for the presence of smoothed probabilities.
    thresholds: Vec<f32>,
    atypicality: Option<AtypicalityInputs>,
    states: HashMap<u64, TrackState>,
}

impl Tracks {
    /// `thresholds` holds one value per AU of the AU model.
    pub fn new(config: StreamConfig, thresholds: Vec<f32>, atypicality: Option<AtypicalityInputs>) -> Tracks {
        let tracker =
            Tracker::new(TrackerConfig { max_missing: config.max_missing, max_distance: config.max_distance });
        Tracks { tracker, config, thresholds, atypicality, states: HashMap::new() }
    }

    /// Forgets every track (a cut, another camera, the next video); track ids go on increasing,
    /// never reused.
    pub fn reset(&mut self) {
        self.tracker.reset();
        self.states.clear();
    }

    /// The next frame's faces, `timestamp` seconds into the stream, get their track ids,
    /// smoothing and scores.
    pub fn track(&mut self, mut faces: Vec<FaceResult>, timestamp: f64) -> Result<Vec<FaceResult>> {
        let boxes: Vec<_> = faces.iter().map(|f| f.face.clone()).collect();
        let ids = self.tracker.update(&boxes);
        let live = self.tracker.live();
        self.states.retain(|id, _| live.contains(id));
        for (face, id) in faces.iter_mut().zip(ids) {
            face.track_id = Some(id);
            let state = self.states.entry(id).or_default();
            if !face.aus.is_available() {
                continue; // nothing to smooth or score: the window holds the frames with AUs
            }
            if self.config.smoothing != SmoothingKind::Off {
                smooth(&self.config, state, &mut face.aus.probabilities, timestamp);
                for ((present, p), t) in face.aus.present.iter_mut().zip(&face.aus.probabilities).zip(&self.thresholds)
                {
                    *present = *p >= *t;
                }
            }
            if let Some(inputs) = &self.atypicality {
                let present = inputs.columns.iter().map(|&c| f32::from(u8::from(face.aus.present[c]))).collect();
                face.atypicality = state.window.push(&inputs.model, present)?;
            }
        }
        Ok(faces)
    }
}

/// Smooths one track's probabilities in place (NaN entries, AUs a model does not estimate, pass
/// through and leave the filter as it was).
fn smooth(config: &StreamConfig, state: &mut TrackState, probabilities: &mut [f32], time: f64) {
    let step = match state.last_time {
        Some(last) if time > last => time - last,
        _ => DEFAULT_STEP_SECONDS,
    };
    state.last_time = Some(time);
    if state.smoothed.len() != probabilities.len() {
        state.smoothed = probabilities.to_vec();
        state.speed = vec![0.0; probabilities.len()];
        return;
    }
    for ((p, s), v) in probabilities.iter_mut().zip(&mut state.smoothed).zip(&mut state.speed) {
        if p.is_nan() {
            continue;
        }
        if s.is_nan() {
            (*s, *v) = (*p, 0.0);
            continue;
        }
        let alpha = match config.smoothing {
            SmoothingKind::Off => 1.0,
            SmoothingKind::Exponential => config.alpha,
            SmoothingKind::OneEuro => {
                let speed = (*p - *s) / step as f32;
                *v += one_euro_alpha(config.d_cutoff, step) * (speed - *v);
                one_euro_alpha(config.min_cutoff + config.beta * v.abs(), step)
            }
        };
        *s += alpha * (*p - *s);
        *p = *s;
    }
}

/// The One-Euro filter's smoothing factor for a cutoff frequency (Hz) and a time step (s).
fn one_euro_alpha(cutoff: f32, step: f64) -> f32 {
    let tau = 1.0 / (2.0 * std::f64::consts::PI * cutoff as f64);
    (1.0 / (1.0 + tau / step)) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(config: &StreamConfig, values: &[f32], fps: f64) -> Vec<f32> {
        let mut state = TrackState::default();
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let mut p = [v, f32::NAN];
                smooth(config, &mut state, &mut p, i as f64 / fps);
                assert!(p[1].is_nan());
                p[0]
            })
            .collect()
    }

    #[test]
    fn exponential_smoothing_weighs_the_newest_frame_by_alpha() {
        let config = StreamConfig { smoothing: SmoothingKind::Exponential, alpha: 0.25, ..StreamConfig::default() };
        let out = run(&config, &[0.0, 1.0, 1.0, 0.0], 30.0);
        let expected = [0.0, 0.25, 0.4375, 0.328125];
        assert_eq!(out.len(), 4);
        for (o, e) in out.iter().zip(expected) {
            assert!((o - e).abs() < 1e-6, "{out:?}");
        }
    }

    #[test]
    fn one_euro_follows_a_step_slowly_at_rest_and_quickly_when_beta_is_large() {
        let step: Vec<f32> = (0..30).map(|i| if i < 10 { 0.1 } else { 0.9 }).collect();
        let still = StreamConfig { smoothing: SmoothingKind::OneEuro, beta: 0.0, ..StreamConfig::default() };
        let quick = StreamConfig { beta: 50.0, ..still.clone() };
        let (slow, fast) = (run(&still, &step, 30.0), run(&quick, &step, 30.0));
        assert_eq!((slow.len(), fast.len()), (30, 30));
        // Holding still, the filter does not move.
        assert!(slow[..10].iter().all(|&v| (v - 0.1).abs() < 1e-6), "{slow:?}");
        // beta = 0: a 1 Hz low-pass at 30 fps moves 1 / (1 + 30 / 2pi) = 17% of the way per frame.
        let alpha = 1.0 / (1.0 + 30.0 / (2.0 * std::f32::consts::PI));
        assert!((slow[10] - (0.1 + 0.8 * alpha)).abs() < 1e-5, "{}", slow[10]);
        assert!(fast[10] > slow[10] + 0.2, "a large beta follows a fast change: {} vs {}", fast[10], slow[10]);
        assert!(slow.windows(2).all(|w| w[1] >= w[0] - 1e-7) && slow[29] < 0.9 && slow[29] > 0.8, "{slow:?}");
    }
}
