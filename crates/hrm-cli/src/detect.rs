//! `hrm detect`: AUs for every image given, as JSON Lines or HRM's `predict.csv`.
//!
//! Inputs that cannot be read are reported and skipped; everything else is written as it is
//! computed, so a failure late in a long run loses nothing. The exit status is non-zero if any
//! input failed.

use anyhow::{bail, Context};
use hrm_core::blendshapes::BLENDSHAPE_NAMES;
use hrm_core::face::Face;
use hrm_core::geometry::Pose;
use hrm_core::manifest::ModelKind;
use hrm_core::pipeline::{FaceResult, Pipeline};
use hrm_core::{AuDetector, AuList, FaceAus, RgbImage, Runtime};
use image::ImageEncoder;
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
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
    /// Output file. JSON goes to stdout without it; CSV goes to predict.csv (and predict_prob.csv).
    #[arg(long)]
    output: Option<PathBuf>,
    /// Image files or folders (searched recursively, in sorted order).
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Json,
    Csv,
}

/// Where results go, and which columns besides the AUs.
enum Sink {
    Json { out: Box<dyn Write>, columns: Columns },
    Csv { presence: BufWriter<File>, probabilities: BufWriter<File>, columns: Columns },
}

pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    let mut config = args.choice.config()?;
    if args.aligned && args.save_aligned.is_some() {
        bail!("--save-aligned writes the crops made from detected faces; with --aligned the inputs are the crops");
    }
    let started = Instant::now();
    // Each failure is one message that names its file.
    let mut failures: Vec<String> = Vec::new();
    let inputs = collect_inputs(&args.inputs, &mut failures);
    if inputs.files.is_empty() && failures.is_empty() {
        bail!(
            "no images found in {} ({} files without an image extension skipped; images are {})",
            args.inputs.iter().map(|p| path_text(p)).collect::<Vec<_>>().join(", "),
            inputs.not_images,
            IMAGE_EXTENSIONS.join(", ")
        );
    }
    let files = inputs.files;

    if let Some(model) = &args.model {
        config.model = Some(model.clone());
    }
    // Aligned faces need no face detector: a [detector] model is not even loaded for them.
    let registry = crate::registry(&config);
    let runtime = match args.aligned {
        true => Runtime::load_without_face_detector(config, &registry)?,
        false => Runtime::load(config, &registry)?,
    };
    crate::report_fallbacks(&runtime);
    let config = runtime.config();
    let au_set = runtime.aus();
    let mut mode = open_mode(&runtime, &args)?;
    let total = files.len() + failures.len();
    let columns =
        Columns { frames: !args.aligned, pose: runtime.has_mesh() && !args.aligned, landmarks: args.landmarks };
    let mut sink = open_sink(args.format, args.output.as_deref(), au_set, columns)?;

    let progress = if files.len() > 4 { ProgressBar::new(files.len() as u64) } else { ProgressBar::hidden() };
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, eta {eta}").expect("a valid template"),
    );
    let mut report = |message: String| progress.suspend(|| fail(&mut failures, message));
    let mut faces_found = 0usize;
    // Aligned faces are run `batch_size` at a time, frames one at a time; decoded images wait for
    // their batch within a pixel budget (a batch of 1024 images near `max_image_pixels` each would
    // otherwise be held in memory at once).
    let batch_size = if args.aligned { config.batch_size } else { 1 };
    let batch_budget = config.max_batch_pixels();
    let mut decoded: Vec<Decoded> = Vec::new();
    let mut decoded_pixels = 0u64;
    for (index, path) in files.iter().enumerate() {
        match hrm_core::image::decode_file_within(path, config.max_image_pixels) {
            Ok(image) => {
                decoded_pixels += image.width as u64 * image.height as u64;
                decoded.push((index, path, image));
            }
            Err(e) => report(e.to_string()), // decoding errors name the file
        }
        let last = index + 1 == files.len();
        if !(last || decoded.len() >= batch_size || decoded_pixels >= batch_budget) {
            continue;
        }
        faces_found += mode.run(&decoded, &mut sink, au_set, args.save_aligned.as_deref(), &mut report)?;
        decoded.clear();
        decoded_pixels = 0;
        progress.set_position(index as u64 + 1);
    }
    progress.finish_and_clear();
    sink.finish()?;

    let mut summary = format!(
        "hrm: {} images, {faces_found} faces, {} failed, in {:.1} s",
        files.len(),
        failures.len(),
        started.elapsed().as_secs_f64()
    );
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
                            let row = Row { path, index: *index, face: 0, detection: None, aus: Some(aus), mesh: None };
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
                        let row = Row { path, index: *index, face: 0, detection: None, aus: None, mesh: None };
                        sink.write(au_set, &row).context("writing results")?;
                    }
                    for (n, result) in faces.iter().enumerate() {
                        let row = Row {
                            path,
                            index: *index,
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
    face: usize,
    /// Where the face was found (raw frames only).
    detection: Option<&'a Face>,
    /// None for a frame with no face.
    aus: Option<&'a FaceAus>,
    /// The face's mesh, blendshapes and pose (raw frames only).
    mesh: Option<&'a FaceResult>,
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
}

/// File extensions a folder scan takes as images (what the decoders read), compared without case.
const IMAGE_EXTENSIONS: [&str; 10] = ["jpg", "jpeg", "jpe", "jfif", "png", "bmp", "dib", "tif", "tiff", "webp"];

/// The images to process, and what a folder scan passed over.
#[derive(Default)]
struct Inputs {
    files: Vec<PathBuf>,
    /// Files in scanned folders whose extension is not an image format (README.txt, .DS_Store).
    not_images: usize,
    /// FIFOs, devices, sockets and broken links in scanned folders, skipped with a note.
    special: usize,
}

/// Files as given, and folders expanded recursively in sorted order. Each real folder is scanned
/// once, whatever links lead to it (two links to `.` would otherwise loop forever); in folders,
/// only regular files with an image extension are taken. A file named on the command line is
/// taken whatever its extension, and is an error if it is not a regular file.
fn collect_inputs(inputs: &[PathBuf], failures: &mut Vec<String>) -> Inputs {
    let mut found = Inputs::default();
    let mut scanned = HashSet::new();
    for input in inputs {
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
                if extension.is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.as_str())) {
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
    Ok(match format {
        Format::Json => {
            let out: Box<dyn Write> = match output {
                Some(path) => Box::new(BufWriter::new(create(path)?)),
                None => Box::new(std::io::stdout().lock()),
            };
            Sink::Json { out, columns }
        }
        Format::Csv => {
            let presence_path = output.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("predict.csv"));
            let stem = presence_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let probabilities_path = presence_path.with_file_name(format!("{stem}_prob.csv"));
            let mut presence = BufWriter::new(create(&presence_path)?);
            let mut probabilities = BufWriter::new(create(&probabilities_path)?);
            let labels: Vec<String> = au_set.aus().iter().map(|au| au.label.to_string()).collect();
            let detection = if columns.frames { DETECTION_COLUMNS } else { "" };
            let pose = if columns.pose { POSE_COLUMNS } else { "" };
            writeln!(presence, "frame,{detection}{pose}{}", labels.join(","))?;
            writeln!(probabilities, "file,frame,{detection}{pose}{}", labels.join(","))?;
            eprintln!("writing {} and {}", presence_path.display(), probabilities_path.display());
            Sink::Csv { presence, probabilities, columns }
        }
    })
}

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
        }
    }

    fn finish(self) -> std::io::Result<()> {
        match self {
            Sink::Json { mut out, .. } => out.flush(),
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

/// One JSON line: the file and face, where the face was found (frames), its AUs by id (`null`
/// where not estimated), and what the mesh gave (pose, blendshapes, landmarks).
fn json_line(au_set: &AuList, row: &Row, columns: Columns) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    object.insert("file".into(), path_text(row.path).into());
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

/// One row of `predict.csv` (frame, 0/1 per AU) and of `predict_prob.csv` (file, frame,
/// probability per AU); for frames, the detection (and pose) columns come after the frame number.
/// An AU that was not estimated is an empty cell.
fn csv_rows(au_set: &AuList, row: &Row, columns: Columns) -> (String, String) {
    let frame = frame_number(row.path).unwrap_or(row.index as u64 + 1);
    let mut detection = String::new();
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
        detection = format!("{},{success},{},", row.face, numbers.join(","));
    }
    if columns.pose {
        detection += &match pose_of(row) {
            Some(p) => format!("{},{},{},", p.pitch, p.yaw, p.roll),
            None => ",,,".to_string(),
        };
    }
    let (flags, values): (Vec<&str>, Vec<String>) = match row.aus {
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
    };
    let file = csv_field(&path_text(row.path));
    (format!("{frame},{detection}{}", flags.join(",")), format!("{file},{frame},{detection}{}", values.join(",")))
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
