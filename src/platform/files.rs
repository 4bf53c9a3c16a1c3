//! Files only this user may read: certray's state directory (approvals, the audit log,
//! logs, the instance lock) is 0700 and what it writes there 0600, kept so when a file is
//! rewritten (a temporary file then a rename takes the temporary's mode, not the old one's).
//! On Windows and macOS the per-user profile directories already keep other users out.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;

/// From now on, files and directories this process creates are its user's only (umask
/// 077): the daemon's logs, state and caches, whatever library creates them.
pub fn private_from_now_on() {
    #[cfg(unix)]
    // SAFETY: umask only sets the process's file mode creation mask; it cannot fail.
    unsafe {
        libc::umask(0o077);
    }
}

/// Create `dir` (and its parents) and make it private to this user (0700), whatever its
/// mode was. Parents are left as they are.
pub fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir)?.permissions().mode() & 0o777;
        if mode != 0o700 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
    }
    Ok(())
}

/// Options that create a file readable and writable by this user only (0600).
fn private_options() -> OpenOptions {
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut o = OpenOptions::new();
        o.mode(0o600);
        o
    }
    // Windows: a file in the user's profile is the user's (its ACL is inherited).
    #[cfg(not(unix))]
    OpenOptions::new()
}

/// Make an existing file 0600 (a file made before certray kept its files private).
pub fn make_private(path: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode != 0o600 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Replace `path` with `bytes` at once (a temporary beside it, then a rename), the result
/// 0600 in a private directory.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let _ = std::fs::remove_file(&tmp);
    let mut f = private_options().write(true).create_new(true).open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// `path` opened for appending, created 0600 in a private directory (an existing file is
/// made 0600 too).
pub fn append_private(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        private_dir(dir)?;
    }
    let f = private_options().create(true).append(true).open(path)?;
    make_private(path)?;
    Ok(f)
}

/// For a file kept open for appending at `path`: its length when `path` is still that file,
/// made 0600 again if its mode was changed meanwhile; `None` when the file was removed or
/// replaced (then open `path` again). Two `stat`s instead of the `mkdir`, `open`, `stat`s
/// and `close` of [`append_private`]. Elsewhere than Unix always `None`.
pub fn still_open_at(f: &File, path: &Path) -> io::Result<Option<u64>> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let Ok(at_path) = std::fs::metadata(path) else {
            return Ok(None);
        };
        let open = f.metadata()?;
        if (open.dev(), open.ino()) != (at_path.dev(), at_path.ino()) {
            return Ok(None);
        }
        if at_path.permissions().mode() & 0o777 != 0o600 {
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(Some(at_path.len()))
    }
    #[cfg(not(unix))]
    {
        let _ = (f, path);
        Ok(None)
    }
}

/// Make `dir` 0700 and every file directly in it 0600: the daemon's log directory, whose
/// files the logging library creates with the default mode.
pub fn make_private_tree(dir: &Path) -> io::Result<()> {
    private_dir(dir)?;
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_file()) {
            make_private(&entry.path())?;
        }
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn private_files_stay_private_when_rewritten() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join("state/certray");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.join("origins.json");
        std::fs::write(&file, "{}").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&file, b"{\"approved\":[]}").unwrap();
        assert_eq!((mode(&dir), mode(&file)), (0o700, 0o600));
        write_private(&file, b"{}").unwrap();
        assert_eq!(mode(&file), 0o600);
        let log = dir.join("audit.log");
        std::fs::write(&log, "").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(append_private(&log).unwrap());
        assert_eq!(mode(&log), 0o600);
        let logs = dir.join("logs");
        std::fs::create_dir(&logs).unwrap();
        std::fs::write(logs.join("certray.2026-01-01.log"), "x").unwrap();
        make_private_tree(&logs).unwrap();
        assert_eq!(mode(&logs), 0o700);
        assert_eq!(mode(&logs.join("certray.2026-01-01.log")), 0o600);
    }
}
