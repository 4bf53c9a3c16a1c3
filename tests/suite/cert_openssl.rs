//! `certray::cert::parse` checked against OpenSSL, on the certificates
//! `tests/fixtures/make-certs.sh` makes with fresh keys (once a day, see `common::fixtures`;
//! needs the Debian package `openssl`).
//!
//! Subject, issuer, serial, dates, fingerprint, key, signature algorithm, key usage and
//! extended key usage are compared with what `openssl x509` prints for the same file; what
//! OpenSSL does not interpret (Chinese identifiers, status) is compared with the table.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use certray::cert::{self, Certificate, KeyAlgorithm, Status};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::common;
use common::fixtures;
use common::{line_after, openssl_serial, openssl_x509};

/// What a fixture must parse to, beyond what OpenSSL prints.
struct Expect {
    file: &'static str,
    algorithm: KeyAlgorithm,
    curve: Option<&'static str>,
    /// Status now, with a 90-day warning window.
    status: Status,
    uscc: Option<&'static str>,
    uscc_valid: Option<bool>,
    taxpayer_id: Option<&'static str>,
    org_code: Option<&'static str>,
    business_reg_no: Option<&'static str>,
    personal_id: Option<&'static str>,
    bjca_unique_id: Option<&'static str>,
    /// Values of `ids.unverified`, in order.
    unverified: &'static [&'static str],
}

const NONE: Expect = Expect {
    file: "",
    algorithm: KeyAlgorithm::Other,
    curve: None,
    status: Status::Valid,
    uscc: None,
    uscc_valid: None,
    taxpayer_id: None,
    org_code: None,
    business_reg_no: None,
    personal_id: None,
    bjca_unique_id: None,
    unverified: &[],
};

const FIXTURES: [Expect; 7] = [
    Expect {
        file: "ca.der",
        algorithm: KeyAlgorithm::Rsa,
        ..NONE
    },
    Expect {
        file: "rsa-utf8.der",
        algorithm: KeyAlgorithm::Rsa,
        uscc: Some("91110108MA01ABCDEN"),
        uscc_valid: Some(true),
        org_code: Some("91110108MA01ABCDEN"),
        // 110108722613123 = area 110108 + organisation code 72261312-3, whose check
        // character would be 4. It used to be named the taxpayer ID unchecked; now it is an
        // unverified identifier.
        unverified: &["110108722613123"],
        bjca_unique_id: Some("1@5009JJ0110000123"),
        ..NONE
    },
    Expect {
        file: "rsa-bmp.der",
        algorithm: KeyAlgorithm::Rsa,
        uscc: Some("91350100M000100Y43"),
        uscc_valid: Some(true),
        org_code: Some("M000100Y4"),
        business_reg_no: Some("110000450012345"),
        ..NONE
    },
    Expect {
        file: "sm2.der",
        algorithm: KeyAlgorithm::Sm2,
        curve: Some("SM2"),
        uscc: Some("91110000100017643K"),
        uscc_valid: Some(true),
        // The GB 11643 check character of 11010119900307001 is 1, not X: it used to be
        // named the personal ID.
        unverified: &["11010119900307001X"],
        ..NONE
    },
    Expect {
        file: "ec-expired.der",
        algorithm: KeyAlgorithm::Ec,
        curve: Some("P-256"),
        status: Status::Expired,
        // A USCC with a wrong check character used to be the USCC (uscc_valid false): a
        // failed check is never named; uscc_valid false still says one was claimed. The
        // taxpayer ID's organisation code 00000000-1 should end in 0.
        uscc: None,
        uscc_valid: Some(false),
        unverified: &["91350100M000100Y44", "110105000000001"],
        personal_id: Some("110101198001010010"),
        ..NONE
    },
    Expect {
        file: "serial-uscc.der",
        algorithm: KeyAlgorithm::Ec,
        curve: Some("P-256"),
        uscc: Some("91310115MA1K3Q8H2W"),
        uscc_valid: Some(true),
        business_reg_no: Some("110000450099999"),
        ..NONE
    },
    Expect {
        file: "ec-expiring.der",
        algorithm: KeyAlgorithm::Ec,
        curve: Some("P-384"),
        status: Status::Expiring,
        uscc: Some("91440300MA5FUTUR07"),
        uscc_valid: Some(true),
        ..NONE
    },
];

/// The line following the one that starts with `header` (after indentation).
fn line_below<'a>(text: &'a str, header: &str) -> Option<&'a str> {
    let mut lines = text.lines();
    lines
        .by_ref()
        .find(|l| l.trim_start().starts_with(header))?;
    lines.next().map(str::trim)
}

/// A name as OpenSSL prints it with `sep_multiline`: `(short name, value)` in DER order.
fn openssl_name(file: &Path, which: &str) -> Vec<(String, String)> {
    let text = openssl_x509(file, &[which, "-nameopt", "utf8,sep_multiline,sname"]);
    text.lines()
        .skip(1)
        .flat_map(|line| {
            line.trim()
                .split(" + ")
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|ava| !ava.is_empty())
        .map(|ava| {
            let (k, v) = ava.split_once('=').expect("SN=value");
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

fn check_name(file: &Path, which: &str, name: &cert::Name) {
    let avas = openssl_name(file, which);
    let mut joined: BTreeMap<&str, String> = BTreeMap::new();
    for (k, v) in &avas {
        joined
            .entry(k.as_str())
            .and_modify(|s| {
                s.push_str(", ");
                s.push_str(v);
            })
            .or_insert_with(|| v.clone());
    }
    let get = |k: &str| joined.get(k).cloned();
    let what = format!("{} {which}", file.display());
    assert_eq!(name.cn, get("CN"), "{what} CN");
    assert_eq!(name.o, get("O"), "{what} O");
    assert_eq!(name.ou, get("OU"), "{what} OU");
    assert_eq!(name.c, get("C"), "{what} C");
    assert_eq!(name.st, get("ST"), "{what} ST");
    assert_eq!(name.l, get("L"), "{what} L");
    assert_eq!(
        name.serial_number,
        get("serialNumber"),
        "{what} serialNumber"
    );
    assert_eq!(
        name.organization_identifier,
        get("organizationIdentifier"),
        "{what} organizationIdentifier"
    );
    // OpenSSL's RFC 2253 form, UTF-8 left unescaped.
    let rfc2253 = openssl_x509(file, &[which, "-nameopt", "RFC2253,-esc_msb"]);
    let rfc2253 = rfc2253
        .trim()
        .split_once('=')
        .map(|(_, dn)| dn)
        .unwrap_or_default();
    assert_eq!(
        rdns(&name.dn),
        rdns(rfc2253),
        "{what} dn {:?} vs OpenSSL {rfc2253:?}",
        name.dn
    );
}

/// An RFC 4514 string split into RDNs, each a sorted list of its AVAs: RFC 4514 leaves
/// the order inside a multi-valued RDN open (OpenSSL reverses it, certray keeps DER order).
fn rdns(dn: &str) -> Vec<Vec<String>> {
    let mut out = vec![vec![String::new()]];
    let mut escaped = false;
    for c in dn.chars() {
        let rdn = out.last_mut().expect("one RDN");
        let ava = rdn.last_mut().expect("one AVA");
        match c {
            _ if escaped => {
                ava.push(c);
                escaped = false;
            }
            '\\' => {
                ava.push(c);
                escaped = true;
            }
            '+' => rdn.push(String::new()),
            ',' => out.push(vec![String::new()]),
            _ => ava.push(c),
        }
    }
    for rdn in &mut out {
        rdn.sort();
    }
    out
}

fn openssl_time(text: &str, prefix: &str) -> OffsetDateTime {
    let value = line_after(text, prefix).unwrap_or_else(|| panic!("{prefix} in {text}"));
    let format = format_description!(
        "[month repr:short] [day padding:space] [hour]:[minute]:[second] [year] GMT"
    );
    time::PrimitiveDateTime::parse(value, &format)
        .unwrap_or_else(|e| panic!("{value:?}: {e}"))
        .assume_utc()
}

const KEY_USAGE: [(&str, &str); 9] = [
    ("Digital Signature", "digitalSignature"),
    ("Non Repudiation", "nonRepudiation"),
    ("Key Encipherment", "keyEncipherment"),
    ("Data Encipherment", "dataEncipherment"),
    ("Key Agreement", "keyAgreement"),
    ("Certificate Sign", "keyCertSign"),
    ("CRL Sign", "cRLSign"),
    ("Encipher Only", "encipherOnly"),
    ("Decipher Only", "decipherOnly"),
];

const EXTENDED_KEY_USAGE: [(&str, &str); 7] = [
    ("TLS Web Server Authentication", "serverAuth"),
    ("TLS Web Client Authentication", "clientAuth"),
    ("Code Signing", "codeSigning"),
    ("E-mail Protection", "emailProtection"),
    ("Time Stamping", "timeStamping"),
    ("OCSP Signing", "OCSPSigning"),
    ("Any Extended Key Usage", "anyExtendedKeyUsage"),
];

/// OpenSSL's comma-separated list under `header`, each entry renamed through `names`.
fn openssl_list(text: &str, header: &str, names: &[(&str, &str)]) -> Vec<String> {
    let Some(line) = line_below(text, header) else {
        return Vec::new();
    };
    line.split(", ")
        .map(|entry| {
            names
                .iter()
                .find(|(long, _)| *long == entry)
                .map_or(entry, |(_, short)| short)
                .to_owned()
        })
        .collect()
}

/// Identifier extension values OpenSSL itself decodes as text (`-certopt ext_parse`).
fn openssl_identifier_strings(text: &str) -> Vec<(String, String)> {
    const OIDS: [&str; 10] = [
        "1.2.156.10260.4.1.1",
        "1.2.156.10260.4.1.3",
        "1.2.156.10260.4.1.4",
        "1.2.156.10260.4.1.5",
        "1.2.156.10260.4.4",
        "1.2.86.11.7.1",
        "1.2.86.11.7.3",
        "1.2.86.11.7.4",
        "1.2.86.11.7.5",
        "1.2.156.112562.2.1.1.1",
    ];
    let mut found = Vec::new();
    for oid in OIDS {
        let Some(parsed) = line_below(text, &format!("{oid}:")) else {
            continue;
        };
        for kind in ["UTF8STRING", "PRINTABLESTRING", "IA5STRING"] {
            if let Some((_, value)) = parsed.split_once(kind)
                && let Some(value) = value.trim_start().strip_prefix(':')
            {
                found.push((oid.to_owned(), value.trim().to_owned()));
            }
        }
    }
    found
}

/// Checks one fixture; returns how many identifiers OpenSSL decoded for the cross-check.
fn check(expect: &Expect) -> usize {
    let path = fixtures().join(expect.file);
    let der = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let c: Certificate = cert::parse(&der).unwrap_or_else(|e| panic!("{}: {e}", expect.file));
    let file = expect.file;
    assert_eq!(c.der, der, "{file}");

    check_name(&path, "-subject", &c.subject);
    check_name(&path, "-issuer", &c.issuer);

    let facts = openssl_x509(&path, &["-serial", "-dates", "-fingerprint", "-sha256"]);
    assert_eq!(c.serial, openssl_serial(&facts), "{file} serial");
    let fingerprint = facts
        .lines()
        .find_map(|l| l.split_once("Fingerprint="))
        .map(|(_, f)| f.replace(':', "").to_ascii_lowercase())
        .expect("fingerprint");
    assert_eq!(c.sha256, fingerprint, "{file} sha256");
    assert_eq!(
        c.validity.not_before,
        openssl_time(&facts, "notBefore="),
        "{file}"
    );
    assert_eq!(
        c.validity.not_after,
        openssl_time(&facts, "notAfter="),
        "{file}"
    );

    let text = openssl_x509(&path, &["-text", "-certopt", "ext_parse"]);
    assert_eq!(
        Some(c.signature_algorithm.as_str()),
        line_after(&text, "Signature Algorithm:"),
        "{file} signature algorithm"
    );
    let bits = line_after(&text, "Public-Key: (")
        .and_then(|b| b.strip_suffix(" bit)"))
        .and_then(|b| b.parse::<u32>().ok());
    assert_eq!(c.key.bits, bits, "{file} key bits");
    let openssl_algorithm = line_after(&text, "Public Key Algorithm:");
    let asn1_oid = line_after(&text, "ASN1 OID:");
    let (algorithm, curve) = match (openssl_algorithm, asn1_oid) {
        (Some("rsaEncryption"), _) => (KeyAlgorithm::Rsa, None),
        (Some("id-ecPublicKey"), Some("SM2")) => (KeyAlgorithm::Sm2, Some("SM2")),
        (Some("id-ecPublicKey"), oid) => {
            (KeyAlgorithm::Ec, line_after(&text, "NIST CURVE:").or(oid))
        }
        (other, _) => panic!("{file}: unexpected key algorithm {other:?}"),
    };
    assert_eq!(c.key.algorithm, algorithm, "{file} key algorithm");
    assert_eq!(c.key.curve.as_deref(), curve, "{file} curve");
    assert_eq!(
        c.key.algorithm, expect.algorithm,
        "{file} key algorithm (table)"
    );
    assert_eq!(c.key.curve.as_deref(), expect.curve, "{file} curve (table)");
    assert_eq!(c.key.oid, None, "{file}");

    assert_eq!(
        c.key_usage,
        openssl_list(&text, "X509v3 Key Usage:", &KEY_USAGE),
        "{file} key usage"
    );
    assert_eq!(
        c.extended_key_usage,
        openssl_list(&text, "X509v3 Extended Key Usage:", &EXTENDED_KEY_USAGE),
        "{file} extended key usage"
    );

    let ids = &c.ids;
    assert_eq!(ids.uscc.as_deref(), expect.uscc, "{file} uscc");
    assert_eq!(ids.uscc_valid, expect.uscc_valid, "{file} uscc_valid");
    assert_eq!(
        ids.taxpayer_id.as_deref(),
        expect.taxpayer_id,
        "{file} taxpayer_id"
    );
    assert_eq!(ids.org_code.as_deref(), expect.org_code, "{file} org_code");
    assert_eq!(
        ids.business_reg_no.as_deref(),
        expect.business_reg_no,
        "{file} business_reg_no"
    );
    assert_eq!(
        ids.personal_id.as_deref(),
        expect.personal_id,
        "{file} personal_id"
    );
    assert_eq!(
        ids.bjca_unique_id.as_deref(),
        expect.bjca_unique_id,
        "{file} bjca_unique_id"
    );
    assert_eq!(
        ids.unverified
            .iter()
            .map(|u| u.value.as_str())
            .collect::<Vec<_>>(),
        expect.unverified,
        "{file} unverified"
    );
    // Every identifier OpenSSL can decode as text is one the model shows (named, or
    // unverified).
    let shown: Vec<&str> = [
        &ids.uscc,
        &ids.taxpayer_id,
        &ids.org_code,
        &ids.business_reg_no,
        &ids.personal_id,
        &ids.bjca_unique_id,
    ]
    .into_iter()
    .flatten()
    .map(String::as_str)
    .chain(ids.unverified.iter().map(|u| u.value.as_str()))
    .collect();
    let decoded = openssl_identifier_strings(&text);
    for (oid, value) in &decoded {
        assert!(
            shown.contains(&value.as_str()),
            "{file}: OpenSSL reads {oid} = {value:?}, the model has {ids:?}"
        );
    }

    let now = OffsetDateTime::now_utc();
    assert_eq!(c.status(now, 90), expect.status, "{file} status");
    decoded.len()
}

#[test]
fn fixtures_match_openssl() {
    let decoded: usize = FIXTURES.iter().map(check).sum();
    // rsa-utf8: 3, rsa-bmp: 1 (the BMPString and OCTET STRING ones OpenSSL shows as dumps),
    // sm2: 2, ec-expired: 3. Guards the cross-check against reading nothing.
    assert_eq!(decoded, 9, "identifier values OpenSSL decoded");
}

#[test]
fn expiring_fixture_has_about_thirty_days_left() {
    let der = std::fs::read(fixtures().join("ec-expiring.der")).expect("fixture");
    let c = cert::parse(&der).expect("parses");
    let days = c.days_left(OffsetDateTime::now_utc());
    assert!((29..=30).contains(&days), "{days}");
    assert_eq!(c.status(OffsetDateTime::now_utc(), 30), Status::Expiring);
    assert_eq!(c.status(OffsetDateTime::now_utc(), 7), Status::Valid);
}

#[test]
fn garbage_and_trailing_bytes_are_errors() {
    let garbage = std::fs::read(fixtures().join("garbage.der")).expect("fixture");
    let err = cert::parse(&garbage).expect_err("garbage is not a certificate");
    assert_eq!(err.code(), certray::error::Code::CertInvalid);

    let mut der = std::fs::read(fixtures().join("rsa-utf8.der")).expect("fixture");
    der.push(0);
    assert!(cert::parse(&der).is_err(), "a trailing byte");

    let pem = std::fs::read(fixtures().join("rsa-utf8.pem")).expect("fixture");
    assert!(cert::parse(&pem).is_err(), "PEM is not DER");
    assert!(cert::parse(&[]).is_err());
}

/// Every fixture cut at every length and with every byte changed: never a panic.
#[test]
fn damaged_fixtures_never_panic() {
    let files: Vec<PathBuf> = FIXTURES.iter().map(|e| fixtures().join(e.file)).collect();
    for path in files {
        let der = std::fs::read(&path).expect("fixture");
        let name = path.display();
        for len in 0..der.len() {
            let cut = der.get(..len).unwrap_or_default();
            let result = catch_unwind(|| cert::parse(cut));
            assert!(
                matches!(result, Ok(Err(_))),
                "{name} cut at {len}: {result:?}"
            );
        }
        for i in 0..der.len() {
            for mask in [0xFF, 0x01, 0x80] {
                let mut damaged = der.clone();
                if let Some(b) = damaged.get_mut(i) {
                    *b ^= mask;
                }
                let result = catch_unwind(AssertUnwindSafe(|| cert::parse(&damaged)));
                assert!(result.is_ok(), "{name}: byte {i} ^ {mask:#04x} panicked");
            }
        }
    }
}
