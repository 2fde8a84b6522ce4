//! What every media processor does around its own work: take a `media` event
//! (or the stored original's Cloud Storage event) meant for it, copy the stored object into a scratch directory, and record
//! the result on the message as `media.<processor>` — `pending` while it runs,
//! then `done` with its fields or `failed` with a reason — settling the event so
//! that transient trouble is retried and the message never waits forever.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use zapfn_blob::media::media_key;
use zapfn_blob::{BlobKey, BlobStore};
use zapfn_runtime::{retry, Context};
use zapfn_store::{media_blob_keys, Delivery, MediaStored, NewEvent, Settlement, Store};

use crate::trigger::{self, Trigger};
use crate::{MediaConfig, SpeechEngine, ToolError, Transcript};

/// Why processing did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The file is at fault (corrupt, a decompression bomb, unreadable): recorded, not retried.
    Permanent(String),
    /// The environment is (a tool missing or crashed, I/O, a service down):
    /// retried, and recorded as failed once the retries run out.
    Transient(String),
}

impl From<ToolError> for Failure {
    fn from(error: ToolError) -> Failure {
        if error.is_transient() {
            Failure::Transient(error.to_string())
        } else {
            Failure::Permanent(error.to_string())
        }
    }
}

/// A processor's handles and retry policy.
#[derive(Clone)]
pub struct Processor {
    /// The annotation key: `media.<name>`.
    pub name: &'static str,
    /// The WhatsApp message types it handles.
    pub types: &'static [&'static str],
    pub store: Arc<dyn Store>,
    pub blobs: Arc<dyn BlobStore>,
    pub retry_base: Duration,
    /// Deliveries before a transient failure is recorded as final.
    pub max_attempts: u32,
    /// Age after which a transient failure is recorded as final.
    pub max_retry_age: Duration,
}

/// One media object being processed, copied into a scratch directory that is
/// deleted when the job is dropped.
pub struct Job {
    pub media: MediaStored,
    /// The stored bytes.
    pub bytes: Bytes,
    /// The same bytes as a file, for the tools.
    pub input: PathBuf,
    scratch: tempfile::TempDir,
}

impl Job {
    /// A path in the scratch directory for a tool's output.
    pub fn scratch_path(&self, name: &str) -> PathBuf {
        self.scratch.path().join(name)
    }

    fn derived_key(&self, name: &str) -> String {
        media_key(&self.media.phone_number_id, &self.media.message_id, name)
    }
}

/// What a processor's work produced: the fields recorded with `status: done`
/// and the events published with them (once, when the record is new).
pub struct Done {
    pub fields: Value,
    pub events: Vec<NewEvent>,
}

impl Processor {
    /// A processor recording under `media.<name>` for `types`, with the
    /// context's store, blob store and retry policy.
    pub fn new(context: &Context, name: &'static str, types: &'static [&'static str]) -> Processor {
        Processor {
            name,
            types,
            store: context.store.clone(),
            blobs: context.blobs.clone(),
            retry_base: context.config.retry_base,
            max_attempts: context.config.max_attempts,
            max_retry_age: context.config.max_retry_age,
        }
    }

    /// Runs `work` on the delivery's media (a `media` event or the stored
    /// original's Cloud Storage event, [`trigger`]) if it is of this processor's
    /// types (others are acknowledged untouched: every processor sees every
    /// `media` event), records the outcome and says how to settle.
    pub async fn handle<F, Fut>(&self, delivery: &Delivery, work: F) -> Settlement
    where
        F: FnOnce(Job) -> Fut,
        Fut: std::future::Future<Output = Result<Done, Failure>>,
    {
        let media = match trigger::resolve(self.store.as_ref(), &delivery.payload).await {
            Trigger::Media(media) => *media,
            Trigger::Ignore(why) => {
                tracing::debug!(processor = self.name, %why, "not for a processor");
                return Settlement::Ack;
            }
            Trigger::Wait(why) => return self.retry(delivery, why),
            Trigger::Invalid(error) => return Settlement::DeadLetter { error },
        };
        if !self.types.contains(&media.message_type.as_str()) {
            return Settlement::Ack;
        }
        match self.recorded_status(&media.message_id).await {
            Ok(Some(status)) if status == "done" || status == "failed" => return Settlement::Ack,
            Ok(_) => {}
            Err(error) => return self.retry(delivery, error),
        }
        if let Err(error) = self
            .record(&media, json!({"status": "pending"}), vec![])
            .await
        {
            return self
                .settle_unrecorded(delivery, &media, &Value::Null, error)
                .await;
        }
        let outcome = match self.job(media.clone()).await {
            Ok(job) => work(job).await,
            Err(failure) => Err(failure),
        };
        let (record, events) = match outcome {
            Ok(done) => {
                let mut record = json!({"status": "done"});
                if let (Some(record), Value::Object(fields)) = (record.as_object_mut(), done.fields)
                {
                    record.extend(fields);
                }
                (record, done.events)
            }
            Err(Failure::Permanent(reason)) => {
                tracing::info!(processor = self.name, message_id = %media.message_id, %reason, "media refused");
                (json!({"status": "failed", "reason": reason}), vec![])
            }
            Err(Failure::Transient(reason)) => {
                let after = retry::backoff(self.retry_base, delivery.attempt);
                if !self.is_last_attempt(delivery, after) {
                    return Settlement::Retry {
                        after,
                        error: reason,
                    };
                }
                tracing::warn!(processor = self.name, message_id = %media.message_id, %reason, "media processing gave up");
                (
                    json!({"status": "failed", "reason": reason, "transient": true}),
                    vec![],
                )
            }
        };
        match self.record(&media, record.clone(), events).await {
            Ok(()) => Settlement::Ack,
            Err(error) => {
                self.settle_unrecorded(delivery, &media, &record, error)
                    .await
            }
        }
    }

    /// A record that failed: if the message was erased meanwhile (a contact's
    /// erasure or retention), the objects this work derived are deleted too and
    /// the delivery is done; otherwise it is retried.
    async fn settle_unrecorded(
        &self,
        delivery: &Delivery,
        media: &MediaStored,
        record: &Value,
        error: String,
    ) -> Settlement {
        match self.store.message(&media.message_id).await {
            Ok(None) => {}
            _ => return self.retry(delivery, error),
        }
        for key in media_blob_keys(&media.phone_number_id, &media.message_id, Some(record)) {
            let Ok(key) = BlobKey::new(key) else { continue };
            if let Err(error) = self.blobs.delete(&key).await {
                return self.retry(
                    delivery,
                    format!("deleting {key} of an erased message: {error}"),
                );
            }
        }
        tracing::info!(processor = self.name, message_id = %media.message_id, "message erased during processing");
        Settlement::Ack
    }

    /// Stores a file derived from `job`'s media (a thumbnail, a poster) under
    /// `{phone_number_id}/{message_id}/{name}` and returns its key.
    pub async fn put_derived(
        &self,
        job: &Job,
        name: &str,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<String, Failure> {
        let key = BlobKey::new(job.derived_key(name))
            .map_err(|e| Failure::Permanent(format!("derived object: {e}")))?;
        self.blobs
            .put(&key, Bytes::from(bytes), content_type)
            .await
            .map_err(|e| Failure::Transient(e.to_string()))?;
        Ok(key.to_string())
    }

    async fn recorded_status(&self, message_id: &str) -> Result<Option<String>, String> {
        let message = self
            .store
            .message(message_id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(message.and_then(|m| m.media).and_then(|media| {
            media
                .get(self.name)?
                .get("status")?
                .as_str()
                .map(str::to_owned)
        }))
    }

    async fn record(
        &self,
        media: &MediaStored,
        value: Value,
        events: Vec<NewEvent>,
    ) -> Result<(), String> {
        self.store
            .annotate_media(&media.message_id, self.name, value, events)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// Copies the stored object into a fresh scratch directory.
    async fn job(&self, media: MediaStored) -> Result<Job, Failure> {
        let key = BlobKey::new(media.key.clone())
            .map_err(|e| Failure::Permanent(format!("stored object: {e}")))?;
        let blob = self
            .blobs
            .get(&key)
            .await
            .map_err(|e| Failure::Transient(e.to_string()))?
            .ok_or_else(|| Failure::Transient(format!("stored object {key} not found")))?;
        let io = |e: std::io::Error| Failure::Transient(format!("scratch directory: {e}"));
        let scratch = tempfile::Builder::new()
            .prefix("zapfn-media-")
            .tempdir()
            .map_err(io)?;
        let input = scratch.path().join("input");
        tokio::fs::write(&input, &blob.bytes).await.map_err(io)?;
        Ok(Job {
            media,
            bytes: blob.bytes,
            input,
            scratch,
        })
    }

    /// True when the queue would not deliver again after `after` (as the store decides).
    fn is_last_attempt(&self, delivery: &Delivery, after: Duration) -> bool {
        let next_at = now_ms() + after.as_millis() as i64;
        delivery.attempt >= self.max_attempts
            || next_at - delivery.first_attempt_at_ms > self.max_retry_age.as_millis() as i64
    }

    fn retry(&self, delivery: &Delivery, error: String) -> Settlement {
        Settlement::Retry {
            after: retry::backoff(self.retry_base, delivery.attempt),
            error,
        }
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// Tool runs and service calls a [`transcribe`] waits on one after the other, at
/// most, each within the tool timeout: FFmpeg, then PocketSphinx, or a metadata
/// token (cached for the rest of the run) and one Speech-to-Text `recognize`
/// per 55 s part of the audio, ceil(`max_transcribe_seconds` / 55) of them
/// (8 with the default 300 s). (Whisper runs in process, without a timeout.)
pub fn transcribe_steps(config: &MediaConfig) -> u32 {
    2 + config
        .max_transcribe_seconds
        .div_ceil(crate::google::speech::SYNC_MAX_SECONDS)
}

/// Transcribes the sound track of `job` (its first `config.max_transcribe_seconds`)
/// into the fields it adds to a media record: `transcript`, `language`,
/// `transcript_engine`, `transcript_confidence`, and `transcript_truncated`
/// when only the first part was heard. A permanent failure becomes
/// `transcript_error`, a transient one is returned to be retried. No fields
/// when transcription is off.
pub async fn transcribe(
    job: &Job,
    speech: &SpeechEngine,
    duration_s: f64,
    config: &MediaConfig,
) -> Result<serde_json::Map<String, Value>, Failure> {
    let max_seconds = config.max_transcribe_seconds;
    let outcome = speech
        .transcribe_media(
            &job.input,
            &job.scratch_path("speech.wav"),
            duration_s,
            max_seconds,
            config.limits(),
        )
        .await;
    transcript_fields(outcome, duration_s > f64::from(max_seconds))
}

fn transcript_fields(
    outcome: Result<Option<Transcript>, ToolError>,
    truncated: bool,
) -> Result<serde_json::Map<String, Value>, Failure> {
    let mut fields = serde_json::Map::new();
    match outcome {
        Ok(Some(transcript)) => {
            fields.insert("transcript".into(), json!(transcript.text));
            fields.insert("language".into(), json!(transcript.language));
            fields.insert("transcript_engine".into(), json!(transcript.engine));
            if let Some(confidence) = transcript.confidence {
                fields.insert("transcript_confidence".into(), json!(confidence));
            }
            if truncated {
                fields.insert("transcript_truncated".into(), json!(true));
            }
        }
        Ok(None) => {}
        Err(error) if !error.is_transient() => {
            fields.insert("transcript_error".into(), json!(error.to_string()));
        }
        Err(error) => return Err(error.into()),
    }
    Ok(fields)
}
