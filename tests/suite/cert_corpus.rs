//! The 40 real certificates of `../shared/fixtures/real-certs` (SDK demos and test data of
//! Chinese CAs, see its README.md and MANIFEST.tsv), read in place, never copied.
//!
//! - every file: certray's model against what OpenSSL reads in the same file (serial,
//!   validity, subject CN/O/OU text, key algorithm and size or curve, signature algorithm);
//! - the table below: holder, organisation and identifiers, written by reading each
//!   certificate with `openssl x509 -text` and `openssl asn1parse`;
//! - issuer verification against `openssl verify` on every issuer/subject pair the corpus
//!   holds, and against a tampered copy of each (a flipped signature byte), which must fail
//!   in both;
//! - the chains, and the corpus as PKCS#7 and PEM bundles.
//!
//! Needs the Debian package `openssl` (OpenSSL 3.0 on Debian 12).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use certray::cert::{
    self, Candidates, Certificate, ChainEnd, HolderKind, IdKind, Identifiers, IssuerStatus,
    KeyAlgorithm, UnverifiedId,
};
use time::OffsetDateTime;
use time::macros::format_description;

use crate::common::{line_after, openssl_serial, openssl_x509};

/// The corpus, beside the repository (`shared/` next to the clone, as CI lays it out).
fn corpus() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/real-certs");
    assert!(
        dir.join("MANIFEST.tsv").is_file(),
        "the real-certificate corpus is missing: expected {} (shared/ beside the repository)",
        dir.display()
    );
    dir
}

/// The 40 corpus files, sorted, with their bytes.
fn files() -> Vec<(String, Vec<u8>)> {
    let mut names: Vec<String> = std::fs::read_dir(corpus())
        .expect("read the corpus directory")
        .map(|e| {
            e.expect("a directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n.ends_with(".der"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 40, "the corpus has 40 certificates: {names:?}");
    names
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(corpus().join(&n)).expect("read a corpus file");
            (n, bytes)
        })
        .collect()
}

/// The file whose name starts with `NN-`.
fn file(number: &str) -> (String, Vec<u8>) {
    files()
        .into_iter()
        .find(|(n, _)| n.starts_with(&format!("{number}-")))
        .unwrap_or_else(|| panic!("no corpus file {number}-*"))
}

fn openssl_cmd() -> Command {
    match Command::new("openssl").arg("version").output() {
        Ok(out) if out.status.success() => Command::new("openssl"),
        _ => panic!("cannot run `openssl`: install the Debian package `openssl`"),
    }
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
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

/// Subject attributes as OpenSSL prints them (`sname`, UTF-8), repeated ones joined with
/// `", "` as the model joins them.
fn openssl_subject(path: &Path) -> BTreeMap<String, String> {
    let text = openssl_x509(path, &["-subject", "-nameopt", "utf8,sep_multiline,sname"]);
    let mut joined: BTreeMap<String, String> = BTreeMap::new();
    for ava in text.lines().skip(1).flat_map(|l| l.trim().split(" + ")) {
        let Some((k, v)) = ava.split_once('=') else {
            continue;
        };
        joined
            .entry(k.to_owned())
            .and_modify(|s| {
                s.push_str(", ");
                s.push_str(v);
            })
            .or_insert_with(|| v.to_owned());
    }
    joined
}

/// Explicit EC domain parameters as OpenSSL prints them, from `Prime:` through the
/// `Cofactor:` line, without white space and colons.
fn explicit_parameters(text: &str) -> Option<String> {
    let start = text.find("Prime:")?;
    let rest = text.get(start..)?;
    let cofactor = rest.find("Cofactor:")?;
    let end = cofactor
        + rest
            .get(cofactor..)?
            .find('\n')
            .unwrap_or(rest.len() - cofactor);
    Some(
        rest.get(..end)?
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect(),
    )
}

/// The named curve (certray's name for it) whose explicit parameters OpenSSL prints as
/// `params`, found by asking OpenSSL for each curve in explicit form.
fn curve_by_openssl_parameters(params: &str) -> Option<&'static str> {
    [
        ("SM2", "SM2"),
        ("prime256v1", "P-256"),
        ("secp384r1", "P-384"),
    ]
    .into_iter()
    .find(|(openssl_name, _)| {
        let out = run(openssl_cmd().args([
            "ecparam",
            "-name",
            openssl_name,
            "-param_enc",
            "explicit",
            "-noout",
            "-text",
        ]));
        assert!(out.status.success(), "openssl ecparam -name {openssl_name}");
        explicit_parameters(&String::from_utf8_lossy(&out.stdout)).as_deref() == Some(params)
    })
    .map(|(_, name)| name)
}

/// (algorithm, bits, curve) as OpenSSL reads the subject public key.
fn openssl_key(text: &str, file: &str) -> (KeyAlgorithm, Option<u32>, Option<String>) {
    let bits = line_after(text, "Public-Key: (")
        .and_then(|b| b.strip_suffix(" bit)"))
        .and_then(|b| b.parse::<u32>().ok());
    match line_after(text, "Public Key Algorithm:") {
        Some("rsaEncryption") => (KeyAlgorithm::Rsa, bits, None),
        Some("id-ecPublicKey") => match (
            line_after(text, "ASN1 OID:"),
            line_after(text, "NIST CURVE:"),
        ) {
            (Some("SM2"), _) => (KeyAlgorithm::Sm2, bits, Some("SM2".into())),
            (Some(_), Some(nist)) => (KeyAlgorithm::Ec, bits, Some(nist.into())),
            (None, None) => {
                let params = explicit_parameters(text)
                    .unwrap_or_else(|| panic!("{file}: neither a curve OID nor parameters"));
                match curve_by_openssl_parameters(&params) {
                    Some("SM2") => (KeyAlgorithm::Sm2, bits, Some("SM2".into())),
                    Some(name) => (KeyAlgorithm::Ec, bits, Some(name.into())),
                    None => panic!("{file}: explicit parameters of no known curve"),
                }
            }
            other => panic!("{file}: unexpected curve {other:?}"),
        },
        other => panic!("{file}: unexpected key algorithm {other:?}"),
    }
}

/// Every corpus certificate as OpenSSL reads it.
#[test]
fn every_certificate_reads_as_openssl_reads_it() {
    let mut explicit = 0;
    for (name, der) in files() {
        let path = corpus().join(&name);
        let c = cert::parse(&der).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(c.der, der, "{name}");

        let facts = openssl_x509(&path, &["-serial", "-dates"]);
        assert_eq!(c.serial, openssl_serial(&facts), "{name} serial");
        assert_eq!(
            c.validity.not_before,
            openssl_time(&facts, "notBefore="),
            "{name}"
        );
        assert_eq!(
            c.validity.not_after,
            openssl_time(&facts, "notAfter="),
            "{name}"
        );

        let subject = openssl_subject(&path);
        assert_eq!(c.subject.cn, subject.get("CN").cloned(), "{name} CN");
        assert_eq!(c.subject.o, subject.get("O").cloned(), "{name} O");
        assert_eq!(c.subject.ou, subject.get("OU").cloned(), "{name} OU");

        let text = openssl_x509(&path, &["-text"]);
        assert_eq!(
            Some(c.signature_algorithm.as_str()),
            line_after(&text, "Signature Algorithm:"),
            "{name} signature algorithm"
        );
        let (algorithm, bits, curve) = openssl_key(&text, &name);
        assert_eq!(c.key.algorithm, algorithm, "{name} key algorithm");
        assert_eq!(c.key.bits, bits, "{name} key bits");
        assert_eq!(c.key.curve, curve, "{name} curve");
        explicit += usize::from(explicit_parameters(&text).is_some());
    }
    assert_eq!(
        explicit, 1,
        "file 30 is the one key with explicit parameters"
    );
}

/// Expected identifiers of one certificate; `None`/empty where the model must have none.
struct Ids {
    uscc: Option<&'static str>,
    uscc_valid: Option<bool>,
    taxpayer_id: Option<&'static str>,
    org_code: Option<&'static str>,
    business_reg_no: Option<&'static str>,
    personal_id: Option<&'static str>,
    bjca_unique_id: Option<&'static str>,
    ca_user_id: Option<&'static str>,
    unverified: &'static [(&'static str, IdKind, &'static str)],
}

const NO_IDS: Ids = Ids {
    uscc: None,
    uscc_valid: None,
    taxpayer_id: None,
    org_code: None,
    business_reg_no: None,
    personal_id: None,
    bjca_unique_id: None,
    ca_user_id: None,
    unverified: &[],
};

impl Ids {
    fn identifiers(&self) -> Identifiers {
        let s = |v: Option<&str>| v.map(str::to_owned);
        Identifiers {
            uscc: s(self.uscc),
            uscc_valid: self.uscc_valid,
            taxpayer_id: s(self.taxpayer_id),
            org_code: s(self.org_code),
            business_reg_no: s(self.business_reg_no),
            personal_id: s(self.personal_id),
            bjca_unique_id: s(self.bjca_unique_id),
            ca_user_id: s(self.ca_user_id),
            unverified: self
                .unverified
                .iter()
                .map(|(value, kind, source)| UnverifiedId {
                    value: (*value).into(),
                    kind: *kind,
                    source: (*source).into(),
                })
                .collect(),
        }
    }
}

/// One row of the table: file number, holder, organisation, person/organisation, ids.
type Row = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Option<HolderKind>,
    Ids,
);

const PERSON: Option<HolderKind> = Some(HolderKind::Person);
const ORG: Option<HolderKind> = Some(HolderKind::Organization);

/// Who each certificate belongs to, as I read it with `openssl x509 -text -nameopt utf8`
/// and `openssl asn1parse` (shared/docs/CHINA-PKI.md, "Who a certificate belongs to"):
///
/// - the holder is the CN, as the CA's own helper shows it; a CFCA CN
///   `<kind>@<name or id>@<id or name>@<seq>` gives its name part (the part that is not a
///   number: 邮储线上收单商户, 中国银联股份有限公司; the first when neither is, file 34) and an
///   MCSCA CN `<user id>@<name>@<01|02>@<seq>` its name (唐好凯); the other part is the CA's
///   user number (`ca_user_id`). No CN (file 3): O.
/// - the organisation is O, except where O is the issuing CA or its RA: SHECA/sheca (22,
///   39), BJCA (31), MCSCA (24), CFCA's OCAs and agent (15, 16, 17, 27, 33, 34),
///   贵州省电子证书有限公司 (35, GZCA's own company name). WeChat Pay's 微信商户系统 (38) is
///   the RA; the merchant's company is its OU. A CA certificate's O is the CA itself (1–14,
///   30) and stays. Staff and TLS certificates (21, 25, 29, 32, 40) keep the company in O.
/// - identifiers only where a value passes its check; the rest are unverified, with the
///   place they were read: 19's 17-digit number (4.1.1, SF…, 2.16.840.1.113732.2) is no ID
///   number; 22's 001070320206816 has no province code 00; 23's organisation code
///   00000000-1 should end in 0; 25's serialNumber 500239199104071000 should end in 2.
const TABLE: [Row; 40] = [
    ("01", "ROOTCA", Some("NRCAC"), None, NO_IDS),
    ("02", "SHECA SM2", Some("UniTrust"), None, NO_IDS),
    ("03", "CFCA SM2 OCA1", Some("CFCA SM2 OCA1"), None, NO_IDS),
    (
        "04",
        "CFCA TEST SM2 OCA1",
        Some("China Financial Certification Authority"),
        None,
        NO_IDS,
    ),
    (
        "05",
        "GDCA TrustAUTH E1 CA",
        Some("GUANG DONG CERTIFICATE AUTHORITY CO.,LTD."),
        None,
        NO_IDS,
    ),
    (
        "06",
        "SZCA SM2 CA",
        Some("ShenZhen Certificate Authority"),
        None,
        NO_IDS,
    ),
    ("07", "MCSCA", Some("MCSCA"), None, NO_IDS),
    (
        "08",
        "CFCA EV ROOT",
        Some("China Financial Certification Authority"),
        None,
        NO_IDS,
    ),
    (
        "09",
        "GDCA TrustAUTH R5 ROOT",
        Some("GUANG DONG CERTIFICATE AUTHORITY CO.,LTD."),
        None,
        NO_IDS,
    ),
    ("10", "UCA Global G2 Root", Some("UniTrust"), None, NO_IDS),
    (
        "11",
        "vTrus ECC Root CA",
        Some("iTrusChina Co.,Ltd."),
        None,
        NO_IDS,
    ),
    (
        "12",
        "BJCA Global Root CA2",
        Some("BEIJING CERTIFICATE AUTHORITY"),
        None,
        NO_IDS,
    ),
    ("13", "ROOTCA", Some("OSCCA"), None, NO_IDS),
    (
        "14",
        "iTrusChina Class 2 Root CA - G3",
        Some("iTrusChina"),
        None,
        NO_IDS,
    ),
    (
        "15",
        "邮储线上收单商户",
        None,
        ORG,
        Ids {
            ca_user_id: Some("N51011300018878"),
            ..NO_IDS
        },
    ),
    ("16", "test_sm2", None, PERSON, NO_IDS),
    (
        "17",
        "NUCC",
        None,
        ORG,
        Ids {
            ca_user_id: Some("NG4000311000018"),
            ..NO_IDS
        },
    ),
    (
        "18",
        "北京数字认证股份有限公司",
        Some("北京数字认证股份有限公司"),
        None,
        Ids {
            uscc: Some("91110108722619411A"),
            uscc_valid: Some(true),
            // 1.2.156.10260.4.1.4 (organisation code) carries the USCC.
            org_code: Some("91110108722619411A"),
            bjca_unique_id: Some("JJ91110108722619411A"),
            ..NO_IDS
        },
    ),
    (
        "19",
        "测试多合一签名",
        None,
        None,
        Ids {
            bjca_unique_id: Some("SF34798237498273489"),
            unverified: &[(
                "34798237498273489",
                IdKind::PersonalId,
                "extension 1.2.156.10260.4.1.1",
            )],
            ..NO_IDS
        },
    ),
    ("20", "平安科技（深圳）有限公司", None, None, NO_IDS),
    (
        "21",
        "四川省",
        Some("广东宏大民爆集团有限公司"),
        None,
        NO_IDS,
    ),
    (
        "22",
        "王玉林SM2_test1",
        None,
        None,
        Ids {
            // [0] { PrintableString } in 1.2.156.10260.4.1.1
            unverified: &[(
                "001070320206816",
                IdKind::PersonalId,
                "extension 1.2.156.10260.4.1.1",
            )],
            ..NO_IDS
        },
    ),
    (
        "23",
        "贵州CA测试证书SM2",
        Some("贵州CA测试证书SM2"),
        None,
        Ids {
            unverified: &[(
                "00000000-1",
                IdKind::OrgCode,
                "extension 1.2.156.10260.4.1.4",
            )],
            ..NO_IDS
        },
    ),
    (
        "24",
        "唐好凯",
        None,
        PERSON,
        Ids {
            personal_id: Some("51020219670316621X"),
            ca_user_id: Some("1765246873783844864"),
            ..NO_IDS
        },
    ),
    (
        "25",
        "test1",
        Some("福建政务云"),
        PERSON,
        Ids {
            ca_user_id: Some("1483987444226420736"),
            unverified: &[(
                "500239199104071000",
                IdKind::PersonalId,
                "subject serialNumber",
            )],
            ..NO_IDS
        },
    ),
    ("26", "测试ABCD12345671728457920", None, None, NO_IDS),
    // CN `chenxu@104` is no CFCA/MCSCA wrapper (two parts); O is CFCA's SM2 agent.
    ("27", "chenxu@104", None, None, NO_IDS),
    (
        "28",
        "无关联回归机构测试Tue Dec 15 2020 15:25:07 GMT+0800 (中国标准时间)",
        Some("无关联回归机构测试Tue Dec 15 2020 15:25:07 GMT+0800 (中国标准时间)"),
        None,
        NO_IDS,
    ),
    (
        "29",
        "www.zotrus.com",
        Some("零信技术（深圳）有限公司"),
        None,
        Ids {
            // subject serialNumber of an EV certificate
            uscc: Some("91440300MA5GY4X4XH"),
            uscc_valid: Some(true),
            ..NO_IDS
        },
    ),
    (
        "30",
        "Chenglitong Ceshi",
        Some("电子印章平台"),
        None,
        NO_IDS,
    ),
    (
        "31",
        "MSSP测试用户(测试)",
        None,
        None,
        Ids {
            // raw, untagged `SF110102198811113018` in 1.2.86.11.7.1 and 2.16.840.1.113732.2
            personal_id: Some("110102198811113018"),
            bjca_unique_id: Some("SF110102198811113018"),
            ..NO_IDS
        },
    ),
    // The odd 1.2.86.11.7.1.x extensions hold random text, not identifiers.
    (
        "32",
        "王传煦",
        Some("连云港市菲优(测试)技术有限责任公司"),
        None,
        NO_IDS,
    ),
    (
        "33",
        "中国银联股份有限公司",
        None,
        ORG,
        Ids {
            ca_user_id: Some("8310000000083040"),
            ..NO_IDS
        },
    ),
    (
        "34",
        "Z2014-11-11",
        None,
        ORG,
        Ids {
            ca_user_id: Some("700000000000001:SIGN"),
            ..NO_IDS
        },
    ),
    (
        "35",
        "吴子清",
        None,
        None,
        Ids {
            // SET { [0] IMPLICIT } in 1.2.156.10260.4.1.1
            personal_id: Some("522101199204210410"),
            ..NO_IDS
        },
    ),
    ("36", "陈小钧", None, None, NO_IDS),
    ("37", "重庆富民银行股份有限公司", None, None, NO_IDS),
    (
        "38",
        "1600314068",
        Some("深圳天宫云科技有限公司"),
        None,
        NO_IDS,
    ),
    ("39", "测试证书1024", None, None, NO_IDS),
    (
        "40",
        "*.tm.cn",
        Some("厦门叁玖叁科技有限公司"),
        None,
        NO_IDS,
    ),
];

#[test]
fn holders_organisations_and_identifiers() {
    let files = files();
    for ((name, der), (number, holder, organization, kind, ids)) in files.iter().zip(TABLE) {
        assert!(
            name.starts_with(&format!("{number}-")),
            "table order: {name}"
        );
        let c: Certificate = cert::parse(der).unwrap_or_else(|e| panic!("{name}: {e}"));
        let h = c.holder();
        assert_eq!(h.name, holder, "{name} holder");
        assert_eq!(c.owner(), holder, "{name} owner");
        assert_eq!(
            h.organization.as_deref(),
            organization,
            "{name} organisation"
        );
        assert_eq!(h.kind, kind, "{name} holder kind");
        assert_eq!(c.ids, ids.identifiers(), "{name} identifiers");
    }
}

// ------------------------------------------------------------------------------------------
// Issuer verification
// ------------------------------------------------------------------------------------------

/// The distinguishing ID OpenSSL must be given for SM2 (it has no default).
const DISTID: &str = "distid:1234567812345678";

/// One DER element: (content start, end).
fn tlv(der: &[u8], at: usize) -> (usize, usize) {
    let first = der[at + 1];
    let (header, len) = if first < 0x80 {
        (2, usize::from(first))
    } else {
        let n = usize::from(first & 0x7F);
        let len = der[at + 2..at + 2 + n]
            .iter()
            .fold(0usize, |a, b| (a << 8) | usize::from(*b));
        (2 + n, len)
    };
    (at + header, at + header + len)
}

/// (TBSCertificate DER, signature bytes) of a certificate, sliced by hand.
fn tbs_and_signature(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (content, _) = tlv(der, 0);
    let (_, tbs_end) = tlv(der, content);
    let (_, alg_end) = tlv(der, tbs_end);
    let (sig_start, sig_end) = tlv(der, alg_end);
    (
        der[content..tbs_end].to_vec(),
        der[sig_start + 1..sig_end].to_vec(), // after the unused-bits byte
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).expect("write a temp file");
    path
}

fn pem(dir: &Path, name: &str, der: &[u8]) -> PathBuf {
    write(dir, name, cert::to_pem(der).as_bytes())
}

/// Whether OpenSSL verifies `cert`'s signature with `issuer`'s key, and what it said.
///
/// `openssl verify` with the issuer as the only trust anchor (`-partial_chain`), validity
/// dates ignored (`-no_check_time`: most of the corpus has expired), unknown critical
/// extensions ignored (`-ignore_critical`: file 22 marks its key identifiers critical), and
/// the SM2 default ID (`-vfyopt distid:1234567812345678`, harmless for RSA and ECDSA). A
/// self-signed certificate needs `-check_ss_sig`, else OpenSSL never checks its signature.
/// OpenSSL 3.0 attaches `-vfyopt` to the certificate on the command line only, not to the
/// trust store's copy of it, so an SM2 self-signature is checked with `openssl dgst -sm3
/// -verify -sigopt distid:…` over the TBSCertificate instead.
fn openssl_verifies(dir: &Path, cert: &[u8], issuer: &[u8], sm2: bool) -> (bool, String) {
    let cert_pem = pem(dir, "cert.pem", cert);
    if cert == issuer && sm2 {
        let (tbs, signature) = tbs_and_signature(cert);
        let tbs = write(dir, "tbs.der", &tbs);
        let signature = write(dir, "sig.bin", &signature);
        let pubkey = openssl_x509(&write(dir, "cert.der", cert), &["-pubkey"]);
        let pubkey = write(dir, "pub.pem", pubkey.as_bytes());
        let out = run(openssl_cmd()
            .args(["dgst", "-sm3", "-verify"])
            .arg(&pubkey)
            .args(["-sigopt", DISTID, "-signature"])
            .arg(&signature)
            .arg(&tbs));
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        return (out.status.success() && said.contains("Verified OK"), said);
    }
    let issuer_pem = pem(dir, "issuer.pem", issuer);
    let mut cmd = openssl_cmd();
    cmd.args([
        "verify",
        "-partial_chain",
        "-no_check_time",
        "-ignore_critical",
        "-vfyopt",
        DISTID,
    ]);
    if cert == issuer {
        cmd.arg("-check_ss_sig");
    }
    let out = run(cmd.arg("-CAfile").arg(&issuer_pem).arg(&cert_pem));
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && said.contains(": OK"), said)
}

/// Candidate issuers by name: OpenSSL's RFC 2253 issuer of `cert` equals the subject.
fn rfc2253(dir: &Path, der: &[u8], which: &str) -> String {
    let path = write(dir, "name.der", der);
    openssl_x509(&path, &[which, "-nameopt", "RFC2253"])
        .trim()
        .split_once('=')
        .map(|(_, dn)| dn.to_owned())
        .unwrap_or_default()
}

/// Who issued whom in the corpus (file numbers), as `openssl verify` confirms below. The
/// MCSCA certificates 24–26 name 07 as issuer but another key signed them (their authority
/// key identifier is not 07's): their issuer is not in the corpus.
const ISSUED_BY: [(&str, &str); 15] = [
    ("01", "01"),
    ("02", "01"),
    ("05", "01"),
    ("06", "01"),
    ("07", "01"),
    ("08", "08"),
    ("09", "09"),
    ("10", "10"),
    ("11", "11"),
    ("12", "12"),
    ("13", "13"),
    ("14", "14"),
    ("15", "04"),
    ("22", "02"),
    ("30", "30"),
];

#[test]
fn issuers_verify_as_openssl_verifies_them() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let files = files();
    let ders: Vec<&[u8]> = files.iter().map(|(_, d)| d.as_slice()).collect();
    let candidates = Candidates::new(&ders);
    let number = |i: usize| files[i].0[..2].to_owned();
    let names: Vec<(String, String)> = ders
        .iter()
        .map(|d| {
            (
                rfc2253(dir.path(), d, "-issuer"),
                rfc2253(dir.path(), d, "-subject"),
            )
        })
        .collect();
    let mut verified = Vec::new();
    for (i, (name, der)) in files.iter().enumerate() {
        let c = cert::parse(der).expect("parses");
        let sm2 = c.signature_algorithm == "SM2-with-SM3";
        let status = candidates.verify_issuer(der).expect("a certificate");
        // Every candidate whose subject is this certificate's issuer, by OpenSSL's reading.
        for (j, other) in ders.iter().enumerate() {
            if names[j].1 != names[i].0 {
                continue;
            }
            let (ok, said) = openssl_verifies(dir.path(), der, other, sm2);
            let certray_says = match &status {
                IssuerStatus::Verified { issuer } => issuer.index.unwrap_or(i) == j,
                _ => false,
            };
            assert_eq!(
                certray_says, ok,
                "{name} issued by {}: certray {status:?}, OpenSSL: {said}",
                files[j].0
            );
        }
        match &status {
            IssuerStatus::Verified { issuer } => {
                let j = issuer.index.unwrap_or(i);
                assert_eq!(issuer.id, cert::parse(ders[j]).unwrap().id(), "{name}");
                assert_eq!(
                    issuer.index.is_none(),
                    i == j,
                    "{name}: self-signed is index None"
                );
                verified.push((number(i), number(j)));
            }
            IssuerStatus::IssuerNotFound => {}
            other => panic!("{name}: {other:?}"),
        }
    }
    let expected: Vec<(String, String)> = ISSUED_BY
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(verified, expected);
}

/// Each certificate whose issuer verifies, with one byte of its signature flipped: certray
/// names the same issuer with a bad signature, and OpenSSL refuses it too.
#[test]
fn tampered_signatures_fail_in_both() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let files = files();
    let ders: Vec<&[u8]> = files.iter().map(|(_, d)| d.as_slice()).collect();
    let mut checked = 0;
    for (subject, by) in ISSUED_BY {
        let (name, der) = file(subject);
        let (_, issuer) = file(by);
        let sm2 = cert::parse(&der).unwrap().signature_algorithm == "SM2-with-SM3";
        let mut tampered = der.clone();
        // The signature BIT STRING ends the certificate: flip a bit of its last byte.
        *tampered.last_mut().unwrap() ^= 0x01;
        let issuer: &[u8] = if subject == by { &tampered } else { &issuer };
        let (ok, said) = openssl_verifies(dir.path(), &tampered, issuer, sm2);
        assert!(!ok, "{name} tampered: OpenSSL still verifies it: {said}");
        let status = cert::verify_issuer(&tampered, &ders).expect("still a certificate");
        let IssuerStatus::SignatureInvalid { issuer: found } = &status else {
            panic!("{name} tampered: {status:?}");
        };
        if subject == by {
            assert_eq!(found.index, None, "{name}: its own key");
        } else {
            assert_eq!(found.id, cert::parse(issuer).unwrap().id(), "{name}");
        }
        assert_eq!(status.code(), "signature_invalid");
        checked += 1;
    }
    assert_eq!(checked, 15);
}

#[test]
fn chains_through_the_corpus() {
    let files = files();
    let ders: Vec<&[u8]> = files.iter().map(|(_, d)| d.as_slice()).collect();
    let candidates = Candidates::new(&ders);
    let index = |n: &str| {
        files
            .iter()
            .position(|(f, _)| f.starts_with(&format!("{n}-")))
    };
    let chain = |n: &str| {
        let (_, der) = file(n);
        candidates
            .chain(&der, cert::MAX_CHAIN_LEN)
            .expect("a certificate")
    };
    // SHECA personal → SHECA SM2 → NRCAC root.
    let c = chain("22");
    assert_eq!(
        c.links.iter().map(|l| l.index).collect::<Vec<_>>(),
        [None, index("02"), index("01")]
    );
    assert_eq!(c.end, ChainEnd::Root);
    assert!(c.complete());
    assert!(c.links.iter().all(|l| l.status.is_verified()));
    assert_eq!(c.links[1].subject, "CN=SHECA SM2,O=UniTrust,C=CN");
    // CFCA's test OCA1 is here, its root is not.
    let c = chain("15");
    assert_eq!(
        c.links.iter().map(|l| l.index).collect::<Vec<_>>(),
        [None, index("04")]
    );
    assert_eq!(c.end, ChainEnd::IssuerNotFound);
    assert!(!c.complete());
    // MCSCA's 24 names 07 but another key signed it.
    let c = chain("24");
    assert_eq!(c.links.len(), 1);
    assert_eq!(c.end, ChainEnd::IssuerNotFound);
    assert_eq!(c.links[0].status, IssuerStatus::IssuerNotFound);
    // A root alone, and the bound on the length.
    assert_eq!(chain("30").end, ChainEnd::Root);
    let (_, der) = file("22");
    let short = candidates.chain(&der, 2).expect("a certificate");
    assert_eq!((short.links.len(), short.end), (2, ChainEnd::TooLong));
}

/// The corpus in one PKCS#7 bundle and one PEM file, as OpenSSL writes them.
#[test]
fn the_corpus_as_bundles() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let files = files();
    let all_pem: String = files.iter().map(|(_, d)| cert::to_pem(d)).collect();
    let pem_path = write(dir.path(), "all.pem", all_pem.as_bytes());
    let want: Vec<&[u8]> = files.iter().map(|(_, d)| d.as_slice()).collect();
    let got = cert::read_certificates(all_pem.as_bytes()).expect("the PEM file");
    assert_eq!(
        got.iter().map(|c| c.der.as_slice()).collect::<Vec<_>>(),
        want
    );
    for form in ["DER", "PEM"] {
        let out_path = dir.path().join(format!("all.p7b.{form}"));
        let out = run(openssl_cmd()
            .args(["crl2pkcs7", "-nocrl", "-certfile"])
            .arg(&pem_path)
            .args(["-outform", form, "-out"])
            .arg(&out_path));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let bytes = std::fs::read(&out_path).expect("the bundle");
        let got = cert::read_certificates(&bytes).unwrap_or_else(|e| panic!("{form}: {e}"));
        let mut got: Vec<&[u8]> = got.iter().map(|c| c.der.as_slice()).collect();
        let mut sorted = want.clone();
        got.sort();
        sorted.sort();
        assert_eq!(got, sorted, "{form}: every certificate, byte for byte");
    }
    let err = cert::read_certificates(
        b"-----BEGIN RSA PRIVATE KEY-----\nMAA=\n-----END RSA PRIVATE KEY-----\n",
    )
    .expect_err("a key is not a certificate");
    assert!(err.to_string().contains("RSA PRIVATE KEY"), "{err}");
}

/// No single changed byte of a certificate whose issuer verifies still verifies: not in
/// the signed part, not in the signature, not in the unsigned outer algorithm identifier
/// or the BIT STRING's unused-bits count (OpenSSL refuses those too). The SM2 root, each
/// byte flipped once (a debug build takes ~15 ms per SM2 verification); none may panic.
#[test]
fn no_changed_byte_still_verifies() {
    for number in ["01"] {
        let (name, der) = file(number);
        assert!(
            cert::verify_issuer(&der, &[]).unwrap().is_verified(),
            "{name}"
        );
        for i in 0..der.len() {
            let mut changed = der.clone();
            changed[i] ^= 0x01;
            let status = cert::verify_issuer(&changed, &[&der]);
            assert!(
                !matches!(status, Ok(IssuerStatus::Verified { .. })),
                "{name}: byte {i} changed, still {status:?}"
            );
        }
    }
}
