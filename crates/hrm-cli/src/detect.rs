//! `hrm detect`: AUs for every image given, as JSON Lines or HRM's `predict.csv`.
//!
//! Inputs that cannot be read are reported and skipped; everything else is written as it is
//! computed, so a failure late in a long run loses nothing. The exit status is non-zero if any
//! input failed.

use anyhow::{bail, Context};
use hrm_core::{AuSet, Config, FaceAus, ModelDetector, RgbImage};
use indicatif::{ProgressBar, ProgressStyle};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct DetectArgs {
    /// Model package folder (overrides `model` in the configuration).
    #[arg(long)]
    model: Option<PathBuf>,
    /// TOML configuration (backend, threads, batch size, thresholds).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Every image is one face already aligned (OpenFace 2.2's 224x224 crops, the HRM demo's input).
    #[arg(long)]
    aligned: bool,
    #[arg(long, value_enum, default_value = "json")]
    format: Format,
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

/// Where results go.
enum Sink {
    Json(Box<dyn Write>),
    Csv { presence: BufWriter<File>, probabilities: BufWriter<File> },
}

pub fn run(args: DetectArgs) -> anyhow::Result<ExitCode> {
    if !args.aligned {
        bail!("face detection on raw frames is not available yet: pass --aligned with pre-aligned face crops");
    }
    let config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    let mut detector = ModelDetector::open(&config, args.model.as_deref(), &crate::registry())?;
    let au_set = detector.package().manifest.au_set;

    let mut failures: Vec<(String, String)> = Vec::new();
    let files = collect_inputs(&args.inputs, &mut failures);
    let total = files.len() + failures.len();
    let mut sink = open_sink(args.format, args.output.as_deref(), au_set)?;

    let progress = if files.len() > 4 { ProgressBar::new(files.len() as u64) } else { ProgressBar::hidden() };
    progress.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} images, {per_sec}, eta {eta}").expect("a valid template"),
    );
    let batch_size = config.batch_size;
    for (chunk_index, chunk) in files.chunks(batch_size).enumerate() {
        let mut decoded: Vec<(usize, &PathBuf, RgbImage)> = Vec::new();
        for (i, path) in chunk.iter().enumerate() {
            match hrm_core::image::decode_file(path) {
                Ok(image) => decoded.push((chunk_index * batch_size + i, path, image)),
                Err(e) => {
                    progress.suspend(|| eprintln!("error: {e}"));
                    failures.push((path.display().to_string(), e.to_string()));
                }
            }
        }
        let faces: Vec<&RgbImage> = decoded.iter().map(|(_, _, image)| image).collect();
        match detector.detect_rgb(&faces) {
            Ok(results) => {
                for ((index, path, _), aus) in decoded.iter().zip(&results) {
                    write_face(&mut sink, au_set, path, *index, aus).with_context(|| "writing results")?;
                }
            }
            Err(e) => {
                for (_, path, _) in &decoded {
                    failures.push((path.display().to_string(), e.to_string()));
                }
                progress.suspend(|| eprintln!("error: {e}"));
            }
        }
        progress.inc(chunk.len() as u64);
    }
    progress.finish_and_clear();
    finish(sink)?;

    if failures.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("{} of {total} inputs failed:", failures.len());
    for (path, why) in &failures {
        eprintln!("  {path}: {why}");
    }
    Ok(ExitCode::FAILURE)
}

/// Files as given, and folders expanded recursively in sorted order.
fn collect_inputs(inputs: &[PathBuf], failures: &mut Vec<(String, String)>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for input in inputs {
        if input.is_dir() {
            walk(input, &mut files, failures);
        } else if input.exists() {
            files.push(input.clone());
        } else {
            let why = "no such file or folder".to_string();
            eprintln!("error: {}: {why}", input.display());
            failures.push((input.display().to_string(), why));
        }
    }
    files
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>, failures: &mut Vec<(String, String)>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            eprintln!("error: {}: {e}", dir.display());
            failures.push((dir.display().to_string(), e.to_string()));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(&path, files, failures);
        } else {
            files.push(path);
        }
    }
}

fn open_sink(format: Format, output: Option<&Path>, au_set: AuSet) -> anyhow::Result<Sink> {
    let create = |path: &Path| File::create(path).with_context(|| format!("creating {}", path.display()));
    Ok(match format {
        Format::Json => match output {
            Some(path) => Sink::Json(Box::new(BufWriter::new(create(path)?))),
            None => Sink::Json(Box::new(std::io::stdout().lock())),
        },
        Format::Csv => {
            let presence_path = output.map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("predict.csv"));
            let stem = presence_path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            let probabilities_path = presence_path.with_file_name(format!("{stem}_prob.csv"));
            let mut presence = BufWriter::new(create(&presence_path)?);
            let mut probabilities = BufWriter::new(create(&probabilities_path)?);
            let labels: Vec<String> = au_set.aus().iter().map(|au| au.label.to_string()).collect();
            writeln!(presence, "frame,{}", labels.join(","))?;
            writeln!(probabilities, "file,frame,{}", labels.join(","))?;
            eprintln!("writing {} and {}", presence_path.display(), probabilities_path.display());
            Sink::Csv { presence, probabilities }
        }
    })
}

fn write_face(sink: &mut Sink, au_set: AuSet, path: &Path, index: usize, aus: &FaceAus) -> std::io::Result<()> {
    match sink {
        Sink::Json(out) => {
            let ids = au_set.aus().iter().map(|au| au.id.to_string());
            let probabilities: serde_json::Map<_, _> =
                ids.clone().zip(aus.probabilities.iter().map(|&p| shortest(p))).collect();
            let present: serde_json::Map<_, _> = ids.zip(aus.present.iter().map(|&p| p.into())).collect();
            let row = serde_json::json!({
                "file": path.display().to_string(),
                "face": 0,
                "aus": probabilities,
                "present": present,
            });
            writeln!(out, "{row}")?;
            out.flush()
        }
        Sink::Csv { presence, probabilities } => {
            let frame = frame_number(path).unwrap_or(index as u64 + 1);
            let flags: Vec<&str> = aus.present.iter().map(|&p| if p { "1" } else { "0" }).collect();
            writeln!(presence, "{frame},{}", flags.join(","))?;
            let values: Vec<String> = aus.probabilities.iter().map(|p| p.to_string()).collect();
            writeln!(probabilities, "{},{frame},{}", csv_field(&path.display().to_string()), values.join(","))?;
            presence.flush()?;
            probabilities.flush()
        }
    }
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

fn finish(sink: Sink) -> std::io::Result<()> {
    match sink {
        Sink::Json(mut out) => out.flush(),
        Sink::Csv { mut presence, mut probabilities } => {
            presence.flush()?;
            probabilities.flush()
        }
    }
}

/// The frame number in a file name, as the HRM demo reads OpenFace's aligned crops
/// (`frame_det_00_000123.bmp` is frame 123): the last run of digits in the file stem.
fn frame_number(path: &Path) -> Option<u64> {
    let stem = path.file_stem()?.to_str()?;
    let end = stem.rfind(|c: char| c.is_ascii_digit())? + 1;
    let start = stem[..end].rfind(|c: char| !c.is_ascii_digit()).map_or(0, |i| i + 1);
    stem[start..end].parse().ok()
}

fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_numbers_come_from_the_last_digits() {
        assert_eq!(frame_number(Path::new("out/frame_det_00_000123.bmp")), Some(123));
        assert_eq!(frame_number(Path::new("42.png")), Some(42));
        assert_eq!(frame_number(Path::new("face.png")), None);
    }
}
