//! The status function: applies each status update to its message.
//! Monotonic (`sent < delivered < read`, `failed` terminal), idempotent, and
//! never loses a status for a wamid it does not know yet.

use zapfn_runtime::{retry, Context, Function, Subscription};
use zapfn_store::{topics, Delivery, Settlement, Store};
use zapfn_whatsapp::webhook::StatusUpdate;

/// The status function.
pub fn function(context: &Context) -> Function {
    let store = context.store.clone();
    let retry_base = context.config.retry_base;
    Function::events(
        "status",
        vec![Subscription::new(topics::STATUSES, 32, move |delivery| {
            let store = store.clone();
            async move { handle(store.as_ref(), &delivery, retry_base).await }
        })],
    )
}

/// Applies one `statuses` event.
pub async fn handle(
    store: &dyn Store,
    delivery: &Delivery,
    retry_base: std::time::Duration,
) -> Settlement {
    let status: StatusUpdate = match serde_json::from_value(delivery.payload.clone()) {
        Ok(status) => status,
        Err(error) => {
            return Settlement::DeadLetter {
                error: format!("not a status update: {error}"),
            }
        }
    };
    match store.apply_status(&status).await {
        Ok(()) => Settlement::Ack,
        Err(error) => Settlement::Retry {
            after: retry::backoff(retry_base, delivery.attempt),
            error: error.to_string(),
        },
    }
}
