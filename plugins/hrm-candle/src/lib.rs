//! The HRM networks written natively in candle: timm's ViT (MAE-Face, FMAE, FMAE-IAT) and
//! torchvision's ResNets, built from a model package's manifest (`[architecture]`) and its
//! `model.safetensors`, which keeps the checkpoint's own tensor names. No ONNX graph is read:
//! the same weights run on candle's CPU kernels, or on CUDA with the `cuda` feature.
//!
//! This crate is the networks; the plugin surface that makes it `backend = "candle"` is built on
//! it.

mod network;
mod resnet;
mod vit;

pub use candle_core::{DType, Device};
pub use network::Network;
