//! Outbound media: before a send, every media object given by `link`, or by a
//! zapfn message id whose stored object is sent, is fetched (links under the
//! SSRF guard), checked against Meta's size and type rules, converted to
//! OGG/Opus when a voice note is asked for, uploaded to
//! `/{phone-number-id}/media` and sent by id. Each uploaded id is remembered on
//! the message (`media.uploads`), so a retried send does not upload again.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use zapfn_blob::{BlobKey, BlobStore};
use zapfn_media::link::{LinkError, LinkFetcher};
use zapfn_media::outbound::{slots, use_media_id, Slot, Source};
use zapfn_media::{check, checksum, sniff, MediaKind};
use zapfn_mediatools::{ffmpeg, Limits};
use zapfn_store::{OutboundMessage, Store};
use zapfn_whatsapp::errors::GraphError;
use zapfn_whatsapp::graph::{CallError, GraphClient};

/// Longest a link download or an upload may take: both within the dispatch lease.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(25);
/// Meta's code for a media that cannot be uploaded or sent.
const MEDIA_ERROR: i64 = 131053;

/// Uploads a message's media before it is sent.
pub struct MediaUploads {
    store: Arc<dyn Store>,
    blobs: Arc<dyn BlobStore>,
    graph: GraphClient,
    links: LinkFetcher,
}

/// A file ready to upload.
struct File {
    bytes: Bytes,
    declared: Option<String>,
    filename: Option<String>,
}

impl MediaUploads {
    /// Uploads through `graph`; links may reach private hosts only with `allow_private_links`.
    pub fn new(
        store: Arc<dyn Store>,
        blobs: Arc<dyn BlobStore>,
        graph: GraphClient,
        allow_private_links: bool,
    ) -> MediaUploads {
        MediaUploads {
            store,
            blobs,
            graph,
            links: LinkFetcher::new(allow_private_links, TRANSFER_TIMEOUT),
        }
    }

    /// The body to send: `message.body` with every link or stored object replaced
    /// by the id of its upload. Errors are shaped like Graph API errors: a
    /// refused file is Meta's permanent 131053, a host or store that failed is transient.
    pub async fn prepare(&self, message: &OutboundMessage) -> Result<Value, CallError> {
        let mut body = message.body.clone();
        let wanted = slots(&body);
        if wanted.is_empty() {
            return Ok(body);
        }
        let view = self.store.message(&message.id).await.map_err(transient)?;
        let mut uploads = view
            .and_then(|view| view.media?.get("uploads")?.as_object().cloned())
            .unwrap_or_default();
        for slot in wanted {
            let known = uploads
                .get(&slot.pointer)
                .filter(|upload| upload["source"] == source_name(&slot.source))
                .and_then(|upload| upload["id"].as_str().map(str::to_owned));
            let media_id = match known {
                Some(id) => id,
                None => {
                    let (id, record) = self.upload(message, &slot, &body).await?;
                    uploads.insert(slot.pointer.clone(), record);
                    self.store
                        .annotate_media(
                            &message.id,
                            "uploads",
                            Value::Object(uploads.clone()),
                            vec![],
                        )
                        .await
                        .map_err(transient)?;
                    id
                }
            };
            use_media_id(&mut body, &slot.pointer, &media_id);
        }
        Ok(body)
    }

    /// Fetches, checks, converts and uploads one media object: Meta's id and what to remember.
    async fn upload(
        &self,
        message: &OutboundMessage,
        slot: &Slot,
        body: &Value,
    ) -> Result<(String, Value), CallError> {
        let object = body.pointer(&slot.pointer).cloned().unwrap_or(Value::Null);
        let mut file = self.file(slot, &message.phone_number_id).await?;
        if slot.kind == MediaKind::Audio
            && object["voice"] == true
            && sniff(&file.bytes).map(|s| s.mime) != Some("audio/ogg")
        {
            file.bytes = to_voice_note(&file.bytes).await?;
            file.declared = Some("audio/ogg".to_owned());
        }
        let checked = check(slot.kind, file.declared.as_deref(), &file.bytes)
            .map_err(|refusal| refused(format!("{}: {}", slot.field(), refusal.reason)))?;
        let filename = object["filename"]
            .as_str()
            .or(file.filename.as_deref())
            .and_then(zapfn_media::safe_filename)
            .unwrap_or_else(|| format!("{}.{}", slot.kind, checked.extension));
        let record = json!({
            "source": source_name(&slot.source),
            "content_type": checked.content_type,
            "sha256": checksum::sha256_hex(&file.bytes),
            "size": file.bytes.len(),
        });
        let id = self
            .graph
            .upload_media(
                &message.phone_number_id,
                file.bytes,
                &checked.content_type,
                &filename,
                TRANSFER_TIMEOUT,
            )
            .await?;
        tracing::info!(message_id = %message.id, media_id = %id, pointer = %slot.pointer, "uploaded media for a send");
        let mut record = record;
        record["id"] = json!(id);
        Ok((id, record))
    }

    /// The bytes behind a media object, with the type they were labelled with
    /// (a stored object only of a message of `phone_number_id`).
    async fn file(&self, slot: &Slot, phone_number_id: &str) -> Result<File, CallError> {
        match &slot.source {
            Source::Link(link) => {
                let fetched = self
                    .links
                    .fetch(link, slot.kind.max_bytes_any())
                    .await
                    .map_err(|error| match error {
                        LinkError::Refused(reason) => {
                            refused(format!("{}: {reason}", slot.field()))
                        }
                        LinkError::Unavailable(reason) => {
                            CallError::Unreachable(format!("{}: {reason}", slot.field()))
                        }
                    })?;
                let declared = fetched.content_type.filter(|mime| slot.kind.accepts(mime));
                let filename = link
                    .rsplit('/')
                    .next()
                    .map(|name| name.split(['?', '#']).next().unwrap_or_default().to_owned());
                Ok(File {
                    bytes: fetched.bytes,
                    declared,
                    filename,
                })
            }
            Source::Stored(message_id) => {
                let media = self
                    .store
                    .message(message_id)
                    .await
                    .map_err(transient)?
                    .filter(|view| view.phone_number_id == phone_number_id)
                    .and_then(|view| view.media)
                    .unwrap_or(Value::Null);
                let object = &media["object"];
                let key = object["key"]
                    .as_str()
                    .filter(|_| object["status"] == "done");
                let Some(key) = key.and_then(|key| BlobKey::new(key).ok()) else {
                    return Err(refused(format!(
                        "{}: message {message_id} of this number has no stored media",
                        slot.field()
                    )));
                };
                let blob = self
                    .blobs
                    .get(&key)
                    .await
                    .map_err(transient)?
                    .ok_or_else(|| {
                        refused(format!(
                            "{}: the stored object of message {message_id} is gone",
                            slot.field()
                        ))
                    })?;
                Ok(File {
                    bytes: blob.bytes,
                    declared: Some(blob.info.content_type),
                    filename: object["filename"].as_str().map(str::to_owned),
                })
            }
        }
    }
}

/// How an upload's source is remembered (a changed body uploads again).
fn source_name(source: &Source) -> Value {
    match source {
        Source::Link(link) => json!(link),
        Source::Stored(id) => json!(id),
    }
}

/// Converts audio to a WhatsApp voice note (OGG, mono Opus) with FFmpeg.
async fn to_voice_note(bytes: &Bytes) -> Result<Bytes, CallError> {
    let dir = tempfile::tempdir().map_err(transient)?;
    let (input, output) = (dir.path().join("input"), dir.path().join("voice.ogg"));
    tokio::fs::write(&input, bytes).await.map_err(transient)?;
    ffmpeg::to_voice_ogg(&input, &output, Limits::default())
        .await
        .map_err(|error| match error {
            zapfn_mediatools::ToolError::Rejected { .. } => {
                refused(format!("audio: cannot convert to a voice note: {error}"))
            }
            other => CallError::Unreachable(format!("voice note conversion failed: {other}")),
        })?;
    tokio::fs::read(&output)
        .await
        .map(Bytes::from)
        .map_err(transient)
}

/// A permanent media error, shaped like Meta's 131053.
fn refused(reason: String) -> CallError {
    CallError::Api {
        http_status: 400,
        error: GraphError {
            code: MEDIA_ERROR,
            title: Some("Media upload error".to_owned()),
            message: reason,
            error_subcode: None,
            error_data: None,
            fbtrace_id: None,
        },
    }
}

/// A failure worth retrying (store, disk).
fn transient(error: impl std::fmt::Display) -> CallError {
    CallError::Unreachable(error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use zapfn_whatsapp::errors::ErrorClass;

    #[test]
    fn refusals_are_permanent_and_store_failures_transient() {
        let refusal = refused("image.link: too large".into());
        assert_eq!(
            (refusal.class(), refusal.code()),
            (ErrorClass::Permanent, MEDIA_ERROR)
        );
        assert_eq!(transient("disk full").class(), ErrorClass::Retry);
        assert!(
            !transient("disk full").maybe_delivered(),
            "nothing reached Meta"
        );
    }
}
