//! DER → [`Certificate`] with x509-parser.
//!
//! x509-parser reads the certificate structure; extensions are read here from their raw
//! values, leniently: a malformed key usage, extended key usage or identifier extension
//! leaves that field empty instead of failing the certificate.

use time::UtcOffset;
use x509_parser::asn1_rs::Tag;
use x509_parser::certificate::{X509Certificate, X509CertificateParser};
use x509_parser::nom::Parser;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::ids::Identifiers;
use super::name::read_name;
use super::text::{self, tag};
use super::{Certificate, Error};
use crate::model::{KeyAlgorithm, KeyInfo, Validity};

/// Parse one DER certificate. Never panics.
///
/// The input must be exactly one certificate: bytes after it are an error.
pub fn parse(der: &[u8]) -> Result<Certificate, Error> {
    let x509 = x509(der)?;
    let tbs = &x509.tbs_certificate;
    let (subject, subject_attributes) = read_name(&tbs.subject);
    let (issuer, _) = read_name(&tbs.issuer);

    let extensions: Vec<(String, &[u8])> = tbs
        .extensions()
        .iter()
        .map(|e| (e.oid.to_id_string(), e.value))
        .collect();
    let extension = |oid: &str| {
        extensions
            .iter()
            .find(|(o, _)| o == oid)
            .map(|(_, value)| *value)
    };
    let key_usage = extension(KEY_USAGE)
        .map(key_usage_names)
        .unwrap_or_default();
    let extended_key_usage = extension(EXTENDED_KEY_USAGE)
        .map(extended_key_usage_names)
        .unwrap_or_default();
    let ids = Identifiers::collect(
        extensions.iter().map(|(oid, value)| (oid.as_str(), *value)),
        &subject_attributes,
    );

    Ok(Certificate {
        der: der.to_vec(),
        subject,
        issuer,
        serial: serial_hex(tbs.raw_serial()),
        sha256: super::sha256_hex(der),
        validity: Validity {
            not_before: tbs
                .validity
                .not_before
                .to_datetime()
                .to_offset(UtcOffset::UTC),
            not_after: tbs
                .validity
                .not_after
                .to_datetime()
                .to_offset(UtcOffset::UTC),
        },
        key: key_info(&tbs.subject_pki),
        signature_algorithm: signature_algorithm_name(
            &x509.signature_algorithm.algorithm.to_id_string(),
        ),
        key_usage,
        extended_key_usage,
        ids,
    })
}

/// x509-parser's reading of exactly one DER certificate. Extensions are kept raw (not
/// deep-parsed): this module reads the few it needs itself.
pub(super) fn x509(der: &[u8]) -> Result<X509Certificate<'_>, Error> {
    let (rest, x509) = X509CertificateParser::new()
        .with_deep_parse_extensions(false)
        .parse(der)
        .map_err(|e| Error::NotACertificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(Error::NotACertificate(format!(
            "{} bytes after the end of the certificate",
            rest.len()
        )));
    }
    Ok(x509)
}

const KEY_USAGE: &str = "2.5.29.15";
const EXTENDED_KEY_USAGE: &str = "2.5.29.37";

const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";
const EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const SM2: &str = "1.2.156.10197.1.301";

/// Lower-case hex of the serial's DER integer content without leading zero bytes; `"0"`
/// for zero.
fn serial_hex(raw: &[u8]) -> String {
    let significant: Vec<u8> = raw.iter().copied().skip_while(|&b| b == 0).collect();
    if significant.is_empty() {
        "0".to_owned()
    } else {
        hex::encode(significant)
    }
}

/// Bits of a big-endian unsigned integer (leading zero bytes and bits not counted).
fn bit_length(be: &[u8]) -> u32 {
    let mut bytes = be.iter().skip_while(|&&b| b == 0);
    match bytes.next() {
        None => 0,
        Some(first) => {
            let rest = u32::try_from(bytes.count()).unwrap_or(u32::MAX / 16);
            rest * 8 + (8 - first.leading_zeros())
        }
    }
}

/// Named curves: dotted OID, name, field size in bits.
const CURVES: [(&str, &str, u32); 8] = [
    ("1.2.840.10045.3.1.7", "P-256", 256),
    ("1.3.132.0.34", "P-384", 384),
    ("1.3.132.0.35", "P-521", 521),
    ("1.3.132.0.10", "secp256k1", 256),
    ("1.3.36.3.3.2.8.1.1.7", "brainpoolP256r1", 256),
    ("1.3.36.3.3.2.8.1.1.11", "brainpoolP384r1", 384),
    ("1.3.36.3.3.2.8.1.1.13", "brainpoolP512r1", 512),
    ("1.3.132.0.33", "P-224", 224),
];

/// Key algorithms that are neither RSA nor EC but have a well-known curve.
const OTHER_CURVES: [(&str, &str, u32); 4] = [
    ("1.3.101.112", "Ed25519", 256),
    ("1.3.101.113", "Ed448", 448),
    ("1.3.101.110", "X25519", 256),
    ("1.3.101.111", "X448", 448),
];

fn key_info(spki: &SubjectPublicKeyInfo<'_>) -> KeyInfo {
    let algorithm = spki.algorithm.algorithm.to_id_string();
    let key = spki.subject_public_key.data.as_ref();
    let sm2 = KeyInfo {
        algorithm: KeyAlgorithm::Sm2,
        bits: Some(256),
        curve: Some("SM2".to_owned()),
        oid: None,
    };
    match algorithm.as_str() {
        RSA_ENCRYPTION | RSASSA_PSS => KeyInfo {
            algorithm: KeyAlgorithm::Rsa,
            bits: rsa_modulus(key).map(bit_length).filter(|&b| b > 0),
            curve: None,
            oid: None,
        },
        SM2 => sm2,
        EC_PUBLIC_KEY => {
            let parameters = spki.algorithm.parameters.as_ref();
            // Explicit domain parameters (file 30 of the real certificates): by their values.
            if let Some(named) = parameters
                .filter(|p| p.header.tag() == Tag::Sequence)
                .and_then(|p| super::curve::by_parameters(p.data))
            {
                return if named.name == super::curve::SM2.name {
                    sm2
                } else {
                    KeyInfo {
                        algorithm: KeyAlgorithm::Ec,
                        bits: Some(named.bits),
                        curve: Some(named.name.to_owned()),
                        oid: None,
                    }
                };
            }
            let curve = parameters
                .filter(|p| p.header.tag() == Tag::Oid)
                .and_then(|p| text::oid_to_string(p.data));
            match curve.as_deref() {
                Some(SM2) => sm2,
                _ => {
                    let known = CURVES
                        .iter()
                        .find(|(oid, _, _)| Some(*oid) == curve.as_deref());
                    KeyInfo {
                        algorithm: KeyAlgorithm::Ec,
                        bits: known
                            .map(|(_, _, bits)| *bits)
                            .or_else(|| ec_point_bits(key)),
                        curve: known.map(|(_, name, _)| (*name).to_owned()).or(curve),
                        oid: None,
                    }
                }
            }
        }
        _ => {
            let known = OTHER_CURVES.iter().find(|(oid, _, _)| *oid == algorithm);
            KeyInfo {
                algorithm: KeyAlgorithm::Other,
                bits: known.map(|(_, _, bits)| *bits),
                curve: known.map(|(_, name, _)| (*name).to_owned()),
                oid: Some(algorithm),
            }
        }
    }
}

/// The modulus of an RSAPublicKey (`SEQUENCE { modulus INTEGER, publicExponent INTEGER }`).
fn rsa_modulus(key: &[u8]) -> Option<&[u8]> {
    let (id, content, _) = text::read_tlv(key)?;
    if id != tag::SEQUENCE {
        return None;
    }
    let (id, modulus, _) = text::read_tlv(content)?;
    (id == tag::INTEGER).then_some(modulus)
}

/// Field size from an EC point's length, for curves without a name.
fn ec_point_bits(point: &[u8]) -> Option<u32> {
    let coordinates = match point.split_first()? {
        (4, xy) => xy.len() / 2,
        (2 | 3, x) => x.len(),
        _ => return None,
    };
    u32::try_from(coordinates * 8).ok().filter(|&b| b > 0)
}

/// Signature algorithms: dotted OID → the name OpenSSL prints.
const SIGNATURE_ALGORITHMS: [(&str, &str); 21] = [
    ("1.2.840.113549.1.1.2", "md2WithRSAEncryption"),
    ("1.2.840.113549.1.1.4", "md5WithRSAEncryption"),
    ("1.2.840.113549.1.1.5", "sha1WithRSAEncryption"),
    ("1.2.840.113549.1.1.10", "rsassaPss"),
    ("1.2.840.113549.1.1.11", "sha256WithRSAEncryption"),
    ("1.2.840.113549.1.1.12", "sha384WithRSAEncryption"),
    ("1.2.840.113549.1.1.13", "sha512WithRSAEncryption"),
    ("1.2.840.113549.1.1.14", "sha224WithRSAEncryption"),
    ("1.2.840.10045.4.1", "ecdsa-with-SHA1"),
    ("1.2.840.10045.4.3.1", "ecdsa-with-SHA224"),
    ("1.2.840.10045.4.3.2", "ecdsa-with-SHA256"),
    ("1.2.840.10045.4.3.3", "ecdsa-with-SHA384"),
    ("1.2.840.10045.4.3.4", "ecdsa-with-SHA512"),
    ("1.2.156.10197.1.501", "SM2-with-SM3"),
    ("1.2.156.10197.1.504", "sm3WithRSAEncryption"),
    ("1.3.101.112", "Ed25519"),
    ("1.3.101.113", "Ed448"),
    ("1.2.840.10040.4.3", "dsa_with_SHA1"),
    ("2.16.840.1.101.3.4.3.2", "dsa_with_SHA256"),
    ("1.3.14.3.2.29", "sha1WithRSA"),
    ("1.2.840.113549.1.1.3", "md4WithRSAEncryption"),
];

fn signature_algorithm_name(oid: &str) -> String {
    SIGNATURE_ALGORITHMS
        .iter()
        .find(|(o, _)| *o == oid)
        .map_or_else(|| oid.to_owned(), |(_, name)| (*name).to_owned())
}

/// RFC 5280 key usage bits, bit 0 first.
const KEY_USAGE_NAMES: [&str; 9] = [
    "digitalSignature",
    "nonRepudiation",
    "keyEncipherment",
    "dataEncipherment",
    "keyAgreement",
    "keyCertSign",
    "cRLSign",
    "encipherOnly",
    "decipherOnly",
];

/// The names of the bits set in a KeyUsage BIT STRING; empty when malformed.
fn key_usage_names(value: &[u8]) -> Vec<String> {
    let bits = match text::read_tlv(value) {
        Some((tag::BIT_STRING, content, [])) => content.get(1..).unwrap_or_default(),
        _ => return Vec::new(),
    };
    KEY_USAGE_NAMES
        .iter()
        .enumerate()
        .filter(|(i, _)| {
            bits.get(i / 8)
                .is_some_and(|byte| byte & (0x80 >> (i % 8)) != 0)
        })
        .map(|(_, name)| (*name).to_owned())
        .collect()
}

/// Extended key usage purposes: dotted OID → name.
const EKU_NAMES: [(&str, &str); 7] = [
    ("1.3.6.1.5.5.7.3.1", "serverAuth"),
    ("1.3.6.1.5.5.7.3.2", "clientAuth"),
    ("1.3.6.1.5.5.7.3.3", "codeSigning"),
    ("1.3.6.1.5.5.7.3.4", "emailProtection"),
    ("1.3.6.1.5.5.7.3.8", "timeStamping"),
    ("1.3.6.1.5.5.7.3.9", "OCSPSigning"),
    ("2.5.29.37.0", "anyExtendedKeyUsage"),
];

/// The purposes of an ExtKeyUsageSyntax (`SEQUENCE OF OBJECT IDENTIFIER`) in certificate
/// order; elements that are not OIDs are skipped, a malformed value gives what was read.
fn extended_key_usage_names(value: &[u8]) -> Vec<String> {
    let content = match text::read_tlv(value) {
        Some((tag::SEQUENCE, content, [])) => content,
        _ => return Vec::new(),
    };
    text::elements(content)
        .filter(|(id, _)| *id == tag::OID)
        .filter_map(|(_, oid)| text::oid_to_string(oid))
        .map(|oid| {
            EKU_NAMES
                .iter()
                .find(|(o, _)| *o == oid)
                .map_or(oid, |(_, name)| (*name).to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_formatting() {
        assert_eq!(serial_hex(&[0x00, 0x8A, 0x3F, 0x01]), "8a3f01");
        assert_eq!(serial_hex(&[0x01, 0x02]), "0102");
        assert_eq!(serial_hex(&[0x00]), "0");
        assert_eq!(serial_hex(&[0x00, 0x00]), "0");
        assert_eq!(serial_hex(&[]), "0");
        assert_eq!(serial_hex(&[0x7F]), "7f");
        assert_eq!(
            serial_hex(&[0xFF, 0x00]),
            "ff00",
            "negative serials keep their bytes"
        );
    }

    #[test]
    fn bit_lengths() {
        assert_eq!(bit_length(&[]), 0);
        assert_eq!(bit_length(&[0, 0]), 0);
        assert_eq!(bit_length(&[0x01]), 1);
        assert_eq!(bit_length(&[0x00, 0x80, 0x00]), 16);
        let mut modulus = vec![0x00, 0xC3];
        modulus.extend([0u8; 255]);
        assert_eq!(bit_length(&modulus), 2048);
        assert_eq!(bit_length(&[0x7F, 0xFF]), 15);
    }

    #[test]
    fn key_usage_bits() {
        // digitalSignature + nonRepudiation
        assert_eq!(
            key_usage_names(&[0x03, 0x02, 0x06, 0xC0]),
            ["digitalSignature", "nonRepudiation"]
        );
        // keyCertSign + cRLSign
        assert_eq!(
            key_usage_names(&[0x03, 0x02, 0x01, 0x06]),
            ["keyCertSign", "cRLSign"]
        );
        // decipherOnly lives in the second byte
        assert_eq!(
            key_usage_names(&[0x03, 0x03, 0x07, 0x80, 0x80]),
            ["digitalSignature", "decipherOnly"]
        );
        assert!(key_usage_names(&[0x03, 0x01, 0x00]).is_empty());
        assert!(
            key_usage_names(&[0x04, 0x02, 0x06, 0xC0]).is_empty(),
            "not a BIT STRING"
        );
        assert!(key_usage_names(&[0x03, 0x05, 0x06]).is_empty(), "truncated");
        assert!(key_usage_names(&[]).is_empty());
    }

    #[test]
    fn extended_key_usage_in_order() {
        let mut seq = Vec::new();
        for oid in [
            &[0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x04][..], // emailProtection
            &[0x2A, 0x03, 0x04, 0x05],                             // 1.2.3.4.5
            &[0x2B, 0x06, 0x01, 0x05, 0x05, 0x07, 0x03, 0x02],     // clientAuth
            &[0x55, 0x1D, 0x25, 0x00],                             // anyExtendedKeyUsage
        ] {
            text::push_tlv(&mut seq, tag::OID, oid);
        }
        text::push_tlv(&mut seq, tag::INTEGER, &[1]); // skipped
        let mut value = Vec::new();
        text::push_tlv(&mut value, tag::SEQUENCE, &seq);
        assert_eq!(
            extended_key_usage_names(&value),
            [
                "emailProtection",
                "1.2.3.4.5",
                "clientAuth",
                "anyExtendedKeyUsage"
            ]
        );
        assert!(extended_key_usage_names(&[0x31, 0x00]).is_empty());
        // Truncated: what was read before the break is kept.
        let truncated = value.get(..value.len() - 5).unwrap().to_vec();
        let mut fixed_len = truncated.clone();
        fixed_len[1] = u8::try_from(truncated.len() - 2).unwrap();
        assert_eq!(
            extended_key_usage_names(&fixed_len),
            ["emailProtection", "1.2.3.4.5", "clientAuth"]
        );
    }

    #[test]
    fn signature_algorithm_names() {
        assert_eq!(
            signature_algorithm_name("1.2.840.113549.1.1.11"),
            "sha256WithRSAEncryption"
        );
        assert_eq!(
            signature_algorithm_name("1.2.156.10197.1.501"),
            "SM2-with-SM3"
        );
        assert_eq!(
            signature_algorithm_name("1.2.840.10045.4.3.2"),
            "ecdsa-with-SHA256"
        );
        assert_eq!(signature_algorithm_name("1.2.3.4"), "1.2.3.4");
    }

    #[test]
    fn ec_point_sizes() {
        assert_eq!(ec_point_bits(&[4; 65]), Some(256));
        assert_eq!(ec_point_bits(&[2; 33]), Some(256));
        assert_eq!(ec_point_bits(&[4]), None);
        assert_eq!(ec_point_bits(&[5; 65]), None);
        assert_eq!(ec_point_bits(&[]), None);
    }

    /// Copies of two make-certs.sh outputs, kept in the tree so these tests need no openssl.
    const SAMPLE_RSA: &[u8] = include_bytes!("../../tests/fixtures/sample-rsa-utf8.der");
    const SAMPLE_SM2: &[u8] = include_bytes!("../../tests/fixtures/sample-sm2.der");

    #[test]
    fn parses_the_rsa_sample() {
        let c = parse(SAMPLE_RSA).unwrap();
        assert_eq!(
            c.subject.dn,
            "CN=张三,OU=财务部,O=北京云杉测试科技有限公司,L=海淀区,ST=北京市,C=CN"
        );
        assert_eq!(c.issuer.dn, "CN=Certray Test CA,O=Certray 测试,C=CN");
        assert_eq!(c.serial, "8a3f00000000000000000001");
        assert_eq!(
            c.sha256,
            "0a045ac6bead7aab23531991f1f26514e8135421cf250668e298034b350ebf02"
        );
        assert_eq!(
            c.validity.not_before,
            time::macros::datetime!(2026-11-21 06:02:09 UTC)
        );
        assert_eq!(
            c.validity.not_after,
            time::macros::datetime!(2027-11-21 06:02:09 UTC)
        );
        assert_eq!(
            c.key,
            KeyInfo {
                algorithm: KeyAlgorithm::Rsa,
                bits: Some(2048),
                curve: None,
                oid: None
            }
        );
        assert_eq!(c.signature_algorithm, "sha256WithRSAEncryption");
        assert_eq!(c.key_usage, ["digitalSignature", "nonRepudiation"]);
        assert_eq!(c.extended_key_usage, ["clientAuth"]);
        assert_eq!(c.ids.uscc.as_deref(), Some("91110108MA01ABCDEN"));
        assert_eq!(c.ids.uscc_valid, Some(true));
        // make-certs.sh's taxpayer ID 110108722613123 is area code 110108 and organisation
        // code 72261312-3, whose check character would be 4: it used to be shown as the
        // taxpayer ID unchecked; now it is an unverified identifier.
        assert_eq!(c.ids.taxpayer_id, None);
        assert_eq!(
            c.ids.unverified,
            [crate::model::certificate::UnverifiedId {
                value: "110108722613123".into(),
                kind: crate::model::certificate::IdKind::TaxpayerId,
                source: "extension 1.2.156.10260.4.1.5".into(),
            }]
        );
        assert_eq!(c.ids.bjca_unique_id.as_deref(), Some("1@5009JJ0110000123"));
        // CN=张三, O=北京云杉测试科技有限公司: a staff certificate. The owner used to be O,
        // naming the company as the holder; the holder is the person, the company is the
        // organisation (CHINA-PKI.md, "Who a certificate belongs to").
        assert_eq!(c.owner(), "张三");
        assert_eq!(
            c.organization().as_deref(),
            Some("北京云杉测试科技有限公司")
        );
        assert_eq!(c.id(), "c-0a045ac6bead7aab");
    }

    #[test]
    fn parses_the_sm2_sample() {
        let c = parse(SAMPLE_SM2).unwrap();
        assert_eq!(c.subject.cn.as_deref(), Some("SM2 签名证书"));
        assert_eq!(
            c.key,
            KeyInfo {
                algorithm: KeyAlgorithm::Sm2,
                bits: Some(256),
                curve: Some("SM2".into()),
                oid: None
            }
        );
        assert_eq!(c.signature_algorithm, "SM2-with-SM3");
        assert_eq!(c.extended_key_usage, ["serverAuth", "clientAuth"]);
        assert_eq!(c.ids.uscc.as_deref(), Some("91110000100017643K"));
        // make-certs.sh's ID number 11010119900307001X has the wrong check character (the
        // right one is 1): it used to be shown as the personal ID.
        assert_eq!(c.ids.personal_id, None);
        assert_eq!(
            c.ids.unverified.first().map(|u| u.value.as_str()),
            Some("11010119900307001X")
        );
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut der = SAMPLE_SM2.to_vec();
        der.extend_from_slice(&[0x00, 0x00]);
        let err = parse(&der).unwrap_err();
        assert!(err.to_string().contains("2 bytes after"), "{err}");
    }

    /// Every sample cut at every length, and with each byte changed three ways: an error
    /// or a certificate, never a panic.
    #[test]
    fn damaged_samples_never_panic() {
        for sample in [SAMPLE_RSA, SAMPLE_SM2] {
            for len in 0..sample.len() {
                assert!(
                    parse(sample.get(..len).unwrap_or_default()).is_err(),
                    "cut at {len}"
                );
            }
            let mut damaged = sample.to_vec();
            for i in 0..damaged.len() {
                for mask in [0xFF, 0x01, 0x80] {
                    if let Some(b) = damaged.get_mut(i) {
                        *b ^= mask;
                    }
                    let _ = parse(&damaged);
                    if let Some(b) = damaged.get_mut(i) {
                        *b ^= mask;
                    }
                }
            }
        }
    }

    /// A SubjectPublicKeyInfo with the given algorithm OID (content bytes), optional
    /// parameters (a whole element) and key bytes.
    fn spki(algorithm: &[u8], parameters: Option<&[u8]>, key: &[u8]) -> Vec<u8> {
        let mut alg = Vec::new();
        text::push_tlv(&mut alg, tag::OID, algorithm);
        alg.extend_from_slice(parameters.unwrap_or_default());
        let mut bits = vec![0u8];
        bits.extend_from_slice(key);
        let mut content = Vec::new();
        text::push_tlv(&mut content, tag::SEQUENCE, &alg);
        text::push_tlv(&mut content, tag::BIT_STRING, &bits);
        let mut der = Vec::new();
        text::push_tlv(&mut der, tag::SEQUENCE, &content);
        der
    }

    fn oid_element(content: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        text::push_tlv(&mut v, tag::OID, content);
        v
    }

    #[test]
    fn key_algorithms() {
        use x509_parser::prelude::FromDer;
        const RSA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01];
        const EC: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
        const SM2_CURVE: &[u8] = &[0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x01, 0x82, 0x2D];
        const P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
        const SECP256K1: &[u8] = &[0x2B, 0x81, 0x04, 0x00, 0x0A];
        const BRAINPOOL384: &[u8] = &[0x2B, 0x24, 0x03, 0x03, 0x02, 0x08, 0x01, 0x01, 0x0B];
        const ED25519: &[u8] = &[0x2B, 0x65, 0x70];
        const UNKNOWN_CURVE: &[u8] = &[0x2A, 0x03, 0x04];

        // RSAPublicKey with a 1023-bit modulus (leading zero byte, then 0x7F...).
        let mut modulus = vec![0x00, 0x7F];
        modulus.extend([0xAB; 127]);
        let mut rsa_key = Vec::new();
        let mut ints = Vec::new();
        text::push_tlv(&mut ints, tag::INTEGER, &modulus);
        text::push_tlv(&mut ints, tag::INTEGER, &[0x01, 0x00, 0x01]);
        text::push_tlv(&mut rsa_key, tag::SEQUENCE, &ints);
        let point = [0x04; 65];
        let null = [0x05, 0x00];

        let cases: [(Vec<u8>, KeyInfo); 9] = [
            (
                spki(RSA, Some(&null), &rsa_key),
                key(KeyAlgorithm::Rsa, Some(1023), None, None),
            ),
            (
                spki(RSA, Some(&null), b"junk"),
                key(KeyAlgorithm::Rsa, None, None, None),
            ),
            (
                spki(EC, Some(&oid_element(SM2_CURVE)), &point),
                key(KeyAlgorithm::Sm2, Some(256), Some("SM2"), None),
            ),
            (
                spki(SM2_CURVE, None, &point),
                key(KeyAlgorithm::Sm2, Some(256), Some("SM2"), None),
            ),
            (
                spki(EC, Some(&oid_element(P256)), &point),
                key(KeyAlgorithm::Ec, Some(256), Some("P-256"), None),
            ),
            (
                spki(EC, Some(&oid_element(SECP256K1)), &point),
                key(KeyAlgorithm::Ec, Some(256), Some("secp256k1"), None),
            ),
            (
                spki(EC, Some(&oid_element(BRAINPOOL384)), &[0x04; 97]),
                key(KeyAlgorithm::Ec, Some(384), Some("brainpoolP384r1"), None),
            ),
            (
                spki(EC, Some(&oid_element(UNKNOWN_CURVE)), &[0x02; 29]),
                key(KeyAlgorithm::Ec, Some(224), Some("1.2.3.4"), None),
            ),
            (
                spki(ED25519, None, &[0x11; 32]),
                key(
                    KeyAlgorithm::Other,
                    Some(256),
                    Some("Ed25519"),
                    Some("1.3.101.112"),
                ),
            ),
        ];
        for (der, want) in cases {
            let (_, info) = SubjectPublicKeyInfo::from_der(&der).unwrap();
            assert_eq!(key_info(&info), want);
        }
        let dsa_der = spki(
            &[0x2A, 0x86, 0x48, 0xCE, 0x38, 0x04, 0x01],
            None,
            &[2, 1, 1],
        );
        let (_, dsa) = SubjectPublicKeyInfo::from_der(&dsa_der).unwrap();
        assert_eq!(
            key_info(&dsa),
            key(KeyAlgorithm::Other, None, None, Some("1.2.840.10040.4.1"))
        );
    }

    fn key(
        algorithm: KeyAlgorithm,
        bits: Option<u32>,
        curve: Option<&str>,
        oid: Option<&str>,
    ) -> KeyInfo {
        KeyInfo {
            algorithm,
            bits,
            curve: curve.map(str::to_owned),
            oid: oid.map(str::to_owned),
        }
    }

    #[test]
    fn rejects_non_certificates() {
        for bytes in [
            &b""[..],
            b"\x30",
            b"\x30\x00",
            b"\x30\x03\x02\x01\x01",
            b"not a certificate",
        ] {
            let err = parse(bytes).unwrap_err();
            assert_eq!(err.code(), crate::error::Code::CertInvalid);
        }
    }
}
