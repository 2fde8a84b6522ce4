//! Structured logs: Cloud Logging's JSON format (`tracing-stackdriver`: `severity`,
//! `message`, camelCase fields, source location) by default, human-readable lines
//! with `ZAPFN_LOG_FORMAT=pretty`; `RUST_LOG` filters.
//!
//! Lines written while a request is handled carry its Cloud Trace ids
//! (`logging.googleapis.com/trace`, `spanId`, `trace_sampled`; see
//! [`trace_context`]) when `GOOGLE_CLOUD_PROJECT` names the project, so Cloud
//! Logging shows them under the request. Message bodies and secrets are never
//! logged at INFO.

pub mod redact;
pub mod trace_context;

use std::io::{self, Write};
use std::sync::Arc;

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use redact::{Redacting, Secrets};
use trace_context::TraceContext;

/// Installs the global subscriber (once; later calls do nothing).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let pretty = std::env::var("ZAPFN_LOG_FORMAT").is_ok_and(|format| format == "pretty");
    let registry = tracing_subscriber::registry().with(filter);
    let stderr = Redacting::new(Secrets::from_env(), std::io::stderr);
    let _ = if pretty {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(stderr))
            .try_init()
    } else {
        let project_id = std::env::var("GOOGLE_CLOUD_PROJECT").ok();
        registry
            .with(
                tracing_stackdriver::layer()
                    .with_writer(WithTrace::new(project_id.as_deref(), stderr)),
            )
            .try_init()
    };
}

/// Writes JSON log lines through `inner`, adding Cloud Logging's trace fields to
/// the lines written while a request's [`TraceContext`] is current.
pub struct WithTrace<M> {
    project_id: Option<Arc<str>>,
    inner: M,
}

impl<M> WithTrace<M> {
    /// Trace fields name `projects/{project_id}/traces/…`; none without a project id.
    pub fn new(project_id: Option<&str>, inner: M) -> WithTrace<M> {
        WithTrace {
            project_id: project_id.filter(|p| !p.is_empty()).map(Arc::from),
            inner,
        }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for WithTrace<M> {
    type Writer = TraceLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        let fields = self
            .project_id
            .as_deref()
            .zip(TraceContext::current())
            .map(|(project_id, trace)| trace_fields(project_id, &trace));
        TraceLine {
            fields,
            inner: self.inner.make_writer(),
        }
    }
}

/// One log line's writer: puts the trace fields right after the line's opening `{`.
pub struct TraceLine<W> {
    fields: Option<String>,
    inner: W,
}

impl<W: Write> Write for TraceLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match (self.fields.take(), buf.split_first()) {
            (Some(fields), Some((b'{', rest))) => {
                // One write per line, so lines from concurrent requests never interleave.
                let mut line = Vec::with_capacity(1 + fields.len() + rest.len());
                line.push(b'{');
                line.extend_from_slice(fields.as_bytes());
                line.extend_from_slice(rest);
                self.inner.write_all(&line)?;
                Ok(buf.len())
            }
            _ => self.inner.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `"logging.googleapis.com/trace":"projects/P/traces/T",…,` (ready to follow a `{`).
fn trace_fields(project_id: &str, trace: &TraceContext) -> String {
    let name = format!("projects/{project_id}/traces/{}", trace.trace_id);
    let mut fields = format!(
        "\"logging.googleapis.com/trace\":{},",
        serde_json::Value::from(name)
    );
    if let Some(span_id) = &trace.span_id {
        fields.push_str(&format!("\"logging.googleapis.com/spanId\":\"{span_id}\","));
    }
    if trace.sampled {
        fields.push_str("\"logging.googleapis.com/trace_sampled\":true,");
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use axum::routing::get;
    use axum::Router;
    use serde_json::Value;
    use std::sync::Mutex;
    use tower::ServiceExt;

    /// Log lines collected in memory.
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

    impl Lines {
        fn parsed(&self) -> Vec<Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|line| serde_json::from_str(line).expect("each log line is one JSON object"))
                .collect()
        }
    }

    fn line<'a>(lines: &'a [Value], message: &str) -> &'a Value {
        lines
            .iter()
            .find(|line| line["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} line in {lines:#?}"))
    }

    #[tokio::test(flavor = "current_thread")]
    async fn lines_of_a_traced_request_carry_its_trace() {
        let lines = Lines::default();
        let sink = lines.clone();
        let subscriber = tracing_subscriber::registry().with(
            tracing_stackdriver::layer()
                .with_writer(WithTrace::new(Some("demo-project"), move || sink.clone())),
        );
        let _guard = tracing::subscriber::set_default(subscriber);
        let router = crate::server::instrument(
            Router::new().route(
                "/work",
                get(|| async {
                    tracing::info!(message_id = "msg_1", "handled");
                    "ok"
                }),
            ),
            &crate::limits::Limits::default(),
        );
        let request = |trace: Option<&str>| {
            let builder = Request::get("/work");
            match trace {
                Some(value) => builder.header("x-cloud-trace-context", value),
                None => builder,
            }
            .body(Body::empty())
            .unwrap()
        };
        let response = router
            .clone()
            .oneshot(request(Some("105445aa7843bc8bf206b12000100000/255;o=1")))
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        tracing::warn!("between requests");

        let lines = lines.parsed();
        let handled = line(&lines, "handled");
        assert_eq!(
            handled["logging.googleapis.com/trace"],
            "projects/demo-project/traces/105445aa7843bc8bf206b12000100000"
        );
        assert_eq!(handled["logging.googleapis.com/spanId"], "00000000000000ff");
        assert_eq!(handled["logging.googleapis.com/trace_sampled"], true);
        assert_eq!(handled["severity"], "INFO");
        assert_eq!(handled["messageId"], "msg_1", "fields are camelCase");
        let outside = line(&lines, "between requests");
        assert_eq!(outside["severity"], "WARNING");
        assert!(outside.get("logging.googleapis.com/trace").is_none());
    }

    #[test]
    fn no_project_no_trace_fields() {
        let lines = Lines::default();
        let sink = lines.clone();
        let writer = WithTrace::new(None, move || sink.clone());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(
            TraceContext::parse_cloud("105445aa7843bc8bf206b12000100000/1")
                .unwrap()
                .scope(async {
                    writer.make_writer().write_all(b"{\"a\":1}\n").unwrap();
                }),
        );
        assert_eq!(lines.parsed(), vec![serde_json::json!({"a": 1})]);
    }
}
