//! Records the store reads and writes, and the event payloads it publishes.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Topics of the event bus and task queue.
pub mod topics {
    /// A new inbound message: [`super::MessageEvent`].
    pub const MESSAGES: &str = "messages";
    /// A new status update: `zapfn_whatsapp::webhook::StatusUpdate`.
    pub const STATUSES: &str = "statuses";
    /// A queued outbound message to send: [`super::DispatchTask`].
    pub const DISPATCH: &str = "dispatch";
    /// An inbound media object was stored: [`super::MediaStored`]; processors subscribe.
    pub const MEDIA: &str = "media";
    /// Text derived from media (a voice note's transcript): [`super::MessageEvent`]
    /// with `text` set, handled by the text function like a typed message.
    pub const TRANSCRIPTS: &str = "transcripts";
}

/// Payload of a `media` event: where an inbound message's media object is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MediaStored {
    pub message_id: String,
    pub wamid: String,
    pub phone_number_id: String,
    pub from: String,
    /// The WhatsApp message type: image, video, audio, document or sticker.
    pub message_type: String,
    /// Blob store key.
    pub key: String,
    pub content_type: String,
    pub sha256: String,
    pub size: u64,
    /// A document's file name, as the customer sent it.
    #[serde(default)]
    pub filename: Option<String>,
    /// True for a voice note (`audio.voice`).
    #[serde(default)]
    pub voice: bool,
    /// The group the message was written in, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
}

impl MediaStored {
    /// Whose conversation the message belongs to: its group's, else its sender's.
    pub fn conversation_wa_id(&self) -> &str {
        self.group_id.as_deref().unwrap_or(&self.from)
    }
}

/// Payload of a `messages` event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageEvent {
    pub message_id: String,
    pub wamid: String,
    pub phone_number_id: String,
    pub message_type: String,
    pub from: String,
    /// What an inbox shows (text body, caption, reply title...), so handlers need no read.
    #[serde(default)]
    pub text: Option<String>,
    /// The id of a tapped button or list row, or a quick-reply payload.
    #[serde(default)]
    pub reply_id: Option<String>,
    /// The group the message was written in, if any (replies go there).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
}

/// Payload of a `dispatch` task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DispatchTask {
    pub message_id: String,
}

/// What one `ingest` stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestReport {
    pub new_messages: usize,
    pub duplicate_messages: usize,
    pub new_statuses: usize,
    pub duplicate_statuses: usize,
    pub raw_events: usize,
}

/// An outbound message accepted by the send API.
#[derive(Debug, Clone, PartialEq)]
pub struct NewOutbound {
    pub phone_number_id: String,
    /// Recipient; None for mark-as-read.
    pub to: Option<String>,
    pub message_type: String,
    pub preview: Option<String>,
    pub context_message_id: Option<String>,
    /// The Graph API body to send, as the client gave it.
    pub body: Value,
    /// Client-chosen key: the same key returns the same message.
    pub idempotency_key: Option<String>,
}

/// The answer to `enqueue_send`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enqueued {
    pub id: String,
    /// False when an earlier request with the same idempotency key made it.
    pub created: bool,
    pub status: String,
}

/// A queued outbound message, as the dispatcher sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    pub id: String,
    pub phone_number_id: String,
    pub to: Option<String>,
    pub message_type: String,
    pub body: Value,
    pub wamid: Option<String>,
    pub status: String,
    /// When a send to Meta began without a known outcome (Unix seconds).
    pub dispatch_started_at: Option<i64>,
}

impl OutboundMessage {
    /// Still to be sent: queued, and no wamid recorded (nor linked by a status).
    pub fn awaits_dispatch(&self) -> bool {
        self.wamid.is_none() && self.status == "queued"
    }
}

/// `biz_opaque_callback_data` zapfn attaches to a send of message `id`; Meta echoes it in statuses.
pub fn callback_data_for(id: &str) -> String {
    format!("zapfn:{id}")
}

/// One entry of a message's status history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusEntry {
    pub status: String,
    /// Unix seconds (Meta's timestamp, or when zapfn recorded it).
    pub timestamp: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Value>,
    /// The group member it is about (`recipient_participant_id`), for a group message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participant: Option<String>,
}

/// A message as the read API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MessageView {
    pub id: String,
    pub wamid: Option<String>,
    pub phone_number_id: String,
    pub conversation_id: Option<String>,
    pub direction: String,
    #[serde(rename = "type")]
    pub message_type: Option<String>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub text: Option<String>,
    pub media: Option<Value>,
    pub context: Option<Value>,
    pub status: String,
    pub errors: Option<Value>,
    pub status_history: Vec<StatusEntry>,
    /// Meta's original object (inbound) or the Graph API body (outbound).
    pub raw: Option<Value>,
    /// Unix seconds.
    pub timestamp: i64,
}

/// A customer conversation on one business number.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    pub id: String,
    pub phone_number_id: String,
    pub wa_id: String,
    pub contact_name: Option<String>,
    /// Unix seconds of the customer's last message.
    pub last_inbound_at: Option<i64>,
    pub last_message_at: i64,
}

/// Filters for listing conversations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConversationQuery {
    pub phone_number_id: Option<String>,
    pub wa_id: Option<String>,
    pub page: PageRequest,
}

/// Keyset pagination: an opaque cursor from the previous page and a size.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    pub cursor: Option<String>,
    pub limit: usize,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            cursor: None,
            limit: 50,
        }
    }
}

/// One page of results and the cursor of the next, if any.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

/// An event leased from the outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The event's id in its queue (an outbox row, a Pub/Sub message or a Cloud Task).
    pub id: String,
    pub topic: String,
    pub ordering_key: Option<String>,
    pub payload: Value,
    /// 1 on the first delivery.
    pub attempt: u32,
    /// When the event was first attempted (Unix ms): retries end `max_retry_age` later.
    pub first_attempt_at_ms: i64,
    /// The lease this delivery holds: settling a delivery whose lease expired
    /// (and was perhaps taken by another consumer) changes nothing.
    pub lease_until_ms: i64,
}

/// An event a handler publishes through the store's outbox.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub topic: String,
    /// Events with the same key are delivered one at a time, in order.
    pub ordering_key: Option<String>,
    pub payload: Value,
}

/// How a handler finished with a delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum Settlement {
    /// Done: remove it.
    Ack,
    /// Failed: deliver again after `after` (dead-lettered once attempts run out).
    Retry { after: Duration, error: String },
    /// Not yet (e.g. a rate limit): deliver again after `after` without counting an attempt.
    Defer { after: Duration },
    /// Cannot succeed: move to the dead letters.
    DeadLetter { error: String },
}

/// Backlog per topic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct QueueDepths {
    pub pending: BTreeMap<String, u64>,
    pub dead_letters: u64,
}

/// What an API key may do. `Admin` implies the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Send messages and upload media.
    Send,
    /// Read messages, conversations and media.
    Read,
    /// Manage keys, read the audit log, export and erase contacts.
    Admin,
}

impl Scope {
    /// The scope's name (`send`, `read`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Scope, String> {
        match text.trim() {
            "send" => Ok(Scope::Send),
            "read" => Ok(Scope::Read),
            "admin" => Ok(Scope::Admin),
            other => Err(format!(
                "unknown scope {other:?} (expected send, read or admin)"
            )),
        }
    }
}

/// Phone-number-id entry of an [`ApiKey`] that allows every business number.
pub const ALL_NUMBERS: &str = "*";

/// A stored API key: its peppered hash (never the key), what it may do, for
/// which business numbers, and how fast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    pub name: String,
    pub key_hash: String,
    pub scopes: Vec<Scope>,
    /// Business numbers it acts for; [`ALL_NUMBERS`] allows every one.
    pub phone_number_ids: Vec<String>,
    /// Requests per second (token bucket, bursts of the same size); None: unlimited.
    pub rate_per_second: Option<u32>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; a revoked key authenticates nothing.
    pub revoked_at: Option<i64>,
}

impl ApiKey {
    /// Whether the key has `scope` (admin has every scope).
    pub fn allows(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope) || self.scopes.contains(&Scope::Admin)
    }

    /// Whether the key may act for this business number.
    pub fn allows_number(&self, phone_number_id: &str) -> bool {
        self.phone_number_ids
            .iter()
            .any(|allowed| allowed == ALL_NUMBERS || allowed == phone_number_id)
    }

    /// The numbers it is limited to; None when it allows every number.
    pub fn numbers(&self) -> Option<&[String]> {
        (!self.phone_number_ids.iter().any(|n| n == ALL_NUMBERS))
            .then_some(self.phone_number_ids.as_slice())
    }
}

/// One state-changing API call, as the audit log keeps it (no bodies).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Unix milliseconds.
    pub at_ms: i64,
    /// The name of the API key that made the call.
    pub key_name: String,
    pub method: String,
    /// The route template, e.g. `/v1/{phone_number_id}/messages`.
    pub route: String,
    /// The ids the call named (the path's parameters), e.g. a phone number id.
    pub target: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
    pub request_id: String,
}
