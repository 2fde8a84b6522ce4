//! The send function, zapfn's API gateway: `POST /v1/{phone_number_id}/messages`
//! takes Meta's own send body, validates it, checks the 24-hour window, stores
//! it as `queued` with its dispatch task and answers 202. It also serves the
//! read API (`/v1/messages`, `/v1/conversations`, `/v1/media`) and media uploads
//! (`POST /v1/{phone_number_id}/media`), the admin routes (`/v1/keys`,
//! `/v1/audit`), a contact's export and erasure (`/v1/contacts/{wa_id}`) and
//! the retention job (`POST /_jobs/retention`). Every `/v1` route needs an API
//! key with the route's scope, for the business number the route touches;
//! state-changing calls are audited.

mod admin;
pub mod contacts;
pub mod erase;
mod errors;
pub mod export;
mod media;
mod read;
pub mod retention;

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Json, Router};
use serde_json::{json, Value};
use zapfn_runtime::auth::{require_api_key, ApiAuth, Caller};
use zapfn_runtime::{audit, Context, Function};
use zapfn_store::{NewOutbound, Scope};
use zapfn_whatsapp::send;

pub use errors::MetaError;

/// The customer-service window: free-form messages only within 24 h of the customer's last message.
pub const SERVICE_WINDOW_SECONDS: i64 = 24 * 60 * 60;

/// Longest a send whose customer-service window looks closed waits for the
/// webhooks acknowledged before it to be stored (503 after it).
const WINDOW_WEBHOOK_WAIT: Duration = Duration::from_secs(10);

/// Largest send body accepted (Meta's own bodies are far smaller).
const MAX_SEND_BODY: usize = 256 * 1024;
/// Largest media upload form (Meta's 100 MiB document limit, plus the multipart envelope).
const MAX_UPLOAD_BODY: usize = 101 * 1024 * 1024;

/// The send function.
/// In embedded mode it also starts the background retention runs.
pub fn function(context: &Context) -> Function {
    retention::start_embedded(context);
    Function::http("send", router(context.clone()))
}

/// All `/v1` routes behind API-key auth, and the retention job.
pub fn router(context: Context) -> Router {
    let auth = ApiAuth::new(context.clone());
    Router::new()
        .route("/v1/{phone_number_id}/messages", post(send_message))
        .route("/v1/messages/{id}", get(read::message))
        .route("/v1/media/{id}", get(media::read))
        .route(
            "/v1/{phone_number_id}/media",
            post(media::upload).layer(DefaultBodyLimit::max(MAX_UPLOAD_BODY)),
        )
        .route("/v1/conversations", get(read::conversations))
        .route("/v1/conversations/{id}", get(read::conversation))
        .route(
            "/v1/conversations/{id}/messages",
            get(read::conversation_messages),
        )
        .route("/v1/keys", post(admin::create_key).get(admin::list_keys))
        .route("/v1/keys/{name}", axum::routing::delete(admin::revoke_key))
        .route("/v1/audit", get(admin::audit_log))
        .layer(DefaultBodyLimit::max(MAX_SEND_BODY))
        .route_layer(middleware::from_fn_with_state(
            context.clone(),
            audit::record_changes,
        ))
        .route_layer(middleware::from_fn_with_state(
            auth.clone(),
            require_api_key,
        ))
        .with_state(context.clone())
        .merge(contacts::router(context.clone(), auth))
        .merge(retention::router(context))
}

/// Validates, checks the window, stores and queues one send.
async fn send_message(
    State(context): State<Context>,
    caller: Caller,
    Path(phone_number_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, MetaError> {
    if phone_number_id.is_empty() || !phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(MetaError::invalid(
            "phone_number_id",
            "must be the numeric id of your business number",
        ));
    }
    caller
        .require_for(Scope::Send, &phone_number_id)
        .map_err(|problem| {
            MetaError::new(StatusCode::FORBIDDEN, 10, "phone_number_id", problem.detail)
        })?;
    let body = body.map_err(|rejection| {
        MetaError::new(rejection.status(), 100, "body", rejection.body_text())
    })?;
    let body: Value = serde_json::from_slice(&body).map_err(|e| {
        MetaError::new(
            StatusCode::BAD_REQUEST,
            100,
            "body",
            format!("request body is not JSON: {e}"),
        )
    })?;
    let request = send::validate(&body).map_err(MetaError::from)?;
    refuse_private_links(&body, context.config.allow_private_media_hosts)?;
    refuse_other_numbers_media(&context, &body, &phone_number_id).await?;
    let group = body.get("recipient_type").and_then(Value::as_str) == Some("group");
    if request.needs_service_window && !group {
        if let Some(to) = &request.to {
            ensure_window_open(&context, &phone_number_id, to).await?;
        }
    }
    let contacts = request
        .to
        .as_deref()
        .map(|to| send::contacts_answer(&body, to));
    let idempotency_key = headers
        .get("idempotency-key")
        .map(|value| value.to_str().map(str::to_owned))
        .transpose()
        .map_err(|_| MetaError::invalid("Idempotency-Key", "must be visible ASCII"))?;
    let enqueued = context
        .store
        .enqueue_send(NewOutbound {
            phone_number_id,
            to: request.to.clone(),
            message_type: request.message_type.clone(),
            preview: request.preview.clone(),
            context_message_id: request.context_message_id.clone(),
            body,
            idempotency_key,
        })
        .await
        .map_err(MetaError::from)?;
    let answer = json!({
        "messaging_product": "whatsapp",
        "id": enqueued.id,
        "status": enqueued.status,
        "contacts": contacts.unwrap_or_else(|| json!([])),
        "messages": [{ "id": enqueued.id, "message_status": enqueued.status }],
    });
    let mut response = (StatusCode::ACCEPTED, Json(answer)).into_response();
    if !enqueued.created {
        response.headers_mut().insert(
            "idempotent-replayed",
            axum::http::HeaderValue::from_static("true"),
        );
    }
    Ok(response)
}

/// 400 for a media link to a literal private, loopback or metadata address (host
/// names are resolved and checked when the dispatcher fetches the link).
fn refuse_private_links(body: &Value, allow_private: bool) -> Result<(), MetaError> {
    for slot in zapfn_media::outbound::slots(body) {
        if let zapfn_media::outbound::Source::Link(link) = &slot.source {
            zapfn_media::link::check_link(link, allow_private)
                .map_err(|error| MetaError::invalid(slot.field(), error.to_string()))?;
        }
    }
    Ok(())
}

/// 400 for a media object naming (by zapfn message id) a message that is not
/// one of this business number's: a key for one number must not send another
/// number's media. Unknown and foreign ids get the same answer.
async fn refuse_other_numbers_media(
    context: &Context,
    body: &Value,
    phone_number_id: &str,
) -> Result<(), MetaError> {
    for slot in zapfn_media::outbound::slots(body) {
        if let zapfn_media::outbound::Source::Stored(message_id) = &slot.source {
            let message = context
                .store
                .message(message_id)
                .await
                .map_err(MetaError::from)?;
            if message.is_none_or(|message| message.phone_number_id != phone_number_id) {
                return Err(MetaError::invalid(
                    slot.field(),
                    format!("{message_id} is not a message of business number {phone_number_id}"),
                ));
            }
        }
    }
    Ok(())
}

/// 422 unless the customer wrote within the last 24 hours. Webhooks are
/// acknowledged once journaled and stored an instant later, so a window that
/// looks closed is looked at again once every webhook acknowledged before
/// this request is stored; while they are not (a backlog past
/// [`WINDOW_WEBHOOK_WAIT`]) the answer is 503, never a false 422.
async fn ensure_window_open(
    context: &Context,
    phone_number_id: &str,
    to: &str,
) -> Result<(), MetaError> {
    let store = &context.store;
    let mut last = store
        .last_inbound_at(phone_number_id, to)
        .await
        .map_err(MetaError::from)?;
    if !window_open(last) {
        if !store.flush_webhooks(WINDOW_WEBHOOK_WAIT).await {
            return Err(MetaError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                2,
                "to",
                "webhooks received before this request are still being stored, so whether the \
                 customer wrote within 24 hours is not known yet; nothing was queued, retry",
            ));
        }
        last = store
            .last_inbound_at(phone_number_id, to)
            .await
            .map_err(MetaError::from)?;
    }
    if window_open(last) {
        return Ok(());
    }
    Err(MetaError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        131047,
        "to",
        match last {
            Some(_) => {
                "more than 24 hours have passed since the customer last replied: \
                        the customer-service window is closed, send a template message instead"
            }
            None => {
                "the customer has not messaged this number: outside the customer-service window \
                     only template messages can be sent, send a template message instead"
            }
        },
    ))
}

/// Whether a customer who last wrote at `last` (Unix seconds) is within the window.
fn window_open(last: Option<i64>) -> bool {
    last.is_some_and(|at| chrono::Utc::now().timestamp() - at < SERVICE_WINDOW_SECONDS)
}
