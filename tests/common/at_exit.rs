//! Removing, when the test process exits, the temporary directories statics hold: a static
//! is never dropped, so a `TempDir` in one (the SoftHSM store a whole binary shares, the
//! process's PC/SC socket directory) would otherwise be left behind by every run.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, Once};

static PATHS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

unsafe extern "C" {
    /// C's `atexit`: `exit`, which the test harness calls (and returning from `main` does),
    /// runs `f`. Only a failure to allocate makes it fail.
    safe fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
}

extern "C" fn remove_all() {
    // No panic may cross this C boundary: a poisoned lock is still used, errors are ignored.
    let paths = std::mem::take(&mut *PATHS.lock().unwrap_or_else(|e| e.into_inner()));
    for path in paths {
        let _ = std::fs::remove_dir_all(path);
    }
}

/// Remove directory `dir` and everything in it when this process exits.
pub fn remove_at_exit(dir: &Path) {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| assert_eq!(atexit(remove_all), 0, "atexit failed"));
    PATHS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(dir.to_path_buf());
}
