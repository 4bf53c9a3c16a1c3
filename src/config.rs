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
    pub skf: SkfConfig,
    pub alerts: AlertsConfig,
    /// `[[cards]]`: which module serves a card, by ATR.
    pub cards: Vec<CardConfig>,
    pub bridge: BridgeConfig,
    pub ui: UiConfig,
    pub trust: TrustConfig,
    pub xtx: XtxConfig,
}

/// `[trust]`: where the issuers of the certificates on the tokens are looked for, besides
/// the tokens themselves and the system's CA store.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrustConfig {
    /// CA certificate files (DER, PEM or PKCS#7 `.p7b`, one or many certificates each) and
    /// directories of them, as CAs hand out their chains: Chinese CA roots are not in the
    /// system store. A relative path is relative to the config file's directory. Read once,
    /// when certray starts.
    pub ca_paths: Vec<PathBuf>,
}

/// `[xtx]`: the BJCA "证书应用环境" compatibility endpoint, for portals whose own JavaScript
/// talks to BJCA's helper. Off by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct XtxConfig {
    pub enabled: bool,
    /// Plain HTTP: `ws://…/xtxapp/` and `POST /synctl`. Loopback only.
    pub listen: std::net::SocketAddr,
    /// TLS: `wss://…/xtxapp/` and `POST https://…/synctl`. Loopback only.
    pub tls_listen: std::net::SocketAddr,
}

impl Default for XtxConfig {
    fn default() -> Self {
        XtxConfig {
            enabled: false,
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 21051)),
            tls_listen: std::net::SocketAddr::from(([127, 0, 0, 1], 21061)),
        }
    }
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

/// `[skf]`: which GM/T 0016 (SKF) vendor libraries to load, each in a `certray skf-host`
/// process of its own.
///
/// ```toml
/// [skf]
/// libraries = ["/opt/longmai/lib/libgm3000.1.0.so"]   # tried in order
/// use_defaults = true                                  # also the known vendor libraries installed here
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SkfConfig {
    /// Libraries, tried in order.
    pub libraries: Vec<PathBuf>,
    /// Also try the platform's known vendor SKF libraries that are installed.
    pub use_defaults: bool,
    /// How long one call into a library may take before its host process is deemed hung
    /// and restarted (milliseconds). A key that waits for a button press needs time.
    pub timeout_ms: u64,
}

impl Default for SkfConfig {
    fn default() -> Self {
        SkfConfig {
            libraries: Vec::new(),
            use_defaults: true,
            timeout_ms: 30_000,
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
        let mut config: Config = toml::from_str(text).map_err(|e| Error::Parse {
            path: origin.to_path_buf(),
            // toml's message names the unknown key and the line it is on.
            message: e.to_string().trim_end().to_string(),
        })?;
        // `ca_paths` are relative to the file that names them, not to wherever certray
        // happens to be started.
        if let Some(dir) = origin.parent() {
            for p in &mut config.trust.ca_paths {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok(config)
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

/// Set `[xtx] enabled` in the config file at `path` (made when absent), keeping everything
/// else in it as written (comments too). What is written must still be a valid
/// configuration; a file that is not refuses the change (`InvalidData`).
pub fn set_xtx_enabled(path: &Path, on: bool) -> std::io::Result<()> {
    let invalid = |e: String| std::io::Error::new(std::io::ErrorKind::InvalidData, e);
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e| invalid(format!("{e}")))?;
    if !doc.contains_table("xtx") {
        doc["xtx"] = toml_edit::table();
    }
    doc["xtx"]["enabled"] = toml_edit::value(on);
    let text = doc.to_string();
    Config::from_toml(&text, path).map_err(|e| invalid(e.to_string()))?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, text)
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
[skf]
libraries = ["/opt/longmai/lib/libgm3000.1.0.so"]
use_defaults = false
[alerts]
expiry_warning_days = 90
"#;
        let c = Config::from_toml(text, Path::new("c.toml")).unwrap();
        assert_eq!(
            c.pkcs11.modules,
            vec![ModuleConfig::new("/usr/lib/softhsm/libsofthsm2.so")]
        );
        assert!(c.pkcs11.use_defaults);
        assert_eq!(
            c.skf.libraries,
            vec![PathBuf::from("/opt/longmai/lib/libgm3000.1.0.so")]
        );
        assert!(!c.skf.use_defaults);
        assert_eq!(c.skf.timeout_ms, 30_000);
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
    fn xtx_is_off_by_default_and_parses() {
        let c = Config::default();
        assert!(!c.xtx.enabled);
        assert_eq!(c.xtx.listen.port(), 21051);
        assert_eq!(c.xtx.tls_listen.port(), 21061);
        let c = Config::from_toml(
            "[xtx]\nenabled = true\nlisten = \"127.0.0.1:0\"\ntls_listen = \"127.0.0.1:0\"\n",
            Path::new("c.toml"),
        )
        .unwrap();
        assert!(c.xtx.enabled);
        assert_eq!(c.xtx.listen.port(), 0);
        let err = Config::from_toml("[xtx]\nenable = true\n", Path::new("c.toml")).unwrap_err();
        assert!(err.to_string().contains("enable"), "{err}");
    }

    #[test]
    fn trust_paths_are_relative_to_the_file() {
        let text = r#"
[trust]
ca_paths = ["/etc/certray/ca", "chains/cfca.p7b"]
"#;
        let c = Config::from_toml(text, Path::new("/home/u/.config/certray/config.toml")).unwrap();
        assert_eq!(
            c.trust.ca_paths,
            vec![
                PathBuf::from("/etc/certray/ca"),
                PathBuf::from("/home/u/.config/certray/chains/cfca.p7b")
            ]
        );
        let err = Config::from_toml(
            "[trust]
ca_path = []
",
            Path::new("c.toml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("ca_path"), "{err}");
    }

    #[test]
    fn xtx_on_and_off_keep_the_rest_of_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.toml");
        set_xtx_enabled(&path, true).unwrap();
        assert!(Config::load(Some(&path)).unwrap().0.xtx.enabled);
        std::fs::write(
            &path,
            "# mine\n[bridge]\npage_pin_origins = [\"https://a.example\"]\n[xtx]\nenabled = true # on\n",
        )
        .unwrap();
        set_xtx_enabled(&path, false).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# mine\n"), "{text}");
        let c = Config::load(Some(&path)).unwrap().0;
        assert!(!c.xtx.enabled);
        assert_eq!(c.bridge.page_pin_origins, ["https://a.example"]);
        std::fs::write(&path, "[xtx]\nenable = 1\n").unwrap();
        assert!(
            set_xtx_enabled(&path, true).is_err(),
            "an invalid file stays as it is"
        );
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
