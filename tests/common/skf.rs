//! softskf: the test-only SKF library (tests/softskf), a STAND-IN for the GM/T 0016 USB keys
//! that cannot be plugged into CI. This module provisions it, plugs and unplugs its keys,
//! and reads its counters; like the rest of the harness it drives external programs (OpenSSL,
//! gcc) and never calls the certray library.
//!
//! - [`library`] / [`variant`]: the built `.so` files. `tests/softskf/build.sh` builds them
//!   (`scripts/test` runs it); a missing or stale one fails naming that script.
//! - [`SoftSkf`]: a device in a temp dir, provisioned with keys from `openssl genpkey` and
//!   self-signed certificates from `openssl req` (SM2 with `-sm3 -sigopt distid:…`). Set
//!   [`SoftSkf::env`] (`SOFTSKF_DIR`) on the process that loads the library.
//! - [`sm2_e`]: Z (default ID) and e = SM3(Z‖M) computed on the host, for `SKF_ECCSignData`.
//! - [`run_child`] / [`spawn_child`]: softskf is configured by the environment of the process
//!   that loads it, so a test loads it in a child: the test binary re-runs the same test with
//!   a role ([`child_role`]), and the child reports `@@ key value` lines ([`emit`]).
//!
//! Provisioning format (`SOFTSKF_DIR/provision.toml`, turned into `state.json` on first use;
//! tests/softskf/README.md has every field):
//! ```toml
//! [[device]]
//! name = "SOFTSKF-01"
//! [[device.application]]
//! name = "CERTRAY-APP"
//! user_pin = "123456"
//! admin_pin = "12345678"
//! user_retries = 6
//! [[device.application.container]]
//! name = "SM2-SIGN"
//! sign_key = "SM2-SIGN.sign.key"    # PKCS#8 PEM from openssl genpkey
//! sign_cert = "SM2-SIGN.sign.crt"   # PEM or DER
//! ```

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use super::{openssl, output_text, require, run, run_unchecked};

/// The default SM2 user ID.
pub const SM2_ID: &str = "1234567812345678";

// ---------------------------------------------------------------------------------------------
// The built library
// ---------------------------------------------------------------------------------------------

const BUILD_HINT: &str = "build it with tests/softskf/build.sh (scripts/test runs it)";

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("target"),
    }
}

/// tests/softskf, where the sources are.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/softskf")
}

fn newest_source() -> SystemTime {
    let dir = source_dir();
    let mut files = vec![dir.join("Cargo.toml"), dir.join("build.rs")];
    files.extend(
        fs::read_dir(dir.join("src"))
            .expect("tests/softskf/src")
            .map(|e| e.expect("dir entry").path()),
    );
    files
        .iter()
        .map(|f| fs::metadata(f).and_then(|m| m.modified()).expect("mtime"))
        .max()
        .expect("sources")
}

fn checked(lib: PathBuf) -> PathBuf {
    let built = fs::metadata(&lib)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| panic!("{} not found: {BUILD_HINT}", lib.display()));
    if built < newest_source() {
        panic!(
            "{} is older than its sources in tests/softskf: {BUILD_HINT}",
            lib.display()
        );
    }
    lib
}

/// The full softskf library, `target/debug/libsoftskf.so`.
pub fn library() -> PathBuf {
    checked(target_dir().join("debug/libsoftskf.so"))
}

/// A variant built by tests/softskf/build.sh: `minimal` (no optional exports) or
/// `no-ecc-sign` (everything but `SKF_ECCSignData`).
pub fn variant(name: &str) -> PathBuf {
    checked(
        target_dir()
            .join("softskf")
            .join(name)
            .join("libsoftskf.so"),
    )
}

/// Compile one of tests/softskf/c/*.c against the spec header with gcc.
pub fn compile_c(source: &str, out_dir: &Path) -> PathBuf {
    let gcc = require("gcc", "build-essential");
    let dir = source_dir();
    let out = out_dir.join(source.trim_end_matches(".c"));
    run(Command::new(gcc)
        .args(["-std=gnu11", "-Wall", "-Wextra", "-Werror", "-I"])
        .arg(dir.join("include"))
        .arg(dir.join("c").join(source))
        .arg("-o")
        .arg(&out)
        .arg("-ldl"));
    out
}

// ---------------------------------------------------------------------------------------------
// Provisioning
// ---------------------------------------------------------------------------------------------

/// The kind of key a container holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Sm2,
    Rsa2048,
}

#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// The name, and the stem of its key and certificate files.
    pub name: String,
    /// The name as the library spells it, when not `name` in UTF-8 (a GBK name).
    pub name_bytes: Option<Vec<u8>>,
    pub kind: KeyKind,
    /// Also an encryption key pair and certificate.
    pub enc: bool,
}

impl ContainerSpec {
    pub fn sm2(name: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            name_bytes: None,
            kind: KeyKind::Sm2,
            enc: false,
        }
    }

    pub fn rsa(name: &str) -> ContainerSpec {
        ContainerSpec {
            name: name.into(),
            name_bytes: None,
            kind: KeyKind::Rsa2048,
            enc: false,
        }
    }

    pub fn with_enc(mut self) -> ContainerSpec {
        self.enc = true;
        self
    }

    /// The library spells the name as these bytes (`name` still names the files).
    pub fn spelled(mut self, bytes: &[u8]) -> ContainerSpec {
        self.name_bytes = Some(bytes.to_vec());
        self
    }
}

#[derive(Debug, Clone)]
pub struct AppSpec {
    pub name: String,
    pub user_pin: String,
    pub admin_pin: String,
    pub user_retries: u32,
    pub admin_retries: u32,
    pub user_pin_is_default: bool,
    pub containers: Vec<ContainerSpec>,
}

impl AppSpec {
    /// User PIN 123456 (6 tries), admin PIN 12345678 (10 tries).
    pub fn new(name: &str) -> AppSpec {
        AppSpec {
            name: name.into(),
            user_pin: "123456".into(),
            admin_pin: "12345678".into(),
            user_retries: 6,
            admin_retries: 10,
            user_pin_is_default: false,
            containers: Vec::new(),
        }
    }

    pub fn container(mut self, c: ContainerSpec) -> AppSpec {
        self.containers.push(c);
        self
    }
}

#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub name: String,
    pub present: bool,
    pub apps: Vec<AppSpec>,
}

impl DeviceSpec {
    pub fn new(name: &str) -> DeviceSpec {
        DeviceSpec {
            name: name.into(),
            present: true,
            apps: Vec::new(),
        }
    }

    pub fn app(mut self, a: AppSpec) -> DeviceSpec {
        self.apps.push(a);
        self
    }
}

/// The names [`SoftSkf::standard`] uses.
pub const DEVICE: &str = "SOFTSKF-01";
pub const APP: &str = "CERTRAY-APP";
pub const SM2_CONTAINER: &str = "SM2-SIGN";
pub const RSA_CONTAINER: &str = "RSA-SIGN";

/// A provisioned softskf state directory (deleted on drop).
pub struct SoftSkf {
    dir: tempfile::TempDir,
    devices: Vec<DeviceSpec>,
}

fn quote(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

impl SoftSkf {
    /// One device [`DEVICE`] with application [`APP`] (user PIN 123456, 6 tries; admin PIN
    /// 12345678, 10 tries) holding an SM2 signing container [`SM2_CONTAINER`].
    pub fn standard() -> SoftSkf {
        SoftSkf::new(vec![
            DeviceSpec::new(DEVICE)
                .app(AppSpec::new(APP).container(ContainerSpec::sm2(SM2_CONTAINER))),
        ])
    }

    /// Generate the keys and certificates with OpenSSL and write `provision.toml`.
    pub fn new(devices: Vec<DeviceSpec>) -> SoftSkf {
        require("openssl", "openssl");
        let dir = tempfile::Builder::new()
            .prefix("softskf-")
            .tempdir()
            .expect("tempdir");
        let mut toml = String::from("# softskf provisioning written by tests/common/skf.rs\n");
        for d in &devices {
            writeln!(
                toml,
                "\n[[device]]\nname = {}\npresent = {}",
                quote(&d.name),
                d.present
            )
            .unwrap();
            for a in &d.apps {
                writeln!(
                    toml,
                    "\n[[device.application]]\nname = {}\nuser_pin = {}\nadmin_pin = {}\nuser_retries = {}\nadmin_retries = {}\nuser_pin_is_default = {}",
                    quote(&a.name),
                    quote(&a.user_pin),
                    quote(&a.admin_pin),
                    a.user_retries,
                    a.admin_retries,
                    a.user_pin_is_default
                )
                .unwrap();
                for c in &a.containers {
                    let name = match &c.name_bytes {
                        Some(b) => format!("name_hex = {}", quote(&hex::encode(b))),
                        None => format!("name = {}", quote(&c.name)),
                    };
                    writeln!(toml, "\n[[device.application.container]]\n{name}").unwrap();
                    let mut usages = vec!["sign"];
                    if c.enc {
                        usages.push("enc");
                    }
                    for usage in usages {
                        let (key, cert) = make_key_and_cert(dir.path(), &c.name, usage, c.kind);
                        writeln!(
                            toml,
                            "{usage}_key = {}\n{usage}_cert = {}",
                            quote(&key),
                            quote(&cert)
                        )
                        .unwrap();
                    }
                }
            }
        }
        fs::write(dir.path().join("provision.toml"), toml).expect("write provision.toml");
        SoftSkf { dir, devices }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn devices(&self) -> &[DeviceSpec] {
        &self.devices
    }

    /// `SOFTSKF_DIR` for the process that loads softskf.
    pub fn env(&self) -> Vec<(&'static str, OsString)> {
        vec![("SOFTSKF_DIR", self.dir().as_os_str().to_owned())]
    }

    /// A provisioning file of the container, e.g. `file("SM2-SIGN", "sign.der")`.
    pub fn file(&self, container: &str, what: &str) -> PathBuf {
        let p = self.dir().join(format!("{container}.{what}"));
        assert!(p.exists(), "{} was not made", p.display());
        p
    }

    /// The DER certificate provisioned for `container` (`sign` or `enc`).
    pub fn cert_der(&self, container: &str, usage: &str) -> Vec<u8> {
        fs::read(self.file(container, &format!("{usage}.der"))).expect("read cert")
    }

    /// The uncompressed SM2 point 04‖x‖y of `container`'s signing key.
    pub fn sm2_public_point(&self, container: &str) -> Vec<u8> {
        let out = openssl(&[
            OsStr::new("pkey"),
            OsStr::new("-in"),
            self.file(container, "sign.key").as_os_str(),
            OsStr::new("-pubout"),
            OsStr::new("-outform"),
            OsStr::new("DER"),
        ]);
        // SubjectPublicKeyInfo ends with the BIT STRING's 65-byte point.
        let der = out.stdout;
        assert!(
            der.len() > 65 && der[der.len() - 65] == 4,
            "not an SM2 SPKI"
        );
        der[der.len() - 65..].to_vec()
    }

    /// Plug in (`true`) or pull out a device: rewrites `presence` by rename, which softskf
    /// sees through inotify in every process that loaded it.
    pub fn set_present(&self, device: &str, present: bool) {
        set_present_in(self.dir(), device, present);
    }

    /// The devices `presence` lists.
    pub fn present(&self) -> BTreeSet<String> {
        present_in(self.dir())
    }

    /// The PIN counters of `app` on `device`, from `state.json` (None before first use).
    pub fn pin_counters(&self, device: &str, app: &str) -> Option<PinCounters> {
        pin_counters_in(self.dir(), device, app)
    }

    /// How many times `function` (e.g. `SKF_WaitForDevEvent`) was entered, all processes.
    pub fn calls(&self, function: &str) -> usize {
        let needle = format!(" enter {function}");
        self.call_log()
            .lines()
            .filter(|l| l.ends_with(&needle))
            .count()
    }

    /// `calls.log`: `<ms> <pid> <tid> enter|exit NAME [rc]`.
    pub fn call_log(&self) -> String {
        fs::read_to_string(self.dir().join("calls.log")).unwrap_or_default()
    }
}

fn make_key_and_cert(dir: &Path, container: &str, usage: &str, kind: KeyKind) -> (String, String) {
    let key = format!("{container}.{usage}.key");
    let cert = format!("{container}.{usage}.crt");
    let der = format!("{container}.{usage}.der");
    let subject = format!("/CN={container} {usage} 测试证书/O=certray 测试 (softskf stand-in key)");
    let mut genpkey = Command::new(require("openssl", "openssl"));
    genpkey
        .current_dir(dir)
        .args(["genpkey", "-out", &key, "-algorithm"]);
    let mut req = Command::new(require("openssl", "openssl"));
    req.current_dir(dir)
        .args([
            "req", "-new", "-x509", "-utf8", "-days", "3650", "-key", &key, "-out", &cert,
        ])
        .args(["-subj", &subject]);
    match kind {
        KeyKind::Sm2 => {
            genpkey.args(["EC", "-pkeyopt", "ec_paramgen_curve:SM2"]);
            req.args(["-sm3", "-sigopt", &format!("distid:{SM2_ID}")]);
        }
        KeyKind::Rsa2048 => {
            genpkey.args(["RSA", "-pkeyopt", "rsa_keygen_bits:2048"]);
            req.arg("-sha256");
        }
    }
    run(&mut genpkey);
    run(&mut req);
    run(Command::new(require("openssl", "openssl"))
        .current_dir(dir)
        .args(["x509", "-in", &cert, "-outform", "DER", "-out", &der]));
    (key, cert)
}

/// [`SoftSkf::set_present`] for a directory (e.g. `SOFTSKF_DIR` inside a child).
pub fn set_present_in(dir: &Path, device: &str, present: bool) {
    let mut names = present_in(dir);
    if present {
        names.insert(device.to_string());
    } else {
        names.remove(device);
    }
    let text: String = names.iter().map(|n| format!("{n}\n")).collect();
    let tmp = dir.join(format!("presence.{}.tmp", std::process::id()));
    fs::write(&tmp, text).expect("write presence");
    fs::rename(&tmp, dir.join("presence")).expect("rename presence");
}

pub fn present_in(dir: &Path) -> BTreeSet<String> {
    fs::read_to_string(dir.join("presence"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// One PIN's state as softskf stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinCounter {
    pub max_retries: u32,
    pub remaining: u32,
    pub default_pin: bool,
    pub locked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PinCounters {
    pub user: PinCounter,
    pub admin: PinCounter,
}

pub fn pin_counters_in(dir: &Path, device: &str, app: &str) -> Option<PinCounters> {
    let text = fs::read_to_string(dir.join("state.json")).ok()?;
    let state: serde_json::Value = serde_json::from_str(&text).expect("state.json is JSON");
    let app = state["devices"]
        .as_array()?
        .iter()
        .find(|d| d["name"] == device)?["applications"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == app)?
        .clone();
    let counter = |v: &serde_json::Value| PinCounter {
        max_retries: v["max_retries"].as_u64().expect("max_retries") as u32,
        remaining: v["remaining"].as_u64().expect("remaining") as u32,
        default_pin: v["default_pin"].as_bool().expect("default_pin"),
        locked: v["locked"].as_bool().expect("locked"),
    };
    Some(PinCounters {
        user: counter(&app["user_pin"]),
        admin: counter(&app["admin_pin"]),
    })
}

// ---------------------------------------------------------------------------------------------
// SM2 on the host
// ---------------------------------------------------------------------------------------------

/// Z = SM3(ENTL‖ID‖a‖b‖xG‖yG‖xA‖yA) for the uncompressed point 04‖xA‖yA, with the
/// curve constants of GM/T 0003.5 (GB/T 32918.5).
pub fn sm2_z(point: &[u8], id: &[u8]) -> [u8; 32] {
    use sm3::Digest as _;
    const A: &str = "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC";
    const B: &str = "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93";
    const XG: &str = "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7";
    const YG: &str = "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0";
    assert_eq!(point.len(), 65, "uncompressed point");
    let mut h = sm3::Sm3::new();
    h.update(((id.len() * 8) as u16).to_be_bytes());
    h.update(id);
    for c in [A, B, XG, YG] {
        h.update(hex::decode(c).expect("hex"));
    }
    h.update(&point[1..]);
    h.finalize().into()
}

/// e = SM3(Z‖M) with the default ID: what `SKF_ECCSignData` takes.
pub fn sm2_e(point: &[u8], message: &[u8]) -> [u8; 32] {
    use sm3::Digest as _;
    sm3::Sm3::new()
        .chain_update(sm2_z(point, SM2_ID.as_bytes()))
        .chain_update(message)
        .finalize()
        .into()
}

/// OpenSSL 3 verifies an SM2 signature (DER) over `message` with the certificate's key and
/// the default ID (`pkeyutl -verify -rawin -digest sm3 -pkeyopt distid:…`). Returns whether
/// it did, and OpenSSL's output.
pub fn openssl_sm2_verify(cert_der: &[u8], message: &[u8], sig_der: &[u8]) -> (bool, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, pubkey, msg, sig) = (
        dir.path().join("cert.der"),
        dir.path().join("pub.pem"),
        dir.path().join("msg"),
        dir.path().join("sig.der"),
    );
    fs::write(&cert, cert_der).expect("write");
    fs::write(&msg, message).expect("write");
    fs::write(&sig, sig_der).expect("write");
    openssl(&[
        OsStr::new("x509"),
        OsStr::new("-inform"),
        OsStr::new("DER"),
        OsStr::new("-in"),
        cert.as_os_str(),
        OsStr::new("-noout"),
        OsStr::new("-pubkey"),
        OsStr::new("-out"),
        pubkey.as_os_str(),
    ]);
    let out = run_unchecked(
        Command::new(require("openssl", "openssl"))
            .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
            .arg(&pubkey)
            .args(["-rawin", "-digest", "sm3", "-in"])
            .arg(&msg)
            .arg("-sigfile")
            .arg(&sig)
            .args(["-pkeyopt", &format!("distid:{SM2_ID}")]),
    );
    let text = output_text(&out);
    (
        out.status.success() && text.contains("Signature Verified Successfully"),
        text,
    )
}

// ---------------------------------------------------------------------------------------------
// Children: the test binary re-running one test with a role
// ---------------------------------------------------------------------------------------------

const ROLE_ENV: &str = "CERTRAY_SKF_CHILD_ROLE";

/// In a child started by [`run_child`]/[`spawn_child`]: its role; `None` in the parent.
pub fn child_role() -> Option<String> {
    std::env::var(ROLE_ENV).ok()
}

/// Report a result to the parent.
pub fn emit(key: &str, value: impl std::fmt::Display) {
    println!("@@ {key} {value}");
}

/// The `key value` of a report line; libtest may have printed "test NAME ... " before it on
/// the same line.
fn report_line(line: &str) -> Option<(String, String)> {
    let l = &line[line.find("@@ ")? + 3..];
    let (k, v) = l.split_once(' ').unwrap_or((l, ""));
    Some((k.to_string(), v.to_string()))
}

/// The `@@ key value` lines of a child.
pub struct ChildReport {
    pub lines: Vec<(String, String)>,
    pub output: String,
}

impl ChildReport {
    fn parse(text: &str) -> ChildReport {
        let lines = text.lines().filter_map(report_line).collect();
        ChildReport {
            lines,
            output: text.to_string(),
        }
    }

    /// The value of the only (or first) line `key`; panics with the output if absent.
    pub fn get(&self, key: &str) -> &str {
        self.lines
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("child reported no {key:?}:\n{}", self.output))
    }

    pub fn all(&self, key: &str) -> Vec<&str> {
        self.lines
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

fn child_command(test: &str, role: &str, env: &[(&str, OsString)]) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("current_exe"));
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env_remove("SOFTSKF_QUIRKS")
        .env_remove("SOFTSKF_FAULT")
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdin(Stdio::null());
    cmd
}

/// Run test `test` of this binary again as `role`, with `env`; panics unless it passes.
pub fn run_child(test: &str, role: &str, env: &[(&str, OsString)]) -> ChildReport {
    let out = run_child_unchecked(test, role, env);
    let report = ChildReport::parse(&output_text(&out));
    assert!(
        out.status.success(),
        "child {test} as {role} failed ({}):\n{}",
        out.status,
        report.output
    );
    report
}

/// The same, whatever the outcome (for children meant to crash).
pub fn run_child_unchecked(test: &str, role: &str, env: &[(&str, OsString)]) -> Output {
    run_unchecked(&mut child_command(test, role, env))
}

/// A spawned child, killed if the test fails before it ends.
pub struct ChildGuard(pub Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Start test `test` as `role`; its `@@ key value` lines arrive on the channel as they are
/// printed.
pub fn spawn_child(
    test: &str,
    role: &str,
    env: &[(&str, OsString)],
) -> (ChildGuard, mpsc::Receiver<(String, String)>) {
    let mut child = child_command(test, role, env)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(kv) = report_line(&line) {
                let _ = tx.send(kv);
            }
        }
    });
    (ChildGuard(child), rx)
}

/// The next report line of a spawned child, which must be `key`, within `timeout`.
pub fn expect_line(rx: &mpsc::Receiver<(String, String)>, key: &str, timeout: Duration) -> String {
    match rx.recv_timeout(timeout) {
        Ok((k, v)) if k == key => v,
        Ok((k, v)) => panic!("child reported {k} {v}, expected {key}"),
        Err(_) => panic!("child did not report {key} within {timeout:?}"),
    }
}
