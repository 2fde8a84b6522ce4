//! Caps on what one request may cost the server, each refused with a clear
//! RFC 9457 problem: a request line over [`Limits::max_uri_bytes`] (414),
//! headers over [`Limits::max_header_bytes`] (431), a body that does not
//! arrive within [`Limits::body_timeout`] (408, slowloris) and a JSON body
//! nested deeper than [`Limits::max_json_depth`] (400). Heads that never
//! finish are cut by the connection layer ([`crate::listen`]).

mod body;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;

use crate::Problem;
use body::{Refusal, WatchedBody};

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
    fn check_head(&self, request: &Request) -> Option<Problem> {
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

/// Wraps every route of `router` in the caps of `limits`.
pub fn guard(router: Router, limits: &Limits) -> Router {
    router.layer(middleware::from_fn_with_state(
        Arc::new(limits.clone()),
        enforce,
    ))
}

async fn enforce(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    if let Some(problem) = limits.check_head(&request) {
        tracing::warn!(status = problem.status, detail = %problem.detail, "request refused");
        return problem.into_response();
    }
    let depth = carries_json(request.headers()).then_some(limits.max_json_depth);
    let (parts, body) = request.into_parts();
    let (body, refusal) = WatchedBody::new(body, limits.body_timeout, depth);
    let response = next.run(Request::from_parts(parts, Body::new(body))).await;
    let problem = match refusal.get() {
        None => return response,
        Some(Refusal::TooSlow) => Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} ms",
                limits.body_timeout.as_millis()
            ),
        ),
        Some(Refusal::TooDeep) => Problem::new(
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
