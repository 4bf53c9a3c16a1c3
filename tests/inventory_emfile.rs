//! Issue 14, item 3: a resource error of the process never drops a key from the inventory,
//! and the key is served again once it clears.
//!
//! The attack: about 1,010 idle sockets to the bridge under the usual 1,024 open-file limit.
//! The process ran out of file descriptors; SoftHSM then failed C_GetTokenInfo
//! (CKR_GENERAL_ERROR) at the next slot poll, the token dropped out of the inventory, and it
//! stayed missing after the sockets were released (SoftHSM keeps failing until it is
//! initialised again). Here the process itself runs out of descriptors (a low soft limit and
//! files opened until EMFILE), with a live inventory polling a real SoftHSM token: the token
//! and its certificate must stay listed through it, and sign afterwards.
//!
//! One test in its own binary: it lowers the binary's open-file limit.

mod common;

use std::time::{Duration, Instant};

use certray::model::{HashAlg, SignInput};
use certray::token::pkcs11::Auth;
use common::*;
use secrecy::SecretString;

const PIN: &str = "123456";

fn nofile() -> (u64, u64) {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) }, 0);
    (r.rlim_cur, r.rlim_max)
}

fn set_soft_nofile(soft: u64) {
    let r = libc::rlimit {
        rlim_cur: soft,
        rlim_max: nofile().1,
    };
    // SAFETY: setrlimit reads one rlimit we own.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &r) }, 0);
}

/// Open `/dev/null` until the process is out of descriptors; the files are the proof.
fn exhaust() -> Vec<std::fs::File> {
    let mut held = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(f) => held.push(f),
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(libc::EMFILE), "{e}");
                return held;
            }
        }
        assert!(held.len() < 100_000, "no EMFILE after 100,000 files");
    }
}

#[test]
fn a_key_survives_running_out_of_file_descriptors() {
    let hsm = SoftHsm::new();
    hsm.rsa_utf8_token("emfile", "12345678", PIN);
    // SAFETY: the only test in this binary, before any thread loads SoftHSM.
    unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf()) };
    let mut config = certray::config::Config::default();
    config.pkcs11.modules = vec![certray::config::ModuleConfig::new(hsm.module())];
    config.pkcs11.use_defaults = false;
    config.pkcs11.poll_interval_ms = 100;
    let live = certray::core::Live::start(
        &config,
        certray::core::LiveOptions {
            watch: true,
            pcsc: false,
        },
    )
    .expect("Live::start");
    let snap = live.snapshot();
    assert_eq!(snap.tokens.len(), 1, "{snap:?}");
    let token_id = snap.tokens[0].id.clone();
    let cert = live
        .find_certificate(&fixture_cert_id(&snap, "rsa-utf8"))
        .unwrap();

    let (soft, _) = nofile();
    set_soft_nofile(256);
    let held = exhaust();
    // Ten slot polls while nothing can be opened: SoftHSM fails them.
    let mut seen_missing = false;
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        let s = live.snapshot();
        seen_missing |= s.token(&token_id).is_none() || s.certificates_of(&token_id).is_empty();
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(held);
    set_soft_nofile(soft);
    assert!(
        !seen_missing,
        "the token or its certificate left the inventory while the process was out of descriptors"
    );

    // Descriptors are back: the token is served, and signs (after SoftHSM is initialised
    // again, which drops kept logins but not the token).
    std::thread::sleep(Duration::from_millis(500));
    let s = live.snapshot();
    assert!(s.token(&token_id).is_some(), "{s:?}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let sig = rt
        .block_on(live.sign(
            &cert,
            HashAlg::Sha256,
            SignInput::Data(b"after EMFILE".to_vec()),
            Auth::Pin {
                pin: SecretString::from(PIN),
                force: false,
                remember: false,
            },
        ))
        .expect("sign after the descriptors came back");
    let dir = tempfile::tempdir().unwrap();
    let (s, d) = (dir.path().join("sig"), dir.path().join("data"));
    std::fs::write(&s, &sig.bytes).unwrap();
    std::fs::write(&d, b"after EMFILE").unwrap();
    assert!(openssl_verify(&fixture("rsa-utf8.der"), "sha256", &s, &d));
}
