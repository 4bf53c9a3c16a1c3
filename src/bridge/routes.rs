//! The handlers of the bridge's API: wire shapes in, a core call, wire shapes out. Every
//! request has passed the guard, which put a [`Caller`] in its extensions; every policy
//! (who may sign, with which PIN, the audit) is the core's.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Extension, FromRequest, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Deserialize;
use time::OffsetDateTime;

use super::api_error::{ApiError, error_response};
use super::guard::Caller;
use super::state::{BridgeState, EVENT_STREAMS_PER_SITE, KEEP_ALIVE};
use super::wire::{
    AuthenticateRequestDto, AuthenticationDto, CertificateDto, CertificateWithPemDto,
    CertificatesDto, ErrorDto, EventDto, SignRequestDto, SignatureDto, StatusDto, TokenDto,
    TokensDto,
};
use crate::core::signing::AUTH_FORMAT;
use crate::core::{Credentials, Format, Requester, SignJob, Update};
use crate::error::Code;
use crate::model::{HashAlg, SignInput};

type AppState = State<Arc<BridgeState>>;

/// `Json<T>` whose rejections are the bridge's errors (400, 413, 415).
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        // In the caller's language, like every other error.
        let lang = req
            .extensions()
            .get::<Caller>()
            .map_or(crate::i18n::Lang::ZhCn, |c| c.lang);
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(JsonRejection::MissingJsonContentType(e)) => {
                Err(ApiError::new(Code::UnsupportedMediaType, e.body_text()).lang(lang))
            }
            Err(JsonRejection::BytesRejection(e))
                if e.status() == StatusCode::PAYLOAD_TOO_LARGE =>
            {
                Err(ApiError::new(Code::PayloadTooLarge, e.body_text()).lang(lang))
            }
            Err(e) => Err(ApiError::new(Code::BadRequest, e.body_text()).lang(lang)),
        }
    }
}

/// `GET /` — the check page (证书检测). It may send a PIN, so no other site may frame it.
pub async fn check_page() -> Response {
    (
        [
            (
                axum::http::header::CONTENT_SECURITY_POLICY,
                "frame-ancestors 'none'",
            ),
            (axum::http::header::X_FRAME_OPTIONS, "DENY"),
        ],
        Html(include_str!("../../assets/check.html")),
    )
        .into_response()
}

/// Service status.
#[utoipa::path(get, path = "/v1/status", responses((status = 200, body = StatusDto)))]
pub async fn status(State(app): AppState) -> Json<StatusDto> {
    let snap = app.live().snapshot();
    Json(StatusDto {
        name: "certray".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        tokens: snap.tokens.len(),
        certificates: snap.certificates.len(),
        ui: app.prompt().available(),
    })
}

/// The tokens present.
#[utoipa::path(get, path = "/v1/tokens", responses((status = 200, body = TokensDto)))]
pub async fn tokens(State(app): AppState) -> Json<TokensDto> {
    Json(TokensDto {
        tokens: app
            .live()
            .snapshot()
            .tokens
            .iter()
            .map(TokenDto::from)
            .collect(),
    })
}

/// Filters of `GET /v1/certificates`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CertificateFilter {
    /// Only certificates carrying this unified social credit code.
    pub uscc: Option<String>,
    /// Only certificates on this token.
    pub token: Option<String>,
    /// valid, expiring, expired, not_yet_valid or invalid.
    pub status: Option<String>,
    /// `sign`: has a private key and may sign (digitalSignature or nonRepudiation).
    pub usage: Option<String>,
}

/// The certificates, optionally filtered.
#[utoipa::path(get, path = "/v1/certificates", params(CertificateFilter),
    responses((status = 200, body = CertificatesDto), (status = 400, body = ErrorDto)))]
pub async fn certificates(
    State(app): AppState,
    Extension(caller): Extension<Caller>,
    query: Result<Query<CertificateFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    // A malformed query (`?uscc=a&uscc=b`) gets the error body, not axum's plain text.
    let Query(f) =
        query.map_err(|e| ApiError::new(Code::BadRequest, e.body_text()).lang(caller.lang))?;
    const STATUSES: [&str; 5] = ["valid", "expiring", "expired", "not_yet_valid", "invalid"];
    if let Some(s) = &f.status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::new(
            Code::BadRequest,
            format!("status `{s}`: one of {STATUSES:?}"),
        )
        .lang(caller.lang));
    }
    if let Some(u) = &f.usage
        && u != "sign"
    {
        return Err(
            ApiError::new(Code::BadRequest, format!("usage `{u}`: only `sign`")).lang(caller.lang),
        );
    }
    let snapshot = app.live().snapshot();
    let unfiltered =
        f.token.is_none() && f.usage.is_none() && f.status.is_none() && f.uscc.is_none();
    if unfiltered && let Some(body) = app.list_cache.get(&snapshot) {
        return Ok(json_bytes(body));
    }
    let now = OffsetDateTime::now_utc();
    let certificates = snapshot
        .certificates
        .iter()
        .filter(|c| f.token.as_ref().is_none_or(|t| &c.token_id == t))
        .filter(|c| {
            f.uscc
                .as_ref()
                .is_none_or(|u| crate::core::holds_uscc(c, u))
        })
        .filter(|c| {
            f.usage.is_none()
                || (c.has_private_key.may_sign() && c.parsed.as_ref().is_ok_and(|p| p.can_sign()))
        })
        .map(|c| CertificateDto::new(c, now, app.warning_days))
        .filter(|d| f.status.as_ref().is_none_or(|s| &d.status == s))
        .collect();
    let body = axum::body::Bytes::from(
        serde_json::to_vec(&CertificatesDto { certificates })
            .map_err(|e| ApiError::new(Code::Internal, e.to_string()))?,
    );
    if unfiltered {
        app.list_cache.put(snapshot, body.clone());
    }
    Ok(json_bytes(body))
}

fn json_bytes(body: axum::body::Bytes) -> Response {
    use axum::http::{HeaderValue, header};
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// One certificate with its PEM.
#[utoipa::path(get, path = "/v1/certificates/{id}", params(("id" = String, Path, description = "c-…")),
    responses((status = 200, body = CertificateWithPemDto), (status = 404, body = ErrorDto)))]
pub async fn certificate(
    State(app): AppState,
    Extension(caller): Extension<Caller>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Json<CertificateWithPemDto>, ApiError> {
    let Path(id) =
        path.map_err(|e| ApiError::new(Code::BadRequest, e.body_text()).lang(caller.lang))?;
    let c = app
        .live()
        .certificate(&id)
        .ok_or_else(|| ApiError::new(Code::CertNotFound, id.clone()).lang(caller.lang))?;
    Ok(Json(CertificateWithPemDto {
        certificate: CertificateDto::new(&c, OffsetDateTime::now_utc(), app.warning_days),
        pem: crate::cert::to_pem(&c.der),
    }))
}

fn b64(field: &str, text: &str) -> Result<Vec<u8>, ApiError> {
    B64.decode(text.trim())
        .map_err(|e| ApiError::new(Code::BadRequest, format!("{field}: {e}")))
}

/// Sign data or a digest, raw or as CMS SignedData.
#[utoipa::path(post, path = "/v1/sign", request_body = SignRequestDto,
    responses((status = 200, body = SignatureDto), (status = 400, body = ErrorDto), (status = 401, body = ErrorDto),
        (status = 403, body = ErrorDto), (status = 404, body = ErrorDto), (status = 409, body = ErrorDto),
        (status = 413, body = ErrorDto), (status = 415, body = ErrorDto), (status = 423, body = ErrorDto)))]
pub async fn sign(
    State(app): AppState,
    Extension(caller): Extension<Caller>,
    ApiJson(mut req): ApiJson<SignRequestDto>,
) -> Result<Json<SignatureDto>, ApiError> {
    let lang = caller.lang;
    let bad = |detail: String| ApiError::new(Code::BadRequest, detail).lang(lang);
    let hash: HashAlg = req
        .hash
        .as_deref()
        .unwrap_or("sha256")
        .parse()
        .map_err(bad)?;
    let format = match req.format.as_deref().unwrap_or("raw") {
        "raw" => Format::Raw,
        "cms" => Format::Cms { detached: false },
        "cms-detached" => Format::Cms { detached: true },
        other => return Err(bad(format!("format `{other}`: raw, cms or cms-detached"))),
    };
    // The base64 text goes as soon as it is decoded (16 MiB of it, at most).
    let input = match (req.data.take(), req.digest.take()) {
        (Some(d), None) => SignInput::Data(b64("data", &d).map_err(|e| e.lang(lang))?),
        (None, Some(d)) => SignInput::Digest(b64("digest", &d).map_err(|e| e.lang(lang))?),
        _ => return Err(bad("give exactly one of `data` and `digest`".into())),
    };
    let job = SignJob {
        certificate: req.certificate_id,
        hash,
        input,
        format,
    };
    let credentials = Credentials {
        pin: req.pin,
        force: false,
    };
    let signed = app
        .signing
        .sign(&caller.requester, job, credentials)
        .await
        .map_err(|e| ApiError::from(e).lang(lang))?;
    Ok(Json(SignatureDto {
        signature: B64.encode(&signed.bytes),
        certificate: B64.encode(&signed.certificate.der),
        algorithm: signed.algorithm,
    }))
}

/// Prove possession of a certificate's key to a web page, bound to the page's origin.
#[utoipa::path(post, path = "/v1/authenticate", request_body = AuthenticateRequestDto,
    responses((status = 200, body = AuthenticationDto), (status = 400, body = ErrorDto), (status = 401, body = ErrorDto),
        (status = 403, body = ErrorDto), (status = 404, body = ErrorDto)))]
pub async fn authenticate(
    State(app): AppState,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<AuthenticateRequestDto>,
) -> Result<Json<AuthenticationDto>, ApiError> {
    let lang = caller.lang;
    let challenge = b64("challenge", &req.challenge).map_err(|e| e.lang(lang))?;
    let credentials = Credentials {
        pin: req.pin,
        force: false,
    };
    let proof = app
        .signing
        .authenticate(
            &caller.requester,
            &req.certificate_id,
            &challenge,
            credentials,
        )
        .await
        .map_err(|e| ApiError::from(e).lang(lang))?;
    Ok(Json(AuthenticationDto {
        certificate: B64.encode(&proof.certificate.der),
        signature: B64.encode(&proof.signature),
        algorithm: proof.algorithm,
        origin: proof.origin,
        format: AUTH_FORMAT.into(),
    }))
}

/// Server-Sent Events: one per inventory event (names as in `certray watch --json`), a
/// keep-alive comment every 15 s.
#[utoipa::path(get, path = "/v1/events", responses((status = 200, description = "text/event-stream of EventDto", body = EventDto)))]
pub async fn events(State(app): AppState, Extension(caller): Extension<Caller>) -> Response {
    let busy = |what: &str| {
        error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal,
            caller.lang,
            what,
        )
    };
    // A website's streams are counted too: its tabs cannot take every place.
    let site = match &caller.requester {
        Requester::Website(o) => match SiteStream::open(&app, o) {
            Some(s) => Some(s),
            None => return busy("too many event streams for this website"),
        },
        _ => None,
    };
    let Ok(permit) = app.event_streams.clone().try_acquire_owned() else {
        return busy("too many event streams");
    };
    let permit = (permit, site);
    let (_, sub) = app.live().subscribe();
    let days = app.warning_days;
    let lang = caller.lang;
    let mut stopping = app.stopping.subscribe();
    let stopped = async move {
        let _ = stopping.wait_for(|s| *s).await;
    };
    let stream = futures_util::stream::unfold((sub, permit), move |(mut sub, permit)| async move {
        let dto = match sub.recv().await {
            Update::Event(e) => EventDto::new(&e, OffsetDateTime::now_utc(), days, lang),
            Update::Lagged { missed, .. } => EventDto::Resync { missed },
            Update::Closed => return None,
        };
        let name = match &dto {
            EventDto::Resync { .. } => "resync".to_string(),
            _ => serde_json::to_value(&dto)
                .ok()?
                .get("event")?
                .as_str()?
                .to_string(),
        };
        let event = SseEvent::default()
            .event(name)
            .json_data(&dto)
            .unwrap_or_default();
        Some((Ok::<_, Infallible>(event), (sub, permit)))
    });
    // An open stream must not keep the daemon from stopping.
    use futures_util::StreamExt as _;
    let stream = stream.take_until(stopped);
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// One event stream of a website, counted while it is open.
struct SiteStream {
    app: Arc<BridgeState>,
    origin: String,
}

impl SiteStream {
    fn open(app: &Arc<BridgeState>, origin: &str) -> Option<SiteStream> {
        let mut open = app.site_streams.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(origin.to_string()).or_default();
        if *n >= EVENT_STREAMS_PER_SITE {
            return None;
        }
        *n += 1;
        Some(SiteStream {
            app: app.clone(),
            origin: origin.to_string(),
        })
    }
}

impl Drop for SiteStream {
    fn drop(&mut self) {
        let mut open = self
            .app
            .site_streams
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.origin) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.origin);
            }
        }
    }
}

/// A method an endpoint does not have (GET on `/v1/sign`): 405 with the error body.
pub async fn method_not_allowed(Extension(caller): Extension<Caller>) -> Response {
    let detail = "method not allowed";
    error_response(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::BadRequest,
        caller.lang,
        detail,
    )
}

/// Anything else.
pub async fn not_found(Extension(caller): Extension<Caller>) -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        Code::BadRequest,
        caller.lang,
        "no such endpoint",
    )
}
