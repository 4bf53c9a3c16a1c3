//! The localhost bridge for web pages (axum on tokio). Only this module knows HTTP; its
//! [`wire`] types are the one JSON shape, which the CLI's `--json` output reuses.
//!
//! *Architecture invariant*: a page is identified only by the browser-set `Origin` header,
//! the bridge answers only loopback peers addressed by a loopback `Host`, CORS echoes exactly
//! an allowed origin (never `*`), and PINs are asked in certray's own dialog unless the
//! origin is a configured legacy portal.

mod api_error;
mod openapi;
pub mod prompt;
mod routes;
mod server;
pub mod store;
pub mod wire;

pub use api_error::{ApiError, status as http_status};
pub use openapi::ApiDoc;
pub use prompt::{ConsentAnswer, Headless, PinAnswer, PinRequest, Prompt};
pub use server::{App, BODY_LIMIT, BridgeOptions, SIGN_BODY_LIMIT, check_listen, router, serve};
