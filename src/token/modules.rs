//! Where the platform's known PKCS#11 modules live (see shared/docs/VENDOR-MODULES.md).
//! Only modules whose file exists are tried; an absent default is not an error.

use std::path::{Path, PathBuf};

use crate::config::ModuleConfig;

/// Known module locations for this platform, most common first.
pub fn known() -> &'static [&'static str] {
    #[cfg(target_os = "linux")]
    {
        &[
            // OpenSC
            "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
            "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
            "/usr/lib/opensc-pkcs11.so",
            "/usr/lib64/opensc-pkcs11.so",
            // Feitian ePass2003 (libcastle)
            "/usr/lib/libcastle.so.1.0.0",
            // Longmai mToken GM3000 (Kylin, UOS)
            "/opt/lm-gm3000/lib/libgm3000_pkcs11.so",
            "/opt/apps/com.longmai.gm3000user/files/lib/libgm3000_pkcs11.so",
            // Watchdata
            "/usr/lib/watchdata/ICP/lib/libwdpkcs_icp.so",
            "/usr/lib/watchdata/lib/libwdpkcs.so",
            "/opt/watchdata/lib64/libwdpkcs.so",
        ]
    }
    #[cfg(target_os = "windows")]
    {
        &[
            "C:\\Windows\\System32\\opensc-pkcs11.dll",
            "C:\\Windows\\System32\\eps2003csp11.dll",
            "C:\\Windows\\System32\\gm3000_pkcs11.dll",
            "C:\\Windows\\System32\\WDPKCS.dll",
            "C:\\Windows\\System32\\HtPkcs11.dll",
        ]
    }
    #[cfg(target_os = "macos")]
    {
        &[
            "/Library/OpenSC/lib/opensc-pkcs11.so",
            "/usr/local/lib/opensc-pkcs11.so",
            "/opt/homebrew/lib/opensc-pkcs11.so",
            "/usr/local/lib/libcastle.1.0.0.dylib",
            "/usr/local/lib/libgm3000_pkcs11.dylib",
            "/usr/local/lib/libwdpkcs.dylib",
        ]
    }
    #[cfg(not(any(target_os = "linux", target_os = "windows", target_os = "macos")))]
    {
        &[]
    }
}

/// Whether a module serves PC/SC cards (so PC/SC events tell when to rescan it), by its file
/// name: OpenSC, Feitian's libcastle and Watchdata's modules drive CCID readers; Longmai's
/// GM3000 and SoftHSM do not. A config's `pcsc = …` overrides this.
pub fn pcsc_backed(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    ["opensc", "castle", "wdpkcs"]
        .iter()
        .any(|k| name.contains(k))
}

/// The modules to load: the configured ones in order, then (with `use_defaults`) the
/// known ones that exist. A path listed twice (even through a symlink) is loaded once,
/// with the options of its first entry.
pub fn resolve(configured: &[ModuleConfig], use_defaults: bool) -> Vec<ModuleConfig> {
    configured_then_known(
        configured.iter().cloned(),
        known(),
        use_defaults,
        ModuleConfig::new,
        |m| &m.path,
    )
}

/// The rule every kind of vendor library is chosen by (PKCS#11 modules here, SKF libraries
/// in `skf::registry`): the configured entries in order, then (with `use_defaults`) the
/// `known` paths whose file exists, made into entries by `entry`; an entry whose path
/// (followed through symlinks) came before is left out.
pub(crate) fn configured_then_known<T>(
    configured: impl IntoIterator<Item = T>,
    known: &[&str],
    use_defaults: bool,
    entry: impl Fn(PathBuf) -> T,
    path: impl Fn(&T) -> &Path,
) -> Vec<T> {
    let defaults = known
        .iter()
        .map(PathBuf::from)
        .filter(|p| use_defaults && p.exists())
        .map(entry);
    let mut out: Vec<T> = Vec::new();
    let mut seen: Vec<PathBuf> = Vec::new();
    for item in configured.into_iter().chain(defaults) {
        let canon = std::fs::canonicalize(path(&item)).unwrap_or_else(|_| path(&item).into());
        if !seen.contains(&canon) {
            seen.push(canon);
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_first_and_deduplicated() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.so");
        std::fs::write(&a, b"").unwrap();
        let link = dir.path().join("link.so");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&a, &link).unwrap();
        let missing = dir.path().join("missing.so");
        let m = |p: &PathBuf| ModuleConfig::new(p.clone());
        let got = resolve(&[m(&a), m(&link), m(&missing), m(&a)], false);
        // The missing configured module is kept: loading it reports why it failed.
        assert_eq!(got, vec![m(&a), m(&missing)]);
        assert!(pcsc_backed(Path::new(
            "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so"
        )));
        assert!(!pcsc_backed(Path::new("/usr/lib/softhsm/libsofthsm2.so")));
    }
}
