//! What SoftHSM and opencryptoki tokens share: `pkcs11-tool` (package `opensc`) with a login,
//! imports of certificates and keys, key generation, and [`RAW_CERT_PY`] for certificate
//! objects `pkcs11-tool` refuses to write.
//!
//! Quirks found on Debian 12 (OpenSC 0.23 `pkcs11-tool`):
//! - `pkcs11-tool --write-object F --type cert` parses F with OpenSSL and refuses anything
//!   that is not a certificate ("error: OpenSSL error during X509 certificate parsing"), so
//!   [`SoftHsm::write_raw_cert`](super::SoftHsm::write_raw_cert) creates the object with a
//!   small python3/ctypes script ([`RAW_CERT_PY`]) that calls `C_CreateObject` directly.
//! - `pkcs11-tool` cannot import SM2 keys ("error: Unsupported key type: 0x0"); SoftHSM has no
//!   SM2 anyway. SM2 *certificates* import fine (`--type cert`).

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

use super::{openssl, pkcs11_tool, require, run};

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

/// How `pkcs11-tool` and the raw-certificate script pick the token.
#[derive(Clone, Copy)]
pub(super) enum Select<'a> {
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
pub(super) fn import_objects(
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

pub(super) fn keygen_pair(
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
pub(super) fn raw_cert(
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

pub(super) fn unique() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

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
