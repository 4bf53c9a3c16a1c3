//! An SM2 signature through certray's SKF backend (`SkfBackend`: the `certray skf-host`
//! process and its pipe) against the same `SKF_ECCSignData` called directly on softskf from
//! this program, in one run: medians of alternating batches and their ratio. Target: the host
//! process and the pipe add at most 20 % (ratio ≤ 1.2).
//!
//! Both sign the same e with the same logged-in key of softskf (tests/softskf, the test-only
//! stand-in for SKF USB keys): directly, one `SKF_ECCSignData` on an open container; through
//! certray, `Backend::sign` with the kept login (`Auth::Session`), which the host answers with
//! `SKF_OpenContainer`, `SKF_ECCSignData`, `SKF_CloseContainer`. Each signature certray returns
//! is checked against the certificate once before the timing starts.
//!
//! softskf is the library tests/softskf/build.sh built (`target/debug/libsoftskf.so`), or
//! `SOFTSKF_LIB` (scripts/bench-skf builds a release one). `cargo bench --bench skf_sign` (or
//! `scripts/bench-skf`) runs it in full; without `--bench` (as `cargo test --all-targets`
//! runs it) it makes a few signatures only.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use certray::model::{HashAlg, Pin, SignInput, TokenId};
use certray::token::skf::abi::{self, Functions, Handle};
use certray::token::skf::{SkfBackend, SkfOptions};
use certray::token::{Auth, Backend, SignRequest};
use support::{median, verdict};

const PIN: &str = "123456";
const CONTAINER: &str = "SM2-SIGN";

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (Debian package openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A softskf state directory with one device, one application and one SM2 container.
fn provision(dir: &Path) {
    openssl(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:SM2",
            "-out",
            "sm2.key",
        ],
        dir,
    );
    openssl(
        &[
            "req",
            "-new",
            "-x509",
            "-key",
            "sm2.key",
            "-sm3",
            "-sigopt",
            "distid:1234567812345678",
            "-subj",
            "/CN=certray SKF bench",
            "-days",
            "30",
            "-out",
            "sm2.crt",
        ],
        dir,
    );
    std::fs::write(
        dir.join("provision.toml"),
        format!(
            "[[device]]\nname = \"BENCH-01\"\n[[device.application]]\nname = \"APP\"\nuser_pin = \"{PIN}\"\nadmin_pin = \"12345678\"\n[[device.application.container]]\nname = \"{CONTAINER}\"\nsign_key = \"sm2.key\"\nsign_cert = \"sm2.crt\"\n"
        ),
    )
    .unwrap();
}

fn library() -> PathBuf {
    std::env::var_os("SOFTSKF_LIB")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debug/libsoftskf.so"))
}

/// softskf opened in this process, logged in, its container open.
struct Direct {
    f: Functions,
    container: Handle,
}

impl Direct {
    fn open(lib: &Path) -> Direct {
        let f = Functions::load(lib).expect("load softskf (tests/softskf/build.sh)");
        let c = |s: &str| std::ffi::CString::new(s).unwrap();
        let (dev_name, app_name, con_name, pin) = (c("BENCH-01"), c("APP"), c(CONTAINER), c(PIN));
        let mut dev: Handle = std::ptr::null_mut();
        let mut app: Handle = std::ptr::null_mut();
        let mut container: Handle = std::ptr::null_mut();
        let mut retries = 0;
        // SAFETY: the GM/T 0016 prototypes of the table, NUL-terminated names, out-pointers.
        unsafe {
            assert_eq!((f.connect_dev)(dev_name.as_ptr(), &mut dev), abi::SAR_OK);
            assert_eq!(
                (f.open_application)(dev, app_name.as_ptr().cast_mut(), &mut app),
                abi::SAR_OK
            );
            assert_eq!(
                (f.verify_pin)(app, abi::USER_TYPE, pin.as_ptr().cast_mut(), &mut retries),
                abi::SAR_OK
            );
            assert_eq!(
                (f.open_container)(app, con_name.as_ptr().cast_mut(), &mut container),
                abi::SAR_OK
            );
        }
        Direct { f, container }
    }

    fn sign(&self, e: &[u8; 32]) {
        let mut blob = abi::EccSignatureBlob::zeroed();
        // SAFETY: an open container, 32 bytes of e, a 128-byte blob to write.
        let rc = unsafe { (self.f.ecc_sign_data)(self.container, e.as_ptr(), 32, &mut blob) };
        assert_eq!(rc, abi::SAR_OK);
    }
}

fn main() {
    let full = support::full_run();
    let (batches, per_batch) = if full { (10, 50) } else { (1, 3) };
    let dir = tempfile::tempdir().expect("tempdir");
    provision(dir.path());
    // softskf reads SOFTSKF_DIR from the environment of the process that loads it: this one
    // (directly) and the host (inherited).
    // SAFETY: set before any other thread of this program starts.
    unsafe { std::env::set_var("SOFTSKF_DIR", dir.path()) };
    let lib = library();

    let backend = SkfBackend::spawn(
        &lib,
        SkfOptions {
            program: PathBuf::from(env!("CARGO_BIN_EXE_certray")),
            timeout: Duration::from_secs(30),
        },
    )
    .expect("the SKF host starts");
    let scans = backend.scan().wait().expect("scan");
    let token: TokenId = scans[0].token.id.clone();
    let cert = scans[0]
        .certificates
        .iter()
        .find(|c| c.has_private_key == certray::model::KeyPresence::Yes)
        .expect("the signing certificate")
        .clone();
    let message = b"certray SKF bench: an SM2 signature".to_vec();
    let request = |auth: Auth| SignRequest {
        token_id: token.clone(),
        key_id: cert.key_id.clone(),
        hash: HashAlg::Sm3,
        input: SignInput::Data(message.clone()),
        auth,
    };
    let first = backend
        .sign(request(Auth::Pin {
            pin: Pin::from(PIN),
            force: false,
            remember: true,
        }))
        .wait()
        .expect("the first signature logs in");
    certray::cert::verify_data(
        &cert.der,
        certray::cert::Scheme::Sm2Sm3,
        &message,
        &first.bytes,
    )
    .expect("the backend's signature verifies");

    let direct = Direct::open(&lib);
    let e = certray::cert::sm2_e(&sm2_point(&cert.der), b"1234567812345678", &message)
        .expect("an SM2 key");

    let (mut via_host, mut direct_times) = (Vec::new(), Vec::new());
    for _ in 0..batches {
        for _ in 0..per_batch {
            let t = Instant::now();
            direct.sign(&e);
            direct_times.push(t.elapsed());
        }
        for _ in 0..per_batch {
            let t = Instant::now();
            backend
                .sign(request(Auth::Session))
                .wait()
                .expect("a signature on the kept login");
            via_host.push(t.elapsed());
        }
    }
    let (h, d) = (median(&mut via_host), median(&mut direct_times));
    let ratio = h.as_secs_f64() / d.as_secs_f64();
    println!("SM2 signature, SKF_ECCSignData directly on softskf:       median {d:?}");
    println!("SM2 signature, SkfBackend (certray skf-host and its pipe): median {h:?}");
    println!(
        "ratio {ratio:.2} (target ≤ 1.2): {}",
        verdict(
            full,
            ratio <= 1.2,
            &format!("{} signatures", via_host.len())
        )
    );
}

/// The uncompressed SM2 point of a certificate.
fn sm2_point(der: &[u8]) -> Vec<u8> {
    use x509_parser::prelude::FromDer;
    let (_, x509) = x509_parser::certificate::X509Certificate::from_der(der).expect("certificate");
    x509.tbs_certificate
        .subject_pki
        .subject_public_key
        .data
        .to_vec()
}
