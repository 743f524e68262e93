//! The HRM networks written natively in candle: timm's ViT (MAE-Face, FMAE, FMAE-IAT),
//! torchvision's ResNets, ME-GraphAU (ANFL head on a ResNet or Swin) and EmoFAN, built from a
//! model package's manifest (`[architecture]`) and its `model.safetensors`, which keeps the checkpoint's own tensor names. No ONNX graph is read:
//! the same weights run on candle's CPU kernels, or on CUDA with the `cuda` feature.
//!
//! Built as `libhrm_candle.so`, it is the backend plugin `candle` (plugin.rs); CPU-only in the
//! workspace build, with CUDA through `--features cuda` (tools/build-candle-cuda.sh), which needs
//! `libcuda.so.1` to load: libhrm and `hrm` never link it.

mod emofan;
mod layers;
mod megraphau;
mod network;
mod plugin;
mod resnet;
mod swin;
mod vit;

pub use candle_core::{DType, Device};
pub use network::Network;
