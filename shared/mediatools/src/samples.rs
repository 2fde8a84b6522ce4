//! Real media made with real tools, for tests and benchmarks (feature
//! `samples`): speech from espeak-ng, text rendered by ImageMagick, videos and
//! photo-like JPEGs from FFmpeg's test sources. A missing tool panics with the
//! package to install, so a test never passes for want of a tool.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Panics loudly unless `tool` is on the PATH.
pub fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    if !found {
        let package = match tool {
            "convert" => "imagemagick",
            "espeak-ng" => "espeak-ng",
            other => crate::error::package_of(other),
        };
        panic!(
            "\n\n*** MISSING TOOL: `{tool}` is not installed. Install it with \
             `apt-get install -y {package}` (.ci/run does this on a fresh machine). ***\n"
        );
    }
}

fn run(program: &str, args: &[&str]) {
    require(program);
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} could not start: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn text(path: &Path) -> &str {
    path.to_str().expect("sample paths are UTF-8")
}

/// `words` spoken by espeak-ng (US English, 140 words/min) with half a second
/// of silence after, as an OGG/Opus voice note in `dir`.
pub fn voice_note(dir: &Path, name: &str, words: &str) -> PathBuf {
    let wav = dir.join(format!("{name}.espeak.wav"));
    run(
        "espeak-ng",
        &["-v", "en-us", "-s", "140", "-w", text(&wav), words],
    );
    let ogg = dir.join(format!("{name}.ogg"));
    run(
        "ffmpeg",
        &[
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            text(&wav),
            "-af",
            "apad=pad_dur=0.5",
            "-ac",
            "1",
            "-ar",
            "48000",
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            text(&ogg),
        ],
    );
    ogg
}

/// A white `width`×`height` PNG with each of `lines` in black DejaVu Sans, 40 pt.
pub fn text_image(dir: &Path, name: &str, width: u32, height: u32, lines: &[&str]) -> PathBuf {
    let path = dir.join(format!("{name}.png"));
    let size = format!("{width}x{height}");
    let mut args = vec![
        "-size".to_owned(),
        size,
        "xc:white".into(),
        "-font".into(),
        "DejaVu-Sans".into(),
        "-pointsize".into(),
        "40".into(),
        "-fill".into(),
        "black".into(),
    ];
    for (i, line) in lines.iter().enumerate() {
        args.extend([
            "-annotate".into(),
            format!("+30+{}", 70 + 70 * i),
            (*line).to_owned(),
        ]);
    }
    args.push(text(&path).to_owned());
    run(
        "convert",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    path
}

/// A `seconds`-long 640×360 H.264/AAC MP4 of FFmpeg's test pattern whose sound
/// track is `words` spoken by espeak-ng.
pub fn video_with_speech(dir: &Path, name: &str, seconds: u32, words: &str) -> PathBuf {
    let wav = dir.join(format!("{name}.espeak.wav"));
    run(
        "espeak-ng",
        &["-v", "en-us", "-s", "140", "-w", text(&wav), words],
    );
    let mp4 = dir.join(format!("{name}.mp4"));
    let source = format!("testsrc=duration={seconds}:size=640x360:rate=25");
    run(
        "ffmpeg",
        &[
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &source,
            "-i",
            text(&wav),
            "-af",
            "apad",
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            text(&mp4),
        ],
    );
    mp4
}

/// A 4000×3000 JPEG of grainy test pattern, about 5 MB (a phone photo at
/// WhatsApp's 5 MB image limit).
pub fn large_photo(dir: &Path, name: &str) -> PathBuf {
    let jpg = dir.join(format!("{name}.jpg"));
    run(
        "ffmpeg",
        &[
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=4000x3000:rate=1,noise=alls=17:allf=t",
            "-frames:v",
            "1",
            "-q:v",
            "3",
            text(&jpg),
        ],
    );
    jpg
}

/// The business number of sample messages.
pub const PHONE_NUMBER_ID: &str = "106540352242922";
/// The customer of sample messages.
pub const CUSTOMER: &str = "5511999990000";

/// Stores an inbound `message_type` message (wamid `wamid`) the way the webhook
/// does and its media object the way media-fetch does, and returns the `media`
/// event media-fetch would publish, as a first delivery.
pub async fn inbound_media(
    context: &zapfn_runtime::Context,
    wamid: &str,
    message_type: &str,
    bytes: Vec<u8>,
    content_type: &str,
) -> zapfn_store::Delivery {
    let sha256 = zapfn_blob::sha256_hex(&bytes);
    let mut object = serde_json::json!({"id": format!("media-{wamid}"), "mime_type": content_type, "sha256": sha256});
    if message_type == "audio" {
        object["voice"] = true.into();
    }
    if message_type == "document" {
        object["filename"] = "invoice.pdf".into();
    }
    let webhook = serde_json::json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "109876543210987", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550001111", "phone_number_id": PHONE_NUMBER_ID},
            "contacts": [{"profile": {"name": "Maria Silva"}, "wa_id": CUSTOMER}],
            "messages": [{"from": CUSTOMER, "id": wamid, "timestamp": "1767225840",
                          "type": message_type, message_type: object}]
        }}]}]
    });
    let notification = zapfn_whatsapp::webhook::parse(webhook.to_string().as_bytes()).unwrap();
    context.store.ingest(notification).await.unwrap();
    let message = context.store.message(wamid).await.unwrap().unwrap();
    let subtype = content_type.split(['/', ';']).nth(1).unwrap_or("bin");
    let key = zapfn_blob::media::original_key(PHONE_NUMBER_ID, &message.id, subtype.trim());
    let info = context
        .blobs
        .put(
            &zapfn_blob::BlobKey::new(key.clone()).unwrap(),
            bytes.into(),
            content_type,
        )
        .await
        .unwrap();
    let event = zapfn_store::MediaStored {
        message_id: message.id,
        wamid: wamid.into(),
        phone_number_id: PHONE_NUMBER_ID.into(),
        from: CUSTOMER.into(),
        message_type: message_type.into(),
        key,
        content_type: content_type.into(),
        sha256: info.sha256,
        size: info.size,
        filename: (message_type == "document").then(|| "invoice.pdf".into()),
        voice: message_type == "audio",
        group_id: None,
    };
    let record = serde_json::json!({
        "status": "done", "key": event.key, "content_type": event.content_type,
        "sha256": event.sha256, "size": event.size, "filename": event.filename,
        "voice": event.voice, "media_id": format!("media-{wamid}"),
    });
    context
        .store
        .annotate_media(&event.message_id, "object", record, vec![])
        .await
        .unwrap();
    delivery(serde_json::to_value(event).unwrap(), 1)
}

/// Stores an inbound voice note saying `words` (spoken by espeak-ng, in
/// `dir`) as [`inbound_media`] does, and returns its `media` event.
pub async fn inbound_voice_note(
    context: &zapfn_runtime::Context,
    dir: &Path,
    wamid: &str,
    words: &str,
) -> zapfn_store::Delivery {
    let ogg = voice_note(dir, wamid, words);
    let bytes = std::fs::read(ogg).expect("espeak-ng and FFmpeg wrote the voice note");
    inbound_media(context, wamid, "audio", bytes, "audio/ogg").await
}

/// What the `name` processor recorded on the message `wamid` (`media.<name>`;
/// null before it ran).
pub async fn recorded(
    context: &zapfn_runtime::Context,
    wamid: &str,
    name: &str,
) -> serde_json::Value {
    let message = context.store.message(wamid).await.unwrap().unwrap();
    message.media.unwrap_or_default()[name].clone()
}

/// A `media` delivery of `payload`, attempt `attempt`, first tried now.
pub fn delivery(payload: serde_json::Value, attempt: u32) -> zapfn_store::Delivery {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    zapfn_store::Delivery {
        id: "1".into(),
        topic: zapfn_store::topics::MEDIA.into(),
        ordering_key: None,
        payload,
        attempt,
        first_attempt_at_ms: now,
        lease_until_ms: now + 60_000,
    }
}

/// A context on a fresh SQLite file and blob directory in `dir`, with `env`
/// (e.g. `ZAPFN_MAX_ATTEMPTS`) over the defaults.
pub fn context(dir: &Path, env: &[(&str, &str)]) -> zapfn_runtime::Context {
    let data_dir = dir.to_str().unwrap().to_owned();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let config = zapfn_runtime::Config::from_lookup(|name| {
        if name == "ZAPFN_DATA_DIR" {
            return Some(data_dir.clone());
        }
        env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    })
    .unwrap();
    zapfn_runtime::Context::open(config).unwrap()
}
