//! The models built into hrm: `hrm detect` with no configuration, `configs/cpu.toml` as shipped,
//! the rows the MediaPipe estimator writes, and `hrm info` without a package. The numbers are
//! checked against MediaPipe's own FaceLandmarker (`../shared/reference`).

mod common;
use common::*;

fn shared_image(name: &str) -> std::path::PathBuf {
    repo().join("../shared/images").join(name)
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(repo().join("../shared/reference/mediapipe_face_landmarker.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn json_rows(output: &std::process::Output) -> Vec<serde_json::Value> {
    assert!(output.status.success(), "{}", stderr(output));
    String::from_utf8(output.stdout.clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn detect_without_a_configuration_gives_mediapipes_blendshapes_and_pose() {
    let image = shared_image("0-f1-su-ph.jpg");
    let output = hrm(&["detect", "--landmarks", path(&image)]);
    assert!(stderr(&output).contains("estimates derived from MediaPipe's blendshapes"), "{}", stderr(&output));
    let rows = json_rows(&output);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    let want = &reference()["0-f1-su-ph.jpg"][0];
    assert_eq!(row["success"], true);
    let blendshapes = row["blendshapes"].as_object().unwrap();
    assert_eq!(blendshapes.len(), 52);
    for (name, value) in blendshapes {
        let diff = (value.as_f64().unwrap() - want["blendshapes"][name].as_f64().unwrap()).abs();
        assert!(diff < 0.01, "{name}: {value} vs MediaPipe's {}", want["blendshapes"][name]);
    }
    for axis in ["pitch", "yaw", "roll"] {
        let diff = (row["pose"][axis].as_f64().unwrap() - want["pose"][axis].as_f64().unwrap()).abs();
        assert!(diff < 1.0, "{axis}: {} vs {}", row["pose"], want["pose"]);
    }
    assert_eq!(row["landmarks"].as_array().unwrap().len(), 478);
    assert_eq!(row["landmarks"][0].as_array().unwrap().len(), 3);
    // A posed surprise: inner and outer brows raised, the jaw dropped.
    for id in ["AU1", "AU2", "AU2X"] {
        assert_eq!(row["present"][id], true, "{id}: {}", row["aus"][id]);
    }
    // AUs without a blendshape counterpart are null, never 0.
    let aus = row["aus"].as_object().unwrap();
    assert_eq!(aus.len(), 22);
    let nulls: Vec<&String> = aus.iter().filter(|(_, v)| v.is_null()).map(|(k, _)| k).collect();
    assert_eq!(nulls, ["AD19", "AU23", "AD32"]);
    assert!(row["present"]["AD19"].is_null());
}

#[test]
fn configs_cpu_toml_runs_as_shipped_and_writes_empty_cells_for_aus_it_cannot_estimate() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("predict.csv");
    let image = shared_image("0-f15-hao-ph.jpg");
    let config = repo().join("configs/cpu.toml");
    let output = hrm(&["detect", "--config", path(&config), "--format", "csv", "--output", path(&out), path(&image)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let header: Vec<&str> = lines[0].split(',').collect();
    let cells: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(header.len(), cells.len());
    let cell = |name: &str| cells[header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("{name}"))];
    for label in ["19", "23", "32"] {
        assert_eq!(cell(label), "", "AU {label}");
    }
    // The smile: lip corners pulled, cheeks raised.
    assert_eq!((cell("12"), cell("6")), ("1", "1"));
    let want = &reference()["0-f15-hao-ph.jpg"][0]["pose"];
    for axis in ["pitch", "yaw", "roll"] {
        let diff = (cell(axis).parse::<f64>().unwrap() - want[axis].as_f64().unwrap()).abs();
        assert!(diff < 1.0, "{axis}: {} vs {want}", cell(axis));
    }
}

#[test]
fn a_face_the_mesh_rejects_is_a_row_without_aus() {
    // multi_face.jpg: YuNet finds five faces; the mesh sees no face in one of them.
    let rows = json_rows(&hrm(&["detect", path(&shared_image("multi_face.jpg"))]));
    assert_eq!(rows.len(), 5);
    let failed: Vec<&serde_json::Value> = rows.iter().filter(|r| r["success"] == false).collect();
    assert_eq!(failed.len(), 1);
    let row = failed[0];
    assert!(row["mesh_score"].as_f64().unwrap() < 0.5);
    assert!(row["pose"].is_null() && row.get("blendshapes").is_none());
    assert!(row["aus"].as_object().unwrap().values().all(|v| v.is_null()));
}

#[test]
fn aligned_crops_with_the_estimator_are_refused_clearly() {
    let output = hrm(&["detect", "--aligned", path(&shared_image("single_face.jpg"))]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("without --aligned"), "{}", stderr(&output));
}

#[test]
fn info_without_a_package_lists_the_built_in_models_and_their_licences() {
    let output = hrm(&["info"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    for needle in [
        "yunet_s_640_640.onnx",
        "mp_face_landmarks_detector_478.onnx",
        "mp_face_blendshapes.onnx",
        "mp_blazeface_short_range.onnx",
        "mp_geometry_pipeline_metadata_landmarks.binarypb",
        "Apache-2.0",
        "LICENSE-Apache-2.0.txt",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    // The same package loads from disk, as any package does.
    let output = hrm(&["info", path(&repo().join("models/mediapipe"))]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(String::from_utf8(output.stdout).unwrap().contains("mediapipe-blendshapes"));
}

#[test]
fn bench_times_the_built_in_pipeline_and_the_meshs_stages() {
    let image = shared_image("single_face.jpg");
    let args = ["bench", "--detection", "--pipeline", "--frame-size", "320x240", "--iterations", "1", "--warmup", "1"];
    let output = hrm(&[&args[..], &["--image", path(&image)]].concat());
    assert!(output.status.success(), "{}", stderr(&output));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(text.contains("face mesh + head pose + AU model `mediapipe-blendshapes`"), "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("320x240"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "the pipeline's row and the stages' row:\n{text}");
    let stages = &rows[1];
    assert_eq!(stages[1], "1", "one face");
    assert!(stages[2..].iter().all(|v| v.parse::<f64>().is_ok_and(|ms| ms > 0.0)), "{text}");
}
