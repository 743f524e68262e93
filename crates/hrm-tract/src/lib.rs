//! The `tract` backend: ONNX graphs run by tract-onnx on the CPU.
//!
//! A graph whose inputs vary only in their batch is loaded and decluttered once with a symbolic
//! batch, then optimised for each batch size the caller uses, because tract optimises best with
//! concrete shapes; a graph with free sizes (YuNet's frame) is prepared for each input shape it
//! meets. Sessions made from one loaded model share its plans (the C ABI's detectors on one
//! runtime); each keeps its own run states and a pool of `threads` threads for matrix products,
//! which it joins when dropped.
//!
//! With the `one_image_per_run` hint, batches run one image at a time: tract's batched
//! convolutions cost twice as much per image as single ones on a 2-core AVX2 machine (ResNet-50:
//! 150 ms/image at batch 8, 72 ms at batch 1), while a ViT's batched matrix products gain a little.

mod pool;
mod prelu;
mod threads;

use hrm_backend::backend::MAX_GRAPH_BYTES;
use hrm_backend::{
    Backend, BackendOptions, BackendRegistry, Dim, Error, GraphSource, GraphSpec, InferenceSession, LoadedModel,
    Result, Tensor, TensorView,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use threads::Pool;
use tract_onnx::prelude::*;

pub const NAME: &str = "tract";

/// The tract release this backend is built on (pinned in the workspace's Cargo.toml).
pub const TRACT_VERSION: &str = "0.23.9";

/// A registry of the backends built in: `tract`.
pub fn registry() -> BackendRegistry {
    let mut registry = BackendRegistry::default();
    registry.register(Box::new(TractBackend)).expect("an empty registry takes any name");
    registry
}

/// Registers as `tract`.
#[derive(Debug, Default)]
pub struct TractBackend;

impl Backend for TractBackend {
    fn name(&self) -> &str {
        NAME
    }

    /// tract takes no settings: its threads are the configuration's `threads`.
    fn check_settings(&self, options: &BackendOptions) -> Result<()> {
        options.check_known_settings(NAME, &[])
    }

    fn load(&self, graph: &GraphSpec, options: &BackendOptions) -> Result<Arc<dyn LoadedModel>> {
        Ok(Arc::new(TractModel(Arc::new(SharedGraph::load(graph, options.threads)?))))
    }
}

fn backend_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Backend { backend: NAME.into(), message: format!("{what}: {e:#}") }
}

/// The graph as loaded, before shapes are fixed.
enum Prepared {
    /// Decluttered once, the batch a symbol.
    Symbolic { model: TypedModel, batch: Symbol },
    /// Prepared anew for each input shape.
    PerShape(InferenceModel),
}

/// The most input shapes a model keeps plans for (and a session run states for); past it they are
/// made anew. A camera gives one frame size, a folder of photographs a few.
const MAX_PLANS: usize = 16;

/// A graph and the optimised plans made from it so far, which every session shares.
struct SharedGraph {
    file: String,
    prepared: Prepared,
    inputs: Vec<Vec<Dim>>,
    one_image_per_run: bool,
    threads: usize,
    plans: Mutex<HashMap<Vec<Vec<usize>>, Arc<TypedSimplePlan>>>,
}

impl SharedGraph {
    fn load(spec: &GraphSpec, threads: usize) -> Result<SharedGraph> {
        let file = spec.source.name();
        let what = format!("loading {file}");
        if let Some(dims) = spec.inputs.iter().find(|dims| dims.iter().skip(1).any(|d| *d == Dim::Batch)) {
            return Err(backend_error(&what, format!("input dimensions {dims:?}: the batch must be the first")));
        }
        let onnx = tract_onnx::onnx();
        // Read here, a regular file of bounded size, rather than mapped by tract: a FIFO or
        // /dev/zero given as a model is an error, not a hang.
        let (read, dir);
        let bytes: &[u8] = match &spec.source {
            GraphSource::File(path) => {
                read = hrm_backend::files::read_regular_file(path, MAX_GRAPH_BYTES)?;
                dir = path.parent().and_then(|d| d.to_str());
                &read
            }
            GraphSource::Embedded { bytes, .. } => {
                dir = None;
                bytes
            }
        };
        let mut proto = onnx.proto_model_for_read(&mut &bytes[..]).map_err(|e| backend_error(&what, e))?;
        // The shapes an export records for intermediate values are not used: the spec's are.
        if let Some(graph) = proto.graph.as_mut() {
            graph.value_info.clear();
            prelu::rewrite(graph);
        }
        let parsed = onnx.parse(&proto, dir).map_err(|e| backend_error(&what, e))?;
        if !parsed.unresolved_inputs.is_empty() {
            return Err(backend_error(&what, format!("unresolved inputs {:?}", parsed.unresolved_inputs)));
        }
        let mut model = parsed.model;
        let found = model.input_outlets().map_or(0, |o| o.len());
        if found != spec.inputs.len() {
            return Err(backend_error(&what, format!("the graph has {found} inputs, {} expected", spec.inputs.len())));
        }
        let prepared = if spec.inputs.iter().flatten().any(|d| *d == Dim::Any) {
            Prepared::PerShape(model)
        } else {
            let batch = model.symbols.sym("N");
            for (i, dims) in spec.inputs.iter().enumerate() {
                let shape: TVec<TDim> = dims
                    .iter()
                    .map(|d| match d {
                        Dim::Fixed(n) => n.to_dim(),
                        Dim::Batch | Dim::Any => batch.to_dim(),
                    })
                    .collect();
                model.set_input_fact(i, f32::fact(shape).into()).map_err(|e| backend_error(&what, e))?;
            }
            let model = model
                .into_typed()
                .and_then(|m| m.into_decluttered())
                .and_then(|mut m| pool::fuse_max_pools(&mut m).map(|_| m))
                .map_err(|e| backend_error(&what, e))?;
            Prepared::Symbolic { model, batch }
        };
        Ok(SharedGraph {
            file,
            prepared,
            inputs: spec.inputs.clone(),
            one_image_per_run: spec.hints.one_image_per_run,
            threads,
            plans: Mutex::default(),
        })
    }

    /// Checks input shapes against the spec: fixed sizes as declared, one batch size for all.
    fn check_inputs(&self, inputs: &[TensorView<'_>]) -> Result<()> {
        let mut batch = None;
        let fits = inputs.len() == self.inputs.len()
            && inputs.iter().zip(&self.inputs).all(|(tensor, dims)| {
                tensor.shape().len() == dims.len()
                    && tensor.shape().iter().zip(dims).all(|(&size, dim)| match dim {
                        Dim::Fixed(n) => size == *n,
                        Dim::Any => size > 0,
                        Dim::Batch => size > 0 && *batch.get_or_insert(size) == size,
                    })
            });
        if fits {
            return Ok(());
        }
        let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
        Err(Error::InvalidInput(format!("{}: inputs of shapes {shapes:?} do not fit {:?}", self.file, self.inputs)))
    }

    /// The optimised plan for these input shapes, made on first use.
    fn plan(&self, shapes: &[Vec<usize>]) -> Result<Arc<TypedSimplePlan>> {
        let mut plans = self.plans.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(plan) = plans.get(shapes) {
            return Ok(plan.clone());
        }
        let what = format!("preparing {} for inputs {shapes:?}", self.file);
        let typed = match &self.prepared {
            Prepared::Symbolic { model, batch } => {
                let size = self.batch_of(shapes.iter().map(|s| s.as_slice())).unwrap_or(1);
                model.set_symbols(&HashMap::from([(batch.clone(), (size as i64).to_dim())]))
            }
            Prepared::PerShape(model) => {
                let mut model = model.clone();
                for (i, shape) in shapes.iter().enumerate() {
                    model = model.with_input_fact(i, f32::fact(shape).into()).map_err(|e| backend_error(&what, e))?;
                }
                model.into_typed().and_then(|m| m.into_decluttered()).and_then(|mut m| {
                    pool::fuse_max_pools(&mut m)?;
                    Ok(m)
                })
            }
        };
        let plan = typed
            .and_then(|m| m.into_optimized())
            .and_then(|m| m.into_runnable())
            .map_err(|e| backend_error(&what, e))?;
        // Frames of ever new sizes would otherwise keep a plan each for the model's life.
        if plans.len() >= MAX_PLANS {
            plans.clear();
        }
        plans.insert(shapes.to_vec(), plan.clone());
        Ok(plan)
    }

    /// The batch size of inputs of these shapes (the first dimension of a batched input), if any
    /// input has a batch.
    fn batch_of<'a>(&self, shapes: impl IntoIterator<Item = &'a [usize]>) -> Option<usize> {
        (self.inputs.iter().zip(shapes)).find_map(|(dims, shape)| {
            if dims.first() == Some(&Dim::Batch) {
                shape.first().copied()
            } else {
                None
            }
        })
    }
}

/// A loaded model: sessions made from it share its graph and plans.
pub struct TractModel(Arc<SharedGraph>);

impl LoadedModel for TractModel {
    fn session(&self) -> Result<Box<dyn InferenceSession>> {
        Ok(Box::new(TractSession { graph: self.0.clone(), states: HashMap::new(), pool: Pool::new(self.0.threads) }))
    }
}

/// One user's run states (one per input shape: they reuse their buffers) over a shared model.
pub struct TractSession {
    graph: Arc<SharedGraph>,
    states: HashMap<Vec<Vec<usize>>, TypedSimpleState>,
    pool: Arc<Pool>,
}

impl TractSession {
    /// Runs the graph once on inputs already checked.
    fn run_once(&mut self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>> {
        let shapes: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        if !self.states.contains_key(&shapes) {
            if self.states.len() >= MAX_PLANS {
                self.states.clear();
            }
            let state = self.graph.plan(&shapes)?.spawn().map_err(|e| backend_error("preparing a run", e))?;
            self.states.insert(shapes.clone(), state);
        }
        let state = self.states.get_mut(&shapes).expect("inserted above");
        let values = inputs
            .iter()
            .map(|t| Tensor_::from_shape(t.shape(), t.data()).map(|t| t.into_tvalue()))
            .collect::<TractResult<TVec<TValue>>>()
            .map_err(|e| backend_error("input", e))?;
        let outputs = threads::run_in(self.pool.executor(), || state.run(values))
            .map_err(|e| backend_error(&format!("running {}", self.graph.file), e))?;
        outputs
            .iter()
            .map(|output| {
                let view = output.to_plain_array_view::<f32>().map_err(|e| backend_error("output", e))?;
                Tensor::new(view.shape().to_vec(), view.iter().copied().collect())
            })
            .collect()
    }
}

/// tract's tensor type, named apart from hrm's.
type Tensor_ = tract_onnx::prelude::Tensor;

impl InferenceSession for TractSession {
    fn run(&mut self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>> {
        self.graph.check_inputs(inputs)?;
        let batch = self.graph.batch_of(inputs.iter().map(|t| t.shape())).unwrap_or(1);
        if !self.graph.one_image_per_run || batch == 1 {
            return self.run_once(inputs);
        }
        // One item at a time, the outputs joined along their first axis.
        let mut joined: Vec<(Vec<usize>, Vec<f32>)> = Vec::new();
        for item in 0..batch {
            let slices: Vec<(Vec<usize>, &[f32])> = inputs
                .iter()
                .zip(&self.graph.inputs)
                .map(|(tensor, dims)| match dims.first() {
                    Some(Dim::Batch) => {
                        let per_item = tensor.data().len() / batch;
                        let mut shape = tensor.shape().to_vec();
                        shape[0] = 1;
                        (shape, &tensor.data()[item * per_item..][..per_item])
                    }
                    _ => (tensor.shape().to_vec(), tensor.data()),
                })
                .collect();
            let views = slices.iter().map(|(shape, data)| TensorView::new(shape, data)).collect::<Result<Vec<_>>>()?;
            let outputs = self.run_once(&views)?;
            if let Some(output) = outputs.iter().find(|o| o.shape().first() != Some(&1)) {
                return Err(backend_error(
                    "one_image_per_run",
                    format!("an output of shape {:?} for one image has no batch axis to join along", output.shape()),
                ));
            }
            joined.resize_with(outputs.len(), Default::default);
            for ((shape, data), output) in joined.iter_mut().zip(outputs) {
                *shape = output.shape().to_vec();
                data.extend_from_slice(output.data());
            }
        }
        joined
            .into_iter()
            .map(|(mut shape, data)| {
                if let Some(first) = shape.first_mut() {
                    *first *= batch;
                }
                Tensor::new(shape, data)
            })
            .collect()
    }
}
