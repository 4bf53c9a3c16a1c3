//! What the bridge asks the person at the computer: may this website use the certificates,
//! and the PIN for a signature. The desktop UI implements [`Prompt`] with its dialogs;
//! [`Headless`] answers "no one to ask", which the bridge turns into refusals.
//!
//! A prompt's future is dropped when the web page's request goes away (the client
//! disconnected); an implementation closes its dialog then.

use futures_util::future::BoxFuture;

use crate::model::{CertId, Pin};

/// The answer to "may `origin` use your certificates?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConsentAnswer {
    /// Allowed until certray stops.
    AllowOnce,
    /// Allowed and remembered (revocable with `certray origins revoke`).
    AllowAlways,
    Deny,
    /// No one to ask (headless).
    Unavailable,
}

/// What a website asks to be allowed, which decides what the consent dialog says.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConsentKind {
    /// Read the certificates and ask for signatures; each signature needs the PIN typed
    /// into certray's own dialog (the `/v1` API).
    #[default]
    Certificates,
    /// Speak a CA helper's protocol (BJCA's XTX): the site collects the key's PIN in its
    /// own page and sends it, as the vendor helpers let every site do.
    PagePin,
}

/// What the PIN dialog shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PinRequest {
    /// The page asking, or `None` for a local program.
    pub origin: Option<String>,
    pub certificate_id: CertId,
    /// The certificate's owner, as the card shows it.
    pub owner: String,
    /// What is being signed: e.g. `cms-detached, 1024 bytes`.
    pub operation: String,
}

/// The answer of the PIN dialog.
#[derive(Debug)]
pub enum PinAnswer {
    Pin {
        pin: Pin,
        /// Let this origin sign with this certificate again without asking, until certray stops.
        remember: bool,
    },
    Cancelled,
    Unavailable,
}

/// The seam between the bridge and the desktop UI.
pub trait Prompt: Send + Sync {
    fn consent<'a>(&'a self, origin: &'a str) -> BoxFuture<'a, ConsentAnswer>;
    fn pin(&self, request: PinRequest) -> BoxFuture<'_, PinAnswer>;
    /// Whether a person can be asked at all.
    fn available(&self) -> bool;
    /// Ask for consent of a `kind`. A prompt that only knows [`Prompt::consent`] asks that
    /// for [`ConsentKind::Certificates`] and cannot ask the other kinds (no one to ask).
    fn consent_kind<'a>(
        &'a self,
        origin: &'a str,
        kind: ConsentKind,
    ) -> BoxFuture<'a, ConsentAnswer> {
        match kind {
            ConsentKind::Certificates => self.consent(origin),
            ConsentKind::PagePin => Box::pin(async { ConsentAnswer::Unavailable }),
        }
    }
}

/// No UI: nothing can be asked.
#[derive(Debug, Default, Clone, Copy)]
pub struct Headless;

impl Prompt for Headless {
    fn consent<'a>(&'a self, _origin: &'a str) -> BoxFuture<'a, ConsentAnswer> {
        Box::pin(async { ConsentAnswer::Unavailable })
    }

    fn pin(&self, _request: PinRequest) -> BoxFuture<'_, PinAnswer> {
        Box::pin(async { PinAnswer::Unavailable })
    }

    fn available(&self) -> bool {
        false
    }
}
