//! Where the platform's known vendor SKF libraries live (shared/docs/VENDOR-MODULES.md).
//! Only libraries whose file exists are tried; an absent default is not an error.

use std::path::PathBuf;

/// Known SKF library locations for this platform, most common first.
pub fn known() -> &'static [&'static str] {
    #[cfg(target_os = "linux")]
    {
        &[
            // Longmai mToken GM3000 (Kylin, UOS user and admin tools)
            "/opt/lm-gm3000/lib/libgm3000.1.0.so",
            "/opt/apps/com.longmai.gm3000user/files/lib/libgm3000.1.0.so",
            "/opt/apps/com.longmai.gm3000admin/files/lib/libgm3000.1.0.so",
            "/usr/lib/libgm3000.1.0.so",
            // Feitian ePass3000GM
            "/usr/lib/libes_3000gm.so.1.0.0",
            "/usr/local/lib/libes_3000gm.so.1.0.0",
        ]
    }
    #[cfg(target_os = "windows")]
    {
        &[
            "C:\\Windows\\System32\\mtoken_gm3000.dll",
            "C:\\Windows\\System32\\gm3000_bjca.dll",
            "C:\\Windows\\System32\\ShuttleCsp11_3000GM.dll",
            "C:\\Windows\\System32\\FTGM.dll",
            "C:\\Windows\\System32\\SKFAPI20066.dll",
            "C:\\Windows\\System32\\HD_GMCAIS.dll",
            "C:\\Windows\\System32\\USK218_GM.dll",
        ]
    }
    #[cfg(target_os = "macos")]
    {
        &["/usr/local/lib/libgm3000.1.0.dylib"]
    }
    #[cfg(not(any(target_os = "linux", target_os = "windows", target_os = "macos")))]
    {
        &[]
    }
}

/// The libraries to load: the configured ones in order, then (with `use_defaults`) the
/// known ones that exist. A path listed twice (even through a symlink) is loaded once.
pub fn resolve(configured: &[PathBuf], use_defaults: bool) -> Vec<PathBuf> {
    crate::token::modules::configured_then_known(
        configured.iter().cloned(),
        known(),
        use_defaults,
        |p| p,
        PathBuf::as_path,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_first_deduplicated_missing_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("libskf.so");
        std::fs::write(&a, b"").unwrap();
        let missing = dir.path().join("missing.so");
        let got = resolve(&[a.clone(), missing.clone(), a.clone()], false);
        assert_eq!(got, vec![a, missing]);
        assert!(known().iter().all(|p| !p.is_empty()));
    }
}
