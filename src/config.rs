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
    /// `[[cards]]`: which module serves a card, by ATR.
    pub cards: Vec<CardConfig>,
    pub bridge: BridgeConfig,
    pub ui: UiConfig,
}

/// `[ui]`: the tray and its windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// What happens when a key goes in.
    pub on_insert: OnInsert,
    /// Desktop notifications (insert, remove, expiry, PIN). Off: the tray icon still tells.
    pub notifications: bool,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig {
            on_insert: OnInsert::Popup,
            notifications: true,
        }
    }
}

/// `[ui] on_insert`: what a key insertion shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnInsert {
    /// The certificate card, near the tray (and a notification).
    Popup,
    /// A notification only.
    Notify,
    /// Nothing (the tray icon still changes).
    None,
}

/// `[bridge]`: the localhost HTTP bridge for web pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BridgeConfig {
    /// Where to listen; must be a loopback address.
    pub listen: std::net::SocketAddr,
    /// Origins (`https://etax.example`) allowed without asking.
    pub allowed_origins: Vec<String>,
    /// Legacy portals that collect the PIN in their own page and send it in the request.
    pub page_pin_origins: Vec<String>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 21088)),
            allowed_origins: Vec::new(),
            page_pin_origins: Vec::new(),
        }
    }
}

/// One `[[cards]]` entry: cards whose ATR matches `atr` under `mask` are served by `module`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CardConfig {
    /// Hex bytes; spaces and colons are ignored (`"3B 9F 95 81 31"`).
    pub atr: String,
    /// Hex bytes of the same length as `atr`; a 0 bit ignores that bit of the card's ATR.
    #[serde(default)]
    pub mask: Option<String>,
    pub module: PathBuf,
    /// A name for people, e.g. "Feitian ePass2003".
    #[serde(default)]
    pub name: Option<String>,
}

/// One PKCS#11 module: a path, or a table with options.
///
/// ```toml
/// modules = ["/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
///            { path = "/usr/lib/softhsm/libsofthsm2.so", reinitialize_on_change = true }]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleConfig {
    pub path: PathBuf,
    /// Finalize and initialize the module again after a card event, so that it sees tokens
    /// that appeared after start-up (SoftHSM and several vendor modules need this).
    #[serde(default)]
    pub reinitialize_on_change: bool,
    /// Whether the module's tokens are PC/SC cards (then PC/SC events drive rescans and the
    /// slot poll is off). Default: known from the module (OpenSC is), else not.
    #[serde(default)]
    pub pcsc: Option<bool>,
}

impl ModuleConfig {
    pub fn new(path: impl Into<PathBuf>) -> ModuleConfig {
        ModuleConfig {
            path: path.into(),
            reinitialize_on_change: false,
            pcsc: None,
        }
    }
}

/// A module entry is a plain path or a table.
#[derive(Deserialize)]
#[serde(untagged)]
enum ModuleEntry {
    Path(PathBuf),
    Table(toml::Table),
}

fn modules_from_entries<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<ModuleConfig>, D::Error> {
    let entries = Vec::<ModuleEntry>::deserialize(d)?;
    entries
        .into_iter()
        .map(|e| match e {
            ModuleEntry::Path(p) => Ok(ModuleConfig::new(p)),
            // Parsed again on its own so that an unknown key is named in the error.
            ModuleEntry::Table(t) => ModuleConfig::deserialize(t).map_err(serde::de::Error::custom),
        })
        .collect()
}

/// `[pkcs11]`: which PKCS#11 modules to load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Pkcs11Config {
    /// Modules, tried in order.
    #[serde(deserialize_with = "modules_from_entries")]
    pub modules: Vec<ModuleConfig>,
    /// Also try the platform's known modules (OpenSC and the vendor modules that are installed).
    pub use_defaults: bool,
    /// How often to list the slots of modules that PC/SC events do not cover and that cannot
    /// wait for slot events (milliseconds; 0 turns the poll off).
    pub poll_interval_ms: u64,
}

impl Default for Pkcs11Config {
    fn default() -> Self {
        Pkcs11Config {
            modules: Vec::new(),
            use_defaults: true,
            poll_interval_ms: 2000,
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

/// `<state dir>/certray` (`~/.local/state/certray` on Linux; the data dir where the platform has
/// no state dir): website approvals and the audit log live here.
pub fn state_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "certray")
        .map(|d| d.state_dir().unwrap_or_else(|| d.data_dir()).to_path_buf())
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
            vec![ModuleConfig::new("/usr/lib/softhsm/libsofthsm2.so")]
        );
        assert!(c.pkcs11.use_defaults);
        assert_eq!(c.alerts.expiry_warning_days, 90);
    }

    #[test]
    fn modules_as_tables_and_cards() {
        let text = r#"
[pkcs11]
modules = ["/a.so", { path = "/b.so", reinitialize_on_change = true, pcsc = false }]
poll_interval_ms = 500
[[cards]]
atr = "3B 95 13 81 01 80 73 FF 01 00 0B"
module = "/a.so"
name = "vicc"
[[cards]]
atr = "3B:9F:95:81:31:FE:9F:00:66:46:53:05"
mask = "FF FF FF FF FF FF FF FF FF FF FF 00"
module = "/usr/lib/libcastle.so.1.0.0"
"#;
        let c = Config::from_toml(text, Path::new("c.toml")).unwrap();
        assert_eq!(c.pkcs11.modules[0], ModuleConfig::new("/a.so"));
        assert!(c.pkcs11.modules[1].reinitialize_on_change);
        assert_eq!(c.pkcs11.modules[1].pcsc, Some(false));
        assert_eq!(c.pkcs11.poll_interval_ms, 500);
        assert_eq!(c.cards.len(), 2);
        assert_eq!(
            c.cards[1].mask.as_deref(),
            Some("FF FF FF FF FF FF FF FF FF FF FF 00")
        );
        let err = Config::from_toml(
            "[pkcs11]\nmodules = [{ path = \"/b.so\", reinit = true }]\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("reinit"), "{err}");
        let err = Config::from_toml(
            "[[cards]]\natr = \"3B\"\nmodule = \"/a.so\"\nmaks = \"FF\"\n",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("maks"), "{err}");
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
