//! The OCR and speech engines the configuration picks, behind one call each.

use std::path::Path;
use std::sync::Arc;

use serde::Serialize;

use crate::config::{MediaConfig, OcrChoice, SpeechChoice};
use crate::google::speech::Speech;
use crate::google::token::MetadataToken;
use crate::google::vision::Vision;
use crate::pocketsphinx::{self, Model};
use crate::process::Limits;
use crate::{tesseract, ToolError};

/// Text found in an image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageText {
    pub text: String,
    /// 0–1, when the engine says.
    pub confidence: Option<f32>,
    /// What the image shows (Cloud Vision only).
    pub labels: Vec<String>,
    /// The text's language, when the engine says.
    pub language: Option<String>,
    pub engine: &'static str,
}

/// What was said in a recording.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    pub text: String,
    /// BCP 47 tag.
    pub language: String,
    /// 0–1, when the engine says.
    pub confidence: Option<f32>,
    pub engine: &'static str,
}

/// Reads text in images.
pub enum OcrEngine {
    Tesseract { languages: String, limits: Limits },
    GoogleVision(Vision),
    Off,
}

/// Transcribes speech.
pub enum SpeechEngine {
    PocketSphinx {
        model: Model,
        limits: Limits,
    },
    GoogleSpeech(Speech),
    #[cfg(feature = "whisper")]
    Whisper(crate::whisper::Whisper),
    Off,
}

/// One HTTP client and token source for the Google engines.
fn google(config: &MediaConfig) -> (reqwest::Client, Arc<MetadataToken>) {
    let http = reqwest::Client::builder()
        .timeout(config.tool_timeout)
        .build()
        .unwrap_or_default();
    let token = Arc::new(MetadataToken::new(http.clone(), &config.metadata_host));
    (http, token)
}

impl OcrEngine {
    /// The engine `config` names.
    pub fn from_config(config: &MediaConfig) -> OcrEngine {
        match config.ocr {
            OcrChoice::Tesseract => OcrEngine::Tesseract {
                languages: config.ocr_languages.clone(),
                limits: config.limits(),
            },
            OcrChoice::GoogleVision => {
                let (http, token) = google(config);
                OcrEngine::GoogleVision(Vision {
                    http,
                    base_url: config.vision_url.trim_end_matches('/').to_owned(),
                    token,
                })
            }
            OcrChoice::Off => OcrEngine::Off,
        }
    }

    /// The text in `image`; None when OCR is off.
    pub async fn read(&self, image: &Path) -> Result<Option<ImageText>, ToolError> {
        match self {
            OcrEngine::Tesseract { languages, limits } => {
                let ocr = tesseract::read_text(image, languages, *limits).await?;
                Ok(Some(ImageText {
                    text: ocr.text,
                    confidence: ocr.confidence,
                    labels: Vec::new(),
                    language: None,
                    engine: "tesseract",
                }))
            }
            OcrEngine::GoogleVision(vision) => {
                let bytes = read_file(image).await?;
                vision.read(&bytes).await.map(Some)
            }
            OcrEngine::Off => Ok(None),
        }
    }
}

impl SpeechEngine {
    /// The engine `config` names.
    pub fn from_config(config: &MediaConfig) -> SpeechEngine {
        match config.speech {
            SpeechChoice::PocketSphinx => SpeechEngine::PocketSphinx {
                model: Model::en_us(&config.pocketsphinx_model),
                limits: config.limits(),
            },
            SpeechChoice::GoogleSpeech => {
                let (http, token) = google(config);
                SpeechEngine::GoogleSpeech(Speech {
                    http,
                    base_url: config.speech_url.trim_end_matches('/').to_owned(),
                    token,
                    language: config.speech_language.clone(),
                    timeout: config.tool_timeout,
                })
            }
            #[cfg(feature = "whisper")]
            SpeechChoice::Whisper => SpeechEngine::Whisper(crate::whisper::Whisper::new(
                config.whisper_model.clone().unwrap_or_default(),
                &config.speech_language,
            )),
            SpeechChoice::Off => SpeechEngine::Off,
        }
    }

    /// What is said in `wav` (16 kHz mono, see [`crate::ffmpeg::to_speech_wav`])
    /// lasting `duration_s`; None when transcription is off.
    pub async fn transcribe(
        &self,
        wav: &Path,
        duration_s: f64,
    ) -> Result<Option<Transcript>, ToolError> {
        match self {
            SpeechEngine::PocketSphinx { model, limits } => {
                let text = pocketsphinx::transcribe(wav, model, *limits).await?;
                Ok(Some(Transcript {
                    text,
                    language: model.language.clone(),
                    confidence: None,
                    engine: "pocketsphinx",
                }))
            }
            SpeechEngine::GoogleSpeech(speech) => {
                let bytes = read_file(wav).await?;
                speech.transcribe(&bytes, duration_s).await.map(Some)
            }
            #[cfg(feature = "whisper")]
            SpeechEngine::Whisper(whisper) => whisper.transcribe(wav).await.map(Some),
            SpeechEngine::Off => Ok(None),
        }
    }

    /// What is said in the first audio track of `input` (any format FFmpeg
    /// reads) lasting `duration_s`: converted to 16 kHz mono WAV at `wav`, at
    /// most `max_seconds` of it, and transcribed. None when transcription is off.
    pub async fn transcribe_media(
        &self,
        input: &Path,
        wav: &Path,
        duration_s: f64,
        max_seconds: u32,
        limits: Limits,
    ) -> Result<Option<Transcript>, ToolError> {
        if matches!(self, SpeechEngine::Off) {
            return Ok(None);
        }
        crate::ffmpeg::to_speech_wav(input, wav, max_seconds, limits).await?;
        self.transcribe(wav, duration_s.min(f64::from(max_seconds)))
            .await
    }
}

async fn read_file(path: &Path) -> Result<Vec<u8>, ToolError> {
    tokio::fs::read(path).await.map_err(|e| ToolError::Io {
        tool: "media file",
        detail: format!("{}: {e}", path.display()),
    })
}
