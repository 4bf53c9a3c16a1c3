//! Tokens: the only code that touches hardware.
//!
//! - [`pkcs11`]: one worker thread per PKCS#11 module owns that module's context and
//!   sessions; everyone else talks to it through a channel ([`pkcs11::ModuleHandle`]).
//! - [`sign`]: mechanism choice, DigestInfo and ECDSA DER encoding.
//! - [`demo`]: provisions the built-in SoftHSM demo token.
//! - [`modules`]: the platform's known module paths.
//!
//! *Architecture invariant*: PINs cross this boundary only as [`Pin`] (a `SecretString`),
//! are submitted to the token at most once per request, and never reach a log.

pub mod demo;
pub mod modules;
pub mod pcsc;
pub mod pcsc_probe;
pub mod pkcs11;
pub mod registry;
pub mod sign;

use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::error::Code;

/// A PIN, admin PIN or unlock code. Zeroized on drop, redacted in `Debug`.
pub type Pin = secrecy::SecretString;

/// The PIN state a token reports in its token info.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PinState {
    pub min_len: usize,
    pub max_len: usize,
    /// The user PIN has been set (CKF_USER_PIN_INITIALIZED).
    pub initialized: bool,
    pub count_low: bool,
    pub final_try: bool,
    pub locked: bool,
    pub to_be_changed: bool,
}

impl PinState {
    /// Whether a PIN of `len` bytes fits the token's range. A token reporting 0 as the
    /// maximum does not say, so any length from `min_len` up is accepted.
    pub fn accepts_len(&self, len: usize) -> bool {
        len >= self.min_len && (self.max_len == 0 || len <= self.max_len)
    }
}

/// A token as the module reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// `t-` + 16 hex chars from manufacturer, model and serial: stable across re-insertion.
    pub id: String,
    pub label: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    /// Path of the module that serves it.
    pub module: PathBuf,
    /// The slot id in that module (not stable: never use it to find a token again).
    pub slot: u64,
    /// The user PIN.
    pub pin: PinState,
    /// The SO (admin) PIN; only its flags are meaningful.
    pub so_pin: PinState,
    /// The seal image (签章图片) when the token holds one as a public data object.
    pub seal: Option<Seal>,
}

/// A seal image as the token stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seal {
    /// `png`, `jpeg`, `gif` or `bmp`, from the file's magic number.
    pub format: &'static str,
    /// The image file's bytes, shared while the token's data objects stay the same.
    pub bytes: std::sync::Arc<Vec<u8>>,
}

/// A certificate object read from a token, not yet parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertObject {
    pub token_id: String,
    pub label: String,
    /// CKA_ID, which pairs it with its private key.
    pub key_id: Vec<u8>,
    pub der: Vec<u8>,
    /// A private key (or, while not logged in, its public half) with the same CKA_ID exists.
    pub has_private_key: bool,
}

/// One token and the certificates on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenScan {
    pub token: TokenInfo,
    pub certificates: Vec<CertObject>,
}

/// The stable token id.
pub fn token_id(manufacturer: &str, model: &str, serial: &str) -> String {
    let mut h = Sha256::new();
    for part in [manufacturer.trim(), model.trim(), serial.trim()] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    format!("t-{}", &hex::encode(h.finalize())[..16])
}

/// Why a token operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("cannot load PKCS#11 module {path}: {reason}")]
    ModuleLoad { path: PathBuf, reason: String },
    #[error("token {0} not found")]
    TokenNotFound(String),
    #[error("no private key with CKA_ID {0} on the token")]
    NoPrivateKey(String),
    #[error("PIN incorrect")]
    PinIncorrect { pin: PinState },
    #[error("PIN locked")]
    PinLocked { pin: PinState },
    #[error("new PIN length {len} outside {min}..={max}")]
    PinLenRange { len: usize, min: usize, max: usize },
    #[error("the token reports one PIN attempt left; confirm explicitly to use it")]
    PinFinalTry { pin: PinState },
    #[error("not logged in and no PIN given")]
    PinRequired,
    #[error("token removed")]
    TokenRemoved,
    #[error("unsupported: {0}")]
    Unsupported(String),
    #[error("{function}: {rv}")]
    Pkcs11 { function: String, rv: String },
    #[error("the module worker has stopped")]
    WorkerGone,
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The user-facing code.
    pub fn code(&self) -> Code {
        match self {
            Error::ModuleLoad { .. } => Code::ModuleLoadFailed,
            Error::TokenNotFound(_) => Code::TokenNotFound,
            Error::NoPrivateKey(_) => Code::NoPrivateKey,
            Error::PinIncorrect { .. } => Code::PinIncorrect,
            Error::PinLocked { .. } => Code::PinLocked,
            Error::PinLenRange { .. } => Code::PinLenRange,
            Error::PinFinalTry { .. } => Code::PinFinalTry,
            Error::PinRequired => Code::PinRequired,
            Error::TokenRemoved => Code::TokenRemoved,
            Error::Unsupported(_) => Code::UnsupportedAlgorithm,
            Error::Pkcs11 { .. } | Error::WorkerGone | Error::Other(_) => Code::Internal,
        }
    }

    /// The token's PIN state when the error carries one.
    pub fn pin_state(&self) -> Option<PinState> {
        match self {
            Error::PinIncorrect { pin } | Error::PinLocked { pin } | Error::PinFinalTry { pin } => {
                Some(*pin)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_id_is_stable_and_separates_fields() {
        let a = token_id("SoftHSM project", "SoftHSM v2", "1234");
        assert_eq!(a, token_id("SoftHSM project ", "SoftHSM v2", " 1234"));
        assert!(a.starts_with("t-") && a.len() == 18);
        assert_ne!(token_id("ab", "c", "d"), token_id("a", "bc", "d"));
    }

    #[test]
    fn pin_len_range() {
        let p = PinState {
            min_len: 6,
            max_len: 16,
            ..Default::default()
        };
        assert!(!p.accepts_len(5));
        assert!(p.accepts_len(6) && p.accepts_len(16));
        assert!(!p.accepts_len(17));
        let open = PinState {
            min_len: 4,
            max_len: 0,
            ..Default::default()
        };
        assert!(open.accepts_len(200));
    }
}
