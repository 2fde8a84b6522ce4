//! A request body that refuses to be read past a deadline or, for JSON, past a
//! nesting depth, and tells the middleware which of the two happened.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

/// Why a body was cut off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
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

pin_project! {
    /// The body of one request, watched. The deadline's timer is armed only
    /// once the body makes the reader wait (most bodies arrive with the head).
    pub struct WatchedBody<B> {
        #[pin]
        inner: B,
        watch: Option<Watch>,
    }
}

/// What is watched of a body that is not empty.
struct Watch {
    deadline: Instant,
    timer: Option<Pin<Box<Sleep>>>,
    depth: Option<DepthCounter>,
    refusal: Arc<OnceLock<Refusal>>,
}

impl<B: HttpBody> WatchedBody<B> {
    /// Watches `inner`: the whole of it must arrive within `timeout`; with
    /// `max_depth`, its JSON may nest at most that deep. The lock (none for an
    /// empty body, which has nothing to refuse) is set when the body is refused.
    pub(super) fn new(
        inner: B,
        timeout: Duration,
        max_depth: Option<usize>,
    ) -> (WatchedBody<B>, Option<Arc<OnceLock<Refusal>>>) {
        if inner.is_end_stream() {
            return (WatchedBody { inner, watch: None }, None);
        }
        let refusal = Arc::new(OnceLock::new());
        let watch = Watch {
            deadline: Instant::now() + timeout,
            timer: None,
            depth: max_depth.map(DepthCounter::new),
            refusal: refusal.clone(),
        };
        let body = WatchedBody {
            inner,
            watch: Some(watch),
        };
        (body, Some(refusal))
    }
}

impl Watch {
    fn refuse<D>(&self, why: Refusal) -> Poll<Option<Result<Frame<D>, axum::Error>>> {
        let _ = self.refusal.set(why);
        Poll::Ready(Some(Err(axum::Error::new(Refused(why)))))
    }

    /// Whether the deadline passed; arms the timer that wakes `cx` at it.
    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let deadline = self.deadline;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        timer.as_mut().poll(cx).is_ready()
    }
}

impl<B> HttpBody for WatchedBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<axum::BoxError>,
{
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let Some(watch) = this.watch.as_mut() else {
            return this.inner.poll_frame(cx).map_err(axum::Error::new);
        };
        if let Some(why) = watch.refusal.get() {
            return watch.refuse(*why);
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let too_deep = match (frame.data_ref(), watch.depth.as_mut()) {
                    (Some(data), Some(depth)) => !depth.feed(data),
                    _ => false,
                };
                if too_deep {
                    return watch.refuse(Refusal::TooDeep);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => {
                if watch.expired(cx) {
                    return watch.refuse(Refusal::TooSlow);
                }
                Poll::Pending
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(axum::Error::new(error)))),
            Poll::Ready(None) => Poll::Ready(None),
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
