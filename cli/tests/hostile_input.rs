//! Hostile requests against a real server on loopback: JSON nested past the
//! depth cap, long URLs and headers, CR/LF and control bytes in headers,
//! oversized text, and clients that trickle their head or body (slowloris).
//! Each is refused with a clear status (and a problem body where the request
//! got far enough to have one), stores nothing, and the server stays responsive.

mod child;
mod common;

use std::time::{Duration, Instant};

use common::{assert_problem, System, API_KEY, PHONE_NUMBER_ID, SECRET};
use reqwest::header::CONTENT_TYPE;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use zapfn_whatsapp::{builders, signature, webhook};

const CUSTOMER: &str = "5511999990000";

/// A signed-webhook body: one text message carrying an unknown field nested `depth` levels.
fn nested_message(wamid: &str, depth: usize) -> Vec<u8> {
    let mut message = builders::text_message(CUSTOMER, wamid, 1_767_225_600, "nested");
    message["x_tree"] = json!("TREE");
    let body = builders::messages_notification(PHONE_NUMBER_ID, CUSTOMER, "Maria", vec![message])
        .to_string();
    let tree = format!("{}0{}", "[".repeat(depth), "]".repeat(depth));
    body.replace("\"TREE\"", &tree).into_bytes()
}

/// Levels around a message's fields in a notification (object, entry, change, value, messages, message).
const ENVELOPE_DEPTH: usize = 8;

/// How deeply a body without brackets in its strings nests.
fn depth(body: &[u8]) -> usize {
    let mut level: usize = 0;
    let mut deepest = 0;
    for byte in body {
        match byte {
            b'[' | b'{' => {
                level += 1;
                deepest = deepest.max(level);
            }
            b']' | b'}' => level -= 1,
            _ => {}
        }
    }
    deepest
}

async fn post_signed(system: &System, path: &str, body: Vec<u8>) -> reqwest::Response {
    system
        .http
        .post(system.url(path))
        .header(CONTENT_TYPE, "application/json")
        .header(
            "X-Hub-Signature-256",
            signature::sign(SECRET.as_bytes(), &body),
        )
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Writes `request` on a fresh connection and reads the answer until the server closes it.
async fn raw_exchange(port: u16, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
    read.await.expect("the server closes the connection").ok();
    String::from_utf8_lossy(&answer).into_owned()
}

async fn assert_healthy(system_url: &str) {
    let response = reqwest::get(format!("{system_url}/healthz")).await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "server still answers");
}

// ---------------------------------------------------------------- JSON depth

#[tokio::test]
async fn json_nested_past_the_cap_is_400_and_nothing_is_stored() {
    let system = common::start(&[]).await;
    // 100,000 levels: the parser itself copes (serde_json skips unknown fields
    // iteratively), but the server refuses to take such a body at all.
    let deep = nested_message("wamid.DEEP100000", 100_000);
    assert_eq!(webhook::parse(&deep).unwrap().messages.len(), 1);
    let problem = assert_problem(post_signed(&system, "/webhook", deep).await, 400).await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("nested more than 256 levels"),
        "{problem}"
    );
    assert!(system.message("wamid.DEEP100000").await.is_none());

    // Just past the cap is refused; at the cap is stored (Meta's payloads nest < 10 deep).
    let over = nested_message("wamid.DEEP257", 256 - ENVELOPE_DEPTH + 1);
    assert_eq!(depth(&over), 257);
    assert_problem(post_signed(&system, "/webhook", over).await, 400).await;
    let at_cap = nested_message("wamid.DEEP256", 256 - ENVELOPE_DEPTH);
    assert_eq!(depth(&at_cap), 256);
    assert_eq!(post_signed(&system, "/webhook", at_cap).await.status(), 200);
    assert!(system.message("wamid.DEEP256").await.is_some());
    assert!(system.message("wamid.DEEP257").await.is_none());

    // The send API too (before it parses anything).
    let tree = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let body = format!(
        r#"{{"messaging_product":"whatsapp","to":"{CUSTOMER}","type":"text","text":{{"body":"hi"}},"x":{tree}}}"#
    );
    let response = system
        .http
        .post(system.url(&format!("/v1/{PHONE_NUMBER_ID}/messages")))
        .bearer_auth(API_KEY)
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_problem(response, 400).await;
    assert_healthy(&system.running.url()).await;
}

// ---------------------------------------------------------------- URL and header sizes

#[tokio::test]
async fn a_long_url_is_414_and_oversized_headers_are_431() {
    let system = common::start(&[]).await;
    let long = system.url(&format!("/v1/messages/{}", "a".repeat(9_000)));
    let response = system
        .http
        .get(long)
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    let problem = assert_problem(response, 414).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("8192"),
        "{problem}"
    );
    // Under the cap, the route answers normally.
    let fits = system.url(&format!("/v1/messages/{}", "a".repeat(8_000)));
    let response = system
        .http
        .get(fits)
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);

    let body = nested_message("wamid.HEADERS0001", 1);
    let padded = system
        .http
        .post(system.url("/webhook"))
        .header(
            "X-Hub-Signature-256",
            signature::sign(SECRET.as_bytes(), &body),
        )
        .header("X-Padding", "p".repeat(20_000))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    let problem = assert_problem(padded, 431).await;
    assert!(
        problem["detail"].as_str().unwrap().contains("16384"),
        "{problem}"
    );
    assert!(system.message("wamid.HEADERS0001").await.is_none());

    // Past what the server buffers at all (64 KiB), or past 100 headers, hyper
    // answers 431 itself, before any handler runs.
    let port = system.running.addr.port();
    let huge = format!(
        "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Padding: {}\r\n\r\n",
        "p".repeat(100_000)
    );
    assert!(raw_exchange(port, huge.as_bytes())
        .await
        .starts_with("HTTP/1.1 431"));
    let many: String = (0..150).map(|n| format!("X-H{n}: v\r\n")).collect();
    let many = format!("GET /healthz HTTP/1.1\r\nHost: a\r\n{many}\r\n");
    assert!(raw_exchange(port, many.as_bytes())
        .await
        .starts_with("HTTP/1.1 431"));
    assert_healthy(&system.running.url()).await;
}

// ---------------------------------------------------------------- CR/LF

#[tokio::test]
async fn cr_lf_and_control_bytes_in_headers_are_refused() {
    let system = common::start(&[]).await;
    let port = system.running.addr.port();
    for (what, header) in [
        (
            "a bare CR",
            "X-Hub-Signature-256: sha256=00\rSet-Cookie: a=b",
        ),
        (
            "a folded line",
            "X-Hub-Signature-256: sha256=00\r\n Set-Cookie: a=b",
        ),
        (
            "a NUL byte",
            "X-Hub-Signature-256: sha256=00\0Set-Cookie: a=b",
        ),
        ("a CR in a name", "X-Evil\r: 1"),
    ] {
        let request = format!(
            "POST /webhook HTTP/1.1\r\nHost: a\r\n{header}\r\nContent-Length: 2\r\n\r\n{{}}"
        );
        let answer = raw_exchange(port, request.as_bytes()).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer:?}");
        assert!(
            !answer.to_ascii_lowercase().contains("set-cookie"),
            "{what}: {answer:?}"
        );
    }
    // Percent-encoded CR/LF in a path is only a (not found) id, never a header.
    let response = system
        .http
        .get(system.url("/v1/messages/x%0D%0ASet-Cookie:%20a=b"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert!(response.headers().get("set-cookie").is_none());
    // Bytes past ASCII in an Idempotency-Key: Meta's error shape naming the header.
    system.customer_writes(CUSTOMER, "hello").await;
    let body = r#"{"messaging_product":"whatsapp","to":"5511999990000","type":"text","text":{"body":"hi"}}"#;
    let request = format!(
        "POST /v1/{PHONE_NUMBER_ID}/messages HTTP/1.1\r\nHost: a\r\nAuthorization: Bearer {API_KEY}\r\n\
         Content-Type: application/json\r\nIdempotency-Key: caf\u{e9}\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let answer = raw_exchange(port, request.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert!(
        answer.contains(r#""field":"Idempotency-Key""#),
        "{answer:?}"
    );
    assert_healthy(&system.running.url()).await;
}

// ---------------------------------------------------------------- oversized text

#[tokio::test]
async fn text_over_4096_characters_is_code_100_naming_the_field() {
    let system = common::start(&[]).await;
    system.customer_writes(CUSTOMER, "hello").await;
    let send = |text: String| json!({"messaging_product": "whatsapp", "to": CUSTOMER, "type": "text", "text": {"body": text}});
    let path = format!("/v1/{PHONE_NUMBER_ID}/messages");
    let (status, answer) = system.post(&path, &send("é".repeat(4096))).await;
    assert_eq!(status, 202, "{answer}");
    let (status, answer) = system.post(&path, &send("é".repeat(4097))).await;
    assert_eq!(status, 400, "{answer}");
    let error = &answer["error"];
    assert_eq!(error["code"], 100, "{answer}");
    assert_eq!(error["field"], "text.body", "{answer}");
    let details = error["error_data"]["details"].as_str().unwrap();
    assert!(details.contains("at most 4096 characters"), "{details}");
}

// ---------------------------------------------------------------- slowloris

/// Sends a webhook head announcing `length` bytes, then one body byte every 100 ms.
async fn trickle_body(port: u16, length: usize) -> (String, Duration) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let head = format!(
        "POST /webhook HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n\
         X-Hub-Signature-256: sha256={}\r\nContent-Length: {length}\r\n\r\n",
        "0".repeat(64)
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    let mut buffer = [0u8; 4096];
    for _ in 0..length {
        if stream.write_all(b" ").await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
            Err(_) => {}
        }
        if answer.ends_with(b"}") {
            break;
        }
    }
    (
        String::from_utf8_lossy(&answer).into_owned(),
        start.elapsed(),
    )
}

/// Sends a request head one byte every 100 ms; how long until the server hung up.
async fn trickle_head(port: u16) -> Duration {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let start = Instant::now();
    let head = format!(
        "GET /healthz HTTP/1.1\r\nHost: a\r\nX-Slow: {}",
        "s".repeat(1000)
    );
    let mut buffer = [0u8; 256];
    for byte in head.bytes() {
        if stream.write_all(&[byte]).await.is_err() {
            break;
        }
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            _ => {}
        }
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_heads_and_bodies_are_cut_off_while_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let zapfn = child::spawn(
        child::free_port(),
        dir.path(),
        &[
            ("ZAPFN_HEADER_TIMEOUT_MS", "1000"),
            ("ZAPFN_BODY_TIMEOUT_MS", "1000"),
        ],
    );
    zapfn.wait_healthy().await;
    let port = zapfn.port;
    let bodies: Vec<_> = (0..40)
        .map(|_| tokio::spawn(trickle_body(port, 5_000)))
        .collect();
    let heads: Vec<_> = (0..40).map(|_| tokio::spawn(trickle_head(port))).collect();

    // While 80 slow clients hold connections, others are served at once.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let http = reqwest::Client::new();
    for _ in 0..20 {
        let start = Instant::now();
        let response = http.get(zapfn.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }

    for body in bodies {
        let (answer, took) = body.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        assert!(answer.contains("application/problem+json"), "{answer:?}");
        assert!(
            answer.contains("did not arrive within 1000 ms"),
            "{answer:?}"
        );
        assert!(took < Duration::from_secs(5), "cut off after {took:?}");
    }
    for head in heads {
        let took = head.await.unwrap();
        assert!(took < Duration::from_secs(5), "head cut off after {took:?}");
        assert!(
            took >= Duration::from_millis(900),
            "cut off early: {took:?}"
        );
    }
    let body = nested_message("wamid.AFTERSLOW0001", 1);
    let status =
        zapfn_sandbox::post_signed(&http, &zapfn.url("/webhook"), SECRET.as_bytes(), &body)
            .await
            .unwrap();
    assert_eq!(status.as_u16(), 200);
    let stored: Value = http
        .get(zapfn.url("/v1/messages/wamid.AFTERSLOW0001"))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stored["text"], "nested");
}
