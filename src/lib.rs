//! certray (证书助手): an open, cross-platform certificate helper for PKI USB keys and
//! smart cards. See `ARCHITECTURE.md` for the map.

pub mod bridge;
pub mod cert;
pub mod cli;
pub mod cms;
pub mod config;
pub mod doctor;
pub mod error;
pub mod i18n;
pub mod inventory;
pub mod platform;
pub mod token;
pub mod ui;
