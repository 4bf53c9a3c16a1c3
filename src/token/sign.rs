//! The encodings around C_Sign that PKCS#11 leaves to the caller.

use super::Error;

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
}
