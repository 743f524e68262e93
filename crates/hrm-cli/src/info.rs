//! `hrm info`: a package's manifest in words.

use hrm_core::manifest::{Architecture, OutputKind, ResnetBlock, VitPooling};
use hrm_core::ModelPackage;
use std::fmt::Write;
use std::path::Path;

/// `println!` into a String.
macro_rules! line {
    ($out:expr, $($arg:tt)*) => {
        writeln!($out, $($arg)*).expect("writing to a String")
    };
}
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
        Architecture::MeGraphAu { backbone, features, neighbors, metric } => format!(
            "ME-GraphAU (MEFARG, ANFL head) on a {}: node features {features}, \
             {neighbors} neighbours by {}, cosine-similarity scores",
            describe_architecture(backbone),
            metric.name()
        ),
        Architecture::Swin { width, depths, heads, window, patch_size } => {
            format!("Swin/{patch_size}: width {width}, blocks {depths:?}, heads {heads:?}, window {window}")
        }
        Architecture::EmoFan { stacks, hourglass_depth, features, head_blocks, .. } => format!(
            "EmoFAN: FAN with {stacks} hourglass stacks (depth {hourglass_depth}, {features} channels), \
             EmoNet head with {head_blocks} blocks"
        ),
        Architecture::Mediapipe => {
            "MediaPipe face landmarker: BlazeFace framing, 478-point face mesh, 52 blendshapes, face geometry".into()
        }
    }
}

/// `hrm info [PACKAGE] [--config FILE] [--backend NAME]`: the package (or the built-in models),
/// then, when a configuration or backend is given, what runs each model.
pub fn run(package: Option<&Path>, choice: &crate::BackendArgs) -> anyhow::Result<ExitCode> {
    match package {
        Some(dir) if hrm_core::atypicality::is_atypicality_package(dir) => return describe_atypicality(dir),
        Some(dir) => describe_package(dir)?,
        None => builtin()?,
    }
    if choice.config.is_some() || choice.backend.is_some() {
        let mut config = choice.config()?;
        if let Some(dir) = package {
            config.model = Some(dir.to_path_buf());
        }
        let registry = crate::registry(&config);
        let runtime = hrm_core::Runtime::load(config, &registry)?;
        let mut out = String::from("runs on (backend, device or execution provider):\n");
        for (stage, backend, placement) in runtime.placements() {
            line!(out, "  {stage:<14} {backend} ({})", placement.device);
            if !placement.notes.is_empty() {
                line!(out, "  {:<14} {}", "", placement.notes);
            }
        }
        crate::print(&out)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The models built into hrm, with their hashes and licences.
fn builtin() -> anyhow::Result<()> {
    let mut out = String::new();
    line!(out, "Models built into hrm (used when a configuration names none; verified by sha256 at load):");
    line!(out, "  face detector: YuNet-s ({}), Apache-2.0", hrm_models::YUNET.name);
    line!(out, "    sha256 {}", hrm_models::expected_sha256(hrm_models::YUNET.name).unwrap_or("?"));
    let package = ModelPackage::builtin_mediapipe()?;
    line!(out, "  AU model and face mesh: `{}` (kind mediapipe-blendshapes), Apache-2.0", package.manifest.name);
    for (role, file) in &package.manifest.files {
        line!(out, "    {}  {} ({role})", file.sha256, file.name);
    }
    line!(out, "    AUs are estimates derived from MediaPipe's blendshapes, not HRM model outputs.");
    line!(out, "");
    out.push_str(hrm_models::LICENSES);
    crate::print(&out)?;
    Ok(())
}

/// An atypicality package: what it scores and from what.
fn describe_atypicality(dir: &Path) -> anyhow::Result<ExitCode> {
    let model = hrm_core::atypicality::Atypicality::load(dir)?;
    let m = &model.manifest;
    let mut out = String::new();
    line!(out, "{} — hrm atypicality package (format {})", m.name, m.format);
    line!(out, "  folder:        {}", dir.display());
    line!(
        out,
        "  model:         GRU ({} AUs -> {}, {} layers) + linear, on the last of {} frames",
        m.aus.len(),
        m.hidden,
        m.layers,
        m.window
    );
    line!(out, "  input:         binary AU presence per frame ({}), values above 1 count as 1", model.aus());
    line!(out, "  output:        the atypicality rating + 1 (about 1 to 5)");
    for (role, file) in &m.files {
        line!(out, "  file:          {}  {} ({role}, sha256 verified)", file.sha256, file.name);
    }
    line!(out, "  converted from: {} (sha256 {})", m.source.checkpoint, m.source.sha256);
    line!(out, "  licence:       {}", m.source.licence);
    if m.source.fixture {
        line!(out, "  warning:       a random-weight test fixture: its scores mean nothing");
    }
    crate::print(&out)?;
    Ok(ExitCode::SUCCESS)
}

fn describe_package(dir: &Path) -> anyhow::Result<()> {
    let mut out = String::new();
    let package = ModelPackage::load(dir)?;
    let m = &package.manifest;
    line!(out, "{} — hrm model package (format {})", m.name, m.format);
    line!(out, "  folder:        {}", dir.display());
    line!(out, "  architecture:  {}", describe_architecture(&m.architecture));
    line!(
        out,
        "  input:         {}x{} {:?}, mean {:?}, std {:?}",
        m.input.width,
        m.input.height,
        m.input.channel_order,
        m.input.mean,
        m.input.std
    );
    let output = match m.output {
        OutputKind::Logits => "logits (a sigmoid gives probabilities)",
        OutputKind::Probabilities => "probabilities",
    };
    line!(out, "  output:        {output}");
    let aus = m.au_list();
    let kind = match m.kind {
        hrm_core::manifest::ModelKind::AuClassifier => "au-classifier (one aligned face in, a score per AU out)",
        hrm_core::manifest::ModelKind::MediapipeBlendshapes => {
            "mediapipe-blendshapes (AU estimates from MediaPipe's blendshapes; blank AUs have no counterpart)"
        }
    };
    line!(out, "  kind:          {kind}");
    line!(out, "  AUs:           {} ({} AUs)", aus, aus.len());
    for au in aus.aus() {
        line!(out, "    {:<6} {:<40} threshold {}", au.id, au.name, m.thresholds[au.id]);
    }
    line!(out, "  files (sha256 verified, graph checked against the manifest):");
    for (role, file) in &m.files {
        line!(out, "    {}  {} ({role})", file.sha256, file.name);
    }
    line!(out, "  converted from: {} (sha256 {})", m.source.checkpoint, m.source.sha256);
    for note in &m.source.notes {
        line!(out, "    note: {note}");
    }
    line!(out, "  licence:       {}", m.source.licence);
    if m.source.fixture {
        line!(out, "  warning:       a random-weight test fixture: its AU numbers mean nothing");
    }
    crate::print(&out)?;
    Ok(())
}
