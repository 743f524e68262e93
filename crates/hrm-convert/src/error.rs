use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// The OS error is in the message only, so a chained report does not print it twice.
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },

    /// The file is not a PyTorch checkpoint this converter can read, or it is damaged.
    #[error("{}: not a readable PyTorch checkpoint: {reason}", path.display())]
    Checkpoint { path: PathBuf, reason: String },

    /// No state dict was found where the HRM checkpoints keep it.
    #[error("{}: no state dict under `model`, `state_dict` or at the top level (top-level entries: {found})", path.display())]
    NoStateDict { path: PathBuf, found: String },

    /// The tensors belong to a model this converter recognises but cannot convert yet.
    #[error("{}: {architecture} is recognised but not yet supported: {reason}", path.display())]
    Unsupported { path: PathBuf, architecture: String, reason: String },

    /// The tensors match no known architecture.
    #[error("{}: the tensors match no supported architecture (ViT, torchvision ResNet, ME-GraphAU, EmoFAN); first keys: {keys}", path.display())]
    Unrecognised { path: PathBuf, keys: String },

    /// Unknown, missing or mis-shaped tensors: every one is listed, nothing is converted.
    #[error("{}: the {architecture} state dict does not load strictly:\n  {}", path.display(), problems.join("\n  "))]
    Tensors { path: PathBuf, architecture: String, problems: Vec<String> },

    /// A command-line choice does not fit the checkpoint (`--heads` not dividing the width, ...).
    #[error("{0}")]
    Option(String),

    /// `--out` names something that is not an empty folder or a model package, which conversion
    /// will not replace.
    #[error("{}: {what}; it is not replaced: choose another --out, or move it away", path.display())]
    OutInTheWay { path: PathBuf, what: String },

    /// The manifest could not be serialised (a bug: every manifest the converter makes can be).
    #[error("cannot write the manifest: {0}")]
    Manifest(#[from] toml::ser::Error),

    #[error(transparent)]
    Core(#[from] hrm_core::Error),
}

pub type Result<T, E = ConvertError> = std::result::Result<T, E>;
