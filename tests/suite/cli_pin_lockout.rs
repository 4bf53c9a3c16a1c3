//! PIN lockout on opencryptoki's soft token, which locks a PIN the way USB keys do
//! (SoftHSM never locks): count low → final try (refused without --force, nothing sent to
//! the token) → locked → refused before the token is asked → unlocked with the SO PIN →
//! signing works again. Also the RSA fallback path: opencryptoki has no
//! CKM_SHA256_RSA_PKCS, so certray hashes on the host and uses CKM_RSA_PKCS.
//!
//! Needs root (opencryptoki's slot daemon and its system-wide token); the token is shared,
//! so the tests here run one at a time.

use crate::common;

use std::process::Output;

use common::*;
use serde_json::Value;
use serial_test::serial;

const PIN: &str = "1234";

struct Ock {
    ock: Opencryptoki,
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    token: String,
    cert: String,
}

impl Ock {
    fn new() -> Ock {
        let ock = Opencryptoki::setup();
        ock.reset_token("certray-lock", PIN);
        ock.import(
            PIN,
            "01",
            Some(&fixture("rsa-utf8.der")),
            Some(&fixture("rsa-utf8.key.der")),
            "rsa-utf8",
        );
        let dir = tempfile::tempdir().unwrap();
        let config = ock.config_file(dir.path());
        std::fs::write(
            dir.path().join("data.txt"),
            "增值税发票 certray lockout test\n",
        )
        .unwrap();
        let mut me = Ock {
            ock,
            dir,
            config,
            token: String::new(),
            cert: String::new(),
        };
        let list: Value =
            serde_json::from_slice(&run(me.cmd().args(["list", "--json"])).stdout).unwrap();
        assert_eq!(list["tokens"].as_array().unwrap().len(), 1, "{list:#}");
        me.token = list["tokens"][0]["id"].as_str().unwrap().to_string();
        let sha = openssl_sha256(&fixture("rsa-utf8.der"));
        me.cert = list["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["sha256"] == sha.as_str())
            .expect("imported certificate listed")["id"]
            .as_str()
            .unwrap()
            .to_string();
        me
    }

    fn cmd(&self) -> std::process::Command {
        let mut c = certray(&[]);
        c.arg("--config").arg(&self.config);
        c
    }

    fn sign(&self, pin: &str, force: bool) -> Output {
        let mut cmd = self.cmd();
        cmd.args(["sign", "--cert", &self.cert, "--pin-stdin", "--in"])
            .arg(self.dir.path().join("data.txt"))
            .arg("--out")
            .arg(self.dir.path().join("sig.bin"));
        if force {
            cmd.arg("--force");
        }
        certray_with_input(&mut cmd, &format!("{pin}\n"))
    }

    fn verified(&self) -> bool {
        openssl_verify(
            &fixture("rsa-utf8.der"),
            "sha256",
            &self.dir.path().join("sig.bin"),
            &self.dir.path().join("data.txt"),
        )
    }

    fn pin(&self) -> Value {
        let out = run(self
            .cmd()
            .args(["pin", "status", "--token", &self.token, "--json"]));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["pin"].clone()
    }
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
#[serial(opencryptoki)]
fn lockout_then_unlock_with_the_so_pin() {
    let t = Ock::new();
    let pin = t.pin();
    assert_eq!(
        (pin["min_len"].as_u64(), pin["max_len"].as_u64()),
        (Some(4), Some(8)),
        "{pin}"
    );
    assert!(t.sign(PIN, false).status.success());
    assert!(
        t.verified(),
        "RSA signature through CKM_RSA_PKCS does not verify"
    );

    // 1st wrong PIN: count low.
    let out = t.sign("9999", false);
    assert_eq!(code(&out), Some(20), "{}", output_text(&out));
    assert!(output_text(&out).contains("PIN_INCORRECT"));
    assert_eq!(t.pin()["count_low"], true);
    assert_eq!(t.pin()["final_try"], false);

    // 2nd wrong PIN: final try.
    let out = t.sign("9999", false);
    assert_eq!(code(&out), Some(20), "{}", output_text(&out));
    assert_eq!(t.pin()["final_try"], true, "{}", t.pin());
    assert!(
        t.ock.token_flags().contains("final user PIN try"),
        "{}",
        t.ock.token_flags()
    );

    // Without --force the CLI refuses and sends nothing: the token is still at its final try.
    let out = t.sign("9999", false);
    assert_eq!(code(&out), Some(22), "{}", output_text(&out));
    assert!(output_text(&out).contains("PIN_FINAL_TRY") && output_text(&out).contains("--force"));
    assert_eq!(t.pin()["final_try"], true);
    assert_eq!(t.pin()["locked"], false);
    // A PIN change refuses the same way.
    let mut change = t.cmd();
    change.args(["pin", "change", "--token", &t.token, "--pin-stdin"]);
    let out = certray_with_input(&mut change, "9999\n5555\n");
    assert_eq!(code(&out), Some(22), "{}", output_text(&out));
    assert_eq!(t.pin()["locked"], false);

    // With --force the wrong PIN goes through and locks the token.
    let out = t.sign("9999", true);
    assert!(matches!(code(&out), Some(20 | 21)), "{}", output_text(&out));
    assert_eq!(t.pin()["locked"], true, "{}", t.pin());
    assert!(t.ock.token_flags().contains("user PIN locked"));

    // Locked: even the right PIN is refused, and the user is told how to unlock.
    let out = t.sign(PIN, true);
    assert_eq!(code(&out), Some(21), "{}", output_text(&out));
    let text = output_text(&out);
    assert!(
        text.contains("PIN_LOCKED") && text.contains("certray pin unlock"),
        "{text}"
    );
    let out = certray_with_input(&mut change, &format!("{PIN}\n5555\n"));
    assert_eq!(code(&out), Some(21), "{}", output_text(&out));

    // Unlock with the SO PIN: a new PIN outside 4–8 is refused first.
    let mut unlock = t.cmd();
    unlock.args(["pin", "unlock", "--token", &t.token, "--pin-stdin"]);
    let out = certray_with_input(&mut unlock, &format!("{OPENCRYPTOKI_SO_PIN}\n123456789\n"));
    assert_eq!(code(&out), Some(23), "{}", output_text(&out));
    assert_eq!(t.pin()["locked"], true);
    let out = certray_with_input(&mut unlock, &format!("{OPENCRYPTOKI_SO_PIN}\n5678\n"));
    assert!(out.status.success(), "{}", output_text(&out));
    let pin = t.pin();
    assert_eq!(
        (pin["locked"].as_bool(), pin["final_try"].as_bool()),
        (Some(false), Some(false)),
        "{pin}"
    );

    // Sign again with the new PIN; then change it and sign once more.
    assert!(t.sign("5678", false).status.success());
    assert!(t.verified());
    let out = certray_with_input(&mut change, "5678\n8765\n");
    assert!(out.status.success(), "{}", output_text(&out));
    let out = t.sign("8765", false);
    assert!(
        out.status.success(),
        "{}\n{}",
        output_text(&out),
        t.ock.token_flags()
    );
    assert!(t.verified());
}

#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
#[serial(opencryptoki)]
fn a_wrong_so_pin_is_reported_and_leaves_the_user_pin_alone() {
    let t = Ock::new();
    let mut unlock = t.cmd();
    unlock.args(["pin", "unlock", "--token", &t.token, "--pin-stdin"]);
    let out = certray_with_input(&mut unlock, "00000000\n5678\n");
    assert_eq!(code(&out), Some(20), "{}", output_text(&out));
    assert!(output_text(&out).contains("PIN_INCORRECT"));
    assert!(t.sign(PIN, false).status.success());
    assert!(t.verified());
}

/// Issue 14, item 8: a PIN outside the token's range (4–8 on opencryptoki) is never sent, for
/// any PIN certray submits: the PIN of a signature, the current PIN of a change, the admin
/// PIN of an unlock. Before, the current PIN of a change and the admin PIN went to C_Login
/// whatever their length, and opencryptoki counted the try.
#[test]
#[serial(opencryptoki)]
fn a_pin_outside_the_range_is_never_sent() {
    let t = Ock::new();
    let mut change = t.cmd();
    change.args(["pin", "change", "--token", &t.token, "--pin-stdin"]);
    let mut unlock = t.cmd();
    unlock.args(["pin", "unlock", "--token", &t.token, "--pin-stdin"]);
    for wrong in ["123", "123456789"] {
        let out = t.sign(wrong, false);
        assert_eq!(code(&out), Some(23), "sign: {}", output_text(&out));
        let out = certray_with_input(&mut change, &format!("{wrong}\n5678\n"));
        assert_eq!(code(&out), Some(23), "change: {}", output_text(&out));
        assert!(output_text(&out).contains("PIN_LEN_RANGE"));
        let out = certray_with_input(&mut unlock, &format!("{wrong}\n5678\n"));
        assert_eq!(code(&out), Some(23), "unlock: {}", output_text(&out));
        assert!(output_text(&out).contains("PIN_LEN_RANGE"));
    }
    // Not one try was spent, user or SO.
    let flags = t.ock.token_flags();
    assert_eq!(t.pin()["count_low"], false, "{flags}");
    assert!(
        !flags.contains("PIN count low") && !flags.contains("final"),
        "{flags}"
    );
    assert!(t.sign(PIN, false).status.success());
    assert!(t.verified());
}
