//! The bridge's HTTP server: the router, the guard every request passes (rules 1–5 of
//! "who may call it"), and serving on loopback.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::api_error::{ApiError, error_response};
use super::prompt::{ConsentAnswer, Prompt};
use super::routes;
use super::store::{Audit, Consents};
use crate::config::BridgeConfig;
use crate::error::Code;
use crate::i18n::Lang;
use crate::inventory::{Live, Snapshot};

/// 16 MiB for data to sign, 64 KiB for everything else.
pub const SIGN_BODY_LIMIT: usize = 16 * 1024 * 1024;
pub const BODY_LIMIT: usize = 64 * 1024;
/// Requests handled at once (event streams excepted; they have their own limit).
const CONCURRENT_REQUESTS: usize = 64;
/// Event streams open at once.
pub const EVENT_STREAMS: usize = 32;

/// Who is calling, as the guard established it.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The page's origin; `None` for a local program (no Origin header).
    pub origin: Option<String>,
    pub lang: Lang,
}

impl Caller {
    /// The origin as recorded and proven: the Origin header, or `local`.
    pub fn name(&self) -> &str {
        self.origin.as_deref().unwrap_or("local")
    }
}

/// Everything the handlers share.
pub struct App {
    pub live: Arc<Live>,
    pub prompt: Arc<dyn Prompt>,
    pub consents: Consents,
    pub audit: Audit,
    pub config: BridgeConfig,
    pub warning_days: u32,
    /// `Host` values accepted: 127.0.0.1:PORT, localhost:PORT, [::1]:PORT.
    hosts: Vec<String>,
    /// The bridge's own origins (its check page).
    own_origins: Vec<String>,
    /// (origin, certificate id) pairs the user let sign without asking again.
    pub remembered: Mutex<HashSet<(String, String)>>,
    /// Origins with a PIN prompt open: one at a time per origin.
    pub prompting: Mutex<HashSet<String>>,
    pub event_streams: Arc<tokio::sync::Semaphore>,
    pub list_cache: ListCache,
    /// Set when the server begins to stop: event streams end then.
    pub stopping: tokio::sync::watch::Sender<bool>,
}

/// The serialized unfiltered certificate list, reused while the inventory has not changed
/// and for at most a second (days left and status move with the clock). Portals poll this
/// list; building it each time is most of what such a request costs.
#[derive(Default)]
pub struct ListCache {
    entry: Mutex<Option<(Arc<Snapshot>, std::time::Instant, axum::body::Bytes)>>,
}

impl ListCache {
    const FRESH: Duration = Duration::from_secs(1);

    pub fn get(&self, snapshot: &Arc<Snapshot>) -> Option<axum::body::Bytes> {
        let entry = self.entry.lock().unwrap_or_else(|e| e.into_inner());
        match &*entry {
            Some((s, at, body)) if Arc::ptr_eq(s, snapshot) && at.elapsed() < Self::FRESH => {
                Some(body.clone())
            }
            _ => None,
        }
    }

    pub fn put(&self, snapshot: Arc<Snapshot>, body: axum::body::Bytes) {
        *self.entry.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((snapshot, std::time::Instant::now(), body));
    }
}

/// How to build the bridge.
pub struct BridgeOptions {
    pub config: BridgeConfig,
    /// The port actually listened on (the configured one, or the one the OS chose for 0).
    pub port: u16,
    pub prompt: Arc<dyn Prompt>,
    /// Where approvals and the audit log are kept; `None` keeps approvals in memory only
    /// and writes no audit log.
    pub state_dir: Option<PathBuf>,
    pub warning_days: u32,
}

impl App {
    pub fn new(live: Arc<Live>, o: BridgeOptions) -> Arc<App> {
        let port = o.port;
        Arc::new(App {
            live,
            prompt: o.prompt,
            consents: Consents::open(o.state_dir.as_deref()),
            audit: Audit::open(o.state_dir.as_deref()),
            config: o.config,
            warning_days: o.warning_days,
            hosts: vec![
                format!("127.0.0.1:{port}"),
                format!("localhost:{port}"),
                format!("[::1]:{port}"),
            ],
            own_origins: vec![
                format!("http://127.0.0.1:{port}"),
                format!("http://localhost:{port}"),
                format!("http://[::1]:{port}"),
            ],
            remembered: Mutex::new(HashSet::new()),
            prompting: Mutex::new(HashSet::new()),
            event_streams: Arc::new(tokio::sync::Semaphore::new(EVENT_STREAMS)),
            stopping: tokio::sync::watch::Sender::new(false),
            list_cache: ListCache::default(),
        })
    }

    /// Withdraw a website's approval (remembered or for this session) and every
    /// "remember the PIN" it was given; whether it had an approval. For the tray's
    /// 已授权网站 window: effective at once, unlike `certray origins revoke` on the file.
    pub fn revoke_origin(&self, origin: &str) -> std::io::Result<bool> {
        self.remembered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(o, _)| o != origin);
        self.consents.revoke(origin)
    }

    /// The bridge's own origin (the check page's), e.g. `http://127.0.0.1:21088`.
    pub fn own_origin(&self) -> &str {
        &self.own_origins[0]
    }

    /// Whether `origin` may call, asking the user when it is unknown and someone can be asked.
    async fn origin_allowed(&self, origin: &str) -> bool {
        if self.own_origins.iter().any(|o| o == origin)
            || self.config.allowed_origins.iter().any(|o| o == origin)
            // A legacy portal the administrator lets send PINs may certainly call.
            || self.config.page_pin_origins.iter().any(|o| o == origin)
            || self.consents.is_approved(origin)
        {
            return true;
        }
        let answer = self.prompt.consent(origin).await;
        match answer {
            ConsentAnswer::AllowOnce | ConsentAnswer::AllowAlways => {
                let remember = answer == ConsentAnswer::AllowAlways;
                if let Err(e) = self.consents.approve(origin, remember) {
                    tracing::warn!(error = %e, "cannot save the website approval");
                }
                true
            }
            ConsentAnswer::Deny | ConsentAnswer::Unavailable => false,
        }
    }

    /// Whether a page from `origin` may put the PIN in its request: local programs, the
    /// bridge's own check page (certray's code, not a website's), and configured legacy portals.
    pub fn page_pin_allowed(&self, origin: Option<&str>) -> bool {
        match origin {
            None => true,
            Some(o) => {
                self.own_origins.iter().any(|p| p == o)
                    || self.config.page_pin_origins.iter().any(|p| p == o)
            }
        }
    }
}

fn lang_of(headers: &HeaderMap) -> Lang {
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if accept.trim_start().to_ascii_lowercase().starts_with("en") {
        Lang::En
    } else {
        Lang::ZhCn
    }
}

fn cors(resp: &mut Response, origin: Option<&str>) {
    let h = resp.headers_mut();
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(o) = origin.and_then(|o| HeaderValue::from_str(o).ok()) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
    }
}

/// Rules 1–5: loopback peer, Host, Origin (with consent), CORS, JSON bodies.
async fn guard(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let lang = lang_of(req.headers());
    let refuse = |code: Code, detail: &str| ApiError::new(code, detail).lang(lang).into_response();

    // 1. Only loopback peers, whatever the listening address (fail closed without one).
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        // Router tests set the peer with axum's `MockConnectInfo`, as the `ConnectInfo`
        // extractor accepts; only code can add it, and a real server's `ConnectInfo` wins.
        .or_else(|| {
            req.extensions()
                .get::<MockConnectInfo<SocketAddr>>()
                .map(|m| m.0)
        });
    if !peer.is_some_and(|p| p.ip().is_loopback()) {
        tracing::warn!(?peer, "refused a non-loopback peer");
        return refuse(Code::HostNotAllowed, "the bridge serves this computer only");
    }
    // 2. Host: defeats DNS rebinding.
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !app.hosts.iter().any(|h| h == host) {
        return refuse(
            Code::HostNotAllowed,
            &format!("Host `{host}` is not this bridge"),
        );
    }
    // 3./4. Origin: only the browser-set header identifies a page.
    let origin = match req
        .headers()
        .get(header::ORIGIN)
        .map(|v| v.to_str().map(str::to_owned))
    {
        None => None,
        Some(Ok(o)) if o != "null" => Some(o),
        Some(_) => {
            return refuse(
                Code::OriginNotAllowed,
                "an opaque (null) origin may not call",
            );
        }
    };
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if let Some(o) = &origin
        && !app.origin_allowed(o).await
    {
        // No CORS grant: the page cannot read the answer, and a preflight fails.
        let mut r = refuse(Code::OriginNotAllowed, &format!("{o} is not allowed"));
        cors(&mut r, None);
        return r;
    }
    if preflight {
        let mut r = StatusCode::NO_CONTENT.into_response();
        cors(&mut r, origin.as_deref());
        let h = r.headers_mut();
        h.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST"),
        );
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type"),
        );
        h.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        let pna = req
            .headers()
            .get("access-control-request-private-network")
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
        if pna && origin.is_some() {
            h.insert(
                "access-control-allow-private-network",
                HeaderValue::from_static("true"),
            );
        }
        return r;
    }
    // 5. POST bodies are JSON: a form post from any page cannot reach a handler.
    if req.method() == Method::POST {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence != "application/json" {
            let mut r = refuse(Code::UnsupportedMediaType, &format!("Content-Type `{ct}`"));
            cors(&mut r, origin.as_deref());
            return r;
        }
    }
    req.extensions_mut().insert(Caller {
        origin: origin.clone(),
        lang,
    });
    let mut resp = next.run(req).await;
    cors(&mut resp, origin.as_deref());
    resp
}

/// The whole API, guarded.
pub fn router(app: Arc<App>) -> Router {
    use tower::ServiceBuilder;
    let limited = Router::new()
        .route("/", get(routes::check_page))
        .route("/v1/status", get(routes::status))
        .route("/v1/tokens", get(routes::tokens))
        .route("/v1/certificates", get(routes::certificates))
        .route("/v1/certificates/{id}", get(routes::certificate))
        .route(
            "/v1/sign",
            post(routes::sign).layer(DefaultBodyLimit::max(SIGN_BODY_LIMIT)),
        )
        .route("/v1/authenticate", post(routes::authenticate))
        .route("/v1/openapi.json", get(routes::openapi))
        .layer(
            ServiceBuilder::new()
                // Over the limit: 503 at once rather than a queue that grows without bound.
                .layer(axum::error_handling::HandleErrorLayer::new(
                    |_: tower::BoxError| async {
                        error_response(
                            StatusCode::SERVICE_UNAVAILABLE,
                            Code::Internal,
                            Lang::ZhCn,
                            "busy",
                        )
                    },
                ))
                .load_shed()
                .concurrency_limit(CONCURRENT_REQUESTS),
        );
    Router::new()
        .route("/v1/events", get(routes::events))
        .merge(limited)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(app.clone(), guard))
        .with_state(app)
}

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

/// Serve until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let stopping = app.stopping.clone();
    let service = router(app).into_make_service_with_connect_info::<SocketAddr>();
    let shutdown = async move {
        shutdown.await;
        // End the event streams, or an open browser tab would keep the daemon running.
        stopping.send_replace(true);
    };
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Keep-alive comment interval for event streams.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
