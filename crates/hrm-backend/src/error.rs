//! One error type for the whole runtime, backends included. Every variant names what went wrong
//! and where.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written. The OS error is part of the message (and not also a
    /// `source()`, which would print it twice in a chained report).
    #[error("{}: {error}", path.display())]
    Io { path: PathBuf, error: std::io::Error },

    /// A TOML file did not parse (syntax, unknown key, wrong type); `message` names the key.
    #[error("{}: {message}", file.display())]
    Toml { file: PathBuf, message: String },

    /// A field of a manifest or configuration holds a value that is not allowed.
    #[error("{}: `{field}`: expected {expected}, found {found}", file.display())]
    Field { file: PathBuf, field: String, expected: String, found: String },

    /// A path given as a model package is not a package folder (a checkpoint, say).
    #[error("{}: not a model package: {reason}", path.display())]
    NotAPackage { path: PathBuf, reason: String },

    /// A file's content does not match the sha256 its manifest records.
    #[error("{}: sha256 mismatch: the manifest expects {expected}, the file has {found}", file.display())]
    Hash { file: PathBuf, expected: String, found: String },

    /// An image could not be decoded.
    #[error("{source_name}: cannot decode image: {message}")]
    Decode { source_name: String, message: String },

    /// A caller-supplied frame or tensor is malformed (size, stride, format).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// No backend of that name is registered.
    #[error("unknown backend `{name}` (registered: {known})")]
    UnknownBackend { name: String, known: String },

    /// A second backend was registered under a name already taken.
    #[error("a backend named `{name}` is already registered")]
    DuplicateBackend { name: String },

    /// A backend failed to load or run a model.
    #[error("backend `{backend}`: {message}")]
    Backend { backend: String, message: String },

    /// A model gave outputs that are not what its manifest declares (their number, their shape,
    /// values out of the declared range): the package does not describe its graph.
    #[error("model `{model}`: {message}")]
    ModelOutput { model: String, message: String },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { path: path.into(), error: source }
    }

    pub fn field(
        file: impl Into<PathBuf>,
        field: impl Into<String>,
        expected: impl Into<String>,
        found: impl ToString,
    ) -> Self {
        Error::Field { file: file.into(), field: field.into(), expected: expected.into(), found: found.to_string() }
    }
}

/// The message a panic carried (`panic!("...")` gives a `&str` or a `String`), for the places that
/// catch panics at a boundary and report them as errors.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown panic".into())
}
