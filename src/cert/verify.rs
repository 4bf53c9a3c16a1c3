//! Signatures checked with public keys, as pure functions of bytes: a certificate's
//! signature with its issuer's key (found among candidate certificates), the chain above a
//! certificate, and a signature over any data with a certificate's key (what the BJCA
//! protocol's `SOF_VerifySignedData` / `SOF_ValidateCert` need).
//!
//! Algorithms: RSA PKCS#1 v1.5 (SHA-1, SHA-224/256/384/512, SM3) and RSASSA-PSS (SHA-1,
//! SHA-2; MGF1 with the same hash), ECDSA on P-256 and P-384 (SHA-1, SHA-2), and SM2 with
//! SM3 and the default user ID `1234567812345678` (GB/T 35276, GM/T 0009). The RustCrypto
//! crates `rsa`, `p256`, `p384`, `sm2` do the arithmetic.
//!
//! Nothing here looks at time, revocation, key usage or basic constraints: that is policy,
//! and "issuer verified" means only that the issuer's key made the signature.

use std::borrow::Cow;

use x509_parser::asn1_rs::Tag;
use x509_parser::certificate::X509Certificate;
use x509_parser::signature_algorithm::SignatureAlgorithm;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

use super::text::{self, tag};
use super::{Error, curve, name, sha256_hex};
use crate::model::CertId;
/// Why a chain stops where it does: the model's own type, which the core hands on as is.
pub use crate::model::ChainEnd;
use crate::model::certificate::same_name;

/// The user ID (distinguishing identifier) SM2 signatures use unless agreed otherwise
/// (GM/T 0009-2012 §10): its bits go into Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA).
pub const SM2_DEFAULT_ID: &str = "1234567812345678";

/// How many certificates [`Candidates::chain`] puts in a chain at most, the certificate
/// asked about included.
pub const MAX_CHAIN_LEN: usize = 8;

/// A message digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
    Sm3,
}

impl HashAlg {
    /// `SHA-1`, `SHA-224`, `SHA-256`, `SHA-384`, `SHA-512`, `SM3`.
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA-1",
            HashAlg::Sha224 => "SHA-224",
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
            HashAlg::Sm3 => "SM3",
        }
    }

    /// The digest of `data`.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            HashAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            HashAlg::Sha224 => sha2::Sha224::digest(data).to_vec(),
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
            HashAlg::Sm3 => sm3::Sm3::digest(data).to_vec(),
        }
    }

    /// By the digest algorithm's dotted OID.
    fn from_oid(oid: &str) -> Option<HashAlg> {
        Some(match oid {
            "1.3.14.3.2.26" => HashAlg::Sha1,
            "2.16.840.1.101.3.4.2.4" => HashAlg::Sha224,
            "2.16.840.1.101.3.4.2.1" => HashAlg::Sha256,
            "2.16.840.1.101.3.4.2.2" => HashAlg::Sha384,
            "2.16.840.1.101.3.4.2.3" => HashAlg::Sha512,
            "1.2.156.10197.1.401" => HashAlg::Sm3,
            _ => return None,
        })
    }
}

/// The one mapping from the hash a caller asks to sign with to the verifier's (which also
/// knows SHA-224, for certificates).
impl From<crate::model::HashAlg> for HashAlg {
    fn from(h: crate::model::HashAlg) -> HashAlg {
        use crate::model::HashAlg as M;
        match h {
            M::Sha1 => HashAlg::Sha1,
            M::Sha256 => HashAlg::Sha256,
            M::Sha384 => HashAlg::Sha384,
            M::Sha512 => HashAlg::Sha512,
            M::Sm3 => HashAlg::Sm3,
        }
    }
}

/// What a signature was made over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// The message itself: hashed with the scheme's hash (for SM2: e = SM3(Z ‖ M), Z from
    /// the key and [`SM2_DEFAULT_ID`]).
    Data(&'a [u8]),
    /// Its digest with the scheme's hash (for SM2: e itself, Z included).
    Digest(&'a [u8]),
}

impl<'a> Message<'a> {
    fn digest(self, hash: HashAlg) -> Cow<'a, [u8]> {
        match self {
            Message::Data(d) => Cow::Owned(hash.digest(d)),
            Message::Digest(d) => Cow::Borrowed(d),
        }
    }
}

/// A signature scheme: what the signature is and how the data was hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// RSASSA-PKCS1-v1_5 (`sha256WithRSAEncryption`, SGD_SHA256_RSA …).
    RsaPkcs1v15(HashAlg),
    /// RSASSA-PSS with MGF1 over the same hash and this salt length.
    RsaPss { hash: HashAlg, salt_len: usize },
    /// ECDSA on the key's curve (P-256 or P-384).
    Ecdsa(HashAlg),
    /// SM2 with SM3 and [`SM2_DEFAULT_ID`] (SGD_SM3_SM2).
    Sm2Sm3,
}

impl Scheme {
    fn name(self) -> String {
        match self {
            Scheme::RsaPkcs1v15(h) => format!("RSA PKCS#1 v1.5 with {}", h.as_str()),
            Scheme::RsaPss { hash, .. } => format!("RSA-PSS with {}", hash.as_str()),
            Scheme::Ecdsa(h) => format!("ECDSA with {}", h.as_str()),
            Scheme::Sm2Sm3 => "SM2 with SM3".to_owned(),
        }
    }
}

/// Why a signature over data was not verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The certificate bytes are not a certificate.
    #[error("not an X.509 certificate: {0}")]
    NotACertificate(String),
    /// The signature is not one this key made over this data (or is malformed).
    #[error("the signature does not verify")]
    BadSignature,
    /// The scheme cannot be used with the certificate's key (an SM2 signature and an RSA
    /// key, say).
    #[error("{scheme} signatures cannot be made with a {key} key")]
    WrongKey { scheme: String, key: String },
    /// The key or the scheme is one certray does not verify.
    #[error("not supported: {0}")]
    Unsupported(String),
}

impl VerifyError {
    /// The user-facing code: an unreadable certificate is `CERT_INVALID`, everything else
    /// is a signature that could not be verified.
    pub fn code(&self) -> crate::error::Code {
        crate::error::Code::CertInvalid
    }
}

/// Verify `signature` over `data` with the public key of the certificate `cert` (DER).
///
/// ECDSA and SM2 signatures may be DER (`SEQUENCE { r INTEGER, s INTEGER }`) or raw
/// `r ‖ s` (each as wide as the curve's order): DER is tried first.
pub fn verify_data(
    cert: &[u8],
    scheme: Scheme,
    data: &[u8],
    signature: &[u8],
) -> Result<(), VerifyError> {
    verify_message(cert, scheme, Message::Data(data), signature)
}

/// [`verify_data`] over data or a digest computed elsewhere ([`Message`]).
pub fn verify_message(
    cert: &[u8],
    scheme: Scheme,
    message: Message<'_>,
    signature: &[u8],
) -> Result<(), VerifyError> {
    KeyVerifier::new(cert)?.verify(scheme, message, signature)
}

/// The public key of a certificate, read once, for a caller that checks many signatures
/// of one key ([`verify_message`] reads the certificate and sets the key up on every call;
/// an RSA key's set-up costs about as much as the check itself).
pub struct KeyVerifier {
    key: PublicKey,
}

impl KeyVerifier {
    /// The key of the certificate `cert` (DER).
    pub fn new(cert: &[u8]) -> Result<KeyVerifier, VerifyError> {
        let x509 =
            super::parse::x509(cert).map_err(|e| VerifyError::NotACertificate(e.to_string()))?;
        let key = PublicKey::from_spki(&x509.tbs_certificate.subject_pki)
            .map_err(|e| VerifyError::Unsupported(e.to_string()))?;
        Ok(KeyVerifier { key })
    }

    /// [`verify_message`] with this key.
    pub fn verify(
        &self,
        scheme: Scheme,
        message: Message<'_>,
        signature: &[u8],
    ) -> Result<(), VerifyError> {
        match self.key.verify(scheme, message, signature) {
            Outcome::Good => Ok(()),
            Outcome::Bad => Err(VerifyError::BadSignature),
            Outcome::WrongKey => Err(VerifyError::WrongKey {
                scheme: scheme.name(),
                key: self.key.name().to_owned(),
            }),
        }
    }
}

/// A certificate among the candidates (or the certificate itself), as a result names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerRef {
    /// Its index in the candidates; `None` when it is the certificate itself (self-signed).
    pub index: Option<usize>,
    /// Its certificate id (`c-` + SHA-256 prefix, as [`super::Certificate::id`]).
    pub id: CertId,
    /// Its subject DN (RFC 4514, as [`super::Name::dn`]).
    pub subject: String,
}

/// What checking a certificate's signature against its issuer found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerStatus {
    /// The issuer's key made the signature (颁发者已验证).
    Verified { issuer: IssuerRef },
    /// An issuer was found (name and key identifier match) but its key did not make the
    /// signature: the certificate was altered or is forged.
    SignatureInvalid { issuer: IssuerRef },
    /// No candidate has the issuer's name (with a matching key identifier).
    IssuerNotFound,
    /// The issuer was found but its key or the signature algorithm is one certray does not
    /// verify.
    Unsupported {
        issuer: IssuerRef,
        algorithm: String,
    },
}

impl IssuerStatus {
    /// Stable name for JSON: `verified`, `signature_invalid`, `issuer_not_found`,
    /// `unsupported`.
    pub fn code(&self) -> &'static str {
        match self {
            IssuerStatus::Verified { .. } => "verified",
            IssuerStatus::SignatureInvalid { .. } => "signature_invalid",
            IssuerStatus::IssuerNotFound => "issuer_not_found",
            IssuerStatus::Unsupported { .. } => "unsupported",
        }
    }

    /// True for [`IssuerStatus::Verified`].
    pub fn is_verified(&self) -> bool {
        matches!(self, IssuerStatus::Verified { .. })
    }

    /// The issuer that was found, if any.
    pub fn issuer(&self) -> Option<&IssuerRef> {
        match self {
            IssuerStatus::Verified { issuer }
            | IssuerStatus::SignatureInvalid { issuer }
            | IssuerStatus::Unsupported { issuer, .. } => Some(issuer),
            IssuerStatus::IssuerNotFound => None,
        }
    }
}

/// One certificate of a chain and what checking its signature found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLink {
    /// Its index in the candidates; `None` for the certificate the chain was built for.
    pub index: Option<usize>,
    pub id: CertId,
    pub subject: String,
    /// Its signature against the next link (or itself, for a root).
    pub status: IssuerStatus,
}

/// A certificate and the issuers above it, the certificate first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    pub links: Vec<ChainLink>,
    pub end: ChainEnd,
}

impl Chain {
    /// True when every link verified up to a self-signed root.
    pub fn complete(&self) -> bool {
        self.end == ChainEnd::Root
    }
}

/// Candidate issuer certificates, parsed once (a token's certificates, the system store,
/// the files `[trust] ca_paths` names). Candidates that do not parse are left out.
pub struct Candidates<'a> {
    certs: Vec<(usize, Parsed<'a>)>,
}

impl<'a> Candidates<'a> {
    /// Parse candidate certificates (DER); their indexes are what results report.
    pub fn new(ders: &[&'a [u8]]) -> Candidates<'a> {
        Candidates {
            certs: ders
                .iter()
                .enumerate()
                .filter_map(|(i, der)| Parsed::new(der).ok().map(|p| (i, p)))
                .collect(),
        }
    }

    /// Find the issuer of `cert` (DER) and check its signature.
    ///
    /// The issuer is a candidate whose subject is the certificate's issuer name (the same
    /// bytes, or the same text without regard to case and spacing) and whose subject key
    /// identifier, when both it and the certificate's authority key identifier are present,
    /// is that identifier. A self-issued certificate is first checked against its own key.
    /// When several candidates qualify (a CA's renewed keys), the first whose key made the
    /// signature is the issuer; when none did, the result names the first one whose key
    /// identifier matched, else the first tried.
    pub fn verify_issuer(&self, cert: &[u8]) -> Result<IssuerStatus, Error> {
        let parsed = Parsed::new(cert)?;
        Ok(self.issuer_of(&parsed))
    }

    /// The chain above `cert` (DER) through the candidates, at most `max_len`
    /// certificates long (`cert` included; [`MAX_CHAIN_LEN`] is a sensible bound). A
    /// certificate already in the chain ends it ([`ChainEnd::Loop`]).
    pub fn chain(&self, cert: &[u8], max_len: usize) -> Result<Chain, Error> {
        let first = Parsed::new(cert)?;
        let mut links: Vec<ChainLink> = Vec::new();
        let mut seen = vec![first.sha256.clone()];
        let mut current: (&Parsed<'_>, Option<usize>) = (&first, None);
        loop {
            let (cert, index) = current;
            let status = self.issuer_of(cert);
            let next = match &status {
                IssuerStatus::Verified {
                    issuer:
                        IssuerRef {
                            index: Some(next), ..
                        },
                } => Some(*next),
                _ => None,
            };
            let end = match &status {
                IssuerStatus::Verified { issuer } if issuer.index.is_none() => Some(ChainEnd::Root),
                IssuerStatus::Verified { .. } => None,
                IssuerStatus::SignatureInvalid { .. } => Some(ChainEnd::SignatureInvalid),
                IssuerStatus::IssuerNotFound => Some(ChainEnd::IssuerNotFound),
                IssuerStatus::Unsupported { .. } => Some(ChainEnd::Unsupported),
            };
            links.push(ChainLink {
                index,
                id: CertId::from_sha256(&cert.sha256),
                subject: cert.subject_dn.clone(),
                status,
            });
            if let Some(end) = end {
                return Ok(Chain { links, end });
            }
            let Some((next_index, next)) = next
                .and_then(|n| self.certs.iter().find(|(i, _)| *i == n))
                .map(|(i, p)| (*i, p))
            else {
                return Ok(Chain {
                    links,
                    end: ChainEnd::IssuerNotFound,
                });
            };
            if seen.contains(&next.sha256) {
                return Ok(Chain {
                    links,
                    end: ChainEnd::Loop,
                });
            }
            if links.len() >= max_len {
                return Ok(Chain {
                    links,
                    end: ChainEnd::TooLong,
                });
            }
            seen.push(next.sha256.clone());
            current = (next, Some(next_index));
        }
    }

    fn issuer_of(&self, cert: &Parsed<'_>) -> IssuerStatus {
        // (reference, key identifier matched, outcome)
        let mut tried: Vec<(IssuerRef, bool, Result<Outcome, String>)> = Vec::new();
        if cert.self_issued() && cert.key_id_fits(cert) {
            let outcome = cert.signed_by(cert);
            if matches!(outcome, Ok(Outcome::Good)) {
                return IssuerStatus::Verified {
                    issuer: cert.reference(None),
                };
            }
            tried.push((cert.reference(None), cert.key_id_matches(cert), outcome));
        }
        for (i, candidate) in &self.certs {
            if candidate.sha256 == cert.sha256
                || !cert.issuer_is(candidate)
                || !cert.key_id_fits(candidate)
            {
                continue;
            }
            let outcome = cert.signed_by(candidate);
            if matches!(outcome, Ok(Outcome::Good)) {
                return IssuerStatus::Verified {
                    issuer: candidate.reference(Some(*i)),
                };
            }
            tried.push((
                candidate.reference(Some(*i)),
                cert.key_id_matches(candidate),
                outcome,
            ));
        }
        let best = tried
            .iter()
            .position(|(_, matched, _)| *matched)
            .unwrap_or(0);
        match tried.into_iter().nth(best) {
            None => IssuerStatus::IssuerNotFound,
            Some((issuer, _, Err(algorithm))) => IssuerStatus::Unsupported { issuer, algorithm },
            Some((issuer, _, Ok(_))) => IssuerStatus::SignatureInvalid { issuer },
        }
    }
}

/// [`Candidates::verify_issuer`] over candidates given once.
pub fn verify_issuer(cert: &[u8], candidates: &[&[u8]]) -> Result<IssuerStatus, Error> {
    Candidates::new(candidates).verify_issuer(cert)
}

/// [`Candidates::chain`] over candidates given once, at most [`MAX_CHAIN_LEN`] long.
pub fn build_chain(cert: &[u8], candidates: &[&[u8]]) -> Result<Chain, Error> {
    Candidates::new(candidates).chain(cert, MAX_CHAIN_LEN)
}

/// A certificate read for chain building.
struct Parsed<'a> {
    x509: X509Certificate<'a>,
    sha256: String,
    subject_dn: String,
    issuer_dn: String,
    subject_key_id: Option<Vec<u8>>,
    authority_key_id: Option<Vec<u8>>,
    /// See [`algorithms_match`].
    algorithms_match: bool,
}

impl<'a> Parsed<'a> {
    fn new(der: &'a [u8]) -> Result<Parsed<'a>, Error> {
        let x509 = super::parse::x509(der)?;
        let tbs = &x509.tbs_certificate;
        let extension = |oid: &str| {
            tbs.extensions()
                .iter()
                .find(|e| e.oid.to_id_string() == oid)
                .map(|e| e.value)
        };
        // SubjectKeyIdentifier ::= OCTET STRING
        let subject_key_id = extension("2.5.29.14").and_then(|v| match text::read_tlv(v) {
            Some((tag::OCTET_STRING, id, [])) => Some(id.to_vec()),
            _ => None,
        });
        // AuthorityKeyIdentifier ::= SEQUENCE { keyIdentifier [0] IMPLICIT OCTET STRING
        //     OPTIONAL, … }
        let authority_key_id = extension("2.5.29.35").and_then(|v| match text::read_tlv(v) {
            Some((tag::SEQUENCE, content, [])) => text::elements(content)
                .find(|(id, _)| *id == 0x80)
                .map(|(_, id)| id.to_vec()),
            _ => None,
        });
        Ok(Parsed {
            algorithms_match: algorithms_match(der),
            sha256: sha256_hex(der),
            subject_dn: name::read_name(&tbs.subject).0.dn,
            issuer_dn: name::read_name(&tbs.issuer).0.dn,
            subject_key_id,
            authority_key_id,
            x509,
        })
    }

    fn reference(&self, index: Option<usize>) -> IssuerRef {
        IssuerRef {
            index,
            id: CertId::from_sha256(&self.sha256),
            subject: self.subject_dn.clone(),
        }
    }

    fn self_issued(&self) -> bool {
        self.issuer_is(self)
    }

    /// `candidate`'s subject is this certificate's issuer.
    fn issuer_is(&self, candidate: &Parsed<'_>) -> bool {
        let issuer = self.x509.tbs_certificate.issuer.as_raw();
        let subject = candidate.x509.tbs_certificate.subject.as_raw();
        issuer == subject || same_name(&self.issuer_dn, &candidate.subject_dn)
    }

    /// The key identifiers do not contradict (either is absent, or they are equal).
    fn key_id_fits(&self, candidate: &Parsed<'_>) -> bool {
        match (&self.authority_key_id, &candidate.subject_key_id) {
            (Some(aki), Some(ski)) => aki == ski,
            _ => true,
        }
    }

    /// The key identifiers are both present and equal.
    fn key_id_matches(&self, candidate: &Parsed<'_>) -> bool {
        matches!(
            (&self.authority_key_id, &candidate.subject_key_id),
            (Some(aki), Some(ski)) if aki == ski
        )
    }

    /// Whether `issuer`'s key made this certificate's signature; `Err` names what is not
    /// supported.
    ///
    /// As OpenSSL does, the signature algorithm outside the signed part must be the one
    /// inside it (the outer one is not signed), and the signature BIT STRING must have no
    /// unused bits: else the signature is bad.
    fn signed_by(&self, issuer: &Parsed<'_>) -> Result<Outcome, String> {
        let scheme = certificate_scheme(&self.x509.signature_algorithm)?;
        let key = PublicKey::from_spki(&issuer.x509.tbs_certificate.subject_pki)
            .map_err(|e| e.to_string())?;
        if !self.algorithms_match || self.x509.signature_value.unused_bits != 0 {
            return Ok(Outcome::Bad);
        }
        let signature: Cow<'_, [u8]> = self.x509.signature_value.data.clone();
        Ok(key.verify(
            scheme,
            Message::Data(self.x509.tbs_certificate.as_ref()),
            &signature,
        ))
    }
}

/// One whole DER element and what follows it.
fn element(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (id, _, rest) = text::read_tlv(input)?;
    Some((id, input.get(..input.len() - rest.len())?, rest))
}

/// The outer signatureAlgorithm is the TBSCertificate's signature field, byte for byte
/// (OpenSSL's X509_verify compares them too: the outer one is not signed).
fn algorithms_match(der: &[u8]) -> bool {
    let raw = || -> Option<bool> {
        let (tag::SEQUENCE, certificate, []) = text::read_tlv(der)? else {
            return None;
        };
        let (tag::SEQUENCE, tbs, after_tbs) = element(certificate)? else {
            return None;
        };
        let (_, outer, _) = element(after_tbs)?;
        let (_, tbs_content, _) = text::read_tlv(tbs)?;
        let (first, _, mut rest) = element(tbs_content)?;
        if first == 0xA0 {
            rest = element(rest)?.2; // version, then the serial number
        }
        let (_, inner, _) = element(rest)?;
        Some(inner == outer)
    };
    raw().unwrap_or(false)
}

/// The scheme of a certificate's signatureAlgorithm, or the name of what is unsupported.
fn certificate_scheme(alg: &AlgorithmIdentifier<'_>) -> Result<Scheme, String> {
    let oid = alg.algorithm.to_id_string();
    let rsa = |h| Ok(Scheme::RsaPkcs1v15(h));
    let ecdsa = |h| Ok(Scheme::Ecdsa(h));
    match oid.as_str() {
        "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" => rsa(HashAlg::Sha1),
        "1.2.840.113549.1.1.14" => rsa(HashAlg::Sha224),
        "1.2.840.113549.1.1.11" => rsa(HashAlg::Sha256),
        "1.2.840.113549.1.1.12" => rsa(HashAlg::Sha384),
        "1.2.840.113549.1.1.13" => rsa(HashAlg::Sha512),
        "1.2.156.10197.1.504" => rsa(HashAlg::Sm3),
        "1.2.840.10045.4.1" => ecdsa(HashAlg::Sha1),
        "1.2.840.10045.4.3.1" => ecdsa(HashAlg::Sha224),
        "1.2.840.10045.4.3.2" => ecdsa(HashAlg::Sha256),
        "1.2.840.10045.4.3.3" => ecdsa(HashAlg::Sha384),
        "1.2.840.10045.4.3.4" => ecdsa(HashAlg::Sha512),
        "1.2.156.10197.1.501" => Ok(Scheme::Sm2Sm3),
        "1.2.840.113549.1.1.10" => pss_scheme(alg),
        _ => Err(oid),
    }
}

fn pss_scheme(alg: &AlgorithmIdentifier<'_>) -> Result<Scheme, String> {
    let unsupported = |what: &str| Err(format!("RSASSA-PSS ({what})"));
    let Ok(SignatureAlgorithm::RSASSA_PSS(params)) = SignatureAlgorithm::try_from(alg) else {
        return unsupported("unreadable parameters");
    };
    let Some(hash) = HashAlg::from_oid(&params.hash_algorithm_oid().to_id_string()) else {
        return unsupported("hash");
    };
    match params.mask_gen_algorithm() {
        Ok(mgf)
            if mgf.mgf.to_id_string() == "1.2.840.113549.1.1.8"
                && HashAlg::from_oid(&mgf.hash.to_id_string()) == Some(hash) => {}
        _ => return unsupported("mask generation"),
    }
    if params.trailer_field() != 1 || hash == HashAlg::Sm3 {
        return unsupported("parameters");
    }
    Ok(Scheme::RsaPss {
        hash,
        salt_len: usize::try_from(params.salt_length()).unwrap_or(usize::MAX),
    })
}

/// The result of checking one signature with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Good,
    Bad,
    /// The scheme does not go with the key's type.
    WrongKey,
}

/// ring's RSA PKCS#1 v1.5 algorithm for `hash` and a modulus of `bytes` bytes, where it
/// has one.
fn ring_pkcs1v15(hash: HashAlg, bytes: usize) -> Option<&'static ring::signature::RsaParameters> {
    use ring::signature as r;
    match (hash, bytes * 8) {
        (HashAlg::Sha256, 2048..) => Some(&r::RSA_PKCS1_2048_8192_SHA256),
        (HashAlg::Sha384, 2048..) => Some(&r::RSA_PKCS1_2048_8192_SHA384),
        (HashAlg::Sha512, 2048..) => Some(&r::RSA_PKCS1_2048_8192_SHA512),
        (HashAlg::Sha1, 2048..) => Some(&r::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY),
        (HashAlg::Sha1, 1024..) => Some(&r::RSA_PKCS1_1024_8192_SHA1_FOR_LEGACY_USE_ONLY),
        (HashAlg::Sha256, 1024..) => Some(&r::RSA_PKCS1_1024_8192_SHA256_FOR_LEGACY_USE_ONLY),
        (HashAlg::Sha512, 1024..) => Some(&r::RSA_PKCS1_1024_8192_SHA512_FOR_LEGACY_USE_ONLY),
        _ => None,
    }
}

/// A public key certray can verify with.
enum PublicKey {
    /// The key, and its PKCS#1 `RSAPublicKey` DER (what ring reads).
    Rsa(rsa::PublicKey, Vec<u8>),
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    /// The uncompressed or compressed SEC 1 point (the verifying key is made per user ID).
    Sm2(Vec<u8>),
}

impl PublicKey {
    fn name(&self) -> &'static str {
        match self {
            PublicKey::Rsa(..) => "RSA",
            PublicKey::P256(_) => "P-256",
            PublicKey::P384(_) => "P-384",
            PublicKey::Sm2(_) => "SM2",
        }
    }

    /// The key of a SubjectPublicKeyInfo. Errors name what is unsupported or broken.
    fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<PublicKey, KeyError> {
        let algorithm = spki.algorithm.algorithm.to_id_string();
        let bits: &[u8] = &spki.subject_public_key.data;
        match algorithm.as_str() {
            // rsaEncryption, RSASSA-PSS keys
            "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => {
                use rsa::pkcs1::DecodeRsaPublicKey;
                rsa::PublicKey::from_pkcs1_der(bits)
                    .map(|key| PublicKey::Rsa(key, bits.to_vec()))
                    .map_err(|e| KeyError::Broken(format!("RSA key: {e}")))
            }
            // SM2 as the algorithm itself
            "1.2.156.10197.1.301" => Ok(PublicKey::Sm2(bits.to_vec())),
            // id-ecPublicKey
            "1.2.840.10045.2.1" => {
                let params = spki.algorithm.parameters.as_ref();
                let curve = match params.map(|p| (p.header.tag(), p.data)) {
                    Some((Tag::Oid, oid)) => text::oid_to_string(oid).unwrap_or_default(),
                    Some((Tag::Sequence, explicit)) => curve::by_parameters(explicit)
                        .map(|c| c.name.to_owned())
                        .ok_or_else(|| {
                            KeyError::Unsupported("an EC key on an unknown curve".into())
                        })?,
                    _ => return Err(KeyError::Unsupported("an EC key without a curve".into())),
                };
                let broken = |_| KeyError::Broken(format!("{curve} key"));
                match curve.as_str() {
                    "1.2.840.10045.3.1.7" | "P-256" => {
                        p256::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                            .map(PublicKey::P256)
                            .map_err(broken)
                    }
                    "1.3.132.0.34" | "P-384" => p384::ecdsa::VerifyingKey::from_sec1_bytes(bits)
                        .map(PublicKey::P384)
                        .map_err(broken),
                    "1.2.156.10197.1.301" | "SM2" => Ok(PublicKey::Sm2(bits.to_vec())),
                    other => Err(KeyError::Unsupported(format!("an EC key on curve {other}"))),
                }
            }
            other => Err(KeyError::Unsupported(format!("a key of algorithm {other}"))),
        }
    }

    fn verify(&self, scheme: Scheme, message: Message<'_>, signature: &[u8]) -> Outcome {
        let good = |ok: bool| if ok { Outcome::Good } else { Outcome::Bad };
        match (self, scheme) {
            (PublicKey::Rsa(key, pkcs1), Scheme::RsaPkcs1v15(hash)) => {
                // ring first, over data (it hashes itself): a yes is final. A no may also
                // be a key ring will not take (its exponent and size bounds), so the rsa
                // crate decides every no, and every digest.
                if let (Message::Data(data), Some(algorithm)) = (
                    message,
                    ring_pkcs1v15(hash, rsa::traits::PublicKeyParts::size(key)),
                ) && ring::signature::UnparsedPublicKey::new(algorithm, pkcs1)
                    .verify(data, signature)
                    .is_ok()
                {
                    return Outcome::Good;
                }
                let padding = match hash {
                    HashAlg::Sha1 => rsa::Pkcs1v15Sign::new::<sha1::Sha1>(),
                    HashAlg::Sha224 => rsa::Pkcs1v15Sign::new::<sha2::Sha224>(),
                    HashAlg::Sha256 => rsa::Pkcs1v15Sign::new::<sha2::Sha256>(),
                    HashAlg::Sha384 => rsa::Pkcs1v15Sign::new::<sha2::Sha384>(),
                    HashAlg::Sha512 => rsa::Pkcs1v15Sign::new::<sha2::Sha512>(),
                    HashAlg::Sm3 => rsa::Pkcs1v15Sign::new::<sm3::Sm3>(),
                };
                good(
                    key.verify(padding, &message.digest(hash), signature)
                        .is_ok(),
                )
            }
            (PublicKey::Rsa(key, _), Scheme::RsaPss { hash, salt_len }) => {
                let hashed = message.digest(hash);
                let ok = match hash {
                    HashAlg::Sha1 => key.verify(
                        rsa::Pss::<sha1::Sha1>::new_with_salt(salt_len),
                        &hashed,
                        signature,
                    ),
                    HashAlg::Sha224 => key.verify(
                        rsa::Pss::<sha2::Sha224>::new_with_salt(salt_len),
                        &hashed,
                        signature,
                    ),
                    HashAlg::Sha256 => key.verify(
                        rsa::Pss::<sha2::Sha256>::new_with_salt(salt_len),
                        &hashed,
                        signature,
                    ),
                    HashAlg::Sha384 => key.verify(
                        rsa::Pss::<sha2::Sha384>::new_with_salt(salt_len),
                        &hashed,
                        signature,
                    ),
                    HashAlg::Sha512 => key.verify(
                        rsa::Pss::<sha2::Sha512>::new_with_salt(salt_len),
                        &hashed,
                        signature,
                    ),
                    HashAlg::Sm3 => key.verify(
                        rsa::Pss::<sm3::Sm3>::new_with_salt(salt_len),
                        &hashed,
                        signature,
                    ),
                };
                good(ok.is_ok())
            }
            (PublicKey::P256(key), Scheme::Ecdsa(hash)) if hash != HashAlg::Sm3 => {
                use p256::ecdsa::signature::hazmat::PrehashVerifier;
                let ok = ec_signature(signature, 32)
                    .and_then(|rs| p256::ecdsa::Signature::from_slice(&rs).ok())
                    .is_some_and(|sig| key.verify_prehash(&message.digest(hash), &sig).is_ok());
                good(ok)
            }
            (PublicKey::P384(key), Scheme::Ecdsa(hash)) if hash != HashAlg::Sm3 => {
                use p384::ecdsa::signature::hazmat::PrehashVerifier;
                let ok = ec_signature(signature, 48)
                    .and_then(|rs| p384::ecdsa::Signature::from_slice(&rs).ok())
                    .is_some_and(|sig| key.verify_prehash(&message.digest(hash), &sig).is_ok());
                good(ok)
            }
            (PublicKey::Sm2(point), Scheme::Sm2Sm3) => {
                use sm2::dsa::signature::Verifier;
                use sm2::dsa::signature::hazmat::PrehashVerifier;
                let Ok(key) = sm2::dsa::VerifyingKey::from_sec1_bytes(SM2_DEFAULT_ID, point) else {
                    return Outcome::Bad;
                };
                let ok = ec_signature(signature, 32)
                    .and_then(|rs| sm2::dsa::Signature::from_slice(&rs).ok())
                    .is_some_and(|sig| match message {
                        Message::Data(data) => key.verify(data, &sig).is_ok(),
                        Message::Digest(e) => key.verify_prehash(e, &sig).is_ok(),
                    });
                good(ok)
            }
            _ => Outcome::WrongKey,
        }
    }
}

/// sm2p256v1's a, b, xG, yG (GB/T 32918.5-2017), in the order Z hashes them.
const SM2_CURVE_ABG: [&str; 4] = [
    "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC",
    "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93",
    "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7",
    "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0",
];

/// e = SM3(Z ‖ M), what an SM2 key signs for the message `message` (GM/T 0009 §6.1, GB/T
/// 32918.2 §6.1), with Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖ xA ‖ yA) from the public key
/// (an uncompressed SEC 1 point, 65 bytes: what an SM2 SubjectPublicKeyInfo and an SKF
/// `ECCPUBLICKEYBLOB`'s X, Y give) and the user ID `id` (usually [`SM2_DEFAULT_ID`]).
/// For a backend whose key signs e (SKF's `SKF_ECCSignData`); `None`: not such a point, or
/// an ID longer than 8191 bytes.
pub fn sm2_e(public_point: &[u8], id: &[u8], message: &[u8]) -> Option<[u8; 32]> {
    use sm3::Digest;
    let [0x04, xy @ ..] = public_point else {
        return None;
    };
    if xy.len() != 64 {
        return None;
    }
    let entl = u16::try_from(id.len().checked_mul(8)?).ok()?;
    let mut z = sm3::Sm3::new();
    z.update(entl.to_be_bytes());
    z.update(id);
    for hex_value in SM2_CURVE_ABG {
        z.update(hex::decode(hex_value).ok()?);
    }
    z.update(xy);
    let mut e = sm3::Sm3::new();
    e.update(z.finalize());
    e.update(message);
    Some(e.finalize().into())
}

/// Why a SubjectPublicKeyInfo gives no key.
#[derive(Debug, thiserror::Error)]
enum KeyError {
    #[error("{0}")]
    Unsupported(String),
    #[error("a broken {0}")]
    Broken(String),
}

/// `r ‖ s`, each `size` bytes, from a DER `SEQUENCE { INTEGER, INTEGER }` (read leniently:
/// leading zero bytes are dropped, short values padded) or from raw `r ‖ s` of `2 × size`
/// bytes.
fn ec_signature(signature: &[u8], size: usize) -> Option<Vec<u8>> {
    let from_der = || {
        let (tag::SEQUENCE, content, []) = text::read_tlv(signature)? else {
            return None;
        };
        let mut parts = text::elements(content);
        let (tag::INTEGER, r) = parts.next()? else {
            return None;
        };
        let (tag::INTEGER, s) = parts.next()? else {
            return None;
        };
        if parts.next().is_some() {
            return None;
        }
        let mut out = Vec::with_capacity(2 * size);
        for int in [r, s] {
            let zeros = int.iter().take_while(|&&b| b == 0).count();
            let value = int.get(zeros..)?;
            if value.len() > size {
                return None;
            }
            out.extend(std::iter::repeat_n(0, size - value.len()));
            out.extend_from_slice(value);
        }
        Some(out)
    };
    from_der().or_else(|| (signature.len() == 2 * size).then(|| signature.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_signatures_from_der_and_raw() {
        let mut der = Vec::new();
        let mut ints = Vec::new();
        text::push_tlv(&mut ints, tag::INTEGER, &[0x00, 0x80, 0x01]);
        text::push_tlv(&mut ints, tag::INTEGER, &[0x05]);
        text::push_tlv(&mut der, tag::SEQUENCE, &ints);
        let mut want = vec![0u8; 8];
        want[2] = 0x80;
        want[3] = 0x01;
        want[7] = 0x05;
        assert_eq!(ec_signature(&der, 4), Some(want));
        let raw = [7u8; 8];
        assert_eq!(ec_signature(&raw, 4), Some(raw.to_vec()));
        assert_eq!(ec_signature(&raw[..7], 4), None);
        // An integer wider than the curve.
        let mut wide = Vec::new();
        let mut ints = Vec::new();
        text::push_tlv(&mut ints, tag::INTEGER, &[1, 2, 3, 4, 5]);
        text::push_tlv(&mut ints, tag::INTEGER, &[1]);
        text::push_tlv(&mut wide, tag::SEQUENCE, &ints);
        assert_eq!(ec_signature(&wide, 4), None);
    }

    #[test]
    fn digests() {
        // SM3("abc") from GB/T 32905-2016 A.1.
        assert_eq!(
            hex::encode(HashAlg::Sm3.digest(b"abc")),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        assert_eq!(HashAlg::Sha1.digest(b"").len(), 20);
        assert_eq!(HashAlg::Sha384.digest(b"").len(), 48);
    }

    /// e from [`sm2_e`] is what the `sm2` crate's signer signs for a message (its Z is
    /// internal): a signature over the message verifies as a prehash of e, and a signature
    /// made over e verifies over the message.
    #[test]
    fn sm2_e_matches_the_crates_signer() {
        use sm2::dsa::signature::Signer;
        use sm2::dsa::signature::hazmat::PrehashSigner;
        let secret = sm2::SecretKey::from_slice(&[0x22; 32]).unwrap();
        let signer = sm2::dsa::SigningKey::new(SM2_DEFAULT_ID, &secret).unwrap();
        let point = signer.verifying_key().to_sec1_bytes().to_vec();
        assert_eq!(point.len(), 65);
        let key = PublicKey::Sm2(point.clone());
        let e = sm2_e(&point, SM2_DEFAULT_ID.as_bytes(), b"message").unwrap();
        let over_message: sm2::dsa::Signature = signer.sign(b"message");
        assert_eq!(
            key.verify(
                Scheme::Sm2Sm3,
                Message::Digest(&e),
                &over_message.to_bytes()
            ),
            Outcome::Good
        );
        let over_e: sm2::dsa::Signature = signer.sign_prehash(&e).unwrap();
        assert_eq!(
            key.verify(
                Scheme::Sm2Sm3,
                Message::Data(b"message"),
                &over_e.to_bytes()
            ),
            Outcome::Good
        );
        // e is not SM3(M): a signature over SM3(M) is not one over M.
        let plain = HashAlg::Sm3.digest(b"message");
        let over_plain: sm2::dsa::Signature = signer.sign_prehash(&plain).unwrap();
        assert_eq!(
            key.verify(
                Scheme::Sm2Sm3,
                Message::Data(b"message"),
                &over_plain.to_bytes()
            ),
            Outcome::Bad
        );
        assert_eq!(sm2_e(&point[1..], b"id", b"m"), None);
    }

    /// SM2 sign and verify round trip with the crate's signer, and what the results say.
    #[test]
    fn sm2_data_signatures() {
        use sm2::dsa::signature::Signer;
        let secret = sm2::SecretKey::from_slice(&[0x11; 32]).unwrap();
        let signer = sm2::dsa::SigningKey::new(SM2_DEFAULT_ID, &secret).unwrap();
        let sig: sm2::dsa::Signature = signer.sign(b"data");
        let point = signer.verifying_key().to_sec1_bytes().to_vec();
        let key = PublicKey::Sm2(point);
        let raw = sig.to_bytes().to_vec();
        assert_eq!(
            key.verify(Scheme::Sm2Sm3, Message::Data(b"data"), &raw),
            Outcome::Good
        );
        let (r, s) = raw.split_at(32);
        let mut ints = Vec::new();
        let with_sign_byte = |v: &[u8]| {
            let mut i = vec![0];
            i.extend_from_slice(v);
            i
        };
        text::push_tlv(&mut ints, tag::INTEGER, &with_sign_byte(r));
        text::push_tlv(&mut ints, tag::INTEGER, &with_sign_byte(s));
        let mut der = Vec::new();
        text::push_tlv(&mut der, tag::SEQUENCE, &ints);
        assert_eq!(
            key.verify(Scheme::Sm2Sm3, Message::Data(b"data"), &der),
            Outcome::Good
        );
        assert_eq!(
            key.verify(Scheme::Sm2Sm3, Message::Data(b"datA"), &der),
            Outcome::Bad
        );
        assert_eq!(
            key.verify(Scheme::Ecdsa(HashAlg::Sha256), Message::Data(b"data"), &der),
            Outcome::WrongKey
        );
        // Another user ID makes another Z: not the default ID's signature.
        let other = sm2::dsa::SigningKey::new("alice@example.com", &secret).unwrap();
        let sig: sm2::dsa::Signature = other.sign(b"data");
        assert_eq!(
            key.verify(Scheme::Sm2Sm3, Message::Data(b"data"), &sig.to_bytes()),
            Outcome::Bad
        );
    }
}
