//! Each wrapper against the real tool, on media made in the test.

use std::path::Path;

use zapfn_mediatools::samples::{self, require};
use zapfn_mediatools::{
    ffmpeg, pocketsphinx, poppler, tesseract, Limits, MediaConfig, SpeechEngine, ToolError,
};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/media")
        .join(name)
}

#[tokio::test]
async fn voice_note_round_trip_ogg_opus_then_16k_wav_then_pocketsphinx() {
    require("ffprobe");
    require("pocketsphinx_continuous");
    let dir = tempfile::tempdir().unwrap();
    let spoken = samples::voice_note(
        dir.path(),
        "order",
        "good morning I would like to order a pizza",
    );

    // Re-encode as WhatsApp voice notes are sent.
    let voice = dir.path().join("voice.ogg");
    ffmpeg::to_voice_ogg(&spoken, &voice, Limits::default())
        .await
        .unwrap();
    let info = ffmpeg::probe(&voice, Limits::default()).await.unwrap();
    assert_eq!(info.format, "ogg");
    let audio = info.audio.unwrap();
    assert_eq!(
        (audio.codec.as_str(), audio.sample_rate, audio.channels),
        ("opus", Some(48000), Some(1))
    );
    let duration = info.duration_s.unwrap();
    assert!((2.0..6.0).contains(&duration), "{duration}");
    assert!(info.video.is_none());

    let wav = dir.path().join("speech.wav");
    ffmpeg::to_speech_wav(&voice, &wav, 300, Limits::default())
        .await
        .unwrap();
    let audio = ffmpeg::probe(&wav, Limits::default())
        .await
        .unwrap()
        .audio
        .unwrap();
    assert_eq!(
        (audio.codec.as_str(), audio.sample_rate, audio.channels),
        ("pcm_s16le", Some(16000), Some(1))
    );

    let model = pocketsphinx::Model::en_us(Path::new(pocketsphinx::DEBIAN_EN_US_MODEL));
    let text = pocketsphinx::transcribe(&wav, &model, Limits::default())
        .await
        .unwrap();
    // PocketSphinx mishears synthetic speech: ask for some of the words only.
    let heard = ["would", "like", "order", "pizza"]
        .iter()
        .filter(|w| text.split_whitespace().any(|t| t == **w))
        .count();
    assert!(heard >= 2, "transcript {text:?} has too few of the words");
}

#[tokio::test]
async fn speech_wav_is_cut_at_the_maximum_length() {
    let dir = tempfile::tempdir().unwrap();
    let video = samples::video_with_speech(dir.path(), "clip", 6, "one two three");
    let wav = dir.path().join("cut.wav");
    ffmpeg::to_speech_wav(&video, &wav, 2, Limits::default())
        .await
        .unwrap();
    let duration = ffmpeg::probe(&wav, Limits::default())
        .await
        .unwrap()
        .duration_s
        .unwrap();
    assert!((1.9..=2.1).contains(&duration), "{duration}");
}

#[tokio::test]
async fn speech_engine_from_default_config_is_pocketsphinx_in_english() {
    let dir = tempfile::tempdir().unwrap();
    let spoken = samples::voice_note(dir.path(), "pizza", "I would like to order a pizza");
    let wav = dir.path().join("speech.wav");
    ffmpeg::to_speech_wav(&spoken, &wav, 300, Limits::default())
        .await
        .unwrap();
    let transcript = SpeechEngine::from_config(&MediaConfig::default())
        .transcribe(&wav, 3.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (transcript.engine, transcript.language.as_str()),
        ("pocketsphinx", "en-US")
    );
    assert!(
        transcript.text.contains("pizza") || transcript.text.contains("order"),
        "{transcript:?}"
    );
}

#[tokio::test]
async fn corrupt_audio_is_rejected_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.ogg");
    std::fs::write(&junk, b"OggS\0\x02 this is not really an ogg stream at all").unwrap();
    let error = ffmpeg::to_speech_wav(&junk, &dir.path().join("x.wav"), 300, Limits::default())
        .await
        .unwrap_err();
    assert!(matches!(error, ToolError::Rejected { .. }), "{error:?}");
    assert!(!error.is_transient());
    let error = ffmpeg::probe(&junk, Limits::default()).await.unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
}

#[tokio::test]
async fn video_probe_and_poster_frame() {
    let dir = tempfile::tempdir().unwrap();
    let video = samples::video_with_speech(dir.path(), "clip", 3, "hello there");
    let info = ffmpeg::probe(&video, Limits::default()).await.unwrap();
    let stream = info.video.unwrap();
    assert_eq!(
        (stream.codec.as_str(), stream.width, stream.height),
        ("h264", 640, 360)
    );
    assert_eq!(info.audio.unwrap().codec, "aac");
    assert!((2.9..3.2).contains(&info.duration_s.unwrap()));

    let poster = dir.path().join("poster.jpg");
    // Past the end: the first frame is taken instead.
    ffmpeg::poster_frame(&video, &poster, 10.0, Limits::default())
        .await
        .unwrap();
    let bytes = std::fs::read(&poster).unwrap();
    assert_eq!(&bytes[..3], b"\xff\xd8\xff", "a JPEG");
    let frame = ffmpeg::probe(&poster, Limits::default())
        .await
        .unwrap()
        .video
        .unwrap();
    assert_eq!((frame.width, frame.height), (640, 360));
}

#[tokio::test]
async fn tesseract_reads_portuguese_and_english() {
    let dir = tempfile::tempdir().unwrap();
    let image = samples::text_image(
        dir.path(),
        "words",
        900,
        220,
        &["Olá, ação rápida 12345", "The quick brown fox"],
    );
    let ocr = tesseract::read_text(&image, "por+eng", Limits::default())
        .await
        .unwrap();
    for word in ["Olá,", "ação", "rápida", "12345", "quick", "brown", "fox"] {
        assert!(ocr.text.contains(word), "{word:?} not in {:?}", ocr.text);
    }
    assert_eq!(ocr.text.lines().count(), 2, "{:?}", ocr.text);
    assert!(ocr.confidence.unwrap() > 0.8, "{ocr:?}");

    let blank = samples::text_image(dir.path(), "blank", 300, 100, &[]);
    let ocr = tesseract::read_text(&blank, "por+eng", Limits::default())
        .await
        .unwrap();
    assert_eq!((ocr.text.as_str(), ocr.confidence), ("", None));
}

#[tokio::test]
async fn poppler_counts_pages_and_bounds_text() {
    let pdf = fixture("invoice-2-pages.pdf");
    let info = poppler::info(&pdf, Limits::default()).await.unwrap();
    assert_eq!((info.pages, info.encrypted), (2, false));

    let (text, truncated) = poppler::text(&pdf, 50, 10_000, Limits::default())
        .await
        .unwrap();
    assert!(text.contains("Invoice 4711 for Maria Silva"), "{text:?}");
    assert!(text.contains("Obrigado!"), "{text:?}");
    assert!(!truncated);

    let (first_page, _) = poppler::text(&pdf, 1, 10_000, Limits::default())
        .await
        .unwrap();
    assert!(!first_page.contains("Obrigado"), "{first_page:?}");
    let (cut, truncated) = poppler::text(&pdf, 50, 12, Limits::default())
        .await
        .unwrap();
    assert_eq!((cut.as_str(), truncated), ("Invoice 4711", true));

    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("fake.pdf");
    std::fs::write(&fake, b"%PDF-1.4 but nothing else").unwrap();
    let error = poppler::info(&fake, Limits::default()).await.unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
}
