//! Several handlers of one topic in one process share its events, as Pub/Sub
//! subscriptions of a topic each get every message: the embedded outbox is one
//! queue per topic, so one consumer per topic runs every handler on each event
//! and settles with the most cautious outcome. Handlers are idempotent, so one
//! that already succeeded may run again when another asks for a retry.

use std::sync::Arc;
use std::time::Duration;

use zapfn_store::Settlement;

use crate::Subscription;

/// One subscription per topic; a topic with several handlers gets a combined one
/// (concurrency and lease: the largest asked for).
pub(crate) fn by_topic(subscriptions: Vec<Subscription>) -> Vec<Subscription> {
    let mut groups: Vec<Vec<Subscription>> = Vec::new();
    for subscription in subscriptions {
        match groups
            .iter_mut()
            .find(|group| group[0].topic == subscription.topic)
        {
            Some(group) => group.push(subscription),
            None => groups.push(vec![subscription]),
        }
    }
    groups.into_iter().map(combine_group).collect()
}

fn combine_group(mut group: Vec<Subscription>) -> Subscription {
    if group.len() == 1 {
        return group.remove(0);
    }
    let topic = group[0].topic;
    let concurrency = group.iter().map(|s| s.concurrency).max().unwrap_or(1);
    let lease = group.iter().map(|s| s.lease).max().unwrap_or_default();
    let handlers: Vec<_> = group.into_iter().map(|s| s.handler).collect();
    Subscription {
        topic,
        concurrency,
        lease,
        handler: Arc::new(move |delivery| {
            let runs: Vec<_> = handlers
                .iter()
                .map(|handler| handler(delivery.clone()))
                .collect();
            Box::pin(async move { combine(futures::future::join_all(runs).await) })
        }),
    }
}

/// The most cautious of several outcomes: a dead letter over a retry over a
/// deferral over an ack; delays are the longest asked for, errors are joined.
pub(crate) fn combine(settlements: Vec<Settlement>) -> Settlement {
    let rank = |s: &Settlement| match s {
        Settlement::Ack => 0,
        Settlement::Defer { .. } => 1,
        Settlement::Retry { .. } => 2,
        Settlement::DeadLetter { .. } => 3,
    };
    let worst = settlements.iter().map(rank).max().unwrap_or(0);
    let after = settlements
        .iter()
        .filter_map(|s| match s {
            Settlement::Retry { after, .. } | Settlement::Defer { after } => Some(*after),
            _ => None,
        })
        .max()
        .unwrap_or(Duration::ZERO);
    let errors = || {
        settlements
            .iter()
            .filter_map(|s| match s {
                Settlement::Retry { error, .. } | Settlement::DeadLetter { error } => {
                    Some(error.as_str())
                }
                _ => None,
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    match worst {
        0 => Settlement::Ack,
        1 => Settlement::Defer { after },
        2 => Settlement::Retry {
            after,
            error: errors(),
        },
        _ => Settlement::DeadLetter { error: errors() },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use zapfn_store::Delivery;

    fn retry(ms: u64, error: &str) -> Settlement {
        Settlement::Retry {
            after: Duration::from_millis(ms),
            error: error.into(),
        }
    }

    #[test]
    fn the_most_cautious_outcome_wins() {
        assert_eq!(
            combine(vec![Settlement::Ack, Settlement::Ack]),
            Settlement::Ack
        );
        let defer = Settlement::Defer {
            after: Duration::from_millis(300),
        };
        assert_eq!(combine(vec![Settlement::Ack, defer.clone()]), defer);
        assert_eq!(
            combine(vec![
                defer,
                retry(100, "a"),
                Settlement::Ack,
                retry(50, "b")
            ]),
            retry(300, "a; b")
        );
        assert_eq!(
            combine(vec![
                retry(100, "a"),
                Settlement::DeadLetter {
                    error: "bad".into()
                }
            ]),
            Settlement::DeadLetter {
                error: "a; bad".into()
            }
        );
    }

    #[tokio::test]
    async fn every_handler_of_a_topic_sees_each_event() {
        let calls = Arc::new(AtomicUsize::new(0));
        let subscription = |topic: &'static str, outcome: Settlement| {
            let calls = calls.clone();
            Subscription::new(topic, 2, move |_| {
                calls.fetch_add(1, Ordering::SeqCst);
                let outcome = outcome.clone();
                async move { outcome }
            })
        };
        let merged = by_topic(vec![
            subscription("messages", Settlement::Ack),
            subscription("statuses", Settlement::Ack),
            subscription("messages", retry(10, "later")),
        ]);
        assert_eq!(merged.len(), 2);
        let messages = merged.iter().find(|s| s.topic == "messages").unwrap();
        let delivery = Delivery {
            id: "1".into(),
            topic: "messages".into(),
            ordering_key: None,
            payload: serde_json::json!({}),
            attempt: 1,
            first_attempt_at_ms: 0,
            lease_until_ms: 0,
        };
        assert_eq!((messages.handler)(delivery).await, retry(10, "later"));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
