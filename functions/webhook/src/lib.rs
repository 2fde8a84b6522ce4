//! The webhook function: Meta's GET verification and signed POST notifications.
//! A POST is answered 200 only after its content is durably stored; everything
//! else (status updates, replies, media) happens from the stored events.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Query, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::de::IgnoredAny;
use serde::Deserialize;
use subtle::ConstantTimeEq;
use zapfn_runtime::{Context, Function, Problem};
use zapfn_whatsapp::signature;

/// Meta's largest webhook payload.
pub const MAX_BODY: usize = 3 * 1024 * 1024;

/// The webhook function.
pub fn function(context: &Context) -> Function {
    Function::http("webhook", router(context.clone()))
}

/// `GET /webhook` and `POST /webhook`.
pub fn router(context: Context) -> Router {
    Router::new()
        .route("/webhook", get(verify).post(receive))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(context)
}

/// Query of Meta's verification request.
#[derive(Deserialize)]
pub struct Verification {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Echoes `hub.challenge` when the mode is `subscribe` and the token matches.
async fn verify(State(context): State<Context>, Query(query): Query<Verification>) -> Response {
    let token_matches = query.verify_token.as_deref().is_some_and(|token| {
        bool::from(
            token
                .as_bytes()
                .ct_eq(context.config.verify_token.as_bytes()),
        )
    });
    match (query.mode.as_deref(), token_matches, query.challenge) {
        (Some("subscribe"), true, Some(challenge)) => {
            tracing::info!("webhook verified by Meta");
            (StatusCode::OK, challenge).into_response()
        }
        (mode, matches, _) => {
            tracing::warn!(
                mode,
                token_matches = matches,
                "webhook verification refused: check WA_VERIFY_TOKEN"
            );
            Problem::new(StatusCode::FORBIDDEN, "verification refused: hub.mode must be subscribe and hub.verify_token must match WA_VERIFY_TOKEN").into_response()
        }
    }
}

/// Checks the signature and that the body is JSON, stores it; 200 only once stored.
/// (Takes the request whole: the header map extractor would copy every header.)
async fn receive(State(context): State<Context>, request: Request) -> Response {
    let signature_header = request.headers().get("x-hub-signature-256").cloned();
    let body = match Bytes::from_request(request, &()).await {
        Ok(body) => body,
        Err(rejection) => {
            let status = rejection.status();
            let detail = if status == StatusCode::PAYLOAD_TOO_LARGE {
                format!("webhook bodies are limited to {MAX_BODY} bytes")
            } else {
                rejection.body_text()
            };
            return Problem::new(status, detail).into_response();
        }
    };
    let header = signature_header.as_ref().map(|value| value.as_bytes());
    if let Err(error) = signature::verify(context.config.app_secret.as_bytes(), &body, header) {
        tracing::warn!(%error, "webhook refused: bad signature (check WA_APP_SECRET)");
        return Problem::new(StatusCode::UNAUTHORIZED, error.to_string()).into_response();
    }
    // Only JSON is taken; what it holds is read when it is stored.
    if let Err(error) = serde_json::from_slice::<IgnoredAny>(&body) {
        return Problem::new(
            StatusCode::BAD_REQUEST,
            format!("the webhook body is not JSON: {error}"),
        )
        .into_response();
    }
    match context.store.accept_webhook(&body).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(error) => {
            tracing::error!(%error, "webhook not stored; Meta will redeliver");
            Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not stored; retry later").into_response()
        }
    }
}
