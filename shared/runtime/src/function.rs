//! The shape of a zapfn function: HTTP routes plus event handlers.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use zapfn_store::{Delivery, Settlement};

/// An async event handler: takes a delivery, says how it went.
pub type Handler = Arc<dyn Fn(Delivery) -> BoxFuture<'static, Settlement> + Send + Sync>;

/// A handler bound to a topic.
#[derive(Clone)]
pub struct Subscription {
    pub topic: &'static str,
    /// Deliveries handled at once.
    pub concurrency: usize,
    /// How long an embedded consumer reserves a delivery for one handler run:
    /// longer than a run can take, or the event is delivered again meanwhile.
    pub lease: Duration,
    pub handler: Handler,
}

/// The lease of a subscription that does not ask for another.
const DEFAULT_LEASE: Duration = Duration::from_secs(60);

impl Subscription {
    /// Subscribes `handler` to `topic`.
    pub fn new<F, Fut>(topic: &'static str, concurrency: usize, handler: F) -> Subscription
    where
        F: Fn(Delivery) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Settlement> + Send + 'static,
    {
        Subscription {
            topic,
            concurrency: concurrency.max(1),
            lease: DEFAULT_LEASE,
            handler: Arc::new(move |d| Box::pin(handler(d))),
        }
    }

    /// Reserves each delivery for `lease` instead of the default 60 s.
    pub fn with_lease(mut self, lease: Duration) -> Subscription {
        self.lease = lease;
        self
    }
}

/// One deployable function.
pub struct Function {
    pub name: &'static str,
    pub router: axum::Router,
    pub subscriptions: Vec<Subscription>,
}

impl Function {
    /// A function with only HTTP routes.
    pub fn http(name: &'static str, router: axum::Router) -> Function {
        Function {
            name,
            router,
            subscriptions: Vec::new(),
        }
    }

    /// A function with only event handlers.
    pub fn events(name: &'static str, subscriptions: Vec<Subscription>) -> Function {
        Function {
            name,
            router: axum::Router::new(),
            subscriptions,
        }
    }
}
