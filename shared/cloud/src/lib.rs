//! zapfn on Google Cloud: the backends a deployed function talks to, and the
//! decoding of what Google pushes to it.
//!
//! - [`pubsub::PubSubBus`]: publishes outbox events to Pub/Sub topics (ordering
//!   keys, filterable attributes) and creates topics and push subscriptions.
//! - [`tasks::CloudTasksQueue`]: turns `dispatch` events into named Cloud Tasks
//!   HTTP tasks aimed at the dispatch function.
//! - [`push`], [`tasks::task_delivery`] and [`cloudevents`]: Pub/Sub push envelopes,
//!   Cloud Tasks requests and Eventarc CloudEvents → [`zapfn_store::Delivery`].
//! - [`storage::GcsBlobStore`]: media objects in Cloud Storage with V4 signed URLs.
//! - [`oidc::OidcVerifier`]: checks the Google-signed ID token on push requests.

pub mod cloudevents;
pub mod oidc;
pub mod pubsub;
pub mod push;
pub mod storage;
pub mod tasks;

/// A call to a Google Cloud service that failed.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The service answered with an error (gRPC status or HTTP error).
    #[error("{service}: {message}")]
    Service {
        service: &'static str,
        message: String,
    },
    /// A setting is missing or unusable.
    #[error("configuration: {0}")]
    Config(String),
}

impl CloudError {
    pub(crate) fn service(service: &'static str, error: impl std::fmt::Display) -> CloudError {
        CloudError::Service {
            service,
            message: error.to_string(),
        }
    }
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
