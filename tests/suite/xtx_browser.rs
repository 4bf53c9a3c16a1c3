//! BJCA's protocol in a real browser: Debian's Chromium, driven by `playwright-core`
//! (tests/browser/xtx.test.mjs), loads certray's own test page (tests/browser/xtx-portal.html,
//! a client written from the wire format) and talks to `certray run --headless` with `[xtx]`
//! on, over SoftHSM tokens:
//! - an http page (`http://localhost:A`) over `ws://127.0.0.1:WS/xtxapp/`: list, device type,
//!   export, cert info 2/3/11/12/17/33/35, OID lookup, entity id, wrong and right PIN, sign,
//!   BJCA's login flow with an RSA and an SM2 portal-server certificate, CMS attached and
//!   detached, a refused device-writing call;
//! - an https page (`https://localhost:B`, served with the server certificate certray issued
//!   itself) over `wss://127.0.0.1:WSS/xtxapp/`, trusted only because `certray run` installed
//!   its local CA into the temporary HOME's NSS database: no `--ignore-certificate-errors`;
//! - the synchronous client (`POST /synctl`, after Chromium's CORS preflight);
//! - an origin nobody approved (`http://localhost:C`): no socket, no answer;
//! - `onUsbkeyChange` when a key is pulled and put back (vicc leaves and enters a private
//!   pcscd's reader, SoftHSM's token directory goes and comes back), with the same CertID.
//!
//! OpenSSL checks every signature and CMS message the browser received; the daemon's log, at
//! trace level, never holds a PIN. The page's screenshot goes to
//! `target/screenshots/xtx-portal.png`.
//!
//! Needs the Debian packages `nodejs npm chromium fonts-noto-cjk libnss3-tools` (plus the
//! PKCS#11 and PC/SC ones of tests/common) and `tests/browser/node_modules` (installed with
//! `npm ci` from the committed lock file when missing).

use crate::common;
use crate::common::xtx as xtx_common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::browser::{ensure_node_modules, require_browser_tools, run_node};
use common::pcsc::{Pcscd, Vicc};
use common::{SOFTHSM_MODULE, SoftHsm, fixture, openssl_verify, output_text, require, run};
use serde_json::{Value, json};
use xtx_common::{
    XtxDaemon, beijing, free_port, openssl_cms_verify, openssl_dates, server_signature,
};

const PIN: &str = "48261735";
const WRONG_PIN: &str = "51628374";
const SO_PIN: &str = "12345678";
const CONTAINER: &str = "806000119631708";
const NODE_TIMEOUT: Duration = Duration::from_secs(300);
const PAGE: &[u8] = include_bytes!("../browser/xtx-portal.html");
const SAR_PIN_INCORRECT: u32 = 0x0A00_0024;
const SOR_NOT_SUPPORT_YET: u32 = 0x0B00_0002;

/// node, npm, Chromium, a CJK font (common::browser) and certutil; playwright-core in
/// tests/browser/node_modules.
fn browser_tools() -> PathBuf {
    let (node, npm) = require_browser_tools();
    require("certutil", "libnss3-tools");
    ensure_node_modules(&npm);
    node
}

/// One HTTP/1.1 answer with the test page (any path), on a plain or TLS stream.
fn answer(mut stream: impl Read + Write) {
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let header = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        PAGE.len()
    );
    let _ = stream.write_all(header.as_bytes());
    let _ = stream.write_all(PAGE);
    let _ = stream.flush();
}

/// The test page on 127.0.0.1:`port`, plain, or over TLS with `tls`'s certificate.
fn serve_page(port: u16, tls: Option<Arc<rustls::ServerConfig>>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind a page port");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tls = tls.clone();
            std::thread::spawn(move || {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                match tls {
                    None => answer(stream),
                    Some(config) => {
                        let Ok(conn) = rustls::ServerConnection::new(config) else {
                            return;
                        };
                        answer(rustls::StreamOwned::new(conn, stream));
                    }
                }
            });
        }
    });
}

fn token_dirs(hsm: &SoftHsm) -> BTreeSet<PathBuf> {
    std::fs::read_dir(hsm.dir().join("tokens"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

fn verify_sig(scratch: &Path, b64: &str, data: &str, hash: &str) -> bool {
    let sig = scratch.join("sig.bin");
    let file = scratch.join("data.bin");
    std::fs::write(&sig, B64.decode(b64).expect("base64 signature")).unwrap();
    std::fs::write(&file, data).unwrap();
    openssl_verify(&fixture("rsa-utf8.der"), hash, &sig, &file)
}

#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
fn a_real_browser_speaks_bjca_protocol_with_certray() {
    let node = browser_tools();
    let scratch = tempfile::tempdir().unwrap();

    // Two keys: 财务部 holds the container (signing + encryption certificates), 研发部 the EC
    // key that is pulled and put back.
    let hsm = SoftHsm::new();
    hsm.init_token("财务部 UKey", SO_PIN, PIN);
    let container = hex::encode(CONTAINER);
    hsm.import(
        "财务部 UKey",
        PIN,
        &container,
        Some(&fixture("rsa-utf8.der")),
        Some(&fixture("rsa-utf8.key.der")),
        "sign",
    );
    hsm.import(
        "财务部 UKey",
        PIN,
        &container,
        Some(&fixture("rsa-bmp.der")),
        None,
        "encrypt",
    );
    let before = token_dirs(&hsm);
    hsm.init_token("研发部 UKey", SO_PIN, PIN);
    hsm.import(
        "研发部 UKey",
        PIN,
        "02",
        Some(&fixture("ec-expiring.der")),
        Some(&fixture("ec-expiring.key.der")),
        "ec",
    );
    let pulled: Vec<PathBuf> = token_dirs(&hsm).difference(&before).cloned().collect();
    assert_eq!(pulled.len(), 1);
    let pulled = pulled[0].clone();
    let pulled_away = hsm.dir().join("pulled-away");

    let pcscd = Pcscd::start();
    let mut card = Some(Vicc::insert(&pcscd));

    let (http_port, https_port, denied_port) = (free_port(), free_port(), free_port());
    let http_origin = format!("http://localhost:{http_port}");
    let https_origin = format!("https://localhost:{https_port}");
    let mut env = pcscd.env();
    env.push(("TZ", "Asia/Shanghai".into()));
    let d = XtxDaemon::start(
        &hsm,
        &format!(
            "[pkcs11]\nmodules = [{{ path = \"{SOFTHSM_MODULE}\", reinitialize_on_change = true, pcsc = true }}]\n\
             [bridge]\npage_pin_origins = [\"{http_origin}\", \"{https_origin}\"]\n"
        ),
        &env,
        |_| {},
    );
    // certray run installed the trust on its first start, into the temporary HOME.
    let nssdb = d.home().join(".pki/nssdb");
    let listing = output_text(&run(Command::new(require("certutil", "libnss3-tools"))
        .arg("-d")
        .arg(format!("sql:{}", nssdb.display()))
        .arg("-L")));
    assert!(listing.contains("certray XTX local CA"), "{listing}");

    // The https page is served with the server certificate certray issued itself (valid for
    // localhost and 127.0.0.1), so Chromium trusts it the same way it trusts wss.
    let tls = {
        use rustls::pki_types::pem::PemObject;
        let dir = d.state_dir().join("xtx-tls");
        let certs: Vec<_> =
            rustls::pki_types::CertificateDer::pem_file_iter(dir.join("server.pem"))
                .unwrap()
                .map(Result::unwrap)
                .collect();
        let key = rustls::pki_types::PrivateKeyDer::from_pem_file(dir.join("server.key")).unwrap();
        Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap(),
        )
    };
    serve_page(http_port, None);
    serve_page(https_port, Some(tls));
    serve_page(denied_port, None);

    // The portal server's signatures for BJCA's login flow: RSA and SM2.
    let mut flow = json!({});
    for (kind, sm2) in [("rsa", false), ("sm2", true)] {
        let dir = scratch.path().join(kind);
        std::fs::create_dir_all(&dir).unwrap();
        let random = format!("{kind}-server-random-{}", std::process::id());
        let (cert, sig) = server_signature(&dir, sm2, &random);
        flow[kind] = json!({"cert": B64.encode(cert), "random": random, "sig": B64.encode(sig)});
    }
    let text = "网上办事登录 2026";
    let shots = scratch.path().join("shots");
    std::fs::create_dir_all(&shots).unwrap();

    // Which CertID the pulled key has: its token serial, as GetAllDeviceSN lists it.
    let ec_serial = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let mut s = xtx_common::connect(d.ws_addr(), None, None).await.unwrap();
            let list = s.call("SOF_GetUserList", &[]).await;
            list.split("&&&")
                .find_map(|e| {
                    e.split("||")
                        .nth(1)
                        .filter(|id| id.starts_with("02/"))
                        .map(str::to_string)
                })
                .unwrap_or_else(|| panic!("no EC user in {list}"))
        })
    };

    let mut results = std::collections::HashMap::<String, Value>::new();
    run_node(
        &node,
        "xtx.test.mjs",
        &[
            (
                "CERTRAY_XTX_WS",
                format!("ws://127.0.0.1:{}/xtxapp/", d.ws_port).into(),
            ),
            (
                "CERTRAY_XTX_WSS",
                format!("wss://127.0.0.1:{}/xtxapp/", d.wss_port).into(),
            ),
            (
                "CERTRAY_XTX_HTTP",
                format!("http://127.0.0.1:{}", d.ws_port).into(),
            ),
            (
                "CERTRAY_HTTP_PAGE",
                format!("{http_origin}/xtx-portal.html").into(),
            ),
            (
                "CERTRAY_HTTPS_PAGE",
                format!("{https_origin}/xtx-portal.html").into(),
            ),
            (
                "CERTRAY_DENIED_PAGE",
                format!("http://localhost:{denied_port}/xtx-portal.html").into(),
            ),
            ("CERTRAY_HOME", d.home().into()),
            ("CERTRAY_PIN", PIN.into()),
            ("CERTRAY_WRONG_PIN", WRONG_PIN.into()),
            ("CERTRAY_SIGN_TEXT", text.into()),
            ("CERTRAY_FLOW", flow.to_string().into()),
            ("CERTRAY_PULLED_ID", ec_serial.clone().into()),
            ("CERTRAY_SCREENSHOT_DIR", shots.clone().into()),
        ],
        NODE_TIMEOUT,
        |line| {
            if line == "PULL" {
                std::fs::rename(&pulled, &pulled_away).unwrap();
                if let Some(c) = card.take() {
                    c.remove();
                }
            } else if line == "INSERT" {
                std::fs::rename(&pulled_away, &pulled).unwrap();
                card = Some(Vicc::insert(&pcscd));
            } else if let Some(rest) = line.strip_prefix("RESULT ") {
                let (name, v) = rest.split_once(' ').unwrap();
                results.insert(name.to_string(), serde_json::from_str(v).unwrap());
            }
        },
        || d.logs(),
    );

    // What the http page over ws got.
    let ws = &results["ws"];
    let s = |v: &Value| v.as_str().unwrap().to_string();
    assert!(s(&ws["version"]).starts_with("3."));
    let list = s(&ws["list"]);
    assert!(
        list.ends_with("&&&") && list.matches("&&&").count() == 2,
        "{list}"
    );
    let rsa_id = s(&ws["rsaId"]);
    assert!(rsa_id.starts_with(&format!("{CONTAINER}/")), "{rsa_id}");
    assert_eq!(ws["deviceType"], "HARD");
    assert_eq!(
        B64.decode(s(&ws["cert"])).unwrap(),
        std::fs::read(fixture("rsa-utf8.der")).unwrap()
    );
    assert_eq!(
        B64.decode(s(&ws["exchange"])).unwrap(),
        std::fs::read(fixture("rsa-bmp.der")).unwrap()
    );
    let (nb, na) = openssl_dates(&fixture("rsa-utf8.der"));
    let info = &ws["info"];
    assert_eq!(info["2"], "8a3f00000000000000000001");
    assert_eq!(info["3"], "RSA");
    assert_eq!(s(&info["11"]), beijing(nb));
    assert_eq!(s(&info["12"]), beijing(na));
    assert_eq!(info["17"], "张三");
    assert!(s(&info["33"]).starts_with("CN=张三,"), "{}", info["33"]);
    assert_eq!(info["35"], "JJ0110000123");
    assert_eq!(ws["oid"], "91110108MA01ABCDEN");
    assert_eq!(ws["entity"], "JJ0110000123");
    assert_eq!(ws["wrongLogin"], "false");
    assert_eq!(ws["wrongLoginError"], SAR_PIN_INCORRECT.to_string());
    assert_eq!(ws["retry"], "2");
    assert_eq!(ws["login"], "true");
    assert!(!s(&ws["token"]).is_empty());
    assert!(
        verify_sig(scratch.path(), &s(&ws["signature"]), text, "sha1"),
        "SOF_SignData"
    );
    for kind in ["rsa", "sm2"] {
        assert_eq!(
            ws["flow"][kind]["verified"], "true",
            "{kind} server signature"
        );
        let random = s(&flow[kind]["random"]);
        assert!(
            verify_sig(
                scratch.path(),
                &s(&ws["flow"][kind]["signature"]),
                &random,
                "sha1"
            ),
            "{kind} flow: the signed random"
        );
    }
    for (key, detached) in [("cmsAttached", false), ("cmsDetached", true)] {
        let cms = B64.decode(s(&ws[key])).unwrap();
        assert_eq!(
            openssl_cms_verify(scratch.path(), &cms, text.as_bytes(), detached),
            text.as_bytes()
        );
    }
    assert_eq!(ws["writeFile"], "false");
    assert_eq!(ws["writeFileError"], SOR_NOT_SUPPORT_YET.to_string());

    // The https page over wss, the synchronous client, the refused origin, the events.
    let wss = &results["wss"];
    assert_eq!(wss["origin"], https_origin);
    assert_eq!(wss["login"], "true");
    assert!(
        verify_sig(scratch.path(), &s(&wss["signature"]), text, "sha1"),
        "over wss"
    );
    let sync = &results["synctl"];
    assert_eq!(sync["login"], "true");
    assert_eq!(sync["unsigned"], "");
    assert!(
        verify_sig(scratch.path(), &s(&sync["signature"]), text, "sha1"),
        "over /synctl"
    );
    let refused = &results["refused"];
    assert!(
        refused.get("list").is_none() && refused.get("syncList").is_none(),
        "{refused}"
    );
    let events = &results["events"];
    assert!(events["events"].as_u64().unwrap() >= 2, "{events}");
    assert!(!s(&events["gone"]).contains(&ec_serial));
    assert!(s(&events["back"]).contains(&format!("||{ec_serial}&&&")));

    // Every signature audited with the origins; no PIN in the trace-level log.
    let audit = d.audit();
    for origin in [&http_origin, &https_origin] {
        assert!(
            audit.iter().any(|r| r["origin"] == *origin
                && r["protocol"] == "xtx"
                && r["operation"] == "sign"),
            "{origin} not audited: {audit:?}"
        );
    }
    let logs = d.logs();
    assert!(logs.contains("xtx call"));
    for pin in [PIN, WRONG_PIN] {
        assert!(!logs.contains(pin), "a PIN reached the log");
    }

    let keep = Path::new(env!("CARGO_BIN_EXE_certray"))
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("screenshots");
    std::fs::create_dir_all(&keep).unwrap();
    std::fs::copy(shots.join("xtx-portal.png"), keep.join("xtx-portal.png")).unwrap();
}
