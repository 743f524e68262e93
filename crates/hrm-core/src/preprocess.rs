//! HRM's input pipeline: `Resize((H, W))` (PIL bilinear), `ToTensor()`, `Normalize(mean, std)`.

use crate::image::RgbImage;
use crate::manifest::{ChannelOrder, InputSpec, Layout};
use crate::resize::resize_bilinear;

/// Writes one face into `out` (`3 * height * width` values) as the spec lays it out: CHW planes
/// or HWC pixels.
///
/// The arithmetic is torchvision's, in f32: `(pixel / 255 - mean) / std`.
pub fn preprocess_into(face: &RgbImage, spec: &InputSpec, out: &mut [f32]) {
    let resized;
    let pixels = if face.width == spec.width && face.height == spec.height {
        face
    } else {
        resized = resize_bilinear(face, spec.width, spec.height);
        &resized
    };
    let plane = spec.width * spec.height;
    let order = match spec.channel_order {
        ChannelOrder::Rgb => [0, 1, 2],
        ChannelOrder::Bgr => [2, 1, 0],
    };
    let value =
        |px: &[u8], channel: usize| (px[order[channel]] as f32 / 255.0 - spec.mean[channel]) / spec.std[channel];
    match spec.layout {
        Layout::Nchw => {
            for (channel, dst) in out.chunks_exact_mut(plane).enumerate() {
                for (d, px) in dst.iter_mut().zip(pixels.data.chunks_exact(3)) {
                    *d = value(px, channel);
                }
            }
        }
        Layout::Nhwc => {
            for (dst, px) in out.chunks_exact_mut(3).zip(pixels.data.chunks_exact(3)) {
                for (channel, d) in dst.iter_mut().enumerate() {
                    *d = value(px, channel);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::Framing;

    #[test]
    fn nhwc_holds_the_values_of_nchw_pixel_by_pixel() {
        let face = RgbImage { width: 2, height: 2, data: vec![0, 51, 102, 153, 204, 255, 10, 20, 30, 40, 50, 60] };
        let spec = |layout| InputSpec {
            width: 2,
            height: 2,
            layout,
            framing: Framing::Keypoints,
            channel_order: ChannelOrder::Rgb,
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        let (mut chw, mut hwc) = (vec![f32::NAN; 12], vec![f32::NAN; 12]);
        preprocess_into(&face, &spec(Layout::Nchw), &mut chw);
        preprocess_into(&face, &spec(Layout::Nhwc), &mut hwc);
        assert_eq!(hwc[..6], [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]);
        for (pixel, rgb) in hwc.chunks_exact(3).enumerate() {
            for (channel, &v) in rgb.iter().enumerate() {
                assert_eq!(v, chw[channel * 4 + pixel], "pixel {pixel} channel {channel}");
            }
        }
    }
}
