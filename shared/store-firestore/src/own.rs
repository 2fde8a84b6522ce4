//! The outbox events one store handle (one process) is responsible for: those
//! it published, leased, or made the head of their ordering key. A relay
//! leases them by id ([`crate::FirestoreStore`]'s `claim_own`), so relays of
//! different processes never query for, and contend on, the same heads; an
//! empty set costs no request at all.
//!
//! Only ids and due times are kept, at most [`MAX_PER_TOPIC`] per topic; an
//! event left out (over that bound, or after a restart) is still in the
//! outbox, where the relay sweep (`claim_idle`) finds it.

use std::collections::HashMap;
use std::sync::Mutex;

/// Events remembered per topic.
pub(crate) const MAX_PER_TOPIC: usize = 10_000;

/// A change to the set, applied once the transaction that caused it committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OwnChange {
    /// The event is this handle's to forward once `due_ms` has passed.
    Remember {
        topic: String,
        id: String,
        due_ms: i64,
    },
    /// The event is gone, or someone else's now.
    Forget { topic: String, id: String },
}

/// Event ids by topic, with the time each is due.
#[derive(Default)]
pub(crate) struct OwnEvents {
    topics: Mutex<HashMap<String, HashMap<String, i64>>>,
}

impl OwnEvents {
    /// Applies committed changes.
    pub(crate) fn apply(&self, changes: Vec<OwnChange>) {
        let Ok(mut topics) = self.topics.lock() else {
            return;
        };
        for change in changes {
            match change {
                OwnChange::Remember { topic, id, due_ms } => {
                    let events = topics.entry(topic).or_default();
                    if events.len() < MAX_PER_TOPIC || events.contains_key(&id) {
                        events.insert(id, due_ms);
                    }
                }
                OwnChange::Forget { topic, id } => {
                    if let Some(events) = topics.get_mut(&topic) {
                        events.remove(&id);
                    }
                }
            }
        }
    }

    /// Up to `limit` ids of `topic` due at `now_ms`, earliest due first.
    pub(crate) fn due(&self, topic: &str, now_ms: i64, limit: usize) -> Vec<String> {
        let Ok(topics) = self.topics.lock() else {
            return Vec::new();
        };
        let Some(events) = topics.get(topic) else {
            return Vec::new();
        };
        let mut due: Vec<(i64, &String)> = events
            .iter()
            .filter(|(_, due_ms)| **due_ms <= now_ms)
            .map(|(id, due_ms)| (*due_ms, id))
            .collect();
        due.sort_unstable();
        due.into_iter()
            .take(limit)
            .map(|(_, id)| id.clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remember(id: &str, due_ms: i64) -> OwnChange {
        OwnChange::Remember {
            topic: "messages".into(),
            id: id.into(),
            due_ms,
        }
    }

    #[test]
    fn due_events_come_earliest_first_and_forgotten_ones_never() {
        let own = OwnEvents::default();
        own.apply(vec![
            remember("b", 20),
            remember("a", 10),
            remember("c", 30),
        ]);
        assert_eq!(own.due("messages", 25, 10), ["a", "b"]);
        assert_eq!(own.due("messages", 25, 1), ["a"]);
        assert!(own.due("statuses", 25, 10).is_empty());
        own.apply(vec![
            OwnChange::Forget {
                topic: "messages".into(),
                id: "a".into(),
            },
            remember("b", 40),
        ]);
        assert_eq!(own.due("messages", 35, 10), ["c"]);
    }

    #[test]
    fn the_set_is_bounded_but_known_events_still_move() {
        let own = OwnEvents::default();
        own.apply(
            (0..MAX_PER_TOPIC + 5)
                .map(|n| remember(&format!("e{n}"), 0))
                .collect(),
        );
        assert_eq!(own.due("messages", 0, usize::MAX).len(), MAX_PER_TOPIC);
        own.apply(vec![remember("e0", 50)]);
        assert!(!own
            .due("messages", 0, usize::MAX)
            .contains(&"e0".to_owned()));
        assert!(own
            .due("messages", 50, usize::MAX)
            .contains(&"e0".to_owned()));
    }
}
