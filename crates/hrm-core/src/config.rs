//! Runtime configuration, read from TOML. Unknown keys are errors that name the key and the file.

use crate::error::{Error, Result};
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
    /// Where this configuration came from, for error messages.
    #[serde(skip)]
    pub origin: PathBuf,
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
            origin: PathBuf::from("<default configuration>"),
        }
    }
}

impl Config {
    pub fn from_file(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut config = Config::from_toml(&text, path)?;
        if let Some(model) = &config.model {
            if model.is_relative() {
                let base = path.parent().unwrap_or(Path::new(""));
                config.model = Some(base.join(model));
            }
        }
        Ok(config)
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
