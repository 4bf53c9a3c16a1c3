//! Debian's Chromium driven by `playwright-core` from `tests/browser` (its `node_modules`
//! installed with `npm ci` from the committed package-lock.json when missing; a browser is
//! never downloaded): what the browser tests need.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::{output_text, require, run, run_unchecked};

/// The Debian packages the browser test needs beyond tests/common's.
pub const BROWSER_PACKAGES: &str = "nodejs npm chromium";
pub const CHROMIUM: &str = "/usr/bin/chromium";

pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// node, npm, Chromium and a CJK font, or a failure that names the packages.
pub fn require_browser_tools() -> (PathBuf, PathBuf) {
    let node = require("node", BROWSER_PACKAGES);
    let npm = require("npm", BROWSER_PACKAGES);
    require(CHROMIUM, BROWSER_PACKAGES);
    // playwright-core 1.65 needs Node.js 20 or newer (Debian 12's own nodejs is 18).
    let version = output_text(&run(Command::new(&node).arg("--version")));
    let major: u32 = version
        .trim()
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    assert!(
        major >= 20,
        "node {} is too old for playwright-core 1.65: install Node.js 20 or newer (e.g. from bookworm-backports or NodeSource)",
        version.trim()
    );
    let fonts = run_unchecked(Command::new(require("fc-list", "fontconfig")).arg(":lang=zh"));
    assert!(
        !String::from_utf8_lossy(&fonts.stdout).trim().is_empty(),
        "no Chinese font for Chromium (the screenshots would show boxes): apt-get install fonts-noto-cjk"
    );
    (node, npm)
}

/// `npm ci` in tests/browser when playwright-core is not installed there yet.
pub fn ensure_node_modules(npm: &Path) {
    let dir = browser_dir();
    if dir
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        return;
    }
    let started = Instant::now();
    let out = run_unchecked(
        Command::new(npm)
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            // Chromium comes from Debian; never let an install script fetch a browser.
            .env("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1"),
    );
    assert!(
        out.status.success(),
        "npm ci in {} failed (the npm registry must be reachable):\n{}",
        dir.display(),
        output_text(&out)
    );
    eprintln!("npm ci took {:.1} s", started.elapsed().as_secs_f64());
}

/// `node SCRIPT` in tests/browser with Debian's Chromium, its `envs` set: its output lines
/// (stderr's prefixed `stderr: `), each printed and handed to `on_line` as it comes (a
/// scenario asks the test to pull a key that way). It fails, with the lines and the tail of
/// `log()` (the daemon's), when the run takes longer than `timeout` or does not succeed.
pub fn run_node(
    node: &Path,
    script: &str,
    envs: &[(&str, std::ffi::OsString)],
    timeout: std::time::Duration,
    mut on_line: impl FnMut(&str),
    log: impl Fn() -> String,
) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::sync::mpsc;

    let mut child = Command::new(node)
        .arg(script)
        .current_dir(browser_dir())
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .env("CERTRAY_CHROMIUM", CHROMIUM)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node");
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().expect("node's stdout");
    let out_tx = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = out_tx.send(line);
        }
    });
    let stderr = child.stderr.take().expect("node's stderr");
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(format!("stderr: {line}"));
        }
    });
    let tail = || {
        let log = log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    };
    let deadline = Instant::now() + timeout;
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => {
                println!("{}", line.chars().take(400).collect::<String>());
                on_line(&line);
                lines.push(line);
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "node {script} did not finish within {timeout:?}:\n{}\n--- daemon log (tail) ---\n{}",
                    lines.join("\n"),
                    tail()
                );
            }
        }
    }
    let status = child.wait().expect("wait for node");
    assert!(
        status.success(),
        "node {script} failed ({status}):\n{}\n--- daemon log (tail) ---\n{}",
        lines.join("\n"),
        tail()
    );
    lines
}
