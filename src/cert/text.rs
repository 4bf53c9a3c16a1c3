//! Small DER helpers shared by names, identifiers and extensions: reading one element,
//! ASN.1 string types to text, object identifiers to dotted form, RFC 4514 escaping.
//!
//! Everything here works on untrusted bytes: lengths are checked, nesting is bounded,
//! nothing indexes or unwraps.

/// Universal tag numbers (as the single identifier byte of a primitive element).
pub(super) mod tag {
    pub const BIT_STRING: u8 = 0x03;
    pub const OCTET_STRING: u8 = 0x04;
    pub const OID: u8 = 0x06;
    pub const UTF8_STRING: u8 = 0x0C;
    pub const NUMERIC_STRING: u8 = 0x12;
    pub const PRINTABLE_STRING: u8 = 0x13;
    pub const T61_STRING: u8 = 0x14;
    pub const VIDEOTEX_STRING: u8 = 0x15;
    pub const IA5_STRING: u8 = 0x16;
    pub const GRAPHIC_STRING: u8 = 0x19;
    pub const VISIBLE_STRING: u8 = 0x1A;
    pub const GENERAL_STRING: u8 = 0x1B;
    pub const UNIVERSAL_STRING: u8 = 0x1C;
    pub const BMP_STRING: u8 = 0x1E;
    pub const INTEGER: u8 = 0x02;
    pub const SEQUENCE: u8 = 0x30;
    pub const SET: u8 = 0x31;
}

/// How deep [`der_string`] looks into OCTET STRINGs and SEQUENCEs.
const MAX_NESTING: u8 = 4;

/// One DER element: `(identifier byte, content, rest)`.
///
/// Only single-byte identifiers and definite lengths (as DER requires); anything else is
/// `None`.
pub(super) fn read_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&id, rest) = input.split_first()?;
    if id & 0x1F == 0x1F {
        return None; // high tag number form: never a type we read
    }
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 4 {
            return None; // indefinite, or longer than anything we accept
        }
        let (bytes, after) = rest.split_at_checked(n)?;
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((id, content, rest))
}

/// The elements of a constructed value's content, until the first malformed one.
pub(super) fn elements(mut content: &[u8]) -> impl Iterator<Item = (u8, &[u8])> {
    std::iter::from_fn(move || {
        let (id, value, rest) = read_tlv(content)?;
        content = rest;
        Some((id, value))
    })
}

/// The text of an ASN.1 string value given its identifier byte and content, or `None` when
/// the type is not a string type or the content is not valid for it.
///
/// UTF8String and the ASCII types (PrintableString, IA5String, …) are read as UTF-8 (CAs put
/// non-ASCII text in PrintableString too); T61String as Latin-1 (as OpenSSL does); BMPString as
/// UTF-16BE; UniversalString as UCS-4BE.
pub(super) fn decode_string(id: u8, content: &[u8]) -> Option<String> {
    match id {
        tag::UTF8_STRING
        | tag::NUMERIC_STRING
        | tag::PRINTABLE_STRING
        | tag::IA5_STRING
        | tag::VISIBLE_STRING
        | tag::GRAPHIC_STRING
        | tag::GENERAL_STRING
        | tag::VIDEOTEX_STRING => std::str::from_utf8(content).ok().map(str::to_owned),
        tag::T61_STRING => Some(content.iter().copied().map(char::from).collect()),
        tag::BMP_STRING => {
            if !content.len().is_multiple_of(2) {
                return None;
            }
            let units = content
                .chunks_exact(2)
                .filter_map(|p| <[u8; 2]>::try_from(p).ok())
                .map(u16::from_be_bytes);
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        tag::UNIVERSAL_STRING => {
            if !content.len().is_multiple_of(4) {
                return None;
            }
            content
                .chunks_exact(4)
                .filter_map(|q| <[u8; 4]>::try_from(q).ok())
                .map(|q| char::from_u32(u32::from_be_bytes(q)))
                .collect()
        }
        _ => None,
    }
}

/// Like [`decode_string`], but never gives up on a string type: bad bytes become U+FFFD.
/// `None` only when `id` is not a string type.
pub(super) fn decode_string_lossy(id: u8, content: &[u8]) -> Option<String> {
    if let Some(s) = decode_string(id, content) {
        return Some(s);
    }
    match id {
        tag::BMP_STRING => {
            // An odd last byte becomes U+FFFD.
            let units = content.chunks(2).map(|p| match p {
                [a, b] => u16::from_be_bytes([*a, *b]),
                _ => 0xFFFD,
            });
            Some(
                char::decode_utf16(units)
                    .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
                    .collect(),
            )
        }
        tag::UNIVERSAL_STRING => Some(
            content
                .chunks(4)
                .map(|q| {
                    let mut b = [0u8; 4];
                    for (dst, src) in b.iter_mut().zip(q) {
                        *dst = *src;
                    }
                    char::from_u32(u32::from_be_bytes(b)).unwrap_or(char::REPLACEMENT_CHARACTER)
                })
                .collect(),
        ),
        tag::UTF8_STRING
        | tag::NUMERIC_STRING
        | tag::PRINTABLE_STRING
        | tag::IA5_STRING
        | tag::VISIBLE_STRING
        | tag::GRAPHIC_STRING
        | tag::GENERAL_STRING
        | tag::VIDEOTEX_STRING => Some(String::from_utf8_lossy(content).into_owned()),
        _ => None,
    }
}

/// The text inside a DER value that is (or wraps) a string: a string type, an OCTET STRING
/// holding one (or holding bare UTF-8 text), a SEQUENCE, SET or context-specific `[n]`
/// whose first string element is taken, or an IMPLICIT `[n]` string read as UTF-8. The
/// whole input must be one element.
pub(super) fn der_string(der: &[u8]) -> Option<String> {
    let (id, content, rest) = read_tlv(der)?;
    if !rest.is_empty() {
        return None;
    }
    value_text(id, content, MAX_NESTING)
}

fn value_text(id: u8, content: &[u8], depth: u8) -> Option<String> {
    match id {
        tag::OCTET_STRING => {
            let inner = depth.checked_sub(1)?;
            match read_tlv(content) {
                Some((id, value, [])) => value_text(id, value, inner),
                _ => None,
            }
            .or_else(|| plain_text(content))
        }
        // SEQUENCE, SET, and context-specific constructed (`[0] { PrintableString }`).
        tag::SEQUENCE | tag::SET | 0xA0..=0xBE => {
            let inner = depth.checked_sub(1)?;
            elements(content).find_map(|(id, value)| value_text(id, value, inner))
        }
        // Context-specific primitive: an IMPLICIT string (`SET { [0] IMPLICIT … }`).
        0x80..=0x9E => plain_text(content),
        _ => decode_string(id, content),
    }
}

/// Bytes that are not DER, read as UTF-8 text: `None` unless valid UTF-8 without control
/// characters (other than surrounding whitespace).
pub(super) fn plain_text(bytes: &[u8]) -> Option<String> {
    let s = std::str::from_utf8(bytes).ok()?.trim();
    if s.is_empty() || s.chars().any(char::is_control) {
        return None;
    }
    Some(s.to_owned())
}

/// Append the DER encoding of one element with a single-byte identifier.
pub(super) fn push_tlv(out: &mut Vec<u8>, id: u8, content: &[u8]) {
    out.push(id);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|&&b| b == 0).count();
        let significant = bytes.get(skip..).unwrap_or_default();
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
}

/// The dotted form of an OBJECT IDENTIFIER's content octets, or `None` when malformed
/// (empty, truncated arc, or an arc above `u64`).
pub(super) fn oid_to_string(content: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut value: u64 = 0;
    let mut in_arc = false;
    for &b in content {
        if !in_arc && b == 0x80 {
            return None; // non-minimal encoding
        }
        value = value.checked_mul(128)? | u64::from(b & 0x7F);
        in_arc = b & 0x80 != 0;
        if !in_arc {
            arcs.push(value);
            value = 0;
        }
    }
    if in_arc {
        return None;
    }
    let (&first, rest) = arcs.split_first()?;
    let (a, b) = match first {
        0..=39 => (0, first),
        40..=79 => (1, first - 40),
        _ => (2, first - 80),
    };
    let mut s = format!("{a}.{b}");
    for arc in rest {
        s.push('.');
        s.push_str(&arc.to_string());
    }
    Some(s)
}

/// Escape an attribute value for a RFC 4514 string (the minimal escaping of section 2.4):
/// `"+,;<>\` always, `#` and space at the start, space at the end, NUL as `\00`.
pub(super) fn escape_rfc4514(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 4);
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_short_and_long_lengths() {
        assert_eq!(
            read_tlv(&[0x04, 0x01, 0xAA, 0xBB]),
            Some((0x04, &[0xAA][..], &[0xBB][..]))
        );
        let mut long = vec![0x04, 0x81, 0x80];
        long.extend([7u8; 0x80]);
        let (id, content, rest) = read_tlv(&long).unwrap();
        assert_eq!((id, content.len(), rest.len()), (0x04, 0x80, 0));
        assert_eq!(
            read_tlv(&[0x04, 0x80, 0x00, 0x00]),
            None,
            "indefinite length"
        );
        assert_eq!(
            read_tlv(&[0x04, 0x85, 1, 1, 1, 1, 1]),
            None,
            "length of 5 bytes"
        );
        assert_eq!(read_tlv(&[0x04, 0x02, 0x00]), None, "truncated");
        assert_eq!(read_tlv(&[0x1F, 0x01, 0x00]), None, "high tag number");
        assert_eq!(read_tlv(&[]), None);
        assert_eq!(read_tlv(&[0x04, 0x84, 0xFF, 0xFF, 0xFF, 0xFF]), None);
    }

    #[test]
    fn push_tlv_round_trips() {
        for len in [0usize, 1, 127, 128, 255, 256, 70_000] {
            let content = vec![0x41u8; len];
            let mut der = Vec::new();
            push_tlv(&mut der, tag::OCTET_STRING, &content);
            assert_eq!(
                read_tlv(&der),
                Some((tag::OCTET_STRING, &content[..], &[][..])),
                "{len}"
            );
        }
    }

    #[test]
    fn decodes_every_string_type() {
        assert_eq!(
            decode_string(tag::UTF8_STRING, "张三".as_bytes()).as_deref(),
            Some("张三")
        );
        assert_eq!(
            decode_string(tag::PRINTABLE_STRING, b"CN").as_deref(),
            Some("CN")
        );
        assert_eq!(
            decode_string(tag::IA5_STRING, b"a@b.cn").as_deref(),
            Some("a@b.cn")
        );
        assert_eq!(
            decode_string(tag::T61_STRING, b"Z\xFCrich").as_deref(),
            Some("Zürich")
        );
        // 张三 in UTF-16BE; 𝄞 (U+1D11E) needs a surrogate pair.
        assert_eq!(
            decode_string(tag::BMP_STRING, &[0x5F, 0x20, 0x4E, 0x09]).as_deref(),
            Some("张三")
        );
        assert_eq!(
            decode_string(tag::BMP_STRING, &[0xD8, 0x34, 0xDD, 0x1E]).as_deref(),
            Some("𝄞")
        );
        assert_eq!(
            decode_string(
                tag::UNIVERSAL_STRING,
                &[0, 0, 0x5F, 0x20, 0, 0x01, 0xD1, 0x1E]
            )
            .as_deref(),
            Some("张𝄞")
        );
        assert_eq!(decode_string(tag::BMP_STRING, &[0x5F]), None, "odd length");
        assert_eq!(
            decode_string(tag::BMP_STRING, &[0xD8, 0x34]),
            None,
            "lone surrogate"
        );
        assert_eq!(
            decode_string(tag::UNIVERSAL_STRING, &[0, 0x11, 0, 0]),
            None,
            "above U+10FFFF"
        );
        assert_eq!(decode_string(tag::UTF8_STRING, &[0xFF]), None);
        assert_eq!(decode_string(tag::INTEGER, &[1]), None);
    }

    #[test]
    fn lossy_decoding_keeps_what_it_can() {
        assert_eq!(
            decode_string_lossy(tag::BMP_STRING, &[0x5F, 0x20, 0x4E]).as_deref(),
            Some("张\u{FFFD}")
        );
        assert_eq!(
            decode_string_lossy(tag::UTF8_STRING, b"a\xFFb").as_deref(),
            Some("a\u{FFFD}b")
        );
        assert_eq!(
            decode_string_lossy(tag::UNIVERSAL_STRING, &[0xFF, 0, 0, 0]).as_deref(),
            Some("\u{FFFD}")
        );
        assert_eq!(decode_string_lossy(tag::SEQUENCE, &[]), None);
    }

    #[test]
    fn der_string_unwraps_octet_strings_and_sequences() {
        assert_eq!(der_string(b"\x0c\x03abc").as_deref(), Some("abc"));
        assert_eq!(der_string(b"\x04\x05\x13\x03abc").as_deref(), Some("abc"));
        assert_eq!(
            der_string(b"\x04\x03abc").as_deref(),
            Some("abc"),
            "octet string of text"
        );
        assert_eq!(
            der_string(b"\x30\x08\x02\x01\x05\x16\x03abc").as_deref(),
            Some("abc")
        );
        assert_eq!(der_string(b"\x1e\x04\x00a\x00b").as_deref(), Some("ab"));
        // Encodings of 1.2.156.10260.4.1.1 seen in real certificates (CHINA-PKI.md).
        assert_eq!(
            der_string(b"\xa0\x05\x13\x03123").as_deref(),
            Some("123"),
            "[0] around a PrintableString"
        );
        assert_eq!(
            der_string(b"\x31\x05\x80\x03123").as_deref(),
            Some("123"),
            "SET {{ [0] IMPLICIT }}"
        );
        assert_eq!(der_string(b"\x05\x00"), None, "NULL");
        assert_eq!(der_string(b"\x80\x02\x01\x02"), None, "binary [0]");
        assert_eq!(der_string(b"\x0c\x03abcX"), None, "trailing byte");
        assert_eq!(der_string(b"\x02\x01\x05"), None, "not a string");
        assert_eq!(der_string(b"91350100M000100Y43"), None, "not DER");
    }

    #[test]
    fn der_string_nesting_is_bounded() {
        let mut der = b"\x0c\x01x".to_vec();
        for _ in 0..10_000 {
            let mut outer = Vec::new();
            push_tlv(&mut outer, tag::OCTET_STRING, &der);
            der = outer;
        }
        // Deep nesting neither overflows the stack nor finds the string.
        assert_eq!(der_string(&der), None);
    }

    #[test]
    fn plain_text_rejects_controls_and_binary() {
        assert_eq!(
            plain_text(b" 110000450099999 ").as_deref(),
            Some("110000450099999")
        );
        assert_eq!(plain_text(b"\x02\x01\x05"), None);
        assert_eq!(plain_text(b"\xff\xfe"), None);
        assert_eq!(plain_text(b"   "), None);
    }

    #[test]
    fn oids_to_dotted_form() {
        assert_eq!(
            oid_to_string(&[0x55, 0x04, 0x03]).as_deref(),
            Some("2.5.4.3")
        );
        assert_eq!(
            oid_to_string(&[0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x01, 0x82, 0x2D]).as_deref(),
            Some("1.2.156.10197.1.301")
        );
        assert_eq!(
            oid_to_string(&[0x88, 0x37, 0x03]).as_deref(),
            Some("2.999.3")
        );
        assert_eq!(oid_to_string(&[]), None);
        assert_eq!(oid_to_string(&[0x2A, 0x86]), None, "truncated arc");
        assert_eq!(oid_to_string(&[0x2A, 0x80, 0x01]), None, "non-minimal");
        assert_eq!(
            oid_to_string(&[
                0x2A, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F
            ]),
            None
        );
    }

    #[test]
    fn escapes_per_rfc4514() {
        assert_eq!(escape_rfc4514("Example, Ltd."), "Example\\, Ltd.");
        assert_eq!(
            escape_rfc4514("a+b;c<d>e\"f\\g"),
            "a\\+b\\;c\\<d\\>e\\\"f\\\\g"
        );
        assert_eq!(escape_rfc4514("#1 "), "\\#1\\ ");
        assert_eq!(escape_rfc4514(" x#"), "\\ x#");
        assert_eq!(escape_rfc4514(" "), "\\ ");
        assert_eq!(escape_rfc4514("a\0b"), "a\\00b");
        assert_eq!(escape_rfc4514("北京=海淀"), "北京=海淀");
        assert_eq!(escape_rfc4514(""), "");
    }
}
