//! BJCA's "证书应用环境" protocol (PORTAL-PROTOCOLS.md §1) against `certray run --headless`
//! on a SoftHSM token, with certray's own client written from the wire format
//! (tests/common/xtx.rs): WebSocket frames over `ws://`, one call over `wss://` with the
//! installed local CA as the only root, and `POST /synctl` with its preflight. OpenSSL
//! referees every signature and CMS message.
//!
//! The token holds, under the key id "806000119631708" (a container name, as vendor modules
//! write it), the rsa-utf8 signing certificate with its key and the rsa-bmp encryption
//! certificate; under key id 02 the ec-expiring certificate and key.

use crate::common;
use crate::common::xtx as xtx_common;

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::bridge::Request;
use common::{SoftHsm, fixture, openssl_verify, pkcs11_tool_run};
use serde_json::json;
use xtx_common::{
    XtxDaemon, beijing, connect, openssl_cms_verify, openssl_dates, server_signature,
};

const PIN: &str = "39571846";
const WRONG_PIN: &str = "60418273";
const NEW_PIN: &str = "82736455";
const SO_PIN: &str = "12345678";
const CONTAINER: &str = "806000119631708";
const PORTAL: &str = "http://portal.test";
/// Approved in the dialog earlier (its approval is left in page-pin-origins.json).
const APPROVED: &str = "http://approved.test";
const EVIL: &str = "http://evil.test";

const SAR_PIN_INCORRECT: u32 = 0x0A00_0024;
const SAR_USER_NOT_LOGGED_IN: u32 = 0x0A00_002D;
const SOR_NOT_SUPPORT_YET: u32 = 0x0B00_0002;
const SGD_SHA256_RSA: u32 = 0x0001_0004;

fn token() -> SoftHsm {
    let hsm = SoftHsm::new();
    hsm.init_token("xtx", SO_PIN, PIN);
    let container = hex::encode(CONTAINER);
    hsm.import(
        "xtx",
        PIN,
        &container,
        Some(&fixture("rsa-utf8.der")),
        Some(&fixture("rsa-utf8.key.der")),
        "sign",
    );
    hsm.import(
        "xtx",
        PIN,
        &container,
        Some(&fixture("rsa-bmp.der")),
        None,
        "encrypt",
    );
    // The key's seal image (签章图片): a public data object named "seal".
    pkcs11_tool_run(
        &hsm.module(),
        &hsm.env(),
        &[
            "--token-label".as_ref(),
            "xtx".as_ref(),
            "-l".as_ref(),
            "--pin".as_ref(),
            PIN.as_ref(),
            "--write-object".as_ref(),
            seal_png().as_os_str(),
            "--type".as_ref(),
            "data".as_ref(),
            "--label".as_ref(),
            "seal".as_ref(),
        ] as &[&std::ffi::OsStr],
    );
    hsm.import(
        "xtx",
        PIN,
        "02",
        Some(&fixture("ec-expiring.der")),
        Some(&fixture("ec-expiring.key.der")),
        "ec",
    );
    hsm
}

/// A PNG small enough for `pkcs11-tool --write-object` (it keeps only 5000 bytes).
fn seal_png() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/icons/tray-alert-48.png")
}

fn daemon(hsm: &SoftHsm) -> XtxDaemon {
    XtxDaemon::start(
        hsm,
        &format!("[bridge]\npage_pin_origins = [\"{PORTAL}\"]\n"),
        &[("TZ", "Asia/Shanghai".into())],
        |dir| {
            std::fs::write(
                dir.join("state/certray/page-pin-origins.json"),
                json!({ "approved": [APPROVED] }).to_string(),
            )
            .unwrap();
        },
    )
}

fn b64(bytes: &[u8]) -> serde_json::Value {
    json!(B64.encode(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_functions_portals_call() {
    let hsm = token();
    let d = daemon(&hsm);
    let scratch = tempfile::tempdir().unwrap();
    let mut s = connect(d.ws_addr(), Some(PORTAL), None)
        .await
        .expect("connect");

    // Version: a string that compares >= "3.0" as a string.
    let version = s.call("SOF_GetVersion", &[]).await;
    assert!(
        version.as_str() >= "3.0" && version.starts_with("3."),
        "{version}"
    );

    // The user list: every entry ends with &&&; CertIDs are container/serial.
    let list = s.call("SOF_GetUserList", &[]).await;
    assert!(list.ends_with("&&&"), "{list}");
    let entries: Vec<&str> = list.split("&&&").filter(|e| !e.is_empty()).collect();
    assert_eq!(entries.len(), 2, "{list}");
    let sns = s.call("GetAllDeviceSN", &[]).await;
    let sn = sns.trim_end_matches(';').to_string();
    assert!(!sn.is_empty() && sns.ends_with(';'), "{sns}");
    let rsa_id = format!("{CONTAINER}/{sn}");
    let ec_id = format!("02/{sn}");
    assert!(
        entries.contains(&format!("张三||{rsa_id}").as_str()),
        "{list}"
    );
    assert!(
        entries.iter().any(|e| e.ends_with(&format!("||{ec_id}"))),
        "{list}"
    );
    assert_eq!(s.call("GetUserList", &[]).await, list, "the alias");

    // Device type and export.
    assert_eq!(
        s.call("GetDeviceInfo", &[json!(rsa_id), json!(7)]).await,
        "HARD"
    );
    let cert_b64 = s.call("SOF_ExportUserCert", &[json!(rsa_id)]).await;
    let rsa_der = std::fs::read(fixture("rsa-utf8.der")).unwrap();
    assert_eq!(B64.decode(&cert_b64).unwrap(), rsa_der);
    assert!(!cert_b64.contains('\n') && !cert_b64.contains("BEGIN"));
    let exch = s.call("SOF_ExportExChangeUserCert", &[json!(rsa_id)]).await;
    assert_eq!(
        B64.decode(&exch).unwrap(),
        std::fs::read(fixture("rsa-bmp.der")).unwrap(),
        "the encryption certificate of the same key id"
    );

    // The seal image, as the key holds it.
    let pic = s.call("GetPic", &[json!(rsa_id)]).await;
    assert_eq!(
        B64.decode(&pic).unwrap(),
        std::fs::read(seal_png()).unwrap()
    );

    // Certificate info by BJCA's numbers (the daemon runs with TZ=Asia/Shanghai).
    let info = |t: u32| json!([cert_b64.clone(), t]);
    let mut get = async |t: u32| {
        let p = info(t);
        s.call("SOF_GetCertInfo", p.as_array().unwrap()).await
    };
    assert_eq!(get(2).await, "8a3f00000000000000000001");
    assert_eq!(get(3).await, "RSA");
    let (not_before, not_after) = openssl_dates(&fixture("rsa-utf8.der"));
    assert_eq!(get(11).await, beijing(not_before));
    assert_eq!(get(12).await, beijing(not_after));
    assert_eq!(get(17).await, "张三");
    assert_eq!(get(14).await, "北京云杉测试科技有限公司");
    let dn = get(33).await;
    assert!(dn.starts_with("CN=张三,") && dn.ends_with("C=CN"), "{dn}");
    assert_eq!(get(35).await, "JJ0110000123");
    assert_eq!(get(99).await, "");
    assert_ne!(s.last_error().await, 0);
    assert_eq!(
        s.call(
            "SOF_GetCertInfoByOid",
            &[json!(cert_b64), json!("1.2.156.10260.4.1.4")]
        )
        .await,
        "91110108MA01ABCDEN"
    );
    assert_eq!(
        s.call("SOF_GetCertEntity", &[json!(cert_b64)]).await,
        "JJ0110000123"
    );
    assert_eq!(s.call("SOF_ValidateCert", &[json!(cert_b64)]).await, "0");

    // Signing needs a login on this connection.
    assert_eq!(
        s.call("SOF_SignData", &[json!(rsa_id), json!("x")]).await,
        ""
    );
    assert_eq!(s.last_error().await, SAR_USER_NOT_LOGGED_IN);

    // Wrong PIN: "false", the error, and the tries left the token's flags vouch for.
    let r = s
        .call_with("SOF_Login", &[json!(rsa_id), json!(WRONG_PIN)], None)
        .await;
    assert_eq!(r["retVal"], "false");
    assert!(r.get("token").is_none());
    assert_eq!(s.last_error().await, SAR_PIN_INCORRECT);
    assert!(!s.call("SOF_GetLastErrMsg", &[]).await.is_empty());
    assert_eq!(s.call("SOF_GetPinRetryCount", &[json!(rsa_id)]).await, "2");

    // Right PIN: "true" and a token.
    let r = s
        .call_with("SOF_Login", &[json!(rsa_id), json!(PIN)], None)
        .await;
    assert_eq!(r["retVal"], "true", "{r}");
    let login_token = r["token"].as_str().expect("a token").to_string();
    assert_eq!(s.last_error().await, 0);
    assert_eq!(s.call("SOF_IsLogin", &[json!(rsa_id)]).await, "true");

    // SOF_SignData: SHA-1 until the page sets another method; OpenSSL verifies.
    let text = "登录随机数 8f2a";
    let data_file = scratch.path().join("data.txt");
    std::fs::write(&data_file, text).unwrap();
    let sig_file = scratch.path().join("sig.bin");
    let sig = s
        .call_with(
            "SOF_SignData",
            &[json!(rsa_id), json!(text)],
            Some(&login_token),
        )
        .await;
    std::fs::write(
        &sig_file,
        B64.decode(sig["retVal"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert!(openssl_verify(
        &fixture("rsa-utf8.der"),
        "sha1",
        &sig_file,
        &data_file
    ));
    assert_eq!(
        s.call("SOF_SetSignMethod", &[json!(SGD_SHA256_RSA)]).await,
        "0"
    );
    assert_eq!(
        s.call("SOF_GetSignMethod", &[]).await,
        SGD_SHA256_RSA.to_string()
    );
    let sig = s.call("SOF_SignData", &[json!(rsa_id), json!(text)]).await;
    std::fs::write(&sig_file, B64.decode(&sig).unwrap()).unwrap();
    assert!(openssl_verify(
        &fixture("rsa-utf8.der"),
        "sha256",
        &sig_file,
        &data_file
    ));

    // CMS attached and detached.
    for (flag, detached) in [(0, false), (1, true)] {
        let p7 = s
            .call(
                "SOF_SignMessage",
                &[json!(flag), json!(rsa_id), json!(text)],
            )
            .await;
        let cms = B64.decode(&p7).expect("base64 CMS");
        let got = openssl_cms_verify(scratch.path(), &cms, text.as_bytes(), detached);
        assert_eq!(got, text.as_bytes());
    }

    // BJCA's built-in login flow: server certificate, random, server signature → verify →
    // sign the random. RSA and SM2 servers; a tampered random is refused.
    assert_eq!(
        s.call("SOF_SetSignMethod", &[json!(0x0001_0002)]).await,
        "0"
    );
    for sm2 in [false, true] {
        let random = s.call("SOF_GenRandom", &[json!(24)]).await;
        assert_eq!(B64.decode(&random).unwrap().len(), 24);
        let (server_cert, server_sig) = server_signature(scratch.path(), sm2, &random);
        let verified = s
            .call(
                "SOF_VerifySignedData",
                &[b64(&server_cert), json!(random), b64(&server_sig)],
            )
            .await;
        assert_eq!(verified, "true", "server signature (sm2: {sm2})");
        let forged = s
            .call(
                "SOF_VerifySignedData",
                &[
                    b64(&server_cert),
                    json!(format!("{random}x")),
                    b64(&server_sig),
                ],
            )
            .await;
        assert_eq!(forged, "false");
        let user_sig = s
            .call("SOF_SignData", &[json!(rsa_id), json!(random)])
            .await;
        std::fs::write(&data_file, &random).unwrap();
        std::fs::write(&sig_file, B64.decode(&user_sig).unwrap()).unwrap();
        assert!(openssl_verify(
            &fixture("rsa-utf8.der"),
            "sha1",
            &sig_file,
            &data_file
        ));
    }

    // Hashes and the EC key.
    let sha1 = s.call("SOF_HashData", &[json!(2), json!("abc")]).await;
    assert_eq!(
        hex::encode(B64.decode(sha1).unwrap()),
        "a9993e364706816aba3e25717850c26c9cd0d89d"
    );
    let sm3 = s.call("SOF_HashData", &[json!(1), json!("abc")]).await;
    assert_eq!(
        hex::encode(B64.decode(sm3).unwrap()),
        "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
    );

    // Another connection of the same origin cannot use this login, even with its token.
    let mut other = connect(d.ws_addr(), Some(PORTAL), None).await.unwrap();
    let r = other
        .call_with(
            "SOF_SignData",
            &[json!(rsa_id), json!("x")],
            Some(&login_token),
        )
        .await;
    assert_eq!(r["retVal"], "");
    assert_eq!(other.last_error().await, SAR_USER_NOT_LOGGED_IN);
    assert_eq!(other.call("SOF_IsLogin", &[json!(rsa_id)]).await, "false");

    // Logout ends it.
    assert_eq!(s.call("SOF_Logout", &[json!(rsa_id)]).await, "true");
    assert_eq!(
        s.call("SOF_SignData", &[json!(rsa_id), json!("x")]).await,
        ""
    );

    // Device-writing and file functions are refused, with a last error.
    for (func, params, value) in [
        ("WriteFile", json!([sn, "f", "data", true]), "false"),
        ("InitDevice", json!([sn, SO_PIN]), "false"),
        ("DeleteContainer", json!([sn, CONTAINER]), "false"),
        ("UnlockUserPass", json!([sn, SO_PIN, NEW_PIN]), "false"),
        ("ReadFile", json!([sn, "f"]), ""),
        ("SOF_SignFile", json!([rsa_id, "/etc/passwd"]), ""),
        ("ExportPfxFromDevice", json!([sn, CONTAINER, true, "x"]), ""),
    ] {
        assert_eq!(
            s.call(func, params.as_array().unwrap()).await,
            value,
            "{func}"
        );
        assert_eq!(s.last_error().await, SOR_NOT_SUPPORT_YET, "{func}");
    }

    // PIN change: not for a dialog-approved origin; for a configured page-PIN origin, yes.
    let mut approved = connect(d.ws_addr(), Some(APPROVED), None)
        .await
        .expect("approved origin");
    assert!(
        approved
            .call("SOF_GetUserList", &[])
            .await
            .contains(&rsa_id)
    );
    assert_eq!(
        approved
            .call(
                "SOF_ChangePassWd",
                &[json!(rsa_id), json!(PIN), json!(NEW_PIN)]
            )
            .await,
        "false"
    );
    assert_ne!(approved.last_error().await, 0);
    for (old, new) in [(PIN, NEW_PIN), (NEW_PIN, PIN)] {
        assert_eq!(
            s.call("SOF_ChangePassWd", &[json!(rsa_id), json!(old), json!(new)])
                .await,
            "true"
        );
    }

    // /synctl: the preflight (with Private Network Access), then calls; a login's token is
    // needed to sign.
    let pre = Request::new(d.ws_addr(), "OPTIONS", "/synctl")
        .origin(PORTAL)
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "content-type")
        .header("access-control-request-private-network", "true")
        .send();
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-origin"), Some(PORTAL));
    assert_eq!(
        pre.header("access-control-allow-private-network"),
        Some("true")
    );
    let sync = |body: serde_json::Value| {
        let r = Request::new(d.ws_addr(), "POST", "/synctl")
            .origin(PORTAL)
            .json(&body)
            .send();
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("access-control-allow-origin"), Some(PORTAL));
        r.json()
    };
    let r = sync(json!({"url": "x", "clsid": "y", "func": "SOF_GetUserList"}));
    assert_eq!(r["retVal"], list);
    let r = sync(json!({"func": "SOF_Login", "param": [rsa_id, PIN]}));
    assert_eq!(r["retVal"], "true");
    let sync_token = r["token"].as_str().unwrap().to_string();
    let r = sync(json!({"func": "SOF_SignData", "param": [rsa_id, text]}));
    assert_eq!(r["retVal"], "", "no token, no signature");
    assert_eq!(
        sync(json!({"func": "SOF_GetLastError"}))["retVal"],
        SAR_USER_NOT_LOGGED_IN.to_string()
    );
    let r = sync(json!({"func": "SOF_SignData", "param": [rsa_id, text], "token": sync_token}));
    std::fs::write(&data_file, text).unwrap();
    std::fs::write(
        &sig_file,
        B64.decode(r["retVal"].as_str().unwrap()).unwrap(),
    )
    .unwrap();
    assert!(openssl_verify(
        &fixture("rsa-utf8.der"),
        "sha1",
        &sig_file,
        &data_file
    ));
    // The socket's token is worth nothing on /synctl.
    let r = sync(json!({"func": "SOF_SignData", "param": [rsa_id, text], "token": login_token}));
    assert_eq!(r["retVal"], "");

    // TLS: the same protocol over wss, trusting only the local CA that was installed.
    let ca_pem = d.state_dir().join("xtx-tls/ca.pem");
    assert!(
        ca_pem.is_file(),
        "certray run installed the trust on its first start"
    );
    assert!(
        d.home().join(".pki/nssdb/cert9.db").is_file(),
        "into HOME's NSS database"
    );
    assert_eq!(wss_version(&ca_pem, d.wss_port).await, version);

    // Every signature is in the audit log, with the origin and the protocol.
    let audit = d.audit();
    let xtx: Vec<_> = audit.iter().filter(|r| r["protocol"] == "xtx").collect();
    assert!(
        xtx.iter()
            .any(|r| r["origin"] == PORTAL && r["operation"] == "sign" && r["result"] == "ok"),
        "{audit:?}"
    );
    assert!(
        xtx.iter()
            .any(|r| r["operation"] == "authenticate" && r["result"] == "PIN_INCORRECT"),
        "the wrong login is audited: {audit:?}"
    );
    assert!(xtx.iter().any(|r| r["format"] == "cms-detached"));

    // No PIN in any log, at trace level.
    let logs = d.logs();
    assert!(logs.contains("xtx call"), "trace logging is on");
    for pin in [PIN, WRONG_PIN, NEW_PIN] {
        let lines: Vec<&str> = logs.lines().filter(|l| l.contains(pin)).collect();
        assert!(
            lines.is_empty(),
            "a PIN reached the log:\n{}",
            lines.join("\n")
        );
    }
}

/// `SOF_GetVersion` over `wss://127.0.0.1:PORT/xtxapp/` with `ca_pem` as the only root.
async fn wss_version(ca_pem: &Path, port: u16) -> String {
    use futures_util::{SinkExt, StreamExt};
    use rustls::pki_types::pem::PemObject;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_file(ca_pem).unwrap())
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        #[allow(deprecated)] // as trust.rs builds its server config
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector
        .connect(name, tcp)
        .await
        .expect("TLS with the local CA");
    let mut req = format!("wss://127.0.0.1:{port}/xtxapp/")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("origin", PORTAL.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::client_async(req, tls)
        .await
        .expect("wss");
    ws.send(Message::Text(
        json!({"call_cmd_id": "i_1", "xtx_func_name": "SOF_GetVersion", "cookie": ""})
            .to_string()
            .into(),
    ))
    .await
    .unwrap();
    loop {
        if let Message::Text(t) = ws.next().await.unwrap().unwrap() {
            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
            return v["retVal"].as_str().unwrap().to_string();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_refused() {
    let hsm = token();
    let mut d = daemon(&hsm);
    let addr = d.ws_addr();

    // An origin nobody approved (and no one to ask, headless): no socket, nothing answered.
    let err = connect(addr, Some(EVIL), None)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("403"), "{err}");
    let r = Request::new(addr, "POST", "/synctl")
        .origin(EVIL)
        .json(&json!({"func": "SOF_GetUserList"}))
        .send();
    assert_eq!(r.status, 403);
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(!r.text().contains("||"), "no names: {}", r.text());
    let pre = Request::new(addr, "OPTIONS", "/synctl")
        .origin(EVIL)
        .header("access-control-request-method", "POST")
        .header("access-control-request-private-network", "true")
        .send();
    assert!(pre.header("access-control-allow-origin").is_none());
    assert!(pre.header("access-control-allow-private-network").is_none());

    // A wrong Host (DNS rebinding) on the upgrade and on /synctl.
    let err = connect(
        addr,
        Some(PORTAL),
        Some(&format!("rebind.example:{}", d.ws_port)),
    )
    .await
    .err()
    .expect("refused");
    assert!(err.to_string().contains("403"), "{err}");
    let r = Request::new(addr, "POST", "/synctl")
        .host(&format!("rebind.example:{}", d.ws_port))
        .origin(PORTAL)
        .json(&json!({"func": "SOF_GetUserList"}))
        .send();
    assert_eq!(r.status, 403);

    // The browser-set Origin counts, not the body's URL.
    let r = Request::new(addr, "POST", "/synctl")
        .origin(EVIL)
        .json(&json!({"url": PORTAL, "func": "SOF_GetUserList"}))
        .send();
    assert_eq!(r.status, 403);

    // A frame over the limit closes the socket; a body over the limit is refused.
    let mut s = connect(addr, Some(PORTAL), None).await.unwrap();
    assert!(s.call("SOF_GetUserList", &[]).await.ends_with("&&&"));
    let big = "a".repeat(17 * 1024 * 1024);
    let _ = s
        .send_raw(
            json!({"call_cmd_id": "i_big", "xtx_func_name": "SOF_SignData", "param": ["x", big]})
                .to_string(),
        )
        .await;
    assert!(
        s.closed(Duration::from_secs(10)).await,
        "the oversized frame closed the socket"
    );
    let r = Request::new(addr, "POST", "/synctl")
        .origin(PORTAL)
        .json(&json!({"func": "SOF_SignData", "param": ["x", big]}))
        .send();
    assert_eq!(r.status, 413);
    assert!(d.running(), "the daemon is still up");
    // And still answers.
    let mut s = connect(addr, Some(PORTAL), None).await.unwrap();
    assert_eq!(s.call("GetDeviceCount", &[]).await, "1");

    // At most 64 sockets at once: the next one is turned away (503), and is let in again
    // once one closes.
    let mut open = vec![s];
    let refused = loop {
        match connect(addr, Some(PORTAL), None).await {
            Ok(s) => open.push(s),
            Err(e) => break e,
        }
        assert!(open.len() <= 64, "more than 64 sockets accepted");
    };
    assert!(refused.to_string().contains("503"), "{refused}");
    assert_eq!(open.len(), 64);
    drop(open.pop());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while connect(addr, Some(PORTAL), None).await.is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "a closed socket's place was not freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
