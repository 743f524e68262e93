//! The one place that turns a configuration into loaded models: the AU model package and the face
//! detector, each on its configured backend, verified once. Detectors, pipelines (and, later,
//! streams) are made from a [`Runtime`]; they share its models' weights and keep their own state.

use crate::au::AuList;
use crate::au_model::AuClassifier;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::face::YunetDetector;
use crate::manifest::{check_thresholds, ModelPackage};
use crate::pipeline::Pipeline;
use hrm_backend::{Backend, BackendRegistry, LoadedModel};
use std::path::Path;
use std::sync::Arc;

/// Why a runtime could not be made: the configuration itself, or a model it names. The C ABI
/// reports the two with different statuses.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Config(Error),
    #[error(transparent)]
    Model(Error),
}

impl From<LoadError> for Error {
    fn from(error: LoadError) -> Error {
        match error {
            LoadError::Config(e) | LoadError::Model(e) => e,
        }
    }
}

/// A configuration with its models loaded and verified. Read-only once made: any number of
/// threads may share one and make their own detectors from it.
pub struct Runtime {
    config: Config,
    package: ModelPackage,
    aus: AuList,
    /// One per AU of the package, the configuration's overrides applied.
    thresholds: Vec<f32>,
    au_model: Arc<dyn LoadedModel>,
    /// YuNet, when the configuration names a `[detector] model`.
    face_model: Option<Arc<dyn LoadedModel>>,
}

impl Runtime {
    /// Loads the package named by `config.model` and the face detector named by
    /// `[detector] model`, on the backends the configuration names from `registry`.
    pub fn load(config: Config, registry: &BackendRegistry) -> Result<Runtime, LoadError> {
        Runtime::load_stages(config, registry, true)
    }

    /// As [`Runtime::load`], for faces that come aligned: `[detector] model` is not loaded (nor
    /// needed), and [`Runtime::pipeline`] is an error.
    pub fn load_without_face_detector(config: Config, registry: &BackendRegistry) -> Result<Runtime, LoadError> {
        Runtime::load_stages(config, registry, false)
    }

    fn load_stages(config: Config, registry: &BackendRegistry, faces: bool) -> Result<Runtime, LoadError> {
        use LoadError::{Config as Bad, Model};
        let dir = config
            .model
            .clone()
            .ok_or_else(|| Bad(Error::field(&config.origin, "model", "the AU model's package folder", "nothing")))?;
        let au_backend = registry.get(&config.backend).map_err(Bad)?;
        let face_backend = registry.get(config.detector_backend()).map_err(Bad)?;
        // The backends used, and every one a settings table names (which must be registered),
        // each check their settings once.
        let mut checked = std::collections::BTreeSet::from([au_backend.name(), face_backend.name()]);
        checked.extend(config.backend.settings.keys().map(String::as_str));
        for name in checked {
            registry.get(name).and_then(|b| b.check_settings(&config.backend_options(name))).map_err(Bad)?;
        }
        let package = ModelPackage::load(&dir).map_err(Model)?;
        let aus = package.manifest.au_list();
        check_thresholds(&config.origin, "thresholds", &aus, &config.thresholds, false).map_err(Bad)?;
        // A loaded package has a threshold for every AU; 0.5 (HRM's) should one be missing.
        let thresholds = (aus.aus().iter())
            .map(|au| config.thresholds.get(au.id).or(package.manifest.thresholds.get(au.id)).copied().unwrap_or(0.5))
            .collect();
        let au_model =
            au_backend.load(&package.graph_spec(), &config.backend_options(au_backend.name())).map_err(Model)?;
        let face_model = match (&config.detector.model, faces) {
            (Some(model), true) => Some(load_face_model(&config, face_backend, model).map_err(Model)?),
            _ => None,
        };
        Ok(Runtime { config, package, aus, thresholds, au_model, face_model })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn package(&self) -> &ModelPackage {
        &self.package
    }

    /// The AUs every result reports, in order.
    pub fn aus(&self) -> &AuList {
        &self.aus
    }

    /// Whether raw frames can be processed (a face detector is configured).
    pub fn has_face_detector(&self) -> bool {
        self.face_model.is_some()
    }

    /// A session of the AU model's graph alone, without pre- or post-processing (`hrm bench`).
    pub fn au_session(&self) -> Result<Box<dyn hrm_backend::InferenceSession>> {
        self.au_model.session()
    }

    /// The AU model with a session of its own, for faces that come aligned.
    pub fn au_classifier(&self) -> Result<AuClassifier> {
        let session = self.au_model.session()?;
        AuClassifier::new(&self.package.manifest, session, self.thresholds.clone(), self.config.batch_size)
    }

    /// The whole pipeline for raw frames, with sessions of its own; an error naming the
    /// configuration when it has no `[detector] model`.
    pub fn pipeline(&self) -> Result<Pipeline> {
        let Some(face_model) = &self.face_model else {
            return Err(Error::field(
                &self.config.origin,
                "detector.model",
                "a YuNet model for face detection (configs/cpu.toml uses yunet_s_640_640.onnx); \
                 faces that come aligned need none",
                "nothing",
            ));
        };
        let faces = YunetDetector::new(face_model.session()?, &self.config.detector);
        Ok(Pipeline::new(Box::new(faces), Box::new(self.au_classifier()?), self.config.alignment.clone()))
    }
}

fn load_face_model(config: &Config, backend: &dyn Backend, model: &Path) -> Result<Arc<dyn LoadedModel>> {
    backend.load(&YunetDetector::graph_spec(model), &config.backend_options(backend.name()))
}

/// The configuration's face detector alone, without an AU model (`hrm bench --detection`).
pub fn face_detector_alone(config: &Config, registry: &BackendRegistry) -> Result<YunetDetector> {
    let model =
        config.detector.model.as_deref().ok_or_else(|| {
            Error::field(&config.origin, "detector.model", "a YuNet model for face detection", "nothing")
        })?;
    let backend = registry.get(config.detector_backend())?;
    backend.check_settings(&config.backend_options(backend.name()))?;
    let session = load_face_model(config, backend, model)?.session()?;
    Ok(YunetDetector::new(session, &config.detector))
}
