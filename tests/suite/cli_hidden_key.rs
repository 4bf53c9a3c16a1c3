//! A token that shows its private keys only after login, with no public key objects: what
//! importing a PKCS#12 leaves. Before the PIN such a certificate is "unknown until login"
//! (`has_private_key: null`, 登录后确认), it is offered for signing, and the key is looked up
//! after login: it signs (OpenSSL verifies), or, really absent, NO_PRIVATE_KEY after the PIN.

use crate::common;

use common::bridge::Daemon;
use common::*;
use serde_json::Value;

const LABEL: &str = "hidden-keys";
const PIN: &str = "123456";
const SO_PIN: &str = "12345678";

/// SoftHSM token: 01 rsa-utf8 certificate + its private key as a private object (no public
/// key object), 02 rsa-bmp certificate whose key is nowhere.
fn hidden_key_token() -> (SoftHsm, std::path::PathBuf) {
    let hsm = SoftHsm::new();
    hsm.init_token(LABEL, SO_PIN, PIN);
    let login = ["--token-label", LABEL, "--login", "--pin", PIN];
    let key = fixture("rsa-utf8.key.der");
    let mut args: Vec<&std::ffi::OsStr> = login.iter().map(|s| s.as_ref()).collect();
    args.extend(
        [
            "--write-object".as_ref(),
            key.as_os_str(),
            "--type".as_ref(),
            "privkey".as_ref(),
            "--id".as_ref(),
            "01".as_ref(),
            "--usage-sign".as_ref(),
            "--private".as_ref(),
            "--label".as_ref(),
            "rsa-utf8".as_ref(),
        ]
        .iter(),
    );
    pkcs11_tool_run(&hsm.module(), &hsm.env(), &args);
    for (id, name) in [("01", "rsa-utf8"), ("02", "rsa-bmp")] {
        hsm.import(
            LABEL,
            PIN,
            id,
            Some(&fixture(&format!("{name}.der"))),
            None,
            name,
        );
    }
    // What the test is about: no key at all before login, the private key after it.
    let public = hsm.list_objects(LABEL, None);
    assert!(!public.contains("Key Object"), "{public}");
    let private = hsm.list_objects(LABEL, Some(PIN));
    assert!(private.contains("Private Key Object"), "{private}");
    assert!(!private.contains("Public Key Object"), "{private}");
    let config = hsm.config_file();
    (hsm, config)
}

fn cmd(hsm: &SoftHsm, config: &std::path::Path) -> std::process::Command {
    let mut c = certray(&hsm.env());
    c.arg("--config").arg(config);
    c
}

fn cert_id(list: &Value, name: &str) -> String {
    let sha = openssl_sha256(&fixture(&format!("{name}.der")));
    list["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["sha256"] == sha.as_str())
        .unwrap_or_else(|| panic!("{name} not listed: {list:#}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_key_hidden_until_login_is_unknown_then_signs_after_the_pin() {
    let (hsm, config) = hidden_key_token();
    let out = run(cmd(&hsm, &config).args(["list", "--json"]));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    for c in list["certificates"].as_array().unwrap() {
        assert!(c["has_private_key"].is_null(), "{c:#}");
    }
    let table = output_text(&run(cmd(&hsm, &config).arg("list")));
    assert!(table.contains("登录后确认"), "{table}");
    let en = output_text(&run(cmd(&hsm, &config)
        .env("CERTRAY_LANG", "en_US.UTF-8")
        .arg("list")));
    assert!(en.contains("confirmed after login"), "{en}");
    let id = cert_id(&list, "rsa-utf8");
    let show: Value =
        serde_json::from_slice(&run(cmd(&hsm, &config).args(["show", &id, "--json"])).stdout)
            .unwrap();
    assert!(show["has_private_key"].is_null(), "{show:#}");

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data.txt");
    let sig = dir.path().join("sig.bin");
    std::fs::write(
        &data,
        "纳税申报表 · a key shown only after login\n".repeat(20),
    )
    .unwrap();
    let sign = |id: &str| {
        let mut c = cmd(&hsm, &config);
        c.args(["sign", "--cert", id, "--in"])
            .arg(&data)
            .arg("--out")
            .arg(&sig)
            .arg("--pin-stdin");
        certray_with_input(&mut c, &format!("{PIN}\n"))
    };
    let out = sign(&id);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(
        openssl_verify(&fixture("rsa-utf8.der"), "sha256", &sig, &data),
        "the signature does not verify"
    );

    // Really no key: refused after the PIN, saying so.
    std::fs::remove_file(&sig).unwrap();
    let out = sign(&cert_id(&list, "rsa-bmp"));
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(12), "{text}");
    assert!(text.contains("NO_PRIVATE_KEY"), "{text}");
    assert!(text.contains("已登录密钥查找"), "{text}");
    assert!(text.contains("looked up after login"), "{text}");
    assert!(!sig.exists());
}

/// Through the daemon: once a signature shows the hidden key is there, the inventory says so
/// (`has_private_key: true`) to every front door, without waiting for a rescan; the
/// certificate whose key is really absent stays unknown.
#[test]
fn a_signature_confirms_a_hidden_key_in_the_running_inventory() {
    use base64::Engine;
    let (hsm, _config) = hidden_key_token();
    let d = Daemon::start(&hsm, "");
    let listed = || d.get("/v1/certificates").send().expect(200);
    let presence = |list: &Value, name: &str| {
        let id = cert_id(list, name);
        list["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id.as_str())
            .unwrap()["has_private_key"]
            .clone()
    };
    let before = listed();
    assert!(presence(&before, "rsa-utf8").is_null(), "{before:#}");
    assert!(presence(&before, "rsa-bmp").is_null(), "{before:#}");

    let data = "纳税申报表 · confirmed by its first signature\n".repeat(20);
    let b64 = base64::engine::general_purpose::STANDARD;
    // POST /v1/sign with the PIN, as a local program sends it, for the fixture `name`.
    let sign = |name: &str| {
        d.post_json(
            "/v1/sign",
            &serde_json::json!({
                "certificate_id": cert_id(&before, name),
                "data": b64.encode(&data),
                "pin": PIN,
            }),
        )
        .send()
    };
    let signed = sign("rsa-utf8").expect(200);
    let dir = tempfile::tempdir().unwrap();
    let (sig, data_file) = (dir.path().join("sig.bin"), dir.path().join("data.txt"));
    std::fs::write(&data_file, &data).unwrap();
    std::fs::write(
        &sig,
        b64.decode(signed["signature"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert!(
        openssl_verify(&fixture("rsa-utf8.der"), "sha256", &sig, &data_file),
        "the signature does not verify"
    );
    let after = listed();
    assert_eq!(presence(&after, "rsa-utf8"), true, "{after:#}");

    // Really no key: refused after the PIN, and still not claimed.
    sign("rsa-bmp").expect_error(409, "NO_PRIVATE_KEY");
    let last = listed();
    assert!(presence(&last, "rsa-bmp").is_null(), "{last:#}");
    assert_eq!(presence(&last, "rsa-utf8"), true, "{last:#}");
}
