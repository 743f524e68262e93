//! One ONNX Runtime session for one graph: opened on the first provider of the options' list that
//! can run it (or, with `fallback = false`, on the first or not at all), then run on f32 tensors.

use crate::graph::free_input_shapes;
use crate::options::{Options, Provider};
use crate::runtime::{self, Loaded};
use hrm_plugin::export::{Model, WriteOutput};
use ort::session::builder::GraphOptimizationLevel;
use ort::session::Session;
use ort::value::TensorRef;
use std::sync::Mutex;

pub struct OrtSession {
    /// ort runs a session through `&mut` (ONNX Runtime's Run is documented thread-safe, but ort
    /// does not promise it): concurrent runs of one session take turns.
    session: Mutex<Session>,
    outputs: usize,
    provider: Provider,
    /// The providers tried before, and why they were not used.
    notes: String,
}

impl OrtSession {
    pub fn open(model: &Model, options: &Options) -> Result<OrtSession, String> {
        let loaded = runtime::load(options)?;
        // The graph as ONNX Runtime will read it: the file itself when its declared input shapes
        // agree with hrm's, otherwise rewritten in memory.
        let file_bytes;
        let original: &[u8] = match &model.graph_path {
            Some(path) => {
                file_bytes = read_graph(path)?;
                &file_bytes
            }
            None => &model.graph_bytes,
        };
        let rewritten =
            free_input_shapes(original, &model.inputs).map_err(|e| format!("loading {}: {e}", model.name))?;
        let mut notes = Vec::new();
        for (i, &provider) in options.providers.iter().enumerate() {
            match open_on(&loaded, model, rewritten.as_deref(), original, provider, options) {
                Ok(session) => {
                    let outputs = session.outputs().len();
                    let session = Mutex::new(session);
                    return Ok(OrtSession { session, outputs, provider, notes: notes.join("; ") });
                }
                Err(why) => {
                    let last = i + 1 == options.providers.len();
                    if !options.fallback || last {
                        let mut message = format!("{}: {}", provider.name(), why);
                        if !notes.is_empty() {
                            message = format!("{}; {message}", notes.join("; "));
                        }
                        let advice = match options.fallback {
                            false if !last => " (fallback = false: the next provider in `providers` is not tried)",
                            _ => "",
                        };
                        return Err(format!(
                            "loading {}: no execution provider could run it: {message}{advice}",
                            model.name
                        ));
                    }
                    notes.push(format!("{} not used: {}", provider.name(), why.trim_end_matches('.')));
                }
            }
        }
        unreachable!("the options hold at least one provider")
    }
}

impl hrm_plugin::export::Session for OrtSession {
    fn outputs(&self) -> usize {
        self.outputs
    }

    fn device(&self) -> String {
        self.provider.name().to_string()
    }

    fn notes(&self) -> String {
        self.notes.clone()
    }

    fn run(&self, inputs: &[(Vec<i64>, &[f32])], output: &mut WriteOutput<'_>) -> Result<(), String> {
        let values = inputs
            .iter()
            .map(|(shape, data)| TensorRef::from_array_view((shape.clone(), *data)).map(Into::into))
            .collect::<ort::Result<Vec<ort::session::SessionInputValue<'_>>>>()
            .map_err(|e| e.to_string())?;
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs = session.run(values.as_slice()).map_err(|e| e.to_string())?;
        for i in 0..outputs.len() {
            let (shape, data) = outputs[i].try_extract_tensor::<f32>().map_err(|e| format!("output {i}: {e}"))?;
            output(i, shape, data)?;
        }
        Ok(())
    }
}

/// The largest graph file read (protobuf's own limit).
const MAX_GRAPH_BYTES: u64 = 2 << 30;

/// A graph file's bytes, if it is a regular file within the limit: a FIFO or /dev/zero named as a
/// model is an error, not a hang.
fn read_graph(path: &std::path::Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    // O_NONBLOCK: opening a FIFO does not wait for a writer (it is refused below).
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let meta = file.metadata().map_err(|e| format!("{}: {e}", path.display()))?;
    if !meta.is_file() {
        return Err(format!("{}: not a regular file", path.display()));
    }
    if meta.len() > MAX_GRAPH_BYTES {
        return Err(format!("{}: {} bytes, more than the limit of {MAX_GRAPH_BYTES}", path.display(), meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_GRAPH_BYTES).read_to_end(&mut bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(bytes)
}

fn open_on(
    loaded: &Loaded,
    model: &Model,
    rewritten: Option<&[u8]>,
    original: &[u8],
    provider: Provider,
    options: &Options,
) -> Result<Session, String> {
    let text = |e: ort::Error<_>| ort::Error::<()>::from(e).to_string();
    let threads = if options.cpu_threads > 0 { options.cpu_threads } else { model.threads.max(1) };
    let mut builder = Session::builder(&loaded.environment)
        .map_err(|e| e.to_string())?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(text)?
        .with_intra_threads(threads)
        .map_err(text)?
        .with_inter_threads(1)
        .map_err(text)?;
    runtime::register(&mut builder, provider, options)?;
    let session = match (rewritten, &model.graph_path) {
        // External tensors are read from the graph file's folder, also when it is read from memory.
        (Some(bytes), Some(path)) => {
            let folder = path.parent().map(|d| d.display().to_string()).unwrap_or_default();
            let key = "session.model_external_initializers_file_folder_path";
            let mut builder = builder.with_config_entry(key, folder).map_err(text)?;
            builder.commit_from_memory(bytes)
        }
        (Some(bytes), None) => builder.commit_from_memory(bytes),
        (None, Some(path)) => builder.commit_from_file(path),
        (None, None) => builder.commit_from_memory(original),
    };
    session.map_err(|e| e.to_string())
}
