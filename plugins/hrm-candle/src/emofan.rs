//! EmoFAN as HRM uses it (`aunet_train`, `models/emonet_split.py`, in eval mode): FAN's stacked
//! hourglasses, their features weighted by the summed landmark heatmaps of the last stack, and
//! EmoNet's head. Every "InstanceNorm2d" of that file is a BatchNorm2d (it rebinds the name).

use crate::layers::{BatchNorm, Linear};
use crate::network::{Spec, Weights};
use candle_core::Tensor;

/// A square convolution padded by kernel / 2, with its bias when the checkpoint has one.
struct Conv {
    weight: Tensor,
    /// `[1, out, 1, 1]`.
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl Conv {
    /// `name` (`{name}.weight`, and `{name}.bias` when `bias`).
    fn new(
        w: &Weights,
        name: &str,
        (out, inputs, kernel): (usize, usize, usize),
        stride: usize,
        bias: bool,
    ) -> Result<Conv, String> {
        let weight = w.get(&format!("{name}.weight"), &[out, inputs, kernel, kernel])?;
        let bias = match bias {
            true => {
                let bias = w.cpu(&format!("{name}.bias"), &[out])?.reshape((1, out, 1, 1));
                Some(w.place(&bias.map_err(|e| format!("{name}.bias: {e}"))?)?)
            }
            false => None,
        };
        Ok(Conv { weight, bias, stride, padding: kernel / 2 })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?;
        match &self.bias {
            Some(bias) => y.broadcast_add(bias),
            None => Ok(y),
        }
    }
}

/// FAN's `ConvBlock`: three pre-activated 3x3 convolutions (out/2, out/4, out/4 channels)
/// concatenated, plus the input (through BN-ReLU-1x1 convolution when the width changes).
struct ConvBlock {
    steps: Vec<(BatchNorm, Conv)>,
    downsample: Option<(BatchNorm, Conv)>,
}

impl ConvBlock {
    fn new(w: &Weights, name: &str, inputs: usize, out: usize) -> Result<ConvBlock, String> {
        let widths = [(inputs, out / 2), (out / 2, out / 4), (out / 4, out / 4)];
        let steps = (widths.iter().enumerate())
            .map(|(i, &(from, to))| {
                let bn = BatchNorm::new(w, &format!("{name}.bn{}", i + 1), from, 4)?;
                Ok((bn, Conv::new(w, &format!("{name}.conv{}", i + 1), (to, from, 3), 1, false)?))
            })
            .collect::<Result<Vec<_>, String>>()?;
        let downsample = match inputs != out {
            true => Some((
                BatchNorm::new(w, &format!("{name}.downsample.0"), inputs, 4)?,
                Conv::new(w, &format!("{name}.downsample.2"), (out, inputs, 1), 1, false)?,
            )),
            false => None,
        };
        Ok(ConvBlock { steps, downsample })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut outs = Vec::with_capacity(3);
        let mut h = x.clone();
        for (bn, conv) in &self.steps {
            h = conv.forward(&bn.forward(&h)?.relu()?)?;
            outs.push(h.clone());
        }
        let residual = match &self.downsample {
            Some((bn, conv)) => conv.forward(&bn.forward(x)?.relu()?)?,
            None => x.clone(),
        };
        Tensor::cat(&outs, 1)?.add(&residual)
    }
}

/// One level of an hourglass: `b1` on the map; `b2`, the level below (or `b2_plus` at the
/// bottom) and `b3` on its half-size copy, upsampled back (nearest) and added.
struct Level {
    b1: ConvBlock,
    b2: ConvBlock,
    /// The next level down, or `b2_plus` at level 1.
    inner: Box<Inner>,
    b3: ConvBlock,
}

enum Inner {
    Level(Level),
    Bottom(ConvBlock),
}

impl Level {
    fn new(w: &Weights, name: &str, level: usize, features: usize) -> Result<Level, String> {
        let block = |part: &str| ConvBlock::new(w, &format!("{name}.{part}_{level}"), features, features);
        let inner = match level {
            1 => Inner::Bottom(block("b2_plus")?),
            _ => Inner::Level(Level::new(w, name, level - 1, features)?),
        };
        Ok(Level { b1: block("b1")?, b2: block("b2")?, inner: Box::new(inner), b3: block("b3")? })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let up = self.b1.forward(x)?;
        let low = self.b2.forward(&x.max_pool2d(2)?)?;
        let low = match self.inner.as_ref() {
            Inner::Level(level) => level.forward(&low)?,
            Inner::Bottom(block) => block.forward(&low)?,
        };
        let low = self.b3.forward(&low)?;
        let (_, _, h, w) = low.dims4()?;
        up.add(&low.upsample_nearest2d(2 * h, 2 * w)?)
    }
}

/// One stack of FAN after its hourglass.
struct Stack {
    hourglass: Level,
    top: ConvBlock,
    conv_last: Conv,
    bn_end: BatchNorm,
    heatmaps: Conv,
    /// `bl` and `al`, which feed the next stack (all but the last).
    next: Option<(Conv, Conv)>,
}

pub struct EmoFan {
    conv1: Conv,
    bn1: BatchNorm,
    conv2: ConvBlock,
    conv3: ConvBlock,
    conv4: ConvBlock,
    stacks: Vec<Stack>,
    head_input: Conv,
    head_blocks: Vec<ConvBlock>,
    fc1: Linear,
    fc_bn: BatchNorm,
    fc2: Linear,
}

impl EmoFan {
    pub(crate) fn new(arch: &Spec, w: &Weights, outputs: usize) -> Result<EmoFan, String> {
        let (stem, mid, features) = (arch.usize("stem_width")?, arch.usize("mid_width")?, arch.usize("features")?);
        let (stacks, depth, landmarks) =
            (arch.usize("stacks")?, arch.usize("hourglass_depth")?, arch.usize("landmarks")?);
        let (head_width, head_blocks, hidden) =
            (arch.usize("head_width")?, arch.usize("head_blocks")?, arch.usize("head_hidden")?);
        // hrm-core's bounds: the head halves a 4 * 2^head_blocks map, which the hourglasses work on.
        if head_blocks > 8
            || depth > head_blocks + 2
            || stacks > 128
            || [mid, features, head_width].iter().any(|w| w % 4 != 0)
        {
            return Err(format!(
                "architecture: EmoFAN with head_blocks {head_blocks} (at most 8), hourglass_depth {depth} (at most \
                 head_blocks + 2) and widths {mid}, {features}, {head_width} (multiples of 4) does not fit together"
            ));
        }
        let fan = |part: &str| format!("feature.fan.{part}");
        let stacks = (0..stacks)
            .map(|i| {
                let next = match i + 1 < stacks {
                    true => Some((
                        Conv::new(w, &fan(&format!("bl{i}")), (features, features, 1), 1, true)?,
                        Conv::new(w, &fan(&format!("al{i}")), (features, landmarks, 1), 1, true)?,
                    )),
                    false => None,
                };
                Ok(Stack {
                    hourglass: Level::new(w, &fan(&format!("m{i}")), depth, features)?,
                    top: ConvBlock::new(w, &fan(&format!("top_m_{i}")), features, features)?,
                    conv_last: Conv::new(w, &fan(&format!("conv_last{i}")), (features, features, 1), 1, true)?,
                    bn_end: BatchNorm::new(w, &fan(&format!("bn_end{i}")), features, 4)?,
                    heatmaps: Conv::new(w, &fan(&format!("l{i}")), (landmarks, features, 1), 1, true)?,
                    next,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let emo_inputs = features * (stacks.len() + 1);
        Ok(EmoFan {
            conv1: Conv::new(w, &fan("conv1"), (stem, 3, 7), 2, true)?,
            bn1: BatchNorm::new(w, &fan("bn1"), stem, 4)?,
            conv2: ConvBlock::new(w, &fan("conv2"), stem, mid)?,
            conv3: ConvBlock::new(w, &fan("conv3"), mid, mid)?,
            conv4: ConvBlock::new(w, &fan("conv4"), mid, features)?,
            stacks,
            head_input: Conv::new(w, "predictor.conv1x1_input_emo_2", (head_width, emo_inputs, 1), 1, true)?,
            head_blocks: (0..head_blocks)
                .map(|j| ConvBlock::new(w, &format!("predictor.emo_net_2.{}", 2 * j), head_width, head_width))
                .collect::<Result<Vec<_>, String>>()?,
            fc1: Linear::new(w, "predictor.emo_fc_2.0", (hidden, head_width))?,
            fc_bn: BatchNorm::new(w, "predictor.emo_fc_2.1", hidden, 2)?,
            fc2: Linear::new(w, "predictor.emo_fc_2.3", (outputs, hidden))?,
        })
    }

    pub fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        let x = self.bn1.forward(&self.conv1.forward(input)?)?.relu()?;
        let x = self.conv2.forward(&x)?.max_pool2d(2)?;
        let x = self.conv4.forward(&self.conv3.forward(&x)?)?;

        let mut previous = x.clone();
        let mut features = Vec::with_capacity(self.stacks.len());
        let mut heatmaps = None;
        for stack in &self.stacks {
            let y = stack.top.forward(&stack.hourglass.forward(&previous)?)?;
            let mut y = stack.bn_end.forward(&stack.conv_last.forward(&y)?)?.relu()?;
            let maps = stack.heatmaps.forward(&y)?;
            if let Some((bl, al)) = &stack.next {
                y = bl.forward(&y)?;
                previous = previous.add(&y)?.add(&al.forward(&maps)?)?;
            }
            features.push(y);
            heatmaps = Some(maps);
        }
        let heatmaps = heatmaps.ok_or_else(|| candle_core::Error::Msg("EmoFAN without a stack".into()))?;
        let mask = heatmaps.sum_keepdim(1)?;
        let features = Tensor::cat(&features, 1)?.broadcast_mul(&mask)?;
        let emo_feat = Tensor::cat(&[&x, &features], 1)?;

        let mut y = self.head_input.forward(&emo_feat)?;
        for block in &self.head_blocks {
            y = block.forward(&y)?.max_pool2d(2)?;
        }
        let y = y.avg_pool2d(4)?.flatten_from(1)?;
        let y = self.fc_bn.forward(&self.fc1.forward(&y)?)?.relu()?;
        self.fc2.forward(&y)
    }
}
