//! The built-in demo token: a SoftHSM token under the user's data dir holding an RSA and
//! an EC key whose certificates look like 一证通 enterprise certificates (Chinese
//! organisation name, a valid USCC in extension 1.2.156.10260.4.1.4, one certificate
//! expiring within 90 days), and the company's seal image as a public data object. A
//! newcomer sees the whole product without a USB key.
//!
//! Provisioning runs once, before any worker loads SoftHSM, on a context of its own that it
//! finalizes when done; the keys are generated inside the token and never leave it.

use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use der::{Decode, Encode};
use rcgen::{
    CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber,
    SignatureAlgorithm,
};
use secrecy::SecretString;
use time::{Duration, OffsetDateTime};

use super::Error;

/// SoftHSM's module on Debian and Ubuntu.
pub const SOFTHSM_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
pub const LABEL: &str = "certray-demo";
pub const PIN: &str = "123456";
pub const SO_PIN: &str = "12345678";
/// The demo organisation's unified social credit code (check digit valid).
pub const USCC: &str = "91110108MA01CRTY01";
pub const ORGANISATION: &str = "北京云杉测试科技有限公司";
/// The organisation's round red seal (drawn by `scripts/make-seal-demo`), stored on the token
/// as a public CKO_DATA object with CKA_LABEL [`SEAL_LABEL`] and CKA_APPLICATION
/// [`SEAL_APPLICATION`]: the form the scan looks for (see `token::pkcs11`'s `seal`).
pub const SEAL_PNG: &[u8] = include_bytes!("../../assets/seal-demo.png");
pub const SEAL_LABEL: &str = "seal";
pub const SEAL_APPLICATION: &str = "certray-seal";

/// Where the demo token lives and how to reach it.
#[derive(Debug, Clone)]
pub struct DemoToken {
    pub dir: PathBuf,
    /// The SoftHSM configuration; `SOFTHSM2_CONF` must point here before SoftHSM loads.
    pub conf: PathBuf,
    pub module: PathBuf,
    pub label: &'static str,
    pub pin: &'static str,
    pub so_pin: &'static str,
}

fn fail(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("demo token: {what}: {e}"))
}

/// Create the demo token in `dir` if it is not there yet (or `reset` asks for a new one),
/// and point this process's `SOFTHSM2_CONF` at it.
///
/// Call this before any thread loads SoftHSM: it sets an environment variable.
pub fn ensure(dir: &Path, reset: bool) -> Result<DemoToken, Error> {
    let module = PathBuf::from(SOFTHSM_MODULE);
    if !module.exists() {
        return Err(Error::ModuleLoad {
            path: module,
            reason: "SoftHSM2 is not installed (Debian: apt-get install softhsm2)".into(),
        });
    }
    let tokens = dir.join("tokens");
    if reset && tokens.exists() {
        std::fs::remove_dir_all(&tokens).map_err(|e| fail("remove old token", e))?;
    }
    std::fs::create_dir_all(&tokens).map_err(|e| fail("create directory", e))?;
    let conf = dir.join("softhsm2.conf");
    let text = format!(
        "# certray demo token\ndirectories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
        tokens.display()
    );
    std::fs::write(&conf, text).map_err(|e| fail("write softhsm2.conf", e))?;
    // SAFETY: called by the CLI on the main thread before any other thread exists; SoftHSM
    // reads the variable in C_Initialize, below and in the workers started afterwards.
    unsafe { std::env::set_var("SOFTHSM2_CONF", &conf) };

    let ctx = Pkcs11::new(&module).map_err(|e| Error::ModuleLoad {
        path: module.clone(),
        reason: e.to_string(),
    })?;
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(|e| fail("C_Initialize", e))?;
    let result = provision(&ctx);
    let _ = ctx.finalize();
    result?;
    Ok(DemoToken {
        dir: dir.to_path_buf(),
        conf,
        module,
        label: LABEL,
        pin: PIN,
        so_pin: SO_PIN,
    })
}

fn provision(ctx: &Pkcs11) -> Result<(), Error> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| fail("list slots", e))?;
    for slot in &slots {
        let info = ctx
            .get_token_info(*slot)
            .map_err(|e| fail("token info", e))?;
        if info.token_initialized() && info.label().trim() == LABEL {
            // Demo tokens made before the seal existed get it now. Public objects need no
            // login, so this works even after the user changed the demo PIN.
            if let Err(e) = add_seal_if_missing(ctx, *slot) {
                tracing::warn!(error = %e, "cannot add the seal image to the demo token");
            }
            return Ok(());
        }
    }
    let free = slots
        .iter()
        .copied()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|i| !i.token_initialized())
                .unwrap_or(false)
        })
        .ok_or_else(|| fail("init", "SoftHSM offers no free slot"))?;
    let so_pin = SecretString::from(SO_PIN);
    let pin = SecretString::from(PIN);
    ctx.init_token(free, &so_pin, LABEL)
        .map_err(|e| fail("C_InitToken", e))?;
    // Slot ids are reassigned at init: find the token again by label.
    let slot = ctx
        .get_slots_with_token()
        .map_err(|e| fail("list slots", e))?
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .map(|i| i.label().trim() == LABEL)
                .unwrap_or(false)
        })
        .ok_or_else(|| fail("init", "the new token is not listed"))?;
    let session = ctx
        .open_rw_session(slot)
        .map_err(|e| fail("open session", e))?;
    session
        .login(UserType::So, Some(&so_pin))
        .map_err(|e| fail("SO login", e))?;
    session.init_pin(&pin).map_err(|e| fail("C_InitPIN", e))?;
    session.logout().map_err(|e| fail("logout", e))?;
    session
        .login(UserType::User, Some(&pin))
        .map_err(|e| fail("user login", e))?;

    let ca_key =
        KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(|e| fail("CA key", e))?;
    let ca_params = ca_params();
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let now = OffsetDateTime::now_utc();

    // An enterprise 一证通 signing certificate (CN the company), RSA, valid for a year, as CAs
    // issue them.
    let rsa = generate(
        &session,
        &Mechanism::RsaPkcsKeyPairGen,
        rsa_templates(),
        &[1],
    )?;
    let rsa_pub = rsa_public(&session, rsa)?;
    let params = leaf_params(
        ORGANISATION,
        now - Duration::days(10),
        now + Duration::days(355),
        0x1001,
    )?;
    let cert = params
        .signed_by(&rsa_pub, &issuer)
        .map_err(|e| fail("sign RSA certificate", e))?;
    store_cert(&session, cert.der(), &[1], "一证通 RSA 签名证书")?;

    // A staff certificate of the same company (CN the person), EC, that expires in 45 days:
    // the product's expiry warnings show on it.
    let ec = generate(&session, &Mechanism::EccKeyPairGen, ec_templates(), &[2])?;
    let ec_pub = ec_public(&session, ec)?;
    let params = leaf_params(
        "李四",
        now - Duration::days(320),
        now + Duration::days(45),
        0x1002,
    )?;
    let cert = params
        .signed_by(&ec_pub, &issuer)
        .map_err(|e| fail("sign EC certificate", e))?;
    store_cert(&session, cert.der(), &[2], "李四 EC 签名证书")?;
    store_seal(&session)?;
    let _ = session.logout();
    Ok(())
}

fn add_seal_if_missing(ctx: &Pkcs11, slot: Slot) -> Result<(), Error> {
    let session = ctx
        .open_rw_session(slot)
        .map_err(|e| fail("open session", e))?;
    let existing = session
        .find_objects(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Label(SEAL_LABEL.as_bytes().to_vec()),
        ])
        .map_err(|e| fail("find the seal", e))?;
    if existing.is_empty() {
        store_seal(&session)?;
    }
    Ok(())
}

fn store_seal(session: &Session) -> Result<(), Error> {
    session
        .create_object(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Label(SEAL_LABEL.as_bytes().to_vec()),
            Attribute::Application(SEAL_APPLICATION.as_bytes().to_vec()),
            Attribute::Value(SEAL_PNG.to_vec()),
        ])
        .map_err(|e| fail("store the seal image", e))?;
    Ok(())
}

fn ca_params() -> CertificateParams {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CountryName,
        DnValue::PrintableString("CN".try_into().expect("ASCII")),
    );
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String("证书助手演示 CA".into()),
    );
    dn.push(
        DnType::CommonName,
        DnValue::Utf8String("certray Demo SM CA".into()),
    );
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let now = OffsetDateTime::now_utc();
    p.not_before = now - Duration::days(400);
    p.not_after = now + Duration::days(3650);
    p
}

/// The DER of a UTF8String, as the identifier extensions carry their values.
fn utf8_der(s: &str) -> Vec<u8> {
    der::asn1::Utf8StringRef::new(s)
        .and_then(|v| v.to_der())
        .unwrap_or_default()
}

fn leaf_params(
    cn: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    serial: u64,
) -> Result<CertificateParams, Error> {
    let mut p = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CountryName,
        DnValue::PrintableString("CN".try_into().expect("ASCII")),
    );
    dn.push(
        DnType::StateOrProvinceName,
        DnValue::Utf8String("北京市".into()),
    );
    dn.push(DnType::LocalityName, DnValue::Utf8String("海淀区".into()));
    dn.push(
        DnType::OrganizationName,
        DnValue::Utf8String(ORGANISATION.into()),
    );
    dn.push(
        DnType::OrganizationalUnitName,
        DnValue::Utf8String("财务部".into()),
    );
    dn.push(DnType::CommonName, DnValue::Utf8String(cn.into()));
    p.distinguished_name = dn;
    p.not_before = not_before;
    p.not_after = not_after;
    p.serial_number = Some(SerialNumber::from(serial.to_be_bytes().to_vec()));
    p.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::ContentCommitment,
    ];
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::EmailProtection,
    ];
    // Organisation code extension carrying the USCC, and the taxpayer ID (the USCC today).
    p.custom_extensions = vec![
        CustomExtension::from_oid_content(&[1, 2, 156, 10260, 4, 1, 4], utf8_der(USCC)),
        CustomExtension::from_oid_content(&[1, 2, 156, 10260, 4, 1, 5], utf8_der(USCC)),
    ];
    Ok(p)
}

fn rsa_templates() -> (Vec<Attribute>, Vec<Attribute>) {
    (
        vec![
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::ModulusBits(2048.into()),
            Attribute::PublicExponent(vec![1, 0, 1]),
            Attribute::Label(b"RSA".to_vec()),
        ],
        vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
            Attribute::Label(b"RSA".to_vec()),
        ],
    )
}

fn ec_templates() -> (Vec<Attribute>, Vec<Attribute>) {
    // prime256v1
    let p256 = der::asn1::ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7")
        .to_der()
        .unwrap_or_default();
    (
        vec![
            Attribute::Token(true),
            Attribute::Verify(true),
            Attribute::EcParams(p256),
            Attribute::Label(b"EC".to_vec()),
        ],
        vec![
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Sign(true),
            Attribute::Label(b"EC".to_vec()),
        ],
    )
}

fn generate(
    session: &Session,
    mech: &Mechanism,
    (mut public, mut private): (Vec<Attribute>, Vec<Attribute>),
    id: &[u8],
) -> Result<ObjectHandle, Error> {
    public.push(Attribute::Id(id.to_vec()));
    private.push(Attribute::Id(id.to_vec()));
    let (public, _private) = session
        .generate_key_pair(mech, &public, &private)
        .map_err(|e| fail("C_GenerateKeyPair", e))?;
    Ok(public)
}

/// A public key read back from the token, in the form rcgen puts into a certificate.
struct TokenPublicKey {
    /// The subjectPublicKey BIT STRING contents.
    bytes: Vec<u8>,
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for TokenPublicKey {
    fn der_bytes(&self) -> &[u8] {
        &self.bytes
    }
    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

#[derive(der::Sequence)]
struct RsaPublicKey<'a> {
    modulus: der::asn1::UintRef<'a>,
    public_exponent: der::asn1::UintRef<'a>,
}

fn rsa_public(session: &Session, key: ObjectHandle) -> Result<TokenPublicKey, Error> {
    let attrs = session
        .get_attributes(
            key,
            &[AttributeType::Modulus, AttributeType::PublicExponent],
        )
        .map_err(|e| fail("read RSA public key", e))?;
    let (mut n, mut e) = (Vec::new(), Vec::new());
    for a in attrs {
        match a {
            Attribute::Modulus(v) => n = v,
            Attribute::PublicExponent(v) => e = v,
            _ => {}
        }
    }
    let bad = |err: der::Error| fail("encode RSA public key", err);
    let key = RsaPublicKey {
        modulus: der::asn1::UintRef::new(&n).map_err(bad)?,
        public_exponent: der::asn1::UintRef::new(&e).map_err(bad)?,
    };
    Ok(TokenPublicKey {
        bytes: key.to_der().map_err(bad)?,
        alg: &rcgen::PKCS_RSA_SHA256,
    })
}

fn ec_public(session: &Session, key: ObjectHandle) -> Result<TokenPublicKey, Error> {
    let point = match session
        .get_attributes(key, &[AttributeType::EcPoint])
        .map_err(|e| fail("read EC point", e))?
        .pop()
    {
        Some(Attribute::EcPoint(v)) => v,
        _ => return Err(fail("read EC point", "missing")),
    };
    // CKA_EC_POINT is a DER OCTET STRING around the uncompressed point.
    let bytes = match der::asn1::OctetString::from_der(&point) {
        Ok(os) => os.into_bytes().into_vec(),
        Err(_) => point,
    };
    Ok(TokenPublicKey {
        bytes,
        alg: &rcgen::PKCS_ECDSA_P256_SHA256,
    })
}

fn store_cert(session: &Session, der_bytes: &[u8], id: &[u8], label: &str) -> Result<(), Error> {
    let subject = x509_parser::parse_x509_certificate(der_bytes)
        .map(|(_, c)| c.tbs_certificate.subject.as_raw().to_vec())
        .map_err(|e| fail("re-read certificate", e))?;
    session
        .create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Id(id.to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
            Attribute::Subject(subject),
            Attribute::Value(der_bytes.to_vec()),
        ])
        .map_err(|e| fail("store certificate", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_uscc_is_valid() {
        assert!(crate::cert::uscc_is_valid(USCC));
    }

    #[test]
    fn demo_seal_is_a_png() {
        assert!(SEAL_PNG.starts_with(b"\x89PNG\r\n\x1a\n"));
    }
}
