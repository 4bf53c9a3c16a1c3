//! A certificate's fields one by one, as the CA helpers' protocols hand them out: every
//! name attribute with its value (several values of one attribute kept apart, e-mail
//! included), every extension's raw value, the version and the public key. The model
//! ([`super::Certificate`]) joins and interprets; protocols that number fields need them raw.

use super::parse::x509;
use super::{Error, text};

/// The fields of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    /// 1, 2 or 3.
    pub version: u32,
    /// Subject attributes as `(dotted OID, text)`, in DER order.
    pub subject: Vec<(String, String)>,
    /// Issuer attributes as `(dotted OID, text)`, in DER order.
    pub issuer: Vec<(String, String)>,
    /// Extensions as `(dotted OID, extnValue content)`.
    pub extensions: Vec<(String, Vec<u8>)>,
    /// The subjectPublicKey BIT STRING's bytes (an RSAPublicKey, or an EC point).
    pub public_key: Vec<u8>,
}

impl Fields {
    /// The values of the subject (`issuer`: false) or issuer attribute `oid`, in DER order.
    pub fn values<'a>(&'a self, issuer: bool, oid: &'a str) -> impl Iterator<Item = &'a str> {
        let attrs = if issuer { &self.issuer } else { &self.subject };
        attrs
            .iter()
            .filter(move |(o, _)| o == oid)
            .map(|(_, v)| v.as_str())
    }

    /// The raw value of extension `oid`.
    pub fn extension(&self, oid: &str) -> Option<&[u8]> {
        self.extensions
            .iter()
            .find(|(o, _)| o == oid)
            .map(|(_, v)| v.as_slice())
    }
}

/// Read the fields of one DER certificate. Never panics.
pub fn fields(der: &[u8]) -> Result<Fields, Error> {
    let x509 = x509(der)?;
    let tbs = &x509.tbs_certificate;
    let (_, subject) = super::name::read_name(&tbs.subject);
    let (_, issuer) = super::name::read_name(&tbs.issuer);
    Ok(Fields {
        version: tbs.version.0 + 1,
        subject,
        issuer,
        extensions: tbs
            .extensions()
            .iter()
            .map(|e| (e.oid.to_id_string(), e.value.to_vec()))
            .collect(),
        public_key: tbs.subject_pki.subject_public_key.data.to_vec(),
    })
}

/// An extension value as text: a DER string (possibly inside an OCTET STRING, SEQUENCE,
/// SET or `[n]`), else the bytes themselves when they are UTF-8 text (BJCA writes some
/// values with no DER tag at all). Trimmed; `None` for NULL, blanks and binary values.
pub fn extension_text(value: &[u8]) -> Option<String> {
    let s = text::der_string(value).or_else(|| text::plain_text(value))?;
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extension_text_reads_tagged_and_untagged_values() {
        // UTF8String "JJ91110000"
        let mut der = vec![0x0c, 10];
        der.extend_from_slice(b"JJ91110000");
        assert_eq!(extension_text(&der).as_deref(), Some("JJ91110000"));
        assert_eq!(
            extension_text(b"SF110102198811113018").as_deref(),
            Some("SF110102198811113018")
        );
        assert_eq!(extension_text(&[0x05, 0x00]), None);
        assert!(fields(b"not a certificate").is_err());
    }
}
