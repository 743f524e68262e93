//! Detection calls and their library-owned results (`hrm_result`, read face by face as `hrm_face`).

use crate::handle::{give, handle, handle_mut};
use crate::image::{hrm_image, read_sized, write_sized, Frame, GrowingStruct};
use crate::runtime::{hrm_detector, StaticCStr};
use crate::status::{guard, hrm_status, out_arg, Failure};
use hrm_core::FaceAus;
use std::ffi::c_char;

/// The most faces `hrm_detect_aligned` takes in one call.
pub const HRM_MAX_BATCH: usize = 4096;

/// One face of a result. Set `struct_size` to `sizeof(hrm_face)` before `hrm_result_face`.
///
/// The struct only grows at the end, in 8-byte aligned steps: libhrm writes only the
/// `struct_size` bytes the caller has, so a program built against an older header gets the
/// fields it knows (at least `HRM_FACE_SIZE_V1` bytes), and one built against a newer header
/// finds the fields this library does not know as it left them (zero them first).
///
/// How new per-face data arrives: small fixed-size values (a track id, an atypicality score, a
/// head pose matrix, with a flag saying whether each is there) are added as fields at the end of
/// this struct; variable-length arrays (478 mesh landmarks, 52 blendshapes) come through accessor
/// functions, `hrm_result_face_<what>(result, index, &pointer, &count)`, whose pointers belong
/// to the result like `probabilities` does.
///
/// The three AU arrays hold `au_count` entries in the same order; `au_ids` are static strings,
/// `probabilities` and `present` belong to the result and are valid until `hrm_result_free`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct hrm_face {
    /// `sizeof(hrm_face)`.
    pub struct_size: u32,
    /// Detection confidence, 0 to 1 (1 for `hrm_detect_aligned`).
    pub score: f32,
    /// `x, y, width, height` in the frame's pixels, top-left origin (the whole image for
    /// `hrm_detect_aligned`).
    pub bbox: [f32; 4],
    /// Right eye, left eye, nose tip, right and left mouth corner (the subject's right: the
    /// image's left) as `x, y` pairs in the frame's pixels; 0 for `hrm_detect_aligned`.
    pub keypoints: [f32; 10],
    /// Entries in each of the arrays below.
    pub au_count: usize,
    /// AU ids (`"AU1"`, ...), static strings.
    pub au_ids: *const *const c_char,
    /// Probability of each AU, 0 to 1; NaN for an AU the model does not estimate (the built-in
    /// estimator's AD19, AU23 and AD32), and for every AU of a face it could not estimate.
    pub probabilities: *const f32,
    /// 1 where the probability reaches the AU's threshold, else 0.
    pub present: *const u8,
    /// Added in version 2 (offset 96): the 2x3 affine matrix, row-major, that maps frame
    /// pixels to the pixels of the crop the AU model saw (`[a, -b, tx, b, a, ty]`, OpenCV's
    /// `warpAffine` convention); for `hrm_detect_aligned`, the resize of the image to the crop.
    /// A library older than this field leaves it as the caller set it: zero the struct, and all
    /// zeros (never a valid transform) means it was not filled. For the MediaPipe estimator, the
    /// map to the face mesh's 256x256 crop (zeros when the face was too small for the mesh).
    pub crop_transform: [f32; 6],
    /// Added in version 3 (offset 120): 1 when `pose` and `pose_matrix` hold the head pose, 0
    /// when not (no mesh ran, the mesh saw no face, or a library older than this field).
    pub has_pose: u32,
    /// The face mesh's presence score, 0 to 1 (MediaPipe drops faces under 0.5); NaN when the
    /// mesh did not run on this face.
    pub mesh_score: f32,
    /// Head pose in degrees: pitch, yaw, roll, with `R = Rz(roll) * Ry(yaw) * Rx(pitch)` the
    /// rotation of `pose_matrix` (MediaPipe's convention); NaN without a pose.
    pub pose: [f32; 3],
    /// 478 when the face has mesh landmarks (read them with `hrm_result_face_landmarks`), else 0.
    pub landmark_count: u32,
    /// MediaPipe's facial transformation matrix, row-major 4x4: the canonical face model (in
    /// centimetres) to camera space; zeros without a pose.
    pub pose_matrix: [f32; 16],
    /// Added in version 4 (offset 208): the face's track in an `hrm_stream`, 0, 1, 2, ... in the
    /// order faces first appear, kept while the face stays in view (and when it returns within
    /// `[stream] max_missing` frames near where it left); -1 outside streams. A library older
    /// than this field leaves it as the caller set it: set it to -1 first.
    pub track_id: i64,
    /// HRM's atypicality score (about 1 to 5) of the track's last window of frames (the package's
    /// `window`: 15 for HRM's regressor), once it has that many and
    /// the runtime has an `[atypicality] model`; NaN otherwise.
    pub atypicality: f32,
}

/// `sizeof(hrm_face)` in version 1 of this header (up to and including `present`): the smallest
/// `struct_size` accepted.
pub const HRM_FACE_SIZE_V1: u32 = 96;
const _: () = assert!(std::mem::offset_of!(hrm_face, crop_transform) == HRM_FACE_SIZE_V1 as usize);
const _: () = assert!(std::mem::offset_of!(hrm_face, has_pose) == 120);
const _: () = assert!(std::mem::offset_of!(hrm_face, track_id) == 208);
const _: () = assert!(std::mem::size_of::<hrm_face>() == 224);

impl GrowingStruct for hrm_face {
    const NAME: &'static str = "hrm_face";
    const SIZE_V1: u32 = HRM_FACE_SIZE_V1;
}

pub(crate) struct FaceBox {
    score: f32,
    bbox: [f32; 4],
    keypoints: [f32; 10],
    crop_transform: [f32; 6],
    mesh_score: f32,
    /// The facial transformation matrix and its pitch, yaw and roll.
    pose: Option<([[f32; 4]; 4], [f32; 3])>,
    /// x, y, z of each mesh landmark, flat.
    landmarks: Vec<f32>,
    blendshapes: Vec<f32>,
    /// -1 outside streams.
    track_id: i64,
    atypicality: f32,
}

impl FaceBox {
    /// A face found in a frame, with what the mesh gave.
    pub(crate) fn from_result(f: &hrm_core::pipeline::FaceResult) -> FaceBox {
        let keypoints = std::array::from_fn(|i| f.face.keypoints[i / 2][i % 2]);
        let t = f.to_crop;
        let pose = f.pose.map(|m| {
            let p = hrm_core::geometry::Pose::from_matrix(&m);
            (m, [p.pitch, p.yaw, p.roll])
        });
        FaceBox {
            score: f.face.score,
            bbox: f.face.bbox,
            keypoints,
            crop_transform: [t.a, -t.b, t.tx, t.b, t.a, t.ty],
            mesh_score: f.mesh_score.unwrap_or(f32::NAN),
            pose,
            landmarks: f.landmarks.iter().flatten().flatten().copied().collect(),
            blendshapes: f.blendshapes.clone().unwrap_or_default(),
            track_id: f.track_id.map_or(-1, |id| id as i64),
            atypicality: f.atypicality.unwrap_or(f32::NAN),
        }
    }

    /// An aligned face: the whole image, resized to the model's crop.
    fn aligned(width: usize, height: usize, crop_width: f32, crop_height: f32) -> FaceBox {
        FaceBox {
            score: 1.0,
            bbox: [0.0, 0.0, width as f32, height as f32],
            keypoints: [0.0; 10],
            crop_transform: [crop_width / width as f32, 0.0, 0.0, 0.0, crop_height / height as f32, 0.0],
            mesh_score: f32::NAN,
            pose: None,
            landmarks: Vec::new(),
            blendshapes: Vec::new(),
            track_id: -1,
            atypicality: f32::NAN,
        }
    }
}

/// What one detection call found. Immutable: any thread may read it; free it once.
pub struct hrm_result {
    timestamp: i64,
    au_ids: &'static [StaticCStr],
    faces: Vec<FaceBox>,
    /// `faces.len()` rows of `au_ids.len()`.
    probabilities: Vec<f32>,
    present: Vec<u8>,
}

impl hrm_result {
    fn face(&self, index: usize) -> Result<&FaceBox, Failure> {
        self.faces
            .get(index)
            .ok_or_else(|| Failure::invalid(format!("index {index} is past the result's {} faces", self.faces.len())))
    }

    /// A result whose every face has one probability and one presence flag per AU id: C reads
    /// `au_count` entries behind each face's pointers, so a row of another length is refused.
    pub(crate) fn new(
        timestamp: i64,
        au_ids: &'static [StaticCStr],
        faces: Vec<(FaceBox, FaceAus)>,
    ) -> Result<hrm_result, Failure> {
        if let Some((_, aus)) =
            faces.iter().find(|(_, aus)| aus.probabilities.len() != au_ids.len() || aus.present.len() != au_ids.len())
        {
            return Err(Failure::new(
                crate::status::HRM_ERROR_BACKEND,
                format!(
                    "the AU model gave {} probabilities and {} presence flags for {} AUs",
                    aus.probabilities.len(),
                    aus.present.len(),
                    au_ids.len()
                ),
            ));
        }
        let mut result = hrm_result {
            timestamp,
            au_ids,
            faces: Vec::with_capacity(faces.len()),
            probabilities: Vec::with_capacity(faces.len() * au_ids.len()),
            present: Vec::with_capacity(faces.len() * au_ids.len()),
        };
        for (face, aus) in faces {
            result.faces.push(face);
            result.probabilities.extend(&aus.probabilities);
            result.present.extend(aus.present.iter().map(|&p| p as u8));
        }
        Ok(result)
    }
}

/// Finds every face in a frame, runs the face mesh on each (unless `[mesh] enabled = false`),
/// and gives each its AUs: from a crop aligned to an HRM model's input, or, for the built-in
/// estimator, from the mesh's landmarks.
///
/// `image` is read during the call only. On success `*out` owns a new result with one face per
/// face found, highest score first (none when the frame shows no face): free it with
/// `hrm_result_free`. One thread at a time per detector.
///
/// # Safety
/// `detector` came from `hrm_detector_new`; `image` points at an `hrm_image` whose `data` holds
/// what its fields describe; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_detect_frame(
    detector: *mut hrm_detector,
    image: *const hrm_image,
    out: *mut *mut hrm_result,
) -> hrm_status {
    guard("hrm_detect_frame", || {
        // SAFETY: the caller guarantees a live detector used by this thread alone.
        let detector = unsafe { handle_mut(detector, "detector")? };
        // SAFETY: the caller guarantees an image whose data holds what its fields describe.
        let frame = unsafe { Frame::new(image, "image", detector.max_pixels)? };
        out_arg(out, "out")?;
        let ids = detector.au_ids;
        let faces = detector.pipeline().process(&frame.view()?)?;
        let faces = faces.into_iter().map(|f| (FaceBox::from_result(&f), f.aus)).collect();
        let result = hrm_result::new(frame.timestamp, ids, faces)?;
        // SAFETY: out_arg checked `out`, which the caller guarantees is writable.
        unsafe { give(out, result) };
        Ok(())
    })
}

/// Runs the AU model on faces that are already aligned (OpenFace-style crops, any size: each is
/// resized to the model's input). `faces` is an array of `count` pointers, 1 to `HRM_MAX_BATCH`.
///
/// On success `*out` owns a new result with one face per input, in order; its timestamp is the
/// first image's. Free it with `hrm_result_free`. One thread at a time per detector.
///
/// # Safety
/// `detector` came from `hrm_detector_new`; `faces` holds `count` pointers to valid
/// `hrm_image`s; `out` is writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_detect_aligned(
    detector: *mut hrm_detector,
    faces: *const *const hrm_image,
    count: usize,
    out: *mut *mut hrm_result,
) -> hrm_status {
    guard("hrm_detect_aligned", || {
        // SAFETY: the caller guarantees a live detector used by this thread alone.
        let detector = unsafe { handle_mut(detector, "detector")? };
        if !(1..=HRM_MAX_BATCH).contains(&count) {
            return Err(Failure::invalid(format!("count is {count}, expected 1 to {HRM_MAX_BATCH}")));
        }
        if faces.is_null() {
            return Err(Failure::invalid("`faces` is NULL"));
        }
        out_arg(out, "out")?;
        // SAFETY: the caller guarantees `faces` holds `count` pointers; it is not NULL.
        let images = unsafe { std::slice::from_raw_parts(faces, count) };
        // Each face is copied (to RGB, then resized; bottom-up ones once more): the batch as a
        // whole stays within a budget, checked before any copy is made.
        let mut pixels = 0u64;
        for (i, &image) in images.iter().enumerate() {
            // SAFETY: the caller guarantees each pointer is NULL or points at an hrm_image of its
            // struct_size.
            let image = unsafe { read_sized(image, &format!("faces[{i}]"))? };
            pixels = pixels.saturating_add(image.width as u64 * image.height as u64);
        }
        if pixels > detector.max_batch_pixels {
            return Err(Failure::invalid(format!(
                "the {count} faces hold {pixels} pixels in all, more than a batch may ({}, 4 x max_image_pixels): \
                 pass fewer or smaller faces per call",
                detector.max_batch_pixels
            )));
        }
        let frames = images
            .iter()
            .enumerate()
            // SAFETY: the caller guarantees each image's data holds what its fields describe.
            .map(|(i, &image)| unsafe { Frame::new(image, &format!("faces[{i}]"), detector.max_pixels) })
            .collect::<Result<Vec<_>, _>>()?;
        let views = frames.iter().map(|f| f.view()).collect::<Result<Vec<_>, _>>()?;
        let aus = detector.au_detector().detect(&views)?;
        let crop = detector.au_detector().crop();
        let (crop_width, crop_height) = (crop.width as f32, crop.height as f32);
        let boxes = views.iter().map(|v| FaceBox::aligned(v.width(), v.height(), crop_width, crop_height));
        let ids = detector.au_ids;
        let result = hrm_result::new(frames[0].timestamp, ids, boxes.zip(aus).collect())?;
        // SAFETY: out_arg checked `out`, which the caller guarantees is writable.
        unsafe { give(out, result) };
        Ok(())
    })
}

/// The number of faces in a result (0 when none was found). Any thread.
///
/// # Safety
/// `result` came from a detection call; `count` is writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_result_face_count(result: *const hrm_result, count: *mut usize) -> hrm_status {
    guard("hrm_result_face_count", || {
        // SAFETY: the caller guarantees a live result.
        let result = unsafe { handle(result, "result")? };
        out_arg(count, "count")?;
        // SAFETY: the caller guarantees `count` is writable; out_arg checked it is not NULL.
        unsafe { *count = result.faces.len() };
        Ok(())
    })
}

/// The timestamp of the image the result came from (`hrm_image.timestamp`). Any thread.
///
/// # Safety
/// `result` came from a detection call; `timestamp` is writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_result_timestamp(result: *const hrm_result, timestamp: *mut i64) -> hrm_status {
    guard("hrm_result_timestamp", || {
        // SAFETY: the caller guarantees a live result.
        let result = unsafe { handle(result, "result")? };
        out_arg(timestamp, "timestamp")?;
        // SAFETY: the caller guarantees `timestamp` is writable; out_arg checked it is not NULL.
        unsafe { *timestamp = result.timestamp };
        Ok(())
    })
}

/// Describes face `index` (0 to count - 1) of a result in `*face`; its arrays point into the
/// result. The caller sets `face->struct_size`. Any thread.
///
/// # Safety
/// `result` came from a detection call; `face` points at an `hrm_face`.
#[no_mangle]
pub unsafe extern "C" fn hrm_result_face(result: *const hrm_result, index: usize, face: *mut hrm_face) -> hrm_status {
    guard("hrm_result_face", || {
        // SAFETY: the caller guarantees a live result.
        let result = unsafe { handle(result, "result")? };
        let found = result.face(index)?;
        let n = result.au_ids.len();
        let described = hrm_face {
            struct_size: 0,
            score: found.score,
            bbox: found.bbox,
            keypoints: found.keypoints,
            au_count: n,
            au_ids: result.au_ids.as_ptr().cast(),
            probabilities: result.probabilities[index * n..].as_ptr(),
            present: result.present[index * n..].as_ptr(),
            crop_transform: found.crop_transform,
            has_pose: u32::from(found.pose.is_some()),
            mesh_score: found.mesh_score,
            pose: found.pose.map_or([f32::NAN; 3], |(_, angles)| angles),
            landmark_count: (found.landmarks.len() / 3) as u32,
            pose_matrix: found.pose.map_or([0.0; 16], |(m, _)| std::array::from_fn(|i| m[i / 4][i % 4])),
            track_id: found.track_id,
            atypicality: found.atypicality,
        };
        // SAFETY: the caller guarantees `face` points at an hrm_face of its struct_size.
        unsafe { write_sized(face, &described, "face") }
    })
}

/// The mesh landmarks of face `index`: `*points` gets `3 * *count` floats, x, y, z of each point
/// in the frame's pixels (z is depth at the scale of x, negative towards the camera), owned by
/// the result and valid until `hrm_result_free`. A face without landmarks (no mesh ran, or the
/// mesh saw no face) gives `*count` 0 and `*points` NULL. Any thread.
///
/// # Safety
/// `result` came from a detection call; `points` and `count` are writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_result_face_landmarks(
    result: *const hrm_result,
    index: usize,
    points: *mut *const f32,
    count: *mut usize,
) -> hrm_status {
    guard("hrm_result_face_landmarks", || {
        // SAFETY: the caller guarantees a live result.
        let result = unsafe { handle(result, "result")? };
        out_arg(points, "points")?;
        out_arg(count, "count")?;
        let face = result.face(index)?;
        let data = if face.landmarks.is_empty() { std::ptr::null() } else { face.landmarks.as_ptr() };
        // SAFETY: the caller guarantees both are writable; out_arg checked they are not NULL.
        unsafe {
            *points = data;
            *count = face.landmarks.len() / 3;
        }
        Ok(())
    })
}

/// The blendshape scores of face `index`, when the AU model is the MediaPipe estimator:
/// `*scores` gets `*count` floats (0 to 1) and `*names` as many static strings (MediaPipe's
/// names: `"_neutral"`, `"browDownLeft"`, ...), in the same order. The scores are owned by the
/// result, valid until `hrm_result_free`. A face without them gives `*count` 0 and NULL
/// pointers. Any thread.
///
/// # Safety
/// `result` came from a detection call; `scores`, `names` and `count` are writable.
#[no_mangle]
pub unsafe extern "C" fn hrm_result_face_blendshapes(
    result: *const hrm_result,
    index: usize,
    scores: *mut *const f32,
    names: *mut *const *const c_char,
    count: *mut usize,
) -> hrm_status {
    guard("hrm_result_face_blendshapes", || {
        // SAFETY: the caller guarantees a live result.
        let result = unsafe { handle(result, "result")? };
        out_arg(scores, "scores")?;
        out_arg(names, "names")?;
        out_arg(count, "count")?;
        let face = result.face(index)?;
        let found = !face.blendshapes.is_empty();
        let name_table = crate::runtime::blendshape_names();
        // SAFETY: the caller guarantees all three are writable; out_arg checked they are not NULL.
        unsafe {
            *scores = if found { face.blendshapes.as_ptr() } else { std::ptr::null() };
            *names = if found { name_table.as_ptr().cast() } else { std::ptr::null() };
            *count = face.blendshapes.len().min(name_table.len());
        }
        Ok(())
    })
}

/// Frees a result; NULL is ignored. Any thread, once.
///
/// # Safety
/// `result` is NULL or came from a detection call and was not freed before.
#[no_mangle]
pub unsafe extern "C" fn hrm_result_free(result: *mut hrm_result) {
    // SAFETY: the caller guarantees the result is freed once.
    unsafe { crate::handle::free("hrm_result_free", result) };
}
