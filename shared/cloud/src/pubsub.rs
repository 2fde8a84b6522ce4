//! The event bus on Pub/Sub: outbox events published to one topic per zapfn
//! topic (`<prefix><topic>`), with the event's ordering key and attributes that
//! push subscriptions filter on.

use std::collections::HashMap;
use std::time::Duration;

use gcloud_gax::grpc::{Code, Status};
use gcloud_googleapis::pubsub::v1::{
    push_config, DeadLetterPolicy, PubsubMessage, PushConfig, RetryPolicy,
};
use gcloud_pubsub::client::{Client, ClientConfig};
use gcloud_pubsub::publisher::Publisher;
use gcloud_pubsub::subscription::SubscriptionConfig;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::task::JoinSet;
use zapfn_store::Delivery;

use crate::CloudError;

/// Payload fields copied into message attributes, for subscription filters
/// such as `attributes.message_type = "text"`.
const ATTRIBUTE_FIELDS: [&str; 3] = ["message_type", "phone_number_id", "status"];

/// Publishes outbox events to Pub/Sub.
pub struct PubSubBus {
    client: Client,
    prefix: String,
    publishers: Mutex<HashMap<String, Publisher>>,
}

/// A push subscription as zapfn wires it (and as `infra/` declares it).
#[derive(Debug, Clone)]
pub struct PushSubscription {
    /// Subscription id, e.g. `zapfn-text-messages`.
    pub name: String,
    /// zapfn topic (without prefix).
    pub topic: String,
    /// Where Pub/Sub POSTs the envelopes: the function's `/_push/{topic}`.
    pub endpoint: String,
    /// Attribute filter, e.g. `attributes.message_type = "text"`.
    pub filter: Option<String>,
    /// After this many deliveries Pub/Sub moves a message to the dead-letter topic;
    /// setting it also makes Pub/Sub send `deliveryAttempt`.
    pub max_delivery_attempts: i32,
    /// Redelivery backoff bounds.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// Service account whose OIDC token Pub/Sub attaches (real deployments).
    pub oidc_service_account: Option<String>,
    /// Audience of that token (the endpoint when unset).
    pub oidc_audience: Option<String>,
}

impl PushSubscription {
    /// A subscription of `topic` pushing to `endpoint`, with zapfn's defaults.
    pub fn new(
        name: impl Into<String>,
        topic: impl Into<String>,
        endpoint: impl Into<String>,
    ) -> Self {
        PushSubscription {
            name: name.into(),
            topic: topic.into(),
            endpoint: endpoint.into(),
            filter: None,
            max_delivery_attempts: 10,
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            oidc_service_account: None,
            oidc_audience: None,
        }
    }
}

/// The dead-letter topic (without prefix) push subscriptions forward to.
pub const DEAD_LETTER_TOPIC: &str = "dead-letters";

impl PubSubBus {
    /// Connects to the emulator when `PUBSUB_EMULATOR_HOST` is set, else to
    /// Pub/Sub with the Application Default Credentials. `project_id` overrides
    /// the detected project; topics are named `<topic_prefix><topic>`.
    pub async fn connect(
        project_id: Option<String>,
        topic_prefix: &str,
    ) -> Result<PubSubBus, CloudError> {
        let mut config = ClientConfig::default();
        if std::env::var_os("PUBSUB_EMULATOR_HOST").is_none() {
            config = config
                .with_auth()
                .await
                .map_err(|e| CloudError::service("pubsub auth", e))?;
        }
        if project_id.is_some() {
            config.project_id = project_id;
        }
        let client = Client::new(config)
            .await
            .map_err(|e| CloudError::service("pubsub", e))?;
        Ok(PubSubBus {
            client,
            prefix: topic_prefix.to_owned(),
            publishers: Mutex::new(HashMap::new()),
        })
    }

    /// The Pub/Sub topic id of a zapfn topic.
    pub fn topic_id(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    /// Publishes events of one topic: one request per ordering key (Pub/Sub
    /// refuses a request whose messages carry different keys; keyless ones go
    /// together), the requests concurrently. One outcome per event, in order:
    /// its message id, or why its request failed (the caller retries it).
    pub async fn publish(
        &self,
        topic: &str,
        events: &[Delivery],
    ) -> Vec<Result<String, CloudError>> {
        if events.is_empty() {
            return Vec::new();
        }
        let publisher = self.publisher(topic).await;
        let mut requests = JoinSet::new();
        for group in by_ordering_key(events) {
            let messages = group.iter().map(|&i| message_for(&events[i])).collect();
            let publisher = publisher.clone();
            requests
                .spawn(async move { (group, publisher.publish_immediately(messages, None).await) });
        }
        let mut outcomes: Vec<(usize, Result<String, CloudError>)> =
            Vec::with_capacity(events.len());
        while let Some(joined) = requests.join_next().await {
            let (group, published) = joined.expect("a publish request does not panic");
            outcomes.extend(outcomes_of(group, published));
        }
        outcomes.sort_by_key(|(index, _)| *index);
        outcomes.into_iter().map(|(_, outcome)| outcome).collect()
    }

    /// The (cached) publisher of a zapfn topic.
    async fn publisher(&self, topic: &str) -> Publisher {
        let mut publishers = self.publishers.lock().await;
        publishers
            .entry(topic.to_owned())
            .or_insert_with(|| self.client.topic(&self.topic_id(topic)).new_publisher(None))
            .clone()
    }

    /// Creates the topic unless it exists.
    pub async fn ensure_topic(&self, topic: &str) -> Result<(), CloudError> {
        match self
            .client
            .topic(&self.topic_id(topic))
            .create(None, None)
            .await
        {
            Ok(()) => Ok(()),
            Err(status) if status.code() == Code::AlreadyExists => Ok(()),
            Err(status) => Err(CloudError::service("pubsub create topic", status.message())),
        }
    }

    /// Creates the topic, the dead-letter topic and the push subscription
    /// (ordered, filtered, with retry backoff and dead-lettering) unless it exists.
    pub async fn ensure_push_subscription(
        &self,
        spec: &PushSubscription,
    ) -> Result<(), CloudError> {
        self.ensure_topic(&spec.topic).await?;
        self.ensure_topic(DEAD_LETTER_TOPIC).await?;
        let authentication_method = spec.oidc_service_account.as_ref().map(|account| {
            push_config::AuthenticationMethod::OidcToken(push_config::OidcToken {
                service_account_email: account.clone(),
                audience: spec.oidc_audience.clone().unwrap_or_default(),
            })
        });
        let config = SubscriptionConfig {
            push_config: Some(PushConfig {
                push_endpoint: spec.endpoint.clone(),
                authentication_method,
                ..Default::default()
            }),
            ack_deadline_seconds: 60,
            enable_message_ordering: true,
            filter: spec.filter.clone().unwrap_or_default(),
            dead_letter_policy: Some(DeadLetterPolicy {
                dead_letter_topic: self
                    .client
                    .fully_qualified_topic_name(&self.topic_id(DEAD_LETTER_TOPIC)),
                max_delivery_attempts: spec.max_delivery_attempts,
            }),
            retry_policy: Some(RetryPolicy {
                minimum_backoff: Some(proto_duration(spec.min_backoff)),
                maximum_backoff: Some(proto_duration(spec.max_backoff)),
            }),
            ..Default::default()
        };
        let topic = self
            .client
            .fully_qualified_topic_name(&self.topic_id(&spec.topic));
        match self
            .client
            .create_subscription(&spec.name, &topic, config, None)
            .await
        {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::AlreadyExists => Ok(()),
            Err(status) => Err(CloudError::service(
                "pubsub create subscription",
                status.message(),
            )),
        }
    }
}

/// The Pub/Sub message of an outbox event: the payload as JSON, the ordering
/// key, and attributes `topic` plus the payload's `message_type`,
/// `phone_number_id` and `status` when present.
pub fn message_for(event: &Delivery) -> PubsubMessage {
    let mut attributes = HashMap::from([("topic".to_owned(), event.topic.clone())]);
    for field in ATTRIBUTE_FIELDS {
        if let Some(Value::String(value)) = event.payload.get(field) {
            attributes.insert(field.to_owned(), value.clone());
        }
    }
    PubsubMessage {
        data: serde_json::to_vec(&event.payload).unwrap_or_default(),
        attributes,
        ordering_key: event.ordering_key.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// The indexes of `events` grouped by ordering key (keyless events in one
/// group), groups in order of first appearance, each in batch order.
fn by_ordering_key(events: &[Delivery]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    for (index, event) in events.iter().enumerate() {
        let key = event.ordering_key.as_deref().filter(|key| !key.is_empty());
        match groups.iter_mut().find(|(group_key, _)| *group_key == key) {
            Some((_, group)) => group.push(index),
            None => groups.push((key, vec![index])),
        }
    }
    groups.into_iter().map(|(_, group)| group).collect()
}

/// Each event of `group` with its message id, or the request's error.
fn outcomes_of(
    group: Vec<usize>,
    published: Result<Vec<String>, Status>,
) -> Vec<(usize, Result<String, CloudError>)> {
    let failure = match published {
        Ok(ids) if ids.len() == group.len() => {
            return group.into_iter().zip(ids.into_iter().map(Ok)).collect()
        }
        Ok(ids) => format!("{} message ids for {} messages", ids.len(), group.len()),
        Err(status) => status.message().to_owned(),
    };
    group
        .into_iter()
        .map(|index| (index, Err(CloudError::service("pubsub publish", &failure))))
        .collect()
}

fn proto_duration(duration: Duration) -> prost_types::Duration {
    prost_types::Duration {
        seconds: duration.as_secs() as i64,
        nanos: duration.subsec_nanos() as i32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(ordering_key: Option<&str>, payload: Value) -> Delivery {
        Delivery {
            id: "7".into(),
            topic: "messages".into(),
            ordering_key: ordering_key.map(str::to_owned),
            payload,
            attempt: 1,
            first_attempt_at_ms: 0,
            lease_until_ms: 0,
        }
    }

    #[test]
    fn attributes_come_from_the_payload() {
        let event = event(
            Some("106540352242922:5511999990000"),
            json!({"message_type": "text", "phone_number_id": "106540352242922", "wamid": "w", "n": 1}),
        );
        let message = message_for(&event);
        assert_eq!(message.attributes.len(), 3);
        assert_eq!(message.attributes["topic"], "messages");
        assert_eq!(message.attributes["message_type"], "text");
        assert_eq!(message.attributes["phone_number_id"], "106540352242922");
        assert_eq!(message.ordering_key, "106540352242922:5511999990000");
        let data: Value = serde_json::from_slice(&message.data).unwrap();
        assert_eq!(data, event.payload);
    }

    #[test]
    fn one_request_per_ordering_key_and_one_for_keyless_events() {
        let keys = [
            Some("a"),
            Some("b"),
            None,
            Some("a"),
            Some(""),
            Some("c"),
            Some("b"),
        ];
        let events: Vec<Delivery> = keys.iter().map(|key| event(*key, json!({}))).collect();
        let groups = by_ordering_key(&events);
        assert_eq!(groups, vec![vec![0, 3], vec![1, 6], vec![2, 4], vec![5]]);
        for group in &groups {
            let messages: Vec<PubsubMessage> =
                group.iter().map(|&i| message_for(&events[i])).collect();
            assert!(
                messages
                    .iter()
                    .all(|m| m.ordering_key == messages[0].ordering_key),
                "one ordering key per request: {group:?}"
            );
        }
        assert!(by_ordering_key(&[]).is_empty());
    }

    #[test]
    fn each_event_gets_its_own_requests_outcome() {
        let published = outcomes_of(vec![4, 1], Ok(vec!["m4".into(), "m1".into()]));
        let ids: Vec<(usize, String)> = published
            .into_iter()
            .map(|(index, outcome)| (index, outcome.unwrap()))
            .collect();
        assert_eq!(ids, vec![(4, "m4".into()), (1, "m1".into())]);
        let refused = outcomes_of(vec![0, 2], Err(Status::invalid_argument("mixed keys")));
        assert_eq!(refused.len(), 2);
        assert!(refused.iter().all(|(_, outcome)| outcome
            .as_ref()
            .is_err_and(|e| e.to_string().contains("mixed keys"))));
        let short = outcomes_of(vec![0, 2], Ok(vec!["m0".into()]));
        assert!(short.iter().all(|(_, outcome)| outcome.is_err()));
    }
}
