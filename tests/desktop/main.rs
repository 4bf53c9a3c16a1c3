//! The desktop benchmark, `bench_desktop`, which `scripts/bench-desktop` builds in release
//! mode (`cargo test --release --test desktop -- --ignored --exact bench_desktop`) on the
//! desktop of the suite's desktop test (`tests/suite/desktop.rs`, included here whole).
//! `cargo test` does not build this target (`test = false` in Cargo.toml), so the suite holds
//! no ignored test that is not a heavy one.

#[path = "../common/mod.rs"]
mod common;

include!("../suite/desktop.rs");

use std::io::BufRead as _;
use std::process::ChildStdout;
use std::sync::mpsc;

// ---------------------------------------------------------------------------------------------
// What only the benchmark asks of the daemon
// ---------------------------------------------------------------------------------------------

impl Daemon {
    /// How many tokens the daemon itself sees (`GET /v1/tokens`).
    fn tokens_seen(&self) -> usize {
        let port: u16 = self
            .url
            .trim_end_matches('/')
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {}", self.url));
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let body = crate::common::bridge::Request::new(addr, "GET", "/v1/tokens")
            .send()
            .expect(200);
        body["tokens"].as_array().map_or(0, Vec::len)
    }

    /// The `n` largest resident mappings of the daemon (`/proc/PID/smaps`), one line each:
    /// KiB and what is mapped (a library, `[heap]`, or anonymous memory).
    fn largest_mappings(&self, n: usize) -> String {
        let smaps =
            fs::read_to_string(format!("/proc/{}/smaps", self.proc.pid())).expect("daemon smaps");
        let mut by_name: std::collections::BTreeMap<String, u64> = Default::default();
        let mut name = String::new();
        for line in smaps.lines() {
            if let Some(kib) = line.strip_prefix("Rss:") {
                let kib: u64 = kib
                    .split_whitespace()
                    .next()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                *by_name.entry(name.clone()).or_default() += kib;
            } else if line
                .split_whitespace()
                .next()
                .is_some_and(|f| f.contains('-') && !f.ends_with(':'))
            {
                // "start-end perms offset dev inode [path]"
                name = line
                    .split_whitespace()
                    .nth(5)
                    .unwrap_or("[anonymous]")
                    .to_string();
            }
        }
        let mut v: Vec<(String, u64)> = by_name.into_iter().collect();
        v.sort_by_key(|e| std::cmp::Reverse(e.1));
        v.iter()
            .take(n)
            .map(|(name, kib)| format!("{:>8} KiB  {name}", kib))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// VmRSS and VmHWM of the daemon, in KiB.
    fn memory_kib(&self) -> (u64, u64) {
        memory_kib(self.proc.pid())
    }
}

/// VmRSS and VmHWM of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).expect("process status");
    let field = |k: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

// ---------------------------------------------------------------------------------------------
// The benchmark
// ---------------------------------------------------------------------------------------------

/// Lines of a child's stdout, each with the moment it arrived.
fn timed_lines(stdout: ChildStdout) -> mpsc::Receiver<(Instant, String)> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// The arrival time of the next line `pred` accepts, within [`WAIT`].
fn next_line(
    rx: &mpsc::Receiver<(Instant, String)>,
    what: &str,
    pred: impl Fn(&str) -> bool,
) -> Instant {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((t, line)) if pred(&line) => return t,
            Ok(_) => {}
            Err(_) => panic!("{what}: not seen within {WAIT:?}"),
        }
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Memory of `certray run` with the tray and one token against `certray run --headless`
/// with the same token, and the time from a card insertion (vicc starting) to the card
/// window being mapped against the time to `certray watch --json`'s `token-added`, all in
/// one run. Prints one `bench-desktop result:` line for `scripts/bench-desktop`.
#[test]
#[ignore = "a benchmark: scripts/bench-desktop runs it on a release build"]
fn bench_desktop() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let settle = Duration::from_secs(
        std::env::var("BENCH_SETTLE_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3),
    );
    let desktop = Desktop::start(artifacts_dir("bench"));
    let hsm = SoftHsm::new();
    // The token lives outside the store between insertions: it appears with the card.
    let token_dir = make_token(&hsm);
    let parked = hsm.dir().join("parked-token");
    fs::rename(&token_dir, &parked).expect("park the token");
    let pcscd = Pcscd::start();
    let home = tempfile::Builder::new()
        .prefix("certray-bench-home-")
        .tempdir()
        .expect("tempdir");

    // MapNotify of every top-level window, time-stamped on arrival (xev flushes each event).
    let (_xev, xev_out) = Proc::spawn_piped(
        "xev",
        desktop.x("xev").args(["-root", "-event", "substructure"]),
        desktop.session.path("xev.log"),
    );
    let maps = timed_lines(xev_out);

    // (a) certray run with the tray: card-inserted → card window mapped.
    let daemon = Daemon::start(home.path(), &hsm, &pcscd, Some(&desktop), false);
    let panel = desktop.panel().expect("panel");
    desktop.wait_for("the tray icon", || {
        desktop.session.geometry(panel).filter(|g| g.2 >= 16)
    });
    std::thread::sleep(settle);
    let (rss_tray_nokey, _) = daemon.memory_kib();
    eprintln!(
        "certray run's memory with the tray and no key (largest Rss):\n{}",
        daemon.largest_mappings(8)
    );
    let mut to_window = Vec::new();
    let mut rss_with_card = 0;
    let mut rss_dialog_process = 0;
    for round in 0..rounds {
        fs::rename(&parked, &token_dir).expect("unpark the token");
        while maps.try_recv().is_ok() {}
        let t0 = Instant::now();
        let card = Vicc::insert(&pcscd);
        let window = desktop.wait_for("the card window", || {
            desktop.session.window_titled(CARD_TITLE)
        });
        let hex = format!("{window:#x}");
        let mapped = next_line(&maps, "the card window's MapNotify", |l| {
            l.contains("override") && l.contains(&format!("window {hex},"))
        });
        to_window.push(mapped.duration_since(t0).as_secs_f64() * 1000.0);
        if round == 0 {
            desktop.wait_for("the card drawn", || desktop.painted(window).then_some(()));
            desktop.screenshot("card.png");
            rss_with_card = daemon.memory_kib().0;
            let hosts = daemon.dialog_hosts();
            assert_eq!(hosts.len(), 1, "dialog processes: {hosts:?}");
            rss_dialog_process = memory_kib(hosts[0]).0;
        }
        // Close the card (Esc), take the token out, pull the card.
        desktop.focus(window, None);
        desktop.key("Escape");
        desktop.wait_for("the card to close", || {
            desktop
                .session
                .window_titled(CARD_TITLE)
                .is_none()
                .then_some(())
        });
        fs::rename(&token_dir, &parked).expect("park the token");
        pull(card, &pcscd);
        desktop.wait_for("the token gone from the daemon", || {
            (daemon.tokens_seen() == 0).then_some(())
        });
    }
    // One token in, the card closed, a few seconds of quiet.
    fs::rename(&parked, &token_dir).expect("unpark the token");
    let card = Vicc::insert(&pcscd);
    let window = desktop.wait_for("the card window", || {
        desktop.session.window_titled(CARD_TITLE)
    });
    desktop.focus(window, None);
    desktop.key("Escape");
    desktop.wait_for("the card to close", || {
        desktop
            .session
            .window_titled(CARD_TITLE)
            .is_none()
            .then_some(())
    });
    desktop.wait_for("the dialog process to end", || {
        daemon.dialog_hosts().is_empty().then_some(())
    });
    std::thread::sleep(settle);
    let (rss_tray, hwm_tray) = daemon.memory_kib();
    let gl = daemon.graphics_libraries();
    assert!(gl.is_empty(), "the daemon loaded {gl:?}");
    eprintln!(
        "certray run's memory with one key, the card closed (largest Rss):\n{}",
        daemon.largest_mappings(12)
    );
    drop(daemon);

    // (b) The same token, headless: the baseline for memory.
    let headless = Daemon::start(home.path(), &hsm, &pcscd, None, true);
    desktop.wait_for("the headless daemon to see the token", || {
        (headless.tokens_seen() == 1).then_some(())
    });
    std::thread::sleep(settle);
    let (rss_headless, hwm_headless) = headless.memory_kib();
    drop(headless);
    fs::rename(&token_dir, &parked).expect("park the token");
    pull(card, &pcscd);

    // (c) The baseline for latency: card-inserted and token-added of `certray watch --json`.
    let env = certray_env(home.path(), &hsm, &pcscd, None);
    let (_watch, watch_out) = Proc::spawn_piped(
        "certray watch",
        certray(&env)
            .arg("--config")
            .arg(home.path().join("certray.toml"))
            .args(["watch", "--json"]),
        home.path().join("watch.log"),
    );
    let lines = timed_lines(watch_out);
    // Both readers first: the watcher is set up.
    next_line(&lines, "reader-added", |l| l.contains("\"reader-added\""));
    next_line(&lines, "reader-added", |l| l.contains("\"reader-added\""));
    let mut to_inserted = Vec::new();
    let mut to_added = Vec::new();
    for _ in 0..rounds {
        fs::rename(&parked, &token_dir).expect("unpark the token");
        let t0 = Instant::now();
        let card = Vicc::insert(&pcscd);
        let inserted = next_line(&lines, "card-inserted", |l| l.contains("\"card-inserted\""));
        let added = next_line(&lines, "token-added", |l| l.contains("\"token-added\""));
        to_inserted.push(inserted.duration_since(t0).as_secs_f64() * 1000.0);
        to_added.push(added.duration_since(t0).as_secs_f64() * 1000.0);
        fs::rename(&token_dir, &parked).expect("park the token");
        pull(card, &pcscd);
        next_line(&lines, "token-removed", |l| l.contains("\"token-removed\""));
    }

    let window_ms = median(&mut to_window);
    let inserted_ms = median(&mut to_inserted);
    let added_ms = median(&mut to_added);
    eprintln!("card window mapped after (ms): {to_window:.0?}");
    eprintln!("watch card-inserted after (ms): {to_inserted:.0?}");
    eprintln!("watch token-added after (ms): {to_added:.0?}");
    println!(
        "bench-desktop result: rounds={rounds} rss_tray_mib={:.1} hwm_tray_mib={:.1} \
         rss_tray_nokey_mib={:.1} rss_card_open_mib={:.1} rss_dialog_process_mib={:.1} \
         rss_headless_mib={:.1} \
         hwm_headless_mib={:.1} window_ms={window_ms:.0} watch_inserted_ms={inserted_ms:.0} \
         watch_added_ms={added_ms:.0}",
        mib(rss_tray),
        mib(hwm_tray),
        mib(rss_tray_nokey),
        mib(rss_with_card),
        mib(rss_dialog_process),
        mib(rss_headless),
        mib(hwm_headless),
    );
}
