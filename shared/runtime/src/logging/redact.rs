//! Secrets never reach a log line, at any level: the log writer replaces every
//! occurrence of a configured secret's value ([`SECRET_VARIABLES`]) with
//! `[redacted]`, whatever wrote it — an error quoting a URL, a Debug-formatted
//! configuration, a handler's field.
//!
//! Personal data (customers' numbers and names, bodies, captions, file names,
//! transcripts) is kept out by the call sites instead: they log ids (message
//! ids, wamids, event ids, the business's `phone_number_id`) and never the
//! content, at INFO and above. `cli/tests/log_privacy.rs` checks both on a
//! real process.

use std::io::{self, Write};
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;

/// Environment variables whose values are secrets.
pub const SECRET_VARIABLES: &[&str] = &[
    "WA_APP_SECRET",
    "WA_ACCESS_TOKEN",
    "WA_VERIFY_TOKEN",
    "ZAPFN_API_KEY",
    "ZAPFN_KEY_PEPPER",
    "ZAPFN_DATABASE_URL",
];

/// Shorter values are not searched for (a one-letter "secret" would blank
/// every line); they are not secret enough to matter.
pub const MIN_SECRET_LEN: usize = 6;

/// What replaces a secret.
const REDACTED: &[u8] = b"[redacted]";

/// The byte strings to take out of log lines.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    needles: Vec<Vec<u8>>,
}

impl Secrets {
    /// The values of [`SECRET_VARIABLES`] in the process environment (and the
    /// password of a database URL on its own).
    pub fn from_env() -> Secrets {
        Secrets::new(
            SECRET_VARIABLES
                .iter()
                .filter_map(|name| std::env::var(name).ok())
                .flat_map(|value| {
                    let password = url_password(&value).map(str::to_owned);
                    std::iter::once(value).chain(password)
                }),
        )
    }

    /// Secrets with these values, as written and as escaped in JSON and Debug output;
    /// values shorter than [`MIN_SECRET_LEN`] are left out.
    pub fn new(values: impl IntoIterator<Item = String>) -> Secrets {
        let mut needles: Vec<Vec<u8>> = Vec::new();
        for value in values {
            if value.len() < MIN_SECRET_LEN {
                continue;
            }
            // As written, escaped by Debug (`?field`), by JSON, and by both.
            let debug = format!("{value:?}");
            let debug = &debug[1..debug.len() - 1];
            for form in [value.as_str(), debug] {
                for needle in [form.to_owned(), json_escaped(form)] {
                    let needle = needle.into_bytes();
                    if !needles.contains(&needle) {
                        needles.push(needle);
                    }
                }
            }
        }
        // Longest first, so a secret containing another is replaced whole.
        needles.sort_by_key(|needle| std::cmp::Reverse(needle.len()));
        Secrets { needles }
    }

    /// `line` with every secret replaced by `[redacted]`.
    pub fn redact(&self, line: &[u8]) -> Vec<u8> {
        let mut line = line.to_vec();
        for needle in &self.needles {
            if let Some(replaced) = replace_all(&line, needle) {
                line = replaced;
            }
        }
        line
    }
}

/// `text` as it appears inside a JSON string.
fn json_escaped(text: &str) -> String {
    let quoted = serde_json::Value::from(text).to_string();
    quoted[1..quoted.len() - 1].to_owned()
}

/// `haystack` with each `needle` replaced, or None when there is none.
fn replace_all(haystack: &[u8], needle: &[u8]) -> Option<Vec<u8>> {
    let mut found = haystack
        .windows(needle.len())
        .position(|window| window == needle)?;
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    loop {
        out.extend_from_slice(&rest[..found]);
        out.extend_from_slice(REDACTED);
        rest = &rest[found + needle.len()..];
        match rest
            .windows(needle.len())
            .position(|window| window == needle)
        {
            Some(next) => found = next,
            None => break,
        }
    }
    out.extend_from_slice(rest);
    Some(out)
}

/// The password of `scheme://user:password@host…`, if there is one.
fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let userinfo = &rest[..rest.find('@')?];
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty()).then_some(password)
}

/// A [`MakeWriter`] whose lines go through [`Secrets::redact`] before `inner`.
pub struct Redacting<M> {
    secrets: Arc<Secrets>,
    inner: M,
}

impl<M> Redacting<M> {
    /// Writes through `inner` with `secrets` taken out.
    pub fn new(secrets: Secrets, inner: M) -> Redacting<M> {
        Redacting {
            secrets: Arc::new(secrets),
            inner,
        }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacting<M> {
    type Writer = RedactedLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        RedactedLine {
            secrets: self.secrets.clone(),
            inner: self.inner.make_writer(),
        }
    }
}

/// One log line's writer. The formatters hand over a whole line in one write,
/// which is redacted and written whole (lines never interleave).
pub struct RedactedLine<W> {
    secrets: Arc<Secrets>,
    inner: W,
}

impl<W: Write> Write for RedactedLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.secrets.needles.is_empty() {
            return self.inner.write(buf);
        }
        self.inner.write_all(&self.secrets.redact(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug)]
    #[allow(dead_code)] // read through Debug
    struct Settings {
        token: String,
    }

    #[test]
    fn secrets_are_taken_out_at_every_level_and_lines_stay_json() {
        let token = "EAAG\"quoted\\token";
        let secrets = Secrets::new([
            token.to_owned(),
            "pepper-value".to_owned(),
            "short".to_owned(),
        ]);
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::EnvFilter::new("trace"))
            .with(
                tracing_stackdriver::layer()
                    .with_writer(Redacting::new(secrets, move || sink.clone())),
            );
        tracing::subscriber::with_default(subscriber, || {
            let settings = Settings {
                token: token.to_owned(),
            };
            tracing::debug!(?settings, "config");
            tracing::error!(
                error = "GET https://x/?access_token=pepper-value failed",
                "call failed"
            );
            tracing::trace!(token, "raw");
            tracing::info!(code = "short", "kept");
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 4, "{text}");
        for line in text.lines() {
            let parsed: serde_json::Value = serde_json::from_str(line).expect(line);
            assert!(
                !line.contains("pepper-value") && !line.contains("quoted"),
                "{line}"
            );
            if parsed["message"] != "kept" {
                assert!(line.contains("[redacted]"), "{line}");
            }
        }
        assert!(
            text.contains("\"short\""),
            "values under {MIN_SECRET_LEN} bytes are not searched for"
        );
    }

    #[test]
    fn every_occurrence_and_a_database_password() {
        let secrets = Secrets::new(["abcdef".to_owned()]);
        assert_eq!(
            secrets.redact(b"abcdef-abcdefabcdef!"),
            b"[redacted]-[redacted][redacted]!"
        );
        assert_eq!(
            url_password("postgres://zapfn:s3cret-pw@10.0.0.2:5432/zapfn"),
            Some("s3cret-pw")
        );
        assert_eq!(url_password("postgres://zapfn@127.0.0.1:5433/zapfn"), None);
        assert_eq!(url_password("host=/cloudsql/p:r:i user=z"), None);
    }
}
