//! Speech-to-Text v1 `speech:recognize`, which takes up to a minute of inline
//! audio: longer audio is sent in consecutive parts of at most 55 s, one after
//! the other, and their transcripts joined. (`speech:longrunningrecognize`
//! takes longer inline audio no better: beyond a minute it needs a Cloud
//! Storage URI.)

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use serde_json::json;

use super::token::MetadataToken;
use super::{error_from, transport_error};
use crate::engines::Transcript;
use crate::ToolError;

const SERVICE: &str = "Speech-to-Text";
/// Longest audio one `speech:recognize` is sent (Google's limit is one minute).
pub const SYNC_MAX_SECONDS: u32 = 55;
/// The sample rate of the audio sent, and of the WAV it comes from.
const SAMPLE_RATE_HZ: u32 = 16_000;
/// Bytes of one 16-bit mono sample.
const SAMPLE_BYTES: usize = 2;
/// Most PCM bytes in one request: `SYNC_MAX_SECONDS` of whole samples.
const PART_BYTES: usize = SYNC_MAX_SECONDS as usize * SAMPLE_RATE_HZ as usize * SAMPLE_BYTES;

/// A Speech-to-Text client.
pub struct Speech {
    pub(crate) http: reqwest::Client,
    pub(crate) base_url: String,
    pub(crate) token: Arc<MetadataToken>,
    /// BCP 47 language, e.g. `pt-BR`.
    pub(crate) language: String,
    /// How long one `speech:recognize` request may take.
    pub(crate) timeout: Duration,
}

#[derive(Deserialize)]
struct RecognizeResponse {
    #[serde(default)]
    results: Vec<RecognitionResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecognitionResult {
    #[serde(default)]
    alternatives: Vec<Alternative>,
    language_code: Option<String>,
}

#[derive(Deserialize)]
struct Alternative {
    #[serde(default)]
    transcript: String,
    confidence: Option<f32>,
}

impl Speech {
    /// Transcribes `wav` (16 kHz mono 16-bit PCM) lasting `duration_s`: in one
    /// request up to `SYNC_MAX_SECONDS`, else its samples in consecutive parts
    /// of at most that, one request each, in order. A failed part fails it all.
    pub async fn transcribe(&self, wav: &[u8], duration_s: f64) -> Result<Transcript, ToolError> {
        let parts: Vec<&[u8]> = if duration_s <= f64::from(SYNC_MAX_SECONDS) {
            vec![wav]
        } else {
            pcm_samples(wav)?.chunks(PART_BYTES).collect()
        };
        let mut results = Vec::new();
        for audio in parts {
            results.extend(self.recognize(audio).await?.results);
        }
        Ok(self.transcript(&results))
    }

    /// One `speech:recognize` of `audio` (a WAV file, or raw LINEAR16 samples).
    async fn recognize(&self, audio: &[u8]) -> Result<RecognizeResponse, ToolError> {
        let body = json!({
            "config": {
                "encoding": "LINEAR16",
                "sampleRateHertz": SAMPLE_RATE_HZ,
                "audioChannelCount": 1,
                "languageCode": self.language,
                "enableAutomaticPunctuation": true
            },
            "audio": {"content": base64::engine::general_purpose::STANDARD.encode(audio)}
        });
        let response = self
            .http
            .post(format!("{}/v1/speech:recognize", self.base_url))
            .timeout(self.timeout)
            .bearer_auth(self.token.bearer().await?)
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_error(SERVICE, e))?;
        if !response.status().is_success() {
            return Err(error_from(SERVICE, response).await);
        }
        response.json().await.map_err(|e| ToolError::Unreadable {
            tool: SERVICE,
            detail: e.to_string(),
        })
    }

    /// The best alternatives of `results` joined in order, their average
    /// confidence, and the first language reported (else the one asked for).
    fn transcript(&self, results: &[RecognitionResult]) -> Transcript {
        let best: Vec<&Alternative> = results
            .iter()
            .filter_map(|r| r.alternatives.first())
            .collect();
        let confidences: Vec<f32> = best.iter().filter_map(|a| a.confidence).collect();
        Transcript {
            text: best
                .iter()
                .map(|a| a.transcript.trim())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            language: results
                .iter()
                .find_map(|r| r.language_code.clone())
                .unwrap_or_else(|| self.language.clone()),
            confidence: (!confidences.is_empty())
                .then(|| confidences.iter().sum::<f32>() / confidences.len() as f32),
            engine: "google-speech",
        }
    }
}

/// The samples of `wav`, a RIFF WAVE file of 16 kHz mono 16-bit PCM: the body
/// of its `data` chunk, found by walking its chunks (FFmpeg may write a `LIST`
/// one first), cut to whole samples.
fn pcm_samples(wav: &[u8]) -> Result<&[u8], ToolError> {
    let mut chunks = match wav {
        [b'R', b'I', b'F', b'F', _, _, _, _, b'W', b'A', b'V', b'E', chunks @ ..] => chunks,
        _ => return Err(unreadable("not a RIFF WAVE file")),
    };
    let mut format_checked = false;
    while let Some((id, body, next)) = split_chunk(chunks) {
        match id {
            b"fmt " => {
                check_format(body)?;
                format_checked = true;
            }
            b"data" if format_checked => return Ok(&body[..body.len() - body.len() % SAMPLE_BYTES]),
            b"data" => return Err(unreadable("a `data` chunk before any `fmt ` chunk")),
            _ => {}
        }
        chunks = next;
    }
    Err(unreadable("no `data` chunk"))
}

/// The RIFF chunk at the start of `bytes`: its id, its body and the chunks
/// after it (bodies are padded to an even length). A body said to run past the
/// end, as in a WAV written to a pipe, ends there. None when no chunk is left.
fn split_chunk(bytes: &[u8]) -> Option<(&[u8; 4], &[u8], &[u8])> {
    let (id, rest) = bytes.split_first_chunk::<4>()?;
    let (size, rest) = rest.split_first_chunk::<4>()?;
    let size = u32::from_le_bytes(*size) as usize;
    let body = &rest[..size.min(rest.len())];
    let next = rest
        .get(size.saturating_add(size % 2)..)
        .unwrap_or_default();
    Some((id, body, next))
}

/// Checks that a `fmt ` chunk describes the audio the requests say they send:
/// one channel of 16-bit samples at 16 kHz.
fn check_format(fmt: &[u8]) -> Result<(), ToolError> {
    let channels = fmt
        .get(2..4)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_le_bytes);
    let rate = fmt
        .get(4..8)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes);
    let bits = fmt
        .get(14..16)
        .and_then(|b| b.try_into().ok())
        .map(u16::from_le_bytes);
    match (channels, rate, bits) {
        (Some(1), Some(SAMPLE_RATE_HZ), Some(16)) => Ok(()),
        (Some(channels), Some(rate), Some(bits)) => Err(unreadable(format!(
            "{channels} channel(s) of {bits}-bit samples at {rate} Hz, not 16 kHz mono 16-bit"
        ))),
        _ => Err(unreadable("a `fmt ` chunk too short")),
    }
}

/// The WAV given is not one this engine can send.
fn unreadable(detail: impl std::fmt::Display) -> ToolError {
    ToolError::Unreadable {
        tool: SERVICE,
        detail: format!("speech WAV: {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_of_odd_length_is_skipped_with_its_padding_byte() {
        let fmt = [1, 0, 1, 0, 0x80, 0x3e, 0, 0, 0, 0x7d, 0, 0, 2, 0, 16, 0];
        let wav = [
            b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".as_slice(),
            &fmt,
            b"id3 \x03\0\0\0ID3\0",
            b"data\x05\0\0\0\x01\x02\x03\x04\x05",
        ]
        .concat();
        assert_eq!(pcm_samples(&wav).unwrap(), [1, 2, 3, 4]);
    }

    #[test]
    fn audio_other_than_16_khz_mono_16_bit_is_unreadable() {
        let stereo = [1, 0, 2, 0, 0x80, 0x3e, 0, 0, 0, 0xfa, 0, 0, 4, 0, 16, 0];
        let wav = [
            b"RIFF\0\0\0\0WAVEfmt \x10\0\0\0".as_slice(),
            &stereo,
            b"data\x04\0\0\0\x01\x02\x03\x04",
        ]
        .concat();
        let error = pcm_samples(&wav).unwrap_err();
        assert!(error.to_string().contains("2 channel(s)"), "{error}");
    }
}
