//! Follows the inventory and drives the tray, notifications and dialogs.
//!
//! One thread, one loop: inventory updates (forwarded from a thread that waits on the
//! subscription), menu clicks and an hourly tick arrive on one channel; each is turned into
//! notices, dialogs to open and a new [`TrayView`]. Deciding what an update means is
//! [`Core`]'s job and pure, so it is tested with real events and no desktop. Nothing here
//! waits on a token: the snapshot is mirrored from the events, and dialogs do their token
//! work on their own thread.

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::config::OnInsert;
use crate::i18n::Lang;
use crate::inventory::{CertEntry, Event, Snapshot, Update};
use crate::platform::autostart;

use super::backend::{Backend, Services};
use super::dialogs::{DialogRequest, PickThen};
use super::notify::{ExpiryMemory, Notice, Notifier};
use super::process::Dialogs;
use super::tray;
use super::view::{self, Action, TrayView};

/// How often expiry notices are looked for and days-left texts are brought up to date.
const TICK: Duration = Duration::from_secs(60 * 60);

/// The UI's own settings file in the state dir.
const SETTINGS_FILE: &str = "ui.json";

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

/// What an update calls for, besides a new tray view.
#[derive(Debug)]
pub enum Effect {
    Notice(Notice),
    Open(DialogRequest),
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
    let view_now = |core: &Core, autostart: bool| {
        core.view(&view::Options {
            now: OffsetDateTime::now_utc(),
            warning_days: backend.warning_days(),
            lang: backend.lang(),
            autostart,
            check_page: backend.check_page().is_some(),
        })
    };
    let mut shown = view_now(&core, autostart);
    let tray = if parts.tray {
        match tray::start(shown.clone(), move |a| {
            let _ = clicks.send(Input::Menu(a));
        }) {
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
                Effect::Open(r) => open(&parts.host, r),
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
                show(view_now(&core, autostart), false);
            }
            Ok(Input::Menu(action)) => {
                let force = matches!(action, Action::Autostart | Action::Lang(_));
                if action == Action::Autostart {
                    autostart = toggle_autostart();
                }
                act(&parts, action);
                show(view_now(&core, autostart), force);
            }
            Err(RecvTimeoutError::Timeout) => {
                next_tick = Instant::now() + TICK;
                // Changed behind our back (`certray autostart off`)?
                autostart = autostart::is_enabled();
                execute(core.tick(OffsetDateTime::now_utc()));
                show(view_now(&core, autostart), false);
            }
        }
    }
    drop(tray);
}

/// Flip start-at-login; the state it is in afterwards.
fn toggle_autostart() -> bool {
    let want = !autostart::is_enabled();
    match autostart::set(want) {
        Ok(path) => tracing::info!(path = %path.display(), on = want, "autostart changed"),
        Err(e) => tracing::warn!(error = %e, "cannot change autostart"),
    }
    autostart::is_enabled()
}

/// What a menu click does (besides re-rendering the tray).
fn act(parts: &Parts, action: Action) {
    let backend = &parts.backend;
    match action {
        Action::Card { cert_id } => open(&parts.host, DialogRequest::Card { cert_id }),
        Action::ChangePin => open(
            &parts.host,
            DialogRequest::PickToken {
                then: PickThen::ChangePin,
            },
        ),
        Action::Unlock => open(
            &parts.host,
            DialogRequest::PickToken {
                then: PickThen::Unlock,
            },
        ),
        Action::Doctor => open(&parts.host, DialogRequest::Doctor),
        Action::Origins => open(&parts.host, DialogRequest::Origins),
        Action::CheckPage => match backend.check_page() {
            Some(url) => {
                if let Err(e) = super::open(url) {
                    tracing::warn!(error = %e, "cannot open the check page in a browser");
                }
            }
            None => tracing::info!("the bridge is not running: no check page"),
        },
        Action::Lang(lang) => {
            backend.set_lang(lang);
            if let Some(h) = &parts.host {
                h.refresh();
            }
            if let Err(e) = save_lang(backend.state_dir.as_deref(), lang) {
                tracing::warn!(error = %e, "cannot remember the language");
            }
        }
        // Done by the loop, which keeps the check mark's state.
        Action::Autostart => {}
        Action::Quit => {
            tracing::info!("quit from the tray");
            backend.request_quit();
        }
    }
}

fn open(host: &Option<Dialogs>, request: DialogRequest) {
    match host {
        Some(h) if h.open(request) => {}
        _ => tracing::warn!("cannot show windows: the dialog was not opened"),
    }
}

/// The language chosen in the tray, from `<dir>/ui.json`.
pub fn saved_lang(dir: Option<&Path>) -> Option<Lang> {
    let text = std::fs::read(dir?.join(SETTINGS_FILE)).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&text).ok()?;
    match v.get("lang")?.as_str()? {
        "zh-CN" => Some(Lang::ZhCn),
        "en" => Some(Lang::En),
        _ => None,
    }
}

/// Remember the language in `<dir>/ui.json` (other keys there are kept); atomically.
pub fn save_lang(dir: Option<&Path>, lang: Lang) -> std::io::Result<()> {
    let Some(dir) = dir else { return Ok(()) };
    let path = dir.join(SETTINGS_FILE);
    let mut v = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    v["lang"] = match lang {
        Lang::ZhCn => "zh-CN",
        Lang::En => "en",
    }
    .into();
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(&v).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, &path)
}

/// What the controller knows, and what each update means (pure but for the expiry
/// memory's file).
pub struct Core {
    /// Mirrors the inventory's snapshot, kept by applying the events.
    snapshot: Snapshot,
    on_insert: OnInsert,
    warning_days: u32,
    memory: ExpiryMemory,
}

impl Core {
    pub fn new(
        snapshot: Snapshot,
        on_insert: OnInsert,
        warning_days: u32,
        memory: ExpiryMemory,
    ) -> Core {
        Core {
            snapshot,
            on_insert,
            warning_days,
            memory,
        }
    }

    pub fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }

    pub fn view(&self, o: &view::Options) -> TrayView {
        view::tray(&self.snapshot, o)
    }

    /// The expiry notices due now for every certificate in.
    pub fn tick(&mut self, now: OffsetDateTime) -> Vec<Effect> {
        let certs = self.snapshot.certificates.clone();
        self.expiry(&certs, now)
    }

    fn expiry(&mut self, certs: &[CertEntry], now: OffsetDateTime) -> Vec<Effect> {
        self.memory
            .due(certs, now, self.warning_days)
            .into_iter()
            .map(Effect::Notice)
            .collect()
    }

    /// Take in one update.
    pub fn apply(&mut self, update: Update, now: OffsetDateTime) -> Vec<Effect> {
        match update {
            Update::Event(e) => self.event(e, now),
            Update::Lagged { missed, snapshot } => {
                tracing::info!(missed, "the UI fell behind the inventory; resyncing");
                self.snapshot = Snapshot::clone(&snapshot);
                self.tick(now)
            }
            Update::Closed => Vec::new(),
        }
    }

    fn event(&mut self, e: Event, now: OffsetDateTime) -> Vec<Effect> {
        let mut out = Vec::new();
        let s = &mut self.snapshot;
        match e {
            Event::TokenAdded {
                token,
                certificates,
            } => {
                s.tokens.retain(|t| t.id != token.id);
                s.certificates.retain(|c| c.token_id != token.id);
                let first = first_certificate(&certificates, now, self.warning_days).cloned();
                if self.on_insert != OnInsert::None
                    && let Some(Ok(c)) = first.as_ref().map(|e| &e.parsed)
                {
                    out.push(Effect::Notice(Notice::Inserted {
                        owner: c.owner(),
                        days_left: c.days_left(now),
                    }));
                }
                if token.pin.locked {
                    out.push(Effect::Notice(Notice::PinLocked {
                        label: token.label.clone(),
                    }));
                }
                if self.on_insert == OnInsert::Popup
                    && let Some(c) = first
                {
                    out.push(Effect::Open(DialogRequest::Card { cert_id: c.id }));
                }
                s.tokens.push(token);
                s.certificates.extend(certificates.iter().cloned());
                out.extend(self.expiry(&certificates, now));
            }
            Event::TokenRemoved { token_id } => {
                if let Some(t) = s.token(&token_id)
                    && self.on_insert != OnInsert::None
                {
                    out.push(Effect::Notice(Notice::Removed {
                        label: t.label.clone(),
                    }));
                }
                s.tokens.retain(|t| t.id != token_id);
                s.certificates.retain(|c| c.token_id != token_id);
            }
            Event::CertificatesChanged {
                token_id,
                certificates,
            } => {
                s.certificates.retain(|c| c.token_id != token_id);
                s.certificates.extend(certificates.iter().cloned());
                out.extend(self.expiry(&certificates, now));
            }
            Event::PinStateChanged { token_id, pin } => {
                if let Some(t) = s.tokens.iter_mut().find(|t| t.id == token_id) {
                    let was = t.pin;
                    let label = t.label.clone();
                    if pin.locked && !was.locked {
                        out.push(Effect::Notice(Notice::PinLocked { label }));
                    } else if !pin.locked
                        && (pin.count_low || pin.final_try)
                        && !(was.count_low || was.final_try || was.locked)
                    {
                        out.push(Effect::Notice(Notice::PinCountLow { label }));
                    }
                    t.pin = pin;
                }
            }
            Event::ReaderAdded { .. }
            | Event::ReaderRemoved { .. }
            | Event::CardInserted { .. }
            | Event::CardRemoved { .. } => {}
        }
        out
    }
}

/// The certificate that stands for a key: a signing certificate with its private key in
/// force now, else the closest to that; the token's order breaks ties.
fn first_certificate(
    certs: &[CertEntry],
    now: OffsetDateTime,
    warning_days: u32,
) -> Option<&CertEntry> {
    use crate::cert::Status;
    certs.iter().min_by_key(|e| match &e.parsed {
        Ok(c) => (
            false,
            !e.has_private_key,
            !c.can_sign(),
            !matches!(
                c.status(now, warning_days),
                Status::Valid | Status::Expiring
            ),
        ),
        Err(_) => (true, true, true, true),
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ui::icons::IconState;
    use crate::ui::view::tests::{NOW, cert, snapshot, token};

    const WD: u32 = 30;

    fn core(s: Snapshot, on_insert: OnInsert) -> Core {
        Core::new(s, on_insert, WD, ExpiryMemory::open(None))
    }

    fn notices(effects: &[Effect]) -> Vec<Notice> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Notice(n) => Some(n.clone()),
                _ => None,
            })
            .collect()
    }

    fn opened(effects: &[Effect]) -> Vec<String> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Open(DialogRequest::Card { cert_id }) => Some(cert_id.clone()),
                Effect::Open(other) => panic!("unexpected dialog {other:?}"),
                _ => None,
            })
            .collect()
    }

    fn added(id: &str, label: &str, certs: Vec<CertEntry>) -> Update {
        Update::Event(Event::TokenAdded {
            token: token(id, label, "ePass3003"),
            certificates: certs,
        })
    }

    fn state(c: &Core) -> IconState {
        view::state(
            c.snapshot(),
            &view::Options {
                now: NOW,
                warning_days: WD,
                lang: Lang::ZhCn,
                autostart: false,
                check_page: false,
            },
        )
    }

    #[test]
    fn insertion_notifies_and_pops_up_the_signing_certificate() {
        let mut c = core(Snapshot::default(), OnInsert::Popup);
        let enc = cert("t-1", "云杉", 200, &["keyEncipherment"], true);
        let ca = cert("t-1", "某某 CA", 900, &["keyCertSign"], false);
        let sign = cert("t-1", "云杉", 200, &["digitalSignature"], true);
        let fx = c.apply(added("t-1", "云杉密钥", vec![ca, enc, sign.clone()]), NOW);
        assert_eq!(
            notices(&fx),
            [Notice::Inserted {
                owner: "云杉".into(),
                days_left: 200
            }]
        );
        assert_eq!(opened(&fx), [sign.id]);
        assert_eq!(c.snapshot().tokens.len(), 1);
        assert_eq!(c.snapshot().certificates.len(), 3);
        assert_eq!(state(&c), IconState::Ok);
    }

    #[test]
    fn on_insert_notify_and_none() {
        let certs = vec![cert("t-1", "云杉", 200, &[], true)];
        let mut c = core(Snapshot::default(), OnInsert::Notify);
        let fx = c.apply(added("t-1", "云杉密钥", certs.clone()), NOW);
        assert_eq!(notices(&fx).len(), 1);
        assert!(opened(&fx).is_empty());
        let fx = c.apply(
            Update::Event(Event::TokenRemoved {
                token_id: "t-1".into(),
            }),
            NOW,
        );
        assert_eq!(
            notices(&fx),
            [Notice::Removed {
                label: "云杉密钥".into()
            }]
        );
        assert!(c.snapshot().tokens.is_empty() && c.snapshot().certificates.is_empty());
        assert_eq!(state(&c), IconState::NoKey);

        let mut c = core(Snapshot::default(), OnInsert::None);
        let fx = c.apply(added("t-1", "云杉密钥", certs), NOW);
        assert!(fx.is_empty(), "{fx:?}");
        let fx = c.apply(
            Update::Event(Event::TokenRemoved {
                token_id: "t-1".into(),
            }),
            NOW,
        );
        assert!(fx.is_empty(), "{fx:?}");
    }

    #[test]
    fn an_expiring_key_is_announced_once() {
        let mut c = core(Snapshot::default(), OnInsert::Notify);
        let certs = vec![cert("t-1", "云杉", 20, &[], true)];
        let fx = c.apply(added("t-1", "云杉密钥", certs.clone()), NOW);
        assert_eq!(
            notices(&fx),
            [
                Notice::Inserted {
                    owner: "云杉".into(),
                    days_left: 20
                },
                Notice::Expiring {
                    owner: "云杉".into(),
                    days_left: 20
                }
            ]
        );
        assert_eq!(state(&c), IconState::Expiring);
        // Out and in again: inserted, but the expiry was told already.
        c.apply(
            Update::Event(Event::TokenRemoved {
                token_id: "t-1".into(),
            }),
            NOW,
        );
        let fx = c.apply(added("t-1", "云杉密钥", certs), NOW);
        assert_eq!(notices(&fx).len(), 1, "{fx:?}");
        // The hourly look finds the next threshold when the day comes.
        assert!(notices(&c.tick(NOW)).is_empty());
        assert_eq!(
            notices(&c.tick(NOW + time::Duration::days(14))),
            [Notice::Expiring {
                owner: "云杉".into(),
                days_left: 6
            }]
        );
    }

    #[test]
    fn the_first_look_at_start_announces_what_is_due() {
        let s = snapshot(
            vec![token("t-1", "旧密钥", "M")],
            vec![cert("t-1", "旧公司", -3, &[], true)],
        );
        let mut c = core(s, OnInsert::Popup);
        assert_eq!(
            notices(&c.tick(NOW)),
            [Notice::Expired {
                owner: "旧公司".into()
            }]
        );
        assert!(c.tick(NOW).is_empty());
    }

    #[test]
    fn pin_notices_come_when_the_state_newly_appears() {
        let s = snapshot(
            vec![token("t-1", "云杉密钥", "M")],
            vec![cert("t-1", "云杉", 200, &[], true)],
        );
        let mut c = core(s, OnInsert::Popup);
        let pin = |f: &dyn Fn(&mut crate::token::PinState)| {
            let mut p = c_pin();
            f(&mut p);
            Update::Event(Event::PinStateChanged {
                token_id: "t-1".into(),
                pin: p,
            })
        };
        let low = notices(&c.apply(pin(&|p| p.count_low = true), NOW));
        assert_eq!(
            low,
            [Notice::PinCountLow {
                label: "云杉密钥".into()
            }]
        );
        // Still low, then final try: nothing new to say.
        assert!(c.apply(pin(&|p| p.count_low = true), NOW).is_empty());
        assert!(
            c.apply(
                pin(&|p| {
                    p.count_low = true;
                    p.final_try = true
                }),
                NOW
            )
            .is_empty()
        );
        let locked = notices(&c.apply(pin(&|p| p.locked = true), NOW));
        assert_eq!(
            locked,
            [Notice::PinLocked {
                label: "云杉密钥".into()
            }]
        );
        assert_eq!(state(&c), IconState::Alert);
        assert!(c.apply(pin(&|p| p.locked = true), NOW).is_empty());
        // Unlocked: quiet, and the icon is back to normal.
        assert!(c.apply(pin(&|_| {}), NOW).is_empty());
        assert_eq!(state(&c), IconState::Ok);
        // A key that is locked when it goes in.
        let mut t = token("t-2", "锁住的密钥", "M");
        t.pin.locked = true;
        let fx = c.apply(
            Update::Event(Event::TokenAdded {
                token: t,
                certificates: vec![],
            }),
            NOW,
        );
        assert_eq!(
            notices(&fx),
            [Notice::PinLocked {
                label: "锁住的密钥".into()
            }]
        );
        assert!(opened(&fx).is_empty(), "no certificate, no card");
    }

    fn c_pin() -> crate::token::PinState {
        token("x", "x", "x").pin
    }

    #[test]
    fn certificates_changed_and_lagged_resync() {
        let s = snapshot(
            vec![token("t-1", "云杉密钥", "M")],
            vec![cert("t-1", "云杉", 200, &[], true)],
        );
        let mut c = core(s, OnInsert::Popup);
        let renewed = vec![
            cert("t-1", "云杉", 200, &[], true),
            cert("t-1", "云杉新", 10, &[], true),
        ];
        let fx = c.apply(
            Update::Event(Event::CertificatesChanged {
                token_id: "t-1".into(),
                certificates: renewed,
            }),
            NOW,
        );
        assert_eq!(
            notices(&fx),
            [Notice::Expiring {
                owner: "云杉新".into(),
                days_left: 10
            }]
        );
        assert_eq!(c.snapshot().certificates.len(), 2);
        // Lagged: the given snapshot replaces what was mirrored.
        let fresh = snapshot(
            vec![token("t-9", "别的密钥", "M")],
            vec![cert("t-9", "别的", -1, &[], true)],
        );
        let fx = c.apply(
            Update::Lagged {
                missed: 3,
                snapshot: Arc::new(fresh),
            },
            NOW,
        );
        assert_eq!(
            notices(&fx),
            [Notice::Expired {
                owner: "别的".into()
            }]
        );
        assert_eq!(c.snapshot().tokens[0].id, "t-9");
        assert_eq!(state(&c), IconState::Alert);
    }

    #[test]
    fn the_language_is_remembered_next_to_other_settings() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(saved_lang(Some(dir.path())), None);
        std::fs::write(dir.path().join("ui.json"), r#"{"other": 1}"#).unwrap();
        save_lang(Some(dir.path()), Lang::En).unwrap();
        assert_eq!(saved_lang(Some(dir.path())), Some(Lang::En));
        save_lang(Some(dir.path()), Lang::ZhCn).unwrap();
        assert_eq!(saved_lang(Some(dir.path())), Some(Lang::ZhCn));
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("ui.json")).unwrap()).unwrap();
        assert_eq!(v["other"], 1);
        save_lang(None, Lang::En).unwrap();
    }
}
