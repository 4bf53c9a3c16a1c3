//! What the UI may ask of the rest of certray: the live inventory (state, events, PIN
//! commands), the website approvals, and a few settings. Every PIN command
//! blocks on the token: call it from a worker thread, never from a frame.
//!
//! The daemon's [`Backend`] answers from the inventory itself. The dialogs see it through
//! [`Services`], which the dialog process ([`super::child`]) implements by asking the
//! daemon over a pipe.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use crate::core::{self, Approvals, Live, Subscription};
use crate::error::Code;
use crate::i18n::Lang;
use crate::model::TokenId;
use crate::model::{CertEntry, Snapshot};
use crate::model::{Pin, PinState, Token};

/// A PIN command the token (or the inventory) refused: its user-facing code and, when the
/// token reported one, the PIN state it is in now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Refusal {
    pub code: Code,
    pub pin_state: Option<PinState>,
}

impl Refusal {
    pub fn code(&self) -> Code {
        self.code
    }

    pub fn pin_state(&self) -> Option<PinState> {
        self.pin_state
    }
}

impl From<core::Error> for Refusal {
    fn from(e: core::Error) -> Refusal {
        Refusal {
            code: e.code(),
            pin_state: e.pin_state(),
        }
    }
}

/// What a dialog may ask of certray.
pub trait Services: Send + Sync {
    /// The language the UI speaks now (the tray's 语言 menu changes it).
    fn lang(&self) -> Lang;
    /// Days before expiry from which a certificate is `expiring`.
    fn warning_days(&self) -> u32;
    fn snapshot(&self) -> Arc<Snapshot>;
    fn certificate(&self, id: &str) -> Option<CertEntry> {
        self.snapshot().certificate(id).cloned()
    }
    fn token(&self, id: &str) -> Option<Token> {
        self.snapshot().token(id).cloned()
    }
    /// Blocking: reads the token.
    fn pin_state(&self, token_id: &TokenId) -> Result<PinState, Refusal>;
    /// Blocking: talks to the token. `force` lets the final try be used.
    fn change_pin(
        &self,
        token_id: &TokenId,
        old: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, Refusal>;
    /// Blocking: talks to the token.
    fn unlock(
        &self,
        token_id: &TokenId,
        so_pin: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, Refusal>;
    /// Websites approved to use the certificates: (remembered, this session only).
    fn origins(&self) -> (Vec<String>, Vec<String>);
    /// Withdraw a website's approval, effective at once.
    fn revoke_origin(&self, origin: &str) -> std::io::Result<bool>;
    /// `certray doctor` as a child process (it loads modules of its own, which must not
    /// happen inside the daemon), in the UI's language.
    fn doctor_command(&self) -> std::process::Command;
}

/// The UI's one handle on certray.
pub struct Backend {
    live: Arc<Live>,
    approvals: Option<Arc<Approvals>>,
    lang: RwLock<Lang>,
    warning_days: u32,
    /// The bridge's check page, `http://127.0.0.1:PORT/`.
    check_page: Option<String>,
    /// `--config FILE` as given to `certray run`, passed on to `certray doctor`.
    config_path: Option<PathBuf>,
    /// Where the UI keeps its own state (`ui.json`, `notified.json`); `None`: memory only.
    pub state_dir: Option<PathBuf>,
    quit: tokio::sync::watch::Sender<bool>,
}

/// How to build a [`Backend`].
pub struct BackendOptions {
    /// Who may use the certificates (the daemon's), when websites can ask at all.
    pub approvals: Option<Arc<Approvals>>,
    pub lang: Lang,
    pub warning_days: u32,
    pub check_page: Option<String>,
    pub config_path: Option<PathBuf>,
    pub state_dir: Option<PathBuf>,
}

impl Backend {
    pub fn new(live: Arc<Live>, o: BackendOptions) -> Arc<Backend> {
        Arc::new(Backend {
            live,
            approvals: o.approvals,
            lang: RwLock::new(o.lang),
            warning_days: o.warning_days,
            check_page: o.check_page,
            config_path: o.config_path,
            state_dir: o.state_dir,
            quit: tokio::sync::watch::Sender::new(false),
        })
    }

    pub fn set_lang(&self, lang: Lang) {
        *self.lang.write().unwrap_or_else(|e| e.into_inner()) = lang;
    }

    pub fn subscribe(&self) -> (Arc<Snapshot>, Subscription) {
        self.live.subscribe()
    }

    /// `--config FILE` as given to `certray run`.
    pub fn config_path(&self) -> Option<&std::path::Path> {
        self.config_path.as_deref()
    }

    /// The bridge's check page URL, when the bridge runs.
    pub fn check_page(&self) -> Option<&str> {
        self.check_page.as_deref()
    }

    /// Ask the whole daemon to stop (the tray's 退出).
    pub fn request_quit(&self) {
        self.quit.send_replace(true);
    }

    pub fn quit_requested(&self) -> bool {
        *self.quit.borrow()
    }

    /// Resolves once [`Backend::request_quit`] has been called.
    pub async fn quitting(&self) {
        let mut rx = self.quit.subscribe();
        let _ = rx.wait_for(|q| *q).await;
    }
}

impl Services for Backend {
    fn lang(&self) -> Lang {
        *self.lang.read().unwrap_or_else(|e| e.into_inner())
    }

    fn warning_days(&self) -> u32 {
        self.warning_days
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.live.snapshot()
    }

    fn pin_state(&self, token_id: &TokenId) -> Result<PinState, Refusal> {
        Ok(self.live.pin_state(token_id)?)
    }

    fn change_pin(
        &self,
        token_id: &TokenId,
        old: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, Refusal> {
        Ok(self.live.change_pin(token_id, old, new, force)?)
    }

    fn unlock(
        &self,
        token_id: &TokenId,
        so_pin: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, Refusal> {
        Ok(self.live.unlock(token_id, so_pin, new, force)?)
    }

    fn origins(&self) -> (Vec<String>, Vec<String>) {
        match &self.approvals {
            Some(approvals) => {
                let (r, s) = approvals.list();
                (r.into_iter().collect(), s.into_iter().collect())
            }
            None => Default::default(),
        }
    }

    fn revoke_origin(&self, origin: &str) -> std::io::Result<bool> {
        match &self.approvals {
            Some(approvals) => approvals.revoke(origin),
            None => Ok(false),
        }
    }

    fn doctor_command(&self) -> std::process::Command {
        doctor_command(self.config_path.as_deref(), self.lang())
    }
}

/// `certray doctor` with the daemon's `--config`, speaking `lang`.
pub fn doctor_command(config_path: Option<&std::path::Path>, lang: Lang) -> std::process::Command {
    let exe = std::env::current_exe().unwrap_or_else(|_| PathBuf::from("certray"));
    let mut cmd = std::process::Command::new(exe);
    if let Some(path) = config_path {
        cmd.arg("--config").arg(path);
    }
    cmd.arg("doctor");
    cmd.env(
        "CERTRAY_LANG",
        match lang {
            Lang::ZhCn => "zh_CN.UTF-8",
            Lang::En => "en_US.UTF-8",
        },
    );
    cmd
}
