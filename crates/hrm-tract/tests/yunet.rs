//! YuNet on tract against OpenCV's own FaceDetectorYN (tests/fixtures/opencv_yunet.json, written
//! by tools/opencv_reference.py): the same number of faces on every shared photograph, and every
//! keypoint within 3 px of OpenCV's in the image's own pixels.

use hrm_core::face::{intersection_over_union, Face, FaceDetector, YunetDetector};
use hrm_core::image::decode_file;
use hrm_core::{ImageView, PixelFormat};

mod common;
use common::repo;

fn reference() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(repo().join("tests/fixtures/opencv_yunet.json")).unwrap()).unwrap()
}

fn detector(model: &str) -> YunetDetector {
    common::yunet(model, None)
}

fn centre(bbox: &[f32; 4]) -> [f32; 2] {
    [bbox[0] + bbox[2] / 2.0, bbox[1] + bbox[3] / 2.0]
}

fn compare(model: &str, tolerance: f32) {
    let mut detector = detector(model);
    compare_with(&mut detector, model, tolerance);
}

fn compare_with(detector: &mut YunetDetector, model: &str, tolerance: f32) {
    let reference = reference();
    for (name, want) in reference["images"].as_object().unwrap() {
        let image = decode_file(&repo().join("../shared/images").join(name)).unwrap();
        let faces = detector.detect(&image.view()).unwrap();
        let want = want["faces"].as_array().unwrap();
        assert_eq!(faces.len(), want.len(), "{model} {name}: face count");
        let mut worst = 0f32;
        for w in want {
            let wb: Vec<f32> = w["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let wc = centre(&[wb[0], wb[1], wb[2], wb[3]]);
            let got: &Face = faces
                .iter()
                .min_by(|a, b| {
                    let d = |f: &Face| (centre(&f.bbox)[0] - wc[0]).hypot(centre(&f.bbox)[1] - wc[1]);
                    d(a).total_cmp(&d(b))
                })
                .unwrap();
            for (k, wk) in w["keypoints"].as_array().unwrap().iter().enumerate() {
                let (x, y) = (wk[0].as_f64().unwrap() as f32, wk[1].as_f64().unwrap() as f32);
                let d = (got.keypoints[k][0] - x).hypot(got.keypoints[k][1] - y);
                worst = worst.max(d);
                assert!(d <= tolerance, "{model} {name} keypoint {k}: {:?} vs OpenCV ({x}, {y})", got.keypoints[k]);
            }
        }
        eprintln!("{model} {name}: {} faces, worst keypoint distance {worst:.2} px", faces.len());
    }
}

#[test]
fn the_640_model_at_each_frames_own_size_matches_opencv() {
    compare("yunet_s_640_640.onnx", 3.0);
}

#[test]
fn the_640_model_letterboxed_finds_the_same_faces() {
    // Letterboxing shrinks multi_face.jpg (1000x667) to 0.64, so the network sees less detail and
    // its keypoints move by up to about 10 px: the same faces, boxes overlapping OpenCV's. The
    // default runs at the frame's own size, which matches OpenCV to a hundredth of a pixel.
    let mut detector = common::yunet("yunet_s_640_640.onnx", Some([640, 640]));
    for (name, want) in reference()["images"].as_object().unwrap() {
        let image = decode_file(&repo().join("../shared/images").join(name)).unwrap();
        let faces = detector.detect(&image.view()).unwrap();
        let want = want["faces"].as_array().unwrap();
        assert_eq!(faces.len(), want.len(), "{name}");
        for w in want {
            let b: Vec<f32> = w["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap() as f32).collect();
            let best =
                faces.iter().map(|f| intersection_over_union(&f.bbox, &[b[0], b[1], b[2], b[3]])).fold(0f32, f32::max);
            assert!(best > 0.7, "{name}: best IoU with OpenCV's box {best}");
        }
    }
}

#[test]
fn dynamic_model_at_native_size_matches_opencv() {
    compare("yunet_s_dynamic.onnx", 3.0);
}

#[test]
fn right_eye_is_on_the_image_left() {
    let mut detector = detector("yunet_s_640_640.onnx");
    let image = decode_file(&repo().join("../shared/images/single_face.jpg")).unwrap();
    let face = &detector.detect(&image.view()).unwrap()[0];
    let [right_eye, left_eye, nose, right_mouth, left_mouth] = face.keypoints;
    assert!(right_eye[0] < left_eye[0] && right_mouth[0] < left_mouth[0]);
    assert!(nose[1] > right_eye[1] && right_mouth[1] > nose[1]);
}

#[test]
fn degenerate_frames_give_no_face_or_an_error_never_a_crash() {
    let mut detector = detector("yunet_s_640_640.onnx");
    let black = vec![0u8; 64 * 48 * 3];
    assert!(detector.detect(&ImageView::new(&black, 64, 48, 64 * 3, PixelFormat::Rgb8).unwrap()).unwrap().is_empty());
    let one = [128u8; 3];
    assert!(detector.detect(&ImageView::new(&one, 1, 1, 3, PixelFormat::Rgb8).unwrap()).unwrap().is_empty());
    assert!(ImageView::new(&one, 1, 1, 0, PixelFormat::Rgb8).is_err(), "zero stride");
    assert!(ImageView::new(&one[..2], 1, 1, 3, PixelFormat::Rgb8).is_err(), "truncated buffer");
}

/// tools/opencv_reference.py's synthetic group photograph, pixel for pixel: the five single-face
/// photographs shrunk with PIL's bilinear resize and pasted 29 times on a grey 3000x2171 canvas.
fn group_photo() -> hrm_core::RgbImage {
    const SOURCES: [&str; 5] =
        ["0-f1-su-ph.jpg", "0-f15-hao-ph.jpg", "15-f13-anc-ph.jpg", "45-m7-di-ph.jpg", "single_face.jpg"];
    let (width, height) = (3000usize, 2171usize);
    let mut canvas = hrm_core::RgbImage { width, height, data: vec![128; width * height * 3] };
    for cell in 0..29usize {
        let photo = decode_file(&repo().join("../shared/images").join(SOURCES[cell % 5])).unwrap();
        let side = 150 + 10 * (cell % 7);
        let h = (side as f64 * photo.height as f64 / photo.width as f64).round_ties_even() as usize;
        let small = hrm_core::resize::resize_bilinear(&photo, side, h);
        let (col, row) = (cell % 6, cell / 6);
        let (x0, y0) = (col * 500 + 40 + 7 * row, row * 434 + 30 + 5 * col);
        for y in 0..small.height {
            let dst = ((y0 + y) * width + x0) * 3;
            canvas.data[dst..dst + small.width * 3]
                .copy_from_slice(&small.data[y * small.width * 3..][..small.width * 3]);
        }
    }
    canvas
}

#[test]
fn a_large_group_photograph_gives_opencvs_small_faces() {
    let reference = reference();
    let group = &reference["group"];
    let photo = group_photo();
    assert_eq!(
        hrm_core::manifest::sha256_bytes(&photo.data),
        group["rgb_sha256"].as_str().unwrap(),
        "the same pixels as OpenCV saw"
    );
    let faces = detector("yunet_s_640_640.onnx").detect(&photo.view()).unwrap();
    let want = group["faces"].as_array().unwrap();
    assert!(faces.len() >= 27 && faces.len() <= 29, "{} faces of 29", faces.len());
    assert_eq!(faces.len(), want.len(), "as many faces as OpenCV");
    for w in want {
        let wk: Vec<[f32; 2]> = w["keypoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| [p[0].as_f64().unwrap() as f32, p[1].as_f64().unwrap() as f32])
            .collect();
        let best = faces
            .iter()
            .map(|f| f.keypoints.iter().zip(&wk).map(|(a, b)| (a[0] - b[0]).hypot(a[1] - b[1])).fold(0f32, f32::max))
            .fold(f32::INFINITY, f32::min);
        assert!(best <= 3.0, "a face's keypoints are {best} px from OpenCV's");
    }
}
