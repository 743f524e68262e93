//! The `tract` backend: a model package's ONNX graph run by tract-onnx on the CPU.
//!
//! The graph is loaded and decluttered once with a symbolic batch size; an optimised plan is then
//! made for each batch size the caller uses, because tract optimises best with concrete shapes.
//! Matrix products run on a private pool of `threads` threads.
//!
//! Batches of a convolutional network are run one image at a time: tract's batched convolutions
//! cost twice as much per image as single ones on a 2-core AVX2 machine (ResNet-50: 150 ms/image
//! at batch 8, 72 ms at batch 1), while a ViT's batched matrix products gain a little.

mod pool;
pub mod yunet;

use hrm_core::manifest::Architecture;
use hrm_core::{Backend, BackendOptions, Error, InferenceSession, ModelPackage, Result};
use std::collections::HashMap;
use tract_linalg::multithread::{multithread_tract_scope, Executor};
use tract_onnx::prelude::*;

pub const NAME: &str = "tract";

/// Registers as `tract`.
#[derive(Debug, Default)]
pub struct TractBackend;

impl Backend for TractBackend {
    fn name(&self) -> &str {
        NAME
    }

    fn load(&self, package: &ModelPackage, options: &BackendOptions) -> Result<Box<dyn InferenceSession>> {
        Ok(Box::new(TractSession::load(package, options.threads)?))
    }
}

pub struct TractSession {
    model: TypedModel,
    batch: Symbol,
    input_shape: [usize; 3],
    /// Largest batch handed to tract at once (1 for convolutional networks).
    max_batch: usize,
    /// A run state per batch size: it keeps the optimised plan and reuses its buffers.
    states: HashMap<usize, TypedSimpleState>,
    executor: Executor,
}

/// A private pool of `threads` threads for matrix products (none for one thread).
fn executor(threads: usize) -> Executor {
    if threads > 1 {
        Executor::multithread(threads)
    } else {
        Executor::SingleThread
    }
}

fn backend_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend { backend: NAME.into(), message: format!("{what}: {e:#}") }
}

impl TractSession {
    pub fn load(package: &ModelPackage, threads: usize) -> Result<TractSession> {
        let path = package.onnx_path();
        let spec = &package.manifest.input;
        let input_shape = [3, spec.height, spec.width];
        let what = format!("loading {}", path.display());
        let mut model = tract_onnx::onnx().model_for_path(&path).map_err(|e| backend_error(&what, e))?;
        let batch = model.symbols.sym("N");
        let fact =
            f32::fact([batch.to_dim(), input_shape[0].to_dim(), input_shape[1].to_dim(), input_shape[2].to_dim()]);
        model.set_input_fact(0, fact.into()).map_err(|e| backend_error(&what, e))?;
        let model = model.into_typed().and_then(|m| m.into_decluttered()).map_err(|e| backend_error(&what, e))?;
        let executor = executor(threads);
        let max_batch = match package.manifest.architecture {
            Architecture::Resnet { .. } => 1,
            Architecture::Vit { .. } => usize::MAX,
        };
        Ok(TractSession { model, batch, input_shape, max_batch, states: HashMap::new(), executor })
    }

    fn state(&mut self, batch: usize) -> Result<&mut TypedSimpleState> {
        if !self.states.contains_key(&batch) {
            let what = format!("optimising for batch {batch}");
            let values = HashMap::from([(self.batch.clone(), (batch as i64).to_dim())]);
            let state = self
                .model
                .set_symbols(&values)
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .and_then(|plan| plan.spawn())
                .map_err(|e| backend_error(&what, e))?;
            self.states.insert(batch, state);
        }
        Ok(self.states.get_mut(&batch).expect("inserted above"))
    }
}

impl InferenceSession for TractSession {
    fn run(&mut self, input: &[f32], batch: usize) -> Result<Vec<f32>> {
        let [c, h, w] = self.input_shape;
        if batch == 0 || input.len() != batch * c * h * w {
            return Err(Error::InvalidInput(format!(
                "the input holds {} values, {batch} images of {c}x{h}x{w} need {}",
                input.len(),
                batch * c * h * w
            )));
        }
        let per_image = c * h * w;
        let mut result = Vec::new();
        for chunk in input.chunks(per_image * batch.min(self.max_batch)) {
            let n = chunk.len() / per_image;
            let tensor = Tensor::from_shape(&[n, c, h, w], chunk).map_err(|e| backend_error("input", e))?;
            let executor = self.executor.clone();
            let state = self.state(n)?;
            let outputs = multithread_tract_scope(executor, || state.run(tvec!(tensor.into())))
                .map_err(|e| backend_error("running the graph", e))?;
            let output = outputs[0].to_plain_array_view::<f32>().map_err(|e| backend_error("output", e))?;
            result.extend(output.iter().copied());
        }
        Ok(result)
    }
}
