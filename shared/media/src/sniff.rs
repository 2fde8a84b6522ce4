//! What a file really is, from its first bytes (magic numbers), whatever it is labelled.
//!
//! The formats WhatsApp media use are recognised here (ISO BMFF brands for
//! MP4/3GPP/M4A, animated WebP, Ogg Opus, AMR, AAC, MP3); everything else,
//! including JPEG, PNG, PDF and Office files, is left to the `infer` crate.

/// A recognised file type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    /// The MIME type of the content (`application/ogg` for Ogg that is not Opus).
    pub mime: &'static str,
    /// An animated WebP.
    pub animated: bool,
}

impl Sniffed {
    fn of(mime: &'static str) -> Sniffed {
        Sniffed {
            mime,
            animated: false,
        }
    }
}

/// The type of `bytes`, or None when no known signature matches.
pub fn sniff(bytes: &[u8]) -> Option<Sniffed> {
    iso_bmff(bytes)
        .or_else(|| webp(bytes))
        .or_else(|| ogg(bytes))
        .or_else(|| amr(bytes))
        .or_else(|| aac(bytes))
        .or_else(|| mp3(bytes))
        .or_else(|| infer::get(bytes).map(|kind| Sniffed::of(kind.mime_type())))
}

/// Whether `bytes` read as plain text: UTF-8 or, when not UTF-8, a single-byte
/// encoding such as Windows-1252 (not UTF-16), without NUL or other control
/// characters than tab, line breaks and form feed.
pub fn is_text(bytes: &[u8]) -> bool {
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    match std::str::from_utf8(bytes) {
        Ok(text) => text.chars().all(|c| !c.is_control() || is_text_control(c)),
        Err(_) => {
            !bytes.starts_with(b"\xFF\xFE")
                && !bytes.starts_with(b"\xFE\xFF")
                && bytes
                    .iter()
                    .all(|&b| (b >= 0x20 && b != 0x7F) || is_text_control(b.into()))
        }
    }
}

/// The control characters plain text may hold.
fn is_text_control(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\x0C')
}

/// MP4, 3GPP, M4A and QuickTime: an `ftyp` box first, then the major brand.
fn iso_bmff(bytes: &[u8]) -> Option<Sniffed> {
    if bytes.get(4..8)? != b"ftyp" {
        return None;
    }
    let brand = bytes.get(8..12)?;
    Some(Sniffed::of(match brand {
        [b'3', b'g', b'p' | b'2', _] => "video/3gpp",
        b"M4A " | b"M4B " => "audio/mp4",
        b"qt  " => "video/quicktime",
        _ => "video/mp4",
    }))
}

/// `RIFF····WEBP`; animated when the VP8X header has its animation flag.
fn webp(bytes: &[u8]) -> Option<Sniffed> {
    if bytes.get(0..4)? != b"RIFF" || bytes.get(8..12)? != b"WEBP" {
        return None;
    }
    let animated =
        bytes.get(12..16) == Some(b"VP8X") && bytes.get(20).is_some_and(|f| f & 0x02 != 0);
    Some(Sniffed {
        mime: "image/webp",
        animated,
    })
}

/// `OggS`; Opus when the first packet is `OpusHead`.
fn ogg(bytes: &[u8]) -> Option<Sniffed> {
    if bytes.get(0..4)? != b"OggS" {
        return None;
    }
    let opus = bytes.get(28..36) == Some(b"OpusHead");
    Some(Sniffed::of(if opus {
        "audio/ogg"
    } else {
        "application/ogg"
    }))
}

/// `#!AMR` (narrow band) or `#!AMR-WB`.
fn amr(bytes: &[u8]) -> Option<Sniffed> {
    bytes
        .starts_with(b"#!AMR")
        .then(|| Sniffed::of("audio/amr"))
}

/// AAC in ADTS frames (sync word, layer 0) or with an ADIF header.
fn aac(bytes: &[u8]) -> Option<Sniffed> {
    let adts = bytes.len() > 1 && bytes[0] == 0xFF && bytes[1] & 0xF6 == 0xF0;
    (adts || bytes.starts_with(b"ADIF")).then(|| Sniffed::of("audio/aac"))
}

/// MP3: an ID3v2 tag or an MPEG audio frame header (sync word, layer I–III).
fn mp3(bytes: &[u8]) -> Option<Sniffed> {
    let frame = bytes.len() > 1
        && bytes[0] == 0xFF
        && bytes[1] & 0xE0 == 0xE0
        && (bytes[1] >> 1) & 0x03 != 0;
    (frame || bytes.starts_with(b"ID3")).then(|| Sniffed::of("audio/mpeg"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mime(bytes: &[u8]) -> Option<&'static str> {
        sniff(bytes).map(|s| s.mime)
    }

    fn ftyp(brand: &[u8; 4]) -> Vec<u8> {
        let mut bytes = vec![0, 0, 0, 0x18];
        bytes.extend_from_slice(b"ftyp");
        bytes.extend_from_slice(brand);
        bytes.extend_from_slice(&[0; 12]);
        bytes
    }

    fn webp(chunk: &[u8; 4], flags: u8) -> Vec<u8> {
        let mut bytes = b"RIFF\x24\0\0\0WEBP".to_vec();
        bytes.extend_from_slice(chunk);
        bytes.extend_from_slice(&[10, 0, 0, 0, flags, 0, 0, 0]);
        bytes
    }

    #[test]
    fn recognises_the_whatsapp_formats() {
        assert_eq!(mime(b"\xFF\xD8\xFF\xE0\0\x10JFIF\0"), Some("image/jpeg"));
        assert_eq!(mime(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(mime(&ftyp(b"isom")), Some("video/mp4"));
        assert_eq!(mime(&ftyp(b"mp42")), Some("video/mp4"));
        assert_eq!(mime(&ftyp(b"3gp4")), Some("video/3gpp"));
        assert_eq!(mime(&ftyp(b"3g2a")), Some("video/3gpp"));
        assert_eq!(mime(&ftyp(b"M4A ")), Some("audio/mp4"));
        assert_eq!(mime(&ftyp(b"qt  ")), Some("video/quicktime"));
        assert_eq!(mime(b"#!AMR\n\x3c"), Some("audio/amr"));
        assert_eq!(mime(b"#!AMR-WB\n"), Some("audio/amr"));
        assert_eq!(mime(b"\xFF\xF1\x50\x80"), Some("audio/aac"));
        assert_eq!(mime(b"\xFF\xFB\x90\x64"), Some("audio/mpeg"));
        assert_eq!(mime(b"ID3\x04\0\0\0\0\0\0"), Some("audio/mpeg"));
        assert_eq!(mime(b"%PDF-1.7\n"), Some("application/pdf"));
        assert_eq!(mime(b"GIF89a\x01\0"), Some("image/gif"));
        assert_eq!(mime(b"hello"), None);
        assert_eq!(mime(b""), None);
    }

    #[test]
    fn ogg_is_audio_only_with_opus() {
        let mut opus = b"OggS\0\x02".to_vec();
        opus.resize(28, 0);
        opus.extend_from_slice(b"OpusHead\x01\x01");
        assert_eq!(mime(&opus), Some("audio/ogg"));
        let mut vorbis = b"OggS\0\x02".to_vec();
        vorbis.resize(28, 0);
        vorbis.extend_from_slice(b"\x01vorbis\0\0");
        assert_eq!(mime(&vorbis), Some("application/ogg"));
    }

    #[test]
    fn tells_animated_webp_from_static() {
        let still = sniff(&webp(b"VP8 ", 0)).unwrap();
        assert_eq!((still.mime, still.animated), ("image/webp", false));
        let extended_still = sniff(&webp(b"VP8X", 0x10)).unwrap();
        assert!(!extended_still.animated);
        let animated = sniff(&webp(b"VP8X", 0x12)).unwrap();
        assert_eq!((animated.mime, animated.animated), ("image/webp", true));
    }

    #[test]
    fn text_is_utf8_or_single_byte_without_control_characters() {
        assert!(is_text("Olá, ação\r\n\tfim".as_bytes()));
        assert!(is_text(b"\xEF\xBB\xBFbom"));
        assert!(!is_text(b"a\0b"));
        assert!(!is_text(b"\xFF\xFE"));
        assert!(!is_text(b"\x1b[31mred"));
        assert!(is_text(b"Relat\xF3rio \x80 12,50\r\n"), "Windows-1252");
        assert!(!is_text(b"Relat\xF3rio\0"));
        assert!(!is_text(b"\xFF\xD8\xFF\xE0\x01"));
    }
}
