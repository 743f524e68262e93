//! The model package: a folder holding `hrm-model.toml` beside `model.onnx` and `model.safetensors`.
//!
//! Loading checks every field and every file hash, so a package either loads whole or says which
//! file and which field is wrong.

use crate::au::AuSet;
use crate::error::{Error, Result};
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
}

/// A verified package on disk.
#[derive(Debug, Clone)]
pub struct ModelPackage {
    pub dir: PathBuf,
    pub manifest: Manifest,
}

impl ModelPackage {
    /// Reads `DIR/hrm-model.toml`, checks every field, and checks both files against their hashes.
    pub fn load(dir: &Path) -> Result<ModelPackage> {
        let path = dir.join(MANIFEST_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        let manifest: Manifest =
            toml::from_str(&text).map_err(|e| Error::Toml { file: path.clone(), message: e.to_string() })?;
        manifest.validate(&path)?;
        for entry in [&manifest.files.onnx, &manifest.files.weights] {
            let file = dir.join(&entry.name);
            let found = sha256_file(&file)?;
            if found != entry.sha256 {
                return Err(Error::Hash { file, expected: entry.sha256.clone(), found });
            }
        }
        Ok(ModelPackage { dir: dir.to_path_buf(), manifest })
    }

    pub fn onnx_path(&self) -> PathBuf {
        self.dir.join(&self.manifest.files.onnx.name)
    }
}

impl Manifest {
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

impl Architecture {
    fn validate(&self, file: &Path) -> Result<()> {
        let positive = |name: &str, value: usize| {
            if value == 0 {
                Err(Error::field(file, format!("architecture.{name}"), "a positive number", value))
            } else {
                Ok(())
            }
        };
        match self {
            Architecture::Vit { width, depth, heads, patch_size, mlp_hidden, layer_norm_eps, .. } => {
                for (name, v) in [
                    ("width", *width),
                    ("depth", *depth),
                    ("heads", *heads),
                    ("patch_size", *patch_size),
                    ("mlp_hidden", *mlp_hidden),
                ] {
                    positive(name, v)?;
                }
                if width % heads != 0 {
                    return Err(Error::field(file, "architecture.heads", format!("a divisor of width {width}"), heads));
                }
                if !(layer_norm_eps.is_finite() && *layer_norm_eps > 0.0) {
                    return Err(Error::field(file, "architecture.layer_norm_eps", "a positive number", layer_norm_eps));
                }
            }
            Architecture::Resnet { layers, widths, out_channels, stem_width, groups, .. } => {
                for (name, list) in [("widths", widths), ("out_channels", out_channels)] {
                    if layers.is_empty() || list.len() != layers.len() {
                        let expected = format!("{} entries, one per entry of `layers`", layers.len());
                        return Err(Error::field(file, format!("architecture.{name}"), expected, list.len()));
                    }
                }
                for (i, ((&l, &w), &o)) in layers.iter().zip(widths).zip(out_channels).enumerate() {
                    positive(&format!("layers[{i}]"), l)?;
                    positive(&format!("widths[{i}]"), w)?;
                    positive(&format!("out_channels[{i}]"), o)?;
                }
                positive("stem_width", *stem_width)?;
                positive("groups", *groups)?;
            }
        }
        Ok(())
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

/// Lowercase hex sha256 of a file's content.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher).map_err(|e| Error::io(path, e))?;
    Ok(hex(&hasher.finalize()))
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
