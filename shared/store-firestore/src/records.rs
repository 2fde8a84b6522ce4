//! The documents, as serde records (field names are the Firestore field names).
//!
//! JSON that zapfn keeps exactly as it came (Meta's raw objects, send bodies,
//! event payloads, media, context and errors) is stored as a JSON string, so it
//! round-trips byte for byte. Times are Unix seconds unless named `*_ms`.
//! An absent optional field is stored as an absent field.

use serde::{Deserialize, Serialize};
use zapfn_store::AuditEntry;

/// `phone_numbers/{pnid}/messages/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MessageDoc {
    pub id: String,
    #[serde(default)]
    pub wamid: Option<String>,
    #[serde(default)]
    pub conversation_id: Option<String>,
    pub phone_number_id: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    #[serde(default, rename = "type")]
    pub message_type: Option<String>,
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub media: Option<String>,
    #[serde(default)]
    pub context: Option<String>,
    pub status: String,
    #[serde(default)]
    pub errors: Option<String>,
    /// Meta's object (inbound) or the Graph API body (outbound).
    #[serde(default)]
    pub raw: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// A send to Meta began and its outcome is not known yet.
    #[serde(default)]
    pub dispatch_started_at: Option<i64>,
    /// When zapfn accepted an outbound send (Unix ms): orders a customer's sends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accepted_at_ms: Option<i64>,
    pub timestamp: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl MessageDoc {
    /// Where an outbound send stands in its customer's order: acceptance time,
    /// then id.
    pub fn send_order(&self) -> (i64, &str) {
        let accepted = self.accepted_at_ms.unwrap_or(self.created_at * 1000);
        (accepted, &self.id)
    }
}

/// `phone_numbers/{pnid}/conversations/{id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ConversationDoc {
    pub id: String,
    /// The store's prefix: collection-group queries over every business
    /// number's conversations filter on it.
    pub store: String,
    pub phone_number_id: String,
    pub wa_id: String,
    #[serde(default)]
    pub contact_name: Option<String>,
    /// The customer's last message: opens the 24-hour window.
    #[serde(default)]
    pub last_inbound_at: Option<i64>,
    pub last_message_at: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// `phone_numbers/{pnid}/status_events/{hash(subject, status[, participant])}`:
/// every status event, by subject (a wamid, or a zapfn id before the message
/// has one), once per status and group member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StatusEventDoc {
    pub subject: String,
    pub status: String,
    pub timestamp: i64,
    #[serde(default)]
    pub errors: Option<String>,
    #[serde(default)]
    pub raw: Option<String>,
    pub received_at: i64,
    /// The group member it is about (`recipient_participant_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
}

/// `wamids/{hash}` and `idempotency_keys/{hash}`: what makes the key unique,
/// and the message it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LookupDoc {
    pub key: String,
    pub message_id: String,
}

/// `raw_events/{random}`: webhook content that is not a message or a status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RawEventDoc {
    #[serde(default)]
    pub phone_number_id: Option<String>,
    pub kind: String,
    pub raw: String,
    pub received_at: i64,
}

/// `outbox/{id}`: one event of the transactional outbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EventDoc {
    pub topic: String,
    #[serde(default)]
    pub ordering_key: Option<String>,
    /// Position within its ordering key.
    #[serde(default)]
    pub key_seq: Option<i64>,
    pub payload: String,
    pub attempts: i64,
    pub available_at_ms: i64,
    /// 0 when not leased.
    pub leased_until_ms: i64,
    /// When a claim may take it: the later of `available_at_ms` and `leased_until_ms`.
    pub due_at_ms: i64,
    /// The oldest event of its ordering key (always true without a key): only
    /// heads are claimed.
    pub head: bool,
    #[serde(default)]
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    /// Retries end `max_retry_age` after the first real attempt.
    #[serde(default)]
    pub first_attempt_at_ms: Option<i64>,
}

/// `outbox_keys/{hash(topic, key)}`: the sequence of one ordering key. Events
/// `head_seq..next_seq` are pending; the document is deleted when none are,
/// and a new generation starts when it comes back.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct OrderingKeyDoc {
    pub topic: String,
    pub ordering_key: String,
    pub generation: String,
    pub next_seq: i64,
    pub head_seq: i64,
}

/// `dead_letters/{id}`: an event a handler gave up on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DeadLetterDoc {
    pub topic: String,
    #[serde(default)]
    pub ordering_key: Option<String>,
    pub payload: String,
    pub attempts: i64,
    #[serde(default)]
    pub last_error: Option<String>,
    pub created_at_ms: i64,
    pub dead_at_ms: i64,
}

/// `topics/{topic}`: a topic that has had events (what `queue_depths` counts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TopicDoc {
    pub topic: String,
}

/// `api_keys/{hash}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ApiKeyDoc {
    pub key_hash: String,
    pub name: String,
    /// `send`, `read`, `admin`.
    pub scopes: Vec<String>,
    /// Business numbers it acts for (`*`: every one).
    pub phone_number_ids: Vec<String>,
    #[serde(default)]
    pub rate_per_second: Option<u32>,
    pub created_at: i64,
    #[serde(default)]
    pub revoked_at: Option<i64>,
}

/// `audit_log/{random}`: one state-changing API call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct AuditDoc {
    pub at_ms: i64,
    pub key_name: String,
    pub method: String,
    pub route: String,
    #[serde(default)]
    pub target: Option<String>,
    pub status: u16,
    pub request_id: String,
}

impl From<&AuditEntry> for AuditDoc {
    fn from(entry: &AuditEntry) -> AuditDoc {
        AuditDoc {
            at_ms: entry.at_ms,
            key_name: entry.key_name.clone(),
            method: entry.method.clone(),
            route: entry.route.clone(),
            target: entry.target.clone(),
            status: entry.status,
            request_id: entry.request_id.clone(),
        }
    }
}

impl From<AuditDoc> for AuditEntry {
    fn from(doc: AuditDoc) -> AuditEntry {
        AuditEntry {
            at_ms: doc.at_ms,
            key_name: doc.key_name,
            method: doc.method,
            route: doc.route,
            target: doc.target,
            status: doc.status,
            request_id: doc.request_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::layout::collections;

    /// The field names of one document of each collection (every option set).
    fn fields_of(collection: &str) -> Vec<String> {
        let some = || Some("x".to_owned());
        let value = match collection {
            collections::MESSAGES => serde_json::to_value(MessageDoc {
                id: "m".into(),
                wamid: some(),
                conversation_id: some(),
                phone_number_id: "p".into(),
                direction: "inbound".into(),
                message_type: some(),
                from: some(),
                to: some(),
                text: some(),
                media: some(),
                context: some(),
                status: "received".into(),
                errors: some(),
                raw: some(),
                idempotency_key: some(),
                dispatch_started_at: Some(1),
                accepted_at_ms: None,
                timestamp: 1,
                created_at: 1,
                updated_at: 1,
            }),
            collections::CONVERSATIONS => serde_json::to_value(ConversationDoc {
                id: "c".into(),
                store: "zapfn".into(),
                phone_number_id: "p".into(),
                wa_id: "w".into(),
                contact_name: some(),
                last_inbound_at: Some(1),
                last_message_at: 1,
                created_at: 1,
                updated_at: 1,
            }),
            collections::OUTBOX => serde_json::to_value(EventDoc {
                topic: "t".into(),
                ordering_key: some(),
                key_seq: Some(0),
                payload: "{}".into(),
                attempts: 0,
                available_at_ms: 1,
                leased_until_ms: 0,
                due_at_ms: 1,
                head: true,
                last_error: some(),
                created_at_ms: 1,
                first_attempt_at_ms: Some(1),
            }),
            collections::STATUS_EVENTS => serde_json::to_value(StatusEventDoc {
                subject: "s".into(),
                status: "sent".into(),
                timestamp: 1,
                errors: some(),
                raw: some(),
                received_at: 1,
                participant: some(),
            }),
            collections::RAW_EVENTS => serde_json::to_value(RawEventDoc {
                phone_number_id: some(),
                kind: "errors".into(),
                raw: "{}".into(),
                received_at: 1,
            }),
            collections::DEAD_LETTERS => serde_json::to_value(DeadLetterDoc {
                topic: "t".into(),
                ordering_key: some(),
                payload: "{}".into(),
                attempts: 1,
                last_error: some(),
                created_at_ms: 1,
                dead_at_ms: 1,
            }),
            other => {
                panic!("indexes.json names collection {other:?}, which this store does not have")
            }
        };
        match value.unwrap() {
            Value::Object(fields) => fields.keys().cloned().collect(),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn indexes_json_names_fields_the_documents_have() {
        let declared: Value = serde_json::from_str(include_str!("../indexes.json")).unwrap();
        let indexes = declared["indexes"].as_array().unwrap();
        assert!(!indexes.is_empty());
        for index in indexes {
            let fields = fields_of(index["collectionGroup"].as_str().unwrap());
            assert!(
                ["COLLECTION", "COLLECTION_GROUP"].contains(&index["queryScope"].as_str().unwrap())
            );
            assert!(
                index["why"].as_str().is_some_and(|why| !why.is_empty()),
                "{index}"
            );
            let paths = index["fields"].as_array().unwrap();
            assert!(paths.len() >= 2, "composite: {index}");
            for field in paths {
                let path = field["fieldPath"].as_str().unwrap();
                assert!(fields.iter().any(|f| f == path), "{path} in {index}");
                assert!([json!("ASCENDING"), json!("DESCENDING")].contains(&field["order"]));
            }
        }
        for exemption in declared["fieldOverrides"].as_array().unwrap() {
            let fields = fields_of(exemption["collectionGroup"].as_str().unwrap());
            let path = exemption["fieldPath"].as_str().unwrap();
            assert!(fields.iter().any(|f| f == path), "{exemption}");
            assert_eq!(exemption["indexes"], json!([]), "{exemption}");
        }
    }
}
