//! Status webhooks (`sent`, `delivered`, `read` or `failed`) for accepted messages.

use serde_json::{json, Value};
use tokio::time::{sleep_until, Instant};
use zapfn_whatsapp::builders::{status, statuses_notification};

use crate::webhook::{deliver, with_display_number};
use crate::Sandbox;

/// Whether Meta would fail to deliver to `wa_id`: the sandbox treats numbers
/// starting with `99` as not on WhatsApp.
fn is_undeliverable(wa_id: &str) -> bool {
    wa_id.starts_with("99")
}

/// Spawns the task that posts the statuses of `wamid` at the configured delays,
/// one signed POST each, in order (a retried POST delays the later ones).
pub(crate) fn spawn(
    sandbox: &Sandbox,
    phone_number_id: String,
    wamid: String,
    wa_id: String,
    callback_data: Option<String>,
) {
    let sandbox = sandbox.clone();
    let accepted = Instant::now();
    tokio::spawn(async move {
        let config = &sandbox.inner.config;
        let plan: Vec<(&str, Option<Value>)> = if is_undeliverable(&wa_id) {
            vec![("sent", None), ("failed", Some(undeliverable_errors()))]
        } else {
            vec![("sent", None), ("delivered", None), ("read", None)]
        };
        for ((name, errors), delay) in plan.into_iter().zip(config.status_delays) {
            sleep_until(accepted + delay).await;
            let timestamp = chrono::Utc::now().timestamp();
            let mut object = status(&wamid, &wa_id, name, timestamp, errors);
            if let Some(data) = &callback_data {
                object["biz_opaque_callback_data"] = json!(data);
            }
            let notification = with_display_number(
                statuses_notification(&phone_number_id, vec![object]),
                &config.display_phone_number,
            );
            let body = notification.to_string();
            deliver(
                &sandbox.inner.client,
                &config.webhook_url,
                config.app_secret.as_bytes(),
                body.as_bytes(),
            )
            .await;
        }
    });
}

fn undeliverable_errors() -> Value {
    json!([{
        "code": 131026,
        "title": "Message undeliverable",
        "message": "Message undeliverable",
        "error_data": { "details": "Message Undeliverable." }
    }])
}
