//! hrm-convert: turns the HRM authors' PyTorch checkpoints into hrm model packages, in Rust.
//!
//! The checkpoint is read without Python (a pickle reader that executes nothing), the network is
//! recognised from its tensors and checked strictly, and the package gets an ONNX graph whose
//! weights point into a safetensors file that keeps the original tensor names.

pub mod arch;
pub mod checkpoint;
mod error;
pub mod graph;
pub mod onnx;
pub mod pickle;
pub mod safetensors;

pub use arch::ArchOptions;
pub use error::{ConvertError, Result};

use checkpoint::Checkpoint;
use hrm_core::manifest::{self, ChannelOrder, FileEntry, Files, InputSpec, Manifest, OutputKind, Source};
use std::path::{Path, PathBuf};

const ONNX_FILE: &str = "model.onnx";
const WEIGHTS_FILE: &str = "model.safetensors";
const LICENCE_NOTE: &str = "Weights by the Hugging Rain Man authors (arXiv 2411.13797), under the licence they publish them with; this package only changes their format.";

#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Package name; by default the checkpoint's file stem.
    pub name: Option<String>,
    pub arch: ArchOptions,
}

/// What a conversion produced.
#[derive(Debug)]
pub struct Converted {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// Where the state dict was found and what was skipped or assumed.
    pub notes: Vec<String>,
}

/// Converts `checkpoint` into a package at `out`. Nothing is left at `out` unless every step
/// succeeded; an existing package there is replaced.
pub fn convert(checkpoint: &Path, out: &Path, options: &ConvertOptions) -> Result<Converted> {
    let mut ckpt = Checkpoint::open(checkpoint)?;
    let state = ckpt.state_dict()?;
    let recognised = arch::recognise(checkpoint, &state.tensors, &options.arch)?;
    let mut notes = vec![format!("state dict found at {}", state.location)];
    if !state.skipped.is_empty() {
        notes.push(format!("non-tensor entries skipped: {}", state.skipped.join(", ")));
    }
    notes.extend(recognised.notes.iter().cloned());

    let file_name = checkpoint.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
    let name = options.name.clone().unwrap_or_else(|| {
        checkpoint.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into())
    });

    let staging = staging_dir(out)?;
    let result = (|| -> Result<Manifest> {
        let layout =
            safetensors::Layout::new(&recognised.tensors, &[("format", "pt".into()), ("source", file_name.clone())]);
        let weights_path = staging.join(WEIGHTS_FILE);
        let io = |e| ConvertError::Io { path: weights_path.clone(), error: e };
        let mut writer = std::io::BufWriter::new(std::fs::File::create(&weights_path).map_err(io)?);
        layout.write(&mut writer, |name| ckpt.read_f32(name, &state.tensors[name]), io)?;
        std::io::Write::flush(&mut writer).map_err(io)?;
        drop(writer);

        let mut g = onnx::Graph::new(WEIGHTS_FILE, layout.external());
        let logits = graph::build(&mut g, &recognised.architecture, recognised.input_size);
        let size = recognised.input_size;
        use onnx::Dim::{Fixed, Symbol};
        let bytes = g.finish(
            ("input", &[Symbol("N"), Fixed(3), Fixed(size), Fixed(size)]),
            ("logits", &logits, &[Symbol("N"), Fixed(recognised.au_set.len())]),
            &format!("{name}: converted by hrm from {file_name}"),
        );
        let onnx_path = staging.join(ONNX_FILE);
        std::fs::write(&onnx_path, bytes).map_err(|e| ConvertError::Io { path: onnx_path.clone(), error: e })?;

        let manifest = Manifest {
            format: manifest::FORMAT_VERSION,
            name: name.clone(),
            au_set: recognised.au_set,
            output: OutputKind::Logits,
            input: InputSpec {
                width: size,
                height: size,
                channel_order: ChannelOrder::Rgb,
                mean: manifest::HRM_MEAN,
                std: manifest::HRM_STD,
            },
            architecture: recognised.architecture.clone(),
            thresholds: recognised.au_set.aus().iter().map(|au| (au.id.to_string(), 0.5)).collect(),
            files: Files {
                onnx: FileEntry { name: ONNX_FILE.into(), sha256: manifest::sha256_file(&onnx_path)? },
                weights: FileEntry { name: WEIGHTS_FILE.into(), sha256: manifest::sha256_file(&weights_path)? },
            },
            source: Source {
                checkpoint: file_name.clone(),
                sha256: manifest::sha256_file(checkpoint)?,
                licence: LICENCE_NOTE.into(),
                notes: notes.clone(),
            },
        };
        let toml_path = staging.join(manifest::MANIFEST_FILE);
        let text =
            toml::to_string(&manifest).map_err(|e| ConvertError::Option(format!("cannot write the manifest: {e}")))?;
        std::fs::write(&toml_path, text).map_err(|e| ConvertError::Io { path: toml_path.clone(), error: e })?;
        Ok(manifest)
    })();

    match result {
        Ok(manifest) => {
            replace_dir(&staging, out)?;
            Ok(Converted { dir: out.to_path_buf(), manifest, notes })
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e)
        }
    }
}

/// A fresh folder beside `out`, so the final rename stays on one file system.
fn staging_dir(out: &Path) -> Result<PathBuf> {
    let parent = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).map_err(|e| ConvertError::Io { path: parent.to_path_buf(), error: e })?;
    let leaf = out.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| "package".into());
    let staging = parent.join(format!(".{leaf}.converting-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&staging);
    std::fs::create_dir(&staging).map_err(|e| ConvertError::Io { path: staging.clone(), error: e })?;
    Ok(staging)
}

/// Moves the finished package into place. An existing folder is only replaced if it is a package
/// (or empty), so a typo in `--out` cannot delete someone's data.
fn replace_dir(staging: &Path, out: &Path) -> Result<()> {
    if out.exists() {
        let is_package = out.join(manifest::MANIFEST_FILE).exists();
        let is_empty = std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !(is_package || is_empty) {
            let _ = std::fs::remove_dir_all(staging);
            return Err(ConvertError::Option(format!(
                "{} exists and is not an hrm model package; choose another --out",
                out.display()
            )));
        }
        std::fs::remove_dir_all(out).map_err(|e| ConvertError::Io { path: out.to_path_buf(), error: e })?;
    }
    std::fs::rename(staging, out).map_err(|e| ConvertError::Io { path: out.to_path_buf(), error: e })
}
