//! Finding the programs and files the tests drive. A missing one is a test failure naming
//! the Debian package to install, never a silent skip.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Find `program` on PATH (or, given an absolute path, check that it exists). Also looks in
/// `/usr/sbin` and `/sbin`, which a non-login PATH may lack (`pkcsslotd` lives there).
///
/// Panics with "`program` not found: apt-get install `package`" when it is missing.
pub fn require(program: &str, package: &str) -> PathBuf {
    let p = Path::new(program);
    if p.is_absolute() {
        if is_executable(p) {
            return p.to_path_buf();
        }
    } else {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let extra = [PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")];
        for dir in std::env::split_paths(&path).chain(extra) {
            let candidate = dir.join(program);
            if is_executable(&candidate) {
                return candidate;
            }
        }
    }
    panic!("{program} not found: apt-get install {package}");
}

/// Check that a file (a PKCS#11 module, say) exists; panics naming the package otherwise.
pub fn require_file(path: &Path, package: &str) -> PathBuf {
    if !path.is_file() {
        panic!("{} not found: apt-get install {package}", path.display());
    }
    path.to_path_buf()
}

fn is_executable(p: &Path) -> bool {
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `pkcs11-tool` (package `opensc`).
pub fn pkcs11_tool() -> PathBuf {
    require("pkcs11-tool", "opensc")
}

/// Write an executable shell script at `path`: `#!/bin/sh` and `body`.
pub fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write a script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("make it executable");
}
