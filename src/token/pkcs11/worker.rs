//! A token's thread: every session on one token, so that its logins (kept between requests
//! or for one request) and key handles belong to one thread, and requests for other tokens
//! run beside it.

use std::collections::HashMap;
use std::sync::{Arc, mpsc};
use std::thread;

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::ExposeSecret;

use super::token_info::RawTokenInfo;
use super::{
    Auth, Reply, Route, SignRequest, affinity, id_of, map_err, so_pin, token_info, token_slots,
    user_pin,
};
use crate::model::{HashAlg, KeyKind, PinRefusal, SignInput, Signature, TokenId, algorithm_name};
use crate::token::sign::ecdsa_raw_to_der;
use crate::token::{Error, Pin, PinState};

/// What a token's thread is asked.
pub(super) enum TokenRequest {
    Sign(SignRequest, Reply<Signature>),
    Logout(Reply<()>),
    ChangePin {
        old: Pin,
        new: Pin,
        force: bool,
        reply: Reply<PinState>,
    },
    Unlock {
        so_pin: Pin,
        new: Pin,
        force: bool,
        reply: Reply<PinState>,
    },
}

impl TokenRequest {
    /// Answer with `e` without asking the token.
    pub(super) fn fail(self, e: Error) {
        match self {
            TokenRequest::Sign(_, reply) => {
                let _ = reply.send(Err(e));
            }
            TokenRequest::Logout(reply) => {
                let _ = reply.send(Err(e));
            }
            TokenRequest::ChangePin { reply, .. } | TokenRequest::Unlock { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// A precomputed digest of the wrong length is refused before anything else, the PIN and
/// the token's presence included.
pub(super) fn check_digest(req: &SignRequest) -> Result<(), Error> {
    if let SignInput::Digest(_) = &req.input {
        req.input.digest(req.hash)?;
    }
    Ok(())
}

/// A token's thread, as the module thread keeps it.
pub(super) struct Running {
    pub(super) route: Route,
    thread: thread::JoinHandle<()>,
}

impl Running {
    /// Wait for the thread to end. It ends once no route to it is left (the module thread
    /// removes the callers' copy first) and it has answered what it was sent.
    pub(super) fn join(self) {
        drop(self.route);
        let _ = self.thread.join();
    }
}

/// Start the thread of the token `token_id`, found at `slot`.
pub(super) fn spawn(
    ctx: Pkcs11,
    raw: Arc<cryptoki_sys::Pkcs11>,
    token_id: TokenId,
    slot: Slot,
    module_affinity: Arc<affinity::Worker>,
) -> Result<Running, Error> {
    let (tx, rx) = mpsc::channel();
    let affinity = Arc::new(affinity::Worker::default());
    let on_thread = affinity.clone();
    let thread = thread::Builder::new()
        // Linux keeps 15 bytes of a name: "pkcs11-" and the start of the token id.
        .name(format!(
            "pkcs11-{}",
            token_id.as_str().trim_start_matches("t-")
        ))
        .spawn(move || {
            on_thread.started_from(&module_affinity);
            drop(module_affinity);
            let worker = TokenWorker {
                ctx,
                raw,
                token_id,
                slot,
                login: None,
                mechanisms: HashMap::new(),
            };
            worker.run(rx, &on_thread);
        })
        .map_err(|e| Error::Other(format!("cannot start a token thread: {e}")))?;
    Ok(Running {
        route: Route { tx, affinity },
        thread,
    })
}

/// A session logged in as user, kept between requests, with the keys found through it.
struct Login {
    session: Session,
    keys: HashMap<Vec<u8>, (ObjectHandle, KeyKind)>,
}

struct TokenWorker {
    ctx: Pkcs11,
    raw: Arc<cryptoki_sys::Pkcs11>,
    token_id: TokenId,
    /// Where the token was last found.
    slot: Slot,
    /// A session logged in as user, kept on request.
    login: Option<Login>,
    /// mechanism → whether the token offers it.
    mechanisms: HashMap<u64, bool>,
}

impl TokenWorker {
    fn run(mut self, rx: mpsc::Receiver<TokenRequest>, affinity: &affinity::Worker) {
        loop {
            let req = match rx.recv_timeout(affinity::RELEASE_AFTER) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Idle: run anywhere again until a caller lends its CPU.
                    affinity.release();
                    match rx.recv() {
                        Ok(r) => r,
                        Err(_) => break,
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            self.handle(req);
        }
        // The sessions close now, before the module thread finalizes the context.
        self.login.take();
        tracing::debug!(token = %self.token_id, "token thread stopped");
    }

    fn handle(&mut self, req: TokenRequest) {
        match req {
            TokenRequest::Sign(req, reply) => {
                let r = self.sign(req);
                let _ = reply.send(r);
            }
            TokenRequest::Logout(reply) => {
                self.forget_login();
                let _ = reply.send(Ok(()));
            }
            TokenRequest::ChangePin {
                old,
                new,
                force,
                reply,
            } => {
                let r = self.change_pin(&old, &new, force);
                drop((old, new));
                let _ = reply.send(r);
            }
            TokenRequest::Unlock {
                so_pin,
                new,
                force,
                reply,
            } => {
                let r = self.unlock(&so_pin, &new, force);
                drop((so_pin, new));
                let _ = reply.send(r);
            }
        }
    }

    /// The token's slot now, and what the token says of itself (its PIN state included):
    /// where it was, or where it is now (slot ids are not identities: a key plugged in again
    /// may come back at another). TOKEN_REMOVED when it is nowhere.
    fn locate(&mut self) -> Result<(Slot, RawTokenInfo), Error> {
        if let Ok(info) = token_info(&self.raw, self.slot)
            && id_of(&info) == self.token_id
        {
            return Ok((self.slot, info));
        }
        // Whatever it was logged in to went away with the token.
        self.login = None;
        for (slot, info) in token_slots(&self.ctx, &self.raw)? {
            if id_of(&info) == self.token_id {
                self.slot = slot;
                return Ok((slot, info));
            }
        }
        Err(Error::TokenRemoved)
    }

    /// Log out of and drop a kept login.
    fn forget_login(&mut self) {
        if let Some(l) = self.login.take() {
            let _ = l.session.logout();
        }
    }

    /// Log in as user on a new session, submitting the PIN once. `info` is the token's
    /// state read just now ([`TokenWorker::locate`]): the PIN rules judge it.
    fn login_user(
        &mut self,
        slot: Slot,
        info: &RawTokenInfo,
        pin: &Pin,
        force: bool,
    ) -> Result<Login, Error> {
        // Login state is per application: drop a kept login before proving the PIN again.
        self.forget_login();
        let state = user_pin(info);
        state.admit(force)?;
        state.check_len(pin)?;
        let session = self.ctx.open_ro_session(slot).map_err(map_err)?;
        let mut result = session.login(UserType::User, Some(pin));
        if let Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) = result {
            // Still logged in from somewhere (another session of this process): the token did
            // not check this PIN. Log out and let it check: a wrong PIN must not pass.
            let _ = session.logout();
            result = session.login(UserType::User, Some(pin));
        }
        match result {
            Ok(()) => Ok(Login {
                session,
                keys: HashMap::new(),
            }),
            Err(e) => Err(self.pin_error(slot, e, user_pin, pin)),
        }
    }

    /// Turn a failed PIN submission into an error carrying the token's new PIN state.
    /// `sent` is the PIN the token refused (its length goes into a length error).
    fn pin_error(
        &self,
        slot: Slot,
        e: CkError,
        which: fn(&RawTokenInfo) -> PinState,
        sent: &Pin,
    ) -> Error {
        let state = || {
            token_info(&self.raw, slot)
                .map(|i| which(&i))
                .unwrap_or_default()
        };
        match e {
            CkError::Pkcs11(RvError::PinIncorrect, _) => Error::PinIncorrect { pin: state() },
            CkError::Pkcs11(RvError::PinLocked, _) => Error::PinLocked { pin: state() },
            CkError::Pkcs11(RvError::PinLenRange, _) => {
                let s = state();
                Error::Refused(PinRefusal::LenRange {
                    len: sent.expose_secret().len(),
                    min: s.min_len,
                    max: s.max_len,
                })
            }
            e => map_err(e),
        }
    }

    fn sign(&mut self, req: SignRequest) -> Result<Signature, Error> {
        check_digest(&req)?;
        let (mut login, keep) = match &req.auth {
            // A kept login skips the slot lookup: if the token went away, C_Sign says so.
            Auth::Session => match self.login.take() {
                Some(l) => (l, true),
                None => {
                    // A token that went away says so rather than asking for a PIN.
                    self.locate()?;
                    return Err(Error::PinRequired);
                }
            },
            Auth::Pin {
                pin,
                force,
                remember,
            } => {
                let (slot, info) = self.locate()?;
                (self.login_user(slot, &info, pin, *force)?, *remember)
            }
        };
        let result = self.sign_with(&mut login, &req);
        match &result {
            // The session died with the token: nothing to log out of or keep.
            Err(Error::TokenRemoved) => {}
            _ if keep => self.login = Some(login),
            _ => {
                let _ = login.session.logout();
            }
        }
        result
    }

    /// The private key with key id (CKA_ID) `key_id` and its type, looked up once per login.
    fn private_key(login: &mut Login, key_id: &[u8]) -> Result<(ObjectHandle, KeyKind), Error> {
        if let Some(k) = login.keys.get(key_id) {
            return Ok(*k);
        }
        let session = &login.session;
        let keys = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Id(key_id.to_vec()),
            ])
            .map_err(map_err)?;
        let Some(&key) = keys.first() else {
            return Err(Error::NoPrivateKey(hex::encode(key_id)));
        };
        let kind = match session
            .get_attributes(key, &[AttributeType::KeyType])
            .map_err(map_err)?
            .first()
        {
            Some(Attribute::KeyType(t)) if *t == KeyType::RSA => KeyKind::Rsa,
            Some(Attribute::KeyType(t)) if *t == KeyType::EC => KeyKind::Ec,
            Some(Attribute::KeyType(t)) => {
                return Err(Error::Unsupported(format!("private key type {t}")));
            }
            _ => {
                return Err(Error::Unsupported(
                    "private key without CKA_KEY_TYPE".into(),
                ));
            }
        };
        login.keys.insert(key_id.to_vec(), (key, kind));
        Ok((key, kind))
    }

    fn sign_with(&mut self, login: &mut Login, req: &SignRequest) -> Result<Signature, Error> {
        let (key, kind) = Self::private_key(login, &req.key_id)?;
        let session = &login.session;
        let bytes = match kind {
            // No standard PKCS#11 mechanism signs SM2 (vendors each define their own).
            KeyKind::Sm2 | KeyKind::Ec if req.hash == HashAlg::Sm3 => {
                return Err(Error::Unsupported(
                    "SM2 signing through a vendor PKCS#11 mechanism".into(),
                ));
            }
            KeyKind::Rsa => {
                let combined = match (&req.input, req.hash) {
                    (SignInput::Data(d), HashAlg::Sha1) => {
                        Some((Mechanism::Sha1RsaPkcs, MechanismType::SHA1_RSA_PKCS, d))
                    }
                    (SignInput::Data(d), HashAlg::Sha256) => {
                        Some((Mechanism::Sha256RsaPkcs, MechanismType::SHA256_RSA_PKCS, d))
                    }
                    (SignInput::Data(d), HashAlg::Sha384) => {
                        Some((Mechanism::Sha384RsaPkcs, MechanismType::SHA384_RSA_PKCS, d))
                    }
                    (SignInput::Data(d), HashAlg::Sha512) => {
                        Some((Mechanism::Sha512RsaPkcs, MechanismType::SHA512_RSA_PKCS, d))
                    }
                    _ => None,
                };
                match combined {
                    Some((mech, ty, data)) if self.offers(ty) => {
                        session.sign(&mech, key, data).map_err(map_err)?
                    }
                    // Hash on the host and let the token pad: works on every RSA token.
                    _ => {
                        let digest = req.input.digest(req.hash)?;
                        session
                            .sign(&Mechanism::RsaPkcs, key, &req.hash.digest_info(&digest))
                            .map_err(map_err)?
                    }
                }
            }
            KeyKind::Ec | KeyKind::Sm2 => {
                // Tokens rarely offer CKM_ECDSA_SHA* (SoftHSM does not): hash on the host.
                let digest = req.input.digest(req.hash)?;
                let raw = session
                    .sign(&Mechanism::Ecdsa, key, &digest)
                    .map_err(map_err)?;
                ecdsa_raw_to_der(&raw)?
            }
        };
        Ok(Signature {
            bytes,
            algorithm: algorithm_name(kind, req.hash),
        })
    }

    /// Whether the token offers a mechanism (asked once per mechanism).
    fn offers(&mut self, ty: MechanismType) -> bool {
        let (ctx, slot) = (&self.ctx, self.slot);
        // CK_MECHANISM_TYPE is a C unsigned long: u64 here, u32 on Windows.
        #[allow(clippy::useless_conversion)]
        let key = u64::from(*ty);
        *self
            .mechanisms
            .entry(key)
            .or_insert_with(|| ctx.get_mechanism_info(slot, ty).is_ok())
    }

    fn change_pin(&mut self, old: &Pin, new: &Pin, force: bool) -> Result<PinState, Error> {
        let (slot, info) = self.locate()?;
        let state = user_pin(&info);
        state.admit(force)?;
        state.check_len(old)?;
        state.check_len(new)?;
        self.forget_login();
        let session = self.ctx.open_rw_session(slot).map_err(map_err)?;
        // C_SetPIN in the user's own session, as PKCS#11 describes it. In a public session
        // opencryptoki changes the PIN but can no longer decrypt the private keys. The
        // login is the one attempt that can fail; C_SetPIN then repeats a PIN the token has
        // just accepted, so a wrong current PIN costs exactly one try.
        match session.login(UserType::User, Some(old)) {
            // An expired PIN logs in for C_SetPIN only: exactly what we are here for.
            Ok(()) | Err(CkError::Pkcs11(RvError::PinExpired, _)) => {}
            Err(e) => return Err(self.pin_error(slot, e, user_pin, old)),
        }
        let r = session.set_pin(old, new);
        let _ = session.logout();
        drop(session);
        if let Err(e) = r {
            return Err(self.pin_error(slot, e, user_pin, new));
        }
        Ok(user_pin(&token_info(&self.raw, slot)?))
    }

    fn unlock(&mut self, so_pin_value: &Pin, new: &Pin, force: bool) -> Result<PinState, Error> {
        let (slot, info) = self.locate()?;
        so_pin(&info).admit(force)?;
        so_pin(&info).check_len(so_pin_value)?;
        user_pin(&info).check_len(new)?;
        // The SO cannot log in while the user is logged in.
        self.forget_login();
        let session = self.ctx.open_rw_session(slot).map_err(map_err)?;
        if let Err(e) = session.login(UserType::So, Some(so_pin_value)) {
            return Err(self.pin_error(slot, e, so_pin, so_pin_value));
        }
        let r = session.init_pin(new);
        let _ = session.logout();
        drop(session);
        if let Err(e) = r {
            return Err(self.pin_error(slot, e, user_pin, new));
        }
        Ok(user_pin(&token_info(&self.raw, slot)?))
    }
}
