//! The MediaPipe AU estimator (a package of kind `mediapipe-blendshapes`): MediaPipe's
//! blendshapes network on 146 of the face mesh's landmarks gives 52 ARKit-style scores, and each
//! HRM AU with a counterpart among them is estimated from those scores.
//!
//! These are estimates derived from blendshapes, not the outputs of a model trained on AU labels:
//! HRM's classifiers were trained on FACS-coded children's faces and are better when you have
//! them. AUs with no counterpart (AD19 tongue show, AU23 lip tightener, AD32 bite) are not
//! estimated: NaN here, `null` in JSON, empty in CSV.

use crate::au::AuList;
use crate::au_model::{AuDetector, FaceAus};
use crate::error::{Error, Result};
use crate::image::RgbImage;
use crate::manifest::{InputSpec, Manifest};
use hrm_backend::{Dim, GraphSource, GraphSpec, Hints, InferenceSession, TensorView};

/// The blendshapes network's outputs, in order, as MediaPipe names them.
pub const BLENDSHAPE_NAMES: [&str; 52] = [
    "_neutral",
    "browDownLeft",
    "browDownRight",
    "browInnerUp",
    "browOuterUpLeft",
    "browOuterUpRight",
    "cheekPuff",
    "cheekSquintLeft",
    "cheekSquintRight",
    "eyeBlinkLeft",
    "eyeBlinkRight",
    "eyeLookDownLeft",
    "eyeLookDownRight",
    "eyeLookInLeft",
    "eyeLookInRight",
    "eyeLookOutLeft",
    "eyeLookOutRight",
    "eyeLookUpLeft",
    "eyeLookUpRight",
    "eyeSquintLeft",
    "eyeSquintRight",
    "eyeWideLeft",
    "eyeWideRight",
    "jawForward",
    "jawLeft",
    "jawOpen",
    "jawRight",
    "mouthClose",
    "mouthDimpleLeft",
    "mouthDimpleRight",
    "mouthFrownLeft",
    "mouthFrownRight",
    "mouthFunnel",
    "mouthLeft",
    "mouthLowerDownLeft",
    "mouthLowerDownRight",
    "mouthPressLeft",
    "mouthPressRight",
    "mouthPucker",
    "mouthRight",
    "mouthRollLower",
    "mouthRollUpper",
    "mouthShrugLower",
    "mouthShrugUpper",
    "mouthSmileLeft",
    "mouthSmileRight",
    "mouthStretchLeft",
    "mouthStretchRight",
    "mouthUpperUpLeft",
    "mouthUpperUpRight",
    "noseSneerLeft",
    "noseSneerRight",
];

/// The mesh landmarks the blendshapes network reads (MediaPipe's `kLandmarksSubsetIdxs`).
pub const LANDMARK_SUBSET: [usize; 146] = [
    0, 1, 4, 5, 6, 7, 8, 10, 13, 14, 17, 21, 33, 37, 39, 40, 46, 52, 53, 54, 55, 58, 61, 63, 65, 66, 67, 70, 78, 80,
    81, 82, 84, 87, 88, 91, 93, 95, 103, 105, 107, 109, 127, 132, 133, 136, 144, 145, 146, 148, 149, 150, 152, 153,
    154, 155, 157, 158, 159, 160, 161, 162, 163, 168, 172, 173, 176, 178, 181, 185, 191, 195, 197, 234, 246, 249, 251,
    263, 267, 269, 270, 276, 282, 283, 284, 285, 288, 291, 293, 295, 296, 297, 300, 308, 310, 311, 312, 314, 317, 318,
    321, 323, 324, 332, 334, 336, 338, 356, 361, 362, 365, 373, 374, 375, 377, 378, 379, 380, 381, 382, 384, 385, 386,
    387, 388, 389, 390, 397, 398, 400, 402, 405, 409, 415, 454, 466, 468, 469, 470, 471, 472, 473, 474, 475, 476, 477,
];

/// One input of an AU's estimate: a blendshape, one minus another (floored at 0), or the
/// smaller of two (both acting together).
#[derive(Debug, Clone, Copy)]
pub enum Term {
    Shape(&'static str),
    Minus(&'static str, &'static str),
    With(&'static str, &'static str),
}

/// How an AU is estimated from blendshapes.
#[derive(Debug, Clone, Copy)]
pub enum Estimate {
    /// No blendshape corresponds: not estimated.
    None,
    /// The largest of the terms: a left/right pair counts when either side acts (HRM labels a
    /// one-sided AU as present).
    Max(&'static [Term]),
    /// The smallest of the terms: both sides must act (eyes closed is both eyes).
    Min(&'static [Term]),
}

use Term::{Minus, Shape, With};

/// The mapping from blendshapes to HRM's AUs (the README documents it). Any AU not listed is
/// not estimated.
pub const AU_ESTIMATES: [(&str, Estimate); 22] = [
    ("AU1", Estimate::Max(&[Shape("browInnerUp")])),
    ("AU2", Estimate::Max(&[Shape("browOuterUpLeft"), Shape("browOuterUpRight")])),
    ("AU4", Estimate::Max(&[Shape("browDownLeft"), Shape("browDownRight")])),
    // MediaPipe's cheekSquint rarely moves; eyes narrowed while the lip corners pull up are the
    // cheeks raising them (the Duchenne smile), which MediaPipe reports as eyeSquint.
    (
        "AU6",
        Estimate::Max(&[
            Shape("cheekSquintLeft"),
            Shape("cheekSquintRight"),
            With("eyeSquintLeft", "mouthSmileLeft"),
            With("eyeSquintRight", "mouthSmileRight"),
        ]),
    ),
    ("AU7", Estimate::Max(&[Shape("eyeSquintLeft"), Shape("eyeSquintRight")])),
    ("AU9", Estimate::Max(&[Shape("noseSneerLeft"), Shape("noseSneerRight")])),
    ("AU10", Estimate::Max(&[Shape("mouthUpperUpLeft"), Shape("mouthUpperUpRight")])),
    ("AU12", Estimate::Max(&[Shape("mouthSmileLeft"), Shape("mouthSmileRight")])),
    ("AU14", Estimate::Max(&[Shape("mouthDimpleLeft"), Shape("mouthDimpleRight")])),
    ("AU15", Estimate::Max(&[Shape("mouthFrownLeft"), Shape("mouthFrownRight")])),
    ("AU16", Estimate::Max(&[Shape("mouthLowerDownLeft"), Shape("mouthLowerDownRight")])),
    ("AU17", Estimate::Max(&[Shape("mouthShrugLower")])),
    ("AU18", Estimate::Max(&[Shape("mouthPucker")])),
    ("AD19", Estimate::None),
    ("AU20", Estimate::Max(&[Shape("mouthStretchLeft"), Shape("mouthStretchRight")])),
    ("AU23", Estimate::None),
    ("AU24", Estimate::Max(&[Shape("mouthPressLeft"), Shape("mouthPressRight")])),
    // Lips apart: the jaw open with the lips not held together, or the lower lip pulled down.
    (
        "AU25",
        Estimate::Max(&[Minus("jawOpen", "mouthClose"), Shape("mouthLowerDownLeft"), Shape("mouthLowerDownRight")]),
    ),
    ("AU2X", Estimate::Max(&[Shape("jawOpen")])),
    ("AU28", Estimate::Max(&[Shape("mouthRollLower"), Shape("mouthRollUpper")])),
    ("AD32", Estimate::None),
    ("AU43E", Estimate::Min(&[Shape("eyeBlinkLeft"), Shape("eyeBlinkRight")])),
];

/// The index of a blendshape name.
pub fn blendshape_index(name: &str) -> Option<usize> {
    BLENDSHAPE_NAMES.iter().position(|n| *n == name)
}

/// The estimate of each AU of `aus` from 52 blendshape scores (clamped to [0, 1]): NaN for an AU
/// without one, or whose blendshapes are not numbers.
pub fn estimate_aus(aus: &AuList, blendshapes: &[f32]) -> Vec<f32> {
    // A score that is not a number makes every estimate it enters NaN (f32::max would drop it).
    let score =
        |name: &str| blendshape_index(name).and_then(|i| blendshapes.get(i)).map_or(f32::NAN, |v| v.clamp(0.0, 1.0));
    let pick = |a: f32, b: f32, larger: bool| match (a.is_nan() || b.is_nan(), larger) {
        (true, _) => f32::NAN,
        (false, true) => a.max(b),
        (false, false) => a.min(b),
    };
    let term = |t: &Term| match *t {
        Shape(name) => score(name),
        Minus(a, b) => pick(score(a) - score(b), 0.0, true),
        With(a, b) => pick(score(a), score(b), false),
    };
    (aus.aus().iter())
        .map(|au| match AU_ESTIMATES.iter().find(|(id, _)| *id == au.id).map_or(Estimate::None, |(_, e)| *e) {
            Estimate::None => f32::NAN,
            Estimate::Max(terms) => terms.iter().map(term).fold(0.0, |a, b| pick(a, b, true)),
            Estimate::Min(terms) => terms.iter().map(term).fold(1.0, |a, b| pick(a, b, false)),
        })
        .collect()
}

/// The blendshapes network's graph: 146 points, x and y in frame pixels.
pub fn graph_spec(source: GraphSource) -> GraphSpec {
    let inputs = vec![vec![Dim::Fixed(1), Dim::Fixed(LANDMARK_SUBSET.len()), Dim::Fixed(2)]];
    GraphSpec { source, inputs, hints: Hints::default(), weights: None }
}

/// The estimator on a session of the blendshapes network. It reads the face mesh's landmarks,
/// which the pipeline gives it; it has no crop of its own to look at.
pub struct BlendshapeEstimator {
    name: String,
    aus: AuList,
    input: InputSpec,
    session: Box<dyn InferenceSession>,
    thresholds: Vec<f32>,
    buffer: Vec<f32>,
}

impl BlendshapeEstimator {
    pub(crate) fn new(
        manifest: &Manifest,
        session: Box<dyn InferenceSession>,
        thresholds: Vec<f32>,
    ) -> BlendshapeEstimator {
        BlendshapeEstimator {
            name: manifest.name.clone(),
            aus: manifest.au_list(),
            input: manifest.input.clone(),
            session,
            thresholds,
            buffer: Vec::with_capacity(LANDMARK_SUBSET.len() * 2),
        }
    }

    /// The 52 blendshape scores of one face from its 478 landmarks in frame pixels.
    pub fn blendshapes(&mut self, landmarks: &[[f32; 3]]) -> Result<Vec<f32>> {
        if landmarks.len() < crate::mesh::MESH_LANDMARKS {
            return Err(self.error(format!("{} landmarks, expected {}", landmarks.len(), crate::mesh::MESH_LANDMARKS)));
        }
        self.buffer.clear();
        self.buffer.extend(LANDMARK_SUBSET.iter().flat_map(|&i| [landmarks[i][0], landmarks[i][1]]));
        let shape = [1, LANDMARK_SUBSET.len(), 2];
        let outputs = self.session.run(&[TensorView::new(&shape, &self.buffer)?])?;
        match outputs.as_slice() {
            [scores] if scores.data().len() == BLENDSHAPE_NAMES.len() => Ok(scores.data().to_vec()),
            _ => {
                let shapes: Vec<&[usize]> = outputs.iter().map(|t| t.shape()).collect();
                Err(self
                    .error(format!("gave outputs of shapes {shapes:?}, expected one of [{}]", BLENDSHAPE_NAMES.len())))
            }
        }
    }

    fn error(&self, message: String) -> Error {
        Error::ModelOutput { model: self.name.clone(), message }
    }
}

impl AuDetector for BlendshapeEstimator {
    fn aus(&self) -> &AuList {
        &self.aus
    }

    fn crop(&self) -> &InputSpec {
        &self.input
    }

    /// Aligned crops carry no frame to frame the mesh in: this estimator needs raw frames.
    fn detect_rgb(&mut self, _faces: &[&RgbImage]) -> Result<Vec<FaceAus>> {
        Err(Error::InvalidInput(format!(
            "`{}` estimates AUs from MediaPipe's face mesh, which frames each face itself: give it whole \
             frames (without --aligned, or hrm_detect_frame), or use an HRM AU model for aligned crops",
            self.name
        )))
    }

    fn reads_landmarks(&self) -> bool {
        true
    }

    fn detect_landmarks(&mut self, landmarks: &[[f32; 3]]) -> Result<(FaceAus, Vec<f32>)> {
        let blendshapes = self.blendshapes(landmarks)?;
        let probabilities = estimate_aus(&self.aus, &blendshapes);
        let present = probabilities.iter().zip(&self.thresholds).map(|(p, t)| *p >= *t).collect();
        Ok((FaceAus { probabilities, present }, blendshapes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_estimate_names_real_blendshapes_and_hrm_aus() {
        let hrm = AuList::hrm22();
        assert_eq!(AU_ESTIMATES.iter().map(|(id, _)| *id).collect::<Vec<_>>(), hrm.ids());
        for (id, estimate) in AU_ESTIMATES {
            let terms: &[Term] = match estimate {
                Estimate::None => &[],
                Estimate::Max(t) | Estimate::Min(t) => t,
            };
            for term in terms {
                let names = match *term {
                    Shape(a) => vec![a],
                    Minus(a, b) | With(a, b) => vec![a, b],
                };
                assert!(names.iter().all(|n| blendshape_index(n).is_some()), "{id}: {names:?}");
            }
        }
        assert_eq!(BLENDSHAPE_NAMES.len(), 52);
        assert_eq!(blendshape_index("_neutral"), Some(0));
    }

    #[test]
    fn estimates_combine_blendshapes_and_leave_unmapped_aus_empty() {
        let mut scores = vec![0.0; 52];
        let set = |scores: &mut Vec<f32>, name: &str, v: f32| scores[blendshape_index(name).unwrap()] = v;
        set(&mut scores, "mouthSmileLeft", 0.8);
        set(&mut scores, "mouthSmileRight", 0.6);
        set(&mut scores, "eyeBlinkLeft", 0.9);
        set(&mut scores, "eyeBlinkRight", 0.2);
        set(&mut scores, "jawOpen", 0.5);
        set(&mut scores, "mouthClose", 0.1);
        let aus = AuList::hrm22();
        let estimates = estimate_aus(&aus, &scores);
        assert_eq!(estimates.len(), 22);
        let at = |id: &str| estimates[aus.index_of(id).unwrap()];
        assert_eq!(at("AU12"), 0.8);
        assert_eq!(at("AU43E"), 0.2);
        assert!((at("AU25") - 0.4).abs() < 1e-6);
        assert_eq!(at("AU2X"), 0.5);
        assert_eq!(at("AU1"), 0.0);
        for id in ["AD19", "AU23", "AD32"] {
            assert!(at(id).is_nan(), "{id}");
        }
        assert_eq!(estimates.iter().filter(|v| v.is_nan()).count(), 3);
        // A blendshape that is not a number makes the AUs it enters NaN, not 0 or infinite.
        set(&mut scores, "mouthSmileRight", f32::NAN);
        let estimates = estimate_aus(&aus, &scores);
        let at = |id: &str| estimates[aus.index_of(id).unwrap()];
        assert!(at("AU12").is_nan() && at("AU6").is_nan());
        assert_eq!(at("AU43E"), 0.2);
    }
}
