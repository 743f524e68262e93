//! hrm-convert: turns the HRM authors' PyTorch checkpoints into hrm model packages, in Rust.
//!
//! The checkpoint is read without Python (a pickle reader that executes nothing), the network is
//! recognised from its tensors and checked strictly, and the package gets an ONNX graph whose
//! weights point into a safetensors file that keeps the original tensor names.

pub mod arch;
pub mod atypicality;
pub mod checkpoint;
mod error;
pub mod graph;
pub mod onnx;
pub mod pickle;
pub mod safetensors;

pub use arch::ArchOptions;
pub use error::{ConvertError, Result};

use checkpoint::Checkpoint;
use hrm_core::manifest::Architecture;
use hrm_core::manifest::{
    self, ChannelOrder, FileEntry, Framing, InputSpec, Layout, Manifest, ManifestHints, ModelKind, OutputKind, Source,
};
use std::path::{Path, PathBuf};

const ONNX_FILE: &str = "model.onnx";
pub(crate) const WEIGHTS_FILE: &str = "model.safetensors";
const LICENCE_NOTE: &str = "Weights by the Hugging Rain Man authors (arXiv 2411.13797), under the licence they publish them with; this package only changes their format.";

const FIXTURE_NOTE: &str =
    "Random-weight test fixture: it runs and matches PyTorch on the same weights, but its outputs mean nothing.";

#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Package name; by default the checkpoint's file stem.
    pub name: Option<String>,
    pub arch: ArchOptions,
    /// The checkpoint holds random test weights: the manifest says so instead of naming the HRM
    /// authors' licence, and `hrm detect` warns that the numbers mean nothing.
    pub fixture: bool,
}

/// What a conversion produced.
#[derive(Debug)]
pub struct Converted {
    pub dir: PathBuf,
    pub model: ConvertedModel,
    /// Where the state dict was found and what was skipped or assumed.
    pub notes: Vec<String>,
}

/// The package's manifest: an AU model's, or the atypicality regressor's.
#[derive(Debug)]
pub enum ConvertedModel {
    AuModel(Manifest),
    Atypicality(hrm_core::atypicality::AtypicalityManifest),
}

/// Converts `checkpoint` into a package at `out`. Nothing is left at `out` unless every step
/// succeeded; an existing package there is replaced.
pub fn convert(checkpoint: &Path, out: &Path, options: &ConvertOptions) -> Result<Converted> {
    let mut ckpt = Checkpoint::open(checkpoint)?;
    let state = ckpt.state_dict()?;
    let mut notes = vec![format!("state dict found at {}", state.location)];
    if !state.skipped.is_empty() {
        notes.push(format!("non-tensor entries skipped: {}", state.skipped.join(", ")));
    }
    let file_name = checkpoint.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let name = options.name.clone().unwrap_or_else(|| {
        checkpoint.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
    });
    let source = |notes: &[String]| -> Result<Source> {
        Ok(Source {
            checkpoint: file_name.clone(),
            sha256: manifest::sha256_file(checkpoint)?,
            licence: if options.fixture { FIXTURE_NOTE } else { LICENCE_NOTE }.into(),
            notes: notes.to_vec(),
            fixture: options.fixture,
        })
    };

    if atypicality::is_gru(&state) {
        let guard = Staging::new(out)?;
        let manifest = atypicality::write_package(checkpoint, &mut ckpt, &state, &guard.0, &name, source(&notes)?)?;
        replace_dir(&guard.0, out)?;
        return Ok(Converted { dir: out.to_path_buf(), model: ConvertedModel::Atypicality(manifest), notes });
    }
    let arch_options = match arch::is_me_graphau(&state.tensors) {
        true => with_saved_arguments(&ckpt.root, &options.arch, &mut notes)?,
        false => options.arch.clone(),
    };
    let recognised = arch::recognise(checkpoint, &state.tensors, &arch_options)?;
    notes.extend(recognised.notes.iter().cloned());
    let source = source(&notes)?;

    let guard = Staging::new(out)?;
    let staging = guard.0.as_path();
    let result = (|| -> Result<Manifest> {
        let layout =
            safetensors::Layout::new(&recognised.tensors, &[("format", "pt".into()), ("source", file_name.clone())]);
        let weights_path = staging.join(WEIGHTS_FILE);
        let io = |e| ConvertError::Io { path: weights_path.clone(), error: e };
        let mut writer = std::io::BufWriter::new(std::fs::File::create(&weights_path).map_err(io)?);
        layout.write(
            &mut writer,
            |name| {
                let source = recognised.renamed.get(name).map_or(name, String::as_str);
                ckpt.read_f32(source, &state.tensors[source])
            },
            io,
        )?;
        std::io::Write::flush(&mut writer).map_err(io)?;
        drop(writer);

        let mut g = onnx::Graph::new(WEIGHTS_FILE, layout.external());
        let logits = graph::build(&mut g, &recognised.architecture, recognised.input_size, recognised.aus.len());
        let size = recognised.input_size;
        use onnx::Dim::{Fixed, Symbol};
        let bytes = g.finish(
            ("input", &[Symbol("N"), Fixed(3), Fixed(size), Fixed(size)]),
            ("logits", &logits, &[Symbol("N"), Fixed(recognised.aus.len())]),
            &format!("{name}: converted by hrm from {file_name}"),
        );
        let onnx_path = staging.join(ONNX_FILE);
        std::fs::write(&onnx_path, bytes).map_err(|e| ConvertError::Io { path: onnx_path.clone(), error: e })?;

        let manifest = Manifest {
            format: manifest::FORMAT_VERSION,
            kind: ModelKind::AuClassifier,
            name: name.clone(),
            aus: recognised.aus.ids().iter().map(|id| id.to_string()).collect(),
            output: match recognised.architecture {
                Architecture::MeGraphAu { .. } => OutputKind::Probabilities,
                _ => OutputKind::Logits,
            },
            input: InputSpec {
                width: size,
                height: size,
                layout: Layout::Nchw,
                framing: Framing::Keypoints,
                channel_order: ChannelOrder::Rgb,
                mean: manifest::HRM_MEAN,
                std: manifest::HRM_STD,
            },
            architecture: recognised.architecture.clone(),
            thresholds: recognised.aus.aus().iter().map(|au| (au.id.to_string(), 0.5)).collect(),
            // Convolutions batch badly on tract; a ViT's matrix products batch well.
            hints: ManifestHints { one_image_per_run: !matches!(recognised.architecture, Architecture::Vit { .. }) },
            files: [
                (manifest::GRAPH_FILE, ONNX_FILE, &onnx_path),
                (manifest::WEIGHTS_FILE, WEIGHTS_FILE, &weights_path),
            ]
            .into_iter()
            .map(|(role, name, path)| {
                Ok((role.to_string(), FileEntry { name: name.into(), sha256: manifest::sha256_file(path)? }))
            })
            .collect::<Result<_>>()?,
            source,
        };
        let toml_path = staging.join(manifest::MANIFEST_FILE);
        let text = toml::to_string(&manifest)?;
        std::fs::write(&toml_path, text).map_err(|e| ConvertError::Io { path: toml_path.clone(), error: e })?;
        Ok(manifest)
    })();

    let manifest = result?;
    replace_dir(staging, out)?;
    Ok(Converted { dir: out.to_path_buf(), model: ConvertedModel::AuModel(manifest), notes })
}

/// The command line's choices, completed from the training arguments a checkpoint may carry
/// (`args` or `conf`: ME-GraphAU's `--neighbor_num` and `--metric`). The authors' own
/// checkpoints carry none, and then their code's defaults apply.
fn with_saved_arguments(root: &pickle::Value, given: &ArchOptions, notes: &mut Vec<String>) -> Result<ArchOptions> {
    let mut options = given.clone();
    let Some((entry, saved)) = ["args", "conf"].into_iter().find_map(|key| Some((key, root.get(key)?))) else {
        return Ok(options);
    };
    if options.neighbors.is_none() {
        if let Some(pickle::Value::Int(k)) = saved.get("neighbor_num") {
            let k = usize::try_from(*k)
                .map_err(|_| ConvertError::Option(format!("the checkpoint's {entry}.neighbor_num is {k}")))?;
            options.neighbors = Some(k);
            notes.push(format!("neighbours: {k}, from the checkpoint's {entry}.neighbor_num"));
        }
    }
    if options.metric.is_none() {
        if let Some(text) = saved.get("metric").and_then(pickle::Value::as_str) {
            let metric = manifest::GraphMetric::parse(text).ok_or_else(|| {
                ConvertError::Option(format!(
                    "the checkpoint's {entry}.metric is \"{text}\"; ME-GraphAU's metrics are dots, cosine and l1"
                ))
            })?;
            options.metric = Some(metric);
            notes.push(format!("metric: {text}, from the checkpoint's {entry}.metric"));
        }
    }
    Ok(options)
}

/// A fresh folder beside `out` (so the final rename stays on one file system), removed when
/// dropped: on an error, and on a panic's unwinding, nothing is left behind. After the rename
/// there is nothing left to remove.
struct Staging(PathBuf);

impl Staging {
    fn new(out: &Path) -> Result<Staging> {
        let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| ConvertError::Io { path: parent.to_path_buf(), error: e })?;
        let leaf = out.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "package".into());
        // Unique per process and call, so conversions running side by side never share one.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let staging = parent.join(format!(".{leaf}.converting-{}-{call}", std::process::id()));
        let _ = std::fs::remove_dir_all(&staging);
        std::fs::create_dir(&staging).map_err(|e| ConvertError::Io { path: staging.clone(), error: e })?;
        Ok(Staging(staging))
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The files a package folder holds, and nothing else.
const PACKAGE_FILES: [&str; 3] = [manifest::MANIFEST_FILE, ONNX_FILE, WEIGHTS_FILE];

/// Moves the finished package into place. An existing `out` is replaced only when it is empty or
/// exactly a package (its manifest parses and it holds nothing but the package's files), so a
/// mistyped `--out` cannot delete anyone's data; otherwise the error names what is in the way.
fn replace_dir(staging: &Path, out: &Path) -> Result<()> {
    let in_the_way = |what: String| ConvertError::OutInTheWay { path: out.to_path_buf(), what };
    match std::fs::symlink_metadata(out) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(ConvertError::Io { path: out.to_path_buf(), error: e }),
        Ok(meta) if !meta.is_dir() => return Err(in_the_way("exists and is not a folder".into())),
        Ok(_) => {
            let io = |e| ConvertError::Io { path: out.to_path_buf(), error: e };
            let mut others = Vec::new();
            let mut files = 0;
            for entry in std::fs::read_dir(out).map_err(io)? {
                let entry = entry.map_err(io)?;
                let name = entry.file_name();
                let plain_file = entry.file_type().map_err(io)?.is_file();
                if plain_file && PACKAGE_FILES.iter().any(|f| name == *f) {
                    files += 1;
                } else {
                    others.push(name.to_string_lossy().into_owned());
                }
            }
            if !others.is_empty() {
                others.sort();
                let shown = others.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
                let more = if others.len() > 5 { format!(" and {} more", others.len() - 5) } else { String::new() };
                return Err(in_the_way(format!("holds files that are not part of a model package: {shown}{more}")));
            }
            if files > 0 {
                let manifest_path = out.join(manifest::MANIFEST_FILE);
                let parses = std::fs::read_to_string(&manifest_path).ok().is_some_and(|text| {
                    Manifest::parse(&text, &manifest_path).is_ok()
                        || toml::from_str::<hrm_core::atypicality::AtypicalityManifest>(&text).is_ok()
                });
                if !parses {
                    return Err(in_the_way(format!("holds no valid {}", manifest::MANIFEST_FILE)));
                }
            }
            // The old package is moved aside, the new one put in place, and only then is the old
            // one deleted: a failure on the way leaves the old package where it was.
            let mut aside = staging.as_os_str().to_owned();
            aside.push("-replaced");
            let aside = PathBuf::from(aside);
            std::fs::rename(out, &aside).map_err(io)?;
            if let Err(e) = std::fs::rename(staging, out) {
                let _ = std::fs::rename(&aside, out);
                return Err(ConvertError::Io { path: out.to_path_buf(), error: e });
            }
            let _ = std::fs::remove_dir_all(&aside);
            return Ok(());
        }
    }
    std::fs::rename(staging, out).map_err(|e| ConvertError::Io { path: out.to_path_buf(), error: e })
}
