//! A contact's export: one JSON document, streamed a page of messages at a
//! time so a long history never sits in memory whole:
//!
//! ```text
//! {"format": "zapfn-contact-export/1", "wa_id": "...", "exported_at": <unix s>,
//!  "phone_number_ids": ["..."],
//!  "conversations": [{"conversation": {...}, "messages": [{message}, ...]}, ...],
//!  "raw_events": [{"phone_number_id", "kind", "received_at", "raw"}, ...]}
//! ```
//!
//! Messages are the read API's views (status history, media metadata with its
//! processors' annotations such as transcripts and OCR text, the raw object),
//! newest first. Raw events are the webhook content naming the contact that is
//! not a message or a status (calls, values kept for a user id or username),
//! as Meta sent it, oldest first: what erasure deletes with the contact. A store failure after the first byte cannot change the status
//! any more: the body is cut short instead, so a client never takes a partial
//! export for a whole one (the JSON does not close).

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::sync::mpsc;
use zapfn_runtime::{Context, Problem};
use zapfn_store::{Conversation, PageRequest, StoredRawEvent};

use crate::contacts::{not_found, Contact};

/// The export format's name, first in every document.
pub const FORMAT: &str = "zapfn-contact-export/1";
/// Messages read (and written out) per store call.
const PAGE: usize = 200;

type Chunk = Result<Bytes, std::io::Error>;

/// 200 with the streamed export, or 404 when nothing is stored about the contact.
pub async fn respond(context: Context, contact: Contact) -> Result<Response, Problem> {
    let conversations = contact.conversations(&context).await?;
    let raw_events = raw_events(&context, &contact).await?;
    if conversations.is_empty() && raw_events.is_empty() {
        return Err(not_found(&contact.wa_id));
    }
    let (sender, receiver) = mpsc::channel::<Chunk>(4);
    tokio::spawn(async move {
        if let Err(error) = write(&context, &contact, conversations, raw_events, &sender).await {
            tracing::error!(%error, "contact export cut short");
            let _ = sender.send(Err(std::io::Error::other(error))).await;
        }
    });
    let body = Body::from_stream(futures::stream::unfold(
        receiver,
        |mut receiver| async move { receiver.recv().await.map(|chunk| (chunk, receiver)) },
    ));
    let mut response = (StatusCode::OK, body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"contact-export.json\""),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The raw events naming the contact on the numbers it covers (with every
/// number: wherever they were stored, as erasure finds them).
async fn raw_events(context: &Context, contact: &Contact) -> Result<Vec<StoredRawEvent>, Problem> {
    let Some(numbers) = &contact.numbers else {
        return Ok(context
            .store
            .raw_events_naming(None, &contact.wa_id)
            .await?);
    };
    let mut events = Vec::new();
    for pnid in numbers {
        events.extend(
            context
                .store
                .raw_events_naming(Some(pnid), &contact.wa_id)
                .await?,
        );
    }
    Ok(events)
}

/// Why an export stopped: the store failed, or the client went away.
#[derive(Debug, thiserror::Error)]
enum Stopped {
    #[error("store: {0}")]
    Store(#[from] zapfn_store::StoreError),
    #[error("the client went away")]
    Gone,
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
}

async fn send(sender: &mpsc::Sender<Chunk>, text: impl Into<Bytes>) -> Result<(), Stopped> {
    sender
        .send(Ok(text.into()))
        .await
        .map_err(|_| Stopped::Gone)
}

async fn write(
    context: &Context,
    contact: &Contact,
    conversations: Vec<Conversation>,
    raw_events: Vec<StoredRawEvent>,
    sender: &mpsc::Sender<Chunk>,
) -> Result<(), Stopped> {
    let mut numbers: Vec<&str> = conversations
        .iter()
        .map(|c| c.phone_number_id.as_str())
        .chain(raw_events.iter().map(|e| e.phone_number_id.as_str()))
        .collect();
    numbers.sort_unstable();
    numbers.dedup();
    let head = json!({
        "format": FORMAT,
        "wa_id": contact.wa_id,
        "exported_at": chrono::Utc::now().timestamp(),
        "phone_number_ids": numbers,
    })
    .to_string();
    // The head object without its closing brace, then the conversations array.
    send(
        sender,
        format!("{},\"conversations\":[", &head[..head.len() - 1]),
    )
    .await?;
    for (index, conversation) in conversations.iter().enumerate() {
        let separator = if index == 0 { "" } else { "," };
        send(
            sender,
            format!(
                "{separator}{{\"conversation\":{},\"messages\":[",
                serde_json::to_string(conversation)?
            ),
        )
        .await?;
        let mut cursor = None;
        let mut first = true;
        loop {
            let page = context
                .store
                .conversation_messages(
                    &conversation.id,
                    PageRequest {
                        cursor,
                        limit: PAGE,
                    },
                )
                .await?;
            let mut chunk = String::new();
            for message in &page.items {
                if !first {
                    chunk.push(',');
                }
                first = false;
                chunk.push_str(&serde_json::to_string(message)?);
            }
            if !chunk.is_empty() {
                send(sender, chunk).await?;
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        send(sender, "]}").await?;
    }
    send(
        sender,
        format!("],\"raw_events\":{}}}", serde_json::to_string(&raw_events)?),
    )
    .await
}
