//! The video handler on a real SQLite store and blob directory, with a video
//! made by FFmpeg whose sound track is espeak-ng speech.

use zapfn_blob::BlobKey;
use zapfn_media_video::VideoProcessor;
use zapfn_mediatools::{samples, MediaConfig};
use zapfn_store::Settlement;

#[tokio::test]
async fn a_video_gets_duration_resolution_a_poster_and_a_transcript() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let mp4 = samples::video_with_speech(
        dir.path(),
        "clip",
        4,
        "good morning I would like to order a pizza",
    );
    let delivery = samples::inbound_media(
        &context,
        "wamid.VID1",
        "video",
        std::fs::read(mp4).unwrap(),
        "video/mp4",
    )
    .await;
    let video = VideoProcessor::new(&context, MediaConfig::default());
    assert_eq!(video.handle(&delivery).await, Settlement::Ack);

    let record = samples::recorded(&context, "wamid.VID1", "video").await;
    assert_eq!(record["status"], "done", "{record}");
    assert_eq!(
        (record["width"].as_u64(), record["height"].as_u64()),
        (Some(640), Some(360))
    );
    let duration = record["duration_s"].as_f64().unwrap();
    assert!((3.9..4.2).contains(&duration), "{duration}");
    assert_eq!(
        (
            record["video_codec"].as_str(),
            record["audio_codec"].as_str()
        ),
        (Some("h264"), Some("aac"))
    );
    let poster = context
        .blobs
        .get(&BlobKey::new(record["poster_key"].as_str().unwrap()).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(poster.info.content_type, "image/jpeg");
    assert_eq!(&poster.bytes[..3], b"\xff\xd8\xff");
    let transcript = record["transcript"].as_str().unwrap();
    let heard = ["would", "like", "order", "pizza"]
        .iter()
        .filter(|w| transcript.split_whitespace().any(|t| t == **w))
        .count();
    assert!(heard >= 2, "transcript {transcript:?}");
}

#[tokio::test]
async fn a_file_without_a_picture_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let ogg = samples::voice_note(dir.path(), "sound", "hello");
    let delivery = samples::inbound_media(
        &context,
        "wamid.NOPIC",
        "video",
        std::fs::read(ogg).unwrap(),
        "video/mp4",
    )
    .await;
    let video = VideoProcessor::new(&context, MediaConfig::default());
    assert_eq!(video.handle(&delivery).await, Settlement::Ack);
    let record = samples::recorded(&context, "wamid.NOPIC", "video").await;
    assert_eq!(
        (record["status"].as_str(), record["reason"].as_str()),
        (Some("failed"), Some("no video track"))
    );
}

#[test]
fn the_lease_outlasts_probe_poster_and_transcription() {
    let dir = tempfile::tempdir().unwrap();
    let context = samples::context(dir.path(), &[]);
    let tool_timeout = MediaConfig::from_env_or_defaults().tool_timeout;
    // A probe, a poster frame, FFmpeg, a token and Speech-to-Text's 6 calls (300 s in 55 s parts).
    let worst_case = tool_timeout * 10;
    let function = zapfn_media_video::function(&context);
    let lease = function.subscriptions[0].lease;
    assert!(
        lease > worst_case,
        "lease {lease:?}, worst case {worst_case:?}"
    );
}
