//! Test harness for the integration tests (`tests/*.rs` that say `mod common;`).
//!
//! It drives external programs only (SoftHSM2, OpenSC's `pkcs11-tool`, opencryptoki, OpenSSL,
//! python3) and never calls the certray library, so it compiles on its own.
//!
//! A missing tool is a test FAILURE, never a silent skip: every entry point panics with the
//! Debian package to install ("… not found: apt-get install <package>"). `scripts/test`
//! installs all of them.
//!
//! Every command runs with stdin closed (so a PIN prompt can never hang a test), and its exit
//! status is checked: a failure panics with the command line, its stdout and its stderr.
//!
//! Quirks found on Debian 12 (SoftHSM 2.6.1, OpenSC 0.23 `pkcs11-tool`, opencryptoki 3.8.1):
//! - `pkcs11-tool --write-object F --type cert` parses F with OpenSSL and refuses anything
//!   that is not a certificate ("error: OpenSSL error during X509 certificate parsing"), so
//!   [`SoftHsm::write_raw_cert`] creates the object with a small python3/ctypes script
//!   ([`RAW_CERT_PY`]) that calls `C_CreateObject` directly.
//! - `pkcs11-tool` cannot import SM2 keys ("error: Unsupported key type: 0x0"); SoftHSM has no
//!   SM2 anyway. SM2 *certificates* import fine (`--type cert`).
//! - SoftHSM never locks a PIN (wrong PINs only set "user PIN count low"); use opencryptoki.
//! - opencryptoki 3.8.1's soft token has NO elliptic-curve mechanisms at all (no
//!   `EC:prime256v1` keygen: "Generate EC key mechanism 1040 not supported", no CKM_ECDSA) and
//!   no CKM_SHA256_RSA_PKCS (only MD5/SHA1-RSA-PKCS, the *-RSA-PKCS-PSS ones and raw
//!   RSA-PKCS). EC keys can be imported but not used. Use RSA keys with CKM_RSA_PKCS there.
//! - opencryptoki PIN flags as printed by `pkcs11-tool -T` ("token flags" line): after wrong
//!   user PIN 1 "user PIN count low", 2 "final user PIN try", 3 "user PIN locked" (C_Login then
//!   returns CKR_PIN_LOCKED (0xa4)); the lock survives a pkcsslotd restart; `--init-pin
//!   --so-pin …` (C_Login(SO) + C_InitPIN) unlocks. The SO PIN locks the same way ("SO PIN
//!   count low", "final SO PIN try", "SO PIN locked") after wrong SO logins, and then even
//!   C_InitToken fails with CKR_PIN_LOCKED: [`Opencryptoki::reset_token`] then wipes the token
//!   store. A wrong SO PIN given to C_InitToken itself is not counted.
//! - opencryptoki PIN length is 4..=8 (CKR_PIN_LEN_RANGE otherwise; "pin min/max : 4/8").
//! - A freshly (re)initialised opencryptoki token shows "user PIN to be changed" until
//!   `--init-pin`, and always "SO PIN to be changed" while the SO PIN is the default 87654321.

#![allow(dead_code)]

pub mod bridge;
pub mod desktop;
pub mod pcsc;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Finding tools
// ---------------------------------------------------------------------------------------------

/// Find `program` on PATH (or, given an absolute path, check that it exists). Also looks in
/// `/usr/sbin` and `/sbin`, which a non-login PATH may lack (`pkcsslotd` lives there).
///
/// Panics with "`program` not found: apt-get install `package`" when it is missing.
pub fn require(program: &str, package: &str) -> PathBuf {
    let p = Path::new(program);
    if p.is_absolute() {
        if is_executable(p) {
            return p.to_path_buf();
        }
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let extra = [PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")];
        for dir in std::env::split_paths(&path).chain(extra) {
            let candidate = dir.join(program);
            if is_executable(&candidate) {
                return candidate;
            }
        }
    }
    panic!("{program} not found: apt-get install {package}");
}

/// Check that a file (a PKCS#11 module, say) exists; panics naming the package otherwise.
pub fn require_file(path: &Path, package: &str) -> PathBuf {
    if !path.is_file() {
        panic!("{} not found: apt-get install {package}", path.display());
    }
    path.to_path_buf()
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// SoftHSM2's PKCS#11 module on Debian (package `softhsm2`).
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";

/// [`SOFTHSM_MODULE`], after checking that it exists (panics naming `softhsm2` otherwise).
pub fn softhsm_module() -> PathBuf {
    require_file(Path::new(SOFTHSM_MODULE), "softhsm2")
}

/// `pkcs11-tool` (package `opensc`).
pub fn pkcs11_tool() -> PathBuf {
    require("pkcs11-tool", "opensc")
}

// ---------------------------------------------------------------------------------------------
// Running commands
// ---------------------------------------------------------------------------------------------

/// Run `cmd` with stdin closed and output captured; panic with the command line, stdout and
/// stderr unless it exits with status 0.
pub fn run(cmd: &mut Command) -> Output {
    let out = run_unchecked(cmd);
    if !out.status.success() {
        panic!(
            "command failed ({}): {cmd:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

/// Run `cmd` with stdin closed and output captured, whatever its exit status (for commands
/// that are expected to fail, like a login with a wrong PIN). Panics only if it cannot start.
pub fn run_unchecked(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// stdout and stderr of an [`Output`], as one lossy string (for assertions and messages).
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `openssl ARGS…` (package `openssl`), status checked.
pub fn openssl<S: AsRef<OsStr>>(args: &[S]) -> Output {
    run(Command::new(require("openssl", "openssl")).args(args))
}

/// `pkcs11-tool --module MODULE ARGS…` with extra environment, status checked.
pub fn pkcs11_tool_run<S: AsRef<OsStr>>(
    module: &Path,
    env: &[(&str, OsString)],
    args: &[S],
) -> Output {
    run(&mut pkcs11_tool_cmd(module, env, args))
}

/// The same command, not run yet (use with [`run_unchecked`] when it is meant to fail).
pub fn pkcs11_tool_cmd<S: AsRef<OsStr>>(
    module: &Path,
    env: &[(&str, OsString)],
    args: &[S],
) -> Command {
    let mut cmd = Command::new(pkcs11_tool());
    cmd.arg("--module").arg(module).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

// ---------------------------------------------------------------------------------------------
// Operations shared by SoftHSM and opencryptoki
// ---------------------------------------------------------------------------------------------

/// How `pkcs11-tool` and the raw-certificate script pick the token.
#[derive(Clone, Copy)]
enum Select<'a> {
    Label(&'a str),
    SlotId(u64),
}

impl Select<'_> {
    fn tool_args(&self) -> Vec<String> {
        match self {
            Select::Label(l) => vec!["--token-label".into(), (*l).into()],
            Select::SlotId(s) => vec!["--slot".into(), s.to_string()],
        }
    }

    fn script_arg(&self) -> String {
        match self {
            Select::Label(l) => format!("label:{l}"),
            Select::SlotId(s) => format!("slot:{s}"),
        }
    }
}

fn tool_with_login(
    module: &Path,
    env: &[(&str, OsString)],
    sel: Select<'_>,
    pin: &str,
    rest: &[&OsStr],
) -> Output {
    let mut args: Vec<OsString> = sel.tool_args().into_iter().map(OsString::from).collect();
    args.extend(["-l", "--pin", pin].map(OsString::from));
    args.extend(rest.iter().map(|s| s.to_os_string()));
    pkcs11_tool_run(module, env, &args)
}

#[allow(clippy::too_many_arguments)]
fn import_objects(
    module: &Path,
    env: &[(&str, OsString)],
    sel: Select<'_>,
    scratch: &Path,
    pin: &str,
    id_hex: &str,
    cert_der: Option<&Path>,
    key_pkcs8_der: Option<&Path>,
    obj_label: &str,
) {
    assert!(
        cert_der.is_some() || key_pkcs8_der.is_some(),
        "import needs a certificate, a key or both"
    );
    let write = |file: &Path, ty: &str| {
        tool_with_login(
            module,
            env,
            sel,
            pin,
            &[
                "--write-object".as_ref(),
                file.as_os_str(),
                "--type".as_ref(),
                ty.as_ref(),
                "--id".as_ref(),
                id_hex.as_ref(),
                "--label".as_ref(),
                obj_label.as_ref(),
            ],
        );
    };
    if let Some(key) = key_pkcs8_der {
        write(key, "privkey");
        // The public key too, as a token holds it: DER SubjectPublicKeyInfo.
        let spki = scratch.join(format!("pub-{id_hex}-{}.der", unique()));
        openssl(&[
            OsStr::new("pkey"),
            OsStr::new("-inform"),
            OsStr::new("DER"),
            OsStr::new("-in"),
            key.as_os_str(),
            OsStr::new("-pubout"),
            OsStr::new("-outform"),
            OsStr::new("DER"),
            OsStr::new("-out"),
            spki.as_os_str(),
        ]);
        write(&spki, "pubkey");
        let _ = fs::remove_file(&spki);
    }
    if let Some(cert) = cert_der {
        write(cert, "cert");
    }
}

fn keygen_pair(
    module: &Path,
    env: &[(&str, OsString)],
    sel: Select<'_>,
    pin: &str,
    key_type: &str,
    id_hex: &str,
    obj_label: &str,
) -> Output {
    tool_with_login(
        module,
        env,
        sel,
        pin,
        &[
            "--keypairgen".as_ref(),
            "--key-type".as_ref(),
            key_type.as_ref(),
            "--id".as_ref(),
            id_hex.as_ref(),
            "--label".as_ref(),
            obj_label.as_ref(),
        ],
    )
}

#[allow(clippy::too_many_arguments)]
fn raw_cert(
    module: &Path,
    env: &[(&str, OsString)],
    sel: Select<'_>,
    scratch: &Path,
    pin: &str,
    id_hex: &str,
    bytes: &[u8],
    obj_label: &str,
) {
    let python = require("python3", "python3");
    let n = unique();
    let script = scratch.join(format!("p11_raw_cert-{n}.py"));
    let value = scratch.join(format!("raw-cert-{n}.bin"));
    fs::write(&script, RAW_CERT_PY).expect("write python script");
    fs::write(&value, bytes).expect("write certificate bytes");
    let mut cmd = Command::new(python);
    cmd.arg(&script)
        .arg(module)
        .arg(sel.script_arg())
        .arg(pin)
        .arg(id_hex)
        .arg(obj_label)
        .arg(&value);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd);
    let _ = fs::remove_file(&script);
    let _ = fs::remove_file(&value);
}

fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn write_config(path: &Path, module: &Path) -> PathBuf {
    let module = module.to_str().expect("module path is UTF-8");
    assert!(
        !module.contains(['"', '\\']),
        "module path needs TOML escaping: {module}"
    );
    let text = format!("[pkcs11]\nmodules = [\"{module}\"]\nuse_defaults = false\n");
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_path_buf()
}

/// python3 (standard library only) script that stores arbitrary bytes as an X.509
/// certificate object, because `pkcs11-tool --type cert` refuses non-certificates.
///
/// `python3 p11_raw_cert.py MODULE (label:L|slot:N) PIN ID_HEX OBJ_LABEL FILE`
///
/// The object: CKO_CERTIFICATE, CKC_X_509, CKA_TOKEN true, CKA_PRIVATE false, CKA_VALUE the
/// bytes, CKA_SUBJECT an empty Name (30 00; SoftHSM and opencryptoki require a subject).
pub const RAW_CERT_PY: &str = r#"
import ctypes, sys

CK_ULONG = ctypes.c_ulong

class CK_ATTRIBUTE(ctypes.Structure):
    _fields_ = [("type", CK_ULONG), ("pValue", ctypes.c_void_p), ("ulValueLen", CK_ULONG)]

class CK_VERSION(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]

class CK_TOKEN_INFO(ctypes.Structure):
    _fields_ = [("label", ctypes.c_char * 32), ("manufacturerID", ctypes.c_char * 32),
                ("model", ctypes.c_char * 16), ("serialNumber", ctypes.c_char * 16),
                ("flags", CK_ULONG), ("counts", CK_ULONG * 10),
                ("hardwareVersion", CK_VERSION), ("firmwareVersion", CK_VERSION),
                ("utcTime", ctypes.c_char * 16)]

CKA_CLASS, CKA_TOKEN, CKA_PRIVATE, CKA_LABEL, CKA_VALUE = 0x0, 0x1, 0x2, 0x3, 0x11
CKA_CERTIFICATE_TYPE, CKA_SUBJECT, CKA_ID = 0x80, 0x101, 0x102
CKO_CERTIFICATE, CKC_X_509 = 1, 0
CKF_RW_SESSION, CKF_SERIAL_SESSION, CKU_USER = 0x2, 0x4, 1

module, select, pin, id_hex, obj_label, path = sys.argv[1:7]
value = open(path, "rb").read()
lib = ctypes.CDLL(module)

def call(name, *args):
    rv = getattr(lib, name)(*args)
    if rv != 0:
        sys.exit("%s failed: rv = 0x%x" % (name, rv & 0xffffffff))

call("C_Initialize", None)
count = CK_ULONG(0)
call("C_GetSlotList", ctypes.c_ubyte(1), None, ctypes.byref(count))
slots = (CK_ULONG * max(count.value, 1))()
call("C_GetSlotList", ctypes.c_ubyte(1), slots, ctypes.byref(count))
kind, _, want = select.partition(":")
slot = None
for i in range(count.value):
    if kind == "slot":
        if slots[i] == int(want):
            slot = CK_ULONG(slots[i])
            break
        continue
    info = CK_TOKEN_INFO()
    call("C_GetTokenInfo", CK_ULONG(slots[i]), ctypes.byref(info))
    if info.label.decode("utf-8", "replace").rstrip(" \0") == want:
        slot = CK_ULONG(slots[i])
        break
if slot is None:
    sys.exit("no token with %s" % select)

session = CK_ULONG(0)
call("C_OpenSession", slot, CK_ULONG(CKF_SERIAL_SESSION | CKF_RW_SESSION), None, None,
     ctypes.byref(session))
pin_b = pin.encode()
call("C_Login", session, CK_ULONG(CKU_USER), ctypes.c_char_p(pin_b), CK_ULONG(len(pin_b)))

keep = []
def attr(t, data):
    buf = ctypes.create_string_buffer(data, len(data))
    keep.append(buf)
    return CK_ATTRIBUTE(t, ctypes.cast(buf, ctypes.c_void_p), len(data))

def ulong(v):
    return v.to_bytes(ctypes.sizeof(CK_ULONG), sys.byteorder)

template = [
    attr(CKA_CLASS, ulong(CKO_CERTIFICATE)),
    attr(CKA_CERTIFICATE_TYPE, ulong(CKC_X_509)),
    attr(CKA_TOKEN, b"\x01"),
    attr(CKA_PRIVATE, b"\x00"),
    attr(CKA_LABEL, obj_label.encode()),
    attr(CKA_ID, bytes.fromhex(id_hex)),
    attr(CKA_SUBJECT, b"\x30\x00"),
    attr(CKA_VALUE, value),
]
arr = (CK_ATTRIBUTE * len(template))(*template)
handle = CK_ULONG(0)
call("C_CreateObject", session, arr, CK_ULONG(len(template)), ctypes.byref(handle))
call("C_Logout", session)
call("C_CloseSession", session)
call("C_Finalize", None)
"#;

// ---------------------------------------------------------------------------------------------
// SoftHSM2
// ---------------------------------------------------------------------------------------------

/// A private SoftHSM2 token store in a temporary directory (removed on drop).
///
/// Only processes given [`SoftHsm::env`] (`SOFTHSM2_CONF`) see its tokens. SoftHSM reads
/// `SOFTHSM2_CONF` at C_Initialize, and a process does not see tokens created by another
/// process after its own C_Initialize. SoftHSM never locks a PIN.
pub struct SoftHsm {
    dir: tempfile::TempDir,
    conf: PathBuf,
}

impl SoftHsm {
    /// A temp dir with `softhsm2.conf` (`directories.tokendir = <dir>/tokens`,
    /// `objectstore.backend = file`, `log.level = ERROR`) and an empty `tokens/`.
    pub fn new() -> SoftHsm {
        softhsm_module();
        require("softhsm2-util", "softhsm2");
        pkcs11_tool();
        let dir = tempfile::Builder::new()
            .prefix("certray-softhsm-")
            .tempdir()
            .expect("tempdir");
        let tokens = dir.path().join("tokens");
        fs::create_dir(&tokens).expect("mkdir tokens");
        let conf = dir.path().join("softhsm2.conf");
        fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .expect("write softhsm2.conf");
        SoftHsm { dir, conf }
    }

    /// The temporary directory (put scratch files here; it goes away with `self`).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `softhsm2.conf` file.
    pub fn conf(&self) -> &Path {
        &self.conf
    }

    /// The module path ([`SOFTHSM_MODULE`]).
    pub fn module(&self) -> PathBuf {
        PathBuf::from(SOFTHSM_MODULE)
    }

    /// The environment a process needs to see this store: `[("SOFTHSM2_CONF", conf)]`.
    /// Use with `Command::envs(hsm.env())`.
    pub fn env(&self) -> [(&'static str, OsString); 1] {
        [("SOFTHSM2_CONF", self.conf.clone().into_os_string())]
    }

    /// A `Command` for `program` with [`SoftHsm::env`] set.
    pub fn command<S: AsRef<OsStr>>(&self, program: S) -> Command {
        let mut cmd = Command::new(program);
        cmd.envs(self.env());
        cmd
    }

    /// `softhsm2-util --init-token --free --label L --so-pin S --pin P`.
    pub fn init_token(&self, label: &str, so_pin: &str, pin: &str) {
        let util = require("softhsm2-util", "softhsm2");
        run(self.command(util).args([
            "--init-token",
            "--free",
            "--label",
            label,
            "--so-pin",
            so_pin,
            "--pin",
            pin,
        ]));
    }

    /// Import into token `label`, all objects with CKA_ID `id_hex` and CKA_LABEL `obj_label`:
    /// the certificate (DER) and/or the private key (PKCS#8 DER) plus its public key (derived
    /// with `openssl pkey -pubout`, written as DER SPKI). RSA and EC keys work; SM2 keys do not
    /// (`pkcs11-tool`: "Unsupported key type: 0x0").
    pub fn import(
        &self,
        label: &str,
        pin: &str,
        id_hex: &str,
        cert_der: Option<&Path>,
        key_pkcs8_der: Option<&Path>,
        obj_label: &str,
    ) {
        import_objects(
            &self.module(),
            &self.env(),
            Select::Label(label),
            self.dir(),
            pin,
            id_hex,
            cert_der,
            key_pkcs8_der,
            obj_label,
        );
    }

    /// A token `label` holding the rsa-utf8 certificate (北京云杉) and its key, CKA_ID 01 and
    /// object label "rsa-utf8": the one key most tests need.
    pub fn rsa_utf8_token(&self, label: &str, so_pin: &str, pin: &str) {
        self.init_token(label, so_pin, pin);
        self.import(
            label,
            pin,
            "01",
            Some(&fixture("rsa-utf8.der")),
            Some(&fixture("rsa-utf8.key.der")),
            "rsa-utf8",
        );
    }

    /// Store arbitrary `bytes` (garbage, a truncated certificate, …) as an X.509 certificate
    /// object (through [`RAW_CERT_PY`], since `pkcs11-tool` refuses non-certificates).
    pub fn write_raw_cert(
        &self,
        label: &str,
        pin: &str,
        id_hex: &str,
        bytes: &[u8],
        obj_label: &str,
    ) {
        raw_cert(
            &self.module(),
            &self.env(),
            Select::Label(label),
            self.dir(),
            pin,
            id_hex,
            bytes,
            obj_label,
        );
    }

    /// Generate a key pair on the token: `key_type` as `pkcs11-tool --key-type` takes it
    /// (`rsa:2048`, `EC:prime256v1`, `EC:secp384r1`). Returns pkcs11-tool's output.
    pub fn keygen(
        &self,
        label: &str,
        pin: &str,
        key_type: &str,
        id_hex: &str,
        obj_label: &str,
    ) -> Output {
        keygen_pair(
            &self.module(),
            &self.env(),
            Select::Label(label),
            pin,
            key_type,
            id_hex,
            obj_label,
        )
    }

    /// `pkcs11-tool --token-label L [-l --pin P] --list-objects` stdout.
    pub fn list_objects(&self, label: &str, pin: Option<&str>) -> String {
        let mut args = vec!["--token-label", label];
        if let Some(pin) = pin {
            args.extend(["-l", "--pin", pin]);
        }
        args.push("--list-objects");
        let out = pkcs11_tool_run(&self.module(), &self.env(), &args);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `pkcs11-tool -T` (slots with a token, their flags) stdout.
    pub fn list_token_slots(&self) -> String {
        let out = pkcs11_tool_run(&self.module(), &self.env(), &["--list-token-slots"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Write `<dir>/certray.toml` that loads only SoftHSM and return its path:
    /// `[pkcs11] modules = ["/usr/lib/softhsm/libsofthsm2.so"] use_defaults = false`.
    /// certray must also get [`SoftHsm::env`] to see this store.
    pub fn config_file(&self) -> PathBuf {
        write_config(&self.dir().join("certray.toml"), &self.module())
    }
}

// ---------------------------------------------------------------------------------------------
// opencryptoki (a soft token that really locks PINs)
// ---------------------------------------------------------------------------------------------

/// The opencryptoki slot that holds the software token.
pub const OPENCRYPTOKI_SLOT: u64 = 3;
/// The SO PIN [`Opencryptoki::reset_token`] uses (opencryptoki's default). Keep it fixed:
/// re-initialising the token needs the current SO PIN.
pub const OPENCRYPTOKI_SO_PIN: &str = "87654321";
/// The module path on x86_64 Debian; [`Opencryptoki::setup`] finds the real one.
pub const OPENCRYPTOKI_MODULE: &str = "/usr/lib/x86_64-linux-gnu/pkcs11/libopencryptoki.so";

const OCK_CONF: &str = "/etc/opencryptoki/opencryptoki.conf";
const OCK_CONF_BACKUP: &str = "/etc/opencryptoki/opencryptoki.conf.certray-orig";
const OCK_CONF_TEXT: &str = "version opencryptoki-3.1\nslot 3\n{\nstdll = libpkcs11_sw.so\n}\n";
const OCK_SWTOK: &str = "/var/lib/opencryptoki/swtok";
const OCK_SOCKET: &str = "/var/run/pkcsslotd.socket";
const OCK_SHM: &str = "/dev/shm/var.lib.opencryptoki.swtok";
const OCK_LOG: &str = "/tmp/certray-pkcsslotd.log";

/// The system-wide opencryptoki soft token (slot 3), for PIN-lockout tests.
///
/// Needs root. There is one instance per machine: mark the tests
/// `#[serial_test::serial(opencryptoki)]`. (`cargo test` runs test binaries one after another,
/// so the key only has to be the same within one binary; a runner that runs binaries in
/// parallel, like nextest, must be told to serialise them.)
///
/// PIN lengths 4..=8. RSA only (see the module docs).
pub struct Opencryptoki {
    module: PathBuf,
}

impl Opencryptoki {
    /// Make the soft token usable, from any state, including a fresh `apt-get install
    /// opencryptoki` (whose postinst cannot start the daemon without an init system):
    /// - panics unless root;
    /// - creates group `pkcs11` if missing, and `/var/lib/opencryptoki/swtok/TOK_OBJ`,
    ///   `/var/lock/opencryptoki/swtok` (0770 root:pkcs11) if missing;
    /// - writes `/etc/opencryptoki/opencryptoki.conf` with only slot 3 (`libpkcs11_sw.so`) if
    ///   it differs, keeping the original once as `opencryptoki.conf.certray-orig`;
    /// - (re)starts `pkcsslotd` unless one is running with its socket (and restarts it when
    ///   the config changed);
    /// - checks that slot 3 is there.
    pub fn setup() -> Opencryptoki {
        assert_root();
        let module = find_opencryptoki_module();
        let slotd = require("pkcsslotd", "opencryptoki");
        pkcs11_tool();
        let gid = ensure_pkcs11_group();
        for d in [
            "/var/lib/opencryptoki",
            OCK_SWTOK,
            "/var/lib/opencryptoki/swtok/TOK_OBJ",
            "/var/lock/opencryptoki",
            "/var/lock/opencryptoki/swtok",
        ] {
            ensure_dir(Path::new(d), gid);
        }
        let conf_changed = ensure_conf();
        let running = slotd_pids();
        if conf_changed || (!running.is_empty() && !Path::new(OCK_SOCKET).exists()) {
            stop_slotd();
        }
        if slotd_pids().is_empty() {
            start_slotd(&slotd);
        }
        let ock = Opencryptoki { module };
        let slots = ock.list_slots();
        assert!(
            slots.contains(&format!("(0x{OPENCRYPTOKI_SLOT:x})")),
            "opencryptoki has no slot {OPENCRYPTOKI_SLOT}:\n{slots}"
        );
        ock
    }

    /// Put the machine back to the state right after `apt-get install opencryptoki` on a
    /// machine without an init system: pkcsslotd stopped, token store empty (not even
    /// `TOK_OBJ`), no `/var/lock/opencryptoki`, no shared memory, the package's config file
    /// back (from the `.certray-orig` backup). For the harness self-test; [`Opencryptoki::setup`]
    /// must recover from it.
    pub fn simulate_fresh_install() {
        assert_root();
        stop_slotd();
        if let Ok(entries) = fs::read_dir(OCK_SWTOK) {
            for entry in entries.flatten() {
                let p = entry.path();
                let res = if p.is_dir() {
                    fs::remove_dir_all(&p)
                } else {
                    fs::remove_file(&p)
                };
                res.unwrap_or_else(|e| panic!("remove {}: {e}", p.display()));
            }
        }
        let _ = fs::remove_dir_all("/var/lock/opencryptoki");
        let _ = fs::remove_file(OCK_SHM);
        let _ = fs::remove_file(OCK_SOCKET);
        if let Ok(orig) = fs::read_to_string(OCK_CONF_BACKUP) {
            fs::write(OCK_CONF, orig).expect("restore opencryptoki.conf");
        }
    }

    /// The module path found on this machine.
    pub fn module(&self) -> &Path {
        &self.module
    }

    /// C_InitPIN as the SO (`pkcs11-tool --init-pin`): sets the user PIN, which also unlocks
    /// a locked one.
    pub fn init_pin(&self, pin: &str) {
        let slot = OPENCRYPTOKI_SLOT.to_string();
        pkcs11_tool_run(
            &self.module,
            &[],
            &[
                "--slot",
                &slot,
                "--init-pin",
                "--so-pin",
                OPENCRYPTOKI_SO_PIN,
                "--pin",
                pin,
            ],
        );
    }

    /// Re-initialise the token in slot 3 from scratch: `--init-token --label L --so-pin
    /// 87654321`, then `--init-pin --so-pin 87654321 --pin P` (P: 4..=8 characters). All
    /// objects are gone and the user PIN is unlocked. If init-token fails (SO PIN locked or
    /// changed, broken store), wipes the token store and restarts pkcsslotd, then retries once.
    pub fn reset_token(&self, label: &str, pin: &str) {
        let slot = OPENCRYPTOKI_SLOT.to_string();
        let init = [
            "--slot",
            &slot,
            "--init-token",
            "--label",
            label,
            "--so-pin",
            OPENCRYPTOKI_SO_PIN,
        ];
        let first = run_unchecked(&mut pkcs11_tool_cmd(&self.module, &[], &init));
        if !first.status.success() {
            eprintln!(
                "opencryptoki init-token failed, wiping the token store: {}",
                output_text(&first).trim()
            );
            wipe_token_store();
            pkcs11_tool_run(&self.module, &[], &init);
        }
        self.init_pin(pin);
    }

    /// Like [`SoftHsm::import`], on slot 3. (EC keys import but the token cannot use them.)
    pub fn import(
        &self,
        pin: &str,
        id_hex: &str,
        cert_der: Option<&Path>,
        key_pkcs8_der: Option<&Path>,
        obj_label: &str,
    ) {
        let scratch = tempfile::tempdir().expect("tempdir");
        import_objects(
            &self.module,
            &[],
            Select::SlotId(OPENCRYPTOKI_SLOT),
            scratch.path(),
            pin,
            id_hex,
            cert_der,
            key_pkcs8_der,
            obj_label,
        );
    }

    /// Like [`SoftHsm::write_raw_cert`], on slot 3.
    pub fn write_raw_cert(&self, pin: &str, id_hex: &str, bytes: &[u8], obj_label: &str) {
        let scratch = tempfile::tempdir().expect("tempdir");
        raw_cert(
            &self.module,
            &[],
            Select::SlotId(OPENCRYPTOKI_SLOT),
            scratch.path(),
            pin,
            id_hex,
            bytes,
            obj_label,
        );
    }

    /// Generate a key pair on slot 3. Only `rsa:N` works (opencryptoki 3.8.1 has no EC).
    pub fn keygen(&self, pin: &str, key_type: &str, id_hex: &str, obj_label: &str) -> Output {
        keygen_pair(
            &self.module,
            &[],
            Select::SlotId(OPENCRYPTOKI_SLOT),
            pin,
            key_type,
            id_hex,
            obj_label,
        )
    }

    /// `pkcs11-tool --slot 3 --login --pin P --list-objects`, whatever its status: with a
    /// wrong PIN it fails with "CKR_PIN_INCORRECT" or "CKR_PIN_LOCKED" in stderr.
    pub fn try_login(&self, pin: &str) -> Output {
        let slot = OPENCRYPTOKI_SLOT.to_string();
        run_unchecked(&mut pkcs11_tool_cmd(
            &self.module,
            &[],
            &["--slot", &slot, "--login", "--pin", pin, "--list-objects"],
        ))
    }

    /// `pkcs11-tool -L` stdout (slot 3 prints as `Slot 0 (0x3): Linux`).
    pub fn list_slots(&self) -> String {
        let out = pkcs11_tool_run(&self.module, &[], &["--list-slots"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `pkcs11-tool -T` stdout.
    pub fn list_token_slots(&self) -> String {
        let out = pkcs11_tool_run(&self.module, &[], &["--list-token-slots"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The "token flags" line of `pkcs11-tool -T`, after the colon, e.g.
    /// `login required, rng, SO PIN to be changed, token initialized, PIN initialized, user
    /// PIN locked, other flags=0x40`.
    pub fn token_flags(&self) -> String {
        let text = self.list_token_slots();
        text.lines()
            .find_map(|l| l.trim().strip_prefix("token flags"))
            .map(|rest| rest.trim_start().trim_start_matches(':').trim().to_string())
            .unwrap_or_else(|| panic!("no token flags in pkcs11-tool -T output:\n{text}"))
    }

    /// Write `<dir>/certray.toml` that loads only the opencryptoki module; returns its path.
    pub fn config_file(&self, dir: &Path) -> PathBuf {
        write_config(&dir.join("certray.toml"), &self.module)
    }
}

fn assert_root() {
    let status = fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .expect("Uid line in /proc/self/status");
    if euid != "0" {
        panic!(
            "opencryptoki tests need root (euid is {euid}): they write \
             /etc/opencryptoki/opencryptoki.conf, start pkcsslotd and use \
             /var/lib/opencryptoki (root:pkcs11). Run them as root, as CI does \
             (e.g. `sudo -E scripts/test`)."
        );
    }
}

/// The opencryptoki PKCS#11 module: the usual multiarch paths, else `dpkg -L opencryptoki`.
fn find_opencryptoki_module() -> PathBuf {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        "powerpc64" => "powerpc64-linux-gnu",
        "s390x" => "s390x-linux-gnu",
        "x86" => "i386-linux-gnu",
        other => other,
    };
    let candidates = [
        OPENCRYPTOKI_MODULE.to_string(),
        format!("/usr/lib/{arch}/pkcs11/libopencryptoki.so"),
        format!("/usr/lib/{arch}/opencryptoki/libopencryptoki.so"),
        "/usr/lib64/pkcs11/libopencryptoki.so".to_string(),
        "/usr/lib/pkcs11/libopencryptoki.so".to_string(),
        "/usr/lib64/opencryptoki/libopencryptoki.so".to_string(),
        "/usr/lib/opencryptoki/libopencryptoki.so".to_string(),
    ];
    if let Some(found) = candidates.iter().map(PathBuf::from).find(|p| p.is_file()) {
        return found;
    }
    if let Ok(out) = Command::new("dpkg")
        .args(["-L", "opencryptoki"])
        .stdin(Stdio::null())
        .output()
    {
        let listing = String::from_utf8_lossy(&out.stdout);
        if let Some(line) = listing
            .lines()
            .find(|l| l.ends_with("/pkcs11/libopencryptoki.so"))
        {
            return PathBuf::from(line);
        }
    }
    panic!("{OPENCRYPTOKI_MODULE} not found: apt-get install opencryptoki");
}

/// The gid of group `pkcs11` (which pkcsslotd and the library insist on), creating it first
/// if it is missing (the package's postinst normally does).
fn ensure_pkcs11_group() -> u32 {
    let lookup = || {
        let out = Command::new("getent")
            .args(["group", "pkcs11"])
            .stdin(Stdio::null())
            .output()
            .expect("run getent");
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout)
            .split(':')
            .nth(2)
            .and_then(|g| g.trim().parse().ok())
    };
    if let Some(gid) = lookup() {
        return gid;
    }
    run(Command::new(require("groupadd", "passwd")).args(["--system", "pkcs11"]));
    lookup().expect("group pkcs11 after groupadd")
}

fn ensure_dir(dir: &Path, gid: u32) {
    if !dir.is_dir() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        std::os::unix::fs::chown(dir, Some(0), Some(gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", dir.display()));
        fs::set_permissions(dir, fs::Permissions::from_mode(0o770))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
    }
}

/// Write the slot-3-only config if it differs; true if it was written.
fn ensure_conf() -> bool {
    let conf = Path::new(OCK_CONF);
    let current = fs::read_to_string(conf).ok();
    if current.as_deref() == Some(OCK_CONF_TEXT) {
        return false;
    }
    if let Some(orig) = &current
        && !Path::new(OCK_CONF_BACKUP).exists()
    {
        fs::write(OCK_CONF_BACKUP, orig).expect("back up opencryptoki.conf");
    }
    fs::create_dir_all("/etc/opencryptoki").expect("mkdir /etc/opencryptoki");
    fs::write(conf, OCK_CONF_TEXT).expect("write opencryptoki.conf");
    true
}

/// Live (not zombie) pkcsslotd processes, from /proc (`pgrep -x` also lists zombies, which
/// do show up here: nothing reaps the daemon once it dies in a container without init).
fn slotd_pids() -> Vec<u32> {
    let mut pids = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return pids;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if process_is_live_slotd(pid) {
            pids.push(pid);
        }
    }
    pids
}

fn process_is_live_slotd(pid: u32) -> bool {
    // /proc/PID/stat: "PID (comm) STATE ..."; comm may contain spaces, so split at the last ')'.
    let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return false;
    };
    let comm = &stat[open + 1..close];
    let state = stat[close + 1..].split_whitespace().next().unwrap_or("");
    comm == "pkcsslotd" && state != "Z" && state != "X"
}

/// SIGTERM every live pkcsslotd (by pid) and wait until they are gone.
fn stop_slotd() {
    let pids = slotd_pids();
    if pids.is_empty() {
        return;
    }
    let list: Vec<String> = pids.iter().map(|p| p.to_string()).collect();
    // The shell's builtin kill: /bin/kill (procps) may be missing on a minimal system.
    let _ = run_unchecked(
        Command::new("sh")
            .arg("-c")
            .arg(format!("kill {}", list.join(" "))),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| process_is_live_slotd(p)) {
        assert!(
            Instant::now() < deadline,
            "pkcsslotd {list:?} did not stop within 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Start pkcsslotd (it daemonises) and wait for its socket.
fn start_slotd(slotd: &Path) {
    // A stale shared-memory segment or socket from a dead daemon: the segment can hold stale
    // token state, and a leftover socket would make the wait below return too early.
    let _ = fs::remove_file(OCK_SHM);
    let _ = fs::remove_file(OCK_SOCKET);
    // The daemon keeps its stdout/stderr: point them at a file, not at pipes we would wait on.
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(OCK_LOG)
        .unwrap_or_else(|e| panic!("open {OCK_LOG}: {e}"));
    let status = Command::new(slotd)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("dup log"))
        .stderr(log)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", slotd.display()));
    let log_text = || fs::read_to_string(OCK_LOG).unwrap_or_default();
    assert!(
        status.success(),
        "pkcsslotd failed ({status}); {OCK_LOG}:\n{}",
        log_text()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !Path::new(OCK_SOCKET).exists() || slotd_pids().is_empty() {
        assert!(
            Instant::now() < deadline,
            "pkcsslotd started but {OCK_SOCKET} did not appear within 10 s; {OCK_LOG}:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Stop pkcsslotd, empty the soft token's store (recreating `TOK_OBJ`), start pkcsslotd: the
/// token is then uninitialised and its SO PIN is the default again.
fn wipe_token_store() {
    let slotd = require("pkcsslotd", "opencryptoki");
    let gid = ensure_pkcs11_group();
    stop_slotd();
    for entry in fs::read_dir(OCK_SWTOK).expect("read swtok").flatten() {
        let p = entry.path();
        let res = if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        res.unwrap_or_else(|e| panic!("remove {}: {e}", p.display()));
    }
    // Without TOK_OBJ token objects silently end up in shared memory only.
    ensure_dir(&Path::new(OCK_SWTOK).join("TOK_OBJ"), gid);
    start_slotd(&slotd);
}

// ---------------------------------------------------------------------------------------------
// Certificate fixtures and the certray binary
// ---------------------------------------------------------------------------------------------

/// The fixtures of `tests/fixtures/make-certs.sh`, made once per test binary into a temp dir
/// that lives until the process exits.
pub fn fixtures() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        require("openssl", "openssl");
        let dir = tempfile::Builder::new()
            .prefix("certray-fixtures-")
            .tempdir()
            .expect("tempdir")
            .keep();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make-certs.sh");
        run(Command::new("bash").arg(script).arg(&dir));
        dir
    })
}

/// A fixture file by name, e.g. `fixture("rsa-utf8.der")`.
pub fn fixture(name: &str) -> PathBuf {
    let p = fixtures().join(name);
    assert!(p.exists(), "fixture {} was not made", p.display());
    p
}

/// An in-process live inventory over `module` alone (no PC/SC, no default modules), for
/// tests that drive the bridge or the UI without a daemon.
pub fn live_on(module: impl Into<PathBuf>) -> certray::inventory::Live {
    let mut config = certray::config::Config::default();
    config.pkcs11.modules = vec![certray::config::ModuleConfig::new(module)];
    config.pkcs11.use_defaults = false;
    certray::inventory::Live::start(&config, certray::inventory::LiveOptions { pcsc: false })
        .expect("Live::start")
}

/// The id under which `snapshot` lists fixture `name`'s certificate (e.g. `rsa-utf8`),
/// found by the SHA-256 openssl computes.
pub fn fixture_cert_id(snapshot: &certray::inventory::Snapshot, name: &str) -> String {
    let sha = openssl_sha256(&fixture(&format!("{name}.der")));
    snapshot
        .certificates
        .iter()
        .find(|c| c.sha256 == sha)
        .unwrap_or_else(|| panic!("{name} not on the token"))
        .id
        .clone()
}

/// The certray binary built for these tests, in a fixed environment:
/// zh-CN messages unless the test asks otherwise, and no user config.
pub fn certray(env: &[(&str, OsString)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_certray"));
    cmd.env_remove("RUST_LOG")
        .env("CERTRAY_LANG", "zh_CN.UTF-8")
        .envs(env.iter().map(|(k, v)| (*k, v)));
    cmd
}

/// Run certray with `stdin` fed in, whatever its exit status.
pub fn certray_with_input(cmd: &mut Command, stdin: &str) -> Output {
    use std::io::Write as _;
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start certray");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("wait for certray")
}

/// The SHA-256 fingerprint of a DER certificate as `openssl x509 -fingerprint` prints it,
/// lowercased without colons.
pub fn openssl_sha256(der: &Path) -> String {
    let out = openssl(&[
        OsStr::new("x509"),
        OsStr::new("-inform"),
        OsStr::new("DER"),
        OsStr::new("-in"),
        der.as_os_str(),
        OsStr::new("-noout"),
        OsStr::new("-fingerprint"),
        OsStr::new("-sha256"),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .rsplit('=')
        .next()
        .expect("fingerprint")
        .replace(':', "")
        .to_lowercase()
}

/// `openssl dgst -HASH -verify PUB -signature SIG DATA` with the public key taken from the
/// DER certificate; returns whether OpenSSL printed "Verified OK".
pub fn openssl_verify(cert_der: &Path, hash: &str, sig: &Path, data: &Path) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let pubkey = dir.path().join("pub.pem");
    run(Command::new(require("openssl", "openssl"))
        .args(["x509", "-inform", "DER", "-noout", "-pubkey", "-in"])
        .arg(cert_der)
        .arg("-out")
        .arg(&pubkey));
    let out = run_unchecked(
        Command::new(require("openssl", "openssl"))
            .arg("dgst")
            .arg(format!("-{hash}"))
            .arg("-verify")
            .arg(&pubkey)
            .arg("-signature")
            .arg(sig)
            .arg(data),
    );
    out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK")
}

/// The first line a child prints (a daemon's "running at URL" line) arrives on the channel;
/// the rest is drained so the child never blocks on a full pipe.
pub fn first_stdout_line(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead as _;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {}
    });
    rx
}
