//! The core: the use cases every front door (the CLI, the `/v1` bridge, the desktop, and
//! protocol endpoints to come) calls, so that each policy is written once.
//!
//! - [`Live`]: the inventory of every loaded backend, the tokens they serve and the
//!   certificates on them, parsed once; the daemon's copy follows card and slot events, the
//!   CLI's is read once. PIN commands (status, change, unlock) go to the backend that serves
//!   the token.
//! - [`signing`]: sign and authenticate — check the signer, authorise (page-PIN rule,
//!   grants, the prompt), the backend, CMS, the audit log.
//! - [`approvals`]: who may use the certificates; [`audit`]: the log of every signature;
//!   [`prompt`]: what the core asks the person (the desktop answers).
//! - [`loader`]: loading the configured backends, for the inventory and `doctor`.
//! - [`trust`]: where issuers are looked for (tokens, `[trust] ca_paths`, the system's CA
//!   store) and each certificate's issuer check, which the inventory keeps current.
//!
//! The PIN rules themselves are facts of a PIN state and live in the model
//! ([`crate::model::PinState::admit`], `check_len`, [`crate::model::pin::confirm`]): the
//! core applies them before anything is typed, every backend again right before it submits.
//!
//! *Architecture invariant*: front doors never call `token` themselves; they translate
//! their wire shapes into these calls and back.

pub mod approvals;
pub mod audit;
pub mod inspect;
mod live;
pub mod loader;
pub mod prompt;
pub mod signing;
pub mod trust;

pub use approvals::{Approvals, Requester};
pub use audit::{Audit, AuditRecord};
pub use live::{Live, LiveOptions, Subscription, Update};
pub use loader::LoadFailure;
pub use prompt::{ConsentAnswer, ConsentKind, Headless, PinAnswer, PinRequest, Prompt};
pub use signing::{Credentials, Format, Proof, SignJob, Signed, Signing};
pub use trust::{Trust, TrustProblem};

use std::collections::HashMap;
use std::sync::Arc;

use crate::cert;
use crate::error::Code;
use crate::model::{CertEntry, CertId, KeyKind, PinState};
use crate::token;

/// Why a use case failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Token(#[from] token::Error),
    #[error("certificate {0} not found")]
    CertNotFound(String),
    #[error("token {0} not found")]
    TokenNotFound(String),
    #[error("certificate {0} has no private key")]
    NoPrivateKey(String),
    #[error("certificate {id} cannot be read: {reason}")]
    CertInvalid { id: String, reason: String },
    #[error("{0}")]
    Unsupported(String),
    /// The request cannot be carried out as asked (a digest of the wrong length, CMS over a
    /// digest, a challenge out of range).
    #[error("{0}")]
    BadRequest(String),
    #[error("this caller may not send the PIN itself")]
    PagePinNotAllowed,
    /// A unified social credit code asked for that fails its GB 32100 check.
    #[error(
        "`{0}` is not a unified social credit code: 18 digits and capital letters whose last character checks the other 17 (GB 32100)"
    )]
    UsccInvalid(String),
    #[error("{0}")]
    PinRequired(&'static str),
    #[error("{0}")]
    Cancelled(&'static str),
    #[error("CMS: {0}")]
    Cms(String),
    /// The signature the backend returned does not verify with the signer certificate's
    /// key (a key that is not the certificate's, a library that hashes twice): withheld.
    #[error("the signature of certificate {id} does not verify with its public key: {reason}")]
    SignatureInvalid { id: String, reason: String },
    /// The configuration cannot be used as it is (e.g. a malformed ATR in `[[cards]]`).
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub fn code(&self) -> Code {
        match self {
            Error::Token(e) => e.code(),
            Error::CertNotFound(_) => Code::CertNotFound,
            Error::TokenNotFound(_) => Code::TokenNotFound,
            Error::NoPrivateKey(_) => Code::NoPrivateKey,
            Error::CertInvalid { .. } => Code::CertInvalid,
            Error::Unsupported(_) => Code::UnsupportedAlgorithm,
            Error::BadRequest(_) => Code::BadRequest,
            Error::UsccInvalid(_) => Code::UsccInvalid,
            Error::PagePinNotAllowed => Code::PagePinNotAllowed,
            Error::PinRequired(_) => Code::PinRequired,
            Error::Cancelled(_) => Code::UserCancelled,
            Error::Cms(_) | Error::Internal(_) => Code::Internal,
            Error::SignatureInvalid { .. } => Code::SignatureInvalid,
            Error::Config(_) => Code::ConfigInvalid,
        }
    }

    /// The token's PIN state when the error carries one.
    pub fn pin_state(&self) -> Option<PinState> {
        match self {
            Error::Token(e) => e.pin_state(),
            _ => None,
        }
    }
}

/// The kind of key a certificate signs with, or why it cannot sign (refused before any PIN
/// is asked for).
pub fn signing_key(c: &CertEntry) -> Result<KeyKind, Error> {
    let parsed = c.parsed.as_ref().map_err(|e| Error::CertInvalid {
        id: c.id.to_string(),
        reason: e.to_string(),
    })?;
    // A key the token shows only after login is looked up then (the token answers
    // NO_PRIVATE_KEY if it is not there after all).
    if !c.has_private_key.may_sign() {
        return Err(Error::NoPrivateKey(c.id.to_string()));
    }
    match parsed.key.algorithm {
        cert::KeyAlgorithm::Rsa => Ok(KeyKind::Rsa),
        cert::KeyAlgorithm::Ec => Ok(KeyKind::Ec),
        cert::KeyAlgorithm::Sm2 => Ok(KeyKind::Sm2),
        cert::KeyAlgorithm::Other => Err(Error::Unsupported(format!(
            "key algorithm {}",
            parsed.key.oid.as_deref().unwrap_or("unknown")
        ))),
    }
}

/// Whether a key of `kind` signs with `hash`, decided here once for every front door and
/// backend: SM2 signs SM3 only (GM/T 0009), RSA and ECDSA never SM3 (no PKCS#11 token nor
/// portal pairs them). Refused before any PIN is asked for.
pub fn hash_fits(kind: KeyKind, hash: crate::model::HashAlg) -> Result<(), Error> {
    use crate::model::HashAlg;
    match (kind, hash) {
        (KeyKind::Sm2, HashAlg::Sm3) => Ok(()),
        (KeyKind::Sm2, other) => Err(Error::Unsupported(format!(
            "an SM2 key signs with SM3 only, not {}: ask for hash sm3",
            other.as_str()
        ))),
        (KeyKind::Rsa | KeyKind::Ec, HashAlg::Sm3) => Err(Error::Unsupported(format!(
            "SM3 is the hash of SM2 keys; this is an {} key: ask for sha256 (or sha1, sha384, sha512)",
            if kind == KeyKind::Rsa { "RSA" } else { "EC" }
        ))),
        (KeyKind::Rsa | KeyKind::Ec, _) => Ok(()),
    }
}

/// The hash a key of `kind` signs with when the caller does not choose (authentication
/// proofs): SM3 for SM2, SHA-256 otherwise.
pub fn default_hash(kind: KeyKind) -> crate::model::HashAlg {
    match kind {
        KeyKind::Sm2 => crate::model::HashAlg::Sm3,
        KeyKind::Rsa | KeyKind::Ec => crate::model::HashAlg::Sha256,
    }
}

/// The public keys of the certificates that signed lately, each read once: every signature
/// is checked before it leaves ([`KeyCache::verify_signature`]), and setting an RSA key up
/// costs about as much as the check.
#[derive(Default)]
pub struct KeyCache {
    keys: std::sync::Mutex<HashMap<CertId, ReadKey>>,
}

/// A certificate (its DER, so that another certificate under the same id is told apart)
/// and its key.
type ReadKey = (Vec<u8>, Arc<cert::KeyVerifier>);

impl KeyCache {
    /// More certificates than one person's keys hold: past it the cache starts again.
    const MAX: usize = 256;

    /// The key of `cert`, from the cache when the same certificate (its whole DER, not
    /// only its id) was read before.
    fn key(&self, cert: &CertEntry) -> Result<Arc<cert::KeyVerifier>, cert::VerifyError> {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((der, key)) = keys.get(&cert.id)
            && *der == cert.der
        {
            return Ok(key.clone());
        }
        let key = Arc::new(cert::KeyVerifier::new(&cert.der)?);
        if keys.len() >= Self::MAX {
            keys.clear();
        }
        keys.insert(cert.id.clone(), (cert.der.clone(), key.clone()));
        Ok(key)
    }

    /// Check a signature a backend returned before it leaves: with the public key of the
    /// certificate `cert` that names the key, over what the backend was given (`input`
    /// with `hash`: RSA PKCS#1 v1.5 over the DigestInfo, ECDSA on P-256/P-384, SM2 with SM3
    /// and the default ID over M or e, as [`crate::model::SignInput`] defines them). A
    /// signature that does not verify is [`Error::SignatureInvalid`]; one certray cannot
    /// verify (a key on a curve it does not know) is refused too ([`Error::Unsupported`]):
    /// no signature leaves unverified.
    pub fn verify_signature(
        &self,
        cert: &CertEntry,
        kind: KeyKind,
        hash: crate::model::HashAlg,
        input: &crate::model::SignInput,
        signature: &[u8],
    ) -> Result<(), Error> {
        use crate::model::SignInput;
        let h = cert::HashAlg::from(hash);
        let scheme = match kind {
            KeyKind::Rsa => cert::Scheme::RsaPkcs1v15(h),
            KeyKind::Ec => cert::Scheme::Ecdsa(h),
            KeyKind::Sm2 => cert::Scheme::Sm2Sm3,
        };
        let message = match input {
            SignInput::Data(d) => cert::Message::Data(d),
            SignInput::Digest(d) => cert::Message::Digest(d),
        };
        let outcome = self
            .key(cert)
            .and_then(|key| key.verify(scheme, message, signature));
        match outcome {
            Ok(()) => Ok(()),
            Err(e @ (cert::VerifyError::BadSignature | cert::VerifyError::WrongKey { .. })) => {
                tracing::warn!(certificate = %cert.id, token = %cert.token_id, error = %e,
                    "the token's signature does not verify with its certificate: withheld");
                Err(Error::SignatureInvalid {
                    id: cert.id.to_string(),
                    reason: e.to_string(),
                })
            }
            Err(cert::VerifyError::NotACertificate(reason)) => Err(Error::CertInvalid {
                id: cert.id.to_string(),
                reason,
            }),
            Err(cert::VerifyError::Unsupported(what)) => Err(Error::Unsupported(format!(
                "the signature cannot be verified before it leaves ({what}), so it is withheld"
            ))),
        }
    }
}

/// A unified social credit code as a person types it (spaces and dashes dropped, letters
/// upper-cased), checked (GB 32100 check character); refused when it does not check.
pub fn uscc_query(code: &str) -> Result<String, Error> {
    let normal: String = code
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if cert::uscc_is_valid(&normal) {
        Ok(normal)
    } else {
        Err(Error::UsccInvalid(code.to_string()))
    }
}

/// Whether certificate `c` carries the unified social credit code `uscc` ("which of my keys
/// holds this company's certificate"): `certray list --uscc` and the bridge's `?uscc=`.
pub fn holds_uscc(c: &CertEntry, uscc: &str) -> bool {
    c.parsed
        .as_ref()
        .is_ok_and(|p| p.ids.uscc.as_deref() == Some(uscc))
}

/// A certificate object with its id, fingerprint and parsed model.
pub fn entry(obj: crate::model::CertObject) -> CertEntry {
    let parsed = cert::parse(&obj.der).map_err(|e| crate::model::Unreadable {
        reason: e.to_string(),
    });
    if let Err(e) = &parsed {
        tracing::debug!(token = %obj.token_id, label = %obj.label, error = %e, "certificate object does not parse");
    }
    CertEntry::new(obj, parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HashAlg;

    #[test]
    fn sm2_signs_sm3_only_and_sm3_is_sm2s_only() {
        assert!(hash_fits(KeyKind::Sm2, HashAlg::Sm3).is_ok());
        for h in [
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ] {
            let e = hash_fits(KeyKind::Sm2, h).unwrap_err();
            assert_eq!(e.code(), Code::UnsupportedAlgorithm);
            assert!(e.to_string().contains("SM3 only"), "{e}");
            assert!(hash_fits(KeyKind::Rsa, h).is_ok());
            assert!(hash_fits(KeyKind::Ec, h).is_ok());
        }
        for k in [KeyKind::Rsa, KeyKind::Ec] {
            let e = hash_fits(k, HashAlg::Sm3).unwrap_err();
            assert_eq!(e.code(), Code::UnsupportedAlgorithm);
        }
        assert_eq!(default_hash(KeyKind::Sm2), HashAlg::Sm3);
        assert_eq!(default_hash(KeyKind::Rsa), HashAlg::Sha256);
    }

    /// A self-signed SM2 certificate's signature is its own key's over the TBS bytes
    /// (SM3 with the default ID): what a token returns for a sign request.
    fn self_signed(file: &str) -> (CertEntry, Vec<u8>, Vec<u8>) {
        let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
        let der = std::fs::read(&path).expect("fixture");
        let (_, x) = x509_parser::parse_x509_certificate(&der).expect("certificate");
        let tbs = x.tbs_certificate.as_ref().to_vec();
        let signature = x.signature_value.data.to_vec();
        let entry = entry(crate::model::CertObject {
            token_id: "t-test".into(),
            label: file.into(),
            key_id: vec![1],
            der,
            has_private_key: crate::model::KeyPresence::Yes,
        });
        (entry, tbs, signature)
    }

    #[test]
    fn key_cache_checks_every_signature_and_never_serves_another_certificates_key() {
        use crate::model::SignInput;
        let keys = KeyCache::default();
        let (sm2, tbs, signature) = self_signed("sample-sm2.der");
        let check = |cert: &CertEntry, data: &[u8]| {
            keys.verify_signature(
                cert,
                KeyKind::Sm2,
                HashAlg::Sm3,
                &SignInput::Data(data.to_vec()),
                &signature,
            )
        };
        check(&sm2, &tbs).expect("the certificate's own signature");
        check(&sm2, &tbs).expect("again, with the key read before");
        assert_eq!(keys.keys.lock().unwrap().len(), 1);
        // The cached key still refuses a signature over other data.
        let mut altered = tbs.clone();
        altered[10] ^= 1;
        let e = check(&sm2, &altered).unwrap_err();
        assert_eq!(e.code(), Code::SignatureInvalid, "{e}");
        // Another certificate under the same id (a token rewritten between two requests):
        // its own key is read, the SM2 key is not used for it.
        let (rsa, _, _) = self_signed("sample-rsa-utf8.der");
        let impostor = CertEntry {
            id: sm2.id.clone(),
            ..rsa
        };
        let e = check(&impostor, &tbs).unwrap_err();
        assert_eq!(e.code(), Code::SignatureInvalid, "{e}");
        assert!(e.to_string().contains("RSA"), "{e}");
    }
}
