//! What can go wrong running a media tool or calling a media service, and
//! whether trying again may help.

use std::time::Duration;

/// A tool or service failure.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    /// The program is not installed: loud, and worth retrying once it is.
    #[error("{tool} is not installed (install the Debian package `{package}`)")]
    Missing {
        tool: &'static str,
        package: &'static str,
    },
    /// The program ran longer than allowed and was killed.
    #[error("{tool} did not finish within {after:?}")]
    Timeout { tool: &'static str, after: Duration },
    /// The program was killed by a signal it did not get from us (out of memory, crash).
    #[error("{tool} crashed: {detail}")]
    Crashed { tool: &'static str, detail: String },
    /// The program refused the input (non-zero exit): the file is the problem.
    #[error("{tool} failed ({status}): {stderr}")]
    Rejected {
        tool: &'static str,
        status: i32,
        stderr: String,
    },
    /// Reading or writing a file or pipe failed.
    #[error("{tool}: I/O error: {detail}")]
    Io { tool: &'static str, detail: String },
    /// The tool or service answered something this crate cannot read.
    #[error("{tool}: unreadable output: {detail}")]
    Unreadable { tool: &'static str, detail: String },
    /// A remote service failed; `transient` for timeouts, 429 and 5xx.
    #[error("{service}: {detail}")]
    Service {
        service: &'static str,
        detail: String,
        transient: bool,
    },
}

impl ToolError {
    /// True when the same call may succeed later (tool installed, memory freed,
    /// service back); false when the input itself is at fault.
    pub fn is_transient(&self) -> bool {
        match self {
            ToolError::Missing { .. }
            | ToolError::Timeout { .. }
            | ToolError::Crashed { .. }
            | ToolError::Io { .. } => true,
            ToolError::Rejected { .. } | ToolError::Unreadable { .. } => false,
            ToolError::Service { transient, .. } => *transient,
        }
    }
}

/// The Debian package that provides `tool`.
pub fn package_of(tool: &str) -> &'static str {
    match tool {
        "ffmpeg" | "ffprobe" => "ffmpeg",
        "tesseract" => "tesseract-ocr",
        "pocketsphinx_continuous" => "pocketsphinx",
        "pdfinfo" | "pdftotext" => "poppler-utils",
        _ => "unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_errors_are_permanent_and_environment_errors_transient() {
        let rejected = ToolError::Rejected {
            tool: "ffmpeg",
            status: 1,
            stderr: "Invalid data found when processing input".into(),
        };
        assert!(!rejected.is_transient());
        let missing = ToolError::Missing {
            tool: "tesseract",
            package: package_of("tesseract"),
        };
        assert!(missing.is_transient());
        assert_eq!(
            missing.to_string(),
            "tesseract is not installed (install the Debian package `tesseract-ocr`)"
        );
    }
}
