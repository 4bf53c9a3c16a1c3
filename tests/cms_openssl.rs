//! `certray::cms` checked against OpenSSL (needs the Debian package `openssl`).
//!
//! Keys and self-signed certificates come from `openssl genpkey` / `openssl req -x509`; the
//! "token" is `openssl pkeyutl -sign -pkeyopt digest:HASH`, which signs a digest it is given
//! (PKCS#1 v1.5 with DigestInfo for RSA, DER ECDSA-Sig-Value for EC), as a PKCS#11 token does
//! for certray. `openssl cms -verify` must accept every SignedData, give back the content and
//! refuse tampered content.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use certray::cms::{self, CmsError, CmsRequest, Prepared};
use certray::token::sign::{HashAlg, KeyKind};
use tempfile::TempDir;
use time::macros::datetime;

use common::{openssl, output_text, require, run, run_unchecked};

/// Binary content with CR LF, NUL, 0xFF and UTF-8, so `-binary` and canonicalisation matter.
const CONTENT: &[u8] = b"SOF_SignMessage \xe6\xb5\x8b\xe8\xaf\x95\r\nline 2\n\x00\x01\xff tail";

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
        };
        run(Command::new(require("openssl", "openssl"))
            .arg("genpkey")
            .args(keygen)
            .arg("-out")
            .arg(&key));
        // A UTF-8 Chinese subject, as the CAs here issue them; the issuer is the same name.
        run(Command::new(require("openssl", "openssl"))
            .args(["req", "-x509", "-new", "-utf8", "-days", "30", "-sha256"])
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

    /// Build a SignedData with the "token" and write it to `name`.
    fn build(&self, req: &CmsRequest<'_>, name: &str) -> PathBuf {
        let der = cms::signed_data(req, |digest| {
            Ok::<_, CmsError>(self.sign_digest(req.hash, digest))
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
    for hash in HASHES {
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

            if hash == HashAlg::Sha256 {
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
            };
            let sig_alg = match kind {
                KeyKind::Rsa => "rsaEncryption".to_string(),
                KeyKind::Ec => format!("ecdsa-with-{}", h.to_ascii_uppercase()),
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
