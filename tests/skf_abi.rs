//! The SKF (GM/T 0016) ABI, refereed by parties that are not ours (SKF.md §5.3 group 1 and
//! the signature checks of groups 4–6 at the ABI level):
//! - gcc lays out the spec header; certray's `token::skf::abi` structs and softskf's own
//!   must both match it field by field;
//! - a C client drives softskf through `dlopen`;
//! - certray's function table loads a build without optional symbols and refuses one
//!   without `SKF_ECCSignData` as an unsupported library;
//! - OpenSSL 3 verifies SM2 signatures made over a host-computed e, and must REJECT them
//!   under the `sm2-double-hash` quirk (negative control); it verifies RSA signatures too;
//! - PIN counters persist across reconnects and process restarts, lock, and unblock;
//! - `SKF_WaitForDevEvent` wakes on a presence toggle and on `SKF_CancelWaitForDevEvent`.
//!
//! softskf (tests/softskf) is a test-only stand-in for SKF USB keys, which cannot run here.
//! It reads its configuration from the environment of the process that loads it, so the
//! tests that call it run their SKF side in a child: the same test, re-run with a role
//! (`common::skf::run_child`).
//!
//! Linux only: softskf is a Linux `.so` (inotify, dlopen).

#![cfg(target_os = "linux")]
#![deny(clippy::undocumented_unsafe_blocks)]

mod common;

use std::ffi::{CStr, CString, c_char};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use certray::token::skf::abi::{
    self, DevInfo, EccSignatureBlob, Functions, Handle, LoadError, Name, Sar, SizedError, Ulong,
};
use common::skf::{
    self as softskf, APP, AppSpec, ContainerSpec, DEVICE, DeviceSpec, RSA_CONTAINER, SM2_CONTAINER,
    SoftSkf, emit,
};
use sha2::Digest as _;

// ---------------------------------------------------------------------------------------------
// A small safe face over certray's function table, for the child processes
// ---------------------------------------------------------------------------------------------

/// Handles are the library's opaque pointers, passed back as they came.
#[derive(Clone, Copy)]
struct H(Handle);

// SAFETY: an SKF handle is an opaque token the library hands out and takes back; softskf
// (like the spec) lets any thread pass it.
unsafe impl Send for H {}

struct Skf {
    f: Functions,
}

impl Skf {
    fn load(path: &Path) -> Skf {
        Skf {
            f: Functions::load(path).unwrap_or_else(|e| panic!("{e}")),
        }
    }

    fn check(rc: Ulong) -> Result<(), Sar> {
        Sar::check(rc)
    }

    fn enum_dev(&self, present: bool) -> Result<Vec<Name>, SizedError> {
        let bytes = abi::read_sized(abi::MAX_BUFFER, |buf, len| {
            // SAFETY: read_sized passes NULL or a buffer of *len bytes, as SKF_EnumDev wants.
            unsafe {
                (self.f.enum_dev)(
                    if present { abi::TRUE } else { abi::FALSE },
                    buf.cast(),
                    len,
                )
            }
        })?;
        Ok(abi::parse_name_list(&bytes))
    }

    fn connect(&self, name: &Name) -> Result<H, Sar> {
        let mut h: Handle = std::ptr::null_mut();
        let name = name.to_cstring();
        // SAFETY: a NUL-terminated name and a handle output.
        Self::check(unsafe { (self.f.connect_dev)(name.as_ptr(), &mut h) })?;
        Ok(H(h))
    }

    fn connect_device(&self) -> H {
        self.connect(&Name::new(DEVICE).unwrap()).expect("connect")
    }

    fn disconnect(&self, dev: H) -> Result<(), Sar> {
        // SAFETY: a handle from connect.
        Self::check(unsafe { (self.f.disconnect_dev)(dev.0) })
    }

    fn dev_info(&self, dev: H) -> Result<DevInfo, Sar> {
        let mut info = DevInfo::zeroed();
        // SAFETY: a device handle and a DEVINFO to fill.
        Self::check(unsafe { (self.f.get_dev_info)(dev.0, &mut info) })?;
        Ok(info)
    }

    fn open_app(&self, dev: H, name: &str) -> Result<H, Sar> {
        let mut h: Handle = std::ptr::null_mut();
        let name = CString::new(name).unwrap();
        // SAFETY: a device handle, a NUL-terminated name and a handle output.
        Self::check(unsafe { (self.f.open_application)(dev.0, name.as_ptr(), &mut h) })?;
        Ok(H(h))
    }

    fn open_container(&self, app: H, name: &str) -> Result<H, Sar> {
        let mut h: Handle = std::ptr::null_mut();
        let name = CString::new(name).unwrap();
        // SAFETY: an application handle, a NUL-terminated name and a handle output.
        Self::check(unsafe { (self.f.open_container)(app.0, name.as_ptr(), &mut h) })?;
        Ok(H(h))
    }

    /// (max, remaining, default PIN)
    fn pin_info(&self, app: H, pin_type: Ulong) -> Result<(u32, u32, bool), Sar> {
        let (mut max, mut remaining, mut default) = (0, 0, 0);
        // SAFETY: an application handle and three outputs.
        Self::check(unsafe {
            (self.f.get_pin_info)(app.0, pin_type, &mut max, &mut remaining, &mut default)
        })?;
        Ok((max, remaining, default != 0))
    }

    /// (return code, retry count)
    fn verify_pin(&self, app: H, pin_type: Ulong, pin: &str) -> (Ulong, Ulong) {
        let pin = CString::new(pin).unwrap();
        let mut retry = 0;
        // SAFETY: an application handle, a NUL-terminated PIN and an output.
        let rc = unsafe { (self.f.verify_pin)(app.0, pin_type, pin.as_ptr(), &mut retry) };
        (rc, retry)
    }

    fn change_pin(&self, app: H, pin_type: Ulong, old: &str, new: &str) -> (Ulong, Ulong) {
        let (old, new) = (CString::new(old).unwrap(), CString::new(new).unwrap());
        let mut retry = 0;
        // SAFETY: an application handle, two NUL-terminated PINs and an output.
        let rc =
            unsafe { (self.f.change_pin)(app.0, pin_type, old.as_ptr(), new.as_ptr(), &mut retry) };
        (rc, retry)
    }

    fn unblock_pin(&self, app: H, admin: &str, new_user: &str) -> (Ulong, Ulong) {
        let (admin, new) = (
            CString::new(admin).unwrap(),
            CString::new(new_user).unwrap(),
        );
        let mut retry = 0;
        // SAFETY: an application handle, two NUL-terminated PINs and an output.
        let rc = unsafe { (self.f.unblock_pin)(app.0, admin.as_ptr(), new.as_ptr(), &mut retry) };
        (rc, retry)
    }

    fn export_cert(&self, con: H, sign: bool) -> Result<Vec<u8>, SizedError> {
        let flag = if sign { abi::TRUE } else { abi::FALSE };
        abi::read_sized(abi::MAX_BUFFER, |buf, len| {
            // SAFETY: read_sized passes NULL or a buffer of *len bytes.
            unsafe { (self.f.export_certificate)(con.0, flag, buf, len) }
        })
    }

    fn ecc_sign(&self, con: H, e: &[u8]) -> Result<EccSignatureBlob, Sar> {
        let mut sig = EccSignatureBlob::zeroed();
        // SAFETY: a container handle, e.len() readable bytes and a signature blob to fill.
        Self::check(unsafe {
            (self.f.ecc_sign_data)(con.0, e.as_ptr(), e.len() as Ulong, &mut sig)
        })?;
        Ok(sig)
    }

    fn rsa_sign(&self, con: H, data: &[u8]) -> Result<Vec<u8>, SizedError> {
        let f = self.f.rsa_sign_data.expect("SKF_RSASignData exported");
        abi::read_sized(abi::MAX_BUFFER, |buf, len| {
            // SAFETY: data.len() readable bytes; read_sized passes NULL or *len bytes.
            unsafe { f(con.0, data.as_ptr(), data.len() as Ulong, buf, len) }
        })
    }

    /// (return code, device name, event)
    fn wait(&self) -> (Ulong, String, Ulong, Ulong) {
        let f = self
            .f
            .wait_for_dev_event
            .expect("SKF_WaitForDevEvent exported");
        let mut name = [0 as c_char; 256];
        let mut len: Ulong = name.len() as Ulong;
        let mut event: Ulong = 0;
        // SAFETY: a 256-byte buffer whose size is passed in `len`, and an event output.
        let rc = unsafe { f(name.as_mut_ptr(), &mut len, &mut event) };
        // SAFETY: the buffer was zeroed and is one byte longer than any name written in it.
        let text = unsafe { CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        (rc, text, event, len)
    }

    fn cancel(&self) -> Ulong {
        let f = self
            .f
            .cancel_wait_for_dev_event
            .expect("SKF_CancelWaitForDevEvent exported");
        // SAFETY: no arguments.
        unsafe { f() }
    }

    /// Connect, open the application and log in with the user PIN.
    fn login(&self, pin: &str) -> (H, H) {
        let dev = self.connect_device();
        let app = self.open_app(dev, APP).expect("open application");
        assert_eq!(
            self.verify_pin(app, abi::USER_TYPE, pin).0,
            abi::SAR_OK,
            "login"
        );
        (dev, app)
    }
}

fn hex_of(b: &[u8]) -> String {
    hex::encode(b)
}

fn sar(rc: Ulong) -> String {
    Sar(rc).to_string()
}

// ---------------------------------------------------------------------------------------------
// 1. Layouts: gcc = certray = softskf
// ---------------------------------------------------------------------------------------------

/// certray's structs in the format of tests/softskf/c/layout.c (C names, same order).
fn certray_layout() -> String {
    use abi::{
        BlockCipherParam, EccCipherBlob, EccPublicKeyBlob, FileAttribute, RsaPublicKeyBlob, Version,
    };
    use std::mem::{offset_of, size_of};
    /// (C name, size, [(field, offset)])
    type Layout = (&'static str, usize, Vec<(&'static str, usize)>);
    let structs: [Layout; 8] = [
        (
            "VERSION",
            size_of::<Version>(),
            vec![
                ("major", offset_of!(Version, major)),
                ("minor", offset_of!(Version, minor)),
            ],
        ),
        (
            "DEVINFO",
            size_of::<DevInfo>(),
            vec![
                ("Version", offset_of!(DevInfo, version)),
                ("Manufacturer", offset_of!(DevInfo, manufacturer)),
                ("Issuer", offset_of!(DevInfo, issuer)),
                ("Label", offset_of!(DevInfo, label)),
                ("SerialNumber", offset_of!(DevInfo, serial_number)),
                ("HWVersion", offset_of!(DevInfo, hw_version)),
                ("FirmwareVersion", offset_of!(DevInfo, firmware_version)),
                ("AlgSymCap", offset_of!(DevInfo, alg_sym_cap)),
                ("AlgAsymCap", offset_of!(DevInfo, alg_asym_cap)),
                ("AlgHashCap", offset_of!(DevInfo, alg_hash_cap)),
                ("DevAuthAlgId", offset_of!(DevInfo, dev_auth_alg_id)),
                ("TotalSpace", offset_of!(DevInfo, total_space)),
                ("FreeSpace", offset_of!(DevInfo, free_space)),
                ("MaxECCBufferSize", offset_of!(DevInfo, max_ecc_buffer_size)),
                ("MaxBufferSize", offset_of!(DevInfo, max_buffer_size)),
                ("Reserved", offset_of!(DevInfo, reserved)),
            ],
        ),
        (
            "RSAPUBLICKEYBLOB",
            size_of::<RsaPublicKeyBlob>(),
            vec![
                ("AlgID", offset_of!(RsaPublicKeyBlob, alg_id)),
                ("BitLen", offset_of!(RsaPublicKeyBlob, bit_len)),
                ("Modulus", offset_of!(RsaPublicKeyBlob, modulus)),
                (
                    "PublicExponent",
                    offset_of!(RsaPublicKeyBlob, public_exponent),
                ),
            ],
        ),
        (
            "ECCPUBLICKEYBLOB",
            size_of::<EccPublicKeyBlob>(),
            vec![
                ("BitLen", offset_of!(EccPublicKeyBlob, bit_len)),
                ("XCoordinate", offset_of!(EccPublicKeyBlob, x)),
                ("YCoordinate", offset_of!(EccPublicKeyBlob, y)),
            ],
        ),
        (
            "ECCSIGNATUREBLOB",
            size_of::<EccSignatureBlob>(),
            vec![
                ("r", offset_of!(EccSignatureBlob, r)),
                ("s", offset_of!(EccSignatureBlob, s)),
            ],
        ),
        (
            "ECCCIPHERBLOB",
            size_of::<EccCipherBlob>(),
            vec![
                ("XCoordinate", offset_of!(EccCipherBlob, x)),
                ("YCoordinate", offset_of!(EccCipherBlob, y)),
                ("HASH", offset_of!(EccCipherBlob, hash)),
                ("CipherLen", offset_of!(EccCipherBlob, cipher_len)),
                ("Cipher", offset_of!(EccCipherBlob, cipher)),
            ],
        ),
        (
            "BLOCKCIPHERPARAM",
            size_of::<BlockCipherParam>(),
            vec![
                ("IV", offset_of!(BlockCipherParam, iv)),
                ("IVLen", offset_of!(BlockCipherParam, iv_len)),
                ("PaddingType", offset_of!(BlockCipherParam, padding_type)),
                ("FeedBitLen", offset_of!(BlockCipherParam, feed_bit_len)),
            ],
        ),
        (
            "FILEATTRIBUTE",
            size_of::<FileAttribute>(),
            vec![
                ("FileName", offset_of!(FileAttribute, file_name)),
                ("FileSize", offset_of!(FileAttribute, file_size)),
                ("ReadRights", offset_of!(FileAttribute, read_rights)),
                ("WriteRights", offset_of!(FileAttribute, write_rights)),
            ],
        ),
    ];
    let mut out = String::new();
    for (name, size, fields) in structs {
        out.push_str(&format!("{name} size {size}\n"));
        for (field, offset) in fields {
            out.push_str(&format!("{name}.{field} {offset}\n"));
        }
    }
    out
}

/// softskf's structs, from its exported `softskf_layout()`.
fn softskf_layout() -> String {
    let path = softskf::library();
    // SAFETY: loading softskf runs no initialiser of its own (its state starts on the first
    // SKF call, which this test does not make).
    let lib = unsafe { libloading::Library::new(&path) }.expect("load softskf");
    // SAFETY: softskf_layout is `extern "C" fn() -> *const c_char` and returns a static,
    // NUL-terminated string; it is copied out before `lib` is dropped.
    unsafe {
        let f = lib
            .get::<unsafe extern "C" fn() -> *const c_char>(b"softskf_layout")
            .expect("softskf_layout exported");
        CStr::from_ptr(f()).to_string_lossy().into_owned()
    }
}

#[test]
fn layouts_agree_between_gcc_certray_and_softskf() {
    let dir = tempfile::tempdir().unwrap();
    let program = softskf::compile_c("layout.c", dir.path());
    let gcc = String::from_utf8(common::run(&mut std::process::Command::new(program)).stdout)
        .expect("UTF-8");
    // gcc's packed layout is the one SKF.md §3.3 records.
    for line in [
        "DEVINFO size 294",
        "DEVINFO.AlgSymCap 198",
        "DEVINFO.Reserved 230",
        "ECCPUBLICKEYBLOB size 132",
        "ECCSIGNATUREBLOB size 128",
        "RSAPUBLICKEYBLOB size 268",
        "RSAPUBLICKEYBLOB.Modulus 8",
        "BLOCKCIPHERPARAM size 44",
        "FILEATTRIBUTE size 44",
    ] {
        assert!(
            gcc.lines().any(|l| l == line),
            "gcc does not say {line:?}:\n{gcc}"
        );
    }
    assert_eq!(
        certray_layout(),
        gcc,
        "certray's token::skf::abi differs from gcc"
    );
    assert_eq!(softskf_layout(), gcc, "softskf's types differ from gcc");
}

// ---------------------------------------------------------------------------------------------
// 2. The C client drives softskf
// ---------------------------------------------------------------------------------------------

#[test]
fn c_client_smoke_flow() {
    let skf = SoftSkf::standard();
    let message = "增值税发票 certray smoke test".as_bytes();
    let point = skf.sm2_public_point(SM2_CONTAINER);
    let e = softskf::sm2_e(&point, message);
    let dir = tempfile::tempdir().unwrap();
    let client = softskf::compile_c("client.c", dir.path());
    let out = common::run_unchecked(
        std::process::Command::new(client)
            .arg(softskf::library())
            .args([DEVICE, APP, "123456", SM2_CONTAINER])
            .arg(hex_of(message))
            .arg(hex_of(&e))
            .envs(skf.env()),
    );
    let text = common::output_text(&out);
    assert!(
        out.status.success() && text.contains("smoke OK"),
        "C client failed:\n{text}"
    );
    let report: std::collections::HashMap<&str, &str> =
        text.lines().filter_map(|l| l.split_once(' ')).collect();
    // The certificate comes out byte for byte as provisioned, with its key.
    assert_eq!(report["cert"], hex_of(&skf.cert_der(SM2_CONTAINER, "sign")));
    assert_eq!(
        format!("04{}{}", report["pub_x"], report["pub_y"]),
        hex_of(&point)
    );
    // DigestInit(public key, default ID) + Digest computes the same e as the host.
    assert_eq!(report["e_device"], hex_of(&e));
    // And OpenSSL accepts the C client's signature over the original message.
    let mut blob = EccSignatureBlob::zeroed();
    blob.r[32..].copy_from_slice(&hex::decode(report["sig_r"]).unwrap());
    blob.s[32..].copy_from_slice(&hex::decode(report["sig_s"]).unwrap());
    let (ok, why) = softskf::openssl_sm2_verify(
        &skf.cert_der(SM2_CONTAINER, "sign"),
        message,
        &blob.to_der().unwrap(),
    );
    assert!(ok, "OpenSSL rejects the signature: {why}");
    // The wrong PIN cost a try and the right one gave it back, on disk.
    let counters = skf.pin_counters(DEVICE, APP).expect("state.json");
    assert_eq!((counters.user.remaining, counters.user.max_retries), (6, 6));
}

// ---------------------------------------------------------------------------------------------
// 3. Required and optional symbols
// ---------------------------------------------------------------------------------------------

#[test]
fn optional_symbols_are_optional_and_ecc_sign_is_required() {
    let full = Functions::load(&softskf::library()).expect("full softskf loads");
    assert_eq!(full.missing_optional(), Vec::<&str>::new());

    let minimal = Functions::load(&softskf::variant("minimal"))
        .expect("a library without any optional symbol still loads");
    assert_eq!(minimal.missing_optional(), abi::OPTIONAL.to_vec());
    assert!(minimal.wait_for_dev_event.is_none() && minimal.rsa_sign_data.is_none());

    let path = softskf::variant("no-ecc-sign");
    match Functions::load(&path) {
        Err(LoadError::Unsupported { missing, .. }) => {
            assert_eq!(missing, vec!["SKF_ECCSignData"])
        }
        Err(e) => panic!("expected an unsupported-library error, got {e}"),
        Ok(_) => panic!("a library without SKF_ECCSignData must not load"),
    }
    let message = Functions::load(&path).unwrap_err().to_string();
    assert_eq!(
        message,
        format!(
            "unsupported SKF library {}: it does not export SKF_ECCSignData (GM/T 0016 functions certray needs)",
            path.display()
        )
    );
}

// ---------------------------------------------------------------------------------------------
// 4. SM2 through certray's table, verified by OpenSSL; the double-hash negative control
// ---------------------------------------------------------------------------------------------

const MESSAGE: &[u8] = "统一社会信用代码 91110000MA01ABCDEF: sign me".as_bytes();

/// Child side: log in, sign E (hex) with the SM2 container, report cert and signature.
fn sm2_sign_child() {
    let skf = Skf::load(&softskf::library());
    let names = skf.enum_dev(true).expect("EnumDev");
    assert_eq!(names, vec![Name::new(DEVICE).unwrap()]);
    let (_dev, app) = skf.login("123456");
    let con = skf.open_container(app, SM2_CONTAINER).unwrap();
    emit(
        "cert",
        hex_of(&skf.export_cert(con, true).expect("ExportCertificate")),
    );
    let e = hex::decode(std::env::var("E").unwrap()).unwrap();
    let sig = skf.ecc_sign(con, &e).expect("ECCSignData");
    emit("sig", hex_of(&sig.to_raw().expect("right-aligned r, s")));
}

/// Sign MESSAGE's e through certray's function table in a child with `quirks`; the DER
/// signature and the exported certificate.
fn sm2_sign_in_child(test: &str, quirks: &str) -> (SoftSkf, [u8; 32], Vec<u8>, Vec<u8>) {
    let skf = SoftSkf::standard();
    let e = softskf::sm2_e(&skf.sm2_public_point(SM2_CONTAINER), MESSAGE);
    let mut env = skf.env();
    env.push(("E", hex_of(&e).into()));
    env.push(("SOFTSKF_QUIRKS", quirks.into()));
    let report = softskf::run_child(test, "sign", &env);
    let cert = hex::decode(report.get("cert")).unwrap();
    assert_eq!(
        cert,
        skf.cert_der(SM2_CONTAINER, "sign"),
        "exported certificate"
    );
    let raw = hex::decode(report.get("sig")).unwrap();
    let der = certray::token::sign::ecdsa_raw_to_der(&raw).unwrap();
    (skf, e, cert, der)
}

#[test]
fn sm2_signature_over_host_e_verifies_with_openssl() {
    if softskf::child_role().is_some() {
        return sm2_sign_child();
    }
    let (skf, _e, cert, der) =
        sm2_sign_in_child("sm2_signature_over_host_e_verifies_with_openssl", "");
    let (ok, why) = softskf::openssl_sm2_verify(&cert, MESSAGE, &der);
    assert!(ok, "OpenSSL rejects softskf's SM2 signature: {why}");
    // The sm2 crate agrees (it computes Z from the key and the ID itself).
    use sm2::dsa::signature::Verifier as _;
    let point = skf.sm2_public_point(SM2_CONTAINER);
    let key = sm2::dsa::VerifyingKey::from_sec1_bytes(softskf::SM2_ID, &point).unwrap();
    key.verify(MESSAGE, &sm2::dsa::Signature::from_der(&der).unwrap())
        .expect("the sm2 crate verifies it too");
}

#[test]
fn sm2_double_hash_quirk_fails_openssl_verification() {
    if softskf::child_role().is_some() {
        return sm2_sign_child();
    }
    let (_skf, e, cert, der) = sm2_sign_in_child(
        "sm2_double_hash_quirk_fails_openssl_verification",
        "sm2-double-hash",
    );
    // Negative control: a library that hashes e again must be caught by the verifier.
    let (ok, why) = softskf::openssl_sm2_verify(&cert, MESSAGE, &der);
    assert!(!ok, "OpenSSL accepted a double-hashed signature:\n{why}");
    assert!(why.contains("Signature Verification Failure"), "{why}");
    // …and it is exactly a signature over e taken as the message (the kintaiW behaviour).
    let (ok, why) = softskf::openssl_sm2_verify(&cert, &e, &der);
    assert!(ok, "the quirk should sign SM3(Z‖e): {why}");
}

// ---------------------------------------------------------------------------------------------
// 5. RSA, verified by OpenSSL
// ---------------------------------------------------------------------------------------------

/// DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1).
const SHA256_DIGEST_INFO: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

#[test]
fn rsa_signature_over_digest_info_verifies_with_openssl() {
    let test = "rsa_signature_over_digest_info_verifies_with_openssl";
    if softskf::child_role().is_some() {
        let skf = Skf::load(&softskf::library());
        let dev = skf.connect_device();
        let app = skf.open_app(dev, APP).unwrap();
        let con = skf.open_container(app, RSA_CONTAINER).unwrap();
        let mut data = SHA256_DIGEST_INFO.to_vec();
        data.extend_from_slice(&sha2::Sha256::digest(MESSAGE));
        let err = skf.rsa_sign(con, &data).unwrap_err();
        emit("before_login", err);
        assert_eq!(skf.verify_pin(app, abi::USER_TYPE, "123456").0, abi::SAR_OK);
        emit("too_long", skf.rsa_sign(con, &[1u8; 246]).unwrap_err());
        emit(
            "sig",
            hex_of(&skf.rsa_sign(con, &data).expect("RSASignData")),
        );
        emit("cert", hex_of(&skf.export_cert(con, true).unwrap()));
        return;
    }
    let skf = SoftSkf::new(vec![
        DeviceSpec::new(DEVICE).app(AppSpec::new(APP).container(ContainerSpec::rsa(RSA_CONTAINER))),
    ]);
    let report = softskf::run_child(test, "sign", &skf.env());
    assert_eq!(report.get("before_login"), sar(abi::SAR_USER_NOT_LOGGED_IN));
    // 2048-bit key: at most 256 - 11 = 245 bytes.
    assert_eq!(report.get("too_long"), sar(abi::SAR_INDATALENERR));
    assert_eq!(
        hex::decode(report.get("cert")).unwrap(),
        skf.cert_der(RSA_CONTAINER, "sign")
    );
    let sig = hex::decode(report.get("sig")).unwrap();
    assert_eq!(sig.len(), 256);
    let dir = tempfile::tempdir().unwrap();
    let (sig_path, msg_path) = (dir.path().join("sig"), dir.path().join("msg"));
    std::fs::write(&sig_path, &sig).unwrap();
    std::fs::write(&msg_path, MESSAGE).unwrap();
    assert!(
        common::openssl_verify(
            &skf.file(RSA_CONTAINER, "sign.der"),
            "sha256",
            &sig_path,
            &msg_path
        ),
        "OpenSSL rejects softskf's RSA signature"
    );
}

// ---------------------------------------------------------------------------------------------
// 6. PIN counters: reconnect, restart, lock, unblock
// ---------------------------------------------------------------------------------------------

#[test]
fn pin_counters_persist_across_reconnect_and_restart() {
    let test = "pin_counters_persist_across_reconnect_and_restart";
    match softskf::child_role().as_deref() {
        Some("first") => {
            let skf = Skf::load(&softskf::library());
            let dev = skf.connect_device();
            let app = skf.open_app(dev, APP).unwrap();
            emit(
                "info",
                format!("{:?}", skf.pin_info(app, abi::USER_TYPE).unwrap()),
            );
            let (rc, retry) = skf.verify_pin(app, abi::USER_TYPE, "000000");
            emit("wrong1", format!("{} {retry}", sar(rc)));
            skf.disconnect(dev).unwrap();
            let dev = skf.connect_device();
            let app = skf.open_app(dev, APP).unwrap();
            emit(
                "after_reconnect",
                skf.pin_info(app, abi::USER_TYPE).unwrap().1,
            );
            let (rc, retry) = skf.verify_pin(app, abi::USER_TYPE, "999999");
            emit("wrong2", format!("{} {retry}", sar(rc)));
            return;
        }
        Some("second") => {
            let skf = Skf::load(&softskf::library());
            let dev = skf.connect_device();
            let app = skf.open_app(dev, APP).unwrap();
            emit(
                "after_restart",
                skf.pin_info(app, abi::USER_TYPE).unwrap().1,
            );
            emit(
                "right",
                sar(skf.verify_pin(app, abi::USER_TYPE, "123456").0),
            );
            emit("after_right", skf.pin_info(app, abi::USER_TYPE).unwrap().1);
            return;
        }
        _ => {}
    }
    let skf = SoftSkf::standard();
    let first = softskf::run_child(test, "first", &skf.env());
    assert_eq!(first.get("info"), "(6, 6, false)");
    assert_eq!(
        first.get("wrong1"),
        format!("{} 5", sar(abi::SAR_PIN_INCORRECT))
    );
    assert_eq!(first.get("after_reconnect"), "5");
    assert_eq!(
        first.get("wrong2"),
        format!("{} 4", sar(abi::SAR_PIN_INCORRECT))
    );
    let on_disk = skf.pin_counters(DEVICE, APP).unwrap();
    assert_eq!((on_disk.user.remaining, on_disk.user.locked), (4, false));
    assert_eq!(on_disk.admin.remaining, 10);

    let second = softskf::run_child(test, "second", &skf.env());
    assert_eq!(
        second.get("after_restart"),
        "4",
        "the counter must survive a restart"
    );
    assert_eq!(second.get("right"), sar(abi::SAR_OK));
    assert_eq!(second.get("after_right"), "6");
    assert_eq!(skf.pin_counters(DEVICE, APP).unwrap().user.remaining, 6);
}

/// Three wrong PINs lock; a locked PIN refuses even the right one; the admin PIN unblocks
/// (a wrong one costs an admin try); an admin PIN lock is final.
fn pin_lock_child() {
    let skf = Skf::load(&softskf::library());
    let dev = skf.connect_device();
    let app = skf.open_app(dev, APP).unwrap();
    for i in 1..=3 {
        let (rc, retry) = skf.verify_pin(app, abi::USER_TYPE, "000000");
        emit(&format!("wrong{i}"), format!("{} {retry}", sar(rc)));
    }
    emit(
        "right_when_locked",
        sar(skf.verify_pin(app, abi::USER_TYPE, "123456").0),
    );
    emit(
        "info_locked",
        format!("{:?}", skf.pin_info(app, abi::USER_TYPE).unwrap()),
    );
    let (rc, retry) = skf.unblock_pin(app, "00000000", "654321");
    emit("unblock_wrong_admin", format!("{} {retry}", sar(rc)));
    emit(
        "unblock_short_pin",
        sar(skf.unblock_pin(app, "12345678", "1").0),
    );
    emit("unblock", sar(skf.unblock_pin(app, "12345678", "654321").0));
    emit(
        "info_unblocked",
        format!("{:?}", skf.pin_info(app, abi::USER_TYPE).unwrap()),
    );
    emit(
        "admin_info",
        format!("{:?}", skf.pin_info(app, abi::ADMIN_TYPE).unwrap()),
    );
    emit(
        "new_pin",
        sar(skf.verify_pin(app, abi::USER_TYPE, "654321").0),
    );
    emit(
        "change_too_short",
        sar(skf.change_pin(app, abi::USER_TYPE, "654321", "12").0),
    );
    emit(
        "change",
        sar(skf.change_pin(app, abi::USER_TYPE, "654321", "24681357").0),
    );
    emit(
        "changed_pin",
        sar(skf.verify_pin(app, abi::USER_TYPE, "24681357").0),
    );
    // Burn the admin PIN (2 tries in this provisioning): final.
    for i in 1..=2 {
        let (rc, retry) = skf.unblock_pin(app, "99999999", "111111");
        emit(&format!("admin_wrong{i}"), format!("{} {retry}", sar(rc)));
    }
    emit(
        "admin_right_when_locked",
        sar(skf.unblock_pin(app, "12345678", "111111").0),
    );
}

fn pin_lock_skf() -> SoftSkf {
    let mut app = AppSpec::new(APP).container(ContainerSpec::sm2(SM2_CONTAINER));
    app.user_retries = 3;
    app.admin_retries = 2;
    app.user_pin_is_default = true;
    SoftSkf::new(vec![DeviceSpec::new(DEVICE).app(app)])
}

#[test]
fn pin_lock_unblock_and_final_admin_lock() {
    if softskf::child_role().is_some() {
        return pin_lock_child();
    }
    let skf = pin_lock_skf();
    let r = softskf::run_child("pin_lock_unblock_and_final_admin_lock", "lock", &skf.env());
    let incorrect = sar(abi::SAR_PIN_INCORRECT);
    let locked = sar(abi::SAR_PIN_LOCKED);
    assert_eq!(r.get("wrong1"), format!("{incorrect} 2"));
    assert_eq!(r.get("wrong2"), format!("{incorrect} 1"));
    assert_eq!(r.get("wrong3"), format!("{locked} 0"), "the last try locks");
    assert_eq!(r.get("right_when_locked"), locked);
    assert_eq!(r.get("info_locked"), "(3, 0, true)");
    assert_eq!(
        r.get("unblock_wrong_admin"),
        format!("{incorrect} 1"),
        "admin tries left"
    );
    assert_eq!(r.get("unblock_short_pin"), sar(abi::SAR_PIN_LEN_RANGE));
    assert_eq!(r.get("unblock"), sar(abi::SAR_OK));
    assert_eq!(
        r.get("info_unblocked"),
        "(3, 3, false)",
        "a new PIN is no longer the default"
    );
    assert_eq!(
        r.get("admin_info"),
        "(2, 2, false)",
        "the right admin PIN restores its tries"
    );
    assert_eq!(r.get("new_pin"), sar(abi::SAR_OK));
    assert_eq!(r.get("change_too_short"), sar(abi::SAR_PIN_LEN_RANGE));
    assert_eq!(r.get("change"), sar(abi::SAR_OK));
    assert_eq!(r.get("changed_pin"), sar(abi::SAR_OK));
    assert_eq!(r.get("admin_wrong1"), format!("{incorrect} 1"));
    assert_eq!(r.get("admin_wrong2"), format!("{locked} 0"));
    assert_eq!(
        r.get("admin_right_when_locked"),
        locked,
        "an admin lock is final"
    );
    let on_disk = skf.pin_counters(DEVICE, APP).unwrap();
    assert!(on_disk.admin.locked && !on_disk.user.locked);
}

#[test]
fn pin_incorrect_at_zero_quirk_reports_the_lock_as_incorrect() {
    let test = "pin_incorrect_at_zero_quirk_reports_the_lock_as_incorrect";
    if softskf::child_role().is_some() {
        return pin_lock_child();
    }
    let skf = pin_lock_skf();
    let mut env = skf.env();
    env.push(("SOFTSKF_QUIRKS", "pin-incorrect-at-zero".into()));
    let r = softskf::run_child(test, "lock", &env);
    let incorrect = sar(abi::SAR_PIN_INCORRECT);
    // The vendor variant: the locking try says "incorrect, 0 left"; the lock is real anyway.
    assert_eq!(r.get("wrong3"), format!("{incorrect} 0"));
    assert_eq!(r.get("right_when_locked"), sar(abi::SAR_PIN_LOCKED));
    assert_eq!(r.get("admin_wrong2"), format!("{incorrect} 0"));
}

// ---------------------------------------------------------------------------------------------
// 7. Events and removal
// ---------------------------------------------------------------------------------------------

/// CPU time (user + system) this process used so far.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 (1-based), i.e. 11 and 12 after "pid (comm)".
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

#[test]
fn wait_for_dev_event_wakes_on_presence_toggle() {
    let test = "wait_for_dev_event_wakes_on_presence_toggle";
    if softskf::child_role().is_some() {
        let skf = Skf::load(&softskf::library());
        assert_eq!(skf.enum_dev(true).unwrap().len(), 1);
        let cpu = cpu_time();
        let started = Instant::now();
        emit("ready", "");
        let (rc, name, event, len) = skf.wait();
        emit("event1", format!("{} {name} {event} {len}", sar(rc)));
        emit(
            "idle",
            format!(
                "{} {}",
                started.elapsed().as_millis(),
                (cpu_time() - cpu).as_millis()
            ),
        );
        let (rc, name, event, len) = skf.wait();
        emit("event2", format!("{} {name} {event} {len}", sar(rc)));
        emit("present", skf.enum_dev(true).unwrap().len());
        return;
    }
    let skf = SoftSkf::standard();
    let (mut child, rx) = softskf::spawn_child(test, "wait", &skf.env());
    softskf::expect_line(&rx, "ready", Duration::from_secs(30));
    // Leave the child blocked in SKF_WaitForDevEvent for a while: it must not spin.
    std::thread::sleep(Duration::from_millis(1500));
    skf.set_present(DEVICE, false);
    let ok = sar(abi::SAR_OK);
    // The name length includes the NUL (Longmai header).
    assert_eq!(
        softskf::expect_line(&rx, "event1", Duration::from_secs(10)),
        format!(
            "{ok} {DEVICE} {} {}",
            abi::DEV_EVENT_REMOVE,
            DEVICE.len() + 1
        )
    );
    let idle = softskf::expect_line(&rx, "idle", Duration::from_secs(10));
    let (waited, cpu) = idle.split_once(' ').unwrap();
    let (waited, cpu): (u64, u64) = (waited.parse().unwrap(), cpu.parse().unwrap());
    assert!(
        waited >= 1000,
        "the wait returned after {waited} ms, before the removal"
    );
    assert!(
        cpu < waited / 4,
        "{cpu} ms of CPU during a {waited} ms wait: busy polling"
    );
    skf.set_present(DEVICE, true);
    assert_eq!(
        softskf::expect_line(&rx, "event2", Duration::from_secs(10)),
        format!(
            "{ok} {DEVICE} {} {}",
            abi::DEV_EVENT_INSERT,
            DEVICE.len() + 1
        )
    );
    assert_eq!(
        softskf::expect_line(&rx, "present", Duration::from_secs(10)),
        "1"
    );
    assert!(child.0.wait().unwrap().success());
    // Two waits, two calls: the library did not loop through its own export either.
    assert_eq!(skf.calls("SKF_WaitForDevEvent"), 2);
}

#[test]
fn cancel_wakes_a_pending_wait() {
    let test = "cancel_wakes_a_pending_wait";
    if let Some(role) = softskf::child_role() {
        let skf = Arc::new(Skf::load(&softskf::library()));
        skf.enum_dev(true).unwrap();
        if role == "cancel-lost-if-idle" {
            // Longmai: a cancel with no wait pending is forgotten, and Cancel takes ~2 s.
            let t = Instant::now();
            assert_eq!(skf.cancel(), abi::SAR_OK);
            emit("idle_cancel_ms", t.elapsed().as_millis());
        } else {
            // A cancel before the wait is kept for it.
            assert_eq!(skf.cancel(), abi::SAR_OK);
            emit("wait_after_idle_cancel", sar(skf.wait().0));
        }
        let waiter = {
            let skf = skf.clone();
            std::thread::spawn(move || {
                let rc = skf.wait().0;
                (rc, Instant::now())
            })
        };
        std::thread::sleep(Duration::from_millis(700));
        emit("blocked_before_cancel", !waiter.is_finished());
        let t = Instant::now();
        assert_eq!(skf.cancel(), abi::SAR_OK);
        emit("cancel_ms", t.elapsed().as_millis());
        let (rc, woke) = waiter.join().unwrap();
        // When the wait returned, counted from the moment Cancel was called.
        emit(
            "wait",
            format!("{} {}", sar(rc), woke.duration_since(t).as_millis()),
        );
        return;
    }
    let skf = SoftSkf::standard();
    let r = softskf::run_child(test, "spec", &skf.env());
    let not_event = sar(abi::SAR_NOT_EVENTERR);
    assert_eq!(r.get("wait_after_idle_cancel"), not_event);
    assert_eq!(r.get("blocked_before_cancel"), "true");
    let wait = r.get("wait");
    assert!(wait.starts_with(&format!("{not_event} ")), "{wait}");

    let mut env = skf.env();
    env.push(("SOFTSKF_QUIRKS", "cancel-lost-if-idle".into()));
    let r = softskf::run_child(test, "cancel-lost-if-idle", &env);
    let idle: u64 = r.get("idle_cancel_ms").parse().unwrap();
    assert!(
        idle >= 1900,
        "Longmai's Cancel returns after about 2 s, took {idle} ms"
    );
    // The idle cancel was forgotten: the next wait blocked until the second cancel…
    assert_eq!(r.get("blocked_before_cancel"), "true");
    let cancel: u64 = r.get("cancel_ms").parse().unwrap();
    assert!(cancel >= 1900, "Cancel took {cancel} ms");
    // …which woke it with SAR_NOT_EVENTERR, about 1 s after it was issued.
    let (rc, woke) = r.get("wait").rsplit_once(' ').unwrap();
    assert_eq!(rc, not_event);
    assert!(
        woke.parse::<u64>().unwrap() >= 900,
        "woke {woke} ms after Cancel"
    );
}

#[test]
fn handles_on_a_removed_device_report_device_removed() {
    let test = "handles_on_a_removed_device_report_device_removed";
    if softskf::child_role().as_deref() == Some("mid-signature") {
        // SKF_ECCSignData is delayed (delay: fault); the key goes while it runs.
        let dir = std::path::PathBuf::from(std::env::var_os("SOFTSKF_DIR").unwrap());
        let skf = Skf::load(&softskf::library());
        let (_dev, app) = skf.login("123456");
        let con = skf.open_container(app, SM2_CONTAINER).unwrap();
        let pull = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            softskf::set_present_in(&dir, DEVICE, false);
        });
        emit("sign", skf.ecc_sign(con, &[7u8; 32]).unwrap_err());
        pull.join().unwrap();
        return;
    }
    if softskf::child_role().is_some() {
        let dir = std::path::PathBuf::from(std::env::var_os("SOFTSKF_DIR").unwrap());
        let skf = Skf::load(&softskf::library());
        let (dev, app) = skf.login("123456");
        let con = skf.open_container(app, SM2_CONTAINER).unwrap();
        softskf::set_present_in(&dir, DEVICE, false);
        emit(
            "dev_info",
            skf.dev_info(dev)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        );
        emit("sign", skf.ecc_sign(con, &[7u8; 32]).unwrap_err());
        emit("pin_info", skf.pin_info(app, abi::USER_TYPE).unwrap_err());
        emit("enum", skf.enum_dev(true).unwrap().len());
        emit("enum_all", skf.enum_dev(false).unwrap().len());
        emit(
            "connect",
            skf.connect(&Name::new(DEVICE).unwrap()).err().unwrap(),
        );
        softskf::set_present_in(&dir, DEVICE, true);
        emit(
            "old_handle",
            skf.dev_info(dev)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default(),
        );
        let again = skf.connect_device();
        emit("label", skf.dev_info(again).unwrap().label());
        emit(
            "disconnect_old",
            sar(skf.disconnect(dev).err().map_or(abi::SAR_OK, |e| e.0)),
        );
        let app = skf.open_app(again, APP).unwrap();
        let con = skf.open_container(app, SM2_CONTAINER).unwrap();
        // The login did not survive the removal.
        emit("sign_again", skf.ecc_sign(con, &[7u8; 32]).unwrap_err());
        return;
    }
    let skf = SoftSkf::standard();
    let r = softskf::run_child(test, "remove", &skf.env());
    let removed = sar(abi::SAR_DEVICE_REMOVED);
    assert!(skf.present().contains(DEVICE));
    assert_eq!(r.get("dev_info"), removed);
    assert_eq!(r.get("sign"), removed);
    assert_eq!(r.get("pin_info"), removed);
    assert_eq!(r.get("enum"), "0");
    assert_eq!(
        r.get("enum_all"),
        "1",
        "a removed device is still a supported one"
    );
    assert_eq!(r.get("connect"), removed);
    assert_eq!(
        r.get("old_handle"),
        removed,
        "a handle does not come back with the key"
    );
    assert_eq!(r.get("label"), DEVICE);
    assert_eq!(r.get("disconnect_old"), sar(abi::SAR_OK));
    assert_eq!(r.get("sign_again"), sar(abi::SAR_USER_NOT_LOGGED_IN));

    // Removal in the middle of a signature.
    let mut env = skf.env();
    env.push(("SOFTSKF_FAULT", "delay:ECCSignData=1500".into()));
    let r = softskf::run_child(test, "mid-signature", &env);
    assert_eq!(r.get("sign"), removed);
    assert!(!skf.present().contains(DEVICE));
}

// ---------------------------------------------------------------------------------------------
// 8. Quirks and faults as certray's parsers see them
// ---------------------------------------------------------------------------------------------

#[test]
fn vendor_quirks_through_certrays_parsers() {
    let test = "vendor_quirks_through_certrays_parsers";
    match softskf::child_role().as_deref() {
        Some("quirks") => {
            let skf = Skf::load(&softskf::library());
            let mut size: Ulong = 0;
            // SAFETY: a size query (NULL buffer).
            let rc = unsafe { (skf.f.enum_dev)(abi::TRUE, std::ptr::null_mut(), &mut size) };
            emit("list_size", format!("{} {size}", sar(rc)));
            emit("names", format!("{:?}", skf.enum_dev(true).unwrap()));
            let dev = skf.connect_device();
            let info = skf.dev_info(dev).unwrap();
            emit(
                "hash_cap",
                format!("0x{:08X} 0x{:08X}", { info.alg_hash_cap }, info.hash_caps()),
            );
            let app = skf.open_app(dev, APP).unwrap();
            let con = skf.open_container(app, SM2_CONTAINER).unwrap();
            let cert = skf.export_cert(con, true).unwrap();
            emit("cert_head", String::from_utf8_lossy(&cert[..27]));
            // GetPINInfo through certray's 32-bit type, and through a 64-bit one.
            emit(
                "pin_info",
                format!("{:?}", skf.pin_info(app, abi::USER_TYPE)),
            );
            type Long64 =
                unsafe extern "system" fn(Handle, Ulong, *mut Ulong, *mut Ulong, *mut i32) -> u64;
            let lib = softskf::library();
            // SAFETY: softskf is already loaded in this process; this only looks the symbol up.
            let raw = unsafe { libloading::Library::new(&lib) }.unwrap();
            // SAFETY: SKF_GetPINInfo's arguments, read as a 64-bit return (what a loader that
            // declared LONG as LP64 `long` would do); the handle and outputs are valid.
            let wide = unsafe {
                let f = raw.get::<Long64>(b"SKF_GetPINInfo").unwrap();
                let (mut m, mut r, mut d) = (0, 0, 0);
                f(app.0, abi::USER_TYPE, &mut m, &mut r, &mut d)
            };
            emit("pin_info_64", format!("0x{wide:016X}"));
            return;
        }
        Some("garbage") => {
            let skf = Skf::load(&softskf::library());
            emit("enum", skf.enum_dev(true).unwrap_err());
            return;
        }
        _ => {}
    }
    let skf = SoftSkf::standard();
    let mut env = skf.env();
    env.push((
        "SOFTSKF_QUIRKS",
        "no-double-nul,caps-vendor-bits,pem-cert,getpininfo-long".into(),
    ));
    let r = softskf::run_child(test, "quirks", &env);
    // "SOFTSKF-01\0" and no final NUL: the parser still finds the one name.
    assert_eq!(
        r.get("list_size"),
        format!("{} {}", sar(abi::SAR_OK), DEVICE.len() + 1)
    );
    assert_eq!(r.get("names"), format!("[Name({:?})]", DEVICE.as_bytes()));
    assert_eq!(
        r.get("hash_cap"),
        "0x80080007 0x00000007",
        "vendor bits masked"
    );
    assert_eq!(r.get("cert_head"), "-----BEGIN CERTIFICATE-----");
    assert_eq!(
        r.get("pin_info"),
        "Ok((6, 6, false))",
        "certray reads 32 bits"
    );
    assert_eq!(
        r.get("pin_info_64"),
        "0xFFFFFFFF00000000",
        "a 64-bit reader sees garbage"
    );

    // enum-garbage-size: with no key present the size query says 0xFFFFFFC2.
    skf.set_present(DEVICE, false);
    let mut env = skf.env();
    env.push(("SOFTSKF_QUIRKS", "enum-garbage-size".into()));
    let r = softskf::run_child(test, "garbage", &env);
    assert_eq!(
        r.get("enum"),
        format!(
            "the library reported an implausible size of {} bytes (limit {})",
            0xFFFF_FFC2u32,
            abi::MAX_BUFFER
        )
    );
}

#[test]
fn injected_faults_crash_hang_and_fail() {
    let test = "injected_faults_crash_hang_and_fail";
    if softskf::child_role().is_some() {
        let skf = Skf::load(&softskf::library());
        emit("calling", "");
        let err = skf.enum_dev(true).unwrap_err();
        emit("enum", err);
        return;
    }
    let skf = SoftSkf::standard();
    let with_fault = |fault: &str| {
        let mut env = skf.env();
        env.push(("SOFTSKF_FAULT", fault.into()));
        env
    };
    // crash: the process dies of SIGSEGV inside SKF_EnumDev.
    let out = softskf::run_child_unchecked(test, "fault", &with_fault("crash:SKF_EnumDev"));
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGSEGV),
        "{}",
        common::output_text(&out)
    );
    // rc: the code comes back as is.
    let r = softskf::run_child(test, "fault", &with_fault("rc:SKF_EnumDev=0x0B000035"));
    assert_eq!(
        r.get("enum"),
        "vendor error 0x0B000035, SAR_CONTAINER_NOT_FOUND (Longmai)"
    );
    // hang: the call never returns.
    let (mut child, rx) = softskf::spawn_child(test, "fault", &with_fault("hang:EnumDev"));
    softskf::expect_line(&rx, "calling", Duration::from_secs(30));
    assert!(
        rx.recv_timeout(Duration::from_secs(2)).is_err(),
        "SKF_EnumDev returned despite hang:"
    );
    assert!(
        child.0.try_wait().unwrap().is_none(),
        "the hanging child exited"
    );
    drop(child); // killed
    let log = skf.call_log();
    let last = log.lines().last().unwrap_or_default();
    assert!(
        last.ends_with(" enter SKF_EnumDev"),
        "the hang happens inside the call: {last}"
    );
}
