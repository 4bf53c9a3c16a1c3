//! Where tray-icon writes the icon files on Linux: one directory per process (two certray
//! processes, as in tests, must not remove each other's icons) in the runtime directory,
//! which the session empties at logout.

use std::path::PathBuf;

/// This process's icon directory.
pub fn icon_dir() -> PathBuf {
    icon_parent().join(format!("{ICON_DIR_PREFIX}{}", std::process::id()))
}

const ICON_DIR_PREFIX: &str = "certray-tray-";

fn icon_parent() -> PathBuf {
    std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute() && p.is_dir())
        .unwrap_or_else(std::env::temp_dir)
}

/// Remove the icon directories of certray processes that are gone (killed, so they could
/// not clean up).
#[cfg(target_os = "linux")]
pub fn remove_stale() {
    let Ok(entries) = std::fs::read_dir(icon_parent()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(ICON_DIR_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}
