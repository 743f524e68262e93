//! hrm-backend: what a backend of hrm implements and nothing more — tensors, the backend traits
//! and their registry, the error type, and the rules for reading files. A backend (built in, or a
//! plugin) depends on this crate alone, without the image decoders and pre-processing of
//! `hrm-core`.

pub mod backend;
pub mod error;
pub mod files;
pub mod tensor;

pub use backend::{
    Backend, BackendOptions, BackendRegistry, Dim, GraphSource, GraphSpec, Hints, InferenceSession, LoadedModel,
    Placement,
};
pub use error::{Error, Result};
pub use tensor::{Tensor, TensorView};
