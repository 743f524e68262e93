//! Runtime configuration, read from TOML. Unknown keys are errors that name the key and the file.

use crate::align::AlignmentConfig;
use crate::error::{Error, Result};
use crate::face::DetectionLimits;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Backend name from the registry (`tract` is built in).
    #[serde(default = "default_backend")]
    pub backend: String,
    /// Model package folder; a relative path is taken from the configuration file's folder.
    pub model: Option<PathBuf>,
    /// Threads for matrix products; 0 means all cores.
    #[serde(default)]
    pub threads: usize,
    /// Faces per inference call.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Per-AU presence thresholds that override the package's (`AU12 = 0.4`).
    #[serde(default)]
    pub thresholds: BTreeMap<String, f32>,
    /// Face detection on raw frames.
    #[serde(default)]
    pub detector: FaceDetectorConfig,
    /// Where the keypoints go in the aligned crop.
    #[serde(default)]
    pub alignment: AlignmentConfig,
    /// Where this configuration came from, for error messages.
    #[serde(skip)]
    pub origin: PathBuf,
}

/// YuNet settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceDetectorConfig {
    /// YuNet ONNX file (`yunet_s_640_640.onnx`); a relative path is taken from the configuration
    /// file's folder.
    pub model: Option<PathBuf>,
    /// `[width, height]` to letterbox every frame into; without it the network runs at each
    /// frame's own size rounded up to 32 (as OpenCV's FaceDetectorYN does), which finds small
    /// faces in large frames.
    pub letterbox: Option<[usize; 2]>,
    /// Frames whose longer side exceeds this are shrunk to it first (native size only).
    #[serde(default = "default_max_side")]
    pub max_side: usize,
    #[serde(default = "default_score_threshold")]
    pub score_threshold: f32,
    #[serde(default = "default_nms_threshold")]
    pub nms_threshold: f32,
    /// Smallest face kept, in frame pixels (the longer side of its box).
    #[serde(default)]
    pub min_face_size: f32,
    /// Most faces kept per frame, best first; 0 keeps all.
    #[serde(default)]
    pub max_faces: usize,
}

fn default_max_side() -> usize {
    4096
}

fn default_score_threshold() -> f32 {
    DetectionLimits::default().score_threshold
}

fn default_nms_threshold() -> f32 {
    DetectionLimits::default().nms_threshold
}

impl Default for FaceDetectorConfig {
    fn default() -> Self {
        FaceDetectorConfig {
            model: None,
            letterbox: None,
            max_side: default_max_side(),
            score_threshold: default_score_threshold(),
            nms_threshold: default_nms_threshold(),
            min_face_size: 0.0,
            max_faces: 0,
        }
    }
}

impl FaceDetectorConfig {
    pub fn limits(&self) -> DetectionLimits {
        DetectionLimits {
            score_threshold: self.score_threshold,
            nms_threshold: self.nms_threshold,
            min_face_size: self.min_face_size,
            max_faces: self.max_faces,
        }
    }
}

fn default_backend() -> String {
    "tract".into()
}

fn default_batch_size() -> usize {
    1
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backend: default_backend(),
            model: None,
            threads: 0,
            batch_size: default_batch_size(),
            thresholds: BTreeMap::new(),
            detector: FaceDetectorConfig::default(),
            alignment: AlignmentConfig::default(),
            origin: PathBuf::from("<default configuration>"),
        }
    }
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut config = Config::from_toml(&text, path)?;
        config.resolve_paths(path.parent().unwrap_or(Path::new("")));
        Ok(config)
    }

    /// Takes relative model paths from `base` (a file's configuration: its folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        for model in [&mut self.model, &mut self.detector.model].into_iter().flatten() {
            if model.is_relative() {
                *model = base.join(&*model);
            }
        }
    }

    /// Parses TOML text; `origin` names it in errors (a path, or a label such as `<string>`).
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config> {
        let mut config: Config =
            toml::from_str(text).map_err(|e| Error::Toml { file: origin.to_path_buf(), message: e.to_string() })?;
        config.origin = origin.to_path_buf();
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<()> {
        if !(1..=1024).contains(&self.batch_size) {
            return Err(Error::field(&self.origin, "batch_size", "a number from 1 to 1024", self.batch_size));
        }
        let d = &self.detector;
        for (field, value) in
            [("detector.score_threshold", d.score_threshold), ("detector.nms_threshold", d.nms_threshold)]
        {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::field(&self.origin, field, "a number from 0 to 1", value));
            }
        }
        if !(32..=16384).contains(&d.max_side) {
            return Err(Error::field(&self.origin, "detector.max_side", "a size from 32 to 16384", d.max_side));
        }
        if let Some([w, h]) = d.letterbox {
            if w == 0 || h == 0 || w % 32 != 0 || h % 32 != 0 {
                return Err(Error::field(
                    &self.origin,
                    "detector.letterbox",
                    "a width and height that are multiples of 32",
                    format!("[{w}, {h}]"),
                ));
            }
        }
        if !(self.alignment.margin > -0.5 && self.alignment.margin < 10.0) {
            return Err(Error::field(
                &self.origin,
                "alignment.margin",
                "a number from -0.5 to 10",
                self.alignment.margin,
            ));
        }
        if self.threads > 1024 {
            return Err(Error::field(&self.origin, "threads", "0 (all cores) or a number up to 1024", self.threads));
        }
        Ok(())
    }

    /// Thread count with 0 resolved to the number of cores.
    pub fn resolved_threads(&self) -> usize {
        match self.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_name_the_key_and_the_file() {
        let err = Config::from_toml("backend = \"tract\"\nthreds = 2\n", Path::new("my.toml")).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("my.toml") && text.contains("threds"), "{text}");
    }

    #[test]
    fn defaults_and_bounds() {
        let config = Config::from_toml("", Path::new("x.toml")).unwrap();
        assert_eq!((config.backend.as_str(), config.threads, config.batch_size), ("tract", 0, 1));
        let err = Config::from_toml("batch_size = 0", Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.contains("batch_size") && err.contains("found 0"), "{err}");
    }
}
