//! Videos and streams through `hrm detect`, on short videos ffmpeg makes here from the shared
//! photographs: frame counts and timestamps against ffprobe, track ids through a crossing and a
//! short absence, per-frame AUs equal to the same frames run as images, frame selection, a
//! truncated video, a video without a face, the CSV and OpenFace columns, the atypicality score
//! per track, `hrm plot` and `hrm bench --video`.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn ffmpeg(args: &[&str]) {
    let output = Command::new("ffmpeg")
        .args(["-nostdin", "-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg runs (.ci/run installs it)");
    assert!(output.status.success(), "ffmpeg {args:?}: {}", stderr(&output));
}

/// Every frame's presentation time in seconds, as ffprobe reads it.
fn ffprobe_times(video: &Path) -> Vec<f64> {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "json"])
        .arg(video)
        .output()
        .expect("ffprobe runs");
    assert!(output.status.success(), "{}", stderr(&output));
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    json["frames"].as_array().unwrap().iter().map(|f| f["pts_time"].as_str().unwrap().parse().unwrap()).collect()
}

/// The test videos, made once per test run.
struct Videos {
    dir: PathBuf,
    /// 640x480 at 10 fps, 3 s: face A (a child) moves right along the top, face B left across it,
    /// partly over it when they cross (frame 15); A is hidden in frames 23-25.
    crossing: PathBuf,
    /// `crossing` in MPEG-TS, whose timestamps start at 1.4 s.
    crossing_ts: PathBuf,
    /// `crossing` with a key frame every 5 frames in Matroska, cut at 70% of its bytes.
    truncated: PathBuf,
    /// 10 frames of a test pattern.
    no_face: PathBuf,
    /// 640x480 at 10 fps, 4 s: a face walks out of the picture on the right (gone from about
    /// frame 14 to 27) and comes back the way it went.
    leaving: PathBuf,
    /// `crossing`'s frames as PNGs (`000001.png`, ...), extracted by ffmpeg.
    frames: PathBuf,
}

const FACE_A_HIDDEN: [u64; 3] = [23, 24, 25];

fn videos() -> &'static Videos {
    static VIDEOS: OnceLock<Videos> = OnceLock::new();
    VIDEOS.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let images = shared_images();
        let (a, b) = (path(&images[0]), path(&images[3]));
        let crossing = dir.join("crossing.mp4");
        let filter = "[1:v]scale=180:180[a];[2:v]scale=180:180[b];\
                      [0:v][a]overlay=x='20+150*t':y=40:enable='not(between(n,22,24))'[ab];\
                      [ab][b]overlay=x='440-150*t':y=170";
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "color=c=gray:s=640x480:r=10:d=3",
            "-i",
            a,
            "-i",
            b,
            "-filter_complex",
            filter,
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            path(&crossing),
        ]);
        let crossing_ts = dir.join("crossing.ts");
        ffmpeg(&["-i", path(&crossing), "-c", "copy", path(&crossing_ts)]);
        let whole = dir.join("whole.mkv");
        ffmpeg(&["-i", path(&crossing), "-c:v", "libx264", "-g", "5", path(&whole)]);
        let bytes = std::fs::read(&whole).unwrap();
        let truncated = dir.join("truncated.mkv");
        std::fs::write(&truncated, &bytes[..bytes.len() * 7 / 10]).unwrap();
        let no_face = dir.join("no_face.mp4");
        ffmpeg(&["-f", "lavfi", "-i", "testsrc=s=320x240:r=25:d=0.4", "-pix_fmt", "yuv420p", path(&no_face)]);
        let leaving = dir.join("leaving.mp4");
        let walk = "[1:v]scale=180:180[a];[0:v][a]overlay=x='if(lt(t,2),300+250*t,300+250*(4-t))':y=120";
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            "color=c=gray:s=640x480:r=10:d=4",
            "-i",
            a,
            "-filter_complex",
            walk,
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            path(&leaving),
        ]);
        let frames = dir.join("frames");
        std::fs::create_dir_all(&frames).unwrap();
        ffmpeg(&["-i", path(&crossing), path(&frames.join("%06d.png"))]);
        Videos { dir, crossing, crossing_ts, truncated, no_face, leaving, frames }
    })
}

fn rows(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn detect(args: &[&str]) -> (Vec<serde_json::Value>, std::process::Output) {
    let mut all = vec!["detect"];
    all.extend(args);
    let output = hrm(&all);
    (rows(&output.stdout), output)
}

/// Rows by frame number.
fn by_frame(rows: &[serde_json::Value]) -> BTreeMap<u64, Vec<&serde_json::Value>> {
    let mut frames: BTreeMap<u64, Vec<&serde_json::Value>> = BTreeMap::new();
    for row in rows {
        frames.entry(row["frame"].as_u64().unwrap()).or_default().push(row);
    }
    frames
}

#[test]
fn a_video_gives_every_frame_at_ffprobes_timestamps_with_the_aus_of_its_frames_as_images() {
    let v = videos();
    let (video_rows, output) = detect(&[path(&v.crossing)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let times = ffprobe_times(&v.crossing);
    assert_eq!(times.len(), 30);
    let frames = by_frame(&video_rows);
    assert_eq!(frames.keys().copied().collect::<Vec<_>>(), (1..=30).collect::<Vec<u64>>(), "frames 1 to 30");
    for (&frame, rows) in &frames {
        for row in rows {
            let t = row["timestamp"].as_f64().unwrap();
            assert!(
                (t - times[frame as usize - 1]).abs() < 1e-6,
                "frame {frame}: {t} vs ffprobe {}",
                times[frame as usize - 1]
            );
            assert_eq!(row["file"], path(&v.crossing));
        }
    }
    let faces: usize = video_rows.iter().filter(|r| r["success"] == true).count();
    assert!(faces >= 50, "two faces in most of 30 frames, found {faces}");

    // The same frames as images (ffmpeg's PNGs): the same faces and the same AUs, frame by frame.
    let (image_rows, output) = detect(&[path(&v.frames)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(image_rows.len(), video_rows.len(), "as many rows from the images as from the video");
    let mut compared = 0;
    for (video_row, image_row) in video_rows.iter().zip(&image_rows) {
        let stem = Path::new(image_row["file"].as_str().unwrap()).file_stem().unwrap().to_str().unwrap();
        assert_eq!(stem.parse::<u64>().unwrap(), video_row["frame"].as_u64().unwrap());
        for key in ["face", "success", "bbox", "aus", "present"] {
            assert_eq!(video_row[key], image_row[key], "frame {}: {key}", video_row["frame"]);
        }
        compared += usize::from(video_row["aus"].is_object());
    }
    assert_eq!(compared, faces);
    assert!(image_rows.iter().all(|r| r.get("track").is_none()), "photographs have no tracks");
}

#[test]
fn faces_keep_their_tracks_through_a_crossing_and_a_short_absence() {
    let v = videos();
    let (rows, output) = detect(&[path(&v.crossing)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let mut tracks: BTreeMap<u64, Vec<(u64, f64)>> = BTreeMap::new();
    for row in rows.iter().filter(|r| r["success"] == true) {
        let x = row["bbox"][0].as_f64().unwrap();
        tracks.entry(row["track"].as_u64().unwrap()).or_default().push((row["frame"].as_u64().unwrap(), x));
    }
    assert_eq!(tracks.keys().copied().collect::<Vec<_>>(), [0, 1], "two faces, two tracks: {tracks:?}");
    for (id, seen) in &tracks {
        assert!(seen.len() >= 20, "track {id} seen in {} frames", seen.len());
        let rightwards = seen.windows(2).all(|w| w[1].1 > w[0].1);
        let leftwards = seen.windows(2).all(|w| w[1].1 < w[0].1);
        assert!(rightwards || leftwards, "track {id} changes direction (an id swap): {seen:?}");
    }
    // Face A (moving right) is hidden for three frames and comes back under its own id.
    let a = tracks.values().find(|seen| seen[1].1 > seen[0].1).unwrap();
    let a_frames: BTreeSet<u64> = a.iter().map(|s| s.0).collect();
    assert!(FACE_A_HIDDEN.iter().all(|f| !a_frames.contains(f)), "A is hidden in frames 23-25: {a_frames:?}");
    assert!(a_frames.range(26..).count() >= 4, "A is back after frame 25 with the same id: {a_frames:?}");
}

#[test]
fn a_face_that_walks_out_of_the_picture_and_back_keeps_its_track() {
    let v = videos();
    let (rows, output) = detect(&[path(&v.leaving)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(by_frame(&rows).len(), 40);
    let seen: Vec<(u64, u64)> = rows
        .iter()
        .filter(|r| r["success"] == true)
        .map(|r| (r["frame"].as_u64().unwrap(), r["track"].as_u64().unwrap()))
        .collect();
    let before: Vec<&(u64, u64)> = seen.iter().filter(|(frame, _)| *frame < 20).collect();
    let after: Vec<&(u64, u64)> = seen.iter().filter(|(frame, _)| *frame >= 20).collect();
    assert!(before.len() >= 8 && after.len() >= 8, "seen before and after it left: {seen:?}");
    let gone = (before.last().unwrap().0 + 1..after[0].0).count();
    assert!(gone >= 8, "gone for {gone} frames: {seen:?}");
    assert!(seen.iter().all(|&(_, track)| track == 0), "one track throughout: {seen:?}");
}

#[test]
fn timestamps_are_the_containers_own_and_image_sequences_are_streams() {
    let v = videos();
    let (rows, output) = detect(&[path(&v.crossing_ts)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let times = ffprobe_times(&v.crossing_ts);
    assert_eq!(times.len(), 30);
    assert!(times[0] > 0.5, "MPEG-TS starts late: {}", times[0]);
    let frames = by_frame(&rows);
    assert_eq!(frames.len(), 30);
    for (&frame, rows) in &frames {
        let t = rows[0]["timestamp"].as_f64().unwrap();
        assert!((t - times[frame as usize - 1]).abs() < 1e-6, "frame {frame}: {t} vs {}", times[frame as usize - 1]);
    }
    // An image sequence pattern: ffmpeg's 25 frames a second.
    let pattern = v.frames.join("%06d.png");
    let (rows, output) = detect(&[path(&pattern)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let frames = by_frame(&rows);
    assert_eq!(frames.len(), 30);
    assert!((frames[&30][0]["timestamp"].as_f64().unwrap() - 29.0 / 25.0).abs() < 1e-6);
    assert!(rows.iter().filter(|r| r["success"] == true).all(|r| r["track"].is_u64()));
}

#[test]
fn every_start_and_end_select_frames_but_keep_their_numbers() {
    let v = videos();
    let (rows, output) = detect(&["--every", "4", "--start", "0.5", "--end", "00:02", path(&v.crossing)]);
    assert!(output.status.success(), "{}", stderr(&output));
    // 10 fps: frames 6 (0.5 s) to 20 (1.9 s); every 4th of those.
    assert_eq!(by_frame(&rows).keys().copied().collect::<Vec<_>>(), [6, 10, 14, 18]);
    let output = hrm(&["detect", "--start", "2", "--end", "1", path(&v.crossing)]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--end (1 s) must come after --start (2 s)"), "{}", stderr(&output));
    let output = hrm(&["detect", "--every", "0", path(&v.crossing)]);
    assert!(!output.status.success());
}

#[test]
fn a_truncated_video_keeps_the_frames_it_had_and_fails_and_a_video_without_a_face_has_rows() {
    let v = videos();
    let (rows, output) = detect(&[path(&v.truncated), path(&v.no_face)]);
    assert!(!output.status.success(), "a damaged video is a failure");
    let err = stderr(&output);
    assert!(err.contains(&format!("{}: the stream is damaged", path(&v.truncated))), "{err}");
    assert!(err.contains("1 of 2 inputs failed"), "{err}");
    let truncated: Vec<serde_json::Value> = rows.iter().filter(|r| r["file"] == path(&v.truncated)).cloned().collect();
    let decoded = by_frame(&truncated);
    assert!(decoded.len() >= 10 && decoded.len() < 30, "the frames before the cut: {}", decoded.len());
    assert_eq!(decoded.keys().copied().collect::<Vec<_>>(), (1..=decoded.len() as u64).collect::<Vec<_>>());
    assert!(truncated.iter().any(|r| r["success"] == true));
    // The video without a face, after it: a row per frame, none with a face or a track.
    let empty: Vec<_> = rows.iter().filter(|r| r["file"] == path(&v.no_face)).collect();
    assert_eq!(empty.len(), ffprobe_times(&v.no_face).len());
    assert_eq!(empty.len(), 10);
    assert!(empty.iter().all(|r| r["success"] == false && r["track"].is_null() && r["atypicality"].is_null()));
}

fn atypicality_package() -> PathBuf {
    static PACKAGE: OnceLock<PathBuf> = OnceLock::new();
    PACKAGE
        .get_or_init(|| {
            let package = videos().dir.join("atypicality");
            let checkpoint = fixtures().join("atypicality_gru.pth");
            let output = hrm(&["convert", path(&checkpoint), "--out", path(&package), "--fixture"]);
            assert!(output.status.success(), "{}", stderr(&output));
            package
        })
        .clone()
}

#[test]
fn each_track_is_scored_on_its_last_15_frames_as_hrm_atypicality_scores_the_csv() {
    let v = videos();
    let package = atypicality_package();
    let csv = v.dir.join("scored.csv");
    let output =
        hrm(&["detect", "--format", "csv", "--atypicality", path(&package), "--output", path(&csv), path(&v.crossing)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("reads as absent"), "the estimator's missing AUs are said: {}", stderr(&output));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(&header[..5], ["frame", "timestamp", "track", "face", "success"]);
    assert_eq!(header.last(), Some(&"atypicality"));
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (frame, track, score) = (column("frame"), column("track"), column("atypicality"));
    let mut in_stream: BTreeMap<(String, String), f64> = BTreeMap::new();
    let mut per_track: BTreeMap<String, Vec<bool>> = BTreeMap::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        assert_eq!(cells.len(), header.len());
        if cells[track].is_empty() {
            continue;
        }
        per_track.entry(cells[track].to_string()).or_default().push(!cells[score].is_empty());
        if !cells[score].is_empty() {
            in_stream.insert((cells[frame].to_string(), cells[track].to_string()), cells[score].parse().unwrap());
        }
    }
    assert_eq!(per_track.len(), 2);
    for (id, scored) in &per_track {
        assert!(scored[..14].iter().all(|s| !s), "track {id}: no score before its 15th frame");
        assert!(scored[14..].iter().all(|s| *s), "track {id}: a score from its 15th frame on");
    }
    // `hrm atypicality` on the same CSV scores each track's windows alike.
    let output = hrm(&["atypicality", "--model", path(&package), path(&csv)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("frame,track,atypicality"));
    let mut compared = 0;
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let want = in_stream[&(cells[0].to_string(), cells[1].to_string())];
        let got: f64 = cells[2].parse().unwrap();
        assert!((got - want).abs() < 1e-5, "frame {} track {}: {got} vs {want}", cells[0], cells[1]);
        compared += 1;
    }
    assert_eq!(compared, in_stream.len());
    assert!(compared >= 20, "{compared} windows");
}

#[test]
fn openface_columns_and_plots_of_a_video() {
    let v = videos();
    let output = hrm(&["detect", "--format", "openface", path(&v.crossing)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(
        &header[..8],
        ["frame", "face_id", "timestamp", "confidence", "success", "pose_Rx", "pose_Ry", "pose_Rz"]
    );
    for name in ["AU01_c", "AU12_c", "AU43E_c", "AD19_c", "AU01_p", "AU12_p", "atypicality", "file"] {
        assert!(header.contains(&name), "{name} in {header:?}");
    }
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == header.len()));
    let faces = rows.iter().filter(|r| r[4] == "1").count();
    assert!(faces >= 50, "{faces}");
    let ids: BTreeSet<&str> = rows.iter().filter(|r| r[4] == "1").map(|r| r[1]).collect();
    assert_eq!(ids, BTreeSet::from(["0", "1"]), "face_id is the track");

    // hrm plot, PNG and SVG, from the JSON Lines with scores.
    let results = v.dir.join("plot.jsonl");
    let package = atypicality_package();
    let args = ["detect", "--atypicality", path(&package), "--output", path(&results), path(&v.crossing)];
    assert!(hrm(&args).status.success());
    let png = v.dir.join("timeline.png");
    let output = hrm(&["plot", path(&results), "--out", path(&png)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let picture = image::open(&png).unwrap().to_rgb8();
    assert_eq!(picture.width(), 1200);
    assert_eq!(picture.height(), 40 + 2 * 380, "a panel per track");
    let coloured = picture.pixels().filter(|p| p[0].abs_diff(p[1]) > 60 || p[1].abs_diff(p[2]) > 60).count();
    assert!(coloured > 2000, "AU lines are drawn: {coloured} coloured pixels");
    let svg = v.dir.join("timeline.svg");
    assert!(hrm(&["plot", path(&results), "--out", path(&svg)]).status.success());
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    assert!(text.matches("<polyline").count() >= 2 * 20, "AU and score lines for both tracks");
    assert!(text.contains("track 0") && text.contains("track 1") && text.contains("atypicality"));
    // Photographs have no tracks to draw.
    let photos = v.dir.join("photos.jsonl");
    assert!(hrm(&["detect", "--output", path(&photos), path(&shared_images()[0])]).status.success());
    let output = hrm(&["plot", path(&photos), "--out", path(&png)]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("none of its 1 rows has a face track"), "{}", stderr(&output));
}

#[test]
fn bench_reports_a_videos_frames_per_second() {
    let v = videos();
    let output = hrm(&["bench", "--video", path(&v.no_face)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("10 frames of 320x240, 0 faces:") && text.contains("fps end to end"), "{text}");
}

#[test]
fn an_hrm_package_gives_the_same_aus_two_frames_at_a_time_as_one_and_as_images() {
    let v = videos();
    let package = repo().join("tests/fixtures/packages/resnet_basic");
    // Two frames in flight on one thread each, one frame on both threads, the PNGs on both threads.
    let (parallel, output) = detect(&["--model", path(&package), path(&v.crossing)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let (serial, _) = detect(&["--model", path(&package), "--jobs", "1", path(&v.crossing)]);
    let (images, _) = detect(&["--model", path(&package), path(&v.frames)]);
    assert_eq!((parallel.len(), serial.len(), images.len()), (parallel.len(), parallel.len(), parallel.len()));
    let faces = parallel.iter().filter(|r| r["aus"].is_object()).count();
    assert!(faces >= 50, "{faces}");
    for ((p, s), i) in parallel.iter().zip(&serial).zip(&images) {
        assert_eq!((&p["frame"], &p["track"]), (&s["frame"], &s["track"]));
        assert_eq!(p["aus"], s["aus"], "frame {}: two at a time vs one", p["frame"]);
        assert_eq!(p["aus"], i["aus"], "frame {}: video vs image", p["frame"]);
    }
}

/// Serves one file over HTTP on a loopback port (every request gets the whole file), for as long
/// as the test runs.
fn serve(file: &Path) -> String {
    use std::io::{BufRead, BufReader, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let body = std::fs::read(file).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(&stream);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear(); // the request and its headers, up to the blank line
            }
            let mut stream = &stream;
            let header = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: video/mp2t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(header.as_bytes()).and_then(|()| stream.write_all(&body));
        }
    });
    format!("http://{address}/crossing.ts")
}

#[test]
fn a_stream_over_http_gives_the_files_frames() {
    let v = videos();
    let url = serve(&v.crossing_ts);
    let (rows, output) = detect(&[&url]);
    assert!(output.status.success(), "{}", stderr(&output));
    let (file_rows, _) = detect(&[path(&v.crossing_ts)]);
    assert_eq!(by_frame(&rows).len(), 30);
    assert_eq!(rows.len(), file_rows.len());
    for (a, b) in rows.iter().zip(&file_rows) {
        assert_eq!(a["file"], url.as_str());
        for key in ["frame", "timestamp", "track", "aus"] {
            assert_eq!(a[key], b[key], "frame {}: {key}", a["frame"]);
        }
    }
    // A camera that is not there, and a server that refuses: errors that name them.
    let output = hrm(&["detect", "/dev/video99", "rtsp://127.0.0.1:1/camera"]);
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains("/dev/video99: ffmpeg exited with status") && err.contains("Cannot open video device"),
        "{err}"
    );
    assert!(err.contains("rtsp://127.0.0.1:1/camera: ffmpeg exited with status") && err.contains("refused"), "{err}");
    assert!(err.contains("2 of 2 inputs failed"), "{err}");
}
