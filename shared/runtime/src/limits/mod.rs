//! Caps on what one request may cost the server, each refused with a clear
//! RFC 9457 problem: a request line over [`Limits::max_uri_bytes`] (414),
//! headers over [`Limits::max_header_bytes`] (431), a body that does not
//! arrive within [`Limits::body_timeout`] (408, slowloris) and a JSON body
//! nested deeper than [`Limits::max_json_depth`] (400). Heads that never
//! finish are cut by the connection layer ([`crate::listen`]).

mod body;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{ready, Poll};
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body::Body as HttpBody;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::Problem;
pub use body::{Refusal, WatchedBody};

/// Request caps; [`Limits::from_env`] reads the two timeouts from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest path and query accepted (414 beyond).
    pub max_uri_bytes: usize,
    /// Largest sum of header name and value lengths accepted (431 beyond).
    pub max_header_bytes: usize,
    /// Time a client has to send its whole request head (`ZAPFN_HEADER_TIMEOUT_MS`);
    /// the connection is closed after it. Also closes idle keep-alive connections.
    pub header_timeout: Duration,
    /// Time a client has to send its whole body once the head arrived (`ZAPFN_BODY_TIMEOUT_MS`; 408).
    pub body_timeout: Duration,
    /// Deepest nesting of arrays and objects in a JSON body (400 beyond). Meta's
    /// payloads are under 10 levels; `serde_json` itself stops building values at 128.
    pub max_json_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 16 * 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(20),
            max_json_depth: 256,
        }
    }
}

impl Limits {
    /// The defaults, with the timeouts overridden by `ZAPFN_HEADER_TIMEOUT_MS`
    /// and `ZAPFN_BODY_TIMEOUT_MS` when set.
    pub fn from_env() -> anyhow::Result<Limits> {
        Limits::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`Limits::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Limits> {
        let millis = |name: &str, default: Duration| -> anyhow::Result<Duration> {
            match lookup(name) {
                None => Ok(default),
                Some(value) => match value.trim().parse::<u64>() {
                    Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
                    _ => anyhow::bail!(
                        "{name} must be a positive number of milliseconds, got {value:?}"
                    ),
                },
            }
        };
        let defaults = Limits::default();
        Ok(Limits {
            header_timeout: millis("ZAPFN_HEADER_TIMEOUT_MS", defaults.header_timeout)?,
            body_timeout: millis("ZAPFN_BODY_TIMEOUT_MS", defaults.body_timeout)?,
            ..defaults
        })
    }

    /// The problem for a request head over the caps, if any.
    fn check_head<B>(&self, request: &Request<B>) -> Option<Problem> {
        let uri = request
            .uri()
            .path_and_query()
            .map_or(0, |target| target.as_str().len());
        if uri > self.max_uri_bytes {
            return Some(Problem::new(
                StatusCode::URI_TOO_LONG,
                format!(
                    "the request path and query are {uri} bytes; at most {} are accepted",
                    self.max_uri_bytes
                ),
            ));
        }
        let headers = header_bytes(request.headers());
        (headers > self.max_header_bytes).then(|| {
            Problem::new(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                format!(
                    "the request headers are {headers} bytes; at most {} are accepted",
                    self.max_header_bytes
                ),
            )
        })
    }
}

/// The caps of `limits` as a tower layer, applied once around the whole
/// router (a concrete service: no boxing per request).
#[derive(Debug, Clone)]
pub struct LimitsLayer {
    limits: Arc<Limits>,
}

impl LimitsLayer {
    /// Enforces `limits`.
    pub fn new(limits: &Limits) -> LimitsLayer {
        LimitsLayer {
            limits: Arc::new(limits.clone()),
        }
    }
}

impl<S> Layer<S> for LimitsLayer {
    type Service = Guarded<S>;

    fn layer(&self, inner: S) -> Guarded<S> {
        Guarded {
            inner,
            limits: self.limits.clone(),
        }
    }
}

/// A service whose requests are held to [`Limits`]: an oversized head is
/// answered without calling it, a body is watched while it reads it.
#[derive(Debug, Clone)]
pub struct Guarded<S> {
    inner: S,
    limits: Arc<Limits>,
}

impl<S, B> Service<Request<B>> for Guarded<S>
where
    S: Service<Request<WatchedBody<B>>, Response = Response>,
    B: HttpBody,
{
    type Response = Response;
    type Error = S::Error;
    type Future = GuardedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if let Some(problem) = self.limits.check_head(&request) {
            tracing::warn!(status = problem.status, detail = %problem.detail, "request refused");
            return GuardedFuture::Refused {
                response: Some(problem.into_response()),
            };
        }
        let depth = carries_json(request.headers()).then_some(self.limits.max_json_depth);
        let (parts, body) = request.into_parts();
        let (body, refusal) = WatchedBody::new(body, self.limits.body_timeout, depth);
        GuardedFuture::Running {
            inner: self.inner.call(Request::from_parts(parts, body)),
            refusal,
            limits: self.limits.clone(),
        }
    }
}

pin_project! {
    /// The answer of a [`Guarded`] service.
    #[project = GuardedProjection]
    pub enum GuardedFuture<F> {
        /// Refused from its head.
        Refused { response: Option<Response> },
        /// Handled; a body refused meanwhile turns the answer into the refusal.
        Running {
            #[pin]
            inner: F,
            refusal: Option<Arc<OnceLock<Refusal>>>,
            limits: Arc<Limits>,
        },
    }
}

impl<F, E> Future for GuardedFuture<F>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            GuardedProjection::Refused { response } => Poll::Ready(Ok(response
                .take()
                .expect("a refused request is answered once"))),
            GuardedProjection::Running {
                inner,
                refusal,
                limits,
            } => {
                let response = ready!(inner.poll(cx))?;
                let refused = refusal.as_ref().and_then(|refusal| refusal.get().copied());
                Poll::Ready(Ok(match refused {
                    None => response,
                    Some(why) => refusal_response(why, limits),
                }))
            }
        }
    }
}

/// The answer to a body refused for `why`.
fn refusal_response(why: Refusal, limits: &Limits) -> Response {
    let problem = match why {
        Refusal::TooSlow => Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} ms",
                limits.body_timeout.as_millis()
            ),
        ),
        Refusal::TooDeep => Problem::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the JSON body is nested more than {} levels deep",
                limits.max_json_depth
            ),
        ),
    };
    tracing::warn!(status = problem.status, detail = %problem.detail, "request refused");
    let mut response = problem.into_response();
    // The rest of the body is not read: the connection cannot be reused.
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Sum of the header names' and values' lengths.
fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum()
}

/// Whether a body may be JSON: anything but media, multipart and octet streams
/// (clients often send JSON with no or the wrong content type, e.g. `curl -d`).
fn carries_json(headers: &HeaderMap) -> bool {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
    else {
        return true;
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let binary = ["multipart/", "image/", "audio/", "video/", "font/"]
        .iter()
        .any(|prefix| essence.starts_with(prefix))
        || essence == "application/octet-stream"
        || essence == "application/pdf";
    !binary
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_come_from_the_environment() {
        let limits = Limits::from_lookup(|name| match name {
            "ZAPFN_HEADER_TIMEOUT_MS" => Some("1500".into()),
            "ZAPFN_BODY_TIMEOUT_MS" => Some("250".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(limits.header_timeout, Duration::from_millis(1500));
        assert_eq!(limits.body_timeout, Duration::from_millis(250));
        assert_eq!(Limits::from_lookup(|_| None).unwrap(), Limits::default());
        let error = Limits::from_lookup(|_| Some("soon".into())).unwrap_err();
        assert!(
            error.to_string().contains("ZAPFN_HEADER_TIMEOUT_MS"),
            "{error}"
        );
    }

    #[test]
    fn media_and_multipart_bodies_are_not_scanned_as_json() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_str(value).unwrap());
            carries_json(&headers)
        };
        assert!(carries_json(&HeaderMap::new()));
        assert!(with("application/json; charset=utf-8"));
        assert!(with("application/x-www-form-urlencoded"));
        assert!(!with("multipart/form-data; boundary=x"));
        assert!(!with("Image/JPEG"));
        assert!(!with("application/octet-stream"));
    }
}
