//! The device's cryptography, all from RustCrypto (OpenSSL stays out: it is the tests'
//! independent verifier).
//!
//! - SM2: `SKF_ECCSignData` signs the GIVEN `e` (`sign_prehash`), as the specification says
//!   ("输入数据为待签数据的杂凑值"); the `sm2-double-hash` quirk signs SM3(Z‖e) instead.
//! - RSA: `SKF_RSASignData` is PKCS#1 v1.5 type 1 over the given bytes (the caller passes
//!   DigestInfo‖hash), at most k − 11 of them.
//! - `SKF_DigestInit` with a public key and an ID starts SM3 with Z = SM3(ENTL‖ID‖a‖b‖xG‖yG‖xA‖yA).
//! - `SKF_DevAuth`: SM4-ECB of the last random, zero-padded to 16 bytes.

use primeorder::PrimeCurveParams;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, PrivateKey};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use sm2::elliptic_curve::sec1::ToSec1Point;
use sm2::{SecretKey, Sm2};
use sm4::cipher::{BlockCipherEncrypt, KeyInit};

use crate::types::*;

/// The default SM2 user ID (GM/T 0009).
pub const DEFAULT_ID: &[u8] = b"1234567812345678";

/// A private key as stored in `state.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "alg", rename_all = "lowercase")]
pub enum Key {
    /// The SM2 private scalar d, hex.
    Sm2 { d: String },
    /// PKCS#8 DER, hex.
    Rsa { pkcs8: String },
}

impl Key {
    /// A PKCS#8 private key (what `openssl genpkey` writes): SM2 (id-ecPublicKey on the SM2
    /// curve) or RSA.
    pub fn from_pkcs8_der(der: &[u8]) -> Result<Key, String> {
        if let Ok(sk) = <SecretKey as sm2::pkcs8::DecodePrivateKey>::from_pkcs8_der(der) {
            return Ok(Key::Sm2 {
                d: hex::encode(sk.to_bytes()),
            });
        }
        match PrivateKey::from_pkcs8_der(der) {
            Ok(_) => Ok(Key::Rsa {
                pkcs8: hex::encode(der),
            }),
            Err(e) => Err(format!(
                "neither an SM2 nor an RSA PKCS#8 private key ({e}); make it with `openssl genpkey`"
            )),
        }
    }

    pub fn generate_sm2() -> Key {
        loop {
            let mut d = [0u8; 32];
            getrandom::fill(&mut d).expect("getrandom");
            if let Ok(sk) = SecretKey::from_slice(&d) {
                return Key::Sm2 {
                    d: hex::encode(sk.to_bytes()),
                };
            }
        }
    }

    pub fn container_type(&self) -> ULONG {
        match self {
            Key::Sm2 { .. } => CONTAINER_TYPE_ECC,
            Key::Rsa { .. } => CONTAINER_TYPE_RSA,
        }
    }

    fn sm2(&self) -> Option<SecretKey> {
        match self {
            Key::Sm2 { d } => SecretKey::from_slice(&hex::decode(d).ok()?).ok(),
            Key::Rsa { .. } => None,
        }
    }

    fn rsa(&self) -> Option<PrivateKey> {
        match self {
            Key::Rsa { pkcs8 } => PrivateKey::from_pkcs8_der(&hex::decode(pkcs8).ok()?).ok(),
            Key::Sm2 { .. } => None,
        }
    }

    /// What the certificate of this key must contain: the uncompressed SM2 point, or the
    /// RSA modulus.
    pub fn public_bytes(&self) -> Vec<u8> {
        if let Some(sk) = self.sm2() {
            return sm2_point(&sk).to_vec();
        }
        match self.rsa() {
            Some(k) => k.n_bytes().to_vec(),
            None => Vec::new(),
        }
    }

    /// ECCPUBLICKEYBLOB or RSAPUBLICKEYBLOB bytes.
    pub fn public_blob(&self) -> Vec<u8> {
        if let Some(sk) = self.sm2() {
            let blob = ecc_public_blob(&sm2_point(&sk));
            return as_bytes(&blob).to_vec();
        }
        let Some(k) = self.rsa() else {
            return Vec::new();
        };
        let n = k.n_bytes();
        let e = k.e_bytes();
        let mut blob = RSAPUBLICKEYBLOB {
            AlgID: SGD_RSA,
            BitLen: (n.len() * 8) as ULONG,
            Modulus: [0; 256],
            PublicExponent: [0; 4],
        };
        // The modulus left-aligned (its first BitLen/8 bytes), as GmSSL reads it; the
        // exponent right-aligned in 4 bytes.
        blob.Modulus[..n.len().min(256)].copy_from_slice(&n[..n.len().min(256)]);
        let e = &e[e.len().saturating_sub(4)..];
        blob.PublicExponent[4 - e.len()..].copy_from_slice(e);
        as_bytes(&blob).to_vec()
    }

    /// SM2 signature of `e`; `double_hash` signs SM3(Z‖e) instead (the quirk).
    pub fn sm2_sign(&self, e: &[u8], double_hash: bool) -> Option<ECCSIGNATUREBLOB> {
        use sm2::dsa::signature::Signer;
        use sm2::dsa::signature::hazmat::PrehashSigner;
        let sk = self.sm2()?;
        let signing =
            sm2::dsa::SigningKey::new(std::str::from_utf8(DEFAULT_ID).expect("ASCII"), &sk).ok()?;
        let sig: sm2::dsa::Signature = if double_hash {
            signing.try_sign(e).ok()?
        } else {
            signing.sign_prehash(e).ok()?
        };
        let mut blob = ECCSIGNATUREBLOB {
            r: [0; 64],
            s: [0; 64],
        };
        blob.r[32..].copy_from_slice(&sig.r_bytes());
        blob.s[32..].copy_from_slice(&sig.s_bytes());
        Some(blob)
    }

    /// The RSA modulus length k in bytes.
    pub fn rsa_size(&self) -> Option<usize> {
        self.rsa().map(|k| k.size())
    }

    /// PKCS#1 v1.5 type 1 over `data` as given.
    pub fn rsa_sign(&self, data: &[u8]) -> Option<Vec<u8>> {
        self.rsa()?.sign(Pkcs1v15Sign::new_unprefixed(), data).ok()
    }
}

fn sm2_point(sk: &SecretKey) -> [u8; 65] {
    let point = sk.public_key().as_affine().to_sec1_point(false);
    let mut out = [0u8; 65];
    out.copy_from_slice(point.as_bytes());
    out
}

/// BitLen 256, x and y right-aligned in their 64-byte fields.
pub fn ecc_public_blob(point: &[u8; 65]) -> ECCPUBLICKEYBLOB {
    let mut blob = ECCPUBLICKEYBLOB {
        BitLen: 256,
        XCoordinate: [0; 64],
        YCoordinate: [0; 64],
    };
    blob.XCoordinate[32..].copy_from_slice(&point[1..33]);
    blob.YCoordinate[32..].copy_from_slice(&point[33..65]);
    blob
}

/// The bytes of a packed, plain-data struct.
pub fn as_bytes<T: Copy>(v: &T) -> &[u8] {
    // SAFETY: only used with the #[repr(C, packed)] SKF structs of `types`, which consist of
    // integers and byte arrays: no padding, every byte initialised; the slice borrows `v`.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), std::mem::size_of::<T>()) }
}

/// Z = SM3(ENTL‖ID‖a‖b‖xG‖yG‖xA‖yA) for the public key in `blob` (coordinates taken from
/// the low 32 bytes of each 64-byte field).
pub fn sm2_z(blob: &ECCPUBLICKEYBLOB, id: &[u8]) -> Option<[u8; 32]> {
    let entl = u16::try_from(id.len().checked_mul(8)?).ok()?;
    let x = blob.XCoordinate;
    let y = blob.YCoordinate;
    let z = sm3::Sm3::new()
        .chain_update(entl.to_be_bytes())
        .chain_update(id)
        .chain_update(Sm2::EQUATION_A.to_bytes())
        .chain_update(Sm2::EQUATION_B.to_bytes())
        .chain_update(Sm2::GENERATOR.0.to_bytes())
        .chain_update(Sm2::GENERATOR.1.to_bytes())
        .chain_update(&x[32..])
        .chain_update(&y[32..])
        .finalize();
    Some(z.into())
}

/// A running hash of `SKF_DigestInit`.
#[derive(Clone)]
pub enum Hasher {
    Sm3(sm3::Sm3),
    Sha1(sha1::Sha1),
    Sha256(sha2::Sha256),
}

impl Hasher {
    pub fn new(alg: ULONG) -> Option<Hasher> {
        Some(match alg {
            SGD_SM3 => Hasher::Sm3(sm3::Sm3::new()),
            SGD_SHA1 => Hasher::Sha1(sha1::Sha1::new()),
            SGD_SHA256 => Hasher::Sha256(sha2::Sha256::new()),
            _ => return None,
        })
    }

    pub fn len(&self) -> usize {
        match self {
            Hasher::Sm3(_) | Hasher::Sha256(_) => 32,
            Hasher::Sha1(_) => 20,
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Sm3(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Sm3(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// SM4-ECB of one 16-byte block.
pub fn sm4_ecb(key: &[u8], block: &[u8; 16]) -> Option<[u8; 16]> {
    let cipher = sm4::Sm4::new_from_slice(key).ok()?;
    let mut b = sm4::cipher::Block::<sm4::Sm4>::from(*block);
    cipher.encrypt_block(&mut b);
    Some(b.into())
}

pub fn random(len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    getrandom::fill(&mut v).expect("getrandom");
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use sm2::dsa::signature::Verifier;

    #[test]
    fn sm2_sign_over_e_verifies_as_a_signature_over_the_message() {
        let key = Key::generate_sm2();
        let point: [u8; 65] = key.public_bytes().try_into().unwrap();
        let z = sm2_z(&ecc_public_blob(&point), DEFAULT_ID).unwrap();
        let msg = b"certray softskf";
        let e = sm3::Sm3::new().chain_update(z).chain_update(msg).finalize();
        let blob = key.sm2_sign(&e, false).unwrap();
        assert_eq!(&blob.r[..32], &[0u8; 32]);
        let sig = sm2::dsa::Signature::from_scalars(
            <[u8; 32]>::try_from(&blob.r[32..]).unwrap(),
            <[u8; 32]>::try_from(&blob.s[32..]).unwrap(),
        )
        .unwrap();
        let vk = sm2::dsa::VerifyingKey::from_sec1_bytes("1234567812345678", &point).unwrap();
        // The sm2 crate computes Z itself: our Z and the signature agree with it.
        vk.verify(msg, &sig).unwrap();
        // The double-hash quirk's signature does not verify over the message.
        let bad = key.sm2_sign(&e, true).unwrap();
        let bad = sm2::dsa::Signature::from_scalars(
            <[u8; 32]>::try_from(&bad.r[32..]).unwrap(),
            <[u8; 32]>::try_from(&bad.s[32..]).unwrap(),
        )
        .unwrap();
        assert!(vk.verify(msg, &bad).is_err());
        vk.verify(&e, &bad).unwrap();
    }

    #[test]
    fn sm4_known_answer() {
        // GB/T 32907-2016 Appendix A example 1.
        let k = hex::decode("0123456789abcdeffedcba9876543210").unwrap();
        let out = sm4_ecb(&k, &k.clone().try_into().unwrap()).unwrap();
        assert_eq!(hex::encode(out), "681edf34d206965e86b3e94f536e4246");
    }
}
