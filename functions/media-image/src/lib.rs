//! The image function: for every stored inbound image or sticker, decodes it
//! (JPEG, PNG, WebP; bombs and corrupt files refused with the reason), stores a
//! 320 px WebP thumbnail, and reads the text in it (Tesseract `por+eng`, or
//! Cloud Vision with labels): `media.image = {status, width, height,
//! thumbnail_key, ocr_text, labels?, ...}`.

pub mod decode;
pub mod thumbnail;

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use zapfn_mediatools::processor::{Done, Failure, Job, Processor};
use zapfn_mediatools::{MediaConfig, OcrEngine};
use zapfn_runtime::{Context, Function, Subscription};
use zapfn_store::{topics, Delivery, Settlement};

/// Longest OCR text kept on a message, in characters.
const MAX_OCR_CHARS: usize = 20_000;

/// Tool runs and service calls a run waits on, at most: Tesseract, or a token
/// and Cloud Vision's request (decoding and the thumbnail are in process).
const STEPS: u32 = 2;

/// The longest a run takes with `config`'s tool timeout: the delivery's lease,
/// and what the deployed service's request timeout must allow.
pub fn lease(config: &MediaConfig) -> Duration {
    config.lease(STEPS)
}

/// The image function, with the OCR engine the environment names.
pub fn function(context: &Context) -> Function {
    let config = MediaConfig::from_env_or_defaults();
    let lease = lease(&config);
    let image = ImageProcessor {
        processor: processor(context),
        ocr: Arc::new(OcrEngine::from_config(&config)),
    };
    Function::events(
        "media-image",
        // Decoding and OCR use a core each: two at a time on a small machine.
        vec![Subscription::new(topics::MEDIA, 2, move |delivery| {
            let image = image.clone();
            async move { image.handle(&delivery).await }
        })
        .with_lease(lease)],
    )
}

/// The processor frame for images and stickers.
pub fn processor(context: &Context) -> Processor {
    Processor::new(context, "image", &["image", "sticker"])
}

/// Images and stickers, with an OCR engine.
#[derive(Clone)]
pub struct ImageProcessor {
    pub processor: Processor,
    pub ocr: Arc<OcrEngine>,
}

impl ImageProcessor {
    /// Handles one `media` event (acknowledging those that are not images).
    pub async fn handle(&self, delivery: &Delivery) -> Settlement {
        self.processor
            .handle(delivery, |job| process(job, &self.processor, &self.ocr))
            .await
    }
}

async fn process(job: Job, processor: &Processor, ocr: &OcrEngine) -> Result<Done, Failure> {
    let bytes = job.bytes.clone();
    let (decoded, thumbnail) = tokio::task::spawn_blocking(move || {
        let decoded = decode::decode(&bytes)?;
        let thumbnail = thumbnail::webp_thumbnail(&decoded.image);
        Ok::<_, Failure>((decoded, thumbnail))
    })
    .await
    .map_err(|e| Failure::Transient(format!("image worker: {e}")))??;
    let thumbnail_key = processor
        .put_derived(&job, "thumb.webp", thumbnail.webp, "image/webp")
        .await?;
    let mut fields = json!({
        "format": decoded.format,
        "width": decoded.image.width(),
        "height": decoded.image.height(),
        "thumbnail_key": thumbnail_key,
        "thumbnail_width": thumbnail.width,
        "thumbnail_height": thumbnail.height,
    });
    drop(decoded);
    match ocr.read(&job.input).await {
        Ok(Some(text)) => {
            fields["ocr_text"] = Value::String(text.text.chars().take(MAX_OCR_CHARS).collect());
            fields["ocr_confidence"] = json!(text.confidence);
            fields["ocr_engine"] = json!(text.engine);
            if let Some(language) = text.language {
                fields["ocr_language"] = json!(language);
            }
            if !text.labels.is_empty() {
                fields["labels"] = json!(text.labels);
            }
        }
        Ok(None) => {}
        // The picture is fine but the OCR engine refused it: keep the rest.
        Err(error) if !error.is_transient() => fields["ocr_error"] = json!(error.to_string()),
        Err(error) => return Err(error.into()),
    }
    Ok(Done {
        fields,
        events: Vec::new(),
    })
}
