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
