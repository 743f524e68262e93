//! The `tract` backend: a model package's ONNX graph run by tract-onnx on the CPU.
//!
//! The graph is loaded and decluttered once with a symbolic batch size; an optimised plan is then
//! made for each batch size the caller uses, because tract optimises best with concrete shapes.
//! Matrix products run on a private pool of `threads` threads.

use hrm_core::{Backend, BackendOptions, Error, InferenceSession, ModelPackage, Result};
use std::collections::HashMap;
use std::sync::Arc;
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

type Plan = Arc<TypedRunnableModel>;

pub struct TractSession {
    model: TypedModel,
    batch: Symbol,
    input_shape: [usize; 3],
    plans: HashMap<usize, Plan>,
    executor: Executor,
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
        let executor = if threads > 1 { Executor::multithread(threads) } else { Executor::SingleThread };
        Ok(TractSession { model, batch, input_shape, plans: HashMap::new(), executor })
    }

    fn plan(&mut self, batch: usize) -> Result<Plan> {
        if let Some(plan) = self.plans.get(&batch) {
            return Ok(plan.clone());
        }
        let what = format!("optimising for batch {batch}");
        let values = HashMap::from([(self.batch.clone(), (batch as i64).to_dim())]);
        let plan = self
            .model
            .set_symbols(&values)
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| backend_error(&what, e))?;
        self.plans.insert(batch, plan.clone());
        Ok(plan)
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
        let plan = self.plan(batch)?;
        let tensor = Tensor::from_shape(&[batch, c, h, w], input).map_err(|e| backend_error("input", e))?;
        let outputs = multithread_tract_scope(self.executor.clone(), || plan.run(tvec!(tensor.into())))
            .map_err(|e| backend_error("running the graph", e))?;
        let output = outputs[0].to_plain_array_view::<f32>().map_err(|e| backend_error("output", e))?;
        Ok(output.iter().copied().collect())
    }
}
