//! Media end to end, on loopback with real processes: inbound media fetched from
//! the Graph API sandbox, verified, stored and served; refusals recorded with
//! their reasons; outbound media by link, by stored object and by upload sent by id.

mod common;

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use common::{assert_problem, eventually, start, System, API_KEY, PHONE_NUMBER_ID};
use serde_json::{json, Value};
use zapfn_store::{Delivery, MessageEvent};

const CUSTOMER: &str = "5511988887777";
const ALLOW_PRIVATE: (&str, &str) = ("ZAPFN_ALLOW_PRIVATE_MEDIA_HOSTS", "1");

fn photo() -> Vec<u8> {
    std::fs::read(common::fixture("media/photo.jpg")).unwrap()
}

/// Waits until the message's `media.object.status` is `status`; returns the message view.
async fn media_status(system: &System, wamid: &str, status: &str) -> Value {
    eventually(
        Duration::from_secs(20),
        &format!("media of {wamid} to be {status}"),
        || async {
            system
                .message(wamid)
                .await
                .filter(|view| view["media"]["object"]["status"] == status)
        },
    )
    .await
}

async fn get_media(system: &System, id: &str) -> reqwest::Response {
    system
        .http
        .get(system.url(&format!("/v1/media/{id}")))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn inbound_image_is_stored_and_served_byte_for_byte() {
    let system = start(&[]).await;
    let photo = photo();
    let seeded = system.seed_media(&photo, "mime_type=image/jpeg").await;
    let wamid = system
        .customer_sends(
            CUSTOMER,
            json!({"image": { "id": seeded["id"], "caption": "foto" } }),
        )
        .await;

    let view = media_status(&system, &wamid, "done").await;
    let object = &view["media"]["object"];
    let id = view["id"].as_str().unwrap();
    assert_eq!(
        object["key"],
        format!("{PHONE_NUMBER_ID}/{id}/original.jpg")
    );
    assert_eq!(object["content_type"], "image/jpeg");
    assert_eq!(object["sha256"], seeded["sha256"]);
    assert_eq!(object["size"], photo.len());
    assert_eq!(object["media_id"], seeded["id"]);
    assert_eq!(
        view["media"]["caption"], "foto",
        "the webhook's media object is kept"
    );

    for by in [id, wamid.as_str()] {
        let response = get_media(&system, by).await;
        assert_eq!(response.status(), 200);
        let headers = response.headers().clone();
        assert_eq!(headers["content-type"], "image/jpeg");
        assert_eq!(
            headers["etag"],
            format!("\"{}\"", seeded["sha256"].as_str().unwrap())
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(response.bytes().await.unwrap(), photo, "the exact bytes");
    }
    let stored = system
        .dir
        .path()
        .join(format!("media/objects/{PHONE_NUMBER_ID}/{id}/original.jpg"));
    assert_eq!(std::fs::read(stored).unwrap(), photo);

    let anonymous = system
        .http
        .get(system.url(&format!("/v1/media/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert_problem(get_media(&system, "msg_unknown").await, 404).await;
    let text = system.customer_writes(CUSTOMER, "hello").await;
    assert_problem(get_media(&system, &text).await, 404).await;
    system.stop().await;
}

#[tokio::test]
async fn a_corrupted_download_is_refused_with_the_sha256_reason() {
    let system = start(&[]).await;
    let seeded = system
        .seed_media(&photo(), "mime_type=image/jpeg&corrupt=true")
        .await;
    let wamid = system
        .customer_sends(CUSTOMER, json!({"image": { "id": seeded["id"] } }))
        .await;

    let view = media_status(&system, &wamid, "failed").await;
    let object = &view["media"]["object"];
    assert_eq!(object["code"], "sha256_mismatch");
    let reason = object["reason"].as_str().unwrap();
    assert!(reason.starts_with("sha256 mismatch: Meta sent"), "{reason}");
    let sandbox = system.running.sandbox.as_ref().unwrap();
    assert_eq!(
        sandbox
            .media(seeded["id"].as_str().unwrap())
            .unwrap()
            .downloads,
        2,
        "downloaded again once before refusing"
    );

    let body = assert_problem(get_media(&system, &wamid).await, 409).await;
    assert_eq!(body["media_status"], "failed");
    assert_eq!(body["code"], "sha256_mismatch");
    assert!(
        body["detail"].as_str().unwrap().contains("sha256 mismatch"),
        "{body}"
    );
    system.stop().await;
}

#[tokio::test]
async fn oversize_and_mislabelled_files_are_refused_with_recorded_reasons() {
    let system = start(&[]).await;
    // Customers send up to 100 MiB of any kind, over the 5 MiB an image send may have.
    let mut over_send_limit = photo();
    over_send_limit.resize(5 * 1024 * 1024 + 1, 0);
    let large = system
        .seed_media(&over_send_limit, "mime_type=image/jpeg")
        .await;
    let large_wamid = system
        .customer_sends(CUSTOMER, json!({"image": { "id": large["id"] } }))
        .await;
    let mut oversize = photo();
    oversize.resize(100 * 1024 * 1024 + 1, 0);
    let big = system.seed_media(&oversize, "mime_type=image/jpeg").await;
    let big_wamid = system
        .customer_sends(CUSTOMER, json!({"image": { "id": big["id"] } }))
        .await;
    let png_label = system.seed_media(&photo(), "mime_type=image/png").await;
    let png_wamid = system
        .customer_sends(CUSTOMER, json!({"image": { "id": png_label["id"] } }))
        .await;
    let fake_pdf = system
        .seed_media(b"not really a pdf", "mime_type=application/pdf")
        .await;
    let pdf_wamid = system
        .customer_sends(
            CUSTOMER,
            json!({"document": { "id": fake_pdf["id"], "filename": "../../x.pdf" } }),
        )
        .await;

    let view = media_status(&system, &large_wamid, "done").await;
    assert_eq!(
        view["media"]["object"]["size"],
        5 * 1024 * 1024 + 1,
        "{view}"
    );
    let view = media_status(&system, &big_wamid, "failed").await;
    assert_eq!(view["media"]["object"]["code"], "too_large");
    assert_eq!(
        view["media"]["object"]["reason"],
        "100.0 MiB (104857601 bytes) is over Meta's 100.0 MiB limit for inbound media"
    );
    let sandbox = system.running.sandbox.as_ref().unwrap();
    assert_eq!(
        sandbox
            .media(big["id"].as_str().unwrap())
            .unwrap()
            .downloads,
        0,
        "refused from Meta's file_size, before downloading"
    );

    let view = media_status(&system, &png_wamid, "failed").await;
    assert_eq!(view["media"]["object"]["code"], "type_mismatch");
    assert_eq!(
        view["media"]["object"]["reason"],
        "labelled image/png but the content is image/jpeg"
    );

    let view = media_status(&system, &pdf_wamid, "failed").await;
    assert_eq!(
        view["media"]["object"]["reason"],
        "labelled application/pdf but the content is not a recognised file type"
    );
    assert_eq!(
        view["media"]["filename"], "../../x.pdf",
        "Meta's object is kept as sent"
    );
    system.stop().await;
}

#[tokio::test]
async fn an_expired_url_is_fetched_again_and_a_failing_download_retried() {
    let system = start(&[]).await;
    let photo = photo();
    let seeded = system
        .seed_media(&photo, "mime_type=image/jpeg&expired_urls=1&unavailable=1")
        .await;
    let wamid = system
        .customer_sends(CUSTOMER, json!({"image": { "id": seeded["id"] } }))
        .await;

    let view = media_status(&system, &wamid, "done").await;
    assert_eq!(view["media"]["object"]["sha256"], seeded["sha256"]);
    let response = get_media(&system, &wamid).await;
    assert_eq!(response.bytes().await.unwrap(), photo);
    system.stop().await;
}

#[tokio::test]
async fn voice_notes_and_documents_keep_their_details_and_redelivery_stores_once() {
    let system = start(&[]).await;
    let pdf = std::fs::read(common::fixture("media/invoice-2-pages.pdf")).unwrap();
    let document = system.seed_media(&pdf, "mime_type=application/pdf").await;
    let wamid = system
        .customer_sends(
            CUSTOMER,
            json!({"document": { "id": document["id"], "filename": "../fatura\r\nmarço.pdf" } }),
        )
        .await;
    let view = media_status(&system, &wamid, "done").await;
    let object = view["media"]["object"].clone();
    assert_eq!(object["filename"], "fatura__março.pdf", "a safe file name");
    assert_eq!(object["content_type"], "application/pdf");
    let response = get_media(&system, &wamid).await;
    assert_eq!(
        response.headers()["content-disposition"],
        "inline; filename=\"fatura__março.pdf\""
    );
    assert_eq!(response.bytes().await.unwrap(), pdf);

    // The same event delivered again (as a queue may): acknowledged, nothing downloaded or changed.
    let event = MessageEvent {
        message_id: view["id"].as_str().unwrap().to_owned(),
        wamid: wamid.clone(),
        phone_number_id: PHONE_NUMBER_ID.to_owned(),
        message_type: "document".to_owned(),
        from: CUSTOMER.to_owned(),
        text: None,
        reply_id: None,
        group_id: None,
    };
    let delivery = Delivery {
        id: "redelivered".to_owned(),
        topic: "messages".to_owned(),
        ordering_key: None,
        payload: serde_json::to_value(&event).unwrap(),
        attempt: 2,
        first_attempt_at_ms: chrono::Utc::now().timestamp_millis(),
        lease_until_ms: 0,
    };
    let fetcher = zapfn_media_fetch::Fetcher::new(&system.running.context);
    assert_eq!(
        fetcher.handle(&delivery).await,
        zapfn_store::Settlement::Ack
    );
    let sandbox = system.running.sandbox.as_ref().unwrap();
    assert_eq!(
        sandbox
            .media(document["id"].as_str().unwrap())
            .unwrap()
            .downloads,
        1
    );
    assert_eq!(
        system.message(&wamid).await.unwrap()["media"]["object"],
        object
    );
    system.stop().await;
}

/// Serves `bytes` as `content_type` on loopback; returns the file's URL.
async fn serve_file(bytes: Vec<u8>, content_type: &'static str) -> String {
    let router = Router::new().route(
        "/files/{name}",
        get(move || {
            let bytes = bytes.clone();
            async move { ([("content-type", content_type)], bytes) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}/files/photo.jpg")
}

/// Queues `body` to the customer; returns the zapfn id.
async fn send(system: &System, body: Value) -> String {
    let (status, answer) = system
        .post(&format!("/v1/{PHONE_NUMBER_ID}/messages"), &body)
        .await;
    assert_eq!(status, 202, "{answer}");
    answer["id"].as_str().unwrap().to_owned()
}

/// The last body of `kind` (`image`, `audio`, …) the sandbox got for the
/// customer: the demo's auto-reply menu to the customer's first message may be
/// sent before or after it.
fn last_sent(system: &System, kind: &str) -> Value {
    system
        .sent_to(CUSTOMER)
        .into_iter()
        .rev()
        .map(|sent| sent.body)
        .find(|body| body["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} was sent"))
}

#[tokio::test]
async fn outbound_image_by_link_is_uploaded_once_and_sent_by_id() {
    let system = start(&[ALLOW_PRIVATE]).await;
    system.customer_writes(CUSTOMER, "oi").await;
    eventually(Duration::from_secs(20), "the auto-reply menu", || async {
        (!system.sent_to(CUSTOMER).is_empty()).then_some(())
    })
    .await;
    let photo = photo();
    let link = serve_file(photo.clone(), "image/jpeg").await;
    // The image's first send attempt fails at Meta: the retry must reuse the upload.
    let (status, _) = system
        .post(
            "/sandbox/faults",
            &json!({"faults": [{"http_status": 500, "to": CUSTOMER}]}),
        )
        .await;
    assert_eq!(status, 200);
    let id = send(
        &system,
        json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image",
        "image": {"link": link, "caption": "catálogo"}}),
    )
    .await;
    let view = system.wait_status(&id, "delivered").await;

    let sent = last_sent(&system, "image");
    let media_id = sent["image"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("sent by id: {sent}"))
        .to_owned();
    assert!(sent["image"].get("link").is_none(), "{sent}");
    assert_eq!(sent["image"]["caption"], "catálogo");
    let sandbox = system.running.sandbox.as_ref().unwrap();
    let uploaded = sandbox.media(&media_id).unwrap();
    assert_eq!(
        (uploaded.bytes.to_vec(), uploaded.mime_type.as_str()),
        (photo, "image/jpeg")
    );
    assert_eq!(sandbox.media_ids().len(), 1, "one upload despite the retry");
    assert_eq!(view["media"]["uploads"]["/image"]["id"], media_id.as_str());
    assert_eq!(
        view["raw"]["image"]["link"],
        link.as_str(),
        "the client's body is kept"
    );
    system.stop().await;
}

#[tokio::test]
async fn a_stored_inbound_image_can_be_forwarded_and_a_voice_note_is_converted() {
    let system = start(&[ALLOW_PRIVATE]).await;
    let photo = photo();
    let seeded = system.seed_media(&photo, "mime_type=image/jpeg").await;
    let wamid = system
        .customer_sends(CUSTOMER, json!({"image": { "id": seeded["id"] } }))
        .await;
    let inbound = media_status(&system, &wamid, "done").await;

    let id = send(
        &system,
        json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image",
        "image": {"id": inbound["id"]}}),
    )
    .await;
    system.wait_status(&id, "sent").await;
    let media_id = last_sent(&system, "image")["image"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sandbox = system.running.sandbox.as_ref().unwrap();
    assert_ne!(media_id, seeded["id"].as_str().unwrap(), "uploaded anew");
    assert_eq!(sandbox.media(&media_id).unwrap().bytes, photo);

    let wav = serve_file(tone_wav(), "audio/wav").await;
    let id = send(
        &system,
        json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "audio",
        "audio": {"link": wav, "voice": true}}),
    )
    .await;
    system.wait_status(&id, "sent").await;
    let sent = last_sent(&system, "audio");
    assert_eq!(sent["audio"]["voice"], true);
    let voice = sandbox
        .media(sent["audio"]["id"].as_str().unwrap())
        .unwrap();
    assert_eq!(voice.mime_type, "audio/ogg");
    assert_eq!(
        zapfn_media::sniff(&voice.bytes).unwrap().mime,
        "audio/ogg",
        "Ogg with Opus"
    );

    // Neither an unknown message nor another business number's is sent.
    let other_number = "106540352299999";
    for (number, message_id) in [
        (PHONE_NUMBER_ID, "msg_not_a_message"),
        (other_number, inbound["id"].as_str().unwrap()),
    ] {
        let (status, answer) = system
            .post(
                &format!("/v1/{number}/messages"),
                &json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image",
                "image": {"id": message_id}}),
            )
            .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(
            answer["error"]["error_data"]["details"],
            format!("image.id: {message_id} is not a message of business number {number}"),
            "{answer}"
        );
    }
    system.stop().await;
}

/// Half a second of a 440 Hz tone, 16 kHz mono 16-bit PCM WAV.
fn tone_wav() -> Vec<u8> {
    let samples: Vec<i16> = (0..8000)
        .map(|i| ((i as f64 * 440.0 * std::f64::consts::TAU / 16000.0).sin() * 8000.0) as i16)
        .collect();
    let data_len = (samples.len() * 2) as u32;
    let mut wav = Vec::new();
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    wav.extend_from_slice(&16u32.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&1u16.to_le_bytes());
    wav.extend_from_slice(&16000u32.to_le_bytes());
    wav.extend_from_slice(&32000u32.to_le_bytes());
    wav.extend_from_slice(&2u16.to_le_bytes());
    wav.extend_from_slice(&16u16.to_le_bytes());
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        wav.extend_from_slice(&sample.to_le_bytes());
    }
    wav
}

async fn upload(system: &System, form: reqwest::multipart::Form) -> reqwest::Response {
    system
        .http
        .post(system.url(&format!("/v1/{PHONE_NUMBER_ID}/media")))
        .bearer_auth(API_KEY)
        .multipart(form)
        .send()
        .await
        .unwrap()
}

fn form(bytes: Vec<u8>, declared: &str) -> reqwest::multipart::Form {
    reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", declared.to_owned())
        .part(
            "file",
            reqwest::multipart::Part::bytes(bytes).file_name("photo.jpg"),
        )
}

#[tokio::test]
async fn uploads_through_the_api_round_trip_and_bad_forms_are_problems() {
    let system = start(&[]).await;
    system.customer_writes(CUSTOMER, "oi").await;
    let photo = photo();
    let response = upload(&system, form(photo.clone(), "image/jpeg")).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let media_id = answer["id"].as_str().unwrap().to_owned();
    let sandbox = system.running.sandbox.as_ref().unwrap();
    assert_eq!(sandbox.media(&media_id).unwrap().bytes, photo);

    let id = send(
        &system,
        json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image",
        "image": {"id": media_id}}),
    )
    .await;
    system.wait_status(&id, "sent").await;
    assert_eq!(
        last_sent(&system, "image")["image"]["id"],
        media_id.as_str()
    );
    assert_eq!(sandbox.media_ids().len(), 1, "a Meta id is sent as it is");

    let mislabelled =
        assert_problem(upload(&system, form(photo.clone(), "image/png")).await, 400).await;
    assert_eq!(
        mislabelled["detail"],
        "labelled image/png but the content is image/jpeg"
    );
    assert_problem(upload(&system, form(photo.clone(), "image/gif")).await, 415).await;
    let mut big = photo.clone();
    big.resize(5 * 1024 * 1024 + 1, 0);
    assert_problem(upload(&system, form(big, "image/jpeg")).await, 413).await;
    let no_file = reqwest::multipart::Form::new()
        .text("messaging_product", "whatsapp")
        .text("type", "image/jpeg");
    assert_eq!(
        assert_problem(upload(&system, no_file).await, 400).await["field"],
        "file"
    );
    let wrong_product = form(photo.clone(), "image/jpeg").text("messaging_product", "sms");
    assert_problem(upload(&system, wrong_product).await, 400).await;
    let malformed = system
        .http
        .post(system.url(&format!("/v1/{PHONE_NUMBER_ID}/media")))
        .bearer_auth(API_KEY)
        .header("content-type", "multipart/form-data; boundary=XYZ")
        .body("--XYZ\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nunterminated")
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400).await;
    let not_multipart = system
        .http
        .post(system.url(&format!("/v1/{PHONE_NUMBER_ID}/media")))
        .bearer_auth(API_KEY)
        .json(&json!({"file": "x"}))
        .send()
        .await
        .unwrap();
    assert_problem(not_multipart, 400).await;
    system.stop().await;
}

#[tokio::test]
async fn links_to_private_and_metadata_addresses_are_refused_without_the_flag() {
    let system = start(&[]).await;
    system.customer_writes(CUSTOMER, "oi").await;
    let link = serve_file(photo(), "image/jpeg").await;
    for refused in [
        link.clone(),
        "http://169.254.169.254/latest/meta-data/iam".to_owned(),
    ] {
        let body = json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image", "image": {"link": refused}});
        let (status, answer) = system
            .post(&format!("/v1/{PHONE_NUMBER_ID}/messages"), &body)
            .await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["field"], "image.link");
        let details = answer["error"]["error_data"]["details"].as_str().unwrap();
        assert!(details.contains("must point to public hosts"), "{details}");
    }
    // A host name is resolved when the dispatcher fetches it: refused there, recorded on the message.
    let port = link.split(':').nth(2).unwrap().split('/').next().unwrap();
    let id = send(
        &system,
        json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "image",
        "image": {"link": format!("http://localhost:{port}/files/photo.jpg")}}),
    )
    .await;
    let view = system.wait_status(&id, "failed").await;
    let error = &view["errors"][0];
    assert_eq!(error["code"], 131053, "{view}");
    assert!(
        error["message"].as_str().unwrap().contains("loopback"),
        "{error}"
    );
    assert!(
        system
            .running
            .sandbox
            .as_ref()
            .unwrap()
            .media_ids()
            .is_empty(),
        "nothing uploaded"
    );
    system.stop().await;
}

#[tokio::test]
async fn a_download_that_keeps_failing_is_recorded_as_failed_when_retries_run_out() {
    let system = start(&[("ZAPFN_MAX_ATTEMPTS", "2")]).await;
    let seeded = system
        .seed_media(&photo(), "mime_type=image/jpeg&unavailable=10")
        .await;
    let wamid = system
        .customer_sends(CUSTOMER, json!({"image": { "id": seeded["id"] } }))
        .await;

    let view = media_status(&system, &wamid, "failed").await;
    let object = &view["media"]["object"];
    assert_eq!(object["code"], "gave_up");
    assert_eq!(object["transient"], true);
    assert!(
        object["reason"]
            .as_str()
            .unwrap()
            .starts_with("gave up after 2 attempts"),
        "{object}"
    );
    let sandbox = system.running.sandbox.as_ref().unwrap();
    assert_eq!(
        sandbox
            .media(seeded["id"].as_str().unwrap())
            .unwrap()
            .downloads,
        2
    );
    // The event is dead-lettered once the handler's record is stored: soon after.
    eventually(
        Duration::from_secs(5),
        "the media event dead-lettered",
        || async {
            let (_, health) = system.get("/healthz").await;
            (health["queues"]["dead_letters"] == 1).then_some(())
        },
    )
    .await;
    system.stop().await;
}
