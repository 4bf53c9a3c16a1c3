//! The integration tests that drive certray from outside, in one test binary: the `certray`
//! binary as a subprocess, its pure library parts (certificates, CMS), and the harness. One
//! binary links GTK, egui, tokio and axum once, not once per file.
//!
//! Tests here run in parallel threads of one process, so none of them may change what the
//! others share: no `std::env::set_var`, no PKCS#11 module or PC/SC loaded in-process, and
//! machine-wide resources taken in turn (`#[serial(opencryptoki)]`). A test file that needs
//! one of those is a binary of its own instead, `tests/NAME.rs`:
//! - SoftHSM loaded in-process (`bridge_router`, `corpus_screens`, `token_removed`, `token_seal`,
//!   `ui_dialogs`, `ui_process`): SoftHSM reads `SOFTHSM2_CONF` at C_Initialize, once for the process;
//! - libpcsclite in-process (`pcsc_watch`): it reads `PCSCLITE_CSOCK_NAME` once per process;
//! - `ui_notify`: notify-rust finds the session bus through the process's environment;
//! - `deb_package`: it installs certray system-wide (an XDG autostart entry in `/etc/xdg`, a
//!   systemd user unit), which `certray doctor` and the tray read: it must not overlap the
//!   tests here (cargo runs test binaries one after another).
//!
//! Heavy tests (a package build and install, opencryptoki as root, schemathesis, Chromium) are
//! `#[ignore = "heavy: …"]`: `scripts/test` runs them, `scripts/test --quick` shows them as
//! ignored.

#[path = "../common/mod.rs"]
mod common;

mod architecture;
mod bridge_browser;
mod bridge_hostile;
mod bridge_schemathesis;
mod bridge_socket;
mod cert_corpus;
mod cert_openssl;
mod cert_verify;
mod cli_doctor;
mod cli_hidden_key;
mod cli_inspect;
mod cli_list_uscc;
mod cli_pin_lockout;
mod cli_softhsm;
mod cli_watch;
mod cms_openssl;
mod desktop;
mod harness_selftest;
mod issuer_check;
mod sign_verified;
mod skf_backend;
mod skf_browser;
mod skf_cli;
mod skf_daemon;
mod ui_tray;
mod xtx_browser;
mod xtx_protocol;
mod xtx_trust;
