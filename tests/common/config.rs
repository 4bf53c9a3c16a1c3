//! The certray config files the harness writes.

use std::fs;
use std::path::{Path, PathBuf};

pub(super) fn write_config(path: &Path, module: &Path) -> PathBuf {
    let module = module.to_str().expect("module path is UTF-8");
    assert!(
        !module.contains(['"', '\\']),
        "module path needs TOML escaping: {module}"
    );
    let text = format!("[pkcs11]\nmodules = [\"{module}\"]\nuse_defaults = false\n");
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_path_buf()
}
