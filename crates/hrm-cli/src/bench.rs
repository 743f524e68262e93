//! `hrm bench`: inference latency of a package on a backend, per batch size.

use hrm_core::{BackendOptions, Config, ModelPackage};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Model package folder.
    #[arg(long)]
    model: PathBuf,
    /// TOML configuration (backend and threads are used).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Batch sizes to measure.
    #[arg(long = "batch", default_values_t = [1usize, 8])]
    batches: Vec<usize>,
    /// Timed runs per batch size, after the warm-up runs.
    #[arg(long, default_value_t = 20)]
    iterations: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Threads (overrides the configuration; 0 = all cores).
    #[arg(long)]
    threads: Option<usize>,
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(threads) = args.threads {
        config.threads = threads;
    }
    let package = ModelPackage::load(&args.model)?;
    let registry = crate::registry();
    let threads = config.resolved_threads();
    let load_start = Instant::now();
    let mut session = registry.get(&config.backend)?.load(&package, &BackendOptions { threads })?;
    let load_ms = load_start.elapsed().as_secs_f64() * 1e3;
    let spec = &package.manifest.input;
    let per_image = 3 * spec.width * spec.height;
    crate::print(&format!(
        "model {} on {} with {threads} threads (load {load_ms:.0} ms)\n",
        package.manifest.name, config.backend
    ))?;
    crate::print(&format!(
        "{:>6} {:>12} {:>12} {:>12} {:>12}\n",
        "batch", "median ms", "min ms", "ms/image", "images/s"
    ))?;
    for &batch in &args.batches {
        anyhow::ensure!(batch > 0, "batch sizes start at 1");
        // A fixed pseudo-random input: the values do not change the work done.
        let input: Vec<f32> = (0..per_image * batch).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let first = Instant::now();
        session.run(&input, batch)?;
        let first_ms = first.elapsed().as_secs_f64() * 1e3;
        for _ in 1..args.warmup {
            session.run(&input, batch)?;
        }
        let mut times: Vec<f64> = (0..args.iterations.max(1))
            .map(|_| {
                let start = Instant::now();
                session.run(&input, batch).map(|_| start.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<Result<_, _>>()?;
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        crate::print(&format!(
            "{batch:>6} {median:>12.1} {:>12.1} {:>12.1} {:>12.1}   (first run incl. optimisation {first_ms:.0} ms)\n",
            times[0],
            median / batch as f64,
            1e3 * batch as f64 / median
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}
