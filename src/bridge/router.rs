//! The bridge's routes, each behind the guard and the limits.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{MethodRouter, get, post};

use super::guard::guard;
use super::limits::Limits;
use super::openapi;
use super::routes;
use super::state::{BODY_LIMIT, BridgeState, SIGN_BODY_LIMIT};

/// `route` behind the request limits, with a body limit of `limit` bytes.
fn limited(
    route: MethodRouter<Arc<BridgeState>>,
    limits: &Arc<Limits>,
    limit: usize,
) -> MethodRouter<Arc<BridgeState>> {
    route
        .layer(DefaultBodyLimit::max(limit))
        .layer(limits.route(limit))
}

/// The whole API, guarded.
pub fn router(app: Arc<BridgeState>) -> Router {
    let l = &app.limits;
    Router::new()
        // Event streams have their own cap (routes::events), not the handlers'.
        .route("/v1/events", get(routes::events))
        .route("/", limited(get(routes::check_page), l, BODY_LIMIT))
        .route("/v1/status", limited(get(routes::status), l, BODY_LIMIT))
        .route("/v1/tokens", limited(get(routes::tokens), l, BODY_LIMIT))
        .route(
            "/v1/certificates",
            limited(get(routes::certificates), l, BODY_LIMIT),
        )
        .route(
            "/v1/certificates/{id}",
            limited(get(routes::certificate), l, BODY_LIMIT),
        )
        .route("/v1/sign", limited(post(routes::sign), l, SIGN_BODY_LIMIT))
        .route(
            "/v1/authenticate",
            limited(post(routes::authenticate), l, BODY_LIMIT),
        )
        .route(
            "/v1/openapi.json",
            limited(get(openapi::document), l, BODY_LIMIT),
        )
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(middleware::from_fn_with_state(app.gate.clone(), guard))
        .with_state(app)
}
