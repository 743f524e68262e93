//! The atypicality regressor's checkpoint (`GRUModel`: `gru` = GRU(22 -> 128, 2 layers,
//! batch_first), `fc` = Linear(128 -> 1)) into a package of kind `atypicality-gru`: its tensors,
//! unchanged, in `model.safetensors`, and a manifest. There is no graph: hrm-core runs the GRU.

use crate::checkpoint::{Checkpoint, StateDict};
use crate::error::{ConvertError, Result};
use hrm_core::atypicality::{tensor_shapes, AtypicalityManifest, KIND};
use hrm_core::manifest::{self, FileEntry, Source};
use hrm_core::AuList;
use std::path::Path;

/// HRM's window: 15 consecutive frames.
pub const WINDOW: usize = 15;

/// Whether the state dict is a GRU regressor's.
pub fn is_gru(state: &StateDict) -> bool {
    state.tensors.contains_key("gru.weight_ih_l0")
}

/// Checks the tensors strictly (every one expected, of its shape, nothing else) and writes the
/// weights and the manifest into `staging`.
pub fn write_package(
    checkpoint: &Path,
    ckpt: &mut Checkpoint,
    state: &StateDict,
    staging: &Path,
    name: &str,
    source: Source,
) -> Result<AtypicalityManifest> {
    let tensors = &state.tensors;
    let shape = |key: &str, axis: usize| tensors.get(key).and_then(|t| t.shape.get(axis).copied()).unwrap_or(0);
    let (inputs, hidden) = (shape("gru.weight_ih_l0", 1), shape("gru.weight_hh_l0", 1));
    let layers = (0..).take_while(|l| tensors.contains_key(&format!("gru.weight_ih_l{l}"))).count();
    let expected = tensor_shapes(inputs, hidden, layers);
    let mut problems: Vec<String> = Vec::new();
    for (key, want) in &expected {
        match tensors.get(key) {
            None => problems.push(format!("missing: {key}")),
            Some(t) if &t.shape != want => {
                problems.push(format!("mis-shaped: {key} has shape {:?}, expected {want:?}", t.shape))
            }
            Some(_) => {}
        }
    }
    problems.extend(tensors.keys().filter(|k| !expected.iter().any(|(e, _)| e == *k)).map(|k| format!("unknown: {k}")));
    let aus = AuList::for_output_count(inputs);
    if aus.is_none() {
        problems.push(format!("gru.weight_ih_l0 takes {inputs} inputs: expected 22 (HRM's AUs) or 17"));
    }
    let architecture = format!("atypicality GRU ({inputs} -> {hidden}, {layers} layers)");
    if !problems.is_empty() || hidden == 0 {
        return Err(ConvertError::Tensors { path: checkpoint.to_path_buf(), architecture, problems });
    }
    let aus = aus.expect("checked above");

    let file_name = source.checkpoint.clone();
    let layout = crate::safetensors::Layout::new(&expected, &[("format", "pt".into()), ("source", file_name)]);
    let weights_path = staging.join(crate::WEIGHTS_FILE);
    let io = |e| ConvertError::Io { path: weights_path.clone(), error: e };
    let mut writer = std::io::BufWriter::new(std::fs::File::create(&weights_path).map_err(io)?);
    layout.write(&mut writer, |key| ckpt.read_f32(key, &state.tensors[key]), io)?;
    std::io::Write::flush(&mut writer).map_err(io)?;
    drop(writer);

    let manifest = AtypicalityManifest {
        format: manifest::FORMAT_VERSION,
        kind: KIND.into(),
        name: name.into(),
        aus: aus.ids().iter().map(|id| id.to_string()).collect(),
        window: WINDOW,
        hidden,
        layers,
        files: [(
            manifest::WEIGHTS_FILE.to_string(),
            FileEntry { name: crate::WEIGHTS_FILE.into(), sha256: manifest::sha256_file(&weights_path)? },
        )]
        .into_iter()
        .collect(),
        source,
    };
    let toml_path = staging.join(manifest::MANIFEST_FILE);
    let text = toml::to_string(&manifest)?;
    std::fs::write(&toml_path, text).map_err(|e| ConvertError::Io { path: toml_path.clone(), error: e })?;
    Ok(manifest)
}
