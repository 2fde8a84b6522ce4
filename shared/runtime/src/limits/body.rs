//! A request body that refuses to be read past a deadline or, for JSON, past a
//! nesting depth, and tells the middleware which of the two happened.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use http_body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::Sleep;

/// Why a body was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Not all of it arrived before the deadline.
    TooSlow,
    /// JSON nested deeper than allowed.
    TooDeep,
}

/// The error the handler's body extractor sees.
#[derive(Debug)]
struct Refused(Refusal);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Refusal::TooSlow => f.write_str("request body timed out"),
            Refusal::TooDeep => f.write_str("JSON body nested too deeply"),
        }
    }
}

impl std::error::Error for Refused {}

/// The body of one request, watched.
pub(super) struct WatchedBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
    depth: Option<DepthCounter>,
    refusal: Arc<OnceLock<Refusal>>,
}

impl WatchedBody {
    /// Watches `inner`: the whole of it must arrive within `timeout`; with
    /// `max_depth`, its JSON may nest at most that deep. The lock is set when
    /// the body is refused.
    pub(super) fn new(
        inner: Body,
        timeout: Duration,
        max_depth: Option<usize>,
    ) -> (WatchedBody, Arc<OnceLock<Refusal>>) {
        let refusal = Arc::new(OnceLock::new());
        let body = WatchedBody {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            depth: max_depth.map(DepthCounter::new),
            refusal: refusal.clone(),
        };
        (body, refusal)
    }

    fn refuse(&self, why: Refusal) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let _ = self.refusal.set(why);
        Poll::Ready(Some(Err(axum::Error::new(Refused(why)))))
    }
}

impl HttpBody for WatchedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.get_mut();
        if let Some(why) = this.refusal.get() {
            return this.refuse(*why);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let too_deep = match (frame.data_ref(), this.depth.as_mut()) {
                    (Some(data), Some(depth)) => !depth.feed(data),
                    _ => false,
                };
                if too_deep {
                    return this.refuse(Refusal::TooDeep);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                if this.deadline.as_mut().poll(cx).is_ready() {
                    return this.refuse(Refusal::TooSlow);
                }
                Poll::Pending
            }
            done => done,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Tracks how deeply `[` and `{` nest outside strings, chunk by chunk, without
/// parsing: the parser reports malformed JSON, this only bounds its depth.
#[derive(Debug)]
struct DepthCounter {
    max: usize,
    depth: usize,
    in_string: bool,
    escaped: bool,
}

impl DepthCounter {
    fn new(max: usize) -> DepthCounter {
        DepthCounter {
            max,
            depth: 0,
            in_string: false,
            escaped: false,
        }
    }

    /// Reads the next bytes; false once the nesting went deeper than `max`.
    fn feed(&mut self, bytes: &[u8]) -> bool {
        for &byte in bytes {
            if self.in_string {
                match byte {
                    _ if self.escaped => self.escaped = false,
                    b'\\' => self.escaped = true,
                    b'"' => self.in_string = false,
                    _ => {}
                }
                continue;
            }
            match byte {
                b'"' => self.in_string = true,
                b'[' | b'{' => {
                    self.depth += 1;
                    if self.depth > self.max {
                        return false;
                    }
                }
                b']' | b'}' => self.depth = self.depth.saturating_sub(1),
                _ => {}
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fits(max: usize, chunks: &[&str]) -> bool {
        let mut counter = DepthCounter::new(max);
        chunks.iter().all(|chunk| counter.feed(chunk.as_bytes()))
    }

    #[test]
    fn counts_nesting_outside_strings_across_chunks() {
        assert!(fits(3, &[r#"{"a": [1, {"b": 2}]}"#]));
        assert!(!fits(2, &[r#"{"a": [1, {"b": 2}]}"#]));
        assert!(fits(1, &[r#"{"a": "[[[[{{{{"}"#]));
        assert!(fits(1, &[r#"{"a": "\"[[[[", "b": "\\"}"#]));
        assert!(!fits(1, &[r#"{"a": "\\", "b": [1]}"#]));
        // An escaped quote split across chunks keeps the string open.
        assert!(fits(1, &[r#"{"a": "x\"#, r#""[[[["}"#]));
        assert!(!fits(3, &["[[", "[[", "]]]]"]));
        assert!(fits(4, &["[[", "[[", "]]]]", "[[]]"]));
    }

    #[test]
    fn a_very_deep_body_is_refused_at_the_first_byte_past_the_cap() {
        let deep = "[".repeat(1_000_000);
        let mut counter = DepthCounter::new(256);
        assert!(!counter.feed(deep.as_bytes()));
        assert_eq!(counter.depth, 257);
    }
}
