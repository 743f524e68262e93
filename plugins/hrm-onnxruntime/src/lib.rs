//! libhrm_onnxruntime.so: ONNX Runtime as an hrm backend plugin (`backend = "onnxruntime"`),
//! with its CPU, CUDA and TensorRT execution providers. The ONNX Runtime library itself is loaded
//! at run time (`[onnxruntime] library`, `ORT_DYLIB_PATH`, or beside this plugin), so the plugin
//! builds and loads on any machine and uses a GPU where the library and the device are there.
//!
//! This file is the plugin's face to hrm: `hrm_plugin::export` makes the C table from it.

mod graph;
mod options;
mod runtime;
mod session;

use hrm_plugin::export::{Description, Model, Plugin};
use options::Options;
use session::OrtSession;
use std::path::Path;

/// ONNX Runtime, as the plugin `onnxruntime`.
struct OnnxRuntime;

hrm_plugin::export_plugin!(OnnxRuntime, c"onnxruntime");

impl Plugin for OnnxRuntime {
    type Options = Options;
    type Session = OrtSession;

    fn options(toml: &str, dir: Option<&Path>) -> Result<Options, String> {
        Options::parse(toml, dir)
    }

    fn describe(options: &Options) -> Result<Description, String> {
        let loaded = runtime::load(options)?;
        let devices = runtime::availability(&loaded, options)?
            .into_iter()
            .map(|(provider, why)| match why {
                None => provider.name().to_string(),
                Some(why) => format!("{}: {why}", provider.name()),
            })
            .collect();
        Ok(Description {
            version: env!("CARGO_PKG_VERSION").into(),
            runtime: format!("ONNX Runtime {} at {}", loaded.version, loaded.library.display()),
            devices,
        })
    }

    fn open(model: &Model, options: &Options) -> Result<OrtSession, String> {
        OrtSession::open(model, options)
    }
}
