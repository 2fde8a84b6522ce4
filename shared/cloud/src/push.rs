//! Pub/Sub push envelopes → [`Delivery`].
//!
//! Pub/Sub POSTs `{"message": {"data": <base64>, "attributes", "messageId",
//! "publishTime", "orderingKey"}, "subscription", "deliveryAttempt"}`;
//! `deliveryAttempt` is present only when the subscription has a dead-letter policy.

use std::collections::HashMap;

use base64::Engine;
use serde::Deserialize;
use serde_json::Value;
use zapfn_store::Delivery;

/// A request that is not what the endpoint takes (answer 400: retrying cannot help).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct NotAPush(pub String);

#[derive(Deserialize)]
struct Envelope {
    message: PushedMessage,
    #[serde(default)]
    subscription: String,
    #[serde(rename = "deliveryAttempt", default)]
    delivery_attempt: Option<u32>,
}

/// The `message` of a push envelope (also the `message` of Eventarc's
/// `google.cloud.pubsub.topic.v1.messagePublished` data).
#[derive(Debug, Deserialize)]
pub(crate) struct PushedMessage {
    #[serde(default)]
    data: Option<String>,
    #[serde(default)]
    attributes: HashMap<String, String>,
    /// Pub/Sub sends both spellings of these two; either is enough.
    #[serde(rename = "messageId", default)]
    message_id: Option<String>,
    #[serde(rename = "message_id", default)]
    message_id_snake: Option<String>,
    #[serde(rename = "publishTime", default)]
    publish_time: Option<String>,
    #[serde(rename = "publish_time", default)]
    publish_time_snake: Option<String>,
    #[serde(rename = "orderingKey", default)]
    ordering_key: Option<String>,
}

/// Decodes a Pub/Sub push body delivered for `topic`. The payload is the
/// message data parsed as JSON (or the data as a string when it is not JSON,
/// which the handler then refuses); the first attempt is the publish time.
pub fn decode(body: &[u8], topic: &str) -> Result<Delivery, NotAPush> {
    let envelope: Envelope = serde_json::from_slice(body)
        .map_err(|e| NotAPush(format!("not a Pub/Sub push envelope: {e}")))?;
    tracing::trace!(subscription = %envelope.subscription, "push received");
    envelope
        .message
        .into_delivery(topic, envelope.delivery_attempt.unwrap_or(1))
}

impl PushedMessage {
    pub(crate) fn into_delivery(self, topic: &str, attempt: u32) -> Result<Delivery, NotAPush> {
        let id = self
            .message_id
            .or(self.message_id_snake)
            .filter(|id| !id.is_empty())
            .ok_or_else(|| NotAPush("message.messageId is missing".into()))?;
        let data = base64::engine::general_purpose::STANDARD
            .decode(self.data.unwrap_or_default())
            .map_err(|e| NotAPush(format!("message.data is not base64: {e}")))?;
        let payload = serde_json::from_slice(&data)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&data).into_owned()));
        let published_ms = self
            .publish_time
            .or(self.publish_time_snake)
            .as_deref()
            .and_then(|time| chrono::DateTime::parse_from_rfc3339(time).ok())
            .map(|time| time.timestamp_millis())
            .unwrap_or_else(crate::now_ms);
        if let Some(sent_for) = self.attributes.get("topic").filter(|t| *t != topic) {
            tracing::warn!(topic, sent_for = %sent_for, "push for another topic's subscription endpoint");
        }
        Ok(Delivery {
            id,
            topic: topic.to_owned(),
            ordering_key: self.ordering_key.filter(|key| !key.is_empty()),
            payload,
            attempt: attempt.max(1),
            first_attempt_at_ms: published_ms,
            lease_until_ms: 0,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(data: &[u8], extra: Value) -> Vec<u8> {
        let mut body = json!({
            "message": {
                "attributes": {"topic": "messages", "message_type": "text"},
                "data": base64::engine::general_purpose::STANDARD.encode(data),
                "messageId": "2070443601311540",
                "message_id": "2070443601311540",
                "publishTime": "2021-02-26T19:13:55.749Z",
                "publish_time": "2021-02-26T19:13:55.749Z",
                "orderingKey": "106540352242922:5511999990000"
            },
            "subscription": "projects/p/subscriptions/zapfn-text-messages"
        });
        for (key, value) in extra.as_object().unwrap() {
            body[key] = value.clone();
        }
        serde_json::to_vec(&body).unwrap()
    }

    #[test]
    fn decodes_the_standard_envelope() {
        let payload = json!({"message_id": "msg_1", "message_type": "text"});
        let body = envelope(
            payload.to_string().as_bytes(),
            json!({"deliveryAttempt": 3}),
        );
        let delivery = decode(&body, "messages").unwrap();
        assert_eq!(delivery.id, "2070443601311540");
        assert_eq!(delivery.topic, "messages");
        assert_eq!(delivery.payload, payload);
        assert_eq!(delivery.attempt, 3);
        assert_eq!(
            delivery.ordering_key.as_deref(),
            Some("106540352242922:5511999990000")
        );
        assert_eq!(delivery.first_attempt_at_ms, 1_614_366_835_749);
    }

    #[test]
    fn attempt_is_one_without_a_dead_letter_policy() {
        let body = envelope(b"{}", json!({}));
        assert_eq!(decode(&body, "messages").unwrap().attempt, 1);
    }

    #[test]
    fn data_that_is_not_json_reaches_the_handler_as_a_string() {
        let body = envelope(b"not json", json!({}));
        assert_eq!(
            decode(&body, "messages").unwrap().payload,
            json!("not json")
        );
    }

    #[test]
    fn refuses_what_is_not_an_envelope() {
        assert!(decode(b"{}", "messages").is_err());
        assert!(decode(b"[1]", "messages").is_err());
        let bad_base64 = json!({"message": {"data": "***", "messageId": "1"}}).to_string();
        assert!(decode(bad_base64.as_bytes(), "messages").is_err());
    }
}
