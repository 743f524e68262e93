//! The AU detector: a batch of aligned faces in, per-AU probabilities and presence out.
//!
//! Backends only run a tensor through a graph (`InferenceSession`); pre- and post-processing live
//! here once, so every backend gives the same answers for the same graph.

use crate::au::AuSet;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::image::{ImageView, RgbImage};
use crate::manifest::{check_thresholds, ModelPackage, OutputKind};
use crate::preprocess::preprocess_into;
use std::path::Path;

/// What a backend needs to know beyond the package.
#[derive(Debug, Clone)]
pub struct BackendOptions {
    /// Threads for matrix products (already resolved: at least 1).
    pub threads: usize,
}

/// A loaded graph. `input` is NCHW f32 for `batch` images; the result is `batch` rows of outputs.
pub trait InferenceSession: Send {
    fn run(&mut self, input: &[f32], batch: usize) -> Result<Vec<f32>>;
}

/// A package's graph as a backend loaded it, once: every session made from it shares its
/// weights (and whatever the backend prepared), and keeps its own buffers.
pub trait LoadedModel: Send + Sync {
    fn session(&self) -> Result<Box<dyn InferenceSession>>;
}

/// A named way of running a package's graph.
pub trait Backend: Send + Sync {
    fn name(&self) -> &str;
    fn load(&self, package: &ModelPackage, options: &BackendOptions) -> Result<std::sync::Arc<dyn LoadedModel>>;
}

/// Backends by name; the CLI and the C ABI register what they were built with.
#[derive(Default)]
pub struct BackendRegistry {
    backends: Vec<Box<dyn Backend>>,
}

impl BackendRegistry {
    pub fn register(&mut self, backend: Box<dyn Backend>) {
        self.backends.retain(|b| b.name() != backend.name());
        self.backends.push(backend);
    }

    pub fn get(&self, name: &str) -> Result<&dyn Backend> {
        self.backends
            .iter()
            .find(|b| b.name() == name)
            .map(|b| b.as_ref())
            .ok_or_else(|| Error::UnknownBackend { name: name.to_string(), known: self.names().join(", ") })
    }

    pub fn names(&self) -> Vec<&str> {
        self.backends.iter().map(|b| b.name()).collect()
    }
}

/// AU results for one face, in the AU set's order.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceAus {
    pub probabilities: Vec<f32>,
    pub present: Vec<bool>,
}

pub trait AuDetector: Send {
    fn au_set(&self) -> AuSet;
    /// One result per face, in order. Each face is an aligned crop of any size.
    fn detect(&mut self, faces: &[ImageView<'_>]) -> Result<Vec<FaceAus>>;
}

/// The detector for one model package on one backend.
pub struct ModelDetector {
    package: ModelPackage,
    session: Box<dyn InferenceSession>,
    thresholds: Vec<f32>,
    batch_size: usize,
    input: Vec<f32>,
}

impl ModelDetector {
    /// Loads the package named by `config` (or `package_dir`, which wins) on the configured backend.
    pub fn open(config: &Config, package_dir: Option<&Path>, registry: &BackendRegistry) -> Result<ModelDetector> {
        let dir = package_dir
            .or(config.model.as_deref())
            .ok_or_else(|| Error::field(&config.origin, "model", "a model package folder (or --model)", "nothing"))?;
        let package = ModelPackage::load(dir)?;
        let backend = registry.get(&config.backend)?;
        let session = backend.load(&package, &BackendOptions { threads: config.resolved_threads() })?.session()?;
        ModelDetector::new(package, session, config)
    }

    pub fn new(package: ModelPackage, session: Box<dyn InferenceSession>, config: &Config) -> Result<ModelDetector> {
        let manifest = &package.manifest;
        check_thresholds(&config.origin, "thresholds", manifest.au_set, &config.thresholds, false)?;
        let thresholds = manifest
            .au_set
            .aus()
            .iter()
            .map(|au| config.thresholds.get(au.id).copied().unwrap_or(manifest.thresholds[au.id]))
            .collect();
        Ok(ModelDetector { package, session, thresholds, batch_size: config.batch_size, input: Vec::new() })
    }

    pub fn package(&self) -> &ModelPackage {
        &self.package
    }

    /// Runs faces already converted to RGB; see [`AuDetector::detect`].
    pub fn detect_rgb(&mut self, faces: &[&RgbImage]) -> Result<Vec<FaceAus>> {
        let manifest = &self.package.manifest;
        let spec = &manifest.input;
        let per_image = 3 * spec.width * spec.height;
        let aus = manifest.au_set.len();
        let mut results = Vec::with_capacity(faces.len());
        for chunk in faces.chunks(self.batch_size) {
            self.input.resize(per_image * chunk.len(), 0.0);
            for (face, slot) in chunk.iter().zip(self.input.chunks_exact_mut(per_image)) {
                preprocess_into(face, spec, slot);
            }
            let output = self.session.run(&self.input, chunk.len())?;
            if output.len() != chunk.len() * aus {
                return Err(Error::Backend {
                    backend: "session".into(),
                    message: format!("the graph gave {} values for {} faces of {aus} AUs", output.len(), chunk.len()),
                });
            }
            for row in output.chunks_exact(aus) {
                check_output(manifest, row)?;
                let probabilities: Vec<f32> = match manifest.output {
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

impl AuDetector for ModelDetector {
    fn au_set(&self) -> AuSet {
        self.package.manifest.au_set
    }

    fn detect(&mut self, faces: &[ImageView<'_>]) -> Result<Vec<FaceAus>> {
        let rgb = faces.iter().map(|f| f.to_rgb()).collect::<Result<Vec<RgbImage>>>()?;
        self.detect_rgb(&rgb.iter().collect::<Vec<_>>())
    }
}

/// A graph's output must be what the manifest says it is: finite, and within [0, 1] when it
/// claims probabilities (a logit graph labelled so would report AU2 = 1.24).
fn check_output(manifest: &crate::Manifest, row: &[f32]) -> Result<()> {
    let bad = row.iter().zip(manifest.au_set.aus()).find(|(&v, _)| match manifest.output {
        OutputKind::Logits => !v.is_finite(),
        OutputKind::Probabilities => !(0.0..=1.0).contains(&v),
    });
    match bad {
        None => Ok(()),
        Some((value, au)) => Err(Error::Backend {
            backend: "session".into(),
            message: format!(
                "model `{}` gave {value} for {}, but its manifest declares output = \"{}\" ({}); \
                 the manifest does not describe this graph",
                manifest.name,
                au.id,
                match manifest.output {
                    OutputKind::Logits => "logits",
                    OutputKind::Probabilities => "probabilities",
                },
                match manifest.output {
                    OutputKind::Logits => "finite scores",
                    OutputKind::Probabilities => "values from 0 to 1",
                }
            ),
        }),
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}
