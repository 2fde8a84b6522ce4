//! SHA-256 as Meta writes it: base64 in webhooks, hex in `GET /{media-id}`.

use base64::Engine;
use sha2::{Digest, Sha256};

/// The SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Lower-case hex SHA-256 (how zapfn records checksums).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

/// Standard base64 SHA-256 (how Meta's webhooks carry it).
pub fn sha256_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(sha256(bytes))
}

/// A digest written as 64 hex digits or as base64 (standard or URL-safe, padded or not).
pub fn decode(digest: &str) -> Option<[u8; 32]> {
    let digest = digest.trim();
    let bytes = if digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(digest).ok()?
    } else {
        let unpadded = digest.trim_end_matches('=');
        base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(unpadded)
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(unpadded))
            .ok()?
    };
    bytes.try_into().ok()
}

/// Whether `expected` (hex or base64) is the SHA-256 of `bytes`; None when
/// `expected` is not a SHA-256 digest at all.
pub fn verify(expected: &str, bytes: &[u8]) -> Option<bool> {
    decode(expected).map(|digest| digest == sha256(bytes))
}

/// `expected` as lower-case hex, if it is a digest.
pub fn to_hex(expected: &str) -> Option<String> {
    decode(expected).map(hex::encode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_meta_digests_in_hex_and_base64() {
        let bytes = b"zapfn media";
        let hex = sha256_hex(bytes);
        let b64 = sha256_base64(bytes);
        assert_eq!(hex.len(), 64);
        assert_eq!(verify(&hex, bytes), Some(true));
        assert_eq!(verify(&hex.to_uppercase(), bytes), Some(true));
        assert_eq!(verify(&b64, bytes), Some(true));
        assert_eq!(verify(b64.trim_end_matches('='), bytes), Some(true));
        let url_safe = b64.replace('+', "-").replace('/', "_");
        assert_eq!(verify(&url_safe, bytes), Some(true));
        assert_eq!(verify(&hex, b"zapfn medib"), Some(false));
        assert_eq!(to_hex(&b64), Some(hex));
    }

    #[test]
    fn known_vector_and_non_digests() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(verify("not a digest", b"abc"), None);
        assert_eq!(
            verify("YWJj", b"abc"),
            None,
            "base64 of 3 bytes is not a digest"
        );
    }
}
