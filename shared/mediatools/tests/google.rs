//! The Cloud Vision and Speech-to-Text engines against a loopback HTTP server
//! that checks each request the way Google documents it and answers with the
//! Google-format responses in `fixtures/media/google/`. No Google service is
//! called: the live calls are untested here.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine as _;
use serde_json::Value;
use zapfn_mediatools::{MediaConfig, OcrEngine, SpeechEngine, ToolError};

const TOKEN: &str = "ya29.c.test-token";

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/media/google")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
}

/// What the fake Google saw.
#[derive(Default)]
struct Seen {
    token_requests: usize,
    bodies: Vec<Value>,
    polls: usize,
}

type Shared = Arc<Mutex<Seen>>;

fn authorised(headers: &HeaderMap) -> bool {
    headers.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {TOKEN}"))
}

fn decoded(content: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(content.as_str().unwrap())
        .unwrap()
}

async fn token(State(seen): State<Shared>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if headers.get("metadata-flavor").and_then(|v| v.to_str().ok()) != Some("Google") {
        return (StatusCode::FORBIDDEN, Json(Value::Null));
    }
    seen.lock().unwrap().token_requests += 1;
    (StatusCode::OK, Json(fixture("metadata-token.json")))
}

async fn annotate(
    State(seen): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(Value::Null));
    }
    let image = decoded(&body["requests"][0]["image"]["content"]);
    seen.lock().unwrap().bodies.push(body);
    match image.as_slice() {
        b"not an image" => (StatusCode::OK, Json(fixture("vision-bad-image.json"))),
        _ => (StatusCode::OK, Json(fixture("vision-annotate.json"))),
    }
}

async fn recognize(
    State(seen): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(Value::Null));
    }
    let audio = decoded(&body["audio"]["content"]);
    seen.lock().unwrap().bodies.push(body);
    match audio.as_slice() {
        b"over quota" => (
            StatusCode::TOO_MANY_REQUESTS,
            Json(fixture("error-quota.json")),
        ),
        b"bad config" => (
            StatusCode::BAD_REQUEST,
            Json(fixture("error-invalid-argument.json")),
        ),
        _ => (StatusCode::OK, Json(fixture("speech-recognize.json"))),
    }
}

async fn long_running(
    State(seen): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(Value::Null));
    }
    seen.lock().unwrap().bodies.push(body);
    (
        StatusCode::OK,
        Json(fixture("speech-operation-running.json")),
    )
}

async fn operation(State(seen): State<Shared>, headers: HeaderMap) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(Value::Null));
    }
    seen.lock().unwrap().polls += 1;
    (StatusCode::OK, Json(fixture("speech-operation-done.json")))
}

/// Starts the fake Google and returns a configuration pointing at it.
async fn fake_google() -> (MediaConfig, Shared) {
    let seen = Shared::default();
    let app = Router::new()
        .route(
            "/computeMetadata/v1/instance/service-accounts/default/token",
            get(token),
        )
        .route("/v1/images:annotate", post(annotate))
        .route("/v1/speech:recognize", post(recognize))
        .route("/v1/speech:longrunningrecognize", post(long_running))
        .route("/v1/operations/7612202767953098924", get(operation))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = format!("http://{addr}");
    let config = MediaConfig::from_lookup(|name| match name {
        "ZAPFN_OCR_ENGINE" => Some("google-vision".into()),
        "ZAPFN_SPEECH_ENGINE" => Some("google-speech".into()),
        "ZAPFN_VISION_URL" | "ZAPFN_SPEECH_URL" => Some(url.clone()),
        "GCE_METADATA_HOST" => Some(addr.to_string()),
        _ => None,
    })
    .unwrap();
    (config, seen)
}

fn file_with(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test]
async fn vision_reads_text_and_labels_with_a_metadata_token() {
    let (config, seen) = fake_google().await;
    let engine = OcrEngine::from_config(&config);
    let dir = tempfile::tempdir().unwrap();
    let image = file_with(&dir, "photo.jpg", b"\xff\xd8\xff\xe0 jpeg bytes");

    let text = engine.read(&image).await.unwrap().unwrap();
    assert_eq!(text.text, "Olá, ação rápida\n12345");
    assert_eq!(text.labels, ["Text", "Font", "Receipt"]);
    assert_eq!(text.language.as_deref(), Some("pt"));
    assert!((text.confidence.unwrap() - 0.97).abs() < 1e-6);
    assert_eq!(text.engine, "google-vision");

    engine.read(&image).await.unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(seen.token_requests, 1, "the token is cached");
    let request = &seen.bodies[0]["requests"][0];
    assert_eq!(
        decoded(&request["image"]["content"]),
        b"\xff\xd8\xff\xe0 jpeg bytes"
    );
    let features: Vec<&str> = request["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(features, ["TEXT_DETECTION", "LABEL_DETECTION"]);
}

#[tokio::test]
async fn vision_refusing_the_image_is_a_permanent_error() {
    let (config, _) = fake_google().await;
    let dir = tempfile::tempdir().unwrap();
    let image = file_with(&dir, "bad.jpg", b"not an image");
    let error = OcrEngine::from_config(&config)
        .read(&image)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("Bad image data"), "{error}");
    assert!(!error.is_transient());
}

#[tokio::test]
async fn speech_transcribes_short_audio_in_pt_br_with_punctuation() {
    let (config, seen) = fake_google().await;
    let dir = tempfile::tempdir().unwrap();
    let wav = file_with(&dir, "speech.wav", b"RIFF....WAVEfmt pcm");
    let transcript = SpeechEngine::from_config(&config)
        .transcribe(&wav, 5.1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        transcript.text,
        "Bom dia, eu gostaria de pedir uma pizza. Qual é o preço?"
    );
    assert_eq!(transcript.language, "pt-br");
    assert!((transcript.confidence.unwrap() - 0.90).abs() < 1e-6);
    let seen = seen.lock().unwrap();
    let config = &seen.bodies[0]["config"];
    assert_eq!(config["languageCode"], "pt-BR");
    assert_eq!(config["enableAutomaticPunctuation"], true);
    assert_eq!(config["encoding"], "LINEAR16");
    assert_eq!(config["sampleRateHertz"], 16000);
}

#[tokio::test]
async fn speech_over_a_minute_goes_long_running_and_is_polled() {
    let (config, seen) = fake_google().await;
    let dir = tempfile::tempdir().unwrap();
    let wav = file_with(&dir, "long.wav", b"RIFF....WAVE long");
    let transcript = SpeechEngine::from_config(&config)
        .transcribe(&wav, 75.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(transcript.text, "Esta é uma mensagem de voz longa");
    assert_eq!(seen.lock().unwrap().polls, 1);
}

#[tokio::test]
async fn speech_quota_errors_are_transient_and_bad_requests_permanent() {
    let (config, _) = fake_google().await;
    let engine = SpeechEngine::from_config(&config);
    let dir = tempfile::tempdir().unwrap();
    let quota = file_with(&dir, "q.wav", b"over quota");
    let error = engine.transcribe(&quota, 1.0).await.unwrap_err();
    assert!(
        matches!(&error, ToolError::Service { transient: true, detail, .. } if detail.contains("HTTP 429") && detail.contains("Quota exceeded")),
        "{error:?}"
    );
    let bad = file_with(&dir, "b.wav", b"bad config");
    let error = engine.transcribe(&bad, 1.0).await.unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
}

#[tokio::test]
async fn an_unreachable_metadata_server_is_transient() {
    let config = MediaConfig::from_lookup(|name| match name {
        "ZAPFN_SPEECH_ENGINE" => Some("google-speech".into()),
        // A port nothing listens on.
        "GCE_METADATA_HOST" => Some("127.0.0.1:9".into()),
        _ => None,
    })
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wav = file_with(&dir, "s.wav", b"RIFF");
    let error = SpeechEngine::from_config(&config)
        .transcribe(&wav, 1.0)
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
}
