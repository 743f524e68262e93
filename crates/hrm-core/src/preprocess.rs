//! HRM's input pipeline: `Resize((H, W))` (PIL bilinear), `ToTensor()`, `Normalize(mean, std)`.

use crate::image::RgbImage;
use crate::manifest::{ChannelOrder, InputSpec};
use crate::resize::resize_bilinear;

/// Writes one face as CHW f32 into `out` (`3 * height * width` values).
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
    for (channel, &source) in order.iter().enumerate() {
        let (mean, std) = (spec.mean[channel], spec.std[channel]);
        let dst = &mut out[channel * plane..][..plane];
        for (d, px) in dst.iter_mut().zip(pixels.data.chunks_exact(3)) {
            *d = (px[source] as f32 / 255.0 - mean) / std;
        }
    }
}
