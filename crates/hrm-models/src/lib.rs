//! The models compiled into `hrm` and `libhrm`, so that a program with no model files on disk
//! still finds faces and estimates AUs: YuNet-s (face detection with 5 keypoints) and the
//! MediaPipe face landmarker's networks as a package of kind `mediapipe-blendshapes`. The files
//! are the ones in the repository's `models/` folder; their licences are in `LICENSES.md` there.
//!
//! Nothing here is trusted blindly: the loader hashes every file against [`SHA256SUMS`] (and the
//! package's own manifest) before it is used.

/// One file compiled in.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinFile {
    /// The file's name in `models/` (for the package's files, in `models/mediapipe/`).
    pub name: &'static str,
    pub bytes: &'static [u8],
}

/// A file of `models/`, or of the folder named first.
macro_rules! builtin {
    ($name:literal) => {
        BuiltinFile { name: $name, bytes: include_bytes!(concat!("../../../models/", $name)) }
    };
    ($folder:literal, $name:literal) => {
        BuiltinFile { name: $name, bytes: include_bytes!(concat!("../../../models/", $folder, "/", $name)) }
    };
}

/// YuNet-s, 640x640 export (run at any size), OpenCV's libfacedetection.train, Apache-2.0.
pub const YUNET: BuiltinFile = builtin!("yunet_s_640_640.onnx");

/// The `mediapipe-blendshapes` package's manifest (`models/mediapipe/hrm-model.toml`).
pub const MEDIAPIPE_MANIFEST: &str = include_str!("../../../models/mediapipe/hrm-model.toml");

/// The files the manifest names, Apache-2.0 (MediaPipe's `face_landmarker.task`, as ONNX).
pub const MEDIAPIPE_FILES: [BuiltinFile; 4] = [
    builtin!("mediapipe", "mp_blazeface_short_range.onnx"),
    builtin!("mediapipe", "mp_face_landmarks_detector_478.onnx"),
    builtin!("mediapipe", "mp_face_blendshapes.onnx"),
    builtin!("mediapipe", "mp_geometry_pipeline_metadata_landmarks.binarypb"),
];

/// `models/SHA256SUMS`: `sha256  path` per line, for every file above.
pub const SHA256SUMS: &str = include_str!("../../../models/SHA256SUMS");

/// `models/LICENSES.md`: what each file is, where it comes from and its licence.
pub const LICENSES: &str = include_str!("../../../models/LICENSES.md");

/// The sha256 `SHA256SUMS` gives for a file of `models/` (`mediapipe/mp_face_blendshapes.onnx`).
pub fn expected_sha256(path: &str) -> Option<&'static str> {
    SHA256SUMS.lines().find_map(|line| {
        let (hash, name) = line.split_once("  ")?;
        (name.trim() == path).then_some(hash.trim())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_sum() {
        assert!(expected_sha256("yunet_s_640_640.onnx").is_some());
        let sums = MEDIAPIPE_FILES.iter().filter_map(|f| expected_sha256(&format!("mediapipe/{}", f.name))).count();
        assert_eq!(sums, MEDIAPIPE_FILES.len());
        assert!(expected_sha256("nothing.onnx").is_none());
    }
}
