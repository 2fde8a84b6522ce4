//! The audio function: for every stored inbound audio message (voice notes
//! too), records its duration, converts it with FFmpeg to 16 kHz mono and
//! transcribes it (PocketSphinx offline, or Speech-to-Text `pt-BR` when
//! deployed): `media.audio = {status, duration_s, transcript, language, ...}`.
//! A non-empty transcript is published on `transcripts` as a message event,
//! so the text function answers a voice note as it answers typed text.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use zapfn_mediatools::processor::{transcribe, transcribe_steps, Done, Failure, Job, Processor};
use zapfn_mediatools::{ffmpeg, MediaConfig, SpeechEngine};
use zapfn_runtime::{Context, Function, Subscription};
use zapfn_store::{topics, Delivery, MessageEvent, NewEvent, Settlement};

/// The longest a run takes with `config`: the delivery's lease, and what the
/// deployed service's request timeout must allow. A run waits on at most the
/// probe and the transcription's tool runs and service calls.
pub fn lease(config: &MediaConfig) -> Duration {
    config.lease(1 + transcribe_steps(config))
}

/// The audio function, with the speech engine the environment names.
pub fn function(context: &Context) -> Function {
    let config = MediaConfig::from_env_or_defaults();
    let lease = lease(&config);
    let audio = AudioProcessor::new(context, config);
    Function::events(
        "media-audio",
        // Recognition takes a core: two at a time on a small machine.
        vec![Subscription::new(topics::MEDIA, 2, move |delivery| {
            let audio = audio.clone();
            async move { audio.handle(&delivery).await }
        })
        .with_lease(lease)],
    )
}

/// Audio messages, with a speech engine.
#[derive(Clone)]
pub struct AudioProcessor {
    processor: Processor,
    speech: Arc<SpeechEngine>,
    config: Arc<MediaConfig>,
}

impl AudioProcessor {
    /// An audio processor on `context` with `config`'s speech engine and limits.
    pub fn new(context: &Context, config: MediaConfig) -> AudioProcessor {
        AudioProcessor {
            processor: Processor::new(context, "audio", &["audio"]),
            speech: Arc::new(SpeechEngine::from_config(&config)),
            config: Arc::new(config),
        }
    }

    /// Handles one `media` event (acknowledging those that are not audio).
    pub async fn handle(&self, delivery: &Delivery) -> Settlement {
        self.processor
            .handle(delivery, |job| self.process(job))
            .await
    }

    async fn process(&self, job: Job) -> Result<Done, Failure> {
        let info = ffmpeg::probe(&job.input, self.config.limits()).await?;
        let audio = info
            .audio
            .ok_or_else(|| Failure::Permanent("no audio track".into()))?;
        let duration_s = info.duration_s.unwrap_or_default();
        let transcript = transcribe(&job, &self.speech, duration_s, &self.config).await?;
        let text = transcript
            .get("transcript")
            .and_then(|t| t.as_str())
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let mut fields = json!({
            "duration_s": (duration_s * 100.0).round() / 100.0,
            "codec": audio.codec,
            "voice": job.media.voice,
        });
        if let Some(fields) = fields.as_object_mut() {
            fields.extend(transcript);
        }
        let events = text
            .map(|text| transcript_event(&job, text))
            .into_iter()
            .collect();
        Ok(Done { fields, events })
    }
}

/// The transcript as a message event of the voice note, ordered with the
/// customer's other messages.
fn transcript_event(job: &Job, text: String) -> NewEvent {
    let media = &job.media;
    let event = MessageEvent {
        message_id: media.message_id.clone(),
        wamid: media.wamid.clone(),
        phone_number_id: media.phone_number_id.clone(),
        message_type: media.message_type.clone(),
        from: media.from.clone(),
        text: Some(text),
        reply_id: None,
        group_id: media.group_id.clone(),
    };
    NewEvent {
        topic: topics::TRANSCRIPTS.into(),
        ordering_key: Some(format!(
            "{}:{}",
            media.phone_number_id,
            media.conversation_wa_id()
        )),
        payload: serde_json::to_value(event).expect("a message event is plain strings"),
    }
}
