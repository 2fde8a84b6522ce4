//! PocketSphinx (Debian's `pocketsphinx` with the `pocketsphinx-en-us` model):
//! offline speech recognition, English only, poor on noisy or synthetic speech.

use std::path::{Path, PathBuf};

use crate::process::{run, Limits};
use crate::ToolError;

/// Where Debian's `pocketsphinx-en-us` puts the US English model.
pub const DEBIAN_EN_US_MODEL: &str = "/usr/share/pocketsphinx/model/en-us";

/// A PocketSphinx model directory laid out like Debian's: `en-us/` (acoustic
/// model), `en-us.lm.bin` (language model) and `cmudict-en-us.dict`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Model {
    pub acoustic: PathBuf,
    pub language_model: PathBuf,
    pub dictionary: PathBuf,
    /// BCP 47 tag of the model's language.
    pub language: String,
}

impl Model {
    /// The model in `dir`, laid out like Debian's en-us model.
    pub fn en_us(dir: &Path) -> Model {
        Model {
            acoustic: dir.join("en-us"),
            language_model: dir.join("en-us.lm.bin"),
            dictionary: dir.join("cmudict-en-us.dict"),
            language: "en-US".into(),
        }
    }
}

/// Transcribes `wav` (16 kHz mono 16-bit PCM, see [`crate::ffmpeg::to_speech_wav`]).
pub async fn transcribe(wav: &Path, model: &Model, limits: Limits) -> Result<String, ToolError> {
    if !model.acoustic.is_dir() {
        return Err(ToolError::Missing {
            tool: "pocketsphinx_continuous",
            package: "pocketsphinx-en-us",
        });
    }
    let output = run(
        "pocketsphinx_continuous",
        [
            "-infile".as_ref(),
            wav.as_os_str(),
            "-hmm".as_ref(),
            model.acoustic.as_os_str(),
            "-lm".as_ref(),
            model.language_model.as_os_str(),
            "-dict".as_ref(),
            model.dictionary.as_os_str(),
            "-logfn".as_ref(),
            "/dev/null".as_ref(),
        ],
        &[],
        limits,
    )
    .await?;
    // One hypothesis per utterance, one per line.
    Ok(String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" "))
}
