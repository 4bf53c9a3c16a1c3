//! CMS / PKCS#7 `SignedData` (RFC 5652) around a signature made elsewhere, for
//! `SOF_SignMessage` (flag 0: the content inside, flag 1: detached).
//!
//! The private key never leaves the token: [`Prepared::new`] builds the signed attributes
//! (content-type id-data, message-digest, signing-time) and their digest; the token signs that
//! digest (PKCS#1 v1.5 with DigestInfo for RSA, DER `ECDSA-Sig-Value` for EC, as
//! `token::sign` makes them); [`Prepared::finish`] wraps the signature into a DER
//! `ContentInfo(SignedData)`. [`signed_data`] does both around a callback.
//!
//! Every structure is built from the `cms` / `x509-cert` / `der` types and encoded by them.
//!
//! Choices (all what `openssl cms -sign` writes):
//! - SignerIdentifier is issuerAndSerialNumber (so SignerInfo and SignedData are version 1).
//! - digestAlgorithm is the hash OID with absent parameters (RFC 5754, RFC 3370).
//! - signatureAlgorithm is rsaEncryption with NULL parameters for RSA (RFC 3370 §3.2), and
//!   ecdsa-with-SHAxxx with absent parameters for EC (RFC 5753 §2.1.1, RFC 5758).
//! - The signer certificate is included, byte for byte (see [`CmsError::CertificateNotDer`]).
//!
//! SM2 (GM/T 0010-2012 for the algorithms): digestAlgorithm sm3 (1.2.156.10197.1.401) and
//! signatureAlgorithm sm2-with-sm3 (1.2.156.10197.1.501), both with absent parameters, what
//! OpenSSL 3 writes and verifies. The signature is over the DER signed attributes as an SM2
//! message: e = SM3(Z ‖ attributes), Z from the signer's key and the default ID
//! `1234567812345678`, so the token is given the attributes, not a digest
//! ([`Prepared::sign_input`]). The content types stay PKCS#7's id-signedData and id-data:
//! GM/T 0010's own (1.2.156.10197.6.1.4.2.2 / .1) are not read as SignedData by OpenSSL
//! (`openssl cms -verify` refuses them) nor by most verifiers, and the CAs' own helpers
//! accept both.

use cms::cert::{CertificateChoices, IssuerAndSerialNumber};
use cms::content_info::{CmsVersion, ContentInfo};
use cms::signed_data::{
    CertificateSet, EncapsulatedContentInfo, SignedAttributes, SignedData, SignerIdentifier,
    SignerInfo, SignerInfos,
};
use cms::spki::AlgorithmIdentifierOwned;
use cms::x509_cert::Certificate;
use cms::x509_cert::attr::Attribute;
use cms::x509_cert::time::Time;
use const_oid::ObjectIdentifier;
use const_oid::db::{rfc5911, rfc5912};
use der::asn1::{GeneralizedTime, OctetString, SetOfVec, UintRef, UtcTime};
use der::{Any, Decode, Encode, Sequence, Tag};

use crate::model::{HashAlg, KeyKind, SignInput};

/// ecdsa-with-SHA1 (RFC 3279 §2.2.3), which the OID database of `const-oid` lacks.
const ECDSA_WITH_SHA_1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.1");
/// sm3 (GM/T 0006, GM/T 0010 §7).
pub const SM3: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.401");
/// sm2-with-sm3, SM2 signature with SM3 (GM/T 0006, GM/T 0010 §7).
pub const SM2_WITH_SM3: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.156.10197.1.501");

/// What to sign, and with what.
#[derive(Debug, Clone)]
pub struct CmsRequest<'a> {
    /// The signer's certificate (DER); it is included in `SignedData.certificates` and names
    /// the signer (issuer and serial number).
    pub certificate_der: &'a [u8],
    /// The message.
    pub content: &'a [u8],
    /// `false`: `encapContentInfo` carries the content (`SOF_SignMessage` flag 0);
    /// `true`: it does not, and the verifier needs the content separately (flag 1).
    pub detached: bool,
    /// The digest algorithm, for the message digest and for the signed attributes.
    pub hash: HashAlg,
    /// The signer's key type (it decides the signatureAlgorithm).
    pub key: KeyKind,
    /// The signing-time attribute (stored in UTC, to the second).
    pub signing_time: time::OffsetDateTime,
}

/// Why a `SignedData` could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CmsError {
    #[error("the signer certificate cannot be parsed: {0}")]
    Certificate(der::Error),
    /// The certificate is not in DER (say, a validity date in 2049 or earlier written as
    /// GeneralizedTime, or BER lengths): `x509-cert` would re-encode it and so break the CA's
    /// signature over it. Refused rather than altered.
    #[error("the signer certificate is not in DER and would change if included")]
    CertificateNotDer,
    #[error("signing time {0} is outside 1970..=9999")]
    SigningTime(time::OffsetDateTime),
    #[error("the signature is empty")]
    EmptySignature,
    /// For EC the signature must be a DER `ECDSA-Sig-Value`, not the raw r ‖ s that
    /// PKCS#11's CKM_ECDSA returns (see `token::sign::ecdsa_raw_to_der`).
    #[error("the ECDSA signature is not a DER ECDSA-Sig-Value: {0}")]
    EcdsaSignature(der::Error),
    /// The key cannot sign with the hash (SM2 signs SM3 only; ECDSA never SM3).
    #[error("a {key:?} key does not sign with {}", hash.as_str())]
    Algorithm { key: KeyKind, hash: HashAlg },
    #[error("CMS encoding: {0}")]
    Encoding(#[from] der::Error),
}

/// A `SignedData` waiting for its signature.
#[derive(Debug, Clone)]
pub struct Prepared {
    certificate: Certificate,
    encap: EncapsulatedContentInfo,
    hash: HashAlg,
    key: KeyKind,
    signed_attrs: SignedAttributes,
    signed_attrs_der: Vec<u8>,
    digest: Vec<u8>,
}

impl Prepared {
    /// Parse the certificate, hash the content and build the signed attributes.
    pub fn new(req: &CmsRequest<'_>) -> Result<Self, CmsError> {
        signature_algorithm(req.key, req.hash)?;
        let certificate =
            Certificate::from_der(req.certificate_der).map_err(CmsError::Certificate)?;
        if certificate.to_der()? != req.certificate_der {
            return Err(CmsError::CertificateNotDer);
        }

        let econtent = if req.detached {
            None
        } else {
            Some(Any::new(Tag::OctetString, req.content)?)
        };
        let encap = EncapsulatedContentInfo {
            econtent_type: rfc5911::ID_DATA,
            econtent,
        };

        let message_digest = OctetString::new(req.hash.digest(req.content))?;
        let signed_attrs = SignedAttributes::try_from(vec![
            attribute(
                rfc5911::ID_CONTENT_TYPE,
                Any::encode_from(&rfc5911::ID_DATA)?,
            )?,
            attribute(
                rfc5911::ID_MESSAGE_DIGEST,
                Any::encode_from(&message_digest)?,
            )?,
            attribute(
                rfc5911::ID_SIGNING_TIME,
                Any::encode_from(&signing_time(req.signing_time)?)?,
            )?,
        ])?;
        // RFC 5652 §5.4: the digest covers the DER of the attributes with the SET OF tag
        // (0x31), not the [0] IMPLICIT tag they carry inside SignerInfo.
        let signed_attrs_der = signed_attrs.to_der()?;
        let digest = req.hash.digest(&signed_attrs_der);

        Ok(Prepared {
            certificate,
            encap,
            hash: req.hash,
            key: req.key,
            signed_attrs,
            signed_attrs_der,
            digest,
        })
    }

    /// The digest (with the request's hash) of the signed attributes: what an RSA or EC
    /// token signs. An SM2 token signs e = SM3(Z ‖ attributes) instead: see
    /// [`Prepared::sign_input`].
    pub fn digest(&self) -> &[u8] {
        &self.digest
    }

    /// What the token is given to sign: the digest of the signed attributes for RSA and EC,
    /// the DER signed attributes themselves for SM2 (the message M of
    /// [`SignInput`]'s SM2 contract, hashed with Z by the signer).
    pub fn sign_input(&self) -> SignInput {
        match self.key {
            KeyKind::Sm2 => SignInput::Data(self.signed_attrs_der.clone()),
            KeyKind::Rsa | KeyKind::Ec => SignInput::Digest(self.digest.clone()),
        }
    }

    /// The DER signed attributes themselves (`SET OF Attribute`), for a token that hashes on
    /// its own (CKM_SHA256_RSA_PKCS and the like).
    pub fn signed_attributes_der(&self) -> &[u8] {
        &self.signed_attrs_der
    }

    /// Put the signature in and encode the DER `ContentInfo(SignedData)`.
    ///
    /// `signature` is PKCS#1 v1.5 for RSA, a DER `ECDSA-Sig-Value` for EC and SM2. It is not verified
    /// here (the public key is in the certificate; the caller's verifier checks it).
    pub fn finish(self, signature: Vec<u8>) -> Result<Vec<u8>, CmsError> {
        if signature.is_empty() {
            return Err(CmsError::EmptySignature);
        }
        if matches!(self.key, KeyKind::Ec | KeyKind::Sm2) {
            EcdsaSigValue::from_der(&signature).map_err(CmsError::EcdsaSignature)?;
        }

        let digest_alg = AlgorithmIdentifierOwned {
            oid: digest_oid(self.hash),
            parameters: None,
        };
        let signature_algorithm = signature_algorithm(self.key, self.hash)?;

        let tbs = self.certificate.tbs_certificate();
        let sid = SignerIdentifier::IssuerAndSerialNumber(IssuerAndSerialNumber {
            issuer: tbs.issuer().clone(),
            serial_number: tbs.serial_number().clone(),
        });
        let signer_info = SignerInfo {
            version: CmsVersion::V1,
            sid,
            digest_alg: digest_alg.clone(),
            signed_attrs: Some(self.signed_attrs),
            signature_algorithm,
            signature: OctetString::new(signature)?,
            unsigned_attrs: None,
        };

        let mut certificates = SetOfVec::new();
        certificates.insert(CertificateChoices::Certificate(self.certificate))?;
        let mut digest_algorithms = SetOfVec::new();
        digest_algorithms.insert(digest_alg)?;
        let mut signer_infos = SetOfVec::new();
        signer_infos.insert(signer_info)?;

        // Version 1: id-data content, issuerAndSerialNumber, only X.509 certificates
        // (RFC 5652 §5.1).
        let signed_data = SignedData {
            version: CmsVersion::V1,
            digest_algorithms,
            encap_content_info: self.encap,
            certificates: Some(CertificateSet(certificates)),
            crls: None,
            signer_infos: SignerInfos(signer_infos),
        };
        let content_info = ContentInfo {
            content_type: rfc5911::ID_SIGNED_DATA,
            content: Any::encode_from(&signed_data)?,
        };
        Ok(content_info.to_der()?)
    }
}

/// Build a DER `ContentInfo(SignedData)`. `sign_digest` receives the digest (with
/// `req.hash`) of the DER signed attributes (a SET OF, RFC 5652 §5.4) — for SM2 the DER
/// signed attributes themselves, the message the signer hashes with Z
/// ([`Prepared::sign_input`]) — and returns the signature value (PKCS#1 v1.5 for RSA, DER
/// `ECDSA-Sig-Value` for EC and SM2); its error is passed through unchanged.
pub fn signed_data<E: From<CmsError>>(
    req: &CmsRequest<'_>,
    sign_digest: impl FnOnce(&[u8]) -> Result<Vec<u8>, E>,
) -> Result<Vec<u8>, E> {
    let prepared = Prepared::new(req)?;
    let signature = match prepared.sign_input() {
        SignInput::Data(m) | SignInput::Digest(m) => sign_digest(&m)?,
    };
    Ok(prepared.finish(signature)?)
}

fn attribute(oid: ObjectIdentifier, value: Any) -> Result<Attribute, der::Error> {
    let mut values = SetOfVec::new();
    values.insert(value)?;
    Ok(Attribute { oid, values })
}

/// RFC 5652 §11.3: UTCTime for 1950..=2049, GeneralizedTime otherwise. `der`'s `DateTime`
/// starts at 1970, so earlier times are refused (no clock says 1969); fractions of a second
/// are dropped (UTCTime has none).
fn signing_time(t: time::OffsetDateTime) -> Result<Time, CmsError> {
    let utc = t.to_offset(time::UtcOffset::UTC);
    let out_of_range = || CmsError::SigningTime(t);
    let year = u16::try_from(utc.year()).map_err(|_| out_of_range())?;
    let dt = der::DateTime::new(
        year,
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute(),
        utc.second(),
    )
    .map_err(|_| out_of_range())?;
    Ok(if year <= UtcTime::MAX_YEAR {
        Time::UtcTime(UtcTime::from_date_time(dt).map_err(|_| out_of_range())?)
    } else {
        Time::GeneralTime(GeneralizedTime::from_date_time(dt))
    })
}

fn digest_oid(hash: HashAlg) -> ObjectIdentifier {
    match hash {
        HashAlg::Sha1 => rfc5912::ID_SHA_1,
        HashAlg::Sha256 => rfc5912::ID_SHA_256,
        HashAlg::Sha384 => rfc5912::ID_SHA_384,
        HashAlg::Sha512 => rfc5912::ID_SHA_512,
        HashAlg::Sm3 => SM3,
    }
}

/// SignerInfo.signatureAlgorithm: rsaEncryption (NULL parameters) for RSA with any hash,
/// ecdsa-with-SHAxxx for EC, sm2-with-sm3 for SM2 (absent parameters).
fn signature_algorithm(key: KeyKind, hash: HashAlg) -> Result<AlgorithmIdentifierOwned, CmsError> {
    let absent = |oid| AlgorithmIdentifierOwned {
        oid,
        parameters: None,
    };
    Ok(match (key, hash) {
        (KeyKind::Rsa, _) => AlgorithmIdentifierOwned {
            oid: rfc5912::RSA_ENCRYPTION,
            parameters: Some(Any::null()),
        },
        (KeyKind::Ec, HashAlg::Sha1) => absent(ECDSA_WITH_SHA_1),
        (KeyKind::Ec, HashAlg::Sha256) => absent(rfc5912::ECDSA_WITH_SHA_256),
        (KeyKind::Ec, HashAlg::Sha384) => absent(rfc5912::ECDSA_WITH_SHA_384),
        (KeyKind::Ec, HashAlg::Sha512) => absent(rfc5912::ECDSA_WITH_SHA_512),
        (KeyKind::Sm2, HashAlg::Sm3) => absent(SM2_WITH_SM3),
        (key @ (KeyKind::Ec | KeyKind::Sm2), hash) => {
            return Err(CmsError::Algorithm { key, hash });
        }
    })
}

/// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`, to check an EC signature's form.
#[derive(Sequence)]
struct EcdsaSigValue<'a> {
    r: UintRef<'a>,
    s: UintRef<'a>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_time_encodings() {
        let enc = |t: time::OffsetDateTime| signing_time(t).unwrap().to_der().unwrap();
        let t = time::macros::datetime!(2049-12-31 23:59:59 UTC);
        assert_eq!(enc(t)[0], 0x17, "UTCTime through 2049");
        let t = time::macros::datetime!(2050-01-01 00:00:00 UTC);
        assert_eq!(enc(t)[0], 0x18, "GeneralizedTime from 2050");
        // An offset is converted to UTC: 08:00 in Beijing is 00:00 UTC.
        let t = time::macros::datetime!(2026-03-01 08:00:00.75 +08:00);
        assert_eq!(&enc(t)[2..], b"260301000000Z");
        assert!(signing_time(time::macros::datetime!(1969-12-31 23:59:59 UTC)).is_err());
    }

    #[test]
    fn garbage_certificate_is_an_error() {
        let req = CmsRequest {
            certificate_der: b"not a certificate",
            content: b"x",
            detached: false,
            hash: HashAlg::Sha256,
            key: KeyKind::Rsa,
            signing_time: time::OffsetDateTime::UNIX_EPOCH,
        };
        assert!(matches!(Prepared::new(&req), Err(CmsError::Certificate(_))));
    }
}
