//! The outbox relay: when the bus or the task queue is remote, events written
//! to the store's outbox (in the transaction of the data they describe) are
//! leased here and forwarded — `dispatch` to Cloud Tasks, every other topic to
//! Pub/Sub — and acknowledged in the outbox only after Google accepted them.
//! Forwarding failures defer the event (never dead-letter it: it was not
//! delivered yet); a crash mid-forward lets the lease lapse and the event is
//! forwarded again (handlers are idempotent, task names dedupe).
//!
//! Each instance forwards its **own** events ([`Store::claim_own`]): the ones
//! its requests wrote, and the next event of an ordering key whose previous
//! one it acknowledged. So instances never claim the same events, and on
//! Firestore a flush with nothing of its own costs no request. Events whose
//! instance died between commit and forward are left to a **sweep**
//! ([`Relay::sweep`]), which takes events that have been due for
//! [`SWEEP_IDLE`] with nobody leasing them ([`Store::claim_idle`]).
//!
//! Cloud Run throttles CPU once a response is sent, so a relay that ran only in
//! the background could sit idle with events waiting. Three triggers:
//! 1. [`flush_after_writes`]: each non-GET request that succeeded flushes before
//!    its response goes out (bounded by [`INLINE_BUDGET`]);
//! 2. a background loop (every [`SWEEP_INTERVAL`], and on SQLite commits)
//!    flushes too, useful with CPU always allocated and for retries;
//! 3. `POST /_relay`, which Cloud Scheduler calls on one function: the sweep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Serialize;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;
use zapfn_cloud::pubsub::PubSubBus;
use zapfn_cloud::tasks::{CloudTasksQueue, TaskTarget};
use zapfn_store::{topics, Delivery, Settlement, Store};

use crate::backends::{BusBackend, TaskBackend};
use crate::{Context, Problem};

/// Topics that go to Pub/Sub when the bus is remote.
pub const BUS_TOPICS: [&str; 4] = [
    topics::MESSAGES,
    topics::STATUSES,
    topics::MEDIA,
    topics::TRANSCRIPTS,
];
/// Events leased per claim.
const BATCH: usize = 100;
/// How long a relay holds events it is forwarding.
const LEASE: Duration = Duration::from_secs(30);
/// When a forward failed, the next try.
const RETRY_AFTER: Duration = Duration::from_secs(5);
/// Longest a request waits for its inline flush.
pub const INLINE_BUDGET: Duration = Duration::from_secs(2);
/// Longest one `/_relay` sweep runs.
const SWEEP_BUDGET: Duration = Duration::from_secs(20);
/// The background loop's period when no commit wakes it; it doubles while
/// flushes find nothing, up to [`SWEEP_INTERVAL_MAX`] (on stores whose own
/// events are the whole outbox, each flush is a query).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
const SWEEP_INTERVAL_MAX: Duration = Duration::from_secs(30);
/// How long an event must have been due, with nobody leasing it, before a
/// sweep takes it from the instance that wrote it (which forwards its own
/// within milliseconds, or retries [`RETRY_AFTER`] after a failure).
pub const SWEEP_IDLE: Duration = Duration::from_secs(10);

/// Where a topic's events go.
#[derive(Clone)]
enum Destination {
    PubSub(Arc<PubSubBus>),
    Tasks(Arc<CloudTasksQueue>),
}

/// Forwards outbox events of the remote topics.
pub struct Relay {
    store: Arc<dyn Store>,
    routes: Vec<(&'static str, Destination)>,
}

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Flushed {
    pub forwarded: usize,
    pub failed: usize,
}

impl Relay {
    /// The relay for `context`'s backends; None when everything is embedded.
    pub async fn connect(context: &Context) -> anyhow::Result<Option<Arc<Relay>>> {
        let backends = &context.config.backends;
        let mut routes = Vec::new();
        if let BusBackend::PubSub { topic_prefix } = &backends.bus {
            let bus =
                Arc::new(PubSubBus::connect(backends.project_id.clone(), topic_prefix).await?);
            routes.extend(BUS_TOPICS.map(|topic| (topic, Destination::PubSub(bus.clone()))));
        }
        if let Some(target) = task_target(context) {
            let tasks = CloudTasksQueue::connect(target).await?;
            routes.push((topics::DISPATCH, Destination::Tasks(Arc::new(tasks))));
        }
        Ok((!routes.is_empty()).then(|| {
            Arc::new(Relay {
                store: context.store.clone(),
                routes,
            })
        }))
    }

    /// Forwards this instance's own due events of every remote topic
    /// (concurrently per topic) until none are left or `budget` runs out.
    pub async fn flush(&self, budget: Duration) -> Flushed {
        self.forward_all(None, budget).await
    }

    /// A flush, then also the events that have been due for `idle` with nobody
    /// leasing them (left by an instance that died): what `POST /_relay` does.
    pub async fn sweep(&self, idle: Duration, budget: Duration) -> Flushed {
        self.forward_all(Some(idle), budget).await
    }

    async fn forward_all(&self, idle: Option<Duration>, budget: Duration) -> Flushed {
        let deadline = Instant::now() + budget;
        let runs = self
            .routes
            .iter()
            .map(|(topic, destination)| self.forward_topic(topic, destination, idle, deadline));
        futures::future::join_all(runs)
            .await
            .into_iter()
            .fold(Flushed::default(), |sum, one| Flushed {
                forwarded: sum.forwarded + one.forwarded,
                failed: sum.failed + one.failed,
            })
    }

    /// Leases and forwards events of `topic`: own ones first, then (with
    /// `idle`) idle ones, until neither is left.
    async fn forward_topic(
        &self,
        topic: &str,
        destination: &Destination,
        idle: Option<Duration>,
        deadline: Instant,
    ) -> Flushed {
        let mut flushed = Flushed::default();
        while Instant::now() < deadline {
            let mut claimed = self.store.claim_own(topic, BATCH, LEASE).await;
            if let (Some(idle), Ok(events)) = (idle, &claimed) {
                if events.is_empty() {
                    claimed = self.store.claim_idle(topic, BATCH, LEASE, idle).await;
                }
            }
            let events = match claimed {
                Ok(events) if !events.is_empty() => events,
                Ok(_) => break,
                Err(error) => {
                    tracing::error!(topic, %error, "relay could not lease events");
                    break;
                }
            };
            let outcomes = forward(destination, topic, &events).await;
            for (event, outcome) in events.iter().zip(outcomes) {
                let settlement = match outcome {
                    Ok(()) => {
                        flushed.forwarded += 1;
                        Settlement::Ack
                    }
                    Err(error) => {
                        flushed.failed += 1;
                        tracing::warn!(topic, event_id = %event.id, %error, "event not forwarded; trying again later");
                        Settlement::Defer { after: RETRY_AFTER }
                    }
                };
                if let Err(error) = self.store.settle(event, settlement).await {
                    tracing::error!(topic, event_id = %event.id, %error, "forwarded event not settled; it will be forwarded again");
                }
            }
            if flushed.failed > 0 {
                break;
            }
        }
        flushed
    }

    /// Runs [`Relay::flush`] every [`SWEEP_INTERVAL`] and whenever `published`
    /// fires, until `stop` turns true; then flushes once more.
    pub fn spawn(
        self: Arc<Self>,
        published: Arc<Notify>,
        mut stop: watch::Receiver<bool>,
    ) -> JoinHandle<()> {
        tokio::spawn(async move {
            let mut interval = SWEEP_INTERVAL;
            while !*stop.borrow() {
                let flushed = self.flush(SWEEP_BUDGET).await;
                interval = if flushed.forwarded + flushed.failed > 0 {
                    SWEEP_INTERVAL
                } else {
                    (interval * 2).min(SWEEP_INTERVAL_MAX)
                };
                tokio::select! {
                    _ = published.notified() => interval = SWEEP_INTERVAL,
                    _ = tokio::time::sleep(interval) => {}
                    _ = stop.changed() => {}
                }
            }
            let last = self.flush(INLINE_BUDGET).await;
            if last.forwarded + last.failed > 0 {
                tracing::info!(?last, "relay flushed at shutdown");
            }
        })
    }
}

/// Where `dispatch` tasks go, when the task queue is Cloud Tasks.
pub(crate) fn task_target(context: &Context) -> Option<TaskTarget> {
    let backends = &context.config.backends;
    let TaskBackend::CloudTasks {
        queue,
        target_url,
        service_account,
    } = &backends.tasks
    else {
        return None;
    };
    Some(TaskTarget {
        queue: queue.clone(),
        url: target_url.clone(),
        oidc_service_account: service_account.clone(),
        oidc_audience: backends
            .push_auth
            .as_ref()
            .map(|auth| auth.audience.clone()),
    })
}

/// Forwards one claimed batch; one outcome per event.
async fn forward(
    destination: &Destination,
    topic: &str,
    events: &[Delivery],
) -> Vec<Result<(), String>> {
    match destination {
        Destination::PubSub(bus) => bus
            .publish(topic, events)
            .await
            .into_iter()
            .map(|outcome| outcome.map(|_| ()).map_err(|e| e.to_string()))
            .collect(),
        Destination::Tasks(queue) => {
            futures::future::join_all(events.iter().map(|event| async move {
                queue
                    .enqueue(event)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }))
            .await
        }
    }
}

/// Middleware: after a non-GET request answered 2xx (it may have written
/// events), forward them before the response leaves, within [`INLINE_BUDGET`].
/// The flush runs as its own task, so a client that hangs up does not cancel it
/// halfway through a store transaction.
pub async fn flush_after_writes(
    State(relay): State<Arc<Relay>>,
    request: Request,
    next: Next,
) -> Response {
    let writes = request.method() != Method::GET && request.method() != Method::HEAD;
    let response = next.run(request).await;
    if writes && response.status().is_success() {
        let _ = tokio::spawn(async move { relay.flush(INLINE_BUDGET).await }).await;
    }
    response
}

/// `POST /_relay`: one [`Relay::sweep`] (Cloud Scheduler's safety net); answers what it did,
/// 503 when some events could not be forwarded (the job's retry tries again).
pub fn router(relay: Arc<Relay>) -> Router {
    Router::new()
        .route("/_relay", post(sweep))
        .with_state(relay)
}

async fn sweep(State(relay): State<Arc<Relay>>) -> Response {
    sweep_answer(tokio::spawn(async move { relay.sweep(SWEEP_IDLE, SWEEP_BUDGET).await }).await)
}

/// 200 with what a sweep did, 503 when some events failed, 500 when the sweep
/// itself failed (panicked): in both the job's retry sweeps again.
fn sweep_answer(swept: Result<Flushed, tokio::task::JoinError>) -> Response {
    match swept {
        Ok(flushed) if flushed.failed > 0 => {
            (StatusCode::SERVICE_UNAVAILABLE, Json(flushed)).into_response()
        }
        Ok(flushed) => (StatusCode::OK, Json(flushed)).into_response(),
        Err(failure) => {
            tracing::error!(error = %failure, "relay sweep failed");
            Problem::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the relay sweep failed; events it did not forward stay in the outbox",
            )
            .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sweep_answers_what_it_did_and_a_failed_one_500() {
        let done = Flushed {
            forwarded: 3,
            failed: 0,
        };
        assert_eq!(sweep_answer(Ok(done)).status(), StatusCode::OK);
        let partly = Flushed {
            forwarded: 1,
            failed: 2,
        };
        assert_eq!(
            sweep_answer(Ok(partly)).status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let panicked = tokio::spawn(async { panic!("store went away") }).await;
        let answer = sweep_answer(panicked);
        assert_eq!(answer.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
    }
}
