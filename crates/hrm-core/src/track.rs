//! Face tracks across the frames of a stream: every face gets the id of the track it continues,
//! so a child keeps one id while in view, and keeps it when they come back near where they left
//! (turning away, stepping out of the picture) within `max_missing` frames. Each track predicts
//! where its face will be (its last box moved by its last velocity), and faces are matched to
//! the predictions, or to where the face was last seen when that is nearer (a face that left
//! and came back does not go on along its old path), by how far their centres are, in face
//! widths, and how much the boxes overlap, best pairs first: two faces that cross keep their ids
//! because each follows its own motion.

use crate::face::{intersection_over_union, Face};

/// How tracks are kept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    /// Frames a track survives without its face before it ends: 45, a second and a half at 30 fps.
    pub max_missing: usize,
    /// The farthest a face's centre may be from a track's prediction, in face widths.
    pub max_distance: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig { max_missing: 45, max_distance: 0.7 }
    }
}

#[derive(Debug, Clone)]
struct Track {
    id: u64,
    bbox: [f32; 4],
    /// Centre displacement per frame, from the last two sightings.
    velocity: [f32; 2],
    /// Frames since the face was last seen.
    missing: usize,
}

impl Track {
    /// Where the face should be now: its last box moved on by its velocity for each frame since.
    fn predicted(&self) -> [f32; 4] {
        let steps = (self.missing + 1) as f32;
        let [x, y, w, h] = self.bbox;
        [x + self.velocity[0] * steps, y + self.velocity[1] * steps, w, h]
    }
}

fn centre(b: &[f32; 4]) -> [f32; 2] {
    [b[0] + b[2] / 2.0, b[1] + b[3] / 2.0]
}

/// The tracks of one stream.
#[derive(Debug, Clone, Default)]
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Track>,
    next_id: u64,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Tracker {
        Tracker { config, tracks: Vec::new(), next_id: 0 }
    }

    /// Forgets every track (a new scene, a camera switch); ids go on increasing.
    pub fn reset(&mut self) {
        self.tracks.clear();
    }

    /// The next frame's faces: the track id of each, in the faces' order. A face that continues
    /// no track starts one; a track whose face is missing for more than `max_missing` frames ends.
    pub fn update(&mut self, faces: &[Face]) -> Vec<u64> {
        // Every plausible (track, face) pair with its cost: distance from the prediction in face
        // widths, less the boxes' overlap.
        let mut pairs: Vec<(f32, usize, usize)> = Vec::new();
        for (t, track) in self.tracks.iter().enumerate() {
            let width = track.bbox[2].max(1.0);
            for (f, face) in faces.iter().enumerate() {
                let size_ratio = face.bbox[2].max(1.0) / width;
                if !(0.5..=2.0).contains(&size_ratio) {
                    continue;
                }
                let cost = |expected: &[f32; 4]| {
                    let (fc, ec) = (centre(&face.bbox), centre(expected));
                    let distance = (fc[0] - ec[0]).hypot(fc[1] - ec[1]) / width;
                    (distance <= self.config.max_distance)
                        .then(|| distance - intersection_over_union(&face.bbox, expected))
                };
                // Where the face should be by now, or, once it has been gone, where it was last.
                let last_seen = if track.missing > 0 { cost(&track.bbox) } else { None };
                let best = [cost(&track.predicted()), last_seen].into_iter().flatten().min_by(f32::total_cmp);
                if let Some(best) = best {
                    pairs.push((best, t, f));
                }
            }
        }
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut ids: Vec<Option<u64>> = vec![None; faces.len()];
        let mut matched = vec![false; self.tracks.len()];
        for (_, t, f) in pairs {
            if matched[t] || ids[f].is_some() {
                continue;
            }
            matched[t] = true;
            let track = &mut self.tracks[t];
            let (old, new) = (centre(&track.bbox), centre(&faces[f].bbox));
            let steps = (track.missing + 1) as f32;
            track.velocity = [(new[0] - old[0]) / steps, (new[1] - old[1]) / steps];
            track.bbox = faces[f].bbox;
            track.missing = 0;
            ids[f] = Some(track.id);
        }
        for (track, seen) in self.tracks.iter_mut().zip(&matched) {
            if !seen {
                track.missing += 1;
            }
        }
        let max_missing = self.config.max_missing;
        self.tracks.retain(|t| t.missing <= max_missing);
        ids.iter()
            .zip(faces)
            .map(|(id, face)| {
                id.unwrap_or_else(|| {
                    let id = self.next_id;
                    self.next_id += 1;
                    self.tracks.push(Track { id, bbox: face.bbox, velocity: [0.0, 0.0], missing: 0 });
                    id
                })
            })
            .collect()
    }

    /// The ids of the tracks alive (seen within `max_missing` frames).
    pub fn live(&self) -> Vec<u64> {
        self.tracks.iter().map(|t| t.id).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, y: f32, size: f32) -> Face {
        Face { bbox: [x, y, size, size * 1.2], keypoints: [[x, y]; 5], score: 0.9 }
    }

    #[test]
    fn a_face_moving_across_the_frame_keeps_its_id() {
        let mut tracker = Tracker::default();
        let ids: Vec<u64> = (0..50).map(|i| tracker.update(&[face(10.0 + 8.0 * i as f32, 100.0, 80.0)])[0]).collect();
        assert_eq!(ids.len(), 50);
        assert!(ids.iter().all(|&id| id == 0), "{ids:?}");
    }

    #[test]
    fn two_faces_crossing_keep_their_ids() {
        let mut tracker = Tracker::default();
        let mut seen = Vec::new();
        for i in 0..40 {
            let step = 12.0 * i as f32;
            // Face A moves right, face B left, through each other at frame ~20; B is listed first
            // on even frames, so the order of the faces does not decide.
            let (a, b) = (face(50.0 + step, 200.0, 90.0), face(530.0 - step, 210.0, 90.0));
            let ids = if i % 2 == 0 { tracker.update(&[b, a]) } else { tracker.update(&[a, b]) };
            let (a_id, b_id) = if i % 2 == 0 { (ids[1], ids[0]) } else { (ids[0], ids[1]) };
            seen.push((a_id, b_id));
        }
        assert_eq!(seen.len(), 40);
        assert!(seen.iter().all(|&(a, b)| (a, b) == seen[0] && a != b), "{seen:?}");
    }

    #[test]
    fn a_face_that_walks_out_of_the_picture_and_comes_back_where_it_left_keeps_its_id() {
        let mut tracker = Tracker::default();
        // Moving right 10 px a frame, out of a 640-wide frame at frame 40, gone for 30 frames,
        // back at the right edge moving left.
        for i in 0..40 {
            assert_eq!(tracker.update(&[face(150.0 + 10.0 * i as f32, 100.0, 80.0)]), [0]);
        }
        for _ in 0..30 {
            tracker.update(&[]);
        }
        assert_eq!(tracker.update(&[face(545.0, 102.0, 80.0)]), [0], "back where it left");
        assert_eq!(tracker.update(&[face(535.0, 101.0, 80.0)]), [0]);
        assert_eq!(tracker.update(&[face(100.0, 100.0, 80.0), face(525.0, 101.0, 80.0)]), [1, 0]);
    }

    #[test]
    fn a_face_that_leaves_and_returns_nearby_keeps_its_id_unless_gone_too_long() {
        let config = TrackerConfig { max_missing: 5, ..TrackerConfig::default() };
        let mut tracker = Tracker::new(config);
        assert_eq!(tracker.update(&[face(100.0, 100.0, 80.0)]), [0]);
        for _ in 0..4 {
            assert_eq!(tracker.update(&[]), Vec::<u64>::new());
        }
        assert_eq!(tracker.update(&[face(104.0, 98.0, 82.0)]), [0], "back after 4 frames, near where it left");
        for _ in 0..6 {
            tracker.update(&[]);
        }
        assert!(tracker.live().is_empty(), "gone for 6 frames of 5 allowed");
        assert_eq!(tracker.update(&[face(104.0, 98.0, 82.0)]), [1], "a new track, a new id");
        // A far-away face or one of another size is another person.
        assert_eq!(
            tracker.update(&[face(104.0, 98.0, 82.0), face(600.0, 98.0, 82.0), face(110.0, 100.0, 300.0)]),
            [1, 2, 3]
        );
        tracker.reset();
        assert_eq!(tracker.update(&[face(104.0, 98.0, 82.0)]), [4], "ids never repeat");
    }
}
