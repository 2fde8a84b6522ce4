//! Reading a `messages` change's `value` while noticing what zapfn does not
//! index: unknown keys of the value, and contacts that carry more than `wa_id`
//! and `profile.name` (business-scoped user ids, usernames). Such a value is
//! kept whole as an [`UNINDEXED_VALUE`] raw event, so nothing Meta sent is lost.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::{ChangeValue, Contact, Metadata};

/// The raw-event kind of a change value kept verbatim for its unindexed fields.
pub const UNINDEXED_VALUE: &str = "unindexed_value";

/// The keys of a change value zapfn reads.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Key {
    MessagingProduct,
    Metadata,
    Contacts,
    Messages,
    Statuses,
    Errors,
    #[serde(other)]
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for ChangeValue<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ChangeValueVisitor(PhantomData))
    }
}

struct ChangeValueVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for ChangeValueVisitor<'a> {
    type Value = ChangeValue<'a>;

    fn expecting(&self, formatter: &mut fmt::Formatter) -> fmt::Result {
        formatter.write_str("a change value object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut value = ChangeValue::default();
        while let Some(key) = map.next_key::<Key>()? {
            match key {
                Key::MessagingProduct => drop(map.next_value::<IgnoredAny>()?),
                Key::Metadata => value.metadata = map.next_value::<Option<Metadata>>()?,
                Key::Contacts => value.contacts = map.next_value::<Option<&'de RawValue>>()?,
                Key::Messages => value.messages = map.next_value()?,
                Key::Statuses => value.statuses = map.next_value()?,
                Key::Errors => value.errors = map.next_value()?,
                Key::Other => {
                    map.next_value::<IgnoredAny>()?;
                    value.unindexed = true;
                }
            }
        }
        Ok(value)
    }
}

/// The contacts of a value, and whether any carries a field zapfn does not
/// index (or the list is not a list of objects, when none can be read).
pub(super) fn read_contacts(raw: Option<&RawValue>) -> (Vec<Contact>, bool) {
    let Some(raw) = raw else {
        return (Vec::new(), false);
    };
    let objects = match serde_json::from_str::<Option<Vec<Map<String, Value>>>>(raw.get()) {
        Ok(objects) => objects.unwrap_or_default(),
        Err(_) => return (Vec::new(), true),
    };
    let mut unindexed = false;
    let contacts = objects
        .iter()
        .map(|object| {
            unindexed |= has_unindexed_fields(object);
            let text = |value: Option<&Value>| value.and_then(Value::as_str).map(str::to_owned);
            let profile = object.get("profile");
            Contact {
                wa_id: text(object.get("wa_id")),
                user_id: text(object.get("user_id")),
                name: text(profile.and_then(|profile| profile.get("name"))),
            }
        })
        .collect();
    (contacts, unindexed)
}

/// Whether a contact has more than `wa_id` and a `profile` holding only `name`.
fn has_unindexed_fields(contact: &Map<String, Value>) -> bool {
    contact.iter().any(|(key, value)| match key.as_str() {
        "wa_id" => false,
        "profile" => match value {
            Value::Null => false,
            Value::Object(profile) => profile.keys().any(|key| key != "name"),
            _ => true,
        },
        _ => true,
    })
}
