//! Elliptic curves given by explicit parameters (RFC 3279 `ECParameters`) instead of a
//! curve OID: recognised by comparing them with the named curves' domain parameters.
//!
//! Some Chinese CAs write an SM2 key as id-ecPublicKey with the whole sm2p256v1 domain
//! spelled out (shared/fixtures/real-certs file 30). The constants below are the published
//! domain parameters (GB/T 32918.5-2017 for SM2, SEC 2 / FIPS 186-4 for the NIST curves);
//! the tests check them against the RustCrypto curve crates.

use super::text::{self, tag};

/// A named curve's domain parameters, big-endian hex.
pub(super) struct Curve {
    /// The name the model shows (`SM2`, `P-256`, `P-384`).
    pub name: &'static str,
    pub bits: u32,
    p: &'static str,
    a: &'static str,
    b: &'static str,
    gx: &'static str,
    gy: &'static str,
    n: &'static str,
}

pub(super) const SM2: Curve = Curve {
    name: "SM2",
    bits: 256,
    p: "fffffffeffffffffffffffffffffffffffffffff00000000ffffffffffffffff",
    a: "fffffffeffffffffffffffffffffffffffffffff00000000fffffffffffffffc",
    b: "28e9fa9e9d9f5e344d5a9e4bcf6509a7f39789f515ab8f92ddbcbd414d940e93",
    gx: "32c4ae2c1f1981195f9904466a39c9948fe30bbff2660be1715a4589334c74c7",
    gy: "bc3736a2f4f6779c59bdcee36b692153d0a9877cc62a474002df32e52139f0a0",
    n: "fffffffeffffffffffffffffffffffff7203df6b21c6052b53bbf40939d54123",
};

pub(super) const P256: Curve = Curve {
    name: "P-256",
    bits: 256,
    p: "ffffffff00000001000000000000000000000000ffffffffffffffffffffffff",
    a: "ffffffff00000001000000000000000000000000fffffffffffffffffffffffc",
    b: "5ac635d8aa3a93e7b3ebbd55769886bc651d06b0cc53b0f63bce3c3e27d2604b",
    gx: "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
    gy: "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
    n: "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
};

pub(super) const P384: Curve = Curve {
    name: "P-384",
    bits: 384,
    p: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe\
        ffffffff0000000000000000ffffffff",
    a: "fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffe\
        ffffffff0000000000000000fffffffc",
    b: "b3312fa7e23ee7e4988e056be3f82d19181d9c6efe8141120314088f5013875a\
        c656398d8a2ed19d2a85c8edd3ec2aef",
    gx: "aa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a38\
         5502f25dbf55296c3a545e3872760ab7",
    gy: "3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c0\
         0a60b1ce1d7e819d7a431d7c90ea0e5f",
    n: "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf\
        581a0db248b0a77aecec196accc52973",
};

const CURVES: [&Curve; 3] = [&SM2, &P256, &P384];

/// id-prime-field (1.2.840.10045.1.1), content octets.
const PRIME_FIELD: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x01, 0x01];

/// Big-endian bytes without leading zeros.
fn strip(b: &[u8]) -> &[u8] {
    let zeros = b.iter().take_while(|&&x| x == 0).count();
    b.get(zeros..).unwrap_or_default()
}

fn same(bytes: &[u8], hex_value: &str) -> bool {
    hex::decode(hex_value).is_ok_and(|v| strip(bytes) == strip(&v))
}

/// The named curve whose domain parameters an explicit `ECParameters` has, given the
/// content of its SEQUENCE:
///
/// ```text
/// ECParameters ::= SEQUENCE { version INTEGER { ecpVer1(1) }, fieldID FieldID,
///     curve Curve, base ECPoint, order INTEGER, cofactor INTEGER OPTIONAL }
/// FieldID ::= SEQUENCE { fieldType OID (id-prime-field), prime INTEGER }
/// Curve ::= SEQUENCE { a OCTET STRING, b OCTET STRING, seed BIT STRING OPTIONAL }
/// ```
///
/// The seed is not compared (it only says how the curve was made); the cofactor must be 1
/// when present. A compressed base point is compared by x and the parity of y.
pub(super) fn by_parameters(content: &[u8]) -> Option<&'static Curve> {
    let mut parts = text::elements(content);
    let (tag::INTEGER, [1]) = parts.next()? else {
        return None;
    };
    let (tag::SEQUENCE, field) = parts.next()? else {
        return None;
    };
    let mut field = text::elements(field);
    let (tag::OID, PRIME_FIELD) = field.next()? else {
        return None;
    };
    let (tag::INTEGER, p) = field.next()? else {
        return None;
    };
    let (tag::SEQUENCE, curve) = parts.next()? else {
        return None;
    };
    let mut curve = text::elements(curve);
    let (tag::OCTET_STRING, a) = curve.next()? else {
        return None;
    };
    let (tag::OCTET_STRING, b) = curve.next()? else {
        return None;
    };
    let (tag::OCTET_STRING, base) = parts.next()? else {
        return None;
    };
    let (tag::INTEGER, n) = parts.next()? else {
        return None;
    };
    match parts.next() {
        None => {}
        Some((tag::INTEGER, h)) if strip(h) == [1] => {}
        Some(_) => return None,
    }
    CURVES
        .into_iter()
        .find(|c| same(p, c.p) && same(a, c.a) && same(b, c.b) && same(n, c.n) && base_is(base, c))
}

/// The base point (SEC 1 encoding) is the curve's generator.
fn base_is(point: &[u8], c: &Curve) -> bool {
    let size = usize::try_from(c.bits.div_ceil(8)).unwrap_or(0);
    let (Ok(gx), Ok(gy)) = (hex::decode(c.gx), hex::decode(c.gy)) else {
        return false;
    };
    match point.split_first() {
        Some((4, xy)) if xy.len() == 2 * size => {
            let (x, y) = xy.split_at(size);
            x == gx && y == gy
        }
        Some((&prefix @ (2 | 3), x)) if x.len() == size => {
            let odd = gy.last().is_some_and(|l| l & 1 == 1);
            x == gx && (prefix == 3) == odd
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sm2::elliptic_curve::sec1::ToSec1Point;

    fn uncompressed(c: &Curve) -> Vec<u8> {
        let mut v = vec![4];
        v.extend(hex::decode(c.gx).unwrap());
        v.extend(hex::decode(c.gy).unwrap());
        v
    }

    /// The constants against the RustCrypto curve crates' own generators and orders.
    #[test]
    fn constants_match_the_curve_crates() {
        use sm2::elliptic_curve::Curve as _;
        let g = sm2::AffinePoint::GENERATOR.to_sec1_point(false);
        assert_eq!(g.as_bytes(), uncompressed(&SM2));
        assert_eq!(
            hex::encode(sm2::Sm2::ORDER.to_be_bytes()),
            SM2.n,
            "SM2 order"
        );
        let g = p256::AffinePoint::GENERATOR.to_sec1_point(false);
        assert_eq!(g.as_bytes(), uncompressed(&P256));
        assert_eq!(hex::encode(p256::NistP256::ORDER.to_be_bytes()), P256.n);
        let g = p384::AffinePoint::GENERATOR.to_sec1_point(false);
        assert_eq!(g.as_bytes(), uncompressed(&P384));
        assert_eq!(hex::encode(p384::NistP384::ORDER.to_be_bytes()), P384.n);
    }

    /// The ECParameters content for a curve, as OpenSSL writes it (`-param_enc explicit`).
    fn parameters(c: &Curve, base: &[u8], cofactor: Option<u8>, seed: bool) -> Vec<u8> {
        let int = |hex_value: &str| {
            let mut v = vec![0];
            v.extend(hex::decode(hex_value).unwrap());
            v
        };
        let mut field = Vec::new();
        text::push_tlv(&mut field, tag::OID, PRIME_FIELD);
        text::push_tlv(&mut field, tag::INTEGER, &int(c.p));
        let mut curve = Vec::new();
        text::push_tlv(&mut curve, tag::OCTET_STRING, &hex::decode(c.a).unwrap());
        text::push_tlv(&mut curve, tag::OCTET_STRING, &hex::decode(c.b).unwrap());
        if seed {
            text::push_tlv(&mut curve, tag::BIT_STRING, &[0, 1, 2, 3]);
        }
        let mut content = Vec::new();
        text::push_tlv(&mut content, tag::INTEGER, &[1]);
        text::push_tlv(&mut content, tag::SEQUENCE, &field);
        text::push_tlv(&mut content, tag::SEQUENCE, &curve);
        text::push_tlv(&mut content, tag::OCTET_STRING, base);
        text::push_tlv(&mut content, tag::INTEGER, &int(c.n));
        if let Some(h) = cofactor {
            text::push_tlv(&mut content, tag::INTEGER, &[h]);
        }
        content
    }

    #[test]
    fn recognises_explicit_parameters() {
        for c in CURVES {
            let g = uncompressed(c);
            let found = by_parameters(&parameters(c, &g, Some(1), true)).map(|c| c.name);
            assert_eq!(found, Some(c.name));
            assert_eq!(
                by_parameters(&parameters(c, &g, None, false)).map(|c| c.name),
                Some(c.name),
                "no cofactor, no seed"
            );
            let size = g.len() / 2;
            let mut compressed = vec![2 | (g.last().unwrap() & 1)];
            compressed.extend_from_slice(&g[1..=size]);
            assert_eq!(
                by_parameters(&parameters(c, &compressed, Some(1), false)).map(|c| c.name),
                Some(c.name),
                "compressed base point"
            );
            compressed[0] ^= 1;
            assert!(
                by_parameters(&parameters(c, &compressed, Some(1), false)).is_none(),
                "wrong y parity"
            );
            assert!(
                by_parameters(&parameters(c, &g, Some(2), false)).is_none(),
                "cofactor 2"
            );
            let mut other_g = g.clone();
            *other_g.last_mut().unwrap() ^= 1;
            assert!(by_parameters(&parameters(c, &other_g, Some(1), false)).is_none());
        }
        // SM2's field and coefficients with P-256's generator: no curve.
        let mixed = parameters(&SM2, &uncompressed(&P256), None, false);
        assert!(by_parameters(&mixed).is_none());
        assert!(by_parameters(&[]).is_none());
        assert!(by_parameters(&[0x02, 0x01, 0x02]).is_none(), "version 2");
    }
}
