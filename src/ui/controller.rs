//! Follows the inventory and drives the tray, notifications and dialogs.
//!
//! One thread, one loop (this file): inventory updates (forwarded from a thread that waits
//! on the subscription), menu clicks and an hourly tick arrive on one channel; each is
//! turned into notices, dialogs to open and a new [`TrayView`]. Deciding what an update
//! means is [`Core`]'s job and pure ([`follow`]), so it is tested with real events and no
//! desktop; what a menu click does is [`menu`]'s; the language chosen there is kept by
//! [`settings`]. Nothing here waits on a token: the snapshot follows the events
//! ([`crate::model::Snapshot::apply`]), and dialogs do their token work on their own thread.

mod follow;
mod menu;
mod settings;

pub use follow::{Core, Effect};
pub use settings::{save_lang, saved_lang};

use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::config::OnInsert;
use crate::core::Update;
use crate::model::Snapshot;
use crate::platform::autostart;

use super::backend::{Backend, Services};
use super::notify::{ExpiryMemory, Notifier};
use super::process::Dialogs;
use super::tray;
use super::view::{self, Action, TrayView};

/// How often expiry notices are looked for and days-left texts are brought up to date.
const TICK: Duration = Duration::from_secs(60 * 60);

/// What the controller needs.
pub struct Parts {
    pub backend: Arc<Backend>,
    pub notifier: Notifier,
    /// `None`: no windows can be shown (menu entries that open one only log).
    pub host: Option<Dialogs>,
    pub on_insert: OnInsert,
    /// Show a tray icon (tests of the controller alone leave it off).
    pub tray: bool,
}

/// The controller thread. [`Controller::stop`] ends it (and the tray with it).
pub struct Controller {
    tx: mpsc::Sender<Input>,
    thread: Option<thread::JoinHandle<()>>,
}

#[allow(clippy::large_enum_variant)] // one short-lived value per event, as `Update` itself
enum Input {
    Inventory(Update),
    Menu(Action),
    Stop,
}

impl Controller {
    /// Subscribe to the inventory, start the tray (when asked and possible: a tray that
    /// cannot start is logged, the rest goes on) and follow events.
    pub fn spawn(parts: Parts) -> std::io::Result<Controller> {
        let (tx, rx) = mpsc::channel();
        let (snapshot, mut sub) = parts.backend.subscribe();
        // The subscription blocks its thread; it lives until the inventory stops.
        let forward = tx.clone();
        thread::Builder::new()
            .name("ui-events".into())
            .spawn(move || {
                loop {
                    let u = sub.blocking_recv();
                    let closed = matches!(u, Update::Closed);
                    if forward.send(Input::Inventory(u)).is_err() || closed {
                        return;
                    }
                }
            })?;
        let clicks = tx.clone();
        let thread = thread::Builder::new()
            .name("ui-controller".into())
            .spawn(move || run(parts, &snapshot, rx, clicks))?;
        Ok(Controller {
            tx,
            thread: Some(thread),
        })
    }

    /// End the controller thread, removing the tray icon; waits for it.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let _ = self.tx.send(Input::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.halt();
    }
}

/// The controller thread's loop.
fn run(parts: Parts, snapshot: &Snapshot, rx: mpsc::Receiver<Input>, clicks: mpsc::Sender<Input>) {
    let backend = &parts.backend;
    let memory = ExpiryMemory::open(backend.state_dir.as_deref());
    let mut core = Core::new(
        snapshot.clone(),
        parts.on_insert,
        backend.warning_days(),
        memory,
    );
    let mut autostart = autostart::is_enabled();
    let mut xtx = menu::xtx_enabled(backend.config_path());
    let view_now = |core: &Core, autostart: bool, xtx: bool| {
        core.view(&view::Options {
            now: OffsetDateTime::now_utc(),
            warning_days: backend.warning_days(),
            lang: backend.lang(),
            autostart,
            check_page: backend.check_page().is_some(),
            xtx,
        })
    };
    let mut shown = view_now(&core, autostart, xtx);
    let tray = if parts.tray {
        let on_click = move |a| {
            let _ = clicks.send(Input::Menu(a));
        };
        match tray::start_linked(shown.clone(), Box::new(on_click)) {
            Ok(t) => {
                tracing::info!("tray icon shown");
                Some(t)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no tray icon; dialogs and notifications still work");
                None
            }
        }
    } else {
        drop(clicks);
        None
    };
    let execute = |effects: Vec<Effect>| {
        for e in effects {
            match e {
                Effect::Notice(n) => parts.notifier.send(n),
                Effect::Open(r) => menu::open(&parts.host, r),
            }
        }
    };
    // Show a view when it differs from what is shown (or always, after a check item was
    // clicked: the platform has flipped its mark on its own).
    let mut show = |view: TrayView, force: bool| {
        if (force || view != shown)
            && let Some(t) = &tray
        {
            t.show(view.clone());
        }
        shown = view;
    };
    execute(core.tick(OffsetDateTime::now_utc()));
    let mut next_tick = Instant::now() + TICK;
    loop {
        let wait = next_tick.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(Input::Inventory(Update::Closed)) | Ok(Input::Stop) => break,
            Err(RecvTimeoutError::Disconnected) => break,
            Ok(Input::Inventory(u)) => {
                // Open windows show the change too.
                if let Some(h) = &parts.host {
                    h.refresh();
                }
                execute(core.apply(u, OffsetDateTime::now_utc()));
                show(view_now(&core, autostart, xtx), false);
            }
            Ok(Input::Menu(action)) => {
                let force = matches!(action, Action::Autostart | Action::Xtx | Action::Lang(_));
                if action == Action::Autostart {
                    autostart = menu::toggle_autostart();
                }
                if action == Action::Xtx {
                    xtx = menu::toggle_xtx(backend.config_path());
                }
                menu::act(&parts, action);
                show(view_now(&core, autostart, xtx), force);
            }
            Err(RecvTimeoutError::Timeout) => {
                next_tick = Instant::now() + TICK;
                // Changed behind our back (`certray autostart off`)?
                autostart = autostart::is_enabled();
                execute(core.tick(OffsetDateTime::now_utc()));
                show(view_now(&core, autostart, xtx), false);
            }
        }
    }
    drop(tray);
}
