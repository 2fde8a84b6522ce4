//! The documents, as serde records (field names are the Firestore field names).
//!
//! JSON that zapfn keeps exactly as it came (Meta's raw objects, send bodies,
//! event payloads, media, context and errors) is stored as a JSON string, so it
//! round-trips byte for byte. Times are Unix seconds unless named `*_ms`.
//! An absent optional field is stored as an absent field.

use serde::{Deserialize, Serialize};

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
    pub timestamp: i64,
    pub created_at: i64,
    pub updated_at: i64,
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

/// `phone_numbers/{pnid}/status_events/{hash(subject, status)}`: every status
/// event, by subject (a wamid, or a zapfn id before the message has one).
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
    pub created_at: i64,
    #[serde(default)]
    pub revoked_at: Option<i64>,
}
