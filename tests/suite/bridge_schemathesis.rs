//! `schemathesis` (PyPI) against a running `certray run --headless`: property-based requests
//! generated from `/v1/openapi.json` must never get a 5xx. Once as a local program (no
//! `Origin`) and once as an allowed page.
//!
//! schemathesis is not a Debian package: a missing `schemathesis` is a FAILURE that says
//! `pip install schemathesis`. `/v1/events` is left out (an endless stream has nothing to
//! fuzz; the socket tests cover it).

use crate::common;

use std::path::PathBuf;
use std::process::Command;

use common::bridge::{Daemon, bridge_token};
use common::*;

const LABEL: &str = "bridge-st";
const PIN: &str = "123456";
const ALLOWED: &str = "http://localhost:8123";

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("schemathesis"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "schemathesis not found on PATH: pip install schemathesis \
                 (PyPI; tested with 4.32)"
            )
        })
}

#[test]
#[ignore = "heavy: set CERTRAY_HEAVY_TESTS=1 (scripts/test does)"]
fn schemathesis_finds_no_server_errors() {
    let st = schemathesis();
    let hsm = bridge_token(LABEL, "12345678", PIN);
    let mut d = Daemon::start(
        &hsm,
        &format!("[bridge]\nallowed_origins = [\"{ALLOWED}\"]\n"),
    );
    let work = tempfile::tempdir().unwrap();
    for origin in [None, Some(ALLOWED)] {
        let mut cmd = Command::new(&st);
        // It keeps .hypothesis/ and .schemathesis/ in the working directory.
        cmd.current_dir(work.path())
            .arg("run")
            .arg(d.url("/v1/openapi.json"))
            .args([
                "--checks",
                "not_a_server_error",
                "--exclude-path",
                "/v1/events",
                "--request-timeout",
                "20",
                "--max-failures",
                "10",
                "--no-color",
            ]);
        if let Some(o) = origin {
            cmd.arg("--header").arg(format!("Origin: {o}"));
        }
        let out = run_unchecked(&mut cmd);
        assert!(
            out.status.success(),
            "schemathesis found server errors (Origin {origin:?}):\n{}\n--- daemon stderr ---\n{}",
            output_text(&out),
            d.stderr()
        );
    }
    assert!(d.running(), "the daemon died:\n{}", d.stderr());
    d.get("/v1/status").send().expect(200);
    let log = d.stderr();
    assert!(!log.contains("panicked"), "the daemon panicked:\n{log}");
}
