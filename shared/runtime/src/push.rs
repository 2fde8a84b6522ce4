//! Event handlers served over HTTP when their topic is remote: Pub/Sub push
//! (`POST /_push/{topic}`), Cloud Tasks (`POST /_tasks/{topic}`) and Eventarc
//! (`POST /_eventarc/{topic}`). The adapter decodes the request into a
//! [`Delivery`], runs the plain handler, and answers so that Google retries
//! exactly what should be retried:
//!
//! | settlement | answer | Pub/Sub | Cloud Tasks |
//! |---|---|---|---|
//! | Ack | 204 | acked | task done |
//! | Retry (attempts or window left) | 503 + `Retry-After` | redelivered with the subscription's backoff | retried, honouring `Retry-After` |
//! | Defer | 429 + `Retry-After` | redelivered | a successor task scheduled `after` later, then 204 (429 if it cannot be created) |
//! | Retry (out of attempts/window), DeadLetter | kept by `store.dead_letter`, then 204 | acked | task done |
//!
//! A deferral (pacing, a reconcile wait) is not a failure: Cloud Tasks would
//! count a 429 as a retry against the queue's attempts, so the deferred task
//! is continued by a new one that carries the attempts spent so far
//! ([`zapfn_cloud::tasks::CloudTasksQueue::defer`]).
//!
//! A request that is not what the endpoint takes is 400 (and a missing or bad
//! OIDC token 401, when `ZAPFN_PUSH_AUDIENCE` is set).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use tokio::sync::OnceCell;
use zapfn_cloud::oidc::OidcVerifier;
use zapfn_cloud::push::NotAPush;
use zapfn_cloud::tasks::{CloudTasksQueue, TaskTarget};
use zapfn_cloud::{cloudevents, push, tasks};
use zapfn_store::{Delivery, Settlement, Store};

use crate::function::Handler;
use crate::{fan_out, Context, Problem, Subscription};

/// What the push routes share.
struct Push {
    store: Arc<dyn Store>,
    handlers: HashMap<&'static str, Handler>,
    max_attempts: u32,
    max_retry_age: Duration,
    /// The Cloud Tasks queue deferred tasks continue on (when it is the task queue).
    tasks: Option<TaskTarget>,
    /// Connected on the first deferral.
    queue: OnceCell<CloudTasksQueue>,
}

/// The push routes of `subscriptions` (each topic once, its handlers combined).
pub fn router(context: &Context, subscriptions: Vec<Subscription>) -> Router {
    let handlers = fan_out::by_topic(subscriptions)
        .into_iter()
        .map(|subscription| (subscription.topic, subscription.handler))
        .collect();
    let state = Arc::new(Push {
        store: context.store.clone(),
        handlers,
        max_attempts: context.config.max_attempts,
        max_retry_age: context.config.max_retry_age,
        tasks: crate::relay::task_target(context),
        queue: OnceCell::new(),
    });
    Router::new()
        .route("/_push/{topic}", post(pubsub))
        .route("/_tasks/{topic}", post(cloud_tasks))
        .route("/_eventarc/{topic}", post(eventarc))
        .with_state(state)
}

/// Middleware: 401 unless the request carries a valid Google OIDC token (for the
/// configured audience, or for the URL the request was sent to).
pub async fn require_oidc(
    State(verifier): State<Arc<OidcVerifier>>,
    request: Request,
    next: Next,
) -> Response {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok());
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    // Cloud Run routes by host, so a token for this URL was meant for this service.
    let addressed_to = host.map(|host| format!("https://{host}{}", request.uri().path()));
    match verifier
        .verify(authorization, addressed_to.as_deref())
        .await
    {
        Ok(_) => next.run(request).await,
        Err(error) => {
            tracing::warn!(%error, path = request.uri().path(), "push request refused");
            Problem::new(StatusCode::UNAUTHORIZED, error.to_string()).into_response()
        }
    }
}

async fn pubsub(State(push): State<Arc<Push>>, Path(topic): Path<String>, body: Bytes) -> Response {
    push.handle(&topic, |topic| push::decode(&body, topic))
        .await
}

async fn cloud_tasks(
    State(push): State<Arc<Push>>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    push.handle_task(&topic, |topic| tasks::task_delivery(&headers, &body, topic))
        .await
}

async fn eventarc(
    State(push): State<Arc<Push>>,
    Path(topic): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    push.handle(&topic, |topic| {
        cloudevents::decode(&headers, &body)?.into_delivery(topic)
    })
    .await
}

impl Push {
    async fn handle(
        &self,
        topic: &str,
        decode: impl FnOnce(&str) -> Result<Delivery, NotAPush>,
    ) -> Response {
        match self.run(topic, decode).await {
            Ok((delivery, settlement)) => self.answer(&delivery, settlement).await,
            Err(refused) => refused,
        }
    }

    /// As [`Push::handle`], for a Cloud Tasks request: a deferral continues as
    /// a new task instead of a retry of this one.
    async fn handle_task(
        &self,
        topic: &str,
        decode: impl FnOnce(&str) -> Result<Delivery, NotAPush>,
    ) -> Response {
        match self.run(topic, decode).await {
            Ok((delivery, Settlement::Defer { after })) => self.defer_task(&delivery, after).await,
            Ok((delivery, settlement)) => self.answer(&delivery, settlement).await,
            Err(refused) => refused,
        }
    }

    /// Decodes the request and runs the topic's handler; the refusal otherwise.
    async fn run(
        &self,
        topic: &str,
        decode: impl FnOnce(&str) -> Result<Delivery, NotAPush>,
    ) -> Result<(Delivery, Settlement), Response> {
        let Some((topic, handler)) = self.handlers.get_key_value(topic) else {
            return Err(Problem::new(
                StatusCode::NOT_FOUND,
                format!("this function does not handle topic {topic:?}"),
            )
            .into_response());
        };
        let delivery = decode(topic).map_err(|error| {
            Problem::new(StatusCode::BAD_REQUEST, error.to_string()).into_response()
        })?;
        let settlement = handler(delivery.clone()).await;
        Ok((delivery, settlement))
    }

    /// Continues a deferred task as a new one due `after` from now and ends
    /// this one (204); when that task cannot be created, 429 + `Retry-After`
    /// (Cloud Tasks retries this one, spending an attempt).
    async fn defer_task(&self, delivery: &Delivery, after: Duration) -> Response {
        let deferred = match &self.tasks {
            Some(target) => {
                let queue = self
                    .queue
                    .get_or_try_init(|| CloudTasksQueue::connect(target.clone()))
                    .await;
                match queue {
                    Ok(queue) => queue.defer(delivery, after).await,
                    Err(error) => Err(error),
                }
            }
            None => return again(StatusCode::TOO_MANY_REQUESTS, after, "deferred"),
        };
        match deferred {
            Ok(created) => {
                tracing::debug!(topic = %delivery.topic, id = %delivery.id, ?after, ?created, "task deferred as a new task");
                StatusCode::NO_CONTENT.into_response()
            }
            Err(error) => {
                tracing::warn!(topic = %delivery.topic, id = %delivery.id, %error, "deferred task not re-created; asking for a retry");
                again(StatusCode::TOO_MANY_REQUESTS, after, "deferred")
            }
        }
    }

    /// The HTTP answer for a settlement (see the module table).
    async fn answer(&self, delivery: &Delivery, settlement: Settlement) -> Response {
        match settlement {
            Settlement::Ack => StatusCode::NO_CONTENT.into_response(),
            Settlement::Defer { after } => again(StatusCode::TOO_MANY_REQUESTS, after, "deferred"),
            Settlement::Retry { after, error } if !self.out_of_retries(delivery, after) => {
                tracing::warn!(topic = %delivery.topic, id = %delivery.id, attempt = delivery.attempt, %error, "handler failed; redelivery asked");
                again(StatusCode::SERVICE_UNAVAILABLE, after, &error)
            }
            Settlement::Retry { error, .. } | Settlement::DeadLetter { error } => {
                self.dead_letter(delivery, &error).await
            }
        }
    }

    /// Whether a retry after `after` would pass the attempts or the retry window
    /// (the embedded outbox's rule, so both modes give up alike).
    fn out_of_retries(&self, delivery: &Delivery, after: Duration) -> bool {
        let retry_at = chrono::Utc::now().timestamp_millis() + after.as_millis() as i64;
        delivery.attempt >= self.max_attempts
            || retry_at - delivery.first_attempt_at_ms > self.max_retry_age.as_millis() as i64
    }

    async fn dead_letter(&self, delivery: &Delivery, error: &str) -> Response {
        match self
            .store
            .dead_letter(&delivery.topic, &delivery.payload, delivery.attempt, error)
            .await
        {
            Ok(()) => {
                tracing::warn!(topic = %delivery.topic, id = %delivery.id, attempt = delivery.attempt, error, "event dead-lettered");
                StatusCode::NO_CONTENT.into_response()
            }
            Err(store_error) => {
                tracing::error!(topic = %delivery.topic, id = %delivery.id, %store_error, "dead letter not stored; redelivery asked");
                again(
                    StatusCode::SERVICE_UNAVAILABLE,
                    Duration::from_secs(10),
                    "dead letter not stored",
                )
            }
        }
    }
}

/// A non-2xx answer asking for redelivery after `after`.
fn again(status: StatusCode, after: Duration, detail: &str) -> Response {
    let mut response = Problem::new(status, detail).into_response();
    let seconds = after.as_secs_f64().ceil().max(1.0) as u64;
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_str(&seconds.to_string()).expect("digits are a header value"),
    );
    response
}
