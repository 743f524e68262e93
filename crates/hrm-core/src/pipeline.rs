//! One frame in, faces out: detection, alignment to the AU model's crop, and AUs per face.

use crate::align::{align, AlignmentConfig, Similarity};
use crate::au_model::{AuDetector, FaceAus};
use crate::error::Result;
use crate::face::{Face, FaceDetector};
use crate::image::{ImageView, RgbImage};
use crate::manifest::Framing;

/// One face of a frame, with its AUs, and room for what later models add.
#[derive(Debug, Clone)]
pub struct FaceResult {
    pub face: Face,
    /// Frame pixels to crop pixels: the similarity the AU model's crop was warped with.
    pub to_crop: Similarity,
    /// The crop the AU model saw, when the pipeline keeps crops.
    pub aligned: Option<RgbImage>,
    pub aus: FaceAus,
    /// Face-mesh landmarks in frame pixels (x, y, and z at the scale of x), when a mesh model ran.
    pub landmarks: Option<Vec<[f32; 3]>>,
    /// Blendshape scores, 0 to 1, when a blendshape model ran.
    pub blendshapes: Option<Vec<f32>>,
    /// Head pose, a row-major 4x4 rigid transform from the canonical face to camera space.
    pub pose: Option<[[f32; 4]; 4]>,
    /// The track this face belongs to, in streams.
    pub track_id: Option<u64>,
    /// The atypicality score of the track's last window, in streams.
    pub atypicality: Option<f32>,
}

pub struct Pipeline {
    detector: Box<dyn FaceDetector>,
    aus: Box<dyn AuDetector>,
    alignment: AlignmentConfig,
    keep_crops: bool,
}

impl Pipeline {
    pub fn new(detector: Box<dyn FaceDetector>, aus: Box<dyn AuDetector>, alignment: AlignmentConfig) -> Pipeline {
        Pipeline { detector, aus, alignment, keep_crops: false }
    }

    /// The AU model, for faces that come already aligned.
    pub fn au_detector(&mut self) -> &mut dyn AuDetector {
        self.aus.as_mut()
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
        let crop = self.aus.crop();
        let (width, height) = (crop.width, crop.height);
        let Framing::Keypoints = crop.framing;
        let mut kept = Vec::with_capacity(faces.len());
        let mut crops = Vec::with_capacity(faces.len());
        for face in faces {
            // Keypoints that coincide cannot be aligned; such a detection is not a usable face.
            if let Some((crop, to_crop)) = align(&rgb, &face, &self.alignment, width, height) {
                kept.push((face, to_crop));
                crops.push(crop);
            }
        }
        let aus = self.aus.detect_rgb(&crops.iter().collect::<Vec<_>>())?;
        Ok(kept
            .into_iter()
            .zip(crops)
            .zip(aus)
            .map(|(((face, to_crop), crop), aus)| FaceResult {
                face,
                to_crop,
                aligned: self.keep_crops.then_some(crop),
                aus,
                landmarks: None,
                blendshapes: None,
                pose: None,
                track_id: None,
                atypicality: None,
            })
            .collect())
    }
}
