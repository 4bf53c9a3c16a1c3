//! The localhost bridge for web pages (axum on tokio): the `/v1` API. Only this module knows
//! HTTP; its [`wire`] types are the one JSON shape, which the CLI's `--json` output reuses.
//! Handlers translate wire shapes into core calls and back; every policy is the core's.
//!
//! - `router.rs`: [`router`], the routes behind the guard and the limits;
//! - `guard.rs`: the middleware every request passes (peer and its user, `Host`, `Origin`,
//!   CORS, JSON, private headers);
//! - `limits.rs`: request limits (early 413, body deadlines, large bodies a few at a time,
//!   one cap on requests handled); `serve.rs`: connection limits (header and idle timeouts,
//!   a connection cap, the peer's user) and the addresses held;
//! - `state.rs`: [`BridgeState`], what the handlers share;
//! - `routes.rs`: the handlers; `openapi.rs`: the document generated from them;
//! - `api_error.rs`: codes → HTTP statuses.
//!
//! *Architecture invariant*: a page is identified only by the browser-set `Origin` header,
//! the bridge answers only loopback peers addressed by a loopback `Host`, CORS echoes exactly
//! an allowed origin (never `*`), and PINs are asked in certray's own dialog unless the
//! origin is a configured legacy portal.

mod api_error;
pub mod guard;
pub mod limits;
mod openapi;
mod router;
mod routes;
pub mod serve;
mod state;
pub mod wire;
pub mod xtx;

pub use api_error::{ApiError, status as http_status};
pub use openapi::ApiDoc;
pub use router::router;
pub use serve::{Listeners, ServeOptions, check_listen, serve, serve_bound, serve_router};
pub use state::{BODY_LIMIT, BridgeOptions, BridgeState, SIGN_BODY_LIMIT};
