//! Head pose from face landmarks: a std-only port of MediaPipe's face geometry pipeline, the step
//! that turns the FaceLandmarker's 478 normalized landmarks into its "facial transformation
//! matrix".
//!
//! The matrix maps MediaPipe's canonical face mesh (centimetres, right-handed, +y up, +z out of
//! the face towards the camera) into a metric camera space whose camera sits at the origin and
//! looks down -z. Its upper 3x3 block is a rotation (times a scale that is 1 up to rounding,
//! since the landmarks are unprojected at the depth that makes the face canonical-sized) and
//! its last column is the face's position in centimetres.
//!
//! What follows mirrors `mediapipe/tasks/cc/vision/face_geometry/libs/geometry_pipeline.cc` and
//! `procrustes_solver.cc` with the environment the FaceLandmarker task uses
//! (`face_geometry_from_landmarks_graph.cc`): origin in the top-left corner, a perspective
//! camera with a 63 degree vertical field of view and the near plane at 1 cm (the far plane,
//! 100 m, only matters to renderers). Only the first 468 landmarks (the mesh without the irises)
//! take part. MediaPipe computes in `f32`; this port computes in `f64`, so its matrices agree
//! with MediaPipe's to rounding, not bit for bit.
//!
//! The metadata file (`geometry_pipeline_metadata_landmarks.binarypb`, a binary
//! `GeometryPipelineMetadata` proto) is decoded by a small wire-format reader written here, so
//! that the crate needs no protobuf library.

/// Landmarks the pipeline uses: the face mesh without the 10 iris landmarks that follow it.
pub const CANONICAL_VERTICES: usize = 468;

/// Vertical field of view of the virtual perspective camera, in degrees (FaceLandmarker's
/// default environment).
const VERTICAL_FOV_DEGREES: f64 = 63.0;

/// Distance of the camera's near plane, in centimetres (FaceLandmarker's default environment).
/// The screen landmarks are placed on this plane before they are unprojected.
const NEAR: f64 = 1.0;

/// Floats per vertex in the canonical mesh: `VERTEX_PT` is position (x, y, z) then texture
/// coordinates (u, v).
const VERTEX_SIZE: usize = 5;

/// MediaPipe's `kAbsoluteErrorEps`: below this a weight sum, a matrix norm or a scale counts as
/// zero and the problem as degenerate.
const EPS: f64 = 1e-9;

/// The design matrix counts as rank-deficient (points collinear, no rotation determined) when its
/// second singular value is below this fraction of the first. Real faces give 0.7 to 0.9;
/// landmarks that are collinear up to `f32` rounding give about 1e-7.
const RANK_TOLERANCE: f64 = 1e-5;

/// MediaPipe drops a face whose landmarks all lie within this distance (in normalized image
/// units) of their mean: so compact a set makes the solver numerically unstable.
const TOO_COMPACT: f64 = 1e-3;

/// The canonical face and the Procrustes landmark weights from the geometry pipeline metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct GeometryMetadata {
    /// The canonical mesh's vertex positions in centimetres, one per mesh landmark (468).
    canonical: Vec<[f32; 3]>,
    /// `(landmark index, weight)` of the Procrustes basis, ordered by index, each index once
    /// (a later entry for the same index replaces an earlier one, as in MediaPipe).
    weights: Vec<(usize, f32)>,
}

impl GeometryMetadata {
    /// Decodes a binary `GeometryPipelineMetadata` proto and checks it the way MediaPipe's
    /// `ValidateGeometryPipelineMetadata` does, plus what this port relies on: 468 vertices with
    /// finite positions, and a basis whose weights are finite and not all zero.
    ///
    /// Metadata meant for detection input (`input_source: FACE_DETECTION_PIPELINE`, landmarks
    /// without depth) is refused: that variant of the pipeline is not implemented here.
    pub fn parse(bytes: &[u8]) -> Result<GeometryMetadata, String> {
        let mut mesh = MeshBuilder::default();
        let mut basis: Vec<(u64, f32)> = Vec::new();
        let mut input_source = 0u64;

        let mut reader = WireReader::new(bytes, "GeometryPipelineMetadata");
        while let Some((field, value)) = reader.next_field()? {
            match field {
                1 => mesh.merge(value.bytes("GeometryPipelineMetadata.canonical_mesh")?)?,
                2 => basis
                    .push(parse_weighted_landmark(value.bytes("GeometryPipelineMetadata.procrustes_landmark_basis")?)?),
                3 => input_source = value.varint("GeometryPipelineMetadata.input_source")?,
                _ => {} // Unknown fields are skipped, as any protobuf reader does.
            }
        }

        match input_source {
            0 | 1 => {} // DEFAULT (= FACE_LANDMARK_PIPELINE) or FACE_LANDMARK_PIPELINE.
            2 => {
                return Err("geometry pipeline metadata: input_source is FACE_DETECTION_PIPELINE; \
                            only landmark input (FACE_LANDMARK_PIPELINE) is supported"
                    .to_string())
            }
            other => return Err(format!("geometry pipeline metadata: unknown input_source {other}")),
        }

        let canonical = mesh.finish()?;
        let weights = collect_weights(&basis, canonical.len())?;
        Ok(GeometryMetadata { canonical, weights })
    }

    /// The canonical mesh's vertex positions (x, y, z) in centimetres.
    pub fn canonical(&self) -> &[[f32; 3]] {
        &self.canonical
    }

    /// The Procrustes basis: `(landmark index, weight)`, ordered by index.
    pub fn weights(&self) -> &[(usize, f32)] {
        &self.weights
    }
}

/// The facial transformation matrix for one face, as MediaPipe's FaceLandmarker reports it:
/// row-major (`m[row][col]`), translation in the last column, centimetres.
///
/// `landmarks` are MediaPipe-normalized: x divided by the frame width, y by the frame height
/// (origin top-left), and z as MediaPipe's landmark projection leaves it: the model's z output
/// (in pixels of its 256-pixel input) divided by 256 and multiplied by the length, in normalized
/// frame units, of the crop's x axis, `hypot(S * cos(a) / W, S * sin(a) / H)` for a crop of
/// side `S` pixels rotated by `a` (`S / W` for an upright crop), which puts z in x's units.
/// Only the first 468 are used, so the model's full 478 can be passed as they are.
/// `frame_width`/`frame_height` are the size of the image the landmarks were found in; they set
/// the camera's aspect ratio.
///
/// Returns `None` where MediaPipe fails or skips the face (fewer than 468 landmarks, a zero
/// frame size, every landmark within 1e-3 of their mean, a degenerate Procrustes problem), and
/// also for a non-finite coordinate or result and for landmarks on one line.
pub fn facial_transformation_matrix(
    meta: &GeometryMetadata,
    landmarks: &[[f32; 3]],
    frame_width: usize,
    frame_height: usize,
) -> Option<[[f32; 4]; 4]> {
    let count = meta.canonical.len();
    if landmarks.len() < count || count == 0 || frame_width == 0 || frame_height == 0 {
        return None;
    }
    let landmarks = &landmarks[..count];
    if landmarks.iter().flatten().any(|v| !v.is_finite()) {
        return None;
    }
    if is_too_compact(landmarks) {
        return None;
    }

    // The camera frustum at the near plane. The aspect ratio comes from the frame, so x and y
    // (normalized separately by width and height) land on the plane with their true proportions.
    let height_at_near = 2.0 * NEAR * (0.5 * VERTICAL_FOV_DEGREES.to_radians()).tan();
    let width_at_near = frame_width as f64 * height_at_near / frame_height as f64;
    let (left, bottom) = (-0.5 * width_at_near, -0.5 * height_at_near);

    // Screen landmarks on the near plane: y flipped from the top-left origin to "up", z scaled
    // like x (MediaPipe's z is in x's units). Still left-handed: z grows away from the camera.
    let screen: Vec<Vec3> = landmarks
        .iter()
        .map(|&[x, y, z]| {
            [
                f64::from(x) * width_at_near + left,
                (1.0 - f64::from(y)) * height_at_near + bottom,
                f64::from(z) * width_at_near,
            ]
        })
        .collect();
    let depth_offset = screen.iter().map(|p| p[2]).sum::<f64>() / count as f64;

    let solver = Procrustes::new(meta);

    // 1st estimate of the canonical-to-screen scale, on the projected points as they are: the
    // landmarks' z is only relative, so they cannot be unprojected safely yet.
    let flat: Vec<Vec3> = screen.iter().map(|&[x, y, z]| [x, y, -z]).collect();
    let first_scale = solver.solve(&flat)?.scale;

    // 2nd estimate, on the points unprojected with the first scale; the product of the two
    // scales puts the face at the depth where it has the canonical face's size.
    let intermediate = unproject(&screen, depth_offset, first_scale);
    let second_scale = solver.solve(&intermediate)?.scale;

    let metric = unproject(&screen, depth_offset, first_scale * second_scale);
    let pose = solver.solve(&metric)?;

    let mut m = [[0f32; 4]; 4];
    for (r, row) in m.iter_mut().take(3).enumerate() {
        for (c, cell) in row.iter_mut().take(3).enumerate() {
            *cell = (pose.scale * pose.rotation[r][c]) as f32;
        }
        row[3] = pose.translation[r] as f32;
    }
    m[3][3] = 1.0;
    m.iter().flatten().all(|v| v.is_finite()).then_some(m)
}

/// Pitch, yaw and roll in degrees of the matrix's rotation, taken as
/// `R = Rz(roll) * Ry(yaw) * Rx(pitch)`: the convention of the reference poses stored alongside
/// MediaPipe's matrices (checked against all seven of them in the tests).
///
/// Pitch is about x (positive turns the face's up axis towards the camera: the head tilts
/// down), yaw about y (positive turns the face towards the image's right), roll about z
/// (positive turns the face counter-clockwise in the image). A uniform scale in the matrix does
/// not change the angles. Yaw is in [-90, 90]; at exactly +-90 degrees pitch and roll are not
/// separable and the whole remaining rotation is reported as roll. Non-finite entries give NaN
/// angles.
pub fn euler_degrees(m: &[[f32; 4]; 4]) -> (f32, f32, f32) {
    let r = |row: usize, col: usize| f64::from(m[row][col]);
    let pitch = r(2, 1).atan2(r(2, 2));
    let yaw = (-r(2, 0)).atan2(r(2, 1).hypot(r(2, 2)));
    let roll = r(1, 0).atan2(r(0, 0));
    (pitch.to_degrees() as f32, yaw.to_degrees() as f32, roll.to_degrees() as f32)
}

/// Head pose in degrees: `R = Rz(roll) * Ry(yaw) * Rx(pitch)`, the rotation of the facial
/// transformation matrix.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pose {
    pub pitch: f32,
    pub yaw: f32,
    pub roll: f32,
}

impl Pose {
    pub fn from_matrix(m: &[[f32; 4]; 4]) -> Pose {
        let (pitch, yaw, roll) = euler_degrees(m);
        Pose { pitch, yaw, roll }
    }
}

/// MediaPipe's `IsScreenLandmarkListTooCompact`: every landmark within 1e-3 (normalized units)
/// of the landmarks' mean in the image plane.
fn is_too_compact(landmarks: &[[f32; 3]]) -> bool {
    let n = landmarks.len() as f64;
    let mean_x = landmarks.iter().map(|p| f64::from(p[0])).sum::<f64>() / n;
    let mean_y = landmarks.iter().map(|p| f64::from(p[1])).sum::<f64>() / n;
    let max_sq = landmarks
        .iter()
        .map(|p| (f64::from(p[0]) - mean_x).powi(2) + (f64::from(p[1]) - mean_y).powi(2))
        .fold(0.0, f64::max);
    max_sq.sqrt() <= TOO_COMPACT
}

/// Moves the screen landmarks to depth `(z - depth_offset + near) / scale`, unprojects x and y
/// through the near plane to that depth, and flips z to the right-handed metric space.
fn unproject(screen: &[Vec3], depth_offset: f64, scale: f64) -> Vec<Vec3> {
    screen
        .iter()
        .map(|&[x, y, z]| {
            let depth = (z - depth_offset + NEAR) / scale;
            [x * depth / NEAR, y * depth / NEAR, -depth]
        })
        .collect()
}

/// A similarity transform `target ~ scale * rotation * source + translation`.
#[derive(Debug, Clone, Copy)]
struct Similarity {
    scale: f64,
    rotation: Mat3,
    translation: Vec3,
}

/// MediaPipe's weighted orthogonal Procrustes solver (after Akca 2003, section 2.4) with the
/// canonical mesh as the source. Landmarks with weight zero add nothing to any of its sums, so
/// only the basis landmarks are kept.
struct Procrustes {
    /// `(landmark index, canonical position, sqrt(weight))` for each weighted landmark.
    basis: Vec<(usize, Vec3, f64)>,
    total_weight: f64,
}

impl Procrustes {
    fn new(meta: &GeometryMetadata) -> Procrustes {
        let basis: Vec<(usize, Vec3, f64)> = meta
            .weights
            .iter()
            .filter(|&&(i, w)| w > 0.0 && i < meta.canonical.len())
            .map(|&(i, w)| (i, meta.canonical[i].map(f64::from), f64::from(w).sqrt()))
            .collect();
        let total_weight = basis.iter().map(|b| b.2 * b.2).sum();
        Procrustes { basis, total_weight }
    }

    /// The similarity that best maps the canonical mesh onto `targets` (indexed like the mesh)
    /// in the weighted least-squares sense, with a proper rotation (no reflection); `None` when
    /// the problem is degenerate.
    fn solve(&self, targets: &[Vec3]) -> Option<Similarity> {
        if self.total_weight <= EPS || self.basis.iter().any(|b| b.0 >= targets.len()) {
            return None;
        }
        // Weighted points: source and target each multiplied by sqrt(weight).
        let weighted: Vec<(Vec3, Vec3, f64)> =
            self.basis.iter().map(|&(i, src, sw)| (scale3(src, sw), scale3(targets[i], sw), sw)).collect();

        // Weighted centre of mass of the source, and the weighted sources relative to it.
        let mut center = [0.0; 3];
        for (ws, _, sw) in &weighted {
            center = add3(center, scale3(*ws, *sw));
        }
        center = scale3(center, 1.0 / self.total_weight);
        let centered: Vec<Vec3> = weighted.iter().map(|(ws, _, sw)| sub3(*ws, scale3(center, *sw))).collect();

        // Design matrix: sum of weighted_target * centered_source^T.
        let mut design = [[0.0; 3]; 3];
        for ((_, wt, _), cs) in weighted.iter().zip(&centered) {
            for (r, row) in design.iter_mut().enumerate() {
                for (c, cell) in row.iter_mut().enumerate() {
                    *cell += wt[r] * cs[c];
                }
            }
        }
        let design_norm = design.iter().flatten().map(|v| v * v).sum::<f64>().sqrt();
        if !above(design_norm, EPS) {
            return None;
        }
        let rotation = optimal_rotation(&design)?;

        // Scale: trace(R * centered * targets^T) / trace(centered * sources^T).
        let mut numerator = 0.0;
        let mut denominator = 0.0;
        for ((ws, wt, _), cs) in weighted.iter().zip(&centered) {
            numerator += dot3(mat_vec(&rotation, *cs), *wt);
            denominator += dot3(*cs, *ws);
        }
        if !above(denominator, EPS) || !above(numerator / denominator, EPS) {
            return None;
        }
        let scale = numerator / denominator;

        // Translation: weighted mean of target - scale * R * source.
        let mut translation = [0.0; 3];
        for (ws, wt, sw) in &weighted {
            let diff = sub3(*wt, scale3(mat_vec(&rotation, *ws), scale));
            translation = add3(translation, scale3(diff, *sw));
        }
        translation = scale3(translation, 1.0 / self.total_weight);

        let all_finite = scale.is_finite()
            && translation.iter().all(|v| v.is_finite())
            && rotation.iter().flatten().all(|v| v.is_finite());
        all_finite.then_some(Similarity { scale, rotation, translation })
    }
}

/// The rotation `R` maximizing `trace(R^T * design)`: with `design = U S V^T`,
/// `R = U diag(1, 1, det(U V^T)) V^T`. Like MediaPipe, a reflection is turned into a rotation
/// by flipping the direction of the smallest singular value. `None` when the design matrix has
/// rank below 2 (the points are collinear or collapsed), where no rotation is determined;
/// MediaPipe has no such check and returns whatever its SVD happens to give.
fn optimal_rotation(design: &Mat3) -> Option<Mat3> {
    let svd = Svd3::new(design)?;
    if !above(svd.sigma[1], RANK_TOLERANCE * svd.sigma[0]) {
        return None;
    }
    // The first two left vectors fix the rotation; the third follows from them and the
    // handedness of V, so that R = U V^T has determinant +1 whatever the signs SVD chose.
    let u1 = svd.u[0];
    let u2 = normalize3(sub3(svd.u[1], scale3(u1, dot3(u1, svd.u[1]))))?;
    let v = svd.v;
    let det_v = dot3(v[0], cross3(v[1], v[2]));
    let u = [u1, u2, scale3(cross3(u1, u2), det_v.signum())];

    let mut rotation = [[0.0; 3]; 3];
    for (r, row) in rotation.iter_mut().enumerate() {
        for (c, cell) in row.iter_mut().enumerate() {
            *cell = (0..3).map(|k| u[k][r] * v[k][c]).sum();
        }
    }
    Some(rotation)
}

/// Singular value decomposition `A = sum_k sigma[k] * u[k] * v[k]^T` of a 3x3 matrix, the
/// singular values in decreasing order. `u[k]` and `v[k]` are the singular vectors (columns of
/// U and V); a left vector whose singular value is zero is left as zero.
struct Svd3 {
    u: [Vec3; 3],
    sigma: Vec3,
    v: [Vec3; 3],
}

impl Svd3 {
    /// One-sided (Hestenes) Jacobi: rotations applied on the right make the columns of `A V`
    /// mutually orthogonal; their norms are then the singular values and their directions the
    /// left singular vectors. Working on `A` itself rather than on `A^T A` keeps the small
    /// singular values accurate. `None` only for non-finite input.
    fn new(a: &Mat3) -> Option<Svd3> {
        if a.iter().flatten().any(|v| !v.is_finite()) {
            return None;
        }
        // Work on columns: cols[j] is column j of A V, v[j] column j of V.
        let mut cols = [[a[0][0], a[1][0], a[2][0]], [a[0][1], a[1][1], a[2][1]], [a[0][2], a[1][2], a[2][2]]];
        let mut v = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];

        for _sweep in 0..64 {
            let mut rotated = false;
            for (p, q) in [(0, 1), (0, 2), (1, 2)] {
                let alpha = dot3(cols[p], cols[p]);
                let beta = dot3(cols[q], cols[q]);
                let gamma = dot3(cols[p], cols[q]);
                if gamma == 0.0 || gamma.abs() <= 1e-15 * (alpha * beta).sqrt() {
                    continue;
                }
                rotated = true;
                // The Jacobi rotation that zeroes the (p, q) entry of (A V)^T (A V).
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = zeta.signum() / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                for target in [&mut cols, &mut v] {
                    let (cp, cq) = (target[p], target[q]);
                    target[p] = sub3(scale3(cp, c), scale3(cq, s));
                    target[q] = add3(scale3(cp, s), scale3(cq, c));
                }
            }
            if !rotated {
                break;
            }
        }

        let mut order = [0usize, 1, 2];
        let norms = cols.map(|c| dot3(c, c).sqrt());
        order.sort_by(|&i, &j| norms[j].total_cmp(&norms[i]));
        let sigma = order.map(|i| norms[i]);
        let u = order.map(|i| normalize3(cols[i]).unwrap_or([0.0; 3]));
        let v = order.map(|i| v[i]);
        Some(Svd3 { u, sigma, v })
    }
}

// ---------------------------------------------------------------------------------------------
// Small vector helpers.

type Vec3 = [f64; 3];
type Mat3 = [Vec3; 3];

/// `value > bound`, false when either is NaN: the form every "large enough" check here takes.
fn above(value: f64, bound: f64) -> bool {
    value > bound
}

fn add3(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] + b[0], a[1] + b[1], a[2] + b[2]]
}

fn sub3(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn scale3(a: Vec3, s: f64) -> Vec3 {
    [a[0] * s, a[1] * s, a[2] * s]
}

fn dot3(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross3(a: Vec3, b: Vec3) -> Vec3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn normalize3(a: Vec3) -> Option<Vec3> {
    let norm = dot3(a, a).sqrt();
    (norm > 0.0 && norm.is_finite()).then(|| scale3(a, 1.0 / norm))
}

fn mat_vec(m: &Mat3, v: Vec3) -> Vec3 {
    [dot3(m[0], v), dot3(m[1], v), dot3(m[2], v)]
}

// ---------------------------------------------------------------------------------------------
// Metadata decoding.

/// The canonical `Mesh3d` as it is read. A message field that occurs more than once is merged,
/// as protobuf specifies: repeated fields are concatenated, scalars replaced.
#[derive(Default)]
struct MeshBuilder {
    vertex_type: u64,
    primitive_type: u64,
    vertex_buffer: Vec<f32>,
    index_buffer: Vec<u32>,
}

impl MeshBuilder {
    fn merge(&mut self, bytes: &[u8]) -> Result<(), String> {
        let mut reader = WireReader::new(bytes, "Mesh3d");
        while let Some((field, value)) = reader.next_field()? {
            match field {
                1 => self.vertex_type = value.varint("Mesh3d.vertex_type")?,
                2 => self.primitive_type = value.varint("Mesh3d.primitive_type")?,
                3 => match value {
                    WireValue::Fixed32(bits) => self.vertex_buffer.push(f32::from_bits(bits)),
                    WireValue::Bytes(packed) => {
                        if !packed.len().is_multiple_of(4) {
                            return Err(format!(
                                "Mesh3d.vertex_buffer: packed floats take {} bytes, not a \
                                 multiple of 4",
                                packed.len()
                            ));
                        }
                        self.vertex_buffer
                            .extend(packed.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])));
                    }
                    other => return Err(other.unexpected("Mesh3d.vertex_buffer", "float")),
                },
                4 => match value {
                    WireValue::Varint(v) => self.index_buffer.push(to_u32(v, "Mesh3d.index_buffer")?),
                    WireValue::Bytes(packed) => {
                        let mut inner = WireReader::new(packed, "Mesh3d.index_buffer (packed)");
                        while !inner.at_end() {
                            let v = inner.varint()?;
                            self.index_buffer.push(to_u32(v, "Mesh3d.index_buffer")?);
                        }
                    }
                    other => return Err(other.unexpected("Mesh3d.index_buffer", "uint32")),
                },
                _ => {}
            }
        }
        Ok(())
    }

    /// Checks the mesh (MediaPipe's `ValidateMesh3d` and the pipeline's own expectations) and
    /// returns the vertex positions.
    fn finish(self) -> Result<Vec<[f32; 3]>, String> {
        if self.vertex_type != 0 {
            return Err(format!("canonical mesh: vertex_type {} is not VERTEX_PT (0)", self.vertex_type));
        }
        if self.primitive_type != 0 {
            return Err(format!("canonical mesh: primitive_type {} is not TRIANGLE (0)", self.primitive_type));
        }
        if !self.vertex_buffer.len().is_multiple_of(VERTEX_SIZE) {
            return Err(format!(
                "canonical mesh: vertex_buffer has {} floats, not a multiple of {VERTEX_SIZE} \
                 (x, y, z, u, v)",
                self.vertex_buffer.len()
            ));
        }
        let vertices = self.vertex_buffer.len() / VERTEX_SIZE;
        if vertices != CANONICAL_VERTICES {
            return Err(format!(
                "canonical mesh: {vertices} vertices, expected {CANONICAL_VERTICES} (one per face \
                 mesh landmark)"
            ));
        }
        if !self.index_buffer.len().is_multiple_of(3) {
            return Err(format!(
                "canonical mesh: index_buffer has {} indices, not a multiple of 3 (triangles)",
                self.index_buffer.len()
            ));
        }
        if let Some(bad) = self.index_buffer.iter().find(|&&i| i as usize >= vertices) {
            return Err(format!("canonical mesh: index {bad} refers to no vertex (there are {vertices})"));
        }
        let canonical: Vec<[f32; 3]> =
            self.vertex_buffer.chunks_exact(VERTEX_SIZE).map(|v| [v[0], v[1], v[2]]).collect();
        if let Some(i) = canonical.iter().position(|p| p.iter().any(|v| !v.is_finite())) {
            return Err(format!("canonical mesh: vertex {i} has a non-finite position"));
        }
        Ok(canonical)
    }
}

/// Decodes one `WeightedLandmarkRef` (`landmark_id = 1`, `weight = 2`; proto2 defaults 0).
fn parse_weighted_landmark(bytes: &[u8]) -> Result<(u64, f32), String> {
    let mut id = 0u64;
    let mut weight = 0f32;
    let mut reader = WireReader::new(bytes, "WeightedLandmarkRef");
    while let Some((field, value)) = reader.next_field()? {
        match field {
            1 => id = value.varint("WeightedLandmarkRef.landmark_id")?,
            2 => match value {
                WireValue::Fixed32(bits) => weight = f32::from_bits(bits),
                other => return Err(other.unexpected("WeightedLandmarkRef.weight", "float")),
            },
            _ => {}
        }
    }
    Ok((id, weight))
}

/// Checks the Procrustes basis against the mesh and returns it one entry per landmark, ordered
/// by index (a later entry for the same landmark replacing an earlier one, as MediaPipe's dense
/// weight vector does).
fn collect_weights(basis: &[(u64, f32)], vertices: usize) -> Result<Vec<(usize, f32)>, String> {
    if basis.is_empty() {
        return Err("geometry pipeline metadata: the Procrustes landmark basis is empty".to_string());
    }
    let mut dense: Vec<Option<f32>> = vec![None; vertices];
    for &(id, weight) in basis {
        let slot = usize::try_from(id).ok().and_then(|i| dense.get_mut(i)).ok_or_else(|| {
            format!(
                "Procrustes landmark basis: landmark_id {id} refers to no canonical mesh vertex \
                 (there are {vertices})"
            )
        })?;
        if !weight.is_finite() || weight < 0.0 {
            return Err(format!(
                "Procrustes landmark basis: landmark {id} has weight {weight}, expected a finite \
                 non-negative number"
            ));
        }
        *slot = Some(weight);
    }
    let weights: Vec<(usize, f32)> = dense.iter().enumerate().filter_map(|(i, w)| w.map(|w| (i, w))).collect();
    let total: f64 = weights.iter().map(|&(_, w)| f64::from(w)).sum();
    if !above(total, EPS) {
        return Err(format!("Procrustes landmark basis: the weights sum to {total}, too small to solve with"));
    }
    Ok(weights)
}

fn to_u32(value: u64, what: &str) -> Result<u32, String> {
    u32::try_from(value).map_err(|_| format!("{what}: {value} does not fit in a uint32"))
}

/// One field's value as the protobuf wire format carries it.
#[derive(Debug, Clone, Copy)]
enum WireValue<'a> {
    Varint(u64),
    /// A 64-bit value: no field read here has this type, it is only skipped.
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32(u32),
}

impl<'a> WireValue<'a> {
    fn kind(&self) -> &'static str {
        match self {
            WireValue::Varint(_) => "a varint",
            WireValue::Fixed64 => "a 64-bit value",
            WireValue::Bytes(_) => "a length-delimited value",
            WireValue::Fixed32(_) => "a 32-bit value",
        }
    }

    fn unexpected(&self, what: &str, expected: &str) -> String {
        format!("{what}: expected {expected}, found {}", self.kind())
    }

    fn varint(self, what: &str) -> Result<u64, String> {
        match self {
            WireValue::Varint(v) => Ok(v),
            other => Err(other.unexpected(what, "a varint")),
        }
    }

    fn bytes(self, what: &str) -> Result<&'a [u8], String> {
        match self {
            WireValue::Bytes(b) => Ok(b),
            other => Err(other.unexpected(what, "an embedded message")),
        }
    }
}

/// A reader of protobuf wire format over one message's bytes. Every length is checked against
/// what is left, so truncated or corrupt input gives an error, never a panic.
struct WireReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// The message being read, for error messages.
    message: &'static str,
}

impl<'a> WireReader<'a> {
    fn new(bytes: &'a [u8], message: &'static str) -> WireReader<'a> {
        WireReader { bytes, pos: 0, message }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    fn varint(&mut self) -> Result<u64, String> {
        let start = self.pos;
        let mut value = 0u64;
        for shift in (0..70).step_by(7) {
            let byte = *self
                .bytes
                .get(self.pos)
                .ok_or_else(|| format!("{}: truncated varint at byte {start}", self.message))?;
            self.pos += 1;
            if shift < 64 {
                value |= u64::from(byte & 0x7f) << shift;
            }
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(format!("{}: varint at byte {start} is longer than 10 bytes", self.message))
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], String> {
        let start = self.pos;
        let end = start.checked_add(len).filter(|&end| end <= self.bytes.len()).ok_or_else(|| {
            format!("{}: field at byte {start} needs {len} bytes, only {} left", self.message, self.bytes.len() - start)
        })?;
        self.pos = end;
        Ok(&self.bytes[start..end])
    }

    /// The next `(field number, value)`, or `None` at the end of the message.
    fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, String> {
        if self.at_end() {
            return Ok(None);
        }
        let start = self.pos;
        let key = self.varint()?;
        let field = u32::try_from(key >> 3)
            .ok()
            .filter(|&f| f != 0)
            .ok_or_else(|| format!("{}: invalid field number in key at byte {start}", self.message))?;
        let value = match key & 7 {
            0 => WireValue::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                WireValue::Fixed64
            }
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len)
                    .map_err(|_| format!("{}: length {len} at byte {start} is too large", self.message))?;
                WireValue::Bytes(self.take(len)?)
            }
            5 => {
                let b = self.take(4)?;
                WireValue::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            wire => {
                return Err(format!(
                    "{}: field {field} at byte {start} has wire type {wire} (groups or invalid), \
                     which this reader does not accept",
                    self.message
                ))
            }
        };
        Ok(Some((field, value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metadata hrm ships (`models/mediapipe/`), compiled in.
    fn read_metadata_bytes() -> Vec<u8> {
        let file = hrm_models::MEDIAPIPE_FILES.iter().find(|f| f.name.ends_with(".binarypb")).expect("the metadata");
        file.bytes.to_vec()
    }

    fn metadata() -> GeometryMetadata {
        GeometryMetadata::parse(&read_metadata_bytes()).unwrap()
    }

    /// `Rz(roll) * Ry(yaw) * Rx(pitch)`, degrees.
    fn rotation_from_euler(pitch: f64, yaw: f64, roll: f64) -> Mat3 {
        let (sp, cp) = pitch.to_radians().sin_cos();
        let (sy, cy) = yaw.to_radians().sin_cos();
        let (sr, cr) = roll.to_radians().sin_cos();
        [
            [cr * cy, cr * sy * sp - sr * cp, cr * sy * cp + sr * sp],
            [sr * cy, sr * sy * sp + cr * cp, sr * sy * cp - cr * sp],
            [-sy, cy * sp, cy * cp],
        ]
    }

    /// Angle in degrees of the rotation taking `a`'s rotation (scale removed) to `b`, from both
    /// the trace and the skew part of `a^T b` so that it stays accurate near zero.
    fn angle_between(a: &[[f32; 4]; 4], b: &Mat3) -> f64 {
        let scale = (0..3).map(|r| f64::from(a[r][0]).powi(2)).sum::<f64>().sqrt();
        let q = |i: usize, j: usize| (0..3).map(|k| f64::from(a[k][i]) / scale * b[k][j]).sum::<f64>();
        let sin2 = ((q(2, 1) - q(1, 2)).powi(2) + (q(0, 2) - q(2, 0)).powi(2) + (q(1, 0) - q(0, 1)).powi(2)).sqrt();
        sin2.atan2(q(0, 0) + q(1, 1) + q(2, 2) - 1.0).to_degrees()
    }

    // ---- Parsing ----------------------------------------------------------------------------

    #[test]
    fn parses_the_real_metadata() {
        let meta = metadata();
        assert_eq!(meta.canonical().len(), 468);
        assert_eq!(meta.weights().len(), 33);
        assert!(meta.weights().windows(2).all(|w| w[0].0 < w[1].0));
        assert!(meta.weights().iter().all(|&(i, w)| i < 468 && w > 0.0));
        // The canonical face is about 15 cm wide and centred near the origin.
        let xs: Vec<f32> = meta.canonical().iter().map(|p| p[0]).collect();
        let width = xs.iter().cloned().fold(f32::MIN, f32::max) - xs.iter().cloned().fold(f32::MAX, f32::min);
        assert!((10.0..20.0).contains(&width), "canonical width {width}");
    }

    /// A tiny protobuf encoder for building test metadata.
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    fn key(field: u32, wire: u8, out: &mut Vec<u8>) {
        varint(u64::from(field) << 3 | u64::from(wire), out);
    }
    fn message(field: u32, body: &[u8], out: &mut Vec<u8>) {
        key(field, 2, out);
        varint(body.len() as u64, out);
        out.extend_from_slice(body);
    }

    /// Metadata built from the real file's content, with knobs to break it.
    fn build_metadata(vertices: usize, packed: bool, basis: &[(u64, f32)], input_source: Option<u64>) -> Vec<u8> {
        let real = metadata();
        let mut mesh = Vec::new();
        key(1, 0, &mut mesh);
        varint(0, &mut mesh);
        let floats: Vec<f32> = (0..vertices)
            .flat_map(|i| {
                let p = real.canonical()[i % 468];
                [p[0], p[1], p[2], 0.5, 0.5]
            })
            .collect();
        if packed {
            let bytes: Vec<u8> = floats.iter().flat_map(|f| f.to_le_bytes()).collect();
            message(3, &bytes, &mut mesh);
        } else {
            for f in floats {
                key(3, 5, &mut mesh);
                mesh.extend_from_slice(&f.to_le_bytes());
            }
        }
        let mut indices = Vec::new();
        for i in [0u64, 1, 2] {
            varint(i, &mut indices);
        }
        message(4, &indices, &mut mesh);

        let mut out = Vec::new();
        message(1, &mesh, &mut out);
        for &(id, w) in basis {
            let mut entry = Vec::new();
            key(1, 0, &mut entry);
            varint(id, &mut entry);
            key(2, 5, &mut entry);
            entry.extend_from_slice(&w.to_le_bytes());
            message(2, &entry, &mut out);
        }
        if let Some(source) = input_source {
            key(3, 0, &mut out);
            varint(source, &mut out);
        }
        out
    }

    #[test]
    fn packed_and_unpacked_encodings_agree() {
        let basis = [(4, 0.07), (6, 0.03), (4, 0.5)];
        let a = GeometryMetadata::parse(&build_metadata(468, false, &basis, Some(1))).unwrap();
        let b = GeometryMetadata::parse(&build_metadata(468, true, &basis, None)).unwrap();
        assert_eq!(a, b);
        // A later entry for the same landmark replaces the earlier one.
        assert_eq!(a.weights(), &[(4, 0.5), (6, 0.03)]);
        assert_eq!(a.canonical(), metadata().canonical());
    }

    #[test]
    fn bad_metadata_is_an_error_naming_the_problem() {
        let ok = [(4u64, 0.5f32)];
        let cases: [(Vec<u8>, &str); 8] = [
            (Vec::new(), "vertices"),
            (build_metadata(467, false, &ok, None), "467 vertices"),
            (build_metadata(468, false, &[], None), "basis is empty"),
            (build_metadata(468, false, &[(468, 0.5)], None), "landmark_id 468"),
            (build_metadata(468, false, &[(3, -1.0)], None), "weight -1"),
            (build_metadata(468, false, &[(3, f32::NAN)], None), "weight NaN"),
            (build_metadata(468, false, &[(3, 0.0)], None), "sum to 0"),
            (build_metadata(468, false, &ok, Some(2)), "FACE_DETECTION_PIPELINE"),
        ];
        for (bytes, expected) in cases {
            let err = GeometryMetadata::parse(&bytes).unwrap_err();
            assert!(err.contains(expected), "{err:?} should mention {expected:?}");
        }
        let truncated = read_metadata_bytes();
        let err = GeometryMetadata::parse(&truncated[..truncated.len() / 2]).unwrap_err();
        assert!(err.contains("needs") || err.contains("truncated"), "{err}");
        let err = GeometryMetadata::parse(&[0x0b, 0x00]).unwrap_err();
        assert!(err.contains("wire type 3"), "{err}");
        let err = GeometryMetadata::parse(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap_err();
        assert!(err.contains("needs"), "{err}");
        let err = GeometryMetadata::parse(&[0x18; 11]).unwrap_err();
        assert!(err.contains("varint"), "{err}");
    }

    #[test]
    fn corrupt_metadata_never_panics() {
        let real = read_metadata_bytes();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..300 {
            let mut bytes = real.clone();
            for _ in 0..1 + next() % 8 {
                let i = (next() % bytes.len() as u64) as usize;
                bytes[i] = next() as u8;
            }
            let cut = (next() % (bytes.len() as u64 + 1)) as usize;
            let _ = GeometryMetadata::parse(&bytes[..cut]);
            let _ = GeometryMetadata::parse(&bytes);
        }
    }

    // ---- Euler angles -----------------------------------------------------------------------

    /// MediaPipe's own matrices and the pitch, yaw and roll it reports beside them, for the
    /// seven faces of the shared photographs (read from `../shared/reference`).
    #[test]
    fn euler_angles_match_the_reference_poses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/reference/mediapipe_face_landmarker.json");
        let reference: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let mut checked = 0;
        for face in reference.as_object().unwrap().values().flat_map(|faces| faces.as_array().unwrap()) {
            let m: [[f32; 4]; 4] =
                std::array::from_fn(|r| std::array::from_fn(|c| face["matrix"][r][c].as_f64().unwrap() as f32));
            let want = |axis: &str| face["pose"][axis].as_f64().unwrap() as f32;
            let (p, y, r) = euler_degrees(&m);
            // The stored matrices are rounded to 5 decimals: about 0.001 degree.
            for (got, want) in [(p, want("pitch")), (y, want("yaw")), (r, want("roll"))] {
                assert!((got - want).abs() < 0.01, "got {:?}, want {}", (p, y, r), face["pose"]);
            }
            checked += 1;
        }
        assert_eq!(checked, 7);
    }

    #[test]
    fn euler_angles_round_trip_and_ignore_scale() {
        for &(pitch, yaw, roll) in &[(10.0, -20.0, 5.0), (-35.0, 60.0, -80.0), (170.0, 10.0, -170.0)] {
            let rot = rotation_from_euler(pitch, yaw, roll);
            let mut m = [[0f32; 4]; 4];
            for r in 0..3 {
                for c in 0..3 {
                    m[r][c] = (2.5 * rot[r][c]) as f32;
                }
            }
            let (p, y, r) = euler_degrees(&m);
            assert!(
                (f64::from(p) - pitch).abs() < 1e-3
                    && (f64::from(y) - yaw).abs() < 1e-3
                    && (f64::from(r) - roll).abs() < 1e-3,
                "{:?} vs {:?}",
                (p, y, r),
                (pitch, yaw, roll)
            );
        }
        // Gimbal lock and garbage: no panic.
        let m = [[0.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0], [-1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]];
        let (_, y, _) = euler_degrees(&m);
        assert!((y - 90.0).abs() < 1e-4);
        let (p, _, _) = euler_degrees(&[[f32::NAN; 4]; 4]);
        assert!(p.is_nan());
    }

    // ---- Procrustes -------------------------------------------------------------------------

    #[test]
    fn procrustes_recovers_a_known_similarity() {
        let meta = metadata();
        let solver = Procrustes::new(&meta);
        let rotation = rotation_from_euler(12.0, -27.0, 8.0);
        let (scale, translation) = (1.7, [3.0, -2.0, -40.0]);
        let targets: Vec<Vec3> = meta
            .canonical()
            .iter()
            .map(|p| add3(scale3(mat_vec(&rotation, p.map(f64::from)), scale), translation))
            .collect();
        let found = solver.solve(&targets).unwrap();
        assert!((found.scale - scale).abs() < 1e-9);
        for r in 0..3 {
            assert!((found.translation[r] - translation[r]).abs() < 1e-9);
            let row_error = sub3(found.rotation[r], rotation[r]);
            assert!(row_error.iter().all(|e| e.abs() < 1e-9), "row {r}: {row_error:?}");
        }
    }

    #[test]
    fn procrustes_never_returns_a_reflection() {
        let meta = metadata();
        let solver = Procrustes::new(&meta);
        // The canonical face mirrored in x: the best orthogonal map is a reflection, which the
        // solver must turn into a proper rotation.
        let targets: Vec<Vec3> =
            meta.canonical().iter().map(|p| [-f64::from(p[0]), f64::from(p[1]), f64::from(p[2])]).collect();
        let found = solver.solve(&targets).unwrap();
        let r = found.rotation;
        let det = dot3(r[0], cross3(r[1], r[2]));
        assert!((det - 1.0).abs() < 1e-9, "det {det}");
    }

    #[test]
    fn svd_reconstructs_its_input() {
        let inputs = [
            [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 10.0]],
            [[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [0.0, 1.0, 0.0]], // rank 2
            [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
            [[1e-8, 0.0, 0.0], [0.0, 3.0, 0.0], [0.0, 0.0, -2.0]],
        ];
        for a in inputs {
            let Svd3 { u, sigma: s, v } = Svd3::new(&a).unwrap();
            assert!(s[0] >= s[1] && s[1] >= s[2] && s[2] >= 0.0);
            for r in 0..3 {
                for c in 0..3 {
                    let back: f64 = (0..3).map(|k| u[k][r] * s[k] * v[k][c]).sum();
                    assert!((back - a[r][c]).abs() < 1e-12 * (1.0 + s[0]), "{a:?}");
                }
            }
        }
        assert!(Svd3::new(&[[f64::NAN; 3]; 3]).is_none());
    }

    // ---- The whole pipeline -----------------------------------------------------------------

    /// Landmarks as the landmark model would report them for the canonical face posed by
    /// `rotation`/`translation` in front of the FaceLandmarker's virtual camera: x and y by
    /// perspective projection, z as depth relative to the face's mean depth, scaled to x's
    /// units at the face's mean depth.
    fn synthetic_landmarks(
        meta: &GeometryMetadata,
        rotation: &Mat3,
        translation: Vec3,
        width: usize,
        height: usize,
    ) -> Vec<[f32; 3]> {
        let h = 2.0 * NEAR * (0.5 * VERTICAL_FOV_DEGREES.to_radians()).tan();
        let w = width as f64 * h / height as f64;
        let posed: Vec<Vec3> =
            meta.canonical().iter().map(|p| add3(mat_vec(rotation, p.map(f64::from)), translation)).collect();
        let mean_depth = posed.iter().map(|p| -p[2]).sum::<f64>() / posed.len() as f64;
        posed
            .iter()
            .map(|p| {
                let depth = -p[2];
                let x = p[0] * NEAR / depth;
                let y = p[1] * NEAR / depth;
                [
                    ((x + 0.5 * w) / w) as f32,
                    (1.0 - (y + 0.5 * h) / h) as f32,
                    ((depth - mean_depth) * NEAR / mean_depth / w) as f32,
                ]
            })
            .collect()
    }

    #[test]
    fn pipeline_recovers_a_synthetic_pose() {
        let meta = metadata();
        for &(pitch, yaw, roll, translation, width, height) in &[
            (10.0, -20.0, 5.0, [2.0, -1.0, -45.0], 640usize, 480usize),
            (-5.0, 35.0, -12.0, [-6.0, 3.0, -70.0], 480, 640),
            (0.0, 0.0, 0.0, [0.0, 0.0, -30.0], 512, 512),
        ] {
            let rotation = rotation_from_euler(pitch, yaw, roll);
            let mut landmarks = synthetic_landmarks(&meta, &rotation, translation, width, height);
            // The 10 iris landmarks that follow are ignored.
            landmarks.extend([[0.5f32, 0.5, 0.0]; 10]);
            let m = facial_transformation_matrix(&meta, &landmarks, width, height).unwrap();
            let angle = angle_between(&m, &rotation);
            // Landmarks whose z is consistent with a weak-perspective model are unprojected
            // exactly by the second scale estimate, so only f32 rounding is left.
            assert!(angle < 1e-3, "pose off by {angle} degrees");
            for r in 0..3 {
                let err = (f64::from(m[r][3]) - translation[r]).abs();
                assert!(err < 1e-4 * translation[2].abs(), "translation {r} off by {err}");
            }
            let scale = (0..3).map(|r| f64::from(m[r][0]).powi(2)).sum::<f64>().sqrt();
            assert!((scale - 1.0).abs() < 1e-5, "scale {scale}");
            assert_eq!(m[3], [0.0, 0.0, 0.0, 1.0]);
        }
    }

    #[test]
    fn degenerate_input_gives_none() {
        let meta = metadata();
        let rotation = rotation_from_euler(0.0, 0.0, 0.0);
        let good = synthetic_landmarks(&meta, &rotation, [0.0, 0.0, -40.0], 640, 480);
        assert!(facial_transformation_matrix(&meta, &good, 640, 480).is_some());

        // Too few landmarks, or no frame.
        assert!(facial_transformation_matrix(&meta, &good[..467], 640, 480).is_none());
        assert!(facial_transformation_matrix(&meta, &[], 640, 480).is_none());
        assert!(facial_transformation_matrix(&meta, &good, 0, 480).is_none());
        assert!(facial_transformation_matrix(&meta, &good, 640, 0).is_none());
        // Non-finite coordinates.
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for axis in 0..3 {
                let mut landmarks = good.clone();
                landmarks[100][axis] = bad;
                assert!(facial_transformation_matrix(&meta, &landmarks, 640, 480).is_none());
            }
        }
        // All on one point, or within 1e-3 of it (MediaPipe's "too compact").
        let point = vec![[0.4f32, 0.6, 0.0]; 468];
        assert!(facial_transformation_matrix(&meta, &point, 640, 480).is_none());
        let tiny: Vec<[f32; 3]> =
            good.iter().map(|p| [0.5 + (p[0] - 0.5) * 1e-3, 0.5 + (p[1] - 0.5) * 1e-3, p[2]]).collect();
        assert!(facial_transformation_matrix(&meta, &tiny, 640, 480).is_none());
        // All on one line.
        let line: Vec<[f32; 3]> = (0..468)
            .map(|i| {
                let t = i as f32 / 467.0;
                [0.2 + 0.5 * t, 0.3 + 0.2 * t, 0.0]
            })
            .collect();
        assert!(facial_transformation_matrix(&meta, &line, 640, 480).is_none());
    }

    #[test]
    fn wild_input_never_panics() {
        let meta = metadata();
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let specials = [0.0, -0.0, 1e-30, -1e30, 1e30, f32::MAX, f32::MIN, f32::MIN_POSITIVE, 1.0, -1.0];
        for round in 0..50 {
            let landmarks: Vec<[f32; 3]> = (0..478)
                .map(|_| {
                    [0, 1, 2].map(|_| {
                        if round % 2 == 0 {
                            specials[(next() % specials.len() as u64) as usize]
                        } else {
                            (next() % 2_000_000) as f32 / 1_000_000.0 - 0.5
                        }
                    })
                })
                .collect();
            if let Some(m) = facial_transformation_matrix(
                &meta,
                &landmarks,
                1 + (next() % 4000) as usize,
                1 + (next() % 4000) as usize,
            ) {
                assert!(m.iter().flatten().all(|v| v.is_finite()));
                let _ = euler_degrees(&m);
            }
        }
        let _ = facial_transformation_matrix(&meta, &[[0.5; 3]; 478], usize::MAX, 1);
    }
}
