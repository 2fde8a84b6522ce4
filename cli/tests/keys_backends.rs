//! `zapfn keys` on a deployed store: with `ZAPFN_STORE=postgres` or
//! `ZAPFN_STORE=firestore` the command creates, lists and revokes keys in that
//! store (no SQLite file appears), and the send API served on the same store
//! accepts the key, holds it to its scope, and refuses it once revoked.
//! Needs the emulators (`scripts/emulators.sh start`, then load its env file);
//! a loud SKIPPED line without them, a failure with `ZAPFN_REQUIRE_EMULATORS=1`.

use std::collections::HashMap;

use serde_json::json;
use zapfn_runtime::limits::Limits;
use zapfn_runtime::{listen, server, Config, Context};

const PHONE_NUMBER_ID: &str = "106540352242922";
const PEPPER: &str = "keys-backends-pepper";

/// The value of `var`, or None after a loud SKIPPED line (a failure when
/// `ZAPFN_REQUIRE_EMULATORS=1`).
fn emulator(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.is_empty() => Some(value),
        _ => {
            assert!(
                std::env::var("ZAPFN_REQUIRE_EMULATORS").as_deref() != Ok("1"),
                "{test}: {var} not set but ZAPFN_REQUIRE_EMULATORS=1 (scripts/emulators.sh start)"
            );
            eprintln!("SKIPPED {test}: {var} not set (scripts/emulators.sh start, then load its env file)");
            None
        }
    }
}

/// Runs `zapfn` with exactly the store settings in `env` (and an empty data dir).
async fn zapfn(args: &[&str], env: &[(String, String)]) -> std::process::Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_zapfn"));
    command.args(args);
    for var in [
        "ZAPFN_STORE",
        "DATABASE_URL",
        "ZAPFN_DATABASE_URL",
        "GOOGLE_CLOUD_PROJECT",
        "ZAPFN_FIRESTORE_PREFIX",
        "ZAPFN_API_KEY",
        "WA_APP_SECRET",
        "WA_ACCESS_TOKEN",
    ] {
        command.env_remove(var);
    }
    command.envs(env.iter().map(|(k, v)| (k, v)));
    command.output().await.expect("run zapfn")
}

/// The send API, served on the store `env` names, on a loopback port.
async fn serve(env: &[(String, String)]) -> String {
    let vars: HashMap<String, String> = env.iter().cloned().collect();
    let config = Config::from_lookup(|name| vars.get(name).cloned()).unwrap();
    let context = Context::connect(config).await.unwrap();
    let limits = Limits::default();
    let service = server::instrument(zapfn_send::function(&context).router, &limits);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        async move { listen::serve(listener, service, &limits, std::future::pending()).await },
    );
    url
}

/// Creates, uses, lists and revokes a key on the store `store_env` names.
async fn keys_live_in(store_env: Vec<(&str, String)>) {
    let dir = tempfile::tempdir().unwrap();
    let mut env: Vec<(String, String)> = store_env
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.push(("ZAPFN_KEY_PEPPER".into(), PEPPER.into()));
    env.push((
        "ZAPFN_DATA_DIR".into(),
        dir.path().to_str().unwrap().to_owned(),
    ));

    let created = zapfn(
        &[
            "keys",
            "create",
            "--name",
            "ops",
            "--scope",
            "read",
            "--phone-number-id",
            PHONE_NUMBER_ID,
            "--rate",
            "50",
        ],
        &env,
    )
    .await;
    let stderr = String::from_utf8_lossy(&created.stderr);
    assert!(created.status.success(), "{stderr}");
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("zk_"), "{key}");
    assert!(
        !stderr.contains("zapfn.db") && !dir.path().join("zapfn.db").exists(),
        "the key went to SQLite: {stderr}"
    );

    let api = serve(&env).await;
    let http = reqwest::Client::new();
    let read = |key: String| {
        http.get(format!("{api}/v1/conversations"))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(read(key.clone()).await.unwrap().status(), 200);
    assert_eq!(read("zk_not_a_key".into()).await.unwrap().status(), 401);
    let send = http
        .post(format!("{api}/v1/{PHONE_NUMBER_ID}/messages"))
        .bearer_auth(&key)
        .json(&json!({"messaging_product": "whatsapp", "to": "5511999990000", "type": "text", "text": {"body": "hi"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(send.status(), 403, "a read key cannot send");

    let listed = zapfn(&["keys", "list"], &env).await;
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains(&format!("ops\tread\t{PHONE_NUMBER_ID}\t50/s\tlive")),
        "{listed}"
    );
    assert!(!listed.contains(&key), "{listed}");
    let revoked = zapfn(&["keys", "revoke", "ops"], &env).await;
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert_eq!(
        read(key.clone()).await.unwrap().status(),
        401,
        "revoked in the shared store"
    );
    assert!(!zapfn(&["keys", "revoke", "ops"], &env)
        .await
        .status
        .success());
}

#[tokio::test]
async fn keys_are_created_in_postgres_when_the_store_is_postgres() {
    let test = "keys_are_created_in_postgres_when_the_store_is_postgres";
    let Some(url) = emulator("ZAPFN_TEST_DATABASE_URL", test) else {
        return;
    };
    // A schema of its own, created and migrated here; the URL points the command at it.
    let schema = format!("keys_{}", uuid_like());
    zapfn_store_postgres::PostgresStore::connect(
        &url,
        zapfn_store_postgres::PostgresOptions {
            schema: Some(schema.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let separator = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{separator}options=-c%20search_path%3D{schema}");
    keys_live_in(vec![
        ("ZAPFN_STORE", "postgres".into()),
        ("ZAPFN_DATABASE_URL", scoped),
    ])
    .await;
}

#[tokio::test]
async fn keys_are_created_in_firestore_when_the_store_is_firestore() {
    let test = "keys_are_created_in_firestore_when_the_store_is_firestore";
    let Some(host) = emulator("FIRESTORE_EMULATOR_HOST", test) else {
        return;
    };
    keys_live_in(vec![
        ("ZAPFN_STORE", "firestore".into()),
        ("FIRESTORE_EMULATOR_HOST", host),
        (
            "GOOGLE_CLOUD_PROJECT",
            format!("zapfn-keys-{}", uuid_like()),
        ),
        ("ZAPFN_FIRESTORE_PREFIX", format!("keys{}", uuid_like())),
    ])
    .await;
}

/// A unique lowercase hex suffix for names on the shared emulators.
fn uuid_like() -> String {
    format!(
        "{:x}{:x}",
        chrono::Utc::now().timestamp_micros(),
        std::process::id()
    )
}
