//! C_Sign through certray's module worker versus C_Sign called directly on a cryptoki
//! session: RSA-2048 on SoftHSM, medians and their ratio, measured in one run.
//! Target: the worker adds ≤ 5 %.
//!
//! `cargo bench --bench token_sign` runs it in full; without `--bench` (as `cargo test
//! --all-targets` runs it) it makes a few signatures only, to show it still works.

mod support;

use std::time::{Duration, Instant};

use certray::model::{HashAlg, SignInput};
use certray::token::demo;
use certray::token::pkcs11::{Auth, ModuleHandle, SignRequest};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use cryptoki::session::UserType;
use secrecy::SecretString;
use support::{median, verdict};

fn main() {
    let full = support::full_run();
    let (rounds, per_round) = if full { (40, 50) } else { (2, 3) };
    assert!(
        std::path::Path::new(demo::SOFTHSM_MODULE).exists(),
        "SoftHSM2 not found at {}: apt-get install softhsm2",
        demo::SOFTHSM_MODULE
    );
    let dir = tempfile::tempdir().expect("temp dir");
    // Sets SOFTHSM2_CONF for this process; no other thread exists yet.
    let token = demo::ensure(dir.path(), false).expect("demo token");
    let data = vec![0x5au8; 1024];
    let key_id = vec![1u8]; // the demo token's RSA-2048 key

    // Through the worker, logged in once.
    let module = ModuleHandle::spawn(&token.module).expect("load SoftHSM");
    let scan = module.scan().expect("scan");
    let token_id = scan
        .iter()
        .find(|t| t.token.label == demo::LABEL)
        .expect("demo token listed")
        .token
        .id
        .clone();
    let req = |auth| SignRequest {
        token_id: token_id.clone(),
        key_id: key_id.clone(),
        hash: HashAlg::Sha256,
        input: SignInput::Data(data.clone()),
        auth,
    };
    module
        .sign(req(Auth::Pin {
            pin: SecretString::from(demo::PIN),
            force: false,
            remember: true,
        }))
        .expect("first signature");

    // Directly, on a session of our own in the same process.
    let ctx = Pkcs11::new(&token.module).expect("load SoftHSM again");
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(
            cryptoki::error::RvError::CryptokiAlreadyInitialized,
            _,
        )) => {}
        Err(e) => panic!("C_Initialize: {e}"),
    }
    let slot = ctx
        .get_slots_with_token()
        .expect("slots")
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|i| i.label().trim() == demo::LABEL)
                .unwrap_or(false)
        })
        .expect("demo slot");
    let session = ctx.open_ro_session(slot).expect("session");
    match session.login(UserType::User, Some(&SecretString::from(demo::PIN))) {
        Ok(())
        | Err(cryptoki::error::Error::Pkcs11(cryptoki::error::RvError::UserAlreadyLoggedIn, _)) => {
        }
        Err(e) => panic!("login: {e}"),
    }
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(key_id.clone()),
        ])
        .expect("find key")[0];

    // Warm: rounds of back-to-back signatures, the two kinds taking turns round by round.
    let mut direct = Vec::new();
    let mut worker = Vec::new();
    // Cold: one direct signature, then one through the worker, whose thread has slept
    // meanwhile: what a sporadic request from a user or a web page pays.
    let mut direct_cold = Vec::new();
    let mut worker_cold = Vec::new();
    let mut hop = Vec::new();
    for _ in 0..rounds {
        for _ in 0..per_round {
            let t = Instant::now();
            let sig = session
                .sign(&Mechanism::Sha256RsaPkcs, key, &data)
                .expect("direct C_Sign");
            direct.push(t.elapsed());
            assert_eq!(sig.len(), 256);
        }
        for _ in 0..per_round {
            let r = req(Auth::Session); // building the request is the caller's, not the worker's
            let t = Instant::now();
            let sig = module.sign(r).expect("worker C_Sign");
            worker.push(t.elapsed());
            assert_eq!(sig.bytes.len(), 256);
        }
    }
    // Then, separately, the cold case.
    for _ in 0..rounds * (per_round / 5 + 1) {
        let t = Instant::now();
        session
            .sign(&Mechanism::Sha256RsaPkcs, key, &data)
            .expect("direct C_Sign");
        direct_cold.push(t.elapsed());
        let r = req(Auth::Session);
        let t = Instant::now();
        module.sign(r).expect("worker C_Sign");
        worker_cold.push(t.elapsed());
        // The bare hand-over: a request the worker answers without calling the token.
        session
            .sign(&Mechanism::Sha256RsaPkcs, key, &data)
            .expect("direct C_Sign");
        let t = Instant::now();
        module.logout(&"t-none".into()).expect("round trip");
        hop.push(t.elapsed());
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let (d, w) = (median(&mut direct), median(&mut worker));
    let (dc, wc) = (median(&mut direct_cold), median(&mut worker_cold));
    let h = median(&mut hop);
    let ratio = w.as_secs_f64() / d.as_secs_f64();
    let cold = wc.as_secs_f64() / dc.as_secs_f64();
    println!(
        "token_sign: RSA-2048 C_Sign (CKM_SHA256_RSA_PKCS, 1 KiB) on SoftHSM, {} + {} signatures each way",
        direct.len(),
        direct_cold.len()
    );
    println!(
        "  back to back  direct median {:>8.1} µs   worker median {:>8.1} µs   ratio {ratio:.3} (worker adds {:+.1} %, target ≤ 5 %) {}",
        us(d),
        us(w),
        (ratio - 1.0) * 100.0,
        verdict(full, ratio <= 1.05, "a few signatures on a debug build")
    );
    println!(
        "  worker asleep direct median {:>8.1} µs   worker median {:>8.1} µs   ratio {cold:.3} (worker adds {:+.1} %)",
        us(dc),
        us(wc),
        (cold - 1.0) * 100.0
    );
    println!(
        "  request hand-over to a sleeping worker and back: median {:.1} µs",
        us(h)
    );
}
