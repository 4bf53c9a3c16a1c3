//! SKF keys through the running daemon (`certray run --headless`) and `certray watch`:
//! softskf (tests/softskf, the test-only STAND-IN for GM/T 0016 USB keys) in the daemon's
//! `certray skf-host` process. SKF.md §5.3: SM2 signatures over `/v1/sign` verified by
//! OpenSSL, side by side (9); insertion and removal events, also in the middle of a
//! signature (7); a host that crashes leaves the daemon serving (8).

use crate::common;

use std::ffi::OsString;
use std::io::BufRead;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use common::bridge::Daemon;
use common::skf::{self, SoftSkf};
use common::*;
use serde_json::{Value, json};

const LEGACY: &str = "http://legacy.localhost:8124";
const DATA: &str = "纳税申报表 SM2 · certray SKF bridge test\n";

fn extra_config() -> String {
    format!(
        "[skf]\nuse_defaults = false\ntimeout_ms = 3000\nlibraries = [{:?}]\n[bridge]\nallowed_origins = [\"{LEGACY}\"]\npage_pin_origins = [\"{LEGACY}\"]\n",
        skf::library().display().to_string()
    )
}

fn daemon(skf: &SoftSkf, hsm: &SoftHsm, extra_env: &[(&'static str, &str)]) -> Daemon {
    let extra: Vec<(&'static str, OsString)> = skf
        .env()
        .into_iter()
        .chain(extra_env.iter().map(|(k, v)| (*k, OsString::from(v))))
        .collect();
    Daemon::start_with(hsm, &extra_config(), move |cmd| {
        cmd.env_remove("SOFTSKF_QUIRKS")
            .env_remove("SOFTSKF_FAULT")
            .envs(extra.iter().map(|(k, v)| (*k, v)));
    })
}

/// The SM2 certificate's id as the bridge lists it, once it is there (within `secs`).
fn sm2_cert(d: &Daemon, skf: &SoftSkf, secs: u64) -> Option<String> {
    let der = skf.cert_der(skf::SM2_CONTAINER, "sign");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.der");
    std::fs::write(&p, der).unwrap();
    let sha = openssl_sha256(&p);
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let list = d.get("/v1/certificates").send().expect(200);
        let found = list["certificates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["sha256"] == sha.as_str())
            .map(|c| c["id"].as_str().unwrap().to_owned());
        if found.is_some() || Instant::now() >= deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sign(d: &Daemon, cert: &str, pin: &str) -> common::bridge::Response {
    d.post_json(
        "/v1/sign",
        &json!({"certificate_id": cert, "data": B64.encode(DATA), "pin": pin, "hash": "sm3"}),
    )
    .origin(LEGACY)
    .send()
}

fn verified(skf: &SoftSkf, answer: &Value) {
    let sig = B64.decode(answer["signature"].as_str().unwrap()).unwrap();
    let (ok, why) = skf::openssl_sm2_verify(
        &skf.cert_der(skf::SM2_CONTAINER, "sign"),
        DATA.as_bytes(),
        &sig,
    );
    assert!(ok, "OpenSSL refused the bridge's SM2 signature: {why}");
}

#[test]
fn skf_daemon_signs_sm2_side_by_side_and_follows_the_key_out_and_in() {
    let skf = SoftSkf::standard();
    let hsm = SoftHsm::new();
    let d = daemon(&skf, &hsm, &[]);
    let cert = sm2_cert(&d, &skf, 10).expect("the SM2 certificate is served");
    verified(&skf, &sign(&d, &cert, "123456").expect(200));

    // Four signatures at once: one library, its calls serialised by its host; each one
    // verifies.
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| sign(&d, &cert, "123456").expect(200)))
            .collect();
        for h in handles {
            verified(&skf, &h.join().unwrap());
        }
    });

    // Unplugged: SKF_WaitForDevEvent in the host tells the daemon, which drops the key.
    skf.set_present(skf::DEVICE, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sm2_cert(&d, &skf, 0).is_some() {
        assert!(Instant::now() < deadline, "the removed key is still listed");
        std::thread::sleep(Duration::from_millis(100));
    }
    sign(&d, &cert, "123456").expect_error(404, "CERT_NOT_FOUND");
    // Plugged in again: the same certificate id, and it signs.
    skf.set_present(skf::DEVICE, true);
    let again = sm2_cert(&d, &skf, 10).expect("the key is listed again");
    assert_eq!(again, cert);
    verified(&skf, &sign(&d, &cert, "123456").expect(200));
    // No PIN in the daemon's log (it logs at info level here, the host's stderr included).
    assert!(!d.stderr().contains("123456"), "a PIN reached the log");
}

#[test]
fn skf_daemon_removal_mid_signature_is_token_removed_and_counters_survive() {
    let skf = SoftSkf::standard();
    let hsm = SoftHsm::new();
    let d = daemon(
        &skf,
        &hsm,
        &[("SOFTSKF_FAULT", "delay:SKF_ECCSignData=1500")],
    );
    let cert = sm2_cert(&d, &skf, 10).expect("the SM2 certificate is served");
    std::thread::scope(|s| {
        let pending = s.spawn(|| sign(&d, &cert, "123456"));
        std::thread::sleep(Duration::from_millis(500));
        skf.set_present(skf::DEVICE, false);
        pending.join().unwrap().expect_error(409, "TOKEN_REMOVED");
    });
    skf.set_present(skf::DEVICE, true);
    let again = sm2_cert(&d, &skf, 10).expect("the key is listed again");
    assert_eq!(again, cert);
    // A wrong PIN costs a try on the reinserted key, and the count stays through another
    // removal and reinsertion (the key's memory, not the host's).
    sign(&d, &cert, "000000").expect_error(401, "PIN_INCORRECT");
    let counted = skf.pin_counters(skf::DEVICE, skf::APP).unwrap().user;
    assert_eq!(counted.remaining, counted.max_retries - 1, "{counted:?}");
    skf.set_present(skf::DEVICE, false);
    let deadline = Instant::now() + Duration::from_secs(10);
    while sm2_cert(&d, &skf, 0).is_some() {
        assert!(Instant::now() < deadline, "the removed key is still listed");
        std::thread::sleep(Duration::from_millis(100));
    }
    skf.set_present(skf::DEVICE, true);
    sm2_cert(&d, &skf, 10).expect("the key is listed again");
    let tokens = d.get("/v1/tokens").send().expect(200);
    assert_eq!(
        tokens["tokens"][0]["pin"]["tries_left"], counted.remaining,
        "{tokens:#}"
    );
    verified(&skf, &sign(&d, &again, "123456").expect(200));
}

#[test]
fn skf_daemon_survives_a_library_that_crashes() {
    let skf = SoftSkf::standard();
    let hsm = SoftHsm::new();
    let mut d = daemon(&skf, &hsm, &[("SOFTSKF_FAULT", "crash:SKF_ECCSignData")]);
    let cert = sm2_cert(&d, &skf, 10).expect("the SM2 certificate is served");
    let e = sign(&d, &cert, "123456").expect_error(502, "SKF_HOST_CRASHED");
    assert!(e.to_string().contains("SIGSEGV"), "{e:#}");
    assert!(d.running(), "the daemon died with its SKF host");
    // A new host serves the next requests: the key is still listed, its PIN state read.
    d.get("/v1/status").send().expect(200);
    let list = d.get("/v1/tokens").send();
    assert_eq!(list.status, 200, "{}", list.text());
    assert!(sm2_cert(&d, &skf, 0).is_some());
    sign(&d, &cert, "123456").expect_error(502, "SKF_HOST_CRASHED");
    assert!(d.running());
}

#[test]
fn skf_daemon_answers_a_hanging_library_with_a_timeout() {
    let skf = SoftSkf::standard();
    let hsm = SoftHsm::new();
    let mut d = daemon(&skf, &hsm, &[("SOFTSKF_FAULT", "hang:SKF_ECCSignData")]);
    let cert = sm2_cert(&d, &skf, 10).expect("the SM2 certificate is served");
    let t = Instant::now();
    sign(&d, &cert, "123456").expect_error(504, "SKF_HOST_HUNG");
    // [skf] timeout_ms = 3000: the request is answered after it, not never.
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(d.running());
    // The hung host was killed; a new one lists the key.
    assert!(sm2_cert(&d, &skf, 5).is_some());
    assert_eq!(hosts_of(skf.dir()).len(), 1, "the hung host is gone");
}

#[test]
fn skf_watch_reports_the_key_going_and_coming() {
    let skf = SoftSkf::standard();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[pkcs11]\nuse_defaults = false\n[skf]\nuse_defaults = false\nlibraries = [{:?}]\n",
            skf::library().display().to_string()
        ),
    )
    .unwrap();
    let mut child = certray(&skf.env())
        .env_remove("SOFTSKF_FAULT")
        .env_remove("SOFTSKF_QUIRKS")
        .arg("--config")
        .arg(&config)
        .args(["watch", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("certray watch");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<Value>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Ok(v) = serde_json::from_str(&line)
                && tx.send(v).is_err()
            {
                break;
            }
        }
    });
    let until = |name: &str| {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = rx
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no {name} from certray watch"));
            if v["event"] == name {
                return v;
            }
        }
    };
    let added = until("token-added");
    let id = added["token"]["id"].clone();
    // Idle, the event thread waits inside SKF_WaitForDevEvent: no busy loop.
    let waits = skf.calls("SKF_WaitForDevEvent");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        skf.calls("SKF_WaitForDevEvent"),
        waits,
        "the event wait spins"
    );
    skf.set_present(skf::DEVICE, false);
    let removed = until("token-removed");
    assert_eq!(removed["token_id"], id, "{removed:#}");
    skf.set_present(skf::DEVICE, true);
    let back = until("token-added");
    assert_eq!(back["token"]["id"], id, "{back:#}");
    let _ = child.kill();
    let _ = child.wait();
}

/// The `certray skf-host` processes whose softskf state directory is `dir`.
fn hosts_of(dir: &std::path::Path) -> Vec<u32> {
    let want = format!("SOFTSKF_DIR={}", dir.display());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let has = |hay: &[u8], needle: &[u8]| hay.split(|&b| b == 0).any(|p| p == needle);
        if has(&cmdline, b"skf-host") && has(&environ, want.as_bytes()) {
            pids.push(pid);
        }
    }
    pids
}

#[test]
fn skf_daemon_stops_within_a_bound_when_the_library_forgets_cancels() {
    // The Longmai behaviour (SKF.md §3.8.3): a cancel wakes the wait only after 1 s, returns
    // after 2 s, and one issued while no wait is pending is forgotten.
    let skf = SoftSkf::standard();
    let hsm = SoftHsm::new();
    let mut d = daemon(&skf, &hsm, &[("SOFTSKF_QUIRKS", "cancel-lost-if-idle")]);
    sm2_cert(&d, &skf, 10).expect("the SM2 certificate is served");
    assert_eq!(hosts_of(skf.dir()).len(), 1, "one host for the library");
    let t = Instant::now();
    // SAFETY: signalling the daemon this test started.
    assert_eq!(unsafe { libc::kill(d.pid() as i32, libc::SIGTERM) }, 0);
    while d.running() {
        assert!(
            t.elapsed() < Duration::from_secs(15),
            "the daemon did not stop within 15 s; stderr:\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        hosts_of(skf.dir()).is_empty(),
        "an SKF host outlived the daemon"
    );
    // The bound is the host's (6 s for the cancels, then it is killed): well under 15 s.
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}
