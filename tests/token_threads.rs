//! Two tokens in one SoftHSM module, each served by a thread of its own: a signature on one
//! token does not wait behind a queue of signatures on the other, and re-initialising the
//! module while both keep a login (and have signatures in flight) stops their threads
//! first, without a deadlock or a crash; dropping a module ends its threads before its
//! library is unloaded (opencryptoki, as root). And the seam (`token::Backend`) answers callers
//! that block and callers that await, sending nothing for a request dropped unasked.
//!
//! The proofs compare orderings, not durations: which answers had arrived when another one
//! did. One SoftHSM store for the whole binary (SoftHSM reads `SOFTHSM2_CONF` once per
//! process, at C_Initialize), loaded once and never dropped; the tests are
//! `#[serial(tokens)]` since a re-initialisation ends every kept login.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use certray::error::Code;
use certray::model::{HashAlg, SignInput, Signature, TokenId};
use certray::token::pkcs11::{Auth, ModuleHandle, SignRequest};
use certray::token::{Backend, Error};
use common::*;
use secrecy::SecretString;
use serial_test::serial;

const PIN: &str = "123456";
const SO_PIN: &str = "12345678";
/// Signatures queued on one token while the other is asked for one.
const QUEUED: usize = 200;

struct Shared {
    hsm: SoftHsm,
    module: ModuleHandle,
    /// Token "left" (the rsa-utf8 key) and token "right" (the rsa-bmp key), key id 01 each.
    left: TokenId,
    right: TokenId,
}

fn shared() -> &'static Shared {
    static SHARED: OnceLock<Shared> = OnceLock::new();
    SHARED.get_or_init(|| {
        let hsm = SoftHsm::new();
        hsm.rsa_utf8_token("left", SO_PIN, PIN);
        hsm.init_token("right", SO_PIN, PIN);
        hsm.import(
            "right",
            PIN,
            "01",
            Some(&fixture("rsa-bmp.der")),
            Some(&fixture("rsa-bmp.key.der")),
            "rsa-bmp",
        );
        // SAFETY: set once, while every other test thread waits on this OnceLock, before
        // SoftHSM (which reads it at C_Initialize) is loaded.
        unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf()) };
        let module = ModuleHandle::spawn(&hsm.module()).expect("load SoftHSM");
        let scan = module.scan().expect("scan");
        let id = |label: &str| {
            scan.iter()
                .find(|t| t.token.label == label)
                .unwrap_or_else(|| panic!("token {label} not listed"))
                .token
                .id
                .clone()
        };
        let (left, right) = (id("left"), id("right"));
        assert_ne!(left, right);
        Shared {
            hsm,
            module,
            left,
            right,
        }
    })
}

fn pin(remember: bool) -> Auth {
    Auth::Pin {
        pin: SecretString::from(PIN),
        force: false,
        remember,
    }
}

fn request(token: &TokenId, data: &[u8], auth: Auth) -> SignRequest {
    SignRequest {
        token_id: token.clone(),
        key_id: vec![1],
        hash: HashAlg::Sha256,
        input: SignInput::Data(data.to_vec()),
        auth,
    }
}

type Answer = Pin<Box<dyn Future<Output = Result<Signature, Error>> + Send>>;

/// A signature asked for and sent now, its answer collected later ([`ready`], [`finish`]):
/// `sign_async` sends its request when first polled.
fn send(
    module: &'static ModuleHandle,
    req: SignRequest,
) -> (Answer, Option<Result<Signature, Error>>) {
    let mut answer: Answer = Box::pin(module.sign_async(req));
    let now = ready(&mut answer);
    (answer, now)
}

/// The answer if it has arrived, without waiting.
fn ready(answer: &mut Answer) -> Option<Result<Signature, Error>> {
    match answer
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(r) => Some(r),
        Poll::Pending => None,
    }
}

/// Every answer, waiting for those still to come.
fn finish(
    answers: Vec<(Answer, Option<Result<Signature, Error>>)>,
) -> Vec<Result<Signature, Error>> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    answers
        .into_iter()
        .map(|(answer, got)| match got {
            Some(r) => r,
            None => rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(300), answer)
                    .await
                    .expect("an answer that never came")
            }),
        })
        .collect()
}

/// OpenSSL verifies `sig` over `data` with the certificate fixture `cert`.
fn verifies(hsm: &SoftHsm, cert: &str, data: &[u8], sig: &Signature) -> bool {
    let n = std::process::id();
    let (d, s) = (
        hsm.dir().join(format!("data-{n}-{cert}")),
        hsm.dir().join(format!("sig-{n}-{cert}")),
    );
    std::fs::write(&d, data).unwrap();
    std::fs::write(&s, &sig.bytes).unwrap();
    let ok = openssl_verify(&fixture(&format!("{cert}.der")), "sha256", &s, &d);
    let _ = (std::fs::remove_file(&d), std::fs::remove_file(&s));
    ok
}

/// Run `f` on a thread of its own; a panic if it takes longer than `limit` (a deadlock fails
/// the test rather than hanging it).
fn within<T: Send + 'static>(
    limit: Duration,
    what: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}: a deadlock?"))
}

#[test]
#[serial(tokens)]
fn a_signature_on_one_token_does_not_wait_behind_another_tokens_queue() {
    let s = shared();
    // Logged in on both (and so both tokens have their thread) before the race.
    for t in [&s.left, &s.right] {
        s.module
            .sign(request(t, b"log in", pin(true)))
            .expect("sign with the PIN, keeping the login");
    }

    // Token left: QUEUED signatures sent at once, on its kept login.
    let mut queue: Vec<_> = (0..QUEUED)
        .map(|i| {
            send(
                &s.module,
                request(&s.left, format!("left {i}").as_bytes(), Auth::Session),
            )
        })
        .collect();
    // Token right: one signature, the caller blocked until it comes.
    let right = s
        .module
        .sign(request(&s.right, b"right", Auth::Session))
        .expect("sign on the right token");
    // How far the left token's queue had come when the right token answered (counted just
    // after, so perhaps a few more). One thread serving both tokens would have answered the
    // whole queue first.
    for (answer, got) in queue.iter_mut() {
        if got.is_none() {
            *got = ready(answer);
        }
    }
    let answered_by_then = queue.iter().filter(|(_, got)| got.is_some()).count();
    eprintln!(
        "when the right token answered, {answered_by_then} of the left token's {QUEUED} signatures had been answered"
    );
    assert!(
        answered_by_then < QUEUED,
        "the right token's signature waited until the left token's whole queue ({QUEUED}) was done"
    );

    // Every signature is good, and each was made by its own token's key.
    assert!(verifies(&s.hsm, "rsa-bmp", b"right", &right));
    let left: Vec<Signature> = finish(queue)
        .into_iter()
        .map(|r| r.expect("a signature on the left token"))
        .collect();
    assert_eq!(left.len(), QUEUED);
    assert!(verifies(&s.hsm, "rsa-utf8", b"left 0", &left[0]));
    assert!(verifies(
        &s.hsm,
        "rsa-utf8",
        format!("left {}", QUEUED - 1).as_bytes(),
        &left[QUEUED - 1]
    ));
}

#[test]
#[serial(tokens)]
fn reinitialising_with_logins_kept_on_two_tokens_stops_their_threads_first() {
    let s = shared();
    for t in [&s.left, &s.right] {
        s.module
            .sign(request(t, b"log in", pin(true)))
            .expect("sign with the PIN, keeping the login");
    }
    // Signatures in flight on both tokens' kept logins when the re-initialisation is asked.
    let in_flight: Vec<_> = (0..20)
        .flat_map(|i| [(&s.left, i), (&s.right, i)])
        .map(|(t, i)| {
            send(
                &s.module,
                request(t, format!("in flight {i}").as_bytes(), Auth::Session),
            )
        })
        .collect();
    within(Duration::from_secs(120), "re-initialisation", || {
        shared().module.reinitialize()
    })
    .expect("re-initialise");
    // What was sent before was answered, on the logins it was sent for.
    for r in finish(in_flight) {
        assert_eq!(
            r.expect("a signature sent before the re-initialisation")
                .bytes
                .len(),
            256
        );
    }
    // The kept logins ended with the old context; the tokens are still there.
    for t in [&s.left, &s.right] {
        let e = s
            .module
            .sign(request(t, b"kept?", Auth::Session))
            .unwrap_err();
        assert_eq!(e.code(), Code::PinRequired, "{e}");
        let sig = s
            .module
            .sign(request(t, b"after", pin(false)))
            .expect("sign with the PIN after re-initialising");
        let cert = if t == &s.left { "rsa-utf8" } else { "rsa-bmp" };
        assert!(verifies(&s.hsm, cert, b"after", &sig));
    }
    let listed: Vec<TokenId> = s
        .module
        .scan()
        .expect("scan")
        .into_iter()
        .map(|t| t.token.id)
        .collect();
    assert!(listed.contains(&s.left) && listed.contains(&s.right));

    // Re-initialisations while other threads sign on both tokens, each request with the PIN:
    // every request is answered, before (by the old threads) or after (by new ones).
    let stop = Arc::new(AtomicBool::new(false));
    let signers: Vec<_> = [s.left.clone(), s.right.clone()]
        .into_iter()
        .map(|t| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0usize;
                while !stop.load(Ordering::SeqCst) {
                    shared()
                        .module
                        .sign(request(&t, b"busy", pin(false)))
                        .unwrap_or_else(|e| panic!("signature {n} during re-initialisations: {e}"));
                    n += 1;
                }
                n
            })
        })
        .collect();
    for round in 0..3 {
        std::thread::sleep(Duration::from_millis(50));
        within(Duration::from_secs(120), "re-initialisation", || {
            shared().module.reinitialize()
        })
        .unwrap_or_else(|e| panic!("re-initialisation {round}: {e}"));
    }
    stop.store(true, Ordering::SeqCst);
    for (t, signer) in signers.into_iter().enumerate() {
        let n = within(Duration::from_secs(120), "a signer", move || signer.join())
            .unwrap_or_else(|_| panic!("signer {t} failed"));
        assert!(n > 0, "signer {t} made no signature");
    }

    // A token never seen is not found, not removed.
    let e = s
        .module
        .sign(request(&"t-0000000000000000".into(), b"x", pin(false)))
        .unwrap_err();
    assert_eq!(e.code(), Code::TokenNotFound, "{e}");
}

#[test]
#[serial(tokens)]
fn the_backend_seam_answers_blocking_and_async_callers() {
    let s = shared();
    let backend: Arc<dyn Backend> = Arc::new(s.module.clone());
    assert_eq!(backend.library(), s.module.path());
    let tokens = backend.scan().wait().expect("scan");
    assert!(tokens.iter().any(|t| t.token.id == s.left));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");

    // Awaited: log in and keep the login.
    let sig = rt
        .block_on(async { backend.sign(request(&s.left, b"awaited", pin(true))).await })
        .expect("an awaited signature");
    assert!(verifies(&s.hsm, "rsa-utf8", b"awaited", &sig));
    // Blocking: on the kept login.
    let sig = backend
        .sign(request(&s.left, b"blocking", Auth::Session))
        .wait()
        .expect("a blocking signature on the kept login");
    assert!(verifies(&s.hsm, "rsa-utf8", b"blocking", &sig));
    let state = backend.pin_state(&s.left).wait().expect("PIN state");
    assert!(state.initialized && !state.locked);

    // A request dropped before it was waited for or awaited is never sent: this logout does
    // not happen, and the kept login still signs.
    drop(backend.logout(&s.left));
    backend
        .sign(request(&s.left, b"still", Auth::Session))
        .wait()
        .expect("the kept login survives a logout that was never sent");
    rt.block_on(async { backend.logout(&s.left).await })
        .expect("logout");
    let e = backend
        .sign(request(&s.left, b"gone", Auth::Session))
        .wait()
        .unwrap_err();
    assert_eq!(e.code(), Code::PinRequired, "{e}");
    // A token never seen: not found, whichever way the caller waits.
    let unknown: TokenId = "t-0000000000000000".into();
    assert_eq!(
        backend.pin_state(&unknown).wait().unwrap_err().code(),
        Code::TokenNotFound
    );
    let e = rt
        .block_on(async { backend.sign(request(&unknown, b"x", pin(false))).await })
        .unwrap_err();
    assert_eq!(e.code(), Code::TokenNotFound, "{e}");
}

#[test]
#[serial(opencryptoki)]
fn a_module_stays_loaded_until_its_threads_have_ended() {
    // Another module loaded in the process, as in the daemon (SoftHSM beside a vendor's).
    let _ = shared();
    let ock = Opencryptoki::setup();
    ock.reset_token("threads", "1234");
    let module = ModuleHandle::spawn(ock.module()).expect("load opencryptoki");
    let token = module
        .scan()
        .expect("scan")
        .into_iter()
        .find(|t| t.token.label == "threads")
        .expect("the opencryptoki token")
        .token
        .id;
    // A login on the token's own thread (the token holds no key to sign with).
    let e = module
        .sign(SignRequest {
            token_id: token.clone(),
            key_id: vec![9],
            hash: HashAlg::Sha256,
            input: SignInput::Data(b"x".to_vec()),
            auth: Auth::Pin {
                pin: SecretString::from("1234"),
                force: false,
                remember: true,
            },
        })
        .unwrap_err();
    assert_eq!(e.code(), Code::NoPrivateKey, "{e}");
    assert!(module.pin_state(&token).expect("PIN state").initialized);
    // opencryptoki leaves thread-local state in the threads that call it, with destructors
    // in its own library: the threads must end before the library is unloaded, or this
    // process dies of SIGSEGV here.
    drop(module);
}
