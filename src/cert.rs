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

/// PEM (`-----BEGIN CERTIFICATE-----`) with 64-column lines.
pub fn to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str("-----END CERTIFICATE-----\n");
    s
}

/// SHA-256 of any bytes (a certificate's DER), lowercase hex.
pub fn sha256_hex(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(der))
}

/// The certificate id for a SHA-256 in hex: `c-` + its first 16 hex chars, stable across
/// re-insertion and machines. Objects that do not parse get their id the same way.
pub fn id_from_sha256(sha256_hex: &str) -> String {
    // `get`: a short string gives a short id, not a panic.
    format!("c-{}", sha256_hex.get(..16).unwrap_or(sha256_hex))
}

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
