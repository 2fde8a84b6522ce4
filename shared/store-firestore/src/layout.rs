//! Where each document lives, and the ids that name them.
//!
//! Ids never hot-spot: message ids and unkeyed event ids are random, lookup
//! documents are named by a hash of what they look up, and a conversation's id
//! is a hash of its (business number, customer) pair. Message and conversation
//! ids end with their (encoded) business number, so a read by id finds the
//! document's partition without a look-up.

use sha2::{Digest, Sha256};

/// Collection names, as they appear in paths and in `indexes.json`.
pub mod collections {
    pub const PHONE_NUMBERS: &str = "phone_numbers";
    pub const MESSAGES: &str = "messages";
    pub const CONVERSATIONS: &str = "conversations";
    pub const STATUS_EVENTS: &str = "status_events";
    pub const WAMIDS: &str = "wamids";
    pub const IDEMPOTENCY_KEYS: &str = "idempotency_keys";
    pub const RAW_EVENTS: &str = "raw_events";
    pub const OUTBOX: &str = "outbox";
    pub const ORDERING_KEYS: &str = "outbox_keys";
    pub const DEAD_LETTERS: &str = "dead_letters";
    pub const TOPICS: &str = "topics";
    pub const API_KEYS: &str = "api_keys";
    pub const AUDIT_LOG: &str = "audit_log";
}

use collections::*;

/// The id of the document under the prefix collection that holds everything.
const ROOT_DOCUMENT: &str = "v1";
/// Hex digits of a random or hashed id part (128 bits).
const ID_HEX: usize = 32;

/// A document: its parent path, collection and id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct DocRef {
    pub parent: String,
    pub collection: &'static str,
    pub id: String,
}

impl DocRef {
    /// The full resource name (`projects/…/documents/…/{collection}/{id}`).
    pub fn name(&self) -> String {
        format!("{}/{}/{}", self.parent, self.collection, self.id)
    }
}

/// The paths of one store: everything lives under `{prefix}/v1`.
#[derive(Debug, Clone)]
pub(crate) struct Layout {
    documents: String,
    prefix: String,
    root: String,
}

impl Layout {
    /// `documents_path` is the database's (`projects/{p}/databases/{d}/documents`).
    pub fn new(documents_path: &str, prefix: &str) -> Layout {
        Layout {
            documents: documents_path.to_owned(),
            prefix: prefix.to_owned(),
            root: format!("{documents_path}/{prefix}/{ROOT_DOCUMENT}"),
        }
    }

    /// The database's documents path: the parent of collection-group queries
    /// (the emulator runs them nowhere else), which filter on [`Layout::prefix`].
    pub fn documents(&self) -> &str {
        &self.documents
    }

    /// The store's prefix, kept in documents that collection-group queries find.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The root document: the parent of the store-wide collections.
    pub fn root(&self) -> &str {
        &self.root
    }

    /// The partition document of a business number (its encoded id, see [`segment`]).
    pub fn partition(&self, encoded_pnid: &str) -> String {
        format!("{}/{PHONE_NUMBERS}/{encoded_pnid}", self.root)
    }

    fn in_partition(&self, encoded_pnid: &str, collection: &'static str, id: String) -> DocRef {
        DocRef {
            parent: self.partition(encoded_pnid),
            collection,
            id,
        }
    }

    fn at_root(&self, collection: &'static str, id: String) -> DocRef {
        DocRef {
            parent: self.root.clone(),
            collection,
            id,
        }
    }

    /// A new message of business number `pnid`: its id and document.
    pub fn new_message(&self, pnid: &str) -> (String, DocRef) {
        let encoded = segment(pnid);
        let id = format!("msg_{}_{encoded}", random_hex());
        (id.clone(), self.in_partition(&encoded, MESSAGES, id))
    }

    /// The document of message `id`; None for an id this store never gives out.
    pub fn message(&self, id: &str) -> Option<DocRef> {
        let encoded = partition_of(id, "msg_")?;
        Some(self.in_partition(encoded, MESSAGES, id.to_owned()))
    }

    /// The conversation of (`pnid`, `wa_id`); its id is derived from the pair,
    /// which makes the pair unique without a look-up document.
    pub fn conversation_for(&self, pnid: &str, wa_id: &str) -> DocRef {
        let encoded = segment(pnid);
        let id = format!("conv_{}_{encoded}", hash(&[pnid, wa_id]));
        self.in_partition(&encoded, CONVERSATIONS, id)
    }

    /// The document of conversation `id`; None for an id this store never gives out.
    pub fn conversation(&self, id: &str) -> Option<DocRef> {
        let encoded = partition_of(id, "conv_")?;
        Some(self.in_partition(encoded, CONVERSATIONS, id.to_owned()))
    }

    /// The messages collection of the partition that conversation `id` is in.
    pub fn messages_of_conversation(&self, id: &str) -> Option<String> {
        partition_of(id, "conv_").map(|encoded| self.partition(encoded))
    }

    /// The status event (`subject`, `status`, group member if any) of business
    /// number `pnid`; its id makes them unique. `subject` is a wamid, or a zapfn
    /// id before the message has one.
    pub fn status_event(
        &self,
        pnid: &str,
        subject: &str,
        status: &str,
        participant: Option<&str>,
    ) -> DocRef {
        let id = match participant {
            None => hash(&[subject, status]),
            Some(participant) => hash(&[subject, status, participant]),
        };
        self.in_partition(&segment(pnid), STATUS_EVENTS, id)
    }

    /// The status events collection (parent path) of business number `pnid`.
    pub fn status_events_parent(&self, pnid: &str) -> String {
        self.partition(&segment(pnid))
    }

    /// The look-up document that makes a wamid unique and finds its message.
    pub fn wamid(&self, wamid: &str) -> DocRef {
        self.at_root(WAMIDS, hash(&[wamid]))
    }

    /// The look-up document that makes an idempotency key unique.
    pub fn idempotency_key(&self, key: &str) -> DocRef {
        self.at_root(IDEMPOTENCY_KEYS, hash(&[key]))
    }

    /// A new raw webhook event.
    pub fn new_raw_event(&self) -> DocRef {
        self.at_root(RAW_EVENTS, random_hex())
    }

    /// A raw webhook event by id.
    pub fn raw_event(&self, id: &str) -> DocRef {
        self.at_root(RAW_EVENTS, id.to_owned())
    }

    /// An outbox event by id; None for an id this store never gives out.
    pub fn event(&self, id: &str) -> Option<DocRef> {
        let valid = id.starts_with("evt_")
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        valid.then(|| self.at_root(OUTBOX, id.to_owned()))
    }

    /// The state of one ordering key of one topic (its sequence numbers).
    pub fn ordering_key(&self, topic: &str, key: &str) -> DocRef {
        self.at_root(ORDERING_KEYS, hash(&[topic, key]))
    }

    /// A dead letter (named like the outbox event it was, or new).
    pub fn dead_letter(&self, id: &str) -> DocRef {
        self.at_root(DEAD_LETTERS, id.to_owned())
    }

    /// The registry entry of a topic (`queue_depths` lists topics from it).
    pub fn topic(&self, topic: &str) -> DocRef {
        self.at_root(TOPICS, segment(topic))
    }

    /// An API key by its hash.
    pub fn api_key(&self, key_hash: &str) -> DocRef {
        self.at_root(API_KEYS, segment(key_hash))
    }

    /// A new audit log entry.
    pub fn new_audit_entry(&self) -> DocRef {
        self.at_root(AUDIT_LOG, random_hex())
    }
}

/// Id of an event without ordering key. Events published in one transaction
/// share a random stem and count up, so that their ties on `due_at_ms` break
/// in publish order.
pub(crate) fn unkeyed_event_id(stem: &str, n: usize) -> String {
    format!("evt_{stem}_{n:04}")
}

/// Id of event `seq` of an ordering key (`key_id`: its document id) in one
/// generation of that key's state document.
pub(crate) fn keyed_event_id(key_id: &str, generation: &str, seq: i64) -> String {
    format!("evt_{key_id}_{generation}_{seq:010}")
}

/// 128 random bits as hex.
pub(crate) fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// 128 bits of SHA-256 over length-prefixed parts (so `("ab","c")` ≠ `("a","bc")`).
fn hash(parts: &[&str]) -> String {
    let mut digest = Sha256::new();
    for part in parts {
        digest.update((part.len() as u64).to_be_bytes());
        digest.update(part.as_bytes());
    }
    hex::encode(digest.finalize())[..ID_HEX].to_owned()
}

/// A string as a document-id-safe path segment: short ASCII letters, digits and
/// `-` stay as they are (Meta's phone number ids are digits); anything else
/// becomes `~` and a hash, which no kept string can look like.
pub(crate) fn segment(value: &str) -> String {
    let plain = (1..=100).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if plain {
        value.to_owned()
    } else {
        format!("~{}", hash(&[value]))
    }
}

/// The encoded business number at the end of `{prefix}{32 hex}_{segment}`.
fn partition_of<'a>(id: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = id.strip_prefix(prefix)?;
    let (random, encoded) = rest.split_at_checked(ID_HEX)?;
    let encoded = encoded.strip_prefix('_')?;
    let random_ok = random.bytes().all(|b| b.is_ascii_hexdigit());
    let encoded_ok = (1..=100).contains(&encoded.len())
        && match encoded.strip_prefix('~') {
            Some(hashed) => hashed.len() == ID_HEX && hashed.bytes().all(|b| b.is_ascii_hexdigit()),
            None => encoded
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-'),
        };
    (random_ok && encoded_ok).then_some(encoded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout::new("projects/p/databases/(default)/documents", "zapfn")
    }

    #[test]
    fn message_ids_find_their_partition() {
        let layout = layout();
        let (id, doc) = layout.new_message("106540352242922");
        assert!(id.starts_with("msg_") && id.ends_with("_106540352242922"));
        assert_eq!(layout.message(&id), Some(doc.clone()));
        assert_eq!(
            doc.name(),
            format!("projects/p/databases/(default)/documents/zapfn/v1/phone_numbers/106540352242922/messages/{id}")
        );
        for foreign in [
            "msg_unknown",
            "msg_1",
            "",
            "conv_x",
            &id.replace("msg_", "conv_"),
        ] {
            assert_eq!(layout.message(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn odd_business_numbers_are_encoded_not_trusted() {
        let layout = layout();
        for pnid in ["a/b", "..", "__x__", "", "x".repeat(300).as_str(), "ação"] {
            let (id, doc) = layout.new_message(pnid);
            assert!(
                !doc.id.contains('/') && !doc.parent.ends_with("/"),
                "{pnid}"
            );
            assert_eq!(layout.message(&id), Some(doc), "{pnid}");
        }
        assert_ne!(segment("a/b"), segment("a_b"));
    }

    #[test]
    fn conversations_are_one_per_pair() {
        let layout = layout();
        let a = layout.conversation_for("1", "55");
        assert_eq!(a, layout.conversation_for("1", "55"));
        assert_ne!(a, layout.conversation_for("15", "5"));
        assert_eq!(layout.conversation(&a.id), Some(a.clone()));
        assert_eq!(layout.conversation("conv_unknown"), None);
    }

    #[test]
    fn event_ids_are_checked() {
        let layout = layout();
        assert!(layout.event(&unkeyed_event_id(&random_hex(), 1)).is_some());
        assert!(layout.event("evt_a/b").is_none());
        assert!(layout.event("42").is_none());
    }
}
