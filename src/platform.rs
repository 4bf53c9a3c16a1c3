//! What differs between platforms and user sessions: the one-instance-per-user lock of the
//! daemon, files only this user may read ([`files`]), who is at the other end of a loopback
//! connection ([`peer`]), the process's resources ([`resources`]), and handing this process
//! over to a program installed beside it ([`exec_beside`]).

pub mod files;
pub mod peer;
pub mod resources;

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
        // The state dir: approvals, the audit log and logs live here too.
        files::private_dir(dir).map_err(io)?;
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

/// `name` in the directory this executable is in (`certray-desktop` beside `certray`).
pub fn beside_this_exe(name: &str) -> std::io::Result<PathBuf> {
    Ok(std::env::current_exe()?.with_file_name(name))
}

/// Replace this process with the program `name` beside this executable, giving it this
/// process's arguments, environment and open standard streams; the process id stays. Returns
/// only when that cannot be done, with what stopped it. Call it before any thread starts.
pub fn exec_beside(name: &str) -> std::io::Error {
    let program = match beside_this_exe(name) {
        Ok(p) => p,
        Err(e) => return e,
    };
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let e = std::process::Command::new(&program)
            .args(std::env::args_os().skip(1))
            .exec();
        std::io::Error::new(e.kind(), format!("{}: {e}", program.display()))
    }
    #[cfg(not(unix))]
    {
        std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("{}: cannot replace a process here", program.display()),
        )
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

/// Start at login (the tray's 开机自动启动): on Linux the user's XDG autostart entry, which
/// either starts certray or, when off, hides a system-wide entry the package installed
/// (`Hidden=true`, as the XDG autostart spec says); on macOS a LaunchAgent. Windows' Run key
/// is written by the MSI; toggling it from here is not implemented yet (an explicit error).
pub mod autostart {
    use std::path::PathBuf;

    /// Where this user's entry lives.
    pub fn entry_path() -> Option<PathBuf> {
        #[cfg(target_os = "macos")]
        {
            directories::BaseDirs::new().map(|b| {
                b.home_dir()
                    .join("Library/LaunchAgents/com.certray.agent.plist")
            })
        }
        #[cfg(not(target_os = "macos"))]
        {
            let config = std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().join(".config")))?;
            Some(config.join("autostart").join("certray.desktop"))
        }
    }

    /// The system-wide entry a package installs (Linux).
    const SYSTEM_ENTRY: &str = "/etc/xdg/autostart/certray.desktop";

    fn entry_enabled(text: &str) -> bool {
        !text.lines().map(str::trim).any(|l| {
            l.eq_ignore_ascii_case("Hidden=true")
                || l.eq_ignore_ascii_case("X-GNOME-Autostart-enabled=false")
        })
    }

    /// Whether certray starts at login for this user.
    pub fn is_enabled() -> bool {
        let Some(path) = entry_path() else {
            return false;
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => cfg!(target_os = "macos") || entry_enabled(&text),
            Err(_) => !cfg!(target_os = "macos") && std::path::Path::new(SYSTEM_ENTRY).is_file(),
        }
    }

    /// Turn starting at login on or off for this user; returns the file written or removed.
    pub fn set(enabled: bool) -> std::io::Result<PathBuf> {
        if cfg!(windows) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "on Windows the installer's Run key starts certray at login",
            ));
        }
        let path = entry_path().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no home directory")
        })?;
        let exe = std::env::current_exe()?;
        let text = if cfg!(target_os = "macos") {
            if !enabled {
                match std::fs::remove_file(&path) {
                    Ok(()) => return Ok(path),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(path),
                    Err(e) => return Err(e),
                }
            }
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict>\n<key>Label</key><string>com.certray.agent</string>\n<key>ProgramArguments</key><array><string>{}</string><string>run</string></array>\n<key>RunAtLoad</key><true/>\n<key>KeepAlive</key><dict><key>Crashed</key><true/></dict>\n</dict></plist>\n",
                exe.display()
            )
        } else {
            // Written either way: when off it hides a system-wide entry of the same name.
            format!(
                "[Desktop Entry]\nType=Application\nName=证书助手\nName[en]=certray\nComment=Starts the certificate helper at login\nExec={} run\nIcon=certray\nTerminal=false\nNoDisplay=true\nX-GNOME-Autostart-enabled={enabled}\nHidden={}\n",
                exe.display(),
                !enabled
            )
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, text)?;
        Ok(path)
    }
}
