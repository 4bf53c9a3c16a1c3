//! The desktop: tray icon, certificate card, PIN dialogs, the bridge's consent and PIN
//! prompts, and notifications.
//!
//! Threads (none of them ever waits on a token):
//! - the *tray* thread owns the platform tray (on Linux a GTK main loop: [`tray`]);
//! - the *controller* thread follows the inventory's events, keeps the tray current,
//!   sends notifications and turns menu clicks into dialogs ([`controller`]);
//! - the *dialogs* thread runs the dialog process ([`process`]);
//! - the *notifier* thread talks to the notification service ([`notify`]).
//!
//! Windows are not drawn in the daemon: a dialog process (`certray dialog-host`,
//! [`child`]) is started when one is wanted and ends once they are closed, so OpenGL never
//! loads into the long-running process. There the *dialog host* thread owns every window,
//! one egui window at a time showing the topmost of a stack of dialogs ([`host`]); the two
//! processes talk over a pipe ([`link`]).
//!
//! *Architecture invariant*: `ui/` sends commands through [`Backend`] (the inventory and
//! the bridge's approvals) and renders inventory events; it never calls `token/`. A PIN
//! typed into a dialog lives in a `Zeroizing` buffer and becomes a [`crate::model::Pin`]
//! only when it is sent; it is never logged.

pub mod backend;
pub mod child;
pub mod controller;
pub mod dialogs;
pub mod fonts;
pub mod host;
pub mod icons;
pub mod link;
pub mod notify;
pub mod process;
pub mod prompt;
pub mod tray;
pub mod view;

pub use backend::{Backend, BackendOptions, Services};
pub use dialogs::DialogRequest;
pub use notify::{Notice, Notifier};
pub use process::Dialogs;
pub use prompt::UiPrompt;

use std::sync::{Arc, RwLock};

use futures_util::future::BoxFuture;

use crate::config::UiConfig;
use crate::core::{ConsentAnswer, PinAnswer, PinRequest, Prompt};

/// Whether a desktop session is there to show a tray and windows in.
pub fn display_available() -> bool {
    #[cfg(target_os = "linux")]
    {
        ["DISPLAY", "WAYLAND_DISPLAY"]
            .iter()
            .any(|v| std::env::var_os(v).is_some_and(|s| !s.is_empty()))
    }
    #[cfg(not(target_os = "linux"))]
    {
        true
    }
}

/// The desktop as `certray run` starts it: notifications, the dialogs (which answer the
/// bridge's prompts through `prompt`), and the controller with the tray. Nothing here
/// waits for the desktop: a tray that cannot start is logged and the rest goes on.
///
/// The language chosen in the tray's 语言 menu (kept in `<state dir>/ui.json`) wins over
/// the one `backend` was made with.
pub fn start(backend: &Arc<Backend>, prompt: &Arc<PromptSlot>, config: &UiConfig) -> Desktop {
    if let Some(lang) = controller::saved_lang(backend.state_dir.as_deref()) {
        backend.set_lang(lang);
    }
    let notifier = if config.notifications {
        // Weak: the notifier thread must not keep the backend (and the inventory) alive.
        let weak = Arc::downgrade(backend);
        let fallback = backend.lang();
        Notifier::desktop(move || weak.upgrade().map_or(fallback, |b| b.lang()))
    } else {
        Notifier::off()
    };
    let dialogs = match Dialogs::spawn(backend.clone(), notifier.clone()) {
        Ok(h) => {
            prompt.set(Some(UiPrompt::new(h.clone())));
            Some(h)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no dialogs: web pages' consent and PIN requests are refused");
            None
        }
    };
    let controller = controller::Controller::spawn(controller::Parts {
        backend: backend.clone(),
        notifier,
        host: dialogs.clone(),
        on_insert: config.on_insert,
        tray: true,
    })
    .map_err(|e| tracing::warn!(error = %e, "cannot start the UI controller; no tray icon"))
    .ok();
    Desktop {
        prompt: prompt.clone(),
        controller,
        dialogs,
    }
}

/// The running desktop; [`Desktop::stop`] takes it down.
pub struct Desktop {
    prompt: Arc<PromptSlot>,
    controller: Option<controller::Controller>,
    dialogs: Option<Dialogs>,
}

impl Desktop {
    /// Take the desktop down and wait for it: prompts are withdrawn, the controller thread
    /// is joined (the tray icon leaves with it), and the dialogs are stopped
    /// ([`Dialogs::stop`]: the dialog process exits or is killed, their threads are
    /// joined). Once the bridge has stopped too, nothing holds the inventory any more.
    pub fn stop(self) {
        self.prompt.close();
        if let Some(c) = self.controller {
            c.stop();
        }
        if let Some(d) = self.dialogs {
            d.stop();
        }
    }
}

/// The core's [`Prompt`] for the desktop, filled in once the dialogs thread runs. It exists
/// before the host because of the order things are built in: the host needs the
/// [`Backend`], the backend the core's approvals, and the core's signing its prompt. Until
/// then (and after [`PromptSlot::close`]) it answers like a headless daemon.
pub struct PromptSlot {
    inner: RwLock<Option<Arc<UiPrompt>>>,
    /// Set by [`PromptSlot::close`]: questions still waiting for a person get their answer.
    closed: tokio::sync::watch::Sender<bool>,
}

impl PromptSlot {
    pub fn new() -> Arc<PromptSlot> {
        Arc::new(PromptSlot {
            inner: RwLock::default(),
            closed: tokio::sync::watch::Sender::new(false),
        })
    }

    /// No more questions for the person (certray is stopping): those waiting are answered
    /// at once, consent as refused and the PIN as cancelled (their dialogs close), and new
    /// ones are refused as when headless.
    pub fn close(&self) {
        self.set(None);
        self.closed.send_replace(true);
    }

    fn set(&self, prompt: Option<UiPrompt>) {
        *self.inner.write().unwrap_or_else(|e| e.into_inner()) = prompt.map(Arc::new);
    }

    fn get(&self) -> Option<Arc<UiPrompt>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Resolves once [`PromptSlot::close`] has been called.
    async fn closing(&self) {
        let mut rx = self.closed.subscribe();
        let _ = rx.wait_for(|closed| *closed).await;
    }
}

impl Prompt for PromptSlot {
    fn consent<'a>(&'a self, origin: &'a str) -> BoxFuture<'a, ConsentAnswer> {
        let prompt = self.get();
        Box::pin(async move {
            let Some(p) = prompt else {
                return ConsentAnswer::Unavailable;
            };
            tokio::select! {
                answer = p.consent(origin) => answer,
                () = self.closing() => ConsentAnswer::Deny,
            }
        })
    }

    fn pin(&self, request: PinRequest) -> BoxFuture<'_, PinAnswer> {
        let prompt = self.get();
        Box::pin(async move {
            let Some(p) = prompt else {
                return PinAnswer::Unavailable;
            };
            tokio::select! {
                answer = p.pin(request) => answer,
                () = self.closing() => PinAnswer::Cancelled,
            }
        })
    }

    fn available(&self) -> bool {
        self.get().is_some_and(|p| p.available())
    }

    fn consent_kind<'a>(
        &'a self,
        origin: &'a str,
        kind: crate::core::ConsentKind,
    ) -> BoxFuture<'a, ConsentAnswer> {
        let prompt = self.get();
        Box::pin(async move {
            match prompt {
                Some(p) => p.consent_kind(origin, kind).await,
                None => ConsentAnswer::Unavailable,
            }
        })
    }
}

/// Open a web address in the desktop's browser, or a folder in its file manager, with the
/// platform's default handler. Does not wait (the opener is reaped on a thread of its own).
pub fn open(target: impl AsRef<std::ffi::OsStr>) -> std::io::Result<()> {
    use std::process::{Command, Stdio};
    let target = target.as_ref();
    #[cfg(windows)]
    let mut cmd = {
        let mut c = Command::new("cmd");
        // `start`'s first quoted argument is a window title.
        c.args(["/C", "start", ""]).arg(target);
        no_console(&mut c);
        c
    };
    #[cfg(target_os = "macos")]
    let mut cmd = {
        let mut c = Command::new("open");
        c.arg(target);
        c
    };
    #[cfg(not(any(windows, target_os = "macos")))]
    let mut cmd = {
        let mut c = Command::new("xdg-open");
        c.arg(target);
        c
    };
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    let _ = std::thread::Builder::new()
        .name("opener".into())
        .spawn(move || child.wait());
    Ok(())
}

/// On Windows, keep a console window from flashing up for a child process.
#[cfg(windows)]
fn no_console(cmd: &mut std::process::Command) {
    use std::os::windows::process::CommandExt;
    const CREATE_NO_WINDOW: u32 = 0x0800_0000;
    cmd.creation_flags(CREATE_NO_WINDOW);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::core::{Live, LiveOptions};

    #[test]
    fn the_prompt_slot_answers_like_headless_until_the_host_runs() {
        let slot = PromptSlot::new();
        assert!(!slot.available());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(
            rt.block_on(slot.consent("https://etax.example")),
            ConsentAnswer::Unavailable
        );
        let request = PinRequest {
            origin: None,
            certificate_id: "c-0".into(),
            owner: "云杉".into(),
            operation: "sign".into(),
        };
        assert!(matches!(
            rt.block_on(slot.pin(request)),
            PinAnswer::Unavailable
        ));

        // An inventory with nothing to load, and dialogs that start no process until asked:
        // the slot then says a person can be asked, and stops saying so once cleared.
        let mut config = Config::default();
        config.pkcs11.use_defaults = false;
        let live = Arc::new(
            Live::start(
                &config,
                LiveOptions {
                    watch: true,
                    pcsc: false,
                },
            )
            .unwrap(),
        );
        let backend = Backend::new(
            live,
            BackendOptions {
                approvals: None,
                lang: crate::i18n::Lang::ZhCn,
                warning_days: 30,
                check_page: None,
                config_path: None,
                state_dir: None,
            },
        );
        let host = Dialogs::spawn(backend, Notifier::off()).unwrap();
        slot.set(Some(UiPrompt::new(host)));
        assert!(slot.available());
        slot.set(None);
        assert!(!slot.available());
    }
}
