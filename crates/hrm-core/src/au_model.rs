//! AU models: a batch of face crops in, per-AU probabilities and presence out.
//!
//! Backends only run tensors through a graph (`InferenceSession`); pre- and post-processing live
//! here once, so every backend gives the same answers for the same graph.

use crate::au::AuList;
use crate::error::{Error, Result};
use crate::image::{ImageView, RgbImage};
use crate::manifest::{InputSpec, Manifest, OutputKind};
use crate::preprocess::preprocess_into;
use hrm_backend::{Dim, InferenceSession, TensorView};

/// AU results for one face, in the model's AU order. A probability is NaN where the model does
/// not estimate that AU (the MediaPipe estimator's AD19, AU23 and AD32), or for a face whose AUs
/// could not be estimated; its presence is then false.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceAus {
    pub probabilities: Vec<f32>,
    pub present: Vec<bool>,
}

impl FaceAus {
    /// A face whose AUs could not be estimated (its mesh found no face).
    pub fn unavailable(aus: usize) -> FaceAus {
        FaceAus { probabilities: vec![f32::NAN; aus], present: vec![false; aus] }
    }

    /// Whether any AU was estimated.
    pub fn is_available(&self) -> bool {
        self.probabilities.iter().any(|p| !p.is_nan())
    }
}

/// A model that gives AUs for face crops. The pipeline holds its AU model through this trait.
pub trait AuDetector: Send {
    /// The AUs of every result, in order.
    fn aus(&self) -> &AuList;
    /// The crop the model wants: the pipeline aligns faces to it.
    fn crop(&self) -> &InputSpec;
    /// One result per face, in order. Each face is a crop of any size (resized to [`Self::crop`]).
    fn detect_rgb(&mut self, faces: &[&RgbImage]) -> Result<Vec<FaceAus>>;

    /// As [`Self::detect_rgb`], for faces in any pixel format.
    fn detect(&mut self, faces: &[ImageView<'_>]) -> Result<Vec<FaceAus>> {
        let rgb = faces.iter().map(|f| f.to_rgb()).collect::<Result<Vec<RgbImage>>>()?;
        self.detect_rgb(&rgb.iter().collect::<Vec<_>>())
    }

    /// Whether the model reads a face's mesh landmarks ([`Self::detect_landmarks`]) rather than
    /// an aligned crop (the MediaPipe estimator).
    fn reads_landmarks(&self) -> bool {
        false
    }

    /// AUs, and the blendshape scores they came from, for one face from its 478 mesh landmarks
    /// in frame pixels. Only models that [`Self::reads_landmarks`] implement it.
    fn detect_landmarks(&mut self, _landmarks: &[[f32; 3]]) -> Result<(FaceAus, Vec<f32>)> {
        Err(Error::InvalidInput("this AU model reads aligned crops, not landmarks".into()))
    }
}

/// An HRM AU classifier (a package of kind `au-classifier`) on one backend session: scores per
/// AU, a sigmoid when they are logits, then the per-AU thresholds.
pub struct AuClassifier {
    name: String,
    aus: AuList,
    input: InputSpec,
    output: OutputKind,
    session: Box<dyn InferenceSession>,
    thresholds: Vec<f32>,
    batch_size: usize,
    buffer: Vec<f32>,
}

impl AuClassifier {
    /// `thresholds` holds one value per AU of the manifest, in its order (the runtime resolves
    /// them); `batch_size` faces go to the session at once.
    pub(crate) fn new(
        manifest: &Manifest,
        session: Box<dyn InferenceSession>,
        thresholds: Vec<f32>,
        batch_size: usize,
    ) -> Result<AuClassifier> {
        let aus = manifest.au_list();
        if aus.is_empty() || thresholds.len() != aus.len() {
            let message = format!("{} AUs with {} thresholds", aus.len(), thresholds.len());
            return Err(Error::ModelOutput { model: manifest.name.clone(), message });
        }
        Ok(AuClassifier {
            name: manifest.name.clone(),
            aus,
            input: manifest.input.clone(),
            output: manifest.output,
            session,
            thresholds,
            batch_size: batch_size.max(1),
            buffer: Vec::new(),
        })
    }

    /// The scores of one batch, `faces.len()` rows of one value per AU.
    fn scores(&mut self, faces: &[&RgbImage]) -> Result<Vec<f32>> {
        let per_image = self.input.values();
        self.buffer.resize(per_image * faces.len(), 0.0);
        for (face, slot) in faces.iter().zip(self.buffer.chunks_exact_mut(per_image)) {
            preprocess_into(face, &self.input, slot);
        }
        let shape: Vec<usize> = (self.input.tensor_dims().iter())
            .map(|dim| match dim {
                Dim::Fixed(n) => *n,
                Dim::Batch | Dim::Any => faces.len(),
            })
            .collect();
        let mut outputs = self.session.run(&[TensorView::new(&shape, &self.buffer)?])?;
        let expected = [faces.len(), self.aus.len()];
        if let [scores] = outputs.as_slice() {
            if scores.shape() == expected {
                return Ok(outputs.remove(0).into_data());
            }
        }
        let found: Vec<&[usize]> = outputs.iter().map(|t| t.shape()).collect();
        Err(self.output_error(format!("the graph gave outputs of shapes {found:?}, expected one of {expected:?}")))
    }

    fn output_error(&self, message: String) -> Error {
        Error::ModelOutput { model: self.name.clone(), message }
    }

    /// A graph's output must be what the manifest says it is: finite, and within [0, 1] when it
    /// claims probabilities (a logit graph labelled so would report AU2 = 1.24).
    fn check_row(&self, row: &[f32]) -> Result<()> {
        let bad = row.iter().zip(self.aus.aus()).find(|(&v, _)| match self.output {
            OutputKind::Logits => !v.is_finite(),
            OutputKind::Probabilities => !(0.0..=1.0).contains(&v),
        });
        let Some((value, au)) = bad else { return Ok(()) };
        let (declared, meaning) = match self.output {
            OutputKind::Logits => ("logits", "finite scores"),
            OutputKind::Probabilities => ("probabilities", "values from 0 to 1"),
        };
        Err(self.output_error(format!(
            "gave {value} for {}, but its manifest declares output = \"{declared}\" ({meaning}); \
             the manifest does not describe this graph",
            au.id
        )))
    }
}

impl AuDetector for AuClassifier {
    fn aus(&self) -> &AuList {
        &self.aus
    }

    fn crop(&self) -> &InputSpec {
        &self.input
    }

    fn detect_rgb(&mut self, faces: &[&RgbImage]) -> Result<Vec<FaceAus>> {
        let mut results = Vec::with_capacity(faces.len());
        for chunk in faces.chunks(self.batch_size) {
            let scores = self.scores(chunk)?;
            for row in scores.chunks_exact(self.aus.len()) {
                self.check_row(row)?;
                let probabilities: Vec<f32> = match self.output {
                    OutputKind::Logits => row.iter().map(|&x| sigmoid(x)).collect(),
                    OutputKind::Probabilities => row.to_vec(),
                };
                let present = probabilities.iter().zip(&self.thresholds).map(|(p, t)| p >= t).collect();
                results.push(FaceAus { probabilities, present });
            }
        }
        Ok(results)
    }
}

pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
