//! ME-GraphAU's stage-1 network (`MEFARG` with the ANFL head, `model/ANFL.py`) on a ResNet or
//! Swin backbone: the backbone's tokens, `global_linear`, a LinearBlock per AU averaged into a
//! node, one GNN layer over each node's K most similar nodes, and the cosine similarity of every
//! node with its class vector `relu(sc)`.

use crate::layers::{BatchNorm, Linear};
use crate::network::{first_line, Spec, Weights};
use crate::resnet::ResnetFeatures;
use crate::swin::Swin;
use candle_core::{DType, Tensor, D};

/// `LinearBlock`: `relu(bn(fc(x)))` on `[N, T, in]`, the BatchNorm (over the features) folded
/// into the linear layer.
struct LinearBlock(Linear);

impl LinearBlock {
    fn new(w: &Weights, name: &str, (out, inputs): (usize, usize)) -> Result<LinearBlock, String> {
        let weight = w.cpu(&format!("{name}.fc.weight"), &[out, inputs])?;
        let bias = w.cpu(&format!("{name}.fc.bias"), &[out])?;
        let (scale, shift) = BatchNorm::folded(w, &format!("{name}.bn"), out)?;
        let fold = || -> candle_core::Result<(Tensor, Tensor)> {
            let weight = weight.broadcast_mul(&scale.reshape((out, 1))?)?;
            Ok((weight, bias.mul(&scale)?.add(&shift)?))
        };
        let (weight, bias) = fold().map_err(|e| format!("folding {name}.bn into {name}.fc: {}", first_line(&e)))?;
        Ok(LinearBlock(Linear::from_tensors(w, &weight, &bias, name)?))
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.0.forward(x)?.relu()
    }
}

#[derive(Clone, Copy)]
enum Metric {
    Dots,
    Cosine,
    L1,
}

/// The backbones ME-GraphAU is trained on.
enum Backbone {
    Resnet(ResnetFeatures),
    Swin(Swin),
}

pub struct MeGraphAu {
    backbone: Backbone,
    global_linear: LinearBlock,
    class_linears: Vec<LinearBlock>,
    u: Linear,
    v: Linear,
    /// `head.gnn.bnv`, over the nodes (axis 1 of `[N, nodes, F]`).
    bnv: BatchNorm,
    /// `normalize(relu(sc))`, `[1, nodes, F]`, in f32.
    classes: Tensor,
    neighbors: usize,
    metric: Metric,
}

impl MeGraphAu {
    pub(crate) fn new(arch: &Spec, w: &Weights, nodes: usize) -> Result<MeGraphAu, String> {
        let spec = arch.section("backbone")?;
        let (backbone, channels) = match spec.string("kind")? {
            "resnet" => {
                let resnet = ResnetFeatures::new(&spec, w, "backbone.")?;
                let channels = resnet.channels;
                (Backbone::Resnet(resnet), channels)
            }
            "swin" => {
                let swin = Swin::new(&spec, w, "backbone.")?;
                let channels = swin.channels;
                (Backbone::Swin(swin), channels)
            }
            other => return Err(format!("architecture.backbone.kind \"{other}\": expected \"resnet\" or \"swin\"")),
        };
        let features = arch.usize("features")?;
        let neighbors = arch.usize("neighbors")?;
        if neighbors > nodes {
            return Err(format!("architecture.neighbors is {neighbors}, more than the {nodes} nodes"));
        }
        let metric = match arch.string("metric")? {
            "dots" => Metric::Dots,
            "cosine" => Metric::Cosine,
            "l1" => Metric::L1,
            other => return Err(format!("architecture.metric \"{other}\": expected \"dots\", \"cosine\" or \"l1\"")),
        };
        let global_linear = LinearBlock::new(w, "global_linear", (features, channels))?;
        let class_linears = (0..nodes)
            .map(|i| LinearBlock::new(w, &format!("head.class_linears.{i}"), (features, features)))
            .collect::<Result<Vec<_>, _>>()?;
        let sc = w.cpu("head.sc", &[nodes, features])?;
        let classes = normalize(&sc.relu().and_then(|t| t.unsqueeze(0)).map_err(|e| first_line(&e))?)
            .map_err(|e| format!("head.sc: {}", first_line(&e)))?;
        Ok(MeGraphAu {
            backbone,
            global_linear,
            class_linears,
            u: Linear::new(w, "head.gnn.U", (features, features))?,
            v: Linear::new(w, "head.gnn.V", (features, features))?,
            bnv: BatchNorm::new(w, "head.gnn.bnv", nodes, 3)?,
            classes: w.place_f32(&classes)?,
            neighbors,
            metric,
        })
    }

    pub fn forward(&self, input: &Tensor) -> candle_core::Result<Tensor> {
        let tokens = match &self.backbone {
            Backbone::Resnet(resnet) => resnet.forward(input)?.flatten_from(2)?.transpose(1, 2)?.contiguous()?,
            Backbone::Swin(swin) => swin.forward(input)?,
        };
        let x = self.global_linear.forward(&tokens)?;
        let nodes = self
            .class_linears
            .iter()
            .map(|block| block.forward(&x)?.mean_keepdim(1))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let f_v = Tensor::cat(&nodes, 1)?;

        // Each node keeps the K nodes most like it: `si >= (K-th value of its row)` as `topk`
        // and `>=` give it (every tie kept) is "fewer than K values of the row beat this one".
        // In f32 whatever the dtype: half precision would make ties f32 does not have.
        let nodes = f_v.to_dtype(DType::F32)?;
        let (similarity, smaller_is_closer) = match self.metric {
            Metric::Dots => (nodes.matmul(&nodes.transpose(1, 2)?)?, false),
            Metric::Cosine => {
                let unit = normalize(&nodes)?;
                (unit.matmul(&unit.transpose(1, 2)?)?, false)
            }
            Metric::L1 => (nodes.unsqueeze(2)?.broadcast_sub(&nodes.unsqueeze(1)?)?.abs()?.sum(D::Minus1)?, true),
        };
        let row = similarity.unsqueeze(2)?; // [N, n, 1, n]: si[i, l]
        let this = similarity.unsqueeze(3)?; // [N, n, n, 1]: si[i, j]
        let beaten = if smaller_is_closer { row.broadcast_lt(&this)? } else { row.broadcast_gt(&this)? };
        let rank = beaten.to_dtype(DType::F32)?.sum(D::Minus1)?;
        let adjacency = rank.lt(self.neighbors as f64)?.to_dtype(DType::F32)?;

        // D^-1/2 A D^-1/2, then x = relu(x + bnv(A V(x) + U(x))).
        let scale = adjacency.sum_keepdim(D::Minus1)?.powf(-0.5)?;
        let a = adjacency.broadcast_mul(&scale)?.broadcast_mul(&scale.transpose(1, 2)?)?.to_dtype(f_v.dtype())?;
        let aggregate = a.matmul(&self.v.forward(&f_v)?)?;
        let f_v = f_v.add(&self.bnv.forward(&aggregate.add(&self.u.forward(&f_v)?)?)?)?.relu()?;

        // Both sides are >= 0, so the score lies in [0, 1]; rounding past 1 is cut.
        let scores = normalize(&f_v.to_dtype(DType::F32)?)?.broadcast_mul(&self.classes)?.sum(D::Minus1)?;
        scores.clamp(0f64, 1f64)
    }
}

/// `F.normalize(x, p=2, dim=-1)`: `x / max(|x|, 1e-12)`.
fn normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::INFINITY)?;
    x.broadcast_div(&norm)
}
