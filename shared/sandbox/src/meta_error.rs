//! Graph API error responses shaped like Meta's.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::json;
use zapfn_whatsapp::errors::title;

/// The HTTP status the Graph API answers `code` with: 429 for throughput,
/// 401 for auth, 403 for permissions and blocks, 500/503 for service errors,
/// 400 for everything else (pair rate, window, template and payload errors).
fn http_status(code: i64) -> StatusCode {
    match code {
        130429 => StatusCode::TOO_MANY_REQUESTS,
        0 | 190 => StatusCode::UNAUTHORIZED,
        10 | 200..=299 | 368 | 131031 => StatusCode::FORBIDDEN,
        1 | 2 | 131000 => StatusCode::INTERNAL_SERVER_ERROR,
        131016 => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// A Meta error for `code` at the HTTP status Meta uses for it.
pub(crate) fn meta_error(code: i64, details: &str) -> Response {
    meta_error_with_status(http_status(code), code, details)
}

/// A Meta error body for `code`, answered with `status`:
/// `{"error":{"message":"(#code) title","type":"OAuthException","code",
/// "error_data":{"messaging_product":"whatsapp","details"},"fbtrace_id"}}`.
pub(crate) fn meta_error_with_status(status: StatusCode, code: i64, details: &str) -> Response {
    let body = json!({
        "error": {
            "message": format!("(#{code}) {}", title(code)),
            "type": "OAuthException",
            "code": code,
            "error_data": { "messaging_product": "whatsapp", "details": details },
            "fbtrace_id": fbtrace_id(),
        }
    });
    (status, Json(body)).into_response()
}

fn fbtrace_id() -> String {
    rand::thread_rng()
        .sample_iter(Alphanumeric)
        .take(27)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_follow_meta() {
        assert_eq!(http_status(130429), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(http_status(131056), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(132015), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(190), StatusCode::UNAUTHORIZED);
        assert_eq!(http_status(131000), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(fbtrace_id().len(), 27);
    }
}
