//! The PC/SC watcher: one thread that reports readers and cards as they come and go.
//!
//! The thread blocks in `SCardGetStatusChange` with an infinite timeout over
//! `\\?PnP?\Notification` plus every reader, so it uses no CPU while nothing happens. It
//! reports only real changes of the (reader, ATR) set, and it survives the PC/SC service
//! going away: while pcscd (or the Windows Smart Card service) is unreachable it retries with
//! a capped exponential back-off, and once the service is back it compares what it finds with
//! what it last reported, so a card that stayed in its reader is not reported again and one
//! removed meanwhile is reported removed.
//!
//! Event order for one change of state: removals before additions, a reader's card before
//! the reader (`CardRemoved` then `ReaderRemoved`; `ReaderAdded` then `CardInserted`), and a
//! card swapped for another (a different ATR, or pcscd's insertion counter moved) as
//! `CardRemoved` then `CardInserted`.
//!
//! *Architecture invariant*: the sink is called on the watcher thread only, in order; the
//! thread never holds a lock while it waits on PC/SC or calls the sink.

use std::ffi::{CStr, CString};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use pcsc::{Context, Error as PcscError, PNP_NOTIFICATION, Scope, State};

/// The name of the watcher thread (as `/proc/self/task/*/comm` shows it).
pub const THREAD_NAME: &str = "pcsc-watch";

/// First delay before re-establishing a context after a failure.
const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest delay between two attempts while the service is unreachable.
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// Reader-list errors (`UnknownReader`, …) tolerated in a row before the context is
/// considered broken and re-established after a back-off.
const MAX_RELIST_ERRORS: u32 = 3;
/// How often `Drop` repeats `SCardCancel` while waiting for the thread (a cancel sent just
/// before the thread enters its wait is lost).
const CANCEL_RETRY: Duration = Duration::from_millis(20);

/// A change of readers, cards or service, as reported by [`PcscWatcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PcscEvent {
    ReaderAdded {
        reader: String,
    },
    ReaderRemoved {
        reader: String,
    },
    CardInserted {
        reader: String,
        atr: Vec<u8>,
    },
    CardRemoved {
        reader: String,
    },
    /// pcscd is not reachable (not running, restarting); the watcher keeps trying.
    ServiceDown {
        reason: String,
    },
    /// pcscd is reachable again (or for the first time after ServiceDown).
    ServiceUp,
}

/// A reader and the ATR of the card in it, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderState {
    pub name: String,
    pub atr: Option<Vec<u8>>,
}

/// The watcher thread. Dropping it stops the thread (through `SCardCancel`) and joins it.
pub struct PcscWatcher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl PcscWatcher {
    /// Start watching; `sink` is called on the watcher thread for every event, in order.
    /// The first events describe the state found at start (ReaderAdded for each reader, then
    /// CardInserted for each card present), then changes as they happen.
    ///
    /// Succeeds even when the PC/SC service is not running: the first event is then
    /// [`PcscEvent::ServiceDown`], and [`PcscEvent::ServiceUp`] follows once it starts.
    pub fn spawn(sink: impl FnMut(PcscEvent) + Send + 'static) -> std::io::Result<PcscWatcher> {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
            wake: Condvar::new(),
        });
        let for_thread = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || {
                let _done = DoneGuard(&for_thread);
                Watch::new(&for_thread, sink).run();
            })?;
        Ok(PcscWatcher {
            shared,
            thread: Some(thread),
        })
    }

    /// The readers and cards as last seen, in the order the service lists the readers.
    /// While the service is down this is the state seen before it went away.
    pub fn snapshot(&self) -> Vec<ReaderState> {
        self.shared.lock().snapshot.clone()
    }
}

impl Drop for PcscWatcher {
    fn drop(&mut self) {
        let mut inner = self.shared.lock();
        inner.stop = true;
        self.shared.wake.notify_all();
        while !inner.done {
            if let Some(context) = inner.context.clone() {
                drop(inner);
                // Nothing to cancel when the thread is between two waits: it sees `stop`
                // before its next wait, or the next round cancels that wait.
                let _ = context.cancel();
                inner = self.shared.lock();
                if inner.done {
                    break;
                }
            }
            inner = self
                .shared
                .wake
                .wait_timeout(inner, CANCEL_RETRY)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        drop(inner);
        if let Some(thread) = self.thread.take() {
            // A panic in the sink already ended the thread; nothing left to report.
            let _ = thread.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State shared between the watcher thread and its handle
// ---------------------------------------------------------------------------------------------

struct Shared {
    inner: Mutex<Inner>,
    /// Signalled when `stop` or `done` changes.
    wake: Condvar,
}

#[derive(Default)]
struct Inner {
    stop: bool,
    done: bool,
    /// The context the thread is waiting on, for `Drop` to cancel.
    context: Option<Context>,
    snapshot: Vec<ReaderState>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn stopping(&self) -> bool {
        self.lock().stop
    }

    /// Sleep for `delay` unless asked to stop first; false when stopping.
    fn sleep(&self, delay: Duration) -> bool {
        let guard = self.lock();
        let (guard, _) = self
            .wake
            .wait_timeout_while(guard, delay, |inner| !inner.stop)
            .unwrap_or_else(PoisonError::into_inner);
        !guard.stop
    }

    /// Publish the context `Drop` must cancel; false (and nothing published) when stopping.
    fn set_context(&self, context: Option<Context>) -> bool {
        let mut inner = self.lock();
        if inner.stop && context.is_some() {
            return false;
        }
        inner.context = context;
        true
    }
}

/// Marks the thread as finished, also when the sink panics.
struct DoneGuard<'a>(&'a Shared);

impl Drop for DoneGuard<'_> {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.done = true;
        inner.context = None;
        self.0.wake.notify_all();
    }
}

// ---------------------------------------------------------------------------------------------
// The watcher thread
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    /// Not contacted yet.
    Unknown,
    Up,
    Down,
}

/// Why a context stopped being used.
enum End {
    Stopped,
    /// The service went away (not running, restarting): reported as ServiceDown.
    Lost(PcscError),
    /// An unexpected error: the context is re-established after a back-off, quietly.
    Broken(PcscError),
}

struct Watch<'a, F> {
    shared: &'a Shared,
    sink: F,
    /// What was last reported, in the service's reader order.
    known: Vec<Seen>,
    service: Service,
    backoff: Backoff,
    /// Unexpected errors since the last successful wait.
    broken_streak: u32,
}

impl<'a, F: FnMut(PcscEvent)> Watch<'a, F> {
    fn new(shared: &'a Shared, sink: F) -> Self {
        Watch {
            shared,
            sink,
            known: Vec::new(),
            service: Service::Unknown,
            backoff: Backoff::new(BACKOFF_START, BACKOFF_CAP),
            broken_streak: 0,
        }
    }

    fn run(&mut self) {
        loop {
            if self.shared.stopping() {
                return;
            }
            match Context::establish(Scope::User) {
                Ok(context) => {
                    if !self.shared.set_context(Some(context.clone())) {
                        return;
                    }
                    let since = Instant::now();
                    let end = self.watch(&context);
                    self.shared.set_context(None);
                    drop(context);
                    match end {
                        End::Stopped => return,
                        End::Lost(e) => self.service_down(e),
                        End::Broken(e) => self.broken(e),
                    }
                    // A context that lived long was healthy: start the back-off afresh.
                    if since.elapsed() >= BACKOFF_CAP {
                        self.backoff.reset();
                    }
                }
                // Whatever the error (NoService, or SecurityViolation when polkit refuses the
                // client), the service cannot be used.
                Err(e) => self.service_down(e),
            }
            // Counters belong to one pcscd instance; the next one starts its own.
            forget_counters(&mut self.known);
            if !self.shared.sleep(self.backoff.next_delay()) {
                return;
            }
        }
    }

    /// Watch with one context until it fails or the watcher stops.
    fn watch(&mut self, context: &Context) -> End {
        let mut states = vec![pcsc::ReaderState::new(PNP_NOTIFICATION(), State::UNAWARE)];
        let mut relist = true;
        let mut relist_errors = 0u32;
        loop {
            if relist {
                let names = match context.list_readers_owned() {
                    Ok(names) => names,
                    Err(e) => return end_for(e),
                };
                sync_reader_list(&mut states, &names);
                // Report what the list alone shows (readers gone; no reader at all) now: the
                // wait below may block until the next change. New readers are reported after
                // the wait, which returns at once for them (they are still UNAWARE).
                self.service_up();
                let seen = observe(&states, &self.known);
                self.publish(seen);
            }
            for rs in &mut states {
                rs.sync_current_state();
            }
            if self.shared.stopping() {
                return End::Stopped;
            }
            match context.get_status_change(None, &mut states) {
                Ok(()) => {
                    relist_errors = 0;
                    self.recovered();
                }
                Err(PcscError::Cancelled) if self.shared.stopping() => return End::Stopped,
                Err(PcscError::Cancelled | PcscError::Timeout) => {
                    relist = false;
                    continue;
                }
                // A reader went away between listing and waiting; NoReadersAvailable is not a
                // service failure either: list again (possibly nothing: wait on PnP only).
                Err(
                    e @ (PcscError::UnknownReader
                    | PcscError::ReaderUnavailable
                    | PcscError::NoReadersAvailable),
                ) => {
                    relist_errors += 1;
                    if relist_errors > MAX_RELIST_ERRORS {
                        return End::Broken(e);
                    }
                    tracing::debug!(code = ?e, "PC/SC reader list changed while waiting");
                    relist = true;
                    continue;
                }
                Err(e) => return end_for(e),
            }
            if self.shared.stopping() {
                return End::Stopped;
            }
            relist = states.iter().any(|rs| {
                if rs.name() == PNP_NOTIFICATION() {
                    rs.event_state().contains(State::CHANGED)
                } else {
                    is_gone(rs.event_state())
                }
            });
            let seen = observe(&states, &self.known);
            self.publish(seen);
        }
    }

    fn service_down(&mut self, e: PcscError) {
        if self.service == Service::Down {
            tracing::debug!(error = %e, code = ?e, "PC/SC service still unavailable");
            return;
        }
        tracing::warn!(error = %e, code = ?e, "PC/SC service unavailable; retrying");
        self.service = Service::Down;
        (self.sink)(PcscEvent::ServiceDown {
            reason: format!("{e} ({e:?})"),
        });
    }

    fn service_up(&mut self) {
        match self.service {
            Service::Up => {}
            Service::Unknown => self.service = Service::Up,
            Service::Down => {
                tracing::info!("PC/SC service available again");
                self.service = Service::Up;
                (self.sink)(PcscEvent::ServiceUp);
            }
        }
    }

    /// An unexpected error. A single one is common while pcscd goes away (pcsc-lite 1.9.9
    /// sometimes answers the waiting client `SecurityViolation` instead of `CommError` when
    /// pcscd is stopped or killed; `NoService` follows), so it is only a warning when it
    /// happens again before a successful wait; then once until the next success.
    fn broken(&mut self, e: PcscError) {
        self.broken_streak += 1;
        if self.broken_streak == 2 {
            tracing::warn!(error = %e, code = ?e, "PC/SC error; re-establishing the context");
        } else {
            tracing::debug!(error = %e, code = ?e, "PC/SC error; re-establishing the context");
        }
    }

    fn recovered(&mut self) {
        if self.broken_streak >= 2 {
            tracing::info!("PC/SC watcher recovered");
        }
        self.broken_streak = 0;
    }

    /// Make `seen` the known state: update the snapshot, then report the differences.
    fn publish(&mut self, seen: Vec<Seen>) {
        let events = diff(&self.known, &seen);
        self.shared.lock().snapshot = seen
            .iter()
            .map(|s| ReaderState {
                name: s.name.clone(),
                atr: s.atr.clone(),
            })
            .collect();
        self.known = seen;
        for event in events {
            (self.sink)(event);
        }
    }
}

/// The errors that mean the service itself is gone (not running, restarting, shutting down).
fn is_service_error(e: PcscError) -> bool {
    matches!(
        e,
        PcscError::NoService
            | PcscError::ServiceStopped
            | PcscError::CommError
            | PcscError::CommDataLost
            | PcscError::InvalidHandle
            | PcscError::Shutdown
            | PcscError::SystemCancelled
    )
}

fn end_for(e: PcscError) -> End {
    if is_service_error(e) {
        End::Lost(e)
    } else {
        End::Broken(e)
    }
}

/// A reader entry whose reader has gone away.
fn is_gone(state: State) -> bool {
    state.intersects(State::UNKNOWN | State::IGNORE)
}

/// Make `states` hold the PnP entry plus exactly the readers in `names`, keeping the entries
/// (and their last state) of readers still present and adding new ones as UNAWARE.
fn sync_reader_list(states: &mut Vec<pcsc::ReaderState>, names: &[CString]) {
    states.retain(|rs| {
        rs.name() == PNP_NOTIFICATION()
            || (!is_gone(rs.event_state()) && names.iter().any(|n| n.as_c_str() == rs.name()))
    });
    for name in names {
        if !states.iter().any(|rs| rs.name() == name.as_c_str()) {
            states.push(pcsc::ReaderState::new(name.clone(), State::UNAWARE));
        }
    }
}

/// The readers and cards `states` shows after a wait, in list order.
fn observe(states: &[pcsc::ReaderState], known: &[Seen]) -> Vec<Seen> {
    states
        .iter()
        .filter(|rs| rs.name() != PNP_NOTIFICATION())
        .filter_map(|rs| {
            let name = reader_name(rs.name());
            let previous = known.iter().find(|s| s.name == name);
            seen_from(name, rs.event_state(), rs.event_count(), rs.atr(), previous)
        })
        .collect()
}

fn reader_name(name: &CStr) -> String {
    name.to_string_lossy().into_owned()
}

// ---------------------------------------------------------------------------------------------
// The pure part: what a reader entry says, and the events between two states
// ---------------------------------------------------------------------------------------------

/// One reader as seen in one wait.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    name: String,
    /// The card's ATR (possibly empty for a mute card), `None` when the reader is empty.
    atr: Option<Vec<u8>>,
    /// The service's insertion/removal counter for this reader (upper 16 bits of the event
    /// state): a change with the same ATR means the card was swapped. `None` when it cannot
    /// be compared (another pcscd instance, or unknown).
    counter: Option<u32>,
}

/// What a reader entry says after a wait, given what was known before:
/// `None` when the reader is gone (or not yet queried and not known before).
fn seen_from(
    name: String,
    state: State,
    counter: u32,
    atr: &[u8],
    previous: Option<&Seen>,
) -> Option<Seen> {
    if is_gone(state) {
        return None;
    }
    if state.is_empty() {
        // Not queried yet (still UNAWARE): keep what was known until the next wait says.
        return previous.cloned();
    }
    if state.contains(State::UNAVAILABLE) {
        // The reader exists but its card state cannot be read right now: keep the card.
        return Some(Seen {
            name,
            atr: previous.and_then(|p| p.atr.clone()),
            counter: None,
        });
    }
    let atr = state.contains(State::PRESENT).then(|| atr.to_vec());
    Some(Seen {
        name,
        atr,
        counter: Some(counter),
    })
}

/// The events that turn `old` into `new`: removals first (a card before its reader), then
/// additions (a reader before its card).
fn diff(old: &[Seen], new: &[Seen]) -> Vec<PcscEvent> {
    let find = |list: &'_ [Seen], name: &str| list.iter().position(|s| s.name == name);
    let mut events = Vec::new();
    for o in old {
        match find(new, &o.name).map(|i| &new[i]) {
            None => {
                if o.atr.is_some() {
                    events.push(PcscEvent::CardRemoved {
                        reader: o.name.clone(),
                    });
                }
                events.push(PcscEvent::ReaderRemoved {
                    reader: o.name.clone(),
                });
            }
            Some(n) => {
                if o.atr.is_some() && card_changed(o, n) {
                    events.push(PcscEvent::CardRemoved {
                        reader: o.name.clone(),
                    });
                }
            }
        }
    }
    for n in new {
        if find(old, &n.name).is_none() {
            events.push(PcscEvent::ReaderAdded {
                reader: n.name.clone(),
            });
        }
    }
    for n in new {
        let Some(atr) = &n.atr else { continue };
        let inserted = match find(old, &n.name).map(|i| &old[i]) {
            None => true,
            Some(o) => o.atr.is_none() || card_changed(o, n),
        };
        if inserted {
            events.push(PcscEvent::CardInserted {
                reader: n.name.clone(),
                atr: atr.clone(),
            });
        }
    }
    events
}

/// Whether the card in a reader is not the one seen before (given both saw a card or one
/// of them did): another ATR, no card any more, or the insertion counter moved.
fn card_changed(old: &Seen, new: &Seen) -> bool {
    match (&old.atr, &new.atr) {
        (Some(a), Some(b)) => {
            a != b || matches!((old.counter, new.counter), (Some(x), Some(y)) if x != y)
        }
        (None, None) => false,
        _ => true,
    }
}

fn forget_counters(known: &mut [Seen]) {
    for s in known {
        s.counter = None;
    }
}

/// Capped exponential back-off.
#[derive(Debug)]
struct Backoff {
    start: Duration,
    cap: Duration,
    next: Duration,
}

impl Backoff {
    fn new(start: Duration, cap: Duration) -> Self {
        Backoff {
            start,
            cap,
            next: start,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(self.cap);
        delay
    }

    fn reset(&mut self) {
        self.next = self.start;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ATR_A: &[u8] = &[0x3B, 0x95, 0x13, 0x81];
    const ATR_B: &[u8] = &[0x3B, 0x8F, 0x80, 0x01];

    fn r(name: &str, atr: Option<&[u8]>, counter: Option<u32>) -> Seen {
        Seen {
            name: name.into(),
            atr: atr.map(<[u8]>::to_vec),
            counter,
        }
    }

    fn added(reader: &str) -> PcscEvent {
        PcscEvent::ReaderAdded {
            reader: reader.into(),
        }
    }
    fn removed(reader: &str) -> PcscEvent {
        PcscEvent::ReaderRemoved {
            reader: reader.into(),
        }
    }
    fn inserted(reader: &str, atr: &[u8]) -> PcscEvent {
        PcscEvent::CardInserted {
            reader: reader.into(),
            atr: atr.to_vec(),
        }
    }
    fn card_out(reader: &str) -> PcscEvent {
        PcscEvent::CardRemoved {
            reader: reader.into(),
        }
    }

    #[test]
    fn start_reports_readers_then_cards() {
        let new = [
            r("R0", Some(ATR_A), Some(1)),
            r("R1", None, Some(0)),
            r("R2", Some(ATR_B), Some(3)),
        ];
        assert_eq!(
            diff(&[], &new),
            [
                added("R0"),
                added("R1"),
                added("R2"),
                inserted("R0", ATR_A),
                inserted("R2", ATR_B),
            ]
        );
    }

    #[test]
    fn nothing_changed_nothing_reported() {
        let state = [r("R0", Some(ATR_A), Some(1)), r("R1", None, Some(0))];
        assert_eq!(diff(&state, &state), []);
        assert_eq!(diff(&[], &[]), []);
    }

    #[test]
    fn card_in_and_out() {
        let empty = [r("R0", None, Some(0))];
        let full = [r("R0", Some(ATR_A), Some(1))];
        assert_eq!(diff(&empty, &full), [inserted("R0", ATR_A)]);
        assert_eq!(diff(&full, &empty), [card_out("R0")]);
    }

    #[test]
    fn reader_removed_with_its_card() {
        let old = [r("R0", Some(ATR_A), Some(1)), r("R1", None, Some(0))];
        let new = [r("R1", None, Some(0))];
        assert_eq!(diff(&old, &new), [card_out("R0"), removed("R0")]);
        assert_eq!(diff(&new, &[]), [removed("R1")]);
    }

    #[test]
    fn removals_come_before_additions() {
        // A USB token unplugged and another plugged in between two waits.
        let old = [r("Key A", Some(ATR_A), Some(1))];
        let new = [r("Key B", Some(ATR_B), Some(1))];
        assert_eq!(
            diff(&old, &new),
            [
                card_out("Key A"),
                removed("Key A"),
                added("Key B"),
                inserted("Key B", ATR_B)
            ]
        );
    }

    #[test]
    fn card_swapped_for_another() {
        let old = [r("R0", Some(ATR_A), Some(1))];
        // Another ATR.
        let new = [r("R0", Some(ATR_B), Some(3))];
        assert_eq!(diff(&old, &new), [card_out("R0"), inserted("R0", ATR_B)]);
        // Same ATR, but pcscd counted a removal and an insertion.
        let same_model = [r("R0", Some(ATR_A), Some(3))];
        assert_eq!(
            diff(&old, &same_model),
            [card_out("R0"), inserted("R0", ATR_A)]
        );
    }

    #[test]
    fn after_a_service_restart_only_differences_are_reported() {
        // Before the outage: two readers, a card in each.
        let mut known = vec![
            r("R0", Some(ATR_A), Some(5)),
            r("R1", Some(ATR_B), Some(7)),
            r("R2", None, Some(2)),
        ];
        forget_counters(&mut known);
        // After: the new pcscd counts from 1 again; R0's card stayed, R1's was taken out,
        // R2 was unplugged and R3 plugged in.
        let new = [
            r("R0", Some(ATR_A), Some(1)),
            r("R1", None, Some(0)),
            r("R3", None, Some(0)),
        ];
        assert_eq!(
            diff(&known, &new),
            [card_out("R1"), removed("R2"), added("R3")]
        );
    }

    #[test]
    fn seen_from_reader_states() {
        let prev = r("R0", Some(ATR_A), Some(1));
        let present = State::CHANGED | State::PRESENT | State::INUSE;
        assert_eq!(
            seen_from("R0".into(), present, 4, ATR_B, Some(&prev)),
            Some(r("R0", Some(ATR_B), Some(4)))
        );
        assert_eq!(
            seen_from("R0".into(), State::EMPTY, 5, &[], Some(&prev)),
            Some(r("R0", None, Some(5)))
        );
        // A mute card is still a card.
        assert_eq!(
            seen_from("R0".into(), State::PRESENT | State::MUTE, 2, &[], None),
            Some(r("R0", Some(&[]), Some(2)))
        );
        // Gone readers.
        assert_eq!(
            seen_from(
                "R0".into(),
                State::CHANGED | State::UNKNOWN,
                0,
                &[],
                Some(&prev)
            ),
            None
        );
        assert_eq!(
            seen_from("R0".into(), State::IGNORE, 0, &[], Some(&prev)),
            None
        );
        // Not queried yet: what was known stands (or nothing, for a new reader).
        assert_eq!(
            seen_from("R0".into(), State::UNAWARE, 0, &[], Some(&prev)),
            Some(prev.clone())
        );
        assert_eq!(seen_from("R9".into(), State::UNAWARE, 0, &[], None), None);
        // Unavailable: the reader stays, with the card last seen, counter not comparable.
        assert_eq!(
            seen_from("R0".into(), State::UNAVAILABLE, 0, &[], Some(&prev)),
            Some(r("R0", Some(ATR_A), None))
        );
    }

    #[test]
    fn unavailable_then_back_reports_nothing() {
        let before = [r("R0", Some(ATR_A), Some(1))];
        let during = [r("R0", Some(ATR_A), None)];
        let after = [r("R0", Some(ATR_A), Some(1))];
        assert_eq!(diff(&before, &during), []);
        assert_eq!(diff(&during, &after), []);
    }

    #[test]
    fn service_errors_are_classified() {
        for e in [
            PcscError::NoService,
            PcscError::ServiceStopped,
            PcscError::CommError,
            PcscError::InvalidHandle,
        ] {
            assert!(is_service_error(e), "{e:?}");
        }
        for e in [
            PcscError::NoReadersAvailable,
            PcscError::UnknownReader,
            PcscError::ReaderUnavailable,
            PcscError::Cancelled,
        ] {
            assert!(!is_service_error(e), "{e:?}");
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let mut b = Backoff::new(BACKOFF_START, BACKOFF_CAP);
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        b.reset();
        assert_eq!(b.next_delay(), BACKOFF_START);
    }
}
