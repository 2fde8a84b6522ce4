//! Real media made with real tools, for tests and benchmarks (feature
//! `samples`): speech from espeak-ng, text rendered by ImageMagick, videos and
//! photo-like JPEGs from FFmpeg's test sources. A missing tool panics with the
//! package to install, so a test never passes for want of a tool.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Panics loudly unless `tool` is on the PATH.
pub fn require(tool: &str) {
    let found = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()));
    if !found {
        let package = match tool {
            "convert" => "imagemagick",
            "espeak-ng" => "espeak-ng",
            other => crate::error::package_of(other),
        };
        panic!(
            "\n\n*** MISSING TOOL: `{tool}` is not installed. Install it with \
             `apt-get install -y {package}` (.ci/run does this on a fresh machine). ***\n"
        );
    }
}

fn run(program: &str, args: &[&str]) {
    require(program);
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} could not start: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn text(path: &Path) -> &str {
    path.to_str().expect("sample paths are UTF-8")
}

/// `words` spoken by espeak-ng (US English, 140 words/min) with half a second
/// of silence after, as an OGG/Opus voice note in `dir`.
pub fn voice_note(dir: &Path, name: &str, words: &str) -> PathBuf {
    let wav = dir.join(format!("{name}.espeak.wav"));
    run(
        "espeak-ng",
        &["-v", "en-us", "-s", "140", "-w", text(&wav), words],
    );
    let ogg = dir.join(format!("{name}.ogg"));
    run(
        "ffmpeg",
        &[
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-i",
            text(&wav),
            "-af",
            "apad=pad_dur=0.5",
            "-ac",
            "1",
            "-ar",
            "48000",
            "-c:a",
            "libopus",
            "-b:a",
            "32k",
            text(&ogg),
        ],
    );
    ogg
}

/// A white `width`×`height` PNG with each of `lines` in black DejaVu Sans, 40 pt.
pub fn text_image(dir: &Path, name: &str, width: u32, height: u32, lines: &[&str]) -> PathBuf {
    let path = dir.join(format!("{name}.png"));
    let size = format!("{width}x{height}");
    let mut args = vec![
        "-size".to_owned(),
        size,
        "xc:white".into(),
        "-font".into(),
        "DejaVu-Sans".into(),
        "-pointsize".into(),
        "40".into(),
        "-fill".into(),
        "black".into(),
    ];
    for (i, line) in lines.iter().enumerate() {
        args.extend([
            "-annotate".into(),
            format!("+30+{}", 70 + 70 * i),
            (*line).to_owned(),
        ]);
    }
    args.push(text(&path).to_owned());
    run(
        "convert",
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    path
}

/// A `seconds`-long 640×360 H.264/AAC MP4 of FFmpeg's test pattern whose sound
/// track is `words` spoken by espeak-ng.
pub fn video_with_speech(dir: &Path, name: &str, seconds: u32, words: &str) -> PathBuf {
    let wav = dir.join(format!("{name}.espeak.wav"));
    run(
        "espeak-ng",
        &["-v", "en-us", "-s", "140", "-w", text(&wav), words],
    );
    let mp4 = dir.join(format!("{name}.mp4"));
    let source = format!("testsrc=duration={seconds}:size=640x360:rate=25");
    run(
        "ffmpeg",
        &[
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            &source,
            "-i",
            text(&wav),
            "-af",
            "apad",
            "-t",
            &seconds.to_string(),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            "-c:a",
            "aac",
            text(&mp4),
        ],
    );
    mp4
}

/// A 4000×3000 JPEG of grainy test pattern, about 5 MB (a phone photo at
/// WhatsApp's 5 MB image limit).
pub fn large_photo(dir: &Path, name: &str) -> PathBuf {
    let jpg = dir.join(format!("{name}.jpg"));
    run(
        "ffmpeg",
        &[
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=4000x3000:rate=1,noise=alls=17:allf=t",
            "-frames:v",
            "1",
            "-q:v",
            "3",
            text(&jpg),
        ],
    );
    jpg
}
