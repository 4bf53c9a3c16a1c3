//! A real browser against the bridge: Debian's Chromium, driven by `playwright-core`
//! (tests/browser/bridge.test.mjs), talks to `certray run --headless` on two SoftHSM tokens.
//!
//! - A portal page on a second local origin (`http://localhost:8123`, listed in
//!   `[bridge] allowed_origins` and `page_pin_origins`) lists certificates cross-origin, signs
//!   with a PIN, proves its origin, and hears `token-removed` over SSE when a key is pulled.
//! - The same page on an origin that is not allowed (`http://localhost:8126`) is refused: its
//!   fetch and its EventSource fail (no CORS grant).
//! - The bridge's own check page (证书检测) renders the certificate cards in Chinese, switches
//!   to English, signs, and updates itself when the key is pulled.
//!
//! Pulling a key: SoftHSM is configured with `reinitialize_on_change = true, pcsc = true`, a
//! private pcscd with vicc's virtual card is the trigger: the token's directory is deleted and
//! the card removed, so the daemon re-initialises SoftHSM and reports `token-removed`.
//!
//! Screenshots (check-zh.png, check-en.png, portal.png, check-after-removal.png) are copied to
//! `target/screenshots/`.
//!
//! Needs the Debian packages `nodejs npm chromium fonts-noto-cjk` (plus the PKCS#11 and PC/SC
//! ones of tests/common) and `tests/browser/node_modules` (installed here with `npm ci` from
//! the committed package-lock.json when missing). It never downloads a browser.

use crate::common;

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::browser::{ensure_node_modules, require_browser_tools, run_node};
use common::pcsc::{Pcscd, Vicc};
use common::*;

const PIN: &str = "123456";
const SO_PIN: &str = "12345678";
/// The whole browser run (Chromium start, six scenarios, a key removal).
const NODE_TIMEOUT: Duration = Duration::from_secs(240);

// ---------------------------------------------------------------------------------------------
// A static file server for the portal page (a second local origin)
// ---------------------------------------------------------------------------------------------

/// Serves `portal.html` on 127.0.0.1 until the process ends; the page is reached as
/// `http://localhost:PORT` (Chromium resolves localhost to loopback itself).
pub(crate) struct StaticSite {
    pub(crate) origin: String,
}

impl StaticSite {
    /// On `preferred` when it is free, else on a port the OS picks.
    pub(crate) fn start(preferred: u16, page: &'static [u8]) -> StaticSite {
        let listener = TcpListener::bind(("127.0.0.1", preferred))
            .or_else(|_| TcpListener::bind(("127.0.0.1", 0)))
            .expect("bind a port for the portal page");
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || serve_one(stream, page));
            }
        });
        StaticSite {
            origin: format!("http://localhost:{port}"),
        }
    }
}

fn serve_one(mut stream: TcpStream, page: &[u8]) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&head);
    let target = line.split_whitespace().nth(1).unwrap_or("/");
    let path = target.split('?').next().unwrap_or("/");
    let (status, kind, body): (&str, &str, &[u8]) = if path == "/portal.html" || path == "/" {
        ("200 OK", "text/html; charset=utf-8", page)
    } else {
        ("404 Not Found", "text/plain; charset=utf-8", b"not found")
    };
    let header = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(header.as_bytes());
    let _ = stream.write_all(body);
}

// ---------------------------------------------------------------------------------------------
// The daemon
// ---------------------------------------------------------------------------------------------

/// `certray run --headless`, killed on drop; its stderr goes to a log file.
struct Daemon {
    child: Child,
    url: String,
    log: PathBuf,
}

impl Daemon {
    fn start(env: &[(&str, OsString)], config: &Path, log: PathBuf) -> Daemon {
        let mut child = certray(env)
            .arg("--config")
            .arg(config)
            .args(["run", "--headless"])
            .env("RUST_LOG", "certray=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create the daemon log"))
            .spawn()
            .expect("start certray run --headless");
        // It prints "证书助手已启动：http://127.0.0.1:PORT/" once it listens.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!(
                    "certray run printed no address within 30 s\n--- log ---\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let start = line
            .find("http://")
            .unwrap_or_else(|| panic!("no URL in: {line}"));
        let url = line[start..].trim().trim_end_matches('/').to_string();
        Daemon { child, url, log }
    }

    fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` from a local program (no Origin), parsed as JSON.
    fn get(&self, path: &str) -> serde_json::Value {
        let port = self.port();
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the bridge");
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or_else(|e| panic!("GET {path}: {e}: {text}"))
    }

    /// Wait until the bridge reports `tokens` tokens.
    fn wait_tokens(&self, tokens: u64) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = self.get("/v1/status");
            if status["tokens"] == tokens {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the bridge shows {status} instead of {tokens} tokens\n--- log ---\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token_dirs(hsm: &SoftHsm) -> BTreeSet<PathBuf> {
    std::fs::read_dir(hsm.dir().join("tokens"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

/// The directory where the screenshots are kept: `target/screenshots/`.
fn screenshot_target() -> PathBuf {
    // target/<profile>/certray → target/
    Path::new(env!("CARGO_BIN_EXE_certray"))
        .parent()
        .and_then(Path::parent)
        .expect("target dir")
        .join("screenshots")
}

#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
fn a_real_browser_uses_the_bridge_and_only_from_allowed_origins() {
    let started = Instant::now();
    let (node, npm) = require_browser_tools();
    ensure_node_modules(&npm);

    // Two keys: the RSA certificate of 张三 at 北京云杉 and the expiring EC one of 王五 at
    // 深圳未来.
    let hsm = SoftHsm::new();
    hsm.rsa_utf8_token("财务部 UKey", SO_PIN, PIN);
    let before = token_dirs(&hsm);
    hsm.init_token("研发部 UKey", SO_PIN, PIN);
    hsm.import(
        "研发部 UKey",
        PIN,
        "02",
        Some(&fixture("ec-expiring.der")),
        Some(&fixture("ec-expiring.key.der")),
        "ec-expiring",
    );
    let pulled_dir: Vec<PathBuf> = token_dirs(&hsm).difference(&before).cloned().collect();
    assert_eq!(pulled_dir.len(), 1, "{pulled_dir:?}");

    // The second origin (allowed, may send a PIN) and a refused one.
    let portal = StaticSite::start(8123, include_bytes!("../browser/portal.html"));
    let denied = StaticSite::start(8126, include_bytes!("../browser/portal.html"));

    // pcscd with the card in: removing it is what makes the daemon look again.
    let pcscd = Pcscd::start();
    let card = Vicc::insert(&pcscd);

    let config = hsm.dir().join("bridge.toml");
    std::fs::write(
        &config,
        format!(
            "[pkcs11]\nuse_defaults = false\n\
             modules = [{{ path = \"{SOFTHSM_MODULE}\", reinitialize_on_change = true, pcsc = true }}]\n\
             [bridge]\nlisten = \"127.0.0.1:0\"\n\
             allowed_origins = [\"{0}\"]\npage_pin_origins = [\"{0}\"]\n",
            portal.origin
        ),
    )
    .unwrap();
    let state = hsm.dir().join("state");
    let mut env = hsm.env().to_vec();
    env.extend(pcscd.env());
    env.push(("XDG_STATE_HOME", state.clone().into_os_string()));
    env.push(("XDG_DATA_HOME", hsm.dir().join("data").into_os_string()));
    env.push(("XDG_CONFIG_HOME", hsm.dir().join("config").into_os_string()));
    let daemon = Daemon::start(&env, &config, hsm.dir().join("daemon.log"));
    daemon.wait_tokens(2);
    let setup = started.elapsed();

    // The browser run.
    let shots = hsm.dir().join("screenshots");
    let browser_started = Instant::now();
    let mut card = Some(card);
    let mut pulled_at = None;
    let lines = run_node(
        &node,
        "bridge.test.mjs",
        &[
            ("CERTRAY_BRIDGE_URL", daemon.url.clone().into()),
            ("CERTRAY_PORTAL_URL", portal.origin.clone().into()),
            ("CERTRAY_DENIED_URL", denied.origin.clone().into()),
            ("CERTRAY_SCREENSHOT_DIR", shots.clone().into()),
            ("CERTRAY_PIN", PIN.into()),
        ],
        NODE_TIMEOUT,
        |line| {
            if line == "PULL" {
                // The key is pulled: its token store goes, then the card leaves the reader.
                std::fs::remove_dir_all(&pulled_dir[0]).unwrap();
                if let Some(card) = card.take() {
                    card.remove();
                }
                pulled_at = Some(Instant::now());
            }
        },
        || daemon.log_text(),
    );
    let browser = browser_started.elapsed();
    assert!(
        pulled_at.is_some(),
        "the script never asked to pull the key"
    );
    for scenario in [
        "check-page-zh",
        "check-page-en",
        "portal-allowed-origin",
        "portal-hears-key-removal",
        "check-page-live-update",
        "refused-origin",
    ] {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(&format!("ok {scenario}:"))),
            "no `ok {scenario}` line:\n{}",
            lines.join("\n")
        );
    }

    // The daemon agrees: one key left.
    daemon.wait_tokens(1);

    // The screenshots are real pictures, kept in target/screenshots/.
    let keep = screenshot_target();
    std::fs::create_dir_all(&keep).unwrap();
    for name in [
        "check-zh.png",
        "check-en.png",
        "portal.png",
        "check-after-removal.png",
    ] {
        let file = shots.join(name);
        let size = std::fs::metadata(&file)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
            .len();
        assert!(size > 10 * 1024, "{name} is only {size} bytes");
        let bytes = std::fs::read(&file).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{name} is not a PNG");
        std::fs::copy(&file, keep.join(name)).unwrap();
    }
    println!(
        "setup {:.1} s, browser {:.1} s, total {:.1} s; screenshots in {}",
        setup.as_secs_f64(),
        browser.as_secs_f64(),
        started.elapsed().as_secs_f64(),
        keep.display()
    );
}
