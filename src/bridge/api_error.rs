//! Errors as HTTP answers: a status from the code, and `{"error":{code,message,hint}}`.
//! Internal details go to the log only.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::wire::ErrorDto;
use crate::core;
use crate::error::Code;
use crate::i18n::Lang;
use crate::model::PinState;

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    pub pin: Option<PinState>,
    /// Shown to the caller (never for INTERNAL).
    pub detail: Option<String>,
    pub lang: Lang,
}

impl ApiError {
    pub fn new(code: Code, detail: impl Into<String>) -> ApiError {
        ApiError {
            code,
            pin: None,
            detail: Some(detail.into()),
            lang: Lang::ZhCn,
        }
    }

    pub fn code(code: Code) -> ApiError {
        ApiError {
            code,
            pin: None,
            detail: None,
            lang: Lang::ZhCn,
        }
    }

    pub fn lang(mut self, lang: Lang) -> ApiError {
        self.lang = lang;
        self
    }
}

impl From<core::Error> for ApiError {
    fn from(e: core::Error) -> Self {
        ApiError {
            code: e.code(),
            pin: e.pin_state(),
            detail: Some(e.to_string()),
            lang: Lang::ZhCn,
        }
    }
}

/// An error body under a status other than its code's (404 and 405 for requests no route
/// takes, 503 when the bridge is busy), with the detail shown.
pub fn error_response(status: StatusCode, code: Code, lang: Lang, detail: &str) -> Response {
    let body = ErrorDto::new(code, lang, None, Some(detail.to_string()));
    (status, axum::Json(body)).into_response()
}

/// The HTTP status for each code.
pub fn status(code: Code) -> StatusCode {
    match code {
        Code::BadRequest
        | Code::PinLenRange
        | Code::PinMismatch
        | Code::NotACertificate
        | Code::UsccInvalid => StatusCode::BAD_REQUEST,
        Code::PinRequired | Code::PinIncorrect => StatusCode::UNAUTHORIZED,
        Code::OriginNotAllowed | Code::HostNotAllowed | Code::PagePinNotAllowed => {
            StatusCode::FORBIDDEN
        }
        Code::CertNotFound | Code::TokenNotFound => StatusCode::NOT_FOUND,
        Code::TokenRemoved
        | Code::UserCancelled
        | Code::AlreadyRunning
        | Code::PinFinalTry
        | Code::NoPrivateKey
        | Code::CertInvalid => StatusCode::CONFLICT,
        Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        Code::UnsupportedAlgorithm => StatusCode::UNPROCESSABLE_ENTITY,
        Code::PinLocked => StatusCode::LOCKED,
        Code::ModuleLoadFailed
        | Code::ConfigInvalid
        | Code::Io
        | Code::Internal
        | Code::SignatureInvalid => StatusCode::INTERNAL_SERVER_ERROR,
        Code::SkfHostCrashed => StatusCode::BAD_GATEWAY,
        Code::SkfHostHung => StatusCode::GATEWAY_TIMEOUT,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let detail = if matches!(
            self.code,
            Code::Internal | Code::Io | Code::ModuleLoadFailed
        ) {
            if let Some(d) = &self.detail {
                tracing::error!(code = %self.code, detail = %d, "request failed");
            }
            None
        } else {
            self.detail
        };
        let body = ErrorDto::new(self.code, self.lang, self.pin, detail);
        (status(self.code), axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_status_and_internal_hides_details() {
        for code in Code::ALL {
            let s = status(code);
            assert!(s.is_client_error() || s.is_server_error(), "{code}");
        }
        assert_eq!(status(Code::PinLocked), StatusCode::LOCKED);
        assert_eq!(status(Code::PagePinNotAllowed), StatusCode::FORBIDDEN);
    }
}
