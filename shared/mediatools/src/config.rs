//! Which OCR and speech engines the media processors use, from the environment
//! (documented in the README): local tools by default, Google's APIs on Cloud
//! Run (`K_SERVICE` set) unless configured otherwise.

use std::path::PathBuf;
use std::time::Duration;

use crate::pocketsphinx::DEBIAN_EN_US_MODEL;
use crate::process::Limits;

/// What a processor run needs besides its tools: the store, the blob store,
/// scratch files and in-process work such as decoding an image.
const RUN_MARGIN: Duration = Duration::from_secs(60);

/// Reads text in images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcrChoice {
    /// Tesseract, with `ocr_languages`.
    Tesseract,
    /// Cloud Vision `TEXT_DETECTION` and `LABEL_DETECTION`.
    GoogleVision,
    Off,
}

/// Transcribes speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpeechChoice {
    /// PocketSphinx with `pocketsphinx_model` (English).
    PocketSphinx,
    /// Speech-to-Text v1 with `speech_language` and automatic punctuation.
    GoogleSpeech,
    /// Whisper with the model at `whisper_model` (cargo feature `whisper`).
    #[cfg(feature = "whisper")]
    Whisper,
    Off,
}

/// Media processing settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaConfig {
    /// `ZAPFN_OCR_ENGINE`: `tesseract`, `google-vision` or `off`.
    pub ocr: OcrChoice,
    /// `ZAPFN_OCR_LANGUAGES`, Tesseract's `-l` (default `por+eng`).
    pub ocr_languages: String,
    /// `ZAPFN_SPEECH_ENGINE`: `pocketsphinx`, `google-speech`, `whisper` (builds
    /// with the `whisper` feature; the default when `ZAPFN_WHISPER_MODEL` is set) or `off`.
    pub speech: SpeechChoice,
    /// `ZAPFN_SPEECH_LANGUAGE`, Speech-to-Text's language (default `pt-BR`).
    pub speech_language: String,
    /// `ZAPFN_POCKETSPHINX_MODEL`: a model directory laid out like Debian's en-us one.
    pub pocketsphinx_model: PathBuf,
    /// `ZAPFN_WHISPER_MODEL`: a whisper.cpp ggml model file.
    pub whisper_model: Option<PathBuf>,
    /// `ZAPFN_TRANSCRIBE_MAX_SECONDS`: audio beyond this is not transcribed (default 300).
    pub max_transcribe_seconds: u32,
    /// `ZAPFN_MEDIA_TOOL_TIMEOUT_SECONDS`: one tool run or service call (default 120).
    pub tool_timeout: Duration,
    /// `ZAPFN_VISION_URL` (default `https://vision.googleapis.com`).
    pub vision_url: String,
    /// `ZAPFN_SPEECH_URL` (default `https://speech.googleapis.com`).
    pub speech_url: String,
    /// `GCE_METADATA_HOST`, where access tokens come from (default `metadata.google.internal`).
    pub metadata_host: String,
}

/// A setting that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct MediaConfigError {
    pub name: &'static str,
    pub problem: String,
}

impl MediaConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<MediaConfig, MediaConfigError> {
        MediaConfig::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads settings through `lookup`.
    pub fn from_lookup(
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<MediaConfig, MediaConfigError> {
        let on_cloud_run = lookup("K_SERVICE").is_some();
        let ocr = match lookup("ZAPFN_OCR_ENGINE").as_deref() {
            None if on_cloud_run => OcrChoice::GoogleVision,
            None | Some("tesseract") => OcrChoice::Tesseract,
            Some("google-vision") => OcrChoice::GoogleVision,
            Some("off") => OcrChoice::Off,
            Some(other) => {
                return Err(unknown(
                    "ZAPFN_OCR_ENGINE",
                    other,
                    "tesseract, google-vision, off",
                ))
            }
        };
        let whisper_model = lookup("ZAPFN_WHISPER_MODEL").map(PathBuf::from);
        let speech = match lookup("ZAPFN_SPEECH_ENGINE").as_deref() {
            None if whisper_model.is_some() => whisper(true)?,
            None if on_cloud_run => SpeechChoice::GoogleSpeech,
            None | Some("pocketsphinx") => SpeechChoice::PocketSphinx,
            Some("google-speech") => SpeechChoice::GoogleSpeech,
            Some("whisper") => whisper(whisper_model.is_some())?,
            Some("off") => SpeechChoice::Off,
            Some(other) => {
                return Err(unknown(
                    "ZAPFN_SPEECH_ENGINE",
                    other,
                    "pocketsphinx, google-speech, whisper, off",
                ))
            }
        };
        let number = |name: &'static str, default: u32| match lookup(name) {
            None => Ok(default),
            Some(text) => {
                text.trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or(MediaConfigError {
                        name,
                        problem: format!("{text:?} is not a positive whole number"),
                    })
            }
        };
        Ok(MediaConfig {
            ocr,
            ocr_languages: lookup("ZAPFN_OCR_LANGUAGES").unwrap_or_else(|| "por+eng".into()),
            speech,
            speech_language: lookup("ZAPFN_SPEECH_LANGUAGE").unwrap_or_else(|| "pt-BR".into()),
            pocketsphinx_model: lookup("ZAPFN_POCKETSPHINX_MODEL")
                .unwrap_or_else(|| DEBIAN_EN_US_MODEL.into())
                .into(),
            whisper_model,
            max_transcribe_seconds: number("ZAPFN_TRANSCRIBE_MAX_SECONDS", 300)?,
            tool_timeout: Duration::from_secs(
                number("ZAPFN_MEDIA_TOOL_TIMEOUT_SECONDS", 120)?.into(),
            ),
            vision_url: lookup("ZAPFN_VISION_URL")
                .unwrap_or_else(|| "https://vision.googleapis.com".into()),
            speech_url: lookup("ZAPFN_SPEECH_URL")
                .unwrap_or_else(|| "https://speech.googleapis.com".into()),
            metadata_host: lookup("GCE_METADATA_HOST")
                .unwrap_or_else(|| "metadata.google.internal".into()),
        })
    }

    /// Reads the process environment; on a bad setting, logs it and uses the
    /// defaults (a function keeps running rather than refusing every event).
    pub fn from_env_or_defaults() -> MediaConfig {
        MediaConfig::from_env().unwrap_or_else(|error| {
            tracing::error!(%error, "media settings not used; local tools with defaults instead");
            MediaConfig::default()
        })
    }

    /// A delivery lease for a processor whose run waits on at most `steps` tool
    /// runs or service calls one after the other (each within `tool_timeout`):
    /// longer than such a run, so it is not delivered to a second run meanwhile.
    pub fn lease(&self, steps: u32) -> Duration {
        self.tool_timeout * steps + RUN_MARGIN
    }

    /// Bounds for one tool run.
    pub fn limits(&self) -> Limits {
        Limits {
            timeout: self.tool_timeout,
            ..Limits::default()
        }
    }
}

impl Default for MediaConfig {
    /// Local tools with their defaults.
    fn default() -> Self {
        MediaConfig::from_lookup(|_| None).expect("the defaults are valid")
    }
}

/// Whisper, when this build has it and a model is named.
fn whisper(has_model: bool) -> Result<SpeechChoice, MediaConfigError> {
    let problem = |problem: &str| MediaConfigError {
        name: "ZAPFN_WHISPER_MODEL",
        problem: problem.to_owned(),
    };
    if !has_model {
        return Err(problem("Whisper needs a whisper.cpp ggml model file"));
    }
    #[cfg(feature = "whisper")]
    return Ok(SpeechChoice::Whisper);
    #[cfg(not(feature = "whisper"))]
    Err(problem(
        "Whisper is not in this build (build with --features zapfn-mediatools/whisper)",
    ))
}

fn unknown(name: &'static str, value: &str, choices: &str) -> MediaConfigError {
    MediaConfigError {
        name,
        problem: format!("{value:?} is not one of {choices}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<MediaConfig, MediaConfigError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        MediaConfig::from_lookup(|name| map.get(name).map(|v| v.to_string()))
    }

    #[test]
    fn local_tools_by_default_google_on_cloud_run_and_explicit_choice_wins() {
        let local = config(&[]).unwrap();
        assert_eq!(
            (local.ocr, local.speech),
            (OcrChoice::Tesseract, SpeechChoice::PocketSphinx)
        );
        assert_eq!(local.ocr_languages, "por+eng");
        let cloud_run = config(&[("K_SERVICE", "zapfn-media-audio")]).unwrap();
        assert_eq!(
            (cloud_run.ocr, cloud_run.speech),
            (OcrChoice::GoogleVision, SpeechChoice::GoogleSpeech)
        );
        assert_eq!(cloud_run.speech_language, "pt-BR");
        let chosen = config(&[
            ("K_SERVICE", "x"),
            ("ZAPFN_OCR_ENGINE", "tesseract"),
            ("ZAPFN_SPEECH_ENGINE", "off"),
        ])
        .unwrap();
        assert_eq!(
            (chosen.ocr, chosen.speech),
            (OcrChoice::Tesseract, SpeechChoice::Off)
        );
        assert_eq!(
            config(&[("ZAPFN_SPEECH_ENGINE", "whisperx")])
                .unwrap_err()
                .name,
            "ZAPFN_SPEECH_ENGINE"
        );
        assert!(config(&[("ZAPFN_TRANSCRIBE_MAX_SECONDS", "0")]).is_err());
    }

    #[test]
    fn leases_outlast_the_tool_runs_they_wait_on() {
        let default = config(&[]).unwrap();
        assert!(default.lease(2) > Duration::from_secs(2 * 120));
        let slow = config(&[("ZAPFN_MEDIA_TOOL_TIMEOUT_SECONDS", "300")]).unwrap();
        assert!(slow.lease(7) > Duration::from_secs(7 * 300));
    }

    #[test]
    fn whisper_needs_the_feature_and_a_model() {
        let with_model = config(&[("ZAPFN_WHISPER_MODEL", "/models/ggml-base.bin")]);
        let without_model = config(&[("ZAPFN_SPEECH_ENGINE", "whisper")]);
        assert_eq!(without_model.unwrap_err().name, "ZAPFN_WHISPER_MODEL");
        #[cfg(feature = "whisper")]
        assert_eq!(with_model.unwrap().speech, SpeechChoice::Whisper);
        #[cfg(not(feature = "whisper"))]
        assert!(with_model
            .unwrap_err()
            .problem
            .contains("--features zapfn-mediatools/whisper"));
    }
}
