//! Meta-style error bodies for the send API, naming the field at fault.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use zapfn_whatsapp::errors::title;
use zapfn_whatsapp::send::ValidationError;

/// An error answered as Meta would: `{"error": {message, type, code, error_data: {details}}}`,
/// plus the `field` at fault.
#[derive(Debug)]
pub struct MetaError {
    pub status: StatusCode,
    pub code: i64,
    pub field: String,
    pub details: String,
}

impl MetaError {
    /// An error with an explicit HTTP status and Meta code.
    pub fn new(
        status: StatusCode,
        code: i64,
        field: impl Into<String>,
        details: impl Into<String>,
    ) -> MetaError {
        MetaError {
            status,
            code,
            field: field.into(),
            details: details.into(),
        }
    }

    /// 400, "Parameter value is not valid" (131009).
    pub fn invalid(field: impl Into<String>, details: impl Into<String>) -> MetaError {
        MetaError::new(StatusCode::BAD_REQUEST, 131009, field, details)
    }
}

impl From<ValidationError> for MetaError {
    fn from(error: ValidationError) -> MetaError {
        MetaError::new(
            StatusCode::BAD_REQUEST,
            error.code,
            error.field,
            error.message,
        )
    }
}

impl From<zapfn_store::StoreError> for MetaError {
    fn from(error: zapfn_store::StoreError) -> MetaError {
        tracing::error!(%error, "store failure in the send API");
        MetaError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            2,
            "",
            "storage is unavailable; nothing was queued, retry",
        )
    }
}

impl IntoResponse for MetaError {
    fn into_response(self) -> Response {
        let details = if self.field.is_empty() {
            self.details.clone()
        } else {
            format!("{}: {}", self.field, self.details)
        };
        let body = json!({
            "error": {
                "message": format!("(#{}) {}", self.code, title(self.code)),
                "type": "OAuthException",
                "code": self.code,
                "error_data": { "messaging_product": "whatsapp", "details": details },
                "field": self.field,
            }
        });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECONDS));
        }
        response
    }
}

/// `Retry-After` of a 503: what failed is expected back within moments.
const RETRY_AFTER_SECONDS: u64 = 2;
