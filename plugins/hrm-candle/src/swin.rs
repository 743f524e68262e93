//! The Swin transformer of ME-GraphAU's `model/swin_transformer.py` (Liu et al. 2021), as its
//! backbone: patch embedding with LayerNorm, stages of pre-norm window attention (windows
//! shifted by half a window in odd blocks, with the -100 mask between regions of the rolled map)
//! with relative position bias and an exact-GELU MLP, patch merging between stages, a final
//! LayerNorm. Its input is 224x224; its output the tokens `[N, L, C]`.

use crate::layers::{softmax_last, LayerNorm, Linear};
use crate::network::{first_line, Spec, Weights};
use candle_core::{Device, Tensor};

/// Swin's `nn.LayerNorm` default.
const EPS: f64 = 1e-5;
/// The input side Swin's windows and masks are built for.
const INPUT_SIDE: usize = 224;

struct Block {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    /// The relative position bias, `[heads, n, n]`.
    bias: Tensor,
    /// For shifted windows: the shift and the mask `[nW, 1, n, n]`.
    shifted: Option<(usize, Tensor)>,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
    heads: usize,
    window: usize,
}

struct Merge {
    norm: LayerNorm,
    /// `reduction.weight` transposed, `[4C, 2C]`.
    reduction: Tensor,
}

struct Stage {
    blocks: Vec<Block>,
    merge: Option<Merge>,
    side: usize,
}

pub(crate) struct Swin {
    proj_weight: Tensor,
    /// `[1, C, 1, 1]`.
    proj_bias: Tensor,
    patch_size: usize,
    patch_norm: LayerNorm,
    stages: Vec<Stage>,
    norm: LayerNorm,
    /// The tokens' width.
    pub channels: usize,
}

fn error(name: &str) -> impl Fn(candle_core::Error) -> String + '_ {
    move |e| format!("{name}: {}", first_line(&e))
}

impl Swin {
    /// The Swin of `arch`, its tensors named `{prefix}patch_embed.proj.weight`, ...
    pub(crate) fn new(arch: &Spec, w: &Weights, prefix: &str) -> Result<Swin, String> {
        let (width, window, patch_size) = (arch.usize("width")?, arch.usize("window")?, arch.usize("patch_size")?);
        let (depths, heads) = (arch.usizes("depths")?, arch.usizes("heads")?);
        if depths.len() != heads.len() {
            return Err("architecture.backbone: depths and heads must have one entry per stage".into());
        }
        let proj = format!("{prefix}patch_embed.proj");
        let proj_weight = w.get(&format!("{proj}.weight"), &[width, 3, patch_size, patch_size])?;
        let proj_bias =
            w.place(&w.cpu(&format!("{proj}.bias"), &[width])?.reshape((1, width, 1, 1)).map_err(error(&proj))?)?;
        let mut stages = Vec::new();
        let (mut dim, mut side) = (width, INPUT_SIDE / patch_size);
        for (i, (&depth, &h)) in depths.iter().zip(&heads).enumerate() {
            let stage_window = window.min(side);
            let merges = i + 1 < depths.len();
            if side == 0 || side % stage_window != 0 || (merges && side % 2 != 0) || dim % h != 0 {
                return Err(format!("architecture.backbone: stage {i} ({side}x{side} tokens, {dim} wide) does not fit its windows or heads"));
            }
            // Odd blocks shift by half a window (unless one window is the whole map); the mask is
            // the stage's, made once and shared.
            let shifted = match side > window && depth > 1 {
                true => Some((window / 2, shifted_window_mask(w, side, window, window / 2)?)),
                false => None,
            };
            let blocks = (0..depth)
                .map(|j| {
                    let shifted = if j % 2 == 1 { shifted.clone() } else { None };
                    Block::new(w, &format!("{prefix}layers.{i}.blocks.{j}"), dim, stage_window, h, shifted)
                })
                .collect::<Result<Vec<_>, String>>()?;
            let merge = match i + 1 < depths.len() {
                true => {
                    let name = format!("{prefix}layers.{i}.downsample");
                    let reduction = w.cpu(&format!("{name}.reduction.weight"), &[2 * dim, 4 * dim])?;
                    let reduction = reduction.t().and_then(|t| t.contiguous()).map_err(error(&name))?;
                    Some(Merge {
                        norm: LayerNorm::new(w, &format!("{name}.norm"), 4 * dim, EPS)?,
                        reduction: w.place(&reduction)?,
                    })
                }
                false => None,
            };
            stages.push(Stage { blocks, merge, side });
            if i + 1 < depths.len() {
                (dim, side) = (2 * dim, side / 2);
            }
        }
        Ok(Swin {
            proj_weight,
            proj_bias,
            patch_size,
            patch_norm: LayerNorm::new(w, &format!("{prefix}patch_embed.norm"), width, EPS)?,
            stages,
            norm: LayerNorm::new(w, &format!("{prefix}norm"), dim, EPS)?,
            channels: dim,
        })
    }

    /// `[N, 3, 224, 224]` to tokens `[N, L, C]`.
    pub fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        let x = input.conv2d(&self.proj_weight, 0, self.patch_size, 1, 1)?.broadcast_add(&self.proj_bias)?;
        let mut x = self.patch_norm.forward(&x.flatten_from(2)?.transpose(1, 2)?.contiguous()?)?;
        for stage in &self.stages {
            for block in &stage.blocks {
                x = block.forward(&x, stage.side)?;
            }
            if let Some(merge) = &stage.merge {
                x = merge.forward(&x, stage.side)?;
            }
        }
        self.norm.forward(&x)
    }
}

impl Block {
    /// `shifted`: the shift and the stage's mask, for a block whose windows shift.
    fn new(
        w: &Weights,
        name: &str,
        dim: usize,
        window: usize,
        heads: usize,
        shifted: Option<(usize, Tensor)>,
    ) -> Result<Block, String> {
        let tokens = window * window;
        let table_name = format!("{name}.attn.relative_position_bias_table");
        let table = w.cpu(&table_name, &[(2 * window - 1) * (2 * window - 1), heads])?;
        let index = Tensor::from_vec(relative_position_index(window), tokens * tokens, &Device::Cpu);
        let bias = index
            .and_then(|index| table.index_select(&index, 0))
            .and_then(|b| b.reshape((tokens, tokens, heads))?.permute((2, 0, 1))?.contiguous())
            .map_err(error(&table_name))?;
        Ok(Block {
            norm1: LayerNorm::new(w, &format!("{name}.norm1"), dim, EPS)?,
            qkv: Linear::new(w, &format!("{name}.attn.qkv"), (3 * dim, dim))?,
            proj: Linear::new(w, &format!("{name}.attn.proj"), (dim, dim))?,
            bias: w.place(&bias)?,
            shifted,
            norm2: LayerNorm::new(w, &format!("{name}.norm2"), dim, EPS)?,
            fc1: Linear::new(w, &format!("{name}.mlp.fc1"), (4 * dim, dim))?,
            fc2: Linear::new(w, &format!("{name}.mlp.fc2"), (dim, 4 * dim))?,
            heads,
            window,
        })
    }

    fn forward(&self, x: &Tensor, side: usize) -> candle_core::Result<Tensor> {
        let (batch, _, dim) = x.dims3()?;
        let (window, per_side) = (self.window, side / self.window);
        let tokens = window * window;
        let mut h = self.norm1.forward(x)?.reshape((batch, side, side, dim))?;
        if let Some((shift, _)) = &self.shifted {
            h = h.roll(-(*shift as i32), 1)?.roll(-(*shift as i32), 2)?;
        }
        // Windows in row-major order: [N * nW, n, C].
        let h = h.reshape((batch, per_side, window, per_side, window, dim))?.permute((0, 1, 3, 2, 4, 5))?;
        let h = h.contiguous()?.reshape((batch * per_side * per_side, tokens, dim))?;

        let head_dim = dim / self.heads;
        let qkv = self.qkv.forward(&h)?.reshape(((), tokens, 3, self.heads, head_dim))?.permute((2, 0, 3, 1, 4))?;
        let qkv = qkv.contiguous()?;
        let (q, k, v) = (qkv.get(0)?, qkv.get(1)?, qkv.get(2)?);
        let q = q.affine((head_dim as f64).powf(-0.5), 0.0)?;
        let mut attention = q.matmul(&k.transpose(2, 3)?.contiguous()?)?.broadcast_add(&self.bias)?;
        if let Some((_, mask)) = &self.shifted {
            let windows = per_side * per_side;
            attention = attention
                .reshape((batch, windows, self.heads, tokens, tokens))?
                .broadcast_add(mask)?
                .reshape((batch * windows, self.heads, tokens, tokens))?;
        }
        let o = softmax_last(&attention)?.matmul(&v)?.transpose(1, 2)?.contiguous()?.reshape(((), tokens, dim))?;
        let o = self.proj.forward(&o)?;

        // The windows back into the map, rolled back, as tokens.
        let o = o.reshape((batch, per_side, per_side, window, window, dim))?.permute((0, 1, 3, 2, 4, 5))?;
        let mut o = o.contiguous()?.reshape((batch, side, side, dim))?;
        if let Some((shift, _)) = &self.shifted {
            o = o.roll(*shift as i32, 1)?.roll(*shift as i32, 2)?;
        }
        let x = x.add(&o.reshape((batch, side * side, dim))?)?;
        let hidden = self.fc1.forward(&self.norm2.forward(&x)?)?.gelu_erf()?;
        x.add(&self.fc2.forward(&hidden)?)
    }
}

impl Merge {
    /// Each 2x2 group of tokens concatenated (top-left, bottom-left, top-right, bottom-right),
    /// LayerNorm, the bias-free reduction to twice the width.
    fn forward(&self, x: &Tensor, side: usize) -> candle_core::Result<Tensor> {
        let (batch, _, dim) = x.dims3()?;
        let half = side / 2;
        let grid = x.reshape((batch, half, 2, half, 2, dim))?;
        let part =
            |row: usize, col: usize| grid.narrow(2, row, 1)?.narrow(4, col, 1)?.reshape((batch, half * half, dim));
        let x = Tensor::cat(&[part(0, 0)?, part(1, 0)?, part(0, 1)?, part(1, 1)?], 2)?;
        self.norm.forward(&x)?.broadcast_matmul(&self.reduction)
    }
}

/// Row of the bias table for each pair of tokens (p, q) of a window, row-major:
/// `(p_row - q_row + w - 1) * (2w - 1) + (p_col - q_col + w - 1)`.
fn relative_position_index(window: usize) -> Vec<u32> {
    let cells: Vec<(usize, usize)> = (0..window).flat_map(|r| (0..window).map(move |c| (r, c))).collect();
    let span = 2 * window - 1;
    (cells.iter())
        .flat_map(|&(pr, pc)| {
            cells.iter().map(move |&(qr, qc)| ((pr + window - 1 - qr) * span + (pc + window - 1 - qc)) as u32)
        })
        .collect()
}

/// The shifted windows' mask, `[nW, 1, n, n]` on the network's device: on the rolled map, tokens
/// from different regions (split at side - window and side - shift on each axis) get -100, as
/// Swin's code does.
fn shifted_window_mask(w: &Weights, side: usize, window: usize, shift: usize) -> Result<Tensor, String> {
    let region = |i: usize| usize::from(i >= side - window) + usize::from(i >= side - shift);
    let per_side = side / window;
    let mut mask = Vec::with_capacity(per_side * per_side * window.pow(4));
    for (wr, wc) in (0..per_side).flat_map(|r| (0..per_side).map(move |c| (r, c))) {
        let ids: Vec<usize> = (0..window * window)
            .map(|t| 3 * region(wr * window + t / window) + region(wc * window + t % window))
            .collect();
        for &a in &ids {
            mask.extend(ids.iter().map(|&b| if a == b { 0.0 } else { -100.0 }));
        }
    }
    let (windows, tokens) = (per_side * per_side, window * window);
    let mask = Tensor::from_vec(mask, (windows, 1, tokens, tokens), &Device::Cpu).map_err(error("attn_mask"))?;
    w.place(&mask)
}
