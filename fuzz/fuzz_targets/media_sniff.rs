//! Any bytes as a media file, file name or link: content sniffing, the per-kind
//! checks (for sends and of customers' files), safe file names and the link
//! guard never panic, and what they let through is consistent with what they say.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zapfn_media::MediaKind;

const KINDS: [&str; 5] = ["image", "video", "audio", "document", "sticker"];
const LABELS: [Option<&str>; 6] = [
    None,
    Some("image/jpeg"),
    Some("audio/ogg; codecs=opus"),
    Some("application/pdf"),
    Some("text/plain"),
    Some("video/mp4"),
];

fuzz_target!(|data: &[u8]| {
    let sniffed = zapfn_media::sniff::sniff(data);
    if let Some(sniffed) = sniffed {
        assert!(sniffed.mime.contains('/'));
    }
    let _ = zapfn_media::sniff::is_text(data);
    let selector = data.first().copied().unwrap_or(0) as usize;
    let kind = MediaKind::parse(KINDS[selector % KINDS.len()]).unwrap();
    let label = LABELS[(selector / KINDS.len()) % LABELS.len()];
    if let Ok(checked) = zapfn_media::check(kind, label, data) {
        assert!(!data.is_empty());
        assert!(kind.accepts(&checked.content_type), "{checked:?}");
    }
    // A customer's file is kept whatever its type, typed by its content or label.
    if let Ok(kept) = zapfn_media::check::check_inbound(kind, label, data) {
        assert!(!data.is_empty());
        assert!(kept.content_type.contains('/'), "{kept:?}");
    }
    let text = String::from_utf8_lossy(data);
    if let Some(name) = zapfn_media::filename::safe_filename(&text) {
        assert!(!name.is_empty() && name.len() <= 240, "{name:?}");
        assert!(!name.contains(['/', '\\']), "{name:?}");
        assert!(!name.chars().any(char::is_control), "{name:?}");
        assert!(!name.starts_with('.'), "{name:?}");
    }
    let _ = zapfn_media::link::check_link(&text, false);
});
