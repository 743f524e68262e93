//! libhrm_candle.so: the candle networks as the hrm backend plugin `candle`.
//!
//! `[candle] device = "cpu" | "cuda" | "cuda:N"`, `dtype = "f32" | "f16" | "bf16"` (half types on
//! CUDA only). It runs the AU packages `hrm convert` writes (ViT, ResNet, ME-GraphAU, EmoFAN)
//! from their manifest and safetensors; graphs given in memory (hrm's built-in YuNet and face
//! mesh) are refused with the configuration that runs them elsewhere.

use crate::network::first_line;
use crate::Network;
use candle_core::{DType, Device};
use hrm_plugin::export::{Description, Model, Plugin, Session, WriteOutput};
use std::path::Path;

/// The plugin `candle`.
pub struct Candle;

hrm_plugin::export_plugin!(Candle, c"candle");

/// `[candle]` settings.
pub struct Options {
    device: DeviceChoice,
    dtype: DType,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum DeviceChoice {
    Cpu,
    Cuda(usize),
}

impl DeviceChoice {
    fn name(self) -> String {
        match self {
            DeviceChoice::Cpu => "cpu".into(),
            DeviceChoice::Cuda(n) => format!("cuda:{n}"),
        }
    }

    /// The device, or why it cannot be had here.
    fn open(self) -> Result<Device, String> {
        match self {
            DeviceChoice::Cpu => Ok(Device::Cpu),
            // The CUDA build links the driver: loaded at all, it has one.
            DeviceChoice::Cuda(n) if candle_core::utils::cuda_is_available() => {
                Device::new_cuda(n).map_err(|e| format!("cuda:{n}: {}", first_line(&e)))
            }
            DeviceChoice::Cuda(_) => {
                Err("this plugin was built without CUDA (tools/build-candle-cuda.sh builds one with it)".into())
            }
        }
    }
}

impl Options {
    fn parse(text: &str) -> Result<Options, String> {
        let table: toml::Table = toml::from_str(text).map_err(|e| format!("[candle]: {e}"))?;
        let mut options = Options { device: DeviceChoice::Cpu, dtype: DType::F32 };
        for (key, value) in &table {
            let text = value.as_str().ok_or_else(|| format!("candle.{key}: expected a string, found {value}"))?;
            match key.as_str() {
                "device" => {
                    options.device = match text {
                        "cpu" => DeviceChoice::Cpu,
                        "cuda" => DeviceChoice::Cuda(0),
                        _ => match text.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                            Some(n) => DeviceChoice::Cuda(n),
                            None => {
                                return Err(format!(
                                    "candle.device: expected \"cpu\", \"cuda\" or \"cuda:N\", found \"{text}\""
                                ))
                            }
                        },
                    }
                }
                "dtype" => {
                    options.dtype = match text {
                        "f32" => DType::F32,
                        "f16" => DType::F16,
                        "bf16" => DType::BF16,
                        _ => {
                            return Err(format!(
                                "candle.dtype: expected \"f32\", \"f16\" or \"bf16\", found \"{text}\""
                            ))
                        }
                    }
                }
                _ => return Err(format!("candle.{key}: unknown setting (candle takes `device` and `dtype`)")),
            }
        }
        if options.device == DeviceChoice::Cpu && options.dtype != DType::F32 {
            return Err(format!("candle.dtype: {:?} runs on CUDA only; on the CPU use \"f32\"", options.dtype));
        }
        Ok(options)
    }
}

impl Plugin for Candle {
    type Options = Options;
    type Session = CandleSession;

    fn options(toml: &str, _dir: Option<&Path>) -> Result<Options, String> {
        Options::parse(toml)
    }

    fn describe(_options: &Options) -> Result<Description, String> {
        let cuda = match DeviceChoice::Cuda(0).open() {
            Ok(_) => "cuda".to_string(),
            Err(why) => format!("cuda: {why}"),
        };
        Ok(Description {
            version: env!("CARGO_PKG_VERSION").into(),
            runtime: "candle 0.11.1 (compiled in)".into(),
            devices: vec!["cpu".into(), cuda],
        })
    }

    fn open(model: &Model, options: &Options) -> Result<CandleSession, String> {
        let Some(graph) = &model.graph_path else {
            return Err(format!(
                "`{}`: the candle backend runs the AU packages hrm convert writes (ViT, ResNet, ME-GraphAU, EmoFAN), not hrm's built-in \
                 networks: run the face detector and mesh elsewhere ([detector] backend = \"tract\", [mesh] backend = \
                 \"tract\")",
                model.name
            ));
        };
        let folder = graph.parent().unwrap_or(Path::new("."));
        let weights = model.weights_path.clone().unwrap_or_else(|| folder.join("model.safetensors"));
        let device = options.device.open()?;
        let network = Network::load(&folder.join("hrm-model.toml"), &weights, &device, options.dtype)?;
        let (height, width) = network.input_size();
        let expected = [-1, 3, height as i64, width as i64];
        match model.inputs.as_slice() {
            [shape] if shape.len() == 4 && shape[1..] == expected[1..] => {}
            shapes => return Err(format!("`{}`: inputs {shapes:?}, expected one of {expected:?}", model.name)),
        }
        Ok(CandleSession { network, device: options.device.name() })
    }
}

pub struct CandleSession {
    network: Network,
    device: String,
}

impl Session for CandleSession {
    fn outputs(&self) -> usize {
        1
    }

    fn device(&self) -> String {
        self.device.clone()
    }

    fn run(&self, inputs: &[(Vec<i64>, &[f32])], output: &mut WriteOutput<'_>) -> Result<(), String> {
        let [(shape, data)] = inputs else { return Err(format!("{} inputs, expected 1", inputs.len())) };
        let batch = match shape.as_slice() {
            [n, 3, _, _] if *n >= 0 => *n as usize,
            _ => return Err(format!("an input of shape {shape:?}, expected [batch, 3, height, width]")),
        };
        let logits = self.network.run(data, batch)?;
        output(0, &[batch as i64, self.network.outputs() as i64], &logits)
    }
}
