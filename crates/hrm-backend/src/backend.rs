//! The backend traits: a [`Backend`] loads a graph once ([`LoadedModel`]), and each user makes its
//! own [`InferenceSession`] from it to run tensors through. Pre- and post-processing are not here:
//! they live once in `hrm-core`, so every backend gives the same answers for the same graph.

use crate::error::{Error, Result};
use crate::tensor::{Tensor, TensorView};
use std::path::PathBuf;
use std::sync::Arc;

/// One dimension of a graph input as its user will feed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// Always this size.
    Fixed(usize),
    /// The batch: any size, the same for every input of one run; outputs follow it.
    Batch,
    /// Any size, possibly different at every run (YuNet's frame height and width).
    Any,
}

/// What a backend may need to know about a model to run it well. Each hint comes from the model's
/// manifest (or its user), never from the backend recognising an architecture.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hints {
    /// Run a batch one item at a time and join the outputs: a backend whose batched convolutions
    /// cost more per image than single ones (tract on a CPU) follows it; others may ignore it.
    pub one_image_per_run: bool,
}

/// Where a graph's ONNX bytes come from.
#[derive(Debug, Clone, PartialEq)]
pub enum GraphSource {
    /// An ONNX file; external data is read from its folder.
    File(PathBuf),
    /// A graph compiled into the program (hrm's built-in models), every weight inside it;
    /// `name` stands for it in errors.
    Embedded { name: String, bytes: &'static [u8] },
}

impl GraphSource {
    /// The file, or the built-in model's name, for messages.
    pub fn name(&self) -> String {
        match self {
            GraphSource::File(path) => path.display().to_string(),
            GraphSource::Embedded { name, .. } => format!("built-in {name}"),
        }
    }
}

/// A graph to load: its ONNX bytes and the shapes its inputs will have.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphSpec {
    pub source: GraphSource,
    /// One entry per graph input, in the graph's order.
    pub inputs: Vec<Vec<Dim>>,
    pub hints: Hints,
    /// The file the graph's external tensors live in (a package's weights), when it has one;
    /// backends that read the graph themselves find it from the graph's folder, plugins are told.
    pub weights: Option<PathBuf>,
}

/// The largest graph file a backend reads (protobuf's own limit; a converted graph keeps its
/// weights in a separate file and is a few hundred KB).
pub const MAX_GRAPH_BYTES: u64 = 2 << 30;

/// What a backend is told beyond the graph.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackendOptions {
    /// Threads for matrix products (already resolved: at least 1).
    pub threads: usize,
    /// The configuration's `[backend.NAME]` table for this backend (device, precision,
    /// providers, ...); empty when there is none. The backend validates it.
    pub settings: toml::Table,
    /// The configuration the settings came from, for errors that name a key.
    pub origin: PathBuf,
}

impl BackendOptions {
    /// Refuses any setting not in `known`, naming the key (`backend.tract.device`), the file and
    /// the settings the backend takes.
    pub fn check_known_settings(&self, backend: &str, known: &[&str]) -> Result<()> {
        match self.settings.keys().find(|key| !known.contains(&key.as_str())) {
            None => Ok(()),
            Some(key) => Err(Error::field(
                &self.origin,
                format!("backend.{backend}.{key}"),
                if known.is_empty() {
                    format!("no settings (the {backend} backend takes none)")
                } else {
                    format!("one of the {backend} backend's settings: {}", known.join(", "))
                },
                "an unknown key",
            )),
        }
    }
}

/// A loaded graph: every session made from it shares its weights (and whatever the backend
/// prepared), and keeps its own buffers.
pub trait LoadedModel: Send + Sync {
    fn session(&self) -> Result<Box<dyn InferenceSession>>;

    /// What runs the graph: the CPU, unless the backend says otherwise.
    fn placement(&self) -> Placement {
        Placement { device: "cpu".into(), notes: String::new() }
    }
}

/// The device (or execution provider) a loaded graph runs on, and how it came to run there.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    /// `cpu`, `cuda`, `tensorrt`, ...
    pub device: String,
    /// The devices tried before it and why they were not used; empty when the first choice runs it.
    pub notes: String,
}

/// One user's way of running a loaded graph.
pub trait InferenceSession: Send {
    /// Runs the graph: one tensor per graph input, in the graph's order, shaped as the
    /// [`GraphSpec`] allows; gives one tensor per graph output, in the graph's order.
    fn run(&mut self, inputs: &[TensorView<'_>]) -> Result<Vec<Tensor>>;
}

/// A named way of running graphs (`tract` on the CPU, ONNX Runtime, candle).
pub trait Backend: Send + Sync {
    fn name(&self) -> &str;
    /// Checks `options.settings` (this backend's `[backend.NAME]` table), with errors that name
    /// the key; the runtime calls it before it loads anything.
    fn check_settings(&self, options: &BackendOptions) -> Result<()>;
    /// Loads a graph, with settings already checked.
    fn load(&self, graph: &GraphSpec, options: &BackendOptions) -> Result<Arc<dyn LoadedModel>>;
}

/// Backends by name; the CLI and the C ABI register what they were built with.
#[derive(Default)]
pub struct BackendRegistry {
    backends: Vec<Box<dyn Backend>>,
    /// Why backends one might look for are missing (plugins refused), for the unknown-backend error.
    notes: Vec<String>,
}

impl BackendRegistry {
    /// Adds a backend; a second one under a name already taken is refused.
    pub fn register(&mut self, backend: Box<dyn Backend>) -> Result<()> {
        if self.backends.iter().any(|b| b.name() == backend.name()) {
            return Err(Error::DuplicateBackend { name: backend.name().to_string() });
        }
        self.backends.push(backend);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Result<&dyn Backend> {
        self.backends.iter().find(|b| b.name() == name).map(|b| b.as_ref()).ok_or_else(|| {
            let known = std::iter::once(self.names().join(", ")).chain(self.notes.iter().cloned());
            Error::UnknownBackend { name: name.to_string(), known: known.collect::<Vec<_>>().join("; ") }
        })
    }

    /// Records why a backend is missing (a plugin refused), named by [`BackendRegistry::get`]'s error.
    pub fn note(&mut self, note: String) {
        self.notes.push(note);
    }

    pub fn names(&self) -> Vec<&str> {
        self.backends.iter().map(|b| b.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Named(&'static str);

    impl Backend for Named {
        fn name(&self) -> &str {
            self.0
        }

        fn check_settings(&self, options: &BackendOptions) -> Result<()> {
            options.check_known_settings(self.0, &[])
        }

        fn load(&self, _: &GraphSpec, _: &BackendOptions) -> Result<Arc<dyn LoadedModel>> {
            Err(Error::Backend { backend: self.0.into(), message: "not a real backend".into() })
        }
    }

    #[test]
    fn a_name_is_registered_once() {
        let mut registry = BackendRegistry::default();
        registry.register(Box::new(Named("a"))).unwrap();
        registry.register(Box::new(Named("b"))).unwrap();
        let err = registry.register(Box::new(Named("a"))).unwrap_err().to_string();
        assert!(err.contains("`a` is already registered"), "{err}");
        assert_eq!(registry.names(), ["a", "b"]);
        let err = registry.get("c").err().unwrap().to_string();
        assert!(err.contains("`c`") && err.contains("a, b"), "{err}");
    }

    #[test]
    fn unknown_settings_name_the_key_and_the_file() {
        let mut options = BackendOptions { origin: "gpu.toml".into(), ..BackendOptions::default() };
        options.settings.insert("devise".into(), "cuda".into());
        let err = options.check_known_settings("ort", &["device"]).unwrap_err().to_string();
        assert!(err.contains("gpu.toml") && err.contains("backend.ort.devise") && err.contains("device"), "{err}");
        options.settings.clear();
        options.settings.insert("device".into(), "cuda".into());
        assert!(options.check_known_settings("ort", &["device"]).is_ok());
        assert!(options.check_known_settings("tract", &[]).unwrap_err().to_string().contains("takes none"));
    }
}
