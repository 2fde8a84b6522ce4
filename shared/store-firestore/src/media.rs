//! Results of media processing, kept under a message's `media` object.

use serde_json::{Map, Value};
use zapfn_store::{NewEvent, Result, StoreError};

use crate::layout::Layout;
use crate::outbox::publish;
use crate::records::MessageDoc;
use crate::tx::Tx;

/// Sets `media.<key>` and publishes `events` when the value changed.
pub(crate) async fn annotate(
    tx: &mut Tx,
    layout: &Layout,
    message_id: &str,
    key: &str,
    value: &Value,
    events: &[NewEvent],
) -> Result<bool> {
    let no_message = || StoreError::Invalid(format!("no message {message_id}"));
    let doc = layout.message(message_id).ok_or_else(no_message)?;
    let mut message = tx.get::<MessageDoc>(&doc).await?.ok_or_else(no_message)?;
    let mut media = match message.media.as_deref().map(serde_json::from_str::<Value>) {
        Some(Ok(Value::Object(media))) => media,
        Some(Err(error)) => return Err(error.into()),
        _ => Map::new(),
    };
    if media.get(key) == Some(value) {
        return Ok(false);
    }
    media.insert(key.to_owned(), value.clone());
    message.media = Some(Value::Object(media).to_string());
    message.updated_at = tx.now();
    tx.set(&doc, &message)?;
    for event in events {
        publish(
            tx,
            layout,
            &event.topic,
            event.ordering_key.as_deref(),
            event.payload.to_string(),
        )
        .await?;
    }
    Ok(true)
}
