//! `hrm atypicality --model PKG predict.csv`: HRM's atypicality score for every window of
//! consecutive frames of a `predict.csv` (the HRM demo's layout, as `hrm detect --format csv`
//! writes it), one `frame,atypicality` row per window, labelled with its last frame.

use anyhow::{bail, Context};
use hrm_core::atypicality::Atypicality;
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

pub fn run(args: AtypicalityArgs) -> anyhow::Result<ExitCode> {
    let model = Atypicality::load(&args.model)?;
    let (frames, rows) = read_predict_csv(&args.input, &model)?;
    let window = model.window();
    if rows.len() < window {
        bail!("{}: {} frames, fewer than the {window} of one atypicality window", args.input.display(), rows.len());
    }
    let mut text = String::from("frame,atypicality\n");
    for (end, frame) in frames.iter().enumerate().skip(window - 1) {
        let score = model.score(&rows[end + 1 - window..=end])?;
        text.push_str(&format!("{frame},{score}\n"));
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

/// The frame labels and, per row, the package's AUs in its order. Every AU's column must be
/// there; cells must be numbers (values above 1 count as 1 when scored).
fn read_predict_csv(path: &Path, model: &Atypicality) -> anyhow::Result<(Vec<String>, Vec<Vec<f32>>)> {
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
    let (mut frames, mut rows) = (Vec::new(), Vec::new());
    for (index, line) in lines {
        let cells: Vec<&str> = line.split(',').map(str::trim).collect();
        let frame = cells[0].to_string();
        let row = columns
            .iter()
            .map(|&c| {
                let cell = cells.get(c).copied().unwrap_or("");
                match cell.parse::<f32>() {
                    Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
                    _ => bail!(
                        "{}: line {} (frame {frame}), column `{}`: `{cell}` is not a number of 0 or more",
                        path.display(),
                        index + 1,
                        header[c]
                    ),
                }
            })
            .collect::<anyhow::Result<Vec<f32>>>()?;
        frames.push(frame);
        rows.push(row);
    }
    Ok((frames, rows))
}
