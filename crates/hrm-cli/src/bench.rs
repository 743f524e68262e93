//! `hrm bench`: inference latency of a package on a backend, per batch size; the face detection
//! stages per frame; or a whole video's frames per second.

use hrm_core::config::{MAX_BATCH_SIZE, MAX_DETECTOR_SIDE, MAX_THREADS};
use hrm_core::{Config, Runtime, TensorView};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Model package folder (the AU model to time).
    #[arg(long, required_unless_present_any = ["detection", "video"])]
    model: Option<PathBuf>,
    /// Time a video end to end instead, as `hrm detect` runs it: decoding (ffmpeg), detection,
    /// alignment, the AU model, tracks and the atypicality score; frames per second.
    #[arg(long, value_name = "FILE", conflicts_with = "detection")]
    video: Option<PathBuf>,
    /// With --video: frames run at once, each on a pipeline of its own (as `hrm detect --jobs`).
    #[arg(long, default_value_t = 2, requires = "video", value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: u64,
    /// With --video: the atypicality package to score tracks with (overrides `[atypicality] model`).
    #[arg(long, value_name = "PKG", requires = "video")]
    atypicality: Option<PathBuf>,
    /// Time face detection and alignment per frame instead (the configuration's [detector]).
    #[arg(long)]
    detection: bool,
    /// With --detection: time the whole pipeline per frame (detection, alignment and the AU model).
    #[arg(long, requires = "detection")]
    pipeline: bool,
    /// Frame sizes for --detection, WIDTHxHEIGHT.
    #[arg(long = "frame-size", default_values = ["640x480", "1920x1080"])]
    frame_sizes: Vec<String>,
    /// Photograph the --detection frames are made from (resized to each frame size).
    #[arg(long)]
    image: Option<PathBuf>,
    #[command(flatten)]
    choice: crate::BackendArgs,
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
    let mut config = args.choice.config()?;
    if let Some(threads) = args.threads {
        anyhow::ensure!(threads <= MAX_THREADS, "--threads {threads}: expected 0 (all cores) to {MAX_THREADS}");
        config.threads = threads;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if config.resolved_threads() > cores {
        eprintln!(
            "warning: {} threads on {cores} cores: the figures will be slower, not faster",
            config.resolved_threads()
        );
    }
    for &batch in &args.batches {
        anyhow::ensure!((1..=MAX_BATCH_SIZE).contains(&batch), "--batch {batch}: expected 1 to {MAX_BATCH_SIZE}");
    }
    for size in &args.frame_sizes {
        frame_size(size)?;
    }
    if let Some(model) = &args.model {
        config.model = Some(model.clone());
    }
    if let Some(model) = &args.atypicality {
        config.atypicality.model = Some(model.clone());
    }
    if let Some(video) = &args.video {
        config.threads = crate::threads_per_job(config.threads, args.jobs);
        return video_fps(video, config, args.jobs);
    }
    if args.detection {
        return detection(&args, &config);
    }
    let threads = config.resolved_threads();
    let load_start = Instant::now();
    let registry = crate::registry(&config);
    let runtime = Runtime::load_without_face_detector(config, &registry)?;
    crate::report_fallbacks(&runtime);
    anyhow::ensure!(
        runtime.package().manifest.kind == hrm_core::manifest::ModelKind::AuClassifier,
        "`{}` reads the face mesh's landmarks, not a crop: time it with --detection --pipeline",
        runtime.package().manifest.name
    );
    let mut session = runtime.au_session()?;
    let load_ms = load_start.elapsed().as_secs_f64() * 1e3;
    let spec = &runtime.package().manifest.input;
    crate::print(&format!(
        "model {} on {} with {threads} threads (load {load_ms:.0} ms)\n",
        runtime.package().manifest.name,
        placement_text(&runtime, "au model"),
    ))?;
    crate::print(&format!(
        "{:>6} {:>12} {:>12} {:>12} {:>12}\n",
        "batch", "median ms", "min ms", "ms/image", "images/s"
    ))?;
    for &batch in &args.batches {
        // A fixed pseudo-random input: the values do not change the work done.
        let data: Vec<f32> = (0..spec.values() * batch).map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0).collect();
        let shape: Vec<usize> = (spec.tensor_dims().iter())
            .map(|dim| match dim {
                hrm_core::backend::Dim::Fixed(n) => *n,
                _ => batch,
            })
            .collect();
        let input = [TensorView::new(&shape, &data)?];
        let first = Instant::now();
        session.run(&input)?;
        let first_ms = first.elapsed().as_secs_f64() * 1e3;
        for _ in 1..args.warmup {
            session.run(&input)?;
        }
        let mut times: Vec<f64> = (0..args.iterations.max(1))
            .map(|_| {
                let start = Instant::now();
                session.run(&input).map(|_| start.elapsed().as_secs_f64() * 1e3)
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

/// One pass over a video as `hrm detect` makes it (`jobs` frames at once, then tracks,
/// smoothing and the atypicality score in order), with ffmpeg decoding alongside: end-to-end
/// frames per second. The first frame, which also prepares the models, is timed apart.
fn video_fps(video: &std::path::Path, config: Config, jobs: u64) -> anyhow::Result<ExitCode> {
    let threads = config.resolved_threads();
    let registry = crate::registry(&config);
    let runtime = Runtime::load(config, &registry)?;
    crate::report_fallbacks(&runtime);
    let mut tracks = runtime.tracks();
    let atypicality = if runtime.atypicality().is_some() { " + atypicality" } else { "" };
    let mesh = if runtime.has_mesh() { " + face mesh" } else { "" };
    crate::print(&format!(
        "{}: detection{mesh} + AU model `{}` on {} + tracks{atypicality}; {jobs} frames at once, {threads} threads each\n",
        video.display(),
        runtime.package().manifest.name,
        placement_text(&runtime, "au model"),
    ))?;
    let workers = crate::parallel::frame_workers(&runtime, jobs, false)?;
    let mut decoder = crate::video::Decoder::open(video, runtime.config().max_image_pixels)?;
    let mut frames = crate::video::Selection::ALL.frames(&mut decoder);
    let (mut count, mut faces, mut size) = (0usize, 0usize, (0, 0));
    let start = Instant::now();
    let (mut first, mut after_first) = (0.0, start);
    crate::parallel::in_order(workers, &mut frames, |frame, found| {
        let seconds = frame.timestamp.unwrap_or(count as f64 / 30.0);
        faces += tracks.track(found?, seconds)?.len();
        if count == 0 {
            (first, after_first) = (start.elapsed().as_secs_f64(), Instant::now());
            size = (frame.image.width, frame.image.height);
        }
        count += 1;
        Ok(())
    })?;
    if let Some(e) = frames.error.take() {
        return Err(e.context(format!("{}: decoding", video.display())));
    }
    anyhow::ensure!(count >= 2, "{}: {count} frames; a benchmark needs at least 2", video.display());
    let elapsed = after_first.elapsed().as_secs_f64();
    let timed = (count - 1) as f64;
    crate::print(&format!(
        "{count} frames of {}x{}, {faces} faces: {:.1} fps end to end ({:.1} ms per frame); first frame {:.0} ms; \
         {:.1} s in all\n",
        size.0,
        size.1,
        timed / elapsed,
        1e3 * elapsed / timed,
        1e3 * first,
        start.elapsed().as_secs_f64(),
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `backend (device)` for a stage of the runtime, as its backend reports it.
fn placement_text(runtime: &Runtime, stage: &str) -> String {
    let found = runtime.placements().into_iter().find(|p| p.0 == stage);
    found.map_or_else(|| "?".into(), |(_, backend, placement)| format!("{backend} ({})", placement.device))
}

/// `WIDTHxHEIGHT`, each side from 1 to the largest detector input the configuration allows.
fn frame_size(text: &str) -> anyhow::Result<(usize, usize)> {
    text.split_once('x')
        .and_then(|(w, h)| Some((w.parse::<usize>().ok()?, h.parse::<usize>().ok()?)))
        .filter(|&(w, h)| (1..=MAX_DETECTOR_SIDE).contains(&w) && (1..=MAX_DETECTOR_SIDE).contains(&h))
        .ok_or_else(|| {
            anyhow::anyhow!("--frame-size {text}: expected WIDTHxHEIGHT, each from 1 to {MAX_DETECTOR_SIDE}")
        })
}

/// Detection + alignment of every face to 224x224, per frame; with `--pipeline`, the AU model too
/// (`detect ms` is then not measured apart).
fn detection(args: &BenchArgs, config: &Config) -> anyhow::Result<ExitCode> {
    use hrm_core::align::align;
    use hrm_core::face::FaceDetector;
    let detector = config.detector.model.as_ref().map_or("built-in YuNet-s".into(), |m| m.display().to_string());
    let threads = config.resolved_threads();
    let registry = crate::registry(config);
    /// What is timed per frame.
    enum Timed {
        Detection(hrm_core::face::YunetDetector),
        Pipeline(hrm_core::pipeline::Pipeline),
    }
    let (mut timed, stages, detector_on) = match args.pipeline {
        true => {
            let runtime = Runtime::load(config.clone(), &registry)?;
            crate::report_fallbacks(&runtime);
            let mesh = if runtime.has_mesh() { " + face mesh + head pose" } else { "" };
            let stages = format!(
                "detection{mesh} + AU model `{}` on {}",
                runtime.package().manifest.name,
                placement_text(&runtime, "au model")
            );
            let detector_on = placement_text(&runtime, "face detector");
            (Timed::Pipeline(runtime.pipeline()?), stages, detector_on)
        }
        false => {
            let (detector, placement) = hrm_core::runtime::face_detector_alone(config, &registry)?;
            let detector_on = format!("{} ({})", config.detector_backend(), placement.device);
            (Timed::Detection(detector), "detection".to_string(), detector_on)
        }
    };
    let image = args.image.clone().ok_or_else(|| anyhow::anyhow!("--detection needs --image PHOTO"))?;
    let photo = hrm_core::image::decode_file(&image)?;
    crate::print(&format!(
        "{stages}: {detector} on {detector_on} with {threads} threads; frames made from {}\n",
        image.display()
    ))?;
    crate::print(&format!(
        "{:>10} {:>6} {:>12} {:>12} {:>12}\n",
        "frame", "faces", "median ms", "min ms", "detect ms"
    ))?;
    for size in &args.frame_sizes {
        let (w, h) = frame_size(size)?;
        let frame = hrm_core::resize::resize_bilinear(&photo, w, h);
        let view = frame.view();
        let mut run = || -> anyhow::Result<(usize, f64, f64)> {
            let start = Instant::now();
            let faces = match &mut timed {
                Timed::Detection(detector) => detector.detect(&view)?,
                Timed::Pipeline(pipeline) => {
                    let faces = pipeline.process(&view)?.len();
                    return Ok((faces, start.elapsed().as_secs_f64() * 1e3, f64::NAN));
                }
            };
            let detected = start.elapsed().as_secs_f64() * 1e3;
            for face in &faces {
                align(&frame, face, &config.alignment, 224, 224);
            }
            Ok((faces.len(), start.elapsed().as_secs_f64() * 1e3, detected))
        };
        for _ in 0..args.warmup.max(1) {
            run()?;
        }
        let mut runs: Vec<(usize, f64, f64)> = (0..args.iterations.max(1)).map(|_| run()).collect::<Result<_, _>>()?;
        runs.sort_by(|a, b| a.1.total_cmp(&b.1));
        let (faces, median, detect) = runs[runs.len() / 2];
        crate::print(&format!("{size:>10} {faces:>6} {median:>12.1} {:>12.1} {detect:>12.1}\n", runs[0].1))?;
    }
    if args.pipeline {
        mesh_stages(args, config, &photo)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// With `--pipeline` and the face mesh: the median of each of its stages apart, per frame (all
/// faces): BlazeFace, the mesh with its head pose, and the blendshapes for the built-in estimator.
fn mesh_stages(args: &BenchArgs, config: &Config, photo: &hrm_core::RgbImage) -> anyhow::Result<()> {
    use hrm_core::config::DetectorKind;
    use hrm_core::face::FaceDetector;
    let registry = crate::registry(config);
    let runtime = Runtime::load(config.clone(), &registry)?;
    let Some(mut mesher) = runtime.face_mesher()? else { return Ok(()) };
    let mut aus = runtime.au_detector()?;
    let mut yunet = match config.detector.kind {
        DetectorKind::Yunet => Some(hrm_core::runtime::face_detector_alone(config, &registry)?.0),
        DetectorKind::Blazeface => None,
    };
    let median = |run: &mut dyn FnMut() -> anyhow::Result<()>| -> anyhow::Result<f64> {
        for _ in 0..args.warmup.max(1) {
            run()?;
        }
        let mut times = (0..args.iterations.max(1))
            .map(|_| {
                let start = Instant::now();
                run().map(|_| start.elapsed().as_secs_f64() * 1e3)
            })
            .collect::<anyhow::Result<Vec<f64>>>()?;
        times.sort_by(f64::total_cmp);
        Ok(times[times.len() / 2])
    };
    crate::print(&format!(
        "stages, median ms per frame:\n{:>10} {:>6} {:>12} {:>12} {:>12}\n",
        "frame", "faces", "BlazeFace", "mesh + pose", "blendshapes"
    ))?;
    for size in &args.frame_sizes {
        let (w, h) = frame_size(size)?;
        let frame = hrm_core::resize::resize_bilinear(photo, w, h);
        let faces = match &mut yunet {
            Some(yunet) => yunet.detect(&frame.view())?,
            None => mesher.detect(&frame)?.0,
        };
        let blazeface = median(&mut || Ok(mesher.blazeface(&frame).map(drop)?))?;
        let detections = mesher.blazeface(&frame)?;
        let mesh = median(&mut || Ok(mesher.mesh_faces(&frame, &faces, &detections).map(drop)?))?;
        let meshes = mesher.mesh_faces(&frame, &faces, &detections)?;
        let landmarks: Vec<&[[f32; 3]]> =
            meshes.iter().flatten().filter(|m| m.is_present()).map(|m| m.landmarks.as_slice()).collect();
        let blendshapes = match aus.reads_landmarks() {
            true => median(&mut || {
                for points in &landmarks {
                    aus.detect_landmarks(points)?;
                }
                Ok(())
            })?,
            false => f64::NAN,
        };
        crate::print(&format!("{size:>10} {:>6} {blazeface:>12.1} {mesh:>12.1} {blendshapes:>12.1}\n", faces.len()))?;
    }
    Ok(())
}
