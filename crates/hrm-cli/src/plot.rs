//! `hrm plot results.jsonl --out timeline.png`: each face track's AU probabilities over time, and
//! its atypicality score beneath, as PNG or SVG: the picture a clinician looks at first.
//!
//! Drawn by hand on a small canvas (lines, rectangles, text) with two back ends: SVG text, and
//! an RGB raster with an 8x8 bitmap font for PNG, so that no system font or plotting stack is
//! needed.

use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct PlotArgs {
    /// JSON Lines from `hrm detect` on a video or stream.
    input: PathBuf,
    /// The picture: `.png` or `.svg`.
    #[arg(long)]
    out: PathBuf,
    /// The most tracks drawn (the longest; drawn by file and track id).
    #[arg(long, default_value_t = 6)]
    max_tracks: usize,
    /// Only these AUs (`AU1,AU12`); all without it.
    #[arg(long, value_delimiter = ',')]
    aus: Vec<String>,
}

/// One track's samples over time.
#[derive(Default)]
struct Track {
    /// Seconds (or frame numbers when the stream had no timestamps).
    times: Vec<f64>,
    /// Per AU id, a probability per time (NaN where not estimated).
    aus: BTreeMap<usize, Vec<f32>>,
    atypicality: Vec<f32>,
}

pub fn run(args: PlotArgs) -> anyhow::Result<ExitCode> {
    let format = match args.out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("png") => Format::Png,
        Some("svg") => Format::Svg,
        _ => bail!("--out {}: the picture's name must end in .png or .svg", args.out.display()),
    };
    let (au_ids, tracks) = read_tracks(&args.input, &args.aus)?;
    let mut tracks: Vec<((String, u64), Track)> = tracks.into_iter().collect();
    tracks.sort_by_key(|(_, t)| std::cmp::Reverse(t.times.len()));
    if tracks.len() > args.max_tracks {
        eprintln!("note: drawing the {} longest of {} tracks (--max-tracks)", args.max_tracks, tracks.len());
        tracks.truncate(args.max_tracks);
    }
    tracks.sort_by(|a, b| a.0.cmp(&b.0));
    let height = MARGIN + tracks.len() as f32 * PANEL_HEIGHT;
    let mut canvas = match format {
        Format::Png => Canvas::raster(WIDTH as usize, height as usize),
        Format::Svg => Canvas::svg(WIDTH, height),
    };
    for (i, ((file, track), samples)) in tracks.iter().enumerate() {
        draw_track(
            &mut canvas,
            MARGIN / 2.0 + i as f32 * PANEL_HEIGHT,
            &format!("{file}  track {track}"),
            samples,
            &au_ids,
        );
    }
    let bytes = canvas.finish()?;
    std::fs::write(&args.out, bytes).with_context(|| format!("writing {}", args.out.display()))?;
    eprintln!("hrm: {} tracks drawn into {}", tracks.len(), args.out.display());
    Ok(ExitCode::SUCCESS)
}

enum Format {
    Png,
    Svg,
}

type Tracks = BTreeMap<(String, u64), Track>;

/// The AU ids (in the file's order) and every track's samples. Rows of frames without a face
/// (no `track`) are passed over; a file with no stream rows at all is an error.
fn read_tracks(path: &Path, only: &[String]) -> anyhow::Result<(Vec<String>, Tracks)> {
    let text = hrm_core::files::read_text_file(path, 4 << 30)?;
    let mut au_ids: Vec<String> = Vec::new();
    let mut tracks: Tracks = BTreeMap::new();
    let mut rows = 0;
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let at = || format!("{}: line {}", path.display(), n + 1);
        let row: serde_json::Value = serde_json::from_str(line).with_context(|| format!("{}: not JSON", at()))?;
        rows += 1;
        let Some(track) = row.get("track").and_then(|t| t.as_u64()) else { continue };
        let time = row.get("timestamp").and_then(|t| t.as_f64()).or_else(|| row.get("frame").and_then(|f| f.as_f64()));
        let Some(time) = time else { bail!("{}: a track but neither `timestamp` nor `frame`", at()) };
        let file = row.get("file").and_then(|f| f.as_str()).unwrap_or("").to_string();
        let samples = tracks.entry((file, track)).or_default();
        samples.times.push(time);
        let position = samples.times.len() - 1;
        if let Some(aus) = row.get("aus").and_then(|a| a.as_object()) {
            for (id, value) in aus {
                if !only.is_empty() && !only.contains(id) {
                    continue;
                }
                let index = match au_ids.iter().position(|a| a == id) {
                    Some(i) => i,
                    None => {
                        au_ids.push(id.clone());
                        au_ids.len() - 1
                    }
                };
                let series = samples.aus.entry(index).or_default();
                series.resize(position, f32::NAN);
                series.push(value.as_f64().map_or(f32::NAN, |v| v as f32));
            }
        }
        samples.atypicality.push(row.get("atypicality").and_then(|a| a.as_f64()).map_or(f32::NAN, |v| v as f32));
    }
    if tracks.is_empty() {
        bail!(
            "{}: none of its {rows} rows has a face track: plot draws the JSON Lines of `hrm detect` on a video",
            path.display()
        );
    }
    if let Some(missing) = only.iter().find(|id| !au_ids.contains(id)) {
        bail!("{}: no AU `{missing}` in the results (they hold {})", path.display(), au_ids.join(", "));
    }
    for track in tracks.values_mut() {
        let n = track.times.len();
        track.aus.values_mut().for_each(|s| s.resize(n, f32::NAN));
    }
    Ok((au_ids, tracks))
}

const WIDTH: f32 = 1200.0;
const MARGIN: f32 = 40.0;
const PANEL_HEIGHT: f32 = 380.0;
/// Left edge of the plot areas, and their width (the legend is to the right).
const LEFT: f32 = 70.0;
const PLOT_WIDTH: f32 = 960.0;

/// 22 colours that stay apart (Kelly's, without white and black).
const PALETTE: [[u8; 3]; 22] = [
    [230, 25, 75],
    [60, 180, 75],
    [0, 130, 200],
    [245, 130, 48],
    [145, 30, 180],
    [70, 200, 200],
    [240, 50, 230],
    [150, 190, 20],
    [250, 150, 180],
    [0, 128, 128],
    [150, 110, 230],
    [154, 99, 36],
    [200, 180, 0],
    [128, 0, 0],
    [90, 200, 140],
    [128, 128, 0],
    [230, 160, 110],
    [0, 0, 128],
    [128, 128, 128],
    [60, 60, 60],
    [255, 90, 0],
    [0, 90, 255],
];
const INK: [u8; 3] = [30, 30, 30];
const GRID: [u8; 3] = [215, 215, 215];

/// One track: a title, AU probabilities (0 to 1) on top with a legend, atypicality below.
fn draw_track(canvas: &mut Canvas, top: f32, title: &str, track: &Track, au_ids: &[String]) {
    canvas.text(LEFT, top + 4.0, title, INK);
    let (t0, t1) = bounds(track.times.iter().map(|&t| t as f32)).unwrap_or((0.0, 1.0));
    let span = if t1 > t0 { t1 - t0 } else { 1.0 };
    let x = |t: f64| LEFT + (t as f32 - t0) / span * PLOT_WIDTH;
    // A step longer than five typical steps is a gap: lines break there.
    let mut steps: Vec<f64> = track.times.windows(2).map(|w| w[1] - w[0]).collect();
    steps.sort_by(f64::total_cmp);
    let typical = steps.get(steps.len() / 2).copied().unwrap_or(1.0);

    let au_area = (top + 24.0, 200.0);
    axes(canvas, au_area, (0.0, 1.0), "AU probability");
    for (&index, series) in &track.aus {
        let color = PALETTE[index % PALETTE.len()];
        let y = |v: f32| au_area.0 + au_area.1 * (1.0 - v);
        polylines(canvas, &track.times, series, typical, &x, &y, color);
        let legend_y = au_area.0 + 4.0 + (index % 22) as f32 * 9.2;
        canvas.rect(LEFT + PLOT_WIDTH + 16.0, legend_y + 1.0, 12.0, 6.0, color);
        canvas.text(LEFT + PLOT_WIDTH + 32.0, legend_y, &au_ids[index], INK);
    }

    let score_area = (au_area.0 + au_area.1 + 30.0, 90.0);
    let (lo, hi) = bounds(track.atypicality.iter().copied()).map_or((1.0, 5.0), |(lo, hi)| (lo.min(1.0), hi.max(5.0)));
    axes(canvas, score_area, (lo, hi), "atypicality");
    let y = |v: f32| score_area.0 + score_area.1 * (1.0 - (v - lo) / (hi - lo));
    polylines(canvas, &track.times, &track.atypicality, typical, &x, &y, INK);
    let bottom = score_area.0 + score_area.1;
    canvas.text(LEFT, bottom + 6.0, &format!("{t0:.2}"), INK);
    let end = format!("{t1:.2} s");
    canvas.text(LEFT + PLOT_WIDTH - 8.0 * end.len() as f32, bottom + 6.0, &end, INK);
}

/// The frame of a plot area (`top`, `height`) with grid lines and its value range.
fn axes(canvas: &mut Canvas, (top, height): (f32, f32), (lo, hi): (f32, f32), label: &str) {
    for k in 0..=4 {
        let y = top + height * k as f32 / 4.0;
        canvas.line(&[(LEFT, y), (LEFT + PLOT_WIDTH, y)], GRID, 1.0);
    }
    canvas.line(&[(LEFT, top), (LEFT, top + height), (LEFT + PLOT_WIDTH, top + height)], INK, 1.0);
    canvas.text(4.0, top - 4.0, &format!("{hi:.1}"), INK);
    canvas.text(4.0, top + height - 8.0, &format!("{lo:.1}"), INK);
    canvas.text(LEFT + 6.0, top + 2.0, label, INK);
}

/// Draws a series as lines, broken where a value is missing or time jumps.
fn polylines(
    canvas: &mut Canvas,
    times: &[f64],
    values: &[f32],
    typical_step: f64,
    x: &dyn Fn(f64) -> f32,
    y: &dyn Fn(f32) -> f32,
    color: [u8; 3],
) {
    let mut run: Vec<(f32, f32)> = Vec::new();
    for (i, (&t, &v)) in times.iter().zip(values).enumerate() {
        let gap = i > 0 && t - times[i - 1] > 5.0 * typical_step;
        if v.is_nan() || gap {
            canvas.line(&run, color, 1.5);
            run.clear();
        }
        if !v.is_nan() {
            run.push((x(t), y(v)));
        }
    }
    canvas.line(&run, color, 1.5);
}

fn bounds(values: impl Iterator<Item = f32>) -> Option<(f32, f32)> {
    values
        .filter(|v| v.is_finite())
        .fold(None, |b, v| Some(b.map_or((v, v), |(lo, hi): (f32, f32)| (lo.min(v), hi.max(v)))))
}

/// Where the drawing goes.
enum Canvas {
    Svg { text: String },
    Raster { image: image::RgbImage },
}

impl Canvas {
    fn svg(width: f32, height: f32) -> Canvas {
        let text = format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" \
             font-family=\"sans-serif\" font-size=\"11\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        );
        Canvas::Svg { text }
    }

    fn raster(width: usize, height: usize) -> Canvas {
        Canvas::Raster { image: image::RgbImage::from_pixel(width as u32, height as u32, image::Rgb([255, 255, 255])) }
    }

    /// A line through the points (fewer than two: nothing).
    fn line(&mut self, points: &[(f32, f32)], color: [u8; 3], width: f32) {
        if points.len() < 2 {
            if let (Canvas::Raster { image }, [(x, y)]) = (&mut *self, points) {
                plot_dot(image, *x, *y, width, color);
            }
            return;
        }
        match self {
            Canvas::Svg { text, .. } => {
                let list: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
                text.push_str(&format!(
                    "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"{width}\" points=\"{}\"/>\n",
                    hex(color),
                    list.join(" ")
                ));
            }
            Canvas::Raster { image } => {
                for pair in points.windows(2) {
                    let ((x0, y0), (x1, y1)) = (pair[0], pair[1]);
                    let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as usize;
                    for s in 0..=steps {
                        let f = s as f32 / steps as f32;
                        plot_dot(image, x0 + (x1 - x0) * f, y0 + (y1 - y0) * f, width, color);
                    }
                }
            }
        }
    }

    fn rect(&mut self, x: f32, y: f32, w: f32, h: f32, color: [u8; 3]) {
        match self {
            Canvas::Svg { text, .. } => text.push_str(&format!(
                "<rect x=\"{x}\" y=\"{y}\" width=\"{w}\" height=\"{h}\" fill=\"{}\"/>\n",
                hex(color)
            )),
            Canvas::Raster { image } => {
                for py in y as u32..(y + h) as u32 {
                    for px in x as u32..(x + w) as u32 {
                        if px < image.width() && py < image.height() {
                            image.put_pixel(px, py, image::Rgb(color));
                        }
                    }
                }
            }
        }
    }

    /// Text whose top-left corner is at (x, y), 8 pixels high.
    fn text(&mut self, x: f32, y: f32, content: &str, color: [u8; 3]) {
        match self {
            Canvas::Svg { text, .. } => {
                let escaped = content.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
                text.push_str(&format!("<text x=\"{x}\" y=\"{}\" fill=\"{}\">{escaped}</text>\n", y + 9.0, hex(color)));
            }
            Canvas::Raster { image } => {
                use font8x8::UnicodeFonts;
                for (i, c) in content.chars().enumerate() {
                    let glyph = font8x8::BASIC_FONTS.get(c).or_else(|| font8x8::BASIC_FONTS.get('?')).unwrap_or([0; 8]);
                    for (row, bits) in glyph.iter().enumerate() {
                        for col in 0..8 {
                            let (px, py) = (x as i64 + i as i64 * 8 + col, y as i64 + row as i64);
                            let inside =
                                px >= 0 && py >= 0 && (px as u32) < image.width() && (py as u32) < image.height();
                            if bits >> col & 1 == 1 && inside {
                                image.put_pixel(px as u32, py as u32, image::Rgb(color));
                            }
                        }
                    }
                }
            }
        }
    }

    fn finish(self) -> anyhow::Result<Vec<u8>> {
        match self {
            Canvas::Svg { mut text } => {
                text.push_str("</svg>\n");
                Ok(text.into_bytes())
            }
            Canvas::Raster { image } => {
                let mut png = Vec::new();
                image.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
                Ok(png)
            }
        }
    }
}

/// A filled square of side `width` centred on (x, y).
fn plot_dot(image: &mut image::RgbImage, x: f32, y: f32, width: f32, color: [u8; 3]) {
    let r = (width / 2.0).max(0.5);
    let (x0, x1, y0, y1) =
        ((x - r).round() as i64, (x + r).round() as i64, (y - r).round() as i64, (y + r).round() as i64);
    for py in y0..y1.max(y0 + 1) {
        for px in x0..x1.max(x0 + 1) {
            if px >= 0 && py >= 0 && (px as u32) < image.width() && (py as u32) < image.height() {
                image.put_pixel(px as u32, py as u32, image::Rgb(color));
            }
        }
    }
}

fn hex([r, g, b]: [u8; 3]) -> String {
    format!("#{r:02x}{g:02x}{b:02x}")
}
