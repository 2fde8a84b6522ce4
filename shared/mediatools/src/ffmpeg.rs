//! FFmpeg and ffprobe: what a media file holds, speech-ready WAV, OGG/Opus
//! voice notes and poster frames.

use std::path::Path;

use serde::Deserialize;

use crate::process::{run, Limits};
use crate::ToolError;

/// Longest side of a poster frame, in pixels.
const POSTER_MAX_SIDE: u32 = 640;

/// What ffprobe found in a file.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaInfo {
    /// The container (`ogg`, `mov,mp4,m4a,3gp,3g2,mj2`, ...).
    pub format: String,
    pub duration_s: Option<f64>,
    /// The first video stream, if any (cover art is not counted).
    pub video: Option<VideoStream>,
    /// The first audio stream, if any.
    pub audio: Option<AudioStream>,
}

/// A video stream, with its size as displayed (rotation applied).
#[derive(Debug, Clone, PartialEq)]
pub struct VideoStream {
    pub codec: String,
    pub width: u32,
    pub height: u32,
}

/// An audio stream.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioStream {
    pub codec: String,
    pub sample_rate: Option<u32>,
    pub channels: Option<u32>,
}

#[derive(Deserialize)]
struct Probe {
    #[serde(default)]
    streams: Vec<ProbeStream>,
    format: Option<ProbeFormat>,
}

#[derive(Deserialize)]
struct ProbeFormat {
    #[serde(default)]
    format_name: String,
    duration: Option<String>,
}

#[derive(Deserialize)]
struct ProbeStream {
    #[serde(default)]
    codec_type: String,
    #[serde(default)]
    codec_name: String,
    width: Option<u32>,
    height: Option<u32>,
    sample_rate: Option<String>,
    channels: Option<u32>,
    duration: Option<String>,
    #[serde(default)]
    disposition: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    tags: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    side_data_list: Vec<serde_json::Value>,
}

impl ProbeStream {
    /// Degrees the player rotates the picture by.
    fn rotation(&self) -> i64 {
        let side_data = self
            .side_data_list
            .iter()
            .find_map(|data| data.get("rotation").and_then(serde_json::Value::as_i64));
        let tag = self
            .tags
            .get("rotate")
            .and_then(|v| v.as_str())
            .and_then(|v| v.parse().ok());
        side_data.or(tag).unwrap_or(0)
    }
}

/// Probes `input` with ffprobe. A file ffprobe cannot read is [`ToolError::Rejected`].
pub async fn probe(input: &Path, limits: Limits) -> Result<MediaInfo, ToolError> {
    let output = run(
        "ffprobe",
        [
            "-v".as_ref(),
            "error".as_ref(),
            "-print_format".as_ref(),
            "json".as_ref(),
            "-show_format".as_ref(),
            "-show_streams".as_ref(),
            input.as_os_str(),
        ],
        &[],
        limits,
    )
    .await?;
    let probe: Probe =
        serde_json::from_slice(&output.stdout).map_err(|e| ToolError::Unreadable {
            tool: "ffprobe",
            detail: e.to_string(),
        })?;
    Ok(media_info(probe))
}

fn media_info(probe: Probe) -> MediaInfo {
    let seconds = |text: &Option<String>| {
        text.as_deref()
            .and_then(|t| t.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
    };
    let is_cover_art = |s: &ProbeStream| {
        s.disposition
            .get("attached_pic")
            .and_then(serde_json::Value::as_i64)
            == Some(1)
    };
    let video = probe
        .streams
        .iter()
        .find(|s| s.codec_type == "video" && !is_cover_art(s))
        .and_then(|s| {
            let (width, height) = (s.width?, s.height?);
            let (width, height) = if s.rotation().rem_euclid(180) == 90 {
                (height, width)
            } else {
                (width, height)
            };
            Some(VideoStream {
                codec: s.codec_name.clone(),
                width,
                height,
            })
        });
    let audio_stream = probe.streams.iter().find(|s| s.codec_type == "audio");
    let audio = audio_stream.map(|s| AudioStream {
        codec: s.codec_name.clone(),
        sample_rate: s.sample_rate.as_deref().and_then(|r| r.parse().ok()),
        channels: s.channels,
    });
    let format_duration = probe.format.as_ref().and_then(|f| seconds(&f.duration));
    let stream_duration = probe
        .streams
        .iter()
        .filter_map(|s| seconds(&s.duration))
        .reduce(f64::max);
    MediaInfo {
        format: probe.format.map(|f| f.format_name).unwrap_or_default(),
        duration_s: format_duration.or(stream_duration),
        video,
        audio,
    }
}

/// Converts the first audio track of `input` (any container FFmpeg reads:
/// OGG/Opus, AMR, AAC, MP3, MP4, 3GPP) to 16 kHz mono 16-bit WAV, the input
/// speech recognisers expect; at most `max_seconds` of it.
pub async fn to_speech_wav(
    input: &Path,
    output: &Path,
    max_seconds: u32,
    limits: Limits,
) -> Result<(), ToolError> {
    let max_seconds = max_seconds.to_string();
    ffmpeg(
        [
            "-i".as_ref(),
            input.as_os_str(),
            "-t".as_ref(),
            max_seconds.as_ref(),
            "-map".as_ref(),
            "0:a:0".as_ref(),
            "-ac".as_ref(),
            "1".as_ref(),
            "-ar".as_ref(),
            "16000".as_ref(),
            "-c:a".as_ref(),
            "pcm_s16le".as_ref(),
            "-f".as_ref(),
            "wav".as_ref(),
            output.as_os_str(),
        ],
        limits,
    )
    .await
}

/// Converts `input` to what WhatsApp plays as a voice note: OGG with one
/// mono Opus stream (`audio/ogg; codecs=opus`), 48 kHz, 32 kbit/s, no metadata.
pub async fn to_voice_ogg(input: &Path, output: &Path, limits: Limits) -> Result<(), ToolError> {
    ffmpeg(
        [
            "-i".as_ref(),
            input.as_os_str(),
            "-map".as_ref(),
            "0:a:0".as_ref(),
            "-map_metadata".as_ref(),
            "-1".as_ref(),
            "-ac".as_ref(),
            "1".as_ref(),
            "-ar".as_ref(),
            "48000".as_ref(),
            "-c:a".as_ref(),
            "libopus".as_ref(),
            "-b:a".as_ref(),
            "32k".as_ref(),
            "-application".as_ref(),
            "voip".as_ref(),
            "-f".as_ref(),
            "ogg".as_ref(),
            output.as_os_str(),
        ],
        limits,
    )
    .await
}

/// Writes one JPEG frame of `input`'s video, `at_s` seconds in (the first
/// frame when the video is shorter), at most 640 px on its longest side.
pub async fn poster_frame(
    input: &Path,
    output: &Path,
    at_s: f64,
    limits: Limits,
) -> Result<(), ToolError> {
    let scale = format!(
        "scale=w='min({POSTER_MAX_SIDE},iw)':h='min({POSTER_MAX_SIDE},ih)':force_original_aspect_ratio=decrease"
    );
    for at in [at_s, 0.0] {
        let at = format!("{at:.3}");
        ffmpeg(
            [
                "-ss".as_ref(),
                at.as_ref(),
                "-i".as_ref(),
                input.as_os_str(),
                "-map".as_ref(),
                "0:v:0".as_ref(),
                "-frames:v".as_ref(),
                "1".as_ref(),
                "-vf".as_ref(),
                scale.as_ref(),
                "-q:v".as_ref(),
                "3".as_ref(),
                "-f".as_ref(),
                "image2".as_ref(),
                "-c:v".as_ref(),
                "mjpeg".as_ref(),
                output.as_os_str(),
            ],
            limits,
        )
        .await?;
        if tokio::fs::metadata(output)
            .await
            .is_ok_and(|meta| meta.len() > 0)
        {
            return Ok(());
        }
    }
    Err(ToolError::Rejected {
        tool: "ffmpeg",
        status: 0,
        stderr: "no video frame could be decoded".into(),
    })
}

/// Runs ffmpeg quietly, never reading stdin, overwriting the output.
async fn ffmpeg<'a>(
    args: impl IntoIterator<Item = &'a std::ffi::OsStr>,
    limits: Limits,
) -> Result<(), ToolError> {
    let base: [&std::ffi::OsStr; 5] = [
        "-nostdin".as_ref(),
        "-hide_banner".as_ref(),
        "-loglevel".as_ref(),
        "error".as_ref(),
        "-y".as_ref(),
    ];
    run("ffmpeg", base.into_iter().chain(args), &[], limits)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotated_video_reports_its_displayed_size_and_skips_cover_art() {
        let probe: Probe = serde_json::from_value(serde_json::json!({
            "streams": [
                {"codec_type": "video", "codec_name": "mjpeg", "width": 300, "height": 300,
                 "disposition": {"attached_pic": 1}},
                {"codec_type": "video", "codec_name": "h264", "width": 1920, "height": 1080,
                 "side_data_list": [{"side_data_type": "Display Matrix", "rotation": -90}]},
                {"codec_type": "audio", "codec_name": "aac", "sample_rate": "44100", "channels": 2,
                 "duration": "12.5"}
            ],
            "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2"}
        }))
        .unwrap();
        let info = media_info(probe);
        assert_eq!(
            info.video,
            Some(VideoStream {
                codec: "h264".into(),
                width: 1080,
                height: 1920
            })
        );
        assert_eq!(info.audio.unwrap().sample_rate, Some(44100));
        assert_eq!(info.duration_s, Some(12.5));
    }
}
