//! Test helpers. Writes checkpoints the way `torch.save` does (a zip with `data.pkl` and one entry
//! per storage), so tests and benchmarks can make full-size models with random weights without
//! Python, and hostile ones; and [`fuzz`], a mutation fuzzer that runs as an ordinary test.

pub mod fuzz;

use std::io::Write;
use std::path::Path;

/// A tensor to save: name, shape, and values (generated when the file is written).
pub struct Entry {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
}

/// How a tensor's values are generated.
#[derive(Clone, Copy)]
pub enum Init {
    /// Uniform in ±sqrt(3 / fan_in): unit-variance activations through a linear layer.
    FanIn(usize),
    /// Uniform in ±scale.
    Uniform(f32),
    /// Every value equal (LayerNorm / BatchNorm scales).
    Constant(f32),
}

/// Where the state dict sits in the saved object, as the HRM checkpoints differ.
pub enum Wrapper {
    /// `{'model': state_dict, 'epoch': 1}` (MAE-Face, FMAE).
    Model,
    /// `{'state_dict': state_dict}` with `module.` prefixes (ME-GraphAU, DataParallel).
    StateDictWithModulePrefix,
    /// The state dict itself.
    TopLevel,
}

fn entry(name: impl Into<String>, shape: &[usize], init: Init) -> Entry {
    Entry { name: name.into(), shape: shape.to_vec(), init }
}

/// A timm ViT state dict (`fc_norm` with mean pooling, else `norm` + CLS).
pub fn vit(width: usize, depth: usize, patch: usize, image: usize, outputs: usize, mean_pooling: bool) -> Vec<Entry> {
    let tokens = (image / patch) * (image / patch) + 1;
    let hidden = 4 * width;
    let mut e = vec![
        entry("cls_token", &[1, 1, width], Init::Uniform(0.1)),
        entry("pos_embed", &[1, tokens, width], Init::Uniform(0.1)),
        entry("patch_embed.proj.weight", &[width, 3, patch, patch], Init::FanIn(3 * patch * patch)),
        entry("patch_embed.proj.bias", &[width], Init::Uniform(0.1)),
    ];
    for i in 0..depth {
        let b = |part: &str, shape: &[usize], init| entry(format!("blocks.{i}.{part}"), shape, init);
        e.extend([
            b("norm1.weight", &[width], Init::Constant(1.0)),
            b("norm1.bias", &[width], Init::Uniform(0.1)),
            b("attn.qkv.weight", &[3 * width, width], Init::FanIn(width)),
            b("attn.qkv.bias", &[3 * width], Init::Uniform(0.1)),
            b("attn.proj.weight", &[width, width], Init::FanIn(width)),
            b("attn.proj.bias", &[width], Init::Uniform(0.1)),
            b("norm2.weight", &[width], Init::Constant(1.0)),
            b("norm2.bias", &[width], Init::Uniform(0.1)),
            b("mlp.fc1.weight", &[hidden, width], Init::FanIn(width)),
            b("mlp.fc1.bias", &[hidden], Init::Uniform(0.1)),
            b("mlp.fc2.weight", &[width, hidden], Init::FanIn(hidden)),
            b("mlp.fc2.bias", &[width], Init::Uniform(0.1)),
        ]);
    }
    let norm = if mean_pooling { "fc_norm" } else { "norm" };
    e.extend([
        entry(format!("{norm}.weight"), &[width], Init::Constant(1.0)),
        entry(format!("{norm}.bias"), &[width], Init::Uniform(0.1)),
        entry("head.weight", &[outputs, width], Init::FanIn(width)),
        entry("head.bias", &[outputs], Init::Uniform(0.1)),
    ]);
    e
}

/// torchvision's ResNet-50 (bottleneck, 3-4-6-3) state dict with `outputs` classes.
pub fn resnet50(outputs: usize) -> Vec<Entry> {
    let mut e = Vec::new();
    let conv_bn = |e: &mut Vec<Entry>, conv: String, bn: String, shape: [usize; 4]| {
        e.push(entry(format!("{conv}.weight"), &shape, Init::FanIn(shape[1] * shape[2] * shape[3])));
        e.push(entry(format!("{bn}.weight"), &[shape[0]], Init::Constant(1.0)));
        e.push(entry(format!("{bn}.bias"), &[shape[0]], Init::Uniform(0.1)));
        e.push(entry(format!("{bn}.running_mean"), &[shape[0]], Init::Uniform(0.1)));
        e.push(entry(format!("{bn}.running_var"), &[shape[0]], Init::Constant(1.0)));
    };
    conv_bn(&mut e, "conv1".into(), "bn1".into(), [64, 3, 7, 7]);
    let mut inplanes = 64;
    for (stage, (blocks, planes)) in [(3, 64), (4, 128), (6, 256), (3, 512)].into_iter().enumerate() {
        for b in 0..blocks {
            let p = format!("layer{}.{b}", stage + 1);
            conv_bn(&mut e, format!("{p}.conv1"), format!("{p}.bn1"), [planes, inplanes, 1, 1]);
            conv_bn(&mut e, format!("{p}.conv2"), format!("{p}.bn2"), [planes, planes, 3, 3]);
            conv_bn(&mut e, format!("{p}.conv3"), format!("{p}.bn3"), [planes * 4, planes, 1, 1]);
            if b == 0 {
                conv_bn(&mut e, format!("{p}.downsample.0"), format!("{p}.downsample.1"), [planes * 4, inplanes, 1, 1]);
            }
            inplanes = planes * 4;
        }
    }
    e.push(entry("fc.weight", &[outputs, 2048], Init::FanIn(2048)));
    e.push(entry("fc.bias", &[outputs], Init::Uniform(0.1)));
    e
}

/// ME-GraphAU stage 1 as the authors' `MEFARG(num_classes, 'resnet50')` names it: the ResNet-50
/// backbone without `fc` under `backbone.`, `global_linear` (2048 -> 512), a LinearBlock per AU,
/// the GNN (`U`, `V`, `bnv` over the nodes) and the class vectors `sc`.
pub fn me_graphau_resnet50(outputs: usize) -> Vec<Entry> {
    let mut e: Vec<Entry> = resnet50(outputs)
        .into_iter()
        .filter(|t| !t.name.starts_with("fc."))
        .map(|t| Entry { name: format!("backbone.{}", t.name), ..t })
        .collect();
    me_graphau_head(&mut e, 2048, 512, outputs);
    e
}

/// ME-GraphAU stage 1 on the authors' `swin_transformer_tiny` (`width` 96, `depths` 2-2-6-2,
/// `heads` 3-6-12-24; base: 128, 2-2-18-2, 4-8-16-32), window 7 on 224x224: the backbone under
/// `backbone.` (its derived buffers left out), nodes of half its final width.
pub fn me_graphau_swin(width: usize, depths: &[usize], heads: &[usize], outputs: usize) -> Vec<Entry> {
    let mut e = Vec::new();
    let linear = |e: &mut Vec<Entry>, name: String, (out, inputs): (usize, usize), bias: bool| {
        e.push(entry(format!("{name}.weight"), &[out, inputs], Init::FanIn(inputs)));
        if bias {
            e.push(entry(format!("{name}.bias"), &[out], Init::Uniform(0.1)));
        }
    };
    let norm = |e: &mut Vec<Entry>, name: String, width: usize| {
        e.push(entry(format!("{name}.weight"), &[width], Init::Constant(1.0)));
        e.push(entry(format!("{name}.bias"), &[width], Init::Uniform(0.1)));
    };
    e.push(entry("backbone.patch_embed.proj.weight", &[width, 3, 4, 4], Init::FanIn(48)));
    e.push(entry("backbone.patch_embed.proj.bias", &[width], Init::Uniform(0.1)));
    norm(&mut e, "backbone.patch_embed.norm".into(), width);
    let mut dim = width;
    for (i, (&depth, &h)) in depths.iter().zip(heads).enumerate() {
        // Stage maps of 56, 28, 14 and 7 tokens a side: the last is one 7x7 window.
        for j in 0..depth {
            let b = format!("backbone.layers.{i}.blocks.{j}");
            norm(&mut e, format!("{b}.norm1"), dim);
            e.push(entry(format!("{b}.attn.relative_position_bias_table"), &[169, h], Init::Uniform(0.02)));
            linear(&mut e, format!("{b}.attn.qkv"), (3 * dim, dim), true);
            linear(&mut e, format!("{b}.attn.proj"), (dim, dim), true);
            norm(&mut e, format!("{b}.norm2"), dim);
            linear(&mut e, format!("{b}.mlp.fc1"), (4 * dim, dim), true);
            linear(&mut e, format!("{b}.mlp.fc2"), (dim, 4 * dim), true);
        }
        if i + 1 < depths.len() {
            linear(&mut e, format!("backbone.layers.{i}.downsample.reduction"), (2 * dim, 4 * dim), false);
            norm(&mut e, format!("backbone.layers.{i}.downsample.norm"), 4 * dim);
            dim *= 2;
        }
    }
    norm(&mut e, "backbone.norm".into(), dim);
    me_graphau_head(&mut e, dim, dim / 2, outputs);
    e
}

/// ME-GraphAU's `global_linear` (`channels` -> `features`), a LinearBlock per AU, the GNN and the
/// class vectors.
fn me_graphau_head(e: &mut Vec<Entry>, channels: usize, features: usize, outputs: usize) {
    let linear_block = |e: &mut Vec<Entry>, prefix: String, inputs: usize| {
        e.push(entry(format!("{prefix}.fc.weight"), &[features, inputs], Init::FanIn(inputs)));
        e.push(entry(format!("{prefix}.fc.bias"), &[features], Init::Uniform(0.1)));
        batch_norm(e, &format!("{prefix}.bn"), features);
    };
    linear_block(e, "global_linear".into(), channels);
    for i in 0..outputs {
        linear_block(e, format!("head.class_linears.{i}"), features);
    }
    for linear in ["U", "V"] {
        e.push(entry(format!("head.gnn.{linear}.weight"), &[features, features], Init::FanIn(features)));
        e.push(entry(format!("head.gnn.{linear}.bias"), &[features], Init::Uniform(0.1)));
    }
    batch_norm(e, "head.gnn.bnv", outputs);
    e.push(entry("head.sc", &[outputs, features], Init::FanIn(features)));
}

/// EmoFAN as `aunet_train`'s `EmoNet(n_classes=outputs)` names it: FAN (2 stacks of depth-4
/// hourglasses, 256 channels, 68 heatmaps) under `feature.fan.`, the AU head under `predictor.`.
pub fn emofan(outputs: usize) -> Vec<Entry> {
    let mut e = Vec::new();
    let conv = |e: &mut Vec<Entry>, name: String, shape: [usize; 4], bias: bool| {
        e.push(entry(format!("{name}.weight"), &shape, Init::FanIn(shape[1] * shape[2] * shape[3])));
        if bias {
            e.push(entry(format!("{name}.bias"), &[shape[0]], Init::Uniform(0.1)));
        }
    };
    let conv_block = |e: &mut Vec<Entry>, name: String, inputs: usize, out: usize| {
        for (i, (from, to)) in [(inputs, out / 2), (out / 2, out / 4), (out / 4, out / 4)].into_iter().enumerate() {
            batch_norm(e, &format!("{name}.bn{}", i + 1), from);
            conv(e, format!("{name}.conv{}", i + 1), [to, from, 3, 3], false);
        }
        if inputs != out {
            batch_norm(e, &format!("{name}.downsample.0"), inputs);
            conv(e, format!("{name}.downsample.2"), [out, inputs, 1, 1], false);
        }
    };
    let fan = |part: &str| format!("feature.fan.{part}");
    conv(&mut e, fan("conv1"), [64, 3, 7, 7], true);
    batch_norm(&mut e, &fan("bn1"), 64);
    conv_block(&mut e, fan("conv2"), 64, 128);
    conv_block(&mut e, fan("conv3"), 128, 128);
    conv_block(&mut e, fan("conv4"), 128, 256);
    for i in 0..2 {
        for level in 1..=4 {
            for part in ["b1", "b2", "b3"] {
                conv_block(&mut e, fan(&format!("m{i}.{part}_{level}")), 256, 256);
            }
        }
        conv_block(&mut e, fan(&format!("m{i}.b2_plus_1")), 256, 256);
        conv_block(&mut e, fan(&format!("top_m_{i}")), 256, 256);
        conv(&mut e, fan(&format!("conv_last{i}")), [256, 256, 1, 1], true);
        batch_norm(&mut e, &fan(&format!("bn_end{i}")), 256);
        conv(&mut e, fan(&format!("l{i}")), [68, 256, 1, 1], true);
        if i == 0 {
            conv(&mut e, fan("bl0"), [256, 256, 1, 1], true);
            conv(&mut e, fan("al0"), [256, 68, 1, 1], true);
        }
    }
    conv(&mut e, "predictor.conv1x1_input_emo_2".into(), [256, 768, 1, 1], true);
    for j in 0..4 {
        conv_block(&mut e, format!("predictor.emo_net_2.{}", 2 * j), 256, 256);
    }
    e.push(entry("predictor.emo_fc_2.0.weight", &[128, 256], Init::FanIn(256)));
    e.push(entry("predictor.emo_fc_2.0.bias", &[128], Init::Uniform(0.1)));
    batch_norm(&mut e, "predictor.emo_fc_2.1", 128);
    e.push(entry("predictor.emo_fc_2.3.weight", &[outputs, 128], Init::FanIn(128)));
    e.push(entry("predictor.emo_fc_2.3.bias", &[outputs], Init::Uniform(0.1)));
    e
}

/// A BatchNorm's tensors: scale 1, small shift and mean, variance 1.
fn batch_norm(e: &mut Vec<Entry>, prefix: &str, channels: usize) {
    e.push(entry(format!("{prefix}.weight"), &[channels], Init::Constant(1.0)));
    e.push(entry(format!("{prefix}.bias"), &[channels], Init::Uniform(0.1)));
    e.push(entry(format!("{prefix}.running_mean"), &[channels], Init::Uniform(0.1)));
    e.push(entry(format!("{prefix}.running_var"), &[channels], Init::Constant(1.0)));
}

/// A state dict of the given names and shapes (as `hrm_core`'s `Architecture::tensors` lists
/// them), with values of sensible scale: running variances and 1-D scales (`*.weight`: every
/// 1-D weight of these networks is a norm layer's) 1, other 1-D tensors small, the rest by fan-in.
pub fn from_shapes(tensors: &[(String, Vec<usize>)]) -> Vec<Entry> {
    tensors
        .iter()
        .map(|(name, shape)| {
            let init = match shape.len() {
                1 if name.ends_with(".running_var") || name.ends_with(".weight") => Init::Constant(1.0),
                1 => Init::Uniform(0.1),
                _ => Init::FanIn(shape[1..].iter().product()),
            };
            entry(name.clone(), shape, init)
        })
        .collect()
}

/// A small deterministic generator (xorshift64*), so checkpoints and fuzzing runs are reproducible.
/// The state must not be 0.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [-1, 1).
    fn uniform(&mut self) -> f32 {
        let bits = self.next() >> 40;
        bits as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }

    /// Uniform in 0..n (0 when n is 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Pickle opcodes used below (protocol 2, as `torch.save` writes).
mod op {
    pub const PROTO: u8 = 0x80;
    pub const MARK: u8 = b'(';
    pub const STOP: u8 = b'.';
    pub const EMPTY_DICT: u8 = b'}';
    pub const EMPTY_TUPLE: u8 = b')';
    pub const TUPLE: u8 = b't';
    pub const SETITEMS: u8 = b'u';
    pub const BINUNICODE: u8 = b'X';
    pub const BININT: u8 = b'J';
    pub const GLOBAL: u8 = b'c';
    pub const REDUCE: u8 = b'R';
    pub const BINPERSID: u8 = b'Q';
    pub const NEWFALSE: u8 = 0x89;
    pub const LONG1: u8 = 0x8a;
}

struct Pickler(Vec<u8>);

impl Pickler {
    fn str(&mut self, s: &str) {
        self.0.push(op::BINUNICODE);
        self.0.extend_from_slice(&(s.len() as u32).to_le_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }

    fn int(&mut self, v: usize) {
        match i32::try_from(v) {
            Ok(v) => {
                self.0.push(op::BININT);
                self.0.extend_from_slice(&v.to_le_bytes());
            }
            Err(_) => {
                self.0.extend_from_slice(&[op::LONG1, 8]);
                self.0.extend_from_slice(&(v as u64).to_le_bytes());
            }
        }
    }

    fn global(&mut self, module: &str, name: &str) {
        self.0.push(op::GLOBAL);
        self.0.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }

    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.0.extend_from_slice(&[op::EMPTY_TUPLE, op::REDUCE]);
    }

    fn int_tuple(&mut self, values: &[usize]) {
        self.0.push(op::MARK);
        values.iter().for_each(|&v| self.int(v));
        self.0.push(op::TUPLE);
    }

    /// `torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())`, with a
    /// storage that declares `storage_len` elements; contiguous strides unless `stride` is given.
    fn tensor_in(&mut self, key: usize, shape: &[usize], storage_len: usize, stride: Option<Vec<usize>>) {
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.0.push(op::MARK);
        self.0.push(op::MARK);
        self.str("storage");
        self.global("torch", "FloatStorage");
        self.str(&key.to_string());
        self.str("cpu");
        self.int(storage_len);
        self.0.extend_from_slice(&[op::TUPLE, op::BINPERSID]);
        self.int(0);
        self.int_tuple(shape);
        let stride = stride.unwrap_or_else(|| {
            let mut stride = vec![1; shape.len()];
            for i in (0..shape.len().saturating_sub(1)).rev() {
                stride[i] = stride[i + 1] * shape[i + 1];
            }
            stride
        });
        self.int_tuple(&stride);
        self.0.push(op::NEWFALSE);
        self.ordered_dict();
        self.0.extend_from_slice(&[op::TUPLE, op::REDUCE]);
    }
}

/// How a hostile checkpoint lays out one tensor: its storage's declared element count, and
/// strides other than contiguous ones.
pub struct Layout {
    pub storage_len: usize,
    pub stride: Option<Vec<usize>>,
}

/// The `data.pkl` of a checkpoint holding `entries` (storage `i` for entry `i`), wrapped as
/// `wrapper` says. `layout` gives entry `i` a layout other than a contiguous tensor filling its
/// storage (hostile checkpoints for tests).
pub fn state_dict_pickle(entries: &[Entry], wrapper: Wrapper, layout: impl Fn(usize) -> Option<Layout>) -> Vec<u8> {
    let mut p = Pickler(vec![op::PROTO, 2]);
    // {'model' | 'state_dict': OrderedDict(...), 'epoch': 1}, or the OrderedDict alone
    let (outer_key, prefix) = match wrapper {
        Wrapper::Model => (Some("model"), ""),
        Wrapper::StateDictWithModulePrefix => (Some("state_dict"), "module."),
        Wrapper::TopLevel => (None, ""),
    };
    if let Some(key) = outer_key {
        p.0.extend_from_slice(&[op::EMPTY_DICT, op::MARK]);
        p.str(key);
    }
    p.ordered_dict();
    p.0.push(op::MARK);
    for (key, e) in entries.iter().enumerate() {
        p.str(&format!("{prefix}{}", e.name));
        let layout = layout(key).unwrap_or(Layout { storage_len: e.shape.iter().product(), stride: None });
        p.tensor_in(key, &e.shape, layout.storage_len, layout.stride);
    }
    p.0.push(op::SETITEMS);
    if outer_key.is_some() {
        p.str("epoch");
        p.int(1);
        p.0.push(op::SETITEMS);
    }
    p.0.push(op::STOP);
    p.0
}

/// A pickle of a list that references one `size`-byte bytes object `references` times: small as
/// a pickle (the object is memoised once), huge if every reference were copied.
pub fn shared_bytes_pickle(size: u32, references: usize) -> Vec<u8> {
    let mut bytes = vec![op::PROTO, 2, b']', b'q', 0, op::MARK, b'B'];
    bytes.extend_from_slice(&size.to_le_bytes());
    bytes.extend(std::iter::repeat_n(0u8, size as usize));
    bytes.extend_from_slice(b"q\x01");
    bytes.extend(std::iter::repeat_n(*b"h\x01", references - 1).flatten());
    bytes.extend_from_slice(b"e.");
    bytes
}

/// Writes a `torch.save`-style zip: `<stem>/data.pkl`, `byteorder`, `data/<key>` for each storage,
/// `version`; stored, or deflated when `deflate` (torch stores, but a zip may say otherwise).
pub fn write_archive(path: &Path, pickle: &[u8], storages: &[(String, Vec<u8>)], deflate: bool) -> std::io::Result<()> {
    let archive = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "archive".into());
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path)?);
    let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    zip.start_file(format!("{archive}/data.pkl"), options)?;
    zip.write_all(pickle)?;
    zip.start_file(format!("{archive}/byteorder"), options)?;
    zip.write_all(b"little")?;
    for (key, bytes) in storages {
        zip.start_file(format!("{archive}/data/{key}"), options)?;
        zip.write_all(bytes)?;
    }
    zip.start_file(format!("{archive}/version"), options)?;
    zip.write_all(b"3\n")?;
    zip.finish()?;
    Ok(())
}

/// Writes `entries` as a PyTorch checkpoint at `path`, with values from a seeded generator.
pub fn write_checkpoint(path: &Path, entries: &[Entry], wrapper: Wrapper, seed: u64) -> std::io::Result<()> {
    let pickle = state_dict_pickle(entries, wrapper, |_| None);
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let storages: Vec<(String, Vec<u8>)> = entries
        .iter()
        .enumerate()
        .map(|(key, e)| {
            let n: usize = e.shape.iter().product();
            let mut bytes = Vec::with_capacity(n * 4);
            for _ in 0..n {
                let v = match e.init {
                    Init::FanIn(fan_in) => rng.uniform() * (3.0 / fan_in as f32).sqrt(),
                    Init::Uniform(scale) => rng.uniform() * scale,
                    Init::Constant(c) => c,
                };
                bytes.extend_from_slice(&v.to_le_bytes());
            }
            (key.to_string(), bytes)
        })
        .collect();
    write_archive(path, &pickle, &storages, false)
}
