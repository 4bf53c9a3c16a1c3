//! Whether a certificate's issuer verified it: its signature checked with the key of its
//! issuer's certificate, found on a token, in the system's CA store or in the CA files the
//! configuration names (`[trust] ca_paths`), and the chain above it.
//!
//! The core computes it (with `cert::verify`) whenever the certificates on the tokens
//! change, and keeps it beside each [`super::CertEntry`]: every front end shows the same
//! verdict. "Verified" means only that the issuer's key made the signature: it says
//! nothing of validity dates, revocation or whether the issuer is trusted.

use serde::{Deserialize, Serialize};

use super::id::CertId;

/// What checking a certificate's signature against its issuer found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssuerVerdict {
    /// The issuer's key made the signature (颁发者已验证).
    Verified,
    /// The issuer was found but its key did not make the signature: the certificate was
    /// altered or forged (签名无效).
    SignatureInvalid,
    /// No certificate with the issuer's name (and key identifier) was found.
    IssuerNotFound,
    /// The issuer was found, but its key or the signature algorithm is one certray does not
    /// verify.
    Unsupported,
}

impl IssuerVerdict {
    /// `verified`, `signature_invalid`, `issuer_not_found`, `unsupported`.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerVerdict::Verified => "verified",
            IssuerVerdict::SignatureInvalid => "signature_invalid",
            IssuerVerdict::IssuerNotFound => "issuer_not_found",
            IssuerVerdict::Unsupported => "unsupported",
        }
    }
}

/// Where an issuer's certificate was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IssuerSource {
    /// It is the certificate itself (self-signed).
    #[serde(rename = "self")]
    Itself,
    /// On a token (any token present).
    Token,
    /// The system's CA store.
    System,
    /// A CA file or directory of `[trust] ca_paths`.
    CaPaths,
    /// Another certificate file given to `certray inspect`.
    Files,
}

impl IssuerSource {
    /// `self`, `token`, `system`, `ca_paths`.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerSource::Itself => "self",
            IssuerSource::Token => "token",
            IssuerSource::System => "system",
            IssuerSource::CaPaths => "ca_paths",
            IssuerSource::Files => "files",
        }
    }
}

/// A certificate a check names: the issuer, or a link of the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertRef {
    /// `c-` + 16 hex chars of its SHA-256 (the id it is listed under when on a token).
    pub id: CertId,
    /// Its subject DN (RFC 4514).
    pub subject: String,
    /// Where it was found.
    pub source: IssuerSource,
}

/// One certificate of a chain and what checking its own signature found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    pub cert: CertRef,
    /// Its signature against the next link (against itself for a root).
    pub verdict: IssuerVerdict,
}

/// Why a chain stops where it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainEnd {
    /// A self-signed root whose signature verifies: every link verified.
    Root,
    /// The last link's issuer was not found.
    IssuerNotFound,
    /// The last link's signature does not verify with its issuer's key.
    SignatureInvalid,
    /// The last link's signature uses an algorithm certray does not verify.
    Unsupported,
    /// The last link's issuer is already in the chain.
    Loop,
    /// The chain grew longer than certray follows.
    TooLong,
}

impl ChainEnd {
    /// `root`, `issuer_not_found`, `signature_invalid`, `unsupported`, `loop`, `too_long`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChainEnd::Root => "root",
            ChainEnd::IssuerNotFound => "issuer_not_found",
            ChainEnd::SignatureInvalid => "signature_invalid",
            ChainEnd::Unsupported => "unsupported",
            ChainEnd::Loop => "loop",
            ChainEnd::TooLong => "too_long",
        }
    }
}

/// A certificate's issuer check and its chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerCheck {
    pub verdict: IssuerVerdict,
    /// The issuer found (by name and key identifier), whatever the verdict; `None` when
    /// none was.
    pub issuer: Option<CertRef>,
    /// The certificate first, then each issuer above it as long as each verified.
    pub chain: Vec<ChainLink>,
    pub chain_end: ChainEnd,
}

impl IssuerCheck {
    /// True when the issuer's key made the signature.
    pub fn is_verified(&self) -> bool {
        self.verdict == IssuerVerdict::Verified
    }
}
