//! OpenSSL (package `openssl`), the referee for certificates and signatures.

use std::ffi::OsStr;
use std::path::Path;
use std::process::{Command, Output};

use super::{require, run, run_unchecked};

/// `openssl ARGS…` (package `openssl`), status checked.
pub fn openssl<S: AsRef<OsStr>>(args: &[S]) -> Output {
    run(Command::new(require("openssl", "openssl")).args(args))
}

/// `openssl x509 -inform DER -in FILE -noout ARGS…`, which must succeed: what OpenSSL reads in
/// a DER certificate, as text (UTF-8 with `-nameopt utf8`).
pub fn openssl_x509(der: &Path, args: &[&str]) -> String {
    let out = run(Command::new(require("openssl", "openssl"))
        .args(["x509", "-inform", "DER", "-in"])
        .arg(der)
        .arg("-noout")
        .args(args));
    String::from_utf8(out.stdout).expect("openssl prints UTF-8 with -nameopt utf8")
}

/// The value after `prefix` on the first line of `text` that starts with it (after
/// indentation), as in OpenSSL's `-text` output.
pub fn line_after<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.trim_start().strip_prefix(prefix))
        .map(str::trim)
}

/// The serial number in `facts` (`openssl x509 -serial` output) as certray's model writes
/// it: lower-case hex without leading zero bytes ("0" for zero). OpenSSL prints whole bytes,
/// "00" for zero.
pub fn openssl_serial(facts: &str) -> String {
    let serial = line_after(facts, "serial=")
        .expect("serial")
        .to_ascii_lowercase();
    let mut serial = serial.as_str();
    while let Some(rest) = serial.strip_prefix("00") {
        serial = rest;
    }
    if serial.is_empty() { "0" } else { serial }.to_string()
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
