//! Certificates: DER bytes in, [`Certificate`] model out.
//!
//! - [`parse`]: one DER certificate → [`Certificate`] (holder, identifiers, key…);
//! - [`read_certificates`]: a file's bytes (DER, PEM, PKCS#7 `.p7b`) → certificates;
//! - [`verify_issuer`] / [`build_chain`] / [`Candidates`]: a certificate's signature checked
//!   against candidate issuers (RSA, ECDSA P-256/P-384, SM2-with-SM3), and its chain;
//! - [`verify_data`] / [`verify_message`]: a signature over data (or its digest) checked with
//!   a certificate's key; [`sm2_e`]: what an SM2 key signs for a message;
//! - [`fields`]: every name attribute, extension and the public key one by one, for
//!   protocols that number certificate fields (BJCA's `SOF_GetCertInfo`).
//!
//! *Architecture invariant*: this module is pure. It does no I/O, reads no clock
//! (callers pass `now`), and never panics on hostile input: anything that is not a
//! certificate becomes an [`Error`].

mod bundle;
mod curve;
mod fields;
mod ids;
mod name;
mod parse;
mod text;
mod verify;

pub use crate::model::certificate::{
    CA_NAME_PREFIXES, CA_NAMES, Holder, HolderKind, HolderSource, IdKind, RA_NAMES_WITH_ORG_IN_OU,
    UnverifiedId, WrappedCn, is_ca_name, split_wrapped_cn,
};
pub use crate::model::certificate::{
    Certificate, Identifiers, KeyAlgorithm, KeyInfo, Name, Status, Validity, sha256_hex,
};
pub use bundle::{BundleError, read_certificates};
pub use fields::{Fields, extension_text, fields};
pub use ids::{
    org_code_check_digit, org_code_is_valid, personal_id_check_digit, personal_id_is_valid,
    uscc_check_digit, uscc_is_valid,
};
pub use parse::parse;
pub use verify::{
    Candidates, Chain, ChainEnd, ChainLink, HashAlg, IssuerRef, IssuerStatus, KeyVerifier,
    MAX_CHAIN_LEN, Message, SM2_DEFAULT_ID, Scheme, VerifyError, build_chain, sm2_e, verify_data,
    verify_issuer, verify_message,
};

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
