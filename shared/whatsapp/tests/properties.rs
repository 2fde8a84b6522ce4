//! Property tests of the WhatsApp layer: the status order, signatures, the
//! webhook parser and the send validator, over generated inputs.

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use zapfn_whatsapp::status::advances;
use zapfn_whatsapp::{builders, send, signature, webhook};

const PNID: &str = "106540352242922";
const STATUSES: [&str; 8] = [
    "queued",
    "accepted",
    "sent",
    "delivered",
    "read",
    "played",
    "failed",
    "deleted",
];

/// Applies `statuses` in order the way the store does: move only when `advances`.
fn settle(statuses: &[&str]) -> &'static str {
    let mut current = "queued";
    for status in statuses {
        if advances(current, status) {
            current = STATUSES.iter().find(|s| *s == status).unwrap();
        }
    }
    current
}

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("type".to_owned()),
                    Just("text".to_owned()),
                    Just("body".to_owned()),
                    Just("to".to_owned()),
                    "[a-z_]{1,10}"
                ],
                inner,
                0..6
            )
            .prop_map(|map| Value::Object(map.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn the_final_status_is_the_same_for_every_arrival_order(
        (statuses, shuffled) in prop::collection::vec(prop::sample::select(&STATUSES[..]), 0..16)
            .prop_flat_map(|s| (Just(s.clone()), Just(s).prop_shuffle()))
    ) {
        let expected = if statuses.contains(&"failed") {
            "failed"
        } else {
            ["played", "read", "delivered", "sent", "accepted"]
                .into_iter()
                .find(|s| statuses.contains(s))
                .unwrap_or("queued")
        };
        prop_assert_eq!(settle(&statuses), expected);
        prop_assert_eq!(settle(&shuffled), expected);
    }

    #[test]
    fn failed_is_terminal_and_nothing_moves_back(current in prop::sample::select(&STATUSES[..]), next in prop::sample::select(&STATUSES[..])) {
        if current == "failed" {
            prop_assert!(!advances(current, next));
        }
        if advances(current, next) && next != "failed" {
            prop_assert!(!advances(next, current), "{current} <-> {next}");
        }
    }

    #[test]
    fn a_signature_verifies_its_own_body_and_no_other(
        secret in prop::collection::vec(any::<u8>(), 0..64),
        body in prop::collection::vec(any::<u8>(), 0..512),
        flip in any::<prop::sample::Index>(),
        bit in 0u8..8,
    ) {
        let header = signature::sign(&secret, &body);
        prop_assert_eq!(signature::verify(&secret, &body, Some(header.as_bytes())), Ok(()));
        if !body.is_empty() {
            let mut other = body.clone();
            other[flip.index(body.len())] ^= 1 << bit;
            prop_assert_eq!(
                signature::verify(&secret, &other, Some(header.as_bytes())),
                Err(signature::SignatureError::Mismatch)
            );
        }
        let mut forged = header.into_bytes();
        let at = 7 + flip.index(64);
        forged[at] = if forged[at] == b'0' { b'1' } else { b'0' };
        prop_assert!(signature::verify(&secret, &body, Some(&forged)).is_err());
    }

    #[test]
    fn any_header_bytes_are_refused_without_panicking(header in prop::collection::vec(any::<u8>(), 0..80)) {
        let refused = signature::verify(b"secret", b"{}", Some(&header)).is_err();
        prop_assert!(refused, "accepted a random header");
    }

    #[test]
    fn every_generated_message_is_parsed_with_its_text_and_raw_object(
        texts in prop::collection::vec(any::<String>(), 1..8),
        from in "[0-9]{5,15}",
        extra in prop::collection::btree_map("x_[a-z]{1,8}", any_json(), 0..3),
    ) {
        let messages: Vec<Value> = texts
            .iter()
            .enumerate()
            .map(|(n, text)| {
                let mut message = builders::text_message(&from, &format!("wamid.P{n}"), 1_767_225_600, text);
                for (key, value) in &extra {
                    message[key] = value.clone();
                }
                message
            })
            .collect();
        let body = builders::messages_notification(PNID, &from, "Name", messages.clone()).to_string();
        let parsed = webhook::parse(body.as_bytes()).unwrap();
        prop_assert_eq!(parsed.messages.len(), texts.len());
        prop_assert!(parsed.events.is_empty());
        for ((message, text), object) in parsed.messages.iter().zip(&texts).zip(&messages) {
            // An empty text shows as no text.
            let shown = Some(text.as_str()).filter(|t| !t.is_empty());
            prop_assert_eq!(message.text.as_deref(), shown);
            prop_assert_eq!(&message.from, &from);
            prop_assert_eq!(message.phone_number_id.as_str(), PNID);
            // Byte for byte: the body is the serialised tree, so each message is its own serialisation.
            prop_assert_eq!(&message.raw, &object.to_string(), "the raw object is kept whole");
        }
    }

    #[test]
    fn any_json_body_parses_without_panicking(body in any_json()) {
        let bytes = body.to_string();
        prop_assert!(webhook::parse(bytes.as_bytes()).is_ok(), "valid JSON is always kept: {bytes}");
        let wrapped = json!({"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages", "value": body}]}]});
        prop_assert!(webhook::parse(wrapped.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn text_bodies_up_to_4096_characters_pass_and_longer_ones_name_the_field(
        length in 1usize..4200,
        unit in prop::sample::select(&["a", "é", "👍", "ا"][..]),
    ) {
        let body = json!({
            "messaging_product": "whatsapp", "to": "5511999990000", "type": "text",
            "text": { "body": unit.repeat(length) }
        });
        match send::validate(&body) {
            Ok(request) => prop_assert!(length <= 4096, "accepted {length} characters: {request:?}"),
            Err(error) => {
                prop_assert!(length > 4096, "refused {length} characters: {error}");
                prop_assert_eq!(error.field.as_str(), "text.body");
            }
        }
    }

    #[test]
    fn the_send_validator_answers_any_json_without_panicking(body in any_json()) {
        let _ = send::validate(&body);
        let mut envelope = json!({"messaging_product": "whatsapp", "to": "5511999990000"});
        if let Value::Object(fields) = &body {
            for (key, value) in fields {
                envelope[key] = value.clone();
            }
        }
        let _ = send::validate(&envelope);
    }
}
