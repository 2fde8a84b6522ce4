//! Serializes this process's transactions that would contend for the same
//! documents, before they reach Firestore.
//!
//! Two transactions that read a document and then write it deadlock on its
//! lock upgrade; Firestore resolves that by aborting one (the emulator only
//! after a 2 s lock timeout, production at once or, in optimistic mode, at
//! commit), and the loser runs again. Within one process that contention is
//! avoidable: each operation first takes local locks named after what it will
//! write (a conversation, an ordering key, a wamid, a message, a topic's
//! claims), so same-process writers of one document queue here instead.
//! Firestore's own locking still keeps writers in different processes correct.

use std::hash::{DefaultHasher, Hash, Hasher};

use tokio::sync::{Mutex, MutexGuard};

/// Lock stripes: names hash onto these, so memory stays fixed.
const STRIPES: usize = 1024;

/// Striped async locks, taken in stripe order (so never in a deadlock).
pub(crate) struct LocalLocks {
    stripes: Vec<Mutex<()>>,
}

/// The locks one operation holds; released when dropped.
pub(crate) struct Held<'a> {
    _guards: Vec<MutexGuard<'a, ()>>,
}

impl LocalLocks {
    pub(crate) fn new() -> LocalLocks {
        LocalLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    /// Waits for every named lock.
    pub(crate) async fn lock<'n>(&self, names: impl IntoIterator<Item = Name<'n>>) -> Held<'_> {
        let mut stripes: Vec<usize> = names.into_iter().map(|name| name.stripe()).collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            guards.push(self.stripes[stripe].lock().await);
        }
        Held { _guards: guards }
    }
}

/// What an operation is about to write.
#[derive(Hash)]
pub(crate) enum Name<'a> {
    /// A conversation document (and so the 24-hour window).
    Conversation { pnid: &'a str, wa_id: &'a str },
    /// An ordering key's state and head events.
    OrderingKey { topic: &'a str, key: &'a str },
    /// A wamid's look-up document and its message.
    Wamid(&'a str),
    /// A message by zapfn id.
    Message(&'a str),
    /// An idempotency key's look-up document.
    IdempotencyKey(&'a str),
    /// The claims of one topic.
    Claims(&'a str),
    /// An outbox event.
    Event(&'a str),
}

impl Name<'_> {
    fn stripe(&self) -> usize {
        let mut hasher = DefaultHasher::new();
        self.hash(&mut hasher);
        (hasher.finish() % STRIPES as u64) as usize
    }
}
