//! Whisper (whisper.cpp through `whisper-rs`, cargo feature `whisper`):
//! offline, multilingual speech recognition with a ggml model file the user
//! points `ZAPFN_WHISPER_MODEL` at. The model is loaded once, on first use.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::OnceCell;
use whisper_rs::{FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters};

use crate::{ToolError, Transcript};

const TOOL: &str = "whisper";

/// A Whisper model and the language to expect.
pub struct Whisper {
    model: PathBuf,
    /// Whisper's language code (`pt`), or None to detect it.
    language: Option<String>,
    context: OnceCell<Arc<WhisperContext>>,
}

impl Whisper {
    /// Whisper with the ggml model at `model`, expecting `language` (a BCP 47
    /// tag such as `pt-BR`, or `auto` to detect it).
    pub fn new(model: PathBuf, language: &str) -> Whisper {
        let primary = language.split(['-', '_']).next().unwrap_or_default();
        Whisper {
            model,
            language: (!primary.is_empty() && primary != "auto").then(|| primary.to_lowercase()),
            context: OnceCell::new(),
        }
    }

    async fn context(&self) -> Result<Arc<WhisperContext>, ToolError> {
        let context = self
            .context
            .get_or_try_init(|| async {
                let model = self.model.clone();
                let loaded = tokio::task::spawn_blocking(move || {
                    WhisperContext::new_with_params(&model, WhisperContextParameters::default())
                })
                .await
                .map_err(|e| io_error(e.to_string()))?;
                loaded.map(Arc::new).map_err(|e| {
                    io_error(format!(
                        "cannot load the model {} (ZAPFN_WHISPER_MODEL): {e}",
                        self.model.display()
                    ))
                })
            })
            .await?;
        Ok(context.clone())
    }

    /// Transcribes `wav` (16 kHz mono 16-bit PCM).
    pub async fn transcribe(&self, wav: &Path) -> Result<Transcript, ToolError> {
        let context = self.context().await?;
        let samples = read_wav(wav)?;
        let language = self.language.clone();
        tokio::task::spawn_blocking(move || {
            let mut state = context
                .create_state()
                .map_err(|e| io_error(e.to_string()))?;
            let mut params = FullParams::new(SamplingStrategy::Greedy { best_of: 1 });
            params.set_language(Some(language.as_deref().unwrap_or("auto")));
            params.set_n_threads(1);
            params.set_print_progress(false);
            params.set_print_realtime(false);
            params.set_print_special(false);
            params.set_print_timestamps(false);
            state
                .full(params, &samples)
                .map_err(|e| ToolError::Rejected {
                    tool: TOOL,
                    status: 0,
                    stderr: e.to_string(),
                })?;
            let text = state
                .as_iter()
                .filter_map(|segment| segment.to_str_lossy().ok().map(|t| t.trim().to_owned()))
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let detected = whisper_rs::get_lang_str(state.full_lang_id_from_state());
            Ok(Transcript {
                text,
                language: detected.map(str::to_owned).or(language).unwrap_or_default(),
                confidence: None,
                engine: "whisper",
            })
        })
        .await
        .map_err(|e| io_error(e.to_string()))?
    }
}

/// The samples of a 16 kHz mono 16-bit WAV file, as Whisper wants them.
fn read_wav(path: &Path) -> Result<Vec<f32>, ToolError> {
    let unreadable = |detail: String| ToolError::Unreadable { tool: TOOL, detail };
    let mut reader = hound::WavReader::open(path).map_err(|e| unreadable(e.to_string()))?;
    let spec = reader.spec();
    if (spec.channels, spec.sample_rate, spec.bits_per_sample) != (1, 16_000, 16) {
        return Err(unreadable(format!(
            "expected 16 kHz mono 16-bit audio, got {spec:?}"
        )));
    }
    reader
        .samples::<i16>()
        .map(|s| s.map(|s| f32::from(s) / 32768.0))
        .collect::<Result<_, _>>()
        .map_err(|e| unreadable(e.to_string()))
}

fn io_error(detail: String) -> ToolError {
    ToolError::Io { tool: TOOL, detail }
}
