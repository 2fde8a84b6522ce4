//! Data protection on a real `zapfn dev` on loopback: a contact's export
//! (`GET /v1/contacts/{wa_id}/export`) and erasure (`DELETE /v1/contacts/{wa_id}`)
//! with their media objects, scopes and tenants, audited without the number;
//! and the retention job (`POST /_jobs/retention`), which deletes what is older
//! than `ZAPFN_RETENTION_DAYS` and keeps the rest.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use common::{eventually, System, API_KEY, PHONE_NUMBER_ID};
use zapfn_whatsapp::builders;

/// A second business number: another tenant.
const OTHER_NUMBER: &str = "106540352242999";
const ANA: &str = "5511933330000";
const BIA: &str = "5511944440000";

async fn call(system: &System, key: &str, method: Method, path: &str) -> (u16, Value) {
    let response = system
        .http
        .request(method, system.url(path))
        .bearer_auth(key)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn create_key(system: &System, grant: Value) -> String {
    let response = system
        .http
        .post(system.url("/v1/keys"))
        .bearer_auth(API_KEY)
        .json(&grant)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["key"].as_str().unwrap().to_owned()
}

/// `wa_id` writes `text` to business number `pnid`, `age` ago; the wamid.
async fn customer_writes(
    system: &System,
    pnid: &str,
    wa_id: &str,
    text: &str,
    age: Duration,
) -> String {
    let wamid = builders::new_wamid();
    let at = chrono::Utc::now().timestamp() - age.as_secs() as i64;
    let body = builders::messages_notification(
        pnid,
        wa_id,
        "Cliente",
        vec![builders::text_message(wa_id, &wamid, at, text)],
    );
    assert_eq!(system.post_webhook(body.to_string().as_bytes()).await, 200);
    wamid
}

/// A customer's photo, once stored and thumbnailed: its wamid and the paths of
/// its two objects (the original and the thumbnail).
async fn customer_sends_photo(system: &System, wa_id: &str) -> (String, [PathBuf; 2]) {
    let photo = std::fs::read(common::fixture("media/photo.jpg")).unwrap();
    let seeded = system.seed_media(&photo, "mime_type=image/jpeg").await;
    let wamid = system
        .customer_sends(wa_id, json!({ "image": { "id": seeded["id"] } }))
        .await;
    let view = eventually(Duration::from_secs(20), "the photo thumbnailed", || async {
        system.message(&wamid).await.filter(|view| {
            view["media"]["object"]["status"] == "done"
                && view["media"]["image"]["status"] == "done"
        })
    })
    .await;
    let path = |key: &Value| object_path(system.dir.path(), key.as_str().unwrap());
    let objects = [
        path(&view["media"]["object"]["key"]),
        path(&view["media"]["image"]["thumbnail_key"]),
    ];
    (wamid, objects)
}

fn object_path(data_dir: &Path, key: &str) -> PathBuf {
    data_dir.join("media").join("objects").join(key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contact_is_exported_then_erased_with_its_media_and_nobody_else_is_touched() {
    let system = common::start(&[]).await;
    let reader = create_key(
        &system,
        json!({"name": "reader", "scopes": ["read"], "phone_number_ids": ["*"]}),
    )
    .await;
    let other_tenant = create_key(
        &system,
        json!({"name": "tenant-b", "scopes": ["admin"], "phone_number_ids": [OTHER_NUMBER]}),
    )
    .await;
    let hello = customer_writes(
        &system,
        PHONE_NUMBER_ID,
        ANA,
        "meu endereço é rua A",
        Duration::ZERO,
    )
    .await;
    let (photo, photo_objects) = customer_sends_photo(&system, ANA).await;
    assert!(photo_objects.iter().all(|path| path.exists()));
    let reply = system.send_text(ANA, "recebemos sua foto").await;
    system.wait_status(&reply, "read").await;
    let on_other_number =
        customer_writes(&system, OTHER_NUMBER, ANA, "outro negócio", Duration::ZERO).await;
    let bystander = customer_writes(&system, PHONE_NUMBER_ID, BIA, "eu fico", Duration::ZERO).await;

    // The export: every message of the contact on the key's numbers, with history and media.
    let (status, export) = call(
        &system,
        &reader,
        Method::GET,
        &format!("/v1/contacts/{ANA}/export?phone_number_id={PHONE_NUMBER_ID}"),
    )
    .await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["format"], "zapfn-contact-export/1");
    assert_eq!(export["wa_id"], ANA);
    assert_eq!(export["phone_number_ids"], json!([PHONE_NUMBER_ID]));
    let messages = export["conversations"][0]["messages"].as_array().unwrap();
    let wamids: Vec<&str> = messages
        .iter()
        .filter_map(|m| m["wamid"].as_str())
        .collect();
    for wamid in [hello.as_str(), photo.as_str()] {
        assert!(wamids.contains(&wamid), "{wamid} in {wamids:?}");
    }
    let sent = messages
        .iter()
        .find(|m| m["id"] == reply.as_str())
        .expect("the reply");
    assert_eq!(sent["status"], "read");
    assert!(sent["status_history"].as_array().unwrap().len() >= 4);
    assert!(!wamids.contains(&on_other_number.as_str()));
    // Every number the bootstrap key acts for: both conversations.
    let (_, both) = call(
        &system,
        API_KEY,
        Method::GET,
        &format!("/v1/contacts/{ANA}/export"),
    )
    .await;
    assert_eq!(both["conversations"].as_array().unwrap().len(), 2);
    // Another tenant sees nothing of it; bad input is named.
    let (status, _) = call(
        &system,
        &other_tenant,
        Method::GET,
        &format!("/v1/contacts/{ANA}/export?phone_number_id={PHONE_NUMBER_ID}"),
    )
    .await;
    assert_eq!(status, 404);
    let (status, problem) = call(
        &system,
        &reader,
        Method::GET,
        "/v1/contacts/ana;drop/export",
    )
    .await;
    assert_eq!((status, problem["field"].as_str()), (400, Some("wa_id")));

    // Erasure needs an admin key; the other tenant's admin key erases only its own number.
    let (status, _) = call(
        &system,
        &reader,
        Method::DELETE,
        &format!("/v1/contacts/{ANA}"),
    )
    .await;
    assert_eq!(status, 403);
    let (status, erased) = call(
        &system,
        &other_tenant,
        Method::DELETE,
        &format!("/v1/contacts/{ANA}"),
    )
    .await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["phone_number_ids"], json!([OTHER_NUMBER]));
    assert_eq!(erased["deleted"]["messages"], 1);
    assert!(system.message(&on_other_number).await.is_none());
    assert!(
        system.message(&hello).await.is_some(),
        "the first number's data is not the other tenant's"
    );

    let path = format!("/v1/contacts/{ANA}?phone_number_id={PHONE_NUMBER_ID}");
    let (status, erased) = call(&system, API_KEY, Method::DELETE, &path).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["deleted"]["messages"], 3, "{erased}");
    assert_eq!(erased["deleted"]["conversations"], 1);
    assert_eq!(erased["deleted"]["media_objects"], 2, "{erased}");
    assert!(erased["deleted"]["status_events"].as_u64().unwrap() >= 4);
    for id in [&hello, &photo, &reply] {
        assert!(system.message(id).await.is_none(), "{id} erased");
    }
    for path in &photo_objects {
        assert!(!path.exists(), "the photo's objects are deleted: {path:?}");
    }
    let (status, _) = call(
        &system,
        &reader,
        Method::GET,
        &format!("/v1/contacts/{ANA}/export"),
    )
    .await;
    assert_eq!(status, 404);
    // A repeat finds nothing and says so with zero counts.
    let (status, again) = call(&system, API_KEY, Method::DELETE, &path).await;
    assert_eq!(
        (status, again["deleted"]["messages"].as_u64()),
        (200, Some(0))
    );
    assert!(
        system.message(&bystander).await.is_some(),
        "another contact is untouched"
    );

    // The audit log names the contact by a pseudonym, never by the number.
    let (status, audit) = call(&system, API_KEY, Method::GET, "/v1/audit").await;
    assert_eq!(status, 200);
    let contact_entries: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|entry| {
            entry["route"]
                .as_str()
                .is_some_and(|r| r.starts_with("/v1/contacts"))
        })
        .collect();
    assert!(contact_entries.len() >= 6, "{audit}");
    let text = audit.to_string();
    assert!(
        !text.contains(ANA),
        "the audit log holds the number: {text}"
    );
    assert!(contact_entries
        .iter()
        .all(|e| e["target"].as_str().unwrap_or("").contains("contact=hmac:")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_what_is_older_than_its_days_and_keeps_the_rest() {
    let system = common::start(&[("ZAPFN_RETENTION_DAYS", "2")]).await;
    let old = [
        customer_writes(
            &system,
            PHONE_NUMBER_ID,
            ANA,
            "três dias atrás",
            Duration::from_secs(3 * 86_400),
        )
        .await,
        customer_writes(
            &system,
            PHONE_NUMBER_ID,
            BIA,
            "há uma semana",
            Duration::from_secs(7 * 86_400),
        )
        .await,
    ];
    let recent = customer_writes(
        &system,
        PHONE_NUMBER_ID,
        BIA,
        "hoje",
        Duration::from_secs(3600),
    )
    .await;
    let (photo, photo_objects) = customer_sends_photo(&system, ANA).await;

    // Only an admin key for every number (or Cloud Scheduler's token) may run it.
    let scoped = create_key(
        &system,
        json!({"name": "scoped-admin", "scopes": ["admin"], "phone_number_ids": [PHONE_NUMBER_ID]}),
    )
    .await;
    let (status, _) = call(&system, "not-a-key", Method::POST, "/_jobs/retention").await;
    assert_eq!(status, 401);
    let (status, _) = call(&system, &scoped, Method::POST, "/_jobs/retention").await;
    assert_eq!(status, 403);

    // The service's own first run comes a minute after start: this run deletes.
    let (status, report) = call(&system, API_KEY, Method::POST, "/_jobs/retention").await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["retention_days"], 2);
    assert_eq!(report["complete"], true);
    assert_eq!(report["deleted"]["messages"], 2, "{report}");
    for wamid in &old {
        assert!(
            system.message(wamid).await.is_none(),
            "{wamid} past retention"
        );
    }
    assert!(system.message(&recent).await.is_some());
    assert!(system.message(&photo).await.is_some());
    assert!(
        photo_objects.iter().all(|path| path.exists()),
        "a recent message's media stays"
    );
    // ANA's conversation still has the photo; nothing more to delete on a second run.
    let (_, again) = call(&system, API_KEY, Method::POST, "/_jobs/retention").await;
    assert_eq!(again["deleted"]["messages"], 0);
}

#[tokio::test]
async fn a_customer_known_by_user_id_is_exported_and_erased_by_it() {
    let system = common::start(&[]).await;
    let user_id = "US.13491208655302741918";
    let wamid = customer_writes(&system, PHONE_NUMBER_ID, user_id, "oi", Duration::ZERO).await;
    let path = format!("/v1/contacts/{user_id}/export?phone_number_id={PHONE_NUMBER_ID}");
    let (status, export) = call(&system, API_KEY, Method::GET, &path).await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["wa_id"], user_id);
    // The demo's auto-reply may be there too, in the same second.
    let messages = export["conversations"][0]["messages"].as_array().unwrap();
    let inbound: Vec<&serde_json::Value> = messages
        .iter()
        .filter(|m| m["direction"] == "inbound")
        .collect();
    assert_eq!(inbound.len(), 1, "{export}");
    assert_eq!(inbound[0]["wamid"], wamid.as_str(), "{export}");

    let path = format!("/v1/contacts/{user_id}?phone_number_id={PHONE_NUMBER_ID}");
    let (status, erased) = call(&system, API_KEY, Method::DELETE, &path).await;
    assert_eq!(status, 200, "{erased}");
    assert!(system.message(&wamid).await.is_none(), "erased");
}

/// `wa_id` calls business number `pnid` (a `calls` webhook: kept raw).
async fn customer_calls(system: &System, pnid: &str, wa_id: &str, call_id: &str) {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "calls", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": pnid},
            "contacts": [{"wa_id": wa_id, "profile": {"name": "Cliente"}}],
            "calls": [{"id": call_id, "from": wa_id, "to": "15550783881",
                       "event": "connect", "timestamp": "1767225600"}],
        }}]}],
    });
    assert_eq!(system.post_webhook(body.to_string().as_bytes()).await, 200);
}

/// The ids of the calls among an export's raw events, in order.
fn call_ids(export: &Value) -> Vec<&str> {
    export["raw_events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|event| event["raw"]["value"]["calls"][0]["id"].as_str())
        .collect()
}

#[tokio::test]
async fn a_contacts_calls_are_exported_and_erased_with_it() {
    let system = common::start(&[]).await;
    customer_writes(&system, PHONE_NUMBER_ID, ANA, "vou ligar", Duration::ZERO).await;
    customer_calls(&system, PHONE_NUMBER_ID, ANA, "wacid.ANA1").await;
    customer_calls(&system, PHONE_NUMBER_ID, BIA, "wacid.BIA1").await;

    let export_path = format!("/v1/contacts/{ANA}/export?phone_number_id={PHONE_NUMBER_ID}");
    let (status, export) = call(&system, API_KEY, Method::GET, &export_path).await;
    assert_eq!(status, 200, "{export}");
    let raw_events = export["raw_events"].as_array().unwrap();
    assert_eq!(raw_events.len(), 1, "Ana's call, not Bia's: {export}");
    assert_eq!(raw_events[0]["kind"], "calls");
    assert_eq!(raw_events[0]["phone_number_id"], PHONE_NUMBER_ID);
    assert_eq!(
        raw_events[0]["raw"]["value"]["calls"][0]["id"],
        "wacid.ANA1"
    );

    // A caller who never wrote: exported by their call alone.
    let (status, bia) = call(
        &system,
        API_KEY,
        Method::GET,
        &format!("/v1/contacts/{BIA}/export?phone_number_id={PHONE_NUMBER_ID}"),
    )
    .await;
    assert_eq!(status, 200, "{bia}");
    assert_eq!(bia["conversations"], json!([]));
    assert_eq!(bia["phone_number_ids"], json!([PHONE_NUMBER_ID]));
    assert_eq!(call_ids(&bia), ["wacid.BIA1"], "{bia}");

    let erase_path = format!("/v1/contacts/{ANA}?phone_number_id={PHONE_NUMBER_ID}");
    let (status, erased) = call(&system, API_KEY, Method::DELETE, &erase_path).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["deleted"]["raw_events"], 1, "{erased}");
    let (status, _) = call(&system, API_KEY, Method::GET, &export_path).await;
    assert_eq!(status, 404, "nothing left about Ana");
    let (_, bia) = call(
        &system,
        API_KEY,
        Method::GET,
        &format!("/v1/contacts/{BIA}/export?phone_number_id={PHONE_NUMBER_ID}"),
    )
    .await;
    assert_eq!(call_ids(&bia), ["wacid.BIA1"], "Bia's call stays: {bia}");
}

#[tokio::test]
async fn a_caller_who_never_wrote_is_found_on_every_number_by_a_key_for_all() {
    let system = common::start(&[]).await;
    customer_calls(&system, PHONE_NUMBER_ID, BIA, "wacid.BIA1").await;
    customer_calls(&system, OTHER_NUMBER, BIA, "wacid.BIA2").await;
    customer_calls(&system, OTHER_NUMBER, ANA, "wacid.ANA1").await;

    // The bootstrap key acts for every number: no phone_number_id needed.
    let export_path = format!("/v1/contacts/{BIA}/export");
    let (status, export) = call(&system, API_KEY, Method::GET, &export_path).await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(export["conversations"], json!([]));
    let mut numbers = vec![PHONE_NUMBER_ID, OTHER_NUMBER];
    numbers.sort_unstable();
    assert_eq!(export["phone_number_ids"], json!(numbers));
    assert_eq!(call_ids(&export), ["wacid.BIA1", "wacid.BIA2"], "{export}");

    let (status, erased) = call(
        &system,
        API_KEY,
        Method::DELETE,
        &format!("/v1/contacts/{BIA}"),
    )
    .await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["deleted"]["raw_events"], 2, "{erased}");
    assert_eq!(erased["phone_number_ids"], json!(numbers));
    let (status, _) = call(&system, API_KEY, Method::GET, &export_path).await;
    assert_eq!(status, 404, "nothing left about Bia");
    let (_, ana) = call(
        &system,
        API_KEY,
        Method::GET,
        &format!("/v1/contacts/{ANA}/export"),
    )
    .await;
    assert_eq!(call_ids(&ana), ["wacid.ANA1"], "Ana's call stays: {ana}");
}
