//! The live inventory: the daemon's single source of truth, kept current by PC/SC card
//! events, PKCS#11 slot events and (for modules neither covers) a slow slot poll.
//!
//! One thread owns the state and applies changes one at a time; readers take a snapshot
//! (reads never touch a card) and subscribers get every change as an [`Event`] over a
//! broadcast channel. Snapshot and subscription are taken under one lock, so a subscriber
//! misses nothing between the two; one that falls behind is told it lagged and resyncs
//! from a fresh snapshot.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, Weak, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::loader::{self, LoadFailure};
use super::trust::{Trust, TrustProblem};
use super::{Error, entry};
use crate::config::{Config, ModuleConfig};
use crate::model::{
    CertEntry, Event, HashAlg, Hint, KeyPresence, Pin, PinState, SignInput, Signature, Snapshot,
    Token, TokenId, TokenScan,
};
use crate::token::modules;
use crate::token::pcsc::{PcscEvent, PcscWatcher};
use crate::token::pkcs11::ModuleInfo;
use crate::token::registry::Registry;
use crate::token::skf::SkfBackend;
use crate::token::{Auth, Backend, DeviceEvent, SignRequest};

/// How many events a subscriber may fall behind before it is told it lagged.
const CAPACITY: usize = 1024;

/// What a subscriber receives.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)] // one short-lived value per event; boxing would add an allocation each
pub enum Update {
    Event(Event),
    /// The subscriber fell behind and `missed` events are gone: start again from `snapshot`.
    Lagged {
        missed: u64,
        snapshot: Arc<Snapshot>,
    },
    /// The inventory has stopped.
    Closed,
}

/// A subscription to inventory events. It does not keep the inventory alive: once the
/// inventory has stopped, it gives [`Update::Closed`] (after the events still queued).
pub struct Subscription {
    rx: broadcast::Receiver<Event>,
    shared: Weak<Shared>,
}

impl Subscription {
    fn map(&self, r: Result<Event, broadcast::error::RecvError>) -> Update {
        match r {
            Ok(e) => Update::Event(e),
            Err(broadcast::error::RecvError::Lagged(missed)) => match self.shared.upgrade() {
                Some(shared) => Update::Lagged {
                    missed,
                    snapshot: shared.snapshot(),
                },
                None => Update::Closed,
            },
            Err(broadcast::error::RecvError::Closed) => Update::Closed,
        }
    }

    /// Wait for the next update (async).
    pub async fn recv(&mut self) -> Update {
        let r = self.rx.recv().await;
        self.map(r)
    }

    /// Wait for the next update, blocking the thread (not for async contexts).
    pub fn blocking_recv(&mut self) -> Update {
        let r = self.rx.blocking_recv();
        self.map(r)
    }
}

struct Shared {
    /// Replaced, never changed in place: a snapshot is an `Arc` clone, cheap on hot paths.
    state: RwLock<Arc<Snapshot>>,
    events: broadcast::Sender<Event>,
}

impl Shared {
    fn snapshot(&self) -> Arc<Snapshot> {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Change the state by the events `change` finds, and send them, under one lock.
    fn publish(&self, change: impl FnOnce(&Snapshot) -> Change) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let Change { events, refreshed } = change(&state);
        if events.is_empty() && refreshed.is_empty() {
            return;
        }
        let mut next = Snapshot::clone(&state);
        for e in &events {
            next.apply(e);
        }
        for token in refreshed {
            if let Some(t) = next.tokens.iter_mut().find(|t| t.id == token.id) {
                *t = token;
            }
        }
        *state = Arc::new(next);
        for e in events {
            tracing::debug!(event = e.name(), "inventory event");
            // No subscriber is not an error.
            let _ = self.events.send(e);
        }
    }
}

/// What a change to the inventory is: the events that describe it, and tokens whose
/// details (label, seal) moved with no event of their own.
#[derive(Default)]
struct Change {
    events: Vec<Event>,
    refreshed: Vec<Token>,
}

impl From<Option<Event>> for Change {
    fn from(event: Option<Event>) -> Change {
        Vec::from_iter(event).into()
    }
}

impl From<Vec<Event>> for Change {
    fn from(events: Vec<Event>) -> Change {
        Change {
            events,
            refreshed: Vec::new(),
        }
    }
}

/// Options for [`Live::start`].
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Follow changes: slot events, and the slow poll of modules nothing else covers. Off,
    /// the inventory is read once (a CLI command).
    pub watch: bool,
    /// Watch PC/SC readers and cards (with `watch`).
    pub pcsc: bool,
}

impl LiveOptions {
    /// The daemon's: follow every change.
    pub fn watching() -> LiveOptions {
        LiveOptions {
            watch: true,
            pcsc: true,
        }
    }

    /// A command's: read what is there once.
    pub fn once() -> LiveOptions {
        LiveOptions {
            watch: false,
            pcsc: false,
        }
    }
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions::watching()
    }
}

/// A module the inventory tried, as `certray doctor` reports it.
#[derive(Debug, Clone)]
pub struct ModuleStatus {
    pub path: std::path::PathBuf,
    /// Listed in `[pkcs11] modules` (else a default found installed).
    pub configured: bool,
    /// What it says about itself, or why it did not load.
    pub loaded: Result<ModuleInfo, LoadFailure>,
    /// Listing its slots and tokens failed at the first scan.
    pub scan_error: Option<String>,
}

/// An SKF library the inventory tried, as `certray doctor` reports it.
#[derive(Debug, Clone)]
pub struct SkfStatus {
    pub path: std::path::PathBuf,
    /// Listed in `[skf] libraries` (else a known vendor library found installed).
    pub configured: bool,
    /// Its backend (which knows the devices it saw and why its hosts crashed), or why the
    /// library did not load.
    pub loaded: Result<SkfBackend, LoadFailure>,
    /// Listing its devices failed at the first scan.
    pub scan_error: Option<String>,
}

enum Input {
    Pcsc(PcscEvent),
    SlotEvent(usize),
    /// Module `i` turned out unable to wait for slot events: poll it.
    NoSlotEvents(usize),
    /// Read a token's PIN flags again (after a PIN was used: they may have moved).
    PinCheck(TokenId),
    Stop,
}

/// A loaded module and how its changes are noticed.
struct Loaded {
    backend: Arc<dyn Backend>,
    config: ModuleConfig,
    /// PC/SC card events tell when to rescan it.
    pcsc: bool,
    /// C_WaitForSlotEvent tells when to rescan it.
    slot_events: bool,
}

/// The running inventory. Dropping it stops its threads and finalizes the modules.
pub struct Live {
    shared: Arc<Shared>,
    tried: Vec<ModuleStatus>,
    trust_problems: Vec<TrustProblem>,
    failures: Vec<LoadFailure>,
    skf: Vec<SkfStatus>,
    modules: Vec<Arc<dyn Backend>>,
    input: mpsc::Sender<Input>,
    thread: Option<thread::JoinHandle<()>>,
    pcsc: Option<PcscWatcher>,
}

impl Live {
    /// What [`Live::start`] refuses in a configuration before it loads anything (a malformed
    /// ATR or mask in `[[cards]]`), for `certray config check`.
    pub fn check_config(config: &Config) -> Result<(), Error> {
        Registry::new(&config.cards)
            .map(drop)
            .map_err(Error::Config)
    }

    /// Load the modules, scan them, and (with `options.watch`) start following changes.
    pub fn start(config: &Config, options: LiveOptions) -> Result<Live, Error> {
        let registry = Registry::new(&config.cards).map_err(Error::Config)?;
        // Read once: every change to the tokens is checked against these.
        let trust = Trust::load(&config.trust);
        let trust_problems = trust.problems().to_vec();
        let (input, rx) = mpsc::channel();
        let mut loaded = Vec::new();
        let mut tried = Vec::new();
        let mut failures = Vec::new();
        for t in loader::load(config) {
            let mut status = ModuleStatus {
                path: t.config.path.clone(),
                configured: t.configured,
                loaded: Err(LoadFailure {
                    path: t.config.path.clone(),
                    reason: String::new(),
                }),
                scan_error: None,
            };
            let handle = match t.loaded {
                Ok(h) => h,
                Err(f) => {
                    status.loaded = Err(f.clone());
                    failures.push(f);
                    tried.push(status);
                    continue;
                }
            };
            status.loaded = Ok(handle.info().clone());
            tried.push(status);
            let backend: Arc<dyn Backend> = Arc::new(handle);
            let mc = t.config;
            let pcsc = mc.pcsc.unwrap_or_else(|| modules::pcsc_backed(&mc.path));
            // Modules that PC/SC covers need no slot-event thread.
            let slot_events = options.watch && !pcsc && watch(&*backend, &input, loaded.len());
            loaded.push(Loaded {
                backend,
                config: mc,
                pcsc,
                slot_events,
            });
        }
        // SKF libraries, each in its host process: devices come and go by its events.
        let mut skf = Vec::new();
        for t in loader::load_skf(config) {
            let backend = match &t.loaded {
                Ok(b) => b.clone(),
                Err(f) => {
                    failures.push(f.clone());
                    skf.push(SkfStatus {
                        path: t.path,
                        configured: t.configured,
                        loaded: t.loaded,
                        scan_error: None,
                    });
                    continue;
                }
            };
            skf.push(SkfStatus {
                path: t.path.clone(),
                configured: t.configured,
                loaded: t.loaded,
                scan_error: None,
            });
            let backend: Arc<dyn Backend> = Arc::new(backend);
            let slot_events = options.watch && watch(&*backend, &input, loaded.len());
            loaded.push(Loaded {
                backend,
                config: ModuleConfig::new(t.path),
                pcsc: false,
                slot_events,
            });
        }
        let (events, _) = broadcast::channel(CAPACITY);
        let shared = Arc::new(Shared {
            state: RwLock::new(Arc::new(Snapshot::default())),
            events,
        });
        let poll = Duration::from_millis(config.pkcs11.poll_interval_ms);
        let mut actor = Actor {
            shared: shared.clone(),
            registry,
            modules: loaded,
            poll: (options.watch && !poll.is_zero()).then_some(poll),
            retry: HashMap::new(),
            trust,
        };
        for i in 0..actor.modules.len() {
            if let Err(e) = actor.rescan(i, false) {
                let path = actor.modules[i].backend.library();
                if let Some(status) = tried.iter_mut().find(|t| t.path == path) {
                    status.scan_error = Some(e.to_string());
                } else if let Some(status) = skf.iter_mut().find(|t| t.path == path) {
                    status.scan_error = Some(e.to_string());
                }
            }
        }
        let modules = actor.modules.iter().map(|m| m.backend.clone()).collect();
        let thread = thread::Builder::new()
            .name("inventory".into())
            .spawn(move || actor.run(rx))
            .map_err(|e| Error::Internal(format!("cannot start the inventory thread: {e}")))?;
        let pcsc = if options.watch && options.pcsc {
            let tx = input.clone();
            match PcscWatcher::spawn(move |e| {
                let _ = tx.send(Input::Pcsc(e));
            }) {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::warn!(error = %e, "PC/SC watcher not started");
                    None
                }
            }
        } else {
            None
        };
        Ok(Live {
            shared,
            tried,
            trust_problems,
            failures,
            skf,
            modules,
            input,
            thread: Some(thread),
            pcsc,
        })
    }

    /// The state now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.shared.snapshot()
    }

    /// The state now and every change after it, with nothing lost in between.
    pub fn subscribe(&self) -> (Arc<Snapshot>, Subscription) {
        let state = self.shared.state.read().unwrap_or_else(|e| e.into_inner());
        let rx = self.shared.events.subscribe();
        (
            state.clone(),
            Subscription {
                rx,
                shared: Arc::downgrade(&self.shared),
            },
        )
    }

    /// Modules that could not be loaded.
    pub fn failures(&self) -> &[LoadFailure] {
        &self.failures
    }

    /// Every SKF library tried, in order, and how it went.
    pub fn skf_libraries(&self) -> &[SkfStatus] {
        &self.skf
    }

    /// Every module tried, in order, and how it went.
    pub fn modules(&self) -> &[ModuleStatus] {
        &self.tried
    }

    /// The `[trust] ca_paths` entries (and system CA stores) that could not be read.
    pub fn trust_problems(&self) -> &[TrustProblem] {
        &self.trust_problems
    }

    /// Read a token's PIN flags again soon (after a PIN was used), publishing
    /// `pin-state-changed` when they moved. Cheaper than a rescan: one C_GetTokenInfo.
    pub fn check_pin(&self, token_id: &TokenId) {
        let _ = self.input.send(Input::PinCheck(token_id.clone()));
    }

    /// A signature was made with `cert`'s key: where the token hid that key until login
    /// (listed as unknown), it is known to be there from now on, and subscribers hear of it
    /// (`certificates-changed`). A rescan that lists the same certificates keeps it so.
    pub fn key_confirmed(&self, cert: &CertEntry) {
        self.shared.publish(|s| {
            let mut certs = s.certificates_of(&cert.token_id);
            let mut moved = false;
            for c in certs.iter_mut().filter(|c| {
                c.key_id == cert.key_id && c.has_private_key == KeyPresence::UnknownUntilLogin
            }) {
                c.has_private_key = KeyPresence::Yes;
                moved = true;
            }
            if !moved {
                return Change::default();
            }
            Some(Event::CertificatesChanged {
                token_id: cert.token_id.clone(),
                certificates: certs,
            })
            .into()
        });
    }

    /// A certificate by its exact id.
    pub fn certificate(&self, id: &str) -> Option<CertEntry> {
        self.shared.snapshot().certificate(id).cloned()
    }

    /// A certificate by its id or a unique prefix of it (6 characters or more).
    pub fn find_certificate(&self, id: &str) -> Result<CertEntry, Error> {
        self.shared
            .snapshot()
            .find_certificate(id)
            .cloned()
            .ok_or_else(|| Error::CertNotFound(id.to_string()))
    }

    /// A token by its id.
    pub fn token(&self, id: &str) -> Result<Token, Error> {
        self.shared
            .snapshot()
            .token(id)
            .cloned()
            .ok_or_else(|| Error::TokenNotFound(id.to_string()))
    }

    /// Sign with `cert`'s private key on the backend that serves its token; the reply is
    /// awaited, no thread blocks. Policy (who may, with which PIN) is the caller's:
    /// [`super::Signing`].
    pub async fn sign(
        &self,
        cert: &CertEntry,
        hash: HashAlg,
        input: SignInput,
        auth: Auth,
    ) -> Result<Signature, Error> {
        let module = self
            .module_for(&cert.token_id)
            .ok_or(Error::Token(crate::token::Error::TokenRemoved))?;
        Ok(module
            .sign(SignRequest {
                token_id: cert.token_id.clone(),
                key_id: cert.key_id.clone(),
                hash,
                input,
                auth,
            })
            .await?)
    }

    /// The token's PIN state, read fresh from the token (one C_GetTokenInfo).
    pub fn pin_state(&self, token_id: &TokenId) -> Result<PinState, Error> {
        Ok(self.module(token_id)?.pin_state(token_id).wait()?)
    }

    /// Change the user PIN (see [`Backend::change_pin`]); the token's new PIN flags
    /// are published as `pin-state-changed` whatever the outcome.
    pub fn change_pin(
        &self,
        token_id: &TokenId,
        old: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, Error> {
        let module = self.module(token_id)?;
        // A PIN outside the token's range is never sent: a token may count it as a try.
        if let Ok(t) = self.token(token_id) {
            t.pin.check_len(&old).map_err(crate::token::Error::from)?;
            t.pin.check_len(&new).map_err(crate::token::Error::from)?;
        }
        let result = module.change_pin(token_id, old, new, force).wait();
        self.check_pin(token_id);
        Ok(result?)
    }

    /// Unlock with the admin PIN or unlock code and set a new user PIN (see
    /// [`Backend::unlock`]); publishes the new PIN flags like [`Live::change_pin`].
    pub fn unlock(
        &self,
        token_id: &TokenId,
        so_pin: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, Error> {
        let module = self.module(token_id)?;
        if let Ok(t) = self.token(token_id) {
            t.so_pin
                .check_len(&so_pin)
                .map_err(crate::token::Error::from)?;
            t.pin.check_len(&new).map_err(crate::token::Error::from)?;
        }
        let result = module.unlock(token_id, so_pin, new, force).wait();
        self.check_pin(token_id);
        Ok(result?)
    }

    fn module(&self, token_id: &TokenId) -> Result<Arc<dyn Backend>, Error> {
        self.module_for(token_id)
            .ok_or_else(|| Error::TokenNotFound(token_id.to_string()))
    }

    /// The worker of the module that serves `token_id`, for commands.
    pub fn module_for(&self, token_id: &TokenId) -> Option<Arc<dyn Backend>> {
        let snapshot = self.shared.snapshot();
        let token = snapshot.token(token_id)?;
        self.modules
            .iter()
            .find(|m| m.library() == token.location.library)
            .cloned()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // The PC/SC watcher first, so that no more card events arrive.
        self.pcsc.take();
        let _ = self.input.send(Input::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Actor {
    shared: Arc<Shared>,
    registry: Registry,
    modules: Vec<Loaded>,
    poll: Option<Duration>,
    /// Modules whose last scan failed (the process out of file descriptors, say), with
    /// when to try again and the back-off after that: what they served stays listed
    /// meanwhile, and what changed is found once the error clears.
    retry: HashMap<usize, (Instant, Duration)>,
    /// The CA certificates issuers are looked for among, besides the tokens.
    trust: Trust,
}

/// The first and the longest wait before scanning a module whose scan failed again.
const RETRY_FIRST: Duration = Duration::from_secs(2);
const RETRY_MAX: Duration = Duration::from_secs(60);

impl Actor {
    /// Modules that neither PC/SC nor slot events cover.
    fn polled(&self) -> Vec<usize> {
        (0..self.modules.len())
            .filter(|&i| !self.modules[i].pcsc && !self.modules[i].slot_events)
            .collect()
    }

    fn run(mut self, rx: mpsc::Receiver<Input>) {
        let mut polled = self.polled();
        let mut next_poll = self
            .poll
            .filter(|_| !polled.is_empty())
            .map(|p| Instant::now() + p);
        loop {
            // Without modules to poll this blocks until something happens: an idle daemon
            // wakes for nothing.
            let next_retry = self.retry.values().map(|(at, _)| *at).min();
            let wake = match (next_poll, next_retry) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let msg = match wake {
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(m) => Some(m),
                    Err(mpsc::RecvTimeoutError::Timeout) => None,
                    Err(mpsc::RecvTimeoutError::Disconnected) => break,
                },
                None => match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => break,
                },
            };
            match msg {
                Some(Input::Stop) => break,
                Some(Input::Pcsc(e)) => self.on_pcsc(e),
                Some(Input::SlotEvent(i)) => {
                    let _ = self.rescan(i, false);
                }
                Some(Input::PinCheck(token_id)) => self.check_pin(&token_id),
                Some(Input::NoSlotEvents(i)) => {
                    self.modules[i].slot_events = false;
                    polled = self.polled();
                    if next_poll.is_none() {
                        next_poll = self
                            .poll
                            .filter(|_| !polled.is_empty())
                            .map(|p| Instant::now() + p);
                    }
                }
                None => {
                    let now = Instant::now();
                    let due: Vec<usize> = self
                        .retry
                        .iter()
                        .filter(|(_, (at, _))| *at <= now)
                        .map(|(&i, _)| i)
                        .collect();
                    for i in due {
                        let _ = self.rescan(i, false);
                    }
                    if next_poll.is_some_and(|at| at <= now) {
                        tracing::trace!(modules = polled.len(), "slot poll");
                        for &i in &polled {
                            let _ = self.rescan(i, false);
                        }
                        next_poll = self.poll.map(|p| Instant::now() + p);
                    }
                }
            }
        }
        tracing::debug!("inventory stopped");
    }

    /// The modules a card concerns, its registry name, and a hint when none may serve it.
    fn modules_for_card(&self, atr: &[u8]) -> (Vec<usize>, Option<String>, Option<Hint>) {
        let all = || -> Vec<usize> { (0..self.modules.len()).collect() };
        match self.registry.lookup(atr) {
            Some(entry) => {
                let wanted: Vec<usize> = (0..self.modules.len())
                    .filter(|&i| {
                        entry
                            .modules
                            .iter()
                            .any(|p| same_file(p, &self.modules[i].config.path))
                    })
                    .collect();
                if wanted.is_empty() {
                    (all(), Some(entry.name.clone()), Some(Hint::ModuleMissing))
                } else {
                    (wanted, Some(entry.name.clone()), None)
                }
            }
            None => (all(), None, Some(Hint::UnknownCard)),
        }
    }

    fn on_pcsc(&mut self, e: PcscEvent) {
        match e {
            PcscEvent::ReaderAdded { reader } => self.shared.publish(|s| {
                let known = s.readers.iter().any(|r| r.name == reader);
                (!known).then_some(Event::ReaderAdded { reader }).into()
            }),
            PcscEvent::ReaderRemoved { reader } => {
                let atr = self.reader_atr(&reader);
                self.shared.publish(|s| {
                    let known = s.readers.iter().any(|r| r.name == reader);
                    known.then_some(Event::ReaderRemoved { reader }).into()
                });
                if let Some(atr) = atr {
                    self.card_changed(&atr);
                }
            }
            PcscEvent::CardInserted { reader, atr } => {
                let (_, card, hint) = self.modules_for_card(&atr);
                let a = atr.clone();
                self.shared.publish(|_| {
                    vec![Event::CardInserted {
                        reader,
                        atr: a,
                        card,
                        hint,
                    }]
                    .into()
                });
                self.card_changed(&atr);
            }
            PcscEvent::CardRemoved { reader } => {
                let atr = self.reader_atr(&reader);
                self.shared
                    .publish(|_| vec![Event::CardRemoved { reader }].into());
                if let Some(atr) = atr {
                    self.card_changed(&atr);
                }
            }
            PcscEvent::ServiceDown { reason } => {
                tracing::info!(%reason, "PC/SC service unavailable")
            }
            PcscEvent::ServiceUp => tracing::info!("PC/SC service available"),
        }
    }

    fn check_pin(&mut self, token_id: &TokenId) {
        let snapshot = self.shared.snapshot();
        let Some(token) = snapshot.token(token_id) else {
            return;
        };
        let Some(m) = self
            .modules
            .iter()
            .find(|m| m.backend.library() == token.location.library)
        else {
            return;
        };
        match m.backend.pin_state(token_id).wait() {
            Ok(pin) if pin != token.pin => self.shared.publish(|s| {
                s.token(token_id)
                    .map(|_| Event::PinStateChanged {
                        token_id: token_id.clone(),
                        pin,
                    })
                    .into()
            }),
            Ok(_) => {}
            Err(e) => tracing::debug!(token = %token_id, error = %e, "PIN state not read"),
        }
    }

    fn reader_atr(&self, reader: &str) -> Option<Vec<u8>> {
        self.shared
            .snapshot()
            .readers
            .iter()
            .find(|r| r.name == reader)?
            .atr
            .clone()
    }

    /// A card came or went: rescan the modules that may serve it, right away.
    fn card_changed(&mut self, atr: &[u8]) {
        let (modules, _, _) = self.modules_for_card(atr);
        for i in modules {
            let _ = self.rescan(i, true);
        }
    }

    /// Scan module `i` (after re-initialising it when asked and configured) and publish the
    /// difference to what the inventory knew of it.
    fn rescan(&mut self, i: usize, card_event: bool) -> Result<(), crate::token::Error> {
        let m = &self.modules[i];
        if card_event
            && m.config.reinitialize_on_change
            && let Err(e) = m.backend.reinitialize().wait()
        {
            tracing::warn!(module = %m.config.path.display(), error = %e, "re-initialisation failed");
        }
        let scans = match m.backend.scan().wait() {
            Ok(s) => s,
            Err(e) => {
                // Nothing is published: what the module served stays listed until a scan
                // says otherwise, and one is tried again soon.
                let wait = self
                    .retry
                    .get(&i)
                    .map_or(RETRY_FIRST, |(_, w)| (*w * 2).min(RETRY_MAX));
                tracing::warn!(module = %m.config.path.display(), error = %e, retry_in = ?wait, "scan failed");
                self.retry.insert(i, (Instant::now() + wait, wait));
                return Err(e);
            }
        };
        self.retry.remove(&i);
        let m = &self.modules[i];
        let path = m.backend.library().to_path_buf();
        let trust = &self.trust;
        self.shared.publish(|s| {
            let mut change = diff_module(s, &path, scans);
            check_issuers(s, &mut change, trust);
            change
        });
        Ok(())
    }
}

/// Have `backend` report its device events to the inventory as module `i`'s; `false`
/// when it cannot (it is polled then).
fn watch(backend: &dyn Backend, input: &mpsc::Sender<Input>, i: usize) -> bool {
    let tx = input.clone();
    backend.watch(Box::new(move |e| {
        let _ = tx.send(match e {
            DeviceEvent::Changed => Input::SlotEvent(i),
            DeviceEvent::Unsupported => Input::NoSlotEvents(i),
        });
    }))
}

/// The change that replaces what `s` holds from the module at `path` by `scans`. A token
/// already listed from another module is left to that module.
fn diff_module(s: &Snapshot, path: &std::path::Path, scans: Vec<TokenScan>) -> Change {
    let mut change = Change::default();
    let old: HashMap<TokenId, Token> = s
        .tokens
        .iter()
        .filter(|t| t.location.library == path)
        .map(|t| (t.id.clone(), t.clone()))
        .collect();
    let mut seen = Vec::new();
    for scan in scans {
        let id = scan.token.id.clone();
        if s.tokens
            .iter()
            .any(|t| t.id == id && t.location.library != path)
        {
            continue;
        }
        seen.push(id.clone());
        let certs: Vec<CertEntry> = scan.certificates.into_iter().map(entry).collect();
        let Some(before) = old.get(&id) else {
            change.events.push(Event::TokenAdded {
                token: scan.token,
                certificates: certs,
            });
            continue;
        };
        let new_ids: Vec<_> = certs.iter().map(|c| &c.id).collect();
        if s.certificate_ids_of(&id) != new_ids {
            change.events.push(Event::CertificatesChanged {
                token_id: id.clone(),
                certificates: certs,
            });
        }
        if before.pin != scan.token.pin {
            change.events.push(Event::PinStateChanged {
                token_id: id.clone(),
                pin: scan.token.pin,
            });
        }
        if *before != scan.token {
            change.refreshed.push(scan.token);
        }
    }
    for id in old.keys().filter(|id| !seen.contains(id)) {
        change.events.push(Event::TokenRemoved {
            token_id: id.clone(),
        });
    }
    change
}

/// Give the certificates `change` brings their issuer checks, and check again those of the
/// tokens it leaves alone whose checks move with it (a CA certificate came or went on
/// another token): each such token gets a `certificates-changed` of its own. Nothing is
/// checked when no certificate came or went.
fn check_issuers(s: &Snapshot, change: &mut Change, trust: &Trust) {
    let moved = change.events.iter().any(|e| {
        matches!(
            e,
            Event::TokenAdded { .. }
                | Event::TokenRemoved { .. }
                | Event::CertificatesChanged { .. }
        )
    });
    if !moved {
        return;
    }
    let mut next = s.clone();
    for e in &change.events {
        next.apply(e);
    }
    let checks = trust.check_all(&next.certificates);
    let check_of = |c: &CertEntry| {
        next.certificates
            .iter()
            .position(|n| n.token_id == c.token_id && n.id == c.id)
            .and_then(|i| checks[i].clone())
    };
    let mut touched = Vec::new();
    for e in &mut change.events {
        if let Event::TokenAdded {
            token: Token { id, .. },
            certificates,
        }
        | Event::CertificatesChanged {
            token_id: id,
            certificates,
        } = e
        {
            touched.push(id.clone());
            for c in certificates.iter_mut() {
                c.issuer = check_of(c);
            }
        }
    }
    for token in &next.tokens {
        if touched.contains(&token.id) {
            continue;
        }
        let mut certs = next.certificates_of(&token.id);
        let mut moved = false;
        for c in &mut certs {
            let check = check_of(c);
            if c.issuer != check {
                c.issuer = check;
                moved = true;
            }
        }
        if moved {
            change.events.push(Event::CertificatesChanged {
                token_id: token.id.clone(),
                certificates: certs,
            });
        }
    }
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    let canon = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    a == b || canon(a) == canon(b)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::model::{CertObject, IssuerVerdict, PinState};

    fn token(id: &str, module: &str) -> Token {
        Token {
            id: id.into(),
            label: id.into(),
            manufacturer: "m".into(),
            model: "x".into(),
            serial: id.into(),
            location: crate::model::Location {
                library: PathBuf::from(module),
                slot: 0,
            },
            pin: PinState::default(),
            so_pin: PinState::default(),
            seal: None,
        }
    }

    fn scan(id: &str, module: &str, certs: &[&[u8]]) -> TokenScan {
        TokenScan {
            token: token(id, module),
            certificates: certs
                .iter()
                .map(|der| CertObject {
                    token_id: id.into(),
                    label: String::new(),
                    key_id: vec![1],
                    der: der.to_vec(),
                    has_private_key: false.into(),
                })
                .collect(),
        }
    }

    fn names(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(Event::name).collect()
    }

    /// Scan `path` into `s` as the inventory does: the events, applied to the snapshot.
    fn diff_and_apply(s: &mut Snapshot, path: &Path, scans: Vec<TokenScan>) -> Vec<Event> {
        let change = diff_module(s, path, scans);
        for e in &change.events {
            s.apply(e);
        }
        change.events
    }

    #[test]
    fn diff_adds_changes_and_removes_per_module() {
        let mut s = Snapshot::default();
        let a = Path::new("/a.so");
        let e = diff_and_apply(&mut s, a, vec![scan("t-1", "/a.so", &[b"one"])]);
        assert_eq!(names(&e), ["token-added"]);
        // The same scan again: nothing.
        assert!(diff_and_apply(&mut s, a, vec![scan("t-1", "/a.so", &[b"one"])]).is_empty());
        // A certificate written to the key, and its PIN state moving.
        let mut next = scan("t-1", "/a.so", &[b"one", b"two"]);
        next.token.pin.count_low = true;
        let e = diff_and_apply(&mut s, a, vec![next]);
        assert_eq!(names(&e), ["certificates-changed", "pin-state-changed"]);
        assert_eq!(s.certificates_of("t-1").len(), 2);
        // Another module's tokens are not touched by this module's scan.
        let e = diff_and_apply(&mut s, Path::new("/b.so"), vec![scan("t-2", "/b.so", &[])]);
        assert_eq!(names(&e), ["token-added"]);
        let e = diff_and_apply(&mut s, a, vec![]);
        assert_eq!(names(&e), ["token-removed"]);
        assert_eq!(s.tokens.len(), 1);
        assert!(s.certificates_of("t-1").is_empty());
        // A token already served by /b.so is not listed again through /a.so.
        assert!(diff_and_apply(&mut s, a, vec![scan("t-2", "/a.so", &[])]).is_empty());
    }

    /// Scan as the inventory does, issuer checks included.
    fn rescan_checked(
        s: &mut Snapshot,
        path: &Path,
        scans: Vec<TokenScan>,
        trust: &Trust,
    ) -> Vec<Event> {
        let mut change = diff_module(s, path, scans);
        check_issuers(s, &mut change, trust);
        for e in &change.events {
            s.apply(e);
        }
        change.events
    }

    #[test]
    fn issuer_checks_follow_the_certificates_on_every_token() {
        let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/real-certs");
        let read = |n: &str| {
            std::fs::read(corpus.join(n))
                .unwrap_or_else(|e| panic!("{n} in ../shared/fixtures/real-certs: {e}"))
        };
        let leaf = read("22-sheca-sm2-personal-bmpstring.der");
        let sub = read("02-sheca-sm2-subca.der");
        let trust = Trust::none();
        let verdict = |s: &Snapshot, token: &str| {
            s.certificates_of(token)[0]
                .issuer
                .as_ref()
                .map(|c| c.verdict)
        };
        let mut s = Snapshot::default();
        let e = rescan_checked(
            &mut s,
            Path::new("/a.so"),
            vec![scan("t-1", "/a.so", &[&leaf])],
            &trust,
        );
        assert_eq!(names(&e), ["token-added"]);
        assert_eq!(verdict(&s, "t-1"), Some(IssuerVerdict::IssuerNotFound));
        // The sub-CA comes on another module's token: the first token's certificate is
        // checked again and changes.
        let e = rescan_checked(
            &mut s,
            Path::new("/b.so"),
            vec![scan("t-2", "/b.so", &[&sub])],
            &trust,
        );
        assert_eq!(names(&e), ["token-added", "certificates-changed"]);
        assert_eq!(verdict(&s, "t-1"), Some(IssuerVerdict::Verified));
        let issuer = s.certificates_of("t-1")[0]
            .issuer
            .clone()
            .unwrap()
            .issuer
            .unwrap();
        assert_eq!(issuer.source, crate::model::IssuerSource::Token);
        // A rescan that changes nothing checks nothing and says nothing.
        let e = rescan_checked(
            &mut s,
            Path::new("/b.so"),
            vec![scan("t-2", "/b.so", &[&sub])],
            &trust,
        );
        assert!(e.is_empty());
        // And when it goes, so does the verification.
        let e = rescan_checked(&mut s, Path::new("/b.so"), vec![], &trust);
        assert_eq!(names(&e), ["token-removed", "certificates-changed"]);
        assert_eq!(verdict(&s, "t-1"), Some(IssuerVerdict::IssuerNotFound));
    }

    #[test]
    fn subscribers_hear_that_the_inventory_stopped() {
        // A subscription does not keep the inventory's channel open: the UI's event thread
        // ends with the inventory instead of waiting forever.
        let mut config = Config::default();
        config.pkcs11.use_defaults = false;
        let live = Live::start(
            &config,
            LiveOptions {
                watch: true,
                pcsc: false,
            },
        )
        .unwrap();
        let (_, mut sub) = live.subscribe();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            let _ = tx.send(sub.blocking_recv());
        });
        drop(live);
        let update = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the subscriber still waits after the inventory stopped");
        assert!(matches!(update, Update::Closed), "{update:?}");
    }

    #[test]
    fn a_lagging_subscriber_is_told_and_gets_a_snapshot() {
        let (events, _) = broadcast::channel(2);
        let shared = Arc::new(Shared {
            state: RwLock::new(Arc::new(Snapshot::default())),
            events,
        });
        let mut sub = Subscription {
            rx: shared.events.subscribe(),
            shared: Arc::downgrade(&shared),
        };
        for i in 0..5 {
            shared.publish(|_| {
                vec![Event::ReaderAdded {
                    reader: format!("r{i}"),
                }]
                .into()
            });
        }
        match sub.blocking_recv() {
            Update::Lagged { missed, snapshot } => {
                assert_eq!(missed, 3);
                assert_eq!(snapshot.readers.len(), 5);
            }
            other => panic!("expected Lagged, got {other:?}"),
        }
        // Then the events still held, in order.
        match sub.blocking_recv() {
            Update::Event(Event::ReaderAdded { reader }) => assert_eq!(reader, "r3"),
            other => panic!("{other:?}"),
        }
    }
}
