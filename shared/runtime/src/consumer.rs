//! Embedded event consumers: lease events from the store's outbox, run the
//! subscribed handler, settle the outcome. At-least-once: an event whose handler
//! crashed or hung is delivered again when its lease runs out.
//!
//! A subscription's lease is the longest its handler may run. The store's lease
//! is at most `ZAPFN_STORE_LEASE_MS` (a minute) and renewed every third of it
//! while the handler runs, up to the subscription's: the events of a process
//! that died are delivered again within a minute, not after a whole run budget
//! (a dispatch's is ten minutes), while a slow run keeps its event.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch, Notify, Semaphore};
use tokio::task::JoinSet;
use zapfn_store::{Delivery, Store};

use crate::backends::StoreBackend;
use crate::relay::{Relay, INLINE_BUDGET};
use crate::{fan_out, Context, Subscription};

/// Longest sleep between looks at the outbox when no commit wakes us.
const IDLE_POLL: Duration = Duration::from_millis(200);
/// First and longest pause between attempts to settle a delivery.
const SETTLE_PAUSE: Duration = Duration::from_millis(100);
const MAX_SETTLE_PAUSE: Duration = Duration::from_secs(5);

/// Running consumers (and the outbox relay, if any); stop them with [`Consumers::shutdown`].
pub struct Consumers {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    relay: Option<tokio::task::JoinHandle<()>>,
}

/// Releases leases a dead process left behind, then starts one consumer loop per
/// subscription. Leases are released only in a store of this process's own
/// (SQLite), and there only while no other process consumes from the same file:
/// in a shared store other instances' leases are live.
pub async fn start(
    context: &Context,
    subscriptions: Vec<Subscription>,
) -> anyhow::Result<Consumers> {
    let own_store = context.config.backends.store == StoreBackend::Sqlite;
    if own_store && !subscriptions.is_empty() {
        let released = context.store.release_leases().await?;
        if released > 0 {
            tracing::warn!(
                released,
                "events leased by a previous run are delivered again"
            );
        }
    }
    let (stop, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let store_lease = context.config.store_lease;
    for subscription in fan_out::by_topic(subscriptions) {
        let store = context.store.clone();
        let published = context.published.clone();
        tasks.spawn(consume(
            store,
            published,
            subscription,
            store_lease,
            stopped.clone(),
        ));
    }
    Ok(Consumers {
        stop,
        tasks,
        relay: None,
    })
}

impl Consumers {
    /// The longest the relay's last flush takes at [`Consumers::shutdown`].
    pub const LAST_FLUSH: Duration = INLINE_BUDGET.saturating_add(Duration::from_secs(1));

    /// Also runs `relay`'s background loop, woken by `published`; it stops last,
    /// after a final flush of what the drained requests and handlers wrote.
    pub fn with_relay(mut self, relay: Arc<Relay>, published: Arc<Notify>) -> Consumers {
        self.relay = Some(relay.spawn(published, self.stop.subscribe()));
        self
    }

    /// Stops leasing new events and waits up to `grace` for handlers in flight,
    /// then for the relay's last flush.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.stop.send(true);
        let all = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(
                "event handlers still running at shutdown; their events will be redelivered"
            );
        }
        if let Some(relay) = self.relay {
            if tokio::time::timeout(Consumers::LAST_FLUSH, relay)
                .await
                .is_err()
            {
                tracing::warn!(
                    "relay still forwarding at shutdown; the next sweep forwards the rest"
                );
            }
        }
    }
}

async fn consume(
    store: Arc<dyn Store>,
    published: Arc<Notify>,
    subscription: Subscription,
    store_lease: Duration,
    mut stopped: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(subscription.concurrency));
    let mut in_flight = JoinSet::new();
    while !*stopped.borrow() {
        while in_flight.try_join_next().is_some() {}
        let free = permits.available_permits();
        if free == 0 {
            tokio::select! {
                _ = in_flight.join_next() => {}
                _ = stopped.changed() => {}
            }
            continue;
        }
        let notified = published.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match store
            .claim(
                subscription.topic,
                free,
                subscription.lease.min(store_lease),
            )
            .await
        {
            Ok(deliveries) if !deliveries.is_empty() => {
                for delivery in deliveries {
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    let (store, handler) = (store.clone(), subscription.handler.clone());
                    let lease = Lease {
                        budget: subscription.lease,
                        store: store_lease,
                    };
                    in_flight.spawn(async move {
                        run_one(store, &handler, delivery, lease).await;
                        drop(permit);
                    });
                }
            }
            Ok(_) => {
                // Look again when events are published, when a handler settles (the
                // next event of its ordering key may now be due), or after a while.
                tokio::select! {
                    _ = &mut notified => {}
                    _ = in_flight.join_next(), if !in_flight.is_empty() => {}
                    _ = tokio::time::sleep(IDLE_POLL) => {}
                    _ = stopped.changed() => {}
                }
            }
            Err(error) => {
                tracing::error!(topic = subscription.topic, %error, "could not lease events");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    while in_flight.join_next().await.is_some() {}
}

/// How long an event is leased.
#[derive(Debug, Clone, Copy)]
struct Lease {
    /// For as long as the handler may run (the subscription's lease).
    budget: Duration,
    /// The longest lease taken in the store at once.
    store: Duration,
}

/// Runs the handler on `leased` (whose lease is the store's, taken for the
/// budget or the store lease, the shorter), keeping the event leased for up to
/// the budget, then settles it.
async fn run_one(
    store: Arc<dyn Store>,
    handler: &crate::function::Handler,
    leased: Delivery,
    lease: Lease,
) {
    let claimed_at_ms = leased.lease_until_ms - as_ms(lease.budget.min(lease.store));
    // The handler sees the whole budget as its lease.
    let deadline_ms = claimed_at_ms + as_ms(lease.budget);
    let run = handler(Delivery {
        lease_until_ms: deadline_ms,
        ..leased.clone()
    });
    let (lease_until_ms, settlement) = if leased.lease_until_ms < deadline_ms {
        let (done, finished) = oneshot::channel();
        let renewer = tokio::spawn(keep_leased(
            store.clone(),
            leased.clone(),
            deadline_ms,
            lease.store,
            finished,
        ));
        let settlement = run.await;
        let _ = done.send(());
        let held = renewer.await.unwrap_or(leased.lease_until_ms);
        (held, settlement)
    } else {
        (leased.lease_until_ms, run.await)
    };
    let delivery = Delivery {
        lease_until_ms,
        ..leased
    };
    // A store refusing writes (disk full, locked) may recover within the lease:
    // settling then spares the event a wait for a long lease to run out.
    let mut pause = SETTLE_PAUSE;
    while let Err(error) = store.settle(&delivery, settlement.clone()).await {
        let now_ms = chrono::Utc::now().timestamp_millis();
        if now_ms + pause.as_millis() as i64 >= delivery.lease_until_ms {
            tracing::error!(topic = %delivery.topic, event_id = %delivery.id, %error, "could not settle event; it will be redelivered");
            return;
        }
        tracing::warn!(topic = %delivery.topic, event_id = %delivery.id, %error, "could not settle event yet; trying again");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_SETTLE_PAUSE);
    }
}

/// Renews the lease of `held` for `store_lease` every third of it until
/// `deadline_ms`, or until the handler is `finished`; returns the lease to
/// settle with. A renewal under way when the handler finishes completes first,
/// so the lease returned is the store's.
async fn keep_leased(
    store: Arc<dyn Store>,
    mut held: Delivery,
    deadline_ms: i64,
    store_lease: Duration,
    mut finished: oneshot::Receiver<()>,
) -> i64 {
    loop {
        tokio::select! {
            _ = &mut finished => return held.lease_until_ms,
            _ = tokio::time::sleep(store_lease / 3) => {}
        }
        let left_ms = deadline_ms - chrono::Utc::now().timestamp_millis();
        if left_ms <= 0 {
            break;
        }
        let lease = Duration::from_millis(left_ms as u64).min(store_lease);
        match store.renew_lease(&held, lease).await {
            Ok(Some(until)) => held.lease_until_ms = until,
            Ok(None) => {
                tracing::warn!(topic = %held.topic, event_id = %held.id, "lease lost while the handler runs; the event may run again");
                break;
            }
            Err(error) => {
                tracing::warn!(topic = %held.topic, event_id = %held.id, %error, "could not renew a lease; trying again")
            }
        }
    }
    let _ = finished.await;
    held.lease_until_ms
}

fn as_ms(duration: Duration) -> i64 {
    duration.as_millis() as i64
}
