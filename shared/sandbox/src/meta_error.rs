//! Graph API error responses shaped like Meta's.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::json;

/// Meta's title for `code` (the text after `(#code)` in `error.message`).
pub(crate) fn title(code: i64) -> &'static str {
    match code {
        0 => "AuthException",
        1 => "API Unknown",
        2 => "API Service",
        4 => "Application request limit reached",
        10 => "Permission denied",
        100 => "Invalid parameter",
        190 => "Invalid OAuth access token - Cannot parse access token",
        80007 => "Rate limit issues",
        130429 => "Rate limit hit",
        131000 => "Something went wrong",
        131008 => "Required parameter is missing",
        131009 => "Parameter value is not valid",
        131016 => "Service unavailable",
        131026 => "Message undeliverable",
        131047 => "Re-engagement message",
        131048 => "Spam rate limit hit",
        131051 => "Unsupported message type",
        131056 => "(Business Account, Consumer Account) pair rate limit hit",
        132000 => "Number of parameters does not match the expected number of params",
        132001 => "Template name does not exist in the translation",
        _ => "An error occurred",
    }
}

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
