//! The certificate model every interface shows (CLI, bridge, UI).

use time::OffsetDateTime;

use super::ids::Identifiers;

/// A distinguished name with the attributes Chinese CA helpers display.
///
/// Every string type (UTF8String, PrintableString, IA5String, T61String as Latin-1,
/// BMPString, UniversalString) is decoded to text; undecodable bytes become U+FFFD, and a
/// value that is not a string at all shows as RFC 4514 `#` + hex of its DER. When an
/// attribute occurs more than once the values are joined with `", "` in DER order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Name {
    pub cn: Option<String>,
    pub o: Option<String>,
    pub ou: Option<String>,
    pub c: Option<String>,
    pub st: Option<String>,
    pub l: Option<String>,
    /// serialNumber (2.5.4.5)
    pub serial_number: Option<String>,
    /// organizationIdentifier (2.5.4.97)
    pub organization_identifier: Option<String>,
    /// The full DN, RFC 4514 order (most specific first), e.g. `CN=张三,O=北京某某有限公司,C=CN`.
    ///
    /// Types are written `CN`, `O`, `OU`, `C`, `ST`, `L`, `serialNumber`,
    /// `organizationIdentifier`, `emailAddress`, `STREET`, `DC`, `UID`, else as the dotted
    /// OID; values are escaped minimally (RFC 4514 §2.4) and kept as text even after a dotted
    /// OID. A multi-valued RDN joins its attributes with `+` in DER order.
    pub dn: String,
}

/// Public key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    Rsa,
    Ec,
    Sm2,
    Other,
}

impl KeyAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyAlgorithm::Rsa => "rsa",
            KeyAlgorithm::Ec => "ec",
            KeyAlgorithm::Sm2 => "sm2",
            KeyAlgorithm::Other => "other",
        }
    }
}

/// The subject public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub algorithm: KeyAlgorithm,
    /// Modulus bits for RSA, field size for EC/SM2.
    pub bits: Option<u32>,
    /// Curve name for EC (`P-256`, `P-384`, `P-521`, `secp256k1`, `brainpoolP256r1`…) and
    /// `SM2` for SM2; the dotted OID for a curve without a name.
    pub curve: Option<String>,
    /// The dotted OID of the key algorithm when it is `Other`.
    pub oid: Option<String>,
}

/// The validity window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// Where a certificate stands at a given moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Valid,
    /// Valid, but `days_left` ≤ the warning window.
    Expiring,
    Expired,
    NotYetValid,
    /// Not a certificate at all (only used for token objects that fail to parse).
    Invalid,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Expiring => "expiring",
            Status::Expired => "expired",
            Status::NotYetValid => "not_yet_valid",
            Status::Invalid => "invalid",
        }
    }
}

/// A parsed certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    pub der: Vec<u8>,
    pub subject: Name,
    pub issuer: Name,
    /// Lowercase hex, no separators, no leading zero bytes (`"0"` for a zero serial).
    pub serial: String,
    /// SHA-256 of the DER, lowercase hex.
    pub sha256: String,
    pub validity: Validity,
    pub key: KeyInfo,
    /// e.g. `sha256WithRSAEncryption`, `ecdsa-with-SHA256`, `SM2-with-SM3`; dotted OID when unknown.
    pub signature_algorithm: String,
    /// Key usage names as in RFC 5280: `digitalSignature`, `nonRepudiation`, `keyEncipherment`,
    /// `dataEncipherment`, `keyAgreement`, `keyCertSign`, `cRLSign`, `encipherOnly`, `decipherOnly`.
    pub key_usage: Vec<String>,
    /// Extended key usage names: `serverAuth`, `clientAuth`, `codeSigning`, `emailProtection`,
    /// `timeStamping`, `OCSPSigning`, `anyExtendedKeyUsage`; dotted OID for others.
    pub extended_key_usage: Vec<String>,
    pub ids: Identifiers,
}

impl Certificate {
    /// `c-` + the first 16 hex chars of the SHA-256 of the DER: stable across
    /// re-insertion and machines.
    pub fn id(&self) -> String {
        super::id_from_sha256(&self.sha256)
    }

    /// Subject O if present, else CN, else the DN.
    pub fn owner(&self) -> String {
        self.subject
            .o
            .clone()
            .or_else(|| self.subject.cn.clone())
            .unwrap_or_else(|| self.subject.dn.clone())
    }

    /// Whole days from `now` to `not_after`, rounded down (negative once expired).
    pub fn days_left(&self, now: OffsetDateTime) -> i64 {
        (self.validity.not_after - now)
            .whole_seconds()
            .div_euclid(86_400)
    }

    /// The status at `now` with an expiry warning window of `warning_days`.
    pub fn status(&self, now: OffsetDateTime, warning_days: u32) -> Status {
        if now < self.validity.not_before {
            Status::NotYetValid
        } else if now > self.validity.not_after {
            Status::Expired
        } else if self.days_left(now) <= i64::from(warning_days) {
            Status::Expiring
        } else {
            Status::Valid
        }
    }

    /// True when the key may make signatures (digitalSignature or nonRepudiation, or no
    /// key usage extension at all).
    pub fn can_sign(&self) -> bool {
        self.key_usage.is_empty()
            || self
                .key_usage
                .iter()
                .any(|u| u == "digitalSignature" || u == "nonRepudiation")
    }

    /// For unit tests: an RSA-2048 certificate valid from `not_before` to `not_after`, with
    /// empty names, serial `0`, SHA-256 `abab…`, no key usages and no identifiers. Tests
    /// change what they need (struct update or field assignment).
    #[cfg(test)]
    pub(crate) fn sample(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Certificate {
        Certificate {
            der: Vec::new(),
            subject: Name::default(),
            issuer: Name::default(),
            serial: "0".into(),
            sha256: "ab".repeat(32),
            validity: Validity {
                not_before,
                not_after,
            },
            key: KeyInfo {
                algorithm: KeyAlgorithm::Rsa,
                bits: Some(2048),
                curve: None,
                oid: None,
            },
            signature_algorithm: "sha256WithRSAEncryption".into(),
            key_usage: Vec::new(),
            extended_key_usage: Vec::new(),
            ids: Identifiers::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;
    use time::macros::datetime;

    const NOT_BEFORE: OffsetDateTime = datetime!(2025-01-01 00:00 UTC);
    const NOT_AFTER: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    #[test]
    fn days_left_rounds_down() {
        let c = Certificate::sample(NOT_BEFORE, NOT_AFTER);
        assert_eq!(c.days_left(NOT_AFTER), 0);
        assert_eq!(c.days_left(NOT_AFTER - Duration::seconds(1)), 0);
        assert_eq!(c.days_left(NOT_AFTER - Duration::days(1)), 1);
        assert_eq!(
            c.days_left(NOT_AFTER - Duration::days(1) - Duration::seconds(1)),
            1
        );
        assert_eq!(c.days_left(NOT_AFTER - Duration::days(90)), 90);
        // Once expired the count goes negative, still rounded down.
        assert_eq!(c.days_left(NOT_AFTER + Duration::seconds(1)), -1);
        assert_eq!(c.days_left(NOT_AFTER + Duration::days(1)), -1);
        assert_eq!(
            c.days_left(NOT_AFTER + Duration::days(1) + Duration::seconds(1)),
            -2
        );
    }

    #[test]
    fn status_boundaries() {
        let c = Certificate::sample(NOT_BEFORE, NOT_AFTER);
        let at = |now: OffsetDateTime| c.status(now, 30);
        assert_eq!(at(NOT_BEFORE - Duration::seconds(1)), Status::NotYetValid);
        assert_eq!(at(NOT_BEFORE), Status::Valid, "not_before is inclusive");
        assert_eq!(at(NOT_AFTER - Duration::days(31)), Status::Valid);
        assert_eq!(
            at(NOT_AFTER - Duration::days(30) - Duration::seconds(1)),
            Status::Expiring,
            "30 days and a second: 30 whole days"
        );
        assert_eq!(
            at(NOT_AFTER - Duration::days(31) + Duration::seconds(1)),
            Status::Expiring
        );
        assert_eq!(
            at(NOT_AFTER - Duration::days(31) - Duration::seconds(1)),
            Status::Valid
        );
        assert_eq!(at(NOT_AFTER), Status::Expiring, "not_after is inclusive");
        assert_eq!(at(NOT_AFTER + Duration::seconds(1)), Status::Expired);
        assert_eq!(
            c.status(NOT_AFTER - Duration::seconds(1), 0),
            Status::Expiring,
            "last day with no window"
        );
        assert_eq!(c.status(NOT_AFTER - Duration::days(1), 0), Status::Valid);
    }

    #[test]
    fn owner_and_signing() {
        let mut c = Certificate::sample(NOT_BEFORE, NOT_AFTER);
        c.subject.dn = "C=CN".into();
        assert_eq!(c.owner(), "C=CN");
        c.subject.cn = Some("张三".into());
        assert_eq!(c.owner(), "张三");
        c.subject.o = Some("北京某某有限公司".into());
        assert_eq!(c.owner(), "北京某某有限公司");
        assert_eq!(c.id(), format!("c-{}", "ab".repeat(8)));
        assert!(c.can_sign(), "no key usage: may sign");
        c.key_usage = vec!["keyEncipherment".into()];
        assert!(!c.can_sign());
        c.key_usage.push("nonRepudiation".into());
        assert!(c.can_sign());
    }
}
