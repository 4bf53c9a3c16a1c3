//! Certificate files: `.cer`/`.crt`/`.der` (DER), `.pem` (one or many PEM blocks), and
//! PKCS#7 `.p7b` bundles (DER or PEM), as `certray inspect FILE…` and `[trust] ca_paths`
//! read them. Bytes in, certificates out; no file system here.
//!
//! A PKCS#7 bundle is walked by hand down to its `certificates` field so that each
//! certificate keeps its exact bytes (fingerprint, id and signature depend on them); the
//! `cms` crate would re-encode each one through `x509-cert`, which also refuses some real
//! certificates that x509-parser reads.

use super::text::{self, tag};
use super::{Certificate, Error, parse};

/// Why a file gave no certificates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    /// Nothing but white space.
    #[error("the file is empty")]
    Empty,
    /// PEM blocks, none of them a certificate or a PKCS#7 bundle.
    #[error("the PEM file holds no certificate, only: {}", .0.join(", "))]
    NoCertificateInPem(Vec<String>),
    /// A PEM block that cannot be decoded.
    #[error("broken PEM: {0}")]
    BadPem(String),
    /// A PKCS#12 / PFX file: it holds a private key and is password protected.
    #[error(
        "this is a PKCS#12 (.pfx/.p12) file, which holds a private key: export the certificate alone (.cer)"
    )]
    Pkcs12,
    /// A PKCS#7 bundle without certificates, or one that cannot be read.
    #[error("PKCS#7 bundle: {0}")]
    Pkcs7(String),
    /// Text that is not PEM.
    #[error("a text file without a PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NotPem,
    /// Binary data that is not a certificate.
    #[error("{0}")]
    NotACertificate(Error),
    /// The `number`th certificate (from 1) of a bundle is broken.
    #[error("certificate {number} of the file: {error}")]
    BadCertificate { number: usize, error: Error },
}

impl BundleError {
    /// The user-facing code: `CERT_INVALID`.
    pub fn code(&self) -> crate::error::Code {
        crate::error::Code::CertInvalid
    }
}

/// PKCS#7 signedData (1.2.840.113549.1.7.2) and GM/T 0010 signedData
/// (1.2.156.10197.6.1.4.2.2), as content octets.
const SIGNED_DATA: [&[u8]; 2] = [
    &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02],
    &[0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x06, 0x01, 0x04, 0x02, 0x02],
];
/// PKCS#7 data (1.2.840.113549.1.7.1): what a PKCS#12 file's AuthenticatedSafe is in.
const DATA: &[u8] = &[0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01];

/// PEM labels that hold a certificate, and those that hold a PKCS#7 bundle.
const CERTIFICATE_LABELS: [&str; 3] = ["CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"];
const PKCS7_LABELS: [&str; 2] = ["PKCS7", "CMS"];

/// Every certificate in a file's bytes, in file order.
///
/// DER: one certificate, or one PKCS#7 bundle. PEM: every `CERTIFICATE` (also `X509
/// CERTIFICATE`, `TRUSTED CERTIFICATE`) and `PKCS7` block in order; other blocks (keys,
/// requests) are skipped as long as there is a certificate. A UTF-8 byte order mark and
/// text around the blocks are ignored.
pub fn read_certificates(bytes: &[u8]) -> Result<Vec<Certificate>, BundleError> {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(BundleError::Empty);
    }
    if bytes.windows(11).any(|w| w == b"-----BEGIN ") {
        return read_pem(bytes);
    }
    if bytes.first() == Some(&tag::SEQUENCE) {
        let ders = read_der(bytes)?;
        return parse_all(ders.into_iter().map(<[u8]>::to_vec).collect());
    }
    if std::str::from_utf8(bytes).is_ok() {
        return Err(BundleError::NotPem);
    }
    Err(BundleError::NotACertificate(
        parse(bytes)
            .err()
            .unwrap_or_else(|| Error::NotACertificate("not a DER certificate".to_owned())),
    ))
}

fn read_pem(bytes: &[u8]) -> Result<Vec<Certificate>, BundleError> {
    use x509_parser::pem::Pem;
    let mut ders: Vec<Vec<u8>> = Vec::new();
    let mut others: Vec<String> = Vec::new();
    for block in Pem::iter_from_buffer(bytes) {
        let block = block.map_err(|e| BundleError::BadPem(e.to_string()))?;
        let label = block.label.trim();
        if CERTIFICATE_LABELS.contains(&label) {
            // OpenSSL's TRUSTED CERTIFICATE is the certificate followed by trust settings.
            let der = match (label, text::read_tlv(&block.contents)) {
                ("TRUSTED CERTIFICATE", Some((_, _, rest))) => block
                    .contents
                    .get(..block.contents.len() - rest.len())
                    .unwrap_or_default()
                    .to_vec(),
                _ => block.contents,
            };
            ders.push(der);
        } else if PKCS7_LABELS.contains(&label) {
            ders.extend(
                pkcs7_certificates(&block.contents)?
                    .into_iter()
                    .map(<[u8]>::to_vec),
            );
        } else {
            others.push(label.to_owned());
        }
    }
    if ders.is_empty() {
        return Err(if others.is_empty() {
            BundleError::BadPem("no complete PEM block".to_owned())
        } else {
            BundleError::NoCertificateInPem(others)
        });
    }
    parse_all(ders)
}

fn parse_all(ders: Vec<Vec<u8>>) -> Result<Vec<Certificate>, BundleError> {
    let single = ders.len() == 1;
    ders.iter()
        .enumerate()
        .map(|(i, der)| {
            parse(der).map_err(|error| {
                if single {
                    BundleError::NotACertificate(error)
                } else {
                    BundleError::BadCertificate {
                        number: i + 1,
                        error,
                    }
                }
            })
        })
        .collect()
}

/// A DER file: a certificate, a PKCS#7 bundle, or a PKCS#12 file (refused by name).
fn read_der(bytes: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    let Some((tag::SEQUENCE, content, _)) = text::read_tlv(bytes) else {
        return Ok(vec![bytes]);
    };
    let mut parts = text::elements(content);
    match (parts.next(), parts.next()) {
        // ContentInfo: { contentType OID, [0] content }
        (Some((tag::OID, oid)), Some((0xA0, _))) if SIGNED_DATA.contains(&oid) => {
            pkcs7_certificates(bytes)
        }
        // PFX: { version INTEGER (3), authSafe ContentInfo { data, … }, … }
        (Some((tag::INTEGER, [3])), Some((tag::SEQUENCE, auth_safe)))
            if matches!(text::read_tlv(auth_safe), Some((tag::OID, DATA, _))) =>
        {
            Err(BundleError::Pkcs12)
        }
        _ => Ok(vec![bytes]),
    }
}

/// The certificates of a PKCS#7 ContentInfo holding SignedData, each its exact bytes.
///
/// ```text
/// ContentInfo ::= SEQUENCE { contentType OID, content [0] EXPLICIT SignedData }
/// SignedData ::= SEQUENCE { version, digestAlgorithms SET, encapContentInfo SEQUENCE,
///     certificates [0] IMPLICIT SET OF Certificate OPTIONAL, crls [1] … OPTIONAL,
///     signerInfos SET }
/// ```
fn pkcs7_certificates(der: &[u8]) -> Result<Vec<&[u8]>, BundleError> {
    let broken = |what: &str| BundleError::Pkcs7(what.to_owned());
    let Some((tag::SEQUENCE, content_info, _)) = text::read_tlv(der) else {
        return Err(broken("not a ContentInfo"));
    };
    let mut parts = text::elements(content_info);
    match parts.next() {
        Some((tag::OID, oid)) if SIGNED_DATA.contains(&oid) => {}
        Some((tag::OID, _)) => return Err(broken("not signedData")),
        _ => return Err(broken("not a ContentInfo")),
    }
    let Some((0xA0, explicit)) = parts.next() else {
        return Err(broken("no content"));
    };
    let Some((tag::SEQUENCE, signed_data, _)) = text::read_tlv(explicit) else {
        return Err(broken("the SignedData cannot be read"));
    };
    let Some((_, certificates)) = text::elements(signed_data).find(|(id, _)| *id == 0xA0) else {
        return Err(broken("it holds no certificates"));
    };
    let mut out = Vec::new();
    let mut rest = certificates;
    while !rest.is_empty() {
        let Some((id, _, after)) = text::read_tlv(rest) else {
            return Err(broken("a certificate in it cannot be read"));
        };
        // Only plain certificates (SEQUENCE); other CertificateChoices are skipped.
        if id == tag::SEQUENCE {
            out.push(rest.get(..rest.len() - after.len()).unwrap_or_default());
        }
        rest = after;
    }
    if out.is_empty() {
        return Err(broken("it holds no certificates"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE_RSA: &[u8] = include_bytes!("../../tests/fixtures/sample-rsa-utf8.der");
    const SAMPLE_SM2: &[u8] = include_bytes!("../../tests/fixtures/sample-sm2.der");

    /// A certs-only SignedData around `certs`, as `openssl crl2pkcs7 -nocrl` makes it.
    fn p7b(certs: &[&[u8]], content_type: &[u8]) -> Vec<u8> {
        let mut set = Vec::new();
        for c in certs {
            set.extend_from_slice(c);
        }
        let mut sd = Vec::new();
        text::push_tlv(&mut sd, tag::INTEGER, &[1]);
        text::push_tlv(&mut sd, 0x31, &[]);
        let mut encap = Vec::new();
        text::push_tlv(&mut encap, tag::OID, DATA);
        text::push_tlv(&mut sd, tag::SEQUENCE, &encap);
        text::push_tlv(&mut sd, 0xA0, &set);
        text::push_tlv(&mut sd, 0x31, &[]);
        let mut signed = Vec::new();
        text::push_tlv(&mut signed, tag::SEQUENCE, &sd);
        let mut ci = Vec::new();
        text::push_tlv(&mut ci, tag::OID, content_type);
        text::push_tlv(&mut ci, 0xA0, &signed);
        let mut out = Vec::new();
        text::push_tlv(&mut out, tag::SEQUENCE, &ci);
        out
    }

    fn pem(label: &str, der: &[u8]) -> String {
        super::super::to_pem(der).replace("CERTIFICATE", label)
    }

    fn ids(certs: &[Certificate]) -> Vec<crate::model::CertId> {
        certs.iter().map(Certificate::id).collect()
    }

    #[test]
    fn der_pem_and_bundles() {
        let rsa = parse(SAMPLE_RSA).unwrap().id();
        let sm2 = parse(SAMPLE_SM2).unwrap().id();
        assert_eq!(ids(&read_certificates(SAMPLE_RSA).unwrap()), [rsa.as_str()]);
        let two = format!(
            "junk before\r\n{}\n{}",
            pem("CERTIFICATE", SAMPLE_SM2),
            pem("CERTIFICATE", SAMPLE_RSA)
        );
        assert_eq!(
            ids(&read_certificates(two.as_bytes()).unwrap()),
            [sm2.clone(), rsa.clone()]
        );
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend(pem("CERTIFICATE", SAMPLE_RSA).bytes());
        assert_eq!(ids(&read_certificates(&bom).unwrap()), [rsa.as_str()]);
        for oid in SIGNED_DATA {
            let bundle = p7b(&[SAMPLE_RSA, SAMPLE_SM2], oid);
            let certs = read_certificates(&bundle).unwrap();
            assert_eq!(ids(&certs), [rsa.clone(), sm2.clone()]);
            assert_eq!(certs[0].der, SAMPLE_RSA, "the exact bytes");
            let as_pem = pem("PKCS7", &bundle);
            assert_eq!(
                ids(&read_certificates(as_pem.as_bytes()).unwrap()),
                [rsa.clone(), sm2.clone()]
            );
        }
        // A key next to the certificate is skipped.
        let with_key = format!(
            "{}{}",
            pem("PRIVATE KEY", b"\x30\x00"),
            pem("CERTIFICATE", SAMPLE_SM2)
        );
        assert_eq!(ids(&read_certificates(with_key.as_bytes()).unwrap()), [sm2]);
    }

    #[test]
    fn clear_errors_for_what_is_not_a_certificate() {
        assert_eq!(read_certificates(b""), Err(BundleError::Empty));
        assert_eq!(read_certificates(b" \n"), Err(BundleError::Empty));
        assert_eq!(
            read_certificates(pem("PRIVATE KEY", b"\x30\x00").as_bytes()),
            Err(BundleError::NoCertificateInPem(vec!["PRIVATE KEY".into()]))
        );
        assert!(matches!(
            read_certificates(b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n"),
            Err(BundleError::BadPem(_))
        ));
        assert_eq!(read_certificates(b"hello"), Err(BundleError::NotPem));
        assert!(matches!(
            read_certificates(b"\x00\x01\x02\xff"),
            Err(BundleError::NotACertificate(_))
        ));
        assert!(matches!(
            read_certificates(&SAMPLE_RSA[..100]),
            Err(BundleError::NotACertificate(_))
        ));
        // PFX { version 3, authSafe ContentInfo { data, [0] … } }
        let mut auth_safe = Vec::new();
        text::push_tlv(&mut auth_safe, tag::OID, DATA);
        text::push_tlv(&mut auth_safe, 0xA0, &[0x04, 0x00]);
        let mut pfx = Vec::new();
        text::push_tlv(&mut pfx, tag::INTEGER, &[3]);
        text::push_tlv(&mut pfx, tag::SEQUENCE, &auth_safe);
        let mut der = Vec::new();
        text::push_tlv(&mut der, tag::SEQUENCE, &pfx);
        assert_eq!(read_certificates(&der), Err(BundleError::Pkcs12));
        let empty = p7b(&[], SIGNED_DATA[0]);
        assert_eq!(
            read_certificates(&empty),
            Err(BundleError::Pkcs7("it holds no certificates".into()))
        );
        let broken = p7b(
            &[SAMPLE_RSA, &SAMPLE_SM2[..SAMPLE_SM2.len() - 1]],
            SIGNED_DATA[0],
        );
        assert!(matches!(
            read_certificates(&broken),
            Err(BundleError::Pkcs7(_) | BundleError::BadCertificate { .. })
        ));
        let mut damaged = SAMPLE_SM2.to_vec();
        damaged[20] ^= 0xFF;
        let bundle = p7b(&[SAMPLE_RSA, &damaged], SIGNED_DATA[0]);
        if let Err(e) = read_certificates(&bundle) {
            assert!(
                matches!(e, BundleError::BadCertificate { number: 2, .. }),
                "{e}"
            );
        }
    }

    /// Every sample bundle cut short: an error, never a panic.
    #[test]
    fn cut_bundles_never_panic() {
        let bundle = p7b(&[SAMPLE_RSA, SAMPLE_SM2], SIGNED_DATA[0]);
        for len in 0..bundle.len() {
            assert!(
                read_certificates(bundle.get(..len).unwrap_or_default()).is_err(),
                "{len}"
            );
        }
    }
}
