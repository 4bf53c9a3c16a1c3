//! The bridge's routes, each behind the guard and the limits.

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{MethodRouter, get, post};
use tower::ServiceBuilder;

use super::guard::Guard;
use super::limits::Limits;
use super::openapi;
use super::routes;
use super::state::{BODY_LIMIT, BridgeState, SIGN_BODY_LIMIT};

/// `route` behind the request limits, with a body limit of `limit` bytes. One layer of
/// both: each `layer` call on a route is one more boxed service, cloned for every request.
fn limited(
    route: MethodRouter<Arc<BridgeState>>,
    limits: &Arc<Limits>,
    limit: usize,
) -> MethodRouter<Arc<BridgeState>> {
    route.layer(
        ServiceBuilder::new()
            .layer(limits.route(limit))
            .layer(DefaultBodyLimit::max(limit)),
    )
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
        // Every route that reads a body has its limit from `limited`: no router-wide one.
        .layer(Guard::layer(app.gate.clone()))
        .with_state(app)
}
