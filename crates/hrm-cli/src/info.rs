//! `hrm info`: a package's manifest in words.

use hrm_core::manifest::{Architecture, OutputKind, ResnetBlock, VitPooling};
use hrm_core::ModelPackage;
use std::path::Path;
use std::process::ExitCode;

pub fn describe_architecture(architecture: &Architecture) -> String {
    match architecture {
        Architecture::Vit { width, depth, heads, patch_size, mlp_hidden, pooling, .. } => {
            let pooling = match pooling {
                VitPooling::Mean => "mean of patch tokens + fc_norm",
                VitPooling::Cls => "norm + CLS token",
            };
            format!(
                "ViT/{patch_size}: width {width}, depth {depth}, {heads} heads, MLP {mlp_hidden}, pooling: {pooling}"
            )
        }
        Architecture::Resnet { block, layers, widths, groups, .. } => {
            let (name, convs_per_block) = match block {
                ResnetBlock::Bottleneck => ("bottleneck", 3),
                ResnetBlock::Basic => ("basic", 2),
            };
            let depth = layers.iter().sum::<usize>() * convs_per_block + 2;
            format!("ResNet-{depth} ({name} blocks {layers:?}, widths {widths:?}, groups {groups})")
        }
    }
}

pub fn run(dir: &Path) -> anyhow::Result<ExitCode> {
    let package = ModelPackage::load(dir)?;
    let m = &package.manifest;
    println!("{} — hrm model package (format {})", m.name, m.format);
    println!("  folder:        {}", dir.display());
    println!("  architecture:  {}", describe_architecture(&m.architecture));
    println!(
        "  input:         {}x{} {:?}, mean {:?}, std {:?}",
        m.input.width, m.input.height, m.input.channel_order, m.input.mean, m.input.std
    );
    let output = match m.output {
        OutputKind::Logits => "logits (a sigmoid gives probabilities)",
        OutputKind::Probabilities => "probabilities",
    };
    println!("  output:        {output}");
    println!("  AU set:        {} ({} AUs)", m.au_set, m.au_set.len());
    for au in m.au_set.aus() {
        println!("    {:<6} {:<40} threshold {}", au.id, au.name, m.thresholds[au.id]);
    }
    println!("  files (sha256 verified):");
    println!("    {}  {}", m.files.onnx.sha256, m.files.onnx.name);
    println!("    {}  {}", m.files.weights.sha256, m.files.weights.name);
    println!("  converted from: {} (sha256 {})", m.source.checkpoint, m.source.sha256);
    for note in &m.source.notes {
        println!("    note: {note}");
    }
    println!("  licence:       {}", m.source.licence);
    Ok(ExitCode::SUCCESS)
}
