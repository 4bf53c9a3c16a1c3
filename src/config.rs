//! The TOML configuration file.
//!
//! Found at `--config FILE`, else `<platform config dir>/certray/config.toml`. A missing
//! default file means the defaults; unknown keys are an error that names the key.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::Code;

/// The whole configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub pkcs11: Pkcs11Config,
    pub alerts: AlertsConfig,
}

/// `[pkcs11]`: which PKCS#11 modules to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pkcs11Config {
    /// Module paths, tried in order.
    pub modules: Vec<PathBuf>,
    /// Also try the platform's known modules (OpenSC and the vendor modules that are installed).
    pub use_defaults: bool,
}

impl Default for Pkcs11Config {
    fn default() -> Self {
        Pkcs11Config {
            modules: Vec::new(),
            use_defaults: true,
        }
    }
}

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// A certificate with this many days left or fewer is `expiring`.
    pub expiry_warning_days: u32,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            expiry_warning_days: 90,
        }
    }
}

/// Why the configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl Error {
    pub fn code(&self) -> Code {
        match self {
            Error::Read { .. } => Code::Io,
            Error::Parse { .. } => Code::ConfigInvalid,
        }
    }
}

impl Config {
    /// Parse TOML text; `origin` names the file in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config, Error> {
        toml::from_str(text).map_err(|e| Error::Parse {
            path: origin.to_path_buf(),
            // toml's message names the unknown key and the line it is on.
            message: e.to_string().trim_end().to_string(),
        })
    }

    /// Load from an explicit file (which must exist), or from the default location
    /// (which may be missing: then the defaults apply).
    pub fn load(explicit: Option<&Path>) -> Result<(Config, Option<PathBuf>), Error> {
        let (path, must_exist) = match explicit {
            Some(p) => (Some(p.to_path_buf()), true),
            None => (default_path(), false),
        };
        let Some(path) = path else {
            return Ok((Config::default(), None));
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok((Config::from_toml(&text, &path)?, Some(path))),
            Err(e) if !must_exist && e.kind() == std::io::ErrorKind::NotFound => {
                Ok((Config::default(), None))
            }
            Err(source) => Err(Error::Read { path, source }),
        }
    }
}

/// `<config dir>/certray/config.toml` (`~/.config/certray/config.toml` on Linux).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "certray").map(|d| d.config_dir().join("config.toml"))
}

/// `<data dir>/certray` (`~/.local/share/certray` on Linux): the demo token lives here.
pub fn data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "certray").map(|d| d.data_dir().to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_example_parses() {
        let text = r#"
[pkcs11]
modules = ["/usr/lib/softhsm/libsofthsm2.so"]   # tried in order
use_defaults = true                               # also try the platform's known modules
[alerts]
expiry_warning_days = 90
"#;
        let c = Config::from_toml(text, Path::new("c.toml")).unwrap();
        assert_eq!(
            c.pkcs11.modules,
            vec![PathBuf::from("/usr/lib/softhsm/libsofthsm2.so")]
        );
        assert!(c.pkcs11.use_defaults);
        assert_eq!(c.alerts.expiry_warning_days, 90);
    }

    #[test]
    fn empty_is_default() {
        assert_eq!(
            Config::from_toml("", Path::new("c.toml")).unwrap(),
            Config::default()
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = Config::from_toml("[pkcs11]\nmodulez = []\n", Path::new("c.toml")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("modulez"), "{msg}");
        assert_eq!(err.code(), Code::ConfigInvalid);
        let err = Config::from_toml("[alert]\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("alert"), "{err}");
    }
}
