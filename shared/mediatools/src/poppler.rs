//! Poppler's `pdfinfo` and `pdftotext`: a PDF's page count and its text.

use std::path::Path;

use crate::process::{run, Limits};
use crate::ToolError;

/// What `pdfinfo` says about a PDF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PdfInfo {
    pub pages: u32,
    pub encrypted: bool,
    pub title: Option<String>,
}

/// Reads the page count, encryption and title of `pdf`. A file that is not a
/// PDF is [`ToolError::Rejected`].
pub async fn info(pdf: &Path, limits: Limits) -> Result<PdfInfo, ToolError> {
    let output = run(
        "pdfinfo",
        ["-enc".as_ref(), "UTF-8".as_ref(), pdf.as_os_str()],
        &[],
        limits,
    )
    .await?;
    parse_info(&String::from_utf8_lossy(&output.stdout))
}

fn parse_info(text: &str) -> Result<PdfInfo, ToolError> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(str::trim)
    };
    let pages =
        field("Pages")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| ToolError::Unreadable {
                tool: "pdfinfo",
                detail: "no page count".into(),
            })?;
    Ok(PdfInfo {
        pages,
        encrypted: field("Encrypted").is_some_and(|e| e.starts_with("yes")),
        title: field("Title").filter(|t| !t.is_empty()).map(str::to_owned),
    })
}

/// The text of `pdf`'s first `max_pages` pages, at most `max_chars`
/// characters; true when there was more.
pub async fn text(
    pdf: &Path,
    max_pages: u32,
    max_chars: usize,
    limits: Limits,
) -> Result<(String, bool), ToolError> {
    let last_page = max_pages.to_string();
    let limits = Limits {
        // UTF-8 is at most 4 bytes per character.
        max_stdout: limits.max_stdout.min(max_chars.saturating_mul(4) + 4),
        ..limits
    };
    let output = run(
        "pdftotext",
        [
            "-enc".as_ref(),
            "UTF-8".as_ref(),
            "-l".as_ref(),
            last_page.as_ref(),
            pdf.as_os_str(),
            "-".as_ref(),
        ],
        &[],
        limits,
    )
    .await?;
    let text = String::from_utf8_lossy(&output.stdout);
    // Pages are separated by form feeds.
    let text = text.replace('\u{c}', "\n").trim().to_owned();
    let cut = text.char_indices().nth(max_chars).map(|(at, _)| at);
    Ok(match cut {
        Some(at) => (text[..at].to_owned(), true),
        None => (text, output.truncated),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pages_encryption_and_title() {
        let info = parse_info(
            "Title:           Quarterly report\nProducer:       zapfn\nEncrypted:      yes (print:yes copy:no)\nPages:          12\n",
        )
        .unwrap();
        assert_eq!(
            info,
            PdfInfo {
                pages: 12,
                encrypted: true,
                title: Some("Quarterly report".into())
            }
        );
        assert!(parse_info("Producer: x\n").is_err());
    }
}
