//! A file against its WhatsApp media kind: size, accepted MIME type, and whether
//! the content really is what it is labelled.

use serde::Serialize;

use crate::kind::{essence, extension, human_size, MAX_INBOUND_BYTES};
use crate::sniff::{is_text, sniff};
use crate::MediaKind;

/// A file that passed: what it really is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The content's MIME type (the declared type without parameters when it matched).
    pub content_type: String,
    /// The extension to store it under.
    pub extension: &'static str,
    /// An animated sticker.
    pub animated: bool,
}

/// Why a file is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalCode {
    /// No bytes at all.
    Empty,
    /// Over Meta's limit for the kind.
    TooLarge,
    /// A type Meta does not accept for the kind.
    UnsupportedType,
    /// The content is not what its label says.
    TypeMismatch,
}

/// A refused file: a machine-readable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct Refusal {
    pub code: RefusalCode,
    pub reason: String,
}

impl Refusal {
    fn new(code: RefusalCode, reason: String) -> Refusal {
        Refusal { code, reason }
    }
}

/// Refuses a file of `size` bytes that is over `kind`'s limit for sends (before downloading it).
pub fn check_size(kind: MediaKind, size: u64, animated: bool) -> Result<(), Refusal> {
    let limit = kind.max_bytes(animated);
    if size > limit {
        let what = match (kind, animated) {
            (MediaKind::Sticker, true) => "an animated sticker",
            (MediaKind::Sticker, false) => "a static sticker",
            _ => kind.as_str(),
        };
        return Err(Refusal::new(
            RefusalCode::TooLarge,
            format!(
                "{} ({size} bytes) is over Meta's {} limit for {what}",
                human_size(size),
                human_size(limit)
            ),
        ));
    }
    Ok(())
}

/// Refuses an inbound file of `size` bytes that is over what a customer can send
/// ([`MAX_INBOUND_BYTES`], whatever the kind), before downloading it.
pub fn check_inbound_size(size: u64) -> Result<(), Refusal> {
    if size > MAX_INBOUND_BYTES {
        return Err(Refusal::new(
            RefusalCode::TooLarge,
            format!(
                "{} ({size} bytes) is over Meta's {} limit for inbound media",
                human_size(size),
                human_size(MAX_INBOUND_BYTES)
            ),
        ));
    }
    Ok(())
}

/// Checks `bytes` for a `kind` message to send, labelled `declared` (if
/// known): the content must be a type Meta accepts for the kind, match the
/// label, and fit the kind's size limit for sends.
pub fn check(kind: MediaKind, declared: Option<&str>, bytes: &[u8]) -> Result<Checked, Refusal> {
    let (content_type, animated) = content_type(kind, declared, bytes)?;
    check_size(kind, bytes.len() as u64, animated)?;
    Ok(checked(content_type, animated))
}

/// Checks `bytes` a customer sent in a `kind` message: against the inbound
/// limit (customers send up to 100 MiB of any kind), and of any type
/// ([`as_sent`]).
pub fn check_inbound(
    kind: MediaKind,
    declared: Option<&str>,
    bytes: &[u8],
) -> Result<Checked, Refusal> {
    let (content_type, animated) = as_sent(kind, declared, bytes)?;
    check_inbound_size(bytes.len() as u64)?;
    Ok(checked(content_type, animated))
}

/// What a file a customer sent is. Meta's types are rules for sends: customers
/// send documents of any type (CSV, ZIP, ...), so a file of a type Meta does not
/// take for sends is kept as what its content sniffs as, else as labelled, else
/// as `application/octet-stream`. A type Meta does take is checked as for
/// sends: its content must match its label.
fn as_sent(
    kind: MediaKind,
    declared: Option<&str>,
    bytes: &[u8],
) -> Result<(String, bool), Refusal> {
    match content_type(kind, declared, bytes) {
        Err(refusal) if refusal.code == RefusalCode::UnsupportedType => {
            let label = declared.map(essence).filter(|label| !label.is_empty());
            let sniffed = sniff(bytes);
            let content_type = sniffed
                .map(|sniffed| sniffed.mime.to_owned())
                .or(label)
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            Ok((content_type, sniffed.is_some_and(|s| s.animated)))
        }
        other => other,
    }
}

fn checked(content_type: String, animated: bool) -> Checked {
    Checked {
        extension: extension(&content_type),
        content_type,
        animated,
    }
}

/// What `bytes` are, when that is a type Meta accepts for `kind` and matches
/// the label `declared`; and whether they are animated.
fn content_type(
    kind: MediaKind,
    declared: Option<&str>,
    bytes: &[u8],
) -> Result<(String, bool), Refusal> {
    if bytes.is_empty() {
        return Err(Refusal::new(RefusalCode::Empty, "the file is empty".into()));
    }
    let declared = declared.map(essence).filter(|d| !d.is_empty());
    if let Some(declared) = &declared {
        if !kind.accepts(declared) {
            return Err(unsupported(kind, declared));
        }
    }
    let sniffed = sniff(bytes);
    Ok(match (&declared, sniffed) {
        (Some(declared), _) if declared.starts_with("text/") => {
            if !is_text(bytes) {
                return Err(mismatch(declared, sniffed.map(|s| s.mime)));
            }
            (declared.clone(), false)
        }
        (Some(declared), Some(sniffed)) => {
            if !compatible(declared, sniffed.mime) {
                return Err(mismatch(declared, Some(sniffed.mime)));
            }
            (declared.clone(), sniffed.animated)
        }
        (Some(declared), None) => return Err(mismatch(declared, None)),
        (None, Some(sniffed)) if kind.accepts(sniffed.mime) => {
            (sniffed.mime.to_owned(), sniffed.animated)
        }
        (None, Some(sniffed)) => return Err(unsupported(kind, sniffed.mime)),
        (None, None) if kind == MediaKind::Document && is_text(bytes) => {
            ("text/plain".to_owned(), false)
        }
        (None, None) => {
            return Err(Refusal::new(
                RefusalCode::UnsupportedType,
                format!(
                    "the content is not a recognised {kind} file ({})",
                    kind.mime_types().join(", ")
                ),
            ))
        }
    })
}

/// Whether content sniffed as `sniffed` may carry the label `declared`: the
/// same type, ISO BMFF labelled as any of MP4, 3GPP or M4A, or a zip labelled
/// as an Office Open XML file (many real ones, from LibreOffice or python-docx,
/// do not put the entries `infer` looks for first).
fn compatible(declared: &str, sniffed: &str) -> bool {
    const ISO_BMFF: [&str; 3] = ["video/mp4", "video/3gpp", "audio/mp4"];
    const OOXML: &str = "application/vnd.openxmlformats-officedocument.";
    declared == sniffed
        || (ISO_BMFF.contains(&declared) && ISO_BMFF.contains(&sniffed))
        || (sniffed == "application/zip" && declared.starts_with(OOXML))
}

fn unsupported(kind: MediaKind, mime: &str) -> Refusal {
    Refusal::new(
        RefusalCode::UnsupportedType,
        format!(
            "{mime} is not accepted for {kind} messages (Meta accepts {})",
            kind.mime_types().join(", ")
        ),
    )
}

fn mismatch(declared: &str, sniffed: Option<&str>) -> Refusal {
    let actual = match sniffed {
        Some("application/ogg") => "Ogg without Opus audio".to_owned(),
        Some(mime) => mime.to_owned(),
        None => "not a recognised file type".to_owned(),
    };
    Refusal::new(
        RefusalCode::TypeMismatch,
        format!("labelled {declared} but the content is {actual}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const JPEG: &[u8] = b"\xFF\xD8\xFF\xE0\0\x10JFIF\0\x01";
    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    fn code(result: Result<Checked, Refusal>) -> RefusalCode {
        result.unwrap_err().code
    }

    #[test]
    fn accepts_a_file_that_is_what_it_says() {
        let checked = check(MediaKind::Image, Some("image/jpeg"), JPEG).unwrap();
        assert_eq!(checked.content_type, "image/jpeg");
        assert_eq!(checked.extension, "jpg");
        let sniffed = check(MediaKind::Image, None, PNG).unwrap();
        assert_eq!(sniffed.content_type, "image/png");
        let text = check(
            MediaKind::Document,
            Some("text/plain; charset=utf-8"),
            b"ol\xC3\xA1",
        )
        .unwrap();
        assert_eq!(
            (text.content_type.as_str(), text.extension),
            ("text/plain", "txt")
        );
    }

    #[test]
    fn refuses_a_mislabelled_file_with_a_clear_reason() {
        let refusal = check(MediaKind::Image, Some("image/jpeg"), PNG).unwrap_err();
        assert_eq!(refusal.code, RefusalCode::TypeMismatch);
        assert_eq!(
            refusal.reason,
            "labelled image/jpeg but the content is image/png"
        );
        let refusal = check(MediaKind::Image, Some("image/jpeg"), b"<html>hi</html>").unwrap_err();
        assert_eq!(refusal.code, RefusalCode::TypeMismatch, "{refusal}");
        let refusal =
            check(MediaKind::Document, Some("application/pdf"), b"just text").unwrap_err();
        assert_eq!(
            refusal.reason,
            "labelled application/pdf but the content is not a recognised file type"
        );
        assert_eq!(
            code(check(
                MediaKind::Document,
                Some("text/plain"),
                b"\0\x01\x02"
            )),
            RefusalCode::TypeMismatch
        );
    }

    #[test]
    fn refuses_types_meta_does_not_take_for_the_kind() {
        let refusal = check(MediaKind::Image, Some("image/gif"), b"GIF89a\x01\0").unwrap_err();
        assert_eq!(refusal.code, RefusalCode::UnsupportedType);
        assert!(
            refusal
                .reason
                .starts_with("image/gif is not accepted for image messages"),
            "{refusal}"
        );
        assert_eq!(
            code(check(MediaKind::Sticker, None, PNG)),
            RefusalCode::UnsupportedType
        );
        assert_eq!(
            code(check(MediaKind::Audio, None, b"random bytes \x01")),
            RefusalCode::UnsupportedType
        );
        assert_eq!(code(check(MediaKind::Image, None, b"")), RefusalCode::Empty);
    }

    #[test]
    fn ogg_audio_must_be_opus_and_mp4_labels_are_interchangeable() {
        let mut vorbis = b"OggS\0\x02".to_vec();
        vorbis.resize(28, 0);
        vorbis.extend_from_slice(b"\x01vorbis\0\0");
        let refusal = check(MediaKind::Audio, Some("audio/ogg"), &vorbis).unwrap_err();
        assert_eq!(
            refusal.reason,
            "labelled audio/ogg but the content is Ogg without Opus audio"
        );
        let mut m4a = b"\0\0\0\x18ftypisom".to_vec();
        m4a.resize(32, 0);
        assert_eq!(
            check(MediaKind::Audio, Some("audio/mp4"), &m4a)
                .unwrap()
                .extension,
            "m4a"
        );
        assert_eq!(
            check(MediaKind::Video, Some("video/3gpp"), &m4a)
                .unwrap()
                .content_type,
            "video/3gpp"
        );
    }

    #[test]
    fn enforces_size_limits_per_kind_and_sticker_animation() {
        let mut big = JPEG.to_vec();
        big.resize(5 * 1024 * 1024 + 1, 0);
        let refusal = check(MediaKind::Image, Some("image/jpeg"), &big).unwrap_err();
        assert_eq!(refusal.code, RefusalCode::TooLarge);
        assert_eq!(
            refusal.reason,
            "5.0 MiB (5242881 bytes) is over Meta's 5.0 MiB limit for image"
        );
        big.truncate(5 * 1024 * 1024);
        assert!(check(MediaKind::Image, Some("image/jpeg"), &big).is_ok());

        let mut sticker = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\x02\0\0\0".to_vec();
        sticker.resize(200 * 1024, 0);
        let animated = check(MediaKind::Sticker, Some("image/webp"), &sticker).unwrap();
        assert!(animated.animated);
        sticker[20] = 0;
        let refusal = check(MediaKind::Sticker, Some("image/webp"), &sticker).unwrap_err();
        assert!(
            refusal.reason.ends_with("limit for a static sticker"),
            "{refusal}"
        );
        assert!(check_size(MediaKind::Document, 100 * 1024 * 1024 + 1, false).is_err());
    }

    #[test]
    fn inbound_media_may_reach_100_mib_of_any_kind() {
        let mut video = b"\0\0\0\x18ftypisom".to_vec();
        video.resize(17 * 1024 * 1024, 0);
        assert_eq!(
            code(check(MediaKind::Video, Some("video/mp4"), &video)),
            RefusalCode::TooLarge,
            "over Meta's limit for sends"
        );
        let checked = check_inbound(MediaKind::Video, Some("video/mp4"), &video).unwrap();
        assert_eq!(checked.extension, "mp4");
        assert!(check_inbound_size(100 * 1024 * 1024).is_ok());
        let refusal = check_inbound_size(100 * 1024 * 1024 + 1).unwrap_err();
        assert_eq!(
            refusal.reason,
            "100.0 MiB (104857601 bytes) is over Meta's 100.0 MiB limit for inbound media"
        );
        assert_eq!(
            code(check_inbound(MediaKind::Image, Some("image/jpeg"), PNG)),
            RefusalCode::TypeMismatch,
            "content is checked as for sends"
        );
    }
}
