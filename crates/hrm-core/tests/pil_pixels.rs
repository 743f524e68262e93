//! Decoding and resizing reproduce PIL's bytes: `tools/make_fixtures.py` recorded the sha256 of
//! `Image.open(p).convert('RGB')` and of its `.resize((224, 224), Image.BILINEAR)` for every
//! shared photograph (one of them a progressive JPEG, all 4:2:0).

use hrm_core::image::decode_file;
use hrm_core::manifest::sha256_bytes;
use hrm_core::resize::resize_bilinear;
use std::path::Path;

#[test]
fn decoded_and_resized_pixels_equal_pils() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("tests/fixtures/expected.json")).unwrap()).unwrap();
    let pixels = expected["pixels"].as_object().unwrap();
    assert_eq!(pixels.len(), 6);
    for (name, want) in pixels {
        let image = decode_file(&repo.join("../shared/images").join(name)).unwrap();
        assert_eq!(
            [image.width as u64, image.height as u64],
            [want["size"][0].as_u64().unwrap(), want["size"][1].as_u64().unwrap()]
        );
        assert_eq!(
            sha256_bytes(&image.data),
            want["decoded_sha256"].as_str().unwrap(),
            "{name}: decoded pixels differ from PIL's"
        );
        let resized = resize_bilinear(&image, 224, 224);
        assert_eq!(
            sha256_bytes(&resized.data),
            want["resized_sha256"].as_str().unwrap(),
            "{name}: resized pixels differ from PIL's"
        );
    }
}

#[test]
fn png_round_trip_is_exact_and_gray_becomes_rgb() {
    // A grayscale PNG decodes like PIL's convert('RGB'): each gray level copied to R, G and B.
    let dir = std::env::temp_dir().join(format!("hrm-png-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("gray.png");
    let gray = image::GrayImage::from_fn(5, 3, |x, y| image::Luma([(x * 40 + y * 7) as u8]));
    gray.save(&path).unwrap();
    let rgb = decode_file(&path).unwrap();
    let want: Vec<u8> = gray.as_raw().iter().flat_map(|&g| [g, g, g]).collect();
    assert_eq!(rgb.data, want);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn sixteen_bit_pngs_decode_as_pil_opens_them() {
    // PIL 13: a 16-bit RGB PNG opens as "RGB" keeping the high byte; 16-bit gray opens as "I;16",
    // which convert('RGB') clips to 255. Values printed by PIL for these exact samples.
    let dir = std::env::temp_dir().join(format!("hrm-png16-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rgb_path = dir.join("rgb16.png");
    let rgb: Vec<u16> = vec![0, 300, 65535, 257, 1000, 40000];
    image::ImageBuffer::<image::Rgb<u16>, _>::from_raw(2, 1, rgb).unwrap().save(&rgb_path).unwrap();
    assert_eq!(decode_file(&rgb_path).unwrap().data, [0, 1, 255, 1, 3, 156]);
    let gray_path = dir.join("gray16.png");
    let gray: Vec<u16> = vec![0, 100, 255, 256, 1000, 65535];
    image::ImageBuffer::<image::Luma<u16>, _>::from_raw(6, 1, gray).unwrap().save(&gray_path).unwrap();
    let want: Vec<u8> = [0u8, 100, 255, 255, 255, 255].iter().flat_map(|&v| [v; 3]).collect();
    assert_eq!(decode_file(&gray_path).unwrap().data, want);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn cmyk_jpegs_decode_as_pil_converts_them() {
    // tools/make_cmyk_fixture.py: a CMYK JPEG with Adobe's inverted polarity, and the sha256 of
    // PIL's Image.open(p).convert('RGB') (its cmyk2rgb after libjpeg's CMYK output).
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixtures.join("cmyk.json")).unwrap()).unwrap();
    let image = decode_file(&fixtures.join("cmyk.jpg")).unwrap();
    assert_eq!([image.width, image.height], [96, 64]);
    assert_eq!(image.data.len(), 96 * 64 * 3);
    assert_eq!(sha256_bytes(&image.data), want["decoded_sha256"].as_str().unwrap(), "CMYK pixels differ from PIL's");
}
