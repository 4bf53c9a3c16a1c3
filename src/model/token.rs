//! Tokens (USB keys, smart cards) as certray knows them, and what a backend's scan of one
//! gives: the raw certificate objects, before they are parsed.

use std::path::PathBuf;
use std::sync::Arc;

use super::id::TokenId;
use super::pin::PinState;
use crate::i18n::Lang;

/// A token present now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Stable across re-insertion (see [`TokenId::derive`]).
    pub id: TokenId,
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    /// Where it sits: the backend's business, kept off every wire.
    pub location: Location,
    /// The user PIN.
    pub pin: PinState,
    /// The SO (admin) PIN; only its flags are meaningful.
    pub so_pin: PinState,
    /// The seal image (签章图片) when the token holds one.
    pub seal: Option<Seal>,
}

/// Which backend serves a token, and where in it. Not an identity: a slot changes when the
/// key is plugged in again.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    /// The library that serves it (a PKCS#11 module).
    pub library: PathBuf,
    /// The slot in that library.
    pub slot: u64,
}

/// A seal image as the token stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// `png`, `jpeg`, `gif` or `bmp`, from the file's magic number.
    pub format: &'static str,
    /// The image file's bytes, shared while the token's data objects stay the same.
    pub bytes: Arc<Vec<u8>>,
}

/// A certificate object read from a token, not yet parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertObject {
    pub token_id: TokenId,
    pub label: String,
    /// The key id (PKCS#11 CKA_ID) that pairs it with its private key.
    pub key_id: Vec<u8>,
    pub der: Vec<u8>,
    /// Whether a private key with the same key id exists (or, while not logged in, its
    /// public half), or cannot be known before login.
    pub has_private_key: KeyPresence,
}

/// Whether a certificate has a private key on its token. A token that keeps its private keys
/// as private objects (what importing a PKCS#12 leaves) shows them only after login: such a
/// certificate is not "no private key" before the PIN, only unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(from = "Option<bool>", into = "Option<bool>")]
pub enum KeyPresence {
    /// A private key (or its public half) with the certificate's key id is visible.
    Yes,
    /// No key with the certificate's key id is there.
    #[default]
    No,
    /// The token requires login and shows no key before it; the certificate has a key id.
    UnknownUntilLogin,
}

impl KeyPresence {
    /// `Some(true)`, `Some(false)`, or `None` until login (the JSON `has_private_key`).
    pub fn known(self) -> Option<bool> {
        match self {
            KeyPresence::Yes => Some(true),
            KeyPresence::No => Some(false),
            KeyPresence::UnknownUntilLogin => None,
        }
    }

    /// Whether the certificate is offered for signing: a key seen or one that may show
    /// after login.
    pub fn may_sign(self) -> bool {
        self != KeyPresence::No
    }

    /// Whether a key is known to be there.
    pub fn is_yes(self) -> bool {
        self == KeyPresence::Yes
    }

    /// The word the card, the details and the CLI table show: 有 / 无 / 登录后确认.
    pub fn text(self, lang: Lang) -> &'static str {
        match self {
            KeyPresence::Yes => lang.pick("有", "yes"),
            KeyPresence::No => lang.pick("无", "no"),
            KeyPresence::UnknownUntilLogin => lang.pick("登录后确认", "confirmed after login"),
        }
    }
}

impl From<Option<bool>> for KeyPresence {
    fn from(v: Option<bool>) -> KeyPresence {
        match v {
            Some(true) => KeyPresence::Yes,
            Some(false) => KeyPresence::No,
            None => KeyPresence::UnknownUntilLogin,
        }
    }
}

impl From<KeyPresence> for Option<bool> {
    fn from(k: KeyPresence) -> Option<bool> {
        k.known()
    }
}

impl From<bool> for KeyPresence {
    fn from(v: bool) -> KeyPresence {
        Some(v).into()
    }
}

/// One token and the certificates on it, as a backend's scan found them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenScan {
    pub token: Token,
    pub certificates: Vec<CertObject>,
}
