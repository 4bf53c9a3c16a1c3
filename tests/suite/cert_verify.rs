//! `certray::cert::verify_data`, `verify_issuer` and chains on keys, certificates and
//! signatures that OpenSSL makes here: SM2 with SM3 (default ID and another), RSA PKCS#1
//! v1.5 (SHA-1, SHA-256, SM3) and PSS, ECDSA P-256/P-384, an Ed25519 key certray does not
//! verify, and two CAs that issued each other (a loop).
//!
//! Needs the Debian package `openssl` (OpenSSL 3.0 on Debian 12).

use std::path::{Path, PathBuf};
use std::process::Command;

use certray::cert::{self, ChainEnd, HashAlg, IssuerStatus, Scheme, VerifyError};

const DISTID: &str = "distid:1234567812345678";

/// Runs `openssl ARGS…` in `dir`; it must succeed.
fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run openssl ({e}): install the Debian package `openssl`")
        });
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn read(dir: &Path, name: &str) -> Vec<u8> {
    std::fs::read(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::write(
            dir.path().join("data.txt"),
            "证书助手 SOF_VerifySignedData\n",
        )
        .expect("data");
        Keys { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A key `NAME.key` from `genpkey ARGS…` and a self-signed certificate `NAME.der`
    /// made with `req -x509 REQ_ARGS…`.
    fn self_signed(&self, name: &str, genpkey: &[&str], req: &[&str]) -> Vec<u8> {
        let key = format!("{name}.key");
        let der = format!("{name}.der");
        let mut args = vec!["genpkey"];
        args.extend_from_slice(genpkey);
        args.extend(["-out", &key]);
        openssl(self.path(), &args);
        let subject = format!("/C=CN/O=证书助手测试/CN={name}");
        let mut args = vec![
            "req", "-x509", "-new", "-key", &key, "-subj", &subject, "-days", "2", "-outform",
            "DER", "-out", &der,
        ];
        args.extend_from_slice(req);
        openssl(self.path(), &args);
        read(self.path(), &der)
    }

    /// `openssl dgst ARGS… -sign NAME.key data.txt`: the signature.
    fn sign(&self, name: &str, dgst: &[&str]) -> Vec<u8> {
        let key = format!("{name}.key");
        let mut args = vec!["dgst"];
        args.extend_from_slice(dgst);
        args.extend(["-sign", &key, "-out", "sig.bin", "data.txt"]);
        openssl(self.path(), &args);
        read(self.path(), "sig.bin")
    }

    fn data(&self) -> Vec<u8> {
        read(self.path(), "data.txt")
    }
}

/// `r ‖ s` from a DER ECDSA/SM2 signature, each `size` bytes.
fn raw(der: &[u8], size: usize) -> Vec<u8> {
    assert_eq!(der[0], 0x30);
    let mut at = if der[1] & 0x80 != 0 { 3 } else { 2 };
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[at], 0x02);
        let len = usize::from(der[at + 1]);
        let int = &der[at + 2..at + 2 + len];
        let int = &int[int.iter().take_while(|&&b| b == 0).count()..];
        out.extend(std::iter::repeat_n(0, size - int.len()));
        out.extend_from_slice(int);
        at += 2 + len;
    }
    out
}

fn tampered(bytes: &[u8]) -> Vec<u8> {
    let mut t = bytes.to_vec();
    let mid = t.len() / 2;
    t[mid] ^= 0x01;
    t
}

#[test]
fn sm2_with_sm3_and_the_default_id() {
    let k = Keys::new();
    let cert = k.self_signed(
        "sm2",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2"],
        &["-sm3", "-sigopt", DISTID],
    );
    let data = k.data();
    let sig = k.sign("sm2", &["-sm3", "-sigopt", DISTID]);
    assert_eq!(
        cert::verify_data(&cert, Scheme::Sm2Sm3, &data, &sig),
        Ok(())
    );
    assert_eq!(
        cert::verify_data(&cert, Scheme::Sm2Sm3, &data, &raw(&sig, 32)),
        Ok(()),
        "raw r ‖ s"
    );
    assert_eq!(
        cert::verify_data(&cert, Scheme::Sm2Sm3, &tampered(&data), &sig),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(
        cert::verify_data(&cert, Scheme::Sm2Sm3, &data, &sig[..sig.len() - 1]),
        Err(VerifyError::BadSignature),
        "a cut signature"
    );
    // Signed with another user ID: not a signature under the default ID.
    let other = k.sign("sm2", &["-sm3", "-sigopt", "distid:alice@example.com"]);
    assert_eq!(
        cert::verify_data(&cert, Scheme::Sm2Sm3, &data, &other),
        Err(VerifyError::BadSignature)
    );
    assert!(matches!(
        cert::verify_data(&cert, Scheme::RsaPkcs1v15(HashAlg::Sha256), &data, &sig),
        Err(VerifyError::WrongKey { .. })
    ));
    // e = SM3(Z ‖ M) from cert::sm2_e is what OpenSSL signed: its signature verifies as a
    // prehash of e (what an SKF key is given), and not as one of SM3(M).
    let point = {
        use x509_parser::prelude::FromDer;
        let (_, x509) = x509_parser::certificate::X509Certificate::from_der(&cert).unwrap();
        x509.tbs_certificate
            .subject_pki
            .subject_public_key
            .data
            .to_vec()
    };
    let e = cert::sm2_e(&point, cert::SM2_DEFAULT_ID.as_bytes(), &data).expect("e");
    assert_eq!(
        cert::verify_message(&cert, Scheme::Sm2Sm3, cert::Message::Digest(&e), &sig),
        Ok(())
    );
    assert_eq!(
        cert::verify_message(
            &cert,
            Scheme::Sm2Sm3,
            cert::Message::Digest(&HashAlg::Sm3.digest(&data)),
            &sig
        ),
        Err(VerifyError::BadSignature)
    );
    // OpenSSL's self-signed SM2 certificate verifies with its own key.
    let status = cert::verify_issuer(&cert, &[]).expect("a certificate");
    assert!(
        matches!(&status, IssuerStatus::Verified { issuer } if issuer.index.is_none()),
        "{status:?}"
    );
}

#[test]
fn rsa_pkcs1_v15_and_pss() {
    let k = Keys::new();
    let cert = k.self_signed(
        "rsa",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        &["-sha256"],
    );
    // And a 1024-bit key (older Chinese CA certificates have them): ring checks SHA-1,
    // SHA-256 and SHA-512 with its legacy algorithms, the rsa crate SHA-384; both refuse a
    // forgery, and neither key's certificate takes the other key's signature.
    let cert_1024 = k.self_signed(
        "rsa1024",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"],
        &["-sha256"],
    );
    let data = k.data();
    for (key, own, other) in [("rsa", &cert, &cert_1024), ("rsa1024", &cert_1024, &cert)] {
        for (flag, hash) in [
            ("-sha256", HashAlg::Sha256),
            ("-sha1", HashAlg::Sha1),
            ("-sha384", HashAlg::Sha384),
            ("-sha512", HashAlg::Sha512),
        ] {
            let sig = k.sign(key, &[flag]);
            let scheme = Scheme::RsaPkcs1v15(hash);
            assert_eq!(
                cert::verify_data(own, scheme, &data, &sig),
                Ok(()),
                "{key} {flag}"
            );
            assert_eq!(
                cert::verify_data(own, scheme, &tampered(&data), &sig),
                Err(VerifyError::BadSignature),
                "{key} {flag}"
            );
            assert_eq!(
                cert::verify_data(other, scheme, &data, &sig),
                Err(VerifyError::BadSignature),
                "{key} {flag} with the other key"
            );
        }
    }
    // OpenSSL 3.0 refuses SM3 with RSA in `dgst -sign` ("digest not allowed"): sign the
    // DigestInfo { sm3 (1.2.156.10197.1.401), NULL; SM3(data) } with raw PKCS#1 v1.5.
    let sm3 = openssl(k.path(), &["dgst", "-sm3", "-binary", "data.txt"]);
    assert_eq!(sm3.len(), 32);
    let mut digest_info = vec![
        0x30, 0x30, 0x30, 0x0C, 0x06, 0x08, 0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x01, 0x83, 0x11, 0x05,
        0x00, 0x04, 0x20,
    ];
    digest_info.extend_from_slice(&sm3);
    std::fs::write(k.path().join("digest-info.der"), &digest_info).unwrap();
    openssl(
        k.path(),
        &[
            "pkeyutl",
            "-sign",
            "-inkey",
            "rsa.key",
            "-in",
            "digest-info.der",
            "-pkeyopt",
            "rsa_padding_mode:pkcs1",
            "-out",
            "sm3.sig",
        ],
    );
    let sig = read(k.path(), "sm3.sig");
    let scheme = Scheme::RsaPkcs1v15(HashAlg::Sm3);
    assert_eq!(cert::verify_data(&cert, scheme, &data, &sig), Ok(()), "SM3");
    assert_eq!(
        cert::verify_data(&cert, scheme, &tampered(&data), &sig),
        Err(VerifyError::BadSignature),
        "SM3"
    );
    let sha256 = k.sign("rsa", &["-sha256"]);
    assert_eq!(
        cert::verify_data(&cert, Scheme::RsaPkcs1v15(HashAlg::Sha1), &data, &sha256),
        Err(VerifyError::BadSignature),
        "the hash is part of what is signed"
    );
    let pss = k.sign(
        "rsa",
        &[
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:32",
        ],
    );
    let scheme = Scheme::RsaPss {
        hash: HashAlg::Sha256,
        salt_len: 32,
    };
    assert_eq!(cert::verify_data(&cert, scheme, &data, &pss), Ok(()));
    assert_eq!(
        cert::verify_data(&cert, scheme, &tampered(&data), &pss),
        Err(VerifyError::BadSignature)
    );
    assert!(matches!(
        cert::verify_data(&cert, Scheme::Sm2Sm3, &data, &sha256),
        Err(VerifyError::WrongKey { .. })
    ));
    assert!(cert::verify_issuer(&cert, &[]).unwrap().is_verified());

    // A certificate signed with RSASSA-PSS (the parameters come from the certificate).
    let pss_cert = k.self_signed(
        "rsa-pss",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        &[
            "-sha256",
            "-sigopt",
            "rsa_padding_mode:pss",
            "-sigopt",
            "rsa_pss_saltlen:20",
        ],
    );
    assert_eq!(
        cert::parse(&pss_cert).unwrap().signature_algorithm,
        "rsassaPss"
    );
    let status = cert::verify_issuer(&pss_cert, &[]).unwrap();
    assert!(status.is_verified(), "{status:?}");
    let status = cert::verify_issuer(&tampered(&pss_cert), &[]);
    assert!(
        !matches!(status, Ok(IssuerStatus::Verified { .. })),
        "{status:?}"
    );
}

#[test]
fn ecdsa_p256_and_p384() {
    let k = Keys::new();
    let data = k.data();
    for (curve, size) in [("P-256", 32), ("P-384", 48)] {
        let cert = k.self_signed(
            curve,
            &[
                "-algorithm",
                "EC",
                "-pkeyopt",
                &format!("ec_paramgen_curve:{curve}"),
            ],
            &["-sha384"],
        );
        for (flag, hash) in [("-sha256", HashAlg::Sha256), ("-sha384", HashAlg::Sha384)] {
            let sig = k.sign(curve, &[flag]);
            let scheme = Scheme::Ecdsa(hash);
            assert_eq!(
                cert::verify_data(&cert, scheme, &data, &sig),
                Ok(()),
                "{curve} {flag}"
            );
            assert_eq!(
                cert::verify_data(&cert, scheme, &data, &raw(&sig, size)),
                Ok(()),
                "{curve} {flag} raw"
            );
            assert_eq!(
                cert::verify_data(&cert, scheme, &tampered(&data), &sig),
                Err(VerifyError::BadSignature),
                "{curve} {flag}"
            );
        }
        let status = cert::verify_issuer(&cert, &[]).unwrap();
        assert!(status.is_verified(), "{curve}: {status:?}");
    }
}

#[test]
fn unsupported_keys_say_so() {
    let k = Keys::new();
    let cert = k.self_signed("ed25519", &["-algorithm", "ED25519"], &[]);
    assert!(matches!(
        cert::verify_data(&cert, Scheme::Ecdsa(HashAlg::Sha256), b"x", &[0; 64]),
        Err(VerifyError::Unsupported(_))
    ));
    let status = cert::verify_issuer(&cert, &[]).unwrap();
    assert!(
        matches!(&status, IssuerStatus::Unsupported { issuer, .. } if issuer.index.is_none()),
        "{status:?}"
    );
    assert_eq!(status.code(), "unsupported");
    assert!(matches!(
        cert::verify_data(b"not a certificate", Scheme::Sm2Sm3, b"x", &[0; 64]),
        Err(VerifyError::NotACertificate(_))
    ));
    assert!(cert::verify_issuer(b"not a certificate", &[]).is_err());
}

/// Two CAs that issued each other's certificates: the chain stops at the loop. OpenSSL
/// confirms both signatures.
#[test]
fn a_loop_of_issuers_ends_the_chain() {
    let k = Keys::new();
    let ec = ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"];
    k.self_signed("A", &ec, &[]);
    k.self_signed("B", &ec, &[]);
    let dir = k.path();
    std::fs::write(
        dir.join("ca.cnf"),
        "basicConstraints = critical,CA:TRUE\n\
         keyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n\
         authorityKeyIdentifier = keyid\n",
    )
    .unwrap();
    for (subject, issuer) in [("A", "B"), ("B", "A")] {
        let csr = format!("{subject}.csr");
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-key",
                &format!("{subject}.key"),
                "-subj",
                &format!("/C=CN/O=证书助手测试/CN={subject}"),
                "-out",
                &csr,
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{issuer}.der"),
                "-CAform",
                "DER",
                "-CAkey",
                &format!("{issuer}.key"),
                "-set_serial",
                "7",
                "-days",
                "2",
                "-extfile",
                "ca.cnf",
                "-outform",
                "DER",
                "-out",
                &format!("{subject}-by-{issuer}.der"),
            ],
        );
    }
    let a = read(dir, "A-by-B.der");
    let b = read(dir, "B-by-A.der");
    for (cert, issuer) in [("A-by-B.der", "B-by-A.der"), ("B-by-A.der", "A-by-B.der")] {
        let pem = |name: &str| -> PathBuf {
            let path = dir.join(format!("{name}.pem"));
            std::fs::write(&path, cert::to_pem(&read(dir, name))).unwrap();
            path
        };
        let (cert_pem, issuer_pem) = (pem(cert), pem(issuer));
        let out = Command::new("openssl")
            .args(["verify", "-partial_chain", "-CAfile"])
            .arg(&issuer_pem)
            .arg(&cert_pem)
            .output()
            .expect("openssl runs");
        assert!(out.status.success(), "OpenSSL: {cert} by {issuer}");
    }
    let chain = cert::build_chain(&a, &[&a, &b]).unwrap();
    assert_eq!(
        chain.links.iter().map(|l| l.index).collect::<Vec<_>>(),
        [None, Some(1)]
    );
    assert_eq!(chain.end, ChainEnd::Loop);
    assert!(chain.links.iter().all(|l| l.status.is_verified()));
    assert!(!chain.complete());
}
