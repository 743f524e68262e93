//! `hrm detect` on raw photographs: YuNet + alignment + AUs, checked against OpenCV's
//! FaceDetectorYN (tests/fixtures/opencv_yunet.json, from tools/opencv_reference.py).

mod common;
use common::*;

fn detect_json(args: &[&str]) -> (Vec<serde_json::Value>, String, bool) {
    let output = hrm(args);
    let rows =
        String::from_utf8(output.stdout.clone()).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    (rows, stderr(&output), output.status.success())
}

fn config() -> String {
    repo().join("configs/hrm-package.toml").to_str().unwrap().to_string()
}

#[test]
fn every_shared_photograph_gives_opencvs_faces_with_aus() {
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures().join("opencv_yunet.json")).unwrap()).unwrap();
    let images = shared_images();
    let config = config();
    let mut args = vec!["detect", "--config", config.as_str()];
    args.extend(images.iter().map(|p| path(p)));
    let (rows, text, ok) = detect_json(&args);
    assert!(ok, "{text}");
    for image in &images {
        let name = image.file_name().unwrap().to_str().unwrap();
        let mine: Vec<&serde_json::Value> = rows.iter().filter(|r| r["file"] == path(image)).collect();
        let theirs = reference["images"][name]["faces"].as_array().unwrap();
        assert_eq!(mine.len(), theirs.len(), "{name}: faces");
        for (i, row) in mine.iter().enumerate() {
            assert_eq!(row["face"], i);
            assert_eq!(row["success"], true);
            assert_eq!(row["bbox"].as_array().unwrap().len(), 4);
            assert_eq!(row["aus"].as_object().unwrap().len(), 22);
            // The nearest OpenCV face has every keypoint within 3 px.
            let kp = |v: &serde_json::Value| -> Vec<[f64; 2]> {
                v.as_array().unwrap().iter().map(|p| [p[0].as_f64().unwrap(), p[1].as_f64().unwrap()]).collect()
            };
            let mine = kp(&row["keypoints"]);
            let best = theirs
                .iter()
                .map(|f| {
                    kp(&f["keypoints"])
                        .iter()
                        .zip(&mine)
                        .map(|(a, b)| (a[0] - b[0]).hypot(a[1] - b[1]))
                        .fold(0f64, f64::max)
                })
                .fold(f64::INFINITY, f64::min);
            assert!(best <= 3.0, "{name} face {i}: keypoints {best} px from OpenCV's");
        }
    }
}

#[test]
fn a_frame_without_a_face_gives_one_unsuccessful_row() {
    let dir = tempfile::tempdir().unwrap();
    let black = dir.path().join("black.png");
    image::save_buffer(&black, &vec![0u8; 320 * 240 * 3], 320, 240, image::ExtendedColorType::Rgb8).unwrap();
    let config = config();
    let (rows, text, ok) = detect_json(&["detect", "--config", &config, path(&black)]);
    assert!(ok, "{text}");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["success"], false);
    assert!(rows[0].get("aus").is_none());
}

#[test]
fn save_aligned_writes_one_crop_per_face_at_the_models_input_size() {
    let dir = tempfile::tempdir().unwrap();
    let crops = dir.path().join("crops");
    let config = config();
    let multi = repo().join("../shared/images/multi_face.jpg");
    let (_, text, ok) = detect_json(&["detect", "--config", &config, "--save-aligned", path(&crops), path(&multi)]);
    assert!(ok, "{text}");
    for i in 0..5 {
        let crop = image::open(crops.join(format!("multi_face_face{i}.png"))).unwrap();
        assert_eq!((crop.width(), crop.height()), (224, 224));
    }
}

#[test]
fn csv_rows_carry_the_detection_columns() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("out.csv");
    let config = config();
    let multi = repo().join("../shared/images/multi_face.jpg");
    let output = hrm(&["detect", "--config", &config, "--format", "csv", "--output", path(&csv), path(&multi)]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = std::fs::read_to_string(&csv).unwrap();
    let mut lines = text.lines();
    assert!(lines.next().unwrap().starts_with("frame,face,success,score,x,y,w,h,right_eye_x,"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 5);
    assert!(rows.iter().all(|r| r.split(',').nth(2) == Some("1")));
}

#[test]
fn raw_frames_without_a_detector_model_use_the_built_in_yunet_and_a_missing_one_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("nodetector.toml");
    let package = fixtures().join("packages/resnet_basic");
    std::fs::write(&config, format!("model = {:?}\n", path(&package))).unwrap();
    let output = hrm(&["detect", "--config", path(&config), path(&shared_images()[0])]);
    assert!(output.status.success(), "{}", stderr(&output));
    let rows: Vec<serde_json::Value> =
        String::from_utf8(output.stdout).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["success"], true);
    std::fs::write(&config, format!("model = {:?}\n[detector]\nmodel = \"missing.onnx\"\n", path(&package))).unwrap();
    let output = hrm(&["detect", "--config", path(&config), path(&shared_images()[0])]);
    assert!(!output.status.success());
    assert!(stderr(&output).contains("missing.onnx"), "{}", stderr(&output));
}
