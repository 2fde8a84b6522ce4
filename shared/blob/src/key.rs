//! Object keys that are safe on every backend and as relative file paths.

use crate::BlobError;

/// Longest key accepted (Cloud Storage allows 1024 bytes).
const MAX_LEN: usize = 1024;

/// A validated object key: `/`-separated segments of printable characters,
/// none empty, `.` or `..`, no backslash, no leading `/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// Validates `key`.
    pub fn new(key: impl Into<String>) -> Result<BlobKey, BlobError> {
        let key = key.into();
        let invalid = |reason| BlobError::InvalidKey {
            key: key.clone(),
            reason,
        };
        if key.is_empty() || key.len() > MAX_LEN {
            return Err(invalid("must be 1 to 1024 bytes"));
        }
        if key.chars().any(|c| c.is_control() || c == '\\') {
            return Err(invalid(
                "control characters and backslashes are not allowed",
            ));
        }
        if key
            .split('/')
            .any(|segment| segment.is_empty() || segment == "." || segment == "..")
        {
            return Err(invalid("segments must be non-empty and not . or .."));
        }
        Ok(BlobKey(key))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::BlobKey;

    #[test]
    fn accepts_nested_keys() {
        assert_eq!(
            BlobKey::new("106540352242922/msg_1/original.jpg")
                .unwrap()
                .as_str(),
            "106540352242922/msg_1/original.jpg"
        );
    }

    #[test]
    fn refuses_traversal_absolute_and_control_characters() {
        for bad in [
            "",
            "/etc/passwd",
            "a/../b",
            "..",
            "a/./b",
            "a//b",
            "a/",
            "a\\b",
            "a\nb",
            "a\0b",
        ] {
            assert!(BlobKey::new(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(BlobKey::new("x".repeat(1025)).is_err());
    }
}
