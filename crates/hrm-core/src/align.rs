//! Five-point face alignment: the least-squares similarity (rotation, uniform scale, translation;
//! Umeyama's solution, which in 2-D has a closed form) from the detected keypoints to a template,
//! and a bilinear warp straight to the model's input size.

use crate::face::Face;
use crate::image::RgbImage;
use serde::Deserialize;

/// Where the five keypoints land in the aligned crop, as fractions of its width and height, in
/// YuNet's order: right eye, left eye, nose tip, right mouth corner, left mouth corner.
///
/// The default frames the face roughly as OpenFace 2.2's 224x224 aligned crop (similarity scale
/// 0.7 * 224 / 112) does, with the forehead and the chin inside the crop (HRM's guide asks for
/// both, for AU1/AU2 and AU26/27): eyes 30 % of the width apart at 36 % of the height, mouth at
/// 70 %. It is an approximation of OpenFace's framing, not a copy of its mean shape.
pub const DEFAULT_TEMPLATE: [[f32; 2]; 5] = [[0.35, 0.36], [0.65, 0.36], [0.50, 0.52], [0.37, 0.70], [0.63, 0.70]];

/// The closest two template points may lie, as a fraction of the crop.
const MIN_TEMPLATE_SPACING: f32 = 0.01;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlignmentConfig {
    #[serde(default = "default_template")]
    pub template: [[f32; 2]; 5],
    /// Extra context around the face: 0.2 shrinks the template towards the crop's centre so the
    /// face takes 1 / 1.2 of its default size.
    #[serde(default)]
    pub margin: f32,
}

fn default_template() -> [[f32; 2]; 5] {
    DEFAULT_TEMPLATE
}

impl Default for AlignmentConfig {
    fn default() -> Self {
        AlignmentConfig { template: DEFAULT_TEMPLATE, margin: 0.0 }
    }
}

impl AlignmentConfig {
    /// Refuses a template the warp cannot use: coordinates that are not finite or lie far outside
    /// the crop, and points that coincide (every face would be scaled to nothing, or to infinity).
    /// Returns the field, what was expected and what was found.
    pub fn validate_template(&self) -> Result<(), (String, String, String)> {
        for (i, point) in self.template.iter().enumerate() {
            if !point.iter().all(|v| v.is_finite() && (-1.0..=2.0).contains(v)) {
                let expected = "fractions of the crop from -1 to 2".to_string();
                return Err((format!("template[{i}]"), expected, format!("{point:?}")));
            }
        }
        for i in 0..5 {
            for j in i + 1..5 {
                let [a, b] = [self.template[i], self.template[j]];
                if (a[0] - b[0]).hypot(a[1] - b[1]) < MIN_TEMPLATE_SPACING {
                    let expected = format!("five distinct points, at least {MIN_TEMPLATE_SPACING} apart");
                    return Err(("template".into(), expected, format!("points {i} and {j} at {a:?} and {b:?}")));
                }
            }
        }
        Ok(())
    }

    /// The template in pixels of a `width` x `height` crop.
    pub fn points(&self, width: usize, height: usize) -> [[f32; 2]; 5] {
        let zoom = 1.0 / (1.0 + self.margin);
        self.template.map(|[x, y]| [(0.5 + (x - 0.5) * zoom) * width as f32, (0.5 + (y - 0.5) * zoom) * height as f32])
    }
}

/// `p -> [a -b; b a] p + t`: rotation and uniform scale, then translation.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Similarity {
    pub a: f32,
    pub b: f32,
    pub tx: f32,
    pub ty: f32,
}

impl Similarity {
    /// The least-squares similarity taking `from` onto `to` (no reflection).
    pub fn estimate(from: &[[f32; 2]], to: &[[f32; 2]]) -> Option<Similarity> {
        let n = from.len().min(to.len()) as f64;
        if n < 2.0 {
            return None;
        }
        let mean = |pts: &[[f32; 2]]| {
            let (sx, sy) = pts.iter().fold((0f64, 0f64), |(x, y), p| (x + p[0] as f64, y + p[1] as f64));
            (sx / n, sy / n)
        };
        let (fx, fy) = mean(from);
        let (tx, ty) = mean(to);
        let (mut dot, mut cross, mut norm) = (0f64, 0f64, 0f64);
        for (p, q) in from.iter().zip(to) {
            let (px, py) = (p[0] as f64 - fx, p[1] as f64 - fy);
            let (qx, qy) = (q[0] as f64 - tx, q[1] as f64 - ty);
            dot += px * qx + py * qy;
            cross += px * qy - py * qx;
            norm += px * px + py * py;
        }
        if norm <= f64::EPSILON {
            return None; // all points coincide
        }
        let (a, b) = (dot / norm, cross / norm);
        Some(Similarity {
            a: a as f32,
            b: b as f32,
            tx: (tx - (a * fx - b * fy)) as f32,
            ty: (ty - (b * fx + a * fy)) as f32,
        })
    }

    pub fn apply(&self, [x, y]: [f32; 2]) -> [f32; 2] {
        [self.a * x - self.b * y + self.tx, self.b * x + self.a * y + self.ty]
    }

    pub fn inverse(&self) -> Similarity {
        let det = self.a * self.a + self.b * self.b;
        let (a, b) = (self.a / det, -self.b / det);
        Similarity { a, b, tx: -(a * self.tx - b * self.ty), ty: -(b * self.tx + a * self.ty) }
    }
}

/// Samples `src` through `to_output` into a `width` x `height` image: each output pixel takes the
/// bilinear interpolation of the source at the inverse-mapped position (pixel centres at integer
/// coordinates, black outside the frame). Positions and weights are fixed point (weights in
/// 1/256 steps, finer than OpenCV's `warpAffine` uses), which keeps the inner loop in integers.
pub fn warp(src: &RgbImage, to_output: &Similarity, width: usize, height: usize) -> RgbImage {
    let back = to_output.inverse();
    let mut out = vec![0u8; width * height * 3];
    let (w, h) = (src.width as i64, src.height as i64);
    let stride = src.width * 3;
    let texel = |x: i64, y: i64| -> [u8; 3] {
        if x < 0 || y < 0 || x >= w || y >= h {
            [0; 3]
        } else {
            let at = (y as usize * src.width + x as usize) * 3;
            [src.data[at], src.data[at + 1], src.data[at + 2]]
        }
    };
    // Source positions in 16.16 fixed point: each step right adds (a, b); 224 steps drift by
    // well under 0.01 pixel.
    let fixed = |v: f32| (v as f64 * 65536.0).round() as i64;
    let (step_x, step_y) = (fixed(back.a), fixed(back.b));
    for (v, row) in out.chunks_exact_mut(width * 3).enumerate() {
        let [x, y] = back.apply([0.0, v as f32]);
        let (mut sx, mut sy) = (fixed(x), fixed(y));
        for o in row.chunks_exact_mut(3) {
            let (x0, y0) = (sx >> 16, sy >> 16);
            let fx = ((sx >> 8) & 255) as u32;
            let fy = ((sy >> 8) & 255) as u32;
            let weights = [(256 - fx) * (256 - fy), fx * (256 - fy), (256 - fx) * fy, fx * fy];
            let corners = if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
                let at = (y0 as usize * src.width + x0 as usize) * 3;
                let (top, bottom) = (&src.data[at..at + 6], &src.data[at + stride..at + stride + 6]);
                let px = |p: &[u8]| [p[0], p[1], p[2]];
                [px(&top[..3]), px(&top[3..]), px(&bottom[..3]), px(&bottom[3..])]
            } else {
                [texel(x0, y0), texel(x0 + 1, y0), texel(x0, y0 + 1), texel(x0 + 1, y0 + 1)]
            };
            for (c, o) in o.iter_mut().enumerate() {
                let sum: u32 = corners.iter().zip(weights).map(|(p, w)| p[c] as u32 * w).sum();
                // The weights sum to 65536, so this is at most 255.
                *o = ((sum + (1 << 15)) >> 16) as u8;
            }
            sx += step_x;
            sy += step_y;
        }
    }
    RgbImage { width, height, data: out }
}

/// The aligned crop of one face, and the transform that made it.
pub fn align(
    frame: &RgbImage,
    face: &Face,
    config: &AlignmentConfig,
    width: usize,
    height: usize,
) -> Option<(RgbImage, Similarity)> {
    let to_output = Similarity::estimate(&face.keypoints, &config.points(width, height))?;
    Some((warp(frame, &to_output, width, height), to_output))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_similarity_is_recovered_and_its_keypoints_land_on_the_template() {
        let template = AlignmentConfig::default().points(224, 224);
        // A face rotated by 20 degrees, scaled by 2.3 and moved into a big frame.
        let (angle, scale) = (20f32.to_radians(), 2.3);
        let known = Similarity { a: scale * angle.cos(), b: scale * angle.sin(), tx: 812.5, ty: 377.25 };
        let keypoints = template.map(|p| known.apply(p));
        let estimated = Similarity::estimate(&keypoints, &template).unwrap();
        let expected = known.inverse();
        for (got, want) in [
            (estimated.a, expected.a),
            (estimated.b, expected.b),
            (estimated.tx, expected.tx),
            (estimated.ty, expected.ty),
        ] {
            assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        }
        for (k, t) in keypoints.iter().zip(&template) {
            let back = estimated.apply(*k);
            assert!((back[0] - t[0]).hypot(back[1] - t[1]) < 1.0);
        }
    }

    #[test]
    fn warping_by_the_identity_is_a_copy_and_outside_is_black() {
        let src = RgbImage { width: 4, height: 3, data: (0..36).map(|v| v as u8 * 7).collect() };
        let identity = Similarity { a: 1.0, b: 0.0, tx: 0.0, ty: 0.0 };
        assert_eq!(warp(&src, &identity, 4, 3), src);
        let shifted = Similarity { a: 1.0, b: 0.0, tx: 10.0, ty: 0.0 };
        assert!(warp(&src, &shifted, 4, 3).data.iter().all(|&v| v == 0));
    }

    #[test]
    fn degenerate_keypoints_give_no_transform() {
        assert!(Similarity::estimate(&[[5.0, 5.0]; 5], &DEFAULT_TEMPLATE).is_none());
        assert!(Similarity::estimate(&[], &[]).is_none());
    }
}
