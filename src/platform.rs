//! What differs between platforms and user sessions: the one-instance-per-user lock of the
//! daemon.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// Where the instance lock lives: the state dir, which is per user (and which tests and
/// packaged sessions set apart with `XDG_STATE_HOME`).
pub fn lock_dir() -> Option<PathBuf> {
    crate::config::state_dir()
}

/// Held while a daemon runs; a second `certray run` of the same user cannot take it.
/// The file names the holder (process id and bridge URL) for the message the second gets.
#[derive(Debug)]
pub struct InstanceLock {
    file: File,
    path: PathBuf,
}

/// Who holds the lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    pub pid: Option<u32>,
    pub url: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.pid, &self.url) {
            (Some(p), Some(u)) => write!(f, "PID {p}, {u}"),
            (Some(p), None) => write!(f, "PID {p}"),
            (None, Some(u)) => write!(f, "{u}"),
            (None, None) => write!(f, "unknown process"),
        }
    }
}

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("certray is already running ({0})")]
    Held(Holder),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl InstanceLock {
    /// Take the lock in `dir`, or say who has it. The operating system releases it when the
    /// process ends, however it ends.
    pub fn acquire(dir: &Path) -> Result<InstanceLock, LockError> {
        let io = |source| LockError::Io {
            path: dir.join("certray.lock"),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let path = dir.join("certray.lock");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(LockError::Held(parse_holder(&text)));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut lock = InstanceLock { file, path };
        lock.describe(None).map_err(io)?;
        Ok(lock)
    }

    /// Record this process and, once known, its bridge URL.
    pub fn describe(&mut self, url: Option<&str>) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.file.rewind()?;
        writeln!(self.file, "pid={}", std::process::id())?;
        if let Some(u) = url {
            writeln!(self.file, "url={u}")?;
        }
        self.file.flush()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn parse_holder(text: &str) -> Holder {
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(str::trim)
            .map(str::to_owned)
    };
    Holder {
        pid: field("pid=").and_then(|p| p.parse().ok()),
        url: field("url="),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_holder() {
        let dir = tempfile::tempdir().unwrap();
        let mut first = InstanceLock::acquire(dir.path()).unwrap();
        first.describe(Some("http://127.0.0.1:21088/")).unwrap();
        match InstanceLock::acquire(dir.path()) {
            Err(LockError::Held(h)) => {
                assert_eq!(h.pid, Some(std::process::id()));
                assert_eq!(h.url.as_deref(), Some("http://127.0.0.1:21088/"));
            }
            other => panic!("{other:?}"),
        }
        drop(first);
        assert!(InstanceLock::acquire(dir.path()).is_ok());
    }
}
