//! The device "hardware": persistent state in `SOFTSKF_DIR`.
//!
//! Files (tests/softskf/README.md has the full description):
//! - `provision.toml`: written by the test; turned into `state.json` the first time a process
//!   needs the state and `state.json` does not exist yet;
//! - `state.json`: devices → applications (PIN hashes, retry counters, default-PIN flags) →
//!   containers (keys, certificates). Rewritten atomically (temporary file + rename) under
//!   an exclusive lock on `lock`, so counters persist across `SKF_DisConnectDev`, reconnects
//!   and process restarts, and two processes never interleave a read-modify-write;
//! - `presence`: the names of the devices that are plugged in, one per line (the test
//!   rewrites it, by rename, to insert or remove a key).

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sm3::{Digest, Sm3};

use crate::crypto::Key;

pub const PROVISION_FILE: &str = "provision.toml";
pub const STATE_FILE: &str = "state.json";
pub const PRESENCE_FILE: &str = "presence";
pub const LOCK_FILE: &str = "lock";

/// A device, application or container name: bytes, which need not be UTF-8 (GBK names exist).
/// Stored as a string when it is UTF-8, else as `{"hex": "…"}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Name(pub Vec<u8>);

impl Serialize for Name {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => s.serialize_str(text),
            Err(_) => NameRepr::Hex {
                hex: hex::encode(&self.0),
            }
            .serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NameRepr::deserialize(d)? {
            NameRepr::Text(t) => Ok(Name(t.into_bytes())),
            NameRepr::Hex { hex } => hex::decode(hex).map(Name).map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum NameRepr {
    Text(String),
    Hex { hex: String },
}

mod hexbytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        hex::decode(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod opt_hexbytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<Vec<u8>>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_some(&hex::encode(v)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<u8>>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|h| hex::decode(h).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub devices: Vec<Device>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Device {
    pub name: Name,
    pub label: String,
    pub serial: String,
    pub manufacturer: String,
    pub issuer: String,
    /// The device authentication key (SM4-ECB, `SKF_DevAuth`).
    #[serde(with = "hexbytes")]
    pub auth_key: Vec<u8>,
    pub applications: Vec<Application>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Application {
    pub name: Name,
    pub pin_min_len: usize,
    pub pin_max_len: usize,
    pub admin_pin: PinRecord,
    pub user_pin: PinRecord,
    pub containers: Vec<Container>,
}

/// One PIN: a salted SM3 hash, the retry counters and the factory-default flag. A PIN is
/// locked when `remaining` is 0.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PinRecord {
    #[serde(with = "hexbytes")]
    salt: Vec<u8>,
    #[serde(with = "hexbytes")]
    hash: Vec<u8>,
    pub max_retries: u32,
    pub remaining: u32,
    pub default_pin: bool,
    /// Redundant with `remaining == 0`; kept so the file reads plainly.
    pub locked: bool,
}

/// What a PIN attempt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Ok,
    /// Wrong; this many tries left (at least 1).
    Incorrect(u32),
    /// Wrong, and that was the last try.
    LockedNow,
    /// Already locked; the PIN was not even compared.
    AlreadyLocked,
}

impl PinRecord {
    pub fn new(pin: &[u8], max_retries: u32, default_pin: bool) -> PinRecord {
        let mut record = PinRecord {
            salt: Vec::new(),
            hash: Vec::new(),
            max_retries,
            remaining: max_retries,
            default_pin,
            locked: max_retries == 0,
        };
        record.set(pin);
        record.default_pin = default_pin;
        record
    }

    fn digest(salt: &[u8], pin: &[u8]) -> Vec<u8> {
        Sm3::new()
            .chain_update(salt)
            .chain_update(pin)
            .finalize()
            .to_vec()
    }

    /// A new PIN value: counters reset, no longer the factory default.
    pub fn set(&mut self, pin: &[u8]) {
        let mut salt = vec![0u8; 16];
        getrandom::fill(&mut salt).expect("getrandom");
        self.hash = PinRecord::digest(&salt, pin);
        self.salt = salt;
        self.remaining = self.max_retries;
        self.locked = self.remaining == 0;
        self.default_pin = false;
    }

    pub fn attempt(&mut self, pin: &[u8]) -> Attempt {
        if self.remaining == 0 {
            return Attempt::AlreadyLocked;
        }
        if PinRecord::digest(&self.salt, pin) == self.hash {
            self.remaining = self.max_retries;
            self.locked = false;
            return Attempt::Ok;
        }
        self.remaining -= 1;
        self.locked = self.remaining == 0;
        if self.remaining == 0 {
            Attempt::LockedNow
        } else {
            Attempt::Incorrect(self.remaining)
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub name: Name,
    pub sign_key: Option<Key>,
    pub enc_key: Option<Key>,
    #[serde(with = "opt_hexbytes", default)]
    pub sign_cert: Option<Vec<u8>>,
    #[serde(with = "opt_hexbytes", default)]
    pub enc_cert: Option<Vec<u8>>,
}

impl State {
    pub fn device_mut(&mut self, name: &[u8]) -> Option<&mut Device> {
        self.devices.iter_mut().find(|d| d.name.0 == name)
    }
}

impl Device {
    pub fn application_mut(&mut self, name: &[u8]) -> Option<&mut Application> {
        self.applications.iter_mut().find(|a| a.name.0 == name)
    }
}

impl Application {
    pub fn container_mut(&mut self, name: &[u8]) -> Option<&mut Container> {
        self.containers.iter_mut().find(|c| c.name.0 == name)
    }

    pub fn pin_len_ok(&self, pin: &[u8]) -> bool {
        (self.pin_min_len..=self.pin_max_len).contains(&pin.len())
    }
}

// ---------------------------------------------------------------------------------------------
// Provisioning (`provision.toml`)
// ---------------------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Provision {
    #[serde(default)]
    device: Vec<ProvisionDevice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvisionDevice {
    name: Option<String>,
    name_hex: Option<String>,
    label: Option<String>,
    serial: Option<String>,
    manufacturer: Option<String>,
    issuer: Option<String>,
    #[serde(default = "yes")]
    present: bool,
    auth_key_hex: Option<String>,
    #[serde(default)]
    application: Vec<ProvisionApplication>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvisionApplication {
    name: Option<String>,
    name_hex: Option<String>,
    user_pin: String,
    admin_pin: String,
    #[serde(default = "default_retries")]
    user_retries: u32,
    #[serde(default = "default_retries")]
    admin_retries: u32,
    #[serde(default)]
    user_pin_is_default: bool,
    #[serde(default)]
    admin_pin_is_default: bool,
    #[serde(default = "default_min_len")]
    pin_min_len: usize,
    #[serde(default = "default_max_len")]
    pin_max_len: usize,
    #[serde(default)]
    container: Vec<ProvisionContainer>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProvisionContainer {
    name: Option<String>,
    name_hex: Option<String>,
    sign_key: Option<String>,
    sign_cert: Option<String>,
    enc_key: Option<String>,
    enc_cert: Option<String>,
}

fn yes() -> bool {
    true
}
fn default_retries() -> u32 {
    10
}
fn default_min_len() -> usize {
    6
}
fn default_max_len() -> usize {
    16
}

/// The default device authentication key: ASCII "1234567812345678", the usual factory value.
pub const DEFAULT_AUTH_KEY: &[u8; 16] = b"1234567812345678";

fn name_of(what: &str, name: &Option<String>, name_hex: &Option<String>) -> Result<Name, String> {
    let bytes = match (name, name_hex) {
        (Some(n), None) => n.as_bytes().to_vec(),
        (None, Some(h)) => hex::decode(h).map_err(|e| format!("{what} name_hex {h:?}: {e}"))?,
        _ => return Err(format!("{what}: give exactly one of name and name_hex")),
    };
    if bytes.is_empty() || bytes.iter().any(|&b| b == 0 || b == b'\n') {
        return Err(format!(
            "{what}: a name must be non-empty, without NUL or newline"
        ));
    }
    Ok(Name(bytes))
}

fn read_file(dir: &Path, file: &str) -> Result<Vec<u8>, String> {
    let path = dir.join(file);
    fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
}

/// PEM (any label) or DER, as DER.
fn der_of(dir: &Path, file: &str) -> Result<Vec<u8>, String> {
    let bytes = read_file(dir, file)?;
    if bytes.starts_with(b"-----BEGIN") {
        let (_, der) =
            pem_rfc7468::decode_vec(&bytes).map_err(|e| format!("{file}: bad PEM: {e}"))?;
        Ok(der)
    } else {
        Ok(bytes)
    }
}

fn build_state(dir: &Path, p: Provision) -> Result<(State, Vec<Name>), String> {
    let mut devices = Vec::new();
    let mut present = Vec::new();
    for (i, d) in p.device.into_iter().enumerate() {
        let name = name_of(&format!("device #{}", i + 1), &d.name, &d.name_hex)?;
        let text = String::from_utf8_lossy(&name.0).into_owned();
        let auth_key = match &d.auth_key_hex {
            Some(h) => hex::decode(h).map_err(|e| format!("auth_key_hex: {e}"))?,
            None => DEFAULT_AUTH_KEY.to_vec(),
        };
        if auth_key.len() != 16 {
            return Err(format!(
                "device {text}: auth_key_hex must be 16 bytes (SM4)"
            ));
        }
        let mut applications = Vec::new();
        for a in d.application {
            let app_name = name_of(&format!("an application of {text}"), &a.name, &a.name_hex)?;
            let app_text = String::from_utf8_lossy(&app_name.0).into_owned();
            for (which, pin) in [("user_pin", &a.user_pin), ("admin_pin", &a.admin_pin)] {
                if !(a.pin_min_len..=a.pin_max_len).contains(&pin.len()) {
                    return Err(format!(
                        "application {app_text}: {which} must be {}..={} bytes",
                        a.pin_min_len, a.pin_max_len
                    ));
                }
            }
            let mut containers = Vec::new();
            for c in a.container {
                let c_name = name_of(&format!("a container of {app_text}"), &c.name, &c.name_hex)?;
                let c_text = String::from_utf8_lossy(&c_name.0).into_owned();
                let key = |file: &Option<String>| -> Result<Option<Key>, String> {
                    file.as_ref()
                        .map(|f| {
                            Key::from_pkcs8_der(&der_of(dir, f)?)
                                .map_err(|e| format!("container {c_text}: {f}: {e}"))
                        })
                        .transpose()
                };
                let cert = |file: &Option<String>| -> Result<Option<Vec<u8>>, String> {
                    file.as_ref().map(|f| der_of(dir, f)).transpose()
                };
                let container = Container {
                    name: c_name.clone(),
                    sign_key: key(&c.sign_key)?,
                    enc_key: key(&c.enc_key)?,
                    sign_cert: cert(&c.sign_cert)?,
                    enc_cert: cert(&c.enc_cert)?,
                };
                for (k, cert, what) in [
                    (&container.sign_key, &container.sign_cert, "sign"),
                    (&container.enc_key, &container.enc_cert, "enc"),
                ] {
                    if let (Some(k), Some(cert)) = (k, cert) {
                        let public = k.public_bytes();
                        if !cert.windows(public.len()).any(|w| w == public.as_slice()) {
                            return Err(format!(
                                "container {c_text}: the {what} certificate does not hold the {what} key's public key"
                            ));
                        }
                    }
                }
                if let (Some(s), Some(e)) = (&container.sign_key, &container.enc_key)
                    && s.container_type() != e.container_type()
                {
                    return Err(format!(
                        "container {c_text}: sign and enc keys of different types"
                    ));
                }
                containers.push(container);
            }
            applications.push(Application {
                name: app_name,
                pin_min_len: a.pin_min_len,
                pin_max_len: a.pin_max_len,
                admin_pin: PinRecord::new(
                    a.admin_pin.as_bytes(),
                    a.admin_retries,
                    a.admin_pin_is_default,
                ),
                user_pin: PinRecord::new(
                    a.user_pin.as_bytes(),
                    a.user_retries,
                    a.user_pin_is_default,
                ),
                containers,
            });
        }
        if d.present {
            present.push(name.clone());
        }
        devices.push(Device {
            label: d.label.unwrap_or_else(|| text.clone()),
            serial: d.serial.unwrap_or_else(|| format!("SOFTSKF{:08}", i + 1)),
            manufacturer: d
                .manufacturer
                .unwrap_or_else(|| "softskf (test stand-in)".to_string()),
            issuer: d.issuer.unwrap_or_else(|| "certray tests".to_string()),
            name,
            auth_key,
            applications,
        });
    }
    let mut seen = BTreeSet::new();
    for d in &devices {
        if !seen.insert(d.name.clone()) {
            return Err(format!(
                "two devices named {}",
                String::from_utf8_lossy(&d.name.0)
            ));
        }
    }
    Ok((State { devices }, present))
}

// ---------------------------------------------------------------------------------------------
// The store
// ---------------------------------------------------------------------------------------------

pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> Result<File, String> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        file.lock()
            .map_err(|e| format!("lock {}: {e}", path.display()))?;
        Ok(file)
    }

    /// Load the state (provisioning it first if needed), run `f`, and save when `f` says it
    /// changed something; all under the lock file.
    pub fn with<R>(&self, f: impl FnOnce(&mut State) -> (R, bool)) -> Result<R, String> {
        let _lock = self.lock()?;
        let mut state = self.load_locked()?;
        let (r, dirty) = f(&mut state);
        if dirty {
            self.save_locked(&state)?;
        }
        Ok(r)
    }

    fn load_locked(&self) -> Result<State, String> {
        let path = self.dir.join(STATE_FILE);
        match fs::read(&path) {
            Ok(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => self.provision_locked(),
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    fn provision_locked(&self) -> Result<State, String> {
        let path = self.dir.join(PROVISION_FILE);
        let text = fs::read_to_string(&path).map_err(|e| {
            format!(
                "{}: {e} (neither state nor provisioning found)",
                path.display()
            )
        })?;
        let provision: Provision =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let (state, present) = build_state(&self.dir, provision)?;
        self.save_locked(&state)?;
        if !self.dir.join(PRESENCE_FILE).exists() {
            write_presence(&self.dir, &present)?;
        }
        Ok(state)
    }

    fn save_locked(&self, state: &State) -> Result<(), String> {
        let json = serde_json::to_vec_pretty(state).map_err(|e| e.to_string())?;
        atomic_write(&self.dir.join(STATE_FILE), &json)
    }

    /// The device names listed in `presence` (empty when the file is missing).
    pub fn presence(&self) -> Result<BTreeSet<Vec<u8>>, String> {
        read_presence(&self.dir)
    }
}

pub fn read_presence(dir: &Path) -> Result<BTreeSet<Vec<u8>>, String> {
    let path = dir.join(PRESENCE_FILE);
    match fs::read(&path) {
        Ok(bytes) => Ok(bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(<[u8]>::to_vec)
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeSet::new()),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

pub fn write_presence(dir: &Path, names: &[Name]) -> Result<(), String> {
    let mut text = Vec::new();
    for n in names {
        text.extend_from_slice(&n.0);
        text.push(b'\n');
    }
    atomic_write(&dir.join(PRESENCE_FILE), &text)
}

/// Write `bytes` to a temporary file next to `path`, flush it to disk, and rename it over
/// `path`: readers see the old or the new content, never a mix.
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        format!("write {}: {e}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_attempts_count_down_lock_and_reset() {
        let mut pin = PinRecord::new(b"123456", 3, true);
        assert!(pin.default_pin);
        assert_eq!(pin.attempt(b"000000"), Attempt::Incorrect(2));
        assert_eq!(pin.attempt(b"123456"), Attempt::Ok);
        assert_eq!(pin.remaining, 3);
        assert_eq!(pin.attempt(b"000000"), Attempt::Incorrect(2));
        assert_eq!(pin.attempt(b"000000"), Attempt::Incorrect(1));
        assert_eq!(pin.attempt(b"000000"), Attempt::LockedNow);
        assert!(pin.locked);
        assert_eq!(pin.attempt(b"123456"), Attempt::AlreadyLocked);
        pin.set(b"654321");
        assert!(!pin.locked && !pin.default_pin && pin.remaining == 3);
        assert_eq!(pin.attempt(b"654321"), Attempt::Ok);
    }

    #[test]
    fn names_round_trip_utf8_and_not() {
        let names = vec![Name(b"plain".to_vec()), Name(vec![0xc4, 0xe3, 0xba, 0xc3])];
        let json = serde_json::to_string(&names).unwrap();
        assert_eq!(json, r#"["plain",{"hex":"c4e3bac3"}]"#);
        let back: Vec<Name> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, names);
    }

    #[test]
    fn provisions_once_and_persists() {
        let dir = std::env::temp_dir().join(format!("softskf-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(PROVISION_FILE),
            r#"
[[device]]
name = "DEV-A"
[[device.application]]
name = "APP"
user_pin = "123456"
admin_pin = "12345678"
user_retries = 5
[[device]]
name_hex = "c4e3bac3"
present = false
"#,
        )
        .unwrap();
        let store = Store::new(dir.clone());
        let n = store
            .with(|s| {
                let app = &mut s.devices[0].applications[0];
                assert_eq!(app.user_pin.attempt(b"999999"), Attempt::Incorrect(4));
                (s.devices.len(), true)
            })
            .unwrap();
        assert_eq!(n, 2);
        // Provisioning does not run again: the counter stays where it was.
        let left = store.with(|s| (s.devices[0].applications[0].user_pin.remaining, false));
        assert_eq!(left.unwrap(), 4);
        assert_eq!(
            store.presence().unwrap().into_iter().collect::<Vec<_>>(),
            vec![b"DEV-A".to_vec()]
        );
        assert_eq!(
            store
                .with(|s| (s.devices[1].name.0.clone(), false))
                .unwrap(),
            vec![0xc4, 0xe3, 0xba, 0xc3]
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn provisioning_errors_are_specific() {
        let dir = std::env::temp_dir().join(format!("softskf-store-bad-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        fs::write(
            dir.join(PROVISION_FILE),
            "[[device]]\nname = \"D\"\n[[device.application]]\nname = \"A\"\nuser_pin = \"12\"\nadmin_pin = \"12345678\"\n",
        )
        .unwrap();
        let err = Store::new(dir.clone()).with(|_| ((), false)).unwrap_err();
        assert!(err.contains("user_pin must be 6..=16 bytes"), "{err}");
        fs::remove_dir_all(&dir).unwrap();
    }
}
