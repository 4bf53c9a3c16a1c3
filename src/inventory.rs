//! The inventory: every loaded module, the tokens they serve and the certificates on them,
//! parsed once. Commands (sign, PIN change, unlock) are routed to the worker of the module
//! that serves the token.
//!
//! This is the core the CLI, the bridge and the UI share: they hold an [`Inventory`] (or,
//! later, a handle to the daemon's) and never call `token::pkcs11` themselves.

use std::path::PathBuf;

use time::OffsetDateTime;

mod event;
mod live;

pub use event::{Event, Hint};
pub use live::{Live, LiveOptions, Reader, Snapshot, Subscription, Update};

use crate::cert;
use crate::config::{Config, ModuleConfig};
use crate::error::Code;
use crate::token::pkcs11::{Auth, ModuleHandle, ModuleInfo, SignRequest};
use crate::token::sign::{HashAlg, KeyKind, SignInput, Signature};
use crate::token::{self, Pin, PinState, TokenInfo};

/// A certificate object on a token, with its parsed model (or why it did not parse).
#[derive(Debug, Clone)]
pub struct CertEntry {
    /// `c-` + 16 hex chars of the SHA-256 of the object's bytes.
    pub id: String,
    /// SHA-256 of the object's bytes, lowercase hex.
    pub sha256: String,
    pub token_id: String,
    pub label: String,
    pub key_id: Vec<u8>,
    pub der: Vec<u8>,
    pub has_private_key: bool,
    pub parsed: Result<cert::Certificate, cert::Error>,
}

/// A module that could not be loaded, and why.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub path: PathBuf,
    pub reason: String,
}

/// Why an inventory command failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Token(#[from] token::Error),
    #[error("certificate {0} not found")]
    CertNotFound(String),
    #[error("token {0} not found")]
    TokenNotFound(String),
    #[error("certificate {0} has no private key")]
    NoPrivateKey(String),
    #[error("certificate {id} cannot be read: {reason}")]
    CertInvalid { id: String, reason: String },
    #[error("{0}")]
    Unsupported(String),
}

impl Error {
    pub fn code(&self) -> Code {
        match self {
            Error::Token(e) => e.code(),
            Error::CertNotFound(_) => Code::CertNotFound,
            Error::TokenNotFound(_) => Code::TokenNotFound,
            Error::NoPrivateKey(_) => Code::NoPrivateKey,
            Error::CertInvalid { .. } => Code::CertInvalid,
            Error::Unsupported(_) => Code::UnsupportedAlgorithm,
        }
    }

    /// The token's PIN state when the error carries one.
    pub fn pin_state(&self) -> Option<PinState> {
        match self {
            Error::Token(e) => e.pin_state(),
            _ => None,
        }
    }
}

/// Every token and certificate certray can see.
pub struct Inventory {
    modules: Vec<ModuleHandle>,
    failures: Vec<LoadFailure>,
    tokens: Vec<TokenInfo>,
    certificates: Vec<CertEntry>,
    warning_days: u32,
}

impl Inventory {
    /// Load the configured modules (a module that fails is recorded, the others keep
    /// working) and scan them.
    pub fn open(config: &Config) -> Inventory {
        let (loaded, failures) = load_modules(config);
        let modules = loaded.into_iter().map(|(m, _)| m).collect();
        let mut inv = Inventory {
            modules,
            failures,
            tokens: Vec::new(),
            certificates: Vec::new(),
            warning_days: config.alerts.expiry_warning_days,
        };
        inv.refresh();
        inv
    }

    /// Scan every module again.
    pub fn refresh(&mut self) {
        self.tokens.clear();
        self.certificates.clear();
        for m in &self.modules {
            let scans = match m.scan() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(module = %m.path().display(), error = %e, "scan failed");
                    continue;
                }
            };
            for scan in scans {
                // The same token seen through two modules is listed once.
                if self.tokens.iter().any(|t| t.id == scan.token.id) {
                    continue;
                }
                for obj in scan.certificates {
                    self.certificates.push(entry(obj));
                }
                self.tokens.push(scan.token);
            }
        }
    }

    pub fn modules(&self) -> impl Iterator<Item = &ModuleInfo> {
        self.modules.iter().map(|m| m.info())
    }

    pub fn failures(&self) -> &[LoadFailure] {
        &self.failures
    }

    pub fn tokens(&self) -> &[TokenInfo] {
        &self.tokens
    }

    pub fn certificates(&self) -> &[CertEntry] {
        &self.certificates
    }

    pub fn warning_days(&self) -> u32 {
        self.warning_days
    }

    pub fn token(&self, id: &str) -> Result<&TokenInfo, Error> {
        self.tokens
            .iter()
            .find(|t| t.id == id)
            .ok_or_else(|| Error::TokenNotFound(id.to_string()))
    }

    /// A certificate by its id; a unique prefix of at least 6 characters also matches.
    pub fn certificate(&self, id: &str) -> Result<&CertEntry, Error> {
        if let Some(c) = self.certificates.iter().find(|c| c.id == id) {
            return Ok(c);
        }
        let mut matches = self
            .certificates
            .iter()
            .filter(|c| id.len() >= 6 && c.id.starts_with(id));
        match (matches.next(), matches.next()) {
            (Some(c), None) => Ok(c),
            _ => Err(Error::CertNotFound(id.to_string())),
        }
    }

    fn module_for(&self, token_id: &str) -> Result<&ModuleHandle, Error> {
        let token = self.token(token_id)?;
        self.modules
            .iter()
            .find(|m| m.path() == token.module)
            .ok_or_else(|| Error::TokenNotFound(token_id.to_string()))
    }

    /// Check that a certificate can sign before any PIN is asked for.
    pub fn check_signer(&self, cert_id: &str) -> Result<&CertEntry, Error> {
        let c = self.certificate(cert_id)?;
        signing_key(c)?;
        Ok(c)
    }

    /// Sign with the private key of certificate `cert_id`.
    pub fn sign(
        &self,
        cert_id: &str,
        hash: HashAlg,
        input: SignInput,
        auth: Auth,
    ) -> Result<Signature, Error> {
        let c = self.check_signer(cert_id)?;
        let module = self.module_for(&c.token_id)?;
        Ok(module.sign(SignRequest {
            token_id: c.token_id.clone(),
            key_id: c.key_id.clone(),
            hash,
            input,
            auth,
        })?)
    }

    /// The token's PIN state, read fresh.
    pub fn pin_state(&self, token_id: &str) -> Result<PinState, Error> {
        Ok(self.module_for(token_id)?.pin_state(token_id)?)
    }

    /// Change the user PIN.
    pub fn change_pin(
        &self,
        token_id: &str,
        old: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, Error> {
        Ok(self
            .module_for(token_id)?
            .change_pin(token_id, old, new, force)?)
    }

    /// Unlock with the admin PIN or unlock code and set a new user PIN.
    pub fn unlock(
        &self,
        token_id: &str,
        so_pin: Pin,
        new: Pin,
        force: bool,
    ) -> Result<PinState, Error> {
        Ok(self
            .module_for(token_id)?
            .unlock(token_id, so_pin, new, force)?)
    }

    /// Days left and status of a parsed certificate now.
    pub fn status_now(&self, c: &cert::Certificate) -> (i64, cert::Status) {
        let now = OffsetDateTime::now_utc();
        (c.days_left(now), c.status(now, self.warning_days))
    }
}

/// The kind of key a certificate signs with, or why it cannot sign (refused before any PIN
/// is asked for).
pub fn signing_key(c: &CertEntry) -> Result<KeyKind, Error> {
    let parsed = c.parsed.as_ref().map_err(|e| Error::CertInvalid {
        id: c.id.clone(),
        reason: e.to_string(),
    })?;
    if !c.has_private_key {
        return Err(Error::NoPrivateKey(c.id.clone()));
    }
    match parsed.key.algorithm {
        cert::KeyAlgorithm::Rsa => Ok(KeyKind::Rsa),
        cert::KeyAlgorithm::Ec => Ok(KeyKind::Ec),
        cert::KeyAlgorithm::Sm2 => Err(Error::Unsupported(
            "SM2 signing through a vendor PKCS#11 mechanism is not supported yet".into(),
        )),
        cert::KeyAlgorithm::Other => Err(Error::Unsupported(format!(
            "key algorithm {}",
            parsed.key.oid.as_deref().unwrap_or("unknown")
        ))),
    }
}

/// Load the configured and default modules; a module that fails is recorded with its path
/// and the reason, and the others keep working.
fn load_modules(config: &Config) -> (Vec<(ModuleHandle, ModuleConfig)>, Vec<LoadFailure>) {
    let mut loaded = Vec::new();
    let mut failures = Vec::new();
    for module in token::modules::resolve(&config.pkcs11.modules, config.pkcs11.use_defaults) {
        match ModuleHandle::spawn(&module.path) {
            Ok(m) => loaded.push((m, module)),
            Err(e) => {
                let reason = match &e {
                    token::Error::ModuleLoad { reason, .. } => reason.clone(),
                    other => other.to_string(),
                };
                tracing::info!(path = %module.path.display(), %reason, "PKCS#11 module not loaded");
                failures.push(LoadFailure {
                    path: module.path,
                    reason,
                });
            }
        }
    }
    (loaded, failures)
}

/// A certificate object with its id, fingerprint and parsed model.
pub fn entry(obj: token::CertObject) -> CertEntry {
    let sha256 = cert::sha256_hex(&obj.der);
    let id = cert::id_from_sha256(&sha256);
    let parsed = cert::parse(&obj.der);
    if let Err(e) = &parsed {
        tracing::debug!(token = %obj.token_id, label = %obj.label, error = %e, "certificate object does not parse");
    }
    CertEntry {
        id,
        sha256,
        token_id: obj.token_id,
        label: obj.label,
        key_id: obj.key_id,
        has_private_key: obj.has_private_key,
        der: obj.der,
        parsed,
    }
}
