//! The ONNX graphs of the supported networks, op for op as timm and torchvision compute them.

use crate::onnx::{Attr, Graph};
use hrm_core::manifest::{Architecture, ResnetBlock, VitPooling};

/// Wires the network from the graph input `input` to its logits; returns the logits' name.
pub fn build(g: &mut Graph, architecture: &Architecture, input_size: usize) -> String {
    match architecture {
        Architecture::Vit { width, depth, heads, patch_size, pooling, layer_norm_eps, .. } => {
            vit(g, *width, *depth, *heads, *patch_size, *pooling, *layer_norm_eps, input_size)
        }
        Architecture::Resnet { block, layers, out_channels, stem_width, groups, .. } => {
            resnet(g, *block, layers, out_channels, *stem_width, *groups)
        }
        Architecture::Mediapipe => unreachable!("checkpoints are recognised as ViTs or ResNets, never MediaPipe's"),
    }
}

#[allow(clippy::too_many_arguments)]
fn vit(
    g: &mut Graph,
    width: usize,
    depth: usize,
    heads: usize,
    patch: usize,
    pooling: VitPooling,
    eps: f32,
    input_size: usize,
) -> String {
    let d = width as i64;
    let tokens = ((input_size / patch) * (input_size / patch) + 1) as i64;
    let head_dim = width / heads;

    // Patch embedding: a strided convolution, flattened to [N, patches, D].
    let (w, b) = (g.weight("patch_embed.proj.weight"), g.weight("patch_embed.proj.bias"));
    let p = patch as i64;
    let x = g.op("Conv", &["input", &w, &b], &[Attr::Ints("kernel_shape", &[p, p]), Attr::Ints("strides", &[p, p])]);
    let shape = g.ints(&[0, d, -1]);
    let x = g.op("Reshape", &[&x, &shape], &[]);
    let x = g.op("Transpose", &[&x], &[Attr::Ints("perm", &[0, 2, 1])]);

    // Prepend the CLS token, broadcast to the batch, and add the position embedding.
    let input_shape = g.op("Shape", &["input"], &[]);
    let (zero, one) = (g.ints(&[0]), g.ints(&[1]));
    let batch = g.op("Slice", &[&input_shape, &zero, &one], &[]);
    let tail = g.ints(&[1, d]);
    let cls_shape = g.op("Concat", &[&batch, &tail], &[Attr::Int("axis", 0)]);
    let cls = g.weight("cls_token");
    let cls = g.op("Expand", &[&cls, &cls_shape], &[]);
    let x = g.op("Concat", &[&cls, &x], &[Attr::Int("axis", 1)]);
    let pos = g.weight("pos_embed");
    let x = g.op("Add", &[&x, &pos], &[]);

    // The blocks work on [N * tokens, D] rows so every linear layer is one Gemm.
    let rows = g.ints(&[-1, d]);
    let mut x = g.op("Reshape", &[&x, &rows], &[]);
    let split_heads = g.ints(&[-1, tokens, heads as i64, head_dim as i64]);
    let scale = g.scalar((head_dim as f32).powf(-0.5));
    let (q_start, k_start, v_start, v_end) = (g.ints(&[0]), g.ints(&[d]), g.ints(&[2 * d]), g.ints(&[3 * d]));
    let columns = g.ints(&[1]);
    let inv_sqrt2 = g.scalar(2f32.sqrt().recip());
    let (half, one_f) = (g.scalar(0.5), g.scalar(1.0));
    for i in 0..depth {
        let name = |part: &str| format!("blocks.{i}.{part}");
        let h = layer_norm(g, &x, &name("norm1"), eps);
        let qkv = linear(g, &h, &name("attn.qkv"));
        // q, k and v are column blocks of the fused projection; K goes straight to [N, H, Dh, T].
        let q = g.op("Slice", &[&qkv, &q_start, &k_start, &columns], &[]);
        let k = g.op("Slice", &[&qkv, &k_start, &v_start, &columns], &[]);
        let v = g.op("Slice", &[&qkv, &v_start, &v_end, &columns], &[]);
        let q = g.op("Reshape", &[&q, &split_heads], &[]);
        let k = g.op("Reshape", &[&k, &split_heads], &[]);
        let v = g.op("Reshape", &[&v, &split_heads], &[]);
        let q = g.op("Transpose", &[&q], &[Attr::Ints("perm", &[0, 2, 1, 3])]);
        let kt = g.op("Transpose", &[&k], &[Attr::Ints("perm", &[0, 2, 3, 1])]);
        let v = g.op("Transpose", &[&v], &[Attr::Ints("perm", &[0, 2, 1, 3])]);
        let q = g.op("Mul", &[&q, &scale], &[]);
        let attn = g.op("MatMul", &[&q, &kt], &[]);
        let attn = g.op("Softmax", &[&attn], &[Attr::Int("axis", -1)]);
        let o = g.op("MatMul", &[&attn, &v], &[]);
        let o = g.op("Transpose", &[&o], &[Attr::Ints("perm", &[0, 2, 1, 3])]);
        let o = g.op("Reshape", &[&o, &rows], &[]);
        let o = linear(g, &o, &name("attn.proj"));
        x = g.op("Add", &[&x, &o], &[]);

        let h = layer_norm(g, &x, &name("norm2"), eps);
        let h = linear(g, &h, &name("mlp.fc1"));
        // Exact GELU as PyTorch computes it, (x * 0.5) * (1 + erf(x * (1 / sqrt 2))): the form
        // tract recognises and runs as one fused kernel.
        let e = g.op("Mul", &[&h, &inv_sqrt2], &[]);
        let e = g.op("Erf", &[&e], &[]);
        let e = g.op("Add", &[&e, &one_f], &[]);
        let half_h = g.op("Mul", &[&h, &half], &[]);
        let h = g.op("Mul", &[&half_h, &e], &[]);
        let h = linear(g, &h, &name("mlp.fc2"));
        x = g.op("Add", &[&x, &h], &[]);
    }

    let per_image = g.ints(&[-1, tokens, d]);
    let pooled = match pooling {
        VitPooling::Mean => {
            let x = g.op("Reshape", &[&x, &per_image], &[]);
            let (start, end, axis) = (g.ints(&[1]), g.ints(&[tokens]), g.ints(&[1]));
            let patches = g.op("Slice", &[&x, &start, &end, &axis], &[]);
            let mean = g.op("ReduceMean", &[&patches], &[Attr::Ints("axes", &[1]), Attr::Int("keepdims", 0)]);
            layer_norm(g, &mean, "fc_norm", eps)
        }
        VitPooling::Cls => {
            let x = layer_norm(g, &x, "norm", eps);
            let x = g.op("Reshape", &[&x, &per_image], &[]);
            let first = g.scalar_int(0);
            g.op("Gather", &[&x, &first], &[Attr::Int("axis", 1)])
        }
    };
    linear(g, &pooled, "head")
}

/// `nn.Linear` on rows: Gemm with the weight as stored, [out, in].
fn linear(g: &mut Graph, x: &str, prefix: &str) -> String {
    let (w, b) = (g.weight(&format!("{prefix}.weight")), g.weight(&format!("{prefix}.bias")));
    g.op("Gemm", &[x, &w, &b], &[Attr::Int("transB", 1)])
}

fn layer_norm(g: &mut Graph, x: &str, prefix: &str, eps: f32) -> String {
    let (w, b) = (g.weight(&format!("{prefix}.weight")), g.weight(&format!("{prefix}.bias")));
    g.op("LayerNormalization", &[x, &w, &b], &[Attr::Int("axis", -1), Attr::Float("epsilon", eps)])
}

fn resnet(
    g: &mut Graph,
    block: ResnetBlock,
    layers: &[usize],
    out_channels: &[usize],
    stem_width: usize,
    groups: usize,
) -> String {
    let x = conv_bn(g, "input", "conv1", "bn1", 7, 2, 1);
    let x = g.op("Relu", &[&x], &[]);
    let mut x = g.op(
        "MaxPool",
        &[&x],
        &[Attr::Ints("kernel_shape", &[3, 3]), Attr::Ints("strides", &[2, 2]), Attr::Ints("pads", &[1, 1, 1, 1])],
    );
    let mut in_ch = stem_width;
    for (s, (&blocks, &out)) in layers.iter().zip(out_channels).enumerate() {
        for b in 0..blocks {
            let p = format!("layer{}.{b}.", s + 1);
            let stride = if s > 0 && b == 0 { 2 } else { 1 };
            let y = match block {
                ResnetBlock::Bottleneck => {
                    let y = conv_bn(g, &x, &format!("{p}conv1"), &format!("{p}bn1"), 1, 1, 1);
                    let y = g.op("Relu", &[&y], &[]);
                    let y = conv_bn(g, &y, &format!("{p}conv2"), &format!("{p}bn2"), 3, stride, groups);
                    let y = g.op("Relu", &[&y], &[]);
                    conv_bn(g, &y, &format!("{p}conv3"), &format!("{p}bn3"), 1, 1, 1)
                }
                ResnetBlock::Basic => {
                    let y = conv_bn(g, &x, &format!("{p}conv1"), &format!("{p}bn1"), 3, stride, 1);
                    let y = g.op("Relu", &[&y], &[]);
                    conv_bn(g, &y, &format!("{p}conv2"), &format!("{p}bn2"), 3, 1, 1)
                }
            };
            let identity = if b == 0 && (stride != 1 || in_ch != out) {
                conv_bn(g, &x, &format!("{p}downsample.0"), &format!("{p}downsample.1"), 1, stride, 1)
            } else {
                x.clone()
            };
            let sum = g.op("Add", &[&y, &identity], &[]);
            x = g.op("Relu", &[&sum], &[]);
            in_ch = out;
        }
    }
    let x = g.op("GlobalAveragePool", &[&x], &[]);
    let x = g.op("Flatten", &[&x], &[Attr::Int("axis", 1)]);
    linear(g, &x, "fc")
}

/// A bias-free convolution followed by batch norm (eval mode, eps 1e-5), padded as torchvision pads.
fn conv_bn(g: &mut Graph, x: &str, conv: &str, bn: &str, kernel: i64, stride: i64, groups: usize) -> String {
    let w = g.weight(&format!("{conv}.weight"));
    let pad = kernel / 2;
    let y = g.op(
        "Conv",
        &[x, &w],
        &[
            Attr::Ints("kernel_shape", &[kernel, kernel]),
            Attr::Ints("strides", &[stride, stride]),
            Attr::Ints("pads", &[pad, pad, pad, pad]),
            Attr::Int("group", groups as i64),
        ],
    );
    let [scale, bias, mean, var] =
        ["weight", "bias", "running_mean", "running_var"].map(|part| g.weight(&format!("{bn}.{part}")));
    g.op("BatchNormalization", &[&y, &scale, &bias, &mean, &var], &[Attr::Float("epsilon", 1e-5)])
}
