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
use zapfn_media::checksum::sha256_base64;
use zapfn_media::sniff;

/// What the customer sends: exactly one of `text`, `button_reply`, `list_reply`
/// or a media object (`image`, `video`, `audio`, `document`, `sticker`) naming
/// media stored in the sandbox (`POST /sandbox/media`).
#[derive(Deserialize)]
struct Inbound {
    phone_number_id: String,
    from: String,
    #[serde(default = "default_name")]
    name: String,
    text: Option<String>,
    button_reply: Option<Reply>,
    list_reply: Option<Reply>,
    image: Option<InboundMedia>,
    video: Option<InboundMedia>,
    audio: Option<InboundMedia>,
    document: Option<InboundMedia>,
    sticker: Option<InboundMedia>,
    /// wamid of the business message being replied to.
    context: Option<String>,
}

#[derive(Deserialize)]
struct Reply {
    id: String,
    title: String,
}

/// A media message: the sandbox media `id` and what Meta adds per type.
#[derive(Deserialize)]
struct InboundMedia {
    id: String,
    caption: Option<String>,
    filename: Option<String>,
    #[serde(default)]
    voice: bool,
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
    let message = match build_message(&sandbox, &inbound, &wamid, &config.display_phone_number) {
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
    sandbox: &Sandbox,
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
    let media = [
        ("image", &inbound.image),
        ("video", &inbound.video),
        ("audio", &inbound.audio),
        ("document", &inbound.document),
        ("sticker", &inbound.sticker),
    ]
    .into_iter()
    .filter_map(|(kind, media)| Some((kind, media.as_ref()?)))
    .collect::<Vec<_>>();
    match media.as_slice() {
        [] => {}
        [(kind, media)]
            if inbound.text.is_none()
                && inbound.button_reply.is_none()
                && inbound.list_reply.is_none() =>
        {
            return media_message(sandbox, from, wamid, timestamp, kind, media)
        }
        _ => return Err(ONE_OF.to_owned()),
    }
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
        _ => Err(ONE_OF.to_owned()),
    }
}

const ONE_OF: &str =
    "exactly one of text, button_reply, list_reply, image, video, audio, document or sticker is required";

/// A media message object as Meta sends it: `{id, mime_type, sha256 (base64), ...}`.
fn media_message(
    sandbox: &Sandbox,
    from: &str,
    wamid: &str,
    timestamp: i64,
    kind: &str,
    media: &InboundMedia,
) -> Result<Value, String> {
    let item = sandbox.media_item(&media.id).ok_or_else(|| {
        format!(
            "{kind}.id: no sandbox media {:?} (seed it with POST /sandbox/media)",
            media.id
        )
    })?;
    let voice = kind == "audio" && media.voice;
    let mime_type = if voice && item.mime_type == "audio/ogg" {
        "audio/ogg; codecs=opus".to_owned()
    } else {
        item.mime_type.clone()
    };
    let mut object = json!({
        "mime_type": mime_type,
        "sha256": sha256_base64(&item.bytes),
        "id": media.id,
    });
    if let Some(caption) = media
        .caption
        .as_ref()
        .filter(|_| !matches!(kind, "audio" | "sticker"))
    {
        object["caption"] = json!(caption);
    }
    if let Some(filename) = media.filename.as_ref().filter(|_| kind == "document") {
        object["filename"] = json!(filename);
    }
    match kind {
        "audio" => object["voice"] = json!(voice),
        "sticker" => object["animated"] = json!(sniff(&item.bytes).is_some_and(|s| s.animated)),
        _ => {}
    }
    Ok(json!({
        "from": from,
        "id": wamid,
        "timestamp": timestamp.to_string(),
        "type": kind,
        kind: object,
    }))
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
