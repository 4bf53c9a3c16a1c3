//! Two keys behind one PKCS#11 module signing side by side through the bridge, with their
//! logins kept: `scripts/bench-bridge` part (d) without the PIN in every request.
//!
//! Part (d) puts the PIN in each request, so every signature is a C_Login, and SoftHSM's
//! login hashes the PIN through OpenSSL 3's global locks: the module itself scales only about
//! 1.5 on two cores there (`benches/module_ceiling.rs`). Here each key logs in once (the PIN
//! dialog's stand-in answers with "remember", as a person would), and then every request is
//! C_Sign alone, which SoftHSM runs side by side on two tokens: what is left to measure is
//! certray's own share, one thread per token behind one module.
//!
//! Two SoftHSM tokens in one store, each with an RSA-2048 key and certificate (the rsa-utf8
//! and rsa-bmp fixtures); the bridge in this process (axum on the tokio runtime `certray run`
//! builds, `daemon::runtime`) on 127.0.0.1:0; 8 clients, each a thread on a keep-alive connection as a local
//! program, POST /v1/sign (raw, SHA-256, 1 KiB) for a few seconds: all 8 on one key, then 4 on
//! each, taking turns. Prints both rates and their ratio (target on 2 cores ≥ 1.6). The first
//! signature of each key is checked by OpenSSL against its certificate before anything is
//! timed.
//!
//! `cargo bench --bench bridge_tokens [-- --seconds S --rounds N]` measures; without `--bench`
//! (as `cargo test --benches` runs it) it makes a few signatures only.

mod support;

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use support::bridge::{Client, RememberingDialog, Served, config_on, live_on, signature_of};

const PIN: &str = "123456";
const CLIENTS: usize = 8;
const TARGET: f64 = 1.6;
/// The two tokens and the RSA-2048 fixture each holds.
const TOKENS: [(&str, &str); 2] = [
    ("certray-bench-a", "rsa-utf8"),
    ("certray-bench-b", "rsa-bmp"),
];

fn main() {
    let full = support::full_run();
    let (seconds, rounds) = support::seconds_and_rounds(full);
    let per_run = Duration::from_secs_f64(seconds);

    // Two tokens in one SoftHSM store, one module, each with a key and certificate of its
    // own (a certificate's id is its hash: one certificate on two tokens is one id).
    let hsm = common::SoftHsm::new();
    for (label, fixture) in TOKENS {
        hsm.init_token(label, "12345678", PIN);
        hsm.import(
            label,
            PIN,
            "01",
            Some(&common::fixture(&format!("{fixture}.der"))),
            Some(&common::fixture(&format!("{fixture}.key.der"))),
            fixture,
        );
    }
    // SAFETY: no other thread exists yet; SoftHSM reads this at C_Initialize.
    unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf()) };
    let config = config_on(&hsm.module(), &hsm.dir().join("certray.toml"));
    let live = live_on(&config);
    let snapshot = live.snapshot();
    let certs: Vec<_> = TOKENS
        .iter()
        .map(|(_, fixture)| {
            let id = common::fixture_cert_id(&snapshot, fixture);
            snapshot
                .certificates
                .iter()
                .find(|c| c.id.as_str() == id && c.has_private_key.is_yes())
                .cloned()
                .unwrap_or_else(|| panic!("{fixture} with its key: {snapshot:?}"))
        })
        .collect();
    assert_ne!(certs[0].token_id, certs[1].token_id, "two tokens");

    let served = Served::start(
        &live,
        &config,
        Arc::new(RememberingDialog(PIN)),
        &hsm.dir().join("state"),
    );
    let addr = served.addr;

    let data = vec![0x5au8; 1024];
    let data_path = hsm.dir().join("data.bin");
    std::fs::write(&data_path, &data).expect("write data");
    let bodies: Vec<Vec<u8>> = certs
        .iter()
        .map(|c| {
            serde_json::to_vec(&serde_json::json!({
                "certificate_id": c.id,
                "data": B64.encode(&data),
                "hash": "sha256",
                "format": "raw",
            }))
            .expect("request body")
        })
        .collect();

    // Each key's first request asks the dialog's stand-in, which logs in and keeps the login;
    // its signature must verify with the certificate, by OpenSSL.
    for (i, body) in bodies.iter().enumerate() {
        let (status, answer) = Client::connect(addr).post_json("/v1/sign", body);
        let sig_path = hsm.dir().join(format!("sig{i}.bin"));
        std::fs::write(&sig_path, signature_of(status, &answer)).expect("write signature");
        assert!(
            common::openssl_verify(
                &common::fixture(&format!("{}.der", TOKENS[i].1)),
                "sha256",
                &sig_path,
                &data_path
            ),
            "the signature from token {i} does not verify"
        );
    }

    // `spread`: client k signs with key k % 2, else all with key 0. Signatures, seconds.
    let run = |spread: bool| -> (u64, f64) {
        let t = Instant::now();
        let n = std::thread::scope(|s| {
            let clients: Vec<_> = (0..CLIENTS)
                .map(|k| {
                    let body = &bodies[if spread { k % 2 } else { 0 }];
                    s.spawn(move || {
                        let mut client = Client::connect(addr);
                        let end = Instant::now() + per_run;
                        let mut n = 0u64;
                        while Instant::now() < end {
                            let (status, answer) = client.post_json("/v1/sign", body);
                            signature_of(status, &answer);
                            n += 1;
                        }
                        n
                    })
                })
                .collect();
            clients
                .into_iter()
                .map(|c| c.join().expect("client thread"))
                .sum::<u64>()
        });
        (n, t.elapsed().as_secs_f64())
    };
    let (mut one, mut two) = ((0u64, 0f64), (0u64, 0f64));
    for _ in 0..rounds {
        let (n, s) = run(false);
        one = (one.0 + n, one.1 + s);
        let (n, s) = run(true);
        two = (two.0 + n, two.1 + s);
    }
    served.stop();

    let (one_rate, two_rate) = (one.0 as f64 / one.1, two.0 as f64 / two.1);
    let ratio = two_rate / one_rate;
    println!(
        "two keys behind one module, POST /v1/sign raw RSA-2048 (SHA-256, 1 KiB), logins kept, \
         {CLIENTS} clients, {rounds} × {seconds} s each way, taking turns"
    );
    println!(
        "  {CLIENTS} clients on one key      {one_rate:>8.1} signatures/s ({} in {:.1} s)",
        one.0, one.1
    );
    println!(
        "  {} clients on each of two  {two_rate:>8.1} signatures/s ({} in {:.1} s)",
        CLIENTS / 2,
        two.0,
        two.1
    );
    println!(
        "  ratio {ratio:.3}   target ≥ {TARGET:.2} (2 cores)   {}",
        support::verdict(full, ratio >= TARGET, "a few signatures")
    );
    println!(
        "bridge_tokens result: one_req={} one_sec={:.3} two_req={} two_sec={:.3} one_rps={one_rate:.1} two_rps={two_rate:.1} ratio={ratio:.3}",
        one.0, one.1, two.0, two.1
    );
}
