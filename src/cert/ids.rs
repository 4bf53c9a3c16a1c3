//! Chinese identifiers found in certificates (see shared/docs/CHINA-PKI.md).

use super::text;

/// Identifiers read from every location CAs are known to use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identifiers {
    /// 统一社会信用代码 (18 characters, GB 32100-2015).
    pub uscc: Option<String>,
    /// Whether `uscc` carries a correct GB 32100 check digit.
    pub uscc_valid: Option<bool>,
    pub taxpayer_id: Option<String>,
    pub org_code: Option<String>,
    pub business_reg_no: Option<String>,
    pub personal_id: Option<String>,
    pub bjca_unique_id: Option<String>,
}

/// The 31 USCC symbols; a symbol's value is its position (no I, O, S, V, Z).
const USCC_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
/// GB 32100-2015 weights of positions 1–17 (3^(i-1) mod 31).
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// Extension OIDs, by what they carry.
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
    /// Subject attributes that some CAs fill with the USCC, in the order they are tried.
    pub const SUBJECT_USCC: [&str; 3] = [
        "2.5.4.5",  // serialNumber
        "2.5.4.97", // organizationIdentifier
        "2.5.4.11", // organizationalUnitName
    ];
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

/// A resident ID card number (GB 11643): 17 digits, then a digit or `X` that is the
/// ISO 7064 MOD 11-2 check, with a plausible birth date. Personal certificates carry it in
/// subject serialNumber; it is USCC-shaped but is not a USCC.
fn looks_like_resident_id(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() != 18 {
        return false;
    }
    let (body, check) = b.split_at(17);
    if !body.iter().all(u8::is_ascii_digit) {
        return false;
    }
    let digit = |i: usize| body.get(i).map_or(0, |d| u32::from(d - b'0'));
    let year = (6..10).fold(0, |acc, i| acc * 10 + digit(i));
    let month = digit(10) * 10 + digit(11);
    let day = digit(12) * 10 + digit(13);
    if !(1900..=2099).contains(&year) || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return false;
    }
    let sum: u32 = (0..17).map(|i| digit(i) * ((1u32 << (17 - i)) % 11)).sum();
    let expected = b"10X98765432"
        .get(usize::try_from(sum % 11).unwrap_or(0))
        .copied();
    check.first().copied() == expected
}

/// A USCC inside a subject attribute value: the whole value, the value after an ETSI EN
/// 319 412-1 semantics prefix for China (`NTRCN-`, `VATCN-`: three capitals, `CN`, `-`), or
/// the last 18 characters after a separator (`统一社会信用代码:9111…`).
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
    (uscc_shaped(candidate) && !looks_like_resident_id(candidate)).then(|| candidate.to_owned())
}

/// The text of an identifier extension's value (the extnValue content): a DER string,
/// possibly inside an OCTET STRING; else the bytes themselves as UTF-8 text. Trimmed.
fn extension_text(value: &[u8]) -> Option<String> {
    let s = text::der_string(value).or_else(|| text::plain_text(value))?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

impl Identifiers {
    /// Read identifiers from the certificate's extensions (`(dotted OID, extnValue content)`
    /// in certificate order) and its subject attributes (`(dotted OID, text)` in DER order).
    ///
    /// USCC priority: extension 1.2.156.10260.4.4, then 1.2.86.11.7.4, then
    /// 1.2.156.10260.4.1.4 when USCC-shaped, then subject serialNumber,
    /// organizationIdentifier, OU. When an extension occurs twice the first one with text counts.
    pub(super) fn collect<'a>(
        extensions: impl IntoIterator<Item = (&'a str, &'a [u8])>,
        subject: &[(String, String)],
    ) -> Identifiers {
        let mut found: Vec<(&str, String)> = Vec::new();
        for (ext_oid, value) in extensions {
            let wanted = [
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
            ];
            if let Some(&key) = wanted.iter().find(|&&w| w == ext_oid)
                && !found.iter().any(|(k, _)| *k == key)
                && let Some(text) = extension_text(value)
            {
                found.push((key, text));
            }
        }
        let get = |key: &str| {
            found
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
        };
        let first = |keys: &[&str]| keys.iter().find_map(|k| get(k));

        let org_code = get(oid::ORG_CODE);
        let uscc = first(&[oid::USCC, oid::OLD_USCC])
            .or_else(|| org_code.clone().filter(|c| uscc_shaped(c)))
            .or_else(|| {
                oid::SUBJECT_USCC.iter().find_map(|attr| {
                    subject
                        .iter()
                        .filter(|(o, _)| o == attr)
                        .find_map(|(_, v)| uscc_in_subject_value(v))
                })
            });
        Identifiers {
            uscc_valid: uscc.as_deref().map(uscc_is_valid),
            uscc,
            taxpayer_id: first(&[oid::TAXPAYER_ID, oid::OLD_TAXPAYER_ID]),
            org_code,
            business_reg_no: first(&[oid::BUSINESS_REG_NO, oid::OLD_BUSINESS_REG_NO]),
            personal_id: first(&[oid::PERSONAL_ID, oid::OLD_PERSONAL_ID]),
            bjca_unique_id: get(oid::BJCA_UNIQUE_ID),
        }
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
    fn resident_ids_are_recognised() {
        // 11010519491231002X is the GB 11643 textbook example.
        assert!(looks_like_resident_id("11010519491231002X"));
        assert!(!looks_like_resident_id("110105194912310021"), "wrong check");
        assert!(!looks_like_resident_id("91350100M000100Y43"));
        assert!(!looks_like_resident_id("110105194913310025"), "month 13");
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
            ("11010519491231002X", None),
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

    #[test]
    fn reads_every_extension() {
        let ids = collect(
            &[
                (oid::PERSONAL_ID, utf8("11010519491231002X")),
                (oid::BUSINESS_REG_NO, b"\x13\x0f110000450012345".to_vec()),
                (oid::ORG_CODE, utf8("M000100Y4")),
                (oid::TAXPAYER_ID, b"\x16\x11  110105000000001".to_vec()),
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
                taxpayer_id: Some("110105000000001".into()),
                org_code: Some("M000100Y4".into()),
                business_reg_no: Some("110000450012345".into()),
                personal_id: Some("11010519491231002X".into()),
                bjca_unique_id: Some("1@5009JJ0110000123".into()),
            }
        );
    }

    #[test]
    fn reads_the_old_arc_and_odd_encodings() {
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
            ],
            &[],
        );
        assert_eq!(ids.personal_id.as_deref(), Some("110105194912310021"));
        assert_eq!(ids.business_reg_no.as_deref(), Some("110000450012345"));
        assert_eq!(ids.uscc.as_deref(), Some("91350100M000100Y44"));
        assert_eq!(ids.uscc_valid, Some(false));
        assert_eq!(ids.taxpayer_id.as_deref(), Some("110105000000001"));
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
    }

    #[test]
    fn subject_order_serial_number_then_org_identifier_then_ou() {
        let subject = [
            ("2.5.4.11", "91110108MA01ABCDEN"),
            ("2.5.4.97", "NTRCN-91440300MA5FUTUR07"),
            ("2.5.4.5", "11010519491231002X"), // a resident ID, skipped
        ];
        let ids = collect(&[], &subject);
        assert_eq!(ids.uscc.as_deref(), Some("91440300MA5FUTUR07"));
        assert_eq!(
            collect(&[], &subject[..1]).uscc.as_deref(),
            Some("91110108MA01ABCDEN")
        );
        let second_ou = [("2.5.4.11", "财务部"), ("2.5.4.11", "91110108MA01ABCDEN")];
        assert_eq!(
            collect(&[], &second_ou).uscc.as_deref(),
            Some("91110108MA01ABCDEN")
        );
    }

    #[test]
    fn blank_and_non_text_values_are_absent() {
        let ids = collect(
            &[
                (oid::TAXPAYER_ID, utf8("   ")),
                (oid::TAXPAYER_ID, utf8("second")),
                (oid::BJCA_UNIQUE_ID, b"\x02\x01\x05".to_vec()),
            ],
            &[],
        );
        assert_eq!(
            ids.taxpayer_id.as_deref(),
            Some("second"),
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
                (oid::TAXPAYER_ID, utf8("first")),
                (oid::TAXPAYER_ID, utf8("second")),
                (oid::OLD_TAXPAYER_ID, utf8("old arc")),
            ],
            &[],
        );
        assert_eq!(ids.taxpayer_id.as_deref(), Some("first"));
        let old_only = collect(&[(oid::OLD_TAXPAYER_ID, utf8("old arc"))], &[]);
        assert_eq!(old_only.taxpayer_id.as_deref(), Some("old arc"));
    }
}
