//! `certray inspect FILE…` (证书信息检测 for files): the certificates in certificate files,
//! each with its issuer checked against the other files given and the CA certificates
//! (`[trust] ca_paths`, the system store).

use std::path::{Path, PathBuf};

use super::Trust;
use crate::cert::{self, BundleError};
use crate::error::Code;
use crate::model::{CertEntry, CertObject, KeyPresence, TokenId};

/// Files bigger than this are not certificate files (and are not read whole).
const MAX_FILE_LEN: u64 = 16 << 20;

/// Why a file gave no certificates.
#[derive(Debug, Clone, thiserror::Error)]
pub enum InspectError {
    #[error("{path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path}: {error}")]
    NotACertificate { path: PathBuf, error: BundleError },
}

impl InspectError {
    /// `IO` for a file that cannot be read, `NOT_A_CERTIFICATE` for one that is read but
    /// holds no certificate.
    pub fn code(&self) -> Code {
        match self {
            InspectError::Read { .. } => Code::Io,
            InspectError::NotACertificate { .. } => Code::NotACertificate,
        }
    }
}

/// One file given, and what it holds.
#[derive(Debug, Clone)]
pub struct InspectedFile {
    pub path: PathBuf,
    /// Its certificates in file order, their issuers checked; or why there are none.
    pub certificates: Result<Vec<CertEntry>, InspectError>,
}

/// The certificates of `paths`, in order. Each certificate's issuer is looked for among
/// the certificates of all the files, then in `trust`. A certificate file has no private
/// key; an entry's label is the file path (with `#n` for the n-th of a bundle).
pub fn inspect(paths: &[PathBuf], trust: &Trust) -> Vec<InspectedFile> {
    let mut files: Vec<InspectedFile> = paths
        .iter()
        .map(|p| InspectedFile {
            path: p.clone(),
            certificates: read(p),
        })
        .collect();
    let all: Vec<CertEntry> = files
        .iter()
        .filter_map(|f| f.certificates.as_ref().ok())
        .flatten()
        .cloned()
        .collect();
    let mut checks = trust.check_files(&all).into_iter();
    for f in &mut files {
        if let Ok(certs) = &mut f.certificates {
            for c in certs {
                c.issuer = checks.next().flatten();
            }
        }
    }
    files
}

fn read(path: &Path) -> Result<Vec<CertEntry>, InspectError> {
    let read_error = |reason: String| InspectError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| read_error(e.to_string()))?;
    if meta.is_dir() {
        return Err(read_error("a directory, not a file".into()));
    }
    if meta.len() > MAX_FILE_LEN {
        return Err(InspectError::NotACertificate {
            path: path.to_path_buf(),
            error: BundleError::NotACertificate(cert::Error::NotACertificate(format!(
                "{} bytes: too big for a certificate file",
                meta.len()
            ))),
        });
    }
    let bytes = std::fs::read(path).map_err(|e| read_error(e.to_string()))?;
    let certs = cert::read_certificates(&bytes).map_err(|error| InspectError::NotACertificate {
        path: path.to_path_buf(),
        error,
    })?;
    let many = certs.len() > 1;
    Ok(certs
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let label = if many {
                format!("{} #{}", path.display(), i + 1)
            } else {
                path.display().to_string()
            };
            CertEntry::new(
                CertObject {
                    token_id: TokenId::from(""),
                    label,
                    key_id: Vec::new(),
                    der: c.der.clone(),
                    has_private_key: KeyPresence::No,
                },
                Ok(c),
            )
        })
        .collect())
}
