//! How hrm reads the files it is given (configurations, model packages, checkpoints, photographs):
//! only regular files, opened without blocking and read up to a limit, so that a FIFO, a device
//! or a file that never ends is an error that says what it is, never a hang.

use crate::error::{Error, Result};
use std::path::Path;

/// The content of `path`, if it is a regular file (after symlinks) of at most `limit` bytes.
/// Opening does not block on a FIFO: it is refused once opened.
pub fn read_regular_file(path: &Path, limit: u64) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut file = open_regular_file(path)?;
    let size = file.metadata().map_err(|e| Error::io(path, e))?.len();
    if size > limit {
        return Err(too_large(path, format!("the file holds {size} bytes, more than the limit of {limit}")));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    (&mut file).take(limit + 1).read_to_end(&mut bytes).map_err(|e| Error::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large(path, format!("the file grew past the limit of {limit} bytes")));
    }
    Ok(bytes)
}

/// Opens `path` for reading if it is a regular file (after symlinks); FIFOs, devices, sockets and
/// folders are refused with a message that says what they are.
pub fn open_regular_file(path: &Path) -> Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // O_NONBLOCK: an open that would wait for a FIFO's writer returns at once instead; it has
        // no effect on reading regular files.
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path).map_err(|e| Error::io(path, e))?;
    let kind = file.metadata().map_err(|e| Error::io(path, e))?.file_type();
    if !kind.is_file() {
        let what = format!("{}, not a regular file", describe_file_type(kind));
        return Err(Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidInput, what)));
    }
    Ok(file)
}

/// What a file that is not a regular file is, in words.
pub fn describe_file_type(kind: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "a FIFO";
        }
        if kind.is_socket() {
            return "a socket";
        }
        if kind.is_block_device() || kind.is_char_device() {
            return "a device";
        }
    }
    if kind.is_dir() {
        "a folder"
    } else if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

/// The content of `path` as UTF-8 text, read as [`read_regular_file`] reads it; text that is not
/// UTF-8 is a TOML error naming the file (configurations and manifests are TOML).
pub fn read_text_file(path: &Path, limit: u64) -> Result<String> {
    String::from_utf8(read_regular_file(path, limit)?)
        .map_err(|_| Error::Toml { file: path.to_path_buf(), message: "the file is not UTF-8 text".into() })
}

/// The error for a file larger than its limit.
pub fn too_large(path: &Path, what: String) -> Error {
    Error::io(path, std::io::Error::new(std::io::ErrorKind::InvalidData, what))
}
