//! The bridge's router without a socket: `certray::bridge::router` over an in-process
//! `Live` inventory, driven with `tower::ServiceExt::oneshot`, the peer set with axum's
//! `MockConnectInfo`, and a scripted [`Prompt`] standing in for the desktop UI's consent and
//! PIN dialogs.
//!
//! One SoftHSM token for the whole binary (SoftHSM reads `SOFTHSM2_CONF` once per process,
//! at C_Initialize), loaded once and never dropped. Tests that sign are
//! `#[serial(token)]`: a PIN login forgets the token's kept login, which another test's
//! "remember for this session" grant relies on.

mod common;

use std::collections::{BTreeSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Request, StatusCode};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use certray::bridge::{ApiDoc, BridgeOptions, BridgeState, router};
use certray::config::BridgeConfig;
use certray::core::{ConsentAnswer, Live, PinAnswer, PinRequest, Prompt, Signing};
use common::bridge::bridge_token;
use common::*;
use futures_util::future::BoxFuture;
use secrecy::SecretString;
use serde_json::{Value, json};
use serial_test::serial;
use sha2::{Digest, Sha256};
use tower::ServiceExt as _;

const LABEL: &str = "bridge-router";
const PIN: &str = "123456";
const SO_PIN: &str = "12345678";
/// The port the bridge believes it listens on (the Host header must name it).
const PORT: u16 = 21088;
const HOST: &str = "127.0.0.1:21088";
const ALLOWED: &str = "http://localhost:8123";
const LEGACY: &str = "http://legacy.localhost:8124";
const OTHER: &str = "https://etax.example";
const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40000);

// ---------------------------------------------------------------------------------------------
// The shared token and inventory
// ---------------------------------------------------------------------------------------------

struct Shared {
    _hsm: SoftHsm,
    live: Arc<Live>,
    rsa: String,
    ec: String,
    keyless: String,
}

/// The token (01 rsa-utf8 and 02 ec-expiring with keys, 06 serial-uscc without) and the
/// `Live` inventory over it, made once; the static is never dropped.
fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let hsm = bridge_token(LABEL, SO_PIN, PIN);
        common::remove_at_exit(hsm.dir());
        // SAFETY: set once, while every other test thread waits on this OnceLock, before
        // SoftHSM (which reads it at C_Initialize) is loaded.
        unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf()) };
        let live = live_on(SOFTHSM_MODULE);
        assert!(live.failures().is_empty(), "{:?}", live.failures().len());
        let snap = live.snapshot();
        let id_of = |name: &str| fixture_cert_id(&snap, name);
        let (rsa, ec, keyless) = (
            id_of("rsa-utf8"),
            id_of("ec-expiring"),
            id_of("serial-uscc"),
        );
        Shared {
            _hsm: hsm,
            live: Arc::new(live),
            rsa,
            ec,
            keyless,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// A scripted Prompt
// ---------------------------------------------------------------------------------------------

/// One scripted answer of the PIN dialog.
enum PinStep {
    Answer(PinAnswer),
    /// Tell the test the dialog is open, then wait for the answer. If the request goes away
    /// first, the dialog's future is dropped: `closed` becomes true.
    Wait {
        opened: tokio::sync::oneshot::Sender<()>,
        answer: tokio::sync::oneshot::Receiver<PinAnswer>,
        closed: Arc<AtomicBool>,
    },
}

/// A consent answer, or one given when the test says so.
enum ConsentStep {
    Answer(ConsentAnswer),
    Wait(Arc<tokio::sync::Notify>, ConsentAnswer),
}

/// Answers consent and PIN prompts from queues and records every call. An unexpected
/// prompt (empty queue) fails the test.
#[derive(Default)]
struct Scripted {
    consents: Mutex<VecDeque<ConsentStep>>,
    pins: Mutex<VecDeque<PinStep>>,
    consent_calls: Mutex<Vec<String>>,
    pin_calls: Mutex<Vec<PinRequest>>,
}

impl Scripted {
    fn new() -> Arc<Scripted> {
        Arc::new(Scripted::default())
    }

    fn consent_answer(&self, a: ConsentAnswer) {
        self.consent_step(ConsentStep::Answer(a));
    }

    fn consent_step(&self, s: ConsentStep) {
        self.consents.lock().unwrap().push_back(s);
    }

    fn pin_answer(&self, a: PinAnswer) {
        self.pins.lock().unwrap().push_back(PinStep::Answer(a));
    }

    fn pin_step(&self, s: PinStep) {
        self.pins.lock().unwrap().push_back(s);
    }

    fn consent_calls(&self) -> Vec<String> {
        self.consent_calls.lock().unwrap().clone()
    }

    fn pin_calls(&self) -> Vec<PinRequest> {
        self.pin_calls.lock().unwrap().clone()
    }
}

fn pin(p: &str, remember: bool) -> PinAnswer {
    PinAnswer::Pin {
        pin: SecretString::from(p.to_string()),
        remember,
    }
}

/// Drops with the dialog's future.
struct CloseFlag(Arc<AtomicBool>);

impl Drop for CloseFlag {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Prompt for Scripted {
    fn consent<'a>(&'a self, origin: &'a str) -> BoxFuture<'a, ConsentAnswer> {
        self.consent_calls.lock().unwrap().push(origin.to_string());
        let step = self
            .consents
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected consent prompt for {origin}"));
        Box::pin(async move {
            match step {
                ConsentStep::Answer(a) => a,
                ConsentStep::Wait(gate, a) => {
                    gate.notified().await;
                    a
                }
            }
        })
    }

    fn pin(&self, request: PinRequest) -> BoxFuture<'_, PinAnswer> {
        let step = self
            .pins
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| panic!("unexpected PIN prompt: {request:?}"));
        self.pin_calls.lock().unwrap().push(request);
        Box::pin(async move {
            match step {
                PinStep::Answer(a) => a,
                PinStep::Wait {
                    opened,
                    answer,
                    closed,
                } => {
                    let _flag = CloseFlag(closed);
                    let _ = opened.send(());
                    answer.await.unwrap_or(PinAnswer::Cancelled)
                }
            }
        })
    }

    fn available(&self) -> bool {
        true
    }
}

// ---------------------------------------------------------------------------------------------
// The bridge under test and its requests
// ---------------------------------------------------------------------------------------------

struct Bridge {
    app: Arc<BridgeState>,
    router: Router,
    /// XDG_STATE_HOME-like parent; the state dir is `<home>/certray`.
    home: tempfile::TempDir,
}

struct Opts<'a> {
    prompt: Arc<dyn Prompt>,
    allowed: &'a [&'a str],
    page_pin: &'a [&'a str],
}

impl Default for Opts<'_> {
    fn default() -> Self {
        Opts {
            prompt: Arc::new(certray::core::Headless),
            allowed: &[ALLOWED, LEGACY],
            page_pin: &[LEGACY],
        }
    }
}

fn bridge_with(o: Opts<'_>) -> Bridge {
    let home = tempfile::tempdir().unwrap();
    bridge_in(o, home)
}

fn bridge_in(o: Opts<'_>, home: tempfile::TempDir) -> Bridge {
    let s = shared();
    let config = BridgeConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], PORT)),
        allowed_origins: o.allowed.iter().map(|s| s.to_string()).collect(),
        page_pin_origins: o.page_pin.iter().map(|s| s.to_string()).collect(),
    };
    let state_dir = home.path().join("certray");
    let signing = Signing::open(s.live.clone(), &config, o.prompt, Some(&state_dir));
    let app = BridgeState::new(
        signing,
        BridgeOptions {
            config,
            port: PORT,
            warning_days: 90,
        },
    );
    let router = router(app.clone()).layer(MockConnectInfo(LOOPBACK));
    Bridge { app, router, home }
}

fn headless() -> Bridge {
    bridge_with(Opts::default())
}

fn scripted(prompt: &Arc<Scripted>) -> Bridge {
    bridge_with(Opts {
        prompt: prompt.clone(),
        ..Opts::default()
    })
}

/// A request as a browser or a program sends it: `Host: 127.0.0.1:PORT` unless changed.
#[derive(Clone)]
struct Req {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn get(path: &str) -> Req {
    Req {
        method: "GET".into(),
        path: path.into(),
        headers: vec![("host".into(), HOST.into())],
        body: Vec::new(),
    }
}

fn post(path: &str, body: &Value) -> Req {
    get(path)
        .method("POST")
        .body("application/json", serde_json::to_vec(body).unwrap())
}

impl Req {
    fn method(mut self, m: &str) -> Req {
        self.method = m.into();
        self
    }

    fn header(mut self, k: &str, v: &str) -> Req {
        let k = k.to_ascii_lowercase();
        self.headers.retain(|(n, _)| *n != k);
        self.headers.push((k, v.into()));
        self
    }

    fn no_header(mut self, k: &str) -> Req {
        let k = k.to_ascii_lowercase();
        self.headers.retain(|(n, _)| *n != k);
        self
    }

    fn origin(self, o: &str) -> Req {
        self.header("origin", o)
    }

    fn maybe_origin(self, o: Option<&str>) -> Req {
        match o {
            Some(o) => self.origin(o),
            None => self,
        }
    }

    fn body(self, content_type: &str, body: Vec<u8>) -> Req {
        let mut r = self.header("content-type", content_type);
        r.body = body;
        r
    }

    fn build(self) -> Request<Body> {
        let mut b = Request::builder()
            .method(self.method.as_str())
            .uri(self.path);
        for (k, v) in self.headers {
            b = b.header(k, v);
        }
        b.body(Body::from(self.body)).unwrap()
    }
}

/// An answer: status, headers and the whole body.
struct Resp {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "{} is not JSON ({e}): {:?}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()
    }

    /// The status, the error shape and the code; returns the `error` object.
    fn error(&self, status: u16, code: &str) -> Value {
        let v = self.expect(status);
        assert!(
            self.headers
                .get("content-type")
                .is_some_and(|c| c.to_str().unwrap().starts_with("application/json")),
            "{:?}",
            self.headers
        );
        let e = v["error"].clone();
        assert_eq!(e["code"], code, "{v}");
        assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        assert!(e["hint"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
        // The status is the one the code maps to (404 and 405 for unknown paths and methods
        // carry BAD_REQUEST: the closed set of codes has none of their own).
        if code == "BAD_REQUEST" && matches!(status, 404 | 405) {
            return e;
        }
        let mapped = certray::error::Code::ALL
            .into_iter()
            .find(|c| c.as_str() == code)
            .map(certray::bridge::http_status);
        assert_eq!(mapped.map(|s| s.as_u16()), Some(status), "{code}");
        e
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

impl Bridge {
    async fn send(&self, r: Req) -> Resp {
        send_to(&self.router, r).await
    }

    /// The same app as seen from another peer address.
    fn router_from(&self, peer: SocketAddr) -> Router {
        router(self.app.clone()).layer(MockConnectInfo(peer))
    }

    fn state_dir(&self) -> std::path::PathBuf {
        self.home.path().join("certray")
    }
}

async fn send_to(router: &Router, r: Req) -> Resp {
    let resp = router.clone().oneshot(r.build()).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap()
        .to_vec();
    Resp {
        status,
        headers,
        body,
    }
}

/// Only the head (for endless answers like the event stream).
async fn head_of(router: &Router, r: Req) -> (StatusCode, HeaderMap) {
    let resp = router.clone().oneshot(r.build()).await.unwrap();
    (resp.status(), resp.headers().clone())
}

const DATA: &[u8] = "纳税申报表 2026-11 · router test\n".as_bytes();

fn sign_body(cert: &str, pin: Option<&str>) -> Value {
    let mut v = json!({"certificate_id": cert, "data": B64.encode(DATA)});
    if let Some(p) = pin {
        v["pin"] = json!(p);
    }
    v
}

/// `openssl dgst -sha256 -verify` of the answer's signature over `data`.
fn verifies(v: &Value, fixture_name: &str, data: &[u8]) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let sig = dir.path().join("sig");
    let dat = dir.path().join("data");
    std::fs::write(&sig, B64.decode(v["signature"].as_str().unwrap()).unwrap()).unwrap();
    std::fs::write(&dat, data).unwrap();
    openssl_verify(
        &fixture(&format!("{fixture_name}.der")),
        "sha256",
        &sig,
        &dat,
    )
}

fn approved(state_dir: &Path) -> BTreeSet<String> {
    match std::fs::read_to_string(state_dir.join("origins.json")) {
        Ok(t) => {
            let v: Value = serde_json::from_str(&t).unwrap();
            v["approved"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap().to_string())
                .collect()
        }
        Err(_) => BTreeSet::new(),
    }
}

// ---------------------------------------------------------------------------------------------
// Rules 1–5 through the router
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn rule1_non_loopback_peer_is_refused() {
    let b = headless();
    for peer in ["192.0.2.1:5555", "[2001:db8::1]:5555", "10.0.0.1:80"] {
        let r = b.router_from(peer.parse().unwrap());
        send_to(&r, get("/v1/status"))
            .await
            .error(403, "HOST_NOT_ALLOWED");
        send_to(&r, get("/v1/certificates").origin(ALLOWED))
            .await
            .error(403, "HOST_NOT_ALLOWED");
        send_to(&r, post("/v1/sign", &sign_body(&shared().rsa, Some(PIN))))
            .await
            .error(403, "HOST_NOT_ALLOWED");
    }
    for peer in ["127.0.0.1:5555", "127.1.2.3:5555", "[::1]:5555"] {
        let r = b.router_from(peer.parse().unwrap());
        send_to(&r, get("/v1/status")).await.expect(200);
    }
    // No peer address at all: fail closed.
    let bare = router(b.app.clone());
    send_to(&bare, get("/v1/status"))
        .await
        .error(403, "HOST_NOT_ALLOWED");
    assert!(!b.state_dir().join("audit.log").exists());
}

#[tokio::test]
async fn rule2_host() {
    let b = headless();
    for host in [
        "evil.example:21088",
        "127.0.0.1:21089",
        "localhost",
        "[::1]",
    ] {
        b.send(get("/v1/status").header("host", host))
            .await
            .error(403, "HOST_NOT_ALLOWED");
    }
    b.send(get("/v1/status").no_header("host"))
        .await
        .error(403, "HOST_NOT_ALLOWED");
    for host in ["127.0.0.1:21088", "localhost:21088", "[::1]:21088"] {
        b.send(get("/v1/status").header("host", host))
            .await
            .expect(200);
    }
}

#[tokio::test]
async fn rule3_4_origins_and_cors() {
    let b = headless();
    let r = b.send(get("/v1/status").origin("null")).await;
    r.error(403, "ORIGIN_NOT_ALLOWED");
    assert!(r.header("access-control-allow-origin").is_none());
    let r = b.send(get("/v1/status").origin(OTHER)).await;
    r.error(403, "ORIGIN_NOT_ALLOWED");
    assert!(r.header("access-control-allow-origin").is_none());
    let r = b.send(get("/v1/status").origin(ALLOWED)).await;
    r.expect(200);
    assert_eq!(r.header("access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(r.header("vary"), Some("Origin"));
    // The bridge's own check page.
    let own = format!("http://localhost:{PORT}");
    let r = b.send(get("/v1/status").origin(&own)).await;
    r.expect(200);
    assert_eq!(r.header("access-control-allow-origin"), Some(own.as_str()));
    // Preflights.
    let pre = |o: &str| {
        get("/v1/sign")
            .method("OPTIONS")
            .origin(o)
            .header("access-control-request-method", "POST")
            .header("access-control-request-private-network", "true")
    };
    let r = b.send(pre(OTHER)).await;
    r.error(403, "ORIGIN_NOT_ALLOWED");
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(r.header("access-control-allow-private-network").is_none());
    let r = b.send(pre(ALLOWED)).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("access-control-allow-origin"), Some(ALLOWED));
    assert_eq!(
        r.header("access-control-allow-private-network"),
        Some("true")
    );
    // No Origin: served, no CORS grant.
    let r = b.send(get("/v1/status")).await;
    r.expect(200);
    assert!(r.header("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn rule5_json_bodies_only() {
    let b = headless();
    let body = serde_json::to_vec(&sign_body(&shared().rsa, Some(PIN))).unwrap();
    for ct in [
        "application/x-www-form-urlencoded",
        "text/plain",
        "multipart/form-data; boundary=x",
    ] {
        b.send(post("/v1/sign", &json!({})).body(ct, body.clone()))
            .await
            .error(415, "UNSUPPORTED_MEDIA_TYPE");
    }
    b.send(post("/v1/sign", &json!({})).no_header("content-type"))
        .await
        .error(415, "UNSUPPORTED_MEDIA_TYPE");
    let r = b.send(get("/v1/sign")).await;
    r.error(405, "BAD_REQUEST");
    assert_eq!(r.header("allow"), Some("POST"));
    assert!(!b.state_dir().join("audit.log").exists());
}

// ---------------------------------------------------------------------------------------------
// Consent (rule 4 with a UI)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn consent_allow_always_persists_allow_once_does_not() {
    let p = Scripted::new();
    let b = scripted(&p);
    let once = "https://once.example";

    p.consent_answer(ConsentAnswer::AllowAlways);
    let r = b.send(get("/v1/certificates").origin(OTHER)).await;
    r.expect(200);
    assert_eq!(r.header("access-control-allow-origin"), Some(OTHER));
    assert_eq!(
        approved(&b.state_dir()),
        BTreeSet::from([OTHER.to_string()])
    );
    // Asked once only.
    b.send(get("/v1/status").origin(OTHER)).await.expect(200);
    assert_eq!(p.consent_calls(), vec![OTHER]);

    p.consent_answer(ConsentAnswer::AllowOnce);
    b.send(get("/v1/status").origin(once)).await.expect(200);
    b.send(get("/v1/status").origin(once)).await.expect(200);
    assert_eq!(p.consent_calls(), vec![OTHER, once]);
    assert_eq!(
        approved(&b.state_dir()),
        BTreeSet::from([OTHER.to_string()])
    );

    // A restart over the same state dir: "always" is remembered, "once" is asked again.
    let p2 = Scripted::new();
    let home = b.home;
    let b2 = bridge_in(
        Opts {
            prompt: p2.clone(),
            ..Opts::default()
        },
        home,
    );
    b2.send(get("/v1/status").origin(OTHER)).await.expect(200);
    p2.consent_answer(ConsentAnswer::Deny);
    b2.send(get("/v1/status").origin(once))
        .await
        .error(403, "ORIGIN_NOT_ALLOWED");
    assert_eq!(p2.consent_calls(), vec![once]);

    // `certray origins list|revoke` read and edit the same file.
    let state_home = b2.home.path();
    let cfg = state_home.join("empty.toml");
    std::fs::write(&cfg, "").unwrap();
    let cli = |args: &[&str]| {
        let mut c = certray(&[("XDG_STATE_HOME", state_home.as_os_str().to_owned())]);
        c.arg("--config").arg(&cfg).args(args);
        c
    };
    let out = run(&mut cli(&["origins", "list"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains(OTHER));
    run(&mut cli(&["origins", "revoke", OTHER]));
    assert!(approved(&b2.state_dir()).is_empty());
}

#[tokio::test]
async fn consent_deny_and_headless_refuse() {
    let p = Scripted::new();
    let b = scripted(&p);
    p.consent_answer(ConsentAnswer::Deny);
    let r = b.send(get("/v1/certificates").origin(OTHER)).await;
    r.error(403, "ORIGIN_NOT_ALLOWED");
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(approved(&b.state_dir()).is_empty());
    // Issue 14, item 5: a denial is remembered until certray stops; the page cannot ask
    // again and again (before, each request opened a new dialog).
    for path in ["/v1/certificates", "/v1/status", "/v1/tokens"] {
        b.send(get(path).origin(OTHER))
            .await
            .error(403, "ORIGIN_NOT_ALLOWED");
    }
    assert_eq!(p.consent_calls(), vec![OTHER]);
    // Nobody to ask is no denial: the next request asks again.
    let other2 = "https://other2.example";
    p.consent_answer(ConsentAnswer::Unavailable);
    b.send(get("/v1/certificates").origin(other2))
        .await
        .error(403, "ORIGIN_NOT_ALLOWED");
    // A null origin never reaches the dialog.
    b.send(get("/v1/status").origin("null"))
        .await
        .error(403, "ORIGIN_NOT_ALLOWED");
    p.consent_answer(ConsentAnswer::Unavailable);
    b.send(get("/v1/certificates").origin(other2))
        .await
        .error(403, "ORIGIN_NOT_ALLOWED");
    assert_eq!(p.consent_calls(), vec![OTHER, other2, other2]);
}

/// Issue 14, item 5: one consent dialog per origin. Before, every request of an unknown
/// origin opened its own dialog, a preflight or a path that does not exist included.
#[tokio::test]
async fn one_consent_dialog_per_origin_and_none_for_missing_paths() {
    let p = Scripted::new();
    let b = scripted(&p);
    let site = "https://new.example";
    // A path that does not exist never asks.
    for path in ["/nothing", "/v1/nothing", "/v1/certificates/x/y"] {
        b.send(get(path).origin(site))
            .await
            .error(403, "ORIGIN_NOT_ALLOWED");
    }
    assert!(p.consent_calls().is_empty(), "{:?}", p.consent_calls());
    // Ten requests at once while the dialog is open: one dialog; they all get its answer.
    let gate = Arc::new(tokio::sync::Notify::new());
    p.consent_step(ConsentStep::Wait(gate.clone(), ConsentAnswer::AllowOnce));
    let requests = (0..10).map(|i| {
        let path = if i % 2 == 0 {
            "/v1/status"
        } else {
            "/v1/tokens"
        };
        b.send(get(path).origin(site))
    });
    let all = futures_util::future::join_all(requests);
    tokio::pin!(all);
    // Let them all reach the guard, then answer.
    tokio::select! {
        _ = &mut all => panic!("answered before the dialog was"),
        _ = tokio::time::sleep(std::time::Duration::from_millis(300)) => {}
    }
    gate.notify_one();
    for r in all.await {
        r.expect(200);
    }
    assert_eq!(p.consent_calls(), vec![site]);
}

// ---------------------------------------------------------------------------------------------
// The PIN dialog (rules 6 and 7)
// ---------------------------------------------------------------------------------------------

#[tokio::test]
#[serial(token)]
async fn pin_dialog_remember_skips_the_next_prompt() {
    let s = shared();
    let p = Scripted::new();
    let b = scripted(&p);
    p.pin_answer(pin(PIN, true));
    let v = b
        .send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(ALLOWED))
        .await
        .expect(200);
    assert!(verifies(&v, "rsa-utf8", DATA));
    let calls = p.pin_calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].origin.as_deref(), Some(ALLOWED));
    assert_eq!(calls[0].certificate_id, s.rsa);
    // The dialog shows the owner as the certificate list does.
    let listed = b.send(get("/v1/certificates")).await.expect(200);
    let owner = listed["certificates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == s.rsa.as_str())
        .unwrap()["owner"]
        .clone();
    assert_eq!(calls[0].owner, owner.as_str().unwrap());
    // rsa-utf8 is a staff certificate (CN 张三, O the company): its holder is the person.
    assert_eq!(calls[0].owner, "张三");
    assert!(
        calls[0].operation.contains("raw") && calls[0].operation.contains(&DATA.len().to_string()),
        "{}",
        calls[0].operation
    );
    // Remembered for this origin and certificate: no dialog.
    for _ in 0..2 {
        let v = b
            .send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(ALLOWED))
            .await
            .expect(200);
        assert!(verifies(&v, "rsa-utf8", DATA));
    }
    assert_eq!(p.pin_calls().len(), 1, "the dialog was shown again");
    // Not for another certificate, nor another origin.
    p.pin_answer(PinAnswer::Cancelled);
    b.send(post("/v1/sign", &sign_body(&s.ec, None)).origin(ALLOWED))
        .await
        .error(409, "USER_CANCELLED");
    p.pin_answer(PinAnswer::Cancelled);
    b.send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(LEGACY))
        .await
        .error(409, "USER_CANCELLED");
    assert_eq!(p.pin_calls().len(), 3);
    // Nor in another bridge instance (the grant lives until certray stops).
    let p2 = Scripted::new();
    let b2 = scripted(&p2);
    p2.pin_answer(PinAnswer::Cancelled);
    b2.send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(ALLOWED))
        .await
        .error(409, "USER_CANCELLED");
}

#[tokio::test]
#[serial(token)]
async fn pin_dialog_without_remember_asks_every_time() {
    let s = shared();
    let p = Scripted::new();
    let b = scripted(&p);
    for i in 1..=2 {
        p.pin_answer(pin(PIN, false));
        let v = b
            .send(post("/v1/sign", &sign_body(&s.ec, None)).origin(ALLOWED))
            .await
            .expect(200);
        assert!(verifies(&v, "ec-expiring", DATA));
        assert_eq!(p.pin_calls().len(), i);
    }
    // Authenticate asks too, naming the origin it proves.
    p.pin_answer(pin(PIN, false));
    let challenge = [5u8; 32];
    let v = b
        .send(
            post(
                "/v1/authenticate",
                &json!({"certificate_id": s.ec, "challenge": B64.encode(challenge)}),
            )
            .origin(ALLOWED),
        )
        .await
        .expect(200);
    assert_eq!(v["origin"], ALLOWED);
    let mut message = b"certray-auth:2\n".to_vec();
    message.extend_from_slice(&Sha256::digest(ALLOWED.as_bytes()));
    message.extend_from_slice(&Sha256::digest(challenge));
    assert!(verifies(&v, "ec-expiring", &message));
    assert!(p.pin_calls()[2].operation.contains(ALLOWED));
}

#[tokio::test]
#[serial(token)]
async fn pin_dialog_answers_cancelled_wrong_and_unavailable() {
    let s = shared();
    let p = Scripted::new();
    let b = scripted(&p);
    p.pin_answer(PinAnswer::Cancelled);
    b.send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(ALLOWED))
        .await
        .error(409, "USER_CANCELLED");
    p.pin_answer(pin("000000", true));
    let e = b
        .send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(ALLOWED))
        .await
        .error(401, "PIN_INCORRECT");
    assert!(e["pin"]["count_low"].is_boolean(), "{e}");
    // A wrong PIN is not remembered: the next request asks again.
    p.pin_answer(PinAnswer::Unavailable);
    b.send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(ALLOWED))
        .await
        .error(401, "PIN_REQUIRED");
    assert_eq!(p.pin_calls().len(), 3);
    // A page that is not a legacy portal still may not send the PIN, dialog or not.
    b.send(post("/v1/sign", &sign_body(&s.rsa, Some(PIN))).origin(ALLOWED))
        .await
        .error(403, "PAGE_PIN_NOT_ALLOWED");
    assert_eq!(p.pin_calls().len(), 3);
    // Clear SoftHSM's "count low" for the other tests.
    b.send(post("/v1/sign", &sign_body(&s.rsa, Some(PIN))))
        .await
        .expect(200);
}

#[tokio::test]
#[serial(token)]
async fn rule7_kept_login_does_not_let_a_wrong_pin_through() {
    let s = shared();
    let p = Scripted::new();
    let b = scripted(&p);
    // A remembered grant: the token keeps a logged-in session.
    p.pin_answer(pin(PIN, true));
    b.send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(ALLOWED))
        .await
        .expect(200);
    b.send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(ALLOWED))
        .await
        .expect(200);
    // A local program (and a legacy portal) with a wrong PIN: checked by the token.
    for origin in [None, Some(LEGACY)] {
        let e = b
            .send(post("/v1/sign", &sign_body(&s.rsa, Some("000000"))).maybe_origin(origin))
            .await
            .error(401, "PIN_INCORRECT");
        assert!(e["pin"].is_object(), "{e}");
        let e = b
            .send(
                post(
                    "/v1/authenticate",
                    &json!({"certificate_id": s.ec, "challenge": B64.encode([0u8; 64]), "pin": "000000"}),
                )
                .maybe_origin(origin),
            )
            .await
            .error(401, "PIN_INCORRECT");
        assert!(e["pin"].is_object(), "{e}");
    }
    assert_eq!(p.pin_calls().len(), 1);
    b.send(post("/v1/sign", &sign_body(&s.rsa, Some(PIN))))
        .await
        .expect(200);
    // The wrong PINs ended the kept login: the remembered origin is asked again in the
    // dialog (not refused with PIN_REQUIRED), and a remembered answer holds again.
    p.pin_answer(pin(PIN, true));
    b.send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(ALLOWED))
        .await
        .expect(200);
    assert_eq!(p.pin_calls().len(), 2);
    b.send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(ALLOWED))
        .await
        .expect(200);
    assert_eq!(p.pin_calls().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial(token)]
async fn one_pin_prompt_at_a_time_per_origin() {
    let s = shared();
    let p = Scripted::new();
    let b = Arc::new(scripted(&p));
    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
    let (answer_tx, answer_rx) = tokio::sync::oneshot::channel();
    let closed = Arc::new(AtomicBool::new(false));
    p.pin_step(PinStep::Wait {
        opened: opened_tx,
        answer: answer_rx,
        closed: closed.clone(),
    });
    let first = {
        let b = b.clone();
        let body = sign_body(&s.rsa, None);
        tokio::spawn(async move { b.send(post("/v1/sign", &body).origin(ALLOWED)).await })
    };
    tokio::time::timeout(Duration::from_secs(10), opened_rx)
        .await
        .expect("the first request's dialog did not open")
        .unwrap();
    // The same origin again while its dialog is open: refused at once, no second dialog.
    let r = tokio::time::timeout(
        Duration::from_secs(10),
        b.send(post("/v1/sign", &sign_body(&s.ec, None)).origin(ALLOWED)),
    )
    .await
    .expect("the second request waited for the first dialog");
    let e = r.error(409, "USER_CANCELLED");
    assert!(
        e["detail"].as_str().unwrap_or("").contains("already open"),
        "{e}"
    );
    assert_eq!(p.pin_calls().len(), 1);
    // Another origin has its own dialog.
    p.pin_answer(PinAnswer::Cancelled);
    b.send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(LEGACY))
        .await
        .error(409, "USER_CANCELLED");
    assert_eq!(p.pin_calls().len(), 2);
    // The first dialog answers: its request signs.
    answer_tx.send(pin(PIN, false)).ok().unwrap();
    let r = first.await.unwrap();
    let v = r.expect(200);
    assert!(verifies(&v, "rsa-utf8", DATA));
    assert!(closed.load(Ordering::SeqCst));
    // And the origin may prompt again.
    p.pin_answer(PinAnswer::Cancelled);
    b.send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(ALLOWED))
        .await
        .error(409, "USER_CANCELLED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[serial(token)]
async fn a_prompt_whose_client_went_away_is_closed() {
    let s = shared();
    let p = Scripted::new();
    let b = Arc::new(scripted(&p));
    let (opened_tx, opened_rx) = tokio::sync::oneshot::channel();
    let (_answer_tx, answer_rx) = tokio::sync::oneshot::channel();
    let closed = Arc::new(AtomicBool::new(false));
    p.pin_step(PinStep::Wait {
        opened: opened_tx,
        answer: answer_rx,
        closed: closed.clone(),
    });
    let first = {
        let b = b.clone();
        let body = sign_body(&s.rsa, None);
        tokio::spawn(async move { b.send(post("/v1/sign", &body).origin(ALLOWED)).await })
    };
    tokio::time::timeout(Duration::from_secs(10), opened_rx)
        .await
        .unwrap()
        .unwrap();
    assert!(!closed.load(Ordering::SeqCst));
    // The client disconnects: hyper drops the request's future, here the task's.
    first.abort();
    let _ = first.await;
    assert!(closed.load(Ordering::SeqCst), "the dialog stayed open");
    // The origin is not stuck with "a dialog is already open".
    p.pin_answer(pin(PIN, false));
    b.send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(ALLOWED))
        .await
        .expect(200);
    assert_eq!(p.pin_calls().len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Every error code, every endpoint
// ---------------------------------------------------------------------------------------------

#[tokio::test]
#[serial(token)]
async fn every_bridge_error_code_with_its_status() {
    let s = shared();
    let p = Scripted::new();
    let b = scripted(&p);
    let h = headless();
    let mut seen = BTreeSet::new();
    let mut check = |r: Resp, status: u16, code: &'static str| {
        r.error(status, code);
        seen.insert(code);
    };
    check(
        b.send(get("/v1/certificates?status=foo")).await,
        400,
        "BAD_REQUEST",
    );
    check(
        b.send(get("/v1/status").origin("null")).await,
        403,
        "ORIGIN_NOT_ALLOWED",
    );
    check(
        b.send(get("/v1/status").header("host", "evil.example:21088"))
            .await,
        403,
        "HOST_NOT_ALLOWED",
    );
    check(
        b.send(post("/v1/sign", &sign_body(&s.rsa, Some(PIN))).origin(ALLOWED))
            .await,
        403,
        "PAGE_PIN_NOT_ALLOWED",
    );
    check(
        b.send(post("/v1/sign", &json!({})).body("text/plain", b"{}".to_vec()))
            .await,
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    );
    let big = json!({"certificate_id": s.rsa, "challenge": "A".repeat(65 * 1024)});
    check(
        b.send(post("/v1/authenticate", &big)).await,
        413,
        "PAYLOAD_TOO_LARGE",
    );
    let huge = json!({"certificate_id": s.rsa, "data": B64.encode(vec![0u8; 13 * 1024 * 1024])});
    check(
        b.send(post("/v1/sign", &huge)).await,
        413,
        "PAYLOAD_TOO_LARGE",
    );
    check(
        b.send(get("/v1/certificates/c-0000000000000000")).await,
        404,
        "CERT_NOT_FOUND",
    );
    check(
        h.send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(ALLOWED))
            .await,
        401,
        "PIN_REQUIRED",
    );
    check(
        b.send(post("/v1/sign", &sign_body(&s.rsa, Some("000000"))))
            .await,
        401,
        "PIN_INCORRECT",
    );
    p.pin_answer(PinAnswer::Cancelled);
    check(
        b.send(post("/v1/sign", &sign_body(&s.rsa, None)).origin(ALLOWED))
            .await,
        409,
        "USER_CANCELLED",
    );
    check(
        b.send(post("/v1/sign", &sign_body(&s.keyless, Some(PIN))))
            .await,
        409,
        "NO_PRIVATE_KEY",
    );
    assert_eq!(
        seen,
        BTreeSet::from([
            "BAD_REQUEST",
            "ORIGIN_NOT_ALLOWED",
            "HOST_NOT_ALLOWED",
            "PAGE_PIN_NOT_ALLOWED",
            "UNSUPPORTED_MEDIA_TYPE",
            "PAYLOAD_TOO_LARGE",
            "CERT_NOT_FOUND",
            "PIN_REQUIRED",
            "PIN_INCORRECT",
            "USER_CANCELLED",
            "NO_PRIVATE_KEY",
        ])
    );
    // Clear "count low".
    b.send(post("/v1/sign", &sign_body(&s.rsa, Some(PIN))))
        .await
        .expect(200);
}

#[tokio::test]
async fn every_error_answer_is_json_in_the_callers_language() {
    let b = headless();
    let s = shared();
    let cases = [
        get("/v1/nope"),
        get("/v1/sign"),
        get("/v1/certificates").method("DELETE"),
        get("/v1/status").method("OPTIONS"),
        get("/v1/certificates?status=foo"),
        get("/v1/certificates?uscc=a&uscc=b"),
        get("/v1/certificates/%FF"),
        post("/v1/sign", &json!({"certificate_id": s.rsa})),
        post("/v1/sign", &json!({})).body("application/json", b"{".to_vec()),
        post(
            "/v1/authenticate",
            &json!({"certificate_id": s.rsa, "challenge": "A".repeat(70_000)}),
        ),
        post("/v1/sign", &json!({})).body("text/plain", b"{}".to_vec()),
        get("/v1/status").origin("null"),
    ];
    for req in cases {
        let label = format!("{} {}", req.method, req.path);
        for (lang, cjk) in [(None, true), (Some("en"), false)] {
            let mut r = req.clone();
            if let Some(l) = lang {
                r = r.header("accept-language", l);
            }
            let resp = b.send(r).await;
            assert!(resp.status.is_client_error(), "{label}: {}", resp.status);
            let v: Value = serde_json::from_slice(&resp.body).unwrap_or_else(|e| {
                panic!(
                    "{label}: {} answer is not JSON ({e}): {:?}",
                    resp.status,
                    String::from_utf8_lossy(&resp.body)
                )
            });
            let msg = v["error"]["message"]
                .as_str()
                .unwrap_or_else(|| panic!("{label}: {v}"));
            let has_cjk = msg.chars().any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c));
            assert_eq!(has_cjk, cjk, "{label} ({lang:?}): {v}");
        }
    }
}

#[tokio::test]
#[serial(token)]
async fn endpoints() {
    let s = shared();
    let b = headless();
    let v = b.send(get("/v1/status")).await.expect(200);
    assert_eq!(v["name"], "certray");
    assert_eq!(v["ui"], false);
    assert_eq!(v["certificates"], 3);
    let p = Scripted::new();
    let v = scripted(&p).send(get("/v1/status")).await.expect(200);
    assert_eq!(v["ui"], true);

    let v = b.send(get("/v1/tokens")).await.expect(200);
    assert_eq!(v["tokens"][0]["label"], LABEL);
    let token = v["tokens"][0]["id"].as_str().unwrap().to_string();

    let ids = |v: &Value| -> BTreeSet<String> {
        v["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    let all = b.send(get("/v1/certificates")).await.expect(200);
    assert_eq!(
        ids(&all),
        BTreeSet::from([s.rsa.clone(), s.ec.clone(), s.keyless.clone()])
    );
    let v = b
        .send(get("/v1/certificates?uscc=91110108MA01ABCDEN"))
        .await
        .expect(200);
    assert_eq!(ids(&v), BTreeSet::from([s.rsa.clone()]));
    let v = b
        .send(get("/v1/certificates?uscc=91350100M000100Y43"))
        .await
        .expect(200);
    assert!(ids(&v).is_empty());
    let v = b
        .send(get("/v1/certificates?status=expiring"))
        .await
        .expect(200);
    assert_eq!(ids(&v), BTreeSet::from([s.ec.clone()]));
    let v = b.send(get("/v1/certificates?usage=sign")).await.expect(200);
    assert_eq!(ids(&v), BTreeSet::from([s.rsa.clone(), s.ec.clone()]));
    let enc: String = token.bytes().map(|c| format!("%{c:02X}")).collect();
    let v = b
        .send(get(&format!("/v1/certificates?token={enc}")))
        .await
        .expect(200);
    assert_eq!(ids(&v).len(), 3);

    let v = b
        .send(get(&format!("/v1/certificates/{}", s.rsa)))
        .await
        .expect(200);
    let pem = std::fs::read_to_string(fixture("rsa-utf8.pem")).unwrap();
    assert_eq!(v["pem"].as_str().unwrap().trim(), pem.trim());

    let v = b
        .send(post("/v1/sign", &json!({"certificate_id": s.rsa, "data": B64.encode(DATA), "pin": PIN, "format": "cms"})))
        .await
        .expect(200);
    assert_eq!(v["algorithm"], "cms-signed-data");
    let v = b
        .send(post("/v1/sign", &sign_body(&s.rsa, Some(PIN))))
        .await
        .expect(200);
    assert!(verifies(&v, "rsa-utf8", DATA));
    b.send(post(
        "/v1/authenticate",
        &json!({"certificate_id": s.rsa, "challenge": B64.encode([0u8; 16]), "pin": PIN}),
    ))
    .await
    .error(400, "BAD_REQUEST");

    let (status, headers) = head_of(&b.router, get("/v1/events").origin(ALLOWED)).await;
    assert_eq!(status, 200);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(headers["access-control-allow-origin"], ALLOWED);

    let r = b.send(get("/")).await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("证书检测"));

    // The audit log has the two signatures and the refused authentication.
    let audit = std::fs::read_to_string(b.state_dir().join("audit.log")).unwrap();
    assert_eq!(audit.lines().count(), 3, "{audit}");
}

// ---------------------------------------------------------------------------------------------
// OpenAPI kept in sync with the router
// ---------------------------------------------------------------------------------------------

/// Every route `certray::bridge::router` has (method, path). Keep in sync with server.rs.
const ROUTES: [(&str, &str); 9] = [
    ("get", "/"),
    ("get", "/v1/status"),
    ("get", "/v1/tokens"),
    ("get", "/v1/certificates"),
    ("get", "/v1/certificates/{id}"),
    ("post", "/v1/sign"),
    ("post", "/v1/authenticate"),
    ("get", "/v1/events"),
    ("get", "/v1/openapi.json"),
];

#[tokio::test]
async fn openapi_matches_the_router() {
    use utoipa::OpenApi as _;
    let s = shared();
    let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
    let paths = doc["paths"].as_object().unwrap();
    let undocumented = ["/", "/v1/openapi.json"];
    // Every route (but the page and the document itself) is documented, with its method.
    for (method, path) in ROUTES {
        if undocumented.contains(&path) {
            continue;
        }
        assert!(
            paths.get(path).is_some_and(|p| p.get(method).is_some()),
            "{method} {path} is not in the OpenAPI document"
        );
    }
    // Every documented operation is a route, and answers (not 404) on the router.
    let b = headless();
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            assert!(
                ROUTES.contains(&(method, path.as_str())),
                "{method} {path} is documented but not in ROUTES"
            );
            let concrete = path.replace("{id}", &s.rsa);
            let req = if method == "post" {
                post(&concrete, &json!({})).method(&method.to_ascii_uppercase())
            } else {
                get(&concrete).method(&method.to_ascii_uppercase())
            };
            let (status, _) = head_of(&b.router, req).await;
            assert!(
                status != StatusCode::NOT_FOUND && status != StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path}: {status}"
            );
        }
    }
    // The document the bridge serves is this one.
    let served = b.send(get("/v1/openapi.json")).await.expect(200);
    assert_eq!(served, doc);
    // Every response of the operations is described, errors with the error schema.
    let text = doc.to_string();
    assert!(text.contains("ErrorDto"), "no error schema");
}

#[tokio::test]
async fn event_streams_are_capped() {
    let b = headless();
    // server.rs `EVENT_STREAMS` (not exported).
    const EVENT_STREAMS: usize = 32;
    let mut open = Vec::new();
    for _ in 0..EVENT_STREAMS {
        let resp = b
            .router
            .clone()
            .oneshot(get("/v1/events").build())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        open.push(resp);
    }
    let r = b.send(get("/v1/events")).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.json()["error"]["code"].is_string());
    // Other endpoints are not affected, and a closed stream frees its place.
    b.send(get("/v1/status")).await.expect(200);
    open.pop();
    let (status, _) = head_of(&b.router, get("/v1/events")).await;
    assert_eq!(status, StatusCode::OK);
}
