//! What the bridge asks the person at the computer: may this website use the certificates,
//! and the PIN for a signature. The desktop UI implements [`Prompt`] with its dialogs;
//! [`Headless`] answers "no one to ask", which the bridge turns into refusals.
//!
//! A prompt's future is dropped when the web page's request goes away (the client
//! disconnected); an implementation closes its dialog then.

use futures_util::future::BoxFuture;

use crate::token::Pin;

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

/// What the PIN dialog shows.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PinRequest {
    /// The page asking, or `None` for a local program.
    pub origin: Option<String>,
    pub certificate_id: String,
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
