//! What is plugged in, as the core's inventory sees it: every PKCS#11 module tried, the
//! tokens they serve and the certificates on them ([`Found`], gathered by [`look`]). The
//! checks that judge these facts are in `pcsc` (the service, readers, cards), `pkcs11`
//! (modules, tokens, certificates, PIN) and `clock`.

use std::path::{Path, PathBuf};

use super::same_file;
use crate::cert::Certificate;
use crate::config::Config;
use crate::core::{Live, LiveOptions};
use crate::model::{CertEntry, Token};
use crate::token::pkcs11::ModuleInfo;

/// What the PKCS#11 side looks like: every module tried and the tokens they serve.
#[derive(Debug, Default)]
pub struct Found {
    pub modules: Vec<ModuleFact>,
    /// Every SKF library tried.
    pub skf: Vec<SkfFact>,
    /// Each token once, also when two modules serve it (the first one counts).
    pub tokens: Vec<TokenFact>,
}

#[derive(Debug)]
pub struct ModuleFact {
    pub path: PathBuf,
    /// Listed in `[pkcs11] modules` (else a default found installed).
    pub configured: bool,
    pub loaded: Result<ModuleInfo, String>,
    /// Listing its slots and tokens failed.
    pub scan_error: Option<String>,
}

/// An SKF library as the inventory tried it.
#[derive(Debug)]
pub struct SkfFact {
    pub path: PathBuf,
    /// Listed in `[skf] libraries` (else a known vendor library found installed).
    pub configured: bool,
    /// Why it did not load, if it did not.
    pub loaded: Result<(), String>,
    /// The devices its host saw.
    pub devices: Vec<String>,
    /// Its host crashed or hung, and why.
    pub incidents: Vec<String>,
    pub scan_error: Option<String>,
}

impl Found {
    /// The module at `path` (the same file, through symlinks too) as it was tried, or
    /// `None` when it was not.
    pub fn module(&self, path: &Path) -> Option<&ModuleFact> {
        self.modules.iter().find(|m| same_file(&m.path, path))
    }
}

#[derive(Debug)]
pub struct TokenFact {
    pub token: Token,
    pub certificates: Vec<CertFact>,
}

#[derive(Debug)]
pub struct CertFact {
    pub id: String,
    pub label: String,
    pub has_private_key: crate::model::KeyPresence,
    pub parsed: Result<Certificate, String>,
}

/// Load every configured and default module, scan it and parse the certificates the way the
/// daemon does ([`Live`], read once), then let the modules go again (each worker finalizes
/// its module before this returns).
pub fn look(config: &Config) -> Found {
    // Read once, the inventory follows no card events and needs no `[[cards]]` registry: a
    // malformed entry is the `cards` check's finding, not a reason to look at nothing.
    let mut config = config.clone();
    config.cards.clear();
    let live = match Live::start(&config, LiveOptions::once()) {
        Ok(live) => live,
        Err(e) => {
            tracing::warn!(error = %e, "the inventory did not start; no module looked at");
            return Found::default();
        }
    };
    let modules = live
        .modules()
        .iter()
        .map(|m| ModuleFact {
            path: m.path.clone(),
            configured: m.configured,
            loaded: m.loaded.clone().map_err(|f| f.reason),
            scan_error: m.scan_error.clone(),
        })
        .collect();
    let skf = live
        .skf_libraries()
        .iter()
        .map(|l| SkfFact {
            path: l.path.clone(),
            configured: l.configured,
            loaded: l.loaded.as_ref().map(drop).map_err(|f| f.reason.clone()),
            devices: l.loaded.as_ref().map(|b| b.devices()).unwrap_or_default(),
            incidents: l.loaded.as_ref().map(|b| b.incidents()).unwrap_or_default(),
            scan_error: l.scan_error.clone(),
        })
        .collect();
    // Each token once, also when two modules serve it: the inventory keeps the first.
    let snapshot = live.snapshot();
    let tokens = snapshot
        .tokens
        .iter()
        .map(|token| TokenFact {
            token: token.clone(),
            certificates: snapshot
                .certificates_of(&token.id)
                .into_iter()
                .map(cert_fact)
                .collect(),
        })
        .collect();
    Found {
        modules,
        skf,
        tokens,
    }
}

fn cert_fact(c: CertEntry) -> CertFact {
    CertFact {
        id: c.id.to_string(),
        label: c.label,
        has_private_key: c.has_private_key,
        parsed: c.parsed.map_err(|e| e.reason),
    }
}
