//! Meta's media types: what each WhatsApp media message accepts, and how large.

use std::fmt;

/// One MiB; Meta's "MB" limits are read as binary megabytes (the lenient reading).
const MIB: u64 = 1024 * 1024;
/// One KiB.
const KIB: u64 = 1024;

/// The largest file a customer can send, of any kind (Meta reports a larger one
/// as webhook error 131052); the per-kind limits are for sends.
pub const MAX_INBOUND_BYTES: u64 = 100 * MIB;

/// A WhatsApp media message type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    Image,
    Audio,
    Video,
    Document,
    Sticker,
}

impl MediaKind {
    /// Every kind.
    pub const ALL: [MediaKind; 5] = [
        MediaKind::Image,
        MediaKind::Audio,
        MediaKind::Video,
        MediaKind::Document,
        MediaKind::Sticker,
    ];

    /// The kind named by a message `type` (`image`, `audio`, ...).
    pub fn parse(message_type: &str) -> Option<MediaKind> {
        MediaKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == message_type)
    }

    /// The message `type` of this kind.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Document => "document",
            MediaKind::Sticker => "sticker",
        }
    }

    /// The MIME types Meta accepts for this kind.
    pub fn mime_types(self) -> &'static [&'static str] {
        match self {
            // WebP only as a sticker.
            MediaKind::Image => &["image/jpeg", "image/png"],
            MediaKind::Audio => &[
                "audio/aac",
                "audio/amr",
                "audio/mpeg",
                "audio/mp4",
                "audio/ogg",
            ],
            MediaKind::Video => &["video/mp4", "video/3gpp"],
            MediaKind::Document => &[
                "text/plain",
                "application/pdf",
                "application/msword",
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
                "application/vnd.ms-excel",
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                "application/vnd.ms-powerpoint",
                "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            ],
            MediaKind::Sticker => &["image/webp"],
        }
    }

    /// Whether Meta accepts `mime` (parameters ignored) for this kind.
    pub fn accepts(self, mime: &str) -> bool {
        let essence = essence(mime);
        self.mime_types()
            .iter()
            .any(|accepted| *accepted == essence)
    }

    /// The largest file Meta accepts for a send, in bytes (stickers: 100 KiB
    /// static, 500 KiB animated).
    pub fn max_bytes(self, animated: bool) -> u64 {
        match self {
            MediaKind::Image => 5 * MIB,
            MediaKind::Audio | MediaKind::Video => 16 * MIB,
            MediaKind::Document => 100 * MIB,
            MediaKind::Sticker if animated => 500 * KIB,
            MediaKind::Sticker => 100 * KIB,
        }
    }

    /// The largest file of any variant of this kind a send may carry (for bounding a download).
    pub fn max_bytes_any(self) -> u64 {
        self.max_bytes(true).max(self.max_bytes(false))
    }
}

impl fmt::Display for MediaKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A MIME type without parameters, lower-case: `audio/ogg; codecs=opus` → `audio/ogg`.
/// A few common aliases map to Meta's names (`image/jpg`, `audio/mp3`, `audio/x-m4a`).
pub fn essence(mime: &str) -> String {
    let essence = mime
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "image/jpg" | "image/pjpeg" => "image/jpeg".into(),
        "audio/mp3" => "audio/mpeg".into(),
        "audio/x-m4a" | "audio/m4a" => "audio/mp4".into(),
        "video/3gp" => "video/3gpp".into(),
        _ => essence,
    }
}

/// The file extension zapfn stores a type under (`bin` for unknown types).
pub fn extension(mime: &str) -> &'static str {
    match essence(mime).as_str() {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "audio/aac" => "aac",
        "audio/amr" => "amr",
        "audio/mpeg" => "mp3",
        "audio/mp4" => "m4a",
        "audio/ogg" => "ogg",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        "text/plain" => "txt",
        "application/pdf" => "pdf",
        "application/msword" => "doc",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.ms-excel" => "xls",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.ms-powerpoint" => "ppt",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        _ => "bin",
    }
}

/// A byte count for people: `812 B`, `97.7 KiB`, `5.0 MiB`.
pub fn human_size(bytes: u64) -> String {
    match bytes {
        b if b < KIB => format!("{b} B"),
        b if b < MIB => format!("{:.1} KiB", b as f64 / KIB as f64),
        b => format!("{:.1} MiB", b as f64 / MIB as f64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_meta() {
        assert_eq!(MediaKind::Image.max_bytes(false), 5 * MIB);
        assert_eq!(MediaKind::Audio.max_bytes(false), 16 * MIB);
        assert_eq!(MediaKind::Video.max_bytes(false), 16 * MIB);
        assert_eq!(MediaKind::Document.max_bytes(false), 100 * MIB);
        assert_eq!(MediaKind::Sticker.max_bytes(false), 100 * KIB);
        assert_eq!(MediaKind::Sticker.max_bytes(true), 500 * KIB);
        assert_eq!(MediaKind::Sticker.max_bytes_any(), 500 * KIB);
    }

    #[test]
    fn types_follow_meta_with_parameters_and_aliases() {
        assert!(MediaKind::Audio.accepts("audio/ogg; codecs=opus"));
        assert!(MediaKind::Audio.accepts("Audio/MP3"));
        assert!(MediaKind::Image.accepts("image/jpg"));
        assert!(!MediaKind::Image.accepts("image/gif"));
        assert!(!MediaKind::Sticker.accepts("image/png"));
        assert!(!MediaKind::Video.accepts("video/quicktime"));
        assert!(MediaKind::Document.accepts("application/pdf"));
        assert!(!MediaKind::Document.accepts("application/zip"));
        assert_eq!(MediaKind::parse("sticker"), Some(MediaKind::Sticker));
        assert_eq!(MediaKind::parse("text"), None);
    }

    #[test]
    fn extensions_and_sizes_read_well() {
        assert_eq!(extension("audio/ogg; codecs=opus"), "ogg");
        assert_eq!(extension("image/jpeg"), "jpg");
        assert_eq!(extension("application/x-unknown"), "bin");
        assert_eq!(human_size(812), "812 B");
        assert_eq!(human_size(100 * KIB), "100.0 KiB");
        assert_eq!(human_size(5 * MIB + MIB / 2), "5.5 MiB");
    }
}
