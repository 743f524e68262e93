//! One frame in, faces out: detection, alignment to the AU model's crop, and AUs per face.

use crate::align::{align, AlignmentConfig, Similarity};
use crate::au_model::{AuDetector, FaceAus};
use crate::error::Result;
use crate::face::{Face, FaceDetector};
use crate::image::{ImageView, RgbImage};
use crate::manifest::Framing;
use crate::mesh::FaceMesher;

/// One face of a frame, with its AUs, and room for what later models add.
#[derive(Debug, Clone)]
pub struct FaceResult {
    pub face: Face,
    /// Frame pixels to crop pixels: the similarity the AU model's crop was warped with.
    pub to_crop: Similarity,
    /// The crop the AU model saw, when the pipeline keeps crops.
    pub aligned: Option<RgbImage>,
    pub aus: FaceAus,
    /// The face mesh's presence score, 0 to 1, when the mesh ran on this face.
    pub mesh_score: Option<f32>,
    /// Face-mesh landmarks in frame pixels (x, y, and z at the scale of x), when the mesh ran and
    /// saw a face.
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
    /// YuNet; without it, the faces are BlazeFace's, from the mesh.
    detector: Option<Box<dyn FaceDetector>>,
    mesh: Option<FaceMesher>,
    aus: Box<dyn AuDetector>,
    alignment: AlignmentConfig,
    keep_crops: bool,
}

impl Pipeline {
    /// `mesh` gives every face landmarks and head pose; an AU model that reads landmarks (the
    /// MediaPipe estimator) needs it, or every face's AUs are unavailable. Without `detector`,
    /// the faces are the mesh's BlazeFace detections, whose mouth corners are one point: fit
    /// for the estimator only ([`crate::Runtime`] puts pipelines together by these rules).
    pub fn new(
        detector: Option<Box<dyn FaceDetector>>,
        mesh: Option<FaceMesher>,
        aus: Box<dyn AuDetector>,
        alignment: AlignmentConfig,
    ) -> Pipeline {
        Pipeline { detector, mesh, aus, alignment, keep_crops: false }
    }

    /// The same pipeline with another face detector (tests give it boxes of their choosing).
    pub fn with_face_detector(self, detector: Box<dyn FaceDetector>) -> Pipeline {
        Pipeline { detector: Some(detector), ..self }
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
    /// an empty list. A face whose AUs cannot be estimated (too small for the mesh, or one the
    /// mesh does not see as a face, with the MediaPipe estimator) is kept with NaN AUs.
    pub fn process(&mut self, frame: &ImageView<'_>) -> Result<Vec<FaceResult>> {
        // One conversion serves the detector, the mesh and the aligner.
        let rgb = frame.to_rgb()?;
        let (faces, meshes): (Vec<Face>, Vec<_>) = match (&mut self.detector, &mut self.mesh) {
            (Some(detector), mesh) => {
                let faces = detector.detect(&rgb.view())?;
                if faces.is_empty() {
                    return Ok(Vec::new());
                }
                let meshes = match mesh {
                    Some(mesher) => mesher.run(&rgb, &faces)?.into_iter().map(Some).collect(),
                    None => vec![None; faces.len()],
                };
                (faces, meshes)
            }
            (None, Some(mesher)) => {
                let (faces, meshes) = mesher.detect(&rgb)?;
                (faces, meshes.into_iter().map(Some).collect())
            }
            (None, None) => return Err(crate::Error::InvalidInput("a pipeline needs a face detector".into())),
        };
        let mut results = Vec::with_capacity(faces.len());
        let reads_landmarks = self.aus.reads_landmarks();
        let crop = self.aus.crop().clone();
        let mut crops = Vec::new();
        for (face, mesh) in faces.into_iter().zip(meshes) {
            let mesh = mesh.and_then(|m| m.ok());
            let (mesh_score, mesh_crop) = (mesh.as_ref().map(|m| m.score), mesh.as_ref().map(|m| m.to_crop));
            let present = mesh.filter(|m| m.is_present());
            let (to_crop, aus, blendshapes) = if reads_landmarks {
                // The mesh's crop; zeros (never a transform) for a face too small to mesh.
                let to_crop = mesh_crop.unwrap_or(Similarity { a: 0.0, b: 0.0, tx: 0.0, ty: 0.0 });
                match &present {
                    Some(m) => {
                        let (aus, blendshapes) = self.aus.detect_landmarks(&m.landmarks)?;
                        (to_crop, aus, Some(blendshapes))
                    }
                    None => (to_crop, FaceAus::unavailable(self.aus.aus().len()), None),
                }
            } else {
                let Framing::Keypoints = crop.framing else {
                    return Err(crate::Error::InvalidInput("an aligned-crop AU model must frame by keypoints".into()));
                };
                // Keypoints that coincide cannot be aligned; such a detection is not a usable face.
                let Some((image, to_crop)) = align(&rgb, &face, &self.alignment, crop.width, crop.height) else {
                    continue;
                };
                crops.push(image);
                // The AUs come below, for all the crops at once.
                (to_crop, FaceAus::unavailable(0), None)
            };
            let (landmarks, pose) = present.map_or((None, None), |m| (Some(m.landmarks), m.pose));
            results.push(FaceResult {
                face,
                to_crop,
                aligned: None,
                aus,
                mesh_score,
                landmarks,
                blendshapes,
                pose,
                track_id: None,
                atypicality: None,
            });
        }
        if !reads_landmarks {
            let aus = self.aus.detect_rgb(&crops.iter().collect::<Vec<_>>())?;
            if aus.len() != crops.len() {
                let message = format!("{} results for {} faces", aus.len(), crops.len());
                return Err(crate::Error::ModelOutput { model: "the AU model".into(), message });
            }
            for ((result, aus), crop) in results.iter_mut().zip(aus).zip(crops) {
                result.aus = aus;
                result.aligned = self.keep_crops.then_some(crop);
            }
        }
        Ok(results)
    }
}
