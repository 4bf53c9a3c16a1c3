//! The certificate model every interface shows (CLI, bridge, UI). `cert` parses DER into it.

use time::OffsetDateTime;

use super::id::{CertId, TokenId};
use super::issuer::IssuerCheck;
use super::token::{CertObject, KeyPresence};
use crate::error::Code;

/// Identifiers read from every location CAs are known to use (shared/docs/CHINA-PKI.md).
///
/// Every value is checked before it is named: `uscc` only with a right GB 32100 check
/// character, `personal_id` only with a right GB 11643 check character (or as an old
/// 15-digit number with a real date), `org_code` only with a right GB 11714 check character.
/// A value that fails its check is kept in `unverified`, with where it came from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identifiers {
    /// 统一社会信用代码 (18 characters, GB 32100-2015), only with a right check character.
    pub uscc: Option<String>,
    /// `Some(true)` when `uscc` is set; `Some(false)` when the certificate claims a USCC
    /// but no claimed value has a right check character (the values are in `unverified`);
    /// `None` when it claims none.
    pub uscc_valid: Option<bool>,
    /// 纳税人识别号: a valid USCC, a 15-character old number (6-digit area code and a valid
    /// organisation code, or an old 15-digit ID number), or a valid ID number (+ 2 digits).
    pub taxpayer_id: Option<String>,
    /// 组织机构代码 as the certificate writes it (`XXXXXXXX-X` or 9 characters) with a right
    /// GB 11714 check character; or a valid USCC, when the organisation code extension
    /// carries one (many CAs now put the USCC there).
    pub org_code: Option<String>,
    /// 工商注册号: 13 or 15 digits (checked by shape only) or a valid USCC.
    pub business_reg_no: Option<String>,
    /// 身份证号: 18 characters with a right GB 11643 check character, or an old 15-digit
    /// number (address code and birth date checked).
    pub personal_id: Option<String>,
    /// BJCA's unique user id as written (`SF<ID number>`, `JJ<USCC>`, `1@5009JJ…`). The
    /// number behind an `SF`/`JJ` prefix is reported in `personal_id` / `uscc` when valid.
    pub bjca_unique_id: Option<String>,
    /// The CA's own number for the holder, taken out of a CFCA (`051@name@N5101…@1`) or
    /// MCSCA (`1765…@name@01@012`) common name.
    pub ca_user_id: Option<String>,
    /// Values that claim to be (or look like) an identifier but fail its check, in the
    /// order found; each value once.
    pub unverified: Vec<UnverifiedId>,
}

/// What kind of identifier a value was read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Uscc,
    PersonalId,
    OrgCode,
    TaxpayerId,
    BusinessRegNo,
}

impl IdKind {
    /// Stable name for JSON: `uscc`, `personal_id`, `org_code`, `taxpayer_id`,
    /// `business_reg_no` (the [`Identifiers`] field it would have filled).
    pub fn as_str(self) -> &'static str {
        match self {
            IdKind::Uscc => "uscc",
            IdKind::PersonalId => "personal_id",
            IdKind::OrgCode => "org_code",
            IdKind::TaxpayerId => "taxpayer_id",
            IdKind::BusinessRegNo => "business_reg_no",
        }
    }
}

/// A value that failed the check of the identifier it was read as: shown as "unverified
/// identifier" (未验证的标识), never as a USCC or ID number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnverifiedId {
    pub value: String,
    /// What it was read as: from the extension's meaning, else from its shape.
    pub kind: IdKind,
    /// Where it came from: `extension <dotted OID>` (an extension's value),
    /// `extension <dotted OID> after SF` / `after JJ` (the number behind a BJCA prefix),
    /// `subject <attribute>` (`subject serialNumber`, `subject name`, `subject CN`, …).
    pub source: String,
}

/// Who a certificate belongs to, as the CA's own helper names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The person or organisation: the CN, or the name part of a CFCA/MCSCA wrapped CN;
    /// O when there is no CN; the DN when there is neither.
    pub name: String,
    /// Subject O, unless it is the issuing CA's or its RA's own name (see
    /// [`Certificate::holder`]).
    pub organization: Option<String>,
    /// Person or organisation, when the certificate says (CFCA's OU, MCSCA's `01`/`02`).
    pub kind: Option<HolderKind>,
    /// Where `name` was read.
    pub source: HolderSource,
}

/// Person or organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderKind {
    Person,
    Organization,
}

impl HolderKind {
    /// `person` / `organization`.
    pub fn as_str(self) -> &'static str {
        match self {
            HolderKind::Person => "person",
            HolderKind::Organization => "organization",
        }
    }
}

/// Where a holder's name was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HolderSource {
    /// The CN as it is.
    Cn,
    /// The name part of a CFCA CN `<kind>@<name or id>@<id or name>@<seq>`.
    CfcaCn,
    /// The name part of an MCSCA CN `<user id>@<name>@<01|02>@<seq>`.
    McscaCn,
    /// Subject O (no CN).
    O,
    /// The whole DN (neither CN nor O).
    Dn,
}

impl HolderSource {
    /// `cn`, `cfca_cn`, `mcsca_cn`, `o`, `dn`.
    pub fn as_str(self) -> &'static str {
        match self {
            HolderSource::Cn => "cn",
            HolderSource::CfcaCn => "cfca_cn",
            HolderSource::McscaCn => "mcsca_cn",
            HolderSource::O => "o",
            HolderSource::Dn => "dn",
        }
    }
}

/// A CFCA- or MCSCA-style common name taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedCn {
    /// [`HolderSource::CfcaCn`] or [`HolderSource::McscaCn`].
    pub form: HolderSource,
    /// The holder's name.
    pub name: String,
    /// The id part (CFCA: the other middle part unless it repeats the name; MCSCA: the
    /// user id).
    pub id: Option<String>,
    /// MCSCA's `01` (person) / `02` (organisation); `None` for CFCA (its OU says).
    pub kind: Option<HolderKind>,
    /// The trailing sequence number.
    pub seq: String,
}

/// Take a CFCA or MCSCA wrapped CN apart; `None` for any other CN.
///
/// - MCSCA: `<user id: more than 3 digits>@<name>@<01|02>@<seq: digits>`.
/// - CFCA: `<kind: 3 digits>@<a>@<b>@<seq: digits>`. One of `a`, `b` is the name, the other
///   an id (`N51011300018878`, `8310000000083040`, `700000000000001:SIGN`). The name is the
///   one that does not look like an id (see `looks_like_id`); when both or neither do, the
///   first (CFCA's documented order is name first).
pub fn split_wrapped_cn(cn: &str) -> Option<WrappedCn> {
    let parts: Vec<&str> = cn.trim().split('@').map(str::trim).collect();
    let [first, second, third, seq] = parts.as_slice() else {
        return None;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(seq) || second.is_empty() || third.is_empty() {
        return None;
    }
    if first.len() > 3 && digits(first) && matches!(*third, "01" | "02") {
        return Some(WrappedCn {
            form: HolderSource::McscaCn,
            name: (*second).to_owned(),
            id: Some((*first).to_owned()),
            kind: Some(if *third == "01" {
                HolderKind::Person
            } else {
                HolderKind::Organization
            }),
            seq: (*seq).to_owned(),
        });
    }
    if first.len() == 3 && digits(first) {
        let (name, id) = if looks_like_id(second) && !looks_like_id(third) {
            (third, second)
        } else {
            (second, third)
        };
        return Some(WrappedCn {
            form: HolderSource::CfcaCn,
            name: (*name).to_owned(),
            id: (id != name).then(|| (*id).to_owned()),
            kind: None,
            seq: (*seq).to_owned(),
        });
    }
    None
}

/// An id rather than a name: at least 6 characters of digits and capital letters, at
/// least half of them digits, optionally followed by `:` and a capitalised tag (`:SIGN`).
fn looks_like_id(s: &str) -> bool {
    let body = match s.split_once(':') {
        Some((body, tag)) if !tag.is_empty() && tag.bytes().all(|b| b.is_ascii_uppercase()) => body,
        Some(_) => return false,
        None => s,
    };
    let digits = body.bytes().filter(u8::is_ascii_digit).count();
    body.len() >= 6
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase())
        && digits * 2 >= body.len()
}

/// Names CAs and their RAs put in subject O of the certificates they issue (seen in the
/// 40 certificates of shared/fixtures/real-certs: `SHECA`, `sheca`, `BJCA`, `MCSCA`,
/// `CFCA OCA1`, `CFCA TEST OCA1`, `CFCA SM2 OCA31`, `CFCASM2AGENT`, `贵州省电子证书有限公司`),
/// plus the other CAs' short names. Compared without case and surrounding spaces.
pub const CA_NAMES: [&str; 13] = [
    "SHECA",
    "BJCA",
    "MCSCA",
    "CFCA",
    "GDCA",
    "SZCA",
    "GZCA",
    "ZJCA",
    "NETCA",
    "UniTrust",
    "iTrusChina",
    "China Financial Certification Authority",
    "贵州省电子证书有限公司",
];

/// Prefixes of CA names: CFCA names each of its operational CAs `CFCA …` (`CFCA OCA1`,
/// `CFCA TEST OCA1`, `CFCA SM2 OCA31`) and its agents `CFCASM2AGENT`.
pub const CA_NAME_PREFIXES: [&str; 1] = ["CFCA"];

/// RAs whose certificates carry the holder's organisation in OU while O is the RA's own
/// name: WeChat Pay merchant certificates (`CN=<merchant id>, O=微信商户系统,
/// OU=<merchant's company>`).
pub const RA_NAMES_WITH_ORG_IN_OU: [&str; 1] = ["微信商户系统"];

/// True when `o` is a known CA's or RA's own name ([`CA_NAMES`], [`CA_NAME_PREFIXES`],
/// [`RA_NAMES_WITH_ORG_IN_OU`]).
pub fn is_ca_name(o: &str) -> bool {
    let o = o.trim();
    let upper = o.to_uppercase();
    CA_NAMES
        .iter()
        .chain(RA_NAMES_WITH_ORG_IN_OU.iter())
        .any(|n| n.to_uppercase() == upper)
        || CA_NAME_PREFIXES.iter().any(|p| upper.starts_with(p))
}

/// Two names (or RFC 4514 DNs) equal for display and issuer matching: case and runs of
/// white space do not count. (RFC 5280 §7.1 asks for more, but CAs that re-encode names
/// change case and string types only.)
pub fn same_name(a: &str, b: &str) -> bool {
    let norm = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase()
    };
    norm(a) == norm(b)
}

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
    pub fn id(&self) -> CertId {
        CertId::from_sha256(&self.sha256)
    }

    /// The holder's name, what every front end shows as the owner (证书持有者):
    /// [`Holder::name`].
    pub fn owner(&self) -> String {
        self.holder().name
    }

    /// The holder's organisation: [`Holder::organization`].
    pub fn organization(&self) -> Option<String> {
        self.holder().organization
    }

    /// Who the certificate belongs to (shared/docs/CHINA-PKI.md, "Who a certificate
    /// belongs to").
    ///
    /// The name is the CN, with CFCA and MCSCA wrappers taken apart ([`split_wrapped_cn`]);
    /// subject O when there is no CN; the DN when there is neither.
    ///
    /// The organisation is subject O, except when O is the issuing CA's or its RA's own
    /// name: equal to the issuer's O or CN, or a known CA name ([`is_ca_name`]). O is kept
    /// all the same when it equals the CN (an enterprise certificate: the company is the
    /// holder), when the certificate is self-issued, or when it may sign certificates
    /// (keyCertSign: a CA's own certificate names the CA). For WeChat Pay merchant
    /// certificates ([`RA_NAMES_WITH_ORG_IN_OU`]) the organisation is the OU.
    pub fn holder(&self) -> Holder {
        let nonempty = |s: &Option<String>| {
            s.as_deref()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let cn = nonempty(&self.subject.cn);
        let o = nonempty(&self.subject.o);
        let (name, kind, source) = match (&cn, &o) {
            (Some(cn), _) => match split_wrapped_cn(cn) {
                Some(w) => {
                    let kind = w.kind.or_else(|| self.cfca_kind());
                    (w.name, kind, w.form)
                }
                None => (cn.clone(), None, HolderSource::Cn),
            },
            (None, Some(o)) => (o.clone(), None, HolderSource::O),
            (None, None) => (self.subject.dn.clone(), None, HolderSource::Dn),
        };
        Holder {
            organization: o.and_then(|o| self.organization_from(o, cn.as_deref())),
            name,
            kind,
            source,
        }
    }

    fn organization_from(&self, o: String, cn: Option<&str>) -> Option<String> {
        let own = cn.is_some_and(|cn| same_name(cn, &o))
            || self.subject.dn == self.issuer.dn
            || self.key_usage.iter().any(|u| u == "keyCertSign");
        if own {
            return Some(o);
        }
        if RA_NAMES_WITH_ORG_IN_OU.iter().any(|ra| same_name(ra, &o)) {
            return self
                .subject
                .ou
                .as_deref()
                .map(str::trim)
                .filter(|ou| !ou.is_empty())
                .map(str::to_owned);
        }
        let issuers = [&self.issuer.o, &self.issuer.cn];
        let issuer_name = issuers
            .iter()
            .filter_map(|n| n.as_deref())
            .any(|n| same_name(n, &o));
        (!issuer_name && !is_ca_name(&o)).then_some(o)
    }

    /// CFCA's OU names the holder's kind: `Individual-1`, `Organizational-2`, `Enterprises`.
    fn cfca_kind(&self) -> Option<HolderKind> {
        let ou = self.subject.ou.as_deref()?;
        ou.split(", ").find_map(|ou| {
            let ou = ou.trim().to_ascii_lowercase();
            if ou.starts_with("individual") {
                Some(HolderKind::Person)
            } else if ou.starts_with("organizational") || ou.starts_with("enterprise") {
                Some(HolderKind::Organization)
            } else {
                None
            }
        })
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

/// SHA-256 of any bytes (a certificate's DER), lowercase hex.
pub fn sha256_hex(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(der))
}

/// Why a certificate object's bytes could not be read as a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an X.509 certificate: {reason}")]
pub struct Unreadable {
    pub reason: String,
}

impl Unreadable {
    pub fn code(&self) -> Code {
        Code::CertInvalid
    }
}

/// A certificate object on a token, with its parsed model (or why it did not parse).
#[derive(Debug, Clone)]
pub struct CertEntry {
    /// `c-` + 16 hex chars of the SHA-256 of the object's bytes.
    pub id: CertId,
    /// SHA-256 of the object's bytes, lowercase hex.
    pub sha256: String,
    pub token_id: TokenId,
    pub label: String,
    pub key_id: Vec<u8>,
    pub der: Vec<u8>,
    pub has_private_key: KeyPresence,
    pub parsed: Result<Certificate, Unreadable>,
    /// Its signature checked against its issuer, and the chain above it; `None` until the
    /// core has checked it (and for an object that does not parse).
    pub issuer: Option<IssuerCheck>,
}

impl CertEntry {
    /// The entry for a token's certificate object and what parsing it gave.
    pub fn new(obj: CertObject, parsed: Result<Certificate, Unreadable>) -> CertEntry {
        let sha256 = sha256_hex(&obj.der);
        CertEntry {
            id: CertId::from_sha256(&sha256),
            sha256,
            token_id: obj.token_id,
            label: obj.label,
            key_id: obj.key_id,
            has_private_key: obj.has_private_key,
            der: obj.der,
            parsed,
            issuer: None,
        }
    }

    /// An entry whose bytes are not a certificate.
    pub fn unparsed(obj: CertObject, reason: String) -> CertEntry {
        CertEntry::new(obj, Err(Unreadable { reason }))
    }

    /// Who the certificate belongs to as the card shows it, or the object's label when it
    /// does not parse.
    pub fn owner(&self) -> String {
        self.parsed
            .as_ref()
            .map(|p| p.owner())
            .unwrap_or_else(|_| self.label.clone())
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
        // A staff certificate: CN is the person, O the company they sign for. The owner
        // used to be O here, which named the company (or, on a third of the real
        // certificates, the CA itself) as the holder; CHINA-PKI.md: the holder is the CN.
        c.subject.o = Some("北京某某有限公司".into());
        assert_eq!(c.owner(), "张三");
        assert_eq!(c.organization().as_deref(), Some("北京某某有限公司"));
        assert_eq!(c.id(), format!("c-{}", "ab".repeat(8)));
        assert!(c.can_sign(), "no key usage: may sign");
        c.key_usage = vec!["keyEncipherment".into()];
        assert!(!c.can_sign());
        c.key_usage.push("nonRepudiation".into());
        assert!(c.can_sign());
    }

    fn named(subject: Name, issuer: Name) -> Certificate {
        Certificate {
            subject,
            issuer,
            ..Certificate::sample(NOT_BEFORE, NOT_AFTER)
        }
    }

    fn name(cn: Option<&str>, o: Option<&str>, ou: Option<&str>) -> Name {
        let mut dn = Vec::new();
        if let Some(cn) = cn {
            dn.push(format!("CN={cn}"));
        }
        if let Some(ou) = ou {
            dn.push(format!("OU={ou}"));
        }
        if let Some(o) = o {
            dn.push(format!("O={o}"));
        }
        Name {
            cn: cn.map(str::to_owned),
            o: o.map(str::to_owned),
            ou: ou.map(str::to_owned),
            dn: dn.join(","),
            ..Name::default()
        }
    }

    #[test]
    fn wrapped_common_names() {
        let w = split_wrapped_cn("051@邮储线上收单商户@N51011300018878@1").unwrap();
        assert_eq!(
            (
                w.form,
                w.name.as_str(),
                w.id.as_deref(),
                w.kind,
                w.seq.as_str()
            ),
            (
                HolderSource::CfcaCn,
                "邮储线上收单商户",
                Some("N51011300018878"),
                None,
                "1"
            )
        );
        let w = split_wrapped_cn("041@8310000000083040@中国银联股份有限公司@00016495").unwrap();
        assert_eq!(w.name, "中国银联股份有限公司", "the id comes first here");
        assert_eq!(w.id.as_deref(), Some("8310000000083040"));
        let w = split_wrapped_cn("041@Z2014-11-11@700000000000001:SIGN@00000003").unwrap();
        assert_eq!(w.name, "Z2014-11-11");
        assert_eq!(w.id.as_deref(), Some("700000000000001:SIGN"));
        let w = split_wrapped_cn("051@test_sm2@test_sm2@2").unwrap();
        assert_eq!(
            (w.name.as_str(), w.id),
            ("test_sm2", None),
            "a repeated name"
        );
        let w = split_wrapped_cn("1765246873783844864@唐好凯@01@012").unwrap();
        assert_eq!(
            (
                w.form,
                w.name.as_str(),
                w.id.as_deref(),
                w.kind,
                w.seq.as_str()
            ),
            (
                HolderSource::McscaCn,
                "唐好凯",
                Some("1765246873783844864"),
                Some(HolderKind::Person),
                "012"
            )
        );
        let w = split_wrapped_cn("1765246873783844864@某某公司@02@1").unwrap();
        assert_eq!(w.kind, Some(HolderKind::Organization));
        for plain in [
            "张三",
            "chenxu@104",
            "a@b@c",
            "051@@x@1",
            "051@a@b@",
            "051@a@b@x1",
            "05@a@b@1",
            "1@a@b@c@1",
            "wyl@sheca.com",
            "",
        ] {
            assert_eq!(split_wrapped_cn(plain), None, "{plain:?}");
        }
    }

    #[test]
    fn ids_and_names_apart() {
        for id in [
            "N51011300018878",
            "8310000000083040",
            "700000000000001:SIGN",
            "123456",
        ] {
            assert!(looks_like_id(id), "{id}");
        }
        for name in [
            "Z2014-11-11",
            "test_sm2",
            "NUCC",
            "中国银联股份有限公司",
            "ABCDEF1",
            "12345",
            "1:sign",
        ] {
            assert!(!looks_like_id(name), "{name}");
        }
    }

    #[test]
    fn holder_and_organization() {
        let bjca = name(Some("Beijing SM2 CA"), Some("BJCA"), Some("BJCA"));
        let cases = [
            // (subject, issuer, holder, organisation)
            (
                name(Some("王玉林"), Some("SHECA"), Some("研发")),
                name(Some("SHECA SM2"), Some("UniTrust"), None),
                "王玉林",
                None,
            ),
            (
                name(Some("MSSP测试用户"), Some("BJCA"), None),
                bjca.clone(),
                "MSSP测试用户",
                None,
            ),
            (
                name(Some("吴子清"), Some("贵州省电子证书有限公司"), None),
                name(
                    Some("GZCA"),
                    Some("GUIZHOU ELECTRONIC CERTIFICATES CO.,LTD."),
                    None,
                ),
                "吴子清",
                None,
            ),
            (
                name(
                    Some("051@邮储线上收单商户@N51011300018878@1"),
                    Some("CFCA TEST OCA1"),
                    Some("PSBC, Organizational-2"),
                ),
                name(
                    Some("CFCA TEST SM2 OCA1"),
                    Some("China Financial Certification Authority"),
                    None,
                ),
                "邮储线上收单商户",
                None,
            ),
            // Equal to the issuer's CN, not in any list.
            (
                name(Some("李四"), Some("Example CA"), None),
                name(Some("Example CA"), Some("Example Trust Services"), None),
                "李四",
                None,
            ),
            // Enterprise certificate: CN = O = the company, whatever its name.
            (
                name(
                    Some("北京数字认证股份有限公司"),
                    Some("北京数字认证股份有限公司"),
                    None,
                ),
                bjca.clone(),
                "北京数字认证股份有限公司",
                Some("北京数字认证股份有限公司"),
            ),
            (
                name(Some("BJCA"), Some("bjca"), None),
                bjca.clone(),
                "BJCA",
                Some("bjca"),
            ),
            // Staff certificate.
            (
                name(Some("王传煦"), Some("连云港市菲优技术有限责任公司"), None),
                bjca.clone(),
                "王传煦",
                Some("连云港市菲优技术有限责任公司"),
            ),
            // WeChat Pay merchant: the company is in OU.
            (
                name(
                    Some("1600314068"),
                    Some("微信商户系统"),
                    Some("深圳天宫云科技有限公司"),
                ),
                name(Some("Tenpay.com Root CA"), Some("Tenpay.com"), None),
                "1600314068",
                Some("深圳天宫云科技有限公司"),
            ),
            // No CN: O is the holder (and the organisation, unless it is the CA's).
            (
                name(None, Some("某某有限公司"), None),
                bjca.clone(),
                "某某有限公司",
                Some("某某有限公司"),
            ),
            (name(None, None, None), bjca.clone(), "", None),
        ];
        for (subject, issuer, holder, organization) in cases {
            let c = named(subject.clone(), issuer);
            assert_eq!(c.owner(), holder, "{subject:?}");
            assert_eq!(c.organization().as_deref(), organization, "{subject:?}");
        }
    }

    #[test]
    fn a_ca_certificate_keeps_its_own_name() {
        let mcsca = name(Some("MCSCA"), Some("MCSCA"), None);
        let root = name(Some("ROOTCA"), Some("NRCAC"), None);
        assert_eq!(
            named(mcsca.clone(), root.clone()).organization().as_deref(),
            Some("MCSCA"),
            "O = CN"
        );
        let sheca = name(Some("SHECA SM2"), Some("SHECA"), None);
        let mut c = named(sheca.clone(), root.clone());
        assert_eq!(c.organization(), None, "SHECA is a CA name");
        c.key_usage = vec!["keyCertSign".into(), "cRLSign".into()];
        assert_eq!(
            c.organization().as_deref(),
            Some("SHECA"),
            "a CA's certificate"
        );
        let c = named(root.clone(), root);
        assert_eq!(c.organization().as_deref(), Some("NRCAC"), "self-issued");
    }

    #[test]
    fn holder_kinds_and_sources() {
        let issuer = name(Some("CA"), Some("Some CA"), None);
        let h = named(
            name(
                Some("051@test_sm2@test_sm2@2"),
                Some("CFCA OCA31"),
                Some("ysepay, Individual-1"),
            ),
            issuer.clone(),
        )
        .holder();
        assert_eq!(
            (h.kind, h.source),
            (Some(HolderKind::Person), HolderSource::CfcaCn)
        );
        let h = named(
            name(
                Some("041@8310000000083040@中国银联股份有限公司@00016495"),
                Some("CFCA OCA1"),
                Some("Local RA OCA1, Enterprises"),
            ),
            issuer.clone(),
        )
        .holder();
        assert_eq!(
            (h.kind, h.source),
            (Some(HolderKind::Organization), HolderSource::CfcaCn)
        );
        let h = named(name(Some("1@唐好凯@01@012"), None, None), issuer.clone()).holder();
        assert_eq!(
            (h.name.as_str(), h.source),
            ("1@唐好凯@01@012", HolderSource::Cn),
            "a 1-digit id is not MCSCA's"
        );
        let h = named(
            name(Some("17652468@唐好凯@01@012"), None, None),
            issuer.clone(),
        )
        .holder();
        assert_eq!(
            (h.kind, h.source),
            (Some(HolderKind::Person), HolderSource::McscaCn)
        );
        let h = named(name(None, Some("O"), None), issuer.clone()).holder();
        assert_eq!((h.kind, h.source), (None, HolderSource::O));
        let only_c = Name {
            c: Some("CN".into()),
            dn: "C=CN".into(),
            ..Name::default()
        };
        let h = named(only_c, issuer).holder();
        assert_eq!((h.name.as_str(), h.source), ("C=CN", HolderSource::Dn));
    }

    #[test]
    fn names_compare_without_case_and_spacing() {
        assert!(same_name("CN=SHECA,O=UniTrust", "cn=sheca,o=unitrust"));
        assert!(same_name("CN=Trust-Sign  SM2 CA", " CN=Trust-Sign SM2 CA"));
        assert!(!same_name("CN=SHECA,O=UniTrust", "CN=SHECA,O=UnitTrust"));
    }

    #[test]
    fn ca_names() {
        for n in [
            "SHECA",
            "sheca",
            " BJCA ",
            "CFCA OCA1",
            "CFCA TEST OCA1",
            "CFCASM2AGENT",
            "贵州省电子证书有限公司",
            "微信商户系统",
        ] {
            assert!(is_ca_name(n), "{n}");
        }
        for n in [
            "北京数字认证股份有限公司",
            "福建政务云",
            "SHECA2",
            "中国银联股份有限公司",
            "",
        ] {
            assert!(!is_ca_name(n), "{n}");
        }
    }
}
