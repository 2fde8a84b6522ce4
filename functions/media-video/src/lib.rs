//! The video function: for every stored inbound video, records its duration,
//! resolution and codecs, stores a poster frame (JPEG, at most 640 px) and
//! transcribes its sound track like a voice note: `media.video = {status,
//! duration_s, width, height, poster_key, transcript?, language?, ...}`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use zapfn_mediatools::processor::{transcribe, transcribe_steps, Done, Failure, Job, Processor};
use zapfn_mediatools::{ffmpeg, MediaConfig, SpeechEngine};
use zapfn_runtime::{Context, Function, Subscription};
use zapfn_store::{topics, Delivery, Settlement};

/// Where the poster frame is taken, at most (half-way in shorter videos).
const POSTER_AT_S: f64 = 1.0;

/// The longest a run takes with `config`: the delivery's lease, and what the
/// deployed service's request timeout must allow. A run waits on at most the
/// probe, the poster frame and the transcription's tool runs and service calls.
pub fn lease(config: &MediaConfig) -> Duration {
    config.lease(2 + transcribe_steps(config))
}

/// The video function, with the speech engine the environment names.
pub fn function(context: &Context) -> Function {
    let config = MediaConfig::from_env_or_defaults();
    let lease = lease(&config);
    let video = VideoProcessor::new(context, config);
    Function::events(
        "media-video",
        vec![Subscription::new(topics::MEDIA, 2, move |delivery| {
            let video = video.clone();
            async move { video.handle(&delivery).await }
        })
        .with_lease(lease)],
    )
}

/// Video messages, with a speech engine for the sound track.
#[derive(Clone)]
pub struct VideoProcessor {
    processor: Processor,
    speech: Arc<SpeechEngine>,
    config: Arc<MediaConfig>,
}

impl VideoProcessor {
    /// A video processor on `context` with `config`'s speech engine and limits.
    pub fn new(context: &Context, config: MediaConfig) -> VideoProcessor {
        VideoProcessor {
            processor: Processor::new(context, "video", &["video"]),
            speech: Arc::new(SpeechEngine::from_config(&config)),
            config: Arc::new(config),
        }
    }

    /// Handles one `media` event (acknowledging those that are not videos).
    pub async fn handle(&self, delivery: &Delivery) -> Settlement {
        self.processor
            .handle(delivery, |job| self.process(job))
            .await
    }

    async fn process(&self, job: Job) -> Result<Done, Failure> {
        let limits = self.config.limits();
        let info = ffmpeg::probe(&job.input, limits).await?;
        let video = info
            .video
            .ok_or_else(|| Failure::Permanent("no video track".into()))?;
        let duration_s = info.duration_s.unwrap_or_default();
        let poster = job.scratch_path("poster.jpg");
        ffmpeg::poster_frame(
            &job.input,
            &poster,
            POSTER_AT_S.min(duration_s / 2.0),
            limits,
        )
        .await?;
        let poster = tokio::fs::read(&poster)
            .await
            .map_err(|e| Failure::Transient(format!("poster frame: {e}")))?;
        let poster_key = self
            .processor
            .put_derived(&job, "poster.jpg", poster, "image/jpeg")
            .await?;
        let mut fields = json!({
            "duration_s": (duration_s * 100.0).round() / 100.0,
            "width": video.width,
            "height": video.height,
            "video_codec": video.codec,
            "poster_key": poster_key,
        });
        if let Some(audio) = info.audio {
            fields["audio_codec"] = json!(audio.codec);
            let transcript = transcribe(&job, &self.speech, duration_s, &self.config).await?;
            if let Some(fields) = fields.as_object_mut() {
                fields.extend(transcript);
            }
        }
        Ok(Done {
            fields,
            events: Vec::new(),
        })
    }
}
