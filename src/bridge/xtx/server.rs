//! The listeners: plain HTTP (`ws://…/xtxapp/`, `POST /synctl`) and TLS (the same as
//! `wss://`, `https://`), each behind the bridge's guard with a gate of its own that admits
//! websites by the page-PIN approval ([`Admission::PagePin`]).
//!
//! Limits: a message (WebSocket frame or `/synctl` body) of at most [`MESSAGE_LIMIT`] bytes
//! (a larger frame closes the socket, a larger body is refused with 413), at most
//! [`CONNECTIONS`] sockets open at once (503 beyond), a TLS handshake within
//! [`HANDSHAKE_TIMEOUT`].

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, Extension, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceBuilder;

use super::frame;
use super::functions;
use super::session::{Channel, Logins, Session};
use crate::bridge::guard::{Admission, Caller, Gate, Guard};
use crate::bridge::serve::{Listeners, ServeOptions, serve_router};
use crate::core::{Signing, Update};
use crate::model::Event;

/// The largest WebSocket message or `/synctl` body: 16 MiB (the `/v1` sign limit), enough
/// for a document signed as `SOF_SignMessage` data.
pub const MESSAGE_LIMIT: usize = 16 * 1024 * 1024;
/// WebSockets open at once.
pub const CONNECTIONS: usize = 64;
/// A TLS client must finish its handshake this fast.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often idle logins are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(30);
/// An origin's `/synctl` state (sign method, last error) is forgotten after this long unused.
const SYNC_IDLE: Duration = super::session::IDLE;

/// WebSocket subprotocols echoed when a page asks for them (Chromium closes the socket
/// unless the server echoes one it asked for): only ones seen on BJCA's port.
pub const SUBPROTOCOLS: [&str; 1] = ["cryptokit-kdets-protocol"];

/// What every XTX listener shares.
pub struct XtxState {
    pub(super) signing: Arc<Signing>,
    pub(super) logins: Logins,
    sync: std::sync::Mutex<HashMap<String, Arc<tokio::sync::Mutex<SyncEntry>>>>,
    connections: Arc<Semaphore>,
    next_socket: AtomicU64,
    stopping: watch::Sender<bool>,
}

struct SyncEntry {
    session: Session,
    used: Instant,
}

impl XtxState {
    /// The shared state, and its upkeep on the current tokio runtime: logins of a removed
    /// key end, idle ones are forgotten.
    pub fn start(signing: Arc<Signing>) -> Arc<XtxState> {
        let st = Arc::new(XtxState {
            signing,
            logins: Logins::default(),
            sync: Default::default(),
            connections: Arc::new(Semaphore::new(CONNECTIONS)),
            next_socket: AtomicU64::new(1),
            stopping: watch::Sender::new(false),
        });
        tokio::spawn(upkeep(Arc::downgrade(&st)));
        st
    }

    /// Close every socket (the server is stopping).
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Sockets open now.
    pub fn open_sockets(&self) -> usize {
        CONNECTIONS - self.connections.available_permits()
    }

    /// Logins kept now.
    pub fn logins(&self) -> usize {
        self.logins.len()
    }
}

async fn upkeep(st: std::sync::Weak<XtxState>) {
    let Some(strong) = st.upgrade() else { return };
    let (_, mut events) = strong.signing.live().subscribe();
    let mut stopping = strong.stopping.subscribe();
    drop(strong);
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            update = events.recv() => {
                let Some(st) = st.upgrade() else { return };
                match update {
                    Update::Event(Event::TokenRemoved { token_id }) => st.logins.end_token(&token_id),
                    Update::Lagged { snapshot, .. } => {
                        // Keep only the logins of keys still there.
                        let present: Vec<_> = snapshot.tokens.iter().map(|t| t.id.clone()).collect();
                        st.logins.retain_tokens(&present);
                    }
                    Update::Closed => return,
                    Update::Event(_) => {}
                }
            }
            _ = tick.tick() => {
                let Some(st) = st.upgrade() else { return };
                st.logins.sweep();
                st.sync
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .retain(|_, e| e.try_lock().map_or(true, |e| e.used.elapsed() < SYNC_IDLE));
            }
            _ = stopping.changed() => return,
        }
    }
}

/// The routes of one listener on `port`, behind the guard.
pub fn router(st: Arc<XtxState>, port: u16) -> Router {
    let gate = gate(&st, port);
    routes(st, gate)
}

/// The guard's gate of a listener on `port`: websites by the page-PIN approval.
fn gate(st: &XtxState, port: u16) -> Arc<Gate> {
    Arc::new(Gate::new(port, false, st.signing.clone()).admitting(Admission::PagePin))
}

fn routes(st: Arc<XtxState>, gate: Arc<Gate>) -> Router {
    Router::new()
        .route("/xtxapp/", get(socket))
        .route("/xtxapp", get(socket))
        .route("/synctl", post(synctl))
        .fallback(not_found)
        .layer(
            ServiceBuilder::new()
                .layer(Guard::layer(gate))
                .layer(DefaultBodyLimit::max(MESSAGE_LIMIT)),
        )
        .with_state(st)
}

async fn not_found() -> Response {
    StatusCode::NOT_FOUND.into_response()
}

/// `GET /xtxapp/` with a WebSocket upgrade.
async fn socket(
    State(st): State<Arc<XtxState>>,
    Extension(caller): Extension<Caller>,
    ws: WebSocketUpgrade,
) -> Response {
    let Ok(permit) = st.connections.clone().try_acquire_owned() else {
        tracing::warn!("xtx: too many sockets open; refused one");
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    ws.max_message_size(MESSAGE_LIMIT)
        .max_frame_size(MESSAGE_LIMIT)
        .protocols(SUBPROTOCOLS)
        .on_upgrade(move |socket| async move {
            connection(st, caller, socket).await;
            drop(permit);
        })
}

/// One socket: calls answered in order, `onUsbkeyChange` pushed when a key goes in or out.
async fn connection(st: Arc<XtxState>, caller: Caller, mut socket: WebSocket) {
    let channel = Channel::Socket(st.next_socket.fetch_add(1, Ordering::Relaxed));
    let mut session = Session::new(caller.requester, channel, caller.lang);
    tracing::debug!(origin = %session.who.name(), "xtx: socket open");
    let (_, mut events) = st.signing.live().subscribe();
    let mut stopping = st.stopping.subscribe();
    let mut events_open = true;
    loop {
        let reply = tokio::select! {
            message = socket.recv() => match message {
                Some(Ok(Message::Text(text))) => {
                    let mut bytes = Vec::from(Bytes::from(text));
                    match frame::parse(&mut bytes) {
                        Ok(call) => {
                            let id = call.id.clone();
                            let answer = functions::call(&st, &mut session, call).await;
                            frame::reply(id.as_deref(), &answer.value, answer.token.as_deref())
                        }
                        Err(e) => {
                            tracing::debug!(error = %e, "xtx: not a call");
                            continue;
                        }
                    }
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    // Too large a frame ends up here too: the socket closes.
                    tracing::debug!(error = %e, "xtx: socket error");
                    break;
                }
                None => break,
            },
            update = events.recv(), if events_open => match update {
                Update::Event(Event::TokenAdded { .. } | Event::TokenRemoved { .. } | Event::CertificatesChanged { .. })
                | Update::Lagged { .. } => frame::usbkey_change(),
                Update::Event(_) => continue,
                Update::Closed => {
                    events_open = false;
                    continue;
                }
            },
            _ = stopping.changed() => break,
        };
        if socket.send(Message::Text(reply.into())).await.is_err() {
            break;
        }
    }
    st.logins.end_channel(channel);
    tracing::debug!(origin = %session.who.name(), "xtx: socket closed");
}

/// `POST /synctl`: one call, `200 {"retVal":…}`; the origin's sign method and last error
/// carry over between its calls.
async fn synctl(
    State(st): State<Arc<XtxState>>,
    Extension(caller): Extension<Caller>,
    body: Bytes,
) -> Response {
    let call = match body.try_into_mut() {
        Ok(mut b) => frame::parse(&mut b[..]),
        Err(shared) => frame::parse(&mut shared.to_vec()),
    };
    let call = match call {
        Ok(c) => c,
        Err(e) => return (StatusCode::BAD_REQUEST, e.to_string()).into_response(),
    };
    let name = caller.requester.name().to_string();
    let entry = st
        .sync
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(name)
        .or_insert_with(|| {
            Arc::new(tokio::sync::Mutex::new(SyncEntry {
                session: Session::new(caller.requester.clone(), Channel::Sync, caller.lang),
                used: Instant::now(),
            }))
        })
        .clone();
    let mut entry = entry.lock().await;
    entry.used = Instant::now();
    entry.session.lang = caller.lang;
    let answer = functions::call(&st, &mut entry.session, call).await;
    let mut body = serde_json::json!({ "retVal": answer.value });
    if let Some(t) = answer.token {
        body["token"] = serde_json::Value::String(t);
    }
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

/// Serve the protocol on `listener` (plain HTTP, or TLS with `tls`) until `shutdown`, the
/// way every listener of the bridge is served ([`crate::bridge::serve::serve_router`]):
/// the other `localhost` address held too, header and handshake timeouts, the connection
/// cap, and the peer's user for the guard.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    st: Arc<XtxState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listeners = Listeners::adopt(listener).await?;
    let gate = gate(&st, listeners.port());
    gate.hold(listeners.held(), listeners.holds_localhost());
    let app = routes(st.clone(), gate);
    let shutdown = async move {
        shutdown.await;
        // Open sockets would keep the server from finishing.
        st.stop();
    };
    let options = ServeOptions {
        header_timeout: HANDSHAKE_TIMEOUT,
        tls,
        ..ServeOptions::default()
    };
    serve_router(listeners, app, options, shutdown).await
}
