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
    /// The backend the AU model runs on (`tract` is built in), and backends' settings.
    #[serde(default)]
    pub backend: BackendChoice,
    /// Model package folder; a relative path is taken from the configuration file's folder.
    /// Without it, the MediaPipe estimator built into hrm.
    pub model: Option<PathBuf>,
    /// Threads for matrix products; 0 means all cores.
    #[serde(default)]
    pub threads: usize,
    /// Faces per inference call.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Images that declare more pixels than this are refused before they are decoded, and frames
    /// handed to libhrm larger than this are refused (a decompression-bomb guard, as Pillow's).
    #[serde(default = "default_max_image_pixels")]
    pub max_image_pixels: u64,
    /// Per-AU presence thresholds that override the package's (`AU12 = 0.4`).
    #[serde(default)]
    pub thresholds: BTreeMap<String, f32>,
    /// Face detection on raw frames.
    #[serde(default)]
    pub detector: FaceDetectorConfig,
    /// Where the keypoints go in the aligned crop.
    #[serde(default)]
    pub alignment: AlignmentConfig,
    /// MediaPipe's face mesh: landmarks and head pose for every face.
    #[serde(default)]
    pub mesh: MeshConfig,
    /// Where backend plugins are looked for first.
    #[serde(default)]
    pub plugins: PluginsConfig,
    /// Face tracks and temporal smoothing, for streams (video, cameras, `hrm_stream`).
    #[serde(default)]
    pub stream: StreamConfig,
    /// HRM's atypicality regressor, scored per face track in streams.
    #[serde(default)]
    pub atypicality: AtypicalityConfig,
    /// Where this configuration came from, for error messages.
    #[serde(skip)]
    pub origin: PathBuf,
}

/// Which network finds the faces.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    /// YuNet at the frame's own size: small faces in large frames too, and five keypoints for
    /// aligning crops.
    #[default]
    Yunet,
    /// MediaPipe's BlazeFace (short range) on the whole frame at 128x128, as MediaPipe's face
    /// landmarker runs it: faster, but it misses faces smaller than about a tenth of the frame and
    /// gives no mouth corners, so it serves the MediaPipe estimator only.
    Blazeface,
}

/// Face detection settings (YuNet's, unless `kind = "blazeface"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceDetectorConfig {
    /// The face detector; YuNet by default.
    #[serde(default)]
    pub kind: DetectorKind,
    /// The backend YuNet runs on; the configuration's `backend` without it.
    pub backend: Option<String>,
    /// YuNet ONNX file (`yunet_s_640_640.onnx`); a relative path is taken from the configuration
    /// file's folder. Without it, the YuNet-s built into hrm.
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

/// `[plugins]`: folders searched for backend plugins (`libhrm_NAME.so`) before
/// `HRM_PLUGIN_PATH` and the folders beside hrm.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginsConfig {
    /// Relative paths are taken from the configuration file's folder.
    #[serde(default)]
    pub paths: Vec<PathBuf>,
}

/// The configuration's own top-level keys; any other top-level table is a backend's settings
/// (`[onnxruntime]`), checked against the backends there are when a runtime is loaded.
const SECTIONS: [&str; 12] = [
    "backend",
    "model",
    "threads",
    "batch_size",
    "max_image_pixels",
    "thresholds",
    "detector",
    "alignment",
    "mesh",
    "plugins",
    "stream",
    "atypicality",
];

/// `[stream]`: how faces are followed across the frames of a stream, and how their AU
/// probabilities are smoothed over time (off by default: HRM's numbers are per frame).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// `"off"`, `"exponential"` or `"one-euro"`.
    #[serde(default)]
    pub smoothing: SmoothingKind,
    /// Exponential smoothing: the weight of the newest frame, above 0 and at most 1.
    #[serde(default = "default_alpha")]
    pub alpha: f32,
    /// One-Euro filter (Casiez et al., 2012): the cutoff in Hz when the probability holds still.
    #[serde(default = "default_min_cutoff")]
    pub min_cutoff: f32,
    /// One-Euro: how fast the cutoff rises with the probability's speed (per unit per second).
    #[serde(default = "default_beta")]
    pub beta: f32,
    /// One-Euro: the cutoff in Hz for the speed estimate.
    #[serde(default = "default_d_cutoff")]
    pub d_cutoff: f32,
    /// Frames a face may be missing and keep its track id when it comes back.
    #[serde(default = "default_max_missing")]
    pub max_missing: usize,
    /// How far, in face widths, a face may be from where its track was heading.
    #[serde(default = "default_max_distance")]
    pub max_distance: f32,
}

/// The temporal filter on each track's AU probabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmoothingKind {
    #[default]
    Off,
    Exponential,
    OneEuro,
}

fn default_alpha() -> f32 {
    0.5
}
fn default_min_cutoff() -> f32 {
    1.0
}
fn default_beta() -> f32 {
    1.0
}
fn default_d_cutoff() -> f32 {
    1.0
}
fn default_max_missing() -> usize {
    crate::track::TrackerConfig::default().max_missing
}
fn default_max_distance() -> f32 {
    crate::track::TrackerConfig::default().max_distance
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            smoothing: SmoothingKind::Off,
            alpha: default_alpha(),
            min_cutoff: default_min_cutoff(),
            beta: default_beta(),
            d_cutoff: default_d_cutoff(),
            max_missing: default_max_missing(),
            max_distance: default_max_distance(),
        }
    }
}

/// `[atypicality]`: the regressor's package (`hrm convert` of the authors' GRU checkpoint).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtypicalityConfig {
    /// A relative path is taken from the configuration file's folder.
    pub model: Option<PathBuf>,
}

/// The face mesh's settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeshConfig {
    /// Run the mesh on every face for landmarks and head pose, whatever the AU model (the
    /// MediaPipe estimator runs it always).
    #[serde(default = "default_mesh_enabled")]
    pub enabled: bool,
    /// A `mediapipe-blendshapes` package folder whose face detector, mesh and geometry to use;
    /// without it, the built-in one (or the AU model's, when it is that kind).
    pub model: Option<PathBuf>,
    /// The backend the mesh (and BlazeFace) run on; the configuration's `backend` without it
    /// (`"tract"` when that backend runs only HRM packages, as candle does).
    pub backend: Option<String>,
}

fn default_mesh_enabled() -> bool {
    true
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig { enabled: default_mesh_enabled(), model: None, backend: None }
    }
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
            kind: DetectorKind::Yunet,
            backend: None,
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

/// `backend = "NAME"`, or a `[backend]` table holding `name = "NAME"` and a `[backend.NAME]` table
/// of settings for any backend (device, precision, providers), which that backend validates. A
/// top-level `[NAME]` table is the same as `[backend.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendChoice {
    pub name: String,
    pub settings: BTreeMap<String, toml::Table>,
}

impl Default for BackendChoice {
    fn default() -> Self {
        BackendChoice::from("tract")
    }
}

impl From<&str> for BackendChoice {
    fn from(name: &str) -> Self {
        BackendChoice { name: name.to_string(), settings: BTreeMap::new() }
    }
}

impl std::ops::Deref for BackendChoice {
    type Target = str;

    fn deref(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for BackendChoice {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        use serde::de::Error as _;
        let table = match toml::Value::deserialize(deserializer)? {
            toml::Value::String(name) => return Ok(BackendChoice::from(name.as_str())),
            toml::Value::Table(table) => table,
            other => {
                let found = other.type_str();
                return Err(D::Error::custom(format!(
                    "`backend`: expected a backend name or a [backend] table, found a {found}"
                )));
            }
        };
        let mut choice = BackendChoice::default();
        for (key, value) in table {
            match (key.as_str(), value) {
                ("name", toml::Value::String(name)) => choice.name = name,
                ("name", other) => {
                    return Err(D::Error::custom(format!("`backend.name`: expected a backend name, found {other}")))
                }
                (_, toml::Value::Table(settings)) => {
                    choice.settings.insert(key, settings);
                }
                (_, other) => {
                    return Err(D::Error::custom(format!(
                        "`backend.{key}`: expected `name`, or a [backend.{key}] table of that backend's settings, found {other}"
                    )))
                }
            }
        }
        Ok(choice)
    }
}

fn default_batch_size() -> usize {
    1
}

fn default_max_image_pixels() -> u64 {
    crate::image::DEFAULT_MAX_PIXELS
}

/// The largest `max_image_pixels` accepted: 2^31 pixels (a 46341x46341 image, 6 GB as RGB).
const MAX_IMAGE_PIXELS_LIMIT: u64 = 1 << 31;

/// The largest network input for YuNet, per side: at 8192x8192 its activations take several GB.
pub const MAX_DETECTOR_SIDE: usize = 8192;

/// The most `threads` (0 means all cores).
pub const MAX_THREADS: usize = 1024;

/// The largest `batch_size`.
pub const MAX_BATCH_SIZE: usize = 1024;

/// A batch of images may hold this many times `max_image_pixels` in all: every image of a batch is
/// held decoded (and copied) at once.
const BATCH_PIXELS_FACTOR: u64 = 4;

impl Default for Config {
    fn default() -> Self {
        Config {
            backend: BackendChoice::default(),
            model: None,
            threads: 0,
            batch_size: default_batch_size(),
            max_image_pixels: default_max_image_pixels(),
            thresholds: BTreeMap::new(),
            detector: FaceDetectorConfig::default(),
            alignment: AlignmentConfig::default(),
            mesh: MeshConfig::default(),
            plugins: PluginsConfig::default(),
            stream: StreamConfig::default(),
            atypicality: AtypicalityConfig::default(),
            origin: PathBuf::from("<default configuration>"),
        }
    }
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config> {
        // A configuration is a few KB; a FIFO or /dev/zero given as one is an error, not a hang.
        let text = crate::files::read_text_file(path, 1 << 20)?;
        let mut config = Config::from_toml(&text, path)?;
        config.resolve_paths(path.parent().unwrap_or(Path::new("")));
        Ok(config)
    }

    /// Takes relative model paths from `base` (a file's configuration: its folder).
    pub fn resolve_paths(&mut self, base: &Path) {
        let models = [&mut self.model, &mut self.detector.model, &mut self.mesh.model, &mut self.atypicality.model];
        let models = models.into_iter().flatten();
        for path in models.chain(&mut self.plugins.paths) {
            if path.is_relative() {
                *path = base.join(&*path);
            }
        }
    }

    /// Parses TOML text; `origin` names it in errors (a path, or a label such as `<string>`).
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config> {
        let toml_error = |e: toml::de::Error| Error::Toml { file: origin.to_path_buf(), message: e.to_string() };
        let mut table: toml::Table = toml::from_str(text).map_err(toml_error)?;
        let backend_tables: Vec<(String, toml::Table)> = table
            .keys()
            .filter(|key| !SECTIONS.contains(&key.as_str()) && table[*key].is_table())
            .cloned()
            .collect::<Vec<_>>()
            .into_iter()
            .filter_map(|key| match table.remove(&key) {
                Some(toml::Value::Table(settings)) => Some((key, settings)),
                _ => None,
            })
            .collect();
        // Without backend tables the text is parsed again as it is, so errors keep their line.
        let mut config: Config = match backend_tables.is_empty() {
            true => toml::from_str(text),
            false => toml::Value::Table(table).try_into(),
        }
        .map_err(toml_error)?;
        for (name, settings) in backend_tables {
            if config.backend.settings.contains_key(&name) {
                let field = format!("[{name}]");
                return Err(Error::field(origin, field, format!("one table of `{name}` settings"), "two"));
            }
            config.backend.settings.insert(name, settings);
        }
        config.origin = origin.to_path_buf();
        config.validate()?;
        Ok(config)
    }

    /// What the backend `name` is told: threads, and its `[backend.NAME]` settings.
    pub fn backend_options(&self, name: &str) -> hrm_backend::BackendOptions {
        hrm_backend::BackendOptions {
            threads: self.resolved_threads(),
            settings: self.backend.settings.get(name).cloned().unwrap_or_default(),
            origin: self.origin.clone(),
        }
    }

    /// The backend YuNet runs on.
    pub fn detector_backend(&self) -> &str {
        self.detector.backend.as_deref().unwrap_or(&self.backend.name)
    }

    /// The backend the face mesh and BlazeFace run on.
    pub fn mesh_backend(&self) -> &str {
        self.mesh.backend.as_deref().unwrap_or(&self.backend.name)
    }

    fn validate(&self) -> Result<()> {
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch_size) {
            let expected = format!("a number from 1 to {MAX_BATCH_SIZE}");
            return Err(Error::field(&self.origin, "batch_size", expected, self.batch_size));
        }
        let d = &self.detector;
        for (field, value) in
            [("detector.score_threshold", d.score_threshold), ("detector.nms_threshold", d.nms_threshold)]
        {
            if !(0.0..=1.0).contains(&value) {
                return Err(Error::field(&self.origin, field, "a number from 0 to 1", value));
            }
        }
        if !(1..=MAX_IMAGE_PIXELS_LIMIT).contains(&self.max_image_pixels) {
            return Err(Error::field(
                &self.origin,
                "max_image_pixels",
                format!("a number from 1 to {MAX_IMAGE_PIXELS_LIMIT}"),
                self.max_image_pixels,
            ));
        }
        if !(32..=MAX_DETECTOR_SIDE).contains(&d.max_side) {
            let expected = format!("a size from 32 to {MAX_DETECTOR_SIDE}");
            return Err(Error::field(&self.origin, "detector.max_side", expected, d.max_side));
        }
        if let Some([w, h]) = d.letterbox {
            let side = |v: usize| v > 0 && v.is_multiple_of(32) && v <= MAX_DETECTOR_SIDE;
            if !(side(w) && side(h)) {
                return Err(Error::field(
                    &self.origin,
                    "detector.letterbox",
                    format!("a width and height that are multiples of 32, up to {MAX_DETECTOR_SIDE}"),
                    format!("[{w}, {h}]"),
                ));
            }
        }
        self.alignment.validate_template().map_err(|(field, expected, found)| {
            Error::field(&self.origin, format!("alignment.{field}"), expected, found)
        })?;
        if !(self.alignment.margin > -0.5 && self.alignment.margin < 10.0) {
            return Err(Error::field(
                &self.origin,
                "alignment.margin",
                "a number from -0.5 to 10",
                self.alignment.margin,
            ));
        }
        let s = &self.stream;
        if !(s.alpha > 0.0 && s.alpha <= 1.0) {
            return Err(Error::field(&self.origin, "stream.alpha", "a number above 0, at most 1", s.alpha));
        }
        for (field, value) in [("stream.min_cutoff", s.min_cutoff), ("stream.d_cutoff", s.d_cutoff)] {
            if !(value > 0.0 && value.is_finite()) {
                return Err(Error::field(&self.origin, field, "a frequency above 0 (Hz)", value));
            }
        }
        if !(s.beta >= 0.0 && s.beta.is_finite()) {
            return Err(Error::field(&self.origin, "stream.beta", "a number of 0 or more", s.beta));
        }
        if !(s.max_distance > 0.0 && s.max_distance.is_finite()) {
            return Err(Error::field(
                &self.origin,
                "stream.max_distance",
                "a number above 0 (face widths)",
                s.max_distance,
            ));
        }
        if self.threads > MAX_THREADS {
            let expected = format!("0 (all cores) or a number up to {MAX_THREADS}");
            return Err(Error::field(&self.origin, "threads", expected, self.threads));
        }
        Ok(())
    }

    /// The most pixels a batch of images may hold in all.
    pub fn max_batch_pixels(&self) -> u64 {
        self.max_image_pixels.saturating_mul(BATCH_PIXELS_FACTOR)
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
        assert_eq!((&*config.backend, config.threads, config.batch_size), ("tract", 0, 1));
        let err = Config::from_toml("batch_size = 0", Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.contains("batch_size") && err.contains("found 0"), "{err}");
        assert_eq!(config.max_image_pixels, 178_956_970);
    }

    #[test]
    fn stream_and_atypicality_sections() {
        let text = "[stream]\nsmoothing = \"one-euro\"\nbeta = 0.5\nmax_missing = 30\n[atypicality]\nmodel = \"gru\"\n";
        let mut config = Config::from_toml(text, Path::new("/etc/hrm/video.toml")).unwrap();
        config.resolve_paths(Path::new("/etc/hrm"));
        assert_eq!(
            (config.stream.smoothing, config.stream.beta, config.stream.max_missing),
            (SmoothingKind::OneEuro, 0.5, 30)
        );
        assert_eq!(config.atypicality.model.as_deref(), Some(Path::new("/etc/hrm/gru")));
        assert_eq!(Config::default().stream.smoothing, SmoothingKind::Off, "HRM's numbers are per frame");
        for (text, field) in [
            ("[stream]\nalpha = 0", "stream.alpha"),
            ("[stream]\nmin_cutoff = -1", "stream.min_cutoff"),
            ("[stream]\nbeta = -0.1", "stream.beta"),
            ("[stream]\nmax_distance = 0", "stream.max_distance"),
            ("[stream]\nsmoothing = \"kalman\"", "kalman"),
            ("[stream]\nwindow = 15", "window"),
        ] {
            let err = Config::from_toml(text, Path::new("x.toml")).unwrap_err().to_string();
            assert!(err.contains(field) && err.contains("x.toml"), "{text}: {err}");
        }
    }

    #[test]
    fn the_backend_is_a_name_or_a_table_of_settings() {
        let config = Config::from_toml("backend = \"ort\"", Path::new("x.toml")).unwrap();
        assert_eq!((&*config.backend, config.backend.settings.len()), ("ort", 0));
        let text = "[backend]\nname = \"ort\"\n[backend.ort]\ndevice = \"cuda:0\"\n[backend.tract]\n[detector]\nbackend = \"tract\"";
        let config = Config::from_toml(text, Path::new("x.toml")).unwrap();
        assert_eq!((&*config.backend, config.detector_backend()), ("ort", "tract"));
        assert_eq!(config.backend.settings.len(), 2);
        assert_eq!(config.backend_options("ort").settings["device"].as_str(), Some("cuda:0"));
        assert!(config.backend_options("tract").settings.is_empty());
        for (text, field) in [
            ("backend = 3", "`backend`: expected a backend name"),
            ("[backend]\nname = 3", "backend.name"),
            ("[backend]\ndevice = \"cuda\"", "backend.device"),
        ] {
            let err = Config::from_toml(text, Path::new("x.toml")).unwrap_err().to_string();
            assert!(err.contains(field) && err.contains("x.toml"), "{text}: {err}");
        }
    }

    #[test]
    fn a_top_level_table_that_is_not_a_section_holds_a_backends_settings() {
        let text = "backend = \"onnxruntime\"\nthreads = 2\n[onnxruntime]\nproviders = [\"cuda\", \"cpu\"]\n\
                    [onnxruntime.cuda]\ndevice_id = 1\n[plugins]\npaths = [\"plugins\", \"/opt/hrm\"]\n";
        let mut config = Config::from_toml(text, Path::new("/etc/hrm/gpu.toml")).unwrap();
        config.resolve_paths(Path::new("/etc/hrm"));
        assert_eq!((&*config.backend, config.threads), ("onnxruntime", 2));
        let settings = config.backend_options("onnxruntime").settings;
        assert_eq!(settings.len(), 2);
        assert_eq!(settings["cuda"]["device_id"].as_integer(), Some(1));
        assert_eq!(config.plugins.paths, [Path::new("/etc/hrm/plugins"), Path::new("/opt/hrm")]);
        let twice = "[onnxruntime]\nfallback = true\n[backend.onnxruntime]\nfallback = false\n";
        let err = Config::from_toml(twice, Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.contains("[onnxruntime]") && err.contains("two"), "{err}");
        // A misspelt key that is not a table is still an error of its own, with its line.
        let err = Config::from_toml("[onnxruntime]\n[plugins]\npath = []\n", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("path"), "{err}");
        let err = Config::from_toml("threds = 2\n", Path::new("x.toml")).unwrap_err().to_string();
        assert!(err.contains("threds") && err.contains("line 1"), "{err}");
    }

    #[test]
    fn huge_detector_inputs_and_pixel_budgets_are_refused() {
        for (text, field) in [
            ("[detector]\nletterbox = [16384, 16384]", "detector.letterbox"),
            ("[detector]\nmax_side = 16384", "detector.max_side"),
            ("max_image_pixels = 0", "max_image_pixels"),
            ("max_image_pixels = 100000000000", "max_image_pixels"),
        ] {
            let err = Config::from_toml(text, Path::new("x.toml")).unwrap_err().to_string();
            assert!(err.contains(field), "{text}: {err}");
        }
        assert!(Config::from_toml("[detector]\nletterbox = [640, 640]", Path::new("x.toml")).is_ok());
    }

    #[test]
    fn degenerate_alignment_templates_are_refused() {
        for (template, needle) in [
            ("[[nan, 0.36], [0.65, 0.36], [0.5, 0.52], [0.37, 0.7], [0.63, 0.7]]", "template[0]"),
            ("[[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]", "distinct"),
            ("[[1e30, 0.36], [0.65, 0.36], [0.5, 0.52], [0.37, 0.7], [0.63, 0.7]]", "template[0]"),
            ("[[0.35, 0.36], [0.35, 0.36], [0.5, 0.52], [0.37, 0.7], [0.63, 0.7]]", "distinct"),
        ] {
            let text = format!("[alignment]\ntemplate = {template}");
            let err = Config::from_toml(&text, Path::new("x.toml")).unwrap_err().to_string();
            assert!(err.contains("alignment.template") && err.contains(needle), "{template}: {err}");
        }
    }
}
