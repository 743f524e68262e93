//! A package's network, from its manifest and weights, on a device.

use crate::emofan::EmoFan;
use crate::megraphau::MeGraphAu;
use crate::resnet::Resnet;
use crate::vit::Vit;
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A package's network, loaded on a device.
pub struct Network {
    body: Body,
    device: Device,
    dtype: DType,
    /// Values per image out, and the input's `(height, width)`.
    outputs: usize,
    input: (usize, usize),
}

/// The networks `hrm convert` writes packages for.
enum Body {
    Vit(Vit),
    Resnet(Resnet),
    MeGraphAu(MeGraphAu),
    /// Boxed: its many layers make it the largest by far.
    EmoFan(Box<EmoFan>),
}

impl Network {
    /// The network of the package whose manifest is `manifest` (`hrm-model.toml`), with the
    /// tensors of `weights` (its `model.safetensors`), on `device` in `dtype`.
    pub fn load(manifest: &Path, weights: &Path, device: &Device, dtype: DType) -> Result<Network, String> {
        let text = std::fs::read_to_string(manifest).map_err(|e| format!("{}: {e}", manifest.display()))?;
        let table: toml::Table = toml::from_str(&text).map_err(|e| format!("{}: {e}", manifest.display()))?;
        let spec = Spec { table: &table, file: manifest };
        let outputs = spec.array("aus")?.len();
        let input = spec.section("input")?;
        let (height, width) = (input.usize("height")?, input.usize("width")?);
        let weights = Weights::load(weights, device, dtype)?;
        let architecture = spec.section("architecture")?;
        let body = match architecture.string("kind")? {
            "vit" => Body::Vit(Vit::new(&architecture, &weights, (height, width), outputs)?),
            "resnet" => Body::Resnet(Resnet::new(&architecture, &weights, outputs)?),
            "me-graphau" => Body::MeGraphAu(MeGraphAu::new(&architecture, &weights, outputs)?),
            "emofan" => Body::EmoFan(Box::new(EmoFan::new(&architecture, &weights, outputs)?)),
            other => {
                return Err(format!(
                    "{}: architecture.kind is \"{other}\": the candle backend runs \"vit\", \"resnet\", \
                     \"me-graphau\" and \"emofan\" packages",
                    manifest.display()
                ))
            }
        };
        Ok(Network { body, device: device.clone(), dtype, outputs, input: (height, width) })
    }

    /// Values per image out (one per AU).
    pub fn outputs(&self) -> usize {
        self.outputs
    }

    /// The input's `(height, width)`.
    pub fn input_size(&self) -> (usize, usize) {
        self.input
    }

    /// The logits (or scores, as the manifest's `output` says) of a batch: `input` is
    /// `[batch, 3, height, width]`, pre-processed, on the network's device in its dtype; the
    /// result is `[batch, outputs]` in f32.
    pub fn forward(&self, input: &Tensor) -> Result<Tensor, String> {
        let out = match &self.body {
            Body::Vit(vit) => vit.forward(input),
            Body::Resnet(resnet) => resnet.forward(input),
            Body::MeGraphAu(graph) => graph.forward(input),
            Body::EmoFan(emofan) => emofan.forward(input),
        };
        out.and_then(|t| t.to_dtype(DType::F32)).map_err(|e| format!("candle: {}", first_line(&e)))
    }

    /// [`Network::forward`] on host values: `batch` images of `3 * height * width` values each,
    /// row-major; `batch * outputs` values out.
    pub fn run(&self, data: &[f32], batch: usize) -> Result<Vec<f32>, String> {
        let (height, width) = self.input;
        if data.len() != batch * 3 * height * width {
            return Err(format!("{} input values for {batch} images of 3x{height}x{width}", data.len()));
        }
        let input = Tensor::from_slice(data, (batch, 3, height, width), &self.device)
            .and_then(|t| t.to_dtype(self.dtype))
            .map_err(|e| format!("candle: {}", first_line(&e)))?;
        let output = self.forward(&input)?;
        output.flatten_all().and_then(|t| t.to_vec1::<f32>()).map_err(|e| format!("candle: {}", first_line(&e)))
    }
}

/// The first line of an error: candle's carry a backtrace after it.
pub(crate) fn first_line(error: &impl std::fmt::Display) -> String {
    error.to_string().lines().next().unwrap_or_default().to_string()
}

/// A manifest table, and the file it came from, for errors that name the key.
pub(crate) struct Spec<'a> {
    table: &'a toml::Table,
    file: &'a Path,
}

impl<'a> Spec<'a> {
    fn missing(&self, key: &str, expected: &str) -> String {
        format!("{}: `{key}` must be {expected}", self.file.display())
    }

    pub fn section(&self, key: &str) -> Result<Spec<'a>, String> {
        let table = self.table.get(key).and_then(|v| v.as_table()).ok_or_else(|| self.missing(key, "a table"))?;
        Ok(Spec { table, file: self.file })
    }

    pub fn string(&self, key: &str) -> Result<&'a str, String> {
        self.table.get(key).and_then(|v| v.as_str()).ok_or_else(|| self.missing(key, "a string"))
    }

    pub fn usize(&self, key: &str) -> Result<usize, String> {
        let value = self.table.get(key).and_then(|v| v.as_integer()).filter(|&v| v > 0 && v <= 1 << 20);
        value.map(|v| v as usize).ok_or_else(|| self.missing(key, "a whole number from 1 to 2^20"))
    }

    pub fn float(&self, key: &str) -> Result<f64, String> {
        let value = self.table.get(key).and_then(|v| v.as_float().or(v.as_integer().map(|i| i as f64)));
        value.filter(|v| v.is_finite()).ok_or_else(|| self.missing(key, "a number"))
    }

    pub fn array(&self, key: &str) -> Result<&'a Vec<toml::Value>, String> {
        self.table.get(key).and_then(|v| v.as_array()).ok_or_else(|| self.missing(key, "an array"))
    }

    pub fn usizes(&self, key: &str) -> Result<Vec<usize>, String> {
        let values = self.array(key)?.iter().map(|v| v.as_integer().filter(|&v| v > 0 && v <= 1 << 20));
        values
            .map(|v| v.map(|v| v as usize))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| self.missing(key, "whole numbers"))
    }
}

/// The package's tensors by their checkpoint names, read on the CPU in f32 (so that folding
/// and checks are exact), handed out on the network's device in its dtype.
pub(crate) struct Weights {
    tensors: HashMap<String, Tensor>,
    file: PathBuf,
    device: Device,
    dtype: DType,
}

impl Weights {
    fn load(file: &Path, device: &Device, dtype: DType) -> Result<Weights, String> {
        let tensors = candle_core::safetensors::load(file, &Device::Cpu)
            .map_err(|e| format!("{}: {}", file.display(), first_line(&e)))?;
        Ok(Weights { tensors, file: file.to_path_buf(), device: device.clone(), dtype })
    }

    pub fn has(&self, name: &str) -> bool {
        self.tensors.contains_key(name)
    }

    /// `name` in f32 on the CPU, which must have `shape`.
    pub fn cpu(&self, name: &str, shape: &[usize]) -> Result<Tensor, String> {
        let tensor = self.tensors.get(name).ok_or_else(|| format!("{}: no tensor `{name}`", self.file.display()))?;
        if tensor.dims() != shape {
            return Err(format!("{}: `{name}` is {:?}, expected {shape:?}", self.file.display(), tensor.dims()));
        }
        tensor.to_dtype(DType::F32).map_err(|e| format!("{}: `{name}`: {}", self.file.display(), first_line(&e)))
    }

    /// A tensor made on the CPU, moved to the network's device and dtype.
    pub fn place(&self, tensor: &Tensor) -> Result<Tensor, String> {
        tensor
            .to_device(&self.device)
            .and_then(|t| t.to_dtype(self.dtype))
            .map_err(|e| format!("candle: {}", first_line(&e)))
    }

    /// A tensor made on the CPU, moved to the network's device in f32 (for the few steps that
    /// run in f32 whatever the dtype).
    pub fn place_f32(&self, tensor: &Tensor) -> Result<Tensor, String> {
        tensor.to_device(&self.device).map_err(|e| format!("candle: {}", first_line(&e)))
    }

    /// `name`, of `shape`, on the network's device and dtype.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, String> {
        self.place(&self.cpu(name, shape)?)
    }
}
