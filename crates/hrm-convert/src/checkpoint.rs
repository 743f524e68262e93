//! PyTorch's checkpoint format (`torch.save` since 1.6): a zip holding `<name>/data.pkl` and one
//! entry `<name>/data/<key>` per storage.

use crate::error::{ConvertError, Result};
use crate::pickle::{self, DType, TensorRef, Value};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub struct Checkpoint {
    path: PathBuf,
    archive: zip::ZipArchive<File>,
    prefix: String,
    /// The unpickled object.
    pub root: Value,
}

/// The model's tensors, with `module.` stripped, and notes on where they were found.
pub struct StateDict {
    pub tensors: BTreeMap<String, TensorRef>,
    /// Where the state dict was (`model`, `state_dict` or the top level).
    pub location: String,
    /// Non-tensor entries of the state dict that were skipped (`num_batches_tracked` is a tensor).
    pub skipped: Vec<String>,
}

impl Checkpoint {
    pub fn open(path: &Path) -> Result<Checkpoint> {
        let bad = |reason: String| ConvertError::Checkpoint { path: path.to_path_buf(), reason };
        // A regular file only: opening a FIFO would wait for a writer forever.
        let file = hrm_core::files::open_regular_file(path)?;
        let mut archive = zip::ZipArchive::new(file).map_err(|e| {
            bad(format!("not a zip archive ({e}); files from torch < 1.6 or truncated downloads look like this"))
        })?;
        let pickle_name = archive
            .file_names()
            .find(|n| n.ends_with("data.pkl") && n.matches('/').count() <= 1)
            .map(str::to_string)
            .ok_or_else(|| bad("the archive has no data.pkl".into()))?;
        let prefix = pickle_name.trim_end_matches("data.pkl").to_string();
        let byteorder = format!("{prefix}byteorder");
        if archive.index_for_name(&byteorder).is_some() {
            let order = read_entry(&mut archive, &byteorder, 64).map_err(bad)?;
            let order = String::from_utf8_lossy(&order);
            if order.trim() != "little" {
                return Err(bad(format!(
                    "byte order `{}`; only little-endian checkpoints are supported",
                    order.trim()
                )));
            }
        }
        let bytes = read_entry(&mut archive, &pickle_name, MAX_PICKLE_BYTES).map_err(bad)?;
        let root = pickle::load(&bytes).map_err(|e| bad(format!("{pickle_name}: {e}")))?;
        Ok(Checkpoint { path: path.to_path_buf(), archive, prefix, root })
    }

    /// Finds the state dict where HRM's scripts put it: `model` (MAE-Face, FMAE), `state_dict`
    /// (ME-GraphAU, the atypicality GRU), or the top level (EmoFAN); strips `module.`.
    pub fn state_dict(&self) -> Result<StateDict> {
        let top_keys = || match self.root.entries() {
            Some(entries) => entries
                .iter()
                .map(|(k, v)| format!("{} ({})", k.as_str().unwrap_or("?"), v.kind()))
                .collect::<Vec<_>>()
                .join(", "),
            None => format!("the checkpoint holds a {}, not a dict", self.root.kind()),
        };
        let candidates = [
            ("model", self.root.get("model")),
            ("state_dict", self.root.get("state_dict")),
            ("the top level", Some(&self.root)),
        ];
        for (location, value) in candidates {
            let Some(entries) = value.and_then(Value::entries) else { continue };
            if !entries.iter().any(|(_, v)| matches!(v, Value::Tensor(_))) {
                continue;
            }
            let mut tensors = BTreeMap::new();
            let mut skipped = Vec::new();
            for (key, value) in entries {
                let name = key.as_str().unwrap_or_default();
                let name = name.strip_prefix("module.").unwrap_or(name).to_string();
                match value {
                    Value::Tensor(t) => {
                        tensors.insert(name, t.clone());
                    }
                    other => skipped.push(format!("{name} ({})", other.kind())),
                }
            }
            return Ok(StateDict { tensors, location: location.to_string(), skipped });
        }
        Err(ConvertError::NoStateDict { path: self.path.clone(), found: top_keys() })
    }

    /// Reads a tensor as f32 in row-major order, whatever its storage type and strides.
    pub fn read_f32(&mut self, name: &str, tensor: &TensorRef) -> Result<Vec<f32>> {
        let bad = |reason: String| ConvertError::Checkpoint {
            path: self.path.clone(),
            reason: format!("tensor `{name}`: {reason}"),
        };
        if !tensor.dtype.is_float() {
            return Err(bad(format!("holds {:?}, not floating point", tensor.dtype)));
        }
        let entry = format!("{}data/{}", self.prefix, tensor.storage);
        let size = tensor.dtype.size();
        let needed =
            tensor.storage_len.checked_mul(size).filter(|&n| n as u64 <= MAX_STORAGE_BYTES).ok_or_else(|| {
                bad(format!(
                    "storage {entry} declares {} elements of {:?}, more than the limit of {MAX_STORAGE_BYTES} bytes",
                    tensor.storage_len, tensor.dtype
                ))
            })?;
        let raw = read_entry(&mut self.archive, &entry, needed as u64).map_err(bad)?;
        if raw.len() != needed {
            return Err(bad(format!(
                "storage {entry} holds {} bytes, {} elements of {:?} need {needed}",
                raw.len(),
                tensor.storage_len,
                tensor.dtype,
            )));
        }
        let last = tensor.shape.iter().zip(&tensor.stride).try_fold(tensor.offset, |acc, (&n, &s)| {
            if n == 0 {
                Some(acc)
            } else {
                acc.checked_add((n - 1).checked_mul(s)?)
            }
        });
        match last {
            Some(last) if tensor.numel() == 0 || last < tensor.storage_len => {}
            _ => {
                return Err(bad(format!(
                    "its view (offset {}, shape {:?}, stride {:?}) runs past its storage of {} elements",
                    tensor.offset, tensor.shape, tensor.stride, tensor.storage_len
                )))
            }
        }
        // A view with more elements than its storage repeats data through a zero stride: it is not
        // a parameter, and would let a 4-byte storage ask for any amount of memory.
        let numel = tensor.numel();
        if numel > tensor.storage_len {
            return Err(bad(format!(
                "its view (shape {:?}, stride {:?}) has {numel} elements, more than its storage's {}",
                tensor.shape, tensor.stride, tensor.storage_len
            )));
        }
        let mut out = Vec::with_capacity(numel);
        let mut index = vec![0usize; tensor.shape.len()];
        for _ in 0..numel {
            let at = tensor.offset + index.iter().zip(&tensor.stride).map(|(i, s)| i * s).sum::<usize>();
            out.push(element(&raw[at * size..][..size], tensor.dtype));
            for axis in (0..index.len()).rev() {
                index[axis] += 1;
                if index[axis] < tensor.shape[axis] {
                    break;
                }
                index[axis] = 0;
            }
        }
        Ok(out)
    }
}

/// The pickle of a checkpoint is a few MB (its tensors live in other entries).
const MAX_PICKLE_BYTES: u64 = 256 << 20;
/// The largest storage read (ViT-L/16's largest tensor is 16 MB; a whole ViT-L in one storage 1.2 GB).
const MAX_STORAGE_BYTES: u64 = 4 << 30;

/// Reads one zip entry, refusing it when the zip declares more than `limit` bytes and stopping at
/// the declared size whatever the compressed data inflates to (a zip bomb ends there).
fn read_entry(archive: &mut zip::ZipArchive<File>, name: &str, limit: u64) -> std::result::Result<Vec<u8>, String> {
    let entry = archive.by_name(name).map_err(|e| format!("{name}: {e}"))?;
    let declared = entry.size();
    if declared > limit {
        return Err(format!("{name}: the archive declares {declared} bytes, more than the {limit} expected"));
    }
    let mut bytes = Vec::new();
    bytes.try_reserve_exact(declared as usize).map_err(|_| format!("{name}: {declared} bytes cannot be allocated"))?;
    entry.take(declared).read_to_end(&mut bytes).map_err(|e| format!("{name}: {e}"))?;
    Ok(bytes)
}

fn element(bytes: &[u8], dtype: DType) -> f32 {
    match dtype {
        DType::F32 => f32::from_le_bytes(bytes.try_into().unwrap()),
        DType::F64 => f64::from_le_bytes(bytes.try_into().unwrap()) as f32,
        DType::F16 => f16_to_f32(u16::from_le_bytes(bytes.try_into().unwrap())),
        DType::BF16 => f32::from_bits((u16::from_le_bytes(bytes.try_into().unwrap()) as u32) << 16),
        _ => unreachable!("checked by read_f32"),
    }
}

fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1F) as u32;
    let frac = (h & 0x3FF) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // subnormal: renormalise
            let mut e = 127 - 15 + 1;
            let mut f = frac;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | (e << 23) | ((f & 0x3FF) << 13)
        }
        (0x1F, _) => sign | 0x7F80_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    #[test]
    fn half_precision_values() {
        assert_eq!(f16_to_f32(0x3C00), 1.0);
        assert_eq!(f16_to_f32(0xC000), -2.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x7BFF), 65504.0);
        assert!(f16_to_f32(0x7C00).is_infinite());
    }
}
