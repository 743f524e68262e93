//! timm's VisionTransformer as MAE-Face and FMAE use it: pre-norm blocks, fused qkv with bias,
//! exact (erf) GELU, learned position embeddings, and either global pooling with `fc_norm` or
//! the CLS token after `norm`.

use crate::layers::{softmax_last, LayerNorm, Linear};
use crate::network::{first_line, Spec, Weights};
use candle_core::Tensor;

struct Block {
    norm1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

pub struct Vit {
    /// `[width, 3, patch, patch]`, and `[1, width, 1, 1]`.
    patch_weight: Tensor,
    patch_bias: Tensor,
    patch: usize,
    /// `[1, 1, width]` and `[1, tokens, width]`.
    cls_token: Tensor,
    pos_embed: Tensor,
    blocks: Vec<Block>,
    heads: usize,
    /// `fc_norm` for global pooling, or `norm` before the CLS token.
    final_norm: LayerNorm,
    mean_pooling: bool,
    head: Linear,
}

impl Vit {
    pub(crate) fn new(
        arch: &Spec,
        w: &Weights,
        (height, width): (usize, usize),
        outputs: usize,
    ) -> Result<Vit, String> {
        let (dim, depth, heads) = (arch.usize("width")?, arch.usize("depth")?, arch.usize("heads")?);
        let (patch, hidden, eps) =
            (arch.usize("patch_size")?, arch.usize("mlp_hidden")?, arch.float("layer_norm_eps")?);
        if dim % heads != 0 || height % patch != 0 || width % patch != 0 {
            return Err(format!("architecture: width {dim} over {heads} heads, or a {width}x{height} input in {patch}-pixel patches, does not divide"));
        }
        let mean_pooling = match arch.string("pooling")? {
            "mean" => true,
            "cls" => false,
            other => return Err(format!("architecture.pooling \"{other}\": expected \"mean\" or \"cls\"")),
        };
        let tokens = (height / patch) * (width / patch) + 1;
        let patch_bias = w.cpu("patch_embed.proj.bias", &[dim])?.reshape((1, dim, 1, 1)).map_err(|e| first_line(&e))?;
        let blocks = (0..depth)
            .map(|i| {
                let name = |part: &str| format!("blocks.{i}.{part}");
                Ok(Block {
                    norm1: LayerNorm::new(w, &name("norm1"), dim, eps)?,
                    qkv: Linear::new(w, &name("attn.qkv"), (3 * dim, dim))?,
                    proj: Linear::new(w, &name("attn.proj"), (dim, dim))?,
                    norm2: LayerNorm::new(w, &name("norm2"), dim, eps)?,
                    fc1: Linear::new(w, &name("mlp.fc1"), (hidden, dim))?,
                    fc2: Linear::new(w, &name("mlp.fc2"), (dim, hidden))?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Vit {
            patch_weight: w.get("patch_embed.proj.weight", &[dim, 3, patch, patch])?,
            patch_bias: w.place(&patch_bias)?,
            patch,
            cls_token: w.get("cls_token", &[1, 1, dim])?,
            pos_embed: w.get("pos_embed", &[1, tokens, dim])?,
            blocks,
            heads,
            final_norm: LayerNorm::new(w, if mean_pooling { "fc_norm" } else { "norm" }, dim, eps)?,
            mean_pooling,
            head: Linear::new(w, "head", (outputs, dim))?,
        })
    }

    pub fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        let batch = input.dims()[0];
        let patches = input.conv2d(&self.patch_weight, 0, self.patch, 1, 1)?.broadcast_add(&self.patch_bias)?;
        let patches = patches.flatten_from(2)?.transpose(1, 2)?; // [batch, patches, width]
        let dim = patches.dims()[2];
        let cls = self.cls_token.broadcast_as((batch, 1, dim))?;
        let mut x = Tensor::cat(&[&cls, &patches], 1)?.broadcast_add(&self.pos_embed)?;
        let (tokens, head_dim) = (x.dims()[1], dim / self.heads);
        let scale = (head_dim as f64).powf(-0.5);
        for block in &self.blocks {
            let qkv = block.qkv.forward(&block.norm1.forward(&x)?)?;
            // [batch, tokens, 3, heads, head_dim] -> [3, batch, heads, tokens, head_dim]
            let qkv = qkv.reshape((batch, tokens, 3, self.heads, head_dim))?.permute((2, 0, 3, 1, 4))?;
            let part = |i: usize| qkv.narrow(0, i, 1)?.squeeze(0)?.contiguous();
            let (q, k, v) = (part(0)?, part(1)?, part(2)?);
            let scores = q.matmul(&k.t()?.contiguous()?)?.affine(scale, 0.0)?;
            let attention = softmax_last(&scores)?.matmul(&v)?; // [batch, heads, tokens, head_dim]
            let attention = attention.transpose(1, 2)?.reshape((batch, tokens, dim))?;
            x = x.add(&block.proj.forward(&attention)?)?;
            let hidden = block.fc1.forward(&block.norm2.forward(&x)?)?.gelu_erf()?;
            x = x.add(&block.fc2.forward(&hidden)?)?;
        }
        let pooled = match self.mean_pooling {
            true => self.final_norm.forward(&x.narrow(1, 1, tokens - 1)?.mean(1)?)?,
            false => self.final_norm.forward(&x)?.narrow(1, 0, 1)?.squeeze(1)?,
        };
        self.head.forward(&pooled)
    }
}
