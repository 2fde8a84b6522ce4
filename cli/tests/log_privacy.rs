//! Personal data and secrets stay out of the logs. A real `zapfn dev` process,
//! in live mode (an access token, Meta played by the Graph API sandbox in this
//! test), runs the whole loop with JSON logs at `RUST_LOG=info` written to a
//! file: customers write texts and send captioned media, the send API sends
//! texts that are delivered and read, Meta refuses one send for good and fails
//! another twice, a corrupt file is refused, a request is signed with the wrong
//! secret, the verification is tried with a wrong and the right token, and API
//! keys (a wrong one, the bootstrap one, one created through the API) are used.
//! Then no log line may hold a customer's number in any usual form, the
//! business's display number, a customer's name, a message body, caption, file
//! name or extracted text, or any secret.

mod child;

use std::path::Path;
use std::time::{Duration, Instant};

use child::{API_KEY, SECRET};
use serde_json::{json, Value};
use zapfn_sandbox::{Sandbox, SandboxConfig};

const PHONE_NUMBER_ID: &str = "106540352242922";
const DISPLAY_NUMBER: &str = "15550193456";
const ACCESS_TOKEN: &str = "EAAGprivacyTestAccessToken7781";
const VERIFY_TOKEN: &str = "privacy-verify-token-5521";
const PEPPER: &str = "privacy-pepper-value-0934";
/// Customers: (wa_id, profile name).
const ANA: (&str, &str) = ("5511987650001", "Ana Privacidade");
const BRUNO: (&str, &str) = ("5521976540002", "Bruno Sigilo");
const CARLA: (&str, &str) = ("5531965430003", "Carla Reservada");

const INBOUND_BODY: &str = "meu cpf esta no envelope azul";
const SENT_BODY: &str = "sua consulta ficou para quinta as nove";
const REFUSED_BODY: &str = "mensagem que a Meta recusa";
const RETRIED_BODY: &str = "mensagem que falha duas vezes";
const CAPTION: &str = "foto do comprovante pessoal";
const DOC_CAPTION: &str = "segue o contrato assinado";
const FILENAME: &str = "contrato-ana-privacidade.pdf";

/// The child's API with a key.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn send_text(&self, key: &str, to: &str, body: &str) -> String {
        let request = json!({
            "messaging_product": "whatsapp", "to": to, "type": "text", "text": { "body": body }
        });
        let (status, answer) = self
            .call(
                reqwest::Method::POST,
                &format!("/v1/{PHONE_NUMBER_ID}/messages"),
                key,
                Some(request),
            )
            .await;
        assert_eq!(status, 202, "{answer}");
        answer["id"].as_str().unwrap().to_owned()
    }

    /// Waits until message `id` satisfies `done`; returns its view.
    async fn wait(&self, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let (status, view) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/messages/{id}"),
                    API_KEY,
                    None,
                )
                .await;
            if status == 200 && done(&view) {
                return view;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "timed out waiting for {id} to {what}: {view}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Seeds `bytes` as a customer's media in the sandbox; returns its id.
async fn seed(http: &reqwest::Client, graph: &str, bytes: Vec<u8>, options: &str) -> String {
    let response = http
        .post(format!("{graph}/sandbox/media?{options}"))
        .body(bytes)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let seeded: Value = response.json().await.unwrap();
    seeded["id"].as_str().unwrap().to_owned()
}

/// A customer writes through the sandbox (signed like Meta); returns the wamid.
async fn customer(
    http: &reqwest::Client,
    graph: &str,
    who: (&str, &str),
    message: Value,
) -> String {
    let mut body = json!({ "phone_number_id": PHONE_NUMBER_ID, "from": who.0, "name": who.1 });
    body.as_object_mut()
        .unwrap()
        .extend(message.as_object().unwrap().clone());
    let answer: Value = http
        .post(format!("{graph}/sandbox/inbound"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["webhook_status"], 200, "{answer}");
    answer["wamid"].as_str().unwrap().to_owned()
}

async fn fault(http: &reqwest::Client, graph: &str, faults: Value) {
    let response = http
        .post(format!("{graph}/sandbox/faults"))
        .json(&json!({ "faults": faults }))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
}

/// The forms a number can take in text: as given, with `+`, without the country
/// code, and the local part with a dash (`98765-0001`).
fn number_forms(wa_id: &str) -> Vec<String> {
    let national = &wa_id[2..];
    let local = &wa_id[4..];
    let (head, tail) = local.split_at(local.len() - 4);
    vec![
        wa_id.to_owned(),
        format!("+{wa_id}"),
        national.to_owned(),
        format!("{head}-{tail}"),
    ]
}

/// Every line of `path` parsed as one JSON object.
fn log_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| {
            serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_at_info_hold_no_numbers_no_bodies_and_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let port = child::free_port();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let graph = format!("http://{}", listener.local_addr().unwrap());
    let mut meta = SandboxConfig::new(SECRET, format!("http://127.0.0.1:{port}/webhook"));
    meta.display_phone_number = DISPLAY_NUMBER.to_owned();
    let sandbox = Sandbox::new(meta);
    let router = sandbox.router();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let log_path = dir.path().join("zapfn.log");
    let log_file = std::fs::File::create(&log_path).unwrap();
    let graph_url = format!("{graph}/graph");
    let env = [
        ("RUST_LOG", "info"),
        ("WA_ACCESS_TOKEN", ACCESS_TOKEN),
        ("WA_VERIFY_TOKEN", VERIFY_TOKEN),
        ("WA_GRAPH_URL", graph_url.as_str()),
        ("WA_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
        ("ZAPFN_KEY_PEPPER", PEPPER),
        ("ZAPFN_ALLOW_PRIVATE_MEDIA_HOSTS", "1"),
        ("ZAPFN_MAX_ATTEMPTS", "3"),
        // A reset mid-send waits this long for a status naming the message before resending.
        ("ZAPFN_RECONCILE_SECONDS", "1"),
    ];
    let data = dir.path().join("data");
    let mut zapfn = child::spawn_with(port, &data, &env, |command| {
        command.stderr(log_file);
    });
    zapfn.wait_healthy().await;
    let http = reqwest::Client::new();
    let api = Api {
        http: http.clone(),
        base: zapfn.url(""),
    };

    // Verification: a wrong token (refused) and the right one.
    for (token, expected) in [("not-the-token", 403), (VERIFY_TOKEN, 200)] {
        let response = http
            .get(zapfn.url("/webhook"))
            .query(&[
                ("hub.mode", "subscribe"),
                ("hub.verify_token", token),
                ("hub.challenge", "1158201444"),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), expected);
    }
    // A webhook signed with another secret, carrying a number and a body.
    let forged = zapfn_whatsapp::builders::messages_notification(
        PHONE_NUMBER_ID,
        ANA.0,
        ANA.1,
        vec![zapfn_whatsapp::builders::text_message(
            ANA.0,
            "wamid.FORGED",
            chrono::Utc::now().timestamp(),
            INBOUND_BODY,
        )],
    );
    let status = zapfn_sandbox::post_signed(
        &http,
        &zapfn.url("/webhook"),
        b"not-the-app-secret",
        forged.to_string().as_bytes(),
    )
    .await
    .unwrap();
    assert_eq!(status, 401);

    // Keys: a wrong one, and one created through the admin API.
    let (status, _) = api
        .call(
            reqwest::Method::GET,
            "/v1/conversations",
            "zk_wrongkey",
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, created) = api
        .call(
            reqwest::Method::POST,
            "/v1/keys",
            API_KEY,
            Some(json!({ "name": "privacy", "scopes": ["send", "read"], "phone_number_ids": [PHONE_NUMBER_ID] })),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let created_key = created["key"].as_str().unwrap().to_owned();

    // Customers write: a text, a captioned photo, a named document, a corrupt photo.
    let text = customer(&http, &graph, ANA, json!({ "text": INBOUND_BODY })).await;
    api.wait(&text, "be stored", |view| view["text"] == INBOUND_BODY)
        .await;
    let photo = std::fs::read(common_fixture("media/photo.jpg")).unwrap();
    let photo_id = seed(&http, &graph, photo.clone(), "mime_type=image/jpeg").await;
    let image = customer(
        &http,
        &graph,
        BRUNO,
        json!({ "image": { "id": photo_id, "caption": CAPTION } }),
    )
    .await;
    let pdf = std::fs::read(common_fixture("media/invoice-2-pages.pdf")).unwrap();
    let pdf_id = seed(&http, &graph, pdf, "mime_type=application/pdf").await;
    let document = customer(
        &http,
        &graph,
        CARLA,
        json!({ "document": { "id": pdf_id, "caption": DOC_CAPTION, "filename": FILENAME } }),
    )
    .await;
    let corrupt_id = seed(&http, &graph, photo, "mime_type=image/jpeg&corrupt=true").await;
    let corrupt = customer(&http, &graph, ANA, json!({ "image": { "id": corrupt_id } })).await;
    for wamid in [&image, &document] {
        api.wait(wamid, "have its media stored", |view| {
            view["media"]["object"]["status"] == "done"
        })
        .await;
    }
    api.wait(&corrupt, "have its media refused", |view| {
        view["media"]["object"]["status"] == "failed"
    })
    .await;

    // Sends: one delivered and read, one Meta refuses for good, one that fails twice first.
    fault(
        &http,
        &graph,
        json!([
            { "to": BRUNO.0, "error_code": 131026 },
            { "to": CARLA.0, "http_status": 500 },
            { "to": CARLA.0, "reset": true },
        ]),
    )
    .await;
    let sent = api.send_text(&created_key, ANA.0, SENT_BODY).await;
    let refused = api.send_text(API_KEY, BRUNO.0, REFUSED_BODY).await;
    let retried = api.send_text(API_KEY, CARLA.0, RETRIED_BODY).await;
    api.wait(&sent, "be read", |view| view["status"] == "read")
        .await;
    let refused_view = api
        .wait(&refused, "fail", |view| view["status"] == "failed")
        .await;
    assert_eq!(refused_view["errors"][0]["code"], 131026, "{refused_view}");
    api.wait(&retried, "be read", |view| view["status"] == "read")
        .await;
    // A refused send request that carries a number and a too-long body.
    let (status, _) = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/{PHONE_NUMBER_ID}/messages"),
            API_KEY,
            Some(json!({
                "messaging_product": "whatsapp", "to": ANA.0, "type": "text",
                "text": { "body": format!("{SENT_BODY} {}", "x".repeat(4100)) }
            })),
        )
        .await;
    assert_eq!(status, 400);

    // What the processors extracted is personal too (OCR and PDF text).
    let mut extracted = Vec::new();
    for wamid in [&image, &document] {
        let view = api
            .wait(wamid, "be processed", |view| {
                let media = &view["media"];
                ["image", "document"]
                    .iter()
                    .any(|kind| matches!(media[kind]["status"].as_str(), Some("done" | "failed")))
            })
            .await;
        for kind in ["image", "document"] {
            if let Some(text) = view["media"][kind]["text"].as_str() {
                extracted.extend(
                    text.split_whitespace()
                        .filter(|word| word.len() >= 8)
                        .map(str::to_owned),
                );
            }
        }
    }

    zapfn.signal(libc::SIGTERM);
    let exit = zapfn.wait_exit(Duration::from_secs(15)).await;
    assert!(exit.is_some_and(|status| status.success()), "{exit:?}");

    let lines = log_lines(&log_path);
    let messages: Vec<&str> = lines
        .iter()
        .filter_map(|line| line["message"].as_str())
        .collect();
    // The paths that could leak did run and log at INFO or above.
    for expected in [
        "webhook verified by Meta",
        "webhook verification refused: check WA_VERIFY_TOKEN",
        "webhook refused: bad signature (check WA_APP_SECRET)",
        "media stored",
        "media refused",
        "send failed",
        "stopped",
    ] {
        assert!(
            messages.contains(&expected),
            "no {expected:?} line in {messages:#?}"
        );
    }
    for line in &lines {
        let severity = line["severity"].as_str().unwrap_or_default();
        assert!(
            matches!(severity, "INFO" | "WARNING" | "ERROR"),
            "a line below INFO at RUST_LOG=info: {line}"
        );
    }

    let mut forbidden: Vec<(String, &str)> = Vec::new();
    for (wa_id, name) in [ANA, BRUNO, CARLA] {
        forbidden.extend(
            number_forms(wa_id)
                .into_iter()
                .map(|n| (n, "a customer's number")),
        );
        forbidden.push((name.to_owned(), "a customer's name"));
    }
    forbidden.push((DISPLAY_NUMBER.to_owned(), "the display number"));
    for body in [
        INBOUND_BODY,
        SENT_BODY,
        REFUSED_BODY,
        RETRIED_BODY,
        CAPTION,
        DOC_CAPTION,
        FILENAME,
    ] {
        forbidden.push((body.to_owned(), "a message body, caption or file name"));
    }
    for word in &extracted {
        forbidden.push((word.clone(), "text extracted from media"));
    }
    for secret in [
        SECRET,
        API_KEY,
        ACCESS_TOKEN,
        VERIFY_TOKEN,
        PEPPER,
        created_key.as_str(),
    ] {
        forbidden.push((secret.to_owned(), "a secret"));
    }
    let raw = std::fs::read_to_string(&log_path).unwrap();
    let leaks: Vec<String> = forbidden
        .iter()
        .filter(|(needle, _)| raw.contains(needle.as_str()))
        .map(|(needle, what)| {
            let line = raw.lines().find(|l| l.contains(needle.as_str())).unwrap();
            format!("{what} {needle:?} in {line}")
        })
        .collect();
    assert!(leaks.is_empty(), "leaks:\n{}", leaks.join("\n"));
    eprintln!(
        "log privacy: {} JSON lines at INFO and above, {} forbidden strings ({} extracted words) checked, none found",
        lines.len(),
        forbidden.len(),
        extracted.len()
    );
}

fn common_fixture(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures")
        .join(path)
}
