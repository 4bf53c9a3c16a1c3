//! PKCS#11 modules: a thread per module, and a thread per token that owns its sessions.
//!
//! PKCS#11 calls block, and a cryptoki `Session` is `Send` but `!Sync`, so sessions belong to
//! threads and everyone else sends requests ([`ModuleHandle`], the [`Backend`] for PKCS#11).
//! Each request carries a one-shot reply that async code can await as well as sync code can
//! block on ([`Pending`]).
//!
//! - **The module thread** (`module.rs`) owns the module: it loads and initialises it
//!   (`CKF_OS_LOCKING_OK`: the module locks for itself, so threads may call it at once),
//!   scans the slots and reads certificates and seals, answers PIN state reads, finds a
//!   token for the first request that concerns it, starts that token's thread, and
//!   re-initialises the module.
//! - **A token thread** (`worker.rs`) per token that has been asked something owns every
//!   session on that token: the login kept between requests (with its key handles), the
//!   logins for one request, PIN change and unlock. Requests for a token go to its thread
//!   directly (the handle keeps a map from token id to thread), so a signature on one token
//!   never waits behind a C_Sign on another. Two keys of the same token do share its thread:
//!   login state in PKCS#11 belongs to the application and the token, not to a session.
//!
//! A token thread lives until the module is re-initialised or dropped: a token removed and
//! inserted again is found again by its thread (at whatever slot it is now). Re-initialising
//! (C_Finalize, C_Initialize) first takes every token's thread out of the map, lets each
//! finish what it has been sent and joins it, since their sessions die with the context;
//! requests sent meanwhile queue at the module thread and find their token afresh after.
//!
//! PIN rules enforced here, below every interface: a PIN is submitted to the token at most
//! once per request and never retried; a PIN in a request is always checked by the token (a
//! kept login is ended first); the model's PIN rules ([`PinState::admit`],
//! [`PinState::check_len`]) are applied to the state read right before every C_Login. A
//! token seen before and absent now is TOKEN_REMOVED; one never seen, TOKEN_NOT_FOUND.

mod affinity;
mod module;
mod seal;
mod token_info;
mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;

use cryptoki::context::Pkcs11;
use cryptoki::error::{Error as CkError, RvError};

use token_info::RawTokenInfo;

pub use super::backend::{Auth, SignRequest};
use super::backend::{Backend, DeviceEvent, Pending, Sent, Waiting};
use super::{Error, Pin, PinState, TokenScan};
use crate::model::{Signature, TokenId};
use module::ModuleRequest;
use worker::TokenRequest;

/// What a module says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    pub path: PathBuf,
    pub manufacturer: String,
    pub description: String,
    pub library_version: String,
    pub cryptoki_version: String,
}

type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// Where requests for one token go: its thread's queue, and where that thread runs.
#[derive(Debug, Clone)]
struct Route {
    tx: mpsc::Sender<TokenRequest>,
    affinity: Arc<affinity::Worker>,
}

/// token id → its thread, for the tokens that have one. Written by the module thread only.
type Routes = Mutex<HashMap<TokenId, Route>>;

/// A loaded module, served by its threads. Cloning is cheap (one `Arc`). Dropping the last
/// handle stops the threads and waits for the module thread to finalize the module, so that
/// no PKCS#11 call is still running when the process exits (SoftHSM crashes if its library is
/// torn down under C_Finalize).
#[derive(Debug, Clone)]
pub struct ModuleHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Declared first, so dropped first: the module thread (and the token threads it joins)
    /// end while `ctx` below still keeps the library loaded. A module's thread-local
    /// destructors (opencryptoki has some) run as its threads exit, and crash if the library
    /// was unloaded before.
    module: ModuleThread,
    info: ModuleInfo,
    routes: Arc<Routes>,
    /// The context, shared only with the slot-event waiter (it opens no sessions).
    ctx: Pkcs11,
}

#[derive(Debug)]
struct ModuleThread {
    tx: Option<mpsc::Sender<ModuleRequest>>,
    thread: Option<thread::JoinHandle<()>>,
    affinity: Arc<affinity::Worker>,
}

impl Drop for ModuleThread {
    fn drop(&mut self) {
        // Closing the channel ends the module thread's loop; it stops the token threads.
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl ModuleHandle {
    /// Load and initialize the module at `path` on a new module thread.
    pub fn spawn(path: &Path) -> Result<ModuleHandle, Error> {
        let path = path.to_path_buf();
        let (tx, rx) = mpsc::channel::<ModuleRequest>();
        let (ready_tx, ready_rx) = oneshot::channel::<Result<(ModuleInfo, Pkcs11), Error>>();
        let name = format!(
            "pkcs11:{}",
            path.file_name()
                .map(|f| f.to_string_lossy().into_owned())
                .unwrap_or_default()
        );
        let routes = Arc::new(Routes::default());
        let module_affinity = Arc::new(affinity::Worker::default());
        let (thread_path, thread_routes, on_thread) =
            (path.clone(), routes.clone(), module_affinity.clone());
        let thread = thread::Builder::new()
            .name(name)
            .spawn(
                move || match module::Module::open(&thread_path, thread_routes, on_thread) {
                    Ok((module, info)) => {
                        if ready_tx.send(Ok((info, module.context()))).is_ok() {
                            module.run(rx);
                        }
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                },
            )
            .map_err(|e| Error::ModuleLoad {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        // Joined on drop, also when loading failed.
        let module = ModuleThread {
            tx: Some(tx),
            thread: Some(thread),
            affinity: module_affinity,
        };
        let (info, ctx) = ready_rx.recv().map_err(|_| Error::ModuleLoad {
            path: path.clone(),
            reason: "the module's thread stopped while loading it".into(),
        })??;
        Ok(ModuleHandle {
            inner: Arc::new(Inner {
                module,
                info,
                routes,
                ctx,
            }),
        })
    }

    pub fn info(&self) -> &ModuleInfo {
        &self.inner.info
    }

    pub fn path(&self) -> &Path {
        &self.inner.info.path
    }

    /// Every initialized token with its certificate objects.
    pub fn scan(&self) -> Result<Vec<TokenScan>, Error> {
        Backend::scan(self).wait()
    }

    /// C_Finalize and C_Initialize again, between two requests, so that the module sees
    /// tokens that appeared after it started (SoftHSM and several vendor modules need this).
    /// Kept logins end.
    pub fn reinitialize(&self) -> Result<(), Error> {
        Backend::reinitialize(self).wait()
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
        let ctx = self.inner.ctx.clone();
        // CKF_DONT_BLOCK first: a module without support usually says so at once.
        if let Err(e) = ctx.get_slot_event() {
            tracing::debug!(module = %self.path().display(), error = %short(&e), "no slot events; polling instead");
            return None;
        }
        let path = self.path().to_path_buf();
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
        Backend::sign(self, req).wait()
    }

    /// [`ModuleHandle::sign`] for async callers: the reply is awaited, no thread blocks.
    pub async fn sign_async(&self, req: SignRequest) -> Result<Signature, Error> {
        Backend::sign(self, req).await
    }

    /// Drop a login kept by [`Auth::Pin`] with `remember`.
    pub fn logout(&self, token_id: &TokenId) -> Result<(), Error> {
        Backend::logout(self, token_id).wait()
    }

    /// The token's current PIN state, read fresh from the token.
    pub fn pin_state(&self, token_id: &TokenId) -> Result<PinState, Error> {
        Backend::pin_state(self, token_id).wait()
    }

    /// C_SetPIN. Returns the PIN state afterwards.
    pub fn change_pin(
        &self,
        token_id: &TokenId,
        old: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, Error> {
        Backend::change_pin(self, token_id, old, new, force).wait()
    }

    /// C_Login as SO with the admin PIN or unlock code, then C_InitPIN with the new PIN.
    pub fn unlock(
        &self,
        token_id: &TokenId,
        so_pin: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, Error> {
        Backend::unlock(self, token_id, so_pin, new, force).wait()
    }

    /// A request for the module thread.
    fn module_call<T: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<T>) -> ModuleRequest + Send + 'static,
    ) -> Pending<T> {
        let inner = self.inner.clone();
        Pending::new(move |waiting| {
            let (reply, rx) = oneshot::channel();
            let hold = inner.to_module(make(reply), waiting)?;
            Ok(Sent { reply: rx, hold })
        })
    }

    /// A request for a token's thread (through the module thread when it has none yet).
    fn token_call<T: Send + 'static>(
        &self,
        token_id: TokenId,
        make: impl FnOnce(Reply<T>) -> TokenRequest + Send + 'static,
    ) -> Pending<T> {
        let inner = self.inner.clone();
        Pending::new(move |waiting| {
            let (reply, rx) = oneshot::channel();
            let hold = inner.to_token(token_id, make(reply), waiting)?;
            Ok(Sent { reply: rx, hold })
        })
    }
}

/// What a blocking caller holds until the answer: its CPU lent to the worker that answers.
type Hold = Option<Box<dyn std::any::Any>>;

fn lend_cpu(worker: &affinity::Worker, waiting: Waiting) -> Hold {
    match waiting {
        // This thread only waits from now on: the worker may as well run on its CPU.
        Waiting::Blocking => Some(Box::new(worker.join_caller())),
        Waiting::Async => None,
    }
}

impl Inner {
    fn to_module(&self, req: ModuleRequest, waiting: Waiting) -> Result<Hold, Error> {
        let tx = self.module.tx.as_ref().ok_or(Error::WorkerGone)?;
        let hold = lend_cpu(&self.module.affinity, waiting);
        tx.send(req).map_err(|_| Error::WorkerGone)?;
        Ok(hold)
    }

    fn to_token(
        &self,
        token_id: TokenId,
        req: TokenRequest,
        waiting: Waiting,
    ) -> Result<Hold, Error> {
        let route = self
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&token_id)
            .cloned();
        let req = match route {
            Some(route) => {
                let hold = lend_cpu(&route.affinity, waiting);
                match route.tx.send(req) {
                    Ok(()) => return Ok(hold),
                    // Its thread stopped meanwhile (re-initialisation): the module thread
                    // finds the token again, after the re-initialisation.
                    Err(mpsc::SendError(req)) => req,
                }
            }
            None => req,
        };
        self.to_module(ModuleRequest::ForToken(token_id, req), waiting)
    }
}

impl Backend for ModuleHandle {
    fn library(&self) -> &Path {
        self.path()
    }

    fn scan(&self) -> Pending<Vec<TokenScan>> {
        self.module_call(ModuleRequest::Scan)
    }

    fn sign(&self, request: SignRequest) -> Pending<Signature> {
        let token_id = request.token_id.clone();
        self.token_call(token_id, move |reply| TokenRequest::Sign(request, reply))
    }

    fn pin_state(&self, token: &TokenId) -> Pending<PinState> {
        let token = token.clone();
        self.module_call(move |reply| ModuleRequest::PinState(token, reply))
    }

    fn change_pin(&self, token: &TokenId, old: Pin, new: Pin, force: bool) -> Pending<PinState> {
        self.token_call(token.clone(), move |reply| TokenRequest::ChangePin {
            old,
            new,
            force,
            reply,
        })
    }

    fn unlock(&self, token: &TokenId, so_pin: Pin, new: Pin, force: bool) -> Pending<PinState> {
        self.token_call(token.clone(), move |reply| TokenRequest::Unlock {
            so_pin,
            new,
            force,
            reply,
        })
    }

    fn logout(&self, token: &TokenId) -> Pending<()> {
        self.token_call(token.clone(), TokenRequest::Logout)
    }

    fn reinitialize(&self) -> Pending<()> {
        self.module_call(ModuleRequest::Reinitialize)
    }

    fn watch(&self, mut on_event: Box<dyn FnMut(DeviceEvent) + Send>) -> bool {
        self.watch_slot_events(move |slot| {
            on_event(match slot {
                Some(_) => DeviceEvent::Changed,
                None => DeviceEvent::Unsupported,
            })
        })
        .is_some()
    }
}

fn id_of(info: &RawTokenInfo) -> TokenId {
    TokenId::derive(info.manufacturer_id(), info.model(), info.serial_number())
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
        ..Default::default()
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
        ..Default::default()
    }
}

/// C_GetTokenInfo, read leniently ([`RawTokenInfo`]).
fn token_info(
    raw: &cryptoki_sys::Pkcs11,
    slot: cryptoki::slot::Slot,
) -> Result<RawTokenInfo, Error> {
    RawTokenInfo::read(raw, slot).map_err(|rv| {
        match cryptoki::error::Rv::from(rv).into_result(cryptoki::context::Function::GetTokenInfo) {
            Err(e) => map_err(e),
            Ok(()) => Error::Other("C_GetTokenInfo".into()),
        }
    })
}

/// Slots holding an initialized token, with what each says of itself. Each slot is asked on
/// its own: one slot with an unrecognised card must not hide the others.
fn token_slots(
    ctx: &Pkcs11,
    raw: &cryptoki_sys::Pkcs11,
) -> Result<Vec<(cryptoki::slot::Slot, RawTokenInfo)>, Error> {
    Ok(token_slots_checked(ctx, raw)?.0)
}

/// Slots with an initialized token, and those a resource error kept from being read.
type SlotsRead = (
    Vec<(cryptoki::slot::Slot, RawTokenInfo)>,
    Vec<cryptoki::slot::Slot>,
);

/// [`token_slots`], and the slots a resource error ([`transient`]) kept from being read.
fn token_slots_checked(ctx: &Pkcs11, raw: &cryptoki_sys::Pkcs11) -> Result<SlotsRead, Error> {
    let slots = ctx.get_slots_with_token().map_err(map_err)?;
    let mut out = Vec::new();
    let mut failed = Vec::new();
    for slot in slots {
        match token_info(raw, slot) {
            Ok(info) if info.token_initialized() => out.push((slot, info)),
            Ok(_) => tracing::debug!(slot = slot.id(), "skipping uninitialized token"),
            Err(e) => {
                tracing::warn!(slot = slot.id(), error = %e, "cannot read token info");
                if transient(&e) {
                    failed.push(slot);
                }
            }
        }
    }
    Ok((out, failed))
}

/// An error of the process or the module rather than of the token (out of memory, out of
/// file descriptors, a general failure): the token may well be there.
fn transient(e: &Error) -> bool {
    match e {
        Error::Pkcs11 { rv, .. } => matches!(
            rv.as_str(),
            "GeneralError" | "HostMemory" | "DeviceMemory" | "FunctionFailed" | "DeviceError"
        ),
        Error::Other(_) => true,
        _ => false,
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
