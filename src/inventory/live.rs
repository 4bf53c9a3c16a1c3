//! The live inventory: the daemon's single source of truth, kept current by PC/SC card
//! events, PKCS#11 slot events and (for modules neither covers) a slow slot poll.
//!
//! One thread owns the state and applies changes one at a time; readers take a snapshot
//! (reads never touch a card) and subscribers get every change as an [`Event`] over a
//! broadcast channel. Snapshot and subscription are taken under one lock, so a subscriber
//! misses nothing between the two; one that falls behind is told it lagged and resyncs
//! from a fresh snapshot.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::event::{Event, Hint};
use super::{CertEntry, LoadFailure, entry, load_modules};
use crate::config::{Config, ModuleConfig};
use crate::token::pcsc::{PcscEvent, PcscWatcher};
use crate::token::pkcs11::ModuleHandle;
use crate::token::registry::Registry;
use crate::token::{Pin, PinState, TokenInfo, TokenScan, modules};

/// How many events a subscriber may fall behind before it is told it lagged.
const CAPACITY: usize = 1024;

/// A reader and the ATR of the card in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    pub name: String,
    pub atr: Option<Vec<u8>>,
}

/// Everything the inventory knows at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub readers: Vec<Reader>,
    pub tokens: Vec<TokenInfo>,
    pub certificates: Vec<CertEntry>,
}

impl Snapshot {
    /// A certificate by its exact id.
    pub fn certificate(&self, id: &str) -> Option<&CertEntry> {
        self.certificates.iter().find(|c| c.id == id)
    }

    /// A token by its id.
    pub fn token(&self, id: &str) -> Option<&TokenInfo> {
        self.tokens.iter().find(|t| t.id == id)
    }

    /// The certificates on one token.
    pub fn certificates_of(&self, token_id: &str) -> Vec<CertEntry> {
        self.certificates
            .iter()
            .filter(|c| c.token_id == token_id)
            .cloned()
            .collect()
    }
}

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

/// A subscription to inventory events.
pub struct Subscription {
    rx: broadcast::Receiver<Event>,
    shared: Arc<Shared>,
}

impl Subscription {
    fn map(&self, r: Result<Event, broadcast::error::RecvError>) -> Update {
        match r {
            Ok(e) => Update::Event(e),
            Err(broadcast::error::RecvError::Lagged(missed)) => Update::Lagged {
                missed,
                snapshot: self.shared.snapshot(),
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

    /// Change the state and send the events that describe the change, under one lock.
    fn publish(&self, change: impl FnOnce(&mut Snapshot) -> Vec<Event>) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let mut next = Snapshot::clone(&state);
        let events = change(&mut next);
        if !events.is_empty() {
            *state = Arc::new(next);
        }
        for e in events {
            tracing::debug!(event = e.name(), "inventory event");
            // No subscriber is not an error.
            let _ = self.events.send(e);
        }
    }
}

/// Options for [`Live::start`].
#[derive(Debug, Clone)]
pub struct LiveOptions {
    /// Watch PC/SC readers and cards.
    pub pcsc: bool,
}

impl Default for LiveOptions {
    fn default() -> Self {
        LiveOptions { pcsc: true }
    }
}

enum Input {
    Pcsc(PcscEvent),
    SlotEvent(usize),
    /// Module `i` turned out unable to wait for slot events: poll it.
    NoSlotEvents(usize),
    /// Read a token's PIN flags again (after a PIN was used: they may have moved).
    PinCheck(String),
    Stop,
}

/// A loaded module and how its changes are noticed.
struct Loaded {
    handle: ModuleHandle,
    config: ModuleConfig,
    /// PC/SC card events tell when to rescan it.
    pcsc: bool,
    /// C_WaitForSlotEvent tells when to rescan it.
    slot_events: bool,
}

/// The running inventory. Dropping it stops its threads and finalizes the modules.
pub struct Live {
    shared: Arc<Shared>,
    failures: Vec<LoadFailure>,
    modules: Vec<ModuleHandle>,
    input: mpsc::Sender<Input>,
    thread: Option<thread::JoinHandle<()>>,
    pcsc: Option<PcscWatcher>,
}

impl Live {
    /// Load the modules, scan them, and start watching.
    pub fn start(config: &Config, options: LiveOptions) -> Result<Live, String> {
        let registry = Registry::new(&config.cards)?;
        let (handles, failures) = load_modules(config);
        let (input, rx) = mpsc::channel();
        let mut loaded = Vec::new();
        for (i, (handle, mc)) in handles.into_iter().enumerate() {
            let pcsc = mc.pcsc.unwrap_or_else(|| modules::pcsc_backed(&mc.path));
            // Modules that PC/SC covers need no slot-event thread.
            let slot_events = !pcsc && {
                let tx = input.clone();
                handle
                    .watch_slot_events(move |slot| {
                        let _ = tx.send(match slot {
                            Some(_) => Input::SlotEvent(i),
                            None => Input::NoSlotEvents(i),
                        });
                    })
                    .is_some()
            };
            loaded.push(Loaded {
                handle,
                config: mc,
                pcsc,
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
            poll: (!poll.is_zero()).then_some(poll),
        };
        for i in 0..actor.modules.len() {
            actor.rescan(i, false);
        }
        let modules = actor.modules.iter().map(|m| m.handle.clone()).collect();
        let thread = thread::Builder::new()
            .name("inventory".into())
            .spawn(move || actor.run(rx))
            .map_err(|e| format!("cannot start the inventory thread: {e}"))?;
        let pcsc = if options.pcsc {
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
            failures,
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
                shared: self.shared.clone(),
            },
        )
    }

    /// Modules that could not be loaded.
    pub fn failures(&self) -> &[LoadFailure] {
        &self.failures
    }

    /// Read a token's PIN flags again soon (after a PIN was used), publishing
    /// `pin-state-changed` when they moved. Cheaper than a rescan: one C_GetTokenInfo.
    pub fn check_pin(&self, token_id: &str) {
        let _ = self.input.send(Input::PinCheck(token_id.to_string()));
    }

    /// A certificate by its exact id.
    pub fn certificate(&self, id: &str) -> Option<CertEntry> {
        self.shared.snapshot().certificate(id).cloned()
    }

    /// The token's PIN state, read fresh from the token (one C_GetTokenInfo).
    pub fn pin_state(&self, token_id: &str) -> Result<PinState, super::Error> {
        Ok(self.module(token_id)?.pin_state(token_id)?)
    }

    /// Change the user PIN (see [`ModuleHandle::change_pin`]); the token's new PIN flags
    /// are published as `pin-state-changed` whatever the outcome.
    pub fn change_pin(
        &self,
        token_id: &str,
        old: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, super::Error> {
        let module = self.module(token_id)?;
        let result = module.change_pin(token_id, old, new, force);
        self.check_pin(token_id);
        Ok(result?)
    }

    /// Unlock with the admin PIN or unlock code and set a new user PIN (see
    /// [`ModuleHandle::unlock`]); publishes the new PIN flags like [`Live::change_pin`].
    pub fn unlock(
        &self,
        token_id: &str,
        so_pin: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, super::Error> {
        let module = self.module(token_id)?;
        let result = module.unlock(token_id, so_pin, new, force);
        self.check_pin(token_id);
        Ok(result?)
    }

    fn module(&self, token_id: &str) -> Result<ModuleHandle, super::Error> {
        self.module_for(token_id)
            .ok_or_else(|| super::Error::TokenNotFound(token_id.to_string()))
    }

    /// The worker of the module that serves `token_id`, for commands.
    pub fn module_for(&self, token_id: &str) -> Option<ModuleHandle> {
        let snapshot = self.shared.snapshot();
        let token = snapshot.token(token_id)?;
        self.modules
            .iter()
            .find(|m| m.path() == token.module)
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
}

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
            let msg = match next_poll {
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
                Some(Input::SlotEvent(i)) => self.rescan(i, false),
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
                    tracing::trace!(modules = polled.len(), "slot poll");
                    for &i in &polled {
                        self.rescan(i, false);
                    }
                    next_poll = self.poll.map(|p| Instant::now() + p);
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
                if s.readers.iter().any(|r| r.name == reader) {
                    return Vec::new();
                }
                s.readers.push(Reader {
                    name: reader.clone(),
                    atr: None,
                });
                vec![Event::ReaderAdded { reader }]
            }),
            PcscEvent::ReaderRemoved { reader } => {
                let atr = self.reader_atr(&reader);
                self.shared.publish(|s| {
                    let before = s.readers.len();
                    s.readers.retain(|r| r.name != reader);
                    if s.readers.len() == before {
                        Vec::new()
                    } else {
                        vec![Event::ReaderRemoved { reader }]
                    }
                });
                if let Some(atr) = atr {
                    self.card_changed(&atr);
                }
            }
            PcscEvent::CardInserted { reader, atr } => {
                let (_, card, hint) = self.modules_for_card(&atr);
                let a = atr.clone();
                self.shared.publish(|s| {
                    match s.readers.iter_mut().find(|r| r.name == reader) {
                        Some(r) => r.atr = Some(a.clone()),
                        None => s.readers.push(Reader {
                            name: reader.clone(),
                            atr: Some(a.clone()),
                        }),
                    }
                    vec![Event::CardInserted {
                        reader,
                        atr: a,
                        card,
                        hint,
                    }]
                });
                self.card_changed(&atr);
            }
            PcscEvent::CardRemoved { reader } => {
                let atr = self.reader_atr(&reader);
                self.shared.publish(|s| {
                    if let Some(r) = s.readers.iter_mut().find(|r| r.name == reader) {
                        r.atr = None;
                    }
                    vec![Event::CardRemoved { reader }]
                });
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

    fn check_pin(&mut self, token_id: &str) {
        let snapshot = self.shared.snapshot();
        let Some(token) = snapshot.token(token_id) else {
            return;
        };
        let Some(m) = self
            .modules
            .iter()
            .find(|m| m.handle.path() == token.module)
        else {
            return;
        };
        match m.handle.pin_state(token_id) {
            Ok(pin) if pin != token.pin => self.shared.publish(|s| {
                match s.tokens.iter_mut().find(|t| t.id == token_id) {
                    Some(t) => t.pin = pin,
                    None => return Vec::new(),
                }
                vec![Event::PinStateChanged {
                    token_id: token_id.to_string(),
                    pin,
                }]
            }),
            Ok(_) => {}
            Err(e) => tracing::debug!(token = token_id, error = %e, "PIN state not read"),
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
            self.rescan(i, true);
        }
    }

    /// Scan module `i` (after re-initialising it when asked and configured) and publish the
    /// difference to what the inventory knew of it.
    fn rescan(&mut self, i: usize, card_event: bool) {
        let m = &self.modules[i];
        if card_event
            && m.config.reinitialize_on_change
            && let Err(e) = m.handle.reinitialize()
        {
            tracing::warn!(module = %m.config.path.display(), error = %e, "re-initialisation failed");
        }
        let scans = match m.handle.scan() {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(module = %m.config.path.display(), error = %e, "scan failed");
                return;
            }
        };
        let path = m.handle.path().to_path_buf();
        self.shared.publish(|s| diff_module(s, &path, scans));
    }
}

/// Replace what `s` holds from the module at `path` by `scans`, returning the events that
/// describe the change. A token already listed from another module is left to that module.
fn diff_module(s: &mut Snapshot, path: &std::path::Path, scans: Vec<TokenScan>) -> Vec<Event> {
    let mut events = Vec::new();
    let old: HashMap<String, TokenInfo> = s
        .tokens
        .iter()
        .filter(|t| t.module == path)
        .map(|t| (t.id.clone(), t.clone()))
        .collect();
    let mut seen = Vec::new();
    for scan in scans {
        let id = scan.token.id.clone();
        if s.tokens.iter().any(|t| t.id == id && t.module != path) {
            continue;
        }
        seen.push(id.clone());
        let certs: Vec<CertEntry> = scan.certificates.into_iter().map(entry).collect();
        match old.get(&id) {
            None => {
                s.tokens.push(scan.token.clone());
                s.certificates.extend(certs.iter().cloned());
                events.push(Event::TokenAdded {
                    token: scan.token,
                    certificates: certs,
                });
            }
            Some(before) => {
                let old_ids: Vec<&str> = s
                    .certificates
                    .iter()
                    .filter(|c| c.token_id == id)
                    .map(|c| c.id.as_str())
                    .collect();
                let new_ids: Vec<&str> = certs.iter().map(|c| c.id.as_str()).collect();
                if old_ids != new_ids {
                    s.certificates.retain(|c| c.token_id != id);
                    s.certificates.extend(certs.iter().cloned());
                    events.push(Event::CertificatesChanged {
                        token_id: id.clone(),
                        certificates: certs,
                    });
                }
                if before.pin != scan.token.pin {
                    events.push(Event::PinStateChanged {
                        token_id: id.clone(),
                        pin: scan.token.pin,
                    });
                }
                if let Some(t) = s.tokens.iter_mut().find(|t| t.id == id) {
                    *t = scan.token;
                }
            }
        }
    }
    for id in old.keys().filter(|id| !seen.contains(id)) {
        s.tokens.retain(|t| &t.id != id);
        s.certificates.retain(|c| &c.token_id != id);
        events.push(Event::TokenRemoved {
            token_id: id.clone(),
        });
    }
    events
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    let canon = |p: &std::path::Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    a == b || canon(a) == canon(b)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::token::{CertObject, PinState};

    fn token(id: &str, module: &str) -> TokenInfo {
        TokenInfo {
            id: id.into(),
            label: id.into(),
            manufacturer: "m".into(),
            model: "x".into(),
            serial: id.into(),
            module: PathBuf::from(module),
            slot: 0,
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
                    has_private_key: false,
                })
                .collect(),
        }
    }

    fn names(events: &[Event]) -> Vec<&'static str> {
        events.iter().map(Event::name).collect()
    }

    #[test]
    fn diff_adds_changes_and_removes_per_module() {
        let mut s = Snapshot::default();
        let a = Path::new("/a.so");
        let e = diff_module(&mut s, a, vec![scan("t-1", "/a.so", &[b"one"])]);
        assert_eq!(names(&e), ["token-added"]);
        // The same scan again: nothing.
        assert!(diff_module(&mut s, a, vec![scan("t-1", "/a.so", &[b"one"])]).is_empty());
        // A certificate written to the key, and its PIN state moving.
        let mut next = scan("t-1", "/a.so", &[b"one", b"two"]);
        next.token.pin.count_low = true;
        let e = diff_module(&mut s, a, vec![next]);
        assert_eq!(names(&e), ["certificates-changed", "pin-state-changed"]);
        assert_eq!(s.certificates_of("t-1").len(), 2);
        // Another module's tokens are not touched by this module's scan.
        let e = diff_module(&mut s, Path::new("/b.so"), vec![scan("t-2", "/b.so", &[])]);
        assert_eq!(names(&e), ["token-added"]);
        let e = diff_module(&mut s, a, vec![]);
        assert_eq!(names(&e), ["token-removed"]);
        assert_eq!(s.tokens.len(), 1);
        assert!(s.certificates_of("t-1").is_empty());
        // A token already served by /b.so is not listed again through /a.so.
        assert!(diff_module(&mut s, a, vec![scan("t-2", "/a.so", &[])]).is_empty());
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
            shared: shared.clone(),
        };
        for i in 0..5 {
            shared.publish(|s| {
                s.readers.push(Reader {
                    name: format!("r{i}"),
                    atr: None,
                });
                vec![Event::ReaderAdded {
                    reader: format!("r{i}"),
                }]
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
