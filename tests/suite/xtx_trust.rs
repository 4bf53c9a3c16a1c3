//! The XTX endpoint's TLS trust (`certray::bridge::xtx::trust`) against the real thing, in a temporary
//! HOME: NSS's `certutil` (Debian package `libnss3-tools`) for the user database and a Firefox
//! profile, OpenSSL (`openssl`) as the referee of the certificates, and — behind
//! `CERTRAY_HEAVY_TESTS=1` — Debian's Chromium (`chromium`) loading a page over TLS from a
//! server that uses [`Trust::server_config`], without `--ignore-certificate-errors`, and the
//! system store (root).
//!
//! Seen on Debian 12 (NSS 3.87.1, OpenSSL 3.0, Chromium 156), and asserted below:
//! - Chromium reads `$HOME/.pki/nssdb`, trusts the installed CA for `https://127.0.0.1:PORT/`
//!   (the IP SAN) and `https://localhost:PORT/`, and refuses a self-signed certificate
//!   (`net::ERR_CERT_AUTHORITY_INVALID`).
//! - Chromium honours the name constraints of a user-added CA: a certificate for
//!   `example.com` from a CA made the same way (its key kept for the test) fails with
//!   `net::ERR_CERT_INVALID`, while the same CA's certificate for 127.0.0.1 loads.
//! - OpenSSL rejects that certificate with "permitted subtree violation".

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use certray::bridge::xtx::trust::{
    self, InstallOptions, LocalCa, NICKNAME_PREFIX, RemoveOptions, Renewal, StoreKind, Trust,
};
use certray::error::Code;
use common::{output_text, require, run, run_unchecked};
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CHROMIUM: &str = "/usr/bin/chromium";
const PAGE_MARKER: &str = "certray-xtx-tls-ok";

fn certutil() -> PathBuf {
    require("certutil", "libnss3-tools")
}

fn openssl() -> PathBuf {
    require("openssl", "openssl")
}

/// A temporary HOME with certray's state dir inside it (`~/.local/state/certray`), so that
/// scanning HOME covers everything certray wrote.
struct Home {
    _tmp: tempfile::TempDir,
    home: PathBuf,
    state: PathBuf,
}

impl Home {
    fn new() -> Home {
        let tmp = tempfile::tempdir().unwrap();
        let home = tmp.path().join("home");
        let state = home.join(".local/state/certray");
        std::fs::create_dir_all(&home).unwrap();
        Home {
            _tmp: tmp,
            home,
            state,
        }
    }

    fn trust(&self) -> Trust {
        Trust::new(&self.state, &self.home)
    }

    fn nssdb(&self) -> PathBuf {
        self.home.join(".pki/nssdb")
    }

    /// A Firefox profile directory with an NSS database, as Firefox makes it.
    fn firefox_profile(&self, name: &str) -> PathBuf {
        let dir = self.home.join(".mozilla/firefox").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        new_nssdb(&dir);
        dir
    }
}

fn new_nssdb(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    run(Command::new(certutil())
        .args(["-N", "--empty-password", "-d"])
        .arg(sql(dir)));
}

fn sql(dir: &Path) -> String {
    format!("sql:{}", dir.display())
}

/// `certutil -L -d sql:DIR`: the whole listing.
fn certutil_list(db: &Path) -> String {
    output_text(&run(Command::new(certutil())
        .arg("-L")
        .arg("-d")
        .arg(sql(db))))
}

/// The certray lines of the listing: (nickname, trust flags).
fn certray_entries(db: &Path) -> Vec<(String, String)> {
    certutil_list(db)
        .lines()
        .filter(|l| l.starts_with(NICKNAME_PREFIX))
        .map(|l| {
            let (nick, trust) = l.trim_end().rsplit_once(' ').unwrap();
            (nick.trim_end().to_string(), trust.to_string())
        })
        .collect()
}

/// The certificate NSS holds under `nick`, as DER.
fn nss_cert(db: &Path, nick: &str) -> Vec<u8> {
    let out = run(Command::new(certutil())
        .arg("-L")
        .arg("-d")
        .arg(sql(db))
        .args(["-n", nick, "-r"]));
    out.stdout
}

fn pem_der(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path).unwrap().to_vec()
}

/// `openssl ARGS…`, whatever its status: (success, stdout + stderr).
fn openssl_try(args: &[&str]) -> (bool, String) {
    let out = run_unchecked(Command::new(openssl()).args(args));
    (out.status.success(), output_text(&out))
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[cfg(unix)]
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every PEM private key block in any file under `root`: (file, block).
fn private_key_blocks(root: &Path) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let path = entry.path();
            let ty = entry.file_type().unwrap();
            if ty.is_dir() {
                stack.push(path);
            } else if ty.is_file() {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                let mut rest = text.as_str();
                while let Some(start) = rest.find("-----BEGIN ") {
                    let block = &rest[start..];
                    let header_end = block.find('\n').unwrap_or(block.len());
                    let is_key = block[..header_end].contains("PRIVATE KEY-----");
                    let end = block
                        .find("-----END ")
                        .and_then(|e| block[e..].find("-----\n").map(|n| e + n + 6))
                        .unwrap_or(block.len());
                    if is_key {
                        found.push((path.clone(), block[..end].to_string()));
                    }
                    rest = &block[end.max(1)..];
                }
            }
        }
    }
    found
}

/// The SubjectPublicKeyInfo (PEM) of a private key block, by OpenSSL.
fn public_of_key(block: &str, scratch: &Path) -> String {
    let f = scratch.join("key-under-test.pem");
    std::fs::write(&f, block).unwrap();
    let out = run(Command::new(openssl())
        .args(["pkey", "-pubout", "-in"])
        .arg(&f));
    std::fs::remove_file(&f).unwrap();
    String::from_utf8(out.stdout).unwrap()
}

/// The SubjectPublicKeyInfo (PEM) of a certificate, by OpenSSL.
fn public_of_cert(cert: &Path) -> String {
    let out = run(Command::new(openssl())
        .args(["x509", "-noout", "-pubkey", "-in"])
        .arg(cert));
    String::from_utf8(out.stdout).unwrap()
}

/// Write `der` as PEM to `dir/name`.
fn write_pem(dir: &Path, name: &str, der: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, certray::cert::to_pem(der)).unwrap();
    p
}

// ---------------------------------------------------------------------------------------------
// The quick tests: certutil and OpenSSL
// ---------------------------------------------------------------------------------------------

/// install → the CA in the user's NSS database and a Firefox profile, trusted for TLS
/// servers; the server certificate verifies under it with OpenSSL for both names; files and
/// directory private; no CA private key anywhere; status before and after; install again
/// keeps the CA; a Firefox profile made later gets it; renew makes a new CA and removes the
/// old one; remove takes everything away.
#[test]
fn install_status_renew_remove_in_a_temporary_home() {
    let h = Home::new();
    let profile = h.firefox_profile("abcd1234.default-release");
    let t = h.trust();

    // Before: nothing.
    let before = t.status();
    assert_eq!(before.identity, None);
    assert_eq!(before.renewal, Some(Renewal::NotInstalled));
    assert!(before.needs_renewal());
    let user = &before.stores[0];
    assert_eq!(user.kind, StoreKind::UserNss);
    assert_eq!(user.path, h.nssdb());
    assert!(user.current.is_none() && user.error.is_some(), "{user:?}");
    let ff = before
        .stores
        .iter()
        .find(|s| s.kind == StoreKind::Firefox)
        .expect("the Firefox profile is found");
    assert_eq!(ff.path, profile);
    assert_eq!((ff.current.as_ref(), ff.error.as_ref()), (None, None));
    let e = t.server_config().unwrap_err();
    assert!(matches!(e, trust::Error::NotInstalled(_)), "{e}");
    assert_eq!(e.code(), Code::Io);

    // Install.
    let report = t.install(InstallOptions::default()).unwrap();
    assert_eq!(report.renewed, Some(Renewal::NotInstalled));
    assert_eq!(report.system, None);
    let id = report.identity.clone();
    assert!(id.nickname.starts_with(NICKNAME_PREFIX), "{}", id.nickname);
    assert_eq!(
        report.stores,
        vec![
            (StoreKind::UserNss, h.nssdb()),
            (StoreKind::Firefox, profile.clone())
        ]
    );
    // certutil lists it in both databases, trusted to issue TLS server certificates.
    for db in [h.nssdb(), profile.clone()] {
        let listing = certutil_list(&db);
        assert_eq!(
            certray_entries(&db),
            vec![(id.nickname.clone(), "C,,".to_string())],
            "{listing}"
        );
        assert_eq!(nss_cert(&db, &id.nickname), pem_der(&t.ca_path()));
        // Nothing of certray's is left beside NSS's own files.
        let mut files: Vec<String> = std::fs::read_dir(&db)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        assert_eq!(
            files,
            ["cert9.db", "key4.db", "pkcs11.txt"],
            "{}",
            db.display()
        );
        // NSS holds no private key at all.
        let keys = run_unchecked(Command::new(certutil()).arg("-K").arg("-d").arg(sql(&db)));
        assert!(
            output_text(&keys).contains("no keys found"),
            "{}",
            output_text(&keys)
        );
    }
    #[cfg(unix)]
    {
        assert_eq!(mode(t.dir()), 0o700);
        for f in [t.ca_path(), t.server_cert_path(), t.server_key_path()] {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
        assert_eq!(mode(&h.nssdb()), 0o700);
    }
    assert_eq!(
        id.ca_sha256,
        certray::cert::sha256_hex(&pem_der(&t.ca_path()))
    );

    // OpenSSL: the chain verifies, for each name, and the CA is constrained and critical.
    let ca = path_str(&t.ca_path()).to_string();
    let server = path_str(&t.server_cert_path()).to_string();
    for extra in [
        &[][..],
        &["-verify_hostname", "localhost"],
        &["-verify_ip", "127.0.0.1"],
        &["-purpose", "sslserver"],
    ] {
        let mut args = vec!["verify", "-CAfile", &ca];
        args.extend_from_slice(extra);
        args.push(&server);
        let (ok, out) = openssl_try(&args);
        assert!(ok && out.contains(": OK"), "{args:?}: {out}");
    }
    let (ok, out) = openssl_try(&[
        "verify",
        "-CAfile",
        &ca,
        "-verify_hostname",
        "example.com",
        &server,
    ]);
    assert!(!ok, "the server certificate is not for example.com: {out}");
    let (_, ca_text) = openssl_try(&["x509", "-noout", "-text", "-in", &ca]);
    for want in [
        "X509v3 Name Constraints: critical",
        "Permitted:",
        "DNS:localhost",
        "IP:127.0.0.1/255.255.255.255",
        "X509v3 Basic Constraints: critical",
        "CA:TRUE, pathlen:0",
        "Certificate Sign",
    ] {
        assert!(ca_text.contains(want), "CA lacks {want:?}:\n{ca_text}");
    }
    let (_, server_text) = openssl_try(&["x509", "-noout", "-text", "-in", &server]);
    for want in [
        "DNS:localhost",
        "IP Address:127.0.0.1",
        "TLS Web Server Authentication",
        "Digital Signature",
        "CA:FALSE",
    ] {
        assert!(
            server_text.contains(want),
            "server certificate lacks {want:?}:\n{server_text}"
        );
    }
    assert!(!server_text.contains("CA:TRUE"));

    // No file under HOME (state dir included) holds a private key but the server's.
    let scratch = tempfile::tempdir().unwrap();
    let keys = private_key_blocks(&h.home);
    assert_eq!(keys.len(), 1, "private keys found: {keys:?}");
    assert_eq!(keys[0].0, t.server_key_path());
    let key_pub = public_of_key(&keys[0].1, scratch.path());
    assert_eq!(key_pub, public_of_cert(&t.server_cert_path()));
    assert_ne!(key_pub, public_of_cert(&t.ca_path()));

    // Status after.
    let after = t.status();
    let now = time::OffsetDateTime::now_utc();
    assert_eq!(after.identity.as_ref(), Some(&id));
    assert_eq!(after.renewal, None);
    assert!(!after.needs_renewal());
    let days = after.server_days_left(now).unwrap();
    assert!((728..=730).contains(&days), "{days}");
    assert_eq!(after.stores.len(), 2, "{:?}", after.stores);
    for s in &after.stores {
        assert!(s.trusts_current(), "{s:?}");
        assert!(s.stale.is_empty() && s.error.is_none(), "{s:?}");
    }
    // The server configuration loads, chain = server certificate then CA.
    let (chain, _key) = t.server_identity().unwrap();
    assert_eq!(chain[0].as_ref(), &pem_der(&t.server_cert_path())[..]);
    assert_eq!(chain[1].as_ref(), &pem_der(&t.ca_path())[..]);
    let config = t.server_config().unwrap();
    assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);

    // Install again: the same CA, still one entry per database; a profile made since gets it.
    let later = h.firefox_profile("zz99.second");
    let again = t.install(InstallOptions::default()).unwrap();
    assert_eq!(again.renewed, None);
    assert_eq!(again.identity, id);
    assert!(again.removed_stale.is_empty());
    for db in [h.nssdb(), profile.clone(), later.clone()] {
        assert_eq!(
            certray_entries(&db),
            vec![(id.nickname.clone(), "C,,".to_string())]
        );
    }

    // Renew: a new CA, the old one leaves every database.
    let renewed = t
        .install(InstallOptions {
            renew: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(renewed.renewed, Some(Renewal::Requested));
    let new = renewed.identity.clone();
    assert_ne!(new.id, id.id);
    assert_ne!(new.ca_sha256, id.ca_sha256);
    let mut stale = renewed.removed_stale.clone();
    stale.dedup();
    assert_eq!(stale, vec![id.nickname.clone()]);
    assert_eq!(
        renewed.removed_stale.len(),
        3,
        "{:?}",
        renewed.removed_stale
    );
    for db in [h.nssdb(), profile.clone(), later.clone()] {
        assert_eq!(
            certray_entries(&db),
            vec![(new.nickname.clone(), "C,,".to_string())]
        );
    }
    let old_ca = write_pem(scratch.path(), "old-ca.pem", &id.ca.der);
    let (ok, out) = openssl_try(&["verify", "-CAfile", path_str(&old_ca), &server]);
    assert!(
        !ok,
        "the old CA must not verify the new server certificate: {out}"
    );
    let (ok, out) = openssl_try(&["verify", "-CAfile", &ca, &server]);
    assert!(ok, "{out}");

    // Remove: gone from every database and from the state dir.
    let removed = t.remove(RemoveOptions::default()).unwrap();
    assert_eq!(removed.stores.len(), 3);
    for (_, _, nicks) in &removed.stores {
        assert_eq!(nicks, &vec![new.nickname.clone()]);
    }
    for db in [h.nssdb(), profile, later] {
        let listing = certutil_list(&db);
        assert!(!listing.contains(NICKNAME_PREFIX), "{listing}");
    }
    assert!(!t.dir().exists(), "{} is left", t.dir().display());
    assert!(private_key_blocks(&h.home).is_empty());
    let gone = t.status();
    assert_eq!(gone.identity, None);
    assert_eq!(gone.renewal, Some(Renewal::NotInstalled));
    for s in &gone.stores {
        assert!(s.current.is_none() && s.stale.is_empty(), "{s:?}");
    }
    assert!(t.server_config().is_err());
}

/// A CA made exactly as `install` makes it, its key kept for this test: it signs a
/// certificate for `example.com` and one for `127.0.0.2`, which OpenSSL rejects because of
/// the name constraints, while its server certificate verifies.
#[test]
fn name_constraints_make_openssl_reject_other_names() {
    let dir = tempfile::tempdir().unwrap();
    let ca = LocalCa::generate(time::OffsetDateTime::now_utc()).unwrap();
    let server = ca.issue_server().unwrap();
    let other_dns = ca.issue(&["example.com"]).unwrap();
    let other_ip = ca.issue(&["127.0.0.2"]).unwrap();
    let ca_der = ca.destroy();
    let ca = write_pem(dir.path(), "ca.pem", &ca_der);
    let ca = path_str(&ca);
    let server = write_pem(dir.path(), "server.pem", &server.cert_der);
    let (ok, out) = openssl_try(&["verify", "-CAfile", ca, path_str(&server)]);
    assert!(ok, "{out}");
    for (name, cert) in [("example.com", &other_dns), ("127.0.0.2", &other_ip)] {
        let file = write_pem(dir.path(), &format!("{name}.pem"), &cert.cert_der);
        let (ok, out) = openssl_try(&["verify", "-CAfile", ca, path_str(&file)]);
        assert!(!ok, "OpenSSL accepted {name}: {out}");
        assert!(out.contains("permitted subtree violation"), "{name}: {out}");
    }
}

/// The identity `install` leaves serves TLS that OpenSSL's client trusts under the CA, for
/// both names, through `Trust::tls_acceptor`.
#[test]
fn tls_acceptor_serves_the_installed_identity() {
    let h = Home::new();
    let t = h.trust();
    t.install(InstallOptions::default()).unwrap();
    let server = TlsServer::start(t.tls_acceptor().unwrap());
    let ca = t.ca_path();
    for (name, check) in [
        ("localhost", ["-verify_hostname", "localhost"]),
        ("127.0.0.1", ["-verify_ip", "127.0.0.1"]),
    ] {
        let mut cmd = Command::new(openssl());
        cmd.args(["s_client", "-connect"])
            .arg(format!("127.0.0.1:{}", server.port))
            .args(["-CAfile", path_str(&ca), "-verify_return_error"])
            .args(check)
            .args(["-servername", name, "-ign_eof"]);
        let out = run_with_input(&mut cmd, b"GET / HTTP/1.0\r\n\r\n");
        let text = output_text(&out);
        assert!(out.status.success(), "{name}: {text}");
        assert!(
            text.contains("Verify return code: 0 (ok)"),
            "{name}: {text}"
        );
        assert!(text.contains(PAGE_MARKER), "{name}: {text}");
    }
    assert_eq!(server.served(), 2);
}

/// Remove with nothing installed (no NSS database, no state) does nothing and succeeds.
#[test]
fn remove_with_nothing_installed_is_fine() {
    let h = Home::new();
    let report = h.trust().remove(RemoveOptions::default()).unwrap();
    assert!(report.stores.is_empty() && report.files_removed.is_empty());
}

fn run_with_input(cmd: &mut Command, input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

// ---------------------------------------------------------------------------------------------
// A tiny HTTPS server
// ---------------------------------------------------------------------------------------------

/// Serves one HTML page over TLS on 127.0.0.1 (a port the OS picks) until dropped, and
/// counts the requests it answered (a request is only read after a completed handshake).
struct TlsServer {
    port: u16,
    served: Arc<AtomicUsize>,
    _rt: tokio::runtime::Runtime,
}

impl TlsServer {
    fn start(acceptor: tokio_rustls::TlsAcceptor) -> TlsServer {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let served = Arc::new(AtomicUsize::new(0));
        let count = served.clone();
        rt.spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let count = count.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 65536 {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    let body = format!(
                        "<!doctype html><html><head><title>certray</title></head><body><p id=\"m\">{PAGE_MARKER}</p></body></html>"
                    );
                    let response = format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    if tls.write_all(response.as_bytes()).await.is_ok() {
                        count.fetch_add(1, Ordering::SeqCst);
                    }
                    let _ = tls.shutdown().await;
                });
            }
        });
        TlsServer {
            port,
            served,
            _rt: rt,
        }
    }

    fn served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

/// An acceptor for a certificate and key (PEM).
fn acceptor_for(cert_der: &CertificateDer<'static>, key_pem: &str) -> tokio_rustls::TlsAcceptor {
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert_der.clone()], key)
        .unwrap();
    Arc::new(config).into()
}

// ---------------------------------------------------------------------------------------------
// Heavy: Chromium and the system store
// ---------------------------------------------------------------------------------------------

/// What headless Chromium made of a URL: the DOM it dumped and its log.
struct Load {
    dom: String,
    log: String,
}

impl Load {
    fn loaded(&self) -> bool {
        self.dom.contains(PAGE_MARKER)
    }

    /// Chromium's "Page load failed: net::ERR_…" line, if any.
    fn failure(&self) -> Option<&str> {
        self.log
            .lines()
            .find_map(|l| l.split_once("Page load failed: ").map(|(_, e)| e.trim()))
    }
}

/// Debian's Chromium, headless, with `HOME` = `home` (so that it reads `home/.pki/nssdb`) and a
/// fresh profile; never `--ignore-certificate-errors`.
fn chromium_load(home: &Path, url: &str, extra: &[&str]) -> Load {
    let chromium = require(CHROMIUM, "chromium");
    let profile = tempfile::tempdir().unwrap();
    let mut child = Command::new(chromium)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_CACHE_HOME")
        .env_remove("XDG_DATA_HOME")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--password-store=basic",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .args(["--dump-dom", url])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "chromium did not finish within 120 s:\n{}",
                output_text(&out)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "chromium: {}", output_text(&out));
    Load {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        log: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Chromium trusts the installed CA for https://127.0.0.1 (IP SAN) and https://localhost, no
/// longer after `remove`, and refuses an untrusted self-signed certificate (negative control). Then, whether Chromium
/// honours the name constraints of a user-added CA: a CA made the same way, its key kept for
/// the test and added with certutil, signs `example.com` (mapped to 127.0.0.1) — refused —
/// and `127.0.0.1` — loads (so the refusal is the constraint's, not a missing trust).
#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
fn chromium_trusts_the_installed_ca_and_nothing_else() {
    require(CHROMIUM, "chromium");
    let h = Home::new();
    let t = h.trust();
    t.install(InstallOptions::default()).unwrap();

    let server = TlsServer::start(t.server_config().unwrap().into());
    for host in ["127.0.0.1", "localhost"] {
        let url = format!("https://{host}:{}/", server.port);
        let load = chromium_load(&h.home, &url, &[]);
        assert!(
            load.loaded(),
            "Chromium did not load {url} (failure: {:?}):\n{}\n{}",
            load.failure(),
            load.dom,
            load.log
        );
    }
    assert!(server.served() >= 2, "served {}", server.served());

    // After `remove`, the same server (its configuration still in memory) is refused: the
    // trust came from the NSS database, and remove took it away.
    t.remove(RemoveOptions::default()).unwrap();
    let served = server.served();
    let url = format!("https://127.0.0.1:{}/", server.port);
    let load = chromium_load(&h.home, &url, &[]);
    assert!(!load.loaded(), "Chromium still trusts it after remove");
    assert_eq!(
        load.failure(),
        Some("net::ERR_CERT_AUTHORITY_INVALID"),
        "{}",
        load.log
    );
    assert_eq!(server.served(), served);

    // Negative control: a self-signed certificate for the same names, not in NSS.
    let untrusted =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .unwrap();
    let bad = TlsServer::start(acceptor_for(
        untrusted.cert.der(),
        &untrusted.signing_key.serialize_pem(),
    ));
    let url = format!("https://127.0.0.1:{}/", bad.port);
    let load = chromium_load(&h.home, &url, &[]);
    assert!(!load.loaded(), "Chromium loaded {url}:\n{}", load.dom);
    assert_eq!(
        load.failure(),
        Some("net::ERR_CERT_AUTHORITY_INVALID"),
        "{}",
        load.log
    );
    assert_eq!(bad.served(), 0);

    // Name constraints, in another HOME that trusts a CA made the same way.
    let h2 = Home::new();
    let ca = LocalCa::generate(time::OffsetDateTime::now_utc()).unwrap();
    let inside = ca.issue_server().unwrap();
    let outside = ca.issue(&["example.com"]).unwrap();
    let ca_pem = write_pem(&h2.home, "ca.pem", ca.cert_der());
    drop(ca);
    new_nssdb(&h2.nssdb());
    run(Command::new(certutil())
        .args([
            "-A",
            "-n",
            "certray test constrained CA",
            "-t",
            "C,,",
            "-a",
            "-i",
        ])
        .arg(&ca_pem)
        .arg("-d")
        .arg(sql(&h2.nssdb())));
    let resolve = "--host-resolver-rules=MAP example.com 127.0.0.1";
    let good = TlsServer::start(acceptor_for(&inside.cert_der, &inside.key_pem));
    let url = format!("https://127.0.0.1:{}/", good.port);
    let load = chromium_load(&h2.home, &url, &[resolve]);
    assert!(
        load.loaded(),
        "control: {url}: {:?}\n{}",
        load.failure(),
        load.log
    );
    let evil = TlsServer::start(acceptor_for(&outside.cert_der, &outside.key_pem));
    let url = format!("https://example.com:{}/", evil.port);
    let load = chromium_load(&h2.home, &url, &[resolve]);
    assert!(
        !load.loaded(),
        "Chromium ignored the name constraints:\n{}",
        load.dom
    );
    let failure = load.failure().unwrap_or_default().to_string();
    eprintln!("Chromium on example.com from the constrained CA: {failure}");
    assert!(failure.starts_with("net::ERR_CERT_"), "{}", load.log);
    assert_eq!(evil.served(), 0);

    // Control: the same setup with a CA that has no name constraints loads example.com, so
    // the refusal above is the constraints' doing.
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "certray test unconstrained CA");
    let free_key = rcgen::KeyPair::generate().unwrap();
    let free_ca = params.self_signed(&free_key).unwrap();
    let free_ca_pem = write_pem(&h2.home, "free-ca.pem", free_ca.der());
    run(Command::new(certutil())
        .args([
            "-A",
            "-n",
            "certray test unconstrained CA",
            "-t",
            "C,,",
            "-a",
            "-i",
        ])
        .arg(&free_ca_pem)
        .arg("-d")
        .arg(sql(&h2.nssdb())));
    let mut leaf = rcgen::CertificateParams::new(vec!["example.com".to_string()]).unwrap();
    leaf.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let issuer = rcgen::Issuer::from_params(&params, &free_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let fine = TlsServer::start(acceptor_for(leaf_cert.der(), &leaf_key.serialize_pem()));
    let url = format!("https://example.com:{}/", fine.port);
    let load = chromium_load(&h2.home, &url, &[resolve]);
    assert!(
        load.loaded(),
        "control: an unconstrained CA's example.com did not load: {:?}\n{}",
        load.failure(),
        load.log
    );
}

/// `install --system` as root puts the CA into Debian's store, which OpenSSL then trusts by
/// default; `remove --system` takes it out again. Without root, both are refused.
#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
fn system_store_install_and_remove() {
    let h = Home::new();
    let t = h.trust();
    let system = InstallOptions {
        system: true,
        ..Default::default()
    };
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        let e = t.install(system).unwrap_err();
        assert!(matches!(e, trust::Error::NotRoot), "{e}");
        assert!(e.to_string().contains("sudo"), "{e}");
        let e = t.remove(RemoveOptions { system: true }).unwrap_err();
        assert!(matches!(e, trust::Error::NotRoot), "{e}");
        assert!(!t.dir().exists(), "nothing is made before the refusal");
        return;
    }
    require("update-ca-certificates", "ca-certificates");
    let bundle = trust::SYSTEM_BUNDLE;
    let server = path_str(&t.server_cert_path()).to_string();
    let report = t.install(system).unwrap();
    let file = report.system.clone().expect("a system store file");
    assert!(
        file.starts_with(trust::SYSTEM_ANCHOR_DIR),
        "{}",
        file.display()
    );
    assert_eq!(pem_der(&file), report.identity.ca.der);
    let status = t.status();
    assert!(status.system.trusts_current(), "{:?}", status.system);
    assert!(status.system_bundle);
    let (ok, out) = openssl_try(&[
        "verify",
        "-CAfile",
        bundle,
        "-verify_ip",
        "127.0.0.1",
        &server,
    ]);
    assert!(
        ok,
        "the system bundle does not verify the server certificate: {out}"
    );

    // A plain remove leaves the system store (and says so); --system removes it.
    let plain = t.remove(RemoveOptions::default()).unwrap();
    assert_eq!(plain.system_left, vec![file.clone()]);
    assert!(file.exists());
    let removed = t.remove(RemoveOptions { system: true }).unwrap();
    assert_eq!(removed.system_removed, vec![file.clone()]);
    assert!(!file.exists());
    let status = t.status();
    assert_eq!(status.system.current, None);
    assert!(status.system.stale.is_empty(), "{:?}", status.system);
    let ca_pem = certray::cert::to_pem(&report.identity.ca.der);
    let text = std::fs::read_to_string(bundle).unwrap();
    assert!(!text.contains(ca_pem.trim()), "the CA is still in {bundle}");
    // No link in /etc/ssl/certs is left pointing at a certray file (update-ca-certificates
    // leaves them dangling unless run with --fresh).
    let links: Vec<PathBuf> = std::fs::read_dir("/etc/ssl/certs")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            std::fs::read_link(p)
                .is_ok_and(|t| t.to_string_lossy().contains(trust::SYSTEM_FILE_PREFIX))
        })
        .collect();
    assert!(links.is_empty(), "links left: {links:?}");
}

/// A Firefox profile whose database NSS cannot open is reported, and does not keep the CA
/// from the user's own database.
#[test]
fn a_broken_firefox_profile_is_reported_not_fatal() {
    let h = Home::new();
    let broken = h.home.join(".mozilla/firefox/broken.default");
    std::fs::create_dir_all(&broken).unwrap();
    std::fs::write(broken.join("cert9.db"), b"this is not an SQLite database").unwrap();
    let t = h.trust();
    let report = t.install(InstallOptions::default()).unwrap();
    assert_eq!(report.stores, vec![(StoreKind::UserNss, h.nssdb())]);
    assert_eq!(report.failed.len(), 1, "{:?}", report.failed);
    let (kind, path, why) = &report.failed[0];
    assert_eq!((*kind, path), (StoreKind::Firefox, &broken));
    assert!(why.contains("certutil"), "{why}");
    assert_eq!(
        certray_entries(&h.nssdb()),
        vec![(report.identity.nickname.clone(), "C,,".to_string())]
    );
    let status = t.status();
    let s = status.stores.iter().find(|s| s.path == broken).unwrap();
    assert!(s.error.is_some() && s.current.is_none(), "{s:?}");
    let removed = t.remove(RemoveOptions::default()).unwrap();
    assert_eq!(removed.failed.len(), 1, "{:?}", removed.failed);
    assert!(certray_entries(&h.nssdb()).is_empty());
}

/// An identity made 710 days ago (20 days left) or 800 days ago (expired) is reported as such
/// by `status`, and `install` replaces it with a new CA.
#[test]
fn expiring_and_expired_identities_are_renewed_by_install() {
    let now = time::OffsetDateTime::now_utc();
    for (age_days, expect_expired) in [(710, false), (800, true)] {
        let h = Home::new();
        let t = h.trust();
        let ca = LocalCa::generate(now - time::Duration::days(age_days)).unwrap();
        let server = ca.issue_server().unwrap();
        let ca_der = ca.destroy();
        std::fs::create_dir_all(t.dir()).unwrap();
        std::fs::write(t.ca_path(), certray::cert::to_pem(&ca_der)).unwrap();
        std::fs::write(t.server_cert_path(), server.cert_pem()).unwrap();
        std::fs::write(t.server_key_path(), server.key_pem.as_bytes()).unwrap();

        let status = t.status();
        let old = status.identity.clone().expect("the old identity loads");
        match status.renewal {
            Some(Renewal::Expired) => assert!(expect_expired),
            Some(Renewal::Expiring { days_left }) => {
                assert!(!expect_expired);
                assert!((19..=20).contains(&days_left), "{days_left}");
            }
            other => panic!("{age_days} days old: {other:?}"),
        }
        let report = t.install(InstallOptions::default()).unwrap();
        assert_eq!(report.renewed, status.renewal);
        assert_ne!(report.identity.ca_sha256, old.ca_sha256);
        assert_eq!(t.status().renewal, None);
        let (ok, out) = openssl_try(&[
            "verify",
            "-CAfile",
            path_str(&t.ca_path()),
            path_str(&t.server_cert_path()),
        ]);
        assert!(ok, "{out}");
    }
}
