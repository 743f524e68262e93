//! Recognises the network from its tensors and lists exactly the tensors it must have.
//!
//! The HRM scripts load with `strict=False`, so a checkpoint with the wrong pooling or a renamed
//! layer loads silently and gives wrong answers. Here the architecture's parameters are read from
//! a few anchor tensors, the complete list of expected names and shapes is derived from them, and
//! any unknown, missing or mis-shaped tensor stops the conversion with all of them listed.

use crate::error::{ConvertError, Result};
use crate::pickle::TensorRef;
use hrm_core::manifest::{self, Architecture, ResnetBlock, VitPooling};
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
}

/// Choices the checkpoint cannot carry.
#[derive(Debug, Clone, Default)]
pub struct ArchOptions {
    /// ViT attention heads; by default width / 64.
    pub heads: Option<usize>,
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
    if has(&|k| k.contains("gnn") || k.contains("main_class_linears") || k.contains("global_linear")) {
        return unsupported("ME-GraphAU (ResNet-50 + ANFL graph head)", "its graph head has its own issue");
    }
    if has(&|k| k.starts_with("emo_") || k.contains("hg0.") || k.starts_with("fan.") || k.starts_with("m0.")) {
        return unsupported("EmoFAN", "its hourglass network has its own issue");
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
    Ok(Recognised { architecture, aus, input_size, tensors: expected, notes })
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
    let outputs = dim(tensors, "fc.weight", 0, &mut problems);
    if stages == 0 {
        problems.push("missing: layer1.0.conv1.weight".into());
    }
    if !problems.is_empty() {
        return Err(tensor_error(path, NAME, problems));
    }
    let groups = match block {
        ResnetBlock::Bottleneck => {
            let per_group = dim(tensors, "layer1.0.conv2.weight", 1, &mut problems);
            widths[0].checked_div(per_group).unwrap_or(1).max(1)
        }
        ResnetBlock::Basic => 1,
    };
    if !problems.is_empty() {
        return Err(tensor_error(path, NAME, problems));
    }
    let aus = au_list(path, NAME, outputs)?;
    let architecture = Architecture::Resnet { block, layers, widths, out_channels, stem_width, groups };
    let input_size = bounded(path, NAME, &architecture, Some(224))?;
    let expected = parameters_within_budget(path, NAME, architecture.tensors(outputs, input_size, input_size))?;
    check(path, NAME, tensors, &expected, &[])?;
    let Architecture::Resnet { layers, widths, .. } = &architecture else { unreachable!("built above") };
    let notes = vec![format!(
        "{} blocks per stage {:?}, widths {:?}, groups {groups}",
        match block {
            ResnetBlock::Bottleneck => "bottleneck",
            ResnetBlock::Basic => "basic",
        },
        layers,
        widths
    )];
    Ok(Recognised { architecture, aus, input_size, tensors: expected, notes })
}
