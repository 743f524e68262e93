//! The model package: a folder holding `hrm-model.toml` beside the files it names and hashes
//! (for an AU classifier, `model.onnx` and `model.safetensors`).
//!
//! Loading checks every field and every file hash, so a package either loads whole or says which
//! file and which field is wrong. Format 1 packages (made by hrm 0.1) are read as format 2.

use crate::au::AuList;
use crate::error::{Error, Result};
use crate::{files, onnx_graph};
use hrm_backend::{Dim, GraphSource, GraphSpec, Hints};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const MANIFEST_FILE: &str = "hrm-model.toml";
pub const FORMAT_VERSION: u32 = 2;

/// The `files` role of the ONNX graph, and of the weights it reads.
pub const GRAPH_FILE: &str = "graph";
pub const WEIGHTS_FILE: &str = "weights";

/// The `files` roles of a `mediapipe-blendshapes` package: BlazeFace (which frames the mesh's
/// crop as MediaPipe does), the face mesh, the blendshapes network, the geometry metadata.
pub const FACE_DETECTOR_FILE: &str = "face_detector";
pub const LANDMARKS_FILE: &str = "landmarks";
pub const BLENDSHAPES_FILE: &str = "blendshapes";
pub const GEOMETRY_FILE: &str = "geometry";

/// HRM's normalisation statistics (`Predict/HRM_test_batch.py`), not ImageNet's.
pub const HRM_MEAN: [f32; 3] = [0.4434122, 0.36354306, 0.35404983];
pub const HRM_STD: [f32; 3] = [0.19467306, 0.19811313, 0.1991408];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Version of this manifest layout.
    pub format: u32,
    /// What the model is, which decides how the runtime uses it.
    pub kind: ModelKind,
    pub name: String,
    /// The AU ids of the output columns, in order (`AU1`, `AU2`, ...).
    pub aus: Vec<String>,
    pub output: OutputKind,
    /// The crop the model takes.
    pub input: InputSpec,
    pub architecture: Architecture,
    /// Presence threshold per AU id, in the list's order; every AU has one.
    pub thresholds: IndexMap<String, f32>,
    /// What a backend may want to know to run the graph well.
    #[serde(default, skip_serializing_if = "ManifestHints::is_default")]
    pub hints: ManifestHints,
    /// Every file of the package by role (`graph`, `weights`), each hashed.
    pub files: IndexMap<String, FileEntry>,
    pub source: Source,
}

/// The kinds of model a package may hold: HRM's AU classifiers, and the MediaPipe estimator
/// (the atypicality regressor comes next).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// One aligned face in, one score per AU out (ViT, ResNet: HRM's classifiers).
    AuClassifier,
    /// MediaPipe's face mesh and blendshapes: 52 blendshape scores per face, mapped onto AUs
    /// (estimates, not an AU model's outputs).
    MediapipeBlendshapes,
}

impl ModelKind {
    /// The file roles a package of this kind holds.
    pub fn file_roles(self) -> &'static [&'static str] {
        match self {
            ModelKind::AuClassifier => &[GRAPH_FILE, WEIGHTS_FILE],
            ModelKind::MediapipeBlendshapes => &[FACE_DETECTOR_FILE, LANDMARKS_FILE, BLENDSHAPES_FILE, GEOMETRY_FILE],
        }
    }
}

/// Hints for backends (see [`hrm_backend::Hints`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManifestHints {
    /// Batches run best one image at a time (convolutional networks on tract).
    #[serde(default)]
    pub one_image_per_run: bool,
}

impl ManifestHints {
    fn is_default(&self) -> bool {
        *self == ManifestHints::default()
    }
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

/// The crop a model wants: its size, how the face is framed in it, and how its pixels are laid out
/// as a tensor: `(pixel / 255 - mean) / std` per channel (NHWC models in [0, 1] have mean 0, std 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub width: usize,
    pub height: usize,
    #[serde(default)]
    pub layout: Layout,
    #[serde(default)]
    pub framing: Framing,
    pub channel_order: ChannelOrder,
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

/// How a crop becomes a tensor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `[N, 3, H, W]` (PyTorch).
    #[default]
    Nchw,
    /// `[N, H, W, 3]` (TensorFlow Lite, MediaPipe).
    Nhwc,
}

/// Where the face sits in the crop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// The five detected keypoints warped onto the configuration's `[alignment]` template (HRM's
    /// OpenFace-like crop).
    #[default]
    Keypoints,
    /// MediaPipe's face-mesh crop: a square around the face detection, rotated so the eyes are
    /// level, enlarged 1.5 times.
    FaceMesh,
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
    /// The Swin transformer (Liu et al. 2021) as ME-GraphAU's `model/swin_transformer.py` builds
    /// it, used only as ME-GraphAU's backbone: patch embedding with LayerNorm, stages of (shifted)
    /// window attention with relative position bias and MLP ratio 4, patch merging between
    /// stages, a final LayerNorm; its tokens go to the head (the classifier is dropped).
    Swin {
        /// The patch embedding's width (96 for tiny and small, 128 for base).
        width: usize,
        /// Blocks per stage (2-2-6-2 tiny, 2-2-18-2 small and base).
        depths: Vec<usize>,
        /// Attention heads per stage.
        heads: Vec<usize>,
        /// Window side (7).
        window: usize,
        /// Patch side (4).
        patch_size: usize,
    },
    /// ME-GraphAU's stage-1 network (`MEFARG` with the ANFL head, Luo et al. 2022): the
    /// backbone's tokens, `global_linear`, one `class_linears` block per AU averaged over the
    /// tokens into a node, a GNN over the top-k graph of the nodes, and the cosine similarity of
    /// each node with its class vector `relu(sc)` (already a score, not a logit).
    #[serde(rename = "me-graphau")]
    MeGraphAu {
        /// The backbone (a ResNet without its `fc`, or a Swin transformer), its tensors under
        /// `backbone.`.
        backbone: Box<Architecture>,
        /// Width of the node features (`global_linear`'s output: the backbone's channels / 4
        /// for a ResNet, / 2 for a Swin).
        features: usize,
        /// K: the neighbours each node keeps in the dynamic graph (4 in the authors' code).
        neighbors: usize,
        metric: GraphMetric,
    },
    /// EmoFAN as HRM uses it (`aunet_train`'s `models/emonet_split.py`): FAN's stacked
    /// hourglasses (every `InstanceNorm2d` rebound to `BatchNorm2d`, run in eval mode), their
    /// features masked by the summed landmark heatmaps, and EmoNet's head giving AU logits.
    #[serde(rename = "emofan")]
    EmoFan {
        /// `conv1`'s channels (64).
        stem_width: usize,
        /// `conv2`'s and `conv3`'s (128).
        mid_width: usize,
        /// The hourglasses' channels (256).
        features: usize,
        /// Hourglass stacks (2 in HRM's).
        stacks: usize,
        /// Levels of each hourglass (4).
        hourglass_depth: usize,
        /// Heatmaps per stack (68 landmarks).
        landmarks: usize,
        /// The head's channels after `conv1x1_input_emo_2` (256).
        head_width: usize,
        /// ConvBlock + max-pool stages of the head (4: 64 -> 4 pixels, then a 4x4 average).
        head_blocks: usize,
        /// The hidden layer of `emo_fc_2` (128).
        head_hidden: usize,
    },
    /// MediaPipe's face landmarker networks, used as published (no checkpoint to recognise).
    Mediapipe,
}

/// How ME-GraphAU measures node similarity to pick each node's K neighbours (`--metric`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GraphMetric {
    /// Dot product, largest K (the default).
    Dots,
    /// Cosine similarity, largest K.
    Cosine,
    /// L1 distance, smallest K.
    L1,
}

impl GraphMetric {
    const ALL: [GraphMetric; 3] = [GraphMetric::Dots, GraphMetric::Cosine, GraphMetric::L1];

    /// The name the authors' `--metric` and the manifest use.
    pub fn name(self) -> &'static str {
        match self {
            GraphMetric::Dots => "dots",
            GraphMetric::Cosine => "cosine",
            GraphMetric::L1 => "l1",
        }
    }

    pub fn parse(text: &str) -> Option<GraphMetric> {
        GraphMetric::ALL.into_iter().find(|m| m.name() == text)
    }
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

/// A verified package, on disk or compiled in.
#[derive(Debug, Clone)]
pub struct ModelPackage {
    /// The folder; for a built-in package, `<built-in>/NAME`, which is never read.
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// The files of a built-in package; `None` when they are in `dir`.
    builtin: Option<&'static [hrm_models::BuiltinFile]>,
    /// A `mediapipe-blendshapes` package's geometry metadata, parsed once when it is checked.
    geometry: Option<std::sync::Arc<crate::geometry::GeometryMetadata>>,
}

impl ModelPackage {
    /// Reads `DIR/hrm-model.toml`, checks every field, checks every file against its hash, and
    /// checks the graph against the manifest: its input and output shapes, and that every weight it
    /// reads is a tensor of the architecture stored in the hashed weights file.
    pub fn load(dir: &Path) -> Result<ModelPackage> {
        let path = dir.join(MANIFEST_FILE);
        if dir.is_file() {
            return Err(Error::NotAPackage { path: dir.to_path_buf(), reason: not_a_folder(dir) });
        }
        let text = files::read_text_file(&path, MAX_MANIFEST_BYTES)?;
        if crate::atypicality::is_atypicality_manifest(&text) {
            let reason = "it holds the atypicality regressor, not an AU model: give it as `[atypicality] model` \
                          (or to `hrm atypicality --model`)";
            return Err(Error::NotAPackage { path: dir.to_path_buf(), reason: reason.into() });
        }
        let manifest = Manifest::parse(&text, &path)?;
        if manifest.kind == ModelKind::MediapipeBlendshapes {
            let mut package = ModelPackage { dir: dir.to_path_buf(), manifest, builtin: None, geometry: None };
            package.check_mediapipe(&path)?;
            return Ok(package);
        }
        let graph = manifest.file(&path, GRAPH_FILE)?;
        let graph_path = dir.join(&graph.name);
        let graph_bytes = files::read_regular_file(&graph_path, hrm_backend::backend::MAX_GRAPH_BYTES)?;
        check_hash(&graph_path, &graph.sha256, sha256_bytes(&graph_bytes))?;
        let mut weights_len = 0;
        for (role, entry) in manifest.files.iter().filter(|(role, _)| *role != GRAPH_FILE) {
            let file = dir.join(&entry.name);
            let (hash, len) = sha256_and_len(&file)?;
            check_hash(&file, &entry.sha256, hash)?;
            if role == WEIGHTS_FILE {
                weights_len = len;
            }
        }
        let graph = onnx_graph::summarise(&graph_bytes)
            .map_err(|e| Error::field(&graph_path, "graph", "an ONNX model", format!("unreadable protobuf: {e}")))?;
        manifest.check_graph(&graph_path, &graph, weights_len)?;
        Ok(ModelPackage { dir: dir.to_path_buf(), manifest, builtin: None, geometry: None })
    }

    /// The MediaPipe estimator compiled into hrm (`models/mediapipe`), every file hashed against
    /// its manifest and `models/SHA256SUMS` and every graph checked, as a package on disk is.
    pub fn builtin_mediapipe() -> Result<ModelPackage> {
        let dir = PathBuf::from("<built-in>/mediapipe");
        let path = dir.join(MANIFEST_FILE);
        let manifest = Manifest::parse(hrm_models::MEDIAPIPE_MANIFEST, &path)?;
        // Every file is hashed against the manifest (whose hashes a test holds to SHA256SUMS).
        let mut package = ModelPackage { dir, manifest, builtin: Some(&hrm_models::MEDIAPIPE_FILES), geometry: None };
        package.check_mediapipe(&path)?;
        Ok(package)
    }

    /// The bytes of the file of a role, read whole (a graph is bounded as backends bound it).
    pub fn file_bytes(&self, role: &str) -> Result<std::borrow::Cow<'static, [u8]>> {
        let manifest_path = self.dir.join(MANIFEST_FILE);
        let entry = self.manifest.file(&manifest_path, role)?;
        match self.builtin {
            Some(files) => (files.iter().find(|f| f.name == entry.name))
                .map(|f| std::borrow::Cow::Borrowed(f.bytes))
                .ok_or_else(|| Error::field(&manifest_path, format!("files.{role}"), "a built-in file", &entry.name)),
            None => {
                Ok(files::read_regular_file(&self.dir.join(&entry.name), hrm_backend::backend::MAX_GRAPH_BYTES)?.into())
            }
        }
    }

    /// Where a backend finds the graph of a role.
    pub fn graph_source(&self, role: &str) -> GraphSource {
        let entry = self.manifest.files.get(role);
        match (self.builtin, entry) {
            (Some(files), Some(entry)) => match files.iter().find(|f| f.name == entry.name) {
                Some(file) => {
                    GraphSource::Embedded { name: format!("{}/{}", self.manifest.name, file.name), bytes: file.bytes }
                }
                None => GraphSource::File(self.dir.clone()),
            },
            // A loaded package has its files; without one the folder itself is named, which no
            // backend reads.
            _ => GraphSource::File(self.dir.join(entry.map_or("", |f| f.name.as_str()))),
        }
    }

    /// The graph as a backend loads it: one image tensor in, the batch free.
    pub fn graph_spec(&self) -> GraphSpec {
        GraphSpec {
            source: self.graph_source(GRAPH_FILE),
            inputs: vec![self.manifest.input.tensor_dims()],
            hints: Hints { one_image_per_run: self.manifest.hints.one_image_per_run },
            weights: self.manifest.files.get(WEIGHTS_FILE).map(|f| self.dir.join(&f.name)),
        }
    }

    /// A `mediapipe-blendshapes` package's checks: every file hashed, each graph's one input of
    /// the shape the estimator feeds it, the geometry metadata readable.
    fn check_mediapipe(&mut self, manifest_path: &Path) -> Result<()> {
        let m = &self.manifest;
        let (w, h) = (m.input.width, m.input.height);
        let graphs: [(&str, Vec<usize>); 3] = [
            (FACE_DETECTOR_FILE, vec![1, BLAZEFACE_SIZE, BLAZEFACE_SIZE, 3]),
            (LANDMARKS_FILE, vec![1, h, w, 3]),
            (BLENDSHAPES_FILE, vec![1, crate::blendshapes::LANDMARK_SUBSET.len(), 2]),
        ];
        for role in ModelKind::MediapipeBlendshapes.file_roles() {
            let entry = m.file(manifest_path, role)?;
            let bytes = self.file_bytes(role)?;
            check_hash(&self.dir.join(&entry.name), &entry.sha256, sha256_bytes(&bytes))?;
            let file = self.dir.join(&entry.name);
            if let Some((_, shape)) = graphs.iter().find(|(r, _)| r == role) {
                let graph = onnx_graph::summarise(&bytes)
                    .map_err(|e| Error::field(&file, "graph", "an ONNX model", format!("unreadable protobuf: {e}")))?;
                let fits = |dims: &[onnx_graph::Dim]| {
                    dims.len() == shape.len()
                        && dims.iter().zip(shape).enumerate().all(|(i, (d, &n))| match d {
                            onnx_graph::Dim::Fixed(v) => *v == n as i64,
                            // The mesh's batch is free.
                            onnx_graph::Dim::Symbolic(_) => i == 0,
                        })
                };
                one_value(&file, "graph inputs", &graph.inputs, fits, format!("one input {shape:?}"))?;
                if let Some(tensor) = graph.tensors.iter().find(|t| t.location.is_some()) {
                    let expected = "every weight inside the graph";
                    return Err(Error::field(&file, format!("tensor `{}`", tensor.name), expected, "external data"));
                }
            } else {
                let geometry = crate::geometry::GeometryMetadata::parse(&bytes)
                    .map_err(|e| Error::field(&file, "geometry", "MediaPipe's FaceGeometryPipelineMetadata", e))?;
                self.geometry = Some(std::sync::Arc::new(geometry));
            }
        }
        Ok(())
    }

    /// The geometry metadata of a `mediapipe-blendshapes` package (none for other kinds).
    pub fn geometry(&self) -> Option<std::sync::Arc<crate::geometry::GeometryMetadata>> {
        self.geometry.clone()
    }
}

/// BlazeFace's input side.
pub const BLAZEFACE_SIZE: usize = 128;

impl InputSpec {
    /// The input tensor's dimensions, the batch first.
    pub fn tensor_dims(&self) -> Vec<Dim> {
        let (h, w) = (Dim::Fixed(self.height), Dim::Fixed(self.width));
        match self.layout {
            Layout::Nchw => vec![Dim::Batch, Dim::Fixed(3), h, w],
            Layout::Nhwc => vec![Dim::Batch, h, w, Dim::Fixed(3)],
        }
    }

    /// Values per image.
    pub fn values(&self) -> usize {
        3 * self.width * self.height
    }
}

/// `hrm-model.toml` as hrm 0.1 wrote it: one AU set by name, and exactly two files.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestV1 {
    name: String,
    au_set: String,
    output: OutputKind,
    input: InputSpec,
    architecture: Architecture,
    thresholds: IndexMap<String, f32>,
    files: FilesV1,
    source: Source,
    #[allow(dead_code)]
    format: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FilesV1 {
    onnx: FileEntry,
    weights: FileEntry,
}

impl ManifestV1 {
    fn upgrade(self, file: &Path) -> Result<Manifest> {
        let aus = match self.au_set.as_str() {
            "hrm22" => AuList::hrm22(),
            "hrm17" => AuList::hrm17(),
            other => return Err(Error::field(file, "au_set", "\"hrm22\" or \"hrm17\"", other)),
        };
        // hrm 0.1's tract backend ran ResNets image by image; the hint now says so.
        let one_image_per_run = matches!(self.architecture, Architecture::Resnet { .. });
        Ok(Manifest {
            format: FORMAT_VERSION,
            kind: ModelKind::AuClassifier,
            name: self.name,
            aus: aus.ids().iter().map(|id| id.to_string()).collect(),
            output: self.output,
            input: self.input,
            architecture: self.architecture,
            thresholds: self.thresholds,
            hints: ManifestHints { one_image_per_run },
            files: IndexMap::from([
                (GRAPH_FILE.to_string(), self.files.onnx),
                (WEIGHTS_FILE.to_string(), self.files.weights),
            ]),
            source: self.source,
        })
    }
}

/// A manifest is a few KB.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;
/// The largest weights file hashed (ViT-L/16 in f32 is 1.2 GB).
const MAX_WEIGHTS_BYTES: u64 = 16 << 30;

pub(crate) fn check_hash(file: &Path, expected: &str, found: String) -> Result<()> {
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
        use onnx_graph::Dim as GraphDim;
        let matches = |graph_dim: &GraphDim, dim: &Dim| match dim {
            Dim::Fixed(value) => *graph_dim == GraphDim::Fixed(*value as i64),
            Dim::Batch | Dim::Any => matches!(graph_dim, GraphDim::Symbolic(_) | GraphDim::Fixed(1..)),
        };
        let dims = self.input.tensor_dims();
        let input_ok =
            |shape: &[GraphDim]| shape.len() == dims.len() && shape.iter().zip(&dims).all(|(g, d)| matches(g, d));
        let (w, h) = (self.input.width, self.input.height);
        let layout = match self.input.layout {
            Layout::Nchw => format!("[N, 3, {h}, {w}]"),
            Layout::Nhwc => format!("[N, {h}, {w}, 3]"),
        };
        let expected = format!("one input {layout} (the manifest's input.height, input.width and input.layout)");
        one_value(file, "graph inputs", &graph.inputs, input_ok, expected)?;
        let aus = self.aus.len();
        let output_dims = [Dim::Batch, Dim::Fixed(aus)];
        let output_ok =
            |shape: &[GraphDim]| shape.len() == 2 && shape.iter().zip(&output_dims).all(|(g, d)| matches(g, d));
        let expected = format!("one output [N, {aus}] (one value per AU of the manifest's `aus`)");
        one_value(file, "graph outputs", &graph.outputs, output_ok, expected)?;
        let weights_file = &self.file(file, WEIGHTS_FILE)?.name;
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

    /// Parses and validates a manifest's text (format 2, or format 1, which is upgraded). `file`
    /// names it in errors.
    pub fn parse(text: &str, file: &Path) -> Result<Manifest> {
        let toml_error = |e: toml::de::Error| Error::Toml { file: file.to_path_buf(), message: e.to_string() };
        let table: toml::Table = toml::from_str(text).map_err(toml_error)?;
        let manifest = match table.get("format").and_then(|v| v.as_integer()) {
            Some(1) => toml::from_str::<ManifestV1>(text).map_err(toml_error)?.upgrade(file)?,
            Some(2) => toml::from_str::<Manifest>(text).map_err(toml_error)?,
            _ => {
                let found = table.get("format").map_or("nothing".to_string(), |v| v.to_string());
                return Err(Error::field(file, "format", "1 or 2", found));
            }
        };
        manifest.validate(file)?;
        Ok(manifest)
    }

    /// The file of a role (`graph`, `weights`); an error naming `file` (the manifest) without it.
    pub fn file(&self, file: &Path, role: &str) -> Result<&FileEntry> {
        (self.files.get(role))
            .ok_or_else(|| Error::field(file, format!("files.{role}"), "a file of the package", "nothing"))
    }

    /// The AUs of the output columns (validated when the manifest was read).
    pub fn au_list(&self) -> AuList {
        AuList::from_ids(&self.aus).unwrap_or_default()
    }

    /// Checks what serde cannot: values, the AU ids, the files each kind needs, and thresholds
    /// against the AUs. `file` names the manifest in errors.
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
        let aus = match AuList::from_ids(&self.aus) {
            Ok(aus) if !aus.is_empty() => aus,
            Ok(_) => return field("aus", "at least one AU id", &"[]"),
            Err(unknown) => {
                return field("aus", &format!("AU ids hrm knows ({})", crate::au::known_ids().join(", ")), &unknown)
            }
        };
        if let Some(id) = self.aus.iter().enumerate().find_map(|(i, id)| self.aus[..i].contains(id).then_some(id)) {
            return field("aus", "each AU once", &format!("{id} twice"));
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
        if let Architecture::MeGraphAu { neighbors, .. } = self.architecture {
            if neighbors > aus.len() {
                let expected = format!("at most {} (one node per AU)", aus.len());
                return field("architecture.neighbors", &expected, &neighbors);
            }
        }
        if matches!(self.architecture, Architecture::Swin { .. }) {
            return field("architecture.kind", "a whole network (a Swin is only ME-GraphAU's backbone)", &"swin");
        }
        if let Some(side) = self.architecture.fixed_input_side() {
            if (input.width, input.height) != (side, side) {
                let found = format!("{}x{}", input.width, input.height);
                return field("input", &format!("{side}x{side} (what the architecture takes)"), &found);
            }
        }
        let mediapipe = self.kind == ModelKind::MediapipeBlendshapes;
        if mediapipe != matches!(self.architecture, Architecture::Mediapipe) {
            let expected = if mediapipe { "\"mediapipe\" (the kind's networks)" } else { "a converted network" };
            return field("architecture.kind", expected, &format!("{:?}", self.architecture));
        }
        if mediapipe != (self.input.framing == Framing::FaceMesh) {
            let expected = if mediapipe { "\"face-mesh\"" } else { "\"keypoints\"" };
            return field("input.framing", expected, &format!("{:?}", self.input.framing));
        }
        if mediapipe && self.input.layout != Layout::Nhwc {
            return field("input.layout", "\"nhwc\" (the face mesh's)", &format!("{:?}", self.input.layout));
        }
        if mediapipe && self.input.width != self.input.height {
            let found = format!("{}x{}", self.input.width, self.input.height);
            return field("input", "a square crop (the face mesh's)", &found);
        }
        if mediapipe && self.input.channel_order != ChannelOrder::Rgb {
            return field("input.channel_order", "\"rgb\" (MediaPipe's)", &format!("{:?}", self.input.channel_order));
        }
        check_thresholds(file, "thresholds", &aus, &self.thresholds, true)?;
        for role in self.kind.file_roles() {
            if !self.files.contains_key(*role) {
                let roles = self.kind.file_roles().join(", ");
                return field(
                    &format!("files.{role}"),
                    &format!("a file of the package (this kind has {roles})"),
                    &"nothing",
                );
            }
        }
        for (role, entry) in &self.files {
            let name = format!("files.{role}");
            if !is_plain_file_name(&entry.name) {
                return field(&format!("{name}.name"), "a file name inside the package folder", &entry.name);
            }
            if entry.name == MANIFEST_FILE || self.files.values().filter(|e| e.name == entry.name).count() > 1 {
                return field(&format!("{name}.name"), "a file no other role names", &entry.name);
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
/// The input side of ME-GraphAU's Swin backbones (`img_size=224`).
pub const SWIN_INPUT_SIDE: usize = 224;
/// EmoFAN's head halves the map this many times at most (4 in HRM's: a 256 input).
const MAX_EMOFAN_HEAD_BLOCKS: usize = 8;
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
            Architecture::Swin { width, depths, heads, window, patch_size } => {
                within("width", *width, MAX_VIT_WIDTH)?;
                within("window", *window, MAX_PATCH)?;
                within("patch_size", *patch_size, MAX_PATCH)?;
                within("depths", depths.len(), MAX_STAGES)?;
                if heads.len() != depths.len() {
                    let expected = format!("{} entries, one per entry of `depths`", depths.len());
                    return Err(("heads".into(), expected, heads.len().to_string()));
                }
                for (i, (stage_width, side, stage_window, depth, h)) in
                    self.swin_stages(SWIN_INPUT_SIDE).into_iter().enumerate()
                {
                    within(&format!("depths[{i}]"), depth, MAX_DEPTH)?;
                    // Windows tile each map, and each map but the last halves.
                    let last = i + 1 == depths.len();
                    if side == 0 || !side.is_multiple_of(stage_window) || (!last && !side.is_multiple_of(2)) {
                        let expected = format!("stages whose maps ({SWIN_INPUT_SIDE} / patch_size / 2^stage) are even and tiled by the window");
                        return Err(("depths".into(), expected, format!("a {side}-token map at stage {i}")));
                    }
                    within(&format!("heads[{i}]"), h, stage_width)?;
                    if stage_width % h != 0 {
                        return Err((format!("heads[{i}]"), format!("a divisor of {stage_width}"), h.to_string()));
                    }
                }
            }
            Architecture::MeGraphAu { backbone, features, neighbors, .. } => {
                if !matches!(**backbone, Architecture::Resnet { .. } | Architecture::Swin { .. }) {
                    let expected = "\"resnet\" or \"swin\"".into();
                    return Err(("backbone.kind".into(), expected, format!("{backbone:?}")));
                }
                backbone.check().map_err(|(field, expected, found)| (format!("backbone.{field}"), expected, found))?;
                within("features", *features, MAX_CHANNELS)?;
                within("neighbors", *neighbors, MAX_CHANNELS)?;
            }
            Architecture::EmoFan {
                stem_width,
                mid_width,
                features,
                stacks,
                hourglass_depth,
                landmarks,
                head_width,
                head_blocks,
                head_hidden,
            } => {
                within("stem_width", *stem_width, MAX_CHANNELS)?;
                within("landmarks", *landmarks, MAX_CHANNELS)?;
                within("head_hidden", *head_hidden, MAX_CHANNELS)?;
                within("stacks", *stacks, MAX_DEPTH)?;
                within("head_blocks", *head_blocks, MAX_EMOFAN_HEAD_BLOCKS)?;
                // The hourglasses work at a quarter of the input, 4 * 2^head_blocks pixels.
                within("hourglass_depth", *hourglass_depth, head_blocks + 2)?;
                // A ConvBlock's three convolutions give out/2, out/4 and out/4 channels.
                for (name, value) in [("mid_width", mid_width), ("features", features), ("head_width", head_width)] {
                    within(name, *value, MAX_CHANNELS)?;
                    if value % 4 != 0 {
                        return Err((name.into(), "a multiple of 4".into(), value.to_string()));
                    }
                }
            }
            Architecture::Mediapipe => {}
        }
        Ok(())
    }

    /// The input side a network takes, where the architecture fixes it (EmoFAN: its head
    /// averages a 4x4 map, 16 * 2^head_blocks pixels in; Swin's windows and masks are built for
    /// its 224).
    pub fn fixed_input_side(&self) -> Option<usize> {
        match self {
            Architecture::EmoFan { head_blocks, .. } if *head_blocks <= MAX_EMOFAN_HEAD_BLOCKS => {
                Some(16 << head_blocks)
            }
            Architecture::Swin { .. } => Some(SWIN_INPUT_SIDE),
            Architecture::MeGraphAu { backbone, .. } => backbone.fixed_input_side(),
            _ => None,
        }
    }

    /// A Swin's stages: `(width, map side, window side, blocks, heads)` for an input of
    /// `input_side`. A map no larger than the window is one window, never shifted.
    pub fn swin_stages(&self, input_side: usize) -> Vec<(usize, usize, usize, usize, usize)> {
        let Architecture::Swin { width, depths, heads, window, patch_size } = self else { return Vec::new() };
        let side = input_side / patch_size;
        (depths.iter().zip(heads).enumerate())
            .map(|(i, (&depth, &h))| (width << i, side >> i, (*window).min(side >> i), depth, h))
            .collect()
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
            Architecture::Swin { width, patch_size, .. } => {
                expected.extend([
                    v("patch_embed.proj.weight", &[width, 3, patch_size, patch_size]),
                    v("patch_embed.proj.bias", &[width]),
                    v("patch_embed.norm.weight", &[width]),
                    v("patch_embed.norm.bias", &[width]),
                ]);
                let stages = self.swin_stages(input_width);
                for (i, &(dim, _, window, depth, heads)) in stages.iter().enumerate() {
                    for j in 0..depth {
                        let b = |part: &str, shape: &[usize]| (format!("layers.{i}.blocks.{j}.{part}"), shape.to_vec());
                        expected.extend([
                            b("norm1.weight", &[dim]),
                            b("norm1.bias", &[dim]),
                            b("attn.relative_position_bias_table", &[(2 * window - 1) * (2 * window - 1), heads]),
                            b("attn.qkv.weight", &[3 * dim, dim]),
                            b("attn.qkv.bias", &[3 * dim]),
                            b("attn.proj.weight", &[dim, dim]),
                            b("attn.proj.bias", &[dim]),
                            b("norm2.weight", &[dim]),
                            b("norm2.bias", &[dim]),
                            b("mlp.fc1.weight", &[4 * dim, dim]),
                            b("mlp.fc1.bias", &[4 * dim]),
                            b("mlp.fc2.weight", &[dim, 4 * dim]),
                            b("mlp.fc2.bias", &[dim]),
                        ]);
                    }
                    if i + 1 < stages.len() {
                        expected.extend([
                            v(&format!("layers.{i}.downsample.reduction.weight"), &[2 * dim, 4 * dim]),
                            v(&format!("layers.{i}.downsample.norm.weight"), &[4 * dim]),
                            v(&format!("layers.{i}.downsample.norm.bias"), &[4 * dim]),
                        ]);
                    }
                }
                let last = stages.last().map_or(width, |s| s.0);
                expected.extend([v("norm.weight", &[last]), v("norm.bias", &[last])]);
            }
            Architecture::MeGraphAu { ref backbone, features, .. } => {
                let backbone_tensors = backbone.tensors(outputs, input_width, input_height);
                let channels = match **backbone {
                    Architecture::Swin { .. } => backbone_tensors.last().map_or(0, |(_, s)| s[0]),
                    _ => backbone_tensors.iter().find(|(n, _)| n == "fc.weight").map_or(0, |(_, s)| s[1]),
                };
                expected.extend(
                    backbone_tensors
                        .into_iter()
                        .filter(|(name, _)| !name.starts_with("fc."))
                        .map(|(name, shape)| (format!("backbone.{name}"), shape)),
                );
                let linear_block = |expected: &mut Vec<_>, prefix: &str, inputs: usize| {
                    expected.push(v(&format!("{prefix}.fc.weight"), &[features, inputs]));
                    expected.push(v(&format!("{prefix}.fc.bias"), &[features]));
                    batch_norm(expected, &format!("{prefix}.bn"), features);
                };
                linear_block(&mut expected, "global_linear", channels);
                for i in 0..outputs {
                    linear_block(&mut expected, &format!("head.class_linears.{i}"), features);
                }
                for linear in ["U", "V"] {
                    expected.push(v(&format!("head.gnn.{linear}.weight"), &[features, features]));
                    expected.push(v(&format!("head.gnn.{linear}.bias"), &[features]));
                }
                batch_norm(&mut expected, "head.gnn.bnv", outputs);
                expected.push(v("head.sc", &[outputs, features]));
            }
            Architecture::EmoFan {
                stem_width,
                mid_width,
                features,
                stacks,
                hourglass_depth,
                landmarks,
                head_width,
                head_blocks,
                head_hidden,
            } => {
                let e = &mut expected;
                let fan = |part: &str| format!("feature.fan.{part}");
                let conv = |e: &mut Vec<_>, name: &str, shape: [usize; 4]| {
                    e.push(v(&format!("{name}.weight"), &shape));
                    e.push(v(&format!("{name}.bias"), &[shape[0]]));
                };
                conv(e, &fan("conv1"), [stem_width, 3, 7, 7]);
                batch_norm(e, &fan("bn1"), stem_width);
                conv_block(e, &fan("conv2"), stem_width, mid_width);
                conv_block(e, &fan("conv3"), mid_width, mid_width);
                conv_block(e, &fan("conv4"), mid_width, features);
                for i in 0..stacks {
                    for level in (1..=hourglass_depth).rev() {
                        conv_block(e, &fan(&format!("m{i}.b1_{level}")), features, features);
                        conv_block(e, &fan(&format!("m{i}.b2_{level}")), features, features);
                        if level == 1 {
                            conv_block(e, &fan(&format!("m{i}.b2_plus_{level}")), features, features);
                        }
                        conv_block(e, &fan(&format!("m{i}.b3_{level}")), features, features);
                    }
                    conv_block(e, &fan(&format!("top_m_{i}")), features, features);
                    conv(e, &fan(&format!("conv_last{i}")), [features, features, 1, 1]);
                    batch_norm(e, &fan(&format!("bn_end{i}")), features);
                    conv(e, &fan(&format!("l{i}")), [landmarks, features, 1, 1]);
                    if i + 1 < stacks {
                        conv(e, &fan(&format!("bl{i}")), [features, features, 1, 1]);
                        conv(e, &fan(&format!("al{i}")), [features, landmarks, 1, 1]);
                    }
                }
                conv(e, "predictor.conv1x1_input_emo_2", [head_width, features * (stacks + 1), 1, 1]);
                for j in 0..head_blocks {
                    // Sequential indices: a ConvBlock, then its (weightless) max-pool.
                    conv_block(e, &format!("predictor.emo_net_2.{}", 2 * j), head_width, head_width);
                }
                e.push(v("predictor.emo_fc_2.0.weight", &[head_hidden, head_width]));
                e.push(v("predictor.emo_fc_2.0.bias", &[head_hidden]));
                batch_norm(e, "predictor.emo_fc_2.1", head_hidden);
                e.push(v("predictor.emo_fc_2.3.weight", &[outputs, head_hidden]));
                e.push(v("predictor.emo_fc_2.3.bias", &[outputs]));
            }
            // Its graphs hold their weights; no checkpoint is converted.
            Architecture::Mediapipe => {}
        }
        expected
    }
}

/// A BatchNorm's four tensors, each of `channels`.
fn batch_norm(expected: &mut Vec<(String, Vec<usize>)>, prefix: &str, channels: usize) {
    for part in ["weight", "bias", "running_mean", "running_var"] {
        expected.push((format!("{prefix}.{part}"), vec![channels]));
    }
}

/// FAN's `ConvBlock(inputs, out)`: three pre-activated 3x3 convolutions (out/2, out/4, out/4
/// channels, concatenated) and, when the width changes, a BatchNorm-ReLU-1x1 convolution shortcut.
fn conv_block(expected: &mut Vec<(String, Vec<usize>)>, prefix: &str, inputs: usize, out: usize) {
    let (half, quarter) = (out / 2, out / 4);
    for (i, (from, to)) in [(inputs, half), (half, quarter), (quarter, quarter)].into_iter().enumerate() {
        batch_norm(expected, &format!("{prefix}.bn{}", i + 1), from);
        expected.push((format!("{prefix}.conv{}.weight", i + 1), vec![to, from, 3, 3]));
    }
    if inputs != out {
        batch_norm(expected, &format!("{prefix}.downsample.0"), inputs);
        expected.push((format!("{prefix}.downsample.2.weight"), vec![out, inputs, 1, 1]));
    }
}

/// Checks a table of AU id -> threshold: ids must belong to `set` (the model's AUs), values lie in
/// [0, 1]; with `complete`, every AU of the set must be present.
pub fn check_thresholds<'a>(
    file: &Path,
    table: &str,
    set: &AuList,
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
                format!("an AU id the model reports ({})", known.join(", ")),
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
                format!("a threshold for every AU the model reports ({set})"),
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
pub(crate) fn sha256_and_len(path: &Path) -> Result<(String, u64)> {
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
