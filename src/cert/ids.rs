//! Chinese identifiers found in certificates (see shared/docs/CHINA-PKI.md).

use super::text;
pub use crate::model::Identifiers;
use crate::model::certificate::{IdKind, UnverifiedId, split_wrapped_cn};

/// The 31 USCC symbols; a symbol's value is its position (no I, O, S, V, Z).
const USCC_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
/// GB 32100-2015 weights of positions 1–17 (3^(i-1) mod 31).
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Extension and attribute OIDs, by what they carry (CHINA-PKI.md, "Identifiers inside
/// certificates").
mod oid {
    pub const PERSONAL_ID: &str = "1.2.156.10260.4.1.1";
    pub const BUSINESS_REG_NO: &str = "1.2.156.10260.4.1.3";
    pub const ORG_CODE: &str = "1.2.156.10260.4.1.4";
    pub const TAXPAYER_ID: &str = "1.2.156.10260.4.1.5";
    pub const USCC: &str = "1.2.156.10260.4.4";
    pub const OLD_PERSONAL_ID: &str = "1.2.86.11.7.1";
    pub const OLD_BUSINESS_REG_NO: &str = "1.2.86.11.7.3";
    pub const OLD_USCC: &str = "1.2.86.11.7.4";
    pub const OLD_TAXPAYER_ID: &str = "1.2.86.11.7.5";
    pub const BJCA_UNIQUE_ID: &str = "1.2.156.112562.2.1.1.1";
    /// BJCA's USCC extension.
    pub const BJCA_USCC: &str = "1.2.156.112562.2.1.1.8";
    /// Entrust's arc, where BJCA's RSA certificates repeat the unique id.
    pub const ENTRUST_USER_ID: &str = "2.16.840.1.113732.2";
    /// Subject attributes.
    pub const NAME: &str = "2.5.4.41";
    pub const SERIAL_NUMBER: &str = "2.5.4.5";
    pub const ORGANIZATION_IDENTIFIER: &str = "2.5.4.97";
    pub const OU: &str = "2.5.4.11";
    pub const CN: &str = "2.5.4.3";
}

fn uscc_value(c: char) -> Option<u32> {
    // The alphabet is ASCII, so a byte index is a symbol index.
    USCC_ALPHABET.find(c).and_then(|i| u32::try_from(i).ok())
}

/// The GB 32100-2015 check character for the first 17 characters of a USCC, or `None`
/// when `first17` is not exactly 17 characters of the USCC alphabet.
///
/// Only upper-case letters belong to the alphabet: `"91350100m000100y4"` gives `None`.
pub fn uscc_check_digit(first17: &str) -> Option<char> {
    let mut count = 0usize;
    let mut sum = 0u32;
    for c in first17.chars() {
        let weight = USCC_WEIGHTS.get(count)?;
        sum += uscc_value(c)? * weight;
        count += 1;
    }
    if count != USCC_WEIGHTS.len() {
        return None;
    }
    let check = (31 - sum % 31) % 31;
    USCC_ALPHABET.chars().nth(usize::try_from(check).ok()?)
}

/// True when `code` is 18 characters of the USCC alphabet with a correct check character.
///
/// Upper case only: a code written in lower case is not valid (callers that accept user
/// input may upper-case it first; certificates are read as they are).
pub fn uscc_is_valid(code: &str) -> bool {
    let mut chars = code.chars();
    let first17: String = chars.by_ref().take(17).collect();
    match (chars.next(), chars.next()) {
        (Some(check), None) => uscc_check_digit(&first17) == Some(check),
        _ => false,
    }
}

/// 18 characters of the USCC alphabet (the check character is not verified).
fn uscc_shaped(s: &str) -> bool {
    s.chars().count() == 18 && s.chars().all(|c| uscc_value(c).is_some())
}

/// GB 11643-1999 weights of the first 17 digits (2^(17-i) mod 11).
const PERSONAL_ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// The check character for Σ mod 11.
const PERSONAL_ID_CHECK: &[u8; 11] = b"10X98765432";

/// The GB 11643 check character (`0`–`9` or `X`) for the first 17 digits of a resident ID
/// number, or `None` when `first17` is not 17 ASCII digits.
pub fn personal_id_check_digit(first17: &str) -> Option<char> {
    let b = first17.as_bytes();
    if b.len() != 17 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = b
        .iter()
        .zip(PERSONAL_ID_WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    PERSONAL_ID_CHECK
        .get(usize::try_from(sum % 11).ok()?)
        .map(|&c| char::from(c))
}

/// True when `id` is a resident ID number (居民身份证号码, GB 11643-1999): 18 characters
/// with a right check character (an upper-case `X` for 10), or an old 15-digit number
/// (before 1999: no check character, two-digit year of the 1900s). Either way the address
/// code must start with a province code of GB/T 2260 and the birth date must exist.
pub fn personal_id_is_valid(id: &str) -> bool {
    let b = id.as_bytes();
    let (birth, year_digits) = match b.len() {
        18 => {
            let Some(first17) = id.get(..17) else {
                return false;
            };
            if personal_id_check_digit(first17).map(|c| c as u8) != b.get(17).copied() {
                return false;
            }
            (b.get(6..14), 4)
        }
        15 if b.iter().all(u8::is_ascii_digit) => (b.get(6..12), 2),
        _ => return false,
    };
    province_code(b.get(..2)) && birth.is_some_and(|d| real_date(d, year_digits))
}

/// The first two digits of a GB/T 2260 address code: a province, an autonomous region, a
/// municipality, Taiwan (71), Hong Kong (81), Macao (82), or Taiwan residents' residence
/// permits (83).
fn province_code(two: Option<&[u8]>) -> bool {
    let Some(&[a, b]) = two else {
        return false;
    };
    if !a.is_ascii_digit() || !b.is_ascii_digit() {
        return false;
    }
    matches!(
        (a - b'0') * 10 + (b - b'0'),
        11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81..=83
    )
}

/// `YYYYMMDD` (or `YYMMDD` of the 1900s) is a date that exists.
fn real_date(digits: &[u8], year_digits: usize) -> bool {
    if !digits.iter().all(u8::is_ascii_digit) || digits.len() != year_digits + 4 {
        return false;
    }
    let number = |r: std::ops::Range<usize>| {
        digits
            .get(r)
            .map(|d| d.iter().fold(0u32, |n, c| n * 10 + u32::from(c - b'0')))
    };
    let (Some(year), Some(month), Some(day)) = (
        number(0..year_digits),
        number(year_digits..year_digits + 2),
        number(year_digits + 2..year_digits + 4),
    ) else {
        return false;
    };
    let year = if year_digits == 2 { 1900 + year } else { year };
    let (Ok(year), Ok(month), Ok(day)) =
        (i32::try_from(year), u8::try_from(month), u8::try_from(day))
    else {
        return false;
    };
    (1900..=2099).contains(&year)
        && time::Month::try_from(month)
            .ok()
            .and_then(|m| time::Date::from_calendar_date(year, m, day).ok())
            .is_some()
}

/// GB 11714-1997 weights of the 8 body characters of an organisation code.
const ORG_CODE_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// The GB 11714-1997 check character of an organisation code (组织机构代码) for its 8
/// body characters (digits and capital letters, A = 10 … Z = 35), or `None` when `first8`
/// is not 8 such characters: C9 = 11 − (Σ Ci·Wi mod 11), 10 written `X`, 11 written `0`.
pub fn org_code_check_digit(first8: &str) -> Option<char> {
    let b = first8.as_bytes();
    if b.len() != 8 {
        return None;
    }
    let mut sum = 0u32;
    for (&c, w) in b.iter().zip(ORG_CODE_WEIGHTS) {
        let value = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return None,
        };
        sum += value * w;
    }
    match 11 - sum % 11 {
        10 => Some('X'),
        11 => Some('0'),
        n => char::from_digit(n, 10),
    }
}

/// True when `code` is an organisation code with a right check character, written
/// `XXXXXXXX-X` or without the hyphen.
pub fn org_code_is_valid(code: &str) -> bool {
    let compact: String = match code.split_once('-') {
        Some((body, check)) if body.len() == 8 && check.len() == 1 => format!("{body}{check}"),
        Some(_) => return false,
        None => code.to_owned(),
    };
    match (compact.get(..8), compact.get(8..)) {
        (Some(body), Some(check)) if check.len() == 1 => {
            org_code_check_digit(body).is_some_and(|c| check.starts_with(c))
        }
        _ => false,
    }
}

/// A USCC inside a subject attribute value: the whole value, the value after an ETSI EN
/// 319 412-1 semantics prefix for China (`NTRCN-`, `VATCN-`: three capitals, `CN`, `-`), or
/// the last 18 characters after a separator (`统一社会信用代码:9111…`). USCC-shaped (the
/// check character is looked at later).
fn uscc_in_subject_value(value: &str) -> Option<String> {
    let value = value.trim();
    let bytes = value.as_bytes();
    let etsi_prefix = bytes
        .get(..5)
        .is_some_and(|p| p.iter().all(u8::is_ascii_uppercase))
        && bytes.get(5) == Some(&b'-');
    let candidate = if uscc_shaped(value) {
        value
    } else if etsi_prefix {
        // Another country's registration number is not a USCC, whatever its shape.
        if bytes.get(3..5) != Some(b"CN".as_slice()) {
            return None;
        }
        value.get(6..)?
    } else {
        let start = value.char_indices().rev().nth(17)?.0;
        let (head, tail) = value.split_at_checked(start)?;
        if head
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        {
            return None;
        }
        tail
    };
    uscc_shaped(candidate).then(|| candidate.to_owned())
}

/// The text of an identifier extension's value (the extnValue content): a DER string,
/// possibly inside an OCTET STRING, SEQUENCE, SET or `[n]`; else the bytes themselves as
/// UTF-8 text (BJCA's untagged values). Trimmed; `None` for NULL and blanks.
fn extension_text(value: &[u8]) -> Option<String> {
    let s = text::der_string(value).or_else(|| text::plain_text(value))?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

/// BJCA's prefixes: `SF` + ID number (persons), `JJ` + USCC (organisations).
fn bjca_prefixed(value: &str) -> Option<(&'static str, &str)> {
    if let Some(rest) = value.strip_prefix("SF") {
        Some(("SF", rest))
    } else {
        value.strip_prefix("JJ").map(|rest| ("JJ", rest))
    }
}

/// What a bare number is, by its checks: a USCC, an ID number, or neither (then what it
/// most looks like).
enum Reading {
    Uscc,
    PersonalId,
    Neither(IdKind),
}

fn read_number(value: &str) -> Reading {
    if uscc_is_valid(value) {
        Reading::Uscc
    } else if personal_id_is_valid(value) {
        Reading::PersonalId
    } else {
        // A letter (other than an ID number's final X) makes it a USCC gone wrong; digits
        // an ID number gone wrong.
        let letter = value
            .char_indices()
            .any(|(i, c)| c.is_ascii_alphabetic() && !(i == 17 && c == 'X'));
        Reading::Neither(if uscc_shaped(value) && letter {
            IdKind::Uscc
        } else {
            IdKind::PersonalId
        })
    }
}

/// Identifiers being collected: the first valid value of each kind wins, failures are kept.
#[derive(Default)]
struct Collector {
    ids: Identifiers,
    uscc_claimed: bool,
}

impl Collector {
    fn unverified(&mut self, value: &str, kind: IdKind, source: &str) {
        if !self.ids.unverified.iter().any(|u| u.value == value) {
            self.ids.unverified.push(UnverifiedId {
                value: value.to_owned(),
                kind,
                source: source.to_owned(),
            });
        }
    }

    fn uscc(&mut self, value: &str, source: &str) -> bool {
        self.uscc_claimed = true;
        if uscc_is_valid(value) {
            self.ids.uscc.get_or_insert_with(|| value.to_owned());
            true
        } else {
            self.unverified(value, IdKind::Uscc, source);
            false
        }
    }

    fn personal_id(&mut self, value: &str, source: &str) {
        if personal_id_is_valid(value) {
            self.ids.personal_id.get_or_insert_with(|| value.to_owned());
        } else {
            self.unverified(value, IdKind::PersonalId, source);
        }
    }

    /// A number whose kind the source does not say: named by its checks.
    fn number(&mut self, value: &str, source: &str) {
        match read_number(value) {
            Reading::Uscc => {
                self.uscc(value, source);
            }
            Reading::PersonalId => self.personal_id(value, source),
            Reading::Neither(IdKind::Uscc) => {
                self.uscc(value, source);
            }
            Reading::Neither(kind) => self.unverified(value, kind, source),
        }
    }

    /// A personal ID extension: `SF` + ID number is a BJCA unique id; anything else must
    /// pass GB 11643.
    fn personal_id_extension(&mut self, value: &str, oid: &str) {
        let source = format!("extension {oid}");
        if let Some((prefix, rest)) = bjca_prefixed(value) {
            self.bjca_unique_id(value, prefix, rest, &source);
        } else {
            self.personal_id(value, &source);
        }
    }

    /// A BJCA unique id (`SF…`, `JJ…`, or any other form, kept as written) and the number
    /// behind its prefix.
    fn bjca_unique_id(&mut self, value: &str, prefix: &str, rest: &str, source: &str) {
        self.ids
            .bjca_unique_id
            .get_or_insert_with(|| value.to_owned());
        let behind = format!("{source} after {prefix}");
        match prefix {
            "JJ" => {
                self.uscc(rest, &behind);
            }
            _ => self.personal_id(rest, &behind),
        }
    }

    fn org_code(&mut self, value: &str, source: &str) {
        if uscc_shaped(value) {
            if self.uscc(value, source) {
                // Many CAs now put the USCC in the organisation code extension.
                self.ids.org_code.get_or_insert_with(|| value.to_owned());
            }
        } else if org_code_is_valid(value) {
            self.ids.org_code.get_or_insert_with(|| value.to_owned());
        } else {
            self.unverified(value, IdKind::OrgCode, source);
        }
    }

    /// 纳税人识别号: a USCC; 15 characters of an area code and an organisation code, or an
    /// old 15-digit ID number; an ID number, alone or with two more digits.
    fn taxpayer_id(&mut self, value: &str, source: &str) {
        let b = value.as_bytes();
        let valid = match b.len() {
            15 => {
                (b.get(..6).is_some_and(|a| a.iter().all(u8::is_ascii_digit))
                    && value.get(6..).is_some_and(org_code_is_valid))
                    || personal_id_is_valid(value)
            }
            18 => uscc_is_valid(value) || personal_id_is_valid(value),
            20 => {
                value.get(..18).is_some_and(personal_id_is_valid)
                    && b.get(18..)
                        .is_some_and(|d| d.iter().all(u8::is_ascii_digit))
            }
            _ => false,
        };
        if valid {
            self.ids.taxpayer_id.get_or_insert_with(|| value.to_owned());
            if uscc_is_valid(value) {
                self.uscc(value, source);
            }
        } else {
            self.unverified(value, IdKind::TaxpayerId, source);
        }
    }

    /// 工商注册号: 13 or 15 digits (shape only: the registration number's own check digit is
    /// not verified), or a USCC.
    fn business_reg_no(&mut self, value: &str, source: &str) {
        let digits = value.bytes().all(|b| b.is_ascii_digit());
        if (digits && matches!(value.len(), 13 | 15)) || uscc_is_valid(value) {
            self.ids
                .business_reg_no
                .get_or_insert_with(|| value.to_owned());
        } else {
            self.unverified(value, IdKind::BusinessRegNo, source);
        }
    }
}

impl Identifiers {
    /// Read identifiers from the certificate's extensions (`(dotted OID, extnValue content)`
    /// in certificate order) and its subject attributes (`(dotted OID, text)` in DER order).
    ///
    /// Each kind takes the first valid value in this order: extensions 1.2.156.10260.4.4,
    /// 1.2.86.11.7.4, 1.2.156.10260.4.1.4, 1.2.156.112562.2.1.1.8 (USCC); 1.2.156.10260.4.1.1,
    /// 1.2.86.11.7.1 (ID number, or `SF` + ID number); 1.2.156.112562.2.1.1.1 and
    /// 2.16.840.1.113732.2 (BJCA unique id, `SF`/`JJ` + the number); the taxpayer and
    /// business registration extensions; then subject name (2.5.4.41), serialNumber,
    /// organizationIdentifier, OU; last the id part of a CFCA/MCSCA CN. When an extension
    /// occurs twice the first one with text counts.
    pub(super) fn collect<'a>(
        extensions: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        subject: &[(String, String)],
    ) -> Identifiers {
        const READ: [&str; 12] = [
            oid::PERSONAL_ID,
            oid::BUSINESS_REG_NO,
            oid::ORG_CODE,
            oid::TAXPAYER_ID,
            oid::USCC,
            oid::OLD_PERSONAL_ID,
            oid::OLD_BUSINESS_REG_NO,
            oid::OLD_USCC,
            oid::OLD_TAXPAYER_ID,
            oid::BJCA_UNIQUE_ID,
            oid::BJCA_USCC,
            oid::ENTRUST_USER_ID,
        ];
        let mut found: Vec<(&str, String)> = Vec::new();
        for (ext_oid, value) in extensions {
            if let Some(&key) = READ.iter().find(|&&w| w == ext_oid)
                && !found.iter().any(|(k, _)| *k == key)
                && let Some(text) = extension_text(value)
            {
                found.push((key, text));
            }
        }
        let ext = |key: &str| {
            found
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.as_str())
        };
        let from = |key: &str| format!("extension {key}");
        let mut c = Collector::default();

        for key in [oid::USCC, oid::OLD_USCC] {
            if let Some(v) = ext(key) {
                c.uscc(v, &from(key));
            }
        }
        if let Some(v) = ext(oid::ORG_CODE) {
            c.org_code(v, &from(oid::ORG_CODE));
        }
        if let Some(v) = ext(oid::BJCA_USCC) {
            c.uscc(v, &from(oid::BJCA_USCC));
        }
        for key in [oid::PERSONAL_ID, oid::OLD_PERSONAL_ID] {
            if let Some(v) = ext(key) {
                c.personal_id_extension(v, key);
            }
        }
        for key in [oid::BJCA_UNIQUE_ID, oid::ENTRUST_USER_ID] {
            let Some(v) = ext(key) else { continue };
            match bjca_prefixed(v) {
                Some((prefix, rest)) => c.bjca_unique_id(v, prefix, rest, &from(key)),
                None if key == oid::BJCA_UNIQUE_ID => {
                    c.ids.bjca_unique_id.get_or_insert_with(|| v.to_owned());
                }
                // 2.16.840.1.113732.2 without a prefix: the number itself.
                None => c.number(v, &from(key)),
            }
        }
        for key in [oid::TAXPAYER_ID, oid::OLD_TAXPAYER_ID] {
            if let Some(v) = ext(key) {
                c.taxpayer_id(v, &from(key));
            }
        }
        for key in [oid::BUSINESS_REG_NO, oid::OLD_BUSINESS_REG_NO] {
            if let Some(v) = ext(key) {
                c.business_reg_no(v, &from(key));
            }
        }

        let attributes = |attr: &'static str| {
            subject
                .iter()
                .filter(move |(o, _)| o == attr)
                .map(|(_, v)| v.trim())
        };
        for v in attributes(oid::NAME) {
            if uscc_shaped(v) {
                c.uscc(v, "subject name");
            }
        }
        for v in attributes(oid::SERIAL_NUMBER) {
            match uscc_in_subject_value(v) {
                // A USCC-shaped serial number may be an ID number too (digits and `X`).
                Some(u) if u == v => c.number(v, "subject serialNumber"),
                Some(u) => {
                    c.uscc(&u, "subject serialNumber");
                }
                None if v.len() == 15 && v.bytes().all(|b| b.is_ascii_digit()) => {
                    c.personal_id(v, "subject serialNumber");
                }
                None => {}
            }
        }
        for v in attributes(oid::ORGANIZATION_IDENTIFIER) {
            if let Some(u) = uscc_in_subject_value(v) {
                c.uscc(&u, "subject organizationIdentifier");
            }
        }
        for v in attributes(oid::OU) {
            // OU is free text: only a USCC-shaped value with six digits or more counts.
            if let Some(u) = uscc_in_subject_value(v)
                && u.bytes().filter(u8::is_ascii_digit).count() >= 6
            {
                c.uscc(&u, "subject OU");
            }
        }
        if let Some(id) = attributes(oid::CN)
            .next()
            .and_then(split_wrapped_cn)
            .and_then(|w| w.id)
        {
            match read_number(&id) {
                Reading::Uscc => {
                    c.uscc(&id, "subject CN");
                }
                Reading::PersonalId => c.personal_id(&id, "subject CN"),
                Reading::Neither(_) => {
                    c.ids.ca_user_id = Some(id);
                }
            }
        }

        let mut ids = c.ids;
        ids.uscc_valid = if ids.uscc.is_some() {
            Some(true)
        } else {
            c.uscc_claimed.then_some(false)
        };
        ids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-valid codes: two published examples (checked by hand against the weights) and
    /// the ones tests/fixtures/make-certs.sh uses.
    const VALID: [&str; 6] = [
        "91350100M000100Y43",
        "91110000100017643K",
        "91110108MA01ABCDEN",
        "91310115MA1K3Q8H2W",
        "91440300MA5FUTUR07",
        "91110108MA01CRT7X3",
    ];

    #[test]
    fn check_digit_of_known_codes() {
        for code in VALID {
            let (first17, check) = code.split_at(17);
            assert_eq!(uscc_check_digit(first17), check.chars().next(), "{code}");
            assert!(uscc_is_valid(code), "{code}");
        }
    }

    #[test]
    fn check_digit_hand_computed() {
        // 9·1 + 1·3 + 3·9 + 5·27 + 0 + 1·26 + 0 + 0 + 21(M)·20 + 0 + 0 + 0 + 1·8 + 0 + 0
        // + 30(Y)·30 + 4·28 = 1640; 1640 mod 31 = 28; 31 − 28 = 3.
        assert_eq!(uscc_check_digit("91350100M000100Y4"), Some('3'));
        // Σ ≡ 0 (mod 31) gives check 31, which maps to '0'.
        assert_eq!(uscc_check_digit("00000000000000000"), Some('0'));
    }

    #[test]
    fn every_wrong_check_character_is_invalid() {
        for code in VALID {
            let (first17, right) = code.split_at(17);
            for c in USCC_ALPHABET.chars().filter(|c| !right.starts_with(*c)) {
                assert!(!uscc_is_valid(&format!("{first17}{c}")), "{first17}{c}");
            }
        }
    }

    #[test]
    fn constructed_codes_round_trip() {
        for body in [
            "91110108MA01CRT7X",
            "12100000400000624",
            "Y1110108MA01CRT7X",
            "00000000000000000",
        ] {
            let check = uscc_check_digit(body).unwrap();
            let code = format!("{body}{check}");
            assert!(uscc_is_valid(&code), "{code}");
            // A single changed symbol is always caught (weights are invertible mod 31).
            let changed = format!(
                "{}{}",
                if body.starts_with('9') { "8" } else { "9" },
                &code[1..]
            );
            assert!(!uscc_is_valid(&changed), "{changed}");
        }
    }

    #[test]
    fn rejects_bad_shapes() {
        assert!(!uscc_is_valid(""));
        assert!(!uscc_is_valid("91350100M000100Y4"), "17 chars");
        assert!(!uscc_is_valid("91350100M000100Y433"), "19 chars");
        assert!(
            !uscc_is_valid("91350100m000100y43"),
            "lower case is not accepted"
        );
        assert!(
            !uscc_is_valid("91350100M000100I43"),
            "I is not in the alphabet"
        );
        assert!(!uscc_is_valid("91350100M000100Y4三"));
        assert!(!uscc_is_valid(" 91350100M000100Y43"));
        assert_eq!(uscc_check_digit("9135010OM000100Y4"), None, "letter O");
        assert_eq!(uscc_check_digit("91350100M000100Y"), None, "16 chars");
        assert_eq!(uscc_check_digit("91350100M000100Y43"), None, "18 chars");
        assert_eq!(uscc_check_digit("91350100m000100y4"), None, "lower case");
    }

    #[test]
    fn personal_id_check_digits() {
        // 11010519491231002X is the GB 11643-1999 standard's own example; the others are
        // in the real certificates of shared/fixtures/real-certs (files 24, 31, 35).
        for id in [
            "11010519491231002X",
            "51020219670316621X",
            "110102198811113018",
            "522101199204210410",
        ] {
            let (first17, check) = id.split_at(17);
            assert_eq!(
                personal_id_check_digit(first17),
                check.chars().next(),
                "{id}"
            );
            assert!(personal_id_is_valid(id), "{id}");
            for wrong in "0123456789X".chars().filter(|c| !check.starts_with(*c)) {
                assert!(
                    !personal_id_is_valid(&format!("{first17}{wrong}")),
                    "{first17}{wrong}"
                );
            }
        }
        // Σ = 99 ≡ 0 (mod 11) → '1'; Σ ≡ 2 → 'X'.
        assert_eq!(personal_id_check_digit("11010519491231002"), Some('X'));
        assert_eq!(
            personal_id_check_digit("1101051949123100"),
            None,
            "16 digits"
        );
        assert_eq!(personal_id_check_digit("1101051949123100A"), None);
    }

    #[test]
    fn personal_ids_need_a_real_date_and_province() {
        assert!(!personal_id_is_valid("11010519491231002x"), "lower-case x");
        assert!(
            !personal_id_is_valid("500239199104071000"),
            "file 25: wrong check"
        );
        assert!(
            !personal_id_is_valid("34798237498273489"),
            "file 19: 17 digits"
        );
        assert!(!personal_id_is_valid("91350100M000100Y43"), "a USCC");
        // Right check characters, impossible dates or provinces.
        for body in [
            "11010519491331002",
            "11010519490229002",
            "00010519491231002",
            "99010519491231002",
        ] {
            let id = format!("{body}{}", personal_id_check_digit(body).unwrap());
            assert!(!personal_id_is_valid(&id), "{id}");
        }
        let leap = "11010519480229002";
        assert!(personal_id_is_valid(&format!(
            "{leap}{}",
            personal_id_check_digit(leap).unwrap()
        )));
        // Old 15-digit numbers: 6-digit address, YYMMDD of the 1900s, 3 digits.
        assert!(personal_id_is_valid("110105491231002"));
        assert!(!personal_id_is_valid("110105491331002"), "month 13");
        assert!(
            !personal_id_is_valid("001070320206816"),
            "file 22: no province 00"
        );
        assert!(
            !personal_id_is_valid("11010549123100X"),
            "no check character"
        );
        assert!(!personal_id_is_valid(""));
        assert!(!personal_id_is_valid("张三"));
    }

    #[test]
    fn org_code_check_digits() {
        // The organisation codes inside real USCCs (positions 9–17: a USCC carries the
        // organisation code): the published example, BJCA's (file 18), Zotrus' (file 29).
        for code in ["M000100Y4", "10001764-3", "72261941-1", "MA5GY4X4-X"] {
            assert!(org_code_is_valid(code), "{code}");
        }
        for usc in [
            "91350100M000100Y43",
            "91110108722619411A",
            "91440300MA5GY4X4XH",
        ] {
            assert!(uscc_is_valid(usc), "{usc}");
            let org = usc.get(8..17).unwrap();
            assert!(org_code_is_valid(org), "{usc}: {org}");
        }
        // 0·3 + … = 0 → 11 → '0'; X for 10.
        assert_eq!(org_code_check_digit("00000000"), Some('0'));
        assert_eq!(org_code_check_digit("MA5GY4X4"), Some('X'));
        assert!(!org_code_is_valid("00000000-1"), "file 23");
        assert!(!org_code_is_valid("72261941-2"));
        assert!(!org_code_is_valid("7226194-11"), "hyphen misplaced");
        assert!(!org_code_is_valid("72261941-"));
        assert!(!org_code_is_valid("72261941"), "no check character");
        assert!(!org_code_is_valid("m000100y4"), "lower case");
        assert_eq!(org_code_check_digit("7226194"), None);
        assert_eq!(org_code_check_digit("7226194a"), None);
    }

    #[test]
    fn finds_uscc_in_subject_values() {
        let cases = [
            ("91350100M000100Y43", Some("91350100M000100Y43")),
            ("  91350100M000100Y43 ", Some("91350100M000100Y43")),
            ("NTRCN-91350100M000100Y43", Some("91350100M000100Y43")),
            ("VATCN-91350100M000100Y44", Some("91350100M000100Y44")),
            (
                "统一社会信用代码:91350100M000100Y43",
                Some("91350100M000100Y43"),
            ),
            ("USCC 91350100M000100Y43", Some("91350100M000100Y43")),
            ("X91350100M000100Y43", None),
            ("NTRDE-91350100M000100Y43", None),
            // USCC-shaped: what it is is decided by the checks later.
            ("11010519491231002X", Some("11010519491231002X")),
            ("财务部", None),
            ("", None),
            ("91350100m000100y43", None),
        ];
        for (value, want) in cases {
            assert_eq!(uscc_in_subject_value(value).as_deref(), want, "{value:?}");
        }
    }

    fn utf8(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        text::push_tlv(&mut v, text::tag::UTF8_STRING, s.as_bytes());
        v
    }

    fn printable(s: &str) -> Vec<u8> {
        let mut v = Vec::new();
        text::push_tlv(&mut v, text::tag::PRINTABLE_STRING, s.as_bytes());
        v
    }

    fn bmp(s: &str) -> Vec<u8> {
        let content: Vec<u8> = s.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let mut v = Vec::new();
        text::push_tlv(&mut v, text::tag::BMP_STRING, &content);
        v
    }

    fn collect(exts: &[(&str, Vec<u8>)], subject: &[(&str, &str)]) -> Identifiers {
        let subject: Vec<(String, String)> = subject
            .iter()
            .map(|(o, v)| (o.to_string(), v.to_string()))
            .collect();
        Identifiers::collect(exts.iter().map(|(o, v)| (*o, v.as_slice())), &subject)
    }

    fn unverified(value: &str, kind: IdKind, source: &str) -> UnverifiedId {
        UnverifiedId {
            value: value.into(),
            kind,
            source: source.into(),
        }
    }

    #[test]
    fn reads_every_extension() {
        let ids = collect(
            &[
                (oid::PERSONAL_ID, utf8("11010519491231002X")),
                (oid::BUSINESS_REG_NO, b"\x13\x0f110000450012345".to_vec()),
                (oid::ORG_CODE, utf8("M000100Y4")),
                (oid::TAXPAYER_ID, b"\x16\x11  110105722619411".to_vec()),
                (oid::USCC, bmp("91350100M000100Y43")),
                (oid::BJCA_UNIQUE_ID, utf8("1@5009JJ0110000123")),
                ("2.5.29.15", b"\x03\x02\x06\xc0".to_vec()),
            ],
            &[],
        );
        assert_eq!(
            ids,
            Identifiers {
                uscc: Some("91350100M000100Y43".into()),
                uscc_valid: Some(true),
                taxpayer_id: Some("110105722619411".into()),
                org_code: Some("M000100Y4".into()),
                business_reg_no: Some("110000450012345".into()),
                personal_id: Some("11010519491231002X".into()),
                bjca_unique_id: Some("1@5009JJ0110000123".into()),
                ca_user_id: None,
                unverified: Vec::new(),
            }
        );
    }

    /// Every encoding of 1.2.156.10260.4.1.x that CHINA-PKI.md lists.
    #[test]
    fn reads_every_encoding_seen() {
        let id = "522101199204210410";
        let bracketed = {
            let mut v = Vec::new();
            text::push_tlv(&mut v, 0xA0, &printable(id));
            v
        };
        let set_of_implicit = {
            let mut inner = Vec::new();
            text::push_tlv(&mut inner, 0x80, id.as_bytes());
            let mut v = Vec::new();
            text::push_tlv(&mut v, text::tag::SET, &inner);
            v
        };
        for value in [
            utf8(id),
            printable(id),
            bracketed,
            set_of_implicit,
            id.as_bytes().to_vec(),
        ] {
            let ids = collect(&[(oid::PERSONAL_ID, value.clone())], &[]);
            assert_eq!(ids.personal_id.as_deref(), Some(id), "{value:02x?}");
        }
        let null = collect(&[(oid::PERSONAL_ID, b"\x05\x00".to_vec())], &[]);
        assert_eq!(null, Identifiers::default(), "NULL is no value");
    }

    #[test]
    fn bjca_prefixes() {
        // File 31: raw untagged SF + ID number in the old arc and in Entrust's.
        let raw = b"SF110102198811113018".to_vec();
        let ids = collect(
            &[
                (oid::OLD_PERSONAL_ID, raw.clone()),
                (oid::ENTRUST_USER_ID, raw),
            ],
            &[],
        );
        assert_eq!(ids.personal_id.as_deref(), Some("110102198811113018"));
        assert_eq!(ids.bjca_unique_id.as_deref(), Some("SF110102198811113018"));
        assert!(ids.unverified.is_empty());
        // File 18: JJ + USCC.
        let ids = collect(&[(oid::BJCA_UNIQUE_ID, utf8("JJ91110108722619411A"))], &[]);
        assert_eq!(ids.uscc.as_deref(), Some("91110108722619411A"));
        assert_eq!(ids.bjca_unique_id.as_deref(), Some("JJ91110108722619411A"));
        // File 19: a 17-digit number behind SF, and bare in 4.1.1 and Entrust's arc: never
        // a personal ID, kept once as unverified.
        let ids = collect(
            &[
                (oid::BJCA_UNIQUE_ID, utf8("SF34798237498273489")),
                (oid::ENTRUST_USER_ID, utf8("34798237498273489")),
                (oid::PERSONAL_ID, utf8("34798237498273489")),
            ],
            &[],
        );
        assert_eq!(ids.personal_id, None);
        assert_eq!(ids.bjca_unique_id.as_deref(), Some("SF34798237498273489"));
        assert_eq!(
            ids.unverified,
            [unverified(
                "34798237498273489",
                IdKind::PersonalId,
                "extension 1.2.156.10260.4.1.1"
            )]
        );
        // A JJ with a wrong check character.
        let ids = collect(&[(oid::BJCA_UNIQUE_ID, utf8("JJ91110108722619411B"))], &[]);
        assert_eq!((ids.uscc, ids.uscc_valid), (None, Some(false)));
        assert_eq!(
            ids.unverified,
            [unverified(
                "91110108722619411B",
                IdKind::Uscc,
                "extension 1.2.156.112562.2.1.1.1 after JJ"
            )]
        );
    }

    #[test]
    fn failed_checks_are_unverified_never_named() {
        let mut wrapped = Vec::new();
        text::push_tlv(
            &mut wrapped,
            text::tag::OCTET_STRING,
            &utf8("110000450012345"),
        );
        let ids = collect(
            &[
                (oid::OLD_PERSONAL_ID, b"110105194912310021".to_vec()), // raw text, not DER
                (oid::OLD_BUSINESS_REG_NO, wrapped),
                (oid::OLD_USCC, utf8("91350100M000100Y44")),
                (oid::OLD_TAXPAYER_ID, b"\x04\x0f110105000000001".to_vec()),
                (oid::ORG_CODE, printable("00000000-1")),
            ],
            &[],
        );
        // These used to be named as the personal ID and the USCC (with uscc_valid false)
        // though their check characters are wrong.
        assert_eq!(ids.personal_id, None);
        assert_eq!(ids.uscc, None);
        assert_eq!(
            ids.uscc_valid,
            Some(false),
            "a USCC is claimed, none is valid"
        );
        assert_eq!(
            ids.taxpayer_id, None,
            "00000000-1 is not an organisation code"
        );
        assert_eq!(ids.org_code, None);
        assert_eq!(ids.business_reg_no.as_deref(), Some("110000450012345"));
        assert_eq!(
            ids.unverified,
            [
                unverified(
                    "91350100M000100Y44",
                    IdKind::Uscc,
                    "extension 1.2.86.11.7.4"
                ),
                unverified(
                    "00000000-1",
                    IdKind::OrgCode,
                    "extension 1.2.156.10260.4.1.4"
                ),
                unverified(
                    "110105194912310021",
                    IdKind::PersonalId,
                    "extension 1.2.86.11.7.1"
                ),
                unverified(
                    "110105000000001",
                    IdKind::TaxpayerId,
                    "extension 1.2.86.11.7.5"
                ),
            ]
        );
    }

    #[test]
    fn taxpayer_ids() {
        for (value, ok) in [
            ("91350100M000100Y43", true),
            ("110105722619411", true),
            ("110105491231002", true),
            ("11010519491231002X", true),
            ("11010519491231002X01", true),
            ("91350100M000100Y44", false),
            ("110105722619412", false),
            ("1101057226194", false),
            ("11010519491231002X0A", false),
        ] {
            let ids = collect(&[(oid::TAXPAYER_ID, utf8(value))], &[]);
            assert_eq!(ids.taxpayer_id.is_some(), ok, "{value}");
            assert_eq!(ids.unverified.is_empty(), ok, "{value}");
        }
        let ids = collect(&[(oid::TAXPAYER_ID, utf8("91350100M000100Y43"))], &[]);
        assert_eq!(
            ids.uscc.as_deref(),
            Some("91350100M000100Y43"),
            "the USCC too"
        );
    }

    #[test]
    fn uscc_priority() {
        let serial = [("2.5.4.5", "91310115MA1K3Q8H2W")];
        let all = [
            (oid::ORG_CODE, utf8("91110108MA01ABCDEN")),
            (oid::OLD_USCC, utf8("91110000100017643K")),
            (oid::USCC, utf8("91350100M000100Y43")),
        ];
        assert_eq!(
            collect(&all, &serial).uscc.as_deref(),
            Some("91350100M000100Y43")
        );
        assert_eq!(
            collect(&all[..2], &serial).uscc.as_deref(),
            Some("91110000100017643K")
        );
        let by_org_code = collect(&all[..1], &serial);
        assert_eq!(by_org_code.uscc.as_deref(), Some("91110108MA01ABCDEN"));
        assert_eq!(by_org_code.org_code.as_deref(), Some("91110108MA01ABCDEN"));
        assert_eq!(
            collect(&[], &serial).uscc.as_deref(),
            Some("91310115MA1K3Q8H2W")
        );
        // An org code that is not USCC-shaped does not count.
        let old_org_code = collect(&[(oid::ORG_CODE, utf8("M000100Y4"))], &serial);
        assert_eq!(old_org_code.uscc.as_deref(), Some("91310115MA1K3Q8H2W"));
        // A wrong USCC first does not hide a right one later.
        let later = collect(&[(oid::USCC, utf8("91350100M000100Y44"))], &serial);
        assert_eq!(later.uscc.as_deref(), Some("91310115MA1K3Q8H2W"));
        assert_eq!(later.uscc_valid, Some(true));
        assert_eq!(later.unverified.len(), 1);
    }

    #[test]
    fn subject_attributes() {
        let subject = [
            ("2.5.4.11", "91110108MA01ABCDEN"),
            ("2.5.4.97", "NTRCN-91440300MA5FUTUR07"),
            ("2.5.4.5", "11010519491231002X"), // a resident ID
        ];
        let ids = collect(&[], &subject);
        assert_eq!(ids.uscc.as_deref(), Some("91440300MA5FUTUR07"));
        assert_eq!(ids.personal_id.as_deref(), Some("11010519491231002X"));
        assert_eq!(
            collect(&[], &subject[..1]).uscc.as_deref(),
            Some("91110108MA01ABCDEN")
        );
        let second_ou = [("2.5.4.11", "财务部"), ("2.5.4.11", "91110108MA01ABCDEN")];
        assert_eq!(
            collect(&[], &second_ou).uscc.as_deref(),
            Some("91110108MA01ABCDEN")
        );
        // File 18: subject name; file 25: a serial number that is no ID number.
        let ids = collect(&[], &[("2.5.4.41", "91110108722619411A")]);
        assert_eq!(ids.uscc.as_deref(), Some("91110108722619411A"));
        let ids = collect(&[], &[("2.5.4.5", "500239199104071000")]);
        assert_eq!(
            (ids.personal_id, ids.uscc, ids.uscc_valid),
            (None, None, None)
        );
        assert_eq!(
            ids.unverified,
            [unverified(
                "500239199104071000",
                IdKind::PersonalId,
                "subject serialNumber"
            )]
        );
        let ids = collect(&[], &[("2.5.4.5", "110105491231002")]);
        assert_eq!(ids.personal_id.as_deref(), Some("110105491231002"));
        // Free-text OUs are not identifiers.
        let ids = collect(&[], &[("2.5.4.11", "ABCDEFGHJKLMNPQRTU")]);
        assert_eq!(ids, Identifiers::default());
    }

    #[test]
    fn wrapped_common_names_give_ids() {
        let ids = collect(
            &[],
            &[("2.5.4.3", "051@邮储线上收单商户@N51011300018878@1")],
        );
        assert_eq!(ids.ca_user_id.as_deref(), Some("N51011300018878"));
        assert!(ids.unverified.is_empty());
        let ids = collect(&[], &[("2.5.4.3", "1765246873783844864@唐好凯@01@012")]);
        assert_eq!(ids.ca_user_id.as_deref(), Some("1765246873783844864"));
        let ids = collect(&[], &[("2.5.4.3", "051@某公司@91350100M000100Y43@1")]);
        assert_eq!(
            (ids.uscc.as_deref(), ids.ca_user_id),
            (Some("91350100M000100Y43"), None)
        );
        let ids = collect(&[], &[("2.5.4.3", "张三")]);
        assert_eq!(ids, Identifiers::default());
    }

    #[test]
    fn blank_and_non_text_values_are_absent() {
        let ids = collect(
            &[
                (oid::TAXPAYER_ID, utf8("   ")),
                (oid::TAXPAYER_ID, utf8("110105722619411")),
                (oid::BJCA_UNIQUE_ID, b"\x02\x01\x05".to_vec()),
            ],
            &[],
        );
        assert_eq!(
            ids.taxpayer_id.as_deref(),
            Some("110105722619411"),
            "a blank value does not count"
        );
        assert_eq!(ids.bjca_unique_id, None, "an INTEGER is not text");
        assert_eq!(ids.uscc, None);
        assert_eq!(ids.uscc_valid, None);
    }

    #[test]
    fn first_extension_with_text_wins() {
        let ids = collect(
            &[
                (oid::TAXPAYER_ID, utf8("110105722619411")),
                (oid::TAXPAYER_ID, utf8("110105100017643")),
                (oid::OLD_TAXPAYER_ID, utf8("110105M000100Y4")),
            ],
            &[],
        );
        assert_eq!(ids.taxpayer_id.as_deref(), Some("110105722619411"));
        let old_only = collect(&[(oid::OLD_TAXPAYER_ID, utf8("110105M000100Y4"))], &[]);
        assert_eq!(old_only.taxpayer_id.as_deref(), Some("110105M000100Y4"));
    }
}
