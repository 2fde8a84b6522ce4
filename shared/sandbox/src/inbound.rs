//! `POST /sandbox/inbound`: plays a customer writing to the business.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use zapfn_whatsapp::builders::{interactive_reply, messages_notification, new_wamid, text_message};

use crate::problem::problem;
use crate::webhook::{post_signed, with_display_number};
use crate::Sandbox;

/// What the customer sends: exactly one of `text`, `button_reply` or `list_reply`.
#[derive(Deserialize)]
struct Inbound {
    phone_number_id: String,
    from: String,
    #[serde(default = "default_name")]
    name: String,
    text: Option<String>,
    button_reply: Option<Reply>,
    list_reply: Option<Reply>,
    /// wamid of the business message being replied to.
    context: Option<String>,
}

#[derive(Deserialize)]
struct Reply {
    id: String,
    title: String,
}

fn default_name() -> String {
    "Customer".to_owned()
}

/// Builds a Meta-shaped `messages` notification, posts it signed to the
/// webhook once (no retries, so the caller sees what our webhook answered) and
/// answers `{"wamid","webhook_status"}`; 502 if the POST itself failed.
pub(crate) async fn simulate(State(sandbox): State<Sandbox>, body: Bytes) -> Response {
    let inbound: Inbound = match serde_json::from_slice(&body) {
        Ok(inbound) => inbound,
        Err(error) => {
            return problem(
                StatusCode::BAD_REQUEST,
                format!("invalid inbound message: {error}"),
            )
        }
    };
    let config = &sandbox.inner.config;
    let wamid = new_wamid();
    let message = match build_message(&inbound, &wamid, &config.display_phone_number) {
        Ok(message) => message,
        Err(detail) => return problem(StatusCode::BAD_REQUEST, detail),
    };
    let from = inbound.from.trim_start_matches('+');
    let notification = with_display_number(
        messages_notification(&inbound.phone_number_id, from, &inbound.name, vec![message]),
        &config.display_phone_number,
    );
    let body = notification.to_string();
    let secret = config.app_secret.as_bytes();
    match post_signed(
        &sandbox.inner.client,
        &config.webhook_url,
        secret,
        body.as_bytes(),
    )
    .await
    {
        Ok(status) => {
            Json(json!({ "wamid": wamid, "webhook_status": status.as_u16() })).into_response()
        }
        Err(error) => problem(
            StatusCode::BAD_GATEWAY,
            format!("posting to {} failed: {error}", config.webhook_url),
        ),
    }
}

/// The inbound message object, or why the request cannot make one.
fn build_message(
    inbound: &Inbound,
    wamid: &str,
    display_phone_number: &str,
) -> Result<Value, String> {
    if inbound.phone_number_id.trim().is_empty() {
        return Err("phone_number_id must not be empty".to_owned());
    }
    let from = inbound.from.strip_prefix('+').unwrap_or(&inbound.from);
    if from.is_empty() || !from.chars().all(|c| c.is_ascii_digit()) {
        return Err("from must be a phone number in digits, e.g. 5511999990000".to_owned());
    }
    let timestamp = chrono::Utc::now().timestamp();
    let context = inbound.context.as_deref();
    match (&inbound.text, &inbound.button_reply, &inbound.list_reply) {
        (Some(text), None, None) if !text.is_empty() => {
            let mut message = text_message(from, wamid, timestamp, text);
            if let (Some(id), Some(object)) = (context, message.as_object_mut()) {
                object.insert(
                    "context".to_owned(),
                    json!({ "from": display_phone_number, "id": id }),
                );
            }
            Ok(message)
        }
        (Some(_), None, None) => Err("text must not be empty".to_owned()),
        (None, Some(reply), None) => Ok(reply_message(
            from,
            wamid,
            timestamp,
            "button_reply",
            reply,
            context,
        )),
        (None, None, Some(reply)) => Ok(reply_message(
            from,
            wamid,
            timestamp,
            "list_reply",
            reply,
            context,
        )),
        _ => Err("exactly one of text, button_reply or list_reply is required".to_owned()),
    }
}

fn reply_message(
    from: &str,
    wamid: &str,
    timestamp: i64,
    reply_type: &str,
    reply: &Reply,
    context: Option<&str>,
) -> Value {
    interactive_reply(
        from,
        wamid,
        timestamp,
        reply_type,
        &reply.id,
        &reply.title,
        context,
    )
}
