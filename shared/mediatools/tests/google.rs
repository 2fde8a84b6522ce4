//! The Cloud Vision and Speech-to-Text engines against a loopback HTTP server
//! that checks each request the way Google documents it and answers with the
//! Google-format responses in `fixtures/media/google/`. No Google service is
//! called: the live calls are untested here.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, Uri};
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
    /// Requests to any other route.
    unexpected: Vec<String>,
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

/// Answers `speech:recognize`: an error for the audio `over quota` or `bad
/// config`, `speech-recognize.json` for a WAV file, and for raw samples (a part
/// of longer audio) `speech-recognize-part-N.json` to the Nth request.
async fn recognize(
    State(seen): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    if !authorised(&headers) {
        return (StatusCode::UNAUTHORIZED, Json(Value::Null));
    }
    let audio = decoded(&body["audio"]["content"]);
    let mut seen = seen.lock().unwrap();
    seen.bodies.push(body);
    let (status, answer) = match audio.as_slice() {
        b"over quota" => (StatusCode::TOO_MANY_REQUESTS, "error-quota.json".into()),
        b"bad config" => (
            StatusCode::BAD_REQUEST,
            "error-invalid-argument.json".into(),
        ),
        wav if wav.starts_with(b"RIFF") => (StatusCode::OK, "speech-recognize.json".into()),
        _ => (
            StatusCode::OK,
            format!("speech-recognize-part-{}.json", seen.bodies.len()),
        ),
    };
    (status, Json(fixture(&answer)))
}

/// Records a request Google was not meant to get.
async fn unexpected(State(seen): State<Shared>, uri: Uri) -> StatusCode {
    seen.lock().unwrap().unexpected.push(uri.to_string());
    StatusCode::NOT_FOUND
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
        .fallback(unexpected)
        // Google takes requests of up to 10 MB; a 55 s part is about 2.3 MB in base64.
        .layer(DefaultBodyLimit::max(10 * 1024 * 1024))
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

/// Bytes of one second of 16 kHz mono 16-bit PCM.
const SECOND: usize = 16_000 * 2;

/// `len` bytes of noise-like samples, so that a part lost, repeated or moved shows.
fn samples(len: usize) -> Vec<u8> {
    let mut state: u32 = 0x2545_f491;
    (0..len)
        .map(|_| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            (state >> 16) as u8
        })
        .collect()
}

/// A RIFF WAVE file of `chunks` (id, body), bodies padded to an even length.
fn riff(chunks: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
    let mut body = b"WAVE".to_vec();
    for (id, chunk) in chunks {
        body.extend_from_slice(*id);
        body.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
        body.extend_from_slice(chunk);
        if chunk.len() % 2 == 1 {
            body.push(0);
        }
    }
    [
        b"RIFF".as_slice(),
        &(body.len() as u32).to_le_bytes(),
        &body,
    ]
    .concat()
}

/// FFmpeg's `fmt ` for 16 kHz mono 16-bit PCM.
const FMT_16K_MONO: [u8; 16] = [1, 0, 1, 0, 0x80, 0x3e, 0, 0, 0, 0x7d, 0, 0, 2, 0, 16, 0];
/// FFmpeg's `LIST` chunk, naming the software, written before `data`.
const LIST_INFO: &[u8] = b"INFOISFT\x0e\0\0\0Lavf59.27.100\0";

/// A WAV of `pcm` laid out as `ffmpeg -ac 1 -ar 16000 -c:a pcm_s16le -f wav` writes it.
fn ffmpeg_wav(pcm: &[u8]) -> Vec<u8> {
    riff(&[
        (b"fmt ", &FMT_16K_MONO),
        (b"LIST", LIST_INFO),
        (b"data", pcm),
    ])
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
async fn speech_over_55_seconds_is_recognized_in_consecutive_parts_joined_in_order() {
    let (config, seen) = fake_google().await;
    let dir = tempfile::tempdir().unwrap();
    let pcm = samples(130 * SECOND);
    let wav = file_with(&dir, "long.wav", &ffmpeg_wav(&pcm));
    let transcript = SpeechEngine::from_config(&config)
        .transcribe(&wav, 130.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        transcript.text,
        "Oi, aqui é a Ana da padaria da esquina. Queria falar do pedido de ontem. \
         Chegaram os pães, mas faltou o bolo de fubá. Pode mandar amanhã cedo? Obrigada."
    );
    assert_eq!(transcript.language, "pt-br");
    // The average over the four results, not over the three parts.
    assert!((transcript.confidence.unwrap() - 0.85).abs() < 1e-6);

    let seen = seen.lock().unwrap();
    assert!(seen.unexpected.is_empty(), "{:?}", seen.unexpected);
    assert_eq!(seen.token_requests, 1, "the token is cached");
    let parts: Vec<Vec<u8>> = seen
        .bodies
        .iter()
        .map(|body| decoded(&body["audio"]["content"]))
        .collect();
    let sizes: Vec<usize> = parts.iter().map(Vec::len).collect();
    assert_eq!(sizes, [55 * SECOND, 55 * SECOND, 20 * SECOND]);
    assert!(parts.concat() == pcm, "the parts are the samples, in order");
    for body in &seen.bodies {
        let config = &body["config"];
        assert_eq!(config["encoding"], "LINEAR16");
        assert_eq!(config["sampleRateHertz"], 16000);
        assert_eq!(config["audioChannelCount"], 1);
        assert_eq!(config["languageCode"], "pt-BR");
        assert_eq!(config["enableAutomaticPunctuation"], true);
    }
}

#[tokio::test]
async fn speech_fails_whole_when_any_part_fails() {
    let (config, seen) = fake_google().await;
    let dir = tempfile::tempdir().unwrap();
    // The second part is the audio the fake Google refuses as over quota.
    let pcm = [samples(55 * SECOND), b"over quota".to_vec()].concat();
    let wav = file_with(&dir, "long.wav", &ffmpeg_wav(&pcm));
    let error = SpeechEngine::from_config(&config)
        .transcribe(&wav, 55.1)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ToolError::Service { transient: true, detail, .. } if detail.contains("HTTP 429")),
        "{error:?}"
    );
    assert_eq!(seen.lock().unwrap().bodies.len(), 2);
}

#[tokio::test]
async fn speech_of_a_wav_without_samples_is_unreadable_and_not_sent() {
    let (config, seen) = fake_google().await;
    let dir = tempfile::tempdir().unwrap();
    let no_data = riff(&[(b"fmt ", &FMT_16K_MONO), (b"LIST", LIST_INFO)]);
    let wav = file_with(&dir, "no-data.wav", &no_data);
    let error = SpeechEngine::from_config(&config)
        .transcribe(&wav, 130.0)
        .await
        .unwrap_err();
    assert!(
        matches!(&error, ToolError::Unreadable { tool: "Speech-to-Text", detail } if detail.contains("no `data` chunk")),
        "{error:?}"
    );
    assert!(!error.is_transient());
    let seen = seen.lock().unwrap();
    assert!(seen.bodies.is_empty());
    assert_eq!(seen.token_requests, 0);
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
