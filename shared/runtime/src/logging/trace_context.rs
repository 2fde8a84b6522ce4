//! The Cloud Trace context of the request being served, so log lines written
//! while handling it carry `logging.googleapis.com/trace` and Cloud Logging
//! groups them under the request.
//!
//! Google's front end adds `X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1` to
//! every request reaching Cloud Run (HTTP, Pub/Sub push, Cloud Tasks); the
//! W3C `traceparent` header is read when that one is absent.

use axum::http::{HeaderMap, Request};
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

tokio::task_local! {
    static CURRENT: Option<TraceContext>;
}

/// One request's position in a Cloud Trace trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits.
    pub trace_id: String,
    /// 16 lowercase hex digits (Cloud Logging's `spanId` form), when the caller sent one.
    pub span_id: Option<String>,
    /// Whether the caller sampled this trace.
    pub sampled: bool,
}

impl TraceContext {
    /// Reads `X-Cloud-Trace-Context`, else `traceparent`; `None` when neither is usable.
    pub fn from_headers(headers: &HeaderMap) -> Option<TraceContext> {
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        header("x-cloud-trace-context")
            .and_then(TraceContext::parse_cloud)
            .or_else(|| header("traceparent").and_then(TraceContext::parse_w3c))
    }

    /// `TRACE_ID[/SPAN_ID][;o=0|1]`, the span id in decimal.
    pub fn parse_cloud(value: &str) -> Option<TraceContext> {
        let (ids, options) = value.trim().split_once(';').unwrap_or((value.trim(), ""));
        let (trace_id, span_id) = ids.split_once('/').unwrap_or((ids, ""));
        let trace_id = hex_id(trace_id, 32)?;
        let span_id = span_id
            .parse::<u64>()
            .ok()
            .filter(|id| *id != 0)
            .map(|id| format!("{id:016x}"));
        Some(TraceContext {
            trace_id,
            span_id,
            sampled: options.trim() == "o=1",
        })
    }

    /// `00-TRACE_ID-SPAN_ID-FLAGS` (W3C Trace Context).
    pub fn parse_w3c(value: &str) -> Option<TraceContext> {
        let mut parts = value.trim().split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || flags.len() != 2 {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(TraceContext {
            trace_id: hex_id(trace_id, 32)?,
            span_id: Some(hex_id(span_id, 16)?),
            sampled: flags & 1 == 1,
        })
    }

    /// The trace context of the request whose handling is running on this task, if any.
    pub fn current() -> Option<TraceContext> {
        CURRENT.try_with(Clone::clone).ok().flatten()
    }

    /// Runs `future` with `self` as the current trace context.
    pub async fn scope<F: std::future::Future>(self, future: F) -> F::Output {
        CURRENT.scope(Some(self), future).await
    }
}

/// A lowercase hex id of `len` digits that is not all zeros.
fn hex_id(id: &str, len: usize) -> Option<String> {
    let valid = id.len() == len
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && id.bytes().any(|b| b != b'0');
    valid.then(|| id.to_ascii_lowercase())
}

/// Layer: each request is handled with its trace context (if it has one) current.
#[derive(Debug, Clone, Copy, Default)]
pub struct PropagateLayer;

impl<S> Layer<S> for PropagateLayer {
    type Service = Propagate<S>;

    fn layer(&self, inner: S) -> Propagate<S> {
        Propagate { inner }
    }
}

/// A service that runs with the request's [`TraceContext`] current.
#[derive(Debug, Clone)]
pub struct Propagate<S> {
    inner: S,
}

impl<S, B> Service<Request<B>> for Propagate<S>
where
    S: Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = TaskLocalFuture<Option<TraceContext>, S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let trace = TraceContext::from_headers(request.headers());
        // Current while the inner services' `call`s run (a layer may log there,
        // e.g. a refused request head) and while their future runs.
        let inner = &mut self.inner;
        let future = CURRENT.sync_scope(trace.clone(), || inner.call(request));
        CURRENT.scope(trace, future)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_google_and_w3c_headers() {
        let cloud = TraceContext::parse_cloud("105445AA7843BC8BF206B12000100000/1;o=1").unwrap();
        assert_eq!(cloud.trace_id, "105445aa7843bc8bf206b12000100000");
        assert_eq!(cloud.span_id.as_deref(), Some("0000000000000001"));
        assert!(cloud.sampled);
        let unsampled = TraceContext::parse_cloud("105445aa7843bc8bf206b12000100000").unwrap();
        assert_eq!((unsampled.span_id, unsampled.sampled), (None, false));
        let w3c =
            TraceContext::parse_w3c("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
                .unwrap();
        assert_eq!(w3c.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(w3c.span_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(w3c.sampled);
    }

    #[test]
    fn refuses_malformed_ids() {
        for bad in [
            "",
            "xyz/1;o=1",
            "105445aa7843bc8bf206b1200010000/1",
            "00000000000000000000000000000000/1",
            "105445aa7843bc8bf206b12000100000\"}/1",
        ] {
            assert_eq!(TraceContext::parse_cloud(bad), None, "{bad:?}");
        }
        assert_eq!(
            TraceContext::parse_w3c("00-4bf92f3577b34da6a3ce929d0e0e4736-zz-01"),
            None
        );
    }

    #[test]
    fn google_header_wins_over_traceparent() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
                .parse()
                .unwrap(),
        );
        assert_eq!(
            TraceContext::from_headers(&headers).unwrap().trace_id,
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        headers.insert(
            "x-cloud-trace-context",
            "105445aa7843bc8bf206b12000100000/7".parse().unwrap(),
        );
        assert_eq!(
            TraceContext::from_headers(&headers).unwrap().trace_id,
            "105445aa7843bc8bf206b12000100000"
        );
    }
}
