//! MediaPipe's face mesh on the faces YuNet finds: the crop framed as MediaPipe's face landmarker
//! frames it, 478 landmarks back in frame pixels, and the head pose from them.
//!
//! MediaPipe (image mode) frames the mesh's crop from its BlazeFace detection: the detection's box
//! enlarged 1.5 times about its centre, rotated so the eyes are level, sampled with OpenCV's
//! fixed-point bilinear warp. The mesh is sensitive to that framing (measured on the shared
//! photographs, README: YuNet's box mapped onto BlazeFace's gives blendshapes 0.024 off on
//! average on the portraits, 0.18 on a group photograph, and single landmarks 8-50 % of the face
//! width away; a second pass framed from the first landmarks is no better), so hrm runs BlazeFace
//! too (128x128, 4-5 ms on tract) and frames each YuNet face from the BlazeFace detection that
//! overlaps it, exactly as MediaPipe does: landmarks within 0.01 % of the face width and
//! blendshapes within 0.001 of MediaPipe's own. A face BlazeFace misses (small faces in
//! a large frame: its input is the whole frame at 128x128) is framed from YuNet's box and eyes,
//! mapped onto BlazeFace's framing.

use crate::align::Similarity;
use crate::au_model::sigmoid;
use crate::face::{intersection_over_union, Face};
use crate::geometry::GeometryMetadata;
use crate::image::RgbImage;
use crate::manifest::{InputSpec, BLAZEFACE_SIZE};
use crate::preprocess::preprocess_into;
use crate::{Error, Result};
use hrm_backend::{Dim, GraphSource, GraphSpec, Hints, InferenceSession, TensorView};
use std::sync::Arc;

/// Landmarks of the face mesh.
pub const MESH_LANDMARKS: usize = 478;

/// MediaPipe's face landmarker keeps a face whose mesh presence score is above this
/// (`min_face_presence_confidence`).
pub const MIN_PRESENCE: f32 = 0.5;

/// Faces smaller than this (the longer side of the detection box, in frame pixels) are not
/// meshed: a 20-pixel face enlarged to 256 pixels gives landmarks, but not ones to trust.
pub const MIN_MESH_FACE: f32 = 20.0;

/// MediaPipe enlarges the detection's box this much (`RectTransformationCalculator` in the face
/// detector graph; no `square_long` there).
const RECT_SCALE: f32 = 1.5;

/// A region of the frame, rotated by `rotation` radians (clockwise on screen) about its centre:
/// what the mesh sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RotatedRect {
    pub center: [f32; 2],
    pub width: f32,
    pub height: f32,
    pub rotation: f32,
}

impl RotatedRect {
    /// Frame pixels to the pixels of a `size` x `size` crop (the rect's width sets the scale):
    /// the similarity reported as the face's crop transform.
    pub fn to_crop(&self, size: usize) -> Similarity {
        let scale = size as f32 / self.width;
        let (sin, cos) = (-self.rotation).sin_cos();
        let (a, b) = (scale * cos, scale * sin);
        let half = size as f32 / 2.0;
        let [cx, cy] = self.center;
        Similarity { a, b, tx: half - (a * cx - b * cy), ty: half - (b * cx + a * cy) }
    }

    /// Where crop pixel (0, 0) samples the frame, and the frame steps of one crop pixel right and
    /// one down: the rect's corners land on the crop's pixel centres 0 and `size`, as MediaPipe's
    /// `ImageToTensorCalculator` maps them.
    fn sampling(&self, size: usize) -> Sampling {
        let (sin, cos) = (self.rotation as f64).sin_cos();
        let (w, h) = (self.width as f64, self.height as f64);
        let [cx, cy] = self.center.map(f64::from);
        let (u, v) = (-w / 2.0, -h / 2.0);
        let n = size as f64;
        Sampling {
            origin: [cx + cos * u - sin * v, cy + sin * u + cos * v],
            right: [cos * w / n, sin * w / n],
            down: [-sin * h / n, cos * h / n],
        }
    }

    /// A point of a `size` crop back in frame pixels, as MediaPipe's `LandmarkProjectionCalculator`
    /// maps it (each axis scaled by the rect's own side).
    fn project(&self, size: usize, [x, y]: [f32; 2]) -> [f32; 2] {
        let (sin, cos) = self.rotation.sin_cos();
        let (dx, dy) = (x / size as f32 - 0.5, y / size as f32 - 0.5);
        let [cx, cy] = self.center;
        [(cos * dx - sin * dy) * self.width + cx, (sin * dx + cos * dy) * self.height + cy]
    }
}

/// A grid of sample positions in a frame: crop pixel (i, j) samples `origin + j * right + i * down`.
struct Sampling {
    origin: [f64; 2],
    right: [f64; 2],
    down: [f64; 2],
}

/// What a sample outside the frame reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Border {
    /// Black (BlazeFace's letterbox).
    Zero,
    /// The nearest edge pixel (the mesh's crop).
    Replicate,
}

/// OpenCV's bilinear warp of 8-bit images (`warpPerspective`, `INTER_LINEAR`), which MediaPipe's
/// CPU path runs: positions rounded to 1/32 pixel (ties to even), weights in 2^-15 steps, the
/// result rounded to 8 bits. The mesh is sensitive to this rounding at the 0.5 % level, so it is
/// reproduced rather than approximated.
fn warp_like_opencv(src: &RgbImage, sampling: &Sampling, width: usize, height: usize, border: Border) -> RgbImage {
    let mut out = vec![0u8; width * height * 3];
    let (w, h) = (src.width as i64, src.height as i64);
    let stride = src.width * 3;
    let texel = |x: i64, y: i64| -> Option<&[u8]> {
        let (x, y) = match border {
            Border::Zero if x < 0 || y < 0 || x >= w || y >= h => return None,
            Border::Zero => (x, y),
            Border::Replicate => (x.clamp(0, w - 1), y.clamp(0, h - 1)),
        };
        let at = (y as usize * src.width + x as usize) * 3;
        Some(&src.data[at..at + 3])
    };
    // Far outside (or not a number): clamped, which reads the border.
    let fixed = |v: f64| (v * 32.0).round_ties_even().clamp(-(1i64 << 40) as f64, (1i64 << 40) as f64) as i64;
    for (i, row) in out.chunks_exact_mut(width * 3).enumerate() {
        for (j, pixel) in row.chunks_exact_mut(3).enumerate() {
            let (i, j) = (i as f64, j as f64);
            let x = fixed(sampling.origin[0] + j * sampling.right[0] + i * sampling.down[0]);
            let y = fixed(sampling.origin[1] + j * sampling.right[1] + i * sampling.down[1]);
            let (x0, y0, fx, fy) = (x >> 5, y >> 5, x & 31, y & 31);
            let weights = [(32 - fx) * (32 - fy), fx * (32 - fy), (32 - fx) * fy, fx * fy].map(|w| w * 32);
            let round = |sum: i64| ((sum + (1 << 14)) >> 15).clamp(0, 255) as u8;
            if x0 >= 0 && y0 >= 0 && x0 + 1 < w && y0 + 1 < h {
                // All four neighbours inside: read them straight from the rows.
                let at = y0 as usize * stride + x0 as usize * 3;
                let (top, bottom) = (&src.data[at..at + 6], &src.data[at + stride..at + stride + 6]);
                for (c, value) in pixel.iter_mut().enumerate() {
                    let sum = top[c] as i64 * weights[0]
                        + top[c + 3] as i64 * weights[1]
                        + bottom[c] as i64 * weights[2]
                        + bottom[c + 3] as i64 * weights[3];
                    *value = round(sum);
                }
                continue;
            }
            let corners = [texel(x0, y0), texel(x0 + 1, y0), texel(x0, y0 + 1), texel(x0 + 1, y0 + 1)];
            for (c, value) in pixel.iter_mut().enumerate() {
                let sum: i64 = corners.iter().zip(weights).map(|(p, w)| p.map_or(0, |p| p[c] as i64) * w).sum();
                *value = round(sum);
            }
        }
    }
    RgbImage { width, height, data: out }
}

/// One face's mesh.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshFace {
    /// The crop the mesh saw.
    pub rect: RotatedRect,
    /// Frame pixels to the mesh's crop pixels (the rect's width sets the scale).
    pub to_crop: Similarity,
    /// The mesh's face presence score, 0 to 1.
    pub score: f32,
    /// 478 points in frame pixels: x, y, and z (depth, at the scale of x; negative towards the
    /// camera).
    pub landmarks: Vec<[f32; 3]>,
    /// The facial transformation matrix (row-major; canonical face model to camera space, in
    /// centimetres), when the geometry could be solved.
    pub pose: Option<[[f32; 4]; 4]>,
}

impl MeshFace {
    /// Whether MediaPipe would keep this face (its presence score is above [`MIN_PRESENCE`]).
    pub fn is_present(&self) -> bool {
        self.score > MIN_PRESENCE
    }
}

/// A face's mesh, or why it has none.
pub type Mesh = std::result::Result<MeshFace, NoMesh>;

/// Why a face has no mesh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoMesh {
    /// The face is smaller than [`MIN_MESH_FACE`] pixels.
    TooSmall,
}

/// The loaded networks a [`FaceMesher`] runs, shared by every detector of a runtime.
pub struct MeshModels {
    pub face_detector: Arc<dyn hrm_backend::LoadedModel>,
    pub landmarks: Arc<dyn hrm_backend::LoadedModel>,
    pub geometry: Arc<GeometryMetadata>,
    /// The mesh's input (256x256 NHWC, [0, 1]).
    pub input: InputSpec,
}

/// BlazeFace's graph: one 128x128 RGB frame, NHWC.
pub fn face_detector_graph(source: GraphSource) -> GraphSpec {
    let n = BLAZEFACE_SIZE;
    GraphSpec {
        source,
        inputs: vec![vec![Dim::Fixed(1), Dim::Fixed(n), Dim::Fixed(n), Dim::Fixed(3)]],
        hints: Hints::default(),
        weights: None,
    }
}

/// The mesh's graph: a batch of crops, NHWC.
pub fn landmarks_graph(source: GraphSource, input: &InputSpec) -> GraphSpec {
    GraphSpec { source, inputs: vec![input.tensor_dims()], hints: Hints::default(), weights: None }
}

/// BlazeFace, the face mesh and the geometry for one user (a detector): sessions of its own.
pub struct FaceMesher {
    face_detector: Box<dyn InferenceSession>,
    landmarks: Box<dyn InferenceSession>,
    geometry: Arc<GeometryMetadata>,
    input: InputSpec,
    anchors: Vec<[f32; 2]>,
    buffer: Vec<f32>,
    /// The most faces [`FaceMesher::detect`] keeps, best first; 0 keeps all.
    max_faces: usize,
}

impl FaceMesher {
    pub fn new(models: &MeshModels) -> Result<FaceMesher> {
        Ok(FaceMesher {
            face_detector: models.face_detector.session()?,
            landmarks: models.landmarks.session()?,
            geometry: models.geometry.clone(),
            input: models.input.clone(),
            anchors: blazeface_anchors(),
            buffer: Vec::new(),
            max_faces: 0,
        })
    }

    /// Keeps at most `max_faces` of BlazeFace's own faces (0: all).
    pub fn with_max_faces(self, max_faces: usize) -> FaceMesher {
        FaceMesher { max_faces, ..self }
    }

    /// The mesh of each face, in order: a face too small is `Err(NoMesh)`; a face the mesh does
    /// not see as one has a low [`MeshFace::score`] (and its landmarks are not to be used).
    pub fn run(&mut self, frame: &RgbImage, faces: &[Face]) -> Result<Vec<Mesh>> {
        if faces.is_empty() {
            return Ok(Vec::new());
        }
        let detections = self.blazeface(frame)?;
        self.mesh_faces(frame, faces, &detections)
    }

    /// The faces BlazeFace itself finds (`[detector] kind = "blazeface"`), best first, and their
    /// meshes, as MediaPipe's face landmarker finds them. A face's mouth corners are BlazeFace's
    /// mouth centre, twice.
    pub fn detect(&mut self, frame: &RgbImage) -> Result<(Vec<Face>, Vec<Mesh>)> {
        let mut detections = self.blazeface(frame)?;
        if self.max_faces > 0 {
            detections.truncate(self.max_faces);
        }
        let faces: Vec<Face> = detections.iter().map(Detection::face).collect();
        let meshes = self.mesh_faces(frame, &faces, &detections)?;
        Ok((faces, meshes))
    }

    /// The mesh of each face, framed from `detections` (BlazeFace's, [`FaceMesher::blazeface`]).
    pub fn mesh_faces(&mut self, frame: &RgbImage, faces: &[Face], detections: &[Detection]) -> Result<Vec<Mesh>> {
        let mut meshes = Vec::with_capacity(faces.len());
        for face in faces {
            if face.bbox[2].max(face.bbox[3]) < MIN_MESH_FACE {
                meshes.push(Err(NoMesh::TooSmall));
                continue;
            }
            let rect = frame_face(face, detections);
            meshes.push(Ok(self.mesh(frame, rect)?));
        }
        Ok(meshes)
    }

    /// BlazeFace on the whole frame, letterboxed into 128x128 as MediaPipe does: its detections in
    /// frame pixels, best first.
    pub fn blazeface(&mut self, frame: &RgbImage) -> Result<Vec<Detection>> {
        let n = BLAZEFACE_SIZE;
        let (w, h) = (frame.width as f32, frame.height as f32);
        // The frame is centred in a square of its longer side, which is scaled to 128.
        let long = w.max(h);
        let step = (long / n as f32) as f64;
        let letterbox = Sampling {
            origin: [((w - long) / 2.0) as f64, ((h - long) / 2.0) as f64],
            right: [step, 0.0],
            down: [0.0, step],
        };
        let input = warp_like_opencv(frame, &letterbox, n, n, Border::Zero);
        let spec = InputSpec { mean: [0.5; 3], std: [0.5; 3], ..self.input.clone() };
        self.buffer.resize(3 * n * n, 0.0);
        preprocess_into(&input, &InputSpec { width: n, height: n, ..spec }, &mut self.buffer);
        let outputs = self.face_detector.run(&[TensorView::new(&[1, n, n, 3], &self.buffer)?])?;
        let [regressors, scores] = outputs.as_slice() else {
            return Err(model_error("BlazeFace", format!("gave {} outputs, expected 2", outputs.len())));
        };
        let anchors = self.anchors.len();
        if regressors.data().len() != anchors * 16 || scores.data().len() != anchors {
            return Err(model_error(
                "BlazeFace",
                format!(
                    "gave outputs of shapes {:?} and {:?}, expected [1, {anchors}, 16] and [1, {anchors}, 1]",
                    regressors.shape(),
                    scores.shape()
                ),
            ));
        }
        // Input fractions back to frame pixels.
        let (x0, y0) = ((w - long) / 2.0, (h - long) / 2.0);
        let detections = decode_blazeface(regressors.data(), scores.data(), &self.anchors)
            .into_iter()
            .map(|d| d.map_points(|p| [p[0] * long + x0, p[1] * long + y0]))
            .filter(|d| d.corners.iter().chain(d.keypoints.iter().flatten()).all(|v| v.is_finite()))
            .collect();
        Ok(weighted_nms(detections, BLAZEFACE_NMS))
    }

    /// The mesh on one rect: landmarks in frame pixels, the presence score, the pose.
    fn mesh(&mut self, frame: &RgbImage, rect: RotatedRect) -> Result<MeshFace> {
        let size = self.input.width;
        let crop = warp_like_opencv(frame, &rect.sampling(size), size, size, Border::Replicate);
        self.buffer.resize(self.input.values(), 0.0);
        preprocess_into(&crop, &self.input, &mut self.buffer);
        let shape = [1, size, size, 3];
        let outputs = self.landmarks.run(&[TensorView::new(&shape, &self.buffer)?])?;
        let (points, presence) = match outputs.as_slice() {
            [points, presence, ..] if points.data().len() == MESH_LANDMARKS * 3 && presence.data().len() == 1 => {
                (points.data(), presence.data()[0])
            }
            _ => {
                let shapes: Vec<&[usize]> = outputs.iter().map(|t| t.shape()).collect();
                let expected = format!("[1, 1, 1, {}] landmarks and a presence score", MESH_LANDMARKS * 3);
                return Err(model_error(
                    "the face mesh",
                    format!("gave outputs of shapes {shapes:?}, expected {expected}"),
                ));
            }
        };
        let score = sigmoid(presence);
        // Crop pixels back to frame pixels. Depth is scaled by the length of the crop's x axis in
        // frame fractions, then put in x's units: what MediaPipe's projection leaves in z (for an
        // upright crop, the rect's width over the crop's).
        let (sin, cos) = rect.rotation.sin_cos();
        let aspect = frame.width as f32 / frame.height as f32;
        let depth_scale = rect.width * cos.hypot(sin * aspect) / size as f32;
        let landmarks: Vec<[f32; 3]> = points
            .chunks_exact(3)
            .map(|p| {
                let [x, y] = rect.project(size, [p[0], p[1]]);
                [x, y, p[2] * depth_scale]
            })
            .collect();
        let pose = if landmarks.iter().flatten().all(|v| v.is_finite()) && score > MIN_PRESENCE {
            crate::geometry::facial_transformation_matrix(
                &self.geometry,
                &normalised(&landmarks, frame),
                frame.width,
                frame.height,
            )
        } else {
            None
        };
        Ok(MeshFace { rect, to_crop: rect.to_crop(size), score, landmarks, pose })
    }
}

/// Landmarks as MediaPipe's `NormalizedLandmark`s hold them: x and y as fractions of the frame,
/// z at the scale of x.
fn normalised(landmarks: &[[f32; 3]], frame: &RgbImage) -> Vec<[f32; 3]> {
    let (w, h) = (frame.width as f32, frame.height as f32);
    landmarks.iter().map(|&[x, y, z]| [x / w, y / h, z / w]).collect()
}

fn model_error(model: &str, message: String) -> Error {
    Error::ModelOutput { model: model.into(), message }
}

/// A BlazeFace detection: box corners and six keypoints (right eye, left eye, nose tip, mouth,
/// right ear, left ear; the subject's right), in input fractions until mapped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// `[xmin, ymin, xmax, ymax]`.
    pub corners: [f32; 4],
    pub keypoints: [[f32; 2]; 6],
    pub score: f32,
}

impl Detection {
    fn map_points(&self, f: impl Fn([f32; 2]) -> [f32; 2]) -> Detection {
        let [x0, y0] = f([self.corners[0], self.corners[1]]);
        let [x1, y1] = f([self.corners[2], self.corners[3]]);
        Detection { corners: [x0, y0, x1, y1], keypoints: self.keypoints.map(&f), score: self.score }
    }

    /// As a detected face: YuNet's five keypoints, the mouth centre standing for both corners.
    fn face(&self) -> Face {
        let [right_eye, left_eye, nose, mouth, ..] = self.keypoints;
        Face { bbox: self.bbox(), keypoints: [right_eye, left_eye, nose, mouth, mouth], score: self.score }
    }

    /// `[x, y, width, height]`.
    pub fn bbox(&self) -> [f32; 4] {
        let [x0, y0, x1, y1] = self.corners;
        [x0, y0, x1 - x0, y1 - y0]
    }
}

/// MediaPipe's short-range face detector: its score threshold and NMS overlap.
const BLAZEFACE_MIN_SCORE: f32 = 0.5;
const BLAZEFACE_NMS: f32 = 0.5;

/// The 896 SSD anchor centres of BlazeFace short range (`SsdAnchorsCalculator`: 4 layers,
/// strides 8, 16, 16, 16, two anchors per layer and cell, fixed size 1): a 16x16 grid with 2
/// anchors per cell, then an 8x8 grid with 6.
pub fn blazeface_anchors() -> Vec<[f32; 2]> {
    let mut anchors = Vec::with_capacity(896);
    for (grid, per_cell) in [(16usize, 2usize), (8, 6)] {
        for y in 0..grid {
            for x in 0..grid {
                let center = [(x as f32 + 0.5) / grid as f32, (y as f32 + 0.5) / grid as f32];
                anchors.extend(std::iter::repeat_n(center, per_cell));
            }
        }
    }
    anchors
}

/// Decodes BlazeFace's raw outputs (`TensorsToDetectionsCalculator`: x, y, w, h then 6
/// keypoints per anchor, in 128ths of the input; sigmoid scores clipped to ±100) into
/// detections in input fractions, keeping those that reach the score threshold.
pub fn decode_blazeface(regressors: &[f32], scores: &[f32], anchors: &[[f32; 2]]) -> Vec<Detection> {
    let scale = BLAZEFACE_SIZE as f32;
    let mut found = Vec::new();
    for ((raw, &logit), anchor) in regressors.chunks_exact(16).zip(scores).zip(anchors) {
        let score = sigmoid(logit.clamp(-100.0, 100.0));
        // NaN scores and boxes that are not boxes (empty, inverted, not finite) are not faces.
        let (w, h) = (raw[2] / scale, raw[3] / scale);
        let is_face = score >= BLAZEFACE_MIN_SCORE && w > 0.0 && h > 0.0 && raw.iter().all(|v| v.is_finite());
        if !is_face {
            continue;
        }
        let (cx, cy) = (raw[0] / scale + anchor[0], raw[1] / scale + anchor[1]);
        let keypoints =
            std::array::from_fn(|k| [raw[4 + 2 * k] / scale + anchor[0], raw[5 + 2 * k] / scale + anchor[1]]);
        found.push(Detection { corners: [cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0], keypoints, score });
    }
    found
}

/// MediaPipe's weighted non-maximum suppression: the best detection absorbs every one that
/// overlaps it by more than `iou`, its box and keypoints becoming their score-weighted mean.
/// Each pass takes the best detection out, so it ends whatever the boxes hold.
pub fn weighted_nms(mut detections: Vec<Detection>, iou: f32) -> Vec<Detection> {
    detections.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut kept = Vec::new();
    while !detections.is_empty() {
        let best = detections.remove(0);
        let (mut overlapping, rest): (Vec<Detection>, Vec<Detection>) =
            detections.into_iter().partition(|d| intersection_over_union(&best.bbox(), &d.bbox()) > iou);
        detections = rest;
        overlapping.insert(0, best);
        let total: f32 = overlapping.iter().map(|d| d.score).sum();
        // Scores are sigmoids, so their sum is positive unless one is NaN.
        if total.is_nan() || total <= 0.0 {
            kept.push(best);
            continue;
        }
        let mut merged = Detection { corners: [0.0; 4], keypoints: [[0.0; 2]; 6], score: best.score };
        for d in &overlapping {
            let w = d.score / total;
            for (m, v) in merged.corners.iter_mut().zip(d.corners) {
                *m += v * w;
            }
            for (m, v) in merged.keypoints.iter_mut().zip(d.keypoints) {
                m[0] += v[0] * w;
                m[1] += v[1] * w;
            }
        }
        kept.push(merged);
    }
    kept
}

/// A BlazeFace detection belongs to a YuNet face when their boxes overlap this much.
const SAME_FACE_IOU: f32 = 0.3;

/// The rect MediaPipe would frame for this face: from the BlazeFace detection that overlaps the
/// YuNet face most, else from YuNet's own box and eyes.
pub fn frame_face(face: &Face, detections: &[Detection]) -> RotatedRect {
    let best = detections
        .iter()
        .map(|d| (intersection_over_union(&face.bbox, &d.bbox()), d))
        .filter(|(overlap, _)| *overlap > SAME_FACE_IOU)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    match best {
        Some((_, detection)) => rect_from_box(detection.bbox(), detection.keypoints[0], detection.keypoints[1]),
        None => rect_from_yunet(face),
    }
}

/// `DetectionsToRectsCalculator` then `RectTransformationCalculator`: centred on the box, the
/// rotation that levels the eyes (the subject's right eye is on the image's left), the box's
/// width and height times 1.5.
fn rect_from_box(bbox: [f32; 4], right_eye: [f32; 2], left_eye: [f32; 2]) -> RotatedRect {
    let [x, y, w, h] = bbox;
    let rotation = normalise_radians((left_eye[1] - right_eye[1]).atan2(left_eye[0] - right_eye[0]));
    RotatedRect { center: [x + w / 2.0, y + h / 2.0], width: w * RECT_SCALE, height: h * RECT_SCALE, rotation }
}

/// YuNet's box mapped onto BlazeFace's, as fitted on the shared photographs (median over five
/// portraits): the centre a little right and 0.0965 of the height lower, a square 1.072 times
/// YuNet's width. Its keypoints 0 and 1 are the eyes in BlazeFace's order.
fn rect_from_yunet(face: &Face) -> RotatedRect {
    let [x, y, w, h] = face.bbox;
    let side = 1.072 * w;
    let (cx, cy) = (x + w / 2.0 + 0.0197 * w, y + h / 2.0 + 0.0965 * h);
    rect_from_box([cx - side / 2.0, cy - side / 2.0, side, side], face.keypoints[0], face.keypoints[1])
}

/// An angle in (-pi, pi].
fn normalise_radians(angle: f32) -> f32 {
    use std::f32::consts::PI;
    angle - 2.0 * PI * ((angle + PI) / (2.0 * PI)).floor()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchors_follow_the_ssd_layout() {
        let anchors = blazeface_anchors();
        assert_eq!(anchors.len(), 896);
        assert_eq!(anchors[0], [0.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(anchors[1], anchors[0]);
        assert_eq!(anchors[2], [1.5 / 16.0, 0.5 / 16.0]);
        assert_eq!(anchors[512], [0.5 / 8.0, 0.5 / 8.0]);
        assert_eq!(anchors[895], [7.5 / 8.0, 7.5 / 8.0]);
    }

    #[test]
    fn a_rect_maps_its_corners_onto_the_crop_and_back() {
        let rect = RotatedRect { center: [100.0, 50.0], width: 40.0, height: 40.0, rotation: 0.3 };
        let t = rect.to_crop(256);
        let centre = t.apply([100.0, 50.0]);
        assert!((centre[0] - 128.0).abs() < 1e-3 && (centre[1] - 128.0).abs() < 1e-3);
        // A point along the rect's own x axis lands on the crop's horizontal.
        let (sin, cos) = 0.3f32.sin_cos();
        let right = t.apply([100.0 + 20.0 * cos, 50.0 + 20.0 * sin]);
        assert!((right[0] - 256.0).abs() < 1e-3 && (right[1] - 128.0).abs() < 1e-3, "{right:?}");
        // Sampling starts at the rect's top-left corner; projection takes crop points back.
        let s = rect.sampling(256);
        let corner = rect.project(256, [0.0, 0.0]);
        assert!((s.origin[0] as f32 - corner[0]).abs() < 1e-3 && (s.origin[1] as f32 - corner[1]).abs() < 1e-3);
        let back = rect.project(256, right);
        assert!((back[0] - (100.0 + 20.0 * cos)).abs() < 1e-3 && (back[1] - (50.0 + 20.0 * sin)).abs() < 1e-3);
    }

    #[test]
    fn the_warp_rounds_as_opencv_and_replicates_or_zeroes_the_border() {
        let src = RgbImage { width: 2, height: 1, data: vec![0, 0, 0, 100, 200, 255] };
        // Halfway between the two pixels, then past the right edge.
        let sampling = Sampling { origin: [0.5, 0.0], right: [1.0, 0.0], down: [0.0, 1.0] };
        let replicated = warp_like_opencv(&src, &sampling, 2, 1, Border::Replicate);
        assert_eq!(replicated.data, [50, 100, 128, 100, 200, 255]);
        let zeroed = warp_like_opencv(&src, &sampling, 2, 1, Border::Zero);
        assert_eq!(zeroed.data, [50, 100, 128, 50, 100, 128]);
    }

    #[test]
    fn level_eyes_give_no_rotation_and_the_box_is_enlarged() {
        let rect = rect_from_box([10.0, 20.0, 100.0, 80.0], [40.0, 50.0], [80.0, 50.0]);
        assert_eq!(rect.center, [60.0, 60.0]);
        assert_eq!((rect.width, rect.height), (150.0, 120.0));
        assert!(rect.rotation.abs() < 1e-6);
        // The left eye higher in the image: the face is turned anticlockwise on screen.
        let tilted = rect_from_box([10.0, 20.0, 100.0, 80.0], [40.0, 50.0], [80.0, 10.0]);
        assert!((tilted.rotation + std::f32::consts::FRAC_PI_4).abs() < 1e-5, "{}", tilted.rotation);
    }

    #[test]
    fn weighted_nms_merges_overlapping_detections() {
        let d = |x: f32, score: f32| Detection { corners: [x, 0.0, x + 1.0, 1.0], keypoints: [[x, 0.0]; 6], score };
        let kept = weighted_nms(vec![d(0.0, 0.9), d(0.1, 0.3), d(5.0, 0.8)], 0.3);
        assert_eq!(kept.len(), 2);
        assert!((kept[0].corners[0] - 0.025).abs() < 1e-6, "{:?}", kept[0]);
        assert_eq!(kept[0].score, 0.9);
        assert_eq!(kept[1].corners[0], 5.0);
        // Boxes that overlap nothing, not even themselves, still end the loop.
        let empty = Detection { corners: [1.0, 1.0, 1.0, 1.0], keypoints: [[1.0; 2]; 6], score: 0.9 };
        let nan = Detection { corners: [f32::NAN; 4], keypoints: [[f32::NAN; 2]; 6], score: 0.8 };
        assert_eq!(weighted_nms(vec![empty, nan, d(0.0, 0.7)], 0.3).len(), 3);
    }

    #[test]
    fn decoding_drops_empty_boxes_and_nan_scores() {
        let anchors = blazeface_anchors();
        let mut raw = vec![0.0; 16 * anchors.len()];
        let mut logits = vec![-10.0; anchors.len()];
        // Anchor 0: a real box; anchor 1: zero width; anchor 2: a NaN score; anchor 3: negative height.
        raw[2..4].copy_from_slice(&[20.0, 20.0]);
        raw[16 + 3] = 20.0;
        raw[32 + 2..32 + 4].copy_from_slice(&[20.0, 20.0]);
        raw[48 + 2..48 + 4].copy_from_slice(&[20.0, -20.0]);
        logits[..4].copy_from_slice(&[5.0, 5.0, f32::NAN, 5.0]);
        let found = decode_blazeface(&raw, &logits, &anchors);
        assert_eq!(found.len(), 1);
        assert!((found[0].corners[2] - found[0].corners[0] - 20.0 / 128.0).abs() < 1e-6);
    }
}
