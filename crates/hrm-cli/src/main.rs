//! `hrm`: convert HRM checkpoints into model packages, detect Action Units, benchmark backends.

mod atypicality;
mod backends;
mod bench;
mod detect;
mod info;
mod parallel;
mod plot;
mod video;

use clap::{Parser, Subcommand};
use hrm_core::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "hrm", version, about = "Facial Action Unit detection with the Hugging Rain Man models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Convert a PyTorch checkpoint (.pth) from the HRM authors into an hrm model package.
    Convert {
        checkpoint: PathBuf,
        /// Folder to write the package into (replaced if it already holds a package).
        #[arg(long)]
        out: PathBuf,
        /// Package name (default: the checkpoint's file name without extension).
        #[arg(long)]
        name: Option<String>,
        /// ViT attention heads (default: width / 64, as in ViT-B/16 and ViT-L/16).
        #[arg(long)]
        heads: Option<usize>,
        /// ME-GraphAU: neighbours each AU node keeps in the graph (default: the checkpoint's
        /// saved `neighbor_num`, else 4 as in the authors' code).
        #[arg(long, value_name = "K")]
        neighbors: Option<usize>,
        /// ME-GraphAU: node similarity for choosing neighbours (default: the checkpoint's saved
        /// `metric`, else dots).
        #[arg(long, value_parser = ["dots", "cosine", "l1"])]
        metric: Option<String>,
        /// The checkpoint holds random test weights: the package says so, and `hrm detect` warns
        /// that its numbers mean nothing.
        #[arg(long)]
        fixture: bool,
    },
    /// Describe a model package and verify its files; without one, the models built into hrm.
    /// With --config or --backend, also load it and say what runs each model.
    Info {
        package: Option<PathBuf>,
        #[command(flatten)]
        choice: BackendArgs,
    },
    /// List the backends: built in, and every plugin found (file, version, devices), or refused.
    Backends {
        /// TOML configuration: its [plugins] paths are searched first, and its backend tables
        /// ([onnxruntime]) reach the plugins.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Detect Action Units in images, folders, videos, image sequences, cameras or streams.
    Detect(detect::DetectArgs),
    /// Measure inference latency of a package on a backend.
    Bench(bench::BenchArgs),
    /// HRM's atypicality score for every window of 15 frames of a predict.csv.
    Atypicality(atypicality::AtypicalityArgs),
    /// Draw each face track's AU probabilities and atypicality over time (PNG or SVG) from the
    /// JSON Lines of `hrm detect` on a video.
    Plot(plot::PlotArgs),
}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Convert { checkpoint, out, name, heads, neighbors, metric, fixture } => {
            let metric = metric.as_deref().map(|text| {
                hrm_core::manifest::GraphMetric::parse(text)
                    .ok_or_else(|| anyhow::anyhow!("--metric {text}: expected dots, cosine or l1"))
            });
            metric.transpose().and_then(|metric| {
                convert(checkpoint, out, name, hrm_convert::ArchOptions { heads, neighbors, metric }, fixture)
            })
        }
        Command::Info { package, choice } => info::run(package.as_deref(), &choice),
        Command::Backends { config } => backends::run(config.as_deref()),
        Command::Detect(args) => detect::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Atypicality(args) => atypicality::run(args),
        Command::Plot(args) => plot::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn convert(
    checkpoint: PathBuf,
    out: PathBuf,
    name: Option<String>,
    arch: hrm_convert::ArchOptions,
    fixture: bool,
) -> anyhow::Result<ExitCode> {
    let options = hrm_convert::ConvertOptions { name, arch, fixture };
    let converted = hrm_convert::convert(&checkpoint, &out, &options)?;
    eprintln!("converted {} -> {}", checkpoint.display(), converted.dir.display());
    match &converted.model {
        hrm_convert::ConvertedModel::AuModel(m) => eprintln!(
            "  {} ({} AUs, {}x{} input)",
            info::describe_architecture(&m.architecture),
            m.aus.len(),
            m.input.width,
            m.input.height
        ),
        hrm_convert::ConvertedModel::Atypicality(m) => eprintln!(
            "  the atypicality regressor: GRU ({} AUs -> {}, {} layers) over {} frames (`hrm atypicality`)",
            m.aus.len(),
            m.hidden,
            m.layers,
            m.window
        ),
    }
    for note in &converted.notes {
        eprintln!("  note: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// A configuration file and a backend chosen on the command line.
#[derive(clap::Args, Default)]
pub struct BackendArgs {
    /// TOML configuration (backend, threads, batch size, thresholds).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The backend for the AU model (and for YuNet, unless [detector] backend names one): `tract`
    /// (built in) or a plugin's name (`hrm backends` lists them). Overrides the configuration's.
    #[arg(long)]
    pub backend: Option<String>,
}

impl BackendArgs {
    /// The configuration file (or the default one), with --backend applied.
    pub fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(backend) = &self.backend {
            config.backend.name = backend.clone();
        }
        Ok(config)
    }
}

/// The backends `config` can use: tract, built in, then every plugin found (see `hrm backends`).
pub fn registry(config: &Config) -> hrm_core::BackendRegistry {
    hrm_core::plugin::with_plugins(hrm_tract::registry(), config)
}

/// The threads each of `jobs` pipelines gets: `threads = 0` (all cores) shared out among them,
/// so that frames in flight do not fight over the cores; a number set by the user is kept.
pub fn threads_per_job(threads: usize, jobs: u64) -> usize {
    match threads {
        0 => (std::thread::available_parallelism().map_or(1, |n| n.get()) / jobs.max(1) as usize).max(1),
        n => n,
    }
}

/// Says on stderr where a backend did not run a model on its first choice of device.
pub fn report_fallbacks(runtime: &hrm_core::Runtime) {
    for (stage, backend, placement) in runtime.placements() {
        if !placement.notes.is_empty() {
            eprintln!("note: {backend} runs the {stage} on {}: {}", placement.device, placement.notes);
        }
    }
}

/// tract allocates its intermediate tensors afresh on every run. glibc serves blocks over 128 KiB
/// with mmap and unmaps them on free, so every frame paid page faults and page clearing for memory
/// it had just given back: a quarter of YuNet's time at 640x480. With these thresholds (32 MiB is
/// glibc's ceiling) freed blocks stay in the heap for the next frame.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator tunables; nothing else runs yet.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

/// Writes to stdout; a closed pipe (`hrm info PKG | head`) ends the output quietly.
pub fn print(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
