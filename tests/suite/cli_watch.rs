//! `certray watch` against the real thing: a private pcscd with the vpcd virtual reader,
//! vicc as the card (starting it is an insertion, killing it a removal) and SoftHSM as a
//! module that only sees new tokens after re-initialisation.

use crate::common;

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::pcsc::{Pcscd, VICC_ATR, Vicc};
use common::*;
use serde_json::Value;

const PIN: &str = "123456";

/// `certray watch --json` running, its lines arriving on a channel.
struct Watch {
    child: Child,
    lines: mpsc::Receiver<Value>,
}

impl Watch {
    fn start(hsm: &SoftHsm, pcscd: &Pcscd, config: &Path) -> Watch {
        let mut env = hsm.env().to_vec();
        env.extend(pcscd.env());
        let mut child = certray(&env)
            .arg("--config")
            .arg(config)
            .args(["watch", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start certray watch");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines }
    }

    /// The next event, within `secs`.
    fn next(&self, secs: u64) -> Value {
        self.lines
            .recv_timeout(Duration::from_secs(secs))
            .unwrap_or_else(|_| panic!("no event from certray watch within {secs} s"))
    }

    /// Events until one named `name` arrives (returned last), within `secs`.
    fn until(&self, name: &str, secs: u64) -> Vec<Value> {
        self.until_match(|e| e["event"] == name, secs)
    }

    /// Events until one that `pred` accepts arrives (returned last), within `secs`.
    fn until_match(&self, pred: impl Fn(&Value) -> bool, secs: u64) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    let done = pred(&v);
                    seen.push(v);
                    if done {
                        return seen;
                    }
                }
                Err(_) => panic!("the awaited event did not come within {secs} s; saw {seen:#?}"),
            }
        }
    }

    /// No event within `secs`.
    fn quiet(&self, secs: u64) -> Option<Value> {
        self.lines.recv_timeout(Duration::from_secs(secs)).ok()
    }

    /// utime + stime of the process, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after = &stat[stat.rfind(')').unwrap() + 2..];
        let f: Vec<&str> = after.split_whitespace().collect();
        f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn token_dirs(hsm: &SoftHsm) -> BTreeSet<std::path::PathBuf> {
    std::fs::read_dir(hsm.dir().join("tokens"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect()
}

fn config(hsm: &SoftHsm) -> std::path::PathBuf {
    let path = hsm.dir().join("watch.toml");
    std::fs::write(
        &path,
        format!(
            "[pkcs11]\nuse_defaults = false\nmodules = [{{ path = \"{SOFTHSM_MODULE}\", reinitialize_on_change = true, pcsc = true }}]\n"
        ),
    )
    .unwrap();
    path
}

#[test]
fn insert_and_removal_drive_token_events() {
    let hsm = SoftHsm::new();
    hsm.rsa_utf8_token("first", "12345678", PIN);
    let pcscd = Pcscd::start();
    let cfg = config(&hsm);
    let w = Watch::start(&hsm, &pcscd, &cfg);

    // The current state first: the token already there, with its certificate.
    let first = w.next(20);
    assert_eq!(first["event"], "token-added", "{first:#}");
    assert_eq!(first["token"]["label"], "first");
    assert_eq!(first["certificates"].as_array().unwrap().len(), 1);
    assert_eq!(
        first["certificates"][0]["sha256"],
        openssl_sha256(&fixture("rsa-utf8.der"))
    );
    let reader = pcscd.reader_name();
    // Then the readers: vpcd makes two.
    let [r0, r1] = pcscd.reader_names();
    let readers: Vec<Value> = vec![w.next(20), w.next(20)];
    let mut names: Vec<&str> = readers
        .iter()
        .map(|e| e["reader"].as_str().unwrap())
        .collect();
    names.sort();
    assert!(
        readers.iter().all(|e| e["event"] == "reader-added"),
        "{readers:#?}"
    );
    assert_eq!(names, vec![r0.as_str(), r1.as_str()]);

    // Another process creates a token: the running SoftHSM cannot see it yet.
    let before = token_dirs(&hsm);
    hsm.init_token("second", "12345678", PIN);
    hsm.import(
        "second",
        PIN,
        "02",
        Some(&fixture("ec-expiring.der")),
        Some(&fixture("ec-expiring.key.der")),
        "ec-expiring",
    );
    let second_dir: Vec<_> = token_dirs(&hsm).difference(&before).cloned().collect();
    assert_eq!(second_dir.len(), 1);
    if let Some(e) = w.quiet(3) {
        panic!("an event without a trigger: {e:#}");
    }

    // A card insert is the trigger: card-inserted with the ATR, then the new token.
    let card = Vicc::insert(&pcscd);
    let seen = w.until("card-inserted", 20);
    let inserted = seen.last().unwrap();
    assert_eq!(inserted["reader"], reader.as_str());
    assert_eq!(inserted["atr"], "3B 95 13 81 01 80 73 FF 01 00 0B");
    assert_eq!(VICC_ATR.len(), 11);
    assert!(
        inserted["hint"].as_str().unwrap().contains("[[cards]]"),
        "{inserted:#}"
    );
    let added = w.until("token-added", 20);
    let added = added.last().unwrap();
    assert_eq!(added["token"]["label"], "second");
    assert_eq!(
        added["certificates"][0]["sha256"],
        openssl_sha256(&fixture("ec-expiring.der"))
    );
    assert_eq!(added["certificates"][0]["status"], "expiring");

    // The token's directory goes, then the card: token-removed for it, the first stays.
    std::fs::remove_dir_all(&second_dir[0]).unwrap();
    drop(card);
    let seen = w.until("card-removed", 20);
    assert_eq!(seen.last().unwrap()["reader"], reader.as_str());
    let removed = w.until("token-removed", 20);
    assert_eq!(removed.last().unwrap()["token_id"], added["token"]["id"]);
    assert!(
        !removed
            .iter()
            .any(|e| e["event"] == "token-removed" && e["token_id"] == first["token"]["id"])
    );
}

#[test]
fn an_idle_watch_uses_no_cpu() {
    let hsm = SoftHsm::new();
    hsm.init_token("idle", "12345678", PIN);
    let pcscd = Pcscd::start();
    let _card = Vicc::insert(&pcscd);
    let cfg = config(&hsm);
    let w = Watch::start(&hsm, &pcscd, &cfg);
    assert_eq!(w.next(20)["event"], "token-added");
    w.until("card-inserted", 20);
    // Let start-up work finish, then measure CPU time over a few seconds of idling.
    std::thread::sleep(Duration::from_secs(2));
    let before = w.cpu_ticks();
    std::thread::sleep(Duration::from_secs(4));
    let used = w.cpu_ticks() - before;
    // Clock ticks are 10 ms: a busy poll would burn hundreds here.
    assert!(
        used <= 2,
        "certray watch used {used} ticks of CPU in 4 s idle"
    );
}

#[test]
fn watching_survives_a_pcscd_restart_without_repeating_the_card() {
    let hsm = SoftHsm::new();
    hsm.init_token("steady", "12345678", PIN);
    let mut pcscd = Pcscd::start();
    let card = Vicc::insert(&pcscd);
    let cfg = config(&hsm);
    let w = Watch::start(&hsm, &pcscd, &cfg);
    assert_eq!(w.next(20)["event"], "token-added");
    w.until("card-inserted", 20);

    // pcscd goes down and comes back with the card in (vicc reconnects to the new daemon
    // before clients can look).
    drop(card);
    let card = pcscd.restart_with(Vicc::insert);
    if let Some(e) = w.quiet(5) {
        panic!("the restart produced an event although nothing changed: {e:#}");
    }
    // Events resume on the same subscription: the removal is reported, once.
    drop(card);
    let seen = w.until("card-removed", 20);
    assert_eq!(
        seen.iter().filter(|e| e["event"] == "card-removed").count(),
        1,
        "{seen:#?}"
    );
    assert!(
        !seen.iter().any(|e| e["event"] == "card-inserted"),
        "{seen:#?}"
    );
    assert!(w.quiet(2).is_none());
}

#[test]
fn a_polled_module_reports_a_certificate_written_by_another_process() {
    let hsm = SoftHsm::new();
    hsm.rsa_utf8_token("polled", "12345678", PIN);
    let cfg = hsm.dir().join("poll.toml");
    std::fs::write(
        &cfg,
        format!(
            "[pkcs11]\nuse_defaults = false\npoll_interval_ms = 300\nmodules = [{{ path = \"{SOFTHSM_MODULE}\", pcsc = false }}]\n"
        ),
    )
    .unwrap();
    let pcscd = Pcscd::start();
    let w = Watch::start(&hsm, &pcscd, &cfg);
    let added = w.next(20);
    assert_eq!(added["event"], "token-added");
    assert_eq!(added["certificates"].as_array().unwrap().len(), 1);
    // Another process writes a second certificate (as a CA's renewal tool does): no card
    // event happens, the slot poll finds it.
    hsm.import(
        "polled",
        PIN,
        "02",
        Some(&fixture("ec-expiring.der")),
        None,
        "renewed",
    );
    let seen = w.until("certificates-changed", 10);
    let changed = seen.last().unwrap();
    assert_eq!(changed["token_id"], added["token"]["id"]);
    assert_eq!(
        changed["certificates"].as_array().unwrap().len(),
        2,
        "{changed:#}"
    );
}
