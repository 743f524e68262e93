//! The plugin's options: the configuration's `[onnxruntime]` table, as TOML text. Every key is
//! checked; an error names the key, what it takes and what it found.

use std::path::{Path, PathBuf};

/// An execution provider hrm knows how to configure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    TensorRt,
    Cuda,
    Cpu,
}

impl Provider {
    pub const ALL: [Provider; 3] = [Provider::TensorRt, Provider::Cuda, Provider::Cpu];

    /// The name in a configuration.
    pub fn name(self) -> &'static str {
        match self {
            Provider::TensorRt => "tensorrt",
            Provider::Cuda => "cuda",
            Provider::Cpu => "cpu",
        }
    }

    /// ONNX Runtime's own name for it.
    pub fn ort_name(self) -> &'static str {
        match self {
            Provider::TensorRt => "TensorrtExecutionProvider",
            Provider::Cuda => "CUDAExecutionProvider",
            Provider::Cpu => "CPUExecutionProvider",
        }
    }

    fn parse(name: &str) -> Option<Provider> {
        Provider::ALL.into_iter().find(|p| p.name() == name)
    }
}

/// `[onnxruntime.tensorrt]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorRtOptions {
    pub device_id: i32,
    pub fp16: bool,
    /// Where built engines are kept between runs; None: no cache (an engine is built at every
    /// start, which takes minutes for a ViT).
    pub engine_cache: Option<PathBuf>,
    /// TensorRT's workspace, in bytes; None: ONNX Runtime's default.
    pub workspace_size: Option<usize>,
}

/// Everything the table sets, defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// The ONNX Runtime library (`library`), relative paths resolved.
    pub library: Option<PathBuf>,
    pub providers: Vec<Provider>,
    /// Whether a provider that cannot be used passes to the next one (true) or is an error.
    pub fallback: bool,
    /// `[onnxruntime.cpu] threads`; 0 or absent: the configuration's `threads`.
    pub cpu_threads: usize,
    pub cuda_device_id: i32,
    pub tensorrt: TensorRtOptions,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            library: None,
            providers: vec![Provider::Cpu],
            fallback: true,
            cpu_threads: 0,
            cuda_device_id: 0,
            tensorrt: TensorRtOptions { device_id: 0, fp16: false, engine_cache: None, workspace_size: None },
        }
    }
}

type Table = toml::Table;

fn wrong(key: &str, expected: &str, found: &toml::Value) -> String {
    format!("`onnxruntime.{key}`: expected {expected}, found {found}")
}

fn unknown(key: &str, known: &[&str]) -> String {
    format!("`onnxruntime.{key}`: an unknown key (known here: {})", known.join(", "))
}

fn table<'a>(key: &str, value: &'a toml::Value) -> Result<&'a Table, String> {
    value.as_table().ok_or_else(|| wrong(key, "a table", value))
}

fn boolean(key: &str, value: &toml::Value) -> Result<bool, String> {
    value.as_bool().ok_or_else(|| wrong(key, "true or false", value))
}

fn integer(key: &str, value: &toml::Value, max: i64) -> Result<i64, String> {
    value
        .as_integer()
        .filter(|n| (0..=max).contains(n))
        .ok_or_else(|| wrong(key, &format!("an integer from 0 to {max}"), value))
}

fn path(key: &str, value: &toml::Value, base: Option<&Path>) -> Result<PathBuf, String> {
    let text = value.as_str().filter(|s| !s.is_empty()).ok_or_else(|| wrong(key, "a path", value))?;
    let path = PathBuf::from(text);
    Ok(match base {
        Some(base) if path.is_relative() => base.join(path),
        _ => path,
    })
}

impl Options {
    /// Parses the table's TOML text; relative paths are taken from `base` (the configuration's
    /// folder).
    pub fn parse(text: &str, base: Option<&Path>) -> Result<Options, String> {
        let settings: Table = text.parse().map_err(|e| format!("the [onnxruntime] options do not parse: {e}"))?;
        let mut options = Options::default();
        const KEYS: [&str; 6] = ["library", "providers", "fallback", "cpu", "cuda", "tensorrt"];
        for (key, value) in &settings {
            match key.as_str() {
                "library" => options.library = Some(path(key, value, base)?),
                "providers" => options.providers = providers(value)?,
                "fallback" => options.fallback = boolean(key, value)?,
                "cpu" => {
                    for (k, v) in table("cpu", value)? {
                        match k.as_str() {
                            "threads" => options.cpu_threads = integer("cpu.threads", v, 1024)? as usize,
                            _ => return Err(unknown(&format!("cpu.{k}"), &["threads"])),
                        }
                    }
                }
                "cuda" => {
                    for (k, v) in table("cuda", value)? {
                        match k.as_str() {
                            "device_id" => options.cuda_device_id = integer("cuda.device_id", v, 1023)? as i32,
                            _ => return Err(unknown(&format!("cuda.{k}"), &["device_id"])),
                        }
                    }
                }
                "tensorrt" => {
                    const TRT: [&str; 4] = ["device_id", "fp16", "engine_cache", "workspace_size"];
                    let trt = &mut options.tensorrt;
                    for (k, v) in table("tensorrt", value)? {
                        let key = format!("tensorrt.{k}");
                        match k.as_str() {
                            "device_id" => trt.device_id = integer(&key, v, 1023)? as i32,
                            "fp16" => trt.fp16 = boolean(&key, v)?,
                            "engine_cache" => trt.engine_cache = Some(path(&key, v, base)?),
                            "workspace_size" => trt.workspace_size = Some(integer(&key, v, i64::MAX)? as usize),
                            _ => return Err(unknown(&key, &TRT)),
                        }
                    }
                }
                _ => return Err(unknown(key, &KEYS)),
            }
        }
        Ok(options)
    }
}

fn providers(value: &toml::Value) -> Result<Vec<Provider>, String> {
    let expected = "a list of providers, each \"tensorrt\", \"cuda\" or \"cpu\"";
    let list = value.as_array().filter(|l| !l.is_empty()).ok_or_else(|| wrong("providers", expected, value))?;
    let mut providers = Vec::new();
    for item in list {
        let provider = item.as_str().and_then(Provider::parse).ok_or_else(|| wrong("providers", expected, item))?;
        if providers.contains(&provider) {
            return Err(wrong("providers", "each provider once", item));
        }
        providers.push(provider);
    }
    Ok(providers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_option_is_read_and_relative_paths_start_at_the_configuration() {
        let text = r#"
            library = "ort/libonnxruntime.so.1.23.2"
            providers = ["tensorrt", "cuda", "cpu"]
            fallback = false
            [cpu]
            threads = 3
            [cuda]
            device_id = 1
            [tensorrt]
            device_id = 2
            fp16 = true
            engine_cache = "/var/cache/hrm-trt"
            workspace_size = 2147483648
        "#;
        let options = Options::parse(text, Some(Path::new("/etc/hrm"))).unwrap();
        assert_eq!(options.library.as_deref(), Some(Path::new("/etc/hrm/ort/libonnxruntime.so.1.23.2")));
        assert_eq!(options.providers, [Provider::TensorRt, Provider::Cuda, Provider::Cpu]);
        assert!(!options.fallback);
        assert_eq!((options.cpu_threads, options.cuda_device_id), (3, 1));
        let trt = &options.tensorrt;
        assert_eq!((trt.device_id, trt.fp16, trt.workspace_size), (2, true, Some(2 << 30)));
        assert_eq!(trt.engine_cache.as_deref(), Some(Path::new("/var/cache/hrm-trt")));
        assert_eq!(Options::parse("", None).unwrap(), Options::default());
    }

    #[test]
    fn mistakes_name_the_key_and_what_it_takes() {
        for (text, expected) in [
            ("providers = [\"cuda\", \"gpu\"]", "`onnxruntime.providers`: expected a list of providers"),
            ("providers = []", "`onnxruntime.providers`"),
            ("providers = [\"cpu\", \"cpu\"]", "each provider once"),
            ("fallback = \"yes\"", "`onnxruntime.fallback`: expected true or false"),
            ("[cuda]\ndevice = 0", "`onnxruntime.cuda.device`: an unknown key (known here: device_id)"),
            ("[cuda]\ndevice_id = -1", "`onnxruntime.cuda.device_id`: expected an integer from 0"),
            ("[tensorrt]\nfp16 = 1", "`onnxruntime.tensorrt.fp16`: expected true or false, found 1"),
            ("[cpu]\nthreads = 2.5", "`onnxruntime.cpu.threads`"),
            ("libary = \"x\"", "`onnxruntime.libary`: an unknown key"),
            ("cuda = 1", "`onnxruntime.cuda`: expected a table"),
            ("library = \"\"", "`onnxruntime.library`: expected a path"),
            ("= broken", "do not parse"),
        ] {
            let err = Options::parse(text, None).unwrap_err();
            assert!(err.contains(expected), "{text:?}: {err}");
        }
    }
}
