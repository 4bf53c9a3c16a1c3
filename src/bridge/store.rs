//! What the bridge keeps on disk in the state dir: the websites the user approved
//! (`origins.json`) and the audit log of signatures (`audit.log`, one JSON object a line).

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Approved origins: remembered ones (persisted) and ones allowed until certray stops.
#[derive(Debug)]
pub struct Consents {
    file: Option<PathBuf>,
    inner: Mutex<ConsentState>,
}

#[derive(Debug, Default)]
struct ConsentState {
    remembered: BTreeSet<String>,
    session: BTreeSet<String>,
}

#[derive(Serialize, Deserialize, Default)]
struct ConsentFile {
    approved: BTreeSet<String>,
}

impl Consents {
    /// Load `<dir>/origins.json` (missing: none approved); `None` keeps approvals in memory.
    pub fn open(dir: Option<&Path>) -> Consents {
        let file = dir.map(|d| d.join("origins.json"));
        let remembered = file.as_deref().map(read_origins).unwrap_or_default();
        Consents {
            file,
            inner: Mutex::new(ConsentState {
                remembered,
                session: BTreeSet::new(),
            }),
        }
    }

    pub fn is_approved(&self, origin: &str) -> bool {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        s.remembered.contains(origin) || s.session.contains(origin)
    }

    pub fn approve(&self, origin: &str, remember: bool) -> std::io::Result<()> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if remember {
            s.remembered.insert(origin.to_string());
            if let Some(f) = &self.file {
                write_origins(f, &s.remembered)?;
            }
        } else {
            s.session.insert(origin.to_string());
        }
        Ok(())
    }
}

impl Consents {
    /// The remembered origins and the ones allowed until certray stops.
    pub fn list(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        (s.remembered.clone(), s.session.clone())
    }

    /// Withdraw an approval, remembered or for this session; whether there was one.
    pub fn revoke(&self, origin: &str) -> std::io::Result<bool> {
        let mut s = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let session = s.session.remove(origin);
        let remembered = s.remembered.remove(origin);
        if remembered && let Some(f) = &self.file {
            write_origins(f, &s.remembered)?;
        }
        Ok(session || remembered)
    }
}

fn read_origins(path: &Path) -> BTreeSet<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => match serde_json::from_str::<ConsentFile>(&text) {
            Ok(f) => f.approved,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable approvals file");
                BTreeSet::new()
            }
        },
        Err(_) => BTreeSet::new(),
    }
}

fn write_origins(path: &Path, origins: &BTreeSet<String>) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let text = serde_json::to_string_pretty(&ConsentFile {
        approved: origins.clone(),
    })?;
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(tmp, path)
}

/// The origins remembered in `<dir>/origins.json`.
pub fn remembered_origins(dir: &Path) -> BTreeSet<String> {
    read_origins(&dir.join("origins.json"))
}

/// Forget a remembered origin; whether it was there. (A running daemon keeps it until it
/// restarts.)
pub fn revoke_origin(dir: &Path, origin: &str) -> std::io::Result<bool> {
    let path = dir.join("origins.json");
    let mut origins = read_origins(&path);
    let was = origins.remove(origin);
    if was {
        write_origins(&path, &origins)?;
    }
    Ok(was)
}

/// One audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub time: String,
    /// The page's origin, or `local` for a program without one.
    pub origin: String,
    /// `sign` or `authenticate`.
    pub operation: String,
    pub certificate_id: String,
    /// `raw`, `cms`, `cms-detached`, or `certray-auth:1`.
    pub format: String,
    /// Bytes signed (data, digest or challenge).
    pub bytes: usize,
    /// `ok` or the error code.
    pub result: String,
}

/// The append-only audit log.
#[derive(Debug)]
pub struct Audit {
    file: Option<PathBuf>,
    lock: Mutex<()>,
}

impl Audit {
    pub fn open(dir: Option<&Path>) -> Audit {
        Audit {
            file: dir.map(|d| d.join("audit.log")),
            lock: Mutex::new(()),
        }
    }

    /// Append a record; a failure is logged, never fatal to the signature.
    pub fn record(&self, mut r: AuditRecord) {
        r.time = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default();
        let Some(path) = &self.file else { return };
        let _guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        let line = serde_json::to_string(&r).unwrap_or_default();
        let result = (|| {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            writeln!(f, "{line}")
        })();
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot write the audit log");
        }
    }
}

/// Every record in `<dir>/audit.log`, oldest first (unreadable lines are skipped).
pub fn read_audit(dir: &Path) -> Vec<AuditRecord> {
    std::fs::read_to_string(dir.join("audit.log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvals_persist_and_revoke() {
        let dir = tempfile::tempdir().unwrap();
        let c = Consents::open(Some(dir.path()));
        c.approve("https://etax.example", true).unwrap();
        c.approve("https://once.example", false).unwrap();
        assert!(c.is_approved("https://etax.example") && c.is_approved("https://once.example"));
        let again = Consents::open(Some(dir.path()));
        assert!(again.is_approved("https://etax.example"));
        assert!(!again.is_approved("https://once.example"));
        assert!(revoke_origin(dir.path(), "https://etax.example").unwrap());
        assert!(!Consents::open(Some(dir.path())).is_approved("https://etax.example"));
        assert!(!revoke_origin(dir.path(), "https://etax.example").unwrap());
    }

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
            });
        }
        let r = read_audit(dir.path());
        assert_eq!(r.len(), 2);
        assert_eq!(r[1].result, "PIN_INCORRECT");
        assert!(r[0].time.starts_with("20"));
    }
}
