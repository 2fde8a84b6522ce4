//! The media pipeline end to end in `zapfn dev`: a customer's media seeded in
//! the Graph API sandbox arrives by a signed webhook, media-fetch downloads and
//! stores it, the processors understand it with the real tools, and a voice
//! note is answered like a typed message.

mod common;

use std::time::Duration;

use serde_json::{json, Value};
use zapfn_mediatools::samples;

const CUSTOMER: &str = "5511988887777";

/// Waits until `media.<kind>` of message `wamid` is done or failed; returns it.
async fn processed(system: &common::System, wamid: &str, kind: &str) -> Value {
    common::eventually(
        Duration::from_secs(60),
        &format!("media.{kind} of {wamid}"),
        || async {
            let media = system.message(wamid).await?["media"][kind].clone();
            matches!(media["status"].as_str(), Some("done" | "failed")).then_some(media)
        },
    )
    .await
}

#[tokio::test]
async fn a_voice_note_is_fetched_transcribed_and_answered_like_typed_text() {
    let rules_dir = tempfile::tempdir().unwrap();
    let rules = rules_dir.path().join("rules.json");
    std::fs::write(
        &rules,
        json!({"rules": [], "fallback": {"type": "text", "text": {"body": "Got your voice note"}}})
            .to_string(),
    )
    .unwrap();
    let system = common::start(&[("ZAPFN_RULES", rules.to_str().unwrap())]).await;
    let media_dir = tempfile::tempdir().unwrap();
    let ogg = samples::voice_note(
        media_dir.path(),
        "order",
        "good morning I would like to order a pizza",
    );
    let id = system
        .seed_media(&std::fs::read(ogg).unwrap(), "mime_type=audio/ogg")
        .await["id"]
        .clone();
    let wamid = system
        .customer_sends(CUSTOMER, json!({"audio": {"id": id, "voice": true}}))
        .await;

    let audio = processed(&system, &wamid, "audio").await;
    assert_eq!(audio["status"], "done", "{audio}");
    let transcript = audio["transcript"].as_str().unwrap();
    assert!(
        ["would", "like", "order", "pizza"]
            .iter()
            .any(|w| transcript.split_whitespace().any(|t| t == *w)),
        "{transcript:?}"
    );

    let reply = common::eventually(Duration::from_secs(20), "the auto-reply", || async {
        system.sent_to(CUSTOMER).into_iter().next()
    })
    .await;
    assert_eq!(
        reply.body["text"]["body"], "Got your voice note",
        "{:?}",
        reply.body
    );
    // Exactly one reply, however often events were delivered.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(system.sent_to(CUSTOMER).len(), 1);
    system.stop().await;
}

#[tokio::test]
async fn an_image_gets_a_thumbnail_and_its_text() {
    let system = common::start(&[]).await;
    let media_dir = tempfile::tempdir().unwrap();
    let png = samples::text_image(media_dir.path(), "sign", 900, 220, &["Entrega grátis hoje"]);
    let id = system
        .seed_media(&std::fs::read(png).unwrap(), "mime_type=image/png")
        .await["id"]
        .clone();
    let wamid = system
        .customer_sends(CUSTOMER, json!({"image": {"id": id}}))
        .await;

    let image = processed(&system, &wamid, "image").await;
    assert_eq!(image["status"], "done", "{image}");
    assert_eq!(
        (image["width"].as_u64(), image["height"].as_u64()),
        (Some(900), Some(220))
    );
    assert_eq!(image["thumbnail_width"], 320);
    let text = image["ocr_text"].as_str().unwrap();
    assert!(
        text.contains("Entrega") && text.contains("grátis"),
        "{text:?}"
    );
    system.stop().await;
}
