//! Faces found in a frame, and YuNet on any backend: laying a frame out as the network wants it,
//! decoding its outputs, and non-maximum suppression. Backends only run the graph.

use crate::config::FaceDetectorConfig;
use crate::image::ImageView;
use crate::resize::resize_bilinear;
use crate::{Error, Result};
use hrm_backend::{Dim, GraphSource, GraphSpec, Hints, InferenceSession, TensorView};

/// One detected face, in the frame's own pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Face {
    /// `[x, y, width, height]`.
    pub bbox: [f32; 4],
    /// Right eye, left eye, nose tip, right mouth corner, left mouth corner (the subject's right,
    /// which is the image's left), as YuNet and OpenCV order them.
    pub keypoints: [[f32; 2]; 5],
    pub score: f32,
}

/// Something that finds faces in frames (YuNet on a backend).
pub trait FaceDetector: Send {
    fn detect(&mut self, frame: &ImageView<'_>) -> crate::Result<Vec<Face>>;
}

/// Filters applied after decoding.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionLimits {
    pub score_threshold: f32,
    pub nms_threshold: f32,
    /// Faces whose box is smaller than this on its longer side (in frame pixels) are dropped.
    pub min_face_size: f32,
    /// At most this many faces, the highest scores first; 0 means no limit.
    pub max_faces: usize,
}

impl Default for DetectionLimits {
    fn default() -> Self {
        DetectionLimits { score_threshold: 0.6, nms_threshold: 0.3, min_face_size: 0.0, max_faces: 0 }
    }
}

/// How a frame maps onto the network input: scaled by `scale`, placed at the top left, padded
/// with zeros to `width` x `height`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    pub width: usize,
    pub height: usize,
    pub scale: f32,
}

impl Placement {
    /// Letterbox into a fixed input: shrink (never enlarge) to fit, keeping the aspect ratio.
    pub fn letterbox(frame_width: usize, frame_height: usize, input_width: usize, input_height: usize) -> Placement {
        let scale = (input_width as f32 / frame_width as f32).min(input_height as f32 / frame_height as f32).min(1.0);
        Placement { width: input_width, height: input_height, scale }
    }

    /// A free-size input: the frame itself (shrunk if its longer side exceeds `max_side`), padded
    /// up to multiples of 32 as YuNet's strides need, as OpenCV's FaceDetectorYN does.
    pub fn native(frame_width: usize, frame_height: usize, max_side: usize) -> Placement {
        let longest = frame_width.max(frame_height) as f32;
        let scale = (max_side as f32 / longest).min(1.0);
        let round_up = |v: usize| v.div_ceil(32).max(1) * 32;
        let scaled = |v: usize| ((v as f32 * scale).round() as usize).max(1);
        Placement { width: round_up(scaled(frame_width)), height: round_up(scaled(frame_height)), scale }
    }

    /// Writes the network input into `out`: BGR planes of 0-255 floats, NCHW with N = 1, zero
    /// outside the frame. `out` must hold exactly `3 * width * height` values.
    pub fn write_input(&self, frame: &ImageView<'_>, out: &mut [f32]) -> Result<()> {
        let plane = self.width * self.height;
        if out.len() != 3 * plane {
            return Err(Error::InvalidInput(format!(
                "a {}x{} network input holds {} values, the buffer {}",
                self.width,
                self.height,
                3 * plane,
                out.len()
            )));
        }
        let converted;
        let (pixels, width, height) = match (self.scale < 1.0, frame.packed_rgb()) {
            (false, Some(data)) => (data, frame.width(), frame.height()),
            (shrink, _) => {
                let rgb = frame.to_rgb()?;
                converted = if shrink {
                    let w = ((rgb.width as f32 * self.scale).round() as usize).clamp(1, self.width);
                    let h = ((rgb.height as f32 * self.scale).round() as usize).clamp(1, self.height);
                    resize_bilinear(&rgb, w, h)
                } else {
                    rgb
                };
                (&converted.data[..], converted.width, converted.height)
            }
        };
        // Every value is written once: the frame's pixels, then zeros to the right and below.
        let (w, h) = (width.min(self.width), height.min(self.height));
        for (c, plane_out) in out.chunks_exact_mut(plane).enumerate() {
            let channel = 2 - c; // BGR planes from RGB pixels
            for (y, row_out) in plane_out.chunks_exact_mut(self.width).enumerate() {
                let (frame_part, padding) = row_out.split_at_mut(if y < h { w } else { 0 });
                if y < h {
                    let row = &pixels[y * width * 3..][..w * 3];
                    for (o, px) in frame_part.iter_mut().zip(row.chunks_exact(3)) {
                        *o = px[channel] as f32;
                    }
                }
                padding.fill(0.0);
            }
        }
        Ok(())
    }
}

/// YuNet face detection on a backend session. The network runs at one input size per frame size:
/// with a `letterbox` size, frames are letterboxed into it; without, the network runs at each
/// frame's own size (shrunk past `max_side`) padded to multiples of 32, as OpenCV's
/// FaceDetectorYN runs it.
pub struct YunetDetector {
    session: Box<dyn InferenceSession>,
    letterbox: Option<(usize, usize)>,
    max_side: usize,
    limits: DetectionLimits,
    input: Vec<f32>,
}

const YUNET_STRIDES: [usize; 3] = [8, 16, 32];

impl YunetDetector {
    /// YuNet's graph as a backend loads it: one BGR frame of any size. The shapes a fixed-size
    /// export records are not used, so any YuNet runs at any size.
    pub fn graph_spec(source: GraphSource) -> GraphSpec {
        GraphSpec {
            source,
            inputs: vec![vec![Dim::Fixed(1), Dim::Fixed(3), Dim::Any, Dim::Any]],
            hints: Hints::default(),
            weights: None,
        }
    }

    /// The detector a configuration's `[detector]` section describes, on a session of YuNet's graph.
    pub fn new(session: Box<dyn InferenceSession>, config: &FaceDetectorConfig) -> YunetDetector {
        YunetDetector {
            session,
            letterbox: config.letterbox.map(|[w, h]| (w, h)),
            max_side: config.max_side,
            limits: config.limits(),
            input: Vec::new(),
        }
    }

    /// Where a frame of this size goes in the network input.
    pub fn placement(&self, width: usize, height: usize) -> Placement {
        match self.letterbox {
            Some((w, h)) => Placement::letterbox(width, height, w, h),
            None => Placement::native(width, height, self.max_side),
        }
    }
}

impl FaceDetector for YunetDetector {
    fn detect(&mut self, frame: &ImageView<'_>) -> Result<Vec<Face>> {
        let placement = self.placement(frame.width(), frame.height());
        let shape = [1, 3, placement.height, placement.width];
        self.input.resize(3 * placement.width * placement.height, 0.0);
        placement.write_input(frame, &mut self.input)?;
        let outputs = self.session.run(&[TensorView::new(&shape, &self.input)?])?;
        let output_error = |message: String| Error::ModelOutput { model: "YuNet".into(), message };
        if outputs.len() != 12 {
            return Err(output_error(format!(
                "expected cls, obj, bbox and kps for 3 strides (12 outputs), found {}",
                outputs.len()
            )));
        }
        let per_stride: Vec<StrideOutput> = (YUNET_STRIDES.iter().enumerate())
            .map(|(i, &stride)| StrideOutput {
                stride,
                cls: outputs[i].data(),
                obj: outputs[3 + i].data(),
                bbox: outputs[6 + i].data(),
                kps: outputs[9 + i].data(),
            })
            .collect();
        for out in &per_stride {
            let cells = (placement.width / out.stride) * (placement.height / out.stride);
            let sizes = [out.cls.len(), out.obj.len(), out.bbox.len() / 4, out.kps.len() / 10];
            if sizes != [cells; 4] {
                return Err(output_error(format!(
                    "stride {} gives {sizes:?} cells for cls, obj, bbox and kps; the input has {cells}",
                    out.stride
                )));
            }
        }
        Ok(decode_yunet(&per_stride, &placement, &self.limits))
    }
}

/// YuNet's outputs for one stride: `cls` and `obj` `[N]`, `bbox` `[N, 4]`, `kps` `[N, 10]`, for
/// the `N = (height / stride) * (width / stride)` cells of the input, row by row.
pub struct StrideOutput<'a> {
    pub stride: usize,
    pub cls: &'a [f32],
    pub obj: &'a [f32],
    pub bbox: &'a [f32],
    pub kps: &'a [f32],
}

/// Decodes YuNet's outputs into faces in frame pixels, then applies the limits and NMS.
pub fn decode_yunet(outputs: &[StrideOutput<'_>], placement: &Placement, limits: &DetectionLimits) -> Vec<Face> {
    let mut faces = Vec::new();
    let back = 1.0 / placement.scale;
    for out in outputs {
        let s = out.stride as f32;
        let cols = placement.width / out.stride;
        let cells = out.cls.len().min(out.obj.len()).min(out.bbox.len() / 4).min(out.kps.len() / 10);
        for i in 0..cells {
            let score = (out.cls[i].clamp(0.0, 1.0) * out.obj[i].clamp(0.0, 1.0)).sqrt();
            if score < limits.score_threshold {
                continue;
            }
            let (col, row) = ((i % cols) as f32, (i / cols) as f32);
            let b = &out.bbox[i * 4..][..4];
            let (cx, cy) = ((col + b[0]) * s, (row + b[1]) * s);
            let (w, h) = (b[2].exp() * s, b[3].exp() * s);
            let k = &out.kps[i * 10..][..10];
            let keypoints = std::array::from_fn(|j| [(col + k[2 * j]) * s * back, (row + k[2 * j + 1]) * s * back]);
            let bbox = [(cx - w / 2.0) * back, (cy - h / 2.0) * back, w * back, h * back];
            if bbox[2].max(bbox[3]) < limits.min_face_size {
                continue;
            }
            faces.push(Face { bbox, keypoints, score });
        }
    }
    let mut kept = non_maximum_suppression(faces, limits.nms_threshold);
    if limits.max_faces > 0 {
        kept.truncate(limits.max_faces);
    }
    kept
}

/// Greedy NMS: highest score first, dropping faces that overlap a kept one by more than `iou`.
pub fn non_maximum_suppression(mut faces: Vec<Face>, iou: f32) -> Vec<Face> {
    faces.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept: Vec<Face> = Vec::new();
    for face in faces {
        if kept.iter().all(|k| intersection_over_union(&k.bbox, &face.bbox) <= iou) {
            kept.push(face);
        }
    }
    kept
}

/// Overlap of two `[x, y, w, h]` boxes: intersection area over union area.
pub fn intersection_over_union(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let x0 = a[0].max(b[0]);
    let y0 = a[1].max(b[1]);
    let x1 = (a[0] + a[2]).min(b[0] + b[2]);
    let y1 = (a[1] + a[3]).min(b[1] + b[3]);
    let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 {
        inter / union
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, score: f32) -> Face {
        Face { bbox: [x, 0.0, 10.0, 10.0], keypoints: [[0.0; 2]; 5], score }
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_boxes() {
        let kept = non_maximum_suppression(vec![face(0.0, 0.7), face(1.0, 0.9), face(30.0, 0.8)], 0.3);
        let xs: Vec<f32> = kept.iter().map(|f| f.bbox[0]).collect();
        assert_eq!(xs, [1.0, 30.0]);
    }

    #[test]
    fn placements() {
        assert_eq!(Placement::letterbox(1280, 720, 640, 640), Placement { width: 640, height: 640, scale: 0.5 });
        assert_eq!(Placement::letterbox(320, 240, 640, 640).scale, 1.0);
        assert_eq!(Placement::native(1000, 667, 4096), Placement { width: 1024, height: 672, scale: 1.0 });
        assert_eq!(Placement::native(1, 1, 4096), Placement { width: 32, height: 32, scale: 1.0 });
    }

    #[test]
    fn decoding_follows_yunets_grid() {
        // One 64x32 input at stride 32: 2 cells; the second (col 1) fires.
        let placement = Placement { width: 64, height: 32, scale: 0.5 };
        let bbox = [0.0, 0.0, 0.0, 0.0, 0.5, 0.5, 0.0, 0.0];
        let mut kps = vec![0.0; 20];
        kps[10..12].copy_from_slice(&[0.25, 0.75]);
        let out = StrideOutput { stride: 32, cls: &[0.1, 0.81], obj: &[0.1, 1.0], bbox: &bbox, kps: &kps };
        let faces = decode_yunet(&[out], &placement, &DetectionLimits::default());
        assert_eq!(faces.len(), 1);
        let f = &faces[0];
        assert!((f.score - 0.9).abs() < 1e-6);
        // centre (1.5 * 32, 0.5 * 32) = (48, 16), size 32: box (32, 0, 32, 32), doubled back to frame pixels
        assert_eq!(f.bbox, [64.0, 0.0, 64.0, 64.0]);
        assert_eq!(f.keypoints[0], [80.0, 48.0]);
    }
}
