//! The BJCA "证书应用环境" (XTXAppCOM) compatibility front door: the localhost protocol that
//! portals' own JavaScript speaks to BJCA's helper (`ws://127.0.0.1:21051/xtxapp/`,
//! `wss://127.0.0.1:21061/xtxapp/`, `POST /synctl`), so that e-government and e-tax pages
//! work unmodified with certray. `../shared/docs/PORTAL-PROTOCOLS.md` §1 records the wire
//! format and §1.5 the security rules, which certray keeps stricter than the vendor helpers.
//!
//! It is a protocol of the bridge, beside `/v1`: its listeners pass the same guard
//! ([`super::guard`]) and limits, and it translates its wire shapes to core calls and back.
//!
//! - [`trust`]: the TLS identity of the endpoint on 127.0.0.1:21061 — a per-install local CA,
//!   name-constrained to `127.0.0.1` and `localhost`, whose private key is destroyed as soon
//!   as it has issued the server certificate; installed into the user's NSS databases so that
//!   browsers trust the endpoint without a shared secret.
//! - `server.rs`: [`XtxState`] and the listeners (WebSocket `/xtxapp/` and `/xtxapp`,
//!   `POST /synctl`, plain and TLS), with their limits;
//! - `frame.rs`: the JSON frames in and out (PINs become secrets while a frame is parsed);
//! - `functions.rs`: the functions of §1.2, each a translation into core calls;
//! - `names.rs`: aliases, the functions offered and the ones refused;
//! - `session.rs`: per-connection state (sign method, last error) and the logins;
//! - `certid.rs`: CertIDs (`"<container or key id>/<token serial>"`) and the user list;
//! - `certinfo.rs`: `SOF_GetCertInfo` by BJCA's numbering, by OID, the entity id;
//! - `errors.rs`: the GM/T 0020 / 0016 numbers of `SOF_GetLastError`.
//!
//! # Security (§1.5), stricter than the vendors'
//! - A page is its browser-set `Origin` (the frame's `URL`, `url` and `cookie` are never
//!   read); `Host` must name the listener (DNS rebinding), on the upgrade and on `/synctl`;
//!   only loopback peers. All in the bridge's one guard.
//! - A website may use the protocol only when `[bridge] page_pin_origins` lists it or the
//!   person approved it in a dialog that says the site collects the key's PIN itself
//!   ([`crate::core::Approvals::admit_page_pin`]); headless, nobody can approve: refused,
//!   nothing answered. CORS and Private Network Access are answered for admitted origins
//!   only (never `*`).
//! - A login (`SOF_Login`) is bound to its connection and origin, ends with the connection,
//!   the key's removal, `SOF_Logout` or 10 idle minutes; its token names it and is worth
//!   nothing elsewhere. Every signature goes through [`crate::core::Signing`] (the page-PIN
//!   rule, the audit log with the origin and `xtx`).
//! - Device-writing and file functions are refused; PINs are never unlocked over the
//!   protocol; `SOF_ChangePassWd` only for origins the configuration lists as page-PIN.
//! - Messages of at most [`MESSAGE_LIMIT`] bytes, at most [`CONNECTIONS`] sockets.

mod certid;
mod certinfo;
mod errors;
mod frame;
mod functions;
mod names;
mod server;
mod session;
pub mod trust;

pub use functions::{PROTOCOL, VERSION};

/// Log directives every logger of a process serving XTX must add: the WebSocket library
/// logs whole messages at trace level, and `SOF_Login`'s message carries the PIN.
pub const LOG_DIRECTIVES: [&str; 2] = ["tungstenite=info", "tokio_tungstenite=info"];
pub use server::{CONNECTIONS, MESSAGE_LIMIT, XtxState, router, serve};
