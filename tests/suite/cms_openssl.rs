//! `certray::cms` checked against OpenSSL (needs the Debian package `openssl`).
//!
//! Keys and self-signed certificates come from `openssl genpkey` / `openssl req -x509`; the
//! "token" is `openssl pkeyutl -sign -pkeyopt digest:HASH`, which signs a digest it is given
//! (PKCS#1 v1.5 with DigestInfo for RSA, DER ECDSA-Sig-Value for EC), as a PKCS#11 token does
//! for certray. `openssl cms -verify` must accept every SignedData, give back the content and
//! refuse tampered content.
//!
//! SM2: OpenSSL 3.0 cannot write an SM2 SignedData itself (`openssl cms -sign -md sm3` fails
//! with "illegal zero content"), so the "token" is the RustCrypto `sm2` signer holding the key
//! OpenSSL generated, signing the DER signed attributes as an SM2 message. OpenSSL 3.0's
//! `cms -verify` computes Z with an *empty* user ID, not GM/T 0009's default
//! `1234567812345678` that tokens, CAs and certray use (seen here: a default-ID SignedData
//! fails `cms -verify`, the same one signed with an empty ID passes). So OpenSSL referees SM2
//! in two parts: `openssl cms -verify` accepts the structure, OIDs and message digest of a
//! SignedData whose signature uses the empty ID ([`OPENSSL_CMS_SM2_ID`]), and `openssl pkeyutl
//! -verify -pkeyopt distid:1234567812345678` accepts the default-ID signature over the signed
//! attributes of the SignedData certray builds for a token.

use crate::common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use certray::cms::{self, CmsError, CmsRequest, Prepared};
use certray::model::{HashAlg, KeyKind};
use tempfile::TempDir;
use time::macros::datetime;

use common::{openssl, output_text, require, run, run_unchecked};

/// Binary content with CR LF, NUL, 0xFF and UTF-8, so `-binary` and canonicalisation matter.
const CONTENT: &[u8] = b"SOF_SignMessage \xe6\xb5\x8b\xe8\xaf\x95\r\nline 2\n\x00\x01\xff tail";

/// The SM2 user ID OpenSSL 3.0's `cms -verify` computes Z with (none).
const OPENSSL_CMS_SM2_ID: &str = "";

/// GM/T 0009's default SM2 user ID, what tokens sign with.
const SM2_ID: &str = "1234567812345678";

const HASHES: [HashAlg; 4] = [
    HashAlg::Sha1,
    HashAlg::Sha256,
    HashAlg::Sha384,
    HashAlg::Sha512,
];

/// A key pair and a self-signed certificate in a temporary directory.
struct Signer {
    dir: TempDir,
    kind: KeyKind,
    key: PathBuf,
    cert_der: Vec<u8>,
}

impl Signer {
    fn new(kind: KeyKind) -> Signer {
        require("openssl", "openssl");
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("key.pem");
        let cert = dir.path().join("cert.der");
        let keygen: &[&str] = match kind {
            KeyKind::Rsa => &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            KeyKind::Ec => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            KeyKind::Sm2 => &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2"],
        };
        let cert_hash: &[&str] = match kind {
            KeyKind::Sm2 => &["-sm3", "-sigopt", "distid:1234567812345678"],
            KeyKind::Rsa | KeyKind::Ec => &["-sha256"],
        };
        run(Command::new(require("openssl", "openssl"))
            .arg("genpkey")
            .args(keygen)
            .arg("-out")
            .arg(&key));
        // A UTF-8 Chinese subject, as the CAs here issue them; the issuer is the same name.
        run(Command::new(require("openssl", "openssl"))
            .args(["req", "-x509", "-new", "-utf8", "-days", "30"])
            .args(cert_hash)
            .args(["-subj", "/C=CN/O=证书助手测试/CN=张三"])
            .arg("-key")
            .arg(&key)
            .args(["-outform", "DER", "-out"])
            .arg(&cert));
        let cert_der = fs::read(&cert).expect("read certificate");
        Signer {
            dir,
            kind,
            key,
            cert_der,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The "token": `openssl pkeyutl -sign` over a precomputed digest.
    fn sign_digest(&self, hash: HashAlg, digest: &[u8]) -> Vec<u8> {
        assert_eq!(digest.len(), hash.output_len(), "digest length");
        let input = self.path("digest.bin");
        let output = self.path("signature.bin");
        fs::write(&input, digest).expect("write digest");
        run(Command::new(require("openssl", "openssl"))
            .args(["pkeyutl", "-sign", "-inkey"])
            .arg(&self.key)
            .arg("-pkeyopt")
            .arg(format!("digest:{}", hash.as_str()))
            .arg("-in")
            .arg(&input)
            .arg("-out")
            .arg(&output));
        fs::read(&output).expect("read signature")
    }

    fn request<'a>(&'a self, hash: HashAlg, detached: bool, content: &'a [u8]) -> CmsRequest<'a> {
        CmsRequest {
            certificate_der: &self.cert_der,
            content,
            detached,
            hash,
            key: self.kind,
            signing_time: datetime!(2026-03-01 08:00:00 +08:00),
        }
    }

    /// The SM2 "token": RustCrypto `sm2` with OpenSSL's key, signing `message` as SM2 does
    /// (e = SM3(Z ‖ message), Z with user ID `id`), DER `SEQUENCE { r, s }`.
    fn sign_sm2(&self, id: &str, message: &[u8]) -> Vec<u8> {
        use sm2::dsa::signature::Signer as _;
        let signature: sm2::dsa::Signature = self.sm2_key(id).sign(message);
        signature.to_der().as_bytes().to_vec()
    }

    /// OpenSSL's SM2 key in the `sm2` crate, read from its SEC 1 `ECPrivateKey` (`sm2`
    /// 0.14 does not read the PKCS#8 OpenSSL writes for SM2).
    fn sm2_key(&self, id: &str) -> sm2::dsa::SigningKey {
        let out = run(Command::new(require("openssl", "openssl"))
            .args(["ec", "-outform", "DER", "-in"])
            .arg(&self.key));
        // ECPrivateKey ::= SEQUENCE { version INTEGER (1), privateKey OCTET STRING (32), … }
        let der = out.stdout;
        assert_eq!(der.get(2..7), Some(&[2u8, 1, 1, 4, 32][..]), "ECPrivateKey");
        sm2::dsa::SigningKey::from_slice(id, &der[7..39]).expect("SM2 key")
    }

    /// The SM2 "token" of a library that is given e and signs it as it is.
    fn sign_sm2_prehash(&self, e: &[u8]) -> Vec<u8> {
        use sm2::dsa::signature::hazmat::PrehashSigner;
        let signature: sm2::dsa::Signature = self.sm2_key(SM2_ID).sign_prehash(e).expect("sign e");
        signature.to_der().as_bytes().to_vec()
    }

    /// Build a SignedData with the "token" and write it to `name`.
    fn build(&self, req: &CmsRequest<'_>, name: &str) -> PathBuf {
        let der = cms::signed_data(req, |to_sign| {
            Ok::<_, CmsError>(match self.kind {
                KeyKind::Sm2 => self.sign_sm2(OPENSSL_CMS_SM2_ID, to_sign),
                KeyKind::Rsa | KeyKind::Ec => self.sign_digest(req.hash, to_sign),
            })
        })
        .unwrap_or_else(|e| panic!("signed_data {:?} {}: {e}", self.kind, req.hash.as_str()));
        let path = self.path(name);
        fs::write(&path, der).expect("write SignedData");
        path
    }

    /// `openssl cms -verify -binary -noverify -inform DER -in SIG [-content DATA] -out OUT`;
    /// the output and, when it succeeded, what it wrote to OUT.
    fn verify(&self, sig: &Path, content: Option<&[u8]>) -> (Output, Option<Vec<u8>>) {
        let out = self.path("out.bin");
        let _ = fs::remove_file(&out);
        let mut cmd = Command::new(require("openssl", "openssl"));
        cmd.args([
            "cms",
            "-verify",
            "-binary",
            "-noverify",
            "-inform",
            "DER",
            "-in",
        ])
        .arg(sig);
        if let Some(content) = content {
            let data = self.path("data.bin");
            fs::write(&data, content).expect("write content");
            cmd.arg("-content").arg(data);
        }
        cmd.arg("-out").arg(&out);
        let output = run_unchecked(&mut cmd);
        let written = output
            .status
            .success()
            .then(|| fs::read(&out).expect("read verified content"));
        (output, written)
    }

    /// Full verification, certificate chain included: the certificate that OpenSSL finds
    /// inside the SignedData must be the trusted one (given as `-CAfile`).
    fn verify_chain(&self, sig: &Path, content: Option<&[u8]>, what: &str) {
        let ca = self.path("ca.pem");
        run(Command::new(require("openssl", "openssl"))
            .args(["x509", "-inform", "DER", "-in"])
            .arg(self.path("cert.der"))
            .arg("-out")
            .arg(&ca));
        let out = self.path("out-chain.bin");
        let mut cmd = Command::new(require("openssl", "openssl"));
        cmd.args([
            "cms", "-verify", "-binary", "-purpose", "any", "-inform", "DER",
        ])
        .arg("-CAfile")
        .arg(&ca)
        .arg("-in")
        .arg(sig);
        if let Some(content) = content {
            let data = self.path("data-chain.bin");
            fs::write(&data, content).expect("write content");
            cmd.arg("-content").arg(data);
        }
        cmd.arg("-out").arg(&out);
        let output = run_unchecked(&mut cmd);
        assert!(
            output.status.success(),
            "{what}: openssl cms -verify -CAfile failed:\n{}",
            output_text(&output)
        );
        assert_eq!(fs::read(&out).expect("read").as_slice(), CONTENT, "{what}");
    }
}

/// `openssl cms -cmsout -print` of a DER SignedData.
fn print(sig: &Path) -> String {
    let out = openssl(&[
        "cms".as_ref(),
        "-cmsout".as_ref(),
        "-print".as_ref(),
        "-inform".as_ref(),
        "DER".as_ref(),
        "-in".as_ref(),
        sig.as_os_str(),
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_verifies(signer: &Signer, sig: &Path, content: Option<&[u8]>, what: &str) {
    let (output, written) = signer.verify(sig, content);
    assert!(
        output.status.success(),
        "{what}: openssl cms -verify failed:\n{}",
        output_text(&output)
    );
    assert!(
        output_text(&output).contains("Verification successful"),
        "{what}: {}",
        output_text(&output)
    );
    assert_eq!(
        written.as_deref(),
        Some(CONTENT),
        "{what}: verified content"
    );
}

fn assert_refused(signer: &Signer, sig: &Path, content: Option<&[u8]>, what: &str) {
    let (output, _) = signer.verify(sig, content);
    assert!(
        !output.status.success(),
        "{what}: openssl cms -verify accepted it:\n{}",
        output_text(&output)
    );
    assert!(
        output_text(&output).contains("Verification failure"),
        "{what}: {}",
        output_text(&output)
    );
}

/// Attached and detached SignedData for every hash, verified by OpenSSL; tampered content
/// refused; the structure as OpenSSL prints it.
fn sign_and_verify_all(kind: KeyKind) {
    let signer = Signer::new(kind);
    let hashes: &[HashAlg] = match kind {
        KeyKind::Sm2 => &[HashAlg::Sm3],
        KeyKind::Rsa | KeyKind::Ec => &HASHES,
    };
    for &hash in hashes {
        let h = hash.as_str();
        for detached in [false, true] {
            let what = format!("{kind:?} {h} detached={detached}");
            let sig = signer.build(
                &signer.request(hash, detached, CONTENT),
                &format!("sig-{h}-{detached}.der"),
            );
            let der = fs::read(&sig).expect("read SignedData");
            let content_inside = der.windows(CONTENT.len()).any(|w| w == CONTENT);
            assert_eq!(content_inside, !detached, "{what}: content inside");

            let mut tampered = CONTENT.to_vec();
            tampered[0] ^= 1;
            if detached {
                assert_verifies(&signer, &sig, Some(CONTENT), &what);
                assert_refused(&signer, &sig, Some(&tampered), &format!("{what} tampered"));
                // Without the content there is nothing to verify.
                let (output, _) = signer.verify(&sig, None);
                assert!(!output.status.success(), "{what}: verified without content");
            } else {
                assert_verifies(&signer, &sig, None, &what);
                // Change one byte of the content inside the DER.
                let at = der
                    .windows(CONTENT.len())
                    .position(|w| w == CONTENT)
                    .expect("content in DER");
                let mut bad = der.clone();
                bad[at] ^= 1;
                let bad_path = signer.path("tampered.der");
                fs::write(&bad_path, bad).expect("write tampered");
                assert_refused(&signer, &bad_path, None, &format!("{what} tampered"));
            }

            if matches!(hash, HashAlg::Sha256 | HashAlg::Sm3) {
                signer.verify_chain(&sig, detached.then_some(CONTENT), &what);
            }

            let printed = print(&sig);
            for needle in [
                "contentType: pkcs7-signedData (1.2.840.113549.1.7.2)",
                "version: 1",
                "eContentType: pkcs7-data (1.2.840.113549.1.7.1)",
                "object: contentType (1.2.840.113549.1.9.3)",
                "object: messageDigest (1.2.840.113549.1.9.4)",
                "object: signingTime (1.2.840.113549.1.9.5)",
                "UTCTIME:Mar  1 00:00:00 2026 GMT",
                "d.issuerAndSerialNumber:",
                "CN=\\xE5\\xBC\\xA0\\xE4\\xB8\\x89",
            ] {
                assert!(
                    printed.contains(needle),
                    "{what}: `{needle}` not in:\n{printed}"
                );
            }
            assert_eq!(
                printed.contains("eContent: <ABSENT>"),
                detached,
                "{what}:\n{printed}"
            );
            let digest_name = match hash {
                HashAlg::Sha1 => "sha1",
                HashAlg::Sha256 => "sha256",
                HashAlg::Sha384 => "sha384",
                HashAlg::Sha512 => "sha512",
                HashAlg::Sm3 => "sm3",
            };
            let sig_alg = match kind {
                KeyKind::Rsa => "rsaEncryption".to_string(),
                KeyKind::Ec => format!("ecdsa-with-{}", h.to_ascii_uppercase()),
                KeyKind::Sm2 => "SM2-with-SM3".to_string(),
            };
            assert!(
                printed.contains(&format!("algorithm: {digest_name} (")),
                "{what}: digest algorithm:\n{printed}"
            );
            assert!(
                printed.contains(&format!("algorithm: {sig_alg} (")),
                "{what}: signature algorithm:\n{printed}"
            );
            // The signer certificate is included byte for byte.
            assert!(
                der.windows(signer.cert_der.len())
                    .any(|w| w == signer.cert_der.as_slice()),
                "{what}: certificate not included verbatim"
            );
        }
    }
}

#[test]
fn rsa_signed_data_verifies_with_openssl() {
    sign_and_verify_all(KeyKind::Rsa);
}

#[test]
fn ec_signed_data_verifies_with_openssl() {
    sign_and_verify_all(KeyKind::Ec);
}

/// SM2 SignedData (GM/T 0010 algorithms sm3 and sm2-with-sm3, PKCS#7 content types),
/// attached and detached, verified by `openssl cms -verify`, with and without `-CAfile`
/// (signed with the empty ID OpenSSL 3.0 verifies with, see the module's documentation).
#[test]
fn sm2_signed_data_verifies_with_openssl() {
    sign_and_verify_all(KeyKind::Sm2);
}

/// An SM2 SignedData is refused for any hash but SM3; the SM2 token is given the signed
/// attributes themselves (the SM2 message), not a digest, and its default-ID signature over
/// them verifies with `openssl pkeyutl`; a library that signs SM3(attributes) as the
/// message (hashing twice) does not.
#[test]
fn sm2_signs_the_signed_attributes_with_sm3_only() {
    let signer = Signer::new(KeyKind::Sm2);
    let req = signer.request(HashAlg::Sha256, false, CONTENT);
    assert!(
        matches!(Prepared::new(&req), Err(CmsError::Algorithm { .. })),
        "SM2 with SHA-256"
    );
    let req = signer.request(HashAlg::Sm3, true, CONTENT);
    let prepared = Prepared::new(&req).expect("prepare");
    let attrs = prepared.signed_attributes_der().to_vec();
    assert_eq!(
        prepared.sign_input(),
        certray::model::SignInput::Data(attrs.clone())
    );
    // A signature over the SM3 digest of the attributes (a library that hashes twice) is
    // not one OpenSSL accepts.
    let e = certray::cert::sm2_e(
        &sm2_point(&signer.cert_der),
        b"1234567812345678",
        &HashAlg::Sm3.digest(&attrs),
    )
    .expect("e");
    let twice = signer.sign_sm2_prehash(&e);
    let sig = signer.path("twice.der");
    fs::write(&sig, prepared.clone().finish(twice).expect("finish")).expect("write");
    assert!(!pkeyutl_verifies_signer_info(&signer, &sig), "hashed twice");
    let good = signer.sign_sm2(SM2_ID, &attrs);
    fs::write(&sig, prepared.finish(good).expect("finish")).expect("write");
    assert!(
        pkeyutl_verifies_signer_info(&signer, &sig),
        "SM2 default ID"
    );
    // OpenSSL 3.0's `cms -verify` uses an empty ID (see the module's documentation).
    let (output, _) = signer.verify(&sig, Some(CONTENT));
    assert!(!output.status.success(), "{}", output_text(&output));
}

/// The SignerInfo of a DER SignedData (read with the `cms` crate): the signed attributes
/// as the signature covers them (a SET OF) and the signature; `openssl pkeyutl -verify
/// -rawin -digest sm3 -pkeyopt distid:1234567812345678` with the certificate decides.
fn pkeyutl_verifies_signer_info(signer: &Signer, sig: &Path) -> bool {
    use der::{Decode, Encode};
    let der = fs::read(sig).expect("read");
    let info = ::cms::content_info::ContentInfo::from_der(&der).expect("ContentInfo");
    let sd: ::cms::signed_data::SignedData = info.content.decode_as().expect("SignedData");
    let si = sd.signer_infos.0.iter().next().expect("one SignerInfo");
    let attrs = si
        .signed_attrs
        .as_ref()
        .expect("signed attributes")
        .to_der()
        .unwrap();
    let (attrs_path, sig_path, cert_path) = (
        signer.path("attrs.der"),
        signer.path("sig.bin"),
        signer.path("cert.pem"),
    );
    fs::write(&attrs_path, attrs).unwrap();
    fs::write(&sig_path, si.signature.as_bytes()).unwrap();
    run(Command::new(require("openssl", "openssl"))
        .args(["x509", "-inform", "DER", "-in"])
        .arg(signer.path("cert.der"))
        .arg("-out")
        .arg(&cert_path));
    let out = run_unchecked(
        Command::new(require("openssl", "openssl"))
            .args(["pkeyutl", "-verify", "-certin", "-inkey"])
            .arg(&cert_path)
            .args(["-rawin", "-digest", "sm3", "-pkeyopt"])
            .arg(format!("distid:{SM2_ID}"))
            .arg("-in")
            .arg(&attrs_path)
            .arg("-sigfile")
            .arg(&sig_path),
    );
    let text = output_text(&out);
    let ok = out.status.success() && text.contains("Signature Verified Successfully");
    assert!(
        ok || text.contains("Verification Failure") || !out.status.success(),
        "{text}"
    );
    ok
}

/// The uncompressed public point of a certificate's SubjectPublicKeyInfo.
fn sm2_point(cert_der: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::FromDer;
    let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der).expect("cert");
    cert.tbs_certificate
        .subject_pki
        .subject_public_key
        .data
        .to_vec()
}

/// RFC 5652 §11.3: from 2050 on, signing-time is a GeneralizedTime; OpenSSL still verifies.
#[test]
fn signing_time_after_2049_is_generalized_time() {
    let signer = Signer::new(KeyKind::Ec);
    let mut req = signer.request(HashAlg::Sha256, false, CONTENT);
    req.signing_time = datetime!(2050-01-01 00:00:00 UTC);
    let sig = signer.build(&req, "sig-2050.der");
    assert_verifies(&signer, &sig, None, "2050");
    let printed = print(&sig);
    assert!(
        printed.contains("GENERALIZEDTIME:Jan  1 00:00:00 2050 GMT"),
        "{printed}"
    );
}

/// Empty content signs and verifies (attached and detached).
#[test]
fn empty_content() {
    let signer = Signer::new(KeyKind::Ec);
    for detached in [false, true] {
        let sig = signer.build(
            &signer.request(HashAlg::Sha256, detached, b""),
            &format!("sig-empty-{detached}.der"),
        );
        let (output, written) = signer.verify(&sig, detached.then_some(b"".as_slice()));
        assert!(
            output.status.success(),
            "empty detached={detached}:\n{}",
            output_text(&output)
        );
        assert_eq!(written.as_deref(), Some(b"".as_slice()));
    }
}

/// The two-step form: the digest is that of the DER signed attributes, and the signature
/// from outside goes in as it is.
#[test]
fn prepared_digest_is_over_signed_attributes() {
    let signer = Signer::new(KeyKind::Rsa);
    let req = signer.request(HashAlg::Sha384, true, CONTENT);
    let prepared = Prepared::new(&req).expect("prepare");
    let attrs = prepared.signed_attributes_der();
    assert_eq!(attrs[0], 0x31, "signed attributes are hashed as a SET OF");
    assert_eq!(prepared.digest(), HashAlg::Sha384.digest(attrs).as_slice());
    let signature = signer.sign_digest(HashAlg::Sha384, prepared.digest());
    let der = prepared.finish(signature).expect("finish");
    let sig = signer.path("two-step.der");
    fs::write(&sig, der).expect("write");
    assert_verifies(&signer, &sig, Some(CONTENT), "two-step");
}

#[derive(Debug)]
enum TokenError {
    Cancelled,
    Cms(CmsError),
}

impl From<CmsError> for TokenError {
    fn from(e: CmsError) -> Self {
        TokenError::Cms(e)
    }
}

/// The callback's error comes back unchanged; a raw r ‖ s EC signature and an empty
/// signature are refused.
#[test]
fn callback_errors_and_bad_signatures() {
    let signer = Signer::new(KeyKind::Ec);
    let req = signer.request(HashAlg::Sha256, false, CONTENT);
    let r = cms::signed_data(&req, |_| Err(TokenError::Cancelled));
    assert!(matches!(r, Err(TokenError::Cancelled)), "{r:?}");
    let r = cms::signed_data(&req, |_| Ok::<_, TokenError>(vec![0x11; 64]));
    assert!(
        matches!(r, Err(TokenError::Cms(CmsError::EcdsaSignature(_)))),
        "{r:?}"
    );
    let r = cms::signed_data(&req, |_| Ok::<_, CmsError>(Vec::new()));
    assert!(matches!(r, Err(CmsError::EmptySignature)), "{r:?}");
}
