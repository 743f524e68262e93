//! The `tract` backend: a model package's ONNX graph run by tract-onnx on the CPU.
//!
//! The graph is loaded and decluttered once with a symbolic batch size; an optimised plan is then
//! made for each batch size the caller uses, because tract optimises best with concrete shapes.
//! Sessions made from one loaded model share its weights and plans (the C ABI's detectors on
//! one runtime); each keeps its own run buffers and a pool of `threads` threads for matrix
//! products, which it joins when dropped.
//!
//! Batches of a convolutional network are run one image at a time: tract's batched convolutions
//! cost twice as much per image as single ones on a 2-core AVX2 machine (ResNet-50: 150 ms/image
//! at batch 8, 72 ms at batch 1), while a ViT's batched matrix products gain a little.

mod pool;
mod threads;
pub mod yunet;

use hrm_core::manifest::Architecture;
use hrm_core::{Backend, BackendOptions, BackendRegistry, Error, InferenceSession, LoadedModel, ModelPackage, Result};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use threads::Pool;
use tract_onnx::prelude::*;

pub const NAME: &str = "tract";

/// A registry of the backends built in: `tract`.
pub fn registry() -> BackendRegistry {
    let mut registry = BackendRegistry::default();
    registry.register(Box::new(TractBackend));
    registry
}

/// Registers as `tract`.
#[derive(Debug, Default)]
pub struct TractBackend;

impl Backend for TractBackend {
    fn name(&self) -> &str {
        NAME
    }

    fn load(&self, package: &ModelPackage, options: &BackendOptions) -> Result<Arc<dyn LoadedModel>> {
        Ok(Arc::new(TractModel(Arc::new(SharedGraph::load(package, options.threads)?))))
    }
}

/// A package's graph, loaded and decluttered once with a symbolic batch size, and the optimised
/// plans made from it so far, which every session shares.
struct SharedGraph {
    model: TypedModel,
    batch: Symbol,
    input_shape: [usize; 3],
    /// Largest batch handed to tract at once (1 for convolutional networks).
    max_batch: usize,
    threads: usize,
    plans: Mutex<HashMap<usize, Arc<TypedSimplePlan>>>,
}

impl SharedGraph {
    fn load(package: &ModelPackage, threads: usize) -> Result<SharedGraph> {
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
        let max_batch = match package.manifest.architecture {
            Architecture::Resnet { .. } => 1,
            Architecture::Vit { .. } => usize::MAX,
        };
        Ok(SharedGraph { model, batch, input_shape, max_batch, threads, plans: Mutex::default() })
    }

    /// The optimised plan for a batch size, made on first use.
    fn plan(&self, batch: usize) -> Result<Arc<TypedSimplePlan>> {
        let mut plans = self.plans.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(plan) = plans.get(&batch) {
            return Ok(plan.clone());
        }
        let values = HashMap::from([(self.batch.clone(), (batch as i64).to_dim())]);
        let plan = self
            .model
            .set_symbols(&values)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| backend_error(&format!("optimising for batch {batch}"), e))?;
        plans.insert(batch, plan.clone());
        Ok(plan)
    }
}

/// A loaded model: sessions made from it share its graph, weights and plans.
pub struct TractModel(Arc<SharedGraph>);

impl LoadedModel for TractModel {
    fn session(&self) -> Result<Box<dyn InferenceSession>> {
        Ok(Box::new(TractSession { graph: self.0.clone(), states: HashMap::new(), pool: Pool::new(self.0.threads) }))
    }
}

/// One user's run states (one per batch size: they reuse their buffers) over a shared model.
pub struct TractSession {
    graph: Arc<SharedGraph>,
    states: HashMap<usize, TypedSimpleState>,
    pool: Arc<Pool>,
}

fn backend_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend { backend: NAME.into(), message: format!("{what}: {e:#}") }
}

impl TractSession {
    fn state(&mut self, batch: usize) -> Result<&mut TypedSimpleState> {
        if !self.states.contains_key(&batch) {
            let state =
                self.graph.plan(batch)?.spawn().map_err(|e| backend_error(&format!("preparing batch {batch}"), e))?;
            self.states.insert(batch, state);
        }
        Ok(self.states.get_mut(&batch).expect("inserted above"))
    }
}

impl InferenceSession for TractSession {
    fn run(&mut self, input: &[f32], batch: usize) -> Result<Vec<f32>> {
        let [c, h, w] = self.graph.input_shape;
        if batch == 0 || input.len() != batch * c * h * w {
            return Err(Error::InvalidInput(format!(
                "the input holds {} values, {batch} images of {c}x{h}x{w} need {}",
                input.len(),
                batch * c * h * w
            )));
        }
        let per_image = c * h * w;
        let mut result = Vec::new();
        for chunk in input.chunks(per_image * batch.min(self.graph.max_batch)) {
            let n = chunk.len() / per_image;
            let tensor = Tensor::from_shape(&[n, c, h, w], chunk).map_err(|e| backend_error("input", e))?;
            let executor = self.pool.executor();
            let state = self.state(n)?;
            let outputs = threads::run_in(executor, || state.run(tvec!(tensor.into())))
                .map_err(|e| backend_error("running the graph", e))?;
            let output = outputs[0].to_plain_array_view::<f32>().map_err(|e| backend_error("output", e))?;
            result.extend(output.iter().copied());
        }
        Ok(result)
    }
}
