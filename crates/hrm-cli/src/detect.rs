//! `hrm detect`: AUs for every image, video, image sequence, camera or network stream given, as
//! JSON Lines, HRM's `predict.csv` or OpenFace's CSV.
//!
//! Inputs that cannot be read are reported and skipped; everything else is written as it is
//! computed, so a failure late in a long run (or a video cut short) loses nothing. The exit
//! status is non-zero if any input failed. Streams are run frame by frame through a
//! [`hrm_core::stream::Stream`]: each face gets a track id, smoothing and the atypicality score.

use anyhow::{bail, Context};
use hrm_core::blendshapes::BLENDSHAPE_NAMES;
use hrm_core::config::SmoothingKind;
use hrm_core::face::Face;
use hrm_core::geometry::Pose;
use hrm_core::manifest::ModelKind;
use hrm_core::pipeline::{FaceResult, Pipeline};
use hrm_core::{AuDetector, AuList, FaceAus, RgbImage, Runtime};
use image::ImageEncoder;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct DetectArgs {
    /// Model package folder (overrides `model` in the configuration). Without either, the
    /// MediaPipe estimator built into hrm.
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    choice: crate::BackendArgs,
    /// Every image is one face already aligned (OpenFace 2.2's 224x224 crops, the HRM demo's input);
    /// without it, faces are detected (YuNet) and aligned first.
    #[arg(long)]
    aligned: bool,
    /// Write each detected face's aligned crop here as PNG (`<image stem>_face<N>.png`).
    #[arg(long, value_name = "DIR")]
    save_aligned: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
    /// Add the face mesh's 478 landmarks (x, y, z in frame pixels) to each JSON row.
    #[arg(long)]
    landmarks: bool,
    /// Output file. JSON and OpenFace CSV go to stdout without it; CSV goes to predict.csv (and
    /// predict_prob.csv).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Streams: run every Nth frame only (1, 1+N, 1+2N, ... of those between --start and --end).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    every: u64,
    /// Streams: skip frames before this time (seconds, or [HH:]MM:SS[.frac]); frame numbers still
    /// count from the stream's start.
    #[arg(long, value_name = "TIME", value_parser = crate::video::parse_time)]
    start: Option<f64>,
    /// Streams: stop at this time (frames at or after it are not run).
    #[arg(long, value_name = "TIME", value_parser = crate::video::parse_time)]
    end: Option<f64>,
    /// HRM's atypicality package (`hrm convert` of the GRU checkpoint): every face track of a
    /// stream is scored on its last 15 frames (overrides `[atypicality] model`).
    #[arg(long, value_name = "PKG")]
    atypicality: Option<PathBuf>,
    /// Streams: frames run at once, each on a pipeline of its own (results stay in frame order);
    /// when every input is a stream, `threads = 0` (all cores) is shared out among them. Two on
    /// two cores: 11.5 frames a second where one frame at a time on both cores gives 7.3 (ResNet-50).
    /// 1 runs one frame at a time.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u64).range(1..=64))]
    jobs: u64,
    /// Smooth each track's AU probabilities over time (overrides `[stream] smoothing`).
    #[arg(long, value_enum)]
    smoothing: Option<SmoothingArg>,
    /// Image files, folders (searched recursively, in sorted order, for images and videos),
    /// videos, image sequence patterns (`frames/%06d.png`), cameras (`/dev/video0`) or stream URLs
    /// (`rtsp://...`).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Json,
    Csv,
    /// OpenFace 2.2's CSV columns where the quantity is the same, with a probability per AU.
    Openface,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SmoothingArg {
    Off,
    Exponential,
    OneEuro,
}

/// Where results go, and which columns besides the AUs.
enum Sink {
    Json { out: Box<dyn Write>, columns: Columns },
    Csv { presence: BufWriter<File>, probabilities: BufWriter<File>, columns: Columns },
    OpenFace { out: Box<dyn Write>, columns: Columns },
}

pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.choice.config()?;
    if args.aligned && args.save_aligned.is_some() {
        bail!("--save-aligned writes the crops made from detected faces; with --aligned the inputs are the crops");
    }
    if let (Some(start), Some(end)) = (args.start, args.end) {
        if end <= start {
            bail!("--end ({end} s) must come after --start ({start} s)");
        }
    }
    let started = Instant::now();
    // Each failure is one message that names its file.
    let mut failures: Vec<String> = Vec::new();
    let inputs = collect_inputs(&args.inputs, &mut failures);
    if inputs.files.is_empty() && failures.is_empty() {
        bail!(
            "no images found in {} ({} files without an image extension skipped; images are {}; videos are {})",
            args.inputs.iter().map(|p| path_text(p)).collect::<Vec<_>>().join(", "),
            inputs.not_images,
            IMAGE_EXTENSIONS.join(", "),
            crate::video::VIDEO_EXTENSIONS.join(", ")
        );
    }
    let files = inputs.files;
    let streams = files.iter().filter(|f| crate::video::is_stream(f)).count();
    if args.aligned && streams > 0 {
        bail!("--aligned takes aligned face images; videos and streams are whole frames: run them without --aligned");
    }

    if let Some(model) = &args.model {
        config.model = Some(model.clone());
    }
    if let Some(model) = &args.atypicality {
        config.atypicality.model = Some(model.clone());
    }
    if streams == files.len() {
        config.threads = crate::threads_per_job(config.threads, args.jobs);
    }
    if let Some(smoothing) = args.smoothing {
        config.stream.smoothing = match smoothing {
            SmoothingArg::Off => SmoothingKind::Off,
            SmoothingArg::Exponential => SmoothingKind::Exponential,
            SmoothingArg::OneEuro => SmoothingKind::OneEuro,
        };
    }
    // Aligned faces need no face detector: a [detector] model is not even loaded for them.
    let registry = crate::registry(&config);
    let runtime = match args.aligned {
        true => Runtime::load_without_face_detector(config, &registry)?,
        false => Runtime::load(config, &registry)?,
    };
    crate::report_fallbacks(&runtime);
    if streams == 0 && runtime.atypicality().is_some() {
        eprintln!("note: the atypicality score needs a stream of frames (a video); photographs get none");
    }
    let not_estimated = runtime.atypicality_inputs_not_estimated();
    if !not_estimated.is_empty() {
        eprintln!(
            "note: `{}` does not estimate {}, which the atypicality regressor reads as absent: its scores \
             approximate HRM's (convert the HRM authors' AU weights and pass --model for HRM's own)",
            runtime.package().manifest.name,
            not_estimated.join(", ")
        );
    }
    let config = runtime.config();
    let au_set = runtime.aus();
    let mut mode = open_mode(&runtime, &args)?;
    let total = files.len() + failures.len();
    let columns = Columns {
        frames: !args.aligned,
        pose: runtime.has_mesh() && !args.aligned,
        landmarks: args.landmarks,
        streams: streams > 0,
    };
    let mut sink = open_sink(args.format, args.output.as_deref(), au_set, columns)?;

    let images = files.len() - streams;
    let progress = if images > 4 { ProgressBar::new(images as u64) } else { ProgressBar::hidden() };
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, eta {eta}").expect("a valid template"),
    );
    let mut report = |message: String| progress.suspend(|| fail(&mut failures, message));
    let mut counts = Counts::default();
    // Aligned faces are run `batch_size` at a time, frames one at a time; decoded images wait for
    // their batch within a pixel budget (a batch of 1024 images near `max_image_pixels` each would
    // otherwise be held in memory at once).
    let batch_size = if args.aligned { config.batch_size } else { 1 };
    let batch_budget = config.max_batch_pixels();
    let mut decoded: Vec<Decoded> = Vec::new();
    let mut decoded_pixels = 0u64;
    // One set of tracks for the run, reset between streams: track ids are unique within a run,
    // so rows (and `hrm atypicality` on a CSV of several videos) never mix two videos' faces.
    let mut tracks = runtime.tracks();
    let selection = crate::video::Selection { every: args.every, start: args.start, end: args.end };
    let last_image = files.iter().rposition(|f| !crate::video::is_stream(f));
    for (index, path) in files.iter().enumerate() {
        if crate::video::is_stream(path) {
            tracks.reset();
            let frames = run_stream(&runtime, &mut tracks, path, &selection, &mut sink, &args, &mut report)?;
            counts.frames += frames.frames;
            counts.faces += frames.faces;
            continue;
        }
        match hrm_core::image::decode_file_within(path, config.max_image_pixels) {
            Ok(image) => {
                decoded_pixels += image.width as u64 * image.height as u64;
                decoded.push((index, path, image));
            }
            Err(e) => report(e.to_string()), // decoding errors name the file
        }
        progress.inc(1);
        if !(Some(index) == last_image || decoded.len() >= batch_size || decoded_pixels >= batch_budget) {
            continue;
        }
        counts.faces += mode.run(&decoded, &mut sink, au_set, args.save_aligned.as_deref(), &mut report)?;
        decoded.clear();
        decoded_pixels = 0;
    }
    progress.finish_and_clear();
    sink.finish()?;

    let mut summary = format!("hrm: {images} images");
    if streams > 0 {
        summary += &format!(", {streams} videos or streams ({} frames run)", counts.frames);
    }
    summary +=
        &format!(", {} faces, {} failed, in {:.1} s", counts.faces, failures.len(), started.elapsed().as_secs_f64());
    if inputs.not_images > 0 {
        summary += &format!("; {} files without an image extension skipped", inputs.not_images);
    }
    if inputs.special > 0 {
        summary += &format!("; {} special files skipped", inputs.special);
    }
    eprintln!("{summary}");
    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("{} of {total} inputs failed:", failures.len());
    for message in &failures {
        eprintln!("  {message}");
    }
    Ok(ExitCode::FAILURE)
}

/// What a run found.
#[derive(Default)]
struct Counts {
    /// Frames of streams run.
    frames: usize,
    faces: usize,
}

/// Runs every selected frame of one video or stream through `args.jobs` pipelines, follows its
/// faces with `tracks` in frame order, and writes a row per face, or per frame without a face, as
/// each frame is done. A stream that fails part-way keeps the rows of the frames before, and is
/// reported.
fn run_stream(
    runtime: &Runtime,
    tracks: &mut hrm_core::stream::Tracks,
    path: &Path,
    selection: &crate::video::Selection,
    sink: &mut Sink,
    args: &DetectArgs,
    report: &mut dyn FnMut(String),
) -> anyhow::Result<Counts> {
    let name = path_text(path);
    let mut decoder = match crate::video::Decoder::open(path, runtime.config().max_image_pixels) {
        Ok(decoder) => decoder,
        Err(e) => {
            report(format!("{name}: {e:#}"));
            return Ok(Counts::default());
        }
    };
    let progress = match crate::video::frame_count_hint(path) {
        Some(total) if std::io::stderr().is_terminal() => ProgressBar::new(total),
        _ if std::io::stderr().is_terminal() => ProgressBar::new_spinner(),
        _ => ProgressBar::hidden(),
    };
    let template = match progress.length() {
        Some(_) => "{bar:40} {pos}/{len} frames, {per_sec}, eta {eta} {msg}",
        None => "{spinner} {pos} frames, {per_sec} {msg}",
    };
    progress.set_style(ProgressStyle::with_template(template).expect("a valid template"));
    progress.set_message(name.clone());
    let au_set = runtime.aus();
    let mut counts = Counts::default();
    let workers = crate::parallel::frame_workers(runtime, args.jobs, args.save_aligned.is_some())?;
    let mut frames = selection.frames(&mut decoder);
    crate::parallel::in_order(workers, &mut frames, |frame, faces| {
        progress.set_position(frame.number);
        let time = frame.timestamp;
        let seconds = time.unwrap_or((frame.number - 1) as f64 / 30.0);
        let faces = match faces.and_then(|faces| tracks.track(faces, seconds)) {
            Ok(faces) => faces,
            Err(e) => {
                progress.suspend(|| report(format!("{name}: frame {}: {e}", frame.number)));
                return Ok(());
            }
        };
        counts.frames += 1;
        counts.faces += faces.len();
        let place = Place { frame: frame.number, timestamp: time };
        if faces.is_empty() {
            sink.write(au_set, &Row::of_stream(path, place, 0, None)).context("writing results")?;
        }
        for (n, result) in faces.iter().enumerate() {
            sink.write(au_set, &Row::of_stream(path, place, n, Some(result))).context("writing results")?;
            if let (Some(dir), Some(crop)) = (&args.save_aligned, &result.aligned) {
                let stem = path.file_stem().map(|s| path_text(Path::new(s))).unwrap_or_default();
                let out = dir.join(format!("{stem}_{:06}_face{n}.png", frame.number));
                if let Err(e) = save_png(&out, crop) {
                    progress.suspend(|| report(format!("{name}: writing {}: {e}", path_text(&out))));
                }
            }
        }
        Ok(())
    })?;
    if let Some(e) = frames.error.take() {
        progress.suspend(|| report(format!("{name}: {e:#} (after {} frames)", counts.frames)));
    }
    progress.finish_and_clear();
    Ok(counts)
}

/// Where a stream's row comes from.
#[derive(Clone, Copy)]
struct Place {
    /// 1 for the stream's first frame.
    frame: u64,
    /// Seconds, when the stream has timestamps.
    timestamp: Option<f64>,
}

/// Writes an aligned crop as PNG; a write that fails (a full disk) leaves no partial file.
fn save_png(path: &Path, crop: &RgbImage) -> anyhow::Result<()> {
    let mut png = Vec::new();
    let (w, h) = (crop.width as u32, crop.height as u32);
    image::codecs::png::PngEncoder::new(&mut png).write_image(&crop.data, w, h, image::ExtendedColorType::Rgb8)?;
    write_whole(path, &png, |file, bytes| {
        file.write_all(bytes)?;
        file.sync_all()
    })?;
    Ok(())
}

/// Creates `path` and writes `bytes` with `write`; on failure the file is removed, so nothing
/// half-written is left for a later step to mistake for a result.
fn write_whole(
    path: &Path,
    bytes: &[u8],
    write: impl FnOnce(&mut File, &[u8]) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut file = File::create(path)?;
    let result = write(&mut file, bytes);
    if result.is_err() {
        drop(file);
        let _ = std::fs::remove_file(path);
    }
    result
}

enum Mode {
    /// Every image is one aligned face.
    Aligned(Box<dyn AuDetector>),
    /// Images are frames: detect, align, then AUs.
    Frames(Box<Pipeline>),
}

/// What `detect` runs on each image, from the runtime; says when the AUs are estimates or the
/// model is a test fixture.
fn open_mode(runtime: &Runtime, args: &DetectArgs) -> anyhow::Result<Mode> {
    let manifest = &runtime.package().manifest;
    if manifest.source.fixture {
        eprintln!(
            "warning: model `{}` is a random-weight test fixture: its AU numbers mean nothing \
             (convert the HRM authors' weights with `hrm convert` for real AUs)",
            manifest.name
        );
    }
    if manifest.kind == ModelKind::MediapipeBlendshapes {
        if args.aligned || args.save_aligned.is_some() {
            bail!(
                "`{}` estimates AUs from MediaPipe's face mesh, which frames each face itself: run it on whole \
                 photographs (without --aligned or --save-aligned), or pass --model with a converted HRM package \
                 for aligned crops",
                manifest.name
            );
        }
        eprintln!(
            "note: AUs from `{}` are estimates derived from MediaPipe's blendshapes, not HRM model outputs \
             (convert the HRM authors' weights with `hrm convert` and pass --model for those)",
            manifest.name
        );
    }
    if args.aligned {
        return Ok(Mode::Aligned(runtime.au_detector()?));
    }
    let mut pipeline = runtime.pipeline()?;
    if let Some(dir) = &args.save_aligned {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        pipeline.keep_crops(true);
    }
    Ok(Mode::Frames(Box::new(pipeline)))
}

/// An image decoded and waiting for its batch: its position among the inputs, its path, its pixels.
type Decoded<'a> = (usize, &'a PathBuf, RgbImage);

impl Mode {
    /// Runs one batch of decoded images and writes a row per face (per frame without a face).
    /// An image that fails is reported and the others go on; returns the faces found.
    fn run(
        &mut self,
        batch: &[Decoded<'_>],
        sink: &mut Sink,
        au_set: &AuList,
        save_aligned: Option<&Path>,
        report: &mut dyn FnMut(String),
    ) -> anyhow::Result<usize> {
        let mut faces_found = 0;
        match self {
            Mode::Aligned(detector) => {
                let faces: Vec<&RgbImage> = batch.iter().map(|(_, _, image)| image).collect();
                match detector.detect_rgb(&faces) {
                    Ok(results) => {
                        for ((index, path, _), aus) in batch.iter().zip(&results) {
                            let row = Row {
                                path,
                                index: *index,
                                stream: None,
                                face: 0,
                                detection: None,
                                aus: Some(aus),
                                mesh: None,
                            };
                            sink.write(au_set, &row).context("writing results")?;
                        }
                        faces_found += results.len();
                    }
                    Err(e) => batch.iter().for_each(|(_, path, _)| report(format!("{}: {e}", path_text(path)))),
                }
            }
            Mode::Frames(pipeline) => {
                for (index, path, image) in batch {
                    let faces = match pipeline.process(&image.view()) {
                        Ok(faces) => faces,
                        Err(e) => {
                            report(format!("{}: {e}", path_text(path)));
                            continue;
                        }
                    };
                    faces_found += faces.len();
                    if faces.is_empty() {
                        let row =
                            Row { path, index: *index, stream: None, face: 0, detection: None, aus: None, mesh: None };
                        sink.write(au_set, &row).context("writing results")?;
                    }
                    for (n, result) in faces.iter().enumerate() {
                        let row = Row {
                            path,
                            index: *index,
                            stream: None,
                            face: n,
                            detection: Some(&result.face),
                            aus: Some(&result.aus),
                            mesh: Some(result),
                        };
                        sink.write(au_set, &row).context("writing results")?;
                        if let (Some(dir), Some(crop)) = (save_aligned, &result.aligned) {
                            let stem = path.file_stem().map(|s| path_text(Path::new(s))).unwrap_or_default();
                            let out = dir.join(format!("{stem}_face{n}.png"));
                            if let Err(e) = save_png(&out, crop) {
                                report(format!("{}: writing {}: {e}", path_text(path), path_text(&out)));
                            }
                        }
                    }
                }
            }
        }
        Ok(faces_found)
    }
}

/// One output row: a face with its AUs, or a frame in which no face was found.
struct Row<'a> {
    path: &'a Path,
    index: usize,
    /// The frame of a stream the row comes from (None for images).
    stream: Option<Place>,
    face: usize,
    /// Where the face was found (raw frames only).
    detection: Option<&'a Face>,
    /// None for a frame with no face.
    aus: Option<&'a FaceAus>,
    /// The face's mesh, blendshapes and pose (raw frames only).
    mesh: Option<&'a FaceResult>,
}

impl<'a> Row<'a> {
    /// Face `face` of a stream's frame, or the frame's one row when it has no face.
    fn of_stream(path: &'a Path, place: Place, face: usize, result: Option<&'a FaceResult>) -> Row<'a> {
        let (detection, aus) = (result.map(|r| &r.face), result.map(|r| &r.aus));
        Row { path, index: 0, stream: Some(place), face, detection, aus, mesh: result }
    }
}

/// What the rows hold besides the AUs.
#[derive(Clone, Copy)]
struct Columns {
    /// Where the face was found (raw frames).
    frames: bool,
    /// Head pose (the mesh ran).
    pose: bool,
    /// The mesh's 478 landmarks (JSON).
    landmarks: bool,
    /// Some inputs are streams: rows carry timestamps, track ids and atypicality.
    streams: bool,
}

/// File extensions a folder scan takes as images (what the decoders read), compared without case.
const IMAGE_EXTENSIONS: [&str; 10] = ["jpg", "jpeg", "jpe", "jfif", "png", "bmp", "dib", "tif", "tiff", "webp"];

/// The images to process, and what a folder scan passed over.
#[derive(Default)]
struct Inputs {
    files: Vec<PathBuf>,
    /// Files in scanned folders whose extension is neither an image's nor a video's (README.txt).
    not_images: usize,
    /// FIFOs, devices, sockets and broken links in scanned folders, skipped with a note.
    special: usize,
}

/// Files as given, and folders expanded recursively in sorted order. Each real folder is scanned
/// once, whatever links lead to it (two links to `.` would otherwise loop forever); in folders,
/// only regular files with an image or video extension are taken. A file named on the command line is
/// taken whatever its extension, and is an error if it is not a regular file.
fn collect_inputs(inputs: &[PathBuf], failures: &mut Vec<String>) -> Inputs {
    let mut found = Inputs::default();
    let mut scanned = HashSet::new();
    for input in inputs {
        // Cameras, URLs and image sequence patterns go to ffmpeg as they are.
        let text = input.to_string_lossy();
        let pattern = crate::video::is_pattern(&text) && std::fs::metadata(input).is_err();
        if crate::video::is_url(&text) || crate::video::is_camera(&text) || pattern {
            found.files.push(input.clone());
            continue;
        }
        match std::fs::metadata(input) {
            Ok(meta) if meta.is_dir() => walk(input, &meta, &mut found, &mut scanned, failures),
            Ok(meta) if meta.is_file() => found.files.push(input.clone()),
            Ok(meta) => fail(
                failures,
                format!(
                    "{}: {}, not an image file",
                    path_text(input),
                    hrm_core::files::describe_file_type(meta.file_type())
                ),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                fail(failures, format!("{}: no such file or folder", path_text(input)))
            }
            Err(e) => fail(failures, format!("{}: {e}", path_text(input))),
        }
    }
    found
}

fn fail(failures: &mut Vec<String>, message: String) {
    eprintln!("error: {message}");
    failures.push(message);
}

/// A folder's identity, so that links to a folder already scanned are not followed again.
fn folder_id(meta: &std::fs::Metadata) -> (u64, u64) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        (meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        (0, 0)
    }
}

fn walk(
    dir: &Path,
    meta: &std::fs::Metadata,
    found: &mut Inputs,
    scanned: &mut HashSet<(u64, u64)>,
    failures: &mut Vec<String>,
) {
    if !scanned.insert(folder_id(meta)) {
        return;
    }
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            fail(failures, format!("{}: {e}", path_text(dir)));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => walk(&path, &meta, found, scanned, failures),
            Ok(meta) if meta.is_file() => {
                let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
                let known = |e: &String| IMAGE_EXTENSIONS.contains(&e.as_str()) || crate::video::is_stream(&path);
                if extension.is_some_and(|e| known(&e)) {
                    found.files.push(path);
                } else {
                    found.not_images += 1;
                }
            }
            Ok(meta) => {
                found.special += 1;
                let kind = hrm_core::files::describe_file_type(meta.file_type());
                eprintln!("note: skipping {}: {kind}", path_text(&path));
            }
            Err(e) => {
                found.special += 1;
                eprintln!("note: skipping {}: {e}", path_text(&path));
            }
        }
    }
}

/// A path as text that keeps every byte: a backslash is written as `\\` and each byte that is
/// not part of valid UTF-8 as `\xNN`; everything else as it is. Two names that differ in one byte
/// stay different (a lossy conversion prints both `caf\xe9.jpg` and `caf\xe8.jpg` as
/// `caf\u{FFFD}.jpg`), a UTF-8 name that spells `caf\xe9.jpg` stays apart from the byte 0xE9, and
/// the original bytes can be recovered.
pub fn path_text(path: &Path) -> String {
    #[cfg(unix)]
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    #[cfg(not(unix))]
    let lossy = path.to_string_lossy();
    #[cfg(not(unix))]
    let bytes = lossy.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        out.push_str(&chunk.valid().replace('\\', "\\\\"));
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

fn open_sink(format: Format, output: Option<&Path>, au_set: &AuList, columns: Columns) -> anyhow::Result<Sink> {
    let create = |path: &Path| File::create(path).with_context(|| format!("creating {}", path.display()));
    let stdout_or_file = |output: Option<&Path>| -> anyhow::Result<Box<dyn Write>> {
        Ok(match output {
            Some(path) => Box::new(BufWriter::new(create(path)?)),
            None => Box::new(std::io::stdout().lock()),
        })
    };
    let labels: Vec<String> = au_set.aus().iter().map(|au| au.label.to_string()).collect();
    Ok(match format {
        Format::Json => Sink::Json { out: stdout_or_file(output)?, columns },
        Format::Openface => {
            let mut out = stdout_or_file(output)?;
            writeln!(out, "{}", openface_header(au_set, columns))?;
            Sink::OpenFace { out, columns }
        }
        Format::Csv => {
            let presence_path = output.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("predict.csv"));
            let stem = presence_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let probabilities_path = presence_path.with_file_name(format!("{stem}_prob.csv"));
            let mut presence = BufWriter::new(create(&presence_path)?);
            let mut probabilities = BufWriter::new(create(&probabilities_path)?);
            let stream = if columns.streams { STREAM_COLUMNS } else { "" };
            let detection = if columns.frames { DETECTION_COLUMNS } else { "" };
            let pose = if columns.pose { POSE_COLUMNS } else { "" };
            let atypicality = if columns.streams { ",atypicality" } else { "" };
            writeln!(presence, "frame,{stream}{detection}{pose}{}{atypicality}", labels.join(","))?;
            writeln!(probabilities, "file,frame,{stream}{detection}{pose}{}{atypicality}", labels.join(","))?;
            eprintln!("writing {} and {}", presence_path.display(), probabilities_path.display());
            Sink::Csv { presence, probabilities, columns }
        }
    })
}

/// The columns streams add after the frame number.
const STREAM_COLUMNS: &str = "timestamp,track,";

/// The columns raw frames add before the AUs (keypoints in YuNet's order; "right" is the subject's).
const DETECTION_COLUMNS: &str = "face,success,score,x,y,w,h,right_eye_x,right_eye_y,left_eye_x,left_eye_y,\
nose_x,nose_y,right_mouth_x,right_mouth_y,left_mouth_x,left_mouth_y,";

/// Head pose in degrees (empty where the mesh found no face).
const POSE_COLUMNS: &str = "pitch,yaw,roll,";

impl Sink {
    fn write(&mut self, au_set: &AuList, row: &Row) -> std::io::Result<()> {
        match self {
            Sink::Json { out, columns } => {
                writeln!(out, "{}", json_line(au_set, row, *columns))?;
                out.flush()
            }
            Sink::Csv { presence, probabilities, columns } => {
                let (presence_row, probability_row) = csv_rows(au_set, row, *columns);
                writeln!(presence, "{presence_row}")?;
                writeln!(probabilities, "{probability_row}")?;
                presence.flush()?;
                probabilities.flush()
            }
            Sink::OpenFace { out, columns } => {
                writeln!(out, "{}", openface_row(au_set, row, *columns))?;
                out.flush()
            }
        }
    }

    fn finish(self) -> std::io::Result<()> {
        match self {
            Sink::Json { mut out, .. } | Sink::OpenFace { mut out, .. } => out.flush(),
            Sink::Csv { mut presence, mut probabilities, .. } => {
                presence.flush()?;
                probabilities.flush()
            }
        }
    }
}

/// Whether a row has AUs to report: a face was found and its AUs could be estimated.
fn succeeded(row: &Row) -> bool {
    row.aus.is_some_and(FaceAus::is_available)
}

/// The head pose of a row, in degrees, when the mesh solved it.
fn pose_of(row: &Row) -> Option<Pose> {
    row.mesh.and_then(|m| m.pose.as_ref()).map(Pose::from_matrix)
}

/// A stream row's track id (None for a frame without a face).
fn track_of(row: &Row) -> Option<u64> {
    row.mesh.and_then(|m| m.track_id)
}

/// A stream row's atypicality score, once its track has a full window.
fn atypicality_of(row: &Row) -> Option<f32> {
    row.mesh.and_then(|m| m.atypicality)
}

/// One JSON line: the file and face (for streams: the frame, its time in seconds, the face's
/// track and atypicality), where the face was found (frames), its AUs by id (`null` where not
/// estimated), and what the mesh gave (pose, blendshapes, landmarks).
fn json_line(au_set: &AuList, row: &Row, columns: Columns) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    object.insert("file".into(), path_text(row.path).into());
    if let Some(place) = row.stream {
        object.insert("frame".into(), place.frame.into());
        object.insert("timestamp".into(), place.timestamp.map_or(serde_json::Value::Null, seconds));
        object.insert("track".into(), track_of(row).into());
        object.insert("atypicality".into(), atypicality_of(row).map_or(serde_json::Value::Null, shortest));
    }
    object.insert("face".into(), row.face.into());
    if columns.frames {
        object.insert("success".into(), succeeded(row).into());
    }
    if let Some(face) = row.detection {
        object.insert("score".into(), shortest(face.score));
        object.insert("bbox".into(), face.bbox.iter().map(|&v| shortest(v)).collect());
        let keypoints: Vec<serde_json::Value> =
            face.keypoints.iter().map(|p| p.iter().map(|&v| shortest(v)).collect()).collect();
        object.insert("keypoints".into(), keypoints.into());
    }
    if let Some(score) = row.mesh.and_then(|m| m.mesh_score) {
        object.insert("mesh_score".into(), shortest(score));
    }
    if columns.pose && row.detection.is_some() {
        let pose = pose_of(row).map_or(
            serde_json::Value::Null,
            |p| serde_json::json!({"pitch": shortest(p.pitch), "yaw": shortest(p.yaw), "roll": shortest(p.roll)}),
        );
        object.insert("pose".into(), pose);
    }
    if let Some(aus) = row.aus {
        let ids = au_set.aus().iter().map(|au| au.id.to_string());
        let p: serde_json::Map<_, _> = ids.clone().zip(aus.probabilities.iter().map(|&p| shortest(p))).collect();
        let present: serde_json::Map<_, _> = ids
            .zip(aus.probabilities.iter().zip(&aus.present))
            .map(|(id, (p, &present))| (id, if p.is_nan() { serde_json::Value::Null } else { present.into() }))
            .collect();
        object.insert("aus".into(), p.into());
        object.insert("present".into(), present.into());
    }
    if let Some(blendshapes) = row.mesh.and_then(|m| m.blendshapes.as_ref()) {
        let named: serde_json::Map<_, _> =
            BLENDSHAPE_NAMES.iter().zip(blendshapes).map(|(name, &v)| (name.to_string(), shortest(v))).collect();
        object.insert("blendshapes".into(), named.into());
    }
    if columns.landmarks {
        if let Some(points) = row.mesh.and_then(|m| m.landmarks.as_ref()) {
            let points: Vec<serde_json::Value> =
                points.iter().map(|p| p.iter().map(|&v| shortest(v)).collect()).collect();
            object.insert("landmarks".into(), points.into());
        }
    }
    serde_json::Value::Object(object)
}

/// The frame number of a row: a stream's own, else the one in the file name (the HRM demo's
/// crops), else the image's position among the inputs.
fn frame_of(row: &Row) -> u64 {
    row.stream.map(|p| p.frame).or_else(|| frame_number(row.path)).unwrap_or(row.index as u64 + 1)
}

/// A number for a CSV cell; empty when absent.
fn cell<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// Presence flags (`1`, `0`, empty where not estimated) and probabilities of a row's AUs; all
/// empty for a frame without a face.
fn au_cells(au_set: &AuList, row: &Row) -> (Vec<&'static str>, Vec<String>) {
    match row.aus {
        Some(aus) => (
            (aus.probabilities.iter().zip(&aus.present))
                .map(|(p, &present)| match (p.is_nan(), present) {
                    (true, _) => "",
                    (false, true) => "1",
                    (false, false) => "0",
                })
                .collect(),
            aus.probabilities.iter().map(|p| if p.is_nan() { String::new() } else { p.to_string() }).collect(),
        ),
        None => (vec![""; au_set.len()], vec![String::new(); au_set.len()]),
    }
}

/// One row of `predict.csv` (frame, 0/1 per AU) and of `predict_prob.csv` (file, frame,
/// probability per AU); for frames, the detection (and pose) columns come after the frame number,
/// for streams the timestamp and track before them and the atypicality score last. An AU that
/// was not estimated is an empty cell.
fn csv_rows(au_set: &AuList, row: &Row, columns: Columns) -> (String, String) {
    let frame = frame_of(row);
    let mut before = String::new();
    if columns.streams {
        before = format!("{},{},", cell(row.stream.and_then(|p| p.timestamp)), cell(track_of(row)));
    }
    if columns.frames {
        let success = u8::from(succeeded(row));
        let numbers: Vec<String> = match row.detection {
            Some(f) => std::iter::once(f.score)
                .chain(f.bbox)
                .chain(f.keypoints.iter().flatten().copied())
                .map(|v| v.to_string())
                .collect(),
            None => vec![String::new(); 15],
        };
        before += &format!("{},{success},{},", row.face, numbers.join(","));
    }
    if columns.pose {
        before += &match pose_of(row) {
            Some(p) => format!("{},{},{},", p.pitch, p.yaw, p.roll),
            None => ",,,".to_string(),
        };
    }
    let (flags, values) = au_cells(au_set, row);
    let after = if columns.streams { format!(",{}", cell(atypicality_of(row))) } else { String::new() };
    let file = csv_field(&path_text(row.path));
    (
        format!("{frame},{before}{}{after}", flags.join(",")),
        format!("{file},{frame},{before}{}{after}", values.join(",")),
    )
}

/// OpenFace 2.2's name for an AU (`AU01`, `AU12`; HRM's action descriptors keep theirs: `AD19`).
fn openface_name(id: &str) -> String {
    let digits = id.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let prefix = &id[..id.len() - digits.len()];
    match digits.parse::<u32>() {
        Ok(n) => format!("{prefix}{n:02}"),
        Err(_) => id.to_string(),
    }
}

/// OpenFace 2.2's columns where hrm has the same quantity (`frame, face_id, timestamp,
/// confidence, success`, head rotation, `AU01_c` presence), then what OpenFace lacks: each AU's
/// probability (`AU01_p`), the atypicality score and the input file.
fn openface_header(au_set: &AuList, columns: Columns) -> String {
    let mut names: Vec<String> = ["frame", "face_id", "timestamp", "confidence", "success"].map(String::from).into();
    if columns.pose {
        names.extend(["pose_Rx", "pose_Ry", "pose_Rz"].map(String::from));
    }
    names.extend(au_set.aus().iter().map(|au| format!("{}_c", openface_name(au.id))));
    names.extend(au_set.aus().iter().map(|au| format!("{}_p", openface_name(au.id))));
    names.extend(["atypicality", "file"].map(String::from));
    names.join(",")
}

/// One row of `--format openface`. `face_id` is the track id in streams, the face's index in a
/// photograph; `timestamp` is 0 for photographs; the pose is in radians, as OpenFace's, with
/// MediaPipe's axes (pitch about x, yaw about y, roll about z).
fn openface_row(au_set: &AuList, row: &Row, columns: Columns) -> String {
    let face_id = track_of(row).unwrap_or(row.face as u64);
    let timestamp = row.stream.map_or(Some(0.0), |p| p.timestamp);
    let confidence = row.detection.map_or(if row.aus.is_some() { 1.0 } else { 0.0 }, |f| f.score);
    let mut cells = vec![
        frame_of(row).to_string(),
        face_id.to_string(),
        cell(timestamp),
        confidence.to_string(),
        u8::from(succeeded(row)).to_string(),
    ];
    if columns.pose {
        let radians = pose_of(row).map(|p| [p.pitch, p.yaw, p.roll].map(f32::to_radians));
        cells.extend((0..3).map(|i| cell(radians.map(|r| r[i]))));
    }
    let (flags, values) = au_cells(au_set, row);
    cells.extend(flags.iter().map(|f| f.to_string()));
    cells.extend(values);
    cells.push(cell(atypicality_of(row)));
    cells.push(csv_field(&path_text(row.path)));
    cells.join(",")
}

/// Seconds as JSON: the shortest decimal that reads back as the same f64.
fn seconds(value: f64) -> serde_json::Value {
    serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, Into::into)
}

/// An f32 as its shortest decimal form (`0.1234`, not `0.12340000271797180`).
fn shortest(value: f32) -> serde_json::Value {
    value
        .to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(serde_json::Value::Null, Into::into)
}

/// The frame number in a file name, as the HRM demo reads OpenFace's aligned crops
/// (`frame_det_00_000123.bmp` is frame 123): the last run of digits in the file stem.
fn frame_number(path: &Path) -> Option<u64> {
    let stem = path.file_stem()?.to_str()?;
    let end = stem.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = stem[..end].rfind(|c: char| !c.is_ascii_digit()).map_or(0, |i| i + 1);
    stem[start..end].parse().ok()
}

/// A CSV cell holding text from outside (a file name). Text a spreadsheet would run as a formula
/// (starting with `=`, `+`, `-`, `@`, a tab or a carriage return: `=cmd|calc!A1.jpg`) gets a
/// leading `'`, as OWASP advises; cells with a comma, quote or line break are quoted.
fn csv_field(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{text}") } else { text.to_string() };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_that_spreadsheets_would_run_are_neutralised() {
        assert_eq!(csv_field("=cmd|calc!A1.jpg"), "'=cmd|calc!A1.jpg");
        assert_eq!(csv_field("@SUM(A1).png"), "'@SUM(A1).png");
        assert_eq!(csv_field("-2+3.png"), "'-2+3.png");
        assert_eq!(csv_field("+a,b.png"), "\"'+a,b.png\"");
        assert_eq!(csv_field("photos/a \"b\".jpg"), "\"photos/a \"\"b\"\".jpg\"");
        assert_eq!(csv_field("photos/face.jpg"), "photos/face.jpg");
    }

    #[cfg(unix)]
    #[test]
    fn names_that_are_not_utf8_stay_distinct_and_recoverable() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let latin1 = path_text(Path::new(OsStr::from_bytes(b"caf\xe9.jpg")));
        let other = path_text(Path::new(OsStr::from_bytes(b"caf\xe8.jpg")));
        assert_eq!(latin1, "caf\\xe9.jpg");
        assert_eq!(other, "caf\\xe8.jpg");
        assert_eq!(path_text(Path::new(OsStr::from_bytes(b"a\\b\xff"))), "a\\\\b\\xff");
        assert_eq!(path_text(Path::new("café.jpg")), "café.jpg");
        // A UTF-8 name that spells an escape is escaped itself, so it stays apart from the byte.
        assert_eq!(path_text(Path::new("caf\\xe9.jpg")), "caf\\\\xe9.jpg");
    }

    #[test]
    fn a_failed_write_leaves_no_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("face0.png");
        let err = write_whole(&target, b"0123456789", |file, bytes| {
            std::io::Write::write_all(file, &bytes[..4])?;
            Err(std::io::Error::new(std::io::ErrorKind::StorageFull, "No space left on device"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("No space left"), "{err}");
        assert!(!target.exists(), "the partial file was left behind");
        write_whole(&target, b"0123456789", std::io::Write::write_all).unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"0123456789");
    }

    #[test]
    fn frame_numbers_come_from_the_last_digits() {
        assert_eq!(frame_number(Path::new("out/frame_det_00_000123.bmp")), Some(123));
        assert_eq!(frame_number(Path::new("42.png")), Some(42));
        assert_eq!(frame_number(Path::new("face.png")), None);
    }
}
