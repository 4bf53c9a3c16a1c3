//! Request-level limits, for every route of every listener (the connection-level ones are
//! [`super::serve`]'s):
//!
//! - a declared `Content-Length` over the route's limit is refused at once (413), before a
//!   byte of the body is read;
//! - the body must arrive within [`BODY_TIMEOUT`] plus a second per MiB (408), so a
//!   half-sent POST holds nothing for long;
//! - bodies over [`LARGE_BODY`] are read [`LARGE_BODIES`] at a time (the others wait up to
//!   [`LARGE_WAIT`], then 503), so a burst of 16 MiB signatures cannot take hundreds of MiB,
//!   and the memory goes back to the system once the last one is done;
//! - one cap on requests being handled at once, [`CONCURRENT_REQUESTS`] over all routes
//!   together (503 beyond it, never a queue), taken only once the body is in: a slow body
//!   holds no handler's place.
//!
//! A body is read into one buffer of its declared size (no growing and copying).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::future::{BoxFuture, Either};
use http_body_util::BodyExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

use super::api_error::{ApiError, error_response};
use super::guard::Caller;
use crate::error::Code;
use crate::i18n::Lang;

/// Requests handled at once, over every route together (event streams excepted: they
/// have their own cap).
pub const CONCURRENT_REQUESTS: usize = 64;
/// Bodies larger than this are "large": read a few at a time.
pub const LARGE_BODY: usize = 1024 * 1024;
/// Large bodies read and handled at once.
pub const LARGE_BODIES: usize = 4;
/// How long a large body waits for its turn before the answer is 503.
pub const LARGE_WAIT: Duration = Duration::from_secs(30);
/// The time a body may take, plus a second per MiB declared.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// The limits every route shares: one per listener (or shared by several).
#[derive(Debug)]
pub struct Limits {
    handlers: Arc<Semaphore>,
    large: Arc<Semaphore>,
    body_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            handlers: Arc::new(Semaphore::new(CONCURRENT_REQUESTS)),
            large: Arc::new(Semaphore::new(LARGE_BODIES)),
            body_timeout: BODY_TIMEOUT,
        }
    }
}

impl Limits {
    /// The same limits with another base body timeout (tests).
    pub fn with_body_timeout(body_timeout: Duration) -> Limits {
        Limits {
            body_timeout,
            ..Limits::default()
        }
    }

    /// One of the [`CONCURRENT_REQUESTS`] handlers' places, held until the answer is
    /// ready; `None` at the cap (503, never a queue).
    fn handler_place(&self) -> Option<OwnedSemaphorePermit> {
        self.handlers.clone().try_acquire_owned().ok()
    }

    /// The layer for a route with a `limit`-byte body limit: `route.layer(limits.route(limit))`.
    pub fn route(self: &Arc<Self>, limit: usize) -> RouteLimits {
        RouteLimits {
            limits: self.clone(),
            limit,
        }
    }
}

/// One route's body limit and the shared limits.
#[derive(Debug, Clone)]
pub struct RouteLimits {
    limits: Arc<Limits>,
    limit: usize,
}

fn lang(req: &Request) -> Lang {
    req.extensions()
        .get::<Caller>()
        .map_or(Lang::ZhCn, |c| c.lang)
}

fn too_large(lang: Lang, limit: usize) -> Response {
    let mut r = ApiError::new(
        Code::PayloadTooLarge,
        format!("the body is over the limit of {limit} bytes"),
    )
    .lang(lang)
    .into_response();
    // The rest of the body is not read: the connection cannot be used again.
    r.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    r
}

fn busy(lang: Lang) -> Response {
    error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::Internal,
        lang,
        "busy",
    )
}

/// What a request's headers say of its body, judged before anything is read.
enum Declared {
    /// No body: straight to the handler (the common case, no future of our own).
    None,
    /// A body of up to `expect` bytes (`declared`, when `Content-Length` says).
    Body {
        expect: usize,
        declared: Option<usize>,
    },
    /// Refused at once (400, 413).
    Refused(Response),
}

/// What the body will be, or the answer that refuses it at once.
fn declared(route: &RouteLimits, req: &Request) -> Declared {
    let lang = lang(req);
    let declared = match req.headers().get(header::CONTENT_LENGTH) {
        None => None,
        Some(v) => match v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => {
                return Declared::Refused(
                    ApiError::new(Code::BadRequest, "Content-Length is not a number")
                        .lang(lang)
                        .into_response(),
                );
            }
        },
    };
    if declared.is_some_and(|n| n > route.limit as u64) {
        return Declared::Refused(too_large(lang, route.limit));
    }
    let chunked = req.headers().contains_key(header::TRANSFER_ENCODING);
    if declared.is_some_and(|n| n > 0) || (declared.is_none() && chunked) {
        Declared::Body {
            expect: declared.map_or(route.limit, |n| n as usize),
            declared: declared.map(|n| n as usize),
        }
    } else {
        Declared::None
    }
}

/// A request with a body: read within its deadline (large ones a few at a time), then
/// handled by `inner` in one of the handlers' places.
async fn with_body<S>(
    route: RouteLimits,
    mut inner: S,
    req: Request,
    expect: usize,
    declared: Option<usize>,
) -> Response
where
    S: Service<Request, Response = Response, Error = Infallible>,
{
    let lang = lang(&req);
    let limits = &route.limits;
    let mut large_permit = None;
    if route.limit > LARGE_BODY && expect > LARGE_BODY {
        match tokio::time::timeout(LARGE_WAIT, limits.large.clone().acquire_owned()).await {
            Ok(Ok(p)) => large_permit = Some(p),
            _ => return busy(lang),
        }
    }
    let (parts, body) = req.into_parts();
    let deadline = limits.body_timeout + Duration::from_secs((expect / (1024 * 1024)) as u64);
    let read = read_body(body, route.limit, declared);
    let req = match tokio::time::timeout(deadline, read).await {
        Ok(Ok(bytes)) => Request::from_parts(parts, Body::from(bytes)),
        Ok(Err(BodyError::TooLarge)) => return too_large(lang, route.limit),
        Ok(Err(BodyError::Broken(e))) => {
            return ApiError::new(Code::BadRequest, format!("reading the body: {e}"))
                .lang(lang)
                .into_response();
        }
        Err(_) => {
            let mut r = error_response(
                StatusCode::REQUEST_TIMEOUT,
                Code::BadRequest,
                lang,
                &format!("the body did not arrive within {} s", deadline.as_secs()),
            );
            r.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return r;
        }
    };
    let Some(slot) = limits.handler_place() else {
        return busy(lang);
    };
    let response = match (Held {
        inner: inner.call(req),
        slot: Some(slot),
    })
    .await
    {
        Ok(r) => r,
        Err(e) => match e {},
    };
    if let Some(p) = large_permit {
        drop(p);
        // The last large request is done: give its memory back to the system now.
        if limits.large.available_permits() == LARGE_BODIES {
            tokio::task::spawn_blocking(crate::platform::resources::trim_memory);
        }
    }
    response
}

/// The limits as a layer on one route (see the module's documentation):
/// `route.layer(limits.route(limit))`. Hand-written rather than `middleware::from_fn`,
/// which clones the route and boxes a future for every request: a request without a body
/// (most of them) only takes a handler's place and goes on.
impl<S> Layer<S> for RouteLimits {
    type Service = Limited<S>;

    fn layer(&self, inner: S) -> Limited<S> {
        Limited {
            inner,
            route: self.clone(),
        }
    }
}

/// A route behind its [`RouteLimits`].
#[derive(Debug, Clone)]
pub struct Limited<S> {
    inner: S,
    route: RouteLimits,
}

impl<S> Service<Request> for Limited<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<Held<S::Future>, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let answer = |r: Response| {
            Either::Right(Box::pin(std::future::ready(Ok(r))) as BoxFuture<'static, _>)
        };
        match declared(&self.route, &req) {
            Declared::Refused(refused) => answer(refused),
            Declared::None => match self.route.limits.handler_place() {
                Some(slot) => Either::Left(Held {
                    inner: self.inner.call(req),
                    slot: Some(slot),
                }),
                None => answer(busy(lang(&req))),
            },
            Declared::Body { expect, declared } => {
                // The ready service goes with the request; a clone stays for the next.
                let clone = self.inner.clone();
                let ready = std::mem::replace(&mut self.inner, clone);
                let route = self.route.clone();
                Either::Right(Box::pin(async move {
                    Ok(with_body(route, ready, req, expect, declared).await)
                }))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A route's answer to a request without a body, holding a handler's place until it is
    /// ready.
    pub struct Held<F> {
        #[pin]
        inner: F,
        slot: Option<OwnedSemaphorePermit>,
    }
}

impl<F> Future for Held<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.inner.poll(cx));
        this.slot.take();
        Poll::Ready(answer)
    }
}

enum BodyError {
    TooLarge,
    Broken(String),
}

/// The body into one buffer: of the declared size when there is one, never over `limit`.
async fn read_body(
    mut body: Body,
    limit: usize,
    declared: Option<usize>,
) -> Result<Bytes, BodyError> {
    let mut buf = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Broken(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if buf.len() + data.len() > limit {
                return Err(BodyError::TooLarge);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(buf))
}
