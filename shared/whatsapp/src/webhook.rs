//! Parsing Meta's webhook notifications into what zapfn stores.
//!
//! Every `entry[]`, `changes[]`, `messages[]`, `statuses[]` and `errors[]` item is
//! read. Each message and status keeps its raw JSON; changes of other fields
//! (calls, account updates, ...), value-level errors and values with fields
//! zapfn does not index ([`UNINDEXED_VALUE`]) are kept raw as events, so
//! nothing Meta sends is dropped.

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

mod value;

use value::read_contacts;
pub use value::UNINDEXED_VALUE;

/// Why a body is not a webhook notification at all.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("body is not JSON: {0}")]
    NotJson(#[from] serde_json::Error),
}

/// Everything one notification carries.
#[derive(Debug, Default)]
pub struct Notification {
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusUpdate>,
    /// Changes of other fields, value-level errors and items that could not be read.
    pub events: Vec<RawEvent>,
}

/// One inbound message (`value.messages[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    pub phone_number_id: String,
    pub wamid: String,
    /// The sender: Meta's `from` (a phone number), or `from_user_id` (a
    /// business-scoped user id, `US.…`) when Meta leaves the number out.
    pub from: String,
    pub contact_name: Option<String>,
    /// Meta's `timestamp`, Unix seconds.
    pub timestamp: i64,
    pub message_type: String,
    /// Text body, media caption, reply title, reaction emoji...: what an inbox shows.
    pub text: Option<String>,
    pub media: Option<Value>,
    /// The id of a tapped reply button or list row, or a template quick reply's payload.
    #[serde(default)]
    pub reply_id: Option<String>,
    pub context: Option<Value>,
    /// Meta's original message object, unknown fields included.
    pub raw: String,
    /// The group the message was written in (Groups API), if any.
    #[serde(default)]
    pub group_id: Option<String>,
}

impl InboundMessage {
    /// Whose conversation the message belongs to: its group's, else its sender's.
    pub fn conversation_wa_id(&self) -> &str {
        self.group_id.as_deref().unwrap_or(&self.from)
    }

    /// The name the conversation goes by: the sender's, unless it is a group's.
    pub fn conversation_name(&self) -> Option<&str> {
        match self.group_id {
            Some(_) => None,
            None => self.contact_name.as_deref(),
        }
    }
}

/// One status update (`value.statuses[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    pub phone_number_id: String,
    pub wamid: String,
    pub status: String,
    pub timestamp: i64,
    pub recipient_id: Option<String>,
    pub errors: Option<Value>,
    /// `biz_opaque_callback_data` echoed from the send (zapfn puts its message id there).
    #[serde(default)]
    pub callback_data: Option<String>,
    /// `recipient_participant_id`: the group member a group message's status is about.
    #[serde(default)]
    pub participant: Option<String>,
    pub raw: String,
}

impl StatusUpdate {
    /// The status this update moves its message to: its own, except a group
    /// member's `failed`, which only that member's history keeps (the message
    /// still went to the group).
    pub fn message_status(&self) -> Option<&str> {
        let members_failure = self.participant.is_some() && self.status == "failed";
        (!members_failure).then_some(self.status.as_str())
    }
}

/// Something kept as it came: a non-`messages` change, a value-level error, an unreadable item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawEvent {
    pub phone_number_id: Option<String>,
    /// `calls`, `account_update`, `errors`, `invalid_message`, ...
    pub kind: String,
    pub raw: String,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    object: Option<&'a RawValue>,
    #[serde(borrow, default)]
    entry: Option<&'a RawValue>,
}

/// The `object` of a WhatsApp Business Account notification.
const WABA_OBJECT: &str = r#""whatsapp_business_account""#;

#[derive(Deserialize)]
struct Entry<'a> {
    #[serde(borrow, default)]
    changes: Vec<&'a RawValue>,
}

#[derive(Deserialize)]
struct Change<'a> {
    #[serde(default)]
    field: Option<String>,
    #[serde(borrow)]
    value: Option<&'a RawValue>,
}

/// A `messages` change's value; `unindexed` is set by [`value::parse`] when it
/// carries a key zapfn does not read.
#[derive(Default)]
struct ChangeValue<'a> {
    metadata: Option<Metadata>,
    contacts: Option<&'a RawValue>,
    messages: Option<Vec<&'a RawValue>>,
    statuses: Option<Vec<&'a RawValue>>,
    errors: Option<Vec<&'a RawValue>>,
    unindexed: bool,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    phone_number_id: Option<String>,
}

/// One `contacts[]` item: who sent the value's messages.
struct Contact {
    wa_id: Option<String>,
    /// The business-scoped user id (`US.…`).
    user_id: Option<String>,
    name: Option<String>,
}

/// The fields of a message object zapfn indexes; the rest stays in `raw`.
#[derive(Deserialize)]
struct MessageHead {
    id: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    from_user_id: Option<String>,
    #[serde(default)]
    group_id: Option<String>,
    #[serde(default)]
    timestamp: Option<Timestamp>,
    #[serde(rename = "type", default)]
    message_type: Option<String>,
    #[serde(default)]
    context: Option<Value>,
    #[serde(default)]
    text: Option<Value>,
    #[serde(default)]
    image: Option<Value>,
    #[serde(default)]
    video: Option<Value>,
    #[serde(default)]
    audio: Option<Value>,
    #[serde(default)]
    document: Option<Value>,
    #[serde(default)]
    sticker: Option<Value>,
    #[serde(default)]
    interactive: Option<Value>,
    #[serde(default)]
    button: Option<Value>,
    #[serde(default)]
    reaction: Option<Value>,
    #[serde(default)]
    system: Option<Value>,
    #[serde(default)]
    order: Option<Value>,
    #[serde(default)]
    location: Option<Value>,
}

#[derive(Deserialize)]
struct StatusHead {
    id: String,
    status: String,
    #[serde(default)]
    timestamp: Option<Timestamp>,
    #[serde(default)]
    recipient_id: Option<String>,
    #[serde(default)]
    errors: Option<Value>,
    #[serde(default)]
    biz_opaque_callback_data: Option<String>,
    #[serde(default)]
    recipient_participant_id: Option<String>,
}

/// Meta sends timestamps as strings of Unix seconds; tolerate numbers too.
#[derive(Deserialize)]
#[serde(untagged)]
enum Timestamp {
    Text(String),
    Number(i64),
}

impl Timestamp {
    fn seconds(&self) -> i64 {
        match self {
            Timestamp::Text(text) => text.trim().parse().unwrap_or(0),
            Timestamp::Number(number) => *number,
        }
    }
}

/// Parses a notification body. Fails only when the body is not JSON; JSON that
/// is not a WhatsApp Business Account notification (another `object`, an array,
/// a string) is kept whole as one raw event, and unreadable parts as raw events.
pub fn parse(body: &[u8]) -> Result<Notification, ParseError> {
    let mut out = Notification::default();
    let envelope = match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => envelope,
        Err(not_an_object) => {
            // Valid JSON of another shape (an array, a string...) is kept raw.
            serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|_| not_an_object)?;
            out.events
                .push(raw_event(None, "invalid_notification", body_text(body)));
            return Ok(out);
        }
    };
    let is_waba = envelope
        .object
        .is_some_and(|object| object.get() == WABA_OBJECT);
    let entries = match envelope
        .entry
        .filter(|_| is_waba)
        .map(|raw| serde_json::from_str::<Vec<&RawValue>>(raw.get()))
    {
        Some(Ok(entries)) => entries,
        _ => {
            out.events
                .push(raw_event(None, "invalid_notification", body_text(body)));
            return Ok(out);
        }
    };
    for entry in entries {
        match serde_json::from_str::<Entry>(entry.get()) {
            Ok(entry) => entry
                .changes
                .into_iter()
                .for_each(|change| read_change(change, &mut out)),
            Err(_) => out
                .events
                .push(raw_event(None, "invalid_entry", entry.get().to_owned())),
        }
    }
    Ok(out)
}

fn body_text(body: &[u8]) -> String {
    String::from_utf8_lossy(body).into_owned()
}

fn raw_event(phone_number_id: Option<&str>, kind: &str, raw: String) -> RawEvent {
    RawEvent {
        phone_number_id: phone_number_id.map(str::to_owned),
        kind: kind.to_owned(),
        raw,
    }
}

fn read_change(change: &RawValue, out: &mut Notification) {
    let parsed = match serde_json::from_str::<Change>(change.get()) {
        Ok(parsed) => parsed,
        Err(_) => {
            return out
                .events
                .push(raw_event(None, "invalid_change", change.get().to_owned()))
        }
    };
    let field = parsed.field.as_deref().unwrap_or("unknown");
    let value = match (field, parsed.value) {
        ("messages", Some(value)) => value,
        (_, value) => {
            let phone_number_id = value.and_then(phone_number_of);
            return out.events.push(raw_event(
                phone_number_id.as_deref(),
                field,
                change.get().to_owned(),
            ));
        }
    };
    let value_raw = value;
    let value = match serde_json::from_str::<ChangeValue>(value_raw.get()) {
        Ok(value) => value,
        Err(_) => {
            return out
                .events
                .push(raw_event(None, "invalid_value", change.get().to_owned()))
        }
    };
    let phone_number_id = value
        .metadata
        .and_then(|m| m.phone_number_id)
        .unwrap_or_default();
    let (contacts, contacts_unindexed) = read_contacts(value.contacts);
    if value.unindexed || contacts_unindexed {
        out.events.push(raw_event(
            Some(&phone_number_id),
            UNINDEXED_VALUE,
            value_raw.get().to_owned(),
        ));
    }
    for message in value.messages.unwrap_or_default() {
        match read_message(&phone_number_id, &contacts, message) {
            Some(message) => out.messages.push(message),
            None => out.events.push(raw_event(
                Some(&phone_number_id),
                "invalid_message",
                message.get().to_owned(),
            )),
        }
    }
    for status in value.statuses.unwrap_or_default() {
        match read_status(&phone_number_id, status) {
            Some(status) => out.statuses.push(status),
            None => out.events.push(raw_event(
                Some(&phone_number_id),
                "invalid_status",
                status.get().to_owned(),
            )),
        }
    }
    for error in value.errors.unwrap_or_default() {
        out.events.push(raw_event(
            Some(&phone_number_id),
            "errors",
            error.get().to_owned(),
        ));
    }
}

/// The business number a change's value names (`metadata.phone_number_id`).
fn phone_number_of(value: &RawValue) -> Option<String> {
    #[derive(Deserialize)]
    struct WithMetadata {
        #[serde(default)]
        metadata: Option<Metadata>,
    }
    let value: WithMetadata = serde_json::from_str(value.get()).ok()?;
    value.metadata?.phone_number_id
}

fn read_message(
    phone_number_id: &str,
    contacts: &[Contact],
    raw: &RawValue,
) -> Option<InboundMessage> {
    let head: MessageHead = serde_json::from_str(raw.get()).ok()?;
    if head.id.is_empty() {
        return None;
    }
    let non_empty = |id: &Option<String>| id.clone().filter(|id| !id.is_empty());
    let from = non_empty(&head.from).or_else(|| non_empty(&head.from_user_id))?;
    let contact_name = sender_contact(contacts, &from, head.from_user_id.as_deref())
        .and_then(|contact| contact.name.clone());
    let message_type = head
        .message_type
        .clone()
        .unwrap_or_else(|| "unknown".into());
    let media = [
        &head.image,
        &head.video,
        &head.audio,
        &head.document,
        &head.sticker,
    ]
    .into_iter()
    .find_map(|m| m.clone());
    Some(InboundMessage {
        phone_number_id: phone_number_id.to_owned(),
        text: display_text(&head),
        reply_id: reply_id(&head),
        timestamp: head.timestamp.as_ref().map_or(0, Timestamp::seconds),
        wamid: head.id,
        from,
        contact_name,
        message_type,
        media,
        context: head.context,
        raw: raw.get().to_owned(),
        group_id: head.group_id.filter(|id| !id.is_empty()),
    })
}

/// The contact of a message's sender: the one whose `wa_id` or `user_id` is the
/// sender's; failing that (Meta's `wa_id` and `from` can differ in format for
/// some countries) the value's only contact, never one of several.
fn sender_contact<'c>(
    contacts: &'c [Contact],
    from: &str,
    from_user_id: Option<&str>,
) -> Option<&'c Contact> {
    let is_sender = |contact: &&Contact| {
        contact.wa_id.as_deref() == Some(from)
            || (contact.user_id.is_some() && contact.user_id.as_deref() == from_user_id)
    };
    match contacts {
        [only] => Some(only),
        several => several.iter().find(is_sender),
    }
}

/// What an inbox would show for the message.
fn display_text(head: &MessageHead) -> Option<String> {
    let field = |value: &Option<Value>, key: &str| {
        value
            .as_ref()
            .and_then(|v| v.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    field(&head.text, "body")
        .or_else(|| {
            [&head.image, &head.video, &head.document, &head.audio]
                .into_iter()
                .find_map(|media| field(media, "caption"))
        })
        .or_else(|| interactive_title(head.interactive.as_ref()?))
        .or_else(|| field(&head.button, "text"))
        .or_else(|| field(&head.reaction, "emoji"))
        .or_else(|| field(&head.system, "body"))
        .or_else(|| field(&head.order, "text"))
        .or_else(|| field(&head.location, "name"))
        .filter(|text| !text.is_empty())
}

/// The id a customer's tap carries: a button or list reply id, or a quick-reply payload.
fn reply_id(head: &MessageHead) -> Option<String> {
    let interactive = head.interactive.as_ref().and_then(|interactive| {
        let kind = interactive.get("type")?.as_str()?;
        interactive.get(kind)?.get("id")?.as_str()
    });
    let payload = || head.button.as_ref()?.get("payload")?.as_str();
    interactive.or_else(payload).map(str::to_owned)
}

fn interactive_title(interactive: &Value) -> Option<String> {
    let kind = interactive.get("type")?.as_str()?;
    let reply = interactive.get(kind)?;
    reply
        .get("title")
        .or_else(|| reply.get("body"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn read_status(phone_number_id: &str, raw: &RawValue) -> Option<StatusUpdate> {
    let head: StatusHead = serde_json::from_str(raw.get()).ok()?;
    if head.id.is_empty() || head.status.is_empty() {
        return None;
    }
    Some(StatusUpdate {
        phone_number_id: phone_number_id.to_owned(),
        timestamp: head.timestamp.as_ref().map_or(0, Timestamp::seconds),
        wamid: head.id,
        status: head.status.to_ascii_lowercase(),
        recipient_id: head.recipient_id,
        errors: head.errors,
        callback_data: head.biz_opaque_callback_data,
        participant: head.recipient_participant_id.filter(|id| !id.is_empty()),
        raw: raw.get().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builders;

    #[test]
    fn reads_every_entry_change_and_item() {
        let mut body = builders::messages_notification(
            "111",
            "5511",
            "Ana",
            vec![
                builders::text_message("5511", "wamid.A", 10, "hello"),
                builders::interactive_reply(
                    "5511",
                    "wamid.B",
                    11,
                    "button_reply",
                    "yes",
                    "Yes",
                    Some("wamid.X"),
                ),
            ],
        );
        let statuses = builders::statuses_notification(
            "222",
            vec![builders::status("wamid.S", "5511", "read", 12, None)],
        );
        body["entry"]
            .as_array_mut()
            .unwrap()
            .push(statuses["entry"][0].clone());
        body["entry"][0]["changes"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"field": "calls", "value": {"calls": []}}));
        let parsed = parse(body.to_string().as_bytes()).unwrap();
        assert_eq!(parsed.messages.len(), 2);
        assert_eq!(parsed.messages[0].text.as_deref(), Some("hello"));
        assert_eq!(parsed.messages[0].contact_name.as_deref(), Some("Ana"));
        assert_eq!(parsed.messages[1].text.as_deref(), Some("Yes"));
        assert_eq!(
            parsed.messages[1].context.as_ref().unwrap()["id"],
            "wamid.X"
        );
        assert_eq!(parsed.statuses.len(), 1);
        assert_eq!(parsed.statuses[0].phone_number_id, "222");
        assert_eq!(parsed.statuses[0].timestamp, 12);
        assert_eq!(parsed.events.len(), 1);
        assert_eq!(parsed.events[0].kind, "calls");
    }

    /// A notification with one `messages` change whose value is `value`.
    fn with_value(value: serde_json::Value) -> Notification {
        let body = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{"changes": [{"field": "messages", "value": value}]}],
        });
        parse(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn a_sender_without_a_phone_number_is_stored_by_user_id() {
        let parsed = with_value(serde_json::json!({
            "metadata": {"phone_number_id": "111"},
            "contacts": [{"user_id": "US.1", "profile": {"name": "Ana", "username": "@ana"}}],
            "messages": [{"from_user_id": "US.1", "id": "wamid.U", "timestamp": "10",
                          "type": "text", "text": {"body": "hi"}}],
        }));
        assert_eq!(parsed.messages.len(), 1, "{:?}", parsed.events);
        assert_eq!(parsed.messages[0].from, "US.1");
        assert_eq!(parsed.messages[0].contact_name.as_deref(), Some("Ana"));
        let kinds: Vec<_> = parsed.events.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds, [UNINDEXED_VALUE], "the username is kept");
    }

    #[test]
    fn a_message_with_neither_sender_id_is_kept_raw() {
        let parsed = with_value(serde_json::json!({
            "messages": [{"id": "wamid.N", "timestamp": "10", "type": "text"}],
        }));
        assert!(parsed.messages.is_empty());
        assert_eq!(parsed.events[0].kind, "invalid_message");
    }

    #[test]
    fn a_name_comes_from_the_senders_contact_never_from_another() {
        let message = |from: &str| serde_json::json!({"from": from, "id": format!("wamid.{from}"), "timestamp": "1", "type": "text"});
        let parsed = with_value(serde_json::json!({
            "contacts": [{"wa_id": "A", "profile": {"name": "Ana"}},
                         {"wa_id": "B", "profile": {"name": "Bia"}}],
            "messages": [message("B"), message("C")],
        }));
        let names: Vec<_> = parsed
            .messages
            .iter()
            .map(|m| m.contact_name.as_deref())
            .collect();
        assert_eq!(names, [Some("Bia"), None]);
        let only = with_value(serde_json::json!({
            "contacts": [{"wa_id": "5511999990000", "profile": {"name": "Ana"}}],
            "messages": [message("551199990000")],
        }));
        assert_eq!(
            only.messages[0].contact_name.as_deref(),
            Some("Ana"),
            "a lone contact is the sender's"
        );
    }

    #[test]
    fn a_value_is_kept_verbatim_only_when_it_has_unindexed_fields() {
        let plain = with_value(serde_json::json!({
            "messaging_product": "whatsapp",
            "metadata": {"phone_number_id": "111"},
            "contacts": [{"wa_id": "A", "profile": {"name": "Ana"}}],
            "messages": [], "statuses": null,
        }));
        assert!(plain.events.is_empty(), "{:?}", plain.events);
        let value = serde_json::json!({
            "metadata": {"phone_number_id": "111"},
            "x_trace_id": "t-1",
            "messages": [],
        });
        let extended = with_value(value.clone());
        assert_eq!(extended.events.len(), 1);
        assert_eq!(extended.events[0].kind, UNINDEXED_VALUE);
        assert_eq!(extended.events[0].phone_number_id.as_deref(), Some("111"));
        let kept: serde_json::Value = serde_json::from_str(&extended.events[0].raw).unwrap();
        assert_eq!(kept, value);
        let odd_contacts = with_value(serde_json::json!({
            "contacts": "not a list",
            "messages": [{"from": "A", "id": "wamid.A", "timestamp": "1", "type": "text"}],
        }));
        assert_eq!(
            odd_contacts.messages.len(),
            1,
            "the messages are still read"
        );
        assert_eq!(odd_contacts.events[0].kind, UNINDEXED_VALUE);
    }

    #[test]
    fn a_group_message_belongs_to_the_groups_conversation() {
        let parsed = with_value(serde_json::json!({
            "contacts": [{"wa_id": "5511", "profile": {"name": "Ana"}}],
            "messages": [{"from": "5511", "group_id": "Y2FwaV9ncm91cDox", "id": "wamid.G",
                          "timestamp": "1", "type": "text", "text": {"body": "oi"}}],
        }));
        let message = &parsed.messages[0];
        assert_eq!(message.from, "5511");
        assert_eq!(message.contact_name.as_deref(), Some("Ana"));
        assert_eq!(message.conversation_wa_id(), "Y2FwaV9ncm91cDox");
        assert_eq!(message.conversation_name(), None);
    }

    #[test]
    fn a_change_of_another_field_keeps_its_business_number() {
        let body = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{"changes": [
                {"field": "calls", "value": {"metadata": {"phone_number_id": "111"}, "calls": []}},
                {"field": "account_update", "value": {"event": "X"}},
            ]}],
        });
        let parsed = parse(body.to_string().as_bytes()).unwrap();
        let numbers: Vec<_> = parsed
            .events
            .iter()
            .map(|e| e.phone_number_id.as_deref())
            .collect();
        assert_eq!(numbers, [Some("111"), None]);
    }

    #[test]
    fn keeps_odd_json_raw_and_refuses_non_json() {
        assert!(parse(b"not json").is_err());
        let odd = parse(br#"{"object":"page","entry":5}"#).unwrap();
        assert_eq!(odd.events.len(), 1);
        for other_json in [&b"[1,2]"[..], b"\"hello\"", b"42", b"null"] {
            let kept = parse(other_json).unwrap();
            assert_eq!(kept.events[0].kind, "invalid_notification");
        }
        let bad_message = parse(
            br#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[{"id":7}]}}]}]}"#,
        )
        .unwrap();
        assert_eq!(bad_message.events[0].kind, "invalid_message");
    }
}
