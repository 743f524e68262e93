//! Alignment on real detections: the same face, photographed at another scale and angle, gives the
//! same crop.

use hrm_core::align::{align, warp, AlignmentConfig, Similarity};
use hrm_core::face::{FaceDetector, YunetDetector};
use hrm_core::image::decode_file;
use hrm_core::RgbImage;
use std::path::Path;

mod common;
use common::repo;

fn aligned(detector: &mut YunetDetector, frame: &RgbImage) -> (RgbImage, Similarity) {
    let faces = detector.detect(&frame.view()).unwrap();
    assert_eq!(faces.len(), 1, "one face");
    align(frame, &faces[0], &AlignmentConfig::default(), 224, 224).unwrap()
}

/// Mean absolute difference of 16x16-pixel block averages: resampling blur and background texture
/// average out, a shifted or tilted face does not.
fn block_difference(a: &RgbImage, b: &RgbImage) -> f32 {
    let blocks = |img: &RgbImage| -> Vec<f32> {
        let mut out = vec![0f32; 14 * 14 * 3];
        for y in 0..224 {
            for x in 0..224 {
                for c in 0..3 {
                    out[((y / 16) * 14 + x / 16) * 3 + c] += img.data[(y * 224 + x) * 3 + c] as f32 / 256.0;
                }
            }
        }
        out
    };
    let (a, b) = (blocks(a), blocks(b));
    a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

/// The photo rotated and scaled about its centre into a 900x900 frame, and that transform.
fn moved_photo(photo: &RgbImage, degrees: f32, scale: f32) -> (RgbImage, Similarity) {
    let (c, s) = (scale * degrees.to_radians().cos(), scale * degrees.to_radians().sin());
    let (cx, cy) = (photo.width as f32 / 2.0, photo.height as f32 / 2.0);
    let moved = Similarity { a: c, b: s, tx: 450.0 - (c * cx - s * cy), ty: 450.0 - (s * cx + c * cy) };
    (warp(photo, &moved, 900, 900), moved)
}

const POSES: [(f32, f32); 4] = [(12.0, 0.8), (-20.0, 1.3), (5.0, 0.6), (0.0, 1.0)];

#[test]
fn given_the_same_keypoints_any_pose_aligns_to_the_same_crop() {
    let mut detector = common::yunet("yunet_s_640_640.onnx", None);
    let photo = decode_file(&repo().join("../shared/images/single_face.jpg")).unwrap();
    let face = detector.detect(&photo.view()).unwrap().remove(0);
    let config = AlignmentConfig::default();
    let (reference, photo_to_crop) = align(&photo, &face, &config, 224, 224).unwrap();
    for (degrees, scale) in POSES {
        let (frame, moved) = moved_photo(&photo, degrees, scale);
        let mut moved_face = face.clone();
        moved_face.keypoints = face.keypoints.map(|k| moved.apply(k));
        let (crop, frame_to_crop) = align(&frame, &moved_face, &config, 224, 224).unwrap();
        for p in [[0.0, 0.0], [286.0, 281.0], [572.0, 562.0]] {
            let (a, b) = (photo_to_crop.apply(p), frame_to_crop.apply(moved.apply(p)));
            assert!((a[0] - b[0]).hypot(a[1] - b[1]) < 0.05, "{degrees} degrees, scale {scale}");
        }
        // Only resampling differs: the frame was itself resampled from the photo.
        let difference = block_difference(&reference, &crop);
        assert!(difference < 2.0, "{degrees} degrees, scale {scale}: block difference {difference}");
    }
}

#[test]
fn detected_and_aligned_at_any_pose_the_face_lands_in_the_same_place() {
    // End to end, YuNet's keypoints move by a few pixels with the pose (its outputs are not
    // equivariant to shifts below its 32-pixel stride), so the crops agree to a few percent.
    let mut detector = common::yunet("yunet_s_640_640.onnx", None);
    let photo = decode_file(&repo().join("../shared/images/single_face.jpg")).unwrap();
    let (reference, photo_to_crop) = aligned(&mut detector, &photo);
    if let Ok(dir) = std::env::var("HRM_SAVE_ALIGNED") {
        image::save_buffer(
            Path::new(&dir).join("reference.png"),
            &reference.data,
            224,
            224,
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    }
    for (degrees, scale) in POSES {
        let (frame, moved) = moved_photo(&photo, degrees, scale);
        let (crop, frame_to_crop) = aligned(&mut detector, &frame);
        // The face's own landmarks (the reference detection) land within 5 % of the crop.
        let face = detector.detect(&photo.view()).unwrap().remove(0);
        for k in face.keypoints {
            let (a, b) = (photo_to_crop.apply(k), frame_to_crop.apply(moved.apply(k)));
            let distance = (a[0] - b[0]).hypot(a[1] - b[1]);
            assert!(distance < 0.05 * 224.0, "{degrees} degrees, scale {scale}: a keypoint lands {distance} px apart");
        }
        let rotation = |t: &Similarity| t.b.atan2(t.a).to_degrees();
        let tilt = rotation(&frame_to_crop) + rotation(&moved) - rotation(&photo_to_crop);
        // YuNet's keypoints on a face turned by 20 degrees leave about 5 degrees of it in the crop.
        assert!(tilt.abs() < 6.0, "{degrees} degrees: the crop is {tilt} degrees off the reference");
        if let Ok(dir) = std::env::var("HRM_SAVE_ALIGNED") {
            let name = format!("pose_{degrees}_{scale}.png");
            image::save_buffer(Path::new(&dir).join(name), &crop.data, 224, 224, image::ExtendedColorType::Rgb8)
                .unwrap();
        }
    }
}
