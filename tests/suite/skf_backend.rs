//! certray's SKF backend driven as the core drives it (`Backend::sign`, `Backend::logout`),
//! its host a real `certray skf-host` process loading softskf (the test-only STAND-IN for a
//! GM/T 0016 USB key). OpenSSL referees the signatures; softskf's own call log shows what
//! the host asked the library.
//!
//! SKF.md §5.3 (6): `SKF_ClearSecureState` logs out, after which signing needs the PIN again.

use crate::common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use certray::model::{HashAlg, KeyPresence, Pin, SignInput};
use certray::token::skf::{SkfBackend, SkfOptions};
use certray::token::{Auth, Backend, Error, SignRequest};
use common::skf::{self, SoftSkf};
use common::write_script;

const MESSAGE: &[u8] = "增值税发票 certray SKF logout test".as_bytes();

/// The host program: `certray` with softskf's state directory in its environment (the test
/// binary's own environment is shared by every test and is not changed).
fn host_program(dir: &Path, skf: &SoftSkf) -> PathBuf {
    let script = dir.join("certray-with-softskf");
    let (name, value) = &skf.env()[0];
    write_script(
        &script,
        &format!(
            "{name}='{}' exec '{}' \"$@\"",
            value.to_str().unwrap(),
            env!("CARGO_BIN_EXE_certray")
        ),
    );
    script
}

#[test]
fn skf_logout_clears_the_secure_state_and_a_kept_login_is_gone() {
    let skf = SoftSkf::standard();
    let dir = tempfile::tempdir().unwrap();
    let backend = SkfBackend::spawn(
        &skf::library(),
        SkfOptions {
            program: host_program(dir.path(), &skf),
            timeout: Duration::from_secs(30),
        },
    )
    .expect("the SKF host starts");
    let scans = backend.scan().wait().expect("scan");
    assert_eq!(scans.len(), 1, "{scans:?}");
    let token = scans[0].token.id.clone();
    let cert = scans[0]
        .certificates
        .iter()
        .find(|c| c.has_private_key == KeyPresence::Yes)
        .expect("the signing certificate")
        .clone();
    let sign = |auth: Auth| {
        backend
            .sign(SignRequest {
                token_id: token.clone(),
                key_id: cert.key_id.clone(),
                hash: HashAlg::Sm3,
                input: SignInput::Data(MESSAGE.to_vec()),
                auth,
            })
            .wait()
    };
    let verified = |sig: &[u8]| {
        let (ok, why) = skf::openssl_sm2_verify(&cert.der, MESSAGE, sig);
        assert!(ok, "OpenSSL refused the signature: {why}");
    };
    // How often the library has been asked to log out.
    let logouts = || skf.calls("SKF_ClearSecureState");
    let pin = |remember: bool| Auth::Pin {
        pin: Pin::from("123456"),
        force: false,
        remember,
    };

    // A PIN for one signature: logged out at once, nothing kept.
    let before = logouts();
    verified(&sign(pin(false)).expect("a signature with the PIN").bytes);
    assert_eq!(logouts(), before + 1, "{}", skf.call_log());
    assert!(
        matches!(sign(Auth::Session), Err(Error::PinRequired)),
        "a login not kept was used again"
    );

    // A kept login signs without the PIN, and is not logged out after each signature...
    verified(
        &sign(pin(true))
            .expect("a signature that keeps its login")
            .bytes,
    );
    let kept = logouts();
    verified(
        &sign(Auth::Session)
            .expect("a signature on the kept login")
            .bytes,
    );
    assert_eq!(logouts(), kept, "{}", skf.call_log());
    // ... until the logout, which clears the library's secure state: the PIN is needed again.
    backend.logout(&token).wait().expect("logout");
    assert_eq!(logouts(), kept + 1, "{}", skf.call_log());
    assert!(
        matches!(sign(Auth::Session), Err(Error::PinRequired)),
        "the kept login survived the logout"
    );
    verified(&sign(pin(false)).expect("the PIN signs again").bytes);
}
