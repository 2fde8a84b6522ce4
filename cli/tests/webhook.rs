//! The webhook function through a real server: Meta's verification handshake,
//! signature checks, body limits, and every fixture in `fixtures/webhooks`
//! replayed signed, with the stored counts of its README.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{assert_problem, eventually, fixture, System, PHONE_NUMBER_ID, SECRET};
use reqwest::header::CONTENT_TYPE;
use rusqlite::{Connection, OpenFlags};
use serde_json::{json, Value};
use zapfn_whatsapp::signature::sign;

const WAIT: Duration = Duration::from_secs(10);
const VERIFY_TOKEN: &str = "test-verify-token";

/// A system whose text function has no auto-reply rules, so that nothing but
/// the posted webhooks writes messages and statuses.
async fn quiet_system() -> System {
    let rules = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(rules.path(), r#"{"rules": []}"#).unwrap();
    common::start(&[("ZAPFN_RULES", rules.path().to_str().unwrap())]).await
}

/// The exact bytes of a fixture under `fixtures/webhooks/`.
fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(&format!("webhooks/{name}"))).unwrap()
}

/// The first `messages[]` object of a fixture.
fn fixture_message(name: &str) -> Value {
    let body: Value = serde_json::from_slice(&fixture_bytes(name)).unwrap();
    body["entry"][0]["changes"][0]["value"]["messages"][0].clone()
}

fn db(system: &System) -> Connection {
    let path = system.dir.path().join("zapfn.db");
    Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn count(system: &System, sql: &str) -> i64 {
    db(system).query_row(sql, [], |row| row.get(0)).unwrap()
}

/// (inbound messages, status events, raw events) stored so far.
fn counts(system: &System) -> (i64, i64, i64) {
    (
        count(
            system,
            "SELECT count(*) FROM messages WHERE direction = 'inbound'",
        ),
        count(system, "SELECT count(*) FROM status_events"),
        count(system, "SELECT count(*) FROM raw_events"),
    )
}

/// How many events were ever published to the outbox (its AUTOINCREMENT high-water mark).
fn events_published(system: &System) -> i64 {
    count(
        system,
        "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0)",
    )
}

/// Waits until every published event has been handled (the outbox is empty).
async fn drained(system: &System) {
    eventually(WAIT, "the outbox to drain", || async {
        (count(system, "SELECT count(*) FROM outbox") == 0).then_some(())
    })
    .await;
}

/// Posts `body` to `/webhook` with the given `X-Hub-Signature-256` (None: no header).
async fn post_raw(system: &System, body: Vec<u8>, signature: Option<String>) -> reqwest::Response {
    let mut request = system
        .http
        .post(system.url("/webhook"))
        .header(CONTENT_TYPE, "application/json");
    if let Some(signature) = signature {
        request = request.header("X-Hub-Signature-256", signature);
    }
    request.body(body).send().await.unwrap()
}

fn a_text_body() -> Vec<u8> {
    fixture_bytes("message_text.json")
}

// ---------------------------------------------------------------- GET verification

#[tokio::test]
async fn verification_echoes_the_challenge_for_the_right_token() {
    let system = common::start(&[]).await;
    let url = system.url(&format!(
        "/webhook?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
    ));
    let response = system.http.get(url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), "1158201444");
}

#[tokio::test]
async fn verification_is_refused_for_a_wrong_token_mode_or_missing_parameters() {
    let system = common::start(&[]).await;
    let queries = [
        "hub.mode=subscribe&hub.verify_token=wrong-token&hub.challenge=42".to_owned(),
        format!("hub.mode=unsubscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=42"),
        format!("hub.verify_token={VERIFY_TOKEN}&hub.challenge=42"),
        "hub.mode=subscribe&hub.challenge=42".to_owned(),
        format!("hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}"),
        String::new(),
    ];
    for query in queries {
        let response = system
            .http
            .get(system.url(&format!("/webhook?{query}")))
            .send()
            .await
            .unwrap();
        let problem = assert_problem(response, 403).await;
        assert!(
            !problem.to_string().contains("42\""),
            "challenge echoed for {query:?}"
        );
    }
}

// ---------------------------------------------------------------- POST refusals

#[tokio::test]
async fn post_without_a_signature_is_401_and_stores_nothing() {
    let system = quiet_system().await;
    let problem = assert_problem(post_raw(&system, a_text_body(), None).await, 401).await;
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("X-Hub-Signature-256"));
    assert_eq!(counts(&system), (0, 0, 0));
}

#[tokio::test]
async fn post_signed_with_another_secret_is_401() {
    let system = quiet_system().await;
    let body = a_text_body();
    let signature = sign(b"not-the-app-secret", &body);
    assert_problem(post_raw(&system, body, Some(signature)).await, 401).await;
    assert_eq!(counts(&system), (0, 0, 0));
}

#[tokio::test]
async fn post_with_the_signature_of_another_body_is_401() {
    let system = quiet_system().await;
    let signature = sign(SECRET.as_bytes(), &fixture_bytes("message_image.json"));
    assert_problem(post_raw(&system, a_text_body(), Some(signature)).await, 401).await;
    assert_eq!(counts(&system), (0, 0, 0));
}

#[tokio::test]
async fn malformed_signature_headers_are_401() {
    let system = quiet_system().await;
    let body = a_text_body();
    let good = sign(SECRET.as_bytes(), &body);
    let hex = good.strip_prefix("sha256=").unwrap().to_owned();
    let malformed = [
        "sha256=".to_owned(),
        hex.clone(),
        format!("sha1={hex}"),
        format!("sha256={}", &hex[..63]),
        format!("sha256={hex}00"),
        format!("sha256={}", "zz".repeat(32)),
        format!("SHA256={hex}"),
        format!("sha256= {hex}"),
    ];
    for signature in malformed {
        let response = post_raw(&system, body.clone(), Some(signature.clone())).await;
        assert_eq!(response.status().as_u16(), 401, "{signature:?}");
        assert_problem(response, 401).await;
    }
    assert_eq!(counts(&system), (0, 0, 0));
}

#[tokio::test]
async fn body_over_3_mib_is_413_with_a_problem_body() {
    let system = quiet_system().await;
    let mut body = br#"{"object":"whatsapp_business_account","entry":[],"pad":""#.to_vec();
    body.resize(3 * 1024 * 1024 + 1, b'x');
    body.extend_from_slice(b"\"}");
    let signature = sign(SECRET.as_bytes(), &body);
    let problem = assert_problem(post_raw(&system, body, Some(signature)).await, 413).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains(&(3 * 1024 * 1024).to_string()),
        "{problem}"
    );
}

#[tokio::test]
async fn body_of_exactly_3_mib_is_accepted() {
    let system = quiet_system().await;
    let mut body = br#"{"object":"whatsapp_business_account","entry":[],"pad":""#.to_vec();
    body.resize(3 * 1024 * 1024 - 2, b'x');
    body.extend_from_slice(b"\"}");
    assert_eq!(body.len(), 3 * 1024 * 1024);
    assert_eq!(system.post_webhook(&body).await, 200);
}

#[tokio::test]
async fn signed_non_json_body_is_400_with_a_problem_body() {
    let system = quiet_system().await;
    let body = b"hub.mode=subscribe&<html>not json</html>".to_vec();
    let signature = sign(SECRET.as_bytes(), &body);
    let problem = assert_problem(post_raw(&system, body, Some(signature)).await, 400).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("JSON"),
        "{problem}"
    );
    assert_eq!(counts(&system), (0, 0, 0));
}

#[tokio::test]
async fn signed_json_that_is_not_an_object_is_kept_raw() {
    let system = quiet_system().await;
    for body in [&b"\"hello\""[..], b"42", b"null", b"[1,2]"] {
        let before = counts(&system).2;
        assert_eq!(
            system.post_webhook(body).await,
            200,
            "{}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(
            counts(&system).2,
            before + 1,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    assert_eq!(counts(&system).0, 0);
}

// ---------------------------------------------------------------- fixtures and the README table

/// One row of the README's fixture table.
#[derive(Debug)]
struct Expectation {
    file: String,
    http: u16,
    msgs: i64,
    stat: i64,
    raw: i64,
}

/// The rows of the `## Table` section of `fixtures/webhooks/README.md`.
fn readme_table() -> Vec<Expectation> {
    let readme = std::fs::read_to_string(fixture("webhooks/README.md")).unwrap();
    let table = readme
        .split("\n## Table\n")
        .nth(1)
        .unwrap()
        .split("\n### ")
        .next()
        .unwrap();
    let number = |cell: &str| cell.trim().trim_matches('*').parse::<i64>().unwrap();
    let rows: Vec<Expectation> = table
        .lines()
        .filter(|line| line.starts_with("| `"))
        .map(|line| {
            let mut cells = line.trim().trim_end_matches('|').rsplitn(5, '|');
            let raw = number(cells.next().unwrap());
            let stat = number(cells.next().unwrap());
            let msgs = number(cells.next().unwrap());
            let http = number(cells.next().unwrap()) as u16;
            let file = cells.next().unwrap().split('`').nth(1).unwrap().to_owned();
            Expectation {
                file,
                http,
                msgs,
                stat,
                raw,
            }
        })
        .collect();
    assert!(
        rows.len() > 40,
        "README table not found or cut short ({} rows)",
        rows.len()
    );
    rows
}

/// Every file in `fixtures/webhooks` and `hostile/`, relative to `fixtures/webhooks`.
fn fixture_files() -> BTreeSet<String> {
    let root = fixture("webhooks");
    let mut files = BTreeSet::new();
    for dir in [root.clone(), root.join("hostile")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() && path.file_name().unwrap() != "README.md" {
                let relative = path.strip_prefix(&root).unwrap();
                files.insert(
                    relative
                        .to_str()
                        .unwrap()
                        .replace(std::path::MAIN_SEPARATOR, "/"),
                );
            }
        }
    }
    files
}

#[test]
fn readme_table_lists_every_fixture_file() {
    let listed: BTreeSet<String> = readme_table().into_iter().map(|row| row.file).collect();
    assert_eq!(listed, fixture_files());
}

#[tokio::test]
async fn every_fixture_posted_alone_gets_the_readme_status_and_counts() {
    let mut mismatches = Vec::new();
    for row in readme_table() {
        let system = quiet_system().await;
        let status = system.post_webhook(&fixture_bytes(&row.file)).await;
        let stored = counts(&system);
        if (status, stored) != (row.http, (row.msgs, row.stat, row.raw)) {
            mismatches.push(format!(
                "{}: got HTTP {status} (msgs, stat, raw) = {stored:?}, README says HTTP {} {:?}",
                row.file,
                row.http,
                (row.msgs, row.stat, row.raw)
            ));
        }
        system.stop().await;
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}

#[tokio::test]
async fn every_fixture_posted_once_into_one_store_gives_the_readme_totals() {
    let system = quiet_system().await;
    let mut refused = 0;
    for row in readme_table() {
        let status = system.post_webhook(&fixture_bytes(&row.file)).await;
        assert_eq!(status, row.http, "{}", row.file);
        refused += usize::from(status == 400);
    }
    assert_eq!(refused, 2);
    assert_eq!(counts(&system), (39, 8, 12));
}

#[tokio::test]
async fn batch_messages_route_by_phone_number_id() {
    let system = quiet_system().await;
    assert_eq!(
        system
            .post_webhook(&fixture_bytes("batch_multi.json"))
            .await,
        200
    );
    let per_number = |id: &str| {
        db(&system)
            .query_row(
                "SELECT count(*) FROM messages WHERE direction = 'inbound' AND phone_number_id = ?1",
                [id],
                |row| row.get::<_, i64>(0),
            )
            .unwrap()
    };
    assert_eq!(per_number("106540352242922"), 3);
    assert_eq!(per_number("106540352242999"), 4);
    let (status, page) = system
        .get("/v1/conversations?phone_number_id=106540352242999")
        .await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["wa_id"], "5521988887777");
    assert_eq!(items[0]["contact_name"], "João Souza");
}

#[tokio::test]
async fn unicode_text_with_nul_round_trips_exactly() {
    let system = quiet_system().await;
    assert_eq!(
        system
            .post_webhook(&fixture_bytes("hostile/unicode.json"))
            .await,
        200
    );
    let expected = fixture_message("hostile/unicode.json");
    let body = expected["text"]["body"].as_str().unwrap();
    assert!(body.contains('\0'));
    let view = system
        .message(expected["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(view["text"].as_str(), Some(body));
    assert_eq!(view["raw"], expected);
}

#[tokio::test]
async fn huge_text_is_stored_whole() {
    let system = quiet_system().await;
    assert_eq!(
        system
            .post_webhook(&fixture_bytes("hostile/huge_strings.json"))
            .await,
        200
    );
    let expected = fixture_message("hostile/huge_strings.json");
    let view = system
        .message(expected["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(view["text"].as_str().map(str::len), Some(100_000));
}

#[tokio::test]
async fn deeply_nested_message_is_stored_and_readable() {
    let system = quiet_system().await;
    let bytes = fixture_bytes("hostile/deeply_nested.json");
    assert_eq!(system.post_webhook(&bytes).await, 200);
    let wamid = "wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggDEEP0001";
    assert!(String::from_utf8_lossy(&bytes).contains(wamid));
    let view = system
        .message(wamid)
        .await
        .expect("the nested message is readable");
    assert_eq!(view["type"], "text");
    assert_eq!(view["direction"], "inbound");
    assert_eq!(view["text"], "mensagem com campo aninhado");
    // The verbatim copy keeps the whole tree (the read API cannot show it as JSON: serde_json's depth limit).
    let stored: String = db(&system)
        .query_row(
            "SELECT raw FROM messages WHERE wa_message_id = ?1",
            [wamid],
            |row| row.get(0),
        )
        .unwrap();
    assert!(
        stored.contains(&format!("{}\"fundo\"{}", "[".repeat(200), "]".repeat(200))),
        "nested tree not kept"
    );
}

// ---------------------------------------------------------------- messages by wamid

/// What the read API must show for one message fixture.
struct Shown {
    file: &'static str,
    message_type: &'static str,
    text: Option<&'static str>,
    /// The keys of the media object to check against the fixture, or None when there is no media.
    media: Option<&'static [&'static str]>,
    has_context: bool,
}

const fn shown(
    file: &'static str,
    message_type: &'static str,
    text: Option<&'static str>,
    media: Option<&'static [&'static str]>,
    has_context: bool,
) -> Shown {
    Shown {
        file,
        message_type,
        text,
        media,
        has_context,
    }
}

const MEDIA: &[&str] = &["id", "mime_type", "sha256"];

const SHOWN: &[Shown] = &[
    shown(
        "message_text.json",
        "text",
        Some("Oi! Vocês abrem no sábado?"),
        None,
        false,
    ),
    shown(
        "message_image.json",
        "image",
        Some("Foto do produto com defeito"),
        Some(MEDIA),
        false,
    ),
    shown("message_video.json", "video", None, Some(MEDIA), false),
    shown(
        "message_audio.json",
        "audio",
        None,
        Some(&["id", "mime_type", "sha256", "voice"]),
        false,
    ),
    shown(
        "message_voice.json",
        "audio",
        None,
        Some(&["id", "mime_type", "sha256", "voice"]),
        false,
    ),
    shown(
        "message_document.json",
        "document",
        Some("Segue o contrato assinado"),
        Some(&["id", "mime_type", "sha256", "filename"]),
        false,
    ),
    shown(
        "message_sticker.json",
        "sticker",
        None,
        Some(&["id", "mime_type", "sha256", "animated"]),
        false,
    ),
    shown(
        "message_location.json",
        "location",
        Some("MASP"),
        None,
        false,
    ),
    shown("message_contacts.json", "contacts", None, None, false),
    shown(
        "message_interactive_button_reply.json",
        "interactive",
        Some("Sim, confirmo"),
        None,
        true,
    ),
    shown(
        "message_interactive_list_reply.json",
        "interactive",
        Some("Seg 05/01 10:00"),
        None,
        true,
    ),
    shown(
        "message_interactive_nfm_reply.json",
        "interactive",
        Some("Sent"),
        None,
        true,
    ),
    shown(
        "message_button.json",
        "button",
        Some("Confirmar"),
        None,
        true,
    ),
    shown("message_reaction.json", "reaction", Some("👍"), None, false),
    shown(
        "message_order.json",
        "order",
        Some("Pode entregar hoje à tarde?"),
        None,
        false,
    ),
    shown(
        "message_system_user_changed_number.json",
        "system",
        Some("User Maria Silva changed from 5511999990000 to 5511977776666"),
        None,
        false,
    ),
    shown(
        "message_referral.json",
        "text",
        Some("Olá! Quero saber mais sobre a promoção."),
        None,
        false,
    ),
    shown(
        "message_reply_context.json",
        "text",
        Some("Pode ser às 15h?"),
        None,
        true,
    ),
    shown(
        "message_forwarded.json",
        "text",
        Some("Olha essa promoção que recebi"),
        None,
        true,
    ),
    shown(
        "message_frequently_forwarded.json",
        "text",
        Some("URGENTE: repasse para todos os seus contatos!!!"),
        None,
        true,
    ),
    shown("message_unsupported.json", "unsupported", None, None, false),
    shown("message_unknown_type.json", "hologram", None, None, false),
    shown(
        "message_with_bsuid.json",
        "text",
        Some("Oi, sou eu de novo!"),
        None,
        false,
    ),
    shown(
        "message_group_text.json",
        "text",
        Some("O que vocês acham do novo horário?"),
        None,
        false,
    ),
    shown(
        "message_bsuid_only.json",
        "text",
        Some("Olá, só tenho nome de usuário"),
        None,
        false,
    ),
];

#[test]
fn every_message_fixture_has_a_read_api_expectation() {
    let covered: BTreeSet<&str> = SHOWN.iter().map(|case| case.file).collect();
    let message_files: BTreeSet<String> = fixture_files()
        .into_iter()
        .filter(|file| file.starts_with("message_") && file != "message_reaction_removed.json")
        .collect();
    assert_eq!(
        covered
            .into_iter()
            .map(str::to_owned)
            .collect::<BTreeSet<_>>(),
        message_files
    );
}

#[tokio::test]
async fn every_message_fixture_is_readable_by_wamid() {
    let system = quiet_system().await;
    for case in SHOWN {
        assert_eq!(
            system.post_webhook(&fixture_bytes(case.file)).await,
            200,
            "{}",
            case.file
        );
    }
    for case in SHOWN {
        let expected = fixture_message(case.file);
        let wamid = expected["id"].as_str().unwrap();
        let view = system
            .message(wamid)
            .await
            .unwrap_or_else(|| panic!("{}: {wamid} not found", case.file));
        let file = case.file;
        assert_eq!(view["wamid"], wamid, "{file}");
        assert_eq!(view["type"], case.message_type, "{file}");
        assert_eq!(view["direction"], "inbound", "{file}");
        assert_eq!(view["status"], "received", "{file}");
        let sender = expected.get("from").unwrap_or(&expected["from_user_id"]);
        assert_eq!(view["from"], *sender, "{file}");
        assert_eq!(view["phone_number_id"], PHONE_NUMBER_ID, "{file}");
        let timestamp: i64 = expected["timestamp"].as_str().unwrap().parse().unwrap();
        assert_eq!(view["timestamp"], timestamp, "{file}");
        assert_eq!(view["text"].as_str(), case.text, "{file}");
        assert_eq!(
            view["raw"], expected,
            "{file}: raw is not the fixture's message object"
        );
        match case.media {
            Some(keys) => {
                let media = &expected[case.message_type];
                for key in keys {
                    assert!(!media[key].is_null(), "{file}: fixture has no media.{key}");
                    assert_eq!(view["media"][key], media[key], "{file}: media.{key}");
                }
            }
            None => assert!(
                view["media"].is_null(),
                "{file}: unexpected media {}",
                view["media"]
            ),
        }
        if case.has_context {
            assert_eq!(view["context"], expected["context"], "{file}");
        } else {
            assert!(view["context"].is_null(), "{file}");
        }
    }
}

#[tokio::test]
async fn voice_notes_and_documents_keep_their_media_details() {
    let system = quiet_system().await;
    for file in [
        "message_voice.json",
        "message_audio.json",
        "message_document.json",
    ] {
        assert_eq!(system.post_webhook(&fixture_bytes(file)).await, 200);
    }
    let voice = system
        .message("wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggVOICE0001")
        .await
        .unwrap();
    assert_eq!(voice["media"]["voice"], true);
    assert_eq!(voice["media"]["mime_type"], "audio/ogg; codecs=opus");
    let audio = system
        .message("wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggAUDIO0001")
        .await
        .unwrap();
    assert_eq!(audio["media"]["voice"], false);
    let document = system
        .message("wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggDOC0001")
        .await
        .unwrap();
    assert_eq!(document["media"]["filename"], "contrato-assinado.pdf");
    assert_eq!(document["media"]["id"], "1480000000000005");
}

#[tokio::test]
async fn reaction_removal_is_a_second_message_with_an_empty_emoji() {
    let system = quiet_system().await;
    assert_eq!(
        system
            .post_webhook(&fixture_bytes("message_reaction.json"))
            .await,
        200
    );
    assert_eq!(
        system
            .post_webhook(&fixture_bytes("message_reaction_removed.json"))
            .await,
        200
    );
    assert_eq!(counts(&system).0, 2);
    let removed = system
        .message("wamid.HBgMNTUxMTk5OTk5MDAwFQIAEhggREACTION0002")
        .await
        .unwrap();
    assert_eq!(removed["type"], "reaction");
    assert_eq!(removed["text"].as_str().unwrap_or_default(), "");
    assert_eq!(
        removed["raw"]["reaction"]["message_id"],
        "wamid.HBgMNTUxMTk5OTk5MDAwFQIAERgSREACTTARGET0001"
    );
}

// ---------------------------------------------------------------- dedupe

#[tokio::test]
async fn duplicate_fixtures_store_one_message_and_publish_one_event() {
    let system = common::start(&[]).await;
    assert_eq!(
        system
            .post_webhook(&fixture_bytes("duplicate_a.json"))
            .await,
        200
    );
    assert_eq!(counts(&system).0, 1);
    let events_after_first = events_published(&system);
    assert_eq!(
        events_after_first, 1,
        "one `messages` event for the first copy"
    );
    assert_eq!(
        system
            .post_webhook(&fixture_bytes("duplicate_b.json"))
            .await,
        200
    );
    assert_eq!(counts(&system).0, 1);
    assert_eq!(
        events_published(&system),
        events_after_first,
        "the duplicate published an event"
    );
}

#[tokio::test]
async fn a_duplicated_greeting_gets_one_auto_reply() {
    let system = common::start(&[]).await;
    let wamid = zapfn_whatsapp::builders::new_wamid();
    let now = chrono::Utc::now().timestamp();
    let message = zapfn_whatsapp::builders::text_message("5511912345678", &wamid, now, "hi");
    let body = zapfn_whatsapp::builders::messages_notification(
        PHONE_NUMBER_ID,
        "5511912345678",
        "Ana",
        vec![message],
    );
    let bytes = body.to_string();
    assert_eq!(system.post_webhook(bytes.as_bytes()).await, 200);
    let sandbox = system.running.sandbox.as_ref().unwrap();
    eventually(WAIT, "the auto-reply reaches the sandbox", || async {
        (!sandbox.sent().is_empty()).then_some(())
    })
    .await;
    assert_eq!(system.post_webhook(bytes.as_bytes()).await, 200);
    let outbound = "SELECT count(*) FROM messages WHERE direction = 'outbound'";
    drained(&system).await;
    assert_eq!(count(&system, outbound), 1);
    assert_eq!(sandbox.sent().len(), 1);
    assert_eq!(
        count(
            &system,
            "SELECT count(*) FROM messages WHERE direction = 'inbound'"
        ),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_body_posted_10_times_concurrently_stores_one_row() {
    let system = quiet_system().await;
    let body = fixture_bytes("message_image.json");
    let mut posts = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (http, url, body) = (system.http.clone(), system.url("/webhook"), body.clone());
        posts.spawn(async move {
            zapfn_sandbox::post_signed(&http, &url, SECRET.as_bytes(), &body)
                .await
                .unwrap()
        });
    }
    while let Some(status) = posts.join_next().await {
        assert_eq!(status.unwrap().as_u16(), 200);
    }
    system.stored().await;
    assert_eq!(counts(&system), (1, 0, 0));
    assert_eq!(events_published(&system), 1);
}

// ---------------------------------------------------------------- statuses

#[tokio::test]
async fn out_of_order_statuses_for_an_unknown_wamid_end_at_read() {
    let system = quiet_system().await;
    for file in [
        "status_read.json",
        "status_delivered.json",
        "status_sent.json",
    ] {
        assert_eq!(
            system.post_webhook(&fixture_bytes(file)).await,
            200,
            "{file}"
        );
    }
    let view = eventually(
        WAIT,
        "three statuses applied to wamid.OUTBOUND0001",
        || async {
            let view = system.message("wamid.OUTBOUND0001").await?;
            (view["status"] == "read" && view["status_history"].as_array()?.len() == 3)
                .then_some(view)
        },
    )
    .await;
    assert_eq!(view["direction"], "outbound");
    assert_eq!(view["to"], "5511999990000");
    let history = common::history(&view);
    assert_eq!(history, ["sent", "delivered", "read"]);
    // The late `sent` did not move it back.
    drained(&system).await;
    assert_eq!(
        system.message("wamid.OUTBOUND0001").await.unwrap()["status"],
        "read"
    );
}

#[tokio::test]
async fn status_lifecycle_ends_at_played_and_reposts_add_nothing() {
    let system = quiet_system().await;
    let files = [
        "status_sent.json",
        "status_delivered.json",
        "status_read.json",
        "status_played.json",
    ];
    for file in files {
        assert_eq!(
            system.post_webhook(&fixture_bytes(file)).await,
            200,
            "{file}"
        );
    }
    eventually(WAIT, "wamid.OUTBOUND0001 played", || async {
        let view = system.message("wamid.OUTBOUND0001").await?;
        (view["status"] == "played").then_some(())
    })
    .await;
    let published = events_published(&system);
    for file in files {
        assert_eq!(
            system.post_webhook(&fixture_bytes(file)).await,
            200,
            "{file}"
        );
    }
    assert_eq!(counts(&system), (0, 4, 0));
    assert_eq!(events_published(&system), published);
    let view = system.message("wamid.OUTBOUND0001").await.unwrap();
    assert_eq!(view["status"], "played");
    assert_eq!(view["status_history"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn failed_status_keeps_its_error_code() {
    let system = quiet_system().await;
    assert_eq!(
        system
            .post_webhook(&fixture_bytes("status_failed.json"))
            .await,
        200
    );
    let view = eventually(WAIT, "wamid.OUTBOUND0002 failed", || async {
        let view = system.message("wamid.OUTBOUND0002").await?;
        (view["status"] == "failed").then_some(view)
    })
    .await;
    assert_eq!(view["direction"], "outbound");
    assert_eq!(view["errors"][0]["code"], 131026, "{view}");
    let history = view["status_history"].as_array().unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0]["status"], "failed");
    assert_eq!(history[0]["errors"][0]["code"], 131026);
    // Failed is terminal: a later `read` for the same wamid does not revive it.
    let read = zapfn_whatsapp::builders::statuses_notification(
        PHONE_NUMBER_ID,
        vec![
            json!({"id": "wamid.OUTBOUND0002", "status": "read", "timestamp": "1767225700", "recipient_id": "5511999990000"}),
        ],
    );
    assert_eq!(system.post_webhook(read.to_string().as_bytes()).await, 200);
    assert_eq!(
        count(
            &system,
            "SELECT count(*) FROM status_events WHERE subject = 'wamid.OUTBOUND0002'"
        ),
        2
    );
    drained(&system).await;
    assert_eq!(
        system.message("wamid.OUTBOUND0002").await.unwrap()["status"],
        "failed"
    );
}
