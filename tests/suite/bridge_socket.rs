//! The bridge over a real socket: `certray run --headless` on a SoftHSM token, driven by a
//! hand-written HTTP/1.1 client so that every header is exactly what a test says. Each rule
//! of "who may call it" (issue 4) is attacked and seen refused; the happy paths are checked
//! with OpenSSL (`openssl dgst`, `openssl cms -verify`).
//!
//! Each test has its own token and daemon: PIN flags (moved by wrong PINs) and the audit log
//! are per test.

use crate::common;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::bridge::{Daemon, Response, bridge_token, non_loopback_ipv4};
use common::*;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const LABEL: &str = "bridge-test";
const PIN: &str = "123456";
const SO_PIN: &str = "12345678";
const ALLOWED: &str = "http://localhost:8123";
const LEGACY: &str = "http://legacy.localhost:8124";
const UNKNOWN: &str = "https://evil.example";
/// A valid USCC that no certificate on the token carries.
const OTHER_USCC: &str = "91350100M000100Y43";
/// The USCC of `rsa-utf8`.
const RSA_USCC: &str = "91110108MA01ABCDEN";

/// The bridge config of these tests. (Listing the legacy portal in `allowed_origins` too is
/// not needed: see `a_page_pin_origin_is_also_an_allowed_origin`.)
fn extra_config() -> String {
    format!(
        "[bridge]\nallowed_origins = [\"{ALLOWED}\", \"{LEGACY}\"]\npage_pin_origins = [\"{LEGACY}\"]\n"
    )
}

/// A token with 01 rsa-utf8 (cert + key), 02 ec-expiring (cert + key, P-384) and 06
/// serial-uscc (a certificate with digitalSignature but no key), and a daemon serving it.
struct Fx {
    d: Daemon,
    rsa: String,
    ec: String,
    keyless: String,
    token: String,
    // Last: the daemon must stop before the token store goes.
    _hsm: SoftHsm,
}

fn token() -> SoftHsm {
    bridge_token(LABEL, SO_PIN, PIN)
}

fn setup_with(extra: &str) -> Fx {
    let hsm = token();
    let d = Daemon::start(&hsm, extra);
    let list = d.get("/v1/certificates").send().expect(200);
    let id_of = |name: &str| {
        let sha = openssl_sha256(&fixture(&format!("{name}.der")));
        list["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["sha256"] == sha.as_str())
            .unwrap_or_else(|| panic!("{name} not served: {list:#}"))["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (rsa, ec, keyless) = (
        id_of("rsa-utf8"),
        id_of("ec-expiring"),
        id_of("serial-uscc"),
    );
    let token = list["certificates"][0]["token_id"]
        .as_str()
        .unwrap()
        .to_string();
    Fx {
        d,
        rsa,
        ec,
        keyless,
        token,
        _hsm: hsm,
    }
}

fn setup() -> Fx {
    setup_with(&extra_config())
}

/// Percent-encode a query value.
fn q(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

const DATA: &str = "纳税申报表 2026-11 · certray bridge test\n";

impl Fx {
    /// `POST /v1/sign` from `origin` (None: a local program).
    fn sign(&self, origin: Option<&str>, body: Value) -> Response {
        self.d
            .post_json("/v1/sign", &body)
            .maybe_origin(origin)
            .send()
    }

    fn authenticate(&self, origin: Option<&str>, body: Value) -> Response {
        self.d
            .post_json("/v1/authenticate", &body)
            .maybe_origin(origin)
            .send()
    }

    fn sign_body(&self, cert: &str, data: &[u8], pin: &str) -> Value {
        json!({"certificate_id": cert, "data": B64.encode(data), "pin": pin})
    }
}

/// Write `bytes` into `dir/name`.
fn file(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The signature answer's `signature` decoded, after checking the certificate it names.
fn signature_of(v: &Value, fixture_name: &str) -> Vec<u8> {
    let cert = B64.decode(v["certificate"].as_str().unwrap()).unwrap();
    assert_eq!(
        cert,
        std::fs::read(fixture(&format!("{fixture_name}.der"))).unwrap(),
        "answer's certificate is not {fixture_name}"
    );
    B64.decode(v["signature"].as_str().expect("signature"))
        .unwrap()
}

/// `openssl dgst -HASH -verify` of a raw signature over `data` with the fixture's key.
fn verify_raw(fixture_name: &str, hash: &str, sig: &[u8], data: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    openssl_verify(
        &fixture(&format!("{fixture_name}.der")),
        hash,
        &file(dir.path(), "sig.bin", sig),
        &file(dir.path(), "data.bin", data),
    )
}

/// `openssl cms -verify -binary -noverify -inform DER [-content DATA]`: the content it
/// verified (stdout), or a panic with OpenSSL's complaint.
fn cms_verify(sig: &[u8], detached_content: Option<&[u8]>) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let sig_path = file(dir.path(), "sig.der", sig);
    let mut cmd = std::process::Command::new(require("openssl", "openssl"));
    cmd.args([
        "cms",
        "-verify",
        "-binary",
        "-noverify",
        "-inform",
        "DER",
        "-in",
    ])
    .arg(&sig_path);
    if let Some(c) = detached_content {
        cmd.arg("-content").arg(file(dir.path(), "content.bin", c));
    }
    let out = run_unchecked(&mut cmd);
    assert!(
        out.status.success()
            && String::from_utf8_lossy(&out.stderr).contains("Verification successful"),
        "openssl cms -verify failed: {}",
        output_text(&out)
    );
    out.stdout
}

fn contains_cjk(s: &str) -> bool {
    s.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c))
}

// ---------------------------------------------------------------------------------------------
// Rule 1: loopback only
// ---------------------------------------------------------------------------------------------

#[test]
fn rule1_listening_off_loopback_is_refused_at_start() {
    let hsm = token();
    for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:21088"] {
        let (_home, config, env) =
            Daemon::prepare(&hsm, &format!("[bridge]\nlisten = \"{listen}\"\n"));
        let mut cmd = certray(&env);
        cmd.arg("--config").arg(&config).args(["run", "--headless"]);
        let out = run_unchecked(&mut cmd);
        assert_eq!(
            out.status.code(),
            Some(3),
            "listen = {listen}: {}",
            output_text(&out)
        );
        let text = output_text(&out);
        assert!(text.contains("CONFIG_INVALID"), "{text}");
        assert!(text.contains("loopback"), "{text}");
    }
}

#[test]
fn rule1_non_loopback_peer_is_refused() {
    let fx = setup();
    let ip = non_loopback_ipv4().expect(
        "this machine has no non-loopback IPv4 address to connect from \
         (rule 1 is also covered by bridge_router's MockConnectInfo test)",
    );
    // The same request from loopback is served...
    fx.d.get("/v1/status").send().expect(200);
    // ...and from this machine's own non-loopback address it is not, Host and all correct.
    for path in ["/v1/status", "/v1/certificates", "/v1/events"] {
        let r = fx.d.get(path).source_ip(ip).send();
        r.expect_error(403, "HOST_NOT_ALLOWED");
    }
    let r =
        fx.d.post_json("/v1/sign", &fx.sign_body(&fx.rsa, DATA.as_bytes(), PIN))
            .source_ip(ip)
            .send();
    r.expect_error(403, "HOST_NOT_ALLOWED");
    assert!(
        !fx.d.state_dir().join("audit.log").exists(),
        "a refused peer reached the signing code"
    );
}

// ---------------------------------------------------------------------------------------------
// Rule 2: Host
// ---------------------------------------------------------------------------------------------

#[test]
fn rule2_foreign_host_is_refused_and_loopback_hosts_are_served() {
    let fx = setup();
    let port = fx.d.port();
    let other = if port == u16::MAX { port - 1 } else { port + 1 };
    for host in [
        format!("evil.example:{port}"),
        "evil.example".to_string(),
        format!("127.0.0.1:{other}"),
        "127.0.0.1".to_string(),
        format!("localhost.evil.example:{port}"),
        format!("127.0.0.2:{port}"),
    ] {
        let r = fx.d.get("/v1/certificates").host(&host).send();
        let e = r.expect_error(403, "HOST_NOT_ALLOWED");
        assert!(
            r.header("access-control-allow-origin").is_none(),
            "{host}: {e}"
        );
        // Even from an allowed origin (DNS rebinding keeps the page's origin).
        let r =
            fx.d.get("/v1/certificates")
                .host(&host)
                .origin(ALLOWED)
                .send();
        r.expect_error(403, "HOST_NOT_ALLOWED");
        assert!(r.header("access-control-allow-origin").is_none());
    }
    let r = fx.d.get("/v1/certificates").no_host().send();
    r.expect_error(403, "HOST_NOT_ALLOWED");

    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ] {
        let v = fx.d.get("/v1/status").host(&host).send().expect(200);
        assert_eq!(v["name"], "certray", "{host}");
    }
}

// ---------------------------------------------------------------------------------------------
// Rules 3 and 4: Origin and CORS
// ---------------------------------------------------------------------------------------------

#[test]
fn rule3_null_origin_is_refused() {
    let fx = setup();
    for path in ["/v1/status", "/v1/certificates"] {
        let r = fx.d.get(path).origin("null").send();
        r.expect_error(403, "ORIGIN_NOT_ALLOWED");
        assert!(r.header("access-control-allow-origin").is_none());
    }
    let r =
        fx.d.post_json("/v1/sign", &fx.sign_body(&fx.rsa, b"x", PIN))
            .origin("null")
            .send();
    r.expect_error(403, "ORIGIN_NOT_ALLOWED");
    assert!(r.header("access-control-allow-origin").is_none());
}

#[test]
fn rule4_unknown_origin_gets_no_cors_grant() {
    let fx = setup();
    for origin in [
        UNKNOWN,
        "http://localhost:8124",
        "https://localhost:8123",
        "http://localhost:8123.evil.example",
        "http://LOCALHOST:8123",
    ] {
        for path in ["/v1/status", "/v1/certificates", "/v1/events"] {
            let r = fx.d.get(path).origin(origin).send();
            r.expect_error(403, "ORIGIN_NOT_ALLOWED");
            assert!(
                r.header("access-control-allow-origin").is_none(),
                "{origin} {path}: {:?}",
                r.headers
            );
        }
        let r =
            fx.d.post_json("/v1/sign", &fx.sign_body(&fx.rsa, b"x", PIN))
                .origin(origin)
                .send();
        r.expect_error(403, "ORIGIN_NOT_ALLOWED");
        assert!(r.header("access-control-allow-origin").is_none());
    }
    assert!(!fx.d.state_dir().join("audit.log").exists());
}

#[test]
fn rule4_allowed_origin_gets_exactly_its_origin_back() {
    let fx = setup();
    for path in ["/v1/status", "/v1/tokens", "/v1/certificates"] {
        let r = fx.d.get(path).origin(ALLOWED).send();
        r.expect(200);
        assert_eq!(
            r.headers_named("access-control-allow-origin"),
            vec![ALLOWED],
            "{path}"
        );
        let vary = r.headers_named("vary").join(",");
        assert!(
            vary.split(',')
                .any(|v| v.trim().eq_ignore_ascii_case("origin")),
            "{path}: Vary {vary:?}"
        );
        assert!(
            !r.headers.iter().any(|(_, v)| v == "*"),
            "a wildcard header: {:?}",
            r.headers
        );
    }
    // Errors from an allowed origin are readable by that page too.
    let r =
        fx.d.get("/v1/certificates/c-0000000000000000")
            .origin(ALLOWED)
            .send();
    r.expect_error(404, "CERT_NOT_FOUND");
    assert_eq!(r.header("access-control-allow-origin"), Some(ALLOWED));
}

#[test]
fn rule4_preflights() {
    let fx = setup();
    let preflight = |origin: &str, pna: bool| {
        let mut r =
            fx.d.request("OPTIONS", "/v1/sign")
                .origin(origin)
                .header("Access-Control-Request-Method", "POST")
                .header("Access-Control-Request-Headers", "content-type");
        if pna {
            r = r.header("Access-Control-Request-Private-Network", "true");
        }
        r.send()
    };
    // Unknown origin: no grant of any kind.
    for pna in [false, true] {
        let r = preflight(UNKNOWN, pna);
        assert!(r.status >= 400, "{} {:?}", r.status, r.headers);
        for h in [
            "access-control-allow-origin",
            "access-control-allow-methods",
            "access-control-allow-headers",
            "access-control-allow-private-network",
        ] {
            assert!(
                r.header(h).is_none(),
                "{h} granted to {UNKNOWN}: {:?}",
                r.headers
            );
        }
    }
    let r = preflight("null", true);
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(r.header("access-control-allow-private-network").is_none());

    // Allowed origin: exactly its origin, the methods and Content-Type; PNA only when asked.
    let r = preflight(ALLOWED, false);
    assert!(
        (200..300).contains(&r.status),
        "{} {:?}",
        r.status,
        r.headers
    );
    assert_eq!(r.header("access-control-allow-origin"), Some(ALLOWED));
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert!(
        r.header("access-control-allow-headers")
            .unwrap()
            .to_ascii_lowercase()
            .contains("content-type")
    );
    assert!(
        r.header("vary")
            .unwrap()
            .to_ascii_lowercase()
            .contains("origin")
    );
    assert!(r.header("access-control-allow-private-network").is_none());
    let r = preflight(ALLOWED, true);
    assert_eq!(r.header("access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(
        r.header("access-control-allow-private-network"),
        Some("true")
    );
    // A preflight has no effect: nothing was signed.
    assert!(!fx.d.state_dir().join("audit.log").exists());
}

#[test]
fn rule3_no_origin_is_a_local_program_and_is_served() {
    let fx = setup();
    let r = fx.d.get("/v1/certificates").send();
    let v = r.expect(200);
    assert_eq!(v["certificates"].as_array().unwrap().len(), 3);
    // No CORS grant to nobody.
    assert!(r.header("access-control-allow-origin").is_none());
    // And a local program may sign with the PIN in the request.
    let v = fx
        .sign(None, fx.sign_body(&fx.rsa, DATA.as_bytes(), PIN))
        .expect(200);
    assert!(verify_raw(
        "rsa-utf8",
        "sha256",
        &signature_of(&v, "rsa-utf8"),
        DATA.as_bytes()
    ));
}

// ---------------------------------------------------------------------------------------------
// Rule 5: JSON bodies only, GET has no effects
// ---------------------------------------------------------------------------------------------

#[test]
fn rule5_form_and_text_posts_are_refused() {
    let fx = setup();
    let json_text = serde_json::to_string(&fx.sign_body(&fx.rsa, DATA.as_bytes(), PIN)).unwrap();
    let form = format!(
        "certificate_id={}&data={}&pin={PIN}",
        fx.rsa,
        q(&B64.encode(DATA))
    );
    let cases: [(&str, &str); 5] = [
        ("application/x-www-form-urlencoded", &form),
        ("text/plain", &json_text),
        ("text/plain;charset=UTF-8", &json_text),
        ("multipart/form-data; boundary=x", &json_text),
        ("application/json-evil", &json_text),
    ];
    for origin in [None, Some(ALLOWED)] {
        for (ct, body) in cases {
            for path in ["/v1/sign", "/v1/authenticate"] {
                let r =
                    fx.d.request("POST", path)
                        .body(ct, body.as_bytes())
                        .maybe_origin(origin)
                        .send();
                r.expect_error(415, "UNSUPPORTED_MEDIA_TYPE");
            }
        }
        // No Content-Type at all.
        let r = fx.d.request("POST", "/v1/sign").maybe_origin(origin).send();
        r.expect_error(415, "UNSUPPORTED_MEDIA_TYPE");
    }
    // `application/json; charset=utf-8` is JSON.
    let r =
        fx.d.request("POST", "/v1/sign")
            .body("Application/JSON; charset=utf-8", json_text.as_bytes())
            .send();
    r.expect(200);
    // GET on the POST endpoints: 405, nothing signed.
    for path in ["/v1/sign", "/v1/authenticate"] {
        let r =
            fx.d.get(&format!(
                "{path}?certificate_id={}&data=eA%3D%3D&pin={PIN}",
                fx.rsa
            ))
            .send();
        assert_eq!(r.status, 405, "GET {path}: {}", r.text());
    }
    let audit = std::fs::read_to_string(fx.d.state_dir().join("audit.log")).unwrap();
    assert_eq!(
        audit.lines().count(),
        1,
        "only the JSON post signed: {audit}"
    );
}

// ---------------------------------------------------------------------------------------------
// Rule 6: who may send a PIN
// ---------------------------------------------------------------------------------------------

#[test]
fn rule6_page_pin_only_from_legacy_origins_and_local_programs() {
    let fx = setup();
    let body = fx.sign_body(&fx.rsa, DATA.as_bytes(), PIN);
    // An allowed origin that is not a legacy portal may not collect PINs.
    let r = fx.sign(Some(ALLOWED), body.clone());
    r.expect_error(403, "PAGE_PIN_NOT_ALLOWED");
    assert_eq!(r.header("access-control-allow-origin"), Some(ALLOWED));
    let r = fx.authenticate(
        Some(ALLOWED),
        json!({"certificate_id": fx.rsa, "challenge": B64.encode([7u8; 32]), "pin": PIN}),
    );
    r.expect_error(403, "PAGE_PIN_NOT_ALLOWED");
    // The legacy portal and a local program may.
    for origin in [Some(LEGACY), None] {
        let v = fx.sign(origin, body.clone()).expect(200);
        assert!(verify_raw(
            "rsa-utf8",
            "sha256",
            &signature_of(&v, "rsa-utf8"),
            DATA.as_bytes()
        ));
    }
    // The bridge's own check page counts as certray's code, not a website.
    let own = format!("http://127.0.0.1:{}", fx.d.port());
    let v = fx.sign(Some(&own), body.clone()).expect(200);
    assert!(verify_raw(
        "rsa-utf8",
        "sha256",
        &signature_of(&v, "rsa-utf8"),
        DATA.as_bytes()
    ));
    // No PIN and no dialog to ask (headless): 401, from anyone.
    let no_pin = json!({"certificate_id": fx.rsa, "data": B64.encode(DATA)});
    for origin in [Some(ALLOWED), Some(LEGACY), None] {
        let e = fx
            .sign(origin, no_pin.clone())
            .expect_error(401, "PIN_REQUIRED");
        assert!(e.get("pin").is_none() || e["pin"].is_object(), "{e}");
    }
    let v = fx.d.get("/v1/status").send().expect(200);
    assert_eq!(v["ui"], false);
}

#[test]
fn a_page_pin_origin_is_also_an_allowed_origin() {
    // Listed in `page_pin_origins` only: the administrator has vouched for the portal, so it
    // may call (and send its PIN) without also being listed in `allowed_origins`.
    let fx = setup_with(&format!(
        "[bridge]\nallowed_origins = [\"{ALLOWED}\"]\npage_pin_origins = [\"{LEGACY}\"]\n"
    ));
    let r = fx.sign(Some(LEGACY), fx.sign_body(&fx.rsa, DATA.as_bytes(), PIN));
    r.expect(200);
    assert_eq!(r.header("access-control-allow-origin"), Some(LEGACY));
    // And a third origin still is not.
    let r = fx.sign(
        Some("http://other.localhost:8127"),
        fx.sign_body(&fx.rsa, DATA.as_bytes(), PIN),
    );
    r.expect_error(403, "ORIGIN_NOT_ALLOWED");
}

// ---------------------------------------------------------------------------------------------
// Rule 7: a PIN in a request is always checked
// ---------------------------------------------------------------------------------------------

#[test]
fn rule7_wrong_pin_after_a_good_one_is_refused() {
    let fx = setup();
    for cert in [&fx.rsa, &fx.ec] {
        fx.sign(None, fx.sign_body(cert, DATA.as_bytes(), PIN))
            .expect(200);
        for origin in [None, Some(LEGACY)] {
            let r = fx.sign(origin, fx.sign_body(cert, DATA.as_bytes(), "000000"));
            let e = r.expect_error(401, "PIN_INCORRECT");
            let pin = &e["pin"];
            for flag in [
                "min_len",
                "max_len",
                "initialized",
                "count_low",
                "final_try",
                "locked",
                "to_be_changed",
            ] {
                assert!(!pin[flag].is_null(), "error.pin.{flag} missing: {e}");
            }
            assert_eq!(pin["locked"], false, "{e}");
            assert!(e.get("retries_left").is_none_or(|v| v.is_u64()), "{e}");
        }
        // The right PIN still works afterwards (SoftHSM never locks).
        fx.sign(None, fx.sign_body(cert, DATA.as_bytes(), PIN))
            .expect(200);
    }
    let auth = fx.authenticate(
        None,
        json!({"certificate_id": fx.rsa, "challenge": B64.encode([1u8; 32]), "pin": "000000"}),
    );
    auth.expect_error(401, "PIN_INCORRECT");
}

// ---------------------------------------------------------------------------------------------
// Rule 8: body limits
// ---------------------------------------------------------------------------------------------

#[test]
fn rule8_body_limits() {
    let fx = setup();
    // Over 64 KiB to /v1/authenticate (and the other endpoints).
    let big = json!({"certificate_id": fx.rsa, "challenge": "A".repeat(70 * 1024), "pin": PIN});
    fx.authenticate(None, big.clone())
        .expect_error(413, "PAYLOAD_TOO_LARGE");
    // 17 MiB to /v1/sign.
    let huge = vec![0x5au8; 17 * 1024 * 1024];
    let r = fx.sign(None, fx.sign_body(&fx.rsa, &huge, PIN));
    r.expect_error(413, "PAYLOAD_TOO_LARGE");
    // 1 MiB (1.3 MiB of JSON) signs, raw.
    let mib: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let v = fx.sign(None, fx.sign_body(&fx.rsa, &mib, PIN)).expect(200);
    assert!(verify_raw(
        "rsa-utf8",
        "sha256",
        &signature_of(&v, "rsa-utf8"),
        &mib
    ));
    // The daemon is still fine.
    fx.d.get("/v1/status").send().expect(200);
    let audit = std::fs::read_to_string(fx.d.state_dir().join("audit.log")).unwrap();
    let last: Value = serde_json::from_str(audit.lines().last().unwrap()).unwrap();
    assert_eq!(last["bytes"], 1024 * 1024);
}

// ---------------------------------------------------------------------------------------------
// Rule 9: audit log
// ---------------------------------------------------------------------------------------------

#[test]
fn rule9_every_sign_and_authenticate_is_audited() {
    let fx = setup();
    let challenge = B64.encode([9u8; 48]);
    fx.sign(None, fx.sign_body(&fx.rsa, DATA.as_bytes(), PIN))
        .expect(200);
    fx.sign(
        Some(LEGACY),
        json!({"certificate_id": fx.ec, "data": B64.encode(DATA), "pin": PIN, "format": "cms-detached"}),
    )
    .expect(200);
    fx.sign(None, fx.sign_body(&fx.rsa, b"abc", "000000"))
        .expect_error(401, "PIN_INCORRECT");
    fx.authenticate(
        Some(ALLOWED),
        json!({"certificate_id": fx.rsa, "challenge": challenge}),
    )
    .expect_error(401, "PIN_REQUIRED");
    fx.authenticate(
        None,
        json!({"certificate_id": fx.ec, "challenge": challenge, "pin": PIN}),
    )
    .expect(200);

    let text = std::fs::read_to_string(fx.d.state_dir().join("audit.log")).expect("audit.log");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let want = [
        ("local", "sign", &fx.rsa, "raw", DATA.len(), "ok"),
        (
            "http://legacy.localhost:8124",
            "sign",
            &fx.ec,
            "cms-detached",
            DATA.len(),
            "ok",
        ),
        ("local", "sign", &fx.rsa, "raw", 3, "PIN_INCORRECT"),
        (
            ALLOWED,
            "authenticate",
            &fx.rsa,
            "certray-auth:2",
            48,
            "PIN_REQUIRED",
        ),
        ("local", "authenticate", &fx.ec, "certray-auth:2", 48, "ok"),
    ];
    assert_eq!(lines.len(), want.len(), "{text}");
    for (l, (origin, op, cert, format, bytes, result)) in lines.iter().zip(want) {
        assert_eq!(l["origin"], origin, "{l}");
        assert_eq!(l["operation"], op, "{l}");
        assert_eq!(l["certificate_id"], cert.as_str(), "{l}");
        assert_eq!(l["format"], format, "{l}");
        assert_eq!(l["bytes"], bytes, "{l}");
        assert_eq!(l["result"], result, "{l}");
        let time = l["time"].as_str().unwrap();
        assert!(
            time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "time {time}"
        );
        assert!(!l.to_string().contains(PIN), "a PIN in the audit log: {l}");
    }
    assert!(!text.contains(PIN) && !text.contains("000000"));

    // `certray audit --json` with the same XDG_STATE_HOME prints the same records.
    let out = run(fx.d.certray().args(["audit", "--json"]));
    let printed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(printed, Value::Array(lines));
    // And the table form lists them.
    let out = run(fx.d.certray().arg("audit"));
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(table.matches("PIN_INCORRECT").count(), 1, "{table}");
    assert!(table.contains(&fx.ec), "{table}");
}

// ---------------------------------------------------------------------------------------------
// Endpoints
// ---------------------------------------------------------------------------------------------

#[test]
fn status_tokens_and_certificates_match_the_cli() {
    let fx = setup();
    let v = fx.d.get("/v1/status").send().expect(200);
    assert_eq!(
        v,
        json!({"name": "certray", "version": env!("CARGO_PKG_VERSION"), "tokens": 1,
               "certificates": 3, "ui": false})
    );
    let tokens = fx.d.get("/v1/tokens").send().expect(200);
    let certs = fx.d.get("/v1/certificates").send().expect(200);
    assert_eq!(tokens.as_object().unwrap().len(), 1);
    assert_eq!(certs.as_object().unwrap().len(), 1);
    assert_eq!(tokens["tokens"][0]["label"], LABEL);
    assert_eq!(tokens["tokens"][0]["id"], fx.token.as_str());
    // The same objects as `certray list --json`.
    let out = run(fx.d.certray().args(["list", "--json"]));
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(tokens["tokens"], list["tokens"]);
    assert_eq!(certs["certificates"], list["certificates"]);
}

#[test]
fn certificate_filters() {
    let fx = setup();
    let ids = |query: &str| -> Vec<String> {
        let v =
            fx.d.get(&format!("/v1/certificates{query}"))
                .send()
                .expect(200);
        let mut ids: Vec<String> = v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        ids.sort();
        ids
    };
    let sorted = |mut v: Vec<&String>| {
        v.sort();
        v.into_iter().cloned().collect::<Vec<String>>()
    };
    // "未找到 xxxxx 证书": exactly the certificate of one USCC, or none.
    assert_eq!(ids(&format!("?uscc={RSA_USCC}")), vec![fx.rsa.clone()]);
    assert_eq!(ids(&format!("?uscc={OTHER_USCC}")), Vec::<String>::new());
    assert_eq!(ids("?uscc=91440300MA5FUTUR07"), vec![fx.ec.clone()]);
    assert_eq!(ids("?status=expiring"), vec![fx.ec.clone()]);
    assert_eq!(ids("?status=valid"), sorted(vec![&fx.rsa, &fx.keyless]));
    assert_eq!(ids("?status=expired"), Vec::<String>::new());
    // usage=sign: a key and a signing key usage; the key-less certificate (which has
    // digitalSignature) is excluded.
    assert_eq!(ids("?usage=sign"), sorted(vec![&fx.rsa, &fx.ec]));
    assert_eq!(
        ids(&format!("?token={}", q(&fx.token))),
        sorted(vec![&fx.rsa, &fx.ec, &fx.keyless])
    );
    assert_eq!(ids("?token=nope"), Vec::<String>::new());
    assert_eq!(
        ids(&format!(
            "?token={}&usage=sign&status=expiring",
            q(&fx.token)
        )),
        vec![fx.ec.clone()]
    );
    for bad in ["?status=foo", "?usage=encrypt", "?status="] {
        fx.d.get(&format!("/v1/certificates{bad}"))
            .send()
            .expect_error(400, "BAD_REQUEST");
    }
}

#[test]
fn one_certificate_with_pem() {
    let fx = setup();
    for (id, name) in [
        (&fx.rsa, "rsa-utf8"),
        (&fx.ec, "ec-expiring"),
        (&fx.keyless, "serial-uscc"),
    ] {
        let v =
            fx.d.get(&format!("/v1/certificates/{id}"))
                .send()
                .expect(200);
        let pem = std::fs::read_to_string(fixture(&format!("{name}.pem"))).unwrap();
        assert_eq!(v["pem"].as_str().unwrap().trim(), pem.trim(), "{name}");
        assert_eq!(v["id"], id.as_str());
        // The certificate object of the list, plus `pem`.
        let list = fx.d.get("/v1/certificates").send().expect(200);
        let mut listed = list["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["id"] == id.as_str())
            .unwrap()
            .clone();
        listed["pem"] = v["pem"].clone();
        assert_eq!(v, listed);
    }
    for unknown in [
        "/v1/certificates/c-0000000000000000",
        "/v1/certificates/%E8%AF%81",
    ] {
        fx.d.get(unknown).send().expect_error(404, "CERT_NOT_FOUND");
    }
}

#[test]
fn sign_raw_rsa_and_ec_for_every_hash() {
    let fx = setup();
    let data = DATA.repeat(10);
    for (cert, name) in [(&fx.rsa, "rsa-utf8"), (&fx.ec, "ec-expiring")] {
        for hash in ["sha1", "sha256", "sha384", "sha512"] {
            let v = fx
                .sign(
                    None,
                    json!({"certificate_id": cert, "data": B64.encode(&data), "hash": hash,
                           "format": "raw", "pin": PIN}),
                )
                .expect(200);
            let alg = v["algorithm"].as_str().unwrap().to_ascii_lowercase();
            assert!(alg.contains(hash), "{name} {hash}: algorithm {alg}");
            assert!(
                verify_raw(name, hash, &signature_of(&v, name), data.as_bytes()),
                "{name} {hash}: openssl dgst -verify failed"
            );
        }
    }
    // Default hash and format: sha256, raw.
    let v = fx
        .sign(None, fx.sign_body(&fx.ec, data.as_bytes(), PIN))
        .expect(200);
    assert!(verify_raw(
        "ec-expiring",
        "sha256",
        &signature_of(&v, "ec-expiring"),
        data.as_bytes()
    ));
}

#[test]
fn sign_a_digest() {
    let fx = setup();
    let data = DATA.repeat(3);
    for (cert, name) in [(&fx.rsa, "rsa-utf8"), (&fx.ec, "ec-expiring")] {
        let digest = Sha256::digest(data.as_bytes());
        let v = fx
            .sign(
                None,
                json!({"certificate_id": cert, "digest": B64.encode(digest), "hash": "sha256", "pin": PIN}),
            )
            .expect(200);
        assert!(
            verify_raw(name, "sha256", &signature_of(&v, name), data.as_bytes()),
            "{name}"
        );
        let d384 = sha2::Sha384::digest(data.as_bytes());
        let v = fx
            .sign(
                None,
                json!({"certificate_id": cert, "digest": B64.encode(d384), "hash": "sha384", "pin": PIN}),
            )
            .expect(200);
        assert!(
            verify_raw(name, "sha384", &signature_of(&v, name), data.as_bytes()),
            "{name}"
        );
        // A digest of the wrong length is a bad request, before any PIN is used.
        fx.sign(
            None,
            json!({"certificate_id": cert, "digest": B64.encode([1u8; 20]), "hash": "sha256", "pin": "000000"}),
        )
        .expect_error(400, "BAD_REQUEST");
    }
    // The PIN was never tried with the wrong-length digests: no PIN flag moved.
    let t = fx.d.get("/v1/tokens").send().expect(200);
    assert_eq!(t["tokens"][0]["pin"]["count_low"], false, "{t}");
}

#[test]
fn sign_cms_attached_and_detached() {
    let fx = setup();
    let data = DATA.repeat(20).into_bytes();
    for (cert, name) in [(&fx.rsa, "rsa-utf8"), (&fx.ec, "ec-expiring")] {
        for hash in ["sha256", "sha384"] {
            let v = fx
                .sign(
                    Some(LEGACY),
                    json!({"certificate_id": cert, "data": B64.encode(&data), "hash": hash,
                           "format": "cms", "pin": PIN}),
                )
                .expect(200);
            let sig = signature_of(&v, name);
            assert_eq!(
                cms_verify(&sig, None),
                data,
                "{name} {hash}: attached content"
            );
            let v = fx
                .sign(
                    None,
                    json!({"certificate_id": cert, "data": B64.encode(&data), "hash": hash,
                           "format": "cms-detached", "pin": PIN}),
                )
                .expect(200);
            let sig = signature_of(&v, name);
            cms_verify(&sig, Some(&data));
            // Detached really is detached: the content is not in it.
            assert!(
                !sig.windows(data.len().min(64))
                    .any(|w| w == &data[..data.len().min(64)]),
                "{name}: content found inside a detached signature"
            );
        }
    }
    // CMS signs data, not a digest.
    fx.sign(
        None,
        json!({"certificate_id": fx.rsa, "digest": B64.encode([0u8; 32]), "format": "cms", "pin": PIN}),
    )
    .expect_error(400, "BAD_REQUEST");
}

#[test]
fn sign_bad_requests() {
    let fx = setup();
    let d = B64.encode(DATA);
    let cases = [
        json!({"certificate_id": fx.rsa, "data": "***not base64***", "pin": PIN}),
        json!({"certificate_id": fx.rsa, "data": d, "digest": B64.encode([0u8; 32]), "pin": PIN}),
        json!({"certificate_id": fx.rsa, "pin": PIN}),
        json!({"certificate_id": fx.rsa, "data": d, "pin": PIN, "callback_url": "https://evil.example/"}),
        json!({"certificate_id": fx.rsa, "data": d, "pin": PIN, "hash": "md5"}),
        json!({"certificate_id": fx.rsa, "data": d, "pin": PIN, "format": "pkcs7"}),
        json!({"data": d, "pin": PIN}),
        json!({"certificate_id": 1, "data": d}),
        json!([1, 2, 3]),
    ];
    for body in cases {
        let r = fx.sign(None, body.clone());
        r.expect_error(400, "BAD_REQUEST");
    }
    let r =
        fx.d.request("POST", "/v1/sign")
            .body("application/json", "{\"certificate_id\":")
            .send();
    r.expect_error(400, "BAD_REQUEST");
    // Unknown certificate: 404; one without a key: 409, both before a PIN is used.
    fx.sign(None, fx.sign_body("c-0000000000000000", b"x", "000000"))
        .expect_error(404, "CERT_NOT_FOUND");
    fx.sign(None, fx.sign_body(&fx.keyless, b"x", "000000"))
        .expect_error(409, "NO_PRIVATE_KEY");
    let t = fx.d.get("/v1/tokens").send().expect(200);
    assert_eq!(
        t["tokens"][0]["pin"]["count_low"], false,
        "a PIN was tried: {t}"
    );
}

/// What `/v1/authenticate` signs, as the README tells verifiers to rebuild it:
/// `"certray-auth:2\n"` ‖ SHA-256(origin) ‖ SHA-256(challenge).
fn proof_message(origin: &str, challenge: &[u8]) -> Vec<u8> {
    let mut message = b"certray-auth:2\n".to_vec();
    message.extend_from_slice(&Sha256::digest(origin.as_bytes()));
    message.extend_from_slice(&Sha256::digest(challenge));
    assert_eq!(message.len(), 79);
    message
}

/// The proof of `/v1/authenticate`: verify it over [`proof_message`].
fn check_proof(v: &Value, name: &str, origin: &str, challenge: &[u8]) {
    assert_eq!(v["origin"], origin);
    assert_eq!(v["format"], "certray-auth:2");
    let sig = signature_of(v, name);
    assert!(
        verify_raw(name, "sha256", &sig, &proof_message(origin, challenge)),
        "{name}: the proof for {origin} does not verify"
    );
    // And it is not a proof for another origin.
    let other = proof_message("https://evil.example", challenge);
    assert!(!verify_raw(name, "sha256", &sig, &other));
}

/// Issue 14, item 1: `/v1/sign` cannot mint a login proof for another origin. Before the
/// fix the proof was a plain SHA-256 signature over SHA-256(origin) ‖ SHA-256(challenge),
/// and `/v1/sign` over those 64 bytes (from a legacy portal, with the PIN in its page)
/// returned the very bytes of a proof for `https://bank.example`.
#[test]
fn sign_cannot_mint_a_proof_for_another_origin() {
    let fx = setup();
    let bank = "https://bank.example";
    let challenge = [7u8; 32];
    for (cert, name) in [(&fx.rsa, "rsa-utf8"), (&fx.ec, "ec-expiring")] {
        // The old proof format, signed as data: it no longer verifies as a proof.
        let mut old = Sha256::digest(bank.as_bytes()).to_vec();
        old.extend_from_slice(&Sha256::digest(challenge));
        let v = fx
            .sign(
                Some(LEGACY),
                json!({"certificate_id": cert, "data": B64.encode(&old), "pin": PIN}),
            )
            .expect(200);
        let sig = signature_of(&v, name);
        assert!(verify_raw(name, "sha256", &sig, &old), "{name}: plain data");
        assert!(
            !verify_raw(name, "sha256", &sig, &proof_message(bank, &challenge)),
            "{name}: a signature over data verifies as a proof for {bank}"
        );
        // The proof's own bytes as data: refused, before any PIN is used (a wrong one here).
        for data in [
            proof_message(bank, &challenge),
            b"certray-auth:1\n".to_vec(),
        ] {
            for origin in [Some(LEGACY), None] {
                fx.sign(
                    origin,
                    json!({"certificate_id": cert, "data": B64.encode(&data), "pin": "000000"}),
                )
                .expect_error(400, "BAD_REQUEST");
            }
        }
        // Nor as a precomputed digest from a website: a digest can be anyone's proof.
        let digest = Sha256::digest(proof_message(bank, &challenge));
        fx.sign(
            Some(LEGACY),
            json!({"certificate_id": cert, "digest": B64.encode(digest), "pin": "000000"}),
        )
        .expect_error(400, "BAD_REQUEST");
        // The same page's own proof still works, and is for its own origin only.
        let v = fx
            .authenticate(
                Some(LEGACY),
                json!({"certificate_id": cert, "challenge": B64.encode(challenge), "pin": PIN}),
            )
            .expect(200);
        check_proof(&v, name, LEGACY, &challenge);
        assert!(!verify_raw(
            name,
            "sha256",
            &signature_of(&v, name),
            &proof_message(bank, &challenge)
        ));
    }
    // No wrong PIN reached the token.
    let t = fx.d.get("/v1/tokens").send().expect(200);
    assert_eq!(t["tokens"][0]["pin"]["count_low"], false, "{t}");
}

#[test]
fn authenticate_binds_the_origin() {
    let fx = setup();
    let challenge: Vec<u8> = (0..32u8).collect();
    for (cert, name) in [(&fx.rsa, "rsa-utf8"), (&fx.ec, "ec-expiring")] {
        let body = json!({"certificate_id": cert, "challenge": B64.encode(&challenge), "pin": PIN});
        let v = fx.authenticate(None, body.clone()).expect(200);
        check_proof(&v, name, "local", &challenge);
        let v = fx.authenticate(Some(LEGACY), body.clone()).expect(200);
        check_proof(&v, name, LEGACY, &challenge);
    }
    // An allowed (non-legacy) origin: its own origin, proven; the PIN from the dialog is
    // not available headless, so the page gets PIN_REQUIRED, not a proof for someone else.
    let r = fx.authenticate(
        Some(ALLOWED),
        json!({"certificate_id": fx.rsa, "challenge": B64.encode(&challenge)}),
    );
    r.expect_error(401, "PIN_REQUIRED");
    // The body cannot choose the origin.
    fx.authenticate(
        None,
        json!({"certificate_id": fx.rsa, "challenge": B64.encode(&challenge), "pin": PIN,
               "origin": ALLOWED}),
    )
    .expect_error(400, "BAD_REQUEST");
    // 32–128 bytes.
    for len in [0usize, 16, 31, 129, 256] {
        fx.authenticate(
            None,
            json!({"certificate_id": fx.rsa, "challenge": B64.encode(vec![1u8; len]), "pin": PIN}),
        )
        .expect_error(400, "BAD_REQUEST");
    }
    let v = fx
        .authenticate(
            None,
            json!({"certificate_id": fx.ec, "challenge": B64.encode([3u8; 128]), "pin": PIN}),
        )
        .expect(200);
    check_proof(&v, "ec-expiring", "local", &[3u8; 128]);
    fx.authenticate(
        None,
        json!({"certificate_id": fx.rsa, "challenge": "not base64!", "pin": PIN}),
    )
    .expect_error(400, "BAD_REQUEST");
}

#[test]
fn events_stream_pin_state_changes() {
    let fx = setup();
    let mut es = fx.d.get("/v1/events").origin(ALLOWED).stream();
    assert_eq!(es.head.status, 200, "{:?}", es.head.headers);
    assert!(
        es.head
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/event-stream")),
        "{:?}",
        es.head.headers
    );
    assert_eq!(es.head.header("access-control-allow-origin"), Some(ALLOWED));
    // A wrong PIN moves SoftHSM's "count low" flag; the bridge rescans after PIN use.
    fx.sign(None, fx.sign_body(&fx.rsa, b"x", "000000"))
        .expect_error(401, "PIN_INCORRECT");
    let seen = es.until("pin-state-changed", Duration::from_secs(15));
    let ev = seen.last().unwrap();
    let v = ev.json();
    assert_eq!(v["event"], "pin-state-changed", "{v}");
    assert_eq!(v["token_id"], fx.token.as_str(), "{v}");
    assert_eq!(v["pin"]["count_low"], true, "{v}");
    // The right PIN clears it again: another event.
    fx.sign(None, fx.sign_body(&fx.rsa, b"x", PIN)).expect(200);
    let seen = es.until("pin-state-changed", Duration::from_secs(15));
    assert_eq!(seen.last().unwrap().json()["pin"]["count_low"], false);

    // A local program may listen too; a foreign page may not.
    let mut local = fx.d.get("/v1/events").stream();
    assert_eq!(local.head.status, 200);
    assert!(local.next_event(Duration::from_millis(300)).is_none());
    fx.d.get("/v1/events")
        .origin(UNKNOWN)
        .send()
        .expect_error(403, "ORIGIN_NOT_ALLOWED");
}

#[test]
fn openapi_lists_every_path() {
    let fx = setup();
    let v = fx.d.get("/v1/openapi.json").send().expect(200);
    assert!(
        v["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        v["openapi"]
    );
    let paths = v["paths"].as_object().unwrap();
    for p in [
        "/v1/status",
        "/v1/tokens",
        "/v1/certificates",
        "/v1/certificates/{id}",
        "/v1/sign",
        "/v1/authenticate",
        "/v1/events",
    ] {
        assert!(
            paths.contains_key(p),
            "{p} not documented: {:?}",
            paths.keys()
        );
    }
    assert!(paths["/v1/sign"].get("post").is_some());
    assert!(paths["/v1/authenticate"].get("post").is_some());
}

#[test]
fn check_page_is_served() {
    let fx = setup();
    let r = fx.d.get("/").send();
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert!(
        r.text().contains("证书检测"),
        "no 证书检测 in the check page"
    );
}

#[test]
fn error_bodies_are_json_in_zh_cn_or_english() {
    let fx = setup();
    // (request, status, code): one of each kind the socket can produce.
    let cases: Vec<(common::bridge::Request, u16, &str)> = vec![
        (
            fx.d.get("/v1/status").host("evil.example"),
            403,
            "HOST_NOT_ALLOWED",
        ),
        (
            fx.d.get("/v1/status").origin("null"),
            403,
            "ORIGIN_NOT_ALLOWED",
        ),
        (
            fx.d.get("/v1/status").origin(UNKNOWN),
            403,
            "ORIGIN_NOT_ALLOWED",
        ),
        (
            fx.d.request("POST", "/v1/sign").body("text/plain", "{}"),
            415,
            "UNSUPPORTED_MEDIA_TYPE",
        ),
        (fx.d.get("/v1/certificates?status=foo"), 400, "BAD_REQUEST"),
        (
            fx.d.get("/v1/certificates/c-0000000000000000"),
            404,
            "CERT_NOT_FOUND",
        ),
        (
            fx.d.post_json("/v1/sign", &fx.sign_body(&fx.rsa, b"x", PIN))
                .origin(ALLOWED),
            403,
            "PAGE_PIN_NOT_ALLOWED",
        ),
        (
            fx.d.post_json(
                "/v1/sign",
                &json!({"certificate_id": fx.rsa, "data": "eA=="}),
            ),
            401,
            "PIN_REQUIRED",
        ),
        (
            fx.d.post_json("/v1/sign", &fx.sign_body(&fx.keyless, b"x", PIN)),
            409,
            "NO_PRIVATE_KEY",
        ),
        (
            fx.d.post_json(
                "/v1/authenticate",
                &json!({"certificate_id": fx.rsa, "challenge": "A".repeat(70_000)}),
            ),
            413,
            "PAYLOAD_TOO_LARGE",
        ),
        (
            fx.d.post_json("/v1/sign", &fx.sign_body(&fx.rsa, b"x", "000000")),
            401,
            "PIN_INCORRECT",
        ),
    ];
    for (req, status, code) in cases {
        let zh = req.clone().send().expect_error(status, code);
        assert!(
            contains_cjk(zh["message"].as_str().unwrap()),
            "{code}: {zh}"
        );
        assert!(contains_cjk(zh["hint"].as_str().unwrap()), "{code}: {zh}");
        let en = req
            .clone()
            .lang("en-US,en;q=0.9")
            .send()
            .expect_error(status, code);
        for f in ["message", "hint"] {
            assert!(!contains_cjk(en[f].as_str().unwrap()), "{code}: {en}");
        }
        assert_ne!(zh["message"], en["message"]);
        // zh-CN first even when English is listed second.
        let zh2 = req
            .lang("zh-CN,zh;q=0.9,en;q=0.8")
            .send()
            .expect_error(status, code);
        assert_eq!(zh2["message"], zh["message"]);
    }
    // Unknown paths and methods answer with the same error shape.
    for (r, status) in [
        (fx.d.get("/v1/nope").send(), 404),
        (fx.d.get("/v1/sign").send(), 405),
        (fx.d.request("DELETE", "/v1/certificates").send(), 405),
    ] {
        assert_eq!(r.status, status, "{}", r.text());
        let v = r.json();
        assert!(v["error"]["code"].is_string(), "{v}");
        assert!(
            v["error"]["message"].is_string() && v["error"]["hint"].is_string(),
            "{v}"
        );
    }
}
