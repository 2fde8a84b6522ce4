//! Embedded event consumers: lease events from the store's outbox, run the
//! subscribed handler, settle the outcome. At-least-once: an event whose handler
//! crashed or hung is delivered again when its lease runs out.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use zapfn_store::{Delivery, Store};

use crate::backends::StoreBackend;
use crate::relay::{Relay, INLINE_BUDGET};
use crate::{fan_out, Context, Subscription};

/// How long a delivery is reserved for one handler run.
const LEASE: Duration = Duration::from_secs(60);
/// Longest sleep between looks at the outbox when no commit wakes us.
const IDLE_POLL: Duration = Duration::from_millis(200);

/// Running consumers (and the outbox relay, if any); stop them with [`Consumers::shutdown`].
pub struct Consumers {
    stop: watch::Sender<bool>,
    tasks: JoinSet<()>,
    relay: Option<tokio::task::JoinHandle<()>>,
}

/// Releases leases a dead process left behind, then starts one consumer loop per
/// subscription. Leases are released only in a store of this process's own
/// (SQLite): in a shared store other instances' leases are live.
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
    for subscription in fan_out::by_topic(subscriptions) {
        let store = context.store.clone();
        let published = context.published.clone();
        tasks.spawn(consume(store, published, subscription, stopped.clone()));
    }
    Ok(Consumers {
        stop,
        tasks,
        relay: None,
    })
}

impl Consumers {
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
            if tokio::time::timeout(INLINE_BUDGET + Duration::from_secs(1), relay)
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
        match store.claim(subscription.topic, free, LEASE).await {
            Ok(deliveries) if !deliveries.is_empty() => {
                for delivery in deliveries {
                    let Ok(permit) = permits.clone().acquire_owned().await else {
                        return;
                    };
                    let (store, handler) = (store.clone(), subscription.handler.clone());
                    in_flight.spawn(async move {
                        run_one(store.as_ref(), &handler, delivery).await;
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

async fn run_one(store: &dyn Store, handler: &crate::function::Handler, delivery: Delivery) {
    let settlement = handler(delivery.clone()).await;
    if let Err(error) = store.settle(&delivery, settlement).await {
        tracing::error!(topic = %delivery.topic, event_id = %delivery.id, %error, "could not settle event; it will be redelivered");
    }
}
