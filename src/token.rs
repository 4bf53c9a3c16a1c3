//! Tokens: the only code that touches hardware.
//!
//! - [`backend`]: the seam the core uses, [`Backend`]: scan tokens, sign, PIN state, change
//!   and unlock, logout, re-initialise, device events; every call a request to a worker
//!   thread whose answer ([`Pending`]) the caller waits for or awaits.
//! - [`pkcs11`]: the PKCS#11 backend ([`pkcs11::ModuleHandle`]): a thread per module owns the
//!   module (scans, re-initialisation), and a thread per token owns that token's sessions,
//!   so that signatures on different tokens run side by side.
//! - [`sign`]: mechanism choice, DigestInfo and ECDSA DER encoding.
//! - [`demo`]: provisions the built-in SoftHSM demo token.
//! - [`modules`]: the platform's known module paths.
//! - [`skf`]: GM/T 0016 (SKF) vendor libraries, each in a `certray skf-host` process
//!   ([`skf::SkfBackend`]).
//!
//! *Architecture invariant*: PINs cross this boundary only as [`Pin`] (a `SecretString`),
//! are submitted to the token at most once per request, and never reach a log.

pub mod backend;
pub mod demo;
pub mod modules;
pub mod pcsc;
pub mod pcsc_probe;
pub mod pkcs11;
pub mod registry;
pub mod sign;
pub mod skf;

use std::path::PathBuf;

use crate::error::Code;
pub use crate::model::{CertObject, Pin, PinState, Seal, Token, TokenScan};
use crate::model::{DigestLength, PinRefusal};
pub use backend::{Auth, Backend, DeviceEvent, Pending, SignRequest};

/// Why a token operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("cannot load PKCS#11 module {path}: {reason}")]
    ModuleLoad { path: PathBuf, reason: String },
    #[error("token {0} not found")]
    TokenNotFound(String),
    /// Looked up in a session logged in with the user's PIN: the PIN was right and spent on
    /// a real attempt, and the key is not there.
    #[error(
        "no private key with CKA_ID {0} on the token: the PIN was accepted and the key looked up after login"
    )]
    NoPrivateKey(String),
    #[error("PIN incorrect")]
    PinIncorrect { pin: PinState },
    #[error("PIN locked")]
    PinLocked { pin: PinState },
    /// Refused by the PIN rules before the token was asked.
    #[error(transparent)]
    Refused(#[from] PinRefusal),
    #[error(transparent)]
    DigestLength(#[from] DigestLength),
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
    #[error("{function}: {rc}")]
    Skf { function: String, rc: String },
    #[error("the SKF host of {} crashed: {reason}", library.display())]
    SkfHostCrashed { library: PathBuf, reason: String },
    #[error("the SKF host of {} did not answer within {timeout:?} and was stopped", library.display())]
    SkfHostHung {
        library: PathBuf,
        timeout: std::time::Duration,
    },
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
            Error::Refused(r) => r.code(),
            Error::DigestLength(e) => e.code(),
            Error::PinRequired => Code::PinRequired,
            Error::TokenRemoved => Code::TokenRemoved,
            Error::Unsupported(_) => Code::UnsupportedAlgorithm,
            Error::SkfHostCrashed { .. } => Code::SkfHostCrashed,
            Error::SkfHostHung { .. } => Code::SkfHostHung,
            Error::Pkcs11 { .. } | Error::Skf { .. } | Error::WorkerGone | Error::Other(_) => {
                Code::Internal
            }
        }
    }

    /// The token's PIN state when the error carries one.
    pub fn pin_state(&self) -> Option<PinState> {
        match self {
            Error::PinIncorrect { pin } | Error::PinLocked { pin } => Some(*pin),
            Error::Refused(r) => r.pin_state(),
            _ => None,
        }
    }
}
