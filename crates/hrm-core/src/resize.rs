//! PIL's `Image.resize(size, Image.BILINEAR)`, reproduced to the bit.
//!
//! Pillow resamples separably (horizontal pass first, then vertical), widens the triangle filter by
//! the scale factor when shrinking (antialiasing), turns the weights into 22-bit fixed point and
//! rounds each pass back to 8 bits. Each of those steps changes the pixels, and the HRM models were
//! trained on exactly those pixels, so each is done the same way here (Pillow's `Resample.c`).

use crate::image::RgbImage;

/// Fixed-point precision of the weights for 8-bit images: `32 - 8 - 2` bits.
const PRECISION_BITS: u32 = 22;

/// Per-output-pixel source window and fixed-point weights along one axis.
struct AxisWeights {
    /// Longest window; each row of `weights` holds this many entries.
    window: usize,
    /// First source index and number of source pixels for each output pixel.
    bounds: Vec<(usize, usize)>,
    weights: Vec<i32>,
}

fn triangle(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 {
        1.0 - x
    } else {
        0.0
    }
}

impl AxisWeights {
    fn new(in_size: usize, out_size: usize) -> Self {
        let scale = in_size as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let support = filter_scale; // the triangle's support is 1
        let window = support.ceil() as usize * 2 + 1;
        let mut bounds = Vec::with_capacity(out_size);
        let mut weights = vec![0i32; out_size * window];
        let mut row = vec![0f64; window];
        for (xx, out_row) in weights.chunks_exact_mut(window).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            // C's `(int)` truncates toward zero, as `as i64` does.
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
            let count = xmax.saturating_sub(xmin);
            let mut total = 0.0;
            for (x, w) in row.iter_mut().enumerate().take(count) {
                *w = triangle(((x + xmin) as f64 - center + 0.5) / filter_scale);
                total += *w;
            }
            for (w, fixed) in row.iter().zip(out_row.iter_mut()).take(count) {
                let w = if total != 0.0 { w / total } else { *w };
                let scaled = w * (1u32 << PRECISION_BITS) as f64;
                *fixed = if w < 0.0 { (scaled - 0.5) as i32 } else { (scaled + 0.5) as i32 };
            }
            bounds.push((xmin, count));
        }
        AxisWeights { window, bounds, weights }
    }

    fn of(&self, out_index: usize) -> (usize, &[i32]) {
        let (first, count) = self.bounds[out_index];
        (first, &self.weights[out_index * self.window..][..count])
    }
}

fn clip8(acc: i32) -> u8 {
    if acc >= (1 << PRECISION_BITS << 8) {
        255
    } else if acc <= 0 {
        0
    } else {
        (acc >> PRECISION_BITS) as u8
    }
}

const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Resizes like `PIL.Image.resize((width, height), Image.BILINEAR)` on an RGB image.
pub fn resize_bilinear(src: &RgbImage, width: usize, height: usize) -> RgbImage {
    let (horizontal, vertical) = (src.width != width, src.height != height);
    let cols = AxisWeights::new(src.width, width);
    let rows = AxisWeights::new(src.height, height);

    // The horizontal pass only covers the source rows the vertical pass will read.
    let (first_row, row_count) = if vertical {
        let last = rows.bounds.last().map_or(0, |&(start, count)| start + count);
        (rows.bounds[0].0, last - rows.bounds[0].0)
    } else {
        (0, src.height)
    };

    let mut stage = src.clone();
    if horizontal {
        let mut out = vec![0u8; width * row_count * 3];
        for (y, out_row) in out.chunks_exact_mut(width * 3).enumerate() {
            let in_row = &src.data[(y + first_row) * src.width * 3..][..src.width * 3];
            for (x, out_px) in out_row.chunks_exact_mut(3).enumerate() {
                let (start, weights) = cols.of(x);
                let mut acc = [HALF; 3];
                for (i, &k) in weights.iter().enumerate() {
                    let px = &in_row[(start + i) * 3..][..3];
                    for c in 0..3 {
                        acc[c] += px[c] as i32 * k;
                    }
                }
                for c in 0..3 {
                    out_px[c] = clip8(acc[c]);
                }
            }
        }
        stage = RgbImage { width, height: row_count, data: out };
    } else if vertical {
        stage.data.drain(..first_row * src.width * 3);
        stage.data.truncate(row_count * src.width * 3);
        stage.height = row_count;
    }

    if !vertical {
        return stage;
    }
    let row_len = stage.width * 3;
    let mut out = vec![0u8; row_len * height];
    for (y, out_row) in out.chunks_exact_mut(row_len).enumerate() {
        let (start, weights) = rows.of(y);
        let start = start - first_row;
        for (i, o) in out_row.iter_mut().enumerate() {
            let mut acc = HALF;
            for (j, &k) in weights.iter().enumerate() {
                acc += stage.data[(start + j) * row_len + i] as i32 * k;
            }
            *o = clip8(acc);
        }
    }
    RgbImage { width: stage.width, height, data: out }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(width: usize, height: usize, f: impl Fn(usize) -> u8) -> RgbImage {
        RgbImage { width, height, data: (0..width * height * 3).map(f).collect() }
    }

    #[test]
    fn same_size_is_a_copy() {
        let src = image(7, 5, |i| (i * 37 % 251) as u8);
        assert_eq!(resize_bilinear(&src, 7, 5), src);
    }

    #[test]
    fn a_flat_image_stays_flat_at_any_scale() {
        let src = image(37, 23, |_| 200);
        for (w, h) in [(224, 224), (5, 3), (37, 100), (1, 1)] {
            let out = resize_bilinear(&src, w, h);
            assert_eq!((out.width, out.height), (w, h));
            assert!(out.data.iter().all(|&v| v == 200), "{w}x{h}");
        }
    }

    #[test]
    fn halving_averages_pixel_pairs_with_pil_weights() {
        // Shrinking 4 -> 2 widens the triangle to support 2: weights 1/8, 3/8, 3/8, 1/8 around
        // each centre, truncated at the border and renormalised (Pillow gives 3/7, 3/7, 1/7 there).
        let src = RgbImage { width: 4, height: 1, data: [0u8, 80, 160, 240].iter().flat_map(|&v| [v; 3]).collect() };
        let out = resize_bilinear(&src, 2, 1);
        // (0*3 + 80*3 + 160*1) / 7 = 57.14 -> 57; (80*1 + 160*3 + 240*3) / 7 = 182.86 -> 183
        assert_eq!(out.data, [57, 57, 57, 183, 183, 183]);
    }
}
