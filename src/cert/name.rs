//! X.509 names → [`Name`]: every string type decoded, the RFC 4514 string built.

use x509_parser::asn1_rs::{Any, Class};
use x509_parser::x509::X509Name;

use super::text;
use crate::model::Name;

/// RFC 4514 / OpenSSL short names, by dotted OID. Other types print as the dotted OID.
const SHORT_NAMES: [(&str, &str); 12] = [
    ("2.5.4.3", "CN"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.8", "ST"),
    ("2.5.4.7", "L"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.97", "organizationIdentifier"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
    // The rest of RFC 4514's table.
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
];

/// A name as the model shows it, plus every attribute as `(dotted OID, text)` in DER order
/// (the identifier search reads subject attributes one by one).
pub(super) fn read_name(x509: &X509Name<'_>) -> (Name, Vec<(String, String)>) {
    let mut name = Name::default();
    let mut attributes = Vec::new();
    let mut rdns = Vec::new();
    for rdn in x509.iter() {
        let mut avas = Vec::new();
        for ava in rdn.iter() {
            let oid = ava.attr_type().to_id_string();
            let (value, is_hex) = value_text(ava.attr_value());
            let label = SHORT_NAMES
                .iter()
                .find(|(o, _)| *o == oid)
                .map_or(oid.as_str(), |(_, short)| short);
            if is_hex {
                avas.push(format!("{label}={value}"));
            } else {
                avas.push(format!("{label}={}", text::escape_rfc4514(&value)));
            }
            let field = match label {
                "CN" => Some(&mut name.cn),
                "O" => Some(&mut name.o),
                "OU" => Some(&mut name.ou),
                "C" => Some(&mut name.c),
                "ST" => Some(&mut name.st),
                "L" => Some(&mut name.l),
                "serialNumber" => Some(&mut name.serial_number),
                "organizationIdentifier" => Some(&mut name.organization_identifier),
                _ => None,
            };
            if let Some(field) = field {
                match field {
                    Some(joined) => {
                        joined.push_str(", ");
                        joined.push_str(&value);
                    }
                    None => *field = Some(value.clone()),
                }
            }
            attributes.push((oid, value));
        }
        rdns.push(avas.join("+"));
    }
    rdns.reverse();
    name.dn = rdns.join(",");
    (name, attributes)
}

/// The text of an attribute value: any string type decoded (bad bytes as U+FFFD), anything
/// else as RFC 4514's `#` + hex of its DER encoding (then the flag is true: not to escape).
fn value_text(value: &Any<'_>) -> (String, bool) {
    let header = &value.header;
    let number = header.tag().0;
    let low_number = u8::try_from(number).ok().filter(|n| *n < 0x1F);
    let class_bits = match header.class() {
        Class::Universal => 0x00,
        Class::Application => 0x40,
        Class::ContextSpecific => 0x80,
        Class::Private => 0xC0,
    };
    let constructed = if header.is_constructed() { 0x20 } else { 0x00 };
    let id = low_number.map(|n| class_bits | constructed | n);
    if let Some(s) = id.and_then(|id| text::decode_string_lossy(id, value.data)) {
        return (s, false);
    }
    let mut der = Vec::new();
    match id {
        Some(id) => text::push_tlv(&mut der, id, value.data),
        None => der.extend_from_slice(value.data),
    }
    (format!("#{}", hex::encode(der)), true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cert::text::{push_tlv, tag};
    use x509_parser::prelude::FromDer;

    /// One attribute: OID content bytes, string tag, value bytes.
    type Ava<'a> = (&'a [u8], u8, &'a [u8]);

    /// A DER Name from RDNs of attributes.
    fn der_name(rdns: &[&[Ava<'_>]]) -> Vec<u8> {
        let mut seq = Vec::new();
        for rdn in rdns {
            let mut set = Vec::new();
            for (oid, id, value) in *rdn {
                let mut ava = Vec::new();
                push_tlv(&mut ava, tag::OID, oid);
                push_tlv(&mut ava, *id, value);
                push_tlv(&mut set, tag::SEQUENCE, &ava);
            }
            push_tlv(&mut seq, 0x31, &set);
        }
        let mut name = Vec::new();
        push_tlv(&mut name, tag::SEQUENCE, &seq);
        name
    }

    fn read(der: &[u8]) -> (Name, Vec<(String, String)>) {
        let (rest, x509) = X509Name::from_der(der).expect("test name parses");
        assert!(rest.is_empty());
        read_name(&x509)
    }

    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const O: &[u8] = &[0x55, 0x04, 0x0A];
    const OU: &[u8] = &[0x55, 0x04, 0x0B];
    const C: &[u8] = &[0x55, 0x04, 0x06];
    const ST: &[u8] = &[0x55, 0x04, 0x08];
    const L: &[u8] = &[0x55, 0x04, 0x07];
    const SERIAL: &[u8] = &[0x55, 0x04, 0x05];
    const ORG_ID: &[u8] = &[0x55, 0x04, 0x61];
    const EMAIL: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x01];
    const CUSTOM: &[u8] = &[0x2A, 0x81, 0x1C, 0x01]; // 1.2.156.1

    fn utf16be(s: &str) -> Vec<u8> {
        s.encode_utf16().flat_map(u16::to_be_bytes).collect()
    }

    #[test]
    fn decodes_bmp_t61_utf8_and_universal_strings() {
        let bmp_o = utf16be("北京某某有限公司");
        let bmp_cn = utf16be("张三");
        let ucs4_ou: Vec<u8> = "财务"
            .chars()
            .flat_map(|c| u32::from(c).to_be_bytes())
            .collect();
        let der = der_name(&[
            &[(C, tag::PRINTABLE_STRING, b"CN")],
            &[(ST, tag::UTF8_STRING, "北京市".as_bytes())],
            &[(L, tag::T61_STRING, b"Z\xFCrich")],
            &[(O, tag::BMP_STRING, &bmp_o)],
            &[(OU, tag::UNIVERSAL_STRING, &ucs4_ou)],
            &[(CN, tag::BMP_STRING, &bmp_cn)],
        ]);
        let (name, attributes) = read(&der);
        assert_eq!(
            name,
            Name {
                cn: Some("张三".into()),
                o: Some("北京某某有限公司".into()),
                ou: Some("财务".into()),
                c: Some("CN".into()),
                st: Some("北京市".into()),
                l: Some("Zürich".into()),
                serial_number: None,
                organization_identifier: None,
                dn: "CN=张三,OU=财务,O=北京某某有限公司,L=Zürich,ST=北京市,C=CN".into(),
            }
        );
        assert_eq!(
            attributes.first(),
            Some(&("2.5.4.6".to_string(), "CN".to_string()))
        );
        assert_eq!(attributes.len(), 6);
    }

    #[test]
    fn joins_repeats_and_multi_valued_rdns() {
        let der = der_name(&[
            &[(C, tag::PRINTABLE_STRING, b"CN")],
            &[(OU, tag::UTF8_STRING, "研发部".as_bytes())],
            &[(OU, tag::UTF8_STRING, "测试组".as_bytes())],
            &[(ORG_ID, tag::UTF8_STRING, b"NTRCN-91440300MA5FUTUR07")],
            &[(SERIAL, tag::PRINTABLE_STRING, b"91310115MA1K3Q8H2W")],
            &[
                (CN, tag::UTF8_STRING, "王五".as_bytes()),
                (EMAIL, tag::IA5_STRING, b"w@example.cn"),
            ],
        ]);
        let (name, _) = read(&der);
        assert_eq!(name.ou.as_deref(), Some("研发部, 测试组"));
        assert_eq!(
            name.organization_identifier.as_deref(),
            Some("NTRCN-91440300MA5FUTUR07")
        );
        assert_eq!(name.serial_number.as_deref(), Some("91310115MA1K3Q8H2W"));
        assert_eq!(name.cn.as_deref(), Some("王五"));
        assert_eq!(
            name.dn,
            "CN=王五+emailAddress=w@example.cn,serialNumber=91310115MA1K3Q8H2W,\
             organizationIdentifier=NTRCN-91440300MA5FUTUR07,OU=测试组,OU=研发部,C=CN"
        );
    }

    #[test]
    fn escapes_and_unknown_types() {
        let der = der_name(&[
            &[(O, tag::UTF8_STRING, b"Example, Ltd.")],
            &[(CUSTOM, tag::UTF8_STRING, b"#x")],
            &[(CN, tag::INTEGER, &[0x05])],
        ]);
        let (name, attributes) = read(&der);
        assert_eq!(name.o.as_deref(), Some("Example, Ltd."));
        assert_eq!(name.cn.as_deref(), Some("#020105"));
        assert_eq!(name.dn, "CN=#020105,1.2.156.1=\\#x,O=Example\\, Ltd.");
        assert_eq!(
            attributes.get(1),
            Some(&("1.2.156.1".to_string(), "#x".to_string()))
        );
    }

    #[test]
    fn broken_strings_decode_lossily() {
        let der = der_name(&[
            &[(O, tag::BMP_STRING, &[0x5F, 0x20, 0x4E])],
            &[(CN, tag::UTF8_STRING, b"a\xFFb")],
        ]);
        let (name, _) = read(&der);
        assert_eq!(name.o.as_deref(), Some("张\u{FFFD}"));
        assert_eq!(name.cn.as_deref(), Some("a\u{FFFD}b"));
    }

    #[test]
    fn empty_name() {
        let (name, attributes) = read(&[0x30, 0x00]);
        assert_eq!(name, Name::default());
        assert!(attributes.is_empty());
    }
}
