//! Serving on loopback: what every listener of the bridge gets at the connection level,
//! whatever protocol it speaks ([`serve_router`] takes any router, plain or behind TLS).
//!
//! - **Addresses held, not assumed** ([`Listeners`]): a listener on 127.0.0.1 also binds
//!   `[::1]` on the same port (and the other way round), because a browser's
//!   `http://localhost:PORT` may go to either. When the other address cannot be held
//!   (another program has it), `localhost` is not certray's name on that port: the guard then
//!   trusts as certray's own pages only the addresses it holds ([`super::guard::Gate::hold`]).
//!   The URL certray gives out is the address it holds.
//! - **Timeouts**: a request's header must arrive within [`ServeOptions::header_timeout`],
//!   and a connection idle that long between requests is closed (hyper's header-read timer
//!   runs from the moment a request is awaited). Bodies have theirs in [`super::limits`].
//! - **A connection cap** ([`ServeOptions::max_connections`], well under the open-file
//!   limit): at the cap, the connection idle the longest is closed to make room; with none
//!   idle, the new one is closed at once. Out of file descriptors anyway (EMFILE), an idle
//!   connection is closed and accepting resumes shortly: the bridge stays reachable.
//! - **The peer's user** (Linux): the owner of the peer's socket is looked up once per
//!   connection, at its first request ([`crate::platform::peer`]), and handed to the guard
//!   with the request ([`Peer`]), which refuses other users. Requests without `Origin` also
//!   get the peer's process, to which grants are keyed.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{Request, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OnceCell, watch};
use tower::ServiceExt as _;

use super::guard::Peer;
use super::router::router;
use super::state::BridgeState;
use crate::platform::peer::{self as peer_os, Owner};

/// Refuse to listen anywhere but loopback.
pub fn check_listen(addr: SocketAddr) -> Result<(), String> {
    if addr.ip().is_loopback() {
        Ok(())
    } else {
        Err(format!(
            "[bridge] listen = {addr}: the bridge listens on loopback only (127.0.0.1 or [::1])"
        ))
    }
}

/// The addresses `localhost` stands for in a browser (Chromium resolves it itself).
const LOCALHOST: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::LOCALHOST),
    IpAddr::V6(Ipv6Addr::LOCALHOST),
];

/// The sockets one listener serves, and what they hold.
#[derive(Debug)]
pub struct Listeners {
    sockets: Vec<TcpListener>,
    held: Vec<SocketAddr>,
    /// Whether every address `localhost` may go to on this port is held (or cannot be held
    /// by anyone on this machine).
    localhost: bool,
}

impl Listeners {
    /// Bind `addr` and, when it is one of `localhost`'s addresses, the other one on the same
    /// port. An error only when `addr` itself cannot be bound.
    pub async fn bind(addr: SocketAddr) -> io::Result<Listeners> {
        Listeners::adopt(TcpListener::bind(addr).await?).await
    }

    /// [`Listeners::bind`] for a socket already bound (its port chosen, e.g. port 0).
    pub async fn adopt(primary: TcpListener) -> io::Result<Listeners> {
        let addr = primary.local_addr()?;
        let mut me = Listeners {
            sockets: vec![primary],
            held: vec![addr],
            localhost: LOCALHOST.contains(&addr.ip()),
        };
        if !me.localhost {
            return Ok(me);
        }
        for ip in LOCALHOST.iter().filter(|ip| **ip != addr.ip()) {
            let other = SocketAddr::new(*ip, addr.port());
            match TcpListener::bind(other).await {
                Ok(l) => {
                    me.sockets.push(l);
                    me.held.push(other);
                }
                // No such address here (IPv6 off): no one can serve a page from it.
                Err(e)
                    if e.kind() == io::ErrorKind::AddrNotAvailable
                        || e.raw_os_error() == Some(97 /* EAFNOSUPPORT */) =>
                {
                    tracing::debug!(%other, error = %e, "not on this machine");
                }
                Err(e) => {
                    tracing::warn!(
                        %other, error = %e,
                        "cannot hold {other}: another program may serve http://localhost:{} there; \
                         only {addr} is trusted as certray's own",
                        addr.port()
                    );
                    me.localhost = false;
                }
            }
        }
        Ok(me)
    }

    /// The addresses held, the one asked for first.
    pub fn held(&self) -> &[SocketAddr] {
        &self.held
    }

    /// Whether `localhost:PORT` is certray's on every address it may mean.
    pub fn holds_localhost(&self) -> bool {
        self.localhost
    }

    pub fn port(&self) -> u16 {
        self.held[0].port()
    }

    /// The URL of the first address held, e.g. `http://127.0.0.2:21088/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.held[0])
    }
}

/// Connection-level limits (see the module's documentation).
#[derive(Clone)]
pub struct ServeOptions {
    /// Time for a request's header, and for an idle connection before it is closed.
    pub header_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// Read buffer per connection (a request header must fit).
    pub max_buf_size: usize,
    /// Serve TLS (the XTX endpoint's `https`/`wss`): the handshake must also end within
    /// `header_timeout`.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            header_timeout: Duration::from_secs(10),
            max_connections: connection_cap(),
            max_buf_size: 64 * 1024,
            tls: None,
        }
    }
}

/// The most connections this process can afford: 1,024, or half the open-file limit when
/// that is lower (the modules, logs and pipes need the rest).
pub fn connection_cap() -> usize {
    let soft = crate::platform::resources::open_file_limits().map_or(1024, |(s, _)| s);
    (soft / 2).clamp(16, 1024) as usize
}

/// Serve the `/v1` bridge on `listener` (and the other `localhost` address on its port)
/// until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    app: Arc<BridgeState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let listeners = Listeners::adopt(listener).await?;
    serve_bound(listeners, app, shutdown).await
}

/// [`serve`] on sockets bound already ([`Listeners::bind`]).
pub async fn serve_bound(
    listeners: Listeners,
    app: Arc<BridgeState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    app.gate.hold(listeners.held(), listeners.holds_localhost());
    // 16 MiB signatures: their buffers go back to the system when done.
    crate::platform::resources::return_large_buffers();
    let stopping = app.stopping.clone();
    let shutdown = async move {
        shutdown.await;
        // End the event streams, or an open browser tab would keep the daemon running.
        stopping.send_replace(true);
    };
    serve_router(listeners, router(app), ServeOptions::default(), shutdown).await
}

/// Serve `router` on `listeners` with the connection-level limits of `options` until
/// `shutdown` completes, then close idle connections and give the others a few seconds.
/// Any listener of the bridge serves this way, so that the guard gets its [`Peer`].
pub async fn serve_router(
    listeners: Listeners,
    router: Router,
    options: ServeOptions,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop) = watch::channel(false);
    let conns = Arc::new(Conns::new(options.max_connections));
    let options = Arc::new(options);
    let mut accepting = Vec::new();
    for socket in listeners.sockets {
        accepting.push(tokio::spawn(accept_loop(
            socket,
            router.clone(),
            options.clone(),
            conns.clone(),
            stop.clone(),
        )));
    }
    shutdown.await;
    stop_tx.send_replace(true);
    for a in &accepting {
        a.abort();
    }
    // Idle connections close at once; busy ones finish their request (bounded).
    let deadline = Instant::now() + Duration::from_secs(5);
    while !conns.is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn accept_loop(
    socket: TcpListener,
    router: Router,
    options: Arc<ServeOptions>,
    conns: Arc<Conns>,
    stop: watch::Receiver<bool>,
) {
    let local = match socket.local_addr() {
        Ok(a) => a,
        Err(_) => return,
    };
    let mut refused_logged = Instant::now() - Duration::from_secs(60);
    loop {
        let (stream, remote) = match socket.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors (or another resource): make room, breathe, go on.
                if e.raw_os_error() == Some(24 /* EMFILE */)
                    || e.raw_os_error() == Some(23 /* ENFILE */)
                {
                    conns.evict_idle();
                }
                if refused_logged.elapsed() > Duration::from_secs(10) {
                    tracing::warn!(error = %e, "accept failed");
                    refused_logged = Instant::now();
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let Some(conn) = conns.admit() else {
            if refused_logged.elapsed() > Duration::from_secs(10) {
                tracing::warn!(
                    max = conns.max,
                    "connection cap reached with every connection busy: closing new ones"
                );
                refused_logged = Instant::now();
            }
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let options = options.clone();
        let conns = conns.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let id = conn.id;
            connection(stream, local, remote, conn, router, options, stop).await;
            conns.remove(id);
        });
    }
}

/// One connection, plain or TLS.
async fn connection(
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    conn: Arc<Conn>,
    router: Router,
    options: Arc<ServeOptions>,
    stop: watch::Receiver<bool>,
) {
    match options.tls.clone() {
        None => drive(stream, local, remote, conn, router, &options, stop).await,
        Some(tls) => {
            let handshake = tokio::time::timeout(options.header_timeout, tls.accept(stream));
            if let Ok(Ok(s)) = handshake.await {
                drive(s, local, remote, conn, router, &options, stop).await;
            }
        }
    }
}

async fn drive<I>(
    io: I,
    local: SocketAddr,
    remote: SocketAddr,
    conn: Arc<Conn>,
    router: Router,
    options: &ServeOptions,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = Arc::new(PeerCell {
        local,
        remote,
        socket: OnceCell::new(),
        known: Default::default(),
    });
    let service = {
        let conn = conn.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let router = router.clone();
            let peer = peer.clone();
            let busy = Busy::start(conn.clone());
            async move {
                let mut req = req.map(Body::new);
                let wants_process = !req.headers().contains_key(header::ORIGIN);
                req.extensions_mut().insert(ConnectInfo(remote));
                req.extensions_mut().insert(peer.peer(wants_process).await);
                let response = match router.oneshot(req).await {
                    Ok(r) => r,
                    Err(e) => match e {},
                };
                // Busy until the whole answer is sent (an event stream is never idle).
                Ok::<_, Infallible>(response.map(|b| {
                    Body::new(Tracked {
                        inner: b,
                        _busy: busy,
                    })
                }))
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .keep_alive(true)
        .max_buf_size(options.max_buf_size);
    let served = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(served);
    let mut closing = false;
    loop {
        tokio::select! {
            _ = served.as_mut() => break,
            _ = conn.close.notified(), if !closing => {
                served.as_mut().graceful_shutdown();
                closing = true;
            }
            _ = stop.wait_for(|s| *s), if !closing => {
                served.as_mut().graceful_shutdown();
                closing = true;
            }
        }
    }
}

/// What the guard learns of the connection's peer, looked up at most once per connection.
struct PeerCell {
    local: SocketAddr,
    remote: SocketAddr,
    /// The peer's socket, shared by both kinds of answer.
    socket: OnceCell<Option<peer_os::PeerSocket>>,
    /// The answers once found: without, then with the process.
    known: [OnceCell<Peer>; 2],
}

impl PeerCell {
    /// The peer, with its process when `wants_process`; after a connection's first request
    /// (of each kind) a clone of what was found then.
    async fn peer(&self, wants_process: bool) -> Peer {
        self.known[usize::from(wants_process)]
            .get_or_init(|| self.find(wants_process))
            .await
            .clone()
    }

    /// What [`PeerCell::peer`] answers, looked up (the socket once for both kinds).
    async fn find(&self, wants_process: bool) -> Peer {
        let (local, remote) = (self.local, self.remote);
        let socket = *self
            .socket
            .get_or_init(|| async move {
                #[cfg(target_os = "linux")]
                {
                    tokio::task::spawn_blocking(move || peer_os::find(local, remote))
                        .await
                        .ok()
                        .flatten()
                }
                #[cfg(not(target_os = "linux"))]
                {
                    let _ = (local, remote);
                    None
                }
            })
            .await;
        let owner = peer_os::owner_of(socket);
        let process = match (wants_process, socket) {
            (true, Some(s)) if owner == Owner::Same => {
                #[cfg(target_os = "linux")]
                {
                    tokio::task::spawn_blocking(move || {
                        peer_os::process_of(s.inode)
                            .map(|(pid, start)| Arc::from(format!("pid {pid} started {start}")))
                    })
                    .await
                    .ok()
                    .flatten()
                }
                #[cfg(not(target_os = "linux"))]
                {
                    let _ = s;
                    None
                }
            }
            _ => None,
        };
        Peer { owner, process }
    }
}

/// The connections open, and which of them are idle.
struct Conns {
    max: usize,
    next: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Conn>>>,
}

/// Counts the moments connections became idle, in this process: the lowest
/// [`Conn::idle_since`] is the connection idle the longest (no clock read per request).
static IDLE_TICKS: AtomicU64 = AtomicU64::new(0);

fn idle_tick() -> u64 {
    IDLE_TICKS.fetch_add(1, Ordering::Relaxed)
}

struct Conn {
    id: u64,
    /// Requests in progress (answers still being sent included).
    busy: AtomicUsize,
    /// Since when it has had nothing to do: an [`idle_tick`].
    idle_since: AtomicU64,
    close: Notify,
}

impl Conns {
    fn new(max: usize) -> Conns {
        Conns {
            max: max.max(1),
            next: AtomicU64::new(0),
            open: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Room for a new connection: at the cap, the one idle the longest is closed for it.
    fn admit(&self) -> Option<Arc<Conn>> {
        let mut open = self.lock();
        if open.len() >= self.max && !Self::evict_locked(&mut open) {
            return None;
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            busy: AtomicUsize::new(0),
            idle_since: AtomicU64::new(idle_tick()),
            close: Notify::new(),
        });
        open.insert(id, conn.clone());
        Some(conn)
    }

    fn evict_idle(&self) -> bool {
        Self::evict_locked(&mut self.lock())
    }

    fn evict_locked(open: &mut HashMap<u64, Arc<Conn>>) -> bool {
        let oldest = open
            .values()
            .filter(|c| c.busy.load(Ordering::SeqCst) == 0)
            .min_by_key(|c| c.idle_since.load(Ordering::Relaxed))
            .map(|c| c.id);
        match oldest.and_then(|id| open.remove(&id)) {
            Some(c) => {
                // A stored permit: the connection's task takes it whenever it next looks.
                c.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn remove(&self, id: u64) {
        self.lock().remove(&id);
    }
}

/// A request in progress on a connection.
struct Busy(Arc<Conn>);

impl Busy {
    fn start(conn: Arc<Conn>) -> Busy {
        conn.busy.fetch_add(1, Ordering::SeqCst);
        Busy(conn)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle_since.store(idle_tick(), Ordering::Relaxed);
        }
    }
}

/// A response body that keeps its connection busy until it is sent (or dropped).
struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl HttpBody for Tracked {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_the_longest_idle_connection_makes_room() {
        let conns = Conns::new(2);
        let a = conns.admit().unwrap();
        let b = conns.admit().unwrap();
        let busy_b = Busy::start(b.clone());
        // Full: a (idle) is closed for c.
        let c = conns.admit().unwrap();
        assert!(!conns.lock().contains_key(&a.id));
        let busy_c = Busy::start(c.clone());
        // Full and every connection busy: refused.
        assert!(conns.admit().is_none());
        drop(busy_b);
        // b is idle again: it makes room.
        assert!(conns.admit().is_some());
        assert!(!conns.lock().contains_key(&b.id));
        drop(busy_c);
    }
}
