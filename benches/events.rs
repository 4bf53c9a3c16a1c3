//! Card-insert latency and idle cost of `certray watch` against the real thing: a private
//! pcscd with the vpcd reader, vicc as the card, and `pcsc_scan` (pcsc-tools) watching the
//! same daemon as the baseline.
//!
//! For each insertion it takes the time from starting vicc to certray's `card-inserted`
//! line and to pcsc_scan's "Card inserted" line (both read through pipes by this process),
//! and prints the medians, their difference and ratio (target: certray within 10 ms of
//! pcsc_scan). Then it measures certray's CPU time while idle with a reader, a card and a
//! token present (target: < 0.1 % of one core).
//!
//! `cargo bench --bench events` runs it in full (12 insertions, 60 s idle); without
//! `--bench` (as `cargo test --all-targets` runs it) it does 2 insertions and 3 s.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use std::io::BufRead;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::pcsc::{Pcscd, Vicc};
use common::*;
use support::{median, verdict};

/// A child process whose stdout lines arrive, time-stamped on arrival, on a channel.
struct Lines {
    child: Child,
    rx: mpsc::Receiver<(Instant, String)>,
}

impl Lines {
    fn spawn(mut cmd: Command) -> Lines {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        Lines { child, rx }
    }

    /// The arrival time of the next line containing `needle`, within `secs`.
    fn wait_for(&self, needle: &str, secs: u64) -> Instant {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((t, line)) if line.contains(needle) => return t,
                Ok(_) => {}
                Err(_) => panic!("no line with {needle:?} within {secs} s"),
            }
        }
    }

    fn drain(&self) {
        while self.rx.try_recv().is_ok() {}
    }

    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let f: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..]
            .split_whitespace()
            .collect();
        let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc_sysconf_clk_tck() };
        Duration::from_secs_f64(ticks as f64 / hz as f64)
    }
}

unsafe extern "C" {
    fn sysconf(name: i32) -> i64;
}

/// `sysconf(_SC_CLK_TCK)`: _SC_CLK_TCK is 2 on Linux.
unsafe fn libc_sysconf_clk_tck() -> i64 {
    // SAFETY: sysconf takes a plain integer and has no preconditions.
    unsafe { sysconf(2) }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() {
    let full = support::full_run();
    let (inserts, idle) = if full {
        (12, Duration::from_secs(60))
    } else {
        (2, Duration::from_secs(3))
    };
    let pcsc_scan = require("pcsc_scan", "pcsc-tools");
    let stdbuf = require("stdbuf", "coreutils");

    let hsm = SoftHsm::new();
    hsm.init_token("bench", "12345678", "123456");
    let cfg = hsm.dir().join("bench.toml");
    std::fs::write(
        &cfg,
        format!("[pkcs11]\nuse_defaults = false\nmodules = [{{ path = \"{SOFTHSM_MODULE}\", pcsc = true }}]\n"),
    )
    .unwrap();
    let pcscd = Pcscd::start();
    let mut env = hsm.env().to_vec();
    env.extend(pcscd.env());

    let mut watch = certray(&env);
    watch.arg("--config").arg(&cfg).args(["watch", "--json"]);
    let certray = Lines::spawn(watch);
    certray.wait_for("token-added", 30);
    let mut scan = Command::new(stdbuf);
    scan.args(["-oL"])
        .arg(pcsc_scan)
        .arg("-n")
        .envs(pcscd.env());
    let scan = Lines::spawn(scan);
    // Both have seen the readers before the first card goes in.
    certray.wait_for("reader-added", 30);
    scan.wait_for("Reader", 30);
    std::thread::sleep(Duration::from_secs(1));
    certray.drain();
    scan.drain();

    let (mut to_certray, mut to_scan) = (Vec::new(), Vec::new());
    for _ in 0..inserts {
        let t0 = Instant::now();
        let card = Vicc::insert(&pcscd);
        to_certray.push(certray.wait_for("card-inserted", 30) - t0);
        to_scan.push(scan.wait_for("Card inserted", 30) - t0);
        card.remove();
        certray.wait_for("card-removed", 30);
        scan.wait_for("Card removed", 30);
        std::thread::sleep(Duration::from_millis(300));
        certray.drain();
        scan.drain();
    }
    let (c, s) = (median(&mut to_certray), median(&mut to_scan));
    println!("events: vicc start → card-inserted, median of {inserts} insertions");
    println!("  pcsc_scan (baseline) {:>8.1} ms", ms(s));
    println!("  certray watch        {:>8.1} ms", ms(c));
    let diff = ms(c) - ms(s);
    println!(
        "  difference {diff:+.1} ms, ratio {:.3} (target: within 10 ms of pcsc_scan) {}",
        c.as_secs_f64() / s.as_secs_f64(),
        verdict(full, diff <= 10.0, "two insertions")
    );

    // Idle: a reader, a card and a token present, nothing happening.
    let _card = Vicc::insert(&pcscd);
    certray.wait_for("card-inserted", 30);
    std::thread::sleep(Duration::from_secs(2));
    let before = certray.cpu();
    let t = Instant::now();
    std::thread::sleep(idle);
    let used = certray.cpu() - before;
    let share = used.as_secs_f64() / t.elapsed().as_secs_f64() * 100.0;
    println!(
        "  idle CPU over {:.0} s: {:.1} ms = {share:.4} % of one core (clock-tick resolution 10 ms; target < 0.1 %)",
        t.elapsed().as_secs_f64(),
        ms(used)
    );
}
