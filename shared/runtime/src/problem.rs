//! RFC 9457 problem responses (`application/problem+json`).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A problem detail; build with [`Problem::new`] and answer it from a handler.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl Problem {
    /// A problem with `about:blank` type and the status's reason as title.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: impl Into<String>) -> Problem {
        self.field = Some(field.into());
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            status,
            [(header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

impl From<zapfn_store::StoreError> for Problem {
    fn from(error: zapfn_store::StoreError) -> Problem {
        match error {
            zapfn_store::StoreError::Invalid(detail) => {
                Problem::new(StatusCode::BAD_REQUEST, detail)
            }
            other => {
                tracing::error!(error = %other, "store failure");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "storage is unavailable; try again",
                )
            }
        }
    }
}
