//! The handlers of the bridge's API. Every request has passed the guard (`server.rs`), which
//! put a [`Caller`] in its extensions.

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
use secrecy::SecretString;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::api_error::{ApiError, error_response};
use super::openapi::ApiDoc;
use super::prompt::{PinAnswer, PinRequest};
use super::server::{App, Caller, KEEP_ALIVE};
use super::store::AuditRecord;
use super::wire::{
    AuthenticateRequestDto, AuthenticationDto, CertificateDto, CertificateWithPemDto,
    CertificatesDto, ErrorDto, EventDto, SignRequestDto, SignatureDto, StatusDto, TokenDto,
    TokensDto,
};
use crate::error::Code;
use crate::inventory::{self, CertEntry, Update};
use crate::token::pkcs11::{Auth, SignRequest};
use crate::token::sign::{HashAlg, KeyKind, SignInput};

type AppState = State<Arc<App>>;

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
    let snap = app.live.snapshot();
    Json(StatusDto {
        name: "certray".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        tokens: snap.tokens.len(),
        certificates: snap.certificates.len(),
        ui: app.prompt.available(),
    })
}

/// The tokens present.
#[utoipa::path(get, path = "/v1/tokens", responses((status = 200, body = TokensDto)))]
pub async fn tokens(State(app): AppState) -> Json<TokensDto> {
    Json(TokensDto {
        tokens: app
            .live
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
    let snapshot = app.live.snapshot();
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
            f.usage.is_none()
                || (c.has_private_key && c.parsed.as_ref().is_ok_and(|p| p.can_sign()))
        })
        .map(|c| CertificateDto::new(c, now, app.warning_days))
        .filter(|d| f.status.as_ref().is_none_or(|s| &d.status == s))
        .filter(|d| {
            f.uscc
                .as_ref()
                .is_none_or(|u| d.ids.uscc.as_ref() == Some(u))
        })
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
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
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
        .live
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

/// The certificate that signs, and its key type, checked before any PIN is asked for.
fn signer(app: &App, id: &str) -> Result<(CertEntry, KeyKind), ApiError> {
    let c = app
        .live
        .certificate(id)
        .ok_or_else(|| ApiError::new(Code::CertNotFound, id.to_string()))?;
    let kind = inventory::signing_key(&c)?;
    Ok((c, kind))
}

/// Removes an origin from the "prompt open" set when the request ends, however it ends
/// (a client that disconnects drops the handler, and with it the prompt).
struct PromptSlot<'a> {
    app: &'a App,
    origin: String,
}

impl Drop for PromptSlot<'_> {
    fn drop(&mut self) {
        self.app
            .prompting
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.origin);
    }
}

/// How a signature is authorised (rules 6 and 7): the page's PIN where allowed, a grant
/// remembered for this origin and certificate, or certray's own PIN dialog.
async fn authorize(
    app: &App,
    caller: &Caller,
    cert: &CertEntry,
    pin: Option<String>,
    operation: String,
) -> Result<(Auth, bool), ApiError> {
    if let Some(pin) = pin {
        if !app.page_pin_allowed(caller.origin.as_deref()) {
            return Err(ApiError::code(Code::PagePinNotAllowed));
        }
        // Always checked by the token, even when a login is kept (pkcs11.rs logs out first).
        return Ok((
            Auth::Pin {
                pin: SecretString::from(pin),
                force: false,
                remember: false,
            },
            false,
        ));
    }
    let grant = (caller.name().to_string(), cert.id.clone());
    if app
        .remembered
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains(&grant)
    {
        return Ok((Auth::Session, false));
    }
    if !app.prompt.available() {
        return Err(ApiError::new(
            Code::PinRequired,
            "no PIN in the request and no dialog to ask for one",
        ));
    }
    if !app
        .prompting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(caller.name().to_string())
    {
        return Err(ApiError::new(
            Code::UserCancelled,
            "a PIN dialog for this website is already open",
        ));
    }
    let _slot = PromptSlot {
        app,
        origin: caller.name().to_string(),
    };
    let owner = cert
        .parsed
        .as_ref()
        .map(|p| p.owner())
        .unwrap_or_else(|_| cert.label.clone());
    let request = PinRequest {
        origin: caller.origin.clone(),
        certificate_id: cert.id.clone(),
        owner,
        operation,
    };
    match app.prompt.pin(request).await {
        PinAnswer::Pin { pin, remember } => Ok((
            Auth::Pin {
                pin,
                force: false,
                remember,
            },
            remember,
        )),
        PinAnswer::Cancelled => Err(ApiError::code(Code::UserCancelled)),
        PinAnswer::Unavailable => Err(ApiError::code(Code::PinRequired)),
    }
}

/// What `sign_with` fails with.
enum Failure {
    Token(crate::token::Error),
    Cms(crate::cms::CmsError),
}

impl From<crate::token::Error> for Failure {
    fn from(e: crate::token::Error) -> Self {
        Failure::Token(e)
    }
}

impl From<crate::cms::CmsError> for Failure {
    fn from(e: crate::cms::CmsError) -> Self {
        Failure::Cms(e)
    }
}

impl From<Failure> for ApiError {
    fn from(f: Failure) -> Self {
        match f {
            Failure::Token(e) => e.into(),
            Failure::Cms(e) => ApiError::new(Code::Internal, e.to_string()),
        }
    }
}

/// The output format of `POST /v1/sign`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Raw,
    Cms { detached: bool },
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Raw => "raw",
            Format::Cms { detached: false } => "cms",
            Format::Cms { detached: true } => "cms-detached",
        }
    }
}

/// What to sign and how.
#[derive(Clone)]
struct Job {
    hash: HashAlg,
    input: SignInput,
    format: Format,
}

/// Run a signature on the token worker (blocking) and note the outcome.
async fn run_signature(
    app: &Arc<App>,
    caller: &Caller,
    cert: &CertEntry,
    kind: KeyKind,
    auth: Auth,
    job: Job,
) -> Result<Vec<u8>, ApiError> {
    let Job {
        hash,
        input,
        format,
    } = job;
    let module = app
        .live
        .module_for(&cert.token_id)
        .ok_or_else(|| ApiError::code(Code::TokenRemoved))?;
    let pin_used = matches!(auth, Auth::Pin { .. });
    // The worker's reply is awaited, not blocked on: no thread hand-over beyond the worker's.
    let sign = |input: SignInput, auth: Auth| {
        module.sign_async(SignRequest {
            token_id: cert.token_id.clone(),
            key_id: cert.key_id.clone(),
            hash,
            input,
            auth,
        })
    };
    let result: Result<Vec<u8>, Failure> = async {
        match (format, input) {
            (Format::Raw, input) => Ok(sign(input, auth).await?.bytes),
            (Format::Cms { detached }, SignInput::Data(content)) => {
                let prepared = crate::cms::Prepared::new(&crate::cms::CmsRequest {
                    certificate_der: &cert.der,
                    content: &content,
                    detached,
                    hash,
                    key: kind,
                    signing_time: OffsetDateTime::now_utc(),
                })?;
                let signature = sign(SignInput::Digest(prepared.digest().to_vec()), auth).await?;
                Ok(prepared.finish(signature.bytes)?)
            }
            (Format::Cms { .. }, SignInput::Digest(_)) => Err(Failure::Token(
                crate::token::Error::Other("CMS needs the data, not a digest".into()),
            )),
        }
    }
    .await;
    if pin_used {
        // Its PIN flags may have moved: subscribers hear of it.
        app.live.check_pin(&cert.token_id);
    }
    result.map_err(|f| ApiError::from(f).lang(caller.lang))
}

/// Sign data or a digest, raw or as CMS SignedData.
#[utoipa::path(post, path = "/v1/sign", request_body = SignRequestDto,
    responses((status = 200, body = SignatureDto), (status = 400, body = ErrorDto), (status = 401, body = ErrorDto),
        (status = 403, body = ErrorDto), (status = 404, body = ErrorDto), (status = 409, body = ErrorDto),
        (status = 413, body = ErrorDto), (status = 415, body = ErrorDto), (status = 423, body = ErrorDto)))]
pub async fn sign(
    State(app): AppState,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<SignRequestDto>,
) -> Result<Json<SignatureDto>, ApiError> {
    let lang = caller.lang;
    let hash: HashAlg = req
        .hash
        .as_deref()
        .unwrap_or("sha256")
        .parse()
        .map_err(|e: String| ApiError::new(Code::BadRequest, e).lang(lang))?;
    let format = match req.format.as_deref().unwrap_or("raw") {
        "raw" => Format::Raw,
        "cms" => Format::Cms { detached: false },
        "cms-detached" => Format::Cms { detached: true },
        other => {
            return Err(ApiError::new(
                Code::BadRequest,
                format!("format `{other}`: raw, cms or cms-detached"),
            )
            .lang(lang));
        }
    };
    let input = match (&req.data, &req.digest) {
        (Some(d), None) => SignInput::Data(b64("data", d).map_err(|e| e.lang(lang))?),
        (None, Some(d)) if format == Format::Raw => {
            SignInput::Digest(b64("digest", d).map_err(|e| e.lang(lang))?)
        }
        (None, Some(_)) => {
            return Err(
                ApiError::new(Code::BadRequest, "CMS formats sign `data`, not a `digest`")
                    .lang(lang),
            );
        }
        _ => {
            return Err(
                ApiError::new(Code::BadRequest, "give exactly one of `data` and `digest`")
                    .lang(lang),
            );
        }
    };
    let bytes = match &input {
        SignInput::Data(d) | SignInput::Digest(d) => d.len(),
    };
    let audit = AuditRecord {
        time: String::new(),
        origin: caller.name().to_string(),
        operation: "sign".into(),
        certificate_id: req.certificate_id.clone(),
        format: format.name().into(),
        bytes,
        result: String::new(),
    };
    let result = async {
        input
            .digest(hash)
            .map_err(|e| ApiError::new(Code::BadRequest, e.to_string()))?;
        let (cert, kind) = signer(&app, &req.certificate_id)?;
        let operation = format!("{}, {bytes} bytes", format.name());
        let (auth, remember) =
            authorize(&app, &caller, &cert, req.pin.clone(), operation.clone()).await?;
        let job = Job {
            hash,
            input,
            format,
        };
        let (signature, remember) = match auth {
            Auth::Session => {
                match run_signature(&app, &caller, &cert, kind, Auth::Session, job.clone()).await {
                    // The kept login is gone (a wrong PIN ended it, or the key was
                    // re-inserted): forget the grant and ask again.
                    Err(e) if e.code == Code::PinRequired => {
                        let grant = (caller.name().to_string(), cert.id.clone());
                        app.remembered
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .remove(&grant);
                        let (auth, remember) =
                            authorize(&app, &caller, &cert, None, operation).await?;
                        (
                            run_signature(&app, &caller, &cert, kind, auth, job).await?,
                            remember,
                        )
                    }
                    r => (r?, false),
                }
            }
            auth => (
                run_signature(&app, &caller, &cert, kind, auth, job).await?,
                remember,
            ),
        };
        if remember {
            app.remembered
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert((caller.name().to_string(), cert.id.clone()));
        }
        let algorithm = match (format, kind) {
            (Format::Raw, k) => crate::token::sign::algorithm_name(k, hash),
            (Format::Cms { .. }, _) => "cms-signed-data".to_string(),
        };
        Ok::<_, ApiError>(SignatureDto {
            signature: B64.encode(&signature),
            certificate: B64.encode(&cert.der),
            algorithm,
        })
    }
    .await;
    audited(&app, audit, result, lang)
}

/// Record a signing operation's outcome in the audit log, then answer with it.
fn audited<T>(
    app: &App,
    mut audit: AuditRecord,
    result: Result<T, ApiError>,
    lang: crate::i18n::Lang,
) -> Result<Json<T>, ApiError> {
    audit.result = match &result {
        Ok(_) => "ok".into(),
        Err(e) => e.code.as_str().into(),
    };
    app.audit.record(audit);
    result.map(Json).map_err(|e| e.lang(lang))
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
    let audit = AuditRecord {
        time: String::new(),
        origin: caller.name().to_string(),
        operation: "authenticate".into(),
        certificate_id: req.certificate_id.clone(),
        format: "certray-auth:1".into(),
        bytes: challenge.len(),
        result: String::new(),
    };
    let result = async {
        if !(32..=128).contains(&challenge.len()) {
            return Err(ApiError::new(
                Code::BadRequest,
                format!("the challenge is {} bytes; 32–128 needed", challenge.len()),
            ));
        }
        let (cert, kind) = signer(&app, &req.certificate_id)?;
        // The origin is the browser's Origin header: a page cannot choose what it proves.
        let origin = caller.name().to_string();
        let mut message = Sha256::digest(origin.as_bytes()).to_vec();
        message.extend_from_slice(&Sha256::digest(&challenge));
        let (auth, _) = authorize(
            &app,
            &caller,
            &cert,
            req.pin.clone(),
            format!("authenticate {origin}"),
        )
        .await?;
        let job = Job {
            hash: HashAlg::Sha256,
            input: SignInput::Data(message),
            format: Format::Raw,
        };
        let signature = run_signature(&app, &caller, &cert, kind, auth, job).await?;
        Ok(AuthenticationDto {
            certificate: B64.encode(&cert.der),
            signature: B64.encode(&signature),
            algorithm: crate::token::sign::algorithm_name(kind, HashAlg::Sha256),
            origin,
            format: "certray-auth:1".into(),
        })
    }
    .await;
    audited(&app, audit, result, lang)
}

/// Server-Sent Events: one per inventory event (names as in `certray watch --json`), a
/// keep-alive comment every 15 s.
#[utoipa::path(get, path = "/v1/events", responses((status = 200, description = "text/event-stream of EventDto", body = EventDto)))]
pub async fn events(State(app): AppState, Extension(caller): Extension<Caller>) -> Response {
    let Ok(permit) = app.event_streams.clone().try_acquire_owned() else {
        let busy = "too many event streams";
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal,
            caller.lang,
            busy,
        );
    };
    let (_, sub) = app.live.subscribe();
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

/// This API as an OpenAPI 3 document.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    use utoipa::OpenApi as _;
    Json(ApiDoc::openapi())
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
