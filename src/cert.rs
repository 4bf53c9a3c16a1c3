//! Certificates: DER bytes in, [`Certificate`] model out.
//!
//! *Architecture invariant*: this module is pure. It does no I/O, reads no clock
//! (callers pass `now`), and never panics on hostile input: anything that is not a
//! certificate becomes an [`Error`].

mod ids;
mod model;
mod name;
mod parse;
mod text;

pub use ids::{Identifiers, uscc_check_digit, uscc_is_valid};
pub use model::{Certificate, KeyAlgorithm, KeyInfo, Name, Status, Validity};
pub use parse::parse;

use crate::error::Code;

/// Why bytes could not be read as a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bytes are not a DER X.509 certificate.
    #[error("not an X.509 certificate: {0}")]
    NotACertificate(String),
}

impl Error {
    /// The user-facing code of this error.
    pub fn code(&self) -> Code {
        match self {
            Error::NotACertificate(_) => Code::CertInvalid,
        }
    }
}
