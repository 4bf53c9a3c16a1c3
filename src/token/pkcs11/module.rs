//! The module thread: the module's context, slot scans, certificates and seals, PIN state
//! reads, the first request for each token (which starts the token's thread), and
//! re-initialisation.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::object::{Attribute, AttributeType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState};
use cryptoki::slot::Slot;

use super::token_info::RawTokenInfo;
use super::worker::{self, TokenRequest};
use super::{
    Auth, ModuleInfo, Reply, Route, Routes, affinity, id_of, map_err, short, so_pin, token_info,
    token_slots, token_slots_checked, transient, user_pin,
};
use crate::model::{KeyPresence, Location, TokenId};
use crate::text::vendor_text;
use crate::token::{CertObject, Error, PinState, Token, TokenScan};

pub(super) enum ModuleRequest {
    Scan(Reply<Vec<TokenScan>>),
    Reinitialize(Reply<()>),
    PinState(TokenId, Reply<PinState>),
    /// A request for a token that has no thread (yet, or any more).
    ForToken(TokenId, TokenRequest),
}

pub(super) struct Module {
    ctx: Pkcs11,
    /// The same library's raw function table, for [`RawTokenInfo`]; shared with the token
    /// threads.
    raw: Arc<cryptoki_sys::Pkcs11>,
    path: PathBuf,
    /// token id → slot, from the last lookup.
    slots: HashMap<TokenId, Slot>,
    /// Tokens seen before and absent now: asking for one is TOKEN_REMOVED, not TOKEN_NOT_FOUND.
    gone: HashSet<TokenId>,
    /// token id → its data objects and seal at the last scan, so an unchanged seal is not
    /// read again.
    seals: HashMap<TokenId, super::seal::Found>,
    /// What the last scan found of each token: a slot that a resource error keeps from
    /// being read (the process out of file descriptors or memory) is reported as it was,
    /// never as gone.
    scanned: HashMap<TokenId, TokenScan>,
    /// The last scan met such an error: the next one initialises the module again first
    /// (SoftHSM keeps answering CKR_GENERAL_ERROR for a token it failed to reopen once).
    troubled: bool,
    /// The token threads this thread started, and where callers find them.
    workers: HashMap<TokenId, worker::Running>,
    routes: Arc<Routes>,
    affinity: Arc<affinity::Worker>,
}

impl Module {
    /// Load and initialize the module, on the module thread.
    pub(super) fn open(
        path: &Path,
        routes: Arc<Routes>,
        affinity: Arc<affinity::Worker>,
    ) -> Result<(Module, ModuleInfo), Error> {
        affinity.started();
        let load_err = |reason: String| Error::ModuleLoad {
            path: path.to_path_buf(),
            reason,
        };
        if !path.exists() {
            return Err(load_err("file not found".into()));
        }
        let ctx = Pkcs11::new(path).map_err(|e| load_err(e.to_string()))?;
        // SAFETY: loads the library cryptoki just loaded (the loader returns the same
        // handle); its functions are only called after `ctx` initialized it.
        let raw =
            unsafe { cryptoki_sys::Pkcs11::new(path) }.map_err(|e| load_err(e.to_string()))?;
        match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            Ok(()) => {}
            // Another part of this process initialized it already: usable as is.
            Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(load_err(format!("C_Initialize failed: {}", short(&e)))),
        }
        let info = ctx.get_library_info().map_err(|e| load_err(short(&e)))?;
        let lv = info.library_version();
        let cv = info.cryptoki_version();
        let module = ModuleInfo {
            path: path.to_path_buf(),
            manufacturer: info.manufacturer_id().trim().to_string(),
            description: info.library_description().trim().to_string(),
            library_version: format!("{}.{}", lv.major(), lv.minor()),
            cryptoki_version: format!("{}.{}", cv.major(), cv.minor()),
        };
        tracing::debug!(path = %path.display(), manufacturer = %module.manufacturer, "module loaded");
        let this = Module {
            ctx,
            raw: Arc::new(raw),
            path: path.to_path_buf(),
            slots: HashMap::new(),
            gone: HashSet::new(),
            seals: HashMap::new(),
            scanned: HashMap::new(),
            troubled: false,
            workers: HashMap::new(),
            routes,
            affinity,
        };
        Ok((this, module))
    }

    pub(super) fn context(&self) -> Pkcs11 {
        self.ctx.clone()
    }

    pub(super) fn run(mut self, rx: mpsc::Receiver<ModuleRequest>) {
        loop {
            let req = match rx.recv_timeout(affinity::RELEASE_AFTER) {
                Ok(r) => r,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    // Idle: run anywhere again until a caller lends its CPU.
                    self.affinity.release();
                    match rx.recv() {
                        Ok(r) => r,
                        Err(_) => break,
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            };
            self.handle(req);
        }
        // Sessions close before the context finalizes; C_Finalize also ends a thread
        // blocked in C_WaitForSlotEvent.
        self.stop_workers();
        let _ = self.ctx.finalize();
        tracing::debug!(path = %self.path.display(), "module thread stopped");
    }

    fn handle(&mut self, req: ModuleRequest) {
        match req {
            ModuleRequest::Scan(reply) => {
                let _ = reply.send(self.scan());
            }
            ModuleRequest::Reinitialize(reply) => {
                let _ = reply.send(self.reinitialize());
            }
            ModuleRequest::PinState(token_id, reply) => {
                let r = self
                    .find_slot(&token_id)
                    .and_then(|slot| token_info(&self.raw, slot))
                    .map(|i| user_pin(&i));
                let _ = reply.send(r);
            }
            ModuleRequest::ForToken(token_id, req) => self.for_token(token_id, req),
        }
    }

    /// A request for a token that had no thread when it was sent: hand it to the token's
    /// thread, starting one when the request needs the token.
    fn for_token(&mut self, token_id: TokenId, req: TokenRequest) {
        if let Some(w) = self.workers.get(&token_id) {
            // Started for an earlier request since this one was sent.
            if let Err(mpsc::SendError(req)) = w.route.tx.send(req) {
                req.fail(Error::WorkerGone);
            }
            return;
        }
        let req = match req {
            // No thread, so no login to end.
            TokenRequest::Logout(reply) => {
                let _ = reply.send(Ok(()));
                return;
            }
            req => req,
        };
        if let TokenRequest::Sign(sign, _) = &req {
            // A digest of the wrong length is refused first, as always.
            if let Err(e) = worker::check_digest(sign) {
                return req.fail(e);
            }
            // No thread, so no kept login. A token that went away says so rather than asking
            // for a PIN.
            if let Auth::Session = sign.auth {
                let e = match self.find_slot(&token_id) {
                    Ok(_) => Error::PinRequired,
                    Err(e) => e,
                };
                return req.fail(e);
            }
        }
        let slot = match self.find_slot(&token_id) {
            Ok(slot) => slot,
            Err(e) => return req.fail(e),
        };
        let running = match worker::spawn(
            self.ctx.clone(),
            self.raw.clone(),
            token_id.clone(),
            slot,
            self.affinity.clone(),
        ) {
            Ok(r) => r,
            Err(e) => return req.fail(e),
        };
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(token_id.clone(), running.route.clone());
        if let Err(mpsc::SendError(req)) = running.route.tx.send(req) {
            req.fail(Error::WorkerGone);
        }
        self.workers.insert(token_id, running);
    }

    /// Stop every token thread: no caller finds them any more, each finishes what it was
    /// sent and ends (closing its sessions), and is joined. Requests sent meanwhile come to
    /// this thread instead.
    fn stop_workers(&mut self) {
        let routes: Vec<Route> = self
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, r)| r)
            .collect();
        drop(routes);
        for (_, w) in self.workers.drain() {
            w.join();
        }
    }

    fn reinitialize(&mut self) -> Result<(), Error> {
        // Sessions and logins die with the old context: the token threads that own them stop
        // first. The slot map stays: it is how a token that is gone afterwards is told apart
        // from one never seen (TOKEN_REMOVED rather than TOKEN_NOT_FOUND); find_slot checks
        // each entry before trusting it.
        self.stop_workers();
        let fresh = Pkcs11::new(&self.path).map_err(|e| Error::Other(format!("reload: {e}")))?;
        let old = std::mem::replace(&mut self.ctx, fresh);
        if let Err(e) = old.finalize() {
            tracing::debug!(path = %self.path.display(), error = %short(&e), "C_Finalize before re-initialising");
        }
        match self
            .ctx
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        {
            Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
            Err(e) => Err(map_err(e)),
        }
    }

    fn find_slot(&mut self, token_id: &TokenId) -> Result<Slot, Error> {
        if let Some(slot) = self.slots.get(token_id).copied()
            && let Ok(info) = token_info(&self.raw, slot)
            && &id_of(&info) == token_id
        {
            return Ok(slot);
        }
        let known = self.slots.remove(token_id).is_some() || self.gone.contains(token_id);
        for (slot, info) in token_slots(&self.ctx, &self.raw)? {
            let id = id_of(&info);
            self.gone.remove(&id);
            self.slots.insert(id.clone(), slot);
            if &id == token_id {
                return Ok(slot);
            }
        }
        if known {
            self.gone.insert(token_id.clone());
        }
        Err(if known {
            Error::TokenRemoved
        } else {
            Error::TokenNotFound(token_id.to_string())
        })
    }

    fn scan(&mut self) -> Result<Vec<TokenScan>, Error> {
        if std::mem::take(&mut self.troubled) {
            tracing::info!(module = %self.path.display(), "initialising the module again after a resource error");
            if let Err(e) = self.reinitialize() {
                self.troubled = true;
                return Err(e);
            }
        }
        let mut out = Vec::new();
        let mut present = HashMap::new();
        let (slots, failed) = token_slots_checked(&self.ctx, &self.raw)?;
        for (slot, info) in slots {
            let mut token = self.describe(slot, &info);
            present.insert(token.id.clone(), slot);
            let certificates = match self.read_token(slot, &mut token, info.login_required()) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(token = %token.id, error = %e, "cannot read certificates");
                    match self.scanned.get(&token.id) {
                        // A resource error says nothing about the token: keep what it held.
                        Some(before) if transient(&e) => {
                            self.troubled = true;
                            token.seal = before.token.seal.clone();
                            before.certificates.clone()
                        }
                        _ => Vec::new(),
                    }
                }
            };
            out.push(TokenScan {
                token,
                certificates,
            });
        }
        for slot in failed {
            self.troubled = true;
            // The token this slot held at the last scan is still there as far as anyone knows.
            let held = self.slots.iter().find(|(_, s)| s.id() == slot.id());
            if let Some((id, _)) = held
                && let Some(before) = self.scanned.get(id)
                && !present.contains_key(id)
            {
                present.insert(id.clone(), slot);
                out.push(before.clone());
            }
        }
        self.scanned = out
            .iter()
            .map(|s| (s.token.id.clone(), s.clone()))
            .collect();
        // A token seen again after removal reads its seal afresh.
        self.seals.retain(|id, _| present.contains_key(id));
        for id in self.slots.keys().filter(|id| !present.contains_key(*id)) {
            self.gone.insert(id.clone());
        }
        self.gone.retain(|id| !present.contains_key(id));
        self.slots = present;
        Ok(out)
    }

    fn describe(&self, slot: Slot, info: &RawTokenInfo) -> Token {
        Token {
            id: id_of(info),
            label: info.label().trim().to_string(),
            manufacturer: info.manufacturer_id().trim().to_string(),
            model: info.model().trim().to_string(),
            serial: info.serial_number().trim().to_string(),
            location: Location {
                library: self.path.clone(),
                slot: slot.id(),
            },
            pin: user_pin(info),
            so_pin: so_pin(info),
            seal: None,
        }
    }

    /// The token's certificates, and its seal into `token.seal`, read in one session. While
    /// the token's thread keeps a login, this session is logged in too (login state belongs
    /// to the application) and sees private objects as well.
    fn read_token(
        &mut self,
        slot: Slot,
        token: &mut Token,
        login_required: bool,
    ) -> Result<Vec<CertObject>, Error> {
        let session = self.ctx.open_ro_session(slot).map_err(map_err)?;
        // Private keys may be private objects this session cannot see yet.
        let hides_keys = login_required
            && session
                .get_session_info()
                .is_ok_and(|i| matches!(i.session_state(), SessionState::RoPublic));
        let certificates = read_certificates(&session, &token.id, hides_keys);
        // A token whose seal cannot be read still shows its certificates, and the other way
        // round.
        match super::seal::read(&session, self.seals.get(&token.id)) {
            Ok(found) => {
                token.seal = found.image.clone();
                self.seals.insert(token.id.clone(), found);
            }
            Err(e) => {
                // Keep what the last scan found rather than flap on a passing error.
                token.seal = self.seals.get(&token.id).and_then(|f| f.image.clone());
                tracing::warn!(token = %token.id, error = %short(&e), "cannot read the seal image")
            }
        }
        certificates
    }
}

/// The key ids (CKA_ID) of the private and of the public keys the session sees.
#[derive(Debug, Default)]
struct KeyIds {
    private: Vec<Vec<u8>>,
    public: Vec<Vec<u8>>,
    /// Public key objects with no CKA_ID count as evidence that the token shows public keys.
    any_public: bool,
}

impl KeyIds {
    /// Whether the certificate with key id `key_id` has a private key. `hides_keys`: the
    /// token requires login and the session is not logged in, so private keys may be
    /// private objects it does not see. Such a certificate is unknown until login, unless
    /// the token shows public key objects (then a key pair shows its public half, and none
    /// for this id means no key).
    fn presence(&self, key_id: &[u8], hides_keys: bool) -> KeyPresence {
        if key_id.is_empty() {
            return KeyPresence::No;
        }
        let has = |ids: &[Vec<u8>]| ids.iter().any(|i| i == key_id);
        if has(&self.private) || has(&self.public) {
            KeyPresence::Yes
        } else if hides_keys && !self.any_public {
            KeyPresence::UnknownUntilLogin
        } else {
            KeyPresence::No
        }
    }
}

fn read_certificates(
    session: &Session,
    token_id: &TokenId,
    hides_keys: bool,
) -> Result<Vec<CertObject>, Error> {
    let mut keys = KeyIds::default();
    for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
        for obj in session
            .find_objects(&[Attribute::Class(class)])
            .map_err(map_err)?
        {
            if class == ObjectClass::PUBLIC_KEY {
                keys.any_public = true;
            }
            if let Some(id) = attr_bytes(session, obj, AttributeType::Id) {
                if class == ObjectClass::PRIVATE_KEY {
                    keys.private.push(id);
                } else {
                    keys.public.push(id);
                }
            }
        }
    }
    let mut out = Vec::new();
    for obj in session
        .find_objects(&[Attribute::Class(ObjectClass::CERTIFICATE)])
        .map_err(map_err)?
    {
        let attrs = session
            .get_attributes(
                obj,
                &[
                    AttributeType::Value,
                    AttributeType::Id,
                    AttributeType::Label,
                ],
            )
            .map_err(map_err)?;
        let mut cert = CertObject {
            token_id: token_id.clone(),
            label: String::new(),
            key_id: Vec::new(),
            der: Vec::new(),
            has_private_key: KeyPresence::No,
        };
        for a in attrs {
            match a {
                Attribute::Value(v) => cert.der = v,
                Attribute::Id(v) => cert.key_id = v,
                Attribute::Label(v) => cert.label = vendor_text(&v).trim().to_string(),
                _ => {}
            }
        }
        cert.has_private_key = keys.presence(&cert.key_id, hides_keys);
        out.push(cert);
    }
    Ok(out)
}

fn attr_bytes(session: &Session, obj: ObjectHandle, ty: AttributeType) -> Option<Vec<u8>> {
    match session
        .get_attributes(obj, &[ty])
        .ok()?
        .into_iter()
        .next()?
    {
        Attribute::Id(v) | Attribute::Value(v) | Attribute::Label(v) => Some(v),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(private: &[&[u8]], public: &[&[u8]]) -> KeyIds {
        KeyIds {
            private: private.iter().map(|i| i.to_vec()).collect(),
            public: public.iter().map(|i| i.to_vec()).collect(),
            any_public: !public.is_empty(),
        }
    }

    #[test]
    fn a_key_seen_is_a_key() {
        assert_eq!(
            ids(&[b"\x01"], &[]).presence(b"\x01", true),
            KeyPresence::Yes
        );
        assert_eq!(
            ids(&[], &[b"\x01"]).presence(b"\x01", true),
            KeyPresence::Yes
        );
        assert_eq!(
            ids(&[b"\x01"], &[]).presence(b"\x01", false),
            KeyPresence::Yes
        );
    }

    #[test]
    fn a_token_hiding_private_keys_with_no_public_ones_leaves_it_open() {
        // What importing a PKCS#12 leaves: a private (hidden) key, no public key object.
        let k = ids(&[], &[]);
        assert_eq!(k.presence(b"\x01", true), KeyPresence::UnknownUntilLogin);
        // Logged in (or no login needed): what the session sees is all there is.
        assert_eq!(k.presence(b"\x01", false), KeyPresence::No);
        // No key id: nothing to pair it with.
        assert_eq!(k.presence(b"", true), KeyPresence::No);
    }

    #[test]
    fn a_token_showing_public_halves_answers_for_the_others() {
        let k = ids(&[], &[b"\x01"]);
        assert_eq!(k.presence(b"\x02", true), KeyPresence::No);
    }
}
