//! Any bytes as a webhook body: `webhook::parse` never panics, refuses only
//! what is not JSON, and keeps every message and status with its raw JSON.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zapfn_whatsapp::webhook;

fuzz_target!(|body: &[u8]| {
    let is_json = serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok();
    match webhook::parse(body) {
        Ok(notification) => {
            assert!(is_json, "parsed a body that is not JSON");
            for message in &notification.messages {
                assert!(!message.wamid.is_empty());
                assert!(serde_json::from_str::<&serde_json::value::RawValue>(&message.raw).is_ok());
            }
            for status in &notification.statuses {
                assert!(!status.wamid.is_empty() && !status.status.is_empty());
            }
        }
        Err(_) => assert!(!is_json, "refused a JSON body"),
    }
});
