//! hrm-core: everything about running the Hugging Rain Man AU models that does not depend on a
//! backend — the AU catalogue, model packages, configuration, HRM's exact pre-processing, and the
//! detector and backend traits.

pub mod align;
pub mod au;
pub mod config;
pub mod detector;
pub mod error;
pub mod face;
pub mod files;
pub mod image;
pub mod manifest;
pub mod onnx_graph;
pub mod pipeline;
pub mod preprocess;
pub mod resize;

pub use au::{Au, AuSet};
pub use config::Config;
pub use detector::{
    AuDetector, Backend, BackendOptions, BackendRegistry, FaceAus, InferenceSession, LoadedModel, ModelDetector,
};
pub use error::{Error, Result};
pub use image::{ImageView, PixelFormat, RgbImage};
pub use manifest::{Manifest, ModelPackage};
