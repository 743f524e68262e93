//! HRM's atypicality regressor (`Predict/atypical_regressor_3fold.py`): a window of 15
//! consecutive frames of binary AUs through a GRU (22 -> 128, 2 layers, zero initial state) and a
//! linear layer on the last step, giving the atypicality rating + 1 (about 1 to 5, unbounded).
//! It runs here in plain Rust: a few hundred thousand multiply-adds a window.
//!
//! Its package is a folder of `hrm-model.toml` (`kind = "atypicality-gru"`) and the checkpoint's
//! tensors in `model.safetensors`, both written by `hrm convert`.

use crate::au::AuList;
use crate::error::{Error, Result};
use crate::files;
use crate::manifest::{check_hash, sha256_and_len, FileEntry, Source, MANIFEST_FILE, WEIGHTS_FILE};
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The package kind, in `hrm-model.toml`.
pub const KIND: &str = "atypicality-gru";

/// Whether a manifest's text is an atypicality package's (its `kind`).
pub fn is_atypicality_manifest(text: &str) -> bool {
    text.parse::<toml::Table>().ok().and_then(|t| t.get("kind")?.as_str().map(|k| k == KIND)).unwrap_or(false)
}

/// Whether `dir` holds an atypicality package.
pub fn is_atypicality_package(dir: &Path) -> bool {
    files::read_text_file(&dir.join(MANIFEST_FILE), 1 << 20).is_ok_and(|text| is_atypicality_manifest(&text))
}

/// The manifest of an atypicality package.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtypicalityManifest {
    pub format: u32,
    /// Always [`KIND`].
    pub kind: String,
    pub name: String,
    /// The AU ids of the input columns, in order.
    pub aus: Vec<String>,
    /// Frames per window (HRM: 15).
    pub window: usize,
    /// GRU hidden size and layers (HRM: 128, 2).
    pub hidden: usize,
    pub layers: usize,
    /// `weights`: the safetensors file, hashed.
    pub files: IndexMap<String, FileEntry>,
    pub source: Source,
}

/// One GRU layer's weights, PyTorch's layout: rows of the gates r, z, n.
#[derive(Debug, Clone)]
struct GruLayer {
    inputs: usize,
    w_ih: Vec<f32>,
    w_hh: Vec<f32>,
    b_ih: Vec<f32>,
    b_hh: Vec<f32>,
}

/// A loaded, verified atypicality regressor.
#[derive(Debug, Clone)]
pub struct Atypicality {
    pub dir: PathBuf,
    pub manifest: AtypicalityManifest,
    aus: AuList,
    hidden: usize,
    layers: Vec<GruLayer>,
    fc_w: Vec<f32>,
    fc_b: f32,
}

/// The tensor names a GRU of `layers` layers has, as `torch.nn.GRU` inside `GRUModel` names them.
pub fn tensor_names(layers: usize) -> Vec<String> {
    let mut names: Vec<String> = (0..layers)
        .flat_map(|l| ["weight_ih", "weight_hh", "bias_ih", "bias_hh"].map(|w| format!("gru.{w}_l{l}")))
        .collect();
    names.extend(["fc.weight".to_string(), "fc.bias".to_string()]);
    names
}

/// The shape each tensor must have.
pub fn tensor_shapes(inputs: usize, hidden: usize, layers: usize) -> Vec<(String, Vec<usize>)> {
    let names = tensor_names(layers);
    names
        .into_iter()
        .map(|name| {
            let shape = match name.as_str() {
                "fc.weight" => vec![1, hidden],
                "fc.bias" => vec![1],
                n if n.starts_with("gru.weight_ih_l0") => vec![3 * hidden, inputs],
                n if n.starts_with("gru.weight") => vec![3 * hidden, hidden],
                _ => vec![3 * hidden],
            };
            (name, shape)
        })
        .collect()
}

impl Atypicality {
    /// Loads a package folder: its manifest, the weights' hash, and every tensor's shape.
    pub fn load(dir: &Path) -> Result<Atypicality> {
        let path = dir.join(MANIFEST_FILE);
        let text = files::read_text_file(&path, 1 << 20)?;
        let manifest: AtypicalityManifest =
            toml::from_str(&text).map_err(|e| Error::Toml { file: path.clone(), message: e.to_string() })?;
        if manifest.kind != KIND {
            return Err(Error::field(&path, "kind", format!("\"{KIND}\""), format!("\"{}\"", manifest.kind)));
        }
        let aus = AuList::from_ids(&manifest.aus).map_err(|e| Error::field(&path, "aus", "known AU ids", e))?;
        let bounded = |field: &str, value: usize, max: usize| match (1..=max).contains(&value) {
            true => Ok(()),
            false => Err(Error::field(&path, field, format!("a number from 1 to {max}"), value)),
        };
        bounded("window", manifest.window, 10_000)?;
        bounded("hidden", manifest.hidden, 4096)?;
        bounded("layers", manifest.layers, 16)?;
        let entry = manifest
            .files
            .get(WEIGHTS_FILE)
            .ok_or_else(|| Error::field(&path, "files.weights", "the safetensors file and its sha256", "nothing"))?;
        let weights_path = dir.join(&entry.name);
        let (hash, _) = sha256_and_len(&weights_path)?;
        check_hash(&weights_path, &entry.sha256, hash)?;
        let bytes = files::read_regular_file(&weights_path, 1 << 30)?;
        let tensors = read_safetensors(&bytes, &weights_path)?;
        let (h, inputs) = (manifest.hidden, aus.len());
        let take = |name: &str, shape: &[usize]| -> Result<Vec<f32>> {
            let (found_shape, values) = tensors
                .get(name)
                .ok_or_else(|| Error::field(&weights_path, name, format!("a tensor of shape {shape:?}"), "nothing"))?;
            if found_shape != shape {
                return Err(Error::field(&weights_path, name, format!("shape {shape:?}"), format!("{found_shape:?}")));
            }
            Ok(values.clone())
        };
        let mut layers = Vec::new();
        for l in 0..manifest.layers {
            let n_in = if l == 0 { inputs } else { h };
            layers.push(GruLayer {
                inputs: n_in,
                w_ih: take(&format!("gru.weight_ih_l{l}"), &[3 * h, n_in])?,
                w_hh: take(&format!("gru.weight_hh_l{l}"), &[3 * h, h])?,
                b_ih: take(&format!("gru.bias_ih_l{l}"), &[3 * h])?,
                b_hh: take(&format!("gru.bias_hh_l{l}"), &[3 * h])?,
            });
        }
        let fc_w = take("fc.weight", &[1, h])?;
        let fc_b = take("fc.bias", &[1])?[0];
        Ok(Atypicality { dir: dir.to_path_buf(), manifest, aus, hidden: h, layers, fc_w, fc_b })
    }

    /// The AUs a window's frames hold, in order.
    pub fn aus(&self) -> &AuList {
        &self.aus
    }

    /// Frames per window.
    pub fn window(&self) -> usize {
        self.manifest.window
    }

    /// The score of one window: `window` frames of one value per AU, each 0 or 1 (values above 1,
    /// HRM's "active on one side", count as 1).
    pub fn score(&self, frames: &[Vec<f32>]) -> Result<f32> {
        if frames.len() != self.window() || frames.iter().any(|f| f.len() != self.aus.len()) {
            return Err(Error::InvalidInput(format!(
                "an atypicality window is {} frames of {} AUs",
                self.window(),
                self.aus.len()
            )));
        }
        let h = self.hidden;
        let mut states = vec![vec![0f32; h]; self.layers.len()];
        let mut input: Vec<f32> = Vec::new();
        for frame in frames {
            input.clear();
            input.extend(frame.iter().map(|&v| v.min(1.0)));
            for (layer, state) in self.layers.iter().zip(&mut states) {
                *state = layer.step(&input, state);
                input.clone_from(state);
            }
        }
        let last = states.last().expect("at least one layer");
        Ok(self.fc_b + self.fc_w.iter().zip(last).map(|(w, x)| w * x).sum::<f32>())
    }
}

/// One face track's last `window` frames of AU presence, scored from the frame that fills it on:
/// what a stream keeps per track (the frames are the track's own, consecutive as it was seen).
#[derive(Debug, Clone, Default)]
pub struct ScoreWindow {
    frames: std::collections::VecDeque<Vec<f32>>,
}

impl ScoreWindow {
    /// Adds a frame's presence (one value per AU of `model`, 0 or 1) and gives the score of the
    /// last `window` frames, or None while fewer have been seen.
    pub fn push(&mut self, model: &Atypicality, present: Vec<f32>) -> Result<Option<f32>> {
        if present.len() != model.aus.len() {
            let expected = model.aus.len();
            return Err(Error::InvalidInput(format!(
                "{} AU values for an atypicality model of {expected}",
                present.len()
            )));
        }
        self.frames.push_back(present);
        while self.frames.len() > model.window() {
            self.frames.pop_front();
        }
        if self.frames.len() < model.window() {
            return Ok(None);
        }
        model.score(self.frames.make_contiguous()).map(Some)
    }
}

impl GruLayer {
    /// One step of `torch.nn.GRU`: r = σ(W_ir x + b_ir + W_hr h + b_hr), z likewise,
    /// n = tanh(W_in x + b_in + r ⊙ (W_hn h + b_hn)), h' = (1 - z) ⊙ n + z ⊙ h.
    fn step(&self, x: &[f32], h: &[f32]) -> Vec<f32> {
        let hidden = h.len();
        let row = |w: &[f32], width: usize, i: usize, v: &[f32]| -> f32 {
            w[i * width..(i + 1) * width].iter().zip(v).map(|(a, b)| a * b).sum()
        };
        let sigmoid = |v: f32| 1.0 / (1.0 + (-v).exp());
        (0..hidden)
            .map(|i| {
                let gate = |g: usize| {
                    let k = g * hidden + i;
                    (row(&self.w_ih, self.inputs, k, x) + self.b_ih[k], row(&self.w_hh, hidden, k, h) + self.b_hh[k])
                };
                let ((ir, hr), (iz, hz), (inn, hn)) = (gate(0), gate(1), gate(2));
                let r = sigmoid(ir + hr);
                let z = sigmoid(iz + hz);
                let n = (inn + r * hn).tanh();
                (1.0 - z) * n + z * h[i]
            })
            .collect()
    }
}

/// Tensors by name: shape and values.
type Tensors = std::collections::HashMap<String, (Vec<usize>, Vec<f32>)>;

/// The f32 tensors of a safetensors file.
fn read_safetensors(bytes: &[u8], path: &Path) -> Result<Tensors> {
    let bad = |why: String| Error::field(path, "safetensors", "a safetensors file of f32 tensors", why);
    let header_len = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize);
    let header_len = header_len.ok_or_else(|| bad("fewer than 8 bytes".into()))?;
    let header = bytes.get(8..8usize.saturating_add(header_len)).ok_or_else(|| bad("a truncated header".into()))?;
    let data = &bytes[8 + header_len..];
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|e| bad(format!("an unreadable header ({e})")))?;
    let mut tensors = std::collections::HashMap::new();
    for (name, entry) in header.iter().filter(|(name, _)| *name != "__metadata__") {
        let dtype = entry["dtype"].as_str().unwrap_or("?");
        if dtype != "F32" {
            return Err(bad(format!("`{name}` of dtype {dtype}")));
        }
        let numbers = |key: &str| -> Option<Vec<usize>> {
            entry[key].as_array()?.iter().map(|v| v.as_u64().map(|n| n as usize)).collect()
        };
        let (shape, offsets) = (numbers("shape"), numbers("data_offsets"));
        let (Some(shape), Some([start, end])) = (shape, offsets.as_deref().map(|o| [o.first(), o.get(1)])) else {
            return Err(bad(format!("`{name}` without a shape and data offsets")));
        };
        let (start, end) = (*start.unwrap_or(&0), *end.unwrap_or(&0));
        let raw = data.get(start..end).ok_or_else(|| bad(format!("`{name}` past the end of the file")))?;
        let count = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if count.and_then(|c| c.checked_mul(4)) != Some(raw.len()) {
            return Err(bad(format!("`{name}` of shape {shape:?} in {} bytes", raw.len())));
        }
        let values = raw.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect();
        tensors.insert(name.clone(), (shape, values));
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: &[u8]) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend_from_slice(data);
        bytes
    }

    #[test]
    fn safetensors_are_read_and_broken_ones_refused_by_name() {
        let good = file(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, &[0, 0, 128, 63, 0, 0, 0, 64]);
        let tensors = read_safetensors(&good, Path::new("w.safetensors")).unwrap();
        assert_eq!(tensors.len(), 1);
        assert_eq!(tensors["a"], (vec![2], vec![1.0, 2.0]));
        for (bytes, expected) in [
            (vec![1, 2, 3], "fewer than 8 bytes".to_string()),
            (file("{", &[]), "an unreadable header".into()),
            ((u64::MAX).to_le_bytes().to_vec(), "a truncated header".into()),
            (file(r#"{"a":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}}"#, &[0; 4]), "`a` of dtype F16".into()),
            (file(r#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,80]}}"#, &[0; 8]), "past the end".into()),
            (
                file(r#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, &[0; 8]),
                "of shape [3] in 8 bytes".into(),
            ),
            (file(r#"{"a":{"dtype":"F32"}}"#, &[]), "without a shape".into()),
        ] {
            let err = read_safetensors(&bytes, Path::new("w.safetensors")).unwrap_err().to_string();
            assert!(err.contains("w.safetensors") && err.contains(&expected), "{expected}: {err}");
        }
    }

    /// A GRU of hidden size 3, one layer, on HRM's 22 AUs, with arbitrary weights.
    fn small_model(window: usize) -> Atypicality {
        let values = |n: usize, seed: f32| (0..n).map(|i| ((i as f32 * 0.7 + seed).sin()) * 0.5).collect::<Vec<f32>>();
        let aus = AuList::hrm22();
        let manifest = AtypicalityManifest {
            format: 2,
            kind: KIND.into(),
            name: "small".into(),
            aus: aus.ids().iter().map(|s| s.to_string()).collect(),
            window,
            hidden: 3,
            layers: 1,
            files: IndexMap::new(),
            source: Source {
                checkpoint: "none".into(),
                sha256: String::new(),
                licence: String::new(),
                notes: vec![],
                fixture: true,
            },
        };
        let layer = GruLayer {
            inputs: 22,
            w_ih: values(9 * 22, 0.1),
            w_hh: values(9 * 3, 0.2),
            b_ih: values(9, 0.3),
            b_hh: values(9, 0.4),
        };
        Atypicality {
            dir: PathBuf::new(),
            manifest,
            aus,
            hidden: 3,
            layers: vec![layer],
            fc_w: values(3, 0.5),
            fc_b: 2.0,
        }
    }

    #[test]
    fn a_tracks_window_scores_its_last_frames_once_full() {
        let model = small_model(4);
        let frames: Vec<Vec<f32>> =
            (0..7).map(|i| (0..22).map(|a| ((a + i) % 3 == 0) as u8 as f32).collect()).collect();
        let mut window = ScoreWindow::default();
        let scores: Vec<Option<f32>> = frames.iter().map(|f| window.push(&model, f.clone()).unwrap()).collect();
        assert_eq!(scores.len(), 7);
        assert_eq!(scores[..3], [None, None, None]);
        for end in 3..7 {
            assert_eq!(scores[end], Some(model.score(&frames[end - 3..=end]).unwrap()), "frame {end}");
        }
        assert_ne!(scores[3], scores[4], "the window moves");
        assert!(window.push(&model, vec![0.0; 17]).is_err());
        // Values above 1 (one side active) count as 1.
        let twos: Vec<Vec<f32>> = frames[..4].iter().map(|f| f.iter().map(|v| v * 2.0).collect()).collect();
        assert_eq!(model.score(&twos).unwrap(), model.score(&frames[..4]).unwrap());
    }

    #[test]
    fn tensor_names_follow_torch_grus_and_shapes_its_sizes() {
        let shapes = tensor_shapes(22, 128, 2);
        assert_eq!(shapes.len(), 10);
        assert_eq!(shapes[0], ("gru.weight_ih_l0".to_string(), vec![384, 22]));
        assert_eq!(shapes[4], ("gru.weight_ih_l1".to_string(), vec![384, 128]));
        assert_eq!(shapes[7], ("gru.bias_hh_l1".to_string(), vec![384]));
        assert_eq!(shapes[8..], [("fc.weight".to_string(), vec![1, 128]), ("fc.bias".to_string(), vec![1])]);
    }
}
