//! The behaviour tests, one `pub async fn(Backend)` each. Run them through
//! [`crate::conformance_tests!`], which lists every one of them.

mod access;
mod contacts;
mod ingest;
mod outbox;
mod reads;
mod sends;
mod statuses;
mod webhooks;

pub use access::*;
pub use contacts::*;
pub use ingest::*;
pub use outbox::*;
pub use reads::*;
pub use sends::*;
pub use statuses::*;
pub use webhooks::*;
