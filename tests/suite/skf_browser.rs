//! A web page signs with an SM2 key through `/v1/sign` in a real browser: Debian's Chromium
//! (tests/browser/skf-sign.mjs, playwright-core) on a page of an origin in `[bridge]
//! allowed_origins` and `page_pin_origins`, against `certray run --headless` whose only key is
//! softskf's (tests/softskf, the test-only STAND-IN for GM/T 0016 USB keys, in the daemon's
//! `certray skf-host`). OpenSSL referees what the page got back (SKF.md §5.3, group 9):
//! - the raw signature: `pkeyutl -verify -rawin -digest sm3 -pkeyopt distid:1234567812345678`
//!   over the data (SM3 over Z‖M);
//! - the CMS SignedData: OpenSSL parses it; its certificate is the key's; the signature over
//!   the signed attributes verifies the same way (OpenSSL 3.0's `cms -verify` uses an empty
//!   SM2 ID, see tests/suite/cms_openssl.rs); its message digest is SM3 of the data, and the
//!   content is the data.
//!
//! Each check is shown to refuse an altered signature.
//!
//! Needs the Debian packages `nodejs npm chromium fonts-noto-cjk` and `openssl`.

use crate::common;

use std::ffi::OsString;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::bridge::Daemon;
use common::browser::{ensure_node_modules, require_browser_tools, run_node};
use common::skf::{self, SoftSkf};
use common::*;
use serde_json::Value;

use super::bridge_browser::StaticSite;

const DATA: &str = "增值税纳税申报表 · SM2 签名 · certray SKF browser test\n";
const PIN: &str = "123456";
const NODE_TIMEOUT: Duration = Duration::from_secs(120);
const PAGE: &[u8] =
    "<!doctype html><html lang=\"zh-CN\"><meta charset=\"utf-8\"><title>电子税务局（测试）</title><p>SM2 签名</p></html>"
        .as_bytes();

#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
fn a_web_page_signs_with_an_skf_sm2_key_and_openssl_verifies_raw_and_cms() {
    let (node, npm) = require_browser_tools();
    ensure_node_modules(&npm);
    let key = SoftSkf::standard();
    let cert_der = key.cert_der(skf::SM2_CONTAINER, "sign");
    let sha256 = openssl_sha256(&key.file(skf::SM2_CONTAINER, "sign.der"));

    let portal = StaticSite::start(8127, PAGE);
    let hsm = SoftHsm::new();
    let config = format!(
        "[skf]\nuse_defaults = false\nlibraries = [{lib:?}]\n[bridge]\nallowed_origins = [\"{origin}\"]\npage_pin_origins = [\"{origin}\"]\n",
        lib = skf::library().display().to_string(),
        origin = portal.origin,
    );
    let env: Vec<(&'static str, OsString)> = key.env();
    let d = Daemon::start_with(&hsm, &config, move |cmd| {
        cmd.env_remove("SOFTSKF_QUIRKS")
            .env_remove("SOFTSKF_FAULT")
            .envs(env.iter().map(|(k, v)| (*k, v)));
    });
    // The key is listed before the browser starts.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !d.get("/v1/certificates").send().expect(200)["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["sha256"] == sha256.as_str())
    {
        assert!(
            Instant::now() < deadline,
            "the SM2 key is not listed:\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let lines = run_browser(&node, &d, &portal, &sha256);
    let answer = |format: &str| -> Value {
        let prefix = format!("SIGNED {format} ");
        let line = lines
            .iter()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no {format} answer:\n{}", lines.join("\n")));
        let (status, body) = line.split_once(' ').unwrap();
        assert_eq!(status, "200", "{format}: {body}");
        serde_json::from_str(body).unwrap()
    };

    // Raw: a DER SM2 signature over SM3(Z‖M), with the key's certificate alongside.
    let raw = answer("raw");
    assert_eq!(
        B64.decode(raw["certificate"].as_str().unwrap()).unwrap(),
        cert_der
    );
    let sig = B64.decode(raw["signature"].as_str().unwrap()).unwrap();
    let (ok, why) = skf::openssl_sm2_verify(&cert_der, DATA.as_bytes(), &sig);
    assert!(ok, "OpenSSL refused the page's raw SM2 signature: {why}");
    let (ok, _) = skf::openssl_sm2_verify(&cert_der, DATA.as_bytes(), &altered(&sig));
    assert!(!ok, "OpenSSL accepted an altered raw signature");

    // CMS SignedData with the content attached.
    let cms = answer("cms");
    let der = B64.decode(cms["signature"].as_str().unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cms_path = dir.path().join("signed.p7s");
    std::fs::write(&cms_path, &der).unwrap();
    let printed = output_text(&openssl(&[
        "cms",
        "-cmsout",
        "-print",
        "-inform",
        "DER",
        "-in",
        cms_path.to_str().unwrap(),
    ]));
    assert!(
        printed.contains("pkcs7-signedData") && printed.contains("sm3"),
        "OpenSSL does not read an SM3 SignedData:\n{printed}"
    );
    let signed = SignedParts::of(&der);
    assert_eq!(
        signed.certificates,
        vec![cert_der.clone()],
        "the signer certificate"
    );
    assert_eq!(signed.content.as_deref(), Some(DATA.as_bytes()), "content");
    {
        use sm3::Digest as _;
        assert_eq!(
            signed.message_digest,
            sm3::Sm3::digest(DATA.as_bytes()).to_vec(),
            "the message-digest attribute is not SM3 of the data"
        );
    }
    let (ok, why) = skf::openssl_sm2_verify(&cert_der, &signed.attributes, &signed.signature);
    assert!(
        ok,
        "OpenSSL refused the signature over the signed attributes: {why}"
    );
    let (ok, _) =
        skf::openssl_sm2_verify(&cert_der, &signed.attributes, &altered(&signed.signature));
    assert!(!ok, "OpenSSL accepted an altered CMS signature");
    assert!(!d.stderr().contains(PIN), "a PIN reached the daemon's log");
}

/// The signature with one bit of r flipped (still DER: the byte after the INTEGER header).
fn altered(sig: &[u8]) -> Vec<u8> {
    let mut bad = sig.to_vec();
    bad[sig.len() / 2] ^= 0x01;
    bad
}

/// What the checks need of a DER SignedData, read with the `cms` crate.
struct SignedParts {
    certificates: Vec<Vec<u8>>,
    content: Option<Vec<u8>>,
    /// The signed attributes as the signature covers them (a SET OF).
    attributes: Vec<u8>,
    message_digest: Vec<u8>,
    signature: Vec<u8>,
}

impl SignedParts {
    fn of(der: &[u8]) -> SignedParts {
        use ::cms::cert::CertificateChoices;
        use der::asn1::OctetString;
        use der::{Decode, Encode};
        let info = ::cms::content_info::ContentInfo::from_der(der).expect("ContentInfo");
        let sd: ::cms::signed_data::SignedData = info.content.decode_as().expect("SignedData");
        let certificates = sd
            .certificates
            .as_ref()
            .map(|set| {
                set.0
                    .iter()
                    .map(|c| match c {
                        CertificateChoices::Certificate(c) => c.to_der().unwrap(),
                        other => panic!("not a certificate: {other:?}"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let content = sd.encap_content_info.econtent.as_ref().map(|any| {
            any.decode_as::<OctetString>()
                .expect("OCTET STRING content")
                .as_bytes()
                .to_vec()
        });
        assert_eq!(sd.signer_infos.0.len(), 1, "one SignerInfo");
        let si = sd.signer_infos.0.iter().next().unwrap();
        let attrs = si.signed_attrs.as_ref().expect("signed attributes");
        const MESSAGE_DIGEST: der::oid::ObjectIdentifier =
            der::oid::ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
        let message_digest = attrs
            .iter()
            .find(|a| a.oid == MESSAGE_DIGEST)
            .expect("a message-digest attribute")
            .values
            .iter()
            .next()
            .expect("its value")
            .decode_as::<OctetString>()
            .expect("an OCTET STRING")
            .as_bytes()
            .to_vec();
        SignedParts {
            certificates,
            content,
            attributes: attrs.to_der().unwrap(),
            message_digest,
            signature: si.signature.as_bytes().to_vec(),
        }
    }
}

/// Run tests/browser/skf-sign.mjs; its output lines.
fn run_browser(
    node: &std::path::Path,
    d: &Daemon,
    portal: &StaticSite,
    sha256: &str,
) -> Vec<String> {
    run_node(
        node,
        "skf-sign.mjs",
        &[
            ("CERTRAY_BRIDGE_URL", d.url("").into()),
            ("CERTRAY_PORTAL_URL", portal.origin.clone().into()),
            ("CERTRAY_CERT_SHA256", sha256.into()),
            ("CERTRAY_DATA", DATA.into()),
            ("CERTRAY_PIN", PIN.into()),
        ],
        NODE_TIMEOUT,
        |_| {},
        || d.stderr(),
    )
}
