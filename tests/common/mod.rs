//! Test harness for the integration tests (`mod common;`, or `use crate::common;` in the
//! modules of `tests/suite/`), also used by `benches/events.rs`.
//!
//! It drives the real programs (SoftHSM2, OpenSC's `pkcs11-tool`, opencryptoki, OpenSSL,
//! python3, pcscd and vicc, Xvfb and the desktop helpers) and starts certray as a binary or,
//! for in-process tests, its live inventory. Every item is re-exported here, so `common::X`
//! works whichever file below holds X:
//! - `at_exit.rs`: [`remove_at_exit`], for the temporary directories statics hold;
//! - `tools.rs`: finding programs and files ([`require`], [`require_file`]);
//! - `command.rs`: running commands ([`run`], [`run_unchecked`], [`first_stdout_line`]);
//! - `openssl.rs`: OpenSSL as the referee ([`openssl_sha256`], [`openssl_verify`]);
//! - `pkcs11.rs`: what SoftHSM and opencryptoki share (`pkcs11-tool`, imports, raw objects);
//! - `softhsm.rs`: [`SoftHsm`], a private token store per test;
//! - `opencryptoki.rs`: [`Opencryptoki`], the system-wide soft token that locks PINs (root);
//! - `config.rs`: the certray config files the harness writes;
//! - `fixtures.rs`: the certificates of `tests/fixtures/make-certs.sh` ([`fixture`]);
//! - `app.rs`: certray itself ([`certray`] the binary, [`live_on`] the inventory in-process);
//! - `pcsc.rs`, `desktop.rs`, `bridge.rs`: a private pcscd with vicc, a private desktop, a
//!   running bridge daemon with an HTTP client.
//!
//! A missing tool is a test FAILURE, never a silent skip: every entry point panics with the
//! Debian package to install ("… not found: apt-get install <package>"). `scripts/test`
//! installs all of them.
//!
//! Every command runs with stdin closed (so a PIN prompt can never hang a test), and its exit
//! status is checked: a failure panics with the command line, its stdout and its stderr.

#![allow(dead_code)]

pub mod bridge;
pub mod browser;
pub mod desktop;
pub mod pcsc;
pub mod skf;
pub mod xtx;

mod app;
mod at_exit;
mod command;
mod config;
mod fixtures;
mod opencryptoki;
mod openssl;
mod pkcs11;
mod softhsm;
mod tools;

// Not every test binary uses every part.
#[allow(unused_imports)]
pub use self::{
    app::*, at_exit::*, command::*, fixtures::*, opencryptoki::*, openssl::*, pkcs11::*,
    softhsm::*, tools::*,
};
