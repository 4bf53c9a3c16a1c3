//! Issuer verification as every interface reports it, on one SoftHSM token that holds
//! - the fixture CA (`tests/fixtures/make-certs.sh`'s `ca`) and rsa-utf8, which it issued:
//!   verified, the issuer on the token, the chain up to the CA;
//! - a copy of serial-uscc (also issued by the CA) with one bit of its signature flipped:
//!   the issuer is found, the signature is invalid — listed and flagged, not hidden;
//! - SHECA's personal certificate 22 of the real-certificate corpus, whose issuer (02,
//!   SHECA SM2) and root (01, NRCAC) are named by `[trust] ca_paths` and read in place from
//!   `../shared/fixtures/real-certs`: verified, an SM2 chain to the root;
//! - MCSCA's 24, whose issuer is nowhere: not found.
//!
//! Checked through `certray list --json`, `show --json`, the human `list` and `show`, and
//! the bridge's `GET /v1/certificates` and `/v1/certificates/{id}` of a running daemon; and
//! refereed by `openssl verify` for the fixture CA's certificates (the corpus chains are
//! checked against OpenSSL in `cert_corpus`).

use crate::common;

use std::path::{Path, PathBuf};

use common::bridge::Daemon;
use common::*;
use serde_json::{Value, json};

const LABEL: &str = "issuers";
const PIN: &str = "123456";
const SO_PIN: &str = "12345678";

const SHECA_PERSONAL: &str = "22-sheca-sm2-personal-bmpstring.der";
const SHECA_SUBCA: &str = "02-sheca-sm2-subca.der";
const NRCAC_ROOT: &str = "01-nrcac-sm2-root.der";
const MCSCA_PERSONAL: &str = "24-mcsca-sm2-personal-idext.der";

/// `[trust] ca_paths = [...]` naming `paths`.
fn trust_config(paths: &[PathBuf]) -> String {
    let quoted: Vec<String> = paths
        .iter()
        .map(|p| {
            let s = p.to_str().expect("UTF-8 path");
            assert!(!s.contains(['"', '\\']), "needs TOML escaping: {s}");
            format!("\"{s}\"")
        })
        .collect();
    format!("[trust]\nca_paths = [{}]\n", quoted.join(", "))
}

/// The listed certificate with object label `label`.
fn by_label<'a>(list: &'a Value, label: &str) -> &'a Value {
    list["certificates"]
        .as_array()
        .expect("certificates")
        .iter()
        .find(|c| c["label"] == label)
        .unwrap_or_else(|| panic!("{label} not listed: {list:#}"))
}

/// `(id, source, status)` of each certificate of a chain, and its end.
fn chain_of(c: &Value) -> (Vec<(String, String, String)>, String) {
    let chain = &c["chain"];
    let links = chain["certificates"]
        .as_array()
        .unwrap_or_else(|| panic!("no chain: {c:#}"))
        .iter()
        .map(|l| {
            (
                l["id"].as_str().unwrap().to_string(),
                l["source"].as_str().unwrap().to_string(),
                l["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (links, chain["end"].as_str().unwrap().to_string())
}

fn link(id: &Value, source: &str, status: &str) -> (String, String, String) {
    (
        id.as_str().unwrap().to_string(),
        source.to_string(),
        status.to_string(),
    )
}

/// `openssl verify` of `cert` (DER file) with `ca` (DER file) as the only anchor.
fn openssl_verifies(dir: &Path, cert: &Path, ca: &Path) -> bool {
    let pem = |from: &Path, name: &str| {
        let to = dir.join(name);
        openssl(&[
            "x509".as_ref(),
            "-inform".as_ref(),
            "DER".as_ref(),
            "-in".as_ref(),
            from.as_os_str(),
            "-out".as_ref(),
            to.as_os_str(),
        ]);
        to
    };
    let ca = pem(ca, "ca.pem");
    let cert = pem(cert, "cert.pem");
    run_unchecked(
        std::process::Command::new(require("openssl", "openssl"))
            .arg("verify")
            .arg("-CAfile")
            .arg(&ca)
            .arg(&cert),
    )
    .status
    .success()
}

#[test]
fn issuer_checks_in_list_show_and_the_bridge() {
    let hsm = SoftHsm::new();
    hsm.init_token(LABEL, SO_PIN, PIN);
    hsm.import(
        LABEL,
        PIN,
        "01",
        Some(&fixture("rsa-utf8.der")),
        Some(&fixture("rsa-utf8.key.der")),
        "rsa-utf8",
    );
    hsm.import(LABEL, PIN, "0a", Some(&fixture("ca.der")), None, "ca");
    // The signature BIT STRING ends the certificate: flip a bit of its last byte.
    let mut tampered = std::fs::read(fixture("serial-uscc.der")).unwrap();
    *tampered.last_mut().unwrap() ^= 0x01;
    let scratch = tempfile::tempdir().unwrap();
    let tampered_file = scratch.path().join("tampered.der");
    std::fs::write(&tampered_file, &tampered).unwrap();
    hsm.write_raw_cert(LABEL, PIN, "0b", &tampered, "tampered");
    hsm.import(
        LABEL,
        PIN,
        "22",
        Some(&corpus(SHECA_PERSONAL)),
        None,
        "sheca",
    );
    hsm.import(
        LABEL,
        PIN,
        "24",
        Some(&corpus(MCSCA_PERSONAL)),
        None,
        "mcsca",
    );

    // OpenSSL, the referee: the CA made rsa-utf8 and serial-uscc, not the tampered copy.
    assert!(openssl_verifies(
        scratch.path(),
        &fixture("rsa-utf8.der"),
        &fixture("ca.der")
    ));
    assert!(openssl_verifies(
        scratch.path(),
        &fixture("serial-uscc.der"),
        &fixture("ca.der")
    ));
    assert!(!openssl_verifies(
        scratch.path(),
        &tampered_file,
        &fixture("ca.der")
    ));

    let ca_paths = [corpus(SHECA_SUBCA), corpus(NRCAC_ROOT)];
    let daemon = Daemon::start(&hsm, &trust_config(&ca_paths));
    let out = run(daemon.certray().args(["list", "--json"]));
    let list: Value = serde_json::from_slice(&out.stdout).expect("list --json is JSON");
    assert_eq!(
        list["certificates"].as_array().unwrap().len(),
        5,
        "{list:#}"
    );

    // The CA checks itself; rsa-utf8 verifies with the CA on the same token.
    let ca = by_label(&list, "ca");
    let ca_id = &ca["id"];
    assert_eq!(
        ca["issuer_verified"],
        json!({
            "status": "verified",
            "issuer_id": ca_id,
            "issuer_subject": "CN=Certray Test CA,O=Certray 测试,C=CN",
            "issuer_source": "self",
        })
    );
    assert_eq!(
        chain_of(ca),
        (vec![link(ca_id, "token", "verified")], "root".into())
    );
    let rsa = by_label(&list, "rsa-utf8");
    assert_eq!(
        rsa["issuer_verified"],
        json!({
            "status": "verified",
            "issuer_id": ca_id,
            "issuer_subject": "CN=Certray Test CA,O=Certray 测试,C=CN",
            "issuer_source": "token",
        })
    );
    assert_eq!(
        chain_of(rsa),
        (
            vec![
                link(&rsa["id"], "token", "verified"),
                link(ca_id, "token", "verified")
            ],
            "root".into()
        )
    );

    // The tampered copy: listed (flagged, not hidden), the issuer found, the signature bad.
    let bad = by_label(&list, "tampered");
    assert_eq!(bad["status"], "valid", "it still parses: {bad:#}");
    assert_eq!(
        bad["issuer_verified"],
        json!({
            "status": "signature_invalid",
            "issuer_id": ca_id,
            "issuer_subject": "CN=Certray Test CA,O=Certray 测试,C=CN",
            "issuer_source": "token",
        })
    );
    assert_eq!(
        chain_of(bad),
        (
            vec![link(&bad["id"], "token", "signature_invalid")],
            "signature_invalid".into()
        )
    );

    // SHECA's SM2 certificate: its CA and root from ca_paths.
    let sheca = by_label(&list, "sheca");
    assert_eq!(sheca["issuer_verified"]["status"], "verified", "{sheca:#}");
    assert_eq!(sheca["issuer_verified"]["issuer_source"], "ca_paths");
    assert_eq!(
        sheca["issuer_verified"]["issuer_subject"],
        "CN=SHECA SM2,O=UniTrust,C=CN"
    );
    let (links, end) = chain_of(sheca);
    assert_eq!(end, "root");
    assert_eq!(
        links
            .iter()
            .map(|(_, source, status)| (source.as_str(), status.as_str()))
            .collect::<Vec<_>>(),
        [
            ("token", "verified"),
            ("ca_paths", "verified"),
            ("ca_paths", "verified")
        ]
    );
    assert_eq!(
        sheca["chain"]["certificates"][2]["subject"],
        "CN=ROOTCA,O=NRCAC,C=CN"
    );
    assert_eq!(
        links[1].0,
        sheca["issuer_verified"]["issuer_id"].as_str().unwrap()
    );

    // MCSCA's: no issuer anywhere (the corpus' 07 names the same CA but another key
    // signed 24).
    let mcsca = by_label(&list, "mcsca");
    assert_eq!(
        mcsca["issuer_verified"],
        json!({
            "status": "issuer_not_found",
            "issuer_id": null,
            "issuer_subject": null,
            "issuer_source": null,
        })
    );
    assert_eq!(
        chain_of(mcsca),
        (
            vec![link(&mcsca["id"], "token", "issuer_not_found")],
            "issuer_not_found".into()
        )
    );
    assert_eq!(mcsca["owner"], "唐好凯");

    // `show --json` is the listed object.
    for label in ["rsa-utf8", "tampered", "sheca", "mcsca"] {
        let c = by_label(&list, label);
        let out = run(daemon
            .certray()
            .args(["show", c["id"].as_str().unwrap(), "--json"]));
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(&shown, c, "{label}");
    }

    // The human views.
    let show = |c: &Value| {
        let out = run(daemon.certray().args(["show", c["id"].as_str().unwrap()]));
        String::from_utf8(out.stdout).unwrap()
    };
    let text = show(sheca);
    assert!(
        text.contains("颁发者已验证（配置的 CA 证书）")
            && text.contains("CN=SHECA SM2,O=UniTrust,C=CN（配置的 CA 证书）")
            && text.contains("CN=ROOTCA,O=NRCAC,C=CN（配置的 CA 证书）")
            && text.contains("到根证书，全部验证通过"),
        "{text}"
    );
    let text = show(bad);
    assert!(text.contains("签名无效：与颁发者证书不符"), "{text}");
    let text = show(mcsca);
    assert!(
        text.contains("无法验证颁发者：未找到颁发者证书") && text.contains("[trust] ca_paths"),
        "{text}"
    );
    let out = run(daemon.certray().arg("list"));
    let text = String::from_utf8(out.stdout).unwrap();
    let note = format!("注：{} 签名无效", bad["id"].as_str().unwrap());
    assert!(text.contains(&note), "{note} missing in:\n{text}");

    // The bridge gives the same checks and chains.
    let r = daemon.get("/v1/certificates").send();
    assert_eq!(r.status, 200, "{}", r.text());
    let served = r.json();
    for c in list["certificates"].as_array().unwrap() {
        let s = served["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["id"] == c["id"])
            .unwrap_or_else(|| panic!("{} not served", c["id"]));
        assert_eq!(s["issuer_verified"], c["issuer_verified"], "{}", c["label"]);
        assert_eq!(s["chain"], c["chain"], "{}", c["label"]);
    }
    let r = daemon
        .get(&format!(
            "/v1/certificates/{}",
            sheca["id"].as_str().unwrap()
        ))
        .send();
    assert_eq!(r.status, 200, "{}", r.text());
    let one = r.json();
    assert_eq!(one["chain"], sheca["chain"]);
    assert_eq!(one["issuer_verified"], sheca["issuer_verified"]);
    assert!(
        one["pem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );

    // Without ca_paths the same certificate's issuer is nowhere to be found: the config is
    // what made it verify.
    let plain = scratch.path().join("plain.toml");
    std::fs::write(&plain, common::bridge::config_text("")).unwrap();
    let out = run(certray(&hsm.env())
        .arg("--config")
        .arg(&plain)
        .args(["list", "--json"]));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        by_label(&list, "sheca")["issuer_verified"]["status"],
        "issuer_not_found"
    );
    assert_eq!(
        by_label(&list, "rsa-utf8")["issuer_verified"]["status"],
        "verified",
        "its CA is on the token"
    );
}
