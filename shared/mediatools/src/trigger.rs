//! What starts a processor: a `media` event (a [`MediaStored`], from the
//! embedded outbox or Pub/Sub) or, deployed with Eventarc, Cloud Storage's
//! `object.finalized` event of the stored original, resolved to the same
//! [`MediaStored`] through the `media.object` record media-fetch wrote.
//!
//! Every object of the bucket raises such an event for every processor (Eventarc
//! filters Cloud Storage events by bucket only), so anything that is not an
//! original media-fetch recorded — a processor's own derived file, an original
//! overwritten or never recorded as done — is ignored without a download.

use serde_json::Value;
use zapfn_blob::media::original_of;
use zapfn_cloud::cloudevents::StorageObject;
use zapfn_store::{MediaStored, MessageView, Store};

/// What a delivery asks a processor to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Trigger {
    /// Process this stored original.
    Media(Box<MediaStored>),
    /// Nothing to do, and why.
    Ignore(String),
    /// Not yet: the object is stored but media-fetch's record is not (yet) done,
    /// or the store failed. Retried.
    Wait(String),
    /// Neither a `media` event nor a Cloud Storage object.
    Invalid(String),
}

/// Reads a delivery's payload: a `media` event as it is, a Cloud Storage object
/// through the message it is the original of.
pub async fn resolve(store: &dyn Store, payload: &Value) -> Trigger {
    let media_error = match serde_json::from_value::<MediaStored>(payload.clone()) {
        Ok(media) => return Trigger::Media(Box::new(media)),
        Err(error) => error,
    };
    let Ok(object) = serde_json::from_value::<StorageObject>(payload.clone()) else {
        return Trigger::Invalid(format!("not a media event: {media_error}"));
    };
    let Some((_, message_id)) = original_of(&object.name) else {
        return Trigger::Ignore(format!("{} is not an original", object.name));
    };
    match store.message(message_id).await {
        Ok(Some(message)) => recorded(message, &object.name),
        Ok(None) => Trigger::Ignore(format!("no message {message_id} (erased?)")),
        Err(error) => Trigger::Wait(format!("store: {error}")),
    }
}

/// The [`MediaStored`] of `message` when its recorded original is `name`.
fn recorded(message: MessageView, name: &str) -> Trigger {
    let object = message
        .media
        .as_ref()
        .map(|media| media["object"].clone())
        .unwrap_or_default();
    let text = |field: &str| object[field].as_str().map(str::to_owned);
    match object["status"].as_str() {
        Some("done") if object["key"] == name => {}
        Some("done") => {
            return Trigger::Ignore(format!("{name} is not the recorded original"));
        }
        Some("failed") => return Trigger::Ignore("media-fetch recorded a failure".into()),
        _ => return Trigger::Wait(format!("{name} is stored but not recorded yet")),
    }
    let (Some(message_type), Some(content_type), Some(sha256), Some(size)) = (
        message.message_type,
        text("content_type"),
        text("sha256"),
        object["size"].as_u64(),
    ) else {
        return Trigger::Invalid(format!("message {}: incomplete media record", message.id));
    };
    Trigger::Media(Box::new(MediaStored {
        wamid: message.wamid.unwrap_or_default(),
        phone_number_id: message.phone_number_id,
        from: message.from.unwrap_or_default(),
        message_type,
        key: name.to_owned(),
        content_type,
        sha256,
        size,
        filename: text("filename"),
        voice: object["voice"].as_bool().unwrap_or(false),
        group_id: message
            .raw
            .as_ref()
            .and_then(|raw| raw["group_id"].as_str())
            .map(str::to_owned),
        message_id: message.id,
    }))
}
