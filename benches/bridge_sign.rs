//! `POST /v1/sign` (raw RSA-2048, SHA-256, 1 KiB of data) through the localhost bridge over
//! HTTP, against the same signature asked of the token worker in-process: medians of
//! alternating batches and their ratio, measured in one run. Target: HTTP ≤ 1.15 × in-process.
//!
//! The bridge runs in this process (axum on the tokio runtime `certray run` builds,
//! `daemon::runtime`) on 127.0.0.1:0, over a SoftHSM demo token in a temp dir; the client is a minimal
//! HTTP/1.1 client on one keep-alive `TcpStream`, as a local program (no `Origin` header).
//!
//! Two comparisons, each doing the same token work both ways:
//! - **PIN in each request** (the target): a local program may put the PIN in the body, and
//!   the bridge then logs in for that request only (C_Login + C_Sign + C_Logout, then it asks
//!   the inventory to read the token's PIN flags again, since they may have moved). The in-process
//!   side is `Backend::sign` (a `ModuleHandle`) with `Auth::Pin { remember: false }`: the same three calls.
//! - **kept login**: C_Sign alone both ways. In-process: `Auth::Session` after one
//!   `remember: true` login, like `benches/token_sign.rs`. Over HTTP: a request without PIN
//!   whose grant the PIN dialog remembered (a stand-in dialog here answers the demo PIN with
//!   "remember"; the headless daemon has no dialog, so it offers only the first comparison).
//!
//! Then a breakdown of the HTTP side's extra time: in-process followed by the PIN-flag read the
//! bridge queues after a PIN request, the kept-login call handed over through tokio's
//! awaited on the tokio runtime as the handler does, and round trips that never reach the token.
//!
//! `cargo bench --bench bridge_sign` runs it in full; without `--bench` (as `cargo test
//! --all-targets` runs it) it makes a few signatures only, to show it still works.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use certray::core::{Credentials, Format, Requester, SignJob};
use certray::model::{HashAlg, KeyKind, SignInput};
use certray::token::demo;
use certray::token::{Auth, Backend, SignRequest};
use secrecy::SecretString;
use support::bridge::{Client, RememberingDialog, Served, config_on, live_on, signature_of};
use support::{median, verdict};

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn main() {
    let full = support::full_run();
    let (rounds, per_round) = if full { (50, 10) } else { (2, 3) };
    assert!(
        std::path::Path::new(demo::SOFTHSM_MODULE).exists(),
        "SoftHSM2 not found at {}: apt-get install softhsm2",
        demo::SOFTHSM_MODULE
    );
    let dir = tempfile::tempdir().expect("temp dir");
    // Sets SOFTHSM2_CONF for this process; no other thread exists yet.
    let token = demo::ensure(&dir.path().join("demo"), false).expect("demo token");
    let config = config_on(&token.module, &dir.path().join("config.toml"));
    // The inventory and its module worker, as `certray run` starts them.
    let live = live_on(&config);
    let cert = live
        .snapshot()
        .certificates
        .iter()
        .find(|c| c.has_private_key.is_yes() && c.key_id == [1u8]) // the demo token's RSA-2048 key
        .cloned()
        .expect("the demo RSA certificate");
    let module: Arc<dyn Backend> = live.module_for(&cert.token_id).expect("its module worker");

    // The bridge, as `certray run` serves it.
    let served = Served::start(
        &live,
        &config,
        Arc::new(RememberingDialog(demo::PIN)),
        &dir.path().join("state"),
    );
    let (runtime, addr, signing) = (&served.runtime, served.addr, served.signing.clone());

    let data = vec![0x5au8; 1024];
    let data_b64 = B64.encode(&data);
    let body_pin = serde_json::to_vec(&serde_json::json!({
        "certificate_id": cert.id,
        "data": data_b64,
        "hash": "sha256",
        "format": "raw",
        "pin": demo::PIN,
    }))
    .expect("request body");
    let body_kept = serde_json::to_vec(&serde_json::json!({
        "certificate_id": cert.id,
        "data": data_b64,
        "hash": "sha256",
        "format": "raw",
    }))
    .expect("request body");
    let req = |auth| SignRequest {
        token_id: cert.token_id.clone(),
        key_id: cert.key_id.clone(),
        hash: HashAlg::Sha256,
        input: SignInput::Data(data.clone()),
        auth,
    };
    let pin_once = || Auth::Pin {
        pin: SecretString::from(demo::PIN),
        force: false,
        remember: false,
    };

    // Between batches: let a PIN-flag read that a PIN request queued finish (the worker answers in
    // order), so that no batch pays for the one before it.
    let settle = || {
        std::thread::sleep(Duration::from_millis(5));
        let _ = module.logout(&"t-none".into()).wait();
    };

    let mut client = Client::connect(addr);
    // Warm both paths (and check that they sign the same: PKCS#1 v1.5 is deterministic).
    let (status, body) = client.post_json("/v1/sign", &body_pin);
    let over_http = signature_of(status, &body);
    let in_process = module
        .sign(req(pin_once()))
        .wait()
        .expect("in-process signature");
    assert_eq!(over_http.len(), 256);
    assert_eq!(
        over_http, in_process.bytes,
        "HTTP and in-process signatures differ"
    );

    // 1. PIN in each request: C_Login + C_Sign + C_Logout both ways, batches taking turns.
    let mut http_pin = Vec::new();
    let mut inproc_pin = Vec::new();
    // And, for the breakdown, in-process followed by the PIN-flag read that the bridge asks of the
    // inventory after a request with a PIN (`Live::refresh`): what the next request waits for.
    let mut refresh_pin = Vec::new();
    for _ in 0..rounds {
        for _ in 0..per_round {
            let t = Instant::now();
            let (status, body) = client.post_json("/v1/sign", &body_pin);
            http_pin.push(t.elapsed());
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        }
        settle();
        for _ in 0..per_round {
            let r = req(pin_once()); // building the request is the caller's, not the worker's
            let t = Instant::now();
            let sig = module.sign(r).wait().expect("in-process C_Login + C_Sign");
            inproc_pin.push(t.elapsed());
            assert_eq!(sig.bytes.len(), 256);
        }
        settle();
        for _ in 0..per_round {
            let r = req(pin_once());
            let t = Instant::now();
            let sig = module.sign(r).wait().expect("in-process C_Login + C_Sign");
            live.check_pin(&cert.token_id);
            refresh_pin.push(t.elapsed());
            assert_eq!(sig.bytes.len(), 256);
        }
        settle();
    }

    // 2. Kept login: C_Sign only both ways. The first request without a PIN asks the
    // (stand-in) dialog, which logs in and keeps the login and the grant.
    let (status, body) = client.post_json("/v1/sign", &body_kept);
    signature_of(status, &body);
    let mut http_kept = Vec::new();
    let mut inproc_kept = Vec::new();
    // And, for the breakdown, the same call awaited on the tokio runtime, as the bridge's
    // handler does (ModuleHandle::sign_async), without HTTP.
    let mut pool_kept = Vec::new();
    // And the whole use case (check, grant, token, verify, audit) awaited on the runtime
    // for a program of its own, as a front door calls it, without HTTP.
    let mut core_kept = Vec::new();
    let program = Requester::Program {
        peer: "bridge_sign's in-process caller".into(),
    };
    let job = || SignJob {
        certificate: cert.id.to_string(),
        hash: HashAlg::Sha256,
        input: SignInput::Data(data.clone()),
        format: Format::Raw,
    };
    let use_case = |job: SignJob| {
        runtime
            .block_on(signing.sign(&program, job, Credentials::default()))
            .expect("Signing::sign on the kept login")
    };
    // Its first call asks the (stand-in) dialog, which remembers its grant.
    use_case(job());
    let handle = runtime.handle().clone();
    for _ in 0..rounds {
        for _ in 0..per_round {
            let t = Instant::now();
            let (status, body) = client.post_json("/v1/sign", &body_kept);
            http_kept.push(t.elapsed());
            assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        }
        settle();
        for _ in 0..per_round {
            let r = req(Auth::Session);
            let t = Instant::now();
            let sig = module
                .sign(r)
                .wait()
                .expect("in-process C_Sign on the kept login");
            inproc_kept.push(t.elapsed());
            assert_eq!(sig.bytes.len(), 256);
        }
        settle();
        for _ in 0..per_round {
            let (m, r) = (module.clone(), req(Auth::Session));
            let t = Instant::now();
            let sig = handle
                .block_on(async { m.sign(r).await })
                .expect("C_Sign awaited on the runtime");
            pool_kept.push(t.elapsed());
            assert_eq!(sig.bytes.len(), 256);
        }
        settle();
        for _ in 0..per_round {
            let j = job();
            let t = Instant::now();
            let signed = use_case(j);
            core_kept.push(t.elapsed());
            assert_eq!(signed.bytes.len(), 256);
        }
        settle();
    }

    // 3. Where the HTTP side's extra time goes, without the token: the bare round trip
    // (`GET /v1/status`), a sign request refused before the token (unknown certificate: the
    // body parsed, the data decoded and hashed, the audit line written), and the PIN-flag
    // read that the bridge asks of the module worker after each request with a PIN.
    let n = rounds * per_round;
    let body_unknown = serde_json::to_vec(&serde_json::json!({
        "certificate_id": "c-0000000000000000",
        "data": data_b64,
        "hash": "sha256",
        "format": "raw",
        "pin": demo::PIN,
    }))
    .expect("request body");
    let mut status_rt = Vec::new();
    let mut refused_rt = Vec::new();
    let mut pin_reads = Vec::new();
    let mut verifies = Vec::new();
    let keys = certray::core::KeyCache::default();
    for _ in 0..n {
        let t = Instant::now();
        let (status, _) = client.get("/v1/status");
        status_rt.push(t.elapsed());
        assert_eq!(status, 200);
        let t = Instant::now();
        let (status, _) = client.post_json("/v1/sign", &body_unknown);
        refused_rt.push(t.elapsed());
        assert_eq!(status, 404);
        let t = Instant::now();
        module.pin_state(&cert.token_id).wait().expect("PIN state");
        pin_reads.push(t.elapsed());
        // The check every signature passes before it leaves, its key read once as the
        // bridge's is (core::KeyCache).
        let input = SignInput::Data(data.clone());
        let t = Instant::now();
        keys.verify_signature(&cert, KeyKind::Rsa, HashAlg::Sha256, &input, &over_http)
            .expect("the bridge's signature verifies");
        verifies.push(t.elapsed());
    }

    drop(client);
    served.stop();

    let (hp, ip) = (median(&mut http_pin), median(&mut inproc_pin));
    let (hk, ik) = (median(&mut http_kept), median(&mut inproc_kept));
    let pk = median(&mut pool_kept);
    let ck = median(&mut core_kept);
    let rp = median(&mut refresh_pin);
    let ratio_pin = hp.as_secs_f64() / ip.as_secs_f64();
    let ratio_kept = hk.as_secs_f64() / ik.as_secs_f64();
    println!(
        "bridge_sign: RSA-2048 raw signature (CKM_SHA256_RSA_PKCS, 1 KiB) on SoftHSM, POST /v1/sign over keep-alive HTTP/1.1 vs ModuleHandle::sign in-process, {} each way per comparison, batches of {per_round} alternating",
        http_pin.len()
    );
    println!(
        "  PIN in each request (C_Login+C_Sign+C_Logout both ways)  in-process median {:>8.1} µs   HTTP median {:>8.1} µs   ratio {ratio_pin:.3} (target ≤ 1.15) {}",
        us(ip),
        us(hp),
        verdict(full, ratio_pin <= 1.15, "a few signatures")
    );
    println!(
        "  kept login (C_Sign only both ways)                        in-process median {:>8.1} µs   HTTP median {:>8.1} µs   ratio {ratio_kept:.3} (HTTP adds {:+.1} µs)",
        us(ik),
        us(hk),
        us(hk) - us(ik)
    );
    println!(
        "  breakdown: in-process with a PIN, each followed by the PIN-flag read the bridge asks after a PIN request: median {:.1} µs ({:+.1} µs over in-process)",
        us(rp),
        us(rp) - us(ip)
    );
    println!(
        "  breakdown: the kept-login call awaited on the runtime (the handler's hand-over), no HTTP: median {:.1} µs ({:+.1} µs over in-process)",
        us(pk),
        us(pk) - us(ik)
    );
    println!(
        "  breakdown: the kept-login use case (Signing::sign: grant, token, verify, audit) awaited on the runtime, no HTTP: median {:.1} µs ({:+.1} µs over in-process)",
        us(ck),
        us(ck) - us(ik)
    );
    println!(
        "  without the token: GET /v1/status {:.1} µs   POST /v1/sign refused (unknown certificate) {:.1} µs   PIN-flag read after a PIN request {:.1} µs   verify before return {:.1} µs (medians of {n})",
        us(median(&mut status_rt)),
        us(median(&mut refused_rt)),
        us(median(&mut pin_reads)),
        us(median(&mut verifies))
    );
    // One line for scripts/bench-bridge to read.
    println!(
        "bridge_sign result: pin_http_us={:.1} pin_inproc_us={:.1} pin_ratio={ratio_pin:.3} kept_http_us={:.1} kept_inproc_us={:.1} kept_ratio={ratio_kept:.3}",
        us(hp),
        us(ip),
        us(hk),
        us(ik)
    );
}
