//! Where certificates' issuers are looked for, and the issuer check of every certificate on
//! the tokens.
//!
//! Issuers are looked for on the tokens (any token present), then in the CA files and
//! directories `[trust] ca_paths` names, then in the system's CA store (the platform's:
//! the bundle or directory OpenSSL uses on Linux, `SSL_CERT_FILE`/`SSL_CERT_DIR` when set,
//! the keychain on macOS, the certificate store on Windows; `rustls-native-certs` finds
//! them). Chinese CA roots are not in the system store: CAs hand out their chains, and
//! `ca_paths` is where they go. The files are read once, when the inventory starts
//! ([`Trust::load`]); a file that cannot be read is logged and left out.
//!
//! The check itself is `cert::verify`'s, a pure function of bytes; [`Trust::check_all`]
//! turns its answer into the model's [`IssuerCheck`].

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::cert::{self, Candidates, IssuerStatus};
use crate::config::TrustConfig;
use crate::model::{CertEntry, CertRef, ChainLink, IssuerCheck, IssuerSource, IssuerVerdict};

/// Files bigger than this in `ca_paths` are not CA files (and are not read whole).
const MAX_FILE_LEN: u64 = 16 << 20;
/// How many files of one `ca_paths` directory are read at most (a guard against `/`).
const MAX_DIR_FILES: usize = 4096;

/// A `ca_paths` entry or a system store that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustProblem {
    /// The file or directory; `None` for the system store.
    pub path: Option<PathBuf>,
    pub reason: String,
}

/// The CA certificates read at start: those of `ca_paths`, then the system store's.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// DER, where from; each certificate once.
    certs: Vec<(Vec<u8>, IssuerSource)>,
    problems: Vec<TrustProblem>,
}

impl Trust {
    /// Read the files `config` names and the system's CA store.
    pub fn load(config: &TrustConfig) -> Trust {
        let mut trust = Trust::load_ca_paths(config);
        let mut seen: HashSet<String> = trust
            .certs
            .iter()
            .map(|(d, _)| cert::sha256_hex(d))
            .collect();
        let native = rustls_native_certs::load_native_certs();
        for e in native.errors {
            trust.problem(None, e.to_string());
        }
        let mut system = 0;
        for der in native.certs {
            if seen.insert(cert::sha256_hex(&der)) {
                trust.certs.push((der.to_vec(), IssuerSource::System));
                system += 1;
            }
        }
        tracing::debug!(
            ca_paths = trust.certs.len() - system,
            system,
            "CA certificates read"
        );
        trust
    }

    /// Read only the files `config` names (`certray doctor` reports what they give).
    pub fn load_ca_paths(config: &TrustConfig) -> Trust {
        let mut trust = Trust::default();
        let mut seen = HashSet::new();
        for path in &config.ca_paths {
            trust.add_path(path, &mut seen);
        }
        trust
    }

    /// No CA certificates: issuers are looked for on the tokens only.
    pub fn none() -> Trust {
        Trust::default()
    }

    /// CA certificates given as DER (tests, and callers that read them themselves).
    pub fn from_ders(ders: impl IntoIterator<Item = Vec<u8>>, source: IssuerSource) -> Trust {
        Trust {
            certs: ders.into_iter().map(|d| (d, source)).collect(),
            problems: Vec::new(),
        }
    }

    /// How many CA certificates were read.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// True when no CA certificate was read.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// The `ca_paths` entries (and system stores) that could not be read, and why.
    pub fn problems(&self) -> &[TrustProblem] {
        &self.problems
    }

    fn problem(&mut self, path: Option<&Path>, reason: String) {
        match path {
            Some(p) => tracing::warn!(path = %p.display(), %reason, "CA certificates not read"),
            None => tracing::debug!(%reason, "system CA store"),
        }
        self.problems.push(TrustProblem {
            path: path.map(Path::to_path_buf),
            reason,
        });
    }

    /// A `ca_paths` entry: a file, or a directory whose files are read (those that are not
    /// certificates, such as a README, are skipped).
    fn add_path(&mut self, path: &Path, seen: &mut HashSet<String>) {
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) => return self.problem(Some(path), e.to_string()),
        };
        if !meta.is_dir() {
            match read_file(path) {
                Ok(ders) => self.add(ders, seen),
                Err(reason) => self.problem(Some(path), reason),
            }
            return;
        }
        let mut files: Vec<PathBuf> = match std::fs::read_dir(path) {
            Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
            Err(e) => return self.problem(Some(path), e.to_string()),
        };
        files.sort();
        if files.len() > MAX_DIR_FILES {
            self.problem(
                Some(path),
                format!("more than {MAX_DIR_FILES} files: only the first are read"),
            );
            files.truncate(MAX_DIR_FILES);
        }
        for file in files.iter().filter(|f| f.is_file()) {
            match read_file(file) {
                Ok(ders) => self.add(ders, seen),
                Err(reason) => {
                    tracing::debug!(path = %file.display(), %reason, "not a CA file, skipped")
                }
            }
        }
    }

    fn add(&mut self, ders: Vec<Vec<u8>>, seen: &mut HashSet<String>) {
        for der in ders {
            if seen.insert(cert::sha256_hex(&der)) {
                self.certs.push((der, IssuerSource::CaPaths));
            }
        }
    }

    /// The issuer check of each of `certs` (every certificate on every token), in order:
    /// issuers are looked for among them and then among the CA certificates read at start.
    /// `None` for an object that is not a certificate.
    pub fn check_all(&self, certs: &[CertEntry]) -> Vec<Option<IssuerCheck>> {
        self.check_among(certs, IssuerSource::Token)
    }

    /// The same check for certificates read from files (`certray inspect`): issuers are
    /// looked for among them (source `files`), then among the CA certificates.
    pub fn check_files(&self, certs: &[CertEntry]) -> Vec<Option<IssuerCheck>> {
        self.check_among(certs, IssuerSource::Files)
    }

    fn check_among(&self, certs: &[CertEntry], among: IssuerSource) -> Vec<Option<IssuerCheck>> {
        let mut ders: Vec<&[u8]> = Vec::with_capacity(certs.len() + self.certs.len());
        let mut sources = Vec::with_capacity(ders.capacity());
        for c in certs.iter().filter(|c| c.parsed.is_ok()) {
            ders.push(&c.der);
            sources.push(among);
        }
        for (der, source) in &self.certs {
            ders.push(der);
            sources.push(*source);
        }
        let candidates = Candidates::new(&ders);
        certs
            .iter()
            .map(|c| {
                c.parsed.as_ref().ok()?;
                let chain = candidates.chain(&c.der, cert::MAX_CHAIN_LEN).ok()?;
                Some(issuer_check(&chain, &sources, among))
            })
            .collect()
    }
}

/// The model's view of a chain `cert::verify` built over candidates from `sources`.
/// `among`: where the checked certificates are (on tokens, or in files).
fn issuer_check(chain: &cert::Chain, sources: &[IssuerSource], among: IssuerSource) -> IssuerCheck {
    let source = |index: Option<usize>, none: IssuerSource| {
        index.and_then(|i| sources.get(i).copied()).unwrap_or(none)
    };
    let verdict = |s: &IssuerStatus| match s {
        IssuerStatus::Verified { .. } => IssuerVerdict::Verified,
        IssuerStatus::SignatureInvalid { .. } => IssuerVerdict::SignatureInvalid,
        IssuerStatus::IssuerNotFound => IssuerVerdict::IssuerNotFound,
        IssuerStatus::Unsupported { .. } => IssuerVerdict::Unsupported,
    };
    let first = chain.links.first();
    let issuer = first.and_then(|l| l.status.issuer()).map(|r| CertRef {
        id: r.id.clone(),
        subject: r.subject.clone(),
        // `None` names the certificate itself: self-signed.
        source: source(r.index, IssuerSource::Itself),
    });
    IssuerCheck {
        verdict: first.map_or(IssuerVerdict::IssuerNotFound, |l| verdict(&l.status)),
        issuer,
        chain: chain
            .links
            .iter()
            .map(|l| ChainLink {
                cert: CertRef {
                    id: l.id.clone(),
                    subject: l.subject.clone(),
                    // `None` is the certificate the chain was built for.
                    source: source(l.index, among),
                },
                verdict: verdict(&l.status),
            })
            .collect(),
        chain_end: chain.end,
    }
}

/// The certificates of one file, as DER; why not, in words.
fn read_file(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_FILE_LEN {
        return Err(format!("{len} bytes: too big for a CA file"));
    }
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs = cert::read_certificates(&bytes).map_err(|e| e.to_string())?;
    Ok(certs.into_iter().map(|c| c.der).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{CertObject, ChainEnd};

    /// A certificate object on token `t` with the bytes of `der`, parsed.
    fn entry(der: &[u8]) -> CertEntry {
        crate::core::entry(CertObject {
            token_id: "t".into(),
            label: String::new(),
            key_id: vec![1],
            der: der.to_vec(),
            has_private_key: false.into(),
        })
    }

    fn corpus(name: &str) -> Option<Vec<u8>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/real-certs");
        std::fs::read(dir.join(name)).ok()
    }

    #[test]
    fn issuers_on_tokens_and_in_ca_files() {
        let (Some(leaf), Some(sub), Some(root)) = (
            corpus("22-sheca-sm2-personal-bmpstring.der"),
            corpus("02-sheca-sm2-subca.der"),
            corpus("01-nrcac-sm2-root.der"),
        ) else {
            panic!("the corpus is in ../shared/fixtures/real-certs");
        };
        // Alone: nothing to verify it with.
        let checks = Trust::none().check_all(&[entry(&leaf)]);
        let c = checks[0].as_ref().unwrap();
        assert_eq!(c.verdict, IssuerVerdict::IssuerNotFound);
        assert_eq!((c.issuer.as_ref(), c.chain.len()), (None, 1));
        assert_eq!(c.chain_end, ChainEnd::IssuerNotFound);

        // The sub-CA on the token, the root in a CA file.
        let trust = Trust::from_ders([root.clone()], IssuerSource::CaPaths);
        let checks = trust.check_all(&[entry(&leaf), entry(&sub), entry(b"\x30\x00")]);
        let c = checks[0].as_ref().unwrap();
        assert!(c.is_verified());
        let issuer = c.issuer.as_ref().unwrap();
        assert_eq!(issuer.source, IssuerSource::Token);
        assert_eq!(issuer.subject, "CN=SHECA SM2,O=UniTrust,C=CN");
        assert_eq!(
            c.chain
                .iter()
                .map(|l| (l.cert.source, l.verdict))
                .collect::<Vec<_>>(),
            [
                (IssuerSource::Token, IssuerVerdict::Verified),
                (IssuerSource::Token, IssuerVerdict::Verified),
                (IssuerSource::CaPaths, IssuerVerdict::Verified),
            ]
        );
        assert_eq!(c.chain_end, ChainEnd::Root);
        assert_eq!(checks[2], None, "not a certificate");
        // The root checks itself.
        let checks = trust.check_all(&[entry(&root)]);
        let c = checks[0].as_ref().unwrap();
        assert_eq!(
            (c.verdict, c.issuer.as_ref().unwrap().source),
            (IssuerVerdict::Verified, IssuerSource::Itself)
        );

        // One bit of the signature flipped: the issuer is found, the signature fails.
        let mut tampered = leaf.clone();
        *tampered.last_mut().unwrap() ^= 1;
        let trust = Trust::from_ders([sub, root], IssuerSource::CaPaths);
        let checks = trust.check_all(&[entry(&tampered)]);
        let c = checks[0].as_ref().unwrap();
        assert_eq!(c.verdict, IssuerVerdict::SignatureInvalid);
        assert_eq!(c.issuer.as_ref().unwrap().source, IssuerSource::CaPaths);
        assert_eq!(c.chain_end, ChainEnd::SignatureInvalid);
    }

    #[test]
    fn ca_paths_files_and_directories() {
        let dir = tempfile::tempdir().unwrap();
        let root = corpus("01-nrcac-sm2-root.der").expect("the corpus");
        let sub = corpus("02-sheca-sm2-subca.der").expect("the corpus");
        std::fs::write(dir.path().join("root.pem"), cert::to_pem(&root)).unwrap();
        std::fs::write(dir.path().join("sub.der"), &sub).unwrap();
        std::fs::write(dir.path().join("README"), "not a certificate").unwrap();
        let config = TrustConfig {
            ca_paths: vec![
                dir.path().to_path_buf(),
                // The same again: read once.
                dir.path().join("sub.der"),
                dir.path().join("missing.pem"),
            ],
        };
        let trust = Trust::load(&config);
        let from_paths: Vec<&Vec<u8>> = trust
            .certs
            .iter()
            .filter(|(_, s)| *s == IssuerSource::CaPaths)
            .map(|(d, _)| d)
            .collect();
        assert_eq!(from_paths, [&root, &sub]);
        let problems: Vec<_> = trust
            .problems()
            .iter()
            .filter_map(|p| p.path.as_ref())
            .collect();
        assert_eq!(problems, [&dir.path().join("missing.pem")]);
    }
}
