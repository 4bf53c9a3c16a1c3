//! The windows: one [`Dialog`] per kind, drawn by the dialog host ([`super::host`]) in one
//! egui window, the topmost of a stack. Dialogs are plain state + `ui()`, so
//! `egui_kittest` drives them without a screen (tests/ui_dialogs.rs).
//!
//! Keyboard: the first field has focus on open, Tab moves, Enter presses the default
//! button, Esc cancels (the host calls [`Dialog::cancel`] and closes the dialog). Every
//! field and button is named in the accessibility tree by its visible label.
//!
//! One file per dialog; [`widgets`] holds the parts they share (header, rows, PIN field,
//! the worker job) and [`facts`] what they say, as plain functions of the model.

use std::sync::Arc;

use eframe::egui;

use crate::core::{ConsentAnswer, PinAnswer, PinRequest};
use crate::i18n::Lang;
use crate::model::{CertId, TokenId};

use super::backend::Services;
use super::notify::Notifier;

pub mod card;
pub mod consent;
pub mod details;
pub mod doctor;
pub mod facts;
pub mod origins;
pub mod pick;
pub mod pin;
pub mod pin_prompt;
pub mod widgets;

pub use card::Card;
pub use consent::Consent;
pub use details::Details;
pub use doctor::Doctor;
pub use origins::Origins;
pub use pick::Pick;
pub use pin::{PinAction, PinDialog};
pub use pin_prompt::PinPrompt;

/// Something that asks for a window.
#[derive(Debug)]
pub enum DialogRequest {
    /// The certificate card (证书信息): on insertion and from the tray menu.
    Card { cert_id: CertId },
    /// 查看证书: every field, identifier and fingerprint, copyable.
    Details { cert_id: CertId },
    /// 修改密码.
    ChangePin { token_id: TokenId },
    /// 解锁: admin PIN or unlock code, new PIN.
    Unlock { token_id: TokenId },
    /// The bridge asks whether a website may use the certificates.
    Consent {
        origin: String,
        reply: Reply<ConsentAnswer>,
    },
    /// The bridge asks whether a website may collect the key's PIN itself (a CA helper's
    /// protocol, BJCA's XTX).
    PagePinConsent {
        origin: String,
        reply: Reply<ConsentAnswer>,
    },
    /// The bridge asks for the PIN to sign.
    Pin {
        request: PinRequest,
        reply: Reply<PinAnswer>,
    },
    /// 环境检测: `certray doctor`'s report.
    Doctor,
    /// 已授权网站: list and revoke.
    Origins,
    /// 选择密钥: pick the token for 修改密码 / 解锁 when several are in.
    PickToken { then: PickThen },
}

/// What to open once a token is picked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PickThen {
    ChangePin,
    Unlock,
}

/// What a frame of a dialog decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Open,
    Close,
}

/// What a dialog may use while drawing.
pub struct Cx<'a> {
    pub lang: Lang,
    pub backend: &'a Arc<dyn Services>,
    pub notifier: &'a Notifier,
    /// Dialogs to open on top of this one (e.g. the card's 修改密码 button).
    pub open: &'a mut Vec<DialogRequest>,
}

/// The answer channel of a bridge prompt: answered at most once, and worth showing only
/// while the web page's request still waits for it. In the daemon it is the bridge's
/// channel; in the dialog process, the way back over the pipe ([`RemoteReply`]).
pub struct Reply<T>(Option<Way<T>>);

enum Way<T> {
    Here(oneshot::Sender<T>),
    Remote(Box<dyn RemoteReply<T>>),
}

/// Where a prompt's answer goes when the one waiting for it is in another process.
pub trait RemoteReply<T>: Send {
    fn send(self: Box<Self>, answer: T);
    fn waiting(&self) -> bool;
}

impl<T> Reply<T> {
    pub fn new(tx: oneshot::Sender<T>) -> Reply<T> {
        Reply(Some(Way::Here(tx)))
    }

    pub fn remote(to: Box<dyn RemoteReply<T>>) -> Reply<T> {
        Reply(Some(Way::Remote(to)))
    }

    /// Send the answer unless one was sent. The page may have gone: nothing waits then.
    pub fn send(&mut self, answer: T) {
        match self.0.take() {
            Some(Way::Here(tx)) => {
                let _ = tx.send(answer);
            }
            Some(Way::Remote(to)) => to.send(answer),
            None => {}
        }
    }

    /// Whether someone still waits for the answer.
    pub fn waiting(&self) -> bool {
        match &self.0 {
            Some(Way::Here(tx)) => !tx.is_closed(),
            Some(Way::Remote(to)) => to.waiting(),
            None => false,
        }
    }
}

impl<T> From<oneshot::Sender<T>> for Reply<T> {
    fn from(tx: oneshot::Sender<T>) -> Reply<T> {
        Reply::new(tx)
    }
}

impl<T> std::fmt::Debug for Reply<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match &self.0 {
            Some(Way::Here(_)) => "Reply(here)",
            Some(Way::Remote(_)) => "Reply(remote)",
            None => "Reply(sent)",
        })
    }
}

/// One kind of window.
pub trait Dialog: Send {
    /// The window title.
    fn title(&self, lang: Lang) -> String;
    /// The window's inner size in points.
    fn size(&self) -> egui::Vec2;
    /// Draw one frame.
    fn ui(&mut self, ui: &mut egui::Ui, cx: &mut Cx<'_>) -> Outcome;
    /// The window is closing without the dialog having finished (Esc, the title bar's ×,
    /// certray stopping): answer whoever waits with "cancel"/"deny".
    fn cancel(&mut self) {}
    /// No window could be opened for it (no display, no OpenGL): a prompt answers that no
    /// one can be asked, as when headless.
    fn never_shown(&mut self) {
        self.cancel();
    }
    /// `false` once nobody waits for the answer any more (the web page's request went
    /// away): the host then closes the dialog.
    fn alive(&self) -> bool {
        true
    }
    /// Bridge prompts go on top of whatever is open; other dialogs queue behind them.
    fn urgent(&self) -> bool {
        false
    }
}

/// Make the dialog a request asks for; `None` when what it names has gone (e.g. the key
/// was pulled before the window could open).
pub fn build(request: DialogRequest, backend: &Arc<dyn Services>) -> Option<Box<dyn Dialog>> {
    let dialog: Box<dyn Dialog> = match request {
        DialogRequest::Card { cert_id } => Box::new(Card::new(&**backend, &cert_id)?),
        DialogRequest::Details { cert_id } => Box::new(Details::new(&**backend, &cert_id)?),
        DialogRequest::ChangePin { token_id } => {
            Box::new(PinDialog::new(&**backend, &token_id, PinAction::Change)?)
        }
        DialogRequest::Unlock { token_id } => {
            Box::new(PinDialog::new(&**backend, &token_id, PinAction::Unlock)?)
        }
        DialogRequest::Consent { origin, reply } => Box::new(Consent::new(origin, reply)),
        DialogRequest::PagePinConsent { origin, reply } => {
            Box::new(Consent::page_pin(origin, reply))
        }
        DialogRequest::Pin { request, reply } => Box::new(PinPrompt::new(request, reply)),
        DialogRequest::Doctor => Box::new(Doctor::new(backend)),
        DialogRequest::Origins => Box::new(Origins::new()),
        DialogRequest::PickToken { then } => {
            // One key in: nothing to pick.
            let tokens = &backend.snapshot().tokens;
            if let [only] = tokens.as_slice() {
                let id = only.id.clone();
                return build(then.request(id), backend);
            }
            Box::new(Pick::new(then))
        }
    };
    Some(dialog)
}

impl PickThen {
    /// The request for the picked token.
    pub fn request(self, token_id: TokenId) -> DialogRequest {
        match self {
            PickThen::ChangePin => DialogRequest::ChangePin { token_id },
            PickThen::Unlock => DialogRequest::Unlock { token_id },
        }
    }
}

/// A window title: what the dialog is, then whose it is.
fn window_title(what: &str, lang: Lang) -> String {
    format!("{what} - {}", lang.pick("证书助手", "certray"))
}
