//! `hrm atypicality --model PKG predict.csv`: HRM's atypicality score for every window of
//! consecutive frames of a `predict.csv` (the HRM demo's layout, as `hrm detect --format csv`
//! writes it), one `frame,atypicality` row per window, labelled with its last frame.
//!
//! A `predict.csv` that `hrm detect` wrote from a video has a `track` column: each track is then
//! scored on its own frames (`frame,track,atypicality`), as the stream scored it, and frames
//! without a face are passed over.

use anyhow::{bail, Context};
use hrm_core::atypicality::Atypicality;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct AtypicalityArgs {
    /// The atypicality package (`hrm convert` of the authors' GRU checkpoint).
    #[arg(long)]
    model: PathBuf,
    /// Output CSV; stdout without it.
    #[arg(long)]
    output: Option<PathBuf>,
    /// `predict.csv`: a `frame` column and one 0/1 column per AU label (`1,2,4,...,43`).
    input: PathBuf,
}

/// The frames of one track (or of the whole file, without a `track` column).
#[derive(Default)]
struct Frames {
    labels: Vec<String>,
    rows: Vec<Vec<f32>>,
}

pub fn run(args: AtypicalityArgs) -> anyhow::Result<ExitCode> {
    let model = Atypicality::load(&args.model)?;
    let (tracked, tracks) = read_predict_csv(&args.input, &model)?;
    let window = model.window();
    let longest = tracks.values().map(|t| t.rows.len()).max().unwrap_or(0);
    if longest < window {
        let what = if tracked { "frames in its longest track" } else { "frames" };
        bail!("{}: {longest} {what}, fewer than the {window} of one atypicality window", args.input.display());
    }
    let mut text = String::from(if tracked { "frame,track,atypicality\n" } else { "frame,atypicality\n" });
    for (track, frames) in &tracks {
        for (end, frame) in frames.labels.iter().enumerate().skip(window - 1) {
            let score = model.score(&frames.rows[end + 1 - window..=end])?;
            match tracked {
                true => text.push_str(&format!("{frame},{track},{score}\n")),
                false => text.push_str(&format!("{frame},{score}\n")),
            }
        }
    }
    match &args.output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes()).context("writing the scores")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether the file has a `track` column, and the frames of each track (one track, keyed 0,
/// without one), in the package's AU order. Every AU's column must be there; cells must be
/// numbers (values above 1 count as 1 when scored). With tracks, rows without a track (frames
/// without a face) and rows whose AU cells are all empty (a face whose AUs could not be
/// estimated) are passed over, and an empty cell (an AU the model does not estimate) is 0.
fn read_predict_csv(path: &Path, model: &Atypicality) -> anyhow::Result<(bool, BTreeMap<u64, Frames>)> {
    let text = hrm_core::files::read_text_file(path, 1 << 30)?;
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        bail!("{}: empty, expected a header `frame,1,2,4,...`", path.display())
    };
    let header: Vec<&str> = header.split(',').map(str::trim).collect();
    if header.first() != Some(&"frame") {
        bail!("{}: the first column is `{}`, expected `frame`", path.display(), header.first().unwrap_or(&""));
    }
    let columns = (model.aus().aus().iter())
        .map(|au| {
            let label = au.label.to_string();
            (header.iter().position(|h| *h == label))
                .with_context(|| format!("{}: no column `{label}` ({}) in the header", path.display(), au.id))
        })
        .collect::<anyhow::Result<Vec<usize>>>()?;
    let track_column = header.iter().position(|h| *h == "track");
    let mut tracks: BTreeMap<u64, Frames> = BTreeMap::new();
    for (index, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let frame = cells[0].to_string();
        let at = |column: usize| {
            format!("{}: line {} (frame {frame}), column `{}`", path.display(), index + 1, header[column])
        };
        let track = match track_column {
            None => 0,
            Some(c) => match cells.get(c).copied().unwrap_or("") {
                "" => continue,
                id => id.parse::<u64>().map_err(|_| anyhow::anyhow!("{}: `{id}` is not a track id", at(c)))?,
            },
        };
        let values: Vec<&str> = columns.iter().map(|&c| cells.get(c).copied().unwrap_or("")).collect();
        if track_column.is_some() && values.iter().all(|v| v.is_empty()) {
            continue;
        }
        let row = (columns.iter().zip(values))
            .map(|(&c, cell)| match cell.parse::<f32>() {
                _ if cell.is_empty() && track_column.is_some() => Ok(0.0),
                Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                _ => bail!("{}: `{cell}` is not a number of 0 or more", at(c)),
            })
            .collect::<anyhow::Result<Vec<f32>>>()?;
        let frames = tracks.entry(track).or_default();
        frames.labels.push(frame);
        frames.rows.push(row);
    }
    Ok((track_column.is_some(), tracks))
}
