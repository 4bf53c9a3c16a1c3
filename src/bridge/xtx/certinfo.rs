//! `SOF_GetCertInfo` by BJCA's type numbers (PORTAL-PROTOCOLS.md §1.3, which are not GM/T
//! 0020's), `SOF_GetCertInfoByOid` and `SOF_GetCertEntity`.
//!
//! 1 version (`V3`); 2 serial (hex); 3 key algorithm; 4–10 issuer C, O, OU, ST, CN, L, E;
//! 11 notBefore, 12 notAfter as `YYYYMMDDHHMMSS` in local time; 13–19 subject C, O, OU, ST,
//! CN, L, E; 20 public key (base64); 33 subject DN; 34 issuer DN; 35 BJCA's unique entity id.
//! Several values of one attribute are joined with `&&&`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use time::{OffsetDateTime, UtcOffset};

use super::errors::{Fail, Reason, SOR_PARAMETER_NOT_SUPPORT};
use crate::cert::{self, KeyAlgorithm};

/// Attribute OIDs in BJCA's order C, O, OU, ST, CN, L, E.
const ATTRIBUTES: [&str; 7] = [
    "2.5.4.6",
    "2.5.4.10",
    "2.5.4.11",
    "2.5.4.8",
    "2.5.4.3",
    "2.5.4.7",
    "1.2.840.113549.1.9.1",
];

/// BJCA's unique user id, and the arc where its RSA certificates repeat it.
const BJCA_UNIQUE_ID: &str = "1.2.156.112562.2.1.1.1";
const ENTRUST_USER_ID: &str = "2.16.840.1.113732.2";

/// A certificate argument: base64 DER (line breaks and PEM armour tolerated).
pub fn decode_cert(text: &str) -> Result<Vec<u8>, Fail> {
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let der = B64.decode(body).map_err(|_| Fail::not_a_certificate())?;
    cert::parse(&der).map_err(|_| Fail::not_a_certificate())?;
    Ok(der)
}

/// `SOF_GetCertInfo(cert, kind)`; `now`-independent except for the local time zone.
pub fn cert_info(der: &[u8], kind: u32) -> Result<String, Fail> {
    let parsed = cert::parse(der).map_err(|_| Fail::not_a_certificate())?;
    let fields = cert::fields(der).map_err(|_| Fail::not_a_certificate())?;
    let joined =
        |issuer: bool, oid: &str| fields.values(issuer, oid).collect::<Vec<_>>().join("&&&");
    Ok(match kind {
        1 => format!("V{}", fields.version),
        2 => parsed.serial.clone(),
        3 => match parsed.key.algorithm {
            KeyAlgorithm::Rsa => "RSA".into(),
            KeyAlgorithm::Sm2 => "SM2".into(),
            KeyAlgorithm::Ec => "ECC".into(),
            KeyAlgorithm::Other => parsed.key.oid.clone().unwrap_or_default(),
        },
        4..=10 => joined(true, ATTRIBUTES[(kind - 4) as usize]),
        11 => local_stamp(parsed.validity.not_before),
        12 => local_stamp(parsed.validity.not_after),
        13..=19 => joined(false, ATTRIBUTES[(kind - 13) as usize]),
        20 => B64.encode(&fields.public_key),
        33 => parsed.subject.dn.clone(),
        34 => parsed.issuer.dn.clone(),
        35 => entity(&fields).unwrap_or_default(),
        _ => {
            return Err(Fail::new(SOR_PARAMETER_NOT_SUPPORT, Reason::NotSupported));
        }
    })
}

/// `SOF_GetCertInfoByOid`: the extension's value as text (a subject attribute with that
/// OID when no extension has it); `None` when the certificate has neither.
pub fn info_by_oid(der: &[u8], oid: &str) -> Result<Option<String>, Fail> {
    let fields = cert::fields(der).map_err(|_| Fail::not_a_certificate())?;
    if let Some(v) = fields.extension(oid) {
        return Ok(Some(
            cert::extension_text(v).unwrap_or_else(|| B64.encode(v)),
        ));
    }
    let values: Vec<&str> = fields.values(false, oid).collect();
    Ok((!values.is_empty()).then(|| values.join("&&&")))
}

/// `SOF_GetCertEntity`: BJCA's unique entity id (`SF` + ID number for persons, `JJ` + USCC
/// for organisations), from BJCA's extension or the arc its RSA certificates use; a
/// `1@` version prefix and a number before the `SF`/`JJ` are dropped.
pub fn cert_entity(der: &[u8]) -> Result<Option<String>, Fail> {
    let fields = cert::fields(der).map_err(|_| Fail::not_a_certificate())?;
    Ok(entity(&fields))
}

fn entity(fields: &cert::Fields) -> Option<String> {
    let text = [BJCA_UNIQUE_ID, ENTRUST_USER_ID]
        .iter()
        .find_map(|oid| fields.extension(oid).and_then(cert::extension_text))?;
    // `1@5009JJ0110000123`: a version, then the CA's number before the `SF`/`JJ` id.
    let id = text.rsplit_once('@').map_or(text.as_str(), |(_, id)| id);
    let after_digits = id.trim_start_matches(|c: char| c.is_ascii_digit());
    Some(
        if after_digits.starts_with("SF") || after_digits.starts_with("JJ") {
            after_digits
        } else {
            id
        }
        .to_string(),
    )
}

/// `YYYYMMDDHHMMSS` in this computer's time zone.
pub fn local_stamp(t: OffsetDateTime) -> String {
    stamp(t.to_offset(local_offset_at(t)))
}

/// `YYYYMMDDHHMMSS` of `t` as it is.
pub fn stamp(t: OffsetDateTime) -> String {
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The local time zone's offset at `t` (daylight saving included), UTC when unknown.
/// `time` refuses to read it in a multi-threaded process on Unix (reading the environment
/// races with setting it); certray never sets the environment after start-up, so on Linux
/// it asks the C library, as every C program does.
#[cfg(target_os = "linux")]
pub fn local_offset_at(t: OffsetDateTime) -> UtcOffset {
    let secs = t.unix_timestamp() as libc::time_t;
    // SAFETY: `tm` is plain old data (integers and a pointer); all zeros is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r only reads `secs` and writes the `tm` we own; it reads the TZ
    // environment, which certray does not change while running.
    let ok = unsafe { !libc::localtime_r(&secs, &mut tm).is_null() };
    if !ok {
        return UtcOffset::UTC;
    }
    UtcOffset::from_whole_seconds(tm.tm_gmtoff as i32).unwrap_or(UtcOffset::UTC)
}

/// See the Linux version.
#[cfg(not(target_os = "linux"))]
pub fn local_offset_at(t: OffsetDateTime) -> UtcOffset {
    UtcOffset::local_offset_at(t).unwrap_or(UtcOffset::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(name: &str) -> Vec<u8> {
        std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../shared/fixtures/real-certs")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn stamp_format() {
        let t = time::macros::datetime!(2025-03-07 01:02:03 UTC);
        assert_eq!(stamp(t), "20250307010203");
        assert_eq!(
            stamp(t.to_offset(time::macros::offset!(+8))),
            "20250307090203"
        );
    }

    #[test]
    fn bjca_numbering_on_a_bjca_certificate() {
        let der = corpus("18-bjca-sm2-org-uscc-name.der");
        assert_eq!(cert_info(&der, 1).unwrap(), "V3");
        assert_eq!(cert_info(&der, 3).unwrap(), "SM2");
        assert_eq!(cert_info(&der, 35).unwrap(), "JJ91110108722619411A");
        assert_eq!(
            cert_entity(&der).unwrap().as_deref(),
            Some("JJ91110108722619411A")
        );
        assert_eq!(
            info_by_oid(&der, "1.2.156.112562.2.1.1.1")
                .unwrap()
                .as_deref(),
            Some("JJ91110108722619411A")
        );
        assert_eq!(info_by_oid(&der, "1.2.3.4").unwrap(), None);
        assert_eq!(cert_info(&der, 13).unwrap(), "CN");
        let dn = cert_info(&der, 33).unwrap();
        assert!(dn.contains("CN="), "{dn}");
        assert!(cert_info(&der, 99).is_err());
        let rsa = corpus("31-bjca-rsa-mssp-86oids.der");
        assert_eq!(cert_info(&rsa, 3).unwrap(), "RSA");
        assert_eq!(
            cert_entity(&rsa).unwrap().as_deref(),
            Some("SF110102198811113018")
        );
    }
}
