//! One frame in, faces out: detection, alignment to the AU model's input, and AUs per face.

use crate::align::{align, AlignmentConfig};
use crate::detector::{FaceAus, ModelDetector};
use crate::error::Result;
use crate::face::{Face, FaceDetector};
use crate::image::{ImageView, RgbImage};

/// One face of a frame, with its AUs.
#[derive(Debug, Clone)]
pub struct FaceResult {
    pub face: Face,
    /// The aligned crop the AU model saw, when the pipeline keeps crops.
    pub aligned: Option<RgbImage>,
    pub aus: FaceAus,
}

pub struct Pipeline {
    detector: Box<dyn FaceDetector>,
    aus: ModelDetector,
    alignment: AlignmentConfig,
    keep_crops: bool,
}

impl Pipeline {
    pub fn new(detector: Box<dyn FaceDetector>, aus: ModelDetector, alignment: AlignmentConfig) -> Pipeline {
        Pipeline { detector, aus, alignment, keep_crops: false }
    }

    /// The AU model, for faces that come already aligned.
    pub fn au_detector(&mut self) -> &mut ModelDetector {
        &mut self.aus
    }

    /// Keep each face's aligned crop in the results (for `--save-aligned`, or display).
    pub fn keep_crops(&mut self, keep: bool) {
        self.keep_crops = keep;
    }

    /// Every face found in the frame, highest detection score first. A frame without faces gives
    /// an empty list.
    pub fn process(&mut self, frame: &ImageView<'_>) -> Result<Vec<FaceResult>> {
        // One conversion serves the detector and the aligner.
        let rgb = frame.to_rgb()?;
        let faces = self.detector.detect(&rgb.view())?;
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        let spec = &self.aus.package().manifest.input;
        let (width, height) = (spec.width, spec.height);
        let mut kept = Vec::with_capacity(faces.len());
        let mut crops = Vec::with_capacity(faces.len());
        for face in faces {
            // Keypoints that coincide cannot be aligned; such a detection is not a usable face.
            if let Some((crop, _)) = align(&rgb, &face, &self.alignment, width, height) {
                kept.push(face);
                crops.push(crop);
            }
        }
        let aus = self.aus.detect_rgb(&crops.iter().collect::<Vec<_>>())?;
        Ok(kept
            .into_iter()
            .zip(crops)
            .zip(aus)
            .map(|((face, crop), aus)| FaceResult { face, aligned: self.keep_crops.then_some(crop), aus })
            .collect())
    }
}
