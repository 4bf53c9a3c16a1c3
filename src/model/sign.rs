//! What a signature request asks for and what it gives back.

use std::str::FromStr;

use sha2::Digest as _;

use crate::error::Code;

/// A hash algorithm a caller may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HashAlg {
    Sha1,
    #[default]
    Sha256,
    Sha384,
    Sha512,
    /// SM3 (GB/T 32905); the one hash SM2 signs with.
    Sm3,
}

impl HashAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "sha1",
            HashAlg::Sha256 => "sha256",
            HashAlg::Sha384 => "sha384",
            HashAlg::Sha512 => "sha512",
            HashAlg::Sm3 => "sm3",
        }
    }

    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
            HashAlg::Sm3 => 32,
        }
    }

    /// Hash `data` on the host.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => sha1::Sha1::digest(data).to_vec(),
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
            HashAlg::Sm3 => sm3::Sm3::digest(data).to_vec(),
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
            // sm3 1.2.156.10197.1.401 (GM/T 0006), as OpenSSL writes it for RSA with SM3.
            HashAlg::Sm3 => &[
                0x30, 0x30, 0x30, 0x0c, 0x06, 0x08, 0x2a, 0x81, 0x1c, 0xcf, 0x55, 0x01, 0x83, 0x11,
                0x05, 0x00, 0x04, 0x20,
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
            "sm3" => Ok(HashAlg::Sm3),
            other => Err(format!(
                "unknown hash `{other}` (sha1, sha256, sha384, sha512, sm3)"
            )),
        }
    }
}

/// What is to be signed.
///
/// For an SM2 key (always with [`HashAlg::Sm3`]) the two forms mean (GM/T 0009 §6.1, the
/// contract every backend follows):
/// - `Data(M)`: the message M. The signer computes Z = SM3(ENTL ‖ ID ‖ a ‖ b ‖ xG ‖ yG ‖
///   xA ‖ yA) from the key's public point and the default ID `1234567812345678`, then
///   e = SM3(Z ‖ M), and signs e (an SKF backend: `SKF_ECCSignData(e)`).
/// - `Digest(e)`: e itself, Z already in it (32 bytes); signed as given. It is *not*
///   SM3(M): [`SignInput::digest`] of `Data` gives SM3(M), which an SM2 signer never signs.
///
/// An SM2 signature comes back as DER `SEQUENCE { r INTEGER, s INTEGER }` and verifies with
/// the certificate's key over M (or e) like any signature of `openssl pkeyutl -verify
/// -pkeyopt distid:1234567812345678`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignInput {
    /// The message itself; it is hashed with the chosen hash (for SM2: e = SM3(Z ‖ M)).
    Data(Vec<u8>),
    /// A digest computed elsewhere with the chosen hash (for SM2: e, Z included).
    Digest(Vec<u8>),
}

impl SignInput {
    /// The digest of the input with `hash`, checking a precomputed digest's length.
    pub fn digest(&self, hash: HashAlg) -> Result<Vec<u8>, DigestLength> {
        match self {
            SignInput::Data(d) => Ok(hash.digest(d)),
            SignInput::Digest(d) if d.len() == hash.output_len() => Ok(d.clone()),
            SignInput::Digest(d) => Err(DigestLength { hash, got: d.len() }),
        }
    }

    /// How many bytes were given to sign (data or digest).
    pub fn len(&self) -> usize {
        match self {
            SignInput::Data(d) | SignInput::Digest(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A precomputed digest whose length is not the hash's: refused before any PIN is asked,
/// with the same code everywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {} digest is {} bytes, got {got}", hash.as_str(), hash.output_len())]
pub struct DigestLength {
    pub hash: HashAlg,
    pub got: usize,
}

impl DigestLength {
    pub fn code(&self) -> Code {
        Code::BadRequest
    }
}

/// A signature and how it was made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// PKCS#1 v1.5 bytes for RSA, DER `ECDSA-Sig-Value` for ECDSA and SM2.
    pub bytes: Vec<u8>,
    /// e.g. `sha256WithRSAEncryption`, `ecdsa-with-SHA256`.
    pub algorithm: String,
}

/// The algorithm name of a signature made with `key` (`rsa`, `ec`, `sm2`) over `hash`.
pub fn algorithm_name(key: KeyKind, hash: HashAlg) -> String {
    let h = hash.as_str().to_ascii_uppercase();
    match key {
        KeyKind::Rsa => format!("{}WithRSAEncryption", hash.as_str()),
        KeyKind::Ec => format!("ecdsa-with-{h}"),
        // OpenSSL's name of 1.2.156.10197.1.501.
        KeyKind::Sm2 => format!("SM2-with-{h}"),
    }
}

/// The private-key types certray signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Rsa,
    Ec,
    /// SM2 (GM/T 0003), signing SM3 only; see [`SignInput`] for what it is given.
    Sm2,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_info_prefix_lengths_match_hash() {
        for h in [
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
            HashAlg::Sm3,
        ] {
            let p = h.digest_info_prefix();
            assert_eq!(*p.last().unwrap() as usize, h.output_len());
            assert_eq!(p[1] as usize, p.len() - 2 + h.output_len());
            assert_eq!(h.digest(b"abc").len(), h.output_len());
        }
    }

    #[test]
    fn digest_length_checked() {
        let short = SignInput::Digest(vec![0; 31]).digest(HashAlg::Sha256);
        assert_eq!(
            short,
            Err(DigestLength {
                hash: HashAlg::Sha256,
                got: 31
            })
        );
        assert_eq!(short.unwrap_err().code(), Code::BadRequest);
        assert_eq!(
            SignInput::Digest(vec![7; 48])
                .digest(HashAlg::Sha384)
                .unwrap(),
            vec![7; 48]
        );
        assert_eq!("SHA-256".parse::<HashAlg>().unwrap(), HashAlg::Sha256);
        assert_eq!("SM3".parse::<HashAlg>().unwrap(), HashAlg::Sm3);
        let short = SignInput::Digest(vec![0; 20]).digest(HashAlg::Sm3);
        assert_eq!(short.unwrap_err().got, 20);
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
        assert_eq!(algorithm_name(KeyKind::Sm2, HashAlg::Sm3), "SM2-with-SM3");
    }
}
