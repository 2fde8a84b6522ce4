//! File names from customers and clients, made safe to keep, log and send back
//! in `Content-Disposition`: no directories, no control characters, bounded length.

/// Longest name kept, in bytes (Meta's document `filename` limit is 240 characters).
const MAX_BYTES: usize = 240;

/// The last path component of `name` with control characters, quotes and
/// characters Windows forbids replaced, leading dots and trailing dots/spaces
/// removed, cut to 240 bytes keeping the extension. None when nothing usable remains.
pub fn safe_filename(name: &str) -> Option<String> {
    let base = name.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base
        .chars()
        .map(|c| match c {
            c if c.is_control() => '_',
            '"' | '<' | '>' | ':' | '|' | '?' | '*' => '_',
            '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' => '_',
            c => c,
        })
        .collect();
    let cleaned = cleaned
        .trim_start_matches(['.', ' '])
        .trim_end_matches(['.', ' ']);
    if cleaned.chars().all(|c| c == '_') {
        return None;
    }
    Some(truncate_keeping_extension(cleaned, MAX_BYTES))
}

fn truncate_keeping_extension(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_owned();
    }
    let (stem, extension) = match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() && ext.len() <= 16 => (stem, Some(ext)),
        _ => (name, None),
    };
    let room = max - extension.map_or(0, |ext| ext.len() + 1);
    let mut end = room.min(stem.len());
    while !stem.is_char_boundary(end) {
        end -= 1;
    }
    match extension {
        Some(ext) => format!("{}.{ext}", &stem[..end]),
        None => stem[..end].to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::safe_filename;

    #[test]
    fn keeps_ordinary_names() {
        assert_eq!(
            safe_filename("contrato-assinado.pdf").unwrap(),
            "contrato-assinado.pdf"
        );
        assert_eq!(
            safe_filename("Relatório Março 2026.xlsx").unwrap(),
            "Relatório Março 2026.xlsx"
        );
    }

    #[test]
    fn strips_directories_and_traversal() {
        assert_eq!(safe_filename("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(
            safe_filename("C:\\Users\\x\\..\\boot.ini").unwrap(),
            "boot.ini"
        );
        assert_eq!(safe_filename("/abs/path/a.txt").unwrap(), "a.txt");
        assert_eq!(safe_filename(".."), None);
        assert_eq!(safe_filename("a/"), None);
        assert_eq!(safe_filename(".hidden").unwrap(), "hidden");
        assert_eq!(safe_filename(""), None);
    }

    #[test]
    fn replaces_control_quote_and_bidi_characters() {
        assert_eq!(safe_filename("a\r\nb\0c.pdf").unwrap(), "a__b_c.pdf");
        assert_eq!(
            safe_filename("x\"; filename=evil.exe").unwrap(),
            "x_; filename=evil.exe"
        );
        assert_eq!(
            safe_filename("invoice\u{202E}fdp.exe").unwrap(),
            "invoice_fdp.exe"
        );
        assert_eq!(safe_filename("\u{1}\u{2}"), None);
    }

    #[test]
    fn cuts_long_names_keeping_the_extension_and_utf8() {
        let long = format!("{}.pdf", "ç".repeat(300));
        let safe = safe_filename(&long).unwrap();
        assert!(safe.len() <= 240, "{}", safe.len());
        assert!(safe.ends_with(".pdf"));
        let no_extension = "a".repeat(500);
        assert_eq!(safe_filename(&no_extension).unwrap().len(), 240);
    }
}
