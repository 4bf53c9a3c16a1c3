//! certray (证书助手): an open, cross-platform certificate helper for PKI USB keys and
//! smart cards. See `ARCHITECTURE.md` for the map.
//!
//! A program that holds signing keys: every `unsafe` block says why it is sound (a
//! `// SAFETY:` comment, which clippy checks), and an `unsafe fn` does its unsafe work in
//! `unsafe` blocks of its own.
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod bridge;
pub mod cert;
pub mod cli;
pub mod cms;
pub mod config;
pub mod core;
pub mod daemon;
pub mod doctor;
pub mod error;
pub mod i18n;
pub mod model;
pub mod platform;
pub mod text;
pub mod token;
pub mod ui;
