//! Deployed, the image function is started by Eventarc: Cloud Storage's
//! `object.finalized` event of the original media-fetch stored, a CloudEvent in
//! binary content mode as Eventarc posts it (`ce-*` headers, the object's
//! StorageObjectData as the JSON body), here taken from the Cloud Storage
//! emulator's own object resource. The real `zapfn-media-image` binary on
//! loopback, on the Storage emulator and PostgreSQL: the original is processed
//! once (a redelivered event stores nothing again), its own thumbnail's event and
//! another type's original are ignored, and an original whose record is not yet
//! written is retried until it is. No OIDC check: no Google-signed token here.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use zapfn_cloud::cloudevents::STORAGE_OBJECT_FINALIZED;
use zapfn_cloud::storage::GcsBlobStore;
use zapfn_mediatools::samples;
use zapfn_runtime::{Config, Context};

const NEEDS: [&str; 3] = [
    "STORAGE_EMULATOR_HOST",
    "PUBSUB_EMULATOR_HOST",
    "ZAPFN_TEST_DATABASE_URL",
];

/// True when the emulators and PostgreSQL are configured; a loud SKIPPED line
/// otherwise (a failure with `ZAPFN_REQUIRE_EMULATORS=1`).
fn emulators_up() -> bool {
    let missing: Vec<&str> = NEEDS
        .into_iter()
        .filter(|var| std::env::var(var).map_or(true, |v| v.is_empty()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var("ZAPFN_REQUIRE_EMULATORS").as_deref() != Ok("1"),
        "{missing:?} not set but ZAPFN_REQUIRE_EMULATORS=1 (scripts/emulators.sh start)"
    );
    eprintln!("SKIPPED eventarc: {missing:?} not set (make emulators)");
    false
}

/// The deployed settings of the image function, on the emulators.
fn settings(bucket: &str, project: &str) -> Vec<(&'static str, String)> {
    vec![
        ("ZAPFN_STORE", "postgres".into()),
        (
            "ZAPFN_DATABASE_URL",
            std::env::var("ZAPFN_TEST_DATABASE_URL").unwrap(),
        ),
        ("ZAPFN_BLOBS", "gcs".into()),
        ("ZAPFN_MEDIA_BUCKET", bucket.into()),
        ("ZAPFN_BUS", "pubsub".into()),
        ("GOOGLE_CLOUD_PROJECT", project.into()),
        ("ZAPFN_OCR_ENGINE", "tesseract".into()),
    ]
}

/// The function process, killed when dropped.
struct Function {
    url: String,
    log: PathBuf,
    child: Child,
}

impl Function {
    async fn start(dir: &Path, env: &[(&'static str, String)]) -> Function {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join("media-image.log");
        let child = Command::new(env!("CARGO_BIN_EXE_zapfn-media-image"))
            .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
            .env("PORT", port.to_string())
            .env("ZAPFN_HOST", "127.0.0.1")
            .env("ZAPFN_DATA_DIR", dir.join("data"))
            .env("ZAPFN_LOG_FORMAT", "pretty")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let function = Function {
            url: format!("http://127.0.0.1:{port}"),
            log,
            child,
        };
        let start = Instant::now();
        while reqwest::get(format!("{}/healthz", function.url))
            .await
            .map_or(true, |r| !r.status().is_success())
        {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no /healthz 200:\n{}",
                function.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        function
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Function {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The emulator's resource of object `name` (Cloud Storage's JSON API object,
/// the StorageObjectData Eventarc carries).
async fn object(bucket: &str, name: &str) -> Value {
    let host = std::env::var("STORAGE_EMULATOR_HOST").unwrap();
    let name = name.replace('/', "%2F");
    let response = reqwest::get(format!("{host}/storage/v1/b/{bucket}/o/{name}"))
        .await
        .unwrap();
    assert!(
        response.status().is_success(),
        "{name}: {}",
        response.status()
    );
    response.json().await.unwrap()
}

/// Posts `object`'s finalized event as Eventarc does; the answer's status.
async fn deliver(function: &Function, event_id: &str, object: &Value) -> u16 {
    let bucket = object["bucket"].as_str().unwrap();
    let name = object["name"].as_str().unwrap();
    reqwest::Client::new()
        .post(format!("{}/_eventarc/media", function.url))
        .header("ce-id", event_id)
        .header(
            "ce-source",
            format!("//storage.googleapis.com/projects/_/buckets/{bucket}"),
        )
        .header("ce-specversion", "1.0")
        .header("ce-type", STORAGE_OBJECT_FINALIZED)
        .header("ce-subject", format!("objects/{name}"))
        .header("ce-time", object["timeCreated"].as_str().unwrap())
        .header("content-type", "application/json; charset=utf-8")
        .body(object.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn an_original_is_processed_once_from_its_storage_event() {
    if !emulators_up() {
        return;
    }
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_micros()
    );
    let (bucket, project) = (format!("zapfn-eventarc-{run}"), format!("zapfn-{run}"));
    let dir = tempfile::tempdir().unwrap();
    let env = settings(&bucket, &project);
    GcsBlobStore::connect(&bucket, None)
        .await
        .unwrap()
        .ensure_bucket(&project)
        .await
        .unwrap();
    let config = Config::from_lookup(|name| {
        env.iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.clone())
    })
    .unwrap();
    let context = Context::connect(config).await.unwrap();

    // media-fetch's work: the messages stored, their originals in the bucket, recorded.
    let png = samples::text_image(dir.path(), "sign", 900, 300, &["Open daily 9 to 18"]);
    let photo = (format!("wamid.EVTIMG{run}"), std::fs::read(&png).unwrap());
    let image = samples::inbound_media(&context, &photo.0, "image", photo.1, "image/png").await;
    let voice = format!("wamid.EVTAUD{run}");
    let audio =
        samples::inbound_media(&context, &voice, "audio", b"OggS".to_vec(), "audio/ogg").await;
    let late = format!("wamid.EVTLATE{run}");
    let unrecorded = samples::inbound_media(
        &context,
        &late,
        "image",
        std::fs::read(&png).unwrap(),
        "image/png",
    )
    .await;
    let late_id = unrecorded.payload["message_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let late_record = samples::recorded(&context, &late, "object").await;
    context
        .store
        .annotate_media(&late_id, "object", json!({"status": "pending"}), vec![])
        .await
        .unwrap();

    let function = Function::start(dir.path(), &env).await;
    let original = object(&bucket, image.payload["key"].as_str().unwrap()).await;
    assert_eq!(original["contentType"], "image/png");
    assert_eq!(
        deliver(&function, "9001", &original).await,
        204,
        "{}",
        function.log()
    );

    let done = samples::recorded(&context, &photo.0, "image").await;
    assert_eq!(done["status"], "done", "{done}\n{}", function.log());
    assert_eq!(
        (done["width"].as_u64(), done["height"].as_u64()),
        (Some(900), Some(300))
    );
    let text = done["ocr_text"].as_str().unwrap_or_default();
    assert!(text.contains("daily"), "{text:?}");
    let thumbnail_key = done["thumbnail_key"].as_str().unwrap();
    let message_id = image.payload["message_id"].as_str().unwrap();
    assert_eq!(
        thumbnail_key,
        format!("{}/{message_id}/thumb.webp", samples::PHONE_NUMBER_ID)
    );
    let thumbnail = object(&bucket, thumbnail_key).await;
    assert_eq!(thumbnail["contentType"], "image/webp");

    // Redelivered (Eventarc is at-least-once), and the thumbnail's own event:
    // acknowledged, nothing written again (same generation, same record).
    assert_eq!(deliver(&function, "9001", &original).await, 204);
    assert_eq!(deliver(&function, "9002", &thumbnail).await, 204);
    assert_eq!(
        object(&bucket, thumbnail_key).await["generation"],
        thumbnail["generation"]
    );
    assert_eq!(samples::recorded(&context, &photo.0, "image").await, done);

    // Another processor's original: acknowledged, not touched.
    let audio_object = object(&bucket, audio.payload["key"].as_str().unwrap()).await;
    assert_eq!(deliver(&function, "9003", &audio_object).await, 204);
    assert_eq!(
        samples::recorded(&context, &voice, "image").await,
        Value::Null
    );

    // Stored but not recorded yet (the event outran media-fetch's write): retried.
    let late_object = object(&bucket, unrecorded.payload["key"].as_str().unwrap()).await;
    assert_eq!(deliver(&function, "9004", &late_object).await, 503);
    assert_eq!(
        samples::recorded(&context, &late, "image").await,
        Value::Null
    );
    context
        .store
        .annotate_media(&late_id, "object", late_record, vec![])
        .await
        .unwrap();
    assert_eq!(deliver(&function, "9004", &late_object).await, 204);
    assert_eq!(
        samples::recorded(&context, &late, "image").await["status"],
        "done"
    );
}
