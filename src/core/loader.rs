//! Loading the backends the configuration names (and the platform's known modules), the one
//! way every part of certray does it: the inventory, and `certray doctor`, which reports
//! each one tried.

use std::path::PathBuf;

use crate::config::{Config, ModuleConfig};
use crate::token;
use crate::token::pkcs11::ModuleHandle;
use crate::token::skf::{SkfBackend, SkfOptions};

/// A module that could not be loaded, and why.
#[derive(Debug, Clone)]
pub struct LoadFailure {
    pub path: PathBuf,
    pub reason: String,
}

/// One module tried, in the order tried.
pub struct Tried {
    pub config: ModuleConfig,
    /// Listed in `[pkcs11] modules` (else a default found installed).
    pub configured: bool,
    pub loaded: Result<ModuleHandle, LoadFailure>,
}

/// Try every configured module, then (with `use_defaults`) the known ones installed here. A
/// module that fails is recorded with its path and the reason; the others keep working.
pub fn load(config: &Config) -> Vec<Tried> {
    token::modules::resolve(&config.pkcs11.modules, config.pkcs11.use_defaults)
        .into_iter()
        .map(|module| {
            let configured = config.pkcs11.modules.iter().any(|c| c.path == module.path);
            let loaded = ModuleHandle::spawn(&module.path).map_err(|e| {
                let reason = match e {
                    token::Error::ModuleLoad { reason, .. } => reason,
                    other => other.to_string(),
                };
                tracing::info!(path = %module.path.display(), %reason, "PKCS#11 module not loaded");
                LoadFailure {
                    path: module.path.clone(),
                    reason,
                }
            });
            Tried {
                config: module,
                configured,
                loaded,
            }
        })
        .collect()
}

/// One SKF library tried, in the order tried.
pub struct TriedSkf {
    pub path: PathBuf,
    /// Listed in `[skf] libraries` (else a known vendor library found installed).
    pub configured: bool,
    pub loaded: Result<SkfBackend, LoadFailure>,
}

/// Start a host for every configured SKF library, then (with `use_defaults`) the known
/// ones installed here. A library that fails is recorded with its path and the reason.
pub fn load_skf(config: &Config) -> Vec<TriedSkf> {
    let options = SkfOptions {
        timeout: std::time::Duration::from_millis(config.skf.timeout_ms.max(1)),
        ..SkfOptions::default()
    };
    token::skf::registry::resolve(&config.skf.libraries, config.skf.use_defaults)
        .into_iter()
        .map(|path| {
            let configured = config.skf.libraries.contains(&path);
            let loaded = SkfBackend::spawn(&path, options.clone()).map_err(|e| {
                let reason = match e {
                    token::Error::ModuleLoad { reason, .. } => reason,
                    other => other.to_string(),
                };
                tracing::info!(path = %path.display(), %reason, "SKF library not loaded");
                LoadFailure {
                    path: path.clone(),
                    reason,
                }
            });
            TriedSkf {
                path,
                configured,
                loaded,
            }
        })
        .collect()
}
