//! The text function: the first event handler. It answers inbound text,
//! interactive replies and template quick replies with configurable
//! auto-replies, sent through the same queue as the send API.

pub mod rules;

use std::sync::Arc;

use serde_json::Value;
use zapfn_runtime::{retry, Context, Function, Subscription};
use zapfn_store::{topics, Delivery, MessageEvent, NewOutbound, Settlement, Store};

pub use rules::{Input, Rules};

/// The text function, with rules from `ZAPFN_RULES` or the built-in menu.
pub fn function(context: &Context) -> Function {
    let rules = match &context.config.rules_path {
        Some(path) => Rules::load(path).unwrap_or_else(|error| {
            tracing::error!(%error, "auto-reply rules not loaded; auto-replies are off");
            Rules {
                rules: Vec::new(),
                fallback: None,
            }
        }),
        None => Rules::builtin(),
    };
    with_rules(context, rules)
}

/// The text function with explicit rules.
pub fn with_rules(context: &Context, rules: Rules) -> Function {
    let (store, rules) = (context.store.clone(), Arc::new(rules));
    let retry_base = context.config.retry_base;
    // Typed messages, and voice-note transcripts answered alike.
    let subscription = |topic, concurrency| {
        let (store, rules) = (store.clone(), rules.clone());
        Subscription::new(topic, concurrency, move |delivery| {
            let (store, rules) = (store.clone(), rules.clone());
            async move {
                match handle(store.as_ref(), &rules, &delivery).await {
                    Ok(()) => Settlement::Ack,
                    Err(error) => Settlement::Retry {
                        after: retry::backoff(retry_base, delivery.attempt),
                        error,
                    },
                }
            }
        })
    };
    Function::events(
        "text",
        vec![
            subscription(topics::MESSAGES, 32),
            subscription(topics::TRANSCRIPTS, 8),
        ],
    )
}

/// Replies to one inbound message, or to a voice note's transcript, if a rule
/// matches. Idempotent: the reply's idempotency key is derived from the inbound
/// wamid. Needs no store read: the event carries the text and the reply id.
pub async fn handle(store: &dyn Store, rules: &Rules, delivery: &Delivery) -> Result<(), String> {
    let event: MessageEvent =
        serde_json::from_value(delivery.payload.clone()).map_err(|e| e.to_string())?;
    let typed = matches!(
        event.message_type.as_str(),
        "text" | "interactive" | "button"
    );
    if !typed && delivery.topic != topics::TRANSCRIPTS {
        return Ok(());
    }
    let input = match (event.reply_id, event.text) {
        (Some(id), _) => Input::ReplyId(id),
        (None, Some(text)) => Input::Text(text),
        (None, None) => return Ok(()),
    };
    // A message written in a group is answered in the group.
    let to = event.group_id.clone().unwrap_or(event.from);
    let Some(mut body) = rules.reply(&input, &to) else {
        return Ok(());
    };
    if event.group_id.is_some() {
        body["recipient_type"] = Value::from("group");
    }
    let preview = body
        .pointer("/text/body")
        .or_else(|| body.pointer("/interactive/body/text"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    store
        .enqueue_send(NewOutbound {
            phone_number_id: event.phone_number_id,
            to: Some(to),
            message_type: body["type"].as_str().unwrap_or("text").to_owned(),
            preview,
            context_message_id: None,
            body,
            idempotency_key: Some(format!("auto-reply:{}", event.wamid)),
        })
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
