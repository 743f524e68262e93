//! The model package: a folder holding `hrm-model.toml` beside `model.onnx` and `model.safetensors`.
//!
//! Loading checks every field and every file hash, so a package either loads whole or says which
//! file and which field is wrong.

use crate::au::AuSet;
use crate::error::{Error, Result};
use crate::{files, onnx_graph};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const MANIFEST_FILE: &str = "hrm-model.toml";
pub const FORMAT_VERSION: u32 = 1;

/// HRM's normalisation statistics (`Predict/HRM_test_batch.py`), not ImageNet's.
pub const HRM_MEAN: [f32; 3] = [0.4434122, 0.36354306, 0.35404983];
pub const HRM_STD: [f32; 3] = [0.19467306, 0.19811313, 0.1991408];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Version of this manifest layout.
    pub format: u32,
    pub name: String,
    pub au_set: AuSet,
    pub output: OutputKind,
    pub input: InputSpec,
    pub architecture: Architecture,
    /// Presence threshold per AU id, in the set's order; every AU of the set has one.
    pub thresholds: IndexMap<String, f32>,
    pub files: Files,
    pub source: Source,
}

/// What the graph's output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputKind {
    /// Raw scores: a sigmoid turns them into probabilities.
    Logits,
    /// Already in [0, 1] (ME-GraphAU).
    Probabilities,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelOrder {
    Rgb,
    Bgr,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub width: usize,
    pub height: usize,
    pub channel_order: ChannelOrder,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// The network, as read from the checkpoint's tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Architecture {
    Vit {
        width: usize,
        depth: usize,
        heads: usize,
        patch_size: usize,
        mlp_hidden: usize,
        pooling: VitPooling,
        layer_norm_eps: f32,
    },
    Resnet {
        block: ResnetBlock,
        /// Blocks in each stage (3-4-6-3 for ResNet-50).
        layers: Vec<usize>,
        /// Inner width of each stage (the 3x3 convolutions').
        widths: Vec<usize>,
        /// Output channels of each stage (`widths * 4` for torchvision's bottleneck).
        out_channels: Vec<usize>,
        stem_width: usize,
        groups: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VitPooling {
    /// Mean of the patch tokens, then `fc_norm` (MAE-Face's global pooling).
    Mean,
    /// `norm`, then the CLS token (FMAE, older MAE-Face weights).
    Cls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResnetBlock {
    Basic,
    Bottleneck,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Files {
    pub onnx: FileEntry,
    pub weights: FileEntry,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    pub name: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// File name of the PyTorch checkpoint this package was converted from.
    pub checkpoint: String,
    pub sha256: String,
    pub licence: String,
    /// What the converter noticed and left out (FMAE-IAT's identity head, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// A random-weight test fixture: it runs, and its outputs mean nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub fixture: bool,
}

/// A verified package on disk.
#[derive(Debug, Clone)]
pub struct ModelPackage {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl ModelPackage {
    /// Reads `DIR/hrm-model.toml`, checks every field, checks both files against their hashes, and
    /// checks the graph against the manifest: its input and output shapes, and that every weight it
    /// reads is a tensor of the architecture stored in the hashed weights file.
    pub fn load(dir: &Path) -> Result<ModelPackage> {
        let path = dir.join(MANIFEST_FILE);
        if dir.is_file() {
            return Err(Error::NotAPackage { path: dir.to_path_buf(), reason: not_a_folder(dir) });
        }
        let text = files::read_text_file(&path, MAX_MANIFEST_BYTES)?;
        let manifest: Manifest =
            toml::from_str(&text).map_err(|e| Error::Toml { file: path.clone(), message: e.to_string() })?;
        manifest.validate(&path)?;
        let onnx_path = dir.join(&manifest.files.onnx.name);
        let onnx = files::read_regular_file(&onnx_path, MAX_GRAPH_BYTES)?;
        check_hash(&onnx_path, &manifest.files.onnx.sha256, sha256_bytes(&onnx))?;
        let weights_path = dir.join(&manifest.files.weights.name);
        let (weights_hash, weights_len) = sha256_and_len(&weights_path)?;
        check_hash(&weights_path, &manifest.files.weights.sha256, weights_hash)?;
        let graph = onnx_graph::summarise(&onnx)
            .map_err(|e| Error::field(&onnx_path, "graph", "an ONNX model", format!("unreadable protobuf: {e}")))?;
        manifest.check_graph(&onnx_path, &graph, weights_len)?;
        Ok(ModelPackage { dir: dir.to_path_buf(), manifest })
    }

    pub fn onnx_path(&self) -> PathBuf {
        self.dir.join(&self.manifest.files.onnx.name)
    }
}

/// A manifest is a few KB.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// Protobuf's own limit; a converted graph is a few hundred KB (its weights are external).
const MAX_GRAPH_BYTES: u64 = 2 << 30;
/// The largest weights file hashed (ViT-L/16 in f32 is 1.2 GB).
const MAX_WEIGHTS_BYTES: u64 = 16 << 30;

fn check_hash(file: &Path, expected: &str, found: String) -> Result<()> {
    if found != expected {
        return Err(Error::Hash { file: file.to_path_buf(), expected: expected.to_string(), found });
    }
    Ok(())
}

/// Checks that a graph has exactly one input (or output) and that its declared shape passes `ok`;
/// the error lists what the graph has instead.
fn one_value(
    file: &Path,
    field: &str,
    values: &[onnx_graph::ValueInfo],
    ok: impl Fn(&[onnx_graph::Dim]) -> bool,
    expected: String,
) -> Result<()> {
    if let [value] = values {
        if value.shape.as_deref().is_some_and(ok) {
            return Ok(());
        }
    }
    let found: Vec<String> = values
        .iter()
        .map(|v| match &v.shape {
            Some(dims) => {
                format!("{} [{}]", v.name, dims.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))
            }
            None => format!("{} no declared shape", v.name),
        })
        .collect();
    Err(Error::field(file, field, expected, format!("[{}]", found.join(", "))))
}

/// Why a path given as a package is not one: a PyTorch checkpoint gets the command that converts it.
fn not_a_folder(path: &Path) -> String {
    let is_zip = std::fs::File::open(path)
        .and_then(|mut f| {
            let mut magic = [0u8; 4];
            std::io::Read::read_exact(&mut f, &mut magic).map(|_| magic)
        })
        .is_ok_and(|magic| magic == *b"PK\x03\x04");
    let checkpoint_name = path.extension().is_some_and(|e| e == "pth" || e == "pt" || e == "ckpt");
    if is_zip || checkpoint_name {
        let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
        format!(
            "this is a file, not a package folder; it looks like a PyTorch checkpoint: convert it first with \
             `hrm convert {} --out models/{stem}`, then pass --model models/{stem}",
            path.display()
        )
    } else {
        "this is a file; a model package is a folder holding hrm-model.toml, model.onnx and model.safetensors".into()
    }
}

impl Manifest {
    /// Checks the graph's interface and weights against this manifest. `file` names the graph;
    /// `weights_len` is the size of the weights file, which every external tensor must lie in.
    pub fn check_graph(&self, file: &Path, graph: &onnx_graph::GraphSummary, weights_len: u64) -> Result<()> {
        use onnx_graph::Dim;
        let fixed = |dim: &Dim, value: usize| *dim == Dim::Fixed(value as i64);
        let batch = |dim: &Dim| matches!(dim, Dim::Symbolic(_) | Dim::Fixed(1..));
        let (w, h) = (self.input.width, self.input.height);
        let input_ok =
            |shape: &[Dim]| matches!(shape, [n, c, y, x] if batch(n) && fixed(c, 3) && fixed(y, h) && fixed(x, w));
        let expected = format!("one input [N, 3, {h}, {w}] (the manifest's input.height and input.width)");
        one_value(file, "graph inputs", &graph.inputs, input_ok, expected)?;
        let aus = self.au_set.len();
        let output_ok = |shape: &[Dim]| matches!(shape, [n, a] if batch(n) && fixed(a, aus));
        let expected = format!("one output [N, {aus}] (one value per AU of the {} set)", self.au_set);
        one_value(file, "graph outputs", &graph.outputs, output_ok, expected)?;
        let weights_file = &self.files.weights.name;
        let mut external = std::collections::BTreeMap::new();
        for tensor in &graph.tensors {
            match &tensor.location {
                Some(location) if location == weights_file => {
                    let dims: Vec<usize> =
                        tensor.dims.iter().map(|&d| usize::try_from(d).unwrap_or(usize::MAX)).collect();
                    // float32, and exactly its bytes, inside the file: tract reads `length` bytes.
                    let bytes = dims.iter().try_fold(4u64, |n, &d| n.checked_mul(d as u64));
                    let fits = match (tensor.offset, tensor.length, bytes) {
                        (Some(offset), Some(length), Some(bytes)) => {
                            length == bytes && offset.checked_add(length).is_some_and(|end| end <= weights_len)
                        }
                        _ => false,
                    };
                    if tensor.data_type != 1 || !fits {
                        return Err(Error::field(
                            file,
                            format!("tensor `{}`", tensor.name),
                            format!("float32 data of its shape {dims:?} inside {weights_file} ({weights_len} bytes)"),
                            format!(
                                "type {}, offset {:?}, length {:?}",
                                tensor.data_type, tensor.offset, tensor.length
                            ),
                        ));
                    }
                    external.insert(tensor.name.as_str(), dims);
                }
                Some(location) => {
                    return Err(Error::field(
                        file,
                        format!("tensor `{}`", tensor.name),
                        format!("data in the graph or in {weights_file} (the file the manifest hashes)"),
                        format!("external data in `{location}`, which the manifest does not hash"),
                    ))
                }
                None => {}
            }
        }
        let expected = self.architecture.tensors(aus, w, h);
        let mut problems = Vec::new();
        for (name, shape) in &expected {
            match external.remove(name.as_str()) {
                None => problems.push(format!("missing {name} {shape:?}")),
                Some(dims) if &dims != shape => problems.push(format!("{name} is {dims:?}, expected {shape:?}")),
                Some(_) => {}
            }
        }
        problems.extend(external.iter().map(|(name, dims)| format!("unexpected {name} {dims:?}")));
        if !problems.is_empty() {
            let shown = problems.iter().take(5).cloned().collect::<Vec<_>>().join("; ");
            let more = if problems.len() > 5 { format!(" and {} more", problems.len() - 5) } else { String::new() };
            return Err(Error::field(
                file,
                "graph weights",
                format!("the tensors of the manifest's architecture ({} tensors)", expected.len()),
                format!("{shown}{more}"),
            ));
        }
        Ok(())
    }

    /// Checks what serde cannot: values, and thresholds against the AU set. `file` names the
    /// manifest in errors.
    pub fn validate(&self, file: &Path) -> Result<()> {
        let field = |name: &str, expected: &str, found: &dyn ToString| {
            Err(Error::field(file, name, expected, found.to_string()))
        };
        if self.format != FORMAT_VERSION {
            return field("format", &FORMAT_VERSION.to_string(), &self.format);
        }
        if self.name.trim().is_empty() {
            return field("name", "a non-empty name", &"\"\"");
        }
        let input = &self.input;
        for (name, size) in [("input.width", input.width), ("input.height", input.height)] {
            if !(1..=4096).contains(&size) {
                return field(name, "a size from 1 to 4096", &size);
            }
        }
        for (c, (&m, &s)) in input.mean.iter().zip(&input.std).enumerate() {
            if !m.is_finite() {
                return field(&format!("input.mean[{c}]"), "a finite number", &m);
            }
            if !(s.is_finite() && s > 0.0) {
                return field(&format!("input.std[{c}]"), "a positive number", &s);
            }
        }
        self.architecture.validate(file)?;
        check_thresholds(file, "thresholds", self.au_set, &self.thresholds, true)?;
        for (name, entry) in [("files.onnx", &self.files.onnx), ("files.weights", &self.files.weights)] {
            if !is_plain_file_name(&entry.name) {
                return field(&format!("{name}.name"), "a file name inside the package folder", &entry.name);
            }
            if !is_sha256(&entry.sha256) {
                return field(&format!("{name}.sha256"), "64 lowercase hex digits", &entry.sha256);
            }
        }
        Ok(())
    }
}

/// Upper bounds on an architecture's parameters, checked before anything is sized by them: the
/// largest published ViT (ViT-G/14: width 1664, depth 48) and ResNet (ResNet-152: 36 blocks in a
/// stage, 2048 channels) stay well inside.
const MAX_VIT_WIDTH: usize = 8192;
const MAX_DEPTH: usize = 128;
const MAX_PATCH: usize = 64;
const MAX_MLP: usize = 65536;
const MAX_STAGES: usize = 8;
const MAX_CHANNELS: usize = 16384;
/// The largest input side a converted network may take.
pub const MAX_INPUT_SIDE: usize = 4096;

impl Architecture {
    /// Checks the parameters: positive, within the bounds above, consistent. The message names the
    /// field (without the `architecture.` prefix), what was expected and what was found.
    pub fn check(&self) -> std::result::Result<(), (String, String, String)> {
        let within = |name: &str, value: usize, max: usize| {
            if (1..=max).contains(&value) {
                Ok(())
            } else {
                Err((name.to_string(), format!("a number from 1 to {max}"), value.to_string()))
            }
        };
        match self {
            Architecture::Vit { width, depth, heads, patch_size, mlp_hidden, layer_norm_eps, .. } => {
                within("width", *width, MAX_VIT_WIDTH)?;
                within("depth", *depth, MAX_DEPTH)?;
                within("heads", *heads, *width)?;
                within("patch_size", *patch_size, MAX_PATCH)?;
                within("mlp_hidden", *mlp_hidden, MAX_MLP)?;
                if width % heads != 0 {
                    return Err(("heads".into(), format!("a divisor of width {width}"), heads.to_string()));
                }
                if !(layer_norm_eps.is_finite() && *layer_norm_eps > 0.0) {
                    return Err(("layer_norm_eps".into(), "a positive number".into(), layer_norm_eps.to_string()));
                }
            }
            Architecture::Resnet { layers, widths, out_channels, stem_width, groups, .. } => {
                within("stem_width", *stem_width, MAX_CHANNELS)?;
                within("groups", *groups, MAX_CHANNELS)?;
                within("layers", layers.len(), MAX_STAGES)?;
                for (name, list) in [("widths", widths), ("out_channels", out_channels)] {
                    if list.len() != layers.len() {
                        let expected = format!("{} entries, one per entry of `layers`", layers.len());
                        return Err((name.into(), expected, list.len().to_string()));
                    }
                }
                for (i, ((&l, &w), &o)) in layers.iter().zip(widths).zip(out_channels).enumerate() {
                    within(&format!("layers[{i}]"), l, MAX_DEPTH)?;
                    within(&format!("widths[{i}]"), w, MAX_CHANNELS)?;
                    within(&format!("out_channels[{i}]"), o, MAX_CHANNELS)?;
                    if w % groups != 0 {
                        return Err((format!("widths[{i}]"), format!("a multiple of groups {groups}"), w.to_string()));
                    }
                }
            }
        }
        Ok(())
    }

    fn validate(&self, file: &Path) -> Result<()> {
        self.check()
            .map_err(|(field, expected, found)| Error::field(file, format!("architecture.{field}"), expected, found))
    }

    /// Every tensor of the network, in a fixed order, with its shape (state-dict names): what a
    /// checkpoint must hold and what a package's graph must read. `outputs` is the AU count. Call
    /// [`Architecture::check`] first: the list is as long as the parameters make it.
    pub fn tensors(&self, outputs: usize, input_width: usize, input_height: usize) -> Vec<(String, Vec<usize>)> {
        let v = |name: &str, shape: &[usize]| (name.to_string(), shape.to_vec());
        let mut expected = Vec::new();
        match *self {
            Architecture::Vit { width, depth, patch_size, mlp_hidden, pooling, .. } => {
                let patches = (input_width / patch_size) * (input_height / patch_size);
                expected.extend([
                    v("cls_token", &[1, 1, width]),
                    v("pos_embed", &[1, patches + 1, width]),
                    v("patch_embed.proj.weight", &[width, 3, patch_size, patch_size]),
                    v("patch_embed.proj.bias", &[width]),
                ]);
                for i in 0..depth {
                    let b = |part: &str, shape: &[usize]| (format!("blocks.{i}.{part}"), shape.to_vec());
                    expected.extend([
                        b("norm1.weight", &[width]),
                        b("norm1.bias", &[width]),
                        b("attn.qkv.weight", &[3 * width, width]),
                        b("attn.qkv.bias", &[3 * width]),
                        b("attn.proj.weight", &[width, width]),
                        b("attn.proj.bias", &[width]),
                        b("norm2.weight", &[width]),
                        b("norm2.bias", &[width]),
                        b("mlp.fc1.weight", &[mlp_hidden, width]),
                        b("mlp.fc1.bias", &[mlp_hidden]),
                        b("mlp.fc2.weight", &[width, mlp_hidden]),
                        b("mlp.fc2.bias", &[width]),
                    ]);
                }
                let norm = match pooling {
                    VitPooling::Mean => "fc_norm",
                    VitPooling::Cls => "norm",
                };
                expected.extend([
                    v(&format!("{norm}.weight"), &[width]),
                    v(&format!("{norm}.bias"), &[width]),
                    v("head.weight", &[outputs, width]),
                    v("head.bias", &[outputs]),
                ]);
            }
            Architecture::Resnet { block, ref layers, ref widths, ref out_channels, stem_width, groups } => {
                let mut conv_bn = |prefix: &str, conv: &str, bn: &str, shape: [usize; 4]| {
                    expected.push((format!("{prefix}{conv}.weight"), shape.to_vec()));
                    for part in ["weight", "bias", "running_mean", "running_var"] {
                        expected.push((format!("{prefix}{bn}.{part}"), vec![shape[0]]));
                    }
                };
                conv_bn("", "conv1", "bn1", [stem_width, 3, 7, 7]);
                let mut in_ch = stem_width;
                for (s, ((&blocks, &w), &out)) in layers.iter().zip(widths).zip(out_channels).enumerate() {
                    for b in 0..blocks {
                        let prefix = format!("layer{}.{b}.", s + 1);
                        let stride = if s > 0 && b == 0 { 2 } else { 1 };
                        match block {
                            ResnetBlock::Bottleneck => {
                                conv_bn(&prefix, "conv1", "bn1", [w, in_ch, 1, 1]);
                                conv_bn(&prefix, "conv2", "bn2", [w, w / groups, 3, 3]);
                                conv_bn(&prefix, "conv3", "bn3", [out, w, 1, 1]);
                            }
                            ResnetBlock::Basic => {
                                conv_bn(&prefix, "conv1", "bn1", [w, in_ch, 3, 3]);
                                conv_bn(&prefix, "conv2", "bn2", [out, w, 3, 3]);
                            }
                        }
                        if b == 0 && (stride != 1 || in_ch != out) {
                            conv_bn(&prefix, "downsample.0", "downsample.1", [out, in_ch, 1, 1]);
                        }
                        in_ch = out;
                    }
                }
                expected.push(("fc.weight".into(), vec![outputs, in_ch]));
                expected.push(("fc.bias".into(), vec![outputs]));
            }
        }
        expected
    }
}

/// Checks a table of AU id -> threshold: ids must belong to `set`, values lie in [0, 1]; with
/// `complete`, every AU of the set must be present.
pub fn check_thresholds<'a>(
    file: &Path,
    table: &str,
    set: AuSet,
    thresholds: impl IntoIterator<Item = (&'a String, &'a f32)>,
    complete: bool,
) -> Result<()> {
    let thresholds: Vec<(&String, &f32)> = thresholds.into_iter().collect();
    for &(id, &value) in &thresholds {
        if set.index_of(id).is_none() {
            let known: Vec<&str> = set.aus().iter().map(|au| au.id).collect();
            return Err(Error::field(
                file,
                format!("{table}.{id}"),
                format!("an AU id of the {set} set ({})", known.join(", ")),
                id,
            ));
        }
        if !(0.0..=1.0).contains(&value) {
            return Err(Error::field(file, format!("{table}.{id}"), "a threshold from 0 to 1", value));
        }
    }
    if complete {
        if let Some(missing) = set.aus().iter().find(|au| !thresholds.iter().any(|(id, _)| *id == au.id)) {
            return Err(Error::field(
                file,
                format!("{table}.{}", missing.id),
                format!("a threshold for every AU of the {set} set"),
                "nothing",
            ));
        }
    }
    Ok(())
}

fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty() && Path::new(name).file_name().is_some_and(|f| f == name) && name != ".." && name != "."
}

fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Lowercase hex sha256 of a regular file's content (a FIFO or a device would never end), up to
/// 16 GB.
pub fn sha256_file(path: &Path) -> Result<String> {
    Ok(sha256_and_len(path)?.0)
}

/// The sha256 of a regular file and its length in bytes, as hashed.
fn sha256_and_len(path: &Path) -> Result<(String, u64)> {
    use std::io::Read;
    let file = files::open_regular_file(path)?;
    let mut hasher = Sha256::new();
    let copied = std::io::copy(&mut file.take(MAX_WEIGHTS_BYTES + 1), &mut hasher).map_err(|e| Error::io(path, e))?;
    if copied > MAX_WEIGHTS_BYTES {
        return Err(files::too_large(path, format!("the file is larger than the limit of {MAX_WEIGHTS_BYTES} bytes")));
    }
    Ok((hex(&hasher.finalize()), copied))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
