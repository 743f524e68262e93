//! Recognises the network from its tensors and lists exactly the tensors it must have.
//!
//! The HRM scripts load with `strict=False`, so a checkpoint with the wrong pooling or a renamed
//! layer loads silently and gives wrong answers. Here the architecture's parameters are read from
//! a few anchor tensors, the complete list of expected names and shapes is derived from them, and
//! any unknown, missing or mis-shaped tensor stops the conversion with all of them listed.

use crate::error::{ConvertError, Result};
use crate::pickle::TensorRef;
use hrm_core::manifest::{self, Architecture, GraphMetric, ResnetBlock, VitPooling};
use hrm_core::AuList;
use std::collections::BTreeMap;
use std::path::Path;

/// What the converter learnt from the tensors.
#[derive(Debug)]
pub struct Recognised {
    pub architecture: Architecture,
    pub aus: AuList,
    /// Square input side (224 for the HRM ViTs and ResNets).
    pub input_size: usize,
    /// Every tensor the graph uses, in a fixed order, with its shape.
    pub tensors: Vec<(String, Vec<usize>)>,
    pub notes: Vec<String>,
    /// The checkpoint's name of each tensor the package names otherwise (EmoFAN's layouts).
    pub renamed: BTreeMap<String, String>,
}

/// Choices the checkpoint cannot carry.
#[derive(Debug, Clone, Default)]
pub struct ArchOptions {
    /// ViT attention heads; by default width / 64.
    pub heads: Option<usize>,
    /// ME-GraphAU's K (neighbours per node); by default 4, the authors' `--neighbor_num`.
    pub neighbors: Option<usize>,
    /// ME-GraphAU's similarity metric; by default `dots`, the authors' `--metric`.
    pub metric: Option<GraphMetric>,
}

type Tensors = BTreeMap<String, TensorRef>;

pub fn recognise(path: &Path, tensors: &Tensors, options: &ArchOptions) -> Result<Recognised> {
    let has = |pred: &dyn Fn(&str) -> bool| tensors.keys().any(|k| pred(k));
    let unsupported = |architecture: &str, reason: &str| {
        Err(ConvertError::Unsupported {
            path: path.to_path_buf(),
            architecture: architecture.into(),
            reason: reason.into(),
        })
    };
    if has(&|k| k.starts_with("head.main_class_linears.") || k.starts_with("head.edge_extractor.")) {
        return unsupported(
            "ME-GraphAU stage 2 (MEFARG with the MEFL head)",
            "HRM publishes the stage-1 model (the ANFL head), which is converted",
        );
    }
    if is_me_graphau(tensors) {
        return me_graphau(path, tensors, options);
    }
    if has(&|k| EMOFAN_HEAD_MODULES.iter().any(|m| k.contains(m)) || k.contains("m0.b1_")) {
        return emofan(path, tensors);
    }
    if has(&|k| k.starts_with("blocks.") || k == "cls_token" || k.starts_with("patch_embed.")) {
        return vit(path, tensors, options);
    }
    if has(&|k| k.starts_with("layer1.")) && tensors.contains_key("conv1.weight") {
        return resnet(path, tensors);
    }
    let keys: Vec<&str> = tensors.keys().take(8).map(String::as_str).collect();
    Err(ConvertError::Unrecognised { path: path.to_path_buf(), keys: keys.join(", ") })
}

/// ME-GraphAU's stage-1 head is there (its training arguments then matter).
pub fn is_me_graphau(tensors: &Tensors) -> bool {
    tensors
        .keys()
        .any(|k| k.starts_with("head.gnn.") || k.starts_with("global_linear.") || k.starts_with("head.class_linears."))
}

/// Reads one dimension of an anchor tensor, or records that the anchor is missing or too small.
fn dim(tensors: &Tensors, name: &str, axis: usize, problems: &mut Vec<String>) -> usize {
    match tensors.get(name) {
        Some(t) if axis < t.shape.len() => t.shape[axis],
        Some(t) => {
            problems.push(format!(
                "mis-shaped: {name} has shape {:?}, expected at least {} dimensions",
                t.shape,
                axis + 1
            ));
            0
        }
        None => {
            problems.push(format!("missing: {name}"));
            0
        }
    }
}

fn tensor_error(path: &Path, architecture: &str, problems: Vec<String>) -> ConvertError {
    ConvertError::Tensors { path: path.to_path_buf(), architecture: architecture.to_string(), problems }
}

/// Compares the tensors with the expected list. `ignored` prefixes are dropped with a note.
fn check(
    path: &Path,
    architecture: &str,
    tensors: &Tensors,
    expected: &[(String, Vec<usize>)],
    ignored: &[&str],
) -> Result<()> {
    let mut problems = Vec::new();
    for (name, shape) in expected {
        match tensors.get(name) {
            None => problems.push(format!("missing: {name} {shape:?}")),
            Some(t) if &t.shape != shape => {
                problems.push(format!("mis-shaped: {name} is {:?}, expected {shape:?}", t.shape))
            }
            Some(t) if !t.dtype.is_float() => {
                problems.push(format!("wrong type: {name} holds {:?}, expected floating point", t.dtype))
            }
            Some(_) => {}
        }
    }
    let expected_names: std::collections::HashSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    for name in tensors.keys() {
        let known = expected_names.contains(name.as_str())
            || ignored.iter().any(|p| name.starts_with(p))
            || name.ends_with(".num_batches_tracked");
        if !known {
            problems.push(format!("unknown: {name} {:?}", tensors[name].shape));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(tensor_error(path, architecture, problems))
    }
}

fn au_list(path: &Path, architecture: &str, outputs: usize) -> Result<AuList> {
    AuList::for_output_count(outputs).ok_or_else(|| {
        tensor_error(
            path,
            architecture,
            vec![format!("the classifier has {outputs} outputs; HRM models have 22 (or 17) AUs")],
        )
    })
}

fn block_count(tensors: &Tensors, prefix: &str) -> usize {
    tensors
        .keys()
        .filter_map(|k| k.strip_prefix(prefix)?.split('.').next()?.parse::<usize>().ok())
        .max()
        .map_or(0, |m| m.saturating_add(1))
}

fn vit(path: &Path, tensors: &Tensors, options: &ArchOptions) -> Result<Recognised> {
    const NAME: &str = "ViT";
    let mut problems = Vec::new();
    let width = dim(tensors, "patch_embed.proj.weight", 0, &mut problems);
    let patch = dim(tensors, "patch_embed.proj.weight", 2, &mut problems);
    let tokens = dim(tensors, "pos_embed", 1, &mut problems);
    let mlp_hidden = dim(tensors, "blocks.0.mlp.fc1.weight", 0, &mut problems);
    let outputs = dim(tensors, "head.weight", 0, &mut problems);
    if !problems.is_empty() {
        return Err(tensor_error(path, NAME, problems));
    }
    let depth = block_count(tensors, "blocks.");
    let grid = (tokens.saturating_sub(1) as f64).sqrt().round() as usize;
    if grid.checked_mul(grid).and_then(|g| g.checked_add(1)) != Some(tokens) {
        return Err(tensor_error(
            path,
            NAME,
            vec![format!("pos_embed has {tokens} tokens, not a square grid of patches plus the CLS token")],
        ));
    }
    let heads = options.heads.unwrap_or(width / 64).max(1);
    if !width.is_multiple_of(heads) {
        return Err(ConvertError::Option(format!("{} heads do not divide the width {width}", heads)));
    }
    let pooling = if tensors.keys().any(|k| k.starts_with("fc_norm.")) { VitPooling::Mean } else { VitPooling::Cls };
    let aus = au_list(path, NAME, outputs)?;
    let architecture =
        Architecture::Vit { width, depth, heads, patch_size: patch, mlp_hidden, pooling, layer_norm_eps: 1e-6 };
    let input_size = bounded(path, NAME, &architecture, grid.checked_mul(patch))?;
    let expected = parameters_within_budget(path, NAME, architecture.tensors(outputs, input_size, input_size))?;
    let mut notes = Vec::new();
    let ignored = ["ID_head."];
    if tensors.keys().any(|k| k.starts_with("ID_head.")) {
        notes.push("FMAE-IAT identity head (ID_head.*) left out: it is only used in training".to_string());
    }
    check(path, NAME, tensors, &expected, &ignored)?;
    notes.push(match pooling {
        VitPooling::Mean => "pooling: mean of the patch tokens then fc_norm (fc_norm.* present)".to_string(),
        VitPooling::Cls => "pooling: norm then the CLS token (no fc_norm.*)".to_string(),
    });
    if options.heads.is_none() {
        notes.push(format!("attention heads: {heads} (width {width} / 64)"));
    }
    Ok(Recognised { architecture, aus, input_size, tensors: expected, notes, renamed: BTreeMap::new() })
}

/// The most parameters converted (8 GB of f32; ViT-L/16 has 0.3 billion, ViT-G/14 1.8 billion).
const MAX_PARAMETERS: u64 = 2_000_000_000;

/// Refuses a network whose tensors hold more than [`MAX_PARAMETERS`] values in all: every one of
/// them is read into memory and written to the package.
fn parameters_within_budget(
    path: &Path,
    name: &str,
    tensors: Vec<(String, Vec<usize>)>,
) -> Result<Vec<(String, Vec<usize>)>> {
    let count = tensors.iter().try_fold(0u64, |sum, (_, shape)| {
        sum.checked_add(shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d as u64))?)
    });
    match count {
        Some(count) if count <= MAX_PARAMETERS => Ok(tensors),
        _ => Err(tensor_error(
            path,
            name,
            vec![format!("the tensors' shapes ask for more than {MAX_PARAMETERS} parameters in all")],
        )),
    }
}

/// Checks the parameters read from the tensors before anything is sized by them (a key such as
/// `blocks.100000000.norm1.weight` would otherwise ask for a hundred million blocks), and the input
/// side they imply; returns that side.
fn bounded(path: &Path, name: &str, architecture: &Architecture, input_size: Option<usize>) -> Result<usize> {
    architecture.check().map_err(|(field, expected, found)| {
        tensor_error(path, name, vec![format!("the tensors give {field} = {found}, expected {expected}")])
    })?;
    match input_size {
        Some(side) if (1..=manifest::MAX_INPUT_SIDE).contains(&side) => Ok(side),
        _ => Err(tensor_error(
            path,
            name,
            vec![format!("the tensors imply an input side over {} pixels", manifest::MAX_INPUT_SIDE)],
        )),
    }
}

fn resnet(path: &Path, tensors: &Tensors) -> Result<Recognised> {
    const NAME: &str = "torchvision ResNet";
    let mut problems = Vec::new();
    let outputs = dim(tensors, "fc.weight", 0, &mut problems);
    let architecture = resnet_architecture(path, NAME, tensors, problems)?;
    let aus = au_list(path, NAME, outputs)?;
    let input_size = bounded(path, NAME, &architecture, Some(224))?;
    let expected = parameters_within_budget(path, NAME, architecture.tensors(outputs, input_size, input_size))?;
    check(path, NAME, tensors, &expected, &[])?;
    let notes = vec![describe_backbone(&architecture)];
    Ok(Recognised { architecture, aus, input_size, tensors: expected, notes, renamed: BTreeMap::new() })
}

/// A torchvision ResNet's parameters from its tensors (`fc` aside); `problems` already found are
/// reported with any found here.
fn resnet_architecture(path: &Path, name: &str, tensors: &Tensors, mut problems: Vec<String>) -> Result<Architecture> {
    let stem_width = dim(tensors, "conv1.weight", 0, &mut problems);
    let block =
        if tensors.contains_key("layer1.0.conv3.weight") { ResnetBlock::Bottleneck } else { ResnetBlock::Basic };
    let stages = (1..).take_while(|k| tensors.contains_key(&format!("layer{k}.0.conv1.weight"))).count();
    let mut layers = Vec::new();
    let mut widths = Vec::new();
    let mut out_channels = Vec::new();
    for k in 1..=stages {
        layers.push(block_count(tensors, &format!("layer{k}.")));
        widths.push(dim(tensors, &format!("layer{k}.0.conv1.weight"), 0, &mut problems));
        let last_conv = match block {
            ResnetBlock::Bottleneck => "conv3",
            ResnetBlock::Basic => "conv2",
        };
        out_channels.push(dim(tensors, &format!("layer{k}.0.{last_conv}.weight"), 0, &mut problems));
    }
    if stages == 0 {
        problems.push("missing: layer1.0.conv1.weight".into());
    }
    if !problems.is_empty() {
        return Err(tensor_error(path, name, problems));
    }
    let groups = match block {
        ResnetBlock::Bottleneck => {
            let per_group = dim(tensors, "layer1.0.conv2.weight", 1, &mut problems);
            widths[0].checked_div(per_group).unwrap_or(1).max(1)
        }
        ResnetBlock::Basic => 1,
    };
    if !problems.is_empty() {
        return Err(tensor_error(path, name, problems));
    }
    Ok(Architecture::Resnet { block, layers, widths, out_channels, stem_width, groups })
}

/// A ResNet's or a Swin's parameters in words, for the conversion notes.
fn describe_backbone(architecture: &Architecture) -> String {
    match architecture {
        Architecture::Resnet { block, layers, widths, groups, .. } => {
            let block = match block {
                ResnetBlock::Bottleneck => "bottleneck",
                ResnetBlock::Basic => "basic",
            };
            format!("{block} blocks per stage {layers:?}, widths {widths:?}, groups {groups}")
        }
        Architecture::Swin { width, depths, heads, window, .. } => {
            format!("Swin, width {width}, blocks {depths:?}, heads {heads:?}, window {window}")
        }
        other => format!("{other:?}"),
    }
}

/// ME-GraphAU stage 1 (`MEFARG` with the ANFL head) on a ResNet or Swin backbone, as the
/// authors' `train_stage1.py` saves it: `{'epoch', 'state_dict', 'optimizer'}`, `module.` prefixes.
fn me_graphau(path: &Path, tensors: &Tensors, options: &ArchOptions) -> Result<Recognised> {
    const NAME: &str = "ME-GraphAU (MEFARG, ANFL head)";
    let mut problems = Vec::new();
    let features = dim(tensors, "global_linear.fc.weight", 0, &mut problems);
    let outputs = dim(tensors, "head.sc", 0, &mut problems);
    let swin = tensors.keys().any(|k| k.starts_with("backbone.layers.") || k.starts_with("backbone.patch_embed."));
    // Swin's relative position index and shifted-window masks are buffers its code derives from
    // the window and the map sizes; the graph derives them too.
    let derived =
        |name: &str| swin && (name.ends_with(".attn.relative_position_index") || name.ends_with(".attn_mask"));
    let tensors: Tensors =
        tensors.iter().filter(|(name, _)| !derived(name)).map(|(n, t)| (n.clone(), t.clone())).collect();
    let backbone: Tensors =
        tensors.iter().filter_map(|(name, t)| Some((name.strip_prefix("backbone.")?.to_string(), t.clone()))).collect();
    let backbone = match swin {
        true => swin_architecture(path, NAME, &backbone, problems)?,
        false => resnet_architecture(path, NAME, &backbone, problems)?,
    };
    let aus = au_list(path, NAME, outputs)?;
    let neighbors = options.neighbors.unwrap_or(4);
    let metric = options.metric.unwrap_or(GraphMetric::Dots);
    if !(1..=outputs).contains(&neighbors) {
        return Err(ConvertError::Option(format!(
            "{neighbors} neighbours: the graph has {outputs} nodes (one per AU), so K must be from 1 to {outputs}"
        )));
    }
    let mut notes = vec![
        format!("backbone: {}", describe_backbone(&backbone)),
        format!(
            "graph: {neighbors} neighbours by {}{}; the scores are cosine similarities, \
             thresholded at 0.5 without a sigmoid",
            metric.name(),
            if options.neighbors.is_none() && options.metric.is_none() { " (the authors' defaults)" } else { "" }
        ),
    ];
    if swin {
        notes.push("Swin's relative_position_index and attn_mask buffers are derived, not read".into());
    }
    let architecture = Architecture::MeGraphAu { backbone: Box::new(backbone), features, neighbors, metric };
    let input_size = bounded(path, NAME, &architecture, Some(224))?;
    let expected = parameters_within_budget(path, NAME, architecture.tensors(outputs, input_size, input_size))?;
    check(path, NAME, &tensors, &expected, &[])?;
    Ok(Recognised { architecture, aus, input_size, tensors: expected, notes, renamed: BTreeMap::new() })
}

/// A Swin transformer's parameters from its tensors (`model/swin_transformer.py`'s names).
fn swin_architecture(path: &Path, name: &str, tensors: &Tensors, mut problems: Vec<String>) -> Result<Architecture> {
    let width = dim(tensors, "patch_embed.proj.weight", 0, &mut problems);
    let patch_size = dim(tensors, "patch_embed.proj.weight", 2, &mut problems);
    let stages = (0..).take_while(|i| tensors.contains_key(&format!("layers.{i}.blocks.0.norm1.weight"))).count();
    let mut depths = Vec::new();
    let mut heads = Vec::new();
    for i in 0..stages {
        depths.push(block_count(tensors, &format!("layers.{i}.blocks.")));
        heads.push(dim(tensors, &format!("layers.{i}.blocks.0.attn.relative_position_bias_table"), 1, &mut problems));
    }
    // The first stage's table has (2w - 1)^2 rows (a later stage's window may be its whole map).
    let rows = dim(tensors, "layers.0.blocks.0.attn.relative_position_bias_table", 0, &mut problems);
    let window = ((rows as f64).sqrt().round() as usize).div_ceil(2);
    if stages == 0 {
        problems.push("missing: layers.0.blocks.0.norm1.weight".into());
    }
    if !problems.is_empty() {
        return Err(tensor_error(path, name, problems));
    }
    Ok(Architecture::Swin { width, depths, heads, window, patch_size })
}

/// The names EmoFAN's parts have in the package: `aunet_train`'s `EmoNet` (`feature.fan.*`, the
/// frozen FAN; `predictor.*`, the AU head).
const EMOFAN_FAN: &str = "feature.fan.";
const EMOFAN_HEAD: &str = "predictor.";
/// The head's modules, by which its tensors are told from FAN's in a flat state dict.
const EMOFAN_HEAD_MODULES: [&str; 3] = ["conv1x1_input_emo_2.", "emo_net_2.", "emo_fc_2."];

/// Maps a state dict's names onto [`EMOFAN_FAN`] and [`EMOFAN_HEAD`], whichever layout it has:
/// `EmoNet`'s own (`feature.fan.*`, `predictor.*`), `FAN_`'s (`fan.*`), or EmoNet's flat one as
/// `face-analysis/emonet` names it (FAN's modules and the head's side by side). Gives the
/// renamed tensors, and the package names that differ from the checkpoint's; two checkpoint
/// names for one tensor (a state dict mixing layouts) are an error naming both.
fn emofan_names(path: &Path, name: &str, tensors: &Tensors) -> Result<(Tensors, BTreeMap<String, String>)> {
    let architecture = name;
    let mut renamed = Tensors::new();
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    let mut clashes = Vec::new();
    for (name, tensor) in tensors {
        let head =
            EMOFAN_HEAD_MODULES.iter().any(|m| name.starts_with(m) || name.starts_with(&format!("{EMOFAN_HEAD}{m}")));
        let new = if head {
            format!("{EMOFAN_HEAD}{}", name.strip_prefix(EMOFAN_HEAD).unwrap_or(name))
        } else if name.starts_with(EMOFAN_FAN) || name.starts_with(EMOFAN_HEAD) {
            name.clone()
        } else {
            format!("{EMOFAN_FAN}{}", name.strip_prefix("fan.").unwrap_or(name))
        };
        if renamed.contains_key(&new) {
            let other = sources.get(&new).unwrap_or(&new);
            clashes.push(format!("duplicate: {name} and {other} are both {new}"));
            continue;
        }
        if &new != name {
            sources.insert(new.clone(), name.clone());
        }
        renamed.insert(new, tensor.clone());
    }
    match clashes.is_empty() {
        true => Ok((renamed, sources)),
        false => Err(tensor_error(path, architecture, clashes)),
    }
}

/// EmoFAN for AUs (`aunet_train`, `models/emonet_split.py`): the sizes of every part are read
/// from the tensors (HRM's: 2 stacks of depth-4 hourglasses, 256 channels, 68 heatmaps, a
/// 4-block head, 22 outputs).
fn emofan(path: &Path, tensors: &Tensors) -> Result<Recognised> {
    const NAME: &str = "EmoFAN (FAN + EmoNet head)";
    let (tensors, renamed) = emofan_names(path, NAME, tensors)?;
    let unsupported = |reason: &str| ConvertError::Unsupported {
        path: path.to_path_buf(),
        architecture: NAME.into(),
        reason: reason.into(),
    };
    let has = |prefix: &str| tensors.keys().any(|k| k.starts_with(prefix));
    if !has(&format!("{EMOFAN_FAN}m0.")) && !has(&format!("{EMOFAN_FAN}conv1.")) {
        return Err(unsupported(
            "the checkpoint holds only the AU head (aunet_train saves `predictor_N.pth`); \
             the FAN weights it runs on are not in it: save the whole EmoNet's state_dict",
        ));
    }
    if !has(&format!("{EMOFAN_HEAD}emo_fc_2.")) {
        return Err(unsupported("the checkpoint holds FAN without EmoNet's AU head (emo_fc_2)"));
    }
    let mut problems = Vec::new();
    let mut d = |name: &str, axis: usize| dim(&tensors, name, axis, &mut problems);
    let stem_width = d("feature.fan.conv1.weight", 0);
    let mid_width = 2 * d("feature.fan.conv2.conv1.weight", 0);
    let features = 2 * d("feature.fan.conv4.conv1.weight", 0);
    let landmarks = d("feature.fan.l0.weight", 0);
    let head_width = d("predictor.conv1x1_input_emo_2.weight", 0);
    let head_hidden = d("predictor.emo_fc_2.0.weight", 0);
    let outputs = d("predictor.emo_fc_2.3.weight", 0);
    let stacks = block_count(&tensors, "feature.fan.m");
    let hourglass_depth = tensors
        .keys()
        .filter_map(|k| k.strip_prefix("feature.fan.m0.b1_")?.split('.').next()?.parse::<usize>().ok())
        .max()
        .unwrap_or(0);
    let head_blocks = block_count(&tensors, "predictor.emo_net_2.").div_ceil(2);
    if !problems.is_empty() {
        return Err(tensor_error(path, NAME, problems));
    }
    let aus = au_list(path, NAME, outputs)?;
    let architecture = Architecture::EmoFan {
        stem_width,
        mid_width,
        features,
        stacks,
        hourglass_depth,
        landmarks,
        head_width,
        head_blocks,
        head_hidden,
    };
    let input_size = bounded(path, NAME, &architecture, architecture.fixed_input_side())?;
    let expected = parameters_within_budget(path, NAME, architecture.tensors(outputs, input_size, input_size))?;
    check(path, NAME, &tensors, &expected, &[])?;
    let mut notes = vec![format!(
        "{stacks} hourglass stacks of depth {hourglass_depth}, {features} channels, {landmarks} heatmaps; \
         head: {head_blocks} blocks, {head_width} channels, hidden {head_hidden}; input {input_size}x{input_size}"
    )];
    if !renamed.is_empty() {
        notes.push("tensors renamed to aunet_train's EmoNet layout (feature.fan.*, predictor.*)".into());
    }
    Ok(Recognised { architecture, aus, input_size, tensors: expected, notes, renamed })
}
