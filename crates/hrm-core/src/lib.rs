//! hrm-core: everything about running the Hugging Rain Man AU models that does not depend on a
//! backend — the AU catalogue, model packages, configuration, HRM's exact pre-processing, face
//! detection and alignment, AU models, and the runtime that assembles them from a configuration.
//! What a backend implements lives in `hrm-backend`, re-exported here.

pub mod align;
pub mod atypicality;
pub mod au;
pub mod au_model;
pub mod blendshapes;
pub mod config;
pub mod face;
pub mod geometry;
pub mod image;
pub mod manifest;
pub mod mesh;
pub mod onnx_graph;
pub mod pipeline;
pub mod plugin;
pub mod preprocess;
pub mod resize;
pub mod runtime;
pub mod stream;
pub mod track;

pub use hrm_backend::{backend, error, files, tensor};

pub use au::{Au, AuList};
pub use au_model::{AuClassifier, AuDetector, FaceAus};
pub use config::Config;
pub use error::{Error, Result};
pub use hrm_backend::{Backend, BackendOptions, BackendRegistry, InferenceSession, LoadedModel, Tensor, TensorView};
pub use image::{ImageView, PixelFormat, RgbImage};
pub use manifest::{Manifest, ModelPackage};
pub use runtime::{LoadError, Runtime};
