//! Builders for Meta-shaped webhook notifications: used by the Graph API
//! sandbox, `zapfn simulate`/`replay` and tests.

use rand::Rng;
use serde_json::{json, Value};

/// A fresh wamid shaped like Meta's (`wamid.` + base64-ish id).
pub fn new_wamid() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::thread_rng();
    let tail: String = (0..48)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect();
    format!("wamid.HBgM{tail}")
}

/// Wraps one `value` object (with `metadata` filled in) into a whole notification.
pub fn notification(phone_number_id: &str, display_phone_number: &str, mut value: Value) -> Value {
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] = json!({
        "display_phone_number": display_phone_number,
        "phone_number_id": phone_number_id,
    });
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "102290129340398",
            "changes": [{ "field": "messages", "value": value }]
        }]
    })
}

/// A notification carrying inbound `messages` from one customer.
pub fn messages_notification(
    phone_number_id: &str,
    customer_wa_id: &str,
    customer_name: &str,
    messages: Vec<Value>,
) -> Value {
    notification(
        phone_number_id,
        "15550000000",
        json!({
            "contacts": [{ "profile": { "name": customer_name }, "wa_id": customer_wa_id }],
            "messages": messages,
        }),
    )
}

/// A notification carrying `statuses`.
pub fn statuses_notification(phone_number_id: &str, statuses: Vec<Value>) -> Value {
    notification(
        phone_number_id,
        "15550000000",
        json!({ "statuses": statuses }),
    )
}

/// An inbound text message object.
pub fn text_message(from: &str, wamid: &str, timestamp: i64, body: &str) -> Value {
    json!({
        "from": from,
        "id": wamid,
        "timestamp": timestamp.to_string(),
        "type": "text",
        "text": { "body": body }
    })
}

/// An inbound reply to reply buttons (`button_reply`) or a list (`list_reply`).
pub fn interactive_reply(
    from: &str,
    wamid: &str,
    timestamp: i64,
    reply_type: &str,
    id: &str,
    title: &str,
    context_wamid: Option<&str>,
) -> Value {
    let mut message = json!({
        "from": from,
        "id": wamid,
        "timestamp": timestamp.to_string(),
        "type": "interactive",
        "interactive": { "type": reply_type, reply_type: { "id": id, "title": title } }
    });
    if let Some(context) = context_wamid {
        message["context"] = json!({ "from": "15550000000", "id": context });
    }
    message
}

/// A status object (`sent`, `delivered`, `read`, `failed`).
pub fn status(
    wamid: &str,
    recipient_id: &str,
    status: &str,
    timestamp: i64,
    errors: Option<Value>,
) -> Value {
    let mut object = json!({
        "id": wamid,
        "status": status,
        "timestamp": timestamp.to_string(),
        "recipient_id": recipient_id,
    });
    if status == "sent" {
        object["pricing"] = json!({ "billable": true, "pricing_model": "PMP", "category": "service", "type": "free_customer_service" });
    }
    if let Some(errors) = errors {
        object["errors"] = errors;
    }
    object
}
