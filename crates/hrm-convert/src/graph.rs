//! The ONNX graphs of the supported networks, op for op as timm and torchvision compute them.

use crate::onnx::{Attr, Graph};
use hrm_core::manifest::{Architecture, GraphMetric, ResnetBlock, VitPooling};

/// Wires the network from the graph input `input` to its output (`outputs` values per image:
/// logits, or ME-GraphAU's scores); returns the output's name.
pub fn build(g: &mut Graph, architecture: &Architecture, input_size: usize, outputs: usize) -> String {
    match architecture {
        Architecture::Vit { width, depth, heads, patch_size, pooling, layer_norm_eps, .. } => {
            vit(g, *width, *depth, *heads, *patch_size, *pooling, *layer_norm_eps, input_size)
        }
        Architecture::Resnet { .. } => {
            let x = resnet_features(g, "", architecture);
            let x = g.op("GlobalAveragePool", &[&x], &[]);
            let x = g.op("Flatten", &[&x], &[Attr::Int("axis", 1)]);
            linear(g, &x, "fc")
        }
        Architecture::MeGraphAu { backbone, features, neighbors, metric } => {
            me_graphau(g, backbone, (*features, *neighbors, *metric), outputs, input_size)
        }
        Architecture::EmoFan { .. } => emofan(g, architecture),
        Architecture::Mediapipe | Architecture::Swin { .. } => {
            unreachable!("checkpoints are never recognised as MediaPipe's networks or a bare Swin")
        }
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
        let h = gelu(g, &h);
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

/// A torchvision ResNet from the input to its last stage's map `[N, C, H/32, W/32]`; its tensors
/// are named `{prefix}conv1.weight`, ...
fn resnet_features(g: &mut Graph, prefix: &str, architecture: &Architecture) -> String {
    let Architecture::Resnet { block, layers, out_channels, stem_width, groups, .. } = architecture else {
        unreachable!("a ResNet backbone, as the manifest checks")
    };
    let x = conv_bn(g, "input", &format!("{prefix}conv1"), &format!("{prefix}bn1"), 7, 2, 1);
    let x = g.op("Relu", &[&x], &[]);
    let mut x = g.op(
        "MaxPool",
        &[&x],
        &[Attr::Ints("kernel_shape", &[3, 3]), Attr::Ints("strides", &[2, 2]), Attr::Ints("pads", &[1, 1, 1, 1])],
    );
    let mut in_ch = *stem_width;
    for (s, (&blocks, &out)) in layers.iter().zip(out_channels).enumerate() {
        for b in 0..blocks {
            let p = format!("{prefix}layer{}.{b}.", s + 1);
            let stride = if s > 0 && b == 0 { 2 } else { 1 };
            let y = match block {
                ResnetBlock::Bottleneck => {
                    let y = conv_bn(g, &x, &format!("{p}conv1"), &format!("{p}bn1"), 1, 1, 1);
                    let y = g.op("Relu", &[&y], &[]);
                    let y = conv_bn(g, &y, &format!("{p}conv2"), &format!("{p}bn2"), 3, stride, *groups);
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
    x
}

/// ME-GraphAU's `MEFARG` (ANFL head) as `model/ANFL.py` computes it, its LinearBlocks as products
/// on the tokens' rows.
fn me_graphau(
    g: &mut Graph,
    backbone: &Architecture,
    (features, neighbors, metric): (usize, usize, GraphMetric),
    nodes: usize,
    input_size: usize,
) -> String {
    // The backbone's tokens, [N, T, C], then `global_linear`.
    let x = match backbone {
        Architecture::Resnet { .. } => {
            let x = resnet_features(g, "backbone.", backbone);
            let shape = g.ints(&[0, channels_of(backbone, input_size) as i64, -1]);
            let x = g.op("Reshape", &[&x, &shape], &[]);
            g.op("Transpose", &[&x], &[Attr::Ints("perm", &[0, 2, 1])])
        }
        _ => swin_tokens(g, "backbone.", backbone, input_size),
    };
    // The LinearBlocks run on the tokens as rows [N*T, C], where each BatchNorm1d is a
    // BatchNormalization over axis 1, and one matrix product does all of AFG's.
    let (tokens_shape, zero, two) = (g.op("Shape", &[&x], &[]), g.ints(&[0]), g.ints(&[2]));
    let batch_and_tokens = g.op("Slice", &[&tokens_shape, &zero, &two], &[]);
    let rows = g.ints(&[-1, channels_of(backbone, input_size) as i64]);
    let x = g.op("Reshape", &[&x, &rows], &[]);
    let x = linear_block_rows(g, &x, &["global_linear".to_string()]);

    // AFG: one LinearBlock per AU (their weights stacked), averaged over the tokens: [N, n, F].
    let blocks: Vec<String> = (0..nodes).map(|i| format!("head.class_linears.{i}")).collect();
    let y = linear_block_rows(g, &x, &blocks);
    let per_node = g.ints(&[nodes as i64, features as i64]);
    let split = g.op("Concat", &[&batch_and_tokens, &per_node], &[Attr::Int("axis", 0)]);
    let y = g.op("Reshape", &[&y, &split], &[]);
    let f_v = g.op("ReduceMean", &[&y], &[Attr::Ints("axes", &[1]), Attr::Int("keepdims", 0)]);

    // FGG: each node keeps the K nodes most like it. `si >= (K-th value of the row)`, as
    // `topk` + `>=` gives it (every tie at the K-th value kept), is "fewer than K values of the
    // row beat this one", which needs no sort.
    let (similarity, beats) = match metric {
        GraphMetric::Dots => (dots(g, &f_v), "Greater"),
        GraphMetric::Cosine => {
            let unit = l2_normalize(g, &f_v);
            (dots(g, &unit), "Greater")
        }
        GraphMetric::L1 => {
            let (rows, columns) = (g.ints(&[2]), g.ints(&[1]));
            let a = g.op("Unsqueeze", &[&f_v, &rows], &[]);
            let b = g.op("Unsqueeze", &[&f_v, &columns], &[]);
            let difference = g.op("Sub", &[&a, &b], &[]);
            let difference = g.op("Abs", &[&difference], &[]);
            let last = g.ints(&[-1]);
            (g.op("ReduceSum", &[&difference, &last], &[Attr::Int("keepdims", 0)]), "Less")
        }
    };
    let (others, this) = (g.ints(&[2]), g.ints(&[3]));
    let row = g.op("Unsqueeze", &[&similarity, &others], &[]); // [N, n, 1, n]: si[i, l]
    let this = g.op("Unsqueeze", &[&similarity, &this], &[]); // [N, n, n, 1]: si[i, j]
    let beaten = g.op(beats, &[&row, &this], &[]);
    let beaten = g.op("Cast", &[&beaten], &[Attr::Int("to", 1)]);
    let last = g.ints(&[-1]);
    let rank = g.op("ReduceSum", &[&beaten, &last], &[Attr::Int("keepdims", 0)]);
    let k = g.scalar(neighbors as f32);
    let adjacency = g.op("Less", &[&rank, &k], &[]);
    let adjacency = g.op("Cast", &[&adjacency], &[Attr::Int("to", 1)]);

    // normalize_digraph: D^-1/2 A D^-1/2 with D the row sums (at least K, never 0).
    let degrees = g.op("ReduceSum", &[&adjacency, &last], &[Attr::Int("keepdims", 1)]);
    let power = g.scalar(-0.5);
    let scale = g.op("Pow", &[&degrees, &power], &[]);
    let a = g.op("Mul", &[&scale, &adjacency], &[]);
    let scale_t = g.op("Transpose", &[&scale], &[Attr::Ints("perm", &[0, 2, 1])]);
    let a = g.op("Mul", &[&a, &scale_t], &[]);

    // x = relu(x + bnv(A V(x) + U(x))), bnv a BatchNorm1d over the nodes.
    let v = linear3(g, &f_v, "head.gnn.V");
    let aggregate = g.op("MatMul", &[&a, &v], &[]);
    let u = linear3(g, &f_v, "head.gnn.U");
    let sum = g.op("Add", &[&aggregate, &u], &[]);
    let normed = batch_norm(g, &sum, "head.gnn.bnv");
    let f_v = g.op("Add", &[&f_v, &normed], &[]);
    let f_v = g.op("Relu", &[&f_v], &[]);

    // The cosine similarity of each node with its class vector relu(sc). Both are >= 0, so the
    // score lies in [0, 1]; rounding can carry it a hair past 1, which is cut.
    let sc = g.weight("head.sc");
    let sc = g.op("Relu", &[&sc], &[]);
    let sc = l2_normalize(g, &sc);
    let cl = l2_normalize(g, &f_v);
    let cl = g.op("Mul", &[&cl, &sc], &[]);
    let cl = g.op("ReduceSum", &[&cl, &last], &[Attr::Int("keepdims", 0)]);
    let one = g.scalar(1.0);
    g.op("Min", &[&cl, &one], &[])
}

/// The Swin transformer of ME-GraphAU's `model/swin_transformer.py`, from the input to its
/// final LayerNorm's tokens `[N, L, C]`; every map side is fixed by the architecture.
fn swin_tokens(g: &mut Graph, prefix: &str, swin: &Architecture, input_size: usize) -> String {
    let Architecture::Swin { width, patch_size, .. } = swin else { unreachable!("a Swin, as checked") };
    let (p, c) = (*patch_size as i64, *width as i64);
    let (w, b) =
        (g.weight(&format!("{prefix}patch_embed.proj.weight")), g.weight(&format!("{prefix}patch_embed.proj.bias")));
    let x = g.op("Conv", &["input", &w, &b], &[Attr::Ints("kernel_shape", &[p, p]), Attr::Ints("strides", &[p, p])]);
    let shape = g.ints(&[0, c, -1]);
    let x = g.op("Reshape", &[&x, &shape], &[]);
    let x = g.op("Transpose", &[&x], &[Attr::Ints("perm", &[0, 2, 1])]);
    let mut x = layer_norm(g, &x, &format!("{prefix}patch_embed.norm"), SWIN_LAYER_NORM_EPS);
    let stages = swin.swin_stages(input_size);
    for (i, &(dim, side, window, depth, heads)) in stages.iter().enumerate() {
        // Odd blocks shift the windows by half a window, unless one window is the whole map.
        let shift = if side > window { window / 2 } else { 0 };
        let tokens = window * window;
        let index = g.ints(&relative_position_index(window));
        let mask = (shift > 0 && depth > 1).then(|| {
            let dims = [(side / window) * (side / window), 1, tokens, tokens];
            g.floats_shaped(&dims, &shifted_window_mask(side, window, shift))
        });
        for j in 0..depth {
            let mask = if j % 2 == 1 { mask.clone() } else { None };
            let block = SwinBlock { dim, side, window, heads, shift: if mask.is_some() { shift } else { 0 } };
            x = swin_block(g, &x, &format!("{prefix}layers.{i}.blocks.{j}"), &block, &index, mask.as_deref());
        }
        if i + 1 < stages.len() {
            x = patch_merging(g, &x, &format!("{prefix}layers.{i}.downsample"), dim, side);
        }
    }
    layer_norm(g, &x, &format!("{prefix}norm"), SWIN_LAYER_NORM_EPS)
}

/// Swin's `nn.LayerNorm` default.
const SWIN_LAYER_NORM_EPS: f32 = 1e-5;

/// One Swin block's sizes: `dim` channels on a `side` x `side` map in `window` x `window` windows,
/// rolled by `shift`.
struct SwinBlock {
    dim: usize,
    side: usize,
    window: usize,
    heads: usize,
    shift: usize,
}

/// A Swin block on tokens `[N, side^2, dim]`: pre-norm (shifted) window attention with relative
/// position bias, then a pre-norm MLP with exact GELU, each added back. `index` is the stage's
/// [`relative_position_index`], `mask` its [`shifted_window_mask`] when this block shifts.
fn swin_block(g: &mut Graph, x: &str, prefix: &str, b: &SwinBlock, index: &str, mask: Option<&str>) -> String {
    let (dim, side, window) = (b.dim as i64, b.side as i64, b.window as i64);
    let tokens = window * window;
    let per_side = side / window;
    let h = layer_norm(g, x, &format!("{prefix}.norm1"), SWIN_LAYER_NORM_EPS);
    let map_shape = g.ints(&[-1, side, side, dim]);
    let mut h = g.op("Reshape", &[&h, &map_shape], &[]);
    if b.shift > 0 {
        h = roll(g, &h, -(b.shift as i64), b.side);
    }
    // Windows in row-major order: [N * nW, w * w, C].
    let split = g.ints(&[-1, per_side, window, per_side, window, dim]);
    let h = g.op("Reshape", &[&h, &split], &[]);
    let h = g.op("Transpose", &[&h], &[Attr::Ints("perm", &[0, 1, 3, 2, 4, 5])]);
    let window_rows = g.ints(&[-1, tokens, dim]);
    let h = g.op("Reshape", &[&h, &window_rows], &[]);

    // Attention within each window: q, k, v from the fused projection, [3, N*nW, heads, n, hd].
    let head_dim = dim / b.heads as i64;
    let qkv = linear3(g, &h, &format!("{prefix}.attn.qkv"));
    let qkv_shape = g.ints(&[-1, tokens, 3, b.heads as i64, head_dim]);
    let qkv = g.op("Reshape", &[&qkv, &qkv_shape], &[]);
    let qkv = g.op("Transpose", &[&qkv], &[Attr::Ints("perm", &[2, 0, 3, 1, 4])]);
    let [q, k, v] = [0, 1, 2].map(|i| {
        let index = g.scalar_int(i);
        g.op("Gather", &[&qkv, &index], &[Attr::Int("axis", 0)])
    });
    let scale = g.scalar((head_dim as f32).powf(-0.5));
    let q = g.op("Mul", &[&q, &scale], &[]);
    let kt = g.op("Transpose", &[&k], &[Attr::Ints("perm", &[0, 1, 3, 2])]);
    let attention = g.op("MatMul", &[&q, &kt], &[]);
    // The relative position bias: table rows picked by each pair's offset, [heads, n, n].
    let table = g.weight(&format!("{prefix}.attn.relative_position_bias_table"));
    let bias = g.op("Gather", &[&table, index], &[Attr::Int("axis", 0)]);
    let bias_shape = g.ints(&[tokens, tokens, b.heads as i64]);
    let bias = g.op("Reshape", &[&bias, &bias_shape], &[]);
    let bias = g.op("Transpose", &[&bias], &[Attr::Ints("perm", &[2, 0, 1])]);
    let mut attention = g.op("Add", &[&attention, &bias], &[]);
    if let Some(mask) = mask {
        let windows = per_side * per_side;
        let grouped = g.ints(&[-1, windows, b.heads as i64, tokens, tokens]);
        let grouped = g.op("Reshape", &[&attention, &grouped], &[]);
        let masked = g.op("Add", &[&grouped, mask], &[]);
        let back = g.ints(&[-1, b.heads as i64, tokens, tokens]);
        attention = g.op("Reshape", &[&masked, &back], &[]);
    }
    let attention = g.op("Softmax", &[&attention], &[Attr::Int("axis", -1)]);
    let o = g.op("MatMul", &[&attention, &v], &[]);
    let o = g.op("Transpose", &[&o], &[Attr::Ints("perm", &[0, 2, 1, 3])]);
    let o = g.op("Reshape", &[&o, &window_rows], &[]);
    let o = linear3(g, &o, &format!("{prefix}.attn.proj"));

    // The windows back into the map, rolled back, as tokens.
    let merged = g.ints(&[-1, per_side, per_side, window, window, dim]);
    let o = g.op("Reshape", &[&o, &merged], &[]);
    let o = g.op("Transpose", &[&o], &[Attr::Ints("perm", &[0, 1, 3, 2, 4, 5])]);
    let mut o = g.op("Reshape", &[&o, &map_shape], &[]);
    if b.shift > 0 {
        o = roll(g, &o, b.shift as i64, b.side);
    }
    let token_shape = g.ints(&[-1, side * side, dim]);
    let o = g.op("Reshape", &[&o, &token_shape], &[]);
    let x = g.op("Add", &[x, &o], &[]);

    let h = layer_norm(g, &x, &format!("{prefix}.norm2"), SWIN_LAYER_NORM_EPS);
    let h = linear3(g, &h, &format!("{prefix}.mlp.fc1"));
    let h = gelu(g, &h);
    let h = linear3(g, &h, &format!("{prefix}.mlp.fc2"));
    g.op("Add", &[&x, &h], &[])
}

/// `torch.roll(x, (shift, shift), dims=(1, 2))` on a `[N, side, side, C]` map: element i of the
/// result is element (i - shift) mod side of `x`, on both axes.
fn roll(g: &mut Graph, x: &str, shift: i64, side: usize) -> String {
    let side = side as i64;
    let cut = (side - shift).rem_euclid(side);
    let mut x = x.to_string();
    for axis in [1, 2] {
        let (zero, cut_at, end, axes) = (g.ints(&[0]), g.ints(&[cut]), g.ints(&[side]), g.ints(&[axis]));
        let tail = g.op("Slice", &[&x, &cut_at, &end, &axes], &[]);
        let head = g.op("Slice", &[&x, &zero, &cut_at, &axes], &[]);
        x = g.op("Concat", &[&tail, &head], &[Attr::Int("axis", axis)]);
    }
    x
}

/// Swin's `PatchMerging` on tokens `[N, side^2, dim]`: each 2x2 group of tokens concatenated
/// (top-left, bottom-left, top-right, bottom-right), LayerNorm, a bias-free linear to 2 * dim.
fn patch_merging(g: &mut Graph, x: &str, prefix: &str, dim: usize, side: usize) -> String {
    let (dim, side) = (dim as i64, side as i64);
    let map_shape = g.ints(&[-1, side, side, dim]);
    let x = g.op("Reshape", &[x, &map_shape], &[]);
    let (ends, axes, steps) = (g.ints(&[side, side]), g.ints(&[1, 2]), g.ints(&[2, 2]));
    let parts: Vec<String> = [[0, 0], [1, 0], [0, 1], [1, 1]]
        .iter()
        .map(|start| {
            let starts = g.ints(start);
            g.op("Slice", &[&x, &starts, &ends, &axes, &steps], &[])
        })
        .collect();
    let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
    let x = g.op("Concat", &refs, &[Attr::Int("axis", -1)]);
    let rows = g.ints(&[-1, (side / 2) * (side / 2), 4 * dim]);
    let x = g.op("Reshape", &[&x, &rows], &[]);
    let x = layer_norm(g, &x, &format!("{prefix}.norm"), SWIN_LAYER_NORM_EPS);
    let w = g.weight(&format!("{prefix}.reduction.weight"));
    let wt = g.op("Transpose", &[&w], &[Attr::Ints("perm", &[1, 0])]);
    g.op("MatMul", &[&x, &wt], &[])
}

/// Row of the bias table for each pair of tokens (p, q) of a window, row-major:
/// `(p_row - q_row + w - 1) * (2w - 1) + (p_col - q_col + w - 1)`.
fn relative_position_index(window: usize) -> Vec<i64> {
    let w = window as i64;
    let tokens: Vec<(i64, i64)> = (0..w).flat_map(|r| (0..w).map(move |c| (r, c))).collect();
    tokens
        .iter()
        .flat_map(|&(pr, pc)| tokens.iter().map(move |&(qr, qc)| (pr - qr + w - 1) * (2 * w - 1) + (pc - qc + w - 1)))
        .collect()
}

/// The shifted windows' attention mask, `[nW, n, n]` flattened: on the rolled map, tokens that
/// came from different regions (split at side - window and side - shift on each axis) get -100.
fn shifted_window_mask(side: usize, window: usize, shift: usize) -> Vec<f32> {
    let region = |i: usize| (i >= side - window) as usize + (i >= side - shift) as usize;
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
    mask
}

/// Exact GELU as PyTorch computes it, `(x * 0.5) * (1 + erf(x * (1 / sqrt 2)))`: the form tract
/// recognises and runs as one fused kernel.
fn gelu(g: &mut Graph, x: &str) -> String {
    let (inv_sqrt2, half, one) = (g.scalar(2f32.sqrt().recip()), g.scalar(0.5), g.scalar(1.0));
    let e = g.op("Mul", &[x, &inv_sqrt2], &[]);
    let e = g.op("Erf", &[&e], &[]);
    let e = g.op("Add", &[&e, &one], &[]);
    let half_x = g.op("Mul", &[x, &half], &[]);
    g.op("Mul", &[&half_x, &e], &[])
}

/// `x @ x^T` per image: `[N, n, c]` -> `[N, n, n]`.
fn dots(g: &mut Graph, x: &str) -> String {
    let t = g.op("Transpose", &[x], &[Attr::Ints("perm", &[0, 2, 1])]);
    g.op("MatMul", &[x, &t], &[])
}

/// `F.normalize(x, p=2, dim=-1)`: `x / max(|x|, 1e-12)`.
fn l2_normalize(g: &mut Graph, x: &str) -> String {
    let norm = g.op("ReduceL2", &[x], &[Attr::Ints("axes", &[-1]), Attr::Int("keepdims", 1)]);
    let eps = g.scalar(1e-12);
    let norm = g.op("Max", &[&norm, &eps], &[]);
    g.op("Div", &[x, &norm], &[])
}

/// `nn.Linear` on `[N, T, in]`: `x @ W^T + b`.
fn linear3(g: &mut Graph, x: &str, prefix: &str) -> String {
    let (w, b) = (g.weight(&format!("{prefix}.weight")), g.weight(&format!("{prefix}.bias")));
    let wt = g.op("Transpose", &[&w], &[Attr::Ints("perm", &[1, 0])]);
    let y = g.op("MatMul", &[x, &wt], &[]);
    g.op("Add", &[&y, &b], &[])
}

/// ME-GraphAU's `LinearBlock`s named `prefixes`, side by side, on token rows `[rows, in]` (eval
/// mode: dropout does nothing): `relu(bn(fc(x)))`, each BatchNorm1d over its block's features;
/// `[rows, blocks * out]`, the blocks' features one after the other.
fn linear_block_rows(g: &mut Graph, x: &str, prefixes: &[String]) -> String {
    let stacked = |g: &mut Graph, part: &str| {
        let parts: Vec<String> = prefixes.iter().map(|p| g.weight(&format!("{p}.{part}"))).collect();
        match parts.as_slice() {
            [one] => one.clone(),
            _ => {
                let refs: Vec<&str> = parts.iter().map(String::as_str).collect();
                g.op("Concat", &refs, &[Attr::Int("axis", 0)])
            }
        }
    };
    let (w, b) = (stacked(g, "fc.weight"), stacked(g, "fc.bias"));
    let y = g.op("Gemm", &[x, &w, &b], &[Attr::Int("transB", 1)]);
    let [scale, bias, mean, var] =
        ["bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"].map(|part| stacked(g, part));
    let y = g.op("BatchNormalization", &[&y, &scale, &bias, &mean, &var], &[Attr::Float("epsilon", 1e-5)]);
    g.op("Relu", &[&y], &[])
}

/// The width of a backbone's tokens.
fn channels_of(backbone: &Architecture, input_size: usize) -> usize {
    match backbone {
        Architecture::Resnet { out_channels, .. } => out_channels.last().copied().unwrap_or(0),
        _ => backbone.swin_stages(input_size).last().map_or(0, |stage| stage.0),
    }
}

/// Eval-mode BatchNorm (eps 1e-5) over axis 1 of `x`.
fn batch_norm(g: &mut Graph, x: &str, prefix: &str) -> String {
    let [scale, bias, mean, var] =
        ["weight", "bias", "running_mean", "running_var"].map(|part| g.weight(&format!("{prefix}.{part}")));
    g.op("BatchNormalization", &[x, &scale, &bias, &mean, &var], &[Attr::Float("epsilon", 1e-5)])
}

/// EmoFAN as `aunet_train`'s `EmoNet` computes it in eval mode (`models/emonet_split.py`); every
/// "InstanceNorm2d" there is a BatchNorm2d, which the file rebinds before defining its layers.
fn emofan(g: &mut Graph, architecture: &Architecture) -> String {
    let &Architecture::EmoFan {
        stem_width, mid_width, features, stacks, hourglass_depth, head_width, head_blocks, ..
    } = architecture
    else {
        unreachable!("called for EmoFAN")
    };
    let fan = |part: &str| format!("feature.fan.{part}");
    let x = conv(g, "input", &fan("conv1"), 7, 2, true);
    let x = batch_norm(g, &x, &fan("bn1"));
    let x = g.op("Relu", &[&x], &[]);
    let x = conv_block(g, &x, &fan("conv2"), (stem_width, mid_width));
    let x = max_pool_2(g, &x);
    let x = conv_block(g, &x, &fan("conv3"), (mid_width, mid_width));
    let x = conv_block(g, &x, &fan("conv4"), (mid_width, features));

    let mut previous = x.clone();
    let mut hg_features = Vec::new();
    let mut heatmaps = String::new();
    for i in 0..stacks {
        let hg = hourglass(g, &previous, &fan(&format!("m{i}")), hourglass_depth, features);
        let ll = conv_block(g, &hg, &fan(&format!("top_m_{i}")), (features, features));
        let ll = conv(g, &ll, &fan(&format!("conv_last{i}")), 1, 1, true);
        let ll = batch_norm(g, &ll, &fan(&format!("bn_end{i}")));
        let mut ll = g.op("Relu", &[&ll], &[]);
        heatmaps = conv(g, &ll, &fan(&format!("l{i}")), 1, 1, true);
        if i + 1 < stacks {
            ll = conv(g, &ll, &fan(&format!("bl{i}")), 1, 1, true);
            let back = conv(g, &heatmaps, &fan(&format!("al{i}")), 1, 1, true);
            let sum = g.op("Add", &[&previous, &ll], &[]);
            previous = g.op("Add", &[&sum, &back], &[]);
        }
        hg_features.push(ll);
    }
    // FAN_: the stacks' features weighted by the last stack's heatmaps summed, after FAN's own.
    let refs: Vec<&str> = hg_features.iter().map(String::as_str).collect();
    let features = g.op("Concat", &refs, &[Attr::Int("axis", 1)]);
    let channels = g.ints(&[1]);
    let mask = g.op("ReduceSum", &[&heatmaps, &channels], &[Attr::Int("keepdims", 1)]);
    let features = g.op("Mul", &[&features, &mask], &[]);
    let emo_feat = g.op("Concat", &[&x, &features], &[Attr::Int("axis", 1)]);

    // EmoNet_: a 1x1 convolution, ConvBlock + max-pool stages, a 4x4 average, the MLP.
    let mut y = conv(g, &emo_feat, "predictor.conv1x1_input_emo_2", 1, 1, true);
    for j in 0..head_blocks {
        y = conv_block(g, &y, &format!("predictor.emo_net_2.{}", 2 * j), (head_width, head_width));
        y = max_pool_2(g, &y);
    }
    let y = g.op("AveragePool", &[&y], &[Attr::Ints("kernel_shape", &[4, 4]), Attr::Ints("strides", &[4, 4])]);
    let y = g.op("Flatten", &[&y], &[Attr::Int("axis", 1)]);
    let y = linear(g, &y, "predictor.emo_fc_2.0");
    let y = batch_norm(g, &y, "predictor.emo_fc_2.1");
    let y = g.op("Relu", &[&y], &[]);
    linear(g, &y, "predictor.emo_fc_2.3")
}

/// FAN's `HourGlass._forward` at `level`: the map, and its half-size self upsampled back.
fn hourglass(g: &mut Graph, input: &str, prefix: &str, level: usize, features: usize) -> String {
    let same = (features, features);
    let up1 = conv_block(g, input, &format!("{prefix}.b1_{level}"), same);
    let low1 = max_pool_2(g, input);
    let low1 = conv_block(g, &low1, &format!("{prefix}.b2_{level}"), same);
    let low2 = if level > 1 {
        hourglass(g, &low1, prefix, level - 1, features)
    } else {
        conv_block(g, &low1, &format!("{prefix}.b2_plus_{level}"), same)
    };
    let low3 = conv_block(g, &low2, &format!("{prefix}.b3_{level}"), same);
    // F.interpolate(scale_factor=2, mode='nearest'): output pixel i reads input pixel floor(i / 2).
    let scales = g.floats(&[1.0, 1.0, 2.0, 2.0]);
    let up2 = g.op(
        "Resize",
        &[&low3, "", &scales],
        &[
            Attr::Str("mode", "nearest"),
            Attr::Str("coordinate_transformation_mode", "asymmetric"),
            Attr::Str("nearest_mode", "floor"),
        ],
    );
    g.op("Add", &[&up1, &up2], &[])
}

/// FAN's `ConvBlock(inputs, out)`: three pre-activated 3x3 convolutions concatenated, plus the
/// input (through BatchNorm-ReLU-1x1 convolution when the width changes).
fn conv_block(g: &mut Graph, x: &str, prefix: &str, (inputs, out): (usize, usize)) -> String {
    let mut outs = Vec::new();
    let mut h = x.to_string();
    for i in 1..=3 {
        let y = batch_norm(g, &h, &format!("{prefix}.bn{i}"));
        let y = g.op("Relu", &[&y], &[]);
        h = conv(g, &y, &format!("{prefix}.conv{i}"), 3, 1, false);
        outs.push(h.clone());
    }
    let refs: Vec<&str> = outs.iter().map(String::as_str).collect();
    let cat = g.op("Concat", &refs, &[Attr::Int("axis", 1)]);
    let residual = if inputs != out {
        let y = batch_norm(g, x, &format!("{prefix}.downsample.0"));
        let y = g.op("Relu", &[&y], &[]);
        conv(g, &y, &format!("{prefix}.downsample.2"), 1, 1, false)
    } else {
        x.to_string()
    };
    g.op("Add", &[&cat, &residual], &[])
}

/// A square convolution padded by kernel / 2, with or without its bias.
fn conv(g: &mut Graph, x: &str, name: &str, kernel: i64, stride: i64, bias: bool) -> String {
    let w = g.weight(&format!("{name}.weight"));
    let pad = kernel / 2;
    let attrs = [
        Attr::Ints("kernel_shape", &[kernel, kernel]),
        Attr::Ints("strides", &[stride, stride]),
        Attr::Ints("pads", &[pad, pad, pad, pad]),
    ];
    if bias {
        let b = g.weight(&format!("{name}.bias"));
        g.op("Conv", &[x, &w, &b], &attrs)
    } else {
        g.op("Conv", &[x, &w], &attrs)
    }
}

/// `F.max_pool2d(x, 2, stride=2)`.
fn max_pool_2(g: &mut Graph, x: &str) -> String {
    g.op("MaxPool", &[x], &[Attr::Ints("kernel_shape", &[2, 2]), Attr::Ints("strides", &[2, 2])])
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
