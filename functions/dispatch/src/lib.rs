//! The dispatch function: the queue worker that sends queued messages to the
//! Graph API within Meta's limits.
//!
//! - per business number at most `WA_RATE_LIMIT` sends per second;
//! - per recipient one at a time, in order (the embedded queue's ordering key;
//!   with Cloud Tasks, a send waits while an earlier one to the same customer
//!   is still queued), and within Meta's pair limit (a burst, then one per 6 s);
//! - transient failures (5xx, timeouts, 130429, 131056) retried with
//!   exponential backoff and jitter; permanent ones recorded, never retried;
//! - a message that already has a wamid is never sent again, and one whose
//!   send may have reached Meta (a crash or timeout mid-send) is re-sent only
//!   after the reconcile window passes without a status webhook naming it
//!   (zapfn puts its message id in `biz_opaque_callback_data`, which Meta
//!   echoes) and every status received in that window has been applied.

mod limiter;
mod media;
mod resend;

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use zapfn_runtime::backends::TaskBackend;
use zapfn_runtime::{retry, Config, Context, Function, Subscription};
use zapfn_store::{callback_data_for, topics, Delivery, DispatchTask, Settlement, Store};
use zapfn_whatsapp::errors::ErrorClass;
use zapfn_whatsapp::graph::{CallError, GraphClient};

pub use limiter::Buckets;
pub use media::MediaUploads;

/// Longest a send waits in-process for its number's rate slot before yielding.
const MAX_INLINE_WAIT: Duration = Duration::from_secs(2);
/// What a dispatch run may take besides the send call: store work, the rate
/// wait, and per media object a link fetch (25 s), a voice-note conversion
/// (120 s) and an upload (25 s), with room to spare (Cloud Tasks' default
/// dispatch deadline).
const RUN_BUDGET: Duration = Duration::from_secs(600);
/// Lease left, beyond the send call's timeout, needed to start a send and record its answer.
const LEASE_MARGIN: Duration = Duration::from_secs(10);
/// How much sooner than the queue the dispatcher gives up (at most 5 % of the
/// retry window): the queue decides a moment later, by a later clock.
const GIVE_UP_MARGIN: Duration = Duration::from_secs(10);
/// With a task queue that does not keep a customer's sends in order (Cloud
/// Tasks), how far back a send looks for an earlier one still waiting, and how
/// long it waits before looking again.
const ORDER_LOOKBACK: Duration = Duration::from_secs(15 * 60);
const ORDER_WAIT: Duration = Duration::from_secs(2);

/// The dispatcher's state: client, limits and retry policy.
pub struct Dispatcher {
    store: Arc<dyn Store>,
    graph: GraphClient,
    media: MediaUploads,
    per_number: Buckets,
    per_recipient: Buckets,
    max_attempts: u32,
    max_retry_age: Duration,
    retry_base: Duration,
    reconcile_window: Duration,
    /// Least lease left to start a send.
    min_lease_left: Duration,
    /// Whether sends wait for earlier ones to the same customer themselves (the
    /// embedded queue's ordering keys do it otherwise).
    keeps_customer_order: bool,
}

/// The dispatch function.
pub fn function(context: &Context) -> Function {
    let dispatcher = Arc::new(Dispatcher::new(context));
    let concurrency = (context.config.rate_limit as usize).clamp(8, 256);
    Function::events(
        "dispatch",
        vec![
            Subscription::new(topics::DISPATCH, concurrency, move |delivery| {
                let dispatcher = dispatcher.clone();
                async move { dispatcher.handle(&delivery).await }
            })
            .with_lease(RUN_BUDGET + context.config.graph_timeout),
        ],
    )
}

impl Dispatcher {
    /// A dispatcher configured from the context.
    pub fn new(context: &Context) -> Dispatcher {
        let config: &Config = &context.config;
        Dispatcher {
            store: context.store.clone(),
            graph: context.graph.clone(),
            media: MediaUploads::new(
                context.store.clone(),
                context.blobs.clone(),
                context.graph.clone(),
                config.allow_private_media_hosts,
            ),
            // Paced, not bursty: a bucket of one token refilled every 1/rate s.
            // A full bucket of `rate` tokens would let twice the rate out in
            // the first second of a burst.
            per_number: Buckets::new(1, Duration::from_secs(1) / config.rate_limit),
            per_recipient: Buckets::new(config.pair_burst, config.pair_interval),
            max_attempts: config.max_attempts,
            max_retry_age: config.max_retry_age,
            retry_base: config.retry_base,
            reconcile_window: config.reconcile_window,
            min_lease_left: config.graph_timeout + LEASE_MARGIN,
            keeps_customer_order: matches!(config.backends.tasks, TaskBackend::CloudTasks { .. }),
        }
    }

    /// Sends one queued message; the settlement tells the queue what to do next.
    pub async fn handle(&self, delivery: &Delivery) -> Settlement {
        let task: DispatchTask = match serde_json::from_value(delivery.payload.clone()) {
            Ok(task) => task,
            Err(error) => {
                return Settlement::DeadLetter {
                    error: format!("not a dispatch task: {error}"),
                }
            }
        };
        let message = match self.store.outbound(&task.message_id).await {
            Ok(Some(message)) => message,
            Ok(None) => {
                tracing::warn!(message_id = %task.message_id, "dispatch task for an unknown message");
                return Settlement::Ack;
            }
            Err(error) => return self.store_failed(&task.message_id, error, delivery).await,
        };
        if !message.awaits_dispatch() {
            tracing::info!(message_id = %message.id, status = %message.status, "already dispatched; not sending again");
            return Settlement::Ack;
        }
        if self.keeps_customer_order {
            let since = chrono::Utc::now().timestamp() - ORDER_LOOKBACK.as_secs() as i64;
            match self.store.earlier_send_pending(&message.id, since).await {
                Ok(true) => return Settlement::Defer { after: ORDER_WAIT },
                Ok(false) => {}
                Err(error) => return self.store_failed(&message.id, error, delivery).await,
            }
        }
        if let Some(started) = message.dispatch_started_at {
            let now_ms = chrono::Utc::now().timestamp_millis();
            match resend::wait_before_resend(
                self.store.as_ref(),
                started.saturating_mul(1000),
                self.reconcile_window,
                now_ms,
            )
            .await
            {
                Ok(Some(after)) => return Settlement::Defer { after },
                Ok(None) => {}
                Err(error) => return self.store_failed(&message.id, error, delivery).await,
            }
            // A status applied while the backlog was looked at names the send.
            match self.store.outbound(&message.id).await {
                Ok(Some(now)) if now.awaits_dispatch() => {}
                Ok(_) => return Settlement::Ack,
                Err(error) => return self.store_failed(&message.id, error, delivery).await,
            }
            tracing::warn!(message_id = %message.id, "an earlier send got no answer and no status webhook; sending again");
        }
        // Media by link or stored object is uploaded to Meta first and sent by id.
        let body = match self.media.prepare(&message).await {
            Ok(body) => body,
            Err(error) => return self.failed(&message.id, None, error, delivery).await,
        };
        let recipient_key = message
            .to
            .as_ref()
            .map(|to| format!("{}:{to}", message.phone_number_id));
        if let Some(key) = &recipient_key {
            if let Err(wait) = self.per_recipient.try_take(key) {
                return Settlement::Defer { after: wait };
            }
        }
        let wait = match self
            .per_number
            .reserve(&message.phone_number_id, MAX_INLINE_WAIT)
        {
            Ok(wait) => wait,
            Err(wait) => {
                self.refund_recipient(recipient_key.as_deref());
                return Settlement::Defer { after: wait };
            }
        };
        tokio::time::sleep(wait).await;
        if self.lease_running_out(delivery) {
            // Started now, the send could outlive the lease and be made again by a redelivery.
            tracing::warn!(message_id = %message.id, "too little of the lease left to send; deferring");
            self.per_number.refund(&message.phone_number_id);
            self.refund_recipient(recipient_key.as_deref());
            return Settlement::Defer {
                after: Duration::ZERO,
            };
        }
        if let Err(error) = self.store.mark_dispatching(&message.id).await {
            return self.store_failed(&message.id, error, delivery).await;
        }
        let body = with_callback_data(body, &message.id);
        match self
            .graph
            .send_message(&message.phone_number_id, &body)
            .await
        {
            Ok(answer) => {
                self.record_sent(&message.id, answer.wamid(), delivery)
                    .await
            }
            Err(error) => {
                self.failed(&message.id, recipient_key.as_deref(), error, delivery)
                    .await
            }
        }
    }

    async fn record_sent(&self, id: &str, wamid: Option<&str>, delivery: &Delivery) -> Settlement {
        // Meta has the message now: try hard to record it, since a retry of the task would send it twice.
        for pause in [0, 50, 200, 1000] {
            tokio::time::sleep(Duration::from_millis(pause)).await;
            match self.store.record_sent(id, wamid).await {
                Ok(()) => {
                    // Read by the `messages-sent` and `message-latency` log metrics (infra/).
                    let latency_ms =
                        chrono::Utc::now().timestamp_millis() - delivery.first_attempt_at_ms;
                    tracing::info!(
                        message_id = id,
                        latency_ms,
                        attempt = delivery.attempt,
                        "sent"
                    );
                    return Settlement::Ack;
                }
                Err(error) => {
                    tracing::error!(message_id = id, wamid, %error, "sent but not recorded yet")
                }
            }
        }
        tracing::error!(
            message_id = id,
            wamid,
            "sent but could not record the wamid; a retry may send it twice"
        );
        self.retry(delivery, "could not record the wamid".into())
    }

    async fn failed(
        &self,
        id: &str,
        recipient_key: Option<&str>,
        error: CallError,
        delivery: &Delivery,
    ) -> Settlement {
        let class = error.class();
        let after = match class {
            // Meta: wait 4^n seconds before the next message to this user.
            ErrorClass::PairRateLimit => self.backoff(delivery.attempt).max(Duration::from_secs(
                4u64.saturating_pow(delivery.attempt.saturating_sub(1)),
            )),
            _ => self.backoff(delivery.attempt),
        };
        // Give up whenever the queue would (attempts, or the retry window from the
        // first attempt), so the message is marked failed rather than left queued.
        let out_of_retries = self.out_of_retries(delivery, after);
        let terminal = class == ErrorClass::Permanent || out_of_retries;
        tracing::warn!(message_id = id, code = error.code(), attempt = delivery.attempt, terminal, %error, "send failed");
        let record = error_record(&error, delivery.attempt);
        if let Err(store_error) = self
            .store
            .record_send_error(id, record, terminal, error.maybe_delivered())
            .await
        {
            return self.store_failed(id, store_error, delivery).await;
        }
        if class == ErrorClass::Permanent {
            return Settlement::Ack;
        }
        if out_of_retries {
            return Settlement::DeadLetter {
                error: format!("gave up after {} attempts: {error}", delivery.attempt),
            };
        }
        if let (ErrorClass::PairRateLimit, Some(key)) = (class, recipient_key) {
            self.per_recipient.penalize(key, after);
        }
        Settlement::Retry {
            after,
            error: error.to_string(),
        }
    }

    /// A store failure: retried, or at the last attempt recorded (best effort) as
    /// the message's failure, so it is not left queued once the queue gives up.
    async fn store_failed(
        &self,
        id: &str,
        error: zapfn_store::StoreError,
        delivery: &Delivery,
    ) -> Settlement {
        let after = self.backoff(delivery.attempt);
        if !self.out_of_retries(delivery, after) {
            return Settlement::Retry {
                after,
                error: error.to_string(),
            };
        }
        tracing::warn!(message_id = id, attempt = delivery.attempt, %error, "store failed at the last attempt; giving up");
        let record = failure_record(&error.to_string(), delivery.attempt);
        // Any mid-send mark stays: an earlier attempt may have reached Meta.
        match self.store.record_send_error(id, record, true, true).await {
            Ok(()) => Settlement::DeadLetter {
                error: format!("gave up after {} attempts: {error}", delivery.attempt),
            },
            Err(_) => Settlement::Retry {
                after,
                error: error.to_string(),
            },
        }
    }

    /// Whether the queue may give up on a retry after `after`. The window ends
    /// [`GIVE_UP_MARGIN`] early, as the queue's own check comes later.
    fn out_of_retries(&self, delivery: &Delivery, after: Duration) -> bool {
        let margin = GIVE_UP_MARGIN.min(self.max_retry_age / 20);
        let retry_at = chrono::Utc::now().timestamp_millis() + (after + margin).as_millis() as i64;
        delivery.attempt >= self.max_attempts
            || retry_at - delivery.first_attempt_at_ms > self.max_retry_age.as_millis() as i64
    }

    /// Whether less of the delivery's lease is left than a send needs (pushed
    /// deliveries carry no lease: 0).
    fn lease_running_out(&self, delivery: &Delivery) -> bool {
        let left_ms = delivery.lease_until_ms - chrono::Utc::now().timestamp_millis();
        delivery.lease_until_ms > 0 && left_ms < self.min_lease_left.as_millis() as i64
    }

    /// Gives back the recipient's pair-limit token of a send that did not happen.
    fn refund_recipient(&self, recipient_key: Option<&str>) {
        if let Some(key) = recipient_key {
            self.per_recipient.refund(key);
        }
    }

    /// Retries without a word on the message: its send reached Meta.
    fn retry(&self, delivery: &Delivery, error: String) -> Settlement {
        Settlement::Retry {
            after: self.backoff(delivery.attempt),
            error,
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        retry::backoff(self.retry_base, attempt)
    }
}

/// Adds zapfn's message id as `biz_opaque_callback_data` unless the client set its own.
fn with_callback_data(mut body: serde_json::Value, id: &str) -> serde_json::Value {
    if let Some(object) = body.as_object_mut() {
        object
            .entry("biz_opaque_callback_data")
            .or_insert_with(|| json!(callback_data_for(id)));
    }
    body
}

/// What a failed attempt leaves on the message: Meta's error, or the transport failure.
fn error_record(error: &CallError, attempt: u32) -> serde_json::Value {
    match error {
        CallError::Api { http_status, error } => json!({
            "code": error.code,
            "title": error.title.clone().unwrap_or_else(|| error.message.clone()),
            "message": error.message,
            "error_data": error.error_data,
            "http_status": http_status,
            "attempt": attempt,
        }),
        other => failure_record(&other.to_string(), attempt),
    }
}

/// A failure that is not Meta's (transport, store), as recorded on the message.
fn failure_record(message: &str, attempt: u32) -> serde_json::Value {
    json!({ "code": 0, "title": message, "message": message, "attempt": attempt })
}
