//! The OpenAPI 3 document of the bridge, generated from the handlers and wire types.

use utoipa::OpenApi;

use super::routes;
use super::wire;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "certray bridge",
        description = "证书助手 localhost API for web pages: certificates, signatures, key events."
    ),
    paths(
        routes::status,
        routes::tokens,
        routes::certificates,
        routes::certificate,
        routes::sign,
        routes::authenticate,
        routes::events,
    ),
    components(schemas(wire::ErrorDto, wire::ErrorBody, wire::EventDto))
)]
pub struct ApiDoc;

/// `GET /v1/openapi.json`: this API as an OpenAPI 3 document.
pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}
