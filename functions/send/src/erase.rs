//! Erasing a contact and deleting messages with their media objects.
//!
//! Messages go in bounded batches, and each batch's media objects are deleted
//! *before* its rows: if the blob store fails, the rows (which name the objects)
//! are still there, and a retry carries on where this one stopped. Every step
//! is idempotent, so erasing again deletes nothing and answers zero counts.

use serde::Serialize;
use zapfn_blob::BlobKey;
use zapfn_runtime::{Context, Problem};
use zapfn_store::{media_blob_keys, Erased, PageRequest};

use crate::contacts::Contact;

/// Messages erased per store call (each call is one short transaction).
pub const BATCH: usize = 200;
/// Rounds of "erase the messages, then the conversation" before giving up on a
/// contact who keeps writing while being erased.
const MAX_ROUNDS: usize = 10;

/// What erasing a contact deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasureReport {
    /// The numbers whose data about the contact was erased.
    pub phone_number_ids: Vec<String>,
    pub deleted: Erased,
    pub media_objects: u64,
}

/// The counts a route answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub messages: u64,
    pub status_events: u64,
    pub conversations: u64,
    pub events: u64,
    pub raw_events: u64,
    pub media_objects: u64,
}

impl ErasureReport {
    /// The counts a route answers with.
    pub fn counts(&self) -> Counts {
        counts(&self.deleted, self.media_objects)
    }
}

/// The answer's counts of `deleted` and the media objects deleted with it.
pub fn counts(deleted: &Erased, media_objects: u64) -> Counts {
    Counts {
        messages: deleted.messages,
        status_events: deleted.status_events,
        conversations: deleted.conversations,
        events: deleted.events,
        raw_events: deleted.raw_events,
        media_objects,
    }
}

/// A message about to be deleted: its id and where its media objects are.
pub struct Doomed {
    pub id: String,
    pub blob_keys: Vec<String>,
}

/// Deletes the media objects of `messages`, then the messages (their status
/// history and the events naming them); returns what was deleted and how many
/// objects. A blob store failure deletes no row of this batch (503: retry).
pub async fn delete_messages(
    context: &Context,
    messages: Vec<Doomed>,
) -> Result<(Erased, u64), Problem> {
    let mut objects = 0;
    for key in messages.iter().flat_map(|message| &message.blob_keys) {
        let Ok(key) = BlobKey::new(key.as_str()) else {
            continue;
        };
        let deleted = context.blobs.delete(&key).await.map_err(|error| {
            tracing::error!(%error, "blob store failure while deleting media");
            Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "the blob store is unavailable; what was deleted so far stays deleted, retry to finish",
            )
        })?;
        objects += u64::from(deleted);
    }
    let ids: Vec<String> = messages.into_iter().map(|message| message.id).collect();
    let erased = context.store.erase_messages(&ids).await?;
    Ok((erased, objects))
}

/// Erases everything stored about `contact`: on each number, its messages (with
/// status histories, media objects, transcripts and other annotations), then its
/// conversation, the queued events and dead letters about it and the raw events
/// naming it. With every number, the numbers are those of its conversations and
/// of its raw events (a caller who never wrote has only the latter).
pub async fn erase_contact(context: &Context, contact: &Contact) -> Result<ErasureReport, Problem> {
    let mut report = ErasureReport::default();
    let mut numbers: Vec<String> = contact.numbers.clone().unwrap_or_default();
    for round in 1..=MAX_ROUNDS {
        let conversations = contact.conversations(context).await?;
        for conversation in &conversations {
            if !numbers.contains(&conversation.phone_number_id) {
                numbers.push(conversation.phone_number_id.clone());
            }
            erase_conversation_messages(context, &conversation.id, &mut report).await?;
        }
        if contact.numbers.is_none() {
            for event in context
                .store
                .raw_events_naming(None, &contact.wa_id)
                .await?
            {
                if !numbers.contains(&event.phone_number_id) {
                    numbers.push(event.phone_number_id);
                }
            }
        }
        for pnid in &numbers {
            report.deleted += context
                .store
                .erase_conversation(pnid, &contact.wa_id)
                .await?;
        }
        // A message stored meanwhile keeps its conversation: go round again.
        if contact.conversations(context).await?.is_empty() {
            break;
        }
        if round == MAX_ROUNDS {
            return Err(Problem::new(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "new messages of this contact kept arriving during the erasure; retry",
            ));
        }
    }
    numbers.sort();
    report.phone_number_ids = numbers;
    Ok(report)
}

/// Deletes every message of one conversation, a batch at a time.
async fn erase_conversation_messages(
    context: &Context,
    conversation_id: &str,
    report: &mut ErasureReport,
) -> Result<(), Problem> {
    let mut stalls = 0;
    loop {
        let page = context
            .store
            .conversation_messages(
                conversation_id,
                PageRequest {
                    cursor: None,
                    limit: BATCH,
                },
            )
            .await?;
        if page.items.is_empty() {
            return Ok(());
        }
        let doomed = page
            .items
            .into_iter()
            .map(|message| Doomed {
                blob_keys: media_blob_keys(
                    &message.phone_number_id,
                    &message.id,
                    message.media.as_ref(),
                ),
                id: message.id,
            })
            .collect();
        let (erased, objects) = delete_messages(context, doomed).await?;
        if erased.messages == 0 {
            // Listed but not deleted: another erasure took them (the next page is
            // then empty), or the store keeps refusing to delete them.
            stalls += 1;
            if stalls > 3 {
                return Err(Problem::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "messages of this contact could not be deleted; retry",
                ));
            }
        }
        report.deleted += erased;
        report.media_objects += objects;
    }
}
