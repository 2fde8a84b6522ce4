//! `zapfn-bench media`: the media processors' costs on this machine, on media
//! made here with real tools: a 320 px WebP thumbnail of a ≈ 5 MB 4000×3000
//! JPEG (decode + scale + encode, as media-image does it), Tesseract OCR per
//! image (a 1200×400 sign and the full photo), and the real-time factor of
//! transcribing a 30 s voice note (FFmpeg to 16 kHz mono + PocketSphinx).
//! Each figure is the median of `--runs` runs.

use std::time::{Duration, Instant};

use zapfn_media_image::{decode, thumbnail};
use zapfn_mediatools::{ffmpeg, process, samples, Limits, MediaConfig, OcrEngine, SpeechEngine};

#[derive(clap::Args)]
pub struct Args {
    /// Runs per figure (the median is reported).
    #[arg(long, default_value_t = 5)]
    runs: usize,
}

/// Speech for a voice note, spoken twice and cut at [`VOICE_SECONDS`].
const SPEECH: &str = "good morning, I would like to order a large pizza with cheese and \
    tomatoes for delivery tonight at eight o'clock. please send it to the green house at \
    the end of the street next to the school. I will pay with a card when it arrives. \
    can you also tell me the price of a bottle of water and two cans of soda. thank you \
    very much and have a nice day.";
/// Length of the benchmarked voice note.
const VOICE_SECONDS: &str = "30";

pub fn run(args: &Args) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::tempdir()?;
    let runs = args.runs.max(1);

    let photo = samples::large_photo(dir.path(), "photo");
    let bytes = std::fs::read(&photo)?;
    let thumbnail_ms = median_ms(runs, || {
        let decoded = decode::decode(&bytes).map_err(|f| anyhow::anyhow!("{f:?}"))?;
        thumbnail::webp_thumbnail(&decoded.image);
        Ok(())
    })?;
    println!("photo_bytes={}", bytes.len());
    println!("thumbnail_ms={thumbnail_ms:.0}");

    let ocr = OcrEngine::from_config(&MediaConfig::default());
    let sign = samples::text_image(
        dir.path(),
        "sign",
        1200,
        400,
        &["Promoção de verão", "Open daily 9 to 18"],
    );
    for (name, image) in [("ocr_sign_ms", &sign), ("ocr_photo_ms", &photo)] {
        let ms = median_ms(runs, || {
            runtime.block_on(ocr.read(image))?;
            Ok(())
        })?;
        println!("{name}={ms:.0}");
    }

    let long = samples::voice_note(dir.path(), "long", &format!("{SPEECH} {SPEECH}"));
    let voice = dir.path().join("voice.ogg");
    let limits = Limits::default();
    let cut = ["-v", "error", "-y", "-i"]
        .map(std::ffi::OsStr::new)
        .into_iter()
        .chain([long.as_os_str()])
        .chain(["-t", VOICE_SECONDS, "-c", "copy"].map(std::ffi::OsStr::new))
        .chain([voice.as_os_str()]);
    runtime.block_on(process::run("ffmpeg", cut, &[], limits))?;
    let seconds = runtime
        .block_on(ffmpeg::probe(&voice, limits))?
        .duration_s
        .unwrap_or_default();
    let wav = dir.path().join("speech.wav");
    let convert_ms = median_ms(runs, || {
        runtime.block_on(ffmpeg::to_speech_wav(&voice, &wav, 300, limits))?;
        Ok(())
    })?;
    let speech = SpeechEngine::from_config(&MediaConfig::default());
    let recognise_ms = median_ms(runs, || {
        runtime.block_on(speech.transcribe(&wav, seconds))?;
        Ok(())
    })?;
    println!("voice_seconds={seconds:.1}");
    println!("voice_convert_ms={convert_ms:.0}");
    println!("voice_recognise_ms={recognise_ms:.0}");
    println!(
        "transcription_rtf={:.2}",
        (convert_ms + recognise_ms) / 1000.0 / seconds
    );
    Ok(())
}

/// The median wall time of `runs` runs of `work`, in milliseconds.
fn median_ms(runs: usize, mut work: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<f64> {
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        work()?;
        times.push(started.elapsed());
    }
    times.sort();
    Ok(times[times.len() / 2].as_secs_f64() * 1000.0)
}
