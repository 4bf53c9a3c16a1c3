//! One worker thread per PKCS#11 module.
//!
//! PKCS#11 calls block and a cryptoki `Session` is `Send` but `!Sync`, so each loaded module
//! gets a thread that owns its context and every session on it. The rest of the program
//! holds a [`ModuleHandle`] and sends requests over a channel; each request carries a
//! one-shot reply channel, which async code can await as well as sync code can block on.
//!
//! PIN rules enforced here, below every interface: a PIN is submitted to the token at most
//! once per request and never retried; a locked PIN is refused before the token is asked;
//! when the token reports its final try the caller must have said `force`.

mod seal;
mod token_info;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::{Mechanism, MechanismType};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use secrecy::ExposeSecret;

use token_info::RawTokenInfo;

use super::sign::{HashAlg, KeyKind, SignInput, Signature, algorithm_name, ecdsa_raw_to_der};
use super::{CertObject, Error, Pin, PinState, TokenInfo, TokenScan, token_id};

/// What a module says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    pub path: PathBuf,
    pub manufacturer: String,
    pub description: String,
    pub library_version: String,
    pub cryptoki_version: String,
}

/// How a signature request is authorised.
#[derive(Debug)]
pub enum Auth {
    /// Log in with this PIN for this request. `force` confirms a final try; `remember`
    /// keeps the login for later [`Auth::Session`] requests.
    Pin {
        pin: Pin,
        force: bool,
        remember: bool,
    },
    /// Use the login kept from an earlier request; `PIN_REQUIRED` when there is none.
    Session,
}

/// A request to sign with the private key whose CKA_ID is `key_id`.
#[derive(Debug)]
pub struct SignRequest {
    pub token_id: String,
    pub key_id: Vec<u8>,
    pub hash: HashAlg,
    pub input: SignInput,
    pub auth: Auth,
}

type Reply<T> = oneshot::Sender<Result<T, Error>>;

enum Request {
    Scan(Reply<Vec<TokenScan>>),
    Reinitialize(Reply<()>),
    Sign(SignRequest, Reply<Signature>),
    Logout(String, Reply<()>),
    PinState(String, Reply<PinState>),
    ChangePin {
        token_id: String,
        old: Pin,
        new: Pin,
        force: bool,
        reply: Reply<PinState>,
    },
    Unlock {
        token_id: String,
        so_pin: Pin,
        new: Pin,
        force: bool,
        reply: Reply<PinState>,
    },
}

/// A loaded module, served by its worker thread. Dropping the last handle stops the
/// worker and waits for it to finalize the module, so that no PKCS#11 call is still running
/// when the process exits (SoftHSM crashes if its library is torn down under C_Finalize).
#[derive(Debug, Clone)]
pub struct ModuleHandle {
    info: ModuleInfo,
    worker: Arc<WorkerThread>,
    /// The context, shared only with the slot-event waiter (it opens no sessions).
    ctx: Option<Pkcs11>,
}

#[derive(Debug)]
struct WorkerThread {
    tx: Option<mpsc::Sender<Request>>,
    thread: Option<thread::JoinHandle<()>>,
    affinity: Arc<affinity::Worker>,
}

impl Drop for WorkerThread {
    fn drop(&mut self) {
        // Closing the channel ends the worker's loop.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl ModuleHandle {
    /// Load and initialize the module at `path` on a new worker thread.
    pub fn spawn(path: &Path) -> Result<ModuleHandle, Error> {
        let path = path.to_path_buf();
        let (tx, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(ModuleInfo, Pkcs11), Error>>();
        let name = format!(
            "pkcs11:{}",
            path.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let thread_path = path.clone();
        let worker_affinity = Arc::new(affinity::Worker::default());
        let on_thread = worker_affinity.clone();
        let thread = thread::Builder::new()
            .name(name)
            .spawn(move || match Worker::open(&thread_path) {
                Ok((worker, info)) => {
                    on_thread.started();
                    if ready_tx.send(Ok((info, worker.ctx.clone()))).is_ok() {
                        worker.run(rx, &on_thread);
                    }
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| Error::ModuleLoad {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        // Joined on drop, also when loading failed.
        let worker = Arc::new(WorkerThread {
            tx: Some(tx),
            thread: Some(thread),
            affinity: worker_affinity,
        });
        let (info, ctx) = ready_rx.recv().map_err(|_| Error::ModuleLoad {
            path: path.clone(),
            reason: "the module's worker thread stopped while loading it".into(),
        })??;
        Ok(ModuleHandle {
            info,
            worker,
            ctx: Some(ctx),
        })
    }

    pub fn info(&self) -> &ModuleInfo {
        &self.info
    }

    pub fn path(&self) -> &Path {
        &self.info.path
    }

    fn call<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, Error> {
        let (reply, rx) = oneshot::channel();
        let tx = self.worker.tx.as_ref().ok_or(Error::WorkerGone)?;
        // This thread only waits from now on: the worker may as well run on its CPU.
        let _together = self.worker.affinity.join_caller();
        tx.send(make(reply)).map_err(|_| Error::WorkerGone)?;
        rx.recv().map_err(|_| Error::WorkerGone)?
    }

    /// Every initialized token with its certificate objects.
    pub fn scan(&self) -> Result<Vec<TokenScan>, Error> {
        self.call(Request::Scan)
    }

    /// C_Finalize and C_Initialize again, between two requests, so that the module sees
    /// tokens that appeared after it started (SoftHSM and several vendor modules need this).
    /// Kept logins end.
    pub fn reinitialize(&self) -> Result<(), Error> {
        self.call(Request::Reinitialize)
    }

    /// Call `on_event(Some(slot))` each time the module reports a slot event, from a thread
    /// blocked in C_WaitForSlotEvent. `None` (returned, or passed to `on_event` once) means the
    /// module cannot wait for slot events: callers poll it instead. (SoftHSM answers the
    /// non-blocking probe with "no event" and only the blocking call with "not supported".)
    /// The thread ends when the module is finalized.
    pub fn watch_slot_events(
        &self,
        mut on_event: impl FnMut(Option<u64>) + Send + 'static,
    ) -> Option<thread::JoinHandle<()>> {
        let ctx = self.ctx.as_ref()?.clone();
        // CKF_DONT_BLOCK first: a module without support usually says so at once.
        if let Err(e) = ctx.get_slot_event() {
            tracing::debug!(module = %self.info.path.display(), error = %short(&e), "no slot events; polling instead");
            return None;
        }
        let path = self.info.path.clone();
        thread::Builder::new()
            .name("pkcs11-slot-events".into())
            .spawn(move || {
                let mut waited = false;
                loop {
                    match ctx.wait_for_slot_event() {
                        Ok(slot) => {
                            waited = true;
                            on_event(Some(slot.id()));
                        }
                        Err(CkError::Pkcs11(RvError::FunctionNotSupported, _)) if !waited => {
                            tracing::debug!(module = %path.display(), "C_WaitForSlotEvent not supported; polling instead");
                            on_event(None);
                            break;
                        }
                        Err(e) => {
                            tracing::debug!(module = %path.display(), error = %short(&e), "slot event wait ended");
                            break;
                        }
                    }
                }
            })
            .ok()
    }

    /// Sign. See [`SignRequest`].
    pub fn sign(&self, req: SignRequest) -> Result<Signature, Error> {
        self.call(|r| Request::Sign(req, r))
    }

    /// [`ModuleHandle::sign`] for async callers: the reply is awaited, no thread blocks.
    pub async fn sign_async(&self, req: SignRequest) -> Result<Signature, Error> {
        let (reply, rx) = oneshot::channel();
        let tx = self.worker.tx.as_ref().ok_or(Error::WorkerGone)?;
        tx.send(Request::Sign(req, reply))
            .map_err(|_| Error::WorkerGone)?;
        rx.await.map_err(|_| Error::WorkerGone)?
    }

    /// Drop a login kept by [`Auth::Pin`] with `remember`.
    pub fn logout(&self, token_id: &str) -> Result<(), Error> {
        self.call(|r| Request::Logout(token_id.to_string(), r))
    }

    /// The token's current PIN state, read fresh from the token.
    pub fn pin_state(&self, token_id: &str) -> Result<PinState, Error> {
        self.call(|r| Request::PinState(token_id.to_string(), r))
    }

    /// C_SetPIN. Returns the PIN state afterwards.
    pub fn change_pin(
        &self,
        token_id: &str,
        old: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, Error> {
        self.call(|reply| Request::ChangePin {
            token_id: token_id.to_string(),
            old,
            new,
            force,
            reply,
        })
    }

    /// C_Login as SO with the admin PIN or unlock code, then C_InitPIN with the new PIN.
    pub fn unlock(
        &self,
        token_id: &str,
        so_pin: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, Error> {
        self.call(|reply| Request::Unlock {
            token_id: token_id.to_string(),
            so_pin,
            new,
            force,
            reply,
        })
    }
}

/// A session logged in as user, kept between requests, with the keys found through it.
struct Login {
    session: Session,
    slot: Slot,
    keys: HashMap<Vec<u8>, (ObjectHandle, KeyKind)>,
}

struct Worker {
    ctx: Pkcs11,
    /// The same library's raw function table, for [`RawTokenInfo`].
    raw: cryptoki_sys::Pkcs11,
    path: PathBuf,
    /// token id → slot, from the last lookup.
    slots: HashMap<String, Slot>,
    /// Tokens seen before and absent now: asking for one is TOKEN_REMOVED, not TOKEN_NOT_FOUND.
    gone: std::collections::HashSet<String>,
    /// token id → a session logged in as user, kept on request.
    logins: HashMap<String, Login>,
    /// (slot, mechanism) → whether the token offers it.
    mechanisms: HashMap<(u64, u64), bool>,
    /// token id → its data objects and seal at the last scan, so an unchanged seal is not
    /// read again.
    seals: HashMap<String, seal::Found>,
}

impl Worker {
    fn open(path: &Path) -> Result<(Worker, ModuleInfo), Error> {
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
        let worker = Worker {
            ctx,
            raw,
            path: path.to_path_buf(),
            slots: HashMap::new(),
            gone: Default::default(),
            logins: HashMap::new(),
            mechanisms: HashMap::new(),
            seals: HashMap::new(),
        };
        Ok((worker, module))
    }

    fn run(mut self, rx: mpsc::Receiver<Request>, affinity: &affinity::Worker) {
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
        // Sessions close before the context finalizes; C_Finalize also ends a thread
        // blocked in C_WaitForSlotEvent.
        self.logins.clear();
        let _ = self.ctx.finalize();
        tracing::debug!(path = %self.path.display(), "module worker stopped");
    }

    fn handle(&mut self, req: Request) {
        match req {
            Request::Scan(reply) => {
                let _ = reply.send(self.scan());
            }
            Request::Reinitialize(reply) => {
                let _ = reply.send(self.reinitialize());
            }
            Request::Sign(req, reply) => {
                let r = self.sign(req);
                let _ = reply.send(r);
            }
            Request::Logout(token_id, reply) => {
                self.forget_login(&token_id);
                let _ = reply.send(Ok(()));
            }
            Request::PinState(token_id, reply) => {
                let r = self
                    .find_slot(&token_id)
                    .and_then(|slot| self.token_info(slot))
                    .map(|i| user_pin(&i));
                let _ = reply.send(r);
            }
            Request::ChangePin {
                token_id,
                old,
                new,
                force,
                reply,
            } => {
                let r = self.change_pin(&token_id, &old, &new, force);
                drop((old, new));
                let _ = reply.send(r);
            }
            Request::Unlock {
                token_id,
                so_pin,
                new,
                force,
                reply,
            } => {
                let r = self.unlock(&token_id, &so_pin, &new, force);
                drop((so_pin, new));
                let _ = reply.send(r);
            }
        }
    }

    fn reinitialize(&mut self) -> Result<(), Error> {
        // Sessions and logins die with the old context. The slot map stays: it is how a
        // token that is gone afterwards is told apart from one never seen (TOKEN_REMOVED
        // rather than TOKEN_NOT_FOUND); find_slot checks each entry before trusting it.
        self.logins.clear();
        self.mechanisms.clear();
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

    /// Log out of and drop a kept login.
    fn forget_login(&mut self, token_id: &str) {
        if let Some(l) = self.logins.remove(token_id) {
            let _ = l.session.logout();
        }
    }

    fn token_info(&self, slot: Slot) -> Result<RawTokenInfo, Error> {
        RawTokenInfo::read(&self.raw, slot).map_err(|rv| {
            match cryptoki::error::Rv::from(rv)
                .into_result(cryptoki::context::Function::GetTokenInfo)
            {
                Err(e) => map_err(e),
                Ok(()) => Error::Other("C_GetTokenInfo".into()),
            }
        })
    }

    /// Slots holding an initialized token. Each slot is asked on its own: one slot with an
    /// unrecognised card must not hide the others.
    fn token_slots(&mut self) -> Result<Vec<(Slot, RawTokenInfo)>, Error> {
        let slots = self.ctx.get_slots_with_token().map_err(map_err)?;
        let mut out = Vec::new();
        for slot in slots {
            match self.token_info(slot) {
                Ok(info) if info.token_initialized() => out.push((slot, info)),
                Ok(_) => tracing::debug!(slot = slot.id(), "skipping uninitialized token"),
                Err(e) => {
                    tracing::warn!(slot = slot.id(), error = %e, "cannot read token info")
                }
            }
        }
        Ok(out)
    }

    fn find_slot(&mut self, token_id: &str) -> Result<Slot, Error> {
        if let Some(slot) = self.slots.get(token_id).copied()
            && let Ok(info) = self.token_info(slot)
            && id_of(&info) == token_id
        {
            return Ok(slot);
        }
        let known = self.slots.remove(token_id).is_some() || self.gone.contains(token_id);
        for (slot, info) in self.token_slots()? {
            let id = id_of(&info);
            self.gone.remove(&id);
            self.slots.insert(id.clone(), slot);
            if id == token_id {
                return Ok(slot);
            }
        }
        self.logins.remove(token_id);
        if known {
            self.gone.insert(token_id.to_string());
        }
        Err(if known {
            Error::TokenRemoved
        } else {
            Error::TokenNotFound(token_id.to_string())
        })
    }

    fn scan(&mut self) -> Result<Vec<TokenScan>, Error> {
        let mut out = Vec::new();
        let mut present = HashMap::new();
        for (slot, info) in self.token_slots()? {
            let mut token = self.describe(slot, &info);
            present.insert(token.id.clone(), slot);
            let certificates = match self.read_token(slot, &mut token) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(token = %token.id, error = %e, "cannot read certificates");
                    Vec::new()
                }
            };
            out.push(TokenScan {
                token,
                certificates,
            });
        }
        self.logins.retain(|id, _| present.contains_key(id));
        // A token seen again after removal reads its seal afresh.
        self.seals.retain(|id, _| present.contains_key(id));
        for id in self.slots.keys().filter(|id| !present.contains_key(*id)) {
            self.gone.insert(id.clone());
        }
        self.gone.retain(|id| !present.contains_key(id));
        self.slots = present;
        Ok(out)
    }

    fn describe(&self, slot: Slot, info: &RawTokenInfo) -> TokenInfo {
        TokenInfo {
            id: id_of(info),
            label: info.label().trim().to_string(),
            manufacturer: info.manufacturer_id().trim().to_string(),
            model: info.model().trim().to_string(),
            serial: info.serial_number().trim().to_string(),
            module: self.path.clone(),
            slot: slot.id(),
            pin: user_pin(info),
            so_pin: so_pin(info),
            seal: None,
        }
    }

    /// The token's certificates, and its seal into `token.seal`, read in one session.
    fn read_token(&mut self, slot: Slot, token: &mut TokenInfo) -> Result<Vec<CertObject>, Error> {
        // A kept login sees private objects too; otherwise a public session does.
        let fresh;
        let session = match self.logins.get(&token.id).map(|l| &l.session) {
            Some(s) => s,
            None => {
                fresh = self.ctx.open_ro_session(slot).map_err(map_err)?;
                &fresh
            }
        };
        let certificates = Self::read_certificates(session, &token.id);
        // A token whose seal cannot be read still shows its certificates, and the other way
        // round.
        match seal::read(session, self.seals.get(&token.id)) {
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

    fn read_certificates(session: &Session, token_id: &str) -> Result<Vec<CertObject>, Error> {
        let mut key_ids: Vec<Vec<u8>> = Vec::new();
        for class in [ObjectClass::PRIVATE_KEY, ObjectClass::PUBLIC_KEY] {
            for obj in session
                .find_objects(&[Attribute::Class(class)])
                .map_err(map_err)?
            {
                if let Some(id) = attr_bytes(session, obj, AttributeType::Id) {
                    key_ids.push(id);
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
                token_id: token_id.to_string(),
                label: String::new(),
                key_id: Vec::new(),
                der: Vec::new(),
                has_private_key: false,
            };
            for a in attrs {
                match a {
                    Attribute::Value(v) => cert.der = v,
                    Attribute::Id(v) => cert.key_id = v,
                    Attribute::Label(v) => {
                        cert.label = String::from_utf8_lossy(&v).trim().to_string()
                    }
                    _ => {}
                }
            }
            cert.has_private_key = !cert.key_id.is_empty() && key_ids.contains(&cert.key_id);
            out.push(cert);
        }
        Ok(out)
    }

    /// Log in as user on a new session, submitting the PIN once.
    fn login_user(
        &mut self,
        slot: Slot,
        token_id: &str,
        pin: &Pin,
        force: bool,
    ) -> Result<Login, Error> {
        // Login state is per application: drop a kept login before proving the PIN again.
        self.forget_login(token_id);
        let info = self.token_info(slot)?;
        guard(user_pin(&info), force)?;
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
                slot,
                keys: HashMap::new(),
            }),
            Err(e) => Err(self.pin_error(slot, e, user_pin)),
        }
    }

    /// Turn a failed PIN submission into an error carrying the token's new PIN state.
    fn pin_error(&self, slot: Slot, e: CkError, which: fn(&RawTokenInfo) -> PinState) -> Error {
        let state = || self.token_info(slot).map(|i| which(&i)).unwrap_or_default();
        match e {
            CkError::Pkcs11(RvError::PinIncorrect, _) => Error::PinIncorrect { pin: state() },
            CkError::Pkcs11(RvError::PinLocked, _) => Error::PinLocked { pin: state() },
            CkError::Pkcs11(RvError::PinLenRange, _) => {
                let s = state();
                Error::PinLenRange {
                    len: 0,
                    min: s.min_len,
                    max: s.max_len,
                }
            }
            e => map_err(e),
        }
    }

    fn sign(&mut self, req: SignRequest) -> Result<Signature, Error> {
        // A precomputed digest of the wrong length is refused before the PIN is used.
        if let SignInput::Digest(_) = &req.input {
            req.input.digest(req.hash)?;
        }
        let (mut login, keep) = match &req.auth {
            // A kept login skips the slot lookup: if the token went away, C_Sign says so.
            Auth::Session => match self.logins.remove(&req.token_id) {
                Some(l) => (l, true),
                None => {
                    // A token that went away says so rather than asking for a PIN.
                    self.find_slot(&req.token_id)?;
                    return Err(Error::PinRequired);
                }
            },
            Auth::Pin {
                pin,
                force,
                remember,
            } => {
                let slot = self.find_slot(&req.token_id)?;
                (
                    self.login_user(slot, &req.token_id, pin, *force)?,
                    *remember,
                )
            }
        };
        let result = self.sign_with(&mut login, &req);
        match &result {
            // The session died with the token: nothing to log out of or keep.
            Err(Error::TokenRemoved) => {
                self.slots.remove(&req.token_id);
            }
            _ if keep => {
                self.logins.insert(req.token_id.clone(), login);
            }
            _ => {
                let _ = login.session.logout();
            }
        }
        result
    }

    /// The private key with CKA_ID `key_id` and its type, looked up once per login.
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
                    (SignInput::Digest(_), _) => None,
                };
                match combined {
                    Some((mech, ty, data)) if self.offers(login.slot, ty) => {
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
            KeyKind::Ec => {
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

    /// Whether the token offers a mechanism (asked once per slot and mechanism).
    fn offers(&mut self, slot: Slot, ty: MechanismType) -> bool {
        let ctx = &self.ctx;
        // CK_MECHANISM_TYPE is a C unsigned long: u64 here, u32 on Windows.
        #[allow(clippy::useless_conversion)]
        let key = (slot.id(), u64::from(*ty));
        *self
            .mechanisms
            .entry(key)
            .or_insert_with(|| ctx.get_mechanism_info(slot, ty).is_ok())
    }

    fn change_pin(
        &mut self,
        token_id: &str,
        old: &Pin,
        new: &Pin,
        force: bool,
    ) -> Result<PinState, Error> {
        let slot = self.find_slot(token_id)?;
        let info = self.token_info(slot)?;
        let state = user_pin(&info);
        guard(state, force)?;
        check_len(state, new)?;
        self.forget_login(token_id);
        let session = self.ctx.open_rw_session(slot).map_err(map_err)?;
        // C_SetPIN in the user's own session, as PKCS#11 describes it. In a public session
        // opencryptoki changes the PIN but can no longer decrypt the private keys. The
        // login is the one attempt that can fail; C_SetPIN then repeats a PIN the token has
        // just accepted, so a wrong current PIN costs exactly one try.
        match session.login(UserType::User, Some(old)) {
            // An expired PIN logs in for C_SetPIN only: exactly what we are here for.
            Ok(()) | Err(CkError::Pkcs11(RvError::PinExpired, _)) => {}
            Err(e) => return Err(self.pin_error(slot, e, user_pin)),
        }
        let r = session.set_pin(old, new);
        let _ = session.logout();
        drop(session);
        if let Err(e) = r {
            return Err(self.pin_error(slot, e, user_pin));
        }
        Ok(user_pin(&self.token_info(slot)?))
    }

    fn unlock(
        &mut self,
        token_id: &str,
        so_pin_value: &Pin,
        new: &Pin,
        force: bool,
    ) -> Result<PinState, Error> {
        let slot = self.find_slot(token_id)?;
        let info = self.token_info(slot)?;
        guard(so_pin(&info), force)?;
        check_len(user_pin(&info), new)?;
        // The SO cannot log in while the user is logged in.
        self.forget_login(token_id);
        let session = self.ctx.open_rw_session(slot).map_err(map_err)?;
        if let Err(e) = session.login(UserType::So, Some(so_pin_value)) {
            return Err(self.pin_error(slot, e, so_pin));
        }
        let r = session.init_pin(new);
        let _ = session.logout();
        drop(session);
        if let Err(e) = r {
            return Err(self.pin_error(slot, e, user_pin));
        }
        Ok(user_pin(&self.token_info(slot)?))
    }
}

/// Refuse before the token is asked when asking could lock it.
fn guard(state: PinState, force: bool) -> Result<(), Error> {
    if state.locked {
        Err(Error::PinLocked { pin: state })
    } else if state.final_try && !force {
        Err(Error::PinFinalTry { pin: state })
    } else {
        Ok(())
    }
}

fn check_len(state: PinState, new: &Pin) -> Result<(), Error> {
    let len = new.expose_secret().len();
    if state.accepts_len(len) {
        Ok(())
    } else {
        Err(Error::PinLenRange {
            len,
            min: state.min_len,
            max: state.max_len,
        })
    }
}

fn id_of(info: &RawTokenInfo) -> String {
    token_id(info.manufacturer_id(), info.model(), info.serial_number())
}

fn user_pin(info: &RawTokenInfo) -> PinState {
    PinState {
        min_len: info.min_pin_length(),
        max_len: info.max_pin_length(),
        initialized: info.user_pin_initialized(),
        count_low: info.user_pin_count_low(),
        final_try: info.user_pin_final_try(),
        locked: info.user_pin_locked(),
        to_be_changed: info.user_pin_to_be_changed(),
    }
}

fn so_pin(info: &RawTokenInfo) -> PinState {
    PinState {
        min_len: info.min_pin_length(),
        max_len: info.max_pin_length(),
        initialized: info.token_initialized(),
        count_low: info.so_pin_count_low(),
        final_try: info.so_pin_final_try(),
        locked: info.so_pin_locked(),
        to_be_changed: info.so_pin_to_be_changed(),
    }
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

/// A short description of a cryptoki error (its own Display repeats the spec's prose).
fn short(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, f) => format!("{f}: {rv:?}"),
        other => other.to_string(),
    }
}

fn map_err(e: CkError) -> Error {
    match e {
        CkError::Pkcs11(
            RvError::DeviceRemoved
            | RvError::TokenNotPresent
            | RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::SlotIdInvalid,
            _,
        ) => Error::TokenRemoved,
        CkError::Pkcs11(
            rv @ (RvError::MechanismInvalid
            | RvError::KeyTypeInconsistent
            | RvError::KeyFunctionNotPermitted),
            f,
        ) => Error::Unsupported(format!("{f}: {rv:?}")),
        CkError::Pkcs11(rv, f) => Error::Pkcs11 {
            function: f.to_string(),
            rv: format!("{rv:?}"),
        },
        other => Error::Other(other.to_string()),
    }
}

/// Where the module's worker runs. A blocking caller does nothing but wait for the worker's
/// answer, so it and the worker share the caller's CPU for the request
/// ([`Worker::join_caller`]): the hand-over is then a switch between two threads on one CPU
/// instead of waking another CPU, which in a virtual machine with an idle vCPU costs
/// 50–150 µs each way, up to a sixth of an RSA-2048 signature on SoftHSM (`cargo bench
/// --bench token_sign`). The worker keeps that CPU for the next request and may run
/// anywhere again once idle for [`RELEASE_AFTER`] ([`Worker::release`]). Async callers (the
/// bridge) do not do this: their thread goes on with other tasks meanwhile. Linux only; a
/// no-op elsewhere.
mod affinity {
    #[cfg(target_os = "linux")]
    use std::cell::Cell;
    #[cfg(target_os = "linux")]
    use std::sync::OnceLock;
    #[cfg(target_os = "linux")]
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::time::Duration;

    /// How long the worker stays on its last caller's CPU once requests stop.
    pub const RELEASE_AFTER: Duration = Duration::from_millis(100);

    #[cfg(target_os = "linux")]
    thread_local! {
        /// A caller thread's own CPU set, read once.
        static OWN: Cell<Option<libc::cpu_set_t>> = const { Cell::new(None) };
    }

    #[derive(Default)]
    pub struct Worker {
        /// The worker's thread id, once it runs.
        #[cfg(target_os = "linux")]
        tid: AtomicI32,
        /// The CPUs it may use when no caller lends it one.
        #[cfg(target_os = "linux")]
        home: OnceLock<libc::cpu_set_t>,
        /// The CPU a caller has pinned it to, plus one (0: not pinned).
        #[cfg(target_os = "linux")]
        pinned: AtomicI32,
    }

    impl std::fmt::Debug for Worker {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("affinity::Worker")
        }
    }

    #[cfg(target_os = "linux")]
    impl Worker {
        /// On the worker thread, first thing.
        pub fn started(&self) {
            // SAFETY: gettid has no preconditions.
            self.tid.store(unsafe { libc::gettid() }, Ordering::SeqCst);
            if let Some(set) = this_thread() {
                let _ = self.home.set(set);
            }
        }

        /// On a caller's thread, before it sends a request and waits: the worker and this
        /// thread share this CPU until the returned guard drops (after the answer), so that
        /// neither the request nor the answer wakes another CPU. The worker stays there
        /// for the next request (see [`RELEASE_AFTER`]); this thread gets its CPUs back.
        pub fn join_caller(&self) -> Together {
            let tid = self.tid.load(Ordering::SeqCst);
            // SAFETY: sched_getcpu has no preconditions.
            let cpu = unsafe { libc::sched_getcpu() };
            // Without its own CPU set the worker could never be given it back.
            if tid == 0 || cpu < 0 || self.home.get().is_none() {
                return Together { own: None };
            }
            let Some(own) = OWN.with(|o| {
                if o.get().is_none() {
                    o.set(this_thread());
                }
                o.get()
            }) else {
                return Together { own: None };
            };
            // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET stays within it
            // (sched_getcpu answers below CPU_SETSIZE).
            let one = unsafe {
                let mut one: libc::cpu_set_t = std::mem::zeroed();
                libc::CPU_SET(cpu as usize, &mut one);
                one
            };
            if self.pinned.load(Ordering::SeqCst) != cpu + 1 {
                // A worker thread that has ended makes this fail, harmlessly.
                if !set_thread(tid, &one) {
                    return Together { own: None };
                }
                self.pinned.store(cpu + 1, Ordering::SeqCst);
            }
            if !set_thread(0, &one) {
                return Together { own: None };
            }
            Together { own: Some(own) }
        }

        /// On the worker thread, once idle: it may run anywhere again.
        pub fn release(&self) {
            if self.pinned.swap(0, Ordering::SeqCst) == 0 {
                return;
            }
            if let Some(set) = self.home.get() {
                set_thread(0, set);
            }
        }
    }

    /// The calling thread's CPU set.
    #[cfg(target_os = "linux")]
    fn this_thread() -> Option<libc::cpu_set_t> {
        // SAFETY: a zeroed cpu_set_t is a valid (empty) set, and the size passed is its own.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            (libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0)
                .then_some(set)
        }
    }

    /// Move thread `tid` (0: the calling one) onto `set`; false if the kernel refused.
    #[cfg(target_os = "linux")]
    fn set_thread(tid: libc::pid_t, set: &libc::cpu_set_t) -> bool {
        // SAFETY: `set` is a whole cpu_set_t and the size passed is its own.
        unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), set) == 0 }
    }

    /// A caller kept on one CPU with the worker; dropping it gives the caller back the
    /// CPUs it had.
    pub struct Together {
        #[cfg(target_os = "linux")]
        own: Option<libc::cpu_set_t>,
    }

    #[cfg(target_os = "linux")]
    impl Drop for Together {
        fn drop(&mut self) {
            if let Some(own) = &self.own {
                set_thread(0, own);
            }
        }
    }

    #[cfg(not(target_os = "linux"))]
    impl Worker {
        pub fn started(&self) {}
        pub fn join_caller(&self) -> Together {
            Together {}
        }
        pub fn release(&self) {}
    }
}
