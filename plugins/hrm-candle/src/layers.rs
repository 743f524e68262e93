//! Layers more than one network uses.

use crate::network::{first_line, Weights};
use candle_core::{Tensor, D};

/// `nn.Linear`.
pub(crate) struct Linear {
    /// `[in, out]`, and `[out]`.
    weight: Tensor,
    bias: Tensor,
}

impl Linear {
    pub fn new(w: &Weights, name: &str, (out, inputs): (usize, usize)) -> Result<Linear, String> {
        let weight = w.cpu(&format!("{name}.weight"), &[out, inputs])?;
        Linear::from_tensors(w, &weight, &w.cpu(&format!("{name}.bias"), &[out])?, name)
    }

    /// From a `[out, in]` weight and an `[out]` bias made on the CPU (`name` for errors).
    pub fn from_tensors(w: &Weights, weight: &Tensor, bias: &Tensor, name: &str) -> Result<Linear, String> {
        let weight =
            weight.t().and_then(|t| t.contiguous()).map_err(|e| format!("{name}.weight: {}", first_line(&e)))?;
        Ok(Linear { weight: w.place(&weight)?, bias: w.place(bias)? })
    }

    /// On `[..., in]`, as rows of one matrix product.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let rows = x.reshape(((), dims[dims.len() - 1]))?;
        let out = rows.matmul(&self.weight)?.broadcast_add(&self.bias)?;
        let mut shape = dims;
        *shape.last_mut().expect("a rank of at least 1") = self.bias.dims()[0];
        out.reshape(shape)
    }
}

/// An eval-mode BatchNorm as the affine map it is, `x * scale + shift` along axis 1 of `x`
/// (`scale = gamma / sqrt(var + eps)`, `shift = beta - mean * scale`).
pub(crate) struct BatchNorm {
    /// Shaped `[1, C, 1, ...]` to broadcast over the axes after the channels.
    scale: Tensor,
    shift: Tensor,
}

/// PyTorch's BatchNorm default.
pub(crate) const BN_EPS: f64 = 1e-5;

impl BatchNorm {
    /// The BatchNorm `name` over `channels`, for inputs of `rank` axes.
    pub fn new(w: &Weights, name: &str, channels: usize, rank: usize) -> Result<BatchNorm, String> {
        let (scale, shift) = BatchNorm::folded(w, name, channels)?;
        let mut shape = vec![1; rank];
        shape[1] = channels;
        let shaped = |t: Tensor| t.reshape(shape.as_slice()).map_err(|e| format!("{name}: {}", first_line(&e)));
        Ok(BatchNorm { scale: w.place(&shaped(scale)?)?, shift: w.place(&shaped(shift)?)? })
    }

    /// `(scale, shift)` of the BatchNorm `name`, `[channels]` each, in f32 on the CPU.
    pub fn folded(w: &Weights, name: &str, channels: usize) -> Result<(Tensor, Tensor), String> {
        let get = |what: &str| w.cpu(&format!("{name}.{what}"), &[channels]);
        let (gamma, beta, mean, var) = (get("weight")?, get("bias")?, get("running_mean")?, get("running_var")?);
        let fold = || -> candle_core::Result<(Tensor, Tensor)> {
            let scale = gamma.div(&var.affine(1.0, BN_EPS)?.sqrt()?)?;
            let shift = beta.sub(&mean.mul(&scale)?)?;
            Ok((scale, shift))
        };
        fold().map_err(|e| format!("{name}: {}", first_line(&e)))
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.broadcast_mul(&self.scale)?.broadcast_add(&self.shift)
    }
}

/// `nn.LayerNorm` over the last axis.
pub(crate) struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
    eps: f64,
}

impl LayerNorm {
    pub fn new(w: &Weights, name: &str, width: usize, eps: f64) -> Result<LayerNorm, String> {
        Ok(LayerNorm {
            weight: w.get(&format!("{name}.weight"), &[width])?,
            bias: w.get(&format!("{name}.bias"), &[width])?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let centred = x.broadcast_sub(&x.mean_keepdim(D::Minus1)?)?;
        let variance = centred.sqr()?.mean_keepdim(D::Minus1)?;
        let normed = centred.broadcast_div(&variance.affine(1.0, self.eps)?.sqrt()?)?;
        normed.broadcast_mul(&self.weight)?.broadcast_add(&self.bias)
    }
}

/// Softmax over the last axis.
pub(crate) fn softmax_last(x: &Tensor) -> candle_core::Result<Tensor> {
    let exp = x.broadcast_sub(&x.max_keepdim(D::Minus1)?)?.exp()?;
    exp.broadcast_div(&exp.sum_keepdim(D::Minus1)?)
}
