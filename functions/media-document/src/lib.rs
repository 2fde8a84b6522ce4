//! The document function: for every stored inbound document, records its
//! size, MIME type and file name; for PDFs also the page count, title and the
//! text of the first pages (bounded): `media.document = {status, size, mime,
//! filename, pages?, text?, text_truncated?, ...}`.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use zapfn_mediatools::processor::{Done, Failure, Job, Processor};
use zapfn_mediatools::{poppler, MediaConfig};
use zapfn_runtime::{Context, Function, Subscription};
use zapfn_store::{topics, Delivery, Settlement};

/// Pages whose text is extracted.
const MAX_TEXT_PAGES: u32 = 100;
/// Longest text kept on a message, in characters.
const MAX_TEXT_CHARS: usize = 20_000;

/// Tool runs a run waits on, at most: `pdfinfo` and `pdftotext`.
const STEPS: u32 = 2;

/// The longest a run takes with `config`'s tool timeout: the delivery's lease,
/// and what the deployed service's request timeout must allow.
pub fn lease(config: &MediaConfig) -> Duration {
    config.lease(STEPS)
}

/// The document function.
pub fn function(context: &Context) -> Function {
    let config = MediaConfig::from_env_or_defaults();
    let lease = lease(&config);
    let documents = DocumentProcessor::new(context, config);
    Function::events(
        "media-document",
        vec![Subscription::new(topics::MEDIA, 2, move |delivery| {
            let documents = documents.clone();
            async move { documents.handle(&delivery).await }
        })
        .with_lease(lease)],
    )
}

/// Document messages.
#[derive(Clone)]
pub struct DocumentProcessor {
    processor: Processor,
    config: Arc<MediaConfig>,
}

impl DocumentProcessor {
    /// A document processor on `context` with `config`'s tool limits.
    pub fn new(context: &Context, config: MediaConfig) -> DocumentProcessor {
        DocumentProcessor {
            processor: Processor::new(context, "document", &["document"]),
            config: Arc::new(config),
        }
    }

    /// Handles one `media` event (acknowledging those that are not documents).
    pub async fn handle(&self, delivery: &Delivery) -> Settlement {
        self.processor
            .handle(delivery, |job| self.process(job))
            .await
    }

    async fn process(&self, job: Job) -> Result<Done, Failure> {
        let media = &job.media;
        let mut fields = json!({
            "size": job.bytes.len(),
            "mime": media.content_type,
            "filename": media.filename,
        });
        let looks_like_pdf = job.bytes.starts_with(b"%PDF-");
        let labelled_pdf = media.content_type.starts_with("application/pdf");
        if labelled_pdf && !looks_like_pdf {
            return Err(Failure::Permanent(
                "labelled application/pdf but not a PDF (no %PDF- header)".into(),
            ));
        }
        if looks_like_pdf {
            let limits = self.config.limits();
            let info = poppler::info(&job.input, limits).await?;
            fields["pages"] = json!(info.pages);
            fields["encrypted"] = json!(info.encrypted);
            if let Some(title) = info.title {
                fields["title"] = json!(title);
            }
            match poppler::text(&job.input, MAX_TEXT_PAGES, MAX_TEXT_CHARS, limits).await {
                Ok((text, truncated)) => {
                    fields["text"] = json!(text);
                    fields["text_truncated"] = json!(truncated || info.pages > MAX_TEXT_PAGES);
                }
                Err(error) if !error.is_transient() => {
                    fields["text_error"] = json!(error.to_string())
                }
                Err(error) => return Err(error.into()),
            }
        }
        Ok(Done {
            fields,
            events: Vec::new(),
        })
    }
}
