//! Domain types: what certray knows about tokens, certificates, PINs, signatures and events.
//! Pure data and the rules that are facts about it; no I/O, no threads, no clock.
//!
//! *Architecture invariant*: every floor above speaks these types; this module imports only
//! the ground floor (`error`, `i18n`).

pub mod certificate;
pub mod event;
pub mod id;
pub mod issuer;
pub mod pin;
pub mod sign;
pub mod snapshot;
pub mod token;

pub use certificate::{
    CertEntry, Certificate, Identifiers, KeyAlgorithm, KeyInfo, Name, Status, Unreadable, Validity,
    sha256_hex,
};
pub use event::{Event, Hint, Reader};
pub use id::{CertId, TokenId};
pub use issuer::{CertRef, ChainEnd, ChainLink, IssuerCheck, IssuerSource, IssuerVerdict};
pub use pin::{Pin, PinRefusal, PinState};
pub use sign::{DigestLength, HashAlg, KeyKind, SignInput, Signature, algorithm_name};
pub use snapshot::Snapshot;
pub use token::{CertObject, KeyPresence, Location, Seal, Token, TokenScan};
