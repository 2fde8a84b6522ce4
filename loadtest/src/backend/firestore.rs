//! A project of its own on the Firestore emulator for one run (as the store's
//! tests isolate themselves: the emulator keeps every project id as a separate,
//! empty database); the child reaches it through `GOOGLE_CLOUD_PROJECT`; the
//! end state is read back with a plain Firestore client. Only the emulator:
//! the run never touches a real Firestore.

use std::collections::{HashMap, HashSet};

use anyhow::{bail, Context as _};
use firestore::FirestoreDb;
use serde::Deserialize;
use zapfn_store_firestore::collections;

use crate::reconcile::{Facts, Outbound};

/// The run's project on the emulator.
pub struct Project {
    /// The emulator's `host:port`.
    emulator: String,
    name: String,
}

/// The fields of a message document the checks read (those a query projects).
#[derive(Default, Deserialize)]
#[serde(default)]
struct Message {
    id: String,
    wamid: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    status: String,
    /// JSON text.
    media: Option<String>,
    idempotency_key: Option<String>,
    /// Only whether it is there: a placeholder has none.
    raw: Option<String>,
}

/// A status event document's key.
#[derive(Deserialize)]
struct StatusEvent {
    subject: String,
    status: String,
}

#[derive(Deserialize)]
struct Count {
    count: u64,
}

impl Project {
    /// Names a fresh project on the emulator at `emulator` (`host:port`,
    /// `FIRESTORE_EMULATOR_HOST`) and checks the emulator answers.
    pub async fn create(emulator: &str) -> anyhow::Result<Project> {
        let project = Project {
            emulator: emulator.to_owned(),
            name: super::run_name('-')?,
        };
        let answer = reqwest::get(format!("http://{emulator}/"))
            .await
            .with_context(|| format!("reaching the Firestore emulator at {emulator}"))?;
        if !answer.status().is_success() {
            bail!(
                "the Firestore emulator at {emulator} answered {}",
                answer.status()
            );
        }
        Ok(project)
    }

    /// The child's environment for the project.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("ZAPFN_STORE".into(), "firestore".into()),
            ("GOOGLE_CLOUD_PROJECT".into(), self.name.clone()),
            ("FIRESTORE_EMULATOR_HOST".into(), self.emulator.clone()),
        ]
    }

    /// The project's id.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The emulator and how the run used it, for the report.
    pub fn describe(&self) -> String {
        format!(
            "the Firestore emulator at {}, a fresh project for the run",
            self.emulator
        )
    }

    /// Reads [`Facts`] from the project (every document in it is the run's).
    pub async fn facts(&self) -> anyhow::Result<Facts> {
        let db = FirestoreDb::new(&self.name)
            .await
            .context("connecting to the Firestore emulator")?;

        let inbound_docs = messages(&db, "inbound", &["wamid", "type", "media"]).await?;
        let mut inbound: HashMap<String, u64> = HashMap::new();
        let mut image_objects = HashMap::new();
        for message in inbound_docs {
            let wamid = message.wamid.unwrap_or_default();
            if message.message_type.as_deref() == Some("image") {
                let status = message
                    .media
                    .as_deref()
                    .and_then(|media| serde_json::from_str::<serde_json::Value>(media).ok())
                    .and_then(|media| Some(media["object"]["status"].as_str()?.to_owned()));
                image_objects.insert(wamid.clone(), status);
            }
            *inbound.entry(wamid).or_default() += 1;
        }

        let fields = ["id", "wamid", "status", "idempotency_key", "raw"];
        let outbound = messages(&db, "outbound", &fields)
            .await?
            .into_iter()
            .map(|message| Outbound {
                placeholder: message.raw.is_none(),
                id: message.id,
                wamid: message.wamid,
                status: message.status,
                idempotency_key: message.idempotency_key,
            })
            .collect();

        let statuses: Vec<StatusEvent> = db
            .fluent()
            .select()
            .fields(["subject", "status"])
            .from(collections::STATUS_EVENTS)
            .parent(db.get_documents_path())
            .all_descendants()
            .obj()
            .query()
            .await
            .context("reading the status events")?;

        Ok(Facts {
            inbound,
            outbound,
            statuses: statuses
                .into_iter()
                .map(|event| (event.subject, event.status))
                .collect::<HashSet<_>>(),
            image_objects,
            dead_letters: count(&db, collections::DEAD_LETTERS).await?,
            outbox: count(&db, collections::OUTBOX).await?,
        })
    }

    /// Clears the project on the emulator (its own endpoint; Firestore has no
    /// recursive delete).
    pub async fn delete(self) -> anyhow::Result<()> {
        reqwest::Client::new()
            .delete(format!(
                "http://{}/emulator/v1/projects/{}/databases/(default)/documents",
                self.emulator, self.name
            ))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("clearing Firestore emulator project {}", self.name))?;
        Ok(())
    }
}

/// The `fields` of every message document of `direction`.
async fn messages(
    db: &FirestoreDb,
    direction: &str,
    fields: &[&str],
) -> anyhow::Result<Vec<Message>> {
    db.fluent()
        .select()
        .fields(fields)
        .from(collections::MESSAGES)
        .parent(db.get_documents_path())
        .all_descendants()
        .filter(|q| q.field("direction").eq(direction))
        .obj()
        .query()
        .await
        .with_context(|| format!("reading the {direction} messages"))
}

/// Documents in every `collection` of the project.
async fn count(db: &FirestoreDb, collection: &str) -> anyhow::Result<u64> {
    let counts: Vec<Count> = db
        .fluent()
        .select()
        .from(collection)
        .parent(db.get_documents_path())
        .all_descendants()
        .aggregate(|a| a.fields([a.field("count").count()]))
        .obj()
        .query()
        .await
        .with_context(|| format!("counting {collection}"))?;
    Ok(counts.first().map_or(0, |c| c.count))
}
