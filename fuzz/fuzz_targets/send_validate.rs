//! Any JSON as a send body: the validator answers every body without
//! panicking, and an error always names a field and uses one of Meta's codes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zapfn_whatsapp::send;

fuzz_target!(|body: &[u8]| {
    let Ok(body) = serde_json::from_slice::<serde_json::Value>(body) else {
        return;
    };
    match send::validate(&body) {
        Ok(request) => {
            assert!(!request.message_type.is_empty());
            if request.message_type == "text" {
                let text = body["text"]["body"].as_str().unwrap_or_default();
                assert!((1..=4096).contains(&text.chars().count()));
            }
        }
        Err(error) => {
            assert!([100, 131_008, 131_009].contains(&error.code), "{error:?}");
            assert!(!error.field.is_empty(), "{error:?}");
        }
    }
});
