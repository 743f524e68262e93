//! Frames of videos, image sequences, cameras and network streams, decoded by the system's ffmpeg.
//!
//! Why a subprocess: ffmpeg reads every container, codec, camera and protocol a clinic's
//! recordings come in, and is installed wherever video is handled; linking libav* instead would
//! tie hrm to one FFmpeg ABI and make it a build-time dependency of every user, also those who
//! never open a video. ffmpeg writes raw RGB frames to a pipe and, through its `showinfo` filter,
//! each frame's number and presentation timestamp to stderr, line by line, before the frame's
//! pixels; hrm reads the two in step. Timestamps are the container's own (`-copyts`), as ffprobe
//! reports them; frames are neither dropped nor duplicated (`-fps_mode passthrough`).

use anyhow::{bail, Context};
use hrm_core::RgbImage;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};

/// File extensions taken as videos (compared without case).
pub const VIDEO_EXTENSIONS: [&str; 16] =
    ["mp4", "m4v", "mov", "mkv", "webm", "avi", "mpg", "mpeg", "ts", "mts", "m2ts", "wmv", "flv", "3gp", "ogv", "gif"];

/// Whether an input is a stream for ffmpeg rather than a still image: a video file (by its
/// extension), an image sequence pattern (`frames/%06d.png`, when no such file exists), a V4L2
/// camera (`/dev/video0`), or a URL (`rtsp://`, `http://`, ...).
pub fn is_stream(input: &Path) -> bool {
    let text = input.to_string_lossy();
    if is_url(&text) || is_camera(&text) || (is_pattern(&text) && std::fs::metadata(input).is_err()) {
        return true;
    }
    let extension = input.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    extension.is_some_and(|e| VIDEO_EXTENSIONS.contains(&e.as_str()))
}

/// Inputs that are not files on this machine: they are handed to ffmpeg as they are.
pub fn is_url(text: &str) -> bool {
    ["rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://"].iter().any(|scheme| {
        text.len() > scheme.len() && text.as_bytes()[..scheme.len()].eq_ignore_ascii_case(scheme.as_bytes())
    })
}

/// An image sequence in ffmpeg's pattern syntax: `%d`, or `%0Nd` with a width.
pub fn is_pattern(text: &str) -> bool {
    text.match_indices('%').any(|(i, _)| {
        let rest = &text[i + 1..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        rest[digits..].starts_with('d')
    })
}

/// A V4L2 camera (not a folder that happens to be named so).
pub fn is_camera(text: &str) -> bool {
    text.starts_with("/dev/video") && !Path::new(text).is_dir()
}

/// One decoded frame.
pub struct Frame {
    /// 1 for the stream's first frame, as OpenFace counts (and ffmpeg numbers extracted images).
    pub number: u64,
    /// Presentation time in seconds, when the stream has one.
    pub timestamp: Option<f64>,
    pub image: RgbImage,
}

/// What `showinfo` said about the next frame.
struct FrameInfo {
    index: u64,
    timestamp: Option<f64>,
    width: usize,
    height: usize,
}

/// ffmpeg's warnings and errors, for the message when a stream ends badly: every error (the
/// first 20) and the last few lines of either kind.
#[derive(Default)]
struct Problems {
    errors: Vec<String>,
    recent: std::collections::VecDeque<String>,
}

impl Problems {
    fn add(&mut self, level: &str, message: String) {
        if level != "warning" && self.errors.len() < 20 {
            self.errors.push(message.clone());
        }
        if self.recent.len() == 3 {
            self.recent.pop_front();
        }
        self.recent.push_back(message);
    }
}

/// A running ffmpeg and the frames it decodes.
pub struct Decoder {
    child: Child,
    pixels: ChildStdout,
    /// Each frame's line from the log, or a frame line that could not be read.
    infos: Receiver<Result<FrameInfo, String>>,
    problems: Arc<Mutex<Problems>>,
    stderr_reader: Option<std::thread::JoinHandle<()>>,
    max_pixels: u64,
    /// Frames read so far, and the size of the first.
    decoded: u64,
    size: Option<(usize, usize)>,
    finished: bool,
}

impl Decoder {
    /// Starts ffmpeg on `input`. Frames larger than `max_pixels` are refused as images are.
    pub fn open(input: &Path, max_pixels: u64) -> anyhow::Result<Decoder> {
        let text = input.to_string_lossy();
        let mut command = Command::new(ffmpeg());
        command.args(["-nostdin", "-hide_banner", "-nostats", "-loglevel", "level+info", "-copyts"]);
        if is_camera(&text) {
            command.args(["-f", "v4l2"]);
        }
        command.arg("-i").arg(input);
        command.args(["-map", "0:v:0", "-vf", "showinfo"]).args(passthrough());
        command.args(["-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]);
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => anyhow::anyhow!(
                "videos are decoded by ffmpeg, which was not found ({}): install it (`apt install ffmpeg`) or set \
                 HRM_FFMPEG to its path",
                ffmpeg().to_string_lossy()
            ),
            _ => anyhow::anyhow!("starting ffmpeg: {e}"),
        })?;
        let pixels = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (sender, infos) = std::sync::mpsc::channel();
        let problems = Arc::new(Mutex::new(Problems::default()));
        let stderr_reader = {
            let problems = problems.clone();
            std::thread::spawn(move || read_log(stderr, sender, problems))
        };
        Ok(Decoder {
            child,
            pixels,
            infos,
            problems,
            stderr_reader: Some(stderr_reader),
            max_pixels,
            decoded: 0,
            size: None,
            finished: false,
        })
    }

    /// The next frame; None once the stream has ended cleanly. A stream that ends in an error (a
    /// truncated or corrupt file, a camera that went away) gives every frame decoded before, then
    /// the error, with what ffmpeg said.
    pub fn next_frame(&mut self) -> anyhow::Result<Option<Frame>> {
        if self.finished {
            return Ok(None);
        }
        let info = match self.infos.recv() {
            Ok(Ok(info)) => info,
            Ok(Err(line)) => {
                return Err(self.refuse(format!("ffmpeg's line about a frame could not be read: `{line}`")))
            }
            Err(_) => {
                // ffmpeg closed its log: it has exited, or is about to.
                self.finished = true;
                return self.finish().map(|()| None);
            }
        };
        let number = self.decoded + 1;
        let (width, height) = (info.width, info.height);
        if info.index != self.decoded {
            return Err(self.refuse(format!(
                "ffmpeg numbered frame {number} as frame {}: its frames started over (the stream's size or format \
                 changed mid-stream?), which hrm cannot follow",
                info.index + 1
            )));
        }
        if let Some((w, h)) = self.size.filter(|&size| size != (width, height)) {
            return Err(self.refuse(format!(
                "frame {number} is {width}x{height}, but the stream began at {w}x{h}: a stream whose frame size \
                 changes is not supported (re-encode it at one size)"
            )));
        }
        let pixels = width as u64 * height as u64;
        if pixels == 0 {
            return Err(self.refuse(format!("frame {number} has no pixels ({width}x{height})")));
        }
        if pixels > self.max_pixels {
            return Err(self.refuse(format!(
                "frame {number} is {width}x{height}, {pixels} pixels, more than max_image_pixels ({}) allows",
                self.max_pixels
            )));
        }
        self.size = Some((width, height));
        let mut data = vec![0u8; width * height * 3];
        if let Err(e) = self.pixels.read_exact(&mut data) {
            self.finished = true;
            self.finish()?;
            bail!("ffmpeg stopped in the middle of frame {number}: {e}");
        }
        self.decoded += 1;
        Ok(Some(Frame { number, timestamp: info.timestamp, image: RgbImage { width, height, data } }))
    }

    /// Stops ffmpeg and gives `message` as the error.
    fn refuse(&mut self, message: String) -> anyhow::Error {
        self.stop();
        anyhow::anyhow!(message)
    }

    /// Waits for ffmpeg; an error if it failed, reported errors in the stream, or wrote pixels
    /// that no frame line announced.
    fn finish(&mut self) -> anyhow::Result<()> {
        let unannounced = std::io::copy(&mut self.pixels, &mut std::io::sink()).unwrap_or(0);
        let status = self.child.wait().context("waiting for ffmpeg")?;
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
        let problems = self.problems.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        let said = match problems.errors.is_empty() {
            true => problems.recent.iter().cloned().collect::<Vec<_>>(),
            false => problems.errors.iter().take(3).cloned().collect(),
        }
        .join("; ");
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(0), _) if problems.errors.is_empty() && unannounced == 0 => Ok(()),
            (Some(0), _) if problems.errors.is_empty() => {
                bail!("ffmpeg wrote {unannounced} bytes of pixels after its last announced frame")
            }
            (Some(0), _) => bail!("the stream is damaged: {said}"),
            (Some(code), _) if said.is_empty() => bail!("ffmpeg exited with status {code}"),
            (Some(code), _) => bail!("ffmpeg exited with status {code}: {said}"),
            (None, signal) => bail!("ffmpeg was killed by signal {}", signal.unwrap_or(0)),
        }
    }

    /// Stops ffmpeg (the frames wanted were read, or the stream is refused).
    pub fn stop(&mut self) {
        self.finished = true;
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(reader) = self.stderr_reader.take() {
            let _ = reader.join();
        }
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        if self.stderr_reader.is_some() {
            self.stop();
        }
    }
}

/// The ffmpeg to run: `HRM_FFMPEG`, else `ffmpeg` on the PATH.
pub fn ffmpeg() -> std::ffi::OsString {
    std::env::var_os("HRM_FFMPEG").unwrap_or_else(|| "ffmpeg".into())
}

/// The option that keeps every frame as decoded, neither dropped nor duplicated: `-fps_mode
/// passthrough` (ffmpeg 5.1 and later), or its older name `-vsync passthrough` (Ubuntu 22.04's 4.4).
fn passthrough() -> [&'static str; 2] {
    static OPTION: std::sync::OnceLock<[&str; 2]> = std::sync::OnceLock::new();
    *OPTION.get_or_init(|| {
        let version = Command::new(ffmpeg()).arg("-version").stderr(Stdio::null()).output().ok();
        let text = version.map(|v| String::from_utf8_lossy(&v.stdout).into_owned()).unwrap_or_default();
        match ffmpeg_version(&text) {
            Some(version) if version < (5, 1) => ["-vsync", "passthrough"],
            _ => ["-fps_mode", "passthrough"],
        }
    })
}

/// `ffmpeg version 4.4.2-0ubuntu0.22.04.1 ...` -> (4, 4); None for builds named otherwise (git).
fn ffmpeg_version(text: &str) -> Option<(u32, u32)> {
    let version = text.strip_prefix("ffmpeg version ")?.trim_start_matches('n');
    let mut numbers = version.split(|c: char| !c.is_ascii_digit());
    Some((numbers.next()?.parse().ok()?, numbers.next()?.parse().ok()?))
}

/// Reads ffmpeg's log (`-loglevel level+info`): each `showinfo` frame line becomes a
/// [`FrameInfo`], with its time from the integer `pts` and the filter's time base (`pts_time` is
/// printed to 6 significant digits: whole seconds for a camera's clock); warnings and errors are
/// kept, as `level: source: message`.
fn read_log(
    stderr: std::process::ChildStderr,
    infos: Sender<Result<FrameInfo, String>>,
    problems: Arc<Mutex<Problems>>,
) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    let mut time_base: Option<(i64, i64)> = None;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if text.contains("Parsed_showinfo") {
            if let Some(at) = text.find("config in time_base: ") {
                let rest = &text[at + "config in time_base: ".len()..];
                let base = rest.split([',', ' ']).next().and_then(|b| b.split_once('/'));
                time_base = base.and_then(|(n, d)| Some((n.parse().ok()?, d.parse().ok()?))).filter(|b| b.1 != 0);
            } else if text.contains(" n:") && text.contains(" pts:") {
                let info = parse_showinfo(text, time_base).ok_or_else(|| text.to_string());
                if infos.send(info).is_err() {
                    return;
                }
            }
            continue;
        }
        for level in ["fatal", "error", "warning"] {
            if let Some(at) = text.find(&format!("[{level}] ")) {
                // `[matroska,webm @ 0x55d...] ` -> `matroska,webm`
                let source = text[..at].trim().trim_start_matches('[').trim_end_matches(']');
                let source = source.split(" @ ").next().unwrap_or(source);
                let message = text[at + level.len() + 3..].trim();
                let message = match source.is_empty() {
                    true => format!("{level}: {message}"),
                    false => format!("{level}: {source}: {message}"),
                };
                if let Ok(mut problems) = problems.lock() {
                    problems.add(level, message);
                }
            }
        }
    }
}

/// `n:   3 pts:   1536 pts_time:0.12 ... s:640x480 ...` -> the frame's index, time and size; the
/// time from `pts` in `time_base` when known (exact), else from `pts_time`.
fn parse_showinfo(line: &str, time_base: Option<(i64, i64)>) -> Option<FrameInfo> {
    let field = |name: &str| -> Option<&str> {
        let at = line.find(&format!(" {name}:"))? + name.len() + 2;
        line[at..].split_whitespace().next()
    };
    let index = field("n")?.parse().ok()?;
    let exact = field("pts").and_then(|p| p.parse::<i64>().ok()).zip(time_base).map(|(pts, (n, d))| {
        // In i128: a camera's pts (microseconds since boot) times a numerator would not fit in 64 bits.
        (pts as i128 * n as i128) as f64 / d as f64
    });
    let printed = field("pts_time").and_then(|t| t.parse::<f64>().ok());
    let timestamp = exact.or(printed).filter(|t| t.is_finite());
    let (w, h) = field("s")?.split_once('x')?;
    Some(FrameInfo { index, timestamp, width: w.parse().ok()?, height: h.parse().ok()? })
}

/// Which frames of a stream to run: those from `start` to before `end` (seconds), and of those
/// the first and every `every`th after it. Frames keep their numbers.
#[derive(Clone, Copy)]
pub struct Selection {
    pub every: u64,
    pub start: Option<f64>,
    pub end: Option<f64>,
}

impl Selection {
    pub const ALL: Selection = Selection { every: 1, start: None, end: None };

    /// The frames of `decoder` this selection keeps.
    pub fn frames(self, decoder: &mut Decoder) -> SelectedFrames<'_> {
        SelectedFrames { decoder, selection: self, kept: 0, error: None }
    }
}

/// The frames a [`Selection`] keeps, decoded as they are asked for. A decoding error ends them
/// and waits in `error`, so that the frames before it are run first.
pub struct SelectedFrames<'a> {
    decoder: &'a mut Decoder,
    selection: Selection,
    /// Frames in the time range seen so far.
    kept: u64,
    pub error: Option<anyhow::Error>,
}

impl Iterator for SelectedFrames<'_> {
    type Item = Frame;

    fn next(&mut self) -> Option<Frame> {
        let Selection { every, start, end } = self.selection;
        loop {
            let frame = match self.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return None,
                Err(e) => {
                    self.error = Some(e);
                    return None;
                }
            };
            let time = frame.timestamp;
            if start.is_some_and(|start| time.is_some_and(|t| t < start)) {
                continue;
            }
            if end.is_some_and(|end| time.is_some_and(|t| t >= end)) {
                self.decoder.stop();
                return None;
            }
            self.kept += 1;
            if (self.kept - 1).is_multiple_of(every) {
                return Some(frame);
            }
        }
    }
}

/// A time on the command line: seconds (`12.5`) or `[HH:]MM:SS[.frac]`.
pub fn parse_time(text: &str) -> Result<f64, String> {
    let bad = || format!("`{text}` is not a time: give seconds (12.5) or [HH:]MM:SS[.frac]");
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() > 3 {
        return Err(bad());
    }
    let mut seconds = 0.0;
    for (i, part) in parts.iter().enumerate() {
        let value: f64 = part.parse().map_err(|_| bad())?;
        if !(value.is_finite() && value >= 0.0) || (i > 0 && value >= 60.0) {
            return Err(bad());
        }
        seconds = seconds * 60.0 + value;
    }
    Ok(seconds)
}

/// How many frames a file holds, and so how long the run will take, when ffprobe can tell
/// quickly (for the progress bar only).
pub fn frame_count_hint(input: &Path) -> Option<u64> {
    if !input.is_file() {
        return None;
    }
    let ffprobe = std::env::var_os("HRM_FFPROBE").unwrap_or_else(|| "ffprobe".into());
    let output = Command::new(ffprobe)
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=nb_frames", "-of", "csv=p=0"])
        .arg(input)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn showinfo_lines_give_index_time_and_size() {
        let line = "[Parsed_showinfo_0 @ 0x5] [info] n:  12 pts:   6144 pts_time:0.48    pos:  48 fmt:yuv420p \
                    sar:1/1 s:320x240 i:P iskey:0 type:P checksum:7C4FC346";
        let info = parse_showinfo(line, None).unwrap();
        assert_eq!((info.index, info.timestamp, info.width, info.height), (12, Some(0.48), 320, 240));
        assert_eq!(parse_showinfo(line, Some((1, 12800))).unwrap().timestamp, Some(0.48));
        // A camera's clock: pts_time is printed to 6 digits, pts is exact.
        let camera = "[Parsed_showinfo_0 @ 0x5] [info] n:   1 pts:352817123456 pts_time:352817 pos: -1 s:640x480";
        assert_eq!(parse_showinfo(camera, Some((1, 1000000))).unwrap().timestamp, Some(352817.123456));
        let none = "[Parsed_showinfo_0 @ 0x5] [info] n:   0 pts:NOPTS pts_time:NOPTS pos: -1 fmt:rgb24 s:8x4 i:P";
        assert_eq!(parse_showinfo(none, Some((1, 25))).map(|i| (i.index, i.timestamp)), Some((0, None)));
        assert!(parse_showinfo("[Parsed_showinfo_0 @ 0x5] [info] config in time_base: 1/12800", None).is_none());
        assert_eq!(ffmpeg_version("ffmpeg version 4.4.2-0ubuntu0.22.04.1 Copyright"), Some((4, 4)));
        assert_eq!(ffmpeg_version("ffmpeg version n7.1 Copyright"), Some((7, 1)));
        assert_eq!(ffmpeg_version("ffmpeg version N-112000-gabcdef"), None);
    }

    #[test]
    fn inputs_are_streams_by_extension_pattern_device_or_url() {
        for stream in ["a/b.MP4", "x.mkv", "frames/%06d.png", "f%d.jpg", "/dev/video0", "rtsp://cam/1", "HTTP://h/v"] {
            assert!(is_stream(Path::new(stream)), "{stream}");
        }
        for image in ["a.jpg", "100%.png", "http:/x.png", "video.png", "/home/jürgen/ä.jpg", "ü"] {
            assert!(!is_stream(Path::new(image)), "{image}");
        }
        // A file that exists is a file, whatever its name.
        let dir = tempfile::tempdir().unwrap();
        let odd = dir.path().join("50%dark.png");
        std::fs::write(&odd, b"").unwrap();
        assert!(!is_stream(&odd) && is_stream(&dir.path().join("%04d.png")));
    }

    #[test]
    fn times_are_seconds_or_clock_notation() {
        assert_eq!(parse_time("12.5"), Ok(12.5));
        assert_eq!(parse_time("01:02"), Ok(62.0));
        assert_eq!(parse_time("1:00:02.5"), Ok(3602.5));
        for bad in ["", "-1", "1:60", "a", "1:2:3:4", "inf"] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}
