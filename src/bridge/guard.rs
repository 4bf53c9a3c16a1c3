//! The guard every request passes, on every listener the bridge has (the `/v1` API, and
//! each protocol endpoint beside it): a peer of this user on loopback, one `Host` that names
//! the listener and an origin-form target, an `Origin` the core admits (asking the person
//! when it is unknown), CORS with the exact origin, JSON-only POST, and headers that keep
//! answers out of caches and other sites' pages. Rules 1–5 of "who may call" in the README.
//! One guard, so a protection added here holds for every front door that speaks HTTP.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};

use axum::extract::connect_info::MockConnectInfo;
use axum::extract::{ConnectInfo, MatchedPath, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::BoxFuture;
use tower::{Layer, Service};

use super::api_error::ApiError;
use crate::core::{Requester, Signing};
use crate::error::Code;
use crate::i18n::Lang;
use crate::platform::peer::{self, Owner};

/// What one listener's guard checks against.
pub struct Gate {
    port: u16,
    own_pages: bool,
    names: RwLock<Names>,
    /// The core's approvals and prompt, through its use cases.
    signing: Arc<Signing>,
    /// Which approval lets a website in.
    admission: Admission,
}

/// Which approval a listener's websites need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The `/v1` API: the certificates, every PIN typed into certray's dialog.
    Certificates,
    /// A CA helper's protocol (BJCA's XTX), in which the page collects the PIN itself:
    /// [`crate::core::Approvals::admit_page_pin`].
    PagePin,
}

/// The `Host` values that name the listener, and the origins of its own pages.
struct Names {
    hosts: Vec<String>,
    own_origins: Vec<String>,
}

impl Names {
    /// For `held` addresses on one port, and `localhost:PORT` when `localhost` is ours.
    fn of(port: u16, held: &[SocketAddr], localhost: bool, own_pages: bool) -> Names {
        let mut hosts: Vec<String> = held.iter().map(SocketAddr::to_string).collect();
        if localhost {
            hosts.insert(1.min(hosts.len()), format!("localhost:{port}"));
        }
        Names {
            own_origins: if own_pages {
                hosts.iter().map(|h| format!("http://{h}")).collect()
            } else {
                Vec::new()
            },
            hosts,
        }
    }
}

impl Gate {
    /// The gate of a listener on `port`, serving certray's own pages at `http://…:port` when
    /// `own_pages`. Until [`Gate::hold`] says which addresses the listener really holds, it
    /// assumes 127.0.0.1 and [::1] (what [`super::serve`] binds for a listener on either).
    pub fn new(port: u16, own_pages: bool, signing: Arc<Signing>) -> Gate {
        let held = [
            SocketAddr::from(([127, 0, 0, 1], port)),
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, port)),
        ];
        Gate {
            port,
            own_pages,
            names: RwLock::new(Names::of(port, &held, true, own_pages)),
            signing,
            admission: Admission::Certificates,
        }
    }

    /// The same gate admitting websites by another approval.
    pub fn admitting(mut self, admission: Admission) -> Gate {
        self.admission = admission;
        self
    }

    /// Whether the core lets `requester` in through this gate (asking the person when it
    /// does not know the website yet).
    pub async fn admit(&self, requester: &Requester) -> bool {
        let approvals = self.signing.approvals();
        let prompt = &**self.signing.prompt();
        match self.admission {
            Admission::Certificates => approvals.admit(requester, prompt).await,
            Admission::PagePin => approvals.admit_page_pin(requester, prompt).await,
        }
    }

    /// The addresses the listener holds (`localhost`: whether every address `localhost`
    /// may mean on its port is among them): only these name it, and only pages served from
    /// these are its own. A page from an address another program holds (an impostor on
    /// `[::1]:PORT` serving `http://localhost:PORT`) is a website like any other.
    pub fn hold(&self, held: &[SocketAddr], localhost: bool) {
        let port = held.first().map_or(self.port, SocketAddr::port);
        *self.names.write().unwrap_or_else(|e| e.into_inner()) =
            Names::of(port, held, localhost, self.own_pages);
    }

    /// The listener's own origin (its check page's), e.g. `http://127.0.0.1:21088`.
    pub fn own_origin(&self) -> Option<String> {
        self.names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .own_origins
            .first()
            .cloned()
    }

    /// Whether `host` (a request's `Host`) names this listener.
    pub fn host_allowed(&self, host: &str) -> bool {
        self.names
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .hosts
            .iter()
            .any(|h| h == host)
    }

    /// Who a request comes from, by its `Origin`: none is a local program.
    pub fn requester(&self, origin: Option<&str>) -> Requester {
        match origin {
            None => Requester::Local,
            Some(o)
                if self
                    .names
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .own_origins
                    .iter()
                    .any(|own| own == o) =>
            {
                Requester::OwnPage(o.to_string())
            }
            Some(o) => Requester::Website(o.to_string()),
        }
    }
}

/// The connection's peer, as [`super::serve`] found it: given with every request it serves.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Whose the peer's socket is.
    pub owner: Owner,
    /// The peer's process (`pid N started T`), looked up for requests without `Origin`.
    pub process: Option<Arc<str>>,
}

/// Who is calling, as the guard established it.
#[derive(Debug, Clone)]
pub struct Caller {
    pub requester: Requester,
    pub lang: Lang,
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

/// Whether `o` is a serialized origin (`scheme://host[:port]`, nothing else): anything else
/// in `Origin` is not what a browser sends, and is refused before it is shown or recorded.
pub fn origin_well_formed(o: &str) -> bool {
    let Some((scheme, rest)) = o.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
        && !rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~:[]%!$&'()*+,;=".contains(&b))
}

/// Headers for every answer: nothing cached (certificates are personal data), no content
/// sniffing, and no other site may embed an answer (an `<img>` or `<script>` of ours).
fn private(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    resp
}

/// The guard as a layer over a router's routes: `router.layer(Guard::layer(gate))`.
/// Hand-written rather than `middleware::from_fn`, which boxes the route once more for
/// every request (for its `Next`) on top of the clone and the future that any guard needs.
#[derive(Clone)]
pub struct Guard {
    gate: Arc<Gate>,
}

impl Guard {
    pub fn layer(gate: Arc<Gate>) -> Guard {
        Guard { gate }
    }
}

impl<S> Layer<S> for Guard {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            gate: self.gate.clone(),
            inner,
        }
    }
}

/// A route behind the [`Guard`].
#[derive(Clone)]
pub struct Guarded<S> {
    gate: Arc<Gate>,
    inner: S,
}

impl<S> Service<Request> for Guarded<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    /// Rules 1–5: a peer of this user on loopback, Host, Origin (with consent), CORS, JSON
    /// bodies; and the private headers on whatever answer. The checks run here, before any
    /// future: only a website not known yet waits (for the person), in a future of its own,
    /// and every other request's boxed future holds the route's alone.
    fn call(&mut self, req: Request) -> Self::Future {
        let checked = match check(&self.gate, req) {
            Ok(c) => c,
            Err(refused) => return answer(*refused),
        };
        // The ready service goes with the request; a clone stays for the next.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        if !checked.ask {
            return match handing_on(checked) {
                Ok((req, origin)) => Box::pin(route(inner, req, origin)),
                Err(refused) => answer(*refused),
            };
        }
        let gate = self.gate.clone();
        Box::pin(async move {
            if !gate.admit(&checked.requester).await {
                return Ok(private(not_admitted(&checked)));
            }
            match handing_on(checked) {
                Ok((req, origin)) => route(inner, req, origin).await,
                Err(refused) => Ok(private(*refused)),
            }
        })
    }
}

/// An answer the guard gives itself.
fn answer(refused: Response) -> BoxFuture<'static, Result<Response, Infallible>> {
    Box::pin(std::future::ready(Ok(private(refused))))
}

/// The route's answer to a request the guard let through, with CORS for its `origin`.
async fn route<S>(
    mut inner: S,
    req: Request,
    origin: Option<String>,
) -> Result<Response, Infallible>
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let mut resp = inner.call(req).await?;
    cors(&mut resp, origin.as_deref());
    Ok(private(resp))
}

/// A request past rules 1–4 but for the person's consent.
struct Checked {
    req: Request,
    origin: Option<String>,
    requester: Requester,
    lang: Lang,
    /// A website not known yet: the person is asked before it goes on.
    ask: bool,
}

/// The error answer `code` with `detail`, in `lang`.
fn refusal(lang: Lang, code: Code, detail: &str) -> Box<Response> {
    Box::new(ApiError::new(code, detail).lang(lang).into_response())
}

/// A website refused: no CORS grant, so the page cannot read the answer, and a preflight
/// fails.
fn not_admitted(c: &Checked) -> Response {
    let o = c.origin.as_deref().unwrap_or("");
    let mut r = *refusal(
        c.lang,
        Code::OriginNotAllowed,
        &format!("{o} is not allowed"),
    );
    cors(&mut r, None);
    r
}

/// Rules 1–4 (the peer, `Host`, `Origin` and whether its website is known), or the answer
/// that refuses the request.
fn check(gate: &Gate, req: Request) -> Result<Checked, Box<Response>> {
    let lang = lang_of(req.headers());
    let refuse = |code: Code, detail: &str| refusal(lang, code, detail);

    // 1. Only loopback peers, whatever the listening address (fail closed without one).
    let real = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let peer = real
        // Router tests set the peer with axum's `MockConnectInfo`, as the `ConnectInfo`
        // extractor accepts; only code can add it, and a real server's `ConnectInfo` wins.
        .or_else(|| {
            req.extensions()
                .get::<MockConnectInfo<SocketAddr>>()
                .map(|m| m.0)
        });
    if !peer.is_some_and(|p| p.ip().is_loopback()) {
        tracing::warn!(?peer, "refused a non-loopback peer");
        return Err(refuse(
            Code::HostNotAllowed,
            "the bridge serves this computer only",
        ));
    }
    // ... and of this user: loopback is every account on the machine.
    let who = req.extensions().get::<Peer>().cloned();
    match (&who, real) {
        (
            Some(Peer {
                owner: Owner::Same, ..
            }),
            _,
        ) => {}
        (
            Some(Peer {
                owner: Owner::Unknown,
                ..
            }),
            _,
        ) if !peer::owner_known_here() => {}
        (Some(Peer { owner, .. }), _) => {
            tracing::warn!(?peer, ?owner, "refused a connection of another user");
            return Err(refuse(
                Code::HostNotAllowed,
                "the bridge serves the user it runs for only",
            ));
        }
        // A real connection not served by bridge::serve: nobody asked whose it is.
        (None, Some(_)) => {
            tracing::error!("a listener of the bridge is not served by bridge::serve");
            return Err(refuse(Code::HostNotAllowed, "the peer was not checked"));
        }
        (None, None) => {}
    }
    // 2. One Host, naming this listener (defeats DNS rebinding), and an origin-form target:
    // an absolute URI carries an authority of its own that could disagree with `Host`.
    let uri = req.uri();
    if uri.scheme().is_some() || uri.authority().is_some() {
        return Err(refuse(
            Code::HostNotAllowed,
            "absolute-form request targets are not served",
        ));
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let host = hosts.next().and_then(|v| v.to_str().ok()).unwrap_or("");
    if hosts.next().is_some() {
        return Err(refuse(Code::HostNotAllowed, "more than one Host header"));
    }
    if !gate.host_allowed(host) {
        return Err(refuse(
            Code::HostNotAllowed,
            &format!("Host `{}` is not this bridge", host.escape_debug()),
        ));
    }
    // 3./4. Origin: only the browser-set header identifies a page.
    let mut origins = req.headers().get_all(header::ORIGIN).iter();
    let origin = match (origins.next().map(|v| v.to_str()), origins.next()) {
        (None, _) => None,
        (Some(Ok(o)), None) if o != "null" && origin_well_formed(o) => Some(o.to_owned()),
        (Some(Ok("null")), None) => {
            return Err(refuse(
                Code::OriginNotAllowed,
                "an opaque (null) origin may not call",
            ));
        }
        _ => return Err(refuse(Code::OriginNotAllowed, "not an origin")),
    };
    // A page's request without `Origin` (a no-cors `<img>`, `<script>`, `<link>`) is still
    // a page's: browsers say so in `Sec-Fetch-Site`. It is no local program, and it may not
    // take what local programs may (an event stream's place, say).
    if origin.is_none()
        && let Some(site) = req.headers().get("sec-fetch-site")
        && (site == "cross-site" || site == "same-site")
    {
        return Err(refuse(
            Code::OriginNotAllowed,
            "a page of another site without an Origin may not call",
        ));
    }
    let requester = match (gate.requester(origin.as_deref()), who) {
        (
            Requester::Local,
            Some(Peer {
                process: Some(p), ..
            }),
        ) => Requester::Program { peer: p },
        (r, _) => r,
    };
    let mut checked = Checked {
        req,
        origin,
        requester,
        lang,
        ask: false,
    };
    if checked.origin.is_some() {
        let approvals = gate.signing.approvals();
        // A path that does not exist never asks the person (one dialog per origin, and a
        // denial is remembered: see Approvals::admit).
        match (gate.admission, approvals.known(&checked.requester)) {
            (Admission::Certificates, Some(true)) => {}
            (Admission::Certificates, Some(false)) => return Err(Box::new(not_admitted(&checked))),
            _ if checked.req.extensions().get::<MatchedPath>().is_none() => {
                return Err(Box::new(not_admitted(&checked)));
            }
            _ => checked.ask = true,
        }
    }
    Ok(checked)
}

/// Rule 5 and preflights, once the website is admitted: the request to hand on with its
/// `Origin` (to grant in CORS), or the answer.
fn handing_on(checked: Checked) -> Result<(Request, Option<String>), Box<Response>> {
    let Checked {
        mut req,
        origin,
        requester,
        lang,
        ask: _,
    } = checked;
    let refuse = |code: Code, detail: &str| refusal(lang, code, detail);
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
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
        return Err(Box::new(r));
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
            return Err(r);
        }
    }
    req.extensions_mut().insert(Caller { requester, lang });
    Ok((req, origin))
}
