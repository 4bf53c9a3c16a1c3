//! The certificate fixtures of `tests/fixtures/make-certs.sh`, made once per `target/` and
//! day, not once per test binary.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use sha2::{Digest as _, Sha256};

use super::{openssl_sha256, require, run};

/// How long a fixture directory of another script version or day (or one a killed run left
/// half made) is kept before the next run removes it: long enough for any test process that
/// may still be reading it.
const STALE_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The fixtures of `tests/fixtures/make-certs.sh`, in
/// `target/test-fixtures/<script hash>-<UTC date>/`.
///
/// Made by the first test process that needs them, into a temporary directory beside it that
/// is then renamed into place: a directory with that name is always complete, and when
/// several test binaries start at once each may make its own copy, but only the first rename
/// wins and the others are removed. The key holds the script's SHA-256 (a changed script
/// makes new fixtures) and the day, because the script dates certificates from today
/// (`ec-expiring` has 30 days left on the day it is made).
pub fn fixtures() -> &'static Path {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(make_fixtures)
}

fn make_fixtures() -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/make-certs.sh");
    let text = fs::read(&script).unwrap_or_else(|e| panic!("read {}: {e}", script.display()));
    let hash = hex::encode(&Sha256::digest(&text)[..8]);
    let today = time::OffsetDateTime::now_utc().date();
    let (y, m, d) = (today.year(), u8::from(today.month()), today.day());
    // CARGO_TARGET_TMPDIR is `<target>/tmp`.
    let root = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is in target/")
        .join("test-fixtures");
    let dir = root.join(format!("{hash}-{y:04}{m:02}{d:02}"));
    if dir.is_dir() {
        return dir;
    }
    require("openssl", "openssl");
    fs::create_dir_all(&root).unwrap_or_else(|e| panic!("mkdir {}: {e}", root.display()));
    let making = tempfile::Builder::new()
        .prefix(".making-")
        .tempdir_in(&root)
        .unwrap_or_else(|e| panic!("a temporary directory in {}: {e}", root.display()));
    run(Command::new("bash").arg(&script).arg(making.path()));
    // The script's scratch space (CSRs, the CA database): no test reads it.
    let _ = fs::remove_dir_all(making.path().join("work"));
    match fs::rename(making.path(), &dir) {
        Ok(()) => {
            let _ = making.keep();
        }
        // Another process renamed its copy first; ours is removed as `making` drops.
        Err(_) if dir.is_dir() => {}
        Err(e) => panic!(
            "rename {} to {}: {e}",
            making.path().display(),
            dir.display()
        ),
    }
    remove_stale(&root, &dir);
    dir
}

/// Remove the fixture directories other than `keep` that are older than [`STALE_AFTER`].
fn remove_stale(root: &Path, keep: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let path = entry.path();
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| now.duration_since(t).unwrap_or_default() > STALE_AFTER);
        if path != keep && old {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// A file of the real-certificate corpus, read in place from `../shared/fixtures/real-certs`
/// (never copied into the repository).
pub fn corpus(name: &str) -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/real-certs")
        .join(name);
    assert!(
        p.is_file(),
        "the real-certificate corpus is missing: expected {} (shared/ beside the repository)",
        p.display()
    );
    p
}

/// A fixture file by name, e.g. `fixture("rsa-utf8.der")`.
pub fn fixture(name: &str) -> PathBuf {
    let p = fixtures().join(name);
    assert!(p.exists(), "fixture {} was not made", p.display());
    p
}

/// The id under which `snapshot` lists fixture `name`'s certificate (e.g. `rsa-utf8`),
/// found by the SHA-256 openssl computes.
pub fn fixture_cert_id(snapshot: &certray::model::Snapshot, name: &str) -> String {
    let sha = openssl_sha256(&fixture(&format!("{name}.der")));
    snapshot
        .certificates
        .iter()
        .find(|c| c.sha256 == sha)
        .unwrap_or_else(|| panic!("{name} not on the token"))
        .id
        .to_string()
}
