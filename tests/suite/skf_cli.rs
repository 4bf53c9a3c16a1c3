//! SKF keys through the real `certray` binary: softskf (tests/softskf, the test-only
//! STAND-IN for GM/T 0016 USB keys) loaded by `certray skf-host` processes that the CLI
//! starts, configured by `[skf] libraries`. OpenSSL referees every signature.
//!
//! SKF.md §5.3: enumeration and certificates (3), SM2 (4) and RSA (5) signatures verified
//! by OpenSSL, the `sm2-double-hash` negative control refused, the PIN state machine across
//! processes (6), crash and hang isolation (8).

use crate::common;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, Output};

use common::skf::{self, AppSpec, ContainerSpec, DeviceSpec, SoftSkf};
use common::*;
use serde_json::Value;

const DATA: &str = "增值税发票 certray SKF test\n";

struct Fx {
    skf: SoftSkf,
    /// The RSA certificate's id, once looked up (it signs SHA-256).
    rsa_cert: Option<String>,
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Fx {
    /// The user PIN's tries left, as softskf's own state counts them.
    fn user_tries_left(&self) -> u32 {
        self.skf
            .pin_counters(skf::DEVICE, skf::APP)
            .unwrap()
            .user
            .remaining
    }

    fn new(skf: SoftSkf) -> Fx {
        Fx::with_timeout(skf, 30_000)
    }

    fn with_timeout(skf: SoftSkf, timeout_ms: u64) -> Fx {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                "[pkcs11]\nuse_defaults = false\n[skf]\nuse_defaults = false\ntimeout_ms = {timeout_ms}\nlibraries = [{:?}]\n",
                skf::library().display().to_string()
            ),
        )
        .unwrap();
        std::fs::write(dir.path().join("data.txt"), DATA).unwrap();
        Fx {
            skf,
            rsa_cert: None,
            dir,
            config,
        }
    }

    fn env(&self, extra: &[(&'static str, &str)]) -> Vec<(&'static str, OsString)> {
        let mut env = self.skf.env();
        env.extend(extra.iter().map(|(k, v)| (*k, OsString::from(v))));
        env
    }

    fn cmd(&self, extra: &[(&'static str, &str)]) -> Command {
        let mut c = certray(&[]);
        c.env_remove("SOFTSKF_QUIRKS")
            .env_remove("SOFTSKF_FAULT")
            .envs(self.env(extra))
            .env("CERTRAY_LANG", "en_US.UTF-8")
            .arg("--config")
            .arg(&self.config);
        c
    }

    fn list(&self) -> Value {
        serde_json::from_slice(&run(self.cmd(&[]).args(["list", "--json"])).stdout).unwrap()
    }

    /// The certificate id of the signing certificate of `container`.
    fn cert_id(&self, list: &Value, container: &str) -> String {
        let der = self.skf.cert_der(container, "sign");
        let sha = {
            let p = self.dir.path().join(format!("{container}.der"));
            std::fs::write(&p, &der).unwrap();
            openssl_sha256(&p)
        };
        list["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["sha256"].as_str() == Some(sha.as_str()))
            .unwrap_or_else(|| panic!("no certificate of {container} in {list:#}"))["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn sign(
        &self,
        cert: &str,
        pin: &str,
        force: bool,
        extra: &[(&'static str, &str)],
    ) -> (Output, PathBuf) {
        let out = self.dir.path().join("sig.der");
        let _ = std::fs::remove_file(&out);
        let mut c = self.cmd(extra);
        // SM2 certificates sign SM3, RSA ones SHA-256.
        let hash = if cert == self.rsa_cert.as_deref().unwrap_or("") {
            "sha256"
        } else {
            "sm3"
        };
        c.args([
            "sign",
            "--hash",
            hash,
            "--cert",
            cert,
            "--pin-stdin",
            "--in",
        ])
        .arg(self.dir.path().join("data.txt"))
        .arg("--out")
        .arg(&out);
        if force {
            c.arg("--force");
        }
        (certray_with_input(&mut c, &format!("{pin}\n")), out)
    }

    /// `cert` (the SM2 key of `container`) signs DATA with the right PIN, and OpenSSL
    /// verifies the signature against the container's certificate.
    fn signs_sm2_verified(&self, cert: &str, container: &str) {
        let (out, sig) = self.sign(cert, "123456", false, &[]);
        assert!(out.status.success(), "{}", output_text(&out));
        let (ok, why) = skf::openssl_sm2_verify(
            &self.skf.cert_der(container, "sign"),
            DATA.as_bytes(),
            &std::fs::read(sig).unwrap(),
        );
        assert!(ok, "OpenSSL refused certray's SM2 signature: {why}");
    }

    fn pin_status(&self, token: &str) -> Value {
        let out = run(self
            .cmd(&[])
            .args(["pin", "status", "--json", "--token", token]));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["pin"].clone()
    }
}

/// The command's output names `code` (a user-facing error code), else the test fails
/// showing the output.
fn assert_says(out: &Output, code: &str) {
    let text = output_text(out);
    assert!(text.contains(code), "expected {code}:\n{text}");
}

fn token_id(list: &Value) -> String {
    list["tokens"][0]["id"].as_str().unwrap().to_owned()
}

fn sm2_and_rsa() -> SoftSkf {
    SoftSkf::new(vec![
        DeviceSpec::new(skf::DEVICE).app(
            AppSpec::new(skf::APP)
                .container(ContainerSpec::sm2(skf::SM2_CONTAINER).with_enc())
                .container(ContainerSpec::rsa(skf::RSA_CONTAINER)),
        ),
    ])
}

#[test]
fn skf_list_shows_the_device_its_certificates_and_pin_tries() {
    let fx = Fx::new(sm2_and_rsa());
    let list = fx.list();
    let tokens = list["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1, "{list:#}");
    assert_eq!(tokens[0]["model"], "GM/T 0016 (SKF)", "{list:#}");
    // Sign and encryption certificates of the SM2 container, the RSA one: byte-identical
    // to what was provisioned (their SHA-256 is how cert_id finds them).
    let certs = list["certificates"].as_array().unwrap();
    assert_eq!(certs.len(), 3, "{list:#}");
    fx.cert_id(&list, skf::SM2_CONTAINER);
    fx.cert_id(&list, skf::RSA_CONTAINER);
    assert_eq!(tokens[0]["pin"]["tries_left"], 6, "{list:#}");
    // The id is stable across processes (and so across re-insertion).
    assert_eq!(fx.list()["tokens"][0]["id"], tokens[0]["id"]);
}

#[test]
fn skf_sm2_and_rsa_signatures_verify_with_openssl() {
    let mut fx = Fx::new(sm2_and_rsa());
    let list = fx.list();
    let sm2 = fx.cert_id(&list, skf::SM2_CONTAINER);
    fx.signs_sm2_verified(&sm2, skf::SM2_CONTAINER);

    let rsa = fx.cert_id(&list, skf::RSA_CONTAINER);
    fx.rsa_cert = Some(rsa.clone());
    let (out, sig) = fx.sign(&rsa, "123456", false, &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    let cert = fx.dir.path().join("rsa.der");
    std::fs::write(&cert, fx.skf.cert_der(skf::RSA_CONTAINER, "sign")).unwrap();
    assert!(
        openssl_verify(&cert, "sha256", &sig, &fx.dir.path().join("data.txt")),
        "OpenSSL refused certray's RSA signature"
    );
}

#[test]
fn skf_a_gbk_container_name_shows_in_chinese_and_signs() {
    // "签名容器" as Chinese vendor tools write it: GBK, the bytes of Python's codec.
    const GBK: &[u8] = b"\xc7\xa9\xc3\xfb\xc8\xdd\xc6\xf7";
    let fx = Fx::new(SoftSkf::new(vec![DeviceSpec::new(skf::DEVICE).app(
        AppSpec::new(skf::APP).container(ContainerSpec::sm2(skf::SM2_CONTAINER).spelled(GBK)),
    )]));
    let list = fx.list();
    let sm2 = fx.cert_id(&list, skf::SM2_CONTAINER);
    let cert = list["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == sm2.as_str())
        .unwrap();
    assert_eq!(cert["label"], "签名容器", "{list:#}");
    // The library gets its own bytes back (softskf opens a container by its exact bytes):
    // the container opens and signs.
    fx.signs_sm2_verified(&sm2, skf::SM2_CONTAINER);
}

#[test]
fn skf_a_library_that_hashes_twice_gets_its_signature_refused() {
    let fx = Fx::new(SoftSkf::standard());
    let list = fx.list();
    let sm2 = fx.cert_id(&list, skf::SM2_CONTAINER);
    let (out, sig) = fx.sign(
        &sm2,
        "123456",
        false,
        &[("SOFTSKF_QUIRKS", "sm2-double-hash")],
    );
    let text = output_text(&out);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("SIGNATURE_INVALID"), "{text}");
    assert!(!sig.exists(), "a bad signature was written");
    // The same key without the quirk signs, and OpenSSL agrees.
    fx.signs_sm2_verified(&sm2, skf::SM2_CONTAINER);
}

#[test]
fn skf_pin_counts_down_needs_force_on_the_last_try_locks_and_unlocks() {
    let mut app = AppSpec::new(skf::APP).container(ContainerSpec::sm2(skf::SM2_CONTAINER));
    app.user_retries = 3;
    app.admin_retries = 3;
    app.user_pin_is_default = true;
    let fx = Fx::new(SoftSkf::new(vec![DeviceSpec::new(skf::DEVICE).app(app)]));
    let list = fx.list();
    let token = token_id(&list);
    let sm2 = fx.cert_id(&list, skf::SM2_CONTAINER);
    let pin = fx.pin_status(&token);
    assert_eq!(pin["tries_left"], 3, "{pin:#}");
    assert_eq!(pin["default_pin"], true, "{pin:#}");

    // Each wrong PIN costs one try, in the key's own counters (every command is a new
    // process and a new host: the counters persist like a key's).
    let (out, _) = fx.sign(&sm2, "000000", false, &[]);
    assert_says(&out, "PIN_INCORRECT");
    assert_eq!(fx.user_tries_left(), 2);
    let (out, _) = fx.sign(&sm2, "000000", false, &[]);
    assert_says(&out, "PIN_INCORRECT");
    assert_eq!(fx.pin_status(&token)["final_try"], true);
    // The last try is refused without --force, and nothing reaches the key.
    let (out, _) = fx.sign(&sm2, "000000", false, &[]);
    assert_says(&out, "PIN_FINAL_TRY");
    assert_eq!(fx.user_tries_left(), 1);
    let (out, _) = fx.sign(&sm2, "000000", true, &[]);
    assert_says(&out, "PIN_LOCKED");
    // Locked: even the right PIN is refused before the key is asked.
    let (out, _) = fx.sign(&sm2, "123456", true, &[]);
    assert_says(&out, "PIN_LOCKED");

    // A wrong admin PIN costs an admin try; the right one unblocks with a new user PIN.
    let unlock = |admin: &str, new: &str| {
        let mut c = fx.cmd(&[]);
        c.args(["pin", "unlock", "--pin-stdin", "--token", &token]);
        certray_with_input(&mut c, &format!("{admin}\n{new}\n"))
    };
    let out = unlock("87654321", "654321");
    assert_says(&out, "PIN_INCORRECT");
    assert_eq!(
        fx.skf
            .pin_counters(skf::DEVICE, skf::APP)
            .unwrap()
            .admin
            .remaining,
        2
    );
    let out = unlock("12345678", "654321");
    assert!(out.status.success(), "{}", output_text(&out));
    let pin = fx.pin_status(&token);
    assert_eq!(pin["locked"], false, "{pin:#}");
    assert_eq!(pin["tries_left"], 3, "{pin:#}");
    assert_eq!(pin["default_pin"], false, "{pin:#}");
    let (out, sig) = fx.sign(&sm2, "654321", false, &[]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(sig.exists());

    // Change the PIN; the old one no longer works.
    let mut c = fx.cmd(&[]);
    c.args(["pin", "change", "--pin-stdin", "--token", &token]);
    let out = certray_with_input(&mut c, "654321\n11223344\n");
    assert!(out.status.success(), "{}", output_text(&out));
    let (out, _) = fx.sign(&sm2, "11223344", false, &[]);
    assert!(out.status.success(), "{}", output_text(&out));
}

#[test]
fn skf_admin_lock_is_final() {
    let mut app = AppSpec::new(skf::APP).container(ContainerSpec::sm2(skf::SM2_CONTAINER));
    app.user_retries = 1;
    app.admin_retries = 1;
    let fx = Fx::new(SoftSkf::new(vec![DeviceSpec::new(skf::DEVICE).app(app)]));
    let list = fx.list();
    let token = token_id(&list);
    let sm2 = fx.cert_id(&list, skf::SM2_CONTAINER);
    let (out, _) = fx.sign(&sm2, "000000", true, &[]);
    assert_says(&out, "PIN_LOCKED");
    let unlock = |admin: &str, force: bool| {
        let mut c = fx.cmd(&[]);
        c.args(["pin", "unlock", "--pin-stdin", "--token", &token]);
        if force {
            c.arg("--force");
        }
        certray_with_input(&mut c, &format!("{admin}\n654321\n"))
    };
    // One admin try left: refused without --force.
    let out = unlock("00000000", false);
    assert_says(&out, "PIN_FINAL_TRY");
    let out = unlock("00000000", true);
    assert_says(&out, "PIN_LOCKED");
    let out = unlock("12345678", true);
    assert_says(&out, "PIN_LOCKED");
    assert_eq!(
        fx.skf
            .pin_counters(skf::DEVICE, skf::APP)
            .unwrap()
            .admin
            .remaining,
        0
    );
}

#[test]
fn skf_a_crashing_or_hanging_library_costs_a_host_not_the_command() {
    let fx = Fx::with_timeout(SoftSkf::standard(), 3_000);
    let list = fx.list();
    let sm2 = fx.cert_id(&list, skf::SM2_CONTAINER);
    // The library segfaults in SKF_ECCSignData: the host dies, certray says so clearly.
    let (out, _) = fx.sign(
        &sm2,
        "123456",
        false,
        &[("SOFTSKF_FAULT", "crash:SKF_ECCSignData")],
    );
    let text = output_text(&out);
    assert!(text.contains("SKF_HOST_CRASHED"), "{text}");
    assert!(text.contains("SIGSEGV"), "{text}");
    assert_eq!(out.status.code(), Some(13), "{text}");
    // It hangs in SKF_VerifyPIN: killed after the timeout.
    let (out, _) = fx.sign(
        &sm2,
        "123456",
        false,
        &[("SOFTSKF_FAULT", "hang:SKF_VerifyPIN")],
    );
    let text = output_text(&out);
    assert!(text.contains("SKF_HOST_HUNG"), "{text}");
    // A library that crashes while listing devices: doctor names the library and why.
    let out = run_unchecked(
        fx.cmd(&[("SOFTSKF_FAULT", "crash:SKF_EnumDev")])
            .args(["doctor", "--json"]),
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "skf")
        .unwrap_or_else(|| panic!("no skf check: {report:#}"));
    let lib = &check["data"]["libraries"][0];
    assert_eq!(lib["loaded"], true, "{check:#}");
    assert!(
        lib["incidents"][0]
            .as_str()
            .unwrap_or("")
            .contains("SIGSEGV"),
        "{check:#}"
    );
    assert_eq!(check["status"], "warning", "{check:#}");
    // Nothing broken stays behind: the next command works.
    let (out, _) = fx.sign(&sm2, "123456", false, &[]);
    assert!(out.status.success(), "{}", output_text(&out));
}

#[test]
fn skf_doctor_lists_the_library_and_its_device() {
    let fx = Fx::new(SoftSkf::standard());
    let out = run_unchecked(fx.cmd(&[]).args(["doctor", "--json"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "skf")
        .unwrap_or_else(|| panic!("no skf check: {report:#}"));
    assert_eq!(check["status"], "ok", "{check:#}");
    assert_eq!(
        check["data"]["libraries"][0]["devices"][0],
        skf::DEVICE,
        "{check:#}"
    );
}

#[test]
fn skf_vendor_quirks_are_tolerated() {
    // SKF.md §3.8: lists without the double NUL, PEM certificates, vendor bits in DEVINFO,
    // a GetPINInfo whose return register has garbage above 32 bits.
    let fx = Fx::new(sm2_and_rsa());
    for quirk in [
        "no-double-nul",
        "pem-cert",
        "caps-vendor-bits",
        "getpininfo-long",
    ] {
        let out = run_unchecked(
            fx.cmd(&[("SOFTSKF_QUIRKS", quirk)])
                .args(["list", "--json"]),
        );
        assert!(out.status.success(), "{quirk}: {}", output_text(&out));
        let list: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            list["tokens"].as_array().unwrap().len(),
            1,
            "{quirk}: {list:#}"
        );
        assert_eq!(
            list["certificates"].as_array().unwrap().len(),
            3,
            "{quirk}: {list:#}"
        );
        assert_eq!(
            list["tokens"][0]["pin"]["tries_left"], 6,
            "{quirk}: {list:#}"
        );
        fx.cert_id(&list, skf::SM2_CONTAINER);
    }
    // A library that reports a garbage size with no device present (Longmai without USB):
    // no token, no huge allocation, the command still answers.
    fx.skf.set_present(skf::DEVICE, false);
    let out = run_unchecked(
        fx.cmd(&[("SOFTSKF_QUIRKS", "enum-garbage-size")])
            .args(["list", "--json"]),
    );
    let list: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", output_text(&out)));
    assert!(list["tokens"].as_array().unwrap().is_empty(), "{list:#}");
}

#[test]
fn skf_a_library_that_answers_incorrect_on_the_locking_try_still_locks() {
    let mut app = AppSpec::new(skf::APP).container(ContainerSpec::sm2(skf::SM2_CONTAINER));
    app.user_retries = 2;
    let fx = Fx::new(SoftSkf::new(vec![DeviceSpec::new(skf::DEVICE).app(app)]));
    let list = fx.list();
    let sm2 = fx.cert_id(&list, skf::SM2_CONTAINER);
    let quirk = [("SOFTSKF_QUIRKS", "pin-incorrect-at-zero")];
    let (out, _) = fx.sign(&sm2, "000000", false, &quirk);
    assert_says(&out, "PIN_INCORRECT");
    // The locking try answers SAR_PIN_INCORRECT with 0 left: certray says locked.
    let (out, _) = fx.sign(&sm2, "000000", true, &quirk);
    assert_says(&out, "PIN_LOCKED");
    assert_eq!(out.status.code(), Some(21));
}

#[test]
fn skf_libraries_that_cannot_serve_are_named_with_the_reason() {
    let skf = SoftSkf::standard();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let missing = dir.path().join("libnosuchskf.so");
    let no_sign = skf::variant("no-ecc-sign");
    std::fs::write(
        &config,
        format!(
            "[pkcs11]\nuse_defaults = false\n[skf]\nuse_defaults = false\nlibraries = [{:?}, {:?}]\n",
            missing.display().to_string(),
            no_sign.display().to_string()
        ),
    )
    .unwrap();
    let cmd = || {
        let mut c = certray(&skf.env());
        c.env("CERTRAY_LANG", "en_US.UTF-8")
            .arg("--config")
            .arg(&config);
        c
    };
    let out = run_unchecked(cmd().args(["list"]));
    let text = output_text(&out);
    assert!(text.contains("libnosuchskf.so"), "{text}");
    assert!(text.contains("SKF_ECCSignData"), "{text}");
    let out = run_unchecked(cmd().args(["doctor", "--json"]));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let check = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "skf")
        .unwrap()
        .clone();
    assert_eq!(check["status"], "error", "{check:#}");
    let libs = check["data"]["libraries"].as_array().unwrap();
    assert_eq!(libs.len(), 2, "{check:#}");
    assert!(libs.iter().all(|l| l["loaded"] == false), "{check:#}");
    assert!(
        libs[1]["error"]
            .as_str()
            .unwrap()
            .contains("SKF_ECCSignData"),
        "{check:#}"
    );
}

#[test]
fn skf_a_library_without_optional_functions_still_lists_and_signs_sm2() {
    // The `minimal` build exports only what certray requires: no events, no
    // SKF_RSASignData, no SKF_GetContainerType…
    let skf = SoftSkf::standard();
    let fx = Fx::new(skf);
    std::fs::write(
        &fx.config,
        format!(
            "[pkcs11]\nuse_defaults = false\n[skf]\nuse_defaults = false\nlibraries = [{:?}]\n",
            skf::variant("minimal").display().to_string()
        ),
    )
    .unwrap();
    let list = fx.list();
    let sm2 = fx.cert_id(&list, skf::SM2_CONTAINER);
    fx.signs_sm2_verified(&sm2, skf::SM2_CONTAINER);
}
