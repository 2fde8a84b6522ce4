//! Structured logs: Cloud Logging's JSON format (`tracing-stackdriver`) by
//! default, human-readable lines with `ZAPFN_LOG_FORMAT=pretty`; `RUST_LOG` filters.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber (once; later calls do nothing).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let pretty = std::env::var("ZAPFN_LOG_FORMAT").is_ok_and(|format| format == "pretty");
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if pretty {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init()
    } else {
        registry
            .with(tracing_stackdriver::layer().with_writer(std::io::stderr))
            .try_init()
    };
}
