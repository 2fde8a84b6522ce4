//! What erasure (a contact's right to be forgotten) and retention (deleting what
//! is older than a configured age) read and report.

use std::ops::AddAssign;

use serde::Serialize;
use serde_json::Value;

/// A stored message as erasure and retention see it: enough to find its media objects.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredMessage {
    pub id: String,
    pub phone_number_id: String,
    pub wamid: Option<String>,
    /// The message's `media` object with its processors' annotations.
    pub media: Option<Value>,
    /// Unix seconds.
    pub timestamp: i64,
}

/// A raw webhook event as stored (content that is not a message or a status:
/// a call, a value kept for what zapfn does not index), for a contact's export.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredRawEvent {
    pub phone_number_id: String,
    /// What it is: the change's field (`calls`, …) or why it was kept raw.
    pub kind: String,
    /// Unix seconds.
    pub received_at: i64,
    /// Meta's JSON as received.
    pub raw: Value,
}

impl StoredRawEvent {
    /// The event with its stored text as JSON (kept as a string if it is not JSON).
    pub fn new(phone_number_id: String, kind: String, received_at: i64, raw: &str) -> Self {
        let raw = serde_json::from_str(raw).unwrap_or_else(|_| Value::String(raw.to_owned()));
        StoredRawEvent {
            phone_number_id,
            kind,
            received_at,
            raw,
        }
    }
}

impl StoredMessage {
    /// The blob store keys of the message's media objects (the original and every
    /// derived file): the strings under `media` that name an object of this
    /// message (`{phone_number_id}/{message id}/...`, where media-fetch and the
    /// processors put them).
    pub fn blob_keys(&self) -> Vec<String> {
        media_blob_keys(&self.phone_number_id, &self.id, self.media.as_ref())
    }
}

/// The blob keys named anywhere in message `id`'s `media` object (see
/// [`StoredMessage::blob_keys`]), each once, sorted.
pub fn media_blob_keys(phone_number_id: &str, id: &str, media: Option<&Value>) -> Vec<String> {
    fn walk(value: &Value, prefix: &str, keys: &mut Vec<String>) {
        match value {
            Value::String(text) if text.starts_with(prefix) && text.len() > prefix.len() => {
                keys.push(text.clone())
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, prefix, keys)),
            Value::Object(fields) => fields.values().for_each(|item| walk(item, prefix, keys)),
            _ => {}
        }
    }
    let mut keys = Vec::new();
    if let Some(media) = media {
        walk(media, &format!("{phone_number_id}/{id}/"), &mut keys);
    }
    keys.sort();
    keys.dedup();
    keys
}

/// What one erasure or retention step deleted from the store.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Erased {
    pub messages: u64,
    /// Status history entries (Meta's statuses and zapfn's queued/accepted/failed).
    pub status_events: u64,
    pub conversations: u64,
    /// Queued outbox events and dead letters.
    pub events: u64,
    /// Webhook content kept as received that was not a message or a status.
    pub raw_events: u64,
}

impl Erased {
    /// True when the step deleted nothing.
    pub fn is_empty(&self) -> bool {
        *self == Erased::default()
    }
}

impl AddAssign for Erased {
    fn add_assign(&mut self, other: Erased) {
        self.messages += other.messages;
        self.status_events += other.status_events;
        self.conversations += other.conversations;
        self.events += other.events;
        self.raw_events += other.raw_events;
    }
}

/// `id` as a JSON string (`"5511999990000"`): what a raw event naming a contact contains.
pub fn quoted(id: &str) -> String {
    Value::from(id).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn blob_keys_are_the_strings_naming_the_messages_objects() {
        let media = json!({
            "id": "1234",
            "object": {"status": "done", "key": "106/msg_1/original.jpg", "sha256": "ab"},
            "image": {"thumbnail_key": "106/msg_1/thumb.webp", "ocr_text": "106/msg_1/ is text"},
            "video": {"frames": ["106/msg_1/poster.jpg", "106/msg_1/original.jpg"]},
            "other": "106/msg_2/original.jpg",
            "bare": "106/msg_1/",
        });
        let message = StoredMessage {
            id: "msg_1".into(),
            phone_number_id: "106".into(),
            wamid: None,
            media: Some(media),
            timestamp: 0,
        };
        assert_eq!(
            message.blob_keys(),
            [
                "106/msg_1/ is text",
                "106/msg_1/original.jpg",
                "106/msg_1/poster.jpg",
                "106/msg_1/thumb.webp"
            ]
        );
        assert!(media_blob_keys("106", "msg_1", None).is_empty());
    }
}
