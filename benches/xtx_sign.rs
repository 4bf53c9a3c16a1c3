//! `SOF_SignData` over BJCA's protocol (a WebSocket to `/xtxapp/`, RSA-2048, the PIN logged in
//! with `SOF_Login`) against `POST /v1/sign` with the PIN in the request, for the same key in
//! the same run: medians of alternating batches and their ratio. Target: XTX ≤ 1.1 × `/v1`.
//!
//! Both do the same token work: certray's XTX login keeps the page's PIN (bound to the
//! socket) and each `SOF_SignData` signs through the core with it, as `/v1/sign` does with the
//! PIN in its body: C_Login + C_Sign (CKM_SHA256_RSA_PKCS, after `SOF_SetSignMethod`) +
//! C_Logout, then the PIN-flag read. 1 KiB of data both ways; PKCS#1 v1.5 is deterministic, so
//! the two signatures are compared byte for byte first.
//!
//! The bridge and the XTX listener run in this process on the tokio runtime `certray run`
//! builds (`daemon::runtime`), over a SoftHSM demo token; both clients are local programs
//! (no `Origin`) on one keep-alive connection each, blocking, on this thread.
//!
//! `cargo bench --bench xtx_sign` (or `scripts/bench-xtx`) runs it in full; without `--bench`
//! (as `cargo test --all-targets` runs it) it makes a few signatures only.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use certray::bridge::xtx::XtxState;
use certray::bridge::{BridgeOptions, BridgeState, serve};
use certray::core::{Headless, Signing};
use certray::token::demo;
use support::bridge::{config_on, live_on};
use support::{median, verdict};
use tokio_tungstenite::tungstenite;

/// `POST /v1/sign` on one keep-alive connection.
struct Http {
    reader: BufReader<TcpStream>,
    head: String,
}

impl Http {
    fn connect(addr: SocketAddr) -> Http {
        let s = TcpStream::connect(addr).expect("connect to the bridge");
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        Http {
            reader: BufReader::new(s),
            head: format!(
                "POST /v1/sign HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n"
            ),
        }
    }

    /// The signature `/v1/sign` answers for `body`.
    fn sign(&mut self, body: &[u8]) -> Vec<u8> {
        let mut req = format!("{}Content-Length: {}\r\n\r\n", self.head, body.len()).into_bytes();
        req.extend_from_slice(body);
        self.reader.get_mut().write_all(&req).unwrap();
        let mut line = String::new();
        let mut length = 0;
        let mut status = String::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if status.is_empty() {
                status = line.clone();
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!(status.contains(" 200 "), "{status} {v}");
        B64.decode(v["signature"].as_str().unwrap()).unwrap()
    }
}

/// The XTX protocol on one WebSocket.
struct Xtx {
    ws: tungstenite::WebSocket<TcpStream>,
    next: u32,
}

impl Xtx {
    fn connect(addr: SocketAddr) -> Xtx {
        let s = TcpStream::connect(addr).expect("connect to the XTX listener");
        s.set_nodelay(true).unwrap();
        let (ws, _) = tungstenite::client(format!("ws://{addr}/xtxapp/"), s).expect("handshake");
        Xtx { ws, next: 0 }
    }

    fn call(&mut self, func: &str, params: serde_json::Value) -> String {
        self.next += 1;
        let id = format!("i_{}", self.next);
        let frame = serde_json::json!({"call_cmd_id": id, "xtx_func_name": func, "param": params});
        self.ws
            .send(tungstenite::Message::Text(frame.to_string().into()))
            .unwrap();
        loop {
            if let tungstenite::Message::Text(t) = self.ws.read().unwrap() {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                if v["call_cmd_id"] == id.as_str() {
                    return v["retVal"].as_str().unwrap().to_string();
                }
            }
        }
    }
}

fn main() {
    let full = support::full_run();
    let (rounds, per_round) = if full { (40, 10) } else { (2, 2) };
    assert!(
        std::path::Path::new(demo::SOFTHSM_MODULE).exists(),
        "SoftHSM2 not found at {}: apt-get install softhsm2",
        demo::SOFTHSM_MODULE
    );
    let dir = tempfile::tempdir().expect("temp dir");
    // Sets SOFTHSM2_CONF for this process; no other thread exists yet.
    let token = demo::ensure(&dir.path().join("demo"), false).expect("demo token");
    let config = config_on(&token.module, &dir.path().join("config.toml"));
    let live = live_on(&config);
    let cert = live
        .snapshot()
        .certificates
        .iter()
        .find(|c| c.has_private_key.is_yes() && c.key_id == [1u8]) // the demo token's RSA-2048 key
        .cloned()
        .expect("the demo RSA certificate");

    let runtime = certray::daemon::runtime().expect("tokio runtime");
    let _enter = runtime.enter();
    let signing = Signing::open(
        live.clone(),
        &config.bridge,
        Arc::new(Headless),
        Some(dir.path().join("state").as_path()),
    );
    let bridge_listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let bridge_addr = bridge_listener.local_addr().unwrap();
    let app = BridgeState::new(
        signing.clone(),
        BridgeOptions {
            config: config.bridge.clone(),
            port: bridge_addr.port(),
            warning_days: 30,
        },
    );
    runtime.spawn(serve(bridge_listener, app, std::future::pending()));
    let xtx_listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let xtx_addr = xtx_listener.local_addr().unwrap();
    let state = XtxState::start(signing);
    runtime.spawn(certray::bridge::xtx::serve(
        xtx_listener,
        None,
        state,
        std::future::pending(),
    ));

    let data = "Z".repeat(1024);
    let body = serde_json::to_vec(&serde_json::json!({
        "certificate_id": cert.id,
        "data": B64.encode(data.as_bytes()),
        "hash": "sha256",
        "format": "raw",
        "pin": demo::PIN,
    }))
    .unwrap();

    let mut http = Http::connect(bridge_addr);
    let mut xtx = Xtx::connect(xtx_addr);
    let list = xtx.call("SOF_GetUserList", serde_json::json!([]));
    let user = list
        .split("&&&")
        .filter_map(|e| e.split_once("||").map(|(_, id)| id.to_string()))
        .find(|id| id.starts_with("01/"))
        .unwrap_or_else(|| panic!("the demo RSA key (key id 01) in {list}"));
    assert_eq!(
        xtx.call("SOF_SetSignMethod", serde_json::json!([0x0001_0004])),
        "0"
    );
    assert_eq!(
        xtx.call("SOF_Login", serde_json::json!([user, demo::PIN])),
        "true"
    );
    let sign_frame = serde_json::json!([user, data]);

    // Warm both paths; they make the same signature.
    let over_v1 = http.sign(&body);
    let over_xtx = B64
        .decode(xtx.call("SOF_SignData", sign_frame.clone()))
        .expect("a base64 signature");
    assert_eq!(over_v1.len(), 256);
    assert_eq!(
        over_v1, over_xtx,
        "/v1/sign and SOF_SignData signed differently"
    );

    let settle = || std::thread::sleep(Duration::from_millis(5));
    let (mut v1, mut x) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for _ in 0..per_round {
            let t = Instant::now();
            let sig = http.sign(&body);
            v1.push(t.elapsed());
            assert_eq!(sig.len(), 256);
        }
        settle();
        for _ in 0..per_round {
            let t = Instant::now();
            let sig = xtx.call("SOF_SignData", sign_frame.clone());
            x.push(t.elapsed());
            assert!(sig.len() > 300, "SOF_SignData failed");
        }
        settle();
    }
    let (mv1, mx) = (median(&mut v1), median(&mut x));
    let ratio = mx.as_secs_f64() / mv1.as_secs_f64();
    let n = rounds * per_round;
    println!(
        "xtx_sign: RSA-2048, SHA-256, 1 KiB, PIN each time (C_Login + C_Sign + C_Logout), {n} signatures each way"
    );
    println!(
        "  POST /v1/sign (PIN in the body)      median {:>8.1} µs",
        mv1.as_secs_f64() * 1e6
    );
    println!(
        "  SOF_SignData over ws (PIN logged in) median {:>8.1} µs",
        mx.as_secs_f64() * 1e6
    );
    println!(
        "  ratio XTX / v1 {ratio:.3} (target ≤ 1.10): {}",
        verdict(full, ratio <= 1.10, &format!("{n} signatures each way"))
    );
}
