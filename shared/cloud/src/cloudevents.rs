//! Eventarc CloudEvents (1.0) → typed events and [`Delivery`].
//!
//! Binary mode carries the attributes in `ce-*` headers and the data as the
//! body; structured mode (`Content-Type: application/cloudevents+json`) carries
//! everything in one JSON object. Cloud Storage's `object.v1.finalized` data is
//! a StorageObjectData; Pub/Sub-sourced events carry a MessagePublishedData.

use std::collections::HashMap;

use http::HeaderMap;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use zapfn_store::Delivery;

use crate::push::{NotAPush, PushedMessage};

/// Cloud Storage: an object was created (or overwritten).
pub const STORAGE_OBJECT_FINALIZED: &str = "google.cloud.storage.object.v1.finalized";
/// Pub/Sub: a message was published (Eventarc's Pub/Sub trigger).
pub const PUBSUB_MESSAGE_PUBLISHED: &str = "google.cloud.pubsub.topic.v1.messagePublished";

/// A CloudEvent's context attributes and data.
#[derive(Debug, Clone, PartialEq)]
pub struct CloudEvent {
    pub id: String,
    pub source: String,
    pub spec_version: String,
    pub event_type: String,
    pub subject: Option<String>,
    /// RFC 3339.
    pub time: Option<String>,
    /// The data, parsed as JSON (Null when there is none).
    pub data: Value,
}

/// What the event says, for the types zapfn knows.
#[derive(Debug, Clone, PartialEq)]
pub enum TypedEvent {
    /// A Cloud Storage object was finalized.
    StorageObjectFinalized(StorageObject),
    /// Any other type, as it came.
    Other(CloudEvent),
}

/// Cloud Storage's StorageObjectData (the fields zapfn uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StorageObject {
    pub bucket: String,
    pub name: String,
    #[serde(default)]
    pub content_type: Option<String>,
    /// Bytes; the JSON carries it as a string.
    #[serde(deserialize_with = "number_or_string")]
    pub size: u64,
    #[serde(default, deserialize_with = "optional_number_or_string")]
    pub generation: Option<i64>,
    #[serde(default)]
    pub md5_hash: Option<String>,
    #[serde(default)]
    pub crc32c: Option<String>,
    #[serde(default)]
    pub time_created: Option<String>,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

/// Reads a CloudEvent in binary or structured mode.
pub fn decode(headers: &HeaderMap, body: &[u8]) -> Result<CloudEvent, NotAPush> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned)
    };
    let structured = header("content-type")
        .is_some_and(|value| value.starts_with("application/cloudevents+json"));
    if structured {
        return decode_structured(body);
    }
    let missing = |name: &str| NotAPush(format!("not a CloudEvent: no {name} header"));
    let data = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(body)
            .map_err(|e| NotAPush(format!("CloudEvent data is not JSON: {e}")))?
    };
    Ok(CloudEvent {
        id: header("ce-id").ok_or_else(|| missing("ce-id"))?,
        source: header("ce-source").ok_or_else(|| missing("ce-source"))?,
        spec_version: header("ce-specversion").ok_or_else(|| missing("ce-specversion"))?,
        event_type: header("ce-type").ok_or_else(|| missing("ce-type"))?,
        subject: header("ce-subject"),
        time: header("ce-time"),
        data,
    })
}

fn decode_structured(body: &[u8]) -> Result<CloudEvent, NotAPush> {
    #[derive(Deserialize)]
    struct Structured {
        id: String,
        source: String,
        specversion: String,
        #[serde(rename = "type")]
        event_type: String,
        #[serde(default)]
        subject: Option<String>,
        #[serde(default)]
        time: Option<String>,
        #[serde(default)]
        data: Value,
    }
    let event: Structured = serde_json::from_slice(body)
        .map_err(|e| NotAPush(format!("not a structured CloudEvent: {e}")))?;
    Ok(CloudEvent {
        id: event.id,
        source: event.source,
        spec_version: event.specversion,
        event_type: event.event_type,
        subject: event.subject,
        time: event.time,
        data: event.data,
    })
}

impl CloudEvent {
    /// The typed form of this event.
    pub fn typed(&self) -> Result<TypedEvent, NotAPush> {
        if self.event_type == STORAGE_OBJECT_FINALIZED {
            let object = serde_json::from_value(self.data.clone())
                .map_err(|e| NotAPush(format!("not a StorageObjectData: {e}")))?;
            return Ok(TypedEvent::StorageObjectFinalized(object));
        }
        Ok(TypedEvent::Other(self.clone()))
    }

    /// The delivery a handler of `topic` gets: for a Pub/Sub-sourced event the
    /// published message (as a push would carry it), else the event's data, with
    /// the event id as delivery id. Eventarc does not say which attempt this is.
    pub fn into_delivery(self, topic: &str) -> Result<Delivery, NotAPush> {
        if self.event_type == PUBSUB_MESSAGE_PUBLISHED {
            #[derive(Deserialize)]
            struct MessagePublished {
                message: PushedMessage,
            }
            let published: MessagePublished = serde_json::from_value(self.data)
                .map_err(|e| NotAPush(format!("not a MessagePublishedData: {e}")))?;
            return published.message.into_delivery(topic, 1);
        }
        let at_ms = self
            .time
            .as_deref()
            .and_then(|time| chrono::DateTime::parse_from_rfc3339(time).ok())
            .map(|time| time.timestamp_millis())
            .unwrap_or_else(crate::now_ms);
        Ok(Delivery {
            id: self.id,
            topic: topic.to_owned(),
            ordering_key: None,
            payload: self.data,
            attempt: 1,
            first_attempt_at_ms: at_ms,
            lease_until_ms: 0,
        })
    }
}

fn number_or_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Number(n) => n
            .as_u64()
            .ok_or_else(|| serde::de::Error::custom("not an unsigned integer")),
        Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        other => Err(serde::de::Error::custom(format!("not a number: {other}"))),
    }
}

fn optional_number_or_string<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<i64>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => Ok(n.as_i64()),
        Some(Value::String(s)) => s.parse().map(Some).map_err(serde::de::Error::custom),
        Some(other) => Err(serde::de::Error::custom(format!("not a number: {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use serde_json::json;

    fn object_data() -> Value {
        json!({
            "kind": "storage#object",
            "id": "zapfn-media/106540352242922/msg_1/original.ogg/1700000000000000",
            "selfLink": "https://www.googleapis.com/storage/v1/b/zapfn-media/o/x",
            "name": "106540352242922/msg_1/original.ogg",
            "bucket": "zapfn-media",
            "generation": "1700000000000000",
            "metageneration": "1",
            "contentType": "audio/ogg",
            "timeCreated": "2026-11-29T10:00:00.000Z",
            "updated": "2026-11-29T10:00:00.000Z",
            "storageClass": "STANDARD",
            "size": "48213",
            "md5Hash": "XrY7u+Ae7tCTyyK7j1rNww==",
            "crc32c": "yZRlqg==",
            "etag": "CIDo8fPS/P8CEAE=",
            "metadata": {"sha256": "ab"}
        })
    }

    #[test]
    fn binary_mode_storage_finalized_is_typed() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("ce-id", "8731276938476"),
            (
                "ce-source",
                "//storage.googleapis.com/projects/_/buckets/zapfn-media",
            ),
            ("ce-specversion", "1.0"),
            ("ce-type", STORAGE_OBJECT_FINALIZED),
            ("ce-subject", "objects/106540352242922/msg_1/original.ogg"),
            ("ce-time", "2026-11-29T10:00:00.000Z"),
            ("content-type", "application/json"),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        let event = decode(&headers, object_data().to_string().as_bytes()).unwrap();
        assert_eq!(event.id, "8731276938476");
        assert_eq!(
            event.subject.as_deref(),
            Some("objects/106540352242922/msg_1/original.ogg")
        );
        let TypedEvent::StorageObjectFinalized(object) = event.typed().unwrap() else {
            panic!("not typed as finalized");
        };
        assert_eq!(object.bucket, "zapfn-media");
        assert_eq!(object.name, "106540352242922/msg_1/original.ogg");
        assert_eq!(object.size, 48213);
        assert_eq!(object.generation, Some(1_700_000_000_000_000));
        assert_eq!(object.content_type.as_deref(), Some("audio/ogg"));
        assert_eq!(object.metadata["sha256"], "ab");
        let delivery = event.into_delivery("media").unwrap();
        assert_eq!(delivery.id, "8731276938476");
        assert_eq!(
            delivery.payload["name"],
            "106540352242922/msg_1/original.ogg"
        );
        assert_eq!(delivery.first_attempt_at_ms, 1_795_946_400_000);
    }

    #[test]
    fn structured_mode_is_read_from_the_body() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "content-type",
            "application/cloudevents+json; charset=utf-8"
                .parse()
                .unwrap(),
        );
        let body = json!({
            "specversion": "1.0", "id": "e1", "source": "//storage.googleapis.com/projects/_/buckets/b",
            "type": STORAGE_OBJECT_FINALIZED, "data": object_data()
        });
        let event = decode(&headers, body.to_string().as_bytes()).unwrap();
        assert_eq!(event.event_type, STORAGE_OBJECT_FINALIZED);
        assert!(matches!(
            event.typed().unwrap(),
            TypedEvent::StorageObjectFinalized(_)
        ));
    }

    #[test]
    fn pubsub_sourced_events_unwrap_the_message() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("ce-id", "m1"),
            (
                "ce-source",
                "//pubsub.googleapis.com/projects/p/topics/zapfn-messages",
            ),
            ("ce-specversion", "1.0"),
            ("ce-type", PUBSUB_MESSAGE_PUBLISHED),
        ] {
            headers.insert(name, value.parse().unwrap());
        }
        let data = json!({
            "message": {
                "data": base64::engine::general_purpose::STANDARD.encode(br#"{"message_id":"msg_9"}"#),
                "messageId": "m1", "publishTime": "2026-11-29T10:00:00Z"
            },
            "subscription": "projects/p/subscriptions/eventarc-x"
        });
        let delivery = decode(&headers, data.to_string().as_bytes())
            .unwrap()
            .into_delivery("messages")
            .unwrap();
        assert_eq!(delivery.payload, json!({"message_id": "msg_9"}));
        assert_eq!(delivery.id, "m1");
    }

    #[test]
    fn missing_attributes_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert("ce-id", "1".parse().unwrap());
        let error = decode(&headers, b"{}").unwrap_err();
        assert!(error.0.contains("ce-source"), "{error}");
    }
}
