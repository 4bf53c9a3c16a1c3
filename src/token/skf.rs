//! GM/T 0016 (SKF) USB keys: the vendor libraries most Chinese CA keys ship (Longmai GM3000,
//! Feitian ePass3000GM, Haitai, Watchdata…; `../shared/docs/SKF.md`).
//!
//! - [`abi`]: certray's own transcription of the SKF C ABI (packed structs, SAR codes,
//!   algorithm ids, `extern "system"` function types), the function table that loads a
//!   library and tells required from optional symbols, and the parsers of what the library
//!   hands back;
//! - [`host`]: `certray skf-host --library PATH`, the child process that loads one library
//!   and serialises every call to it (vendor libraries crash, hang and are rarely
//!   thread-safe);
//! - [`protocol`]: the length-prefixed JSON frames between certray and a host;
//! - [`SkfBackend`] (`backend.rs`): the [`Backend`](super::Backend) that runs a host,
//!   restarts it after a crash or a hang, turns devices into tokens and signs (SM2 with
//!   e = SM3(Z‖M), RSA with DigestInfo; the core verifies every signature before it leaves);
//! - [`registry`]: the vendor SKF library paths known per platform.
//!
//! The tests run against `softskf` (tests/softskf), a test-only stand-in for the keys,
//! refereed by gcc and OpenSSL.

pub mod abi;
mod backend;
pub mod host;
pub mod protocol;
pub mod registry;

pub use backend::{HOST_PROGRAM_ENV, MODEL, SkfBackend, SkfOptions};
