//! Media tools for zapfn's media processors.
//!
//! Each system tool runs as a child process with a timeout and a cap on what it
//! may print ([`process`]): [`ffmpeg`] (probe, 16 kHz mono WAV, OGG/Opus voice
//! notes, poster frames), [`tesseract`] (OCR), [`pocketsphinx`] (offline
//! English speech recognition) and [`poppler`] (PDF page count and text). The
//! deployed alternatives, Cloud Vision and Speech-to-Text, are REST calls in
//! [`google`]. [`engines`] picks one OCR and one speech engine from the
//! environment ([`MediaConfig`]). [`processor`] is the frame every media
//! processor function runs its work in; [`trigger`] reads what started it.

pub mod config;
pub mod engines;
pub mod error;
pub mod ffmpeg;
pub mod google;
pub mod pocketsphinx;
pub mod poppler;
pub mod process;
pub mod processor;
#[cfg(feature = "samples")]
pub mod samples;
pub mod tesseract;
pub mod trigger;
#[cfg(feature = "whisper")]
pub mod whisper;

pub use config::MediaConfig;
pub use engines::{ImageText, OcrEngine, SpeechEngine, Transcript};
pub use error::ToolError;
pub use process::Limits;
