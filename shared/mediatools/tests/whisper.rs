//! Whisper's wiring (feature `whisper`). No Whisper model can be fetched on
//! this machine, so recognition itself is untested here; what is tested is
//! that the engine is chosen by `ZAPFN_WHISPER_MODEL` and that a file that is
//! not a model is a clear, retryable error rather than a crash.
#![cfg(feature = "whisper")]

use zapfn_mediatools::{samples, MediaConfig, SpeechEngine};

#[tokio::test]
async fn a_file_that_is_not_a_model_is_a_clear_retryable_error() {
    let dir = tempfile::tempdir().unwrap();
    let not_a_model = dir.path().join("ggml-base.bin");
    std::fs::write(&not_a_model, b"this is not a ggml model").unwrap();
    let missing = dir.path().join("missing.bin");
    let wav = dir.path().join("speech.wav");
    let voice = samples::voice_note(dir.path(), "hi", "hello");
    zapfn_mediatools::ffmpeg::to_speech_wav(&voice, &wav, 300, Default::default())
        .await
        .unwrap();
    for model in [&not_a_model, &missing] {
        let path = model.to_str().unwrap().to_owned();
        let config =
            MediaConfig::from_lookup(|name| (name == "ZAPFN_WHISPER_MODEL").then(|| path.clone()))
                .unwrap();
        let engine = SpeechEngine::from_config(&config);
        assert!(matches!(engine, SpeechEngine::Whisper(_)));
        let error = engine.transcribe(&wav, 1.0).await.unwrap_err();
        assert!(error.is_transient(), "{error:?}");
        assert!(
            error.to_string().contains("cannot load the model")
                && error.to_string().contains(&path),
            "{error}"
        );
    }
}
