//! The localhost bridge for web pages. Only this module knows HTTP; its [`wire`] types
//! are the one JSON shape, which the CLI's `--json` output reuses.

pub mod wire;
