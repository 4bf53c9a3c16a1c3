//! What a signature request asks for, and the encodings around C_Sign.

use std::str::FromStr;

use sha2::Digest as _;

use super::Error;

/// A hash algorithm a caller may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlg {
    Sha1,
    #[default]
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// Hash `data` on the host.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }

    /// The DER DigestInfo prefix for PKCS#1 v1.5 (RFC 8017 §9.2, note 1): AlgorithmIdentifier
    /// with NULL parameters and the OCTET STRING header, to which the digest is appended.
    /// These are fixed byte strings published in the RFC, written out here rather than
    /// assembled, as every PKCS#11 client does for CKM_RSA_PKCS.
    pub fn digest_info_prefix(self) -> &'static [u8] {
        match self {
            HashAlg::Sha1 => &[
                0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
                0x14,
            ],
            HashAlg::Sha256 => &[
                0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x01, 0x05, 0x00, 0x04, 0x20,
            ],
            HashAlg::Sha384 => &[
                0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x02, 0x05, 0x00, 0x04, 0x30,
            ],
            HashAlg::Sha512 => &[
                0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
                0x03, 0x05, 0x00, 0x04, 0x40,
            ],
        }
    }

    /// DigestInfo(digest) for CKM_RSA_PKCS.
    pub fn digest_info(self, digest: &[u8]) -> Vec<u8> {
        let mut v = self.digest_info_prefix().to_vec();
        v.extend_from_slice(digest);
        v
    }
}

impl FromStr for HashAlg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('-', "").as_str() {
            "sha1" => Ok(HashAlg::Sha1),
            "sha256" => Ok(HashAlg::Sha256),
            "sha384" => Ok(HashAlg::Sha384),
            "sha512" => Ok(HashAlg::Sha512),
            other => Err(format!(
                "unknown hash `{other}` (sha1, sha256, sha384, sha512)"
            )),
        }
    }
}

/// What is to be signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInput {
    /// The message itself; it is hashed with the chosen hash.
    Data(Vec<u8>),
    /// A digest computed elsewhere with the chosen hash.
    Digest(Vec<u8>),
}

impl SignInput {
    /// The digest of the input with `hash`, checking a precomputed digest's length.
    pub fn digest(&self, hash: HashAlg) -> Result<Vec<u8>, Error> {
        match self {
            SignInput::Data(d) => Ok(hash.digest(d)),
            SignInput::Digest(d) if d.len() == hash.output_len() => Ok(d.clone()),
            SignInput::Digest(d) => Err(Error::Other(format!(
                "a {} digest is {} bytes, got {}",
                hash.as_str(),
                hash.output_len(),
                d.len()
            ))),
        }
    }
}

/// A signature and how it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// PKCS#1 v1.5 bytes for RSA, DER `ECDSA-Sig-Value` for ECDSA.
    pub bytes: Vec<u8>,
    /// e.g. `sha256WithRSAEncryption`, `ecdsa-with-SHA256`.
    pub algorithm: String,
}

/// The algorithm name of a signature made with `key` (`rsa` or `ec`) over `hash`.
pub fn algorithm_name(key: KeyKind, hash: HashAlg) -> String {
    let h = hash.as_str().to_ascii_uppercase();
    match key {
        KeyKind::Rsa => format!("{}WithRSAEncryption", hash.as_str()),
        KeyKind::Ec => format!("ecdsa-with-{h}"),
    }
}

/// The private-key types certray signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ec,
}

#[derive(der::Sequence)]
struct EcdsaSigValue<'a> {
    r: der::asn1::UintRef<'a>,
    s: der::asn1::UintRef<'a>,
}

/// PKCS#11 returns ECDSA signatures as r ‖ s; OpenSSL and X.509 want DER
/// `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }`.
pub fn ecdsa_raw_to_der(raw: &[u8]) -> Result<Vec<u8>, Error> {
    use der::Encode;
    if raw.is_empty() || !raw.len().is_multiple_of(2) {
        return Err(Error::Other(format!(
            "ECDSA signature of odd length {}",
            raw.len()
        )));
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let bad = |e: der::Error| Error::Other(format!("ECDSA signature encoding: {e}"));
    let sig = EcdsaSigValue {
        r: der::asn1::UintRef::new(r).map_err(bad)?,
        s: der::asn1::UintRef::new(s).map_err(bad)?,
    };
    sig.to_der().map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ecdsa_der_strips_and_pads() {
        let mut raw = vec![0u8; 64];
        raw[1] = 0x01; // r = 0x01 followed by 30 zero bytes → leading zero stripped
        raw[32] = 0x80; // s with high bit → 0x00 pad
        let der = ecdsa_raw_to_der(&raw).unwrap();
        assert_eq!(der[0], 0x30);
        assert_eq!(&der[2..4], &[0x02, 31]);
        assert_eq!(der[4], 0x01);
        let s_at = 4 + 31;
        assert_eq!(&der[s_at..s_at + 3], &[0x02, 33, 0x00]);
        assert!(ecdsa_raw_to_der(&[1, 2, 3]).is_err());
    }

    #[test]
    fn digest_info_prefix_lengths_match_hash() {
        for h in [
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ] {
            let p = h.digest_info_prefix();
            assert_eq!(*p.last().unwrap() as usize, h.output_len());
            assert_eq!(p[1] as usize, p.len() - 2 + h.output_len());
            assert_eq!(h.digest(b"abc").len(), h.output_len());
        }
    }

    #[test]
    fn digest_length_checked() {
        assert!(
            SignInput::Digest(vec![0; 31])
                .digest(HashAlg::Sha256)
                .is_err()
        );
        assert_eq!(
            SignInput::Digest(vec![7; 48])
                .digest(HashAlg::Sha384)
                .unwrap(),
            vec![7; 48]
        );
        assert_eq!("SHA-256".parse::<HashAlg>().unwrap(), HashAlg::Sha256);
    }

    #[test]
    fn algorithm_names() {
        assert_eq!(
            algorithm_name(KeyKind::Rsa, HashAlg::Sha256),
            "sha256WithRSAEncryption"
        );
        assert_eq!(
            algorithm_name(KeyKind::Ec, HashAlg::Sha384),
            "ecdsa-with-SHA384"
        );
    }
}
