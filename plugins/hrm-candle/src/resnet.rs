//! torchvision's ResNets (basic and bottleneck blocks, any depth, ResNeXt groups), with each
//! BatchNorm folded into the convolution before it.

use crate::layers::{BatchNorm, Linear};
use crate::network::{first_line, Spec, Weights};
use candle_core::{Tensor, D};

/// A convolution with its BatchNorm folded in: `conv(x) * scale + shift`, where
/// `scale = gamma / sqrt(var + eps)` and `shift = beta - mean * scale`.
struct Conv {
    weight: Tensor,
    /// `[1, out, 1, 1]`.
    bias: Tensor,
    stride: usize,
    padding: usize,
    groups: usize,
}

impl Conv {
    /// `conv` (`{conv}.weight`, no bias) followed by the BatchNorm `bn`.
    #[allow(clippy::too_many_arguments)]
    fn folded(
        w: &Weights,
        conv: &str,
        bn: &str,
        (out, inputs, kernel): (usize, usize, usize),
        stride: usize,
        groups: usize,
    ) -> Result<Conv, String> {
        let weight = w.cpu(&format!("{conv}.weight"), &[out, inputs / groups, kernel, kernel])?;
        let (scale, shift) = BatchNorm::folded(w, bn, out)?;
        let fold = || -> candle_core::Result<(Tensor, Tensor)> {
            let weight = weight.broadcast_mul(&scale.reshape((out, 1, 1, 1))?)?;
            Ok((weight, shift.reshape((1, out, 1, 1))?))
        };
        let (weight, bias) = fold().map_err(|e| format!("folding {bn} into {conv}: {}", first_line(&e)))?;
        Ok(Conv { weight: w.place(&weight)?, bias: w.place(&bias)?, stride, padding: kernel / 2, groups })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.conv2d(&self.weight, self.padding, self.stride, 1, self.groups)?.broadcast_add(&self.bias)
    }
}

enum Block {
    Basic { conv1: Conv, conv2: Conv, downsample: Option<Conv> },
    Bottleneck { conv1: Conv, conv2: Conv, conv3: Conv, downsample: Option<Conv> },
}

/// A ResNet's stem and stages: the input to the last stage's map.
pub(crate) struct ResnetFeatures {
    stem: Conv,
    blocks: Vec<Block>,
    /// The last stage's channels.
    pub channels: usize,
}

impl ResnetFeatures {
    /// The ResNet of `arch`, its tensors named `{prefix}conv1.weight`, ...
    pub(crate) fn new(arch: &Spec, w: &Weights, prefix: &str) -> Result<ResnetFeatures, String> {
        let bottleneck = match arch.string("block")? {
            "basic" => false,
            "bottleneck" => true,
            other => return Err(format!("architecture.block \"{other}\": expected \"basic\" or \"bottleneck\"")),
        };
        let (layers, widths, out_channels) =
            (arch.usizes("layers")?, arch.usizes("widths")?, arch.usizes("out_channels")?);
        let (stem_width, groups) = (arch.usize("stem_width")?, arch.usize("groups")?);
        if layers.len() != widths.len() || layers.len() != out_channels.len() {
            return Err("architecture: layers, widths and out_channels must have one entry per stage".into());
        }
        let stem = Conv::folded(w, &format!("{prefix}conv1"), &format!("{prefix}bn1"), (stem_width, 3, 7), 2, 1)?;
        let mut blocks = Vec::new();
        let mut channels = stem_width;
        for (stage, ((&count, &width), &out)) in layers.iter().zip(&widths).zip(&out_channels).enumerate() {
            for index in 0..count {
                let stride = if stage > 0 && index == 0 { 2 } else { 1 };
                let name = format!("{prefix}layer{}.{index}", stage + 1);
                let downsample = match w.has(&format!("{name}.downsample.0.weight")) {
                    true => Some(Conv::folded(
                        w,
                        &format!("{name}.downsample.0"),
                        &format!("{name}.downsample.1"),
                        (out, channels, 1),
                        stride,
                        1,
                    )?),
                    false => None,
                };
                let conv = |n: usize, shape: (usize, usize, usize), stride: usize, groups: usize| {
                    Conv::folded(w, &format!("{name}.conv{n}"), &format!("{name}.bn{n}"), shape, stride, groups)
                };
                blocks.push(match bottleneck {
                    false => Block::Basic {
                        conv1: conv(1, (width, channels, 3), stride, 1)?,
                        conv2: conv(2, (out, width, 3), 1, 1)?,
                        downsample,
                    },
                    true => Block::Bottleneck {
                        conv1: conv(1, (width, channels, 1), 1, 1)?,
                        conv2: conv(2, (width, width, 3), stride, groups)?,
                        conv3: conv(3, (out, width, 1), 1, 1)?,
                        downsample,
                    },
                });
                channels = out;
            }
        }
        Ok(ResnetFeatures { stem, blocks, channels })
    }

    /// `[N, 3, H, W]` to `[N, channels, H/32, W/32]`.
    pub fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        // After the ReLU every value is >= 0, so zero padding is max-pooling's -inf padding.
        let x = self.stem.forward(input)?.relu()?;
        let mut x = x.pad_with_zeros(2, 1, 1)?.pad_with_zeros(3, 1, 1)?.max_pool2d_with_stride(3, 2)?;
        for block in &self.blocks {
            let (out, identity) = match block {
                Block::Basic { conv1, conv2, downsample } => {
                    let out = conv2.forward(&conv1.forward(&x)?.relu()?)?;
                    (out, downsample.as_ref().map(|d| d.forward(&x)).transpose()?)
                }
                Block::Bottleneck { conv1, conv2, conv3, downsample } => {
                    let out = conv1.forward(&x)?.relu()?;
                    let out = conv3.forward(&conv2.forward(&out)?.relu()?)?;
                    (out, downsample.as_ref().map(|d| d.forward(&x)).transpose()?)
                }
            };
            x = out.add(identity.as_ref().unwrap_or(&x))?.relu()?;
        }
        Ok(x)
    }
}

/// torchvision's ResNet: the features, averaged, through `fc`.
pub struct Resnet {
    features: ResnetFeatures,
    fc: Linear,
}

impl Resnet {
    pub(crate) fn new(arch: &Spec, w: &Weights, outputs: usize) -> Result<Resnet, String> {
        let features = ResnetFeatures::new(arch, w, "")?;
        let fc = Linear::new(w, "fc", (outputs, features.channels))?;
        Ok(Resnet { features, fc })
    }

    pub fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.features.forward(input)?;
        self.fc.forward(&x.mean(D::Minus1)?.mean(D::Minus1)?)
    }
}
