//! Every signature is verified with the certificate's key before it leaves, through the
//! `certray` binary (`certray sign`, and `POST /v1/sign` of `certray run`) on a real SoftHSM
//! token provisioned with `pkcs11-tool`.
//!
//! The misconfiguration users meet: a token whose certificate is not its key's (the key of
//! one certificate stored under the CKA_ID of another). SoftHSM signs happily with that key;
//! OpenSSL confirms the signature is not the certificate's; certray must answer
//! `SIGNATURE_INVALID` (audited), never hand the signature out. The same token's correctly
//! paired key keeps signing, and OpenSSL verifies what it signs. Hash and key pairings SM2
//! does not allow are refused before any PIN.

use crate::common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::bridge::Daemon;
use common::*;
use serde_json::{Value, json};

const LABEL: &str = "certray-mismatch";
const PIN: &str = "123456";
const SO_PIN: &str = "12345678";
const DATA: &str = "纳税申报表 2026-11 · certray verify-before-return\n";

/// A SoftHSM token with
/// - 01: the rsa-bmp certificate with the rsa-utf8 key (RSA-2048 both: the wrong key);
/// - 02: the ec-expired certificate (P-256) with a fresh P-256 key from `openssl genpkey`;
/// - 03: the rsa-utf8 certificate with its own key (the control).
struct Mismatched {
    hsm: SoftHsm,
    _keys: tempfile::TempDir,
}

impl Mismatched {
    fn new() -> Mismatched {
        let hsm = SoftHsm::new();
        hsm.init_token(LABEL, SO_PIN, PIN);
        let keys = tempfile::tempdir().expect("tempdir");
        let other_ec = keys.path().join("other-p256.key.der");
        run(Command::new(require("openssl", "openssl"))
            .args(["genpkey", "-algorithm", "EC", "-pkeyopt"])
            .args(["ec_paramgen_curve:P-256", "-outform", "DER", "-out"])
            .arg(&other_ec));
        let pairs: [(&str, PathBuf, PathBuf, &str); 3] = [
            (
                "01",
                fixture("rsa-bmp.der"),
                fixture("rsa-utf8.key.der"),
                "rsa-wrong-key",
            ),
            ("02", fixture("ec-expired.der"), other_ec, "ec-wrong-key"),
            (
                "03",
                fixture("rsa-utf8.der"),
                fixture("rsa-utf8.key.der"),
                "rsa-right-key",
            ),
        ];
        for (id, cert, key, label) in &pairs {
            hsm.import(LABEL, PIN, id, Some(cert), Some(key), label);
        }
        Mismatched { hsm, _keys: keys }
    }
}

/// The id certray lists fixture `name`'s certificate under, from `certray list --json`.
fn cert_id(list: &Value, name: &str) -> String {
    let sha = openssl_sha256(&fixture(&format!("{name}.der")));
    list["certificates"]
        .as_array()
        .expect("certificates")
        .iter()
        .find(|c| c["sha256"] == sha.as_str())
        .unwrap_or_else(|| panic!("{name} not listed: {list:#}"))["id"]
        .as_str()
        .expect("id")
        .to_string()
}

/// The records of `audit.log` in `state_dir`.
fn audit(state_dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(state_dir.join("audit.log")).expect("audit.log");
    text.lines()
        .map(|l| serde_json::from_str(l).expect("an audit record is JSON"))
        .collect()
}

/// The public key of `key_der` (PKCS#8) signs `data` the way SoftHSM did: OpenSSL confirms
/// that what SoftHSM signs with the wrong key is a good signature of *that* key.
fn openssl_signs_with_key(key_der: &Path, hash: &str, data: &Path, sig: &Path) {
    run(Command::new(require("openssl", "openssl"))
        .arg("dgst")
        .arg(format!("-{hash}"))
        .args(["-keyform", "DER", "-sign"])
        .arg(key_der)
        .arg("-out")
        .arg(sig)
        .arg(data));
}

#[test]
fn cli_refuses_a_signature_that_is_not_the_certificates() {
    let t = Mismatched::new();
    let state = tempfile::tempdir().expect("tempdir");
    let mut env: Vec<(&str, OsString)> = t.hsm.env().to_vec();
    env.push(("XDG_STATE_HOME", state.path().into()));
    let config = t.hsm.config_file();
    let cmd = || {
        let mut c = certray(&env);
        c.arg("--config").arg(&config);
        c
    };
    let list: Value =
        serde_json::from_slice(&run(cmd().args(["list", "--json"])).stdout).expect("JSON");
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data.txt");
    std::fs::write(&data, DATA).unwrap();
    let sign = |id: &str, hash: &str, out: &Path| {
        let mut c = cmd();
        c.args(["--lang", "en", "sign", "--cert", id, "--hash", hash, "--in"])
            .arg(&data)
            .arg("--out")
            .arg(out)
            .arg("--pin-stdin");
        certray_with_input(&mut c, &format!("{PIN}\n"))
    };

    // The control: the right key signs, and OpenSSL verifies it with the certificate.
    let good = dir.path().join("good.sig");
    let out = sign(&cert_id(&list, "rsa-utf8"), "sha256", &good);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(openssl_verify(
        &fixture("rsa-utf8.der"),
        "sha256",
        &good,
        &data
    ));

    // The wrong keys: SoftHSM signs, certray withholds it.
    for (name, hash) in [("rsa-bmp", "sha256"), ("ec-expired", "sha384")] {
        let sig = dir.path().join(format!("{name}.sig"));
        let out = sign(&cert_id(&list, name), hash, &sig);
        let text = output_text(&out);
        assert_eq!(out.status.code(), Some(31), "{name}: {text}");
        assert!(text.contains("SIGNATURE_INVALID"), "{name}: {text}");
        assert!(
            text.contains("does not verify"),
            "{name}: the message says why: {text}"
        );
        assert!(!sig.exists(), "{name}: a signature was written");
    }
    // What the rsa-bmp certificate's slot holds is the rsa-utf8 key: OpenSSL's signature
    // with that key does not verify with the rsa-bmp certificate either (the referee agrees
    // there is nothing certray could have returned).
    let by_wrong_key = dir.path().join("by-wrong-key.sig");
    openssl_signs_with_key(&fixture("rsa-utf8.key.der"), "sha256", &data, &by_wrong_key);
    assert!(!openssl_verify(
        &fixture("rsa-bmp.der"),
        "sha256",
        &by_wrong_key,
        &data
    ));

    let records = audit(&state.path().join("certray"));
    let results: Vec<&str> = records
        .iter()
        .map(|r| r["result"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        results,
        ["ok", "SIGNATURE_INVALID", "SIGNATURE_INVALID"],
        "{records:#?}"
    );

    // SM3 is SM2's hash: an RSA key asked for it is refused before the PIN is read.
    let sig = dir.path().join("sm3.sig");
    let mut c = cmd();
    c.args([
        "sign",
        "--cert",
        &cert_id(&list, "rsa-utf8"),
        "--hash",
        "sm3",
    ])
    .arg("--in")
    .arg(&data)
    .arg("--out")
    .arg(&sig)
    .arg("--pin-stdin");
    let out = certray_with_input(&mut c, "");
    assert_eq!(out.status.code(), Some(30), "{}", output_text(&out));
    assert!(output_text(&out).contains("UNSUPPORTED_ALGORITHM"));
}

#[test]
fn bridge_refuses_a_signature_that_is_not_the_certificates() {
    let t = Mismatched::new();
    let d = Daemon::start(&t.hsm, "");
    let list = d.get("/v1/certificates").send().expect(200);
    let body = |id: &str, format: &str, hash: &str| {
        json!({
            "certificate_id": id,
            "data": B64.encode(DATA),
            "format": format,
            "hash": hash,
            "pin": PIN,
        })
    };
    // The control signs, raw and CMS.
    let good = cert_id(&list, "rsa-utf8");
    for format in ["raw", "cms"] {
        let v = d
            .post_json("/v1/sign", &body(&good, format, "sha256"))
            .send()
            .expect(200);
        assert!(!v["signature"].as_str().unwrap().is_empty());
    }
    let mut expected = vec!["ok", "ok"];
    for (name, hash) in [("rsa-bmp", "sha512"), ("ec-expired", "sha256")] {
        let id = cert_id(&list, name);
        for format in ["raw", "cms", "cms-detached"] {
            let r = d.post_json("/v1/sign", &body(&id, format, hash)).send();
            let e = r.expect_error(500, "SIGNATURE_INVALID");
            assert!(r.json().get("signature").is_none(), "{e}");
            expected.push("SIGNATURE_INVALID");
        }
    }
    // An RSA key with SM3: refused before the token is asked.
    d.post_json("/v1/sign", &body(&good, "raw", "sm3"))
        .send()
        .expect_error(422, "UNSUPPORTED_ALGORITHM");
    expected.push("UNSUPPORTED_ALGORITHM");
    let results: Vec<String> = audit(&d.state_dir())
        .iter()
        .map(|r| r["result"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(results, expected);
}
