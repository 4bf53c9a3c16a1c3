//! A token that goes away fails what is asked of it with TOKEN_REMOVED, and its kept login
//! is gone: SoftHSM in-process, its token directory deleted and the module re-initialised
//! (SoftHSM's way of noticing a removal).

mod common;

use certray::error::Code;
use certray::model::{HashAlg, SignInput};
use certray::token::pkcs11::{Auth, ModuleHandle, SignRequest};
use common::*;
use secrecy::SecretString;

#[test]
fn operations_on_a_removed_token_fail_with_token_removed() {
    let hsm = SoftHsm::new();
    hsm.init_token("going", "12345678", "123456");
    hsm.import(
        "going",
        "123456",
        "01",
        Some(&fixture("rsa-utf8.der")),
        Some(&fixture("rsa-utf8.key.der")),
        "rsa",
    );
    // SAFETY: the only test in this binary, before any thread loads SoftHSM.
    unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf()) };
    let module = ModuleHandle::spawn(&hsm.module()).expect("load SoftHSM");
    let token = module
        .scan()
        .unwrap()
        .into_iter()
        .find(|t| t.token.label == "going")
        .unwrap()
        .token;
    let req = |auth| SignRequest {
        token_id: token.id.clone(),
        key_id: vec![1],
        hash: HashAlg::Sha256,
        input: SignInput::Data(b"data".to_vec()),
        auth,
    };
    let pin = || SecretString::from("123456");
    module
        .sign(req(Auth::Pin {
            pin: pin(),
            force: false,
            remember: true,
        }))
        .expect("sign with PIN");
    module
        .sign(req(Auth::Session))
        .expect("sign with the kept login");

    for entry in std::fs::read_dir(hsm.dir().join("tokens")).unwrap() {
        std::fs::remove_dir_all(entry.unwrap().path()).unwrap();
    }
    module.reinitialize().unwrap();

    let e = module.sign(req(Auth::Session)).unwrap_err();
    assert_eq!(e.code(), Code::TokenRemoved, "{e}");
    let e = module
        .sign(req(Auth::Pin {
            pin: pin(),
            force: false,
            remember: false,
        }))
        .unwrap_err();
    assert_eq!(e.code(), Code::TokenRemoved, "{e}");
    assert_eq!(
        module.pin_state(&token.id).unwrap_err().code(),
        Code::TokenRemoved
    );
    assert!(
        module
            .scan()
            .unwrap()
            .iter()
            .all(|t| t.token.id != token.id)
    );
    // A token never seen is not found, not removed.
    assert_eq!(
        module
            .pin_state(&"t-0000000000000000".into())
            .unwrap_err()
            .code(),
        Code::TokenNotFound
    );
}
