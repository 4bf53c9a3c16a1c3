//! The baseline for `scripts/bench-bridge` part (d): how far SoftHSM itself lets two tokens
//! of one module sign side by side, with certray nowhere in the way. Two RSA-2048 tokens in
//! one SoftHSM store (the demo token and a second one made here); per signature the
//! PKCS#11 calls certray's token thread makes for a request with a PIN (C_GetTokenInfo,
//! C_OpenSession, C_Login, C_FindObjects, C_GetAttributeValue, C_SignInit, C_Sign,
//! C_Logout, C_CloseSession), looped by one thread on one token, then by one thread on each
//! of the two, taking turns; it prints both rates and their ratio. Whatever the two tokens
//! share inside the module (SoftHSM's login hashes its PIN through OpenSSL 3, whose global
//! locks the two threads then take turns on) caps this ratio, and certray's with it.
//!
//! With `--kept`, each thread logs in once per run and then calls C_Sign alone, as a token's
//! thread does on a kept login: the baseline of `benches/bridge_tokens.rs`.
//!
//! `cargo bench --bench module_ceiling [-- --seconds S --rounds N] [--kept]` measures;
//! without `--bench` (as `cargo test --all-targets` runs it) it makes a few signatures only.

mod support;

use std::time::{Duration, Instant};

use certray::token::demo;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;

const SECOND_LABEL: &str = "certray-ceiling-2";

fn main() {
    let full = support::full_run();
    let (seconds, rounds) = support::seconds_and_rounds(full);
    let per_run = Duration::from_secs_f64(seconds);
    let kept = std::env::args().any(|a| a == "--kept");
    let dir = tempfile::tempdir().expect("temp dir");
    // Sets SOFTHSM2_CONF for this process; no other thread exists yet.
    let token = demo::ensure(dir.path(), false).expect("demo token (apt-get install softhsm2)");
    let ctx = Pkcs11::new(&token.module).expect("load SoftHSM");
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .expect("C_Initialize");
    let first = slot_labelled(&ctx, demo::LABEL).expect("the demo token");
    let second = second_token(&ctx);

    // One signature from each, checked against its own public key before anything is timed.
    for slot in [first, second] {
        assert_eq!(
            sign_with_pin(&ctx, slot, true),
            1,
            "a signature that verifies"
        );
    }
    let (mut one, mut two) = ((0u64, 0f64), (0u64, 0f64));
    for _ in 0..rounds {
        let t = Instant::now();
        one.0 += signatures_for(&ctx, first, per_run, kept);
        one.1 += t.elapsed().as_secs_f64();
        let t = Instant::now();
        two.0 += std::thread::scope(|s| {
            let a = s.spawn(|| signatures_for(&ctx, first, per_run, kept));
            let b = s.spawn(|| signatures_for(&ctx, second, per_run, kept));
            a.join().expect("thread") + b.join().expect("thread")
        });
        two.1 += t.elapsed().as_secs_f64();
    }
    let _ = ctx.finalize();
    let (one_rate, two_rate) = (one.0 as f64 / one.1, two.0 as f64 / two.1);
    let ratio = two_rate / one_rate;
    let smoke = if full {
        String::new()
    } else {
        format!(" {}", support::verdict(full, true, "a few signatures"))
    };
    println!(
        "module_ceiling: SoftHSM called directly, RSA-2048 (CKM_SHA256_RSA_PKCS, 1 KiB), {}; {rounds} × {seconds} s each way{smoke}",
        if kept {
            "C_Sign alone on a kept login"
        } else {
            "the calls of a request with a PIN"
        }
    );
    println!(
        "module_ceiling result: one_req={} one_sec={:.3} two_req={} two_sec={:.3} one_rps={one_rate:.1} two_rps={two_rate:.1} ratio={ratio:.3}",
        one.0, one.1, two.0, two.1
    );
}

fn slot_labelled(ctx: &Pkcs11, label: &str) -> Option<Slot> {
    ctx.get_slots_with_token()
        .expect("C_GetSlotList")
        .into_iter()
        .find(|s| ctx.get_token_info(*s).is_ok_and(|i| i.label() == label))
}

/// A second token in the same store (SoftHSM always offers one free slot), with an RSA-2048
/// key pair made on it, CKA_ID 01 like the demo token's RSA key.
fn second_token(ctx: &Pkcs11) -> Slot {
    let free = ctx
        .get_slots_with_token()
        .expect("C_GetSlotList")
        .into_iter()
        .find(|s| ctx.get_token_info(*s).is_ok_and(|i| !i.token_initialized()))
        .expect("SoftHSM's free slot");
    let so = AuthPin::new(demo::SO_PIN.into());
    ctx.init_token(free, &so, SECOND_LABEL)
        .expect("C_InitToken");
    let slot = slot_labelled(ctx, SECOND_LABEL).expect("the new token");
    let session = ctx.open_rw_session(slot).expect("C_OpenSession");
    session.login(UserType::So, Some(&so)).expect("SO login");
    session
        .init_pin(&AuthPin::new(demo::PIN.into()))
        .expect("C_InitPIN");
    session.logout().expect("C_Logout");
    session
        .login(UserType::User, Some(&AuthPin::new(demo::PIN.into())))
        .expect("user login");
    session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Verify(true),
                Attribute::Id(vec![1]),
            ],
            &[
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Sign(true),
                Attribute::Id(vec![1]),
            ],
        )
        .expect("C_GenerateKeyPair");
    session.logout().expect("C_Logout");
    slot
}

/// Signatures made on `slot` in `time`: each with its own login, or with `kept` all on one
/// login (C_Sign alone, the key found once).
fn signatures_for(ctx: &Pkcs11, slot: Slot, time: Duration, kept: bool) -> u64 {
    let start = Instant::now();
    let mut n = 0;
    if !kept {
        while start.elapsed() < time {
            n += sign_with_pin(ctx, slot, false);
        }
        return n;
    }
    let data = [b'Z'; 1024];
    let (session, key) = logged_in(ctx, slot);
    while start.elapsed() < time {
        session
            .sign(&Mechanism::Sha256RsaPkcs, key, &data)
            .expect("C_Sign");
        n += 1;
    }
    session.logout().expect("C_Logout");
    n
}

/// One signature as certray's token thread makes it for a request with a PIN (see
/// `TokenWorker::sign` in src/token/pkcs11/worker.rs); with `check`, verified on the token
/// with the public key.
fn sign_with_pin(ctx: &Pkcs11, slot: Slot, check: bool) -> u64 {
    let data = [b'Z'; 1024];
    let info = ctx.get_token_info(slot).expect("C_GetTokenInfo");
    assert!(info.user_pin_initialized());
    let (session, key) = logged_in(ctx, slot);
    let kind = session
        .get_attributes(key, &[AttributeType::KeyType])
        .expect("C_GetAttributeValue");
    assert!(matches!(kind.first(), Some(Attribute::KeyType(t)) if *t == KeyType::RSA));
    let signature = session
        .sign(&Mechanism::Sha256RsaPkcs, key, &data)
        .expect("C_Sign");
    if check {
        let public = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PUBLIC_KEY),
                Attribute::Id(vec![1]),
            ])
            .expect("C_FindObjects")[0];
        session
            .verify(&Mechanism::Sha256RsaPkcs, public, &data, &signature)
            .expect("the signature verifies");
    }
    session.logout().expect("C_Logout");
    1
}

/// A session on `slot` logged in as user, and the private key with CKA_ID 01 found through it.
fn logged_in(ctx: &Pkcs11, slot: Slot) -> (Session, ObjectHandle) {
    let session = ctx.open_ro_session(slot).expect("C_OpenSession");
    session
        .login(UserType::User, Some(&AuthPin::new(demo::PIN.into())))
        .expect("C_Login");
    let key = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Id(vec![1]),
        ])
        .expect("C_FindObjects")[0];
    (session, key)
}
