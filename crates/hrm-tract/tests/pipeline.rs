//! The whole pipeline on caller frames: every pixel layout and stride gives the faces and AUs the
//! RGB image gives, and degenerate frames give an empty result.

use hrm_core::image::decode_file;
use hrm_core::pipeline::Pipeline;
use hrm_core::{ImageView, PixelFormat};

mod common;
use common::repo;

fn pipeline() -> Pipeline {
    common::runtime(1).pipeline().unwrap()
}

#[test]
fn bgra_frames_with_padded_rows_give_the_rgb_answer() {
    let mut pipeline = pipeline();
    let photo = decode_file(&repo().join("../shared/images/multi_face.jpg")).unwrap();
    let from_rgb = pipeline.process(&photo.view()).unwrap();
    assert_eq!(from_rgb.len(), 5);

    let stride = photo.width * 4 + 24;
    let mut bgra = vec![0u8; stride * photo.height];
    for y in 0..photo.height {
        for x in 0..photo.width {
            let p = &photo.data[(y * photo.width + x) * 3..][..3];
            bgra[y * stride + x * 4..][..4].copy_from_slice(&[p[2], p[1], p[0], 255]);
        }
    }
    let view = ImageView::new(&bgra, photo.width, photo.height, stride, PixelFormat::Bgra8).unwrap();
    let from_bgra = pipeline.process(&view).unwrap();
    assert_eq!(from_bgra.len(), from_rgb.len());
    for (a, b) in from_rgb.iter().zip(&from_bgra) {
        assert_eq!(a.face, b.face);
        assert_eq!(a.aus, b.aus);
    }
}

#[test]
fn crops_are_kept_only_when_asked() {
    let mut pipeline = pipeline();
    let photo = decode_file(&repo().join("../shared/images/single_face.jpg")).unwrap();
    assert!(pipeline.process(&photo.view()).unwrap()[0].aligned.is_none());
    pipeline.keep_crops(true);
    let crop = pipeline.process(&photo.view()).unwrap().remove(0).aligned.unwrap();
    assert_eq!((crop.width, crop.height), (224, 224));
}

#[test]
fn frames_without_faces_give_no_faces() {
    let mut pipeline = pipeline();
    let gray = vec![90u8; 48 * 32];
    let view = ImageView::new(&gray, 48, 32, 48, PixelFormat::Gray8).unwrap();
    assert!(pipeline.process(&view).unwrap().is_empty());
    let one = [200u8; 4];
    let view = ImageView::new(&one, 1, 1, 4, PixelFormat::Rgba8).unwrap();
    assert!(pipeline.process(&view).unwrap().is_empty());
}
