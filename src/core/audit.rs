//! The audit log: every signature and authentication certray makes, appended to
//! `<state dir>/audit.log` as one JSON object a line, whichever front door asked.
//!
//! What goes in is checked first (a certificate id that is not one is refused before
//! anything is written, see [`crate::core::Signing`]); the file is this user's only (0600 in
//! a 0700 directory); it is capped at [`MAX_BYTES`] and rotated into `audit.log.1` …
//! `audit.log.{KEEP}`, so a page that signs (or is refused) as fast as it can fills at most
//! `(KEEP + 1) × MAX_BYTES`. Shown on a terminal, every field goes through
//! [`AuditRecord::escaped`]: control characters cannot forge a row.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The size at which `audit.log` is rotated.
pub const MAX_BYTES: u64 = 4 * 1024 * 1024;
/// How many rotated files are kept (`audit.log.1` is the newest).
pub const KEEP: usize = 3;

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time: String,
    /// The page's origin, or `local` for a program without one.
    pub origin: String,
    /// `sign` or `authenticate`.
    pub operation: String,
    pub certificate_id: String,
    /// `raw`, `cms`, `cms-detached`, or `certray-auth:2`.
    pub format: String,
    /// Bytes signed (data, digest or challenge).
    pub bytes: usize,
    /// `ok` or the error code.
    pub result: String,
    /// The protocol the request came in by, when not certray's own (`xtx`: BJCA's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
}

impl AuditRecord {
    /// The record with every text field safe to print on a terminal or in a table
    /// ([`crate::text::escape_control`]): no newline, escape sequence or bidi control.
    pub fn escaped(&self) -> AuditRecord {
        let e = crate::text::escape_control;
        AuditRecord {
            time: e(&self.time),
            origin: e(&self.origin),
            operation: e(&self.operation),
            certificate_id: e(&self.certificate_id),
            format: e(&self.format),
            bytes: self.bytes,
            result: e(&self.result),
            protocol: self.protocol.as_deref().map(e),
        }
    }
}

/// The append-only audit log.
#[derive(Debug)]
pub struct Audit {
    file: Option<PathBuf>,
    /// The log, kept open between records (opened again after a rotation, or when the file
    /// was removed or replaced); the lock also keeps records whole and in order.
    open: Mutex<Option<File>>,
    max_bytes: u64,
}

impl Audit {
    pub fn open(dir: Option<&Path>) -> Audit {
        Audit::with_cap(dir, MAX_BYTES)
    }

    /// [`Audit::open`] rotating at `max_bytes` (tests).
    pub fn with_cap(dir: Option<&Path>, max_bytes: u64) -> Audit {
        if let Some(d) = dir
            && let Err(e) = crate::platform::files::private_dir(d)
        {
            tracing::warn!(dir = %d.display(), error = %e, "cannot make the state directory private");
        }
        Audit {
            file: dir.map(|d| d.join("audit.log")),
            open: Mutex::new(None),
            max_bytes,
        }
    }

    /// Append a record; a failure is logged, never fatal to the signature.
    pub fn record(&self, mut r: AuditRecord) {
        r.time = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let Some(path) = &self.file else { return };
        let mut line = serde_json::to_string(&r).unwrap_or_default();
        line.push('\n');
        // Only the write waits for other records.
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = self.append(path, &mut open, &line) {
            // Opened again for the next record.
            *open = None;
            tracing::warn!(path = %path.display(), error = %e, "cannot write the audit log");
        }
    }

    /// Append `line` to the log at `path` through `open`, rotating first when it would reach
    /// the cap.
    fn append(&self, path: &Path, open: &mut Option<File>, line: &str) -> std::io::Result<()> {
        use crate::platform::files::{append_private, still_open_at};
        let kept = match open.as_ref() {
            Some(f) => still_open_at(f, path)?,
            None => None,
        };
        let len = match kept {
            Some(len) => len,
            None => open.insert(append_private(path)?).metadata()?.len(),
        };
        if len > 0 && len + line.len() as u64 > self.max_bytes {
            // Closed before the rename (Windows cannot rename an open file).
            *open = None;
            rotate(path)?;
        }
        let f = match open {
            Some(f) => f,
            None => open.insert(append_private(path)?),
        };
        f.write_all(line.as_bytes())
    }
}

fn numbered(path: &Path, n: usize) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{n}"));
    path.with_file_name(name)
}

/// audit.log → audit.log.1 → … → audit.log.{KEEP}, the oldest dropped.
fn rotate(path: &Path) -> std::io::Result<()> {
    let _ = std::fs::remove_file(numbered(path, KEEP));
    for n in (0..KEEP).rev() {
        let from = numbered(path, n);
        if from.exists() {
            std::fs::rename(&from, numbered(path, n + 1))?;
        }
    }
    Ok(())
}

/// Every record in `<dir>/audit.log` and its rotated files, oldest first (unreadable lines
/// are skipped).
pub fn read_audit(dir: &Path) -> Vec<AuditRecord> {
    let path = dir.join("audit.log");
    (0..=KEEP)
        .rev()
        .flat_map(|n| {
            std::fs::read_to_string(numbered(&path, n))
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect::<Vec<AuditRecord>>()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audit_appends_lines() {
        let dir = tempfile::tempdir().unwrap();
        let a = Audit::open(Some(dir.path()));
        for result in ["ok", "PIN_INCORRECT"] {
            a.record(AuditRecord {
                time: String::new(),
                origin: "local".into(),
                operation: "sign".into(),
                certificate_id: "c-1".into(),
                format: "raw".into(),
                bytes: 5,
                result: result.into(),
                protocol: None,
            });
        }
        let r = read_audit(dir.path());
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].result, "PIN_INCORRECT");
        assert!(r[0].time.starts_with("20"));
    }

    fn record(i: usize) -> AuditRecord {
        AuditRecord {
            time: String::new(),
            origin: "https://etax.example".into(),
            operation: "sign".into(),
            certificate_id: "c-0011223344556677".into(),
            format: "raw".into(),
            bytes: i,
            result: "PIN_REQUIRED".into(),
            protocol: None,
        }
    }

    #[test]
    fn the_log_is_capped_rotated_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("certray");
        let a = Audit::with_cap(Some(&state), 4096);
        for i in 0..1000 {
            a.record(record(i));
        }
        let total: u64 = (0..=KEEP + 1)
            .filter_map(|n| std::fs::metadata(numbered(&state.join("audit.log"), n)).ok())
            .map(|m| m.len())
            .sum();
        assert!(total <= 4096 * (KEEP as u64 + 1), "{total} bytes on disk");
        assert!(!numbered(&state.join("audit.log"), KEEP + 1).exists());
        // The newest records are all there, in order.
        let r = read_audit(&state);
        assert_eq!(r.last().unwrap().bytes, 999);
        assert!(r.windows(2).all(|w| w[0].bytes + 1 == w[1].bytes));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&state), 0o700);
            assert_eq!(mode(&state.join("audit.log")), 0o600);
            assert_eq!(mode(&state.join("audit.log.1")), 0o600);
        }
    }

    /// The log is kept open between records; a file removed, replaced or loosened meanwhile
    /// (by the person, or another certray process rotating it) is followed, not written past.
    #[cfg(unix)]
    #[test]
    fn the_open_log_follows_the_file_at_its_path() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("audit.log");
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        // The records in the log, by their `bytes`.
        let logged = || {
            read_audit(dir.path())
                .iter()
                .map(|r| r.bytes)
                .collect::<Vec<_>>()
        };
        let a = Audit::open(Some(dir.path()));
        a.record(record(1));
        // Removed: the next record makes it again.
        std::fs::remove_file(&log).unwrap();
        a.record(record(2));
        assert_eq!(logged(), [2]);
        // Renamed away and replaced by another file: the record goes to the file at the path.
        std::fs::rename(&log, dir.path().join("moved")).unwrap();
        std::fs::write(&log, "").unwrap();
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
        a.record(record(3));
        assert_eq!(logged(), [3]);
        assert_eq!(mode(&log), 0o600);
        // Loosened while open: made 0600 again by the next record, which lands after a
        // line another writer appended.
        std::fs::set_permissions(&log, std::fs::Permissions::from_mode(0o644)).unwrap();
        let line = serde_json::to_string(&record(4)).unwrap() + "\n";
        let mut other = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        other.write_all(line.as_bytes()).unwrap();
        a.record(record(5));
        assert_eq!(mode(&log), 0o600);
        assert_eq!(logged(), [3, 4, 5]);
    }

    #[test]
    fn an_escaped_record_cannot_forge_a_row() {
        let mut r = record(1);
        r.origin = "https://evil.example\n2026-01-01T00:00:00Z\tlocal\u{1b}[2K".into();
        let e = r.escaped();
        assert!(!e.origin.chars().any(char::is_control), "{}", e.origin);
        assert!(e.origin.contains("\\u{a}") && e.origin.contains("\\u{1b}"));
    }
}
