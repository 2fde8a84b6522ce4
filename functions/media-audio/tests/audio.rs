//! The audio handler on a real SQLite store and blob directory, with speech
//! made by espeak-ng, converted by the real FFmpeg and heard by PocketSphinx.

use std::time::Duration;

use zapfn_media_audio::AudioProcessor;
use zapfn_mediatools::{samples, MediaConfig};
use zapfn_store::{topics, MessageEvent, Settlement};

fn config(pairs: &[(&str, &str)]) -> MediaConfig {
    MediaConfig::from_lookup(|name| {
        pairs
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_string())
    })
    .unwrap()
}

#[tokio::test]
async fn a_voice_note_is_measured_transcribed_and_its_transcript_published_once() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let delivery = samples::inbound_voice_note(
        &context,
        dir.path(),
        "wamid.VOICE1",
        "good morning I would like to order a pizza",
    )
    .await;
    let audio = AudioProcessor::new(&context, config(&[]));
    assert_eq!(audio.handle(&delivery).await, Settlement::Ack);

    let record = samples::recorded(&context, "wamid.VOICE1", "audio").await;
    assert_eq!(record["status"], "done", "{record}");
    let duration = record["duration_s"].as_f64().unwrap();
    assert!((2.0..6.0).contains(&duration), "{duration}");
    assert_eq!(record["codec"], "opus");
    assert_eq!(record["voice"], true);
    assert_eq!(record["language"], "en-US");
    assert_eq!(record["transcript_engine"], "pocketsphinx");
    let transcript = record["transcript"].as_str().unwrap();
    let heard = ["would", "like", "order", "pizza"]
        .iter()
        .filter(|w| transcript.split_whitespace().any(|t| t == **w))
        .count();
    assert!(heard >= 2, "transcript {transcript:?}");

    // Redelivered: acknowledged, and the transcript is not published again.
    assert_eq!(audio.handle(&delivery).await, Settlement::Ack);
    let events = context
        .store
        .claim(topics::TRANSCRIPTS, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].ordering_key.as_deref(),
        Some("106540352242922:5511999990000")
    );
    let event: MessageEvent = serde_json::from_value(events[0].payload.clone()).unwrap();
    assert_eq!(event.wamid, "wamid.VOICE1");
    assert_eq!(event.message_type, "audio");
    assert_eq!(event.text.as_deref(), Some(transcript));
    assert_eq!(
        event.message_id,
        delivery.payload["message_id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn with_transcription_off_only_the_duration_is_recorded_and_nothing_published() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let delivery = samples::inbound_voice_note(&context, dir.path(), "wamid.VOICE2", "hello").await;
    let audio = AudioProcessor::new(&context, config(&[("ZAPFN_SPEECH_ENGINE", "off")]));
    assert_eq!(audio.handle(&delivery).await, Settlement::Ack);
    let record = samples::recorded(&context, "wamid.VOICE2", "audio").await;
    assert_eq!(record["status"], "done");
    assert!(record["duration_s"].as_f64().unwrap() > 0.5);
    assert!(record.get("transcript").is_none());
    let depths = context.store.queue_depths().await.unwrap();
    assert_eq!(depths.pending.get(topics::TRANSCRIPTS), None);
}

#[tokio::test]
async fn corrupt_audio_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let delivery = samples::inbound_media(
        &context,
        "wamid.BADOGG",
        "audio",
        b"OggS\0\x02 not really an ogg stream".to_vec(),
        "audio/ogg",
    )
    .await;
    let audio = AudioProcessor::new(&context, config(&[]));
    assert_eq!(audio.handle(&delivery).await, Settlement::Ack);
    let record = samples::recorded(&context, "wamid.BADOGG", "audio").await;
    assert_eq!(record["status"], "failed");
    assert!(
        record["reason"]
            .as_str()
            .unwrap()
            .starts_with("ffprobe failed"),
        "{record}"
    );
}

#[tokio::test]
async fn a_missing_speech_model_is_retried_not_recorded_as_a_bad_file() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let delivery =
        samples::inbound_voice_note(&context, dir.path(), "wamid.NOMODEL", "hello").await;
    let missing = dir.path().join("no-model");
    let audio = AudioProcessor::new(
        &context,
        config(&[("ZAPFN_POCKETSPHINX_MODEL", missing.to_str().unwrap())]),
    );
    let settlement = audio.handle(&delivery).await;
    assert!(
        matches!(&settlement, Settlement::Retry { error, .. } if error.contains("pocketsphinx-en-us")),
        "{settlement:?}"
    );
    assert_eq!(
        samples::recorded(&context, "wamid.NOMODEL", "audio").await["status"],
        "pending"
    );
}

#[tokio::test]
async fn the_text_function_answers_the_transcript_once_keyed_by_the_voice_note() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let delivery = samples::inbound_voice_note(
        &context,
        dir.path(),
        "wamid.VOICE3",
        "I would like to order a pizza",
    )
    .await;
    let audio = AudioProcessor::new(&context, config(&[]));
    assert_eq!(audio.handle(&delivery).await, Settlement::Ack);
    let transcripts = context
        .store
        .claim(topics::TRANSCRIPTS, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(transcripts.len(), 1);

    let rules = zapfn_text::Rules {
        rules: Vec::new(),
        fallback: Some(
            serde_json::json!({"type": "text", "text": {"body": "Got your voice note"}}),
        ),
    };
    for _ in 0..2 {
        zapfn_text::handle(context.store.as_ref(), &rules, &transcripts[0])
            .await
            .unwrap();
    }
    let replies = context
        .store
        .claim(topics::DISPATCH, 10, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(replies.len(), 1, "one reply for a redelivered transcript");
    let id = replies[0].payload["message_id"].as_str().unwrap();
    let reply = context.store.message(id).await.unwrap().unwrap();
    assert_eq!(reply.to.as_deref(), Some(samples::CUSTOMER));
    assert_eq!(reply.text.as_deref(), Some("Got your voice note"));

    // The voice note itself, on the messages topic, gets no reply of its own.
    let mut typed = transcripts[0].clone();
    typed.topic = topics::MESSAGES.into();
    zapfn_text::handle(context.store.as_ref(), &rules, &typed)
        .await
        .unwrap();
    assert_eq!(
        context
            .store
            .queue_depths()
            .await
            .unwrap()
            .pending
            .get(topics::DISPATCH),
        Some(&1)
    );
}

#[test]
fn the_lease_outlasts_probe_and_transcription() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let tool_timeout = MediaConfig::from_env_or_defaults().tool_timeout;
    // A probe, FFmpeg, a token and Speech-to-Text's 6 calls (300 s in 55 s parts).
    let worst_case = tool_timeout * 9;
    let function = zapfn_media_audio::function(&context);
    let lease = function.subscriptions[0].lease;
    assert!(
        lease > worst_case,
        "lease {lease:?}, worst case {worst_case:?}"
    );
}
