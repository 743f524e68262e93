//! The one place that turns a configuration into loaded models: the AU model package and the face
//! detector, each on its configured backend, verified once. Detectors, pipelines and streams are
//! made from a [`Runtime`]; they share its models' weights and keep their own state.

use crate::atypicality::Atypicality;
use crate::au::AuList;
use crate::au_model::{AuClassifier, AuDetector};
use crate::blendshapes::BlendshapeEstimator;
use crate::config::{Config, DetectorKind};
use crate::error::{Error, Result};
use crate::face::YunetDetector;
use crate::manifest::{
    check_hash, check_thresholds, ModelKind, ModelPackage, BLENDSHAPES_FILE, FACE_DETECTOR_FILE, LANDMARKS_FILE,
    MANIFEST_FILE,
};
use crate::mesh::{self, FaceMesher, MeshModels};
use crate::pipeline::Pipeline;
use crate::stream::{AtypicalityInputs, Stream, Tracks};
use hrm_backend::{Backend, BackendOptions, BackendRegistry, GraphSource, LoadedModel, Placement};
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
    /// The AU classifier's graph, or the blendshapes network.
    au_model: Arc<dyn LoadedModel>,
    /// YuNet, for raw frames.
    face_model: Option<Arc<dyn LoadedModel>>,
    /// BlazeFace, the face mesh and its geometry, when the AU model reads landmarks or
    /// `[mesh] enabled` (raw frames only).
    mesh: Option<MeshModels>,
    /// `[atypicality] model`, with its AUs found among the AU model's.
    atypicality: Option<AtypicalityInputs>,
}

impl Runtime {
    /// Loads the package named by `config.model` (the built-in MediaPipe estimator without one),
    /// the face detector (`[detector] model`, or the built-in YuNet) and the face mesh, on the
    /// backends the configuration names from `registry`.
    pub fn load(config: Config, registry: &BackendRegistry) -> Result<Runtime, LoadError> {
        Runtime::load_stages(config, registry, true)
    }

    /// As [`Runtime::load`], for faces that come aligned: no face detector or mesh is loaded
    /// (nor needed), and [`Runtime::pipeline`] is an error.
    pub fn load_without_face_detector(config: Config, registry: &BackendRegistry) -> Result<Runtime, LoadError> {
        Runtime::load_stages(config, registry, false)
    }

    fn load_stages(config: Config, registry: &BackendRegistry, faces: bool) -> Result<Runtime, LoadError> {
        use LoadError::{Config as Bad, Model};
        let au_backend = registry.get(&config.backend).map_err(Bad)?;
        let face_backend = registry.get(config.detector_backend()).map_err(Bad)?;
        let mesh_backend = registry.get(config.mesh_backend()).map_err(Bad)?;
        // The backends used, and every one a settings table names (which must be registered),
        // each check their settings once.
        let mut checked =
            std::collections::BTreeSet::from([au_backend.name(), face_backend.name(), mesh_backend.name()]);
        for name in config.backend.settings.keys() {
            if registry.get(name).is_err() {
                return Err(Bad(Error::field(
                    &config.origin,
                    format!("[{name}]"),
                    format!(
                        "a section of the configuration, or the settings of a backend (backends: {})",
                        registry.names().join(", ")
                    ),
                    format!("`{name}`, which is neither"),
                )));
            }
            checked.insert(name);
        }
        for name in checked {
            registry.get(name).and_then(|b| b.check_settings(&config.backend_options(name))).map_err(Bad)?;
        }
        let package = match &config.model {
            Some(dir) => ModelPackage::load(dir),
            None => ModelPackage::builtin_mediapipe(),
        }
        .map_err(Model)?;
        let aus = package.manifest.au_list();
        check_thresholds(&config.origin, "thresholds", &aus, &config.thresholds, false).map_err(Bad)?;
        // A loaded package has a threshold for every AU; 0.5 (HRM's) should one be missing.
        let thresholds = (aus.aus().iter())
            .map(|au| config.thresholds.get(au.id).or(package.manifest.thresholds.get(au.id)).copied().unwrap_or(0.5))
            .collect();
        let au_options = config.backend_options(au_backend.name());
        let reads_landmarks = package.manifest.kind == ModelKind::MediapipeBlendshapes;
        // MediaPipe's networks are small: on more threads than one they wait on each other longer
        // than they compute (measured: a 640x480 frame 25.5 ms on 2 threads, 19.9 ms on 1).
        let small_options = BackendOptions { threads: 1, ..au_options.clone() };
        let (au_spec, options) = match reads_landmarks {
            true => (crate::blendshapes::graph_spec(package.graph_source(BLENDSHAPES_FILE)), &small_options),
            false => (package.graph_spec(), &au_options),
        };
        let au_model = au_backend.load(&au_spec, options).map_err(Model)?;
        let (mut face_model, mut mesh) = (None, None);
        let blazeface = config.detector.kind == DetectorKind::Blazeface;
        if blazeface && !reads_landmarks {
            return Err(Bad(Error::field(
                &config.origin,
                "detector.kind",
                "\"yunet\" for an AU model that aligns crops by keypoints (BlazeFace gives no mouth corners)",
                "\"blazeface\"",
            )));
        }
        if faces {
            if !blazeface {
                let source = yunet_source(&config).map_err(Model)?;
                let options = config.backend_options(face_backend.name());
                face_model = Some(face_backend.load(&YunetDetector::graph_spec(source), &options).map_err(Model)?);
            }
            if reads_landmarks || config.mesh.enabled {
                let mesh_package = match (&config.mesh.model, reads_landmarks) {
                    (Some(dir), _) => mediapipe_package(dir).map_err(Model)?,
                    (None, true) => package.clone(),
                    (None, false) => ModelPackage::builtin_mediapipe().map_err(Model)?,
                };
                let options = BackendOptions { threads: 1, ..config.backend_options(mesh_backend.name()) };
                mesh = Some(load_mesh(&mesh_package, mesh_backend, &options).map_err(Model)?);
            }
        }
        let atypicality = match &config.atypicality.model {
            Some(dir) => Some(atypicality_inputs(dir, &aus, &config)?),
            None => None,
        };
        Ok(Runtime { config, package, aus, thresholds, au_model, face_model, mesh, atypicality })
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

    /// What runs each loaded model, by stage: the backend's name and its placement (the device or
    /// execution provider, and why when it is not the first choice).
    pub fn placements(&self) -> Vec<(&'static str, &str, Placement)> {
        let config = &self.config;
        let mut stages = vec![("au model", config.backend.name.as_str(), self.au_model.placement())];
        match (&self.face_model, &self.mesh) {
            (Some(yunet), _) => stages.push(("face detector", config.detector_backend(), yunet.placement())),
            // BlazeFace, the mesh's own detector, runs where the mesh does.
            (None, Some(mesh)) => stages.push(("face detector", config.mesh_backend(), mesh.face_detector.placement())),
            (None, None) => {}
        }
        if let Some(mesh) = &self.mesh {
            stages.push(("face mesh", config.mesh_backend(), mesh.landmarks.placement()));
        }
        stages
    }

    /// Whether raw frames can be processed (a face detector is loaded: YuNet, or BlazeFace with
    /// the mesh).
    pub fn has_face_detector(&self) -> bool {
        self.face_model.is_some() || self.mesh.is_some()
    }

    /// Whether results carry the face mesh's landmarks and head pose.
    pub fn has_mesh(&self) -> bool {
        self.mesh.is_some()
    }

    /// The face mesh alone, with sessions of its own (`hrm bench` times its stages), when loaded.
    pub fn face_mesher(&self) -> Result<Option<FaceMesher>> {
        self.mesh.as_ref().map(FaceMesher::new).transpose()
    }

    /// A session of the AU model's graph alone, without pre- or post-processing (`hrm bench`).
    pub fn au_session(&self) -> Result<Box<dyn hrm_backend::InferenceSession>> {
        self.au_model.session()
    }

    /// The AU model with a session of its own.
    pub fn au_detector(&self) -> Result<Box<dyn AuDetector>> {
        let session = self.au_model.session()?;
        let manifest = &self.package.manifest;
        Ok(match manifest.kind {
            ModelKind::AuClassifier => {
                Box::new(AuClassifier::new(manifest, session, self.thresholds.clone(), self.config.batch_size)?)
            }
            ModelKind::MediapipeBlendshapes => {
                Box::new(BlendshapeEstimator::new(manifest, session, self.thresholds.clone()))
            }
        })
    }

    /// The whole pipeline for raw frames, with sessions of its own; an error when the runtime
    /// was loaded for aligned faces only.
    pub fn pipeline(&self) -> Result<Pipeline> {
        if !self.has_face_detector() {
            return Err(Error::InvalidInput(
                "this runtime was loaded for aligned faces only: it has no face detector".into(),
            ));
        }
        let faces = match &self.face_model {
            Some(model) => Some(Box::new(YunetDetector::new(model.session()?, &self.config.detector)) as _),
            None => None,
        };
        let max_faces = self.config.detector.max_faces;
        let mesh = self.mesh.as_ref().map(|m| FaceMesher::new(m).map(|m| m.with_max_faces(max_faces))).transpose()?;
        Ok(Pipeline::new(faces, mesh, self.au_detector()?, self.config.alignment.clone()))
    }

    /// A stream: the pipeline, with face tracks, `[stream]` smoothing and the `[atypicality]`
    /// score.
    pub fn stream(&self) -> Result<Stream> {
        Ok(Stream::new(self.pipeline()?, self.tracks()))
    }

    /// The tracks of a stream alone, for frames whose faces pipelines elsewhere find.
    pub fn tracks(&self) -> Tracks {
        Tracks::new(self.config.stream.clone(), self.thresholds.clone(), self.atypicality.clone())
    }

    /// The atypicality regressor of `[atypicality] model`, when configured.
    pub fn atypicality(&self) -> Option<&Atypicality> {
        self.atypicality.as_ref().map(|a| a.model.as_ref())
    }

    /// The regressor's AUs that the AU model never estimates (the built-in estimator's AD19, AU23
    /// and AD32): the regressor reads them as absent, so its scores only approximate HRM's.
    pub fn atypicality_inputs_not_estimated(&self) -> Vec<&'static str> {
        let (Some(atypicality), ModelKind::MediapipeBlendshapes) = (&self.atypicality, self.package.manifest.kind)
        else {
            return Vec::new();
        };
        let reads = atypicality.model.aus();
        (crate::blendshapes::AU_ESTIMATES.iter())
            .filter(|(id, estimate)| {
                matches!(estimate, crate::blendshapes::Estimate::None) && reads.index_of(id).is_some()
            })
            .map(|(id, _)| *id)
            .collect()
    }
}

/// The atypicality package at `dir`, whose every AU the AU model must give (the estimator built
/// into hrm lacks three of HRM's 22).
fn atypicality_inputs(dir: &std::path::Path, aus: &AuList, config: &Config) -> Result<AtypicalityInputs, LoadError> {
    let model = Atypicality::load(dir).map_err(LoadError::Model)?;
    let columns = (model.aus().aus().iter()).map(|au| aus.index_of(au.id).ok_or(au.id)).collect::<Vec<_>>();
    let missing: Vec<&str> = columns.iter().filter_map(|c| c.err()).collect();
    if !missing.is_empty() {
        return Err(LoadError::Config(Error::field(
            &config.origin,
            "atypicality.model",
            format!("a regressor whose AUs the AU model gives ({})", aus.ids().join(", ")),
            format!("{} reading {}, which it does not", dir.display(), missing.join(", ")),
        )));
    }
    let columns = columns.into_iter().flatten().collect();
    Ok(AtypicalityInputs { model: Arc::new(model), columns })
}

/// The configuration's YuNet file, or the YuNet-s compiled in (checked against
/// `models/SHA256SUMS`).
fn yunet_source(config: &Config) -> Result<GraphSource> {
    if let Some(path) = &config.detector.model {
        return Ok(GraphSource::File(path.clone()));
    }
    let file = hrm_models::YUNET;
    let expected = hrm_models::expected_sha256(file.name).unwrap_or("none");
    let path = std::path::PathBuf::from("<built-in>").join(file.name);
    check_hash(&path, expected, crate::manifest::sha256_bytes(file.bytes))?;
    Ok(GraphSource::Embedded { name: file.name.into(), bytes: file.bytes })
}

/// The package `[mesh] model` names, which must hold MediaPipe's networks.
fn mediapipe_package(dir: &std::path::Path) -> Result<ModelPackage> {
    let package = ModelPackage::load(dir)?;
    if package.manifest.kind != ModelKind::MediapipeBlendshapes {
        let found = format!("a package of kind {:?}", package.manifest.kind);
        return Err(Error::field(
            dir.join(MANIFEST_FILE),
            "kind",
            "\"mediapipe-blendshapes\" (for [mesh] model)",
            found,
        ));
    }
    Ok(package)
}

/// A `mediapipe-blendshapes` package's BlazeFace, face mesh and geometry, loaded.
fn load_mesh(package: &ModelPackage, backend: &dyn Backend, options: &BackendOptions) -> Result<MeshModels> {
    let input = package.manifest.input.clone();
    let geometry = package.geometry().ok_or_else(|| {
        Error::field(package.dir.join(MANIFEST_FILE), "kind", "\"mediapipe-blendshapes\"", "another kind")
    })?;
    Ok(MeshModels {
        face_detector: backend.load(&mesh::face_detector_graph(package.graph_source(FACE_DETECTOR_FILE)), options)?,
        landmarks: backend.load(&mesh::landmarks_graph(package.graph_source(LANDMARKS_FILE), &input), options)?,
        geometry,
        input,
    })
}

/// The configuration's face detector alone, without an AU model (`hrm bench --detection`).
pub fn face_detector_alone(config: &Config, registry: &BackendRegistry) -> Result<(YunetDetector, Placement)> {
    let source = yunet_source(config)?;
    let backend = registry.get(config.detector_backend())?;
    let options = config.backend_options(backend.name());
    backend.check_settings(&options)?;
    let model = backend.load(&YunetDetector::graph_spec(source), &options)?;
    Ok((YunetDetector::new(model.session()?, &config.detector), model.placement()))
}
