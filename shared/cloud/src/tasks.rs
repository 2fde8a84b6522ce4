//! The task queue on Cloud Tasks: one named HTTP task per `dispatch` event,
//! aimed at the dispatch function, and the decoding of the requests Cloud
//! Tasks makes to it.
//!
//! Task names are derived from the message id, so creating the same task twice
//! (a relay retry, two relays racing) answers ALREADY_EXISTS, which counts as
//! success: Cloud Tasks runs each message's task once.
//!
//! A task the handler defers (pacing, not a failure) is not answered with an
//! error, which Cloud Tasks would count as a retry against the queue's
//! attempts: [`CloudTasksQueue::defer`] creates its successor, scheduled for
//! later and carrying the attempts spent so far, and the current task ends 2xx.

use std::collections::HashMap;
use std::time::Duration;

use gcloud_sdk::google::cloud::tasks::v2::cloud_tasks_client::CloudTasksClient;
use gcloud_sdk::google::cloud::tasks::v2::{
    http_request, task, CreateQueueRequest, CreateTaskRequest, HttpMethod, HttpRequest, OidcToken,
    Queue, RetryConfig, Task,
};
use gcloud_sdk::{GoogleApi, GoogleAuthMiddleware};
use http::HeaderMap;
use serde_json::Value;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;
use tonic::Code;
use zapfn_store::Delivery;

use crate::push::NotAPush;
use crate::CloudError;

/// Header carrying when the task was created (Unix ms): retry windows start there.
pub const CREATED_AT_HEADER: &str = "x-zapfn-created-at-ms";
/// Header carrying the event's ordering key, for logs.
pub const ORDERING_KEY_HEADER: &str = "x-zapfn-ordering-key";
/// Header carrying the failed attempts of the tasks a deferred task continues
/// (its own `X-CloudTasks-TaskRetryCount` starts again at 0).
pub const PRIOR_ATTEMPTS_HEADER: &str = "x-zapfn-prior-attempts";

/// Where tasks go and how they authenticate.
#[derive(Debug, Clone)]
pub struct TaskTarget {
    /// Full queue name: `projects/P/locations/L/queues/Q`.
    pub queue: String,
    /// The dispatch function's push URL, e.g. `https://dispatch-….run.app/_tasks/dispatch`.
    pub url: String,
    /// Service account whose OIDC token Cloud Tasks attaches (real deployments).
    pub oidc_service_account: Option<String>,
    /// Audience of that token (the URL when unset).
    pub oidc_audience: Option<String>,
}

enum Api {
    /// The emulator: plain gRPC, no credentials.
    Emulator(CloudTasksClient<Channel>),
    Google(GoogleApi<CloudTasksClient<GoogleAuthMiddleware>>),
}

/// Creates Cloud Tasks for outbox events.
pub struct CloudTasksQueue {
    api: Api,
    target: TaskTarget,
}

/// What creating a task did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    New,
    /// A task with this name exists or existed recently: the event is already queued.
    AlreadyExists,
}

impl CloudTasksQueue {
    /// Connects to the emulator at `CLOUD_TASKS_EMULATOR_HOST` (host:port) when
    /// set, else to Cloud Tasks with the Application Default Credentials.
    pub async fn connect(target: TaskTarget) -> Result<CloudTasksQueue, CloudError> {
        let api = match std::env::var("CLOUD_TASKS_EMULATOR_HOST") {
            Ok(host) if !host.is_empty() => {
                let client = CloudTasksClient::connect(format!("http://{host}"))
                    .await
                    .map_err(|e| CloudError::service("cloud tasks emulator", e))?;
                Api::Emulator(client)
            }
            _ => Api::Google(
                GoogleApi::from_function(
                    CloudTasksClient::new,
                    "https://cloudtasks.googleapis.com",
                    None,
                )
                .await
                .map_err(|e| CloudError::service("cloud tasks", e))?,
            ),
        };
        Ok(CloudTasksQueue { api, target })
    }

    /// The task name of an event: `<queue>/tasks/<topic>-<hash of the message id>`.
    pub fn task_name(&self, event: &Delivery) -> String {
        format!("{}/tasks/{}", self.target.queue, task_id(event))
    }

    /// Creates the HTTP task for `event` (POST of its JSON payload to the target).
    pub async fn enqueue(&self, event: &Delivery) -> Result<Created, CloudError> {
        let created_at_ms = crate::now_ms();
        self.create(self.task_name(event), event, created_at_ms, 0, None)
            .await
    }

    /// Defers a delivery of this queue without spending one of its attempts:
    /// creates the task that continues it, due `after` from now, named after
    /// the delivery's task (`…_d1`, `…_d2`, …: Cloud Tasks delivering the same
    /// deferral twice creates it once) and carrying the failed attempts so far.
    /// The caller then answers 2xx, ending the deferred task. As in the
    /// outbox, a delivery that has not failed yet starts its retry window
    /// again (at the new task's schedule time).
    pub async fn defer(&self, delivery: &Delivery, after: Duration) -> Result<Created, CloudError> {
        let prior_attempts = delivery.attempt.saturating_sub(1);
        let due_ms = crate::now_ms() + after.as_millis() as i64;
        let created_at_ms = if prior_attempts == 0 {
            due_ms
        } else {
            delivery.first_attempt_at_ms
        };
        let name = format!(
            "{}/tasks/{}",
            self.target.queue,
            deferred_task_id(&delivery.id)
        );
        self.create(name, delivery, created_at_ms, prior_attempts, Some(due_ms))
            .await
    }

    /// Creates the HTTP task `name` for `event`, due at `due_ms` (Unix ms) or now.
    async fn create(
        &self,
        name: String,
        event: &Delivery,
        created_at_ms: i64,
        prior_attempts: u32,
        due_ms: Option<i64>,
    ) -> Result<Created, CloudError> {
        let mut headers = HashMap::from([
            ("Content-Type".to_owned(), "application/json".to_owned()),
            (CREATED_AT_HEADER.to_owned(), created_at_ms.to_string()),
        ]);
        if let Some(key) = &event.ordering_key {
            headers.insert(ORDERING_KEY_HEADER.to_owned(), key.clone());
        }
        if prior_attempts > 0 {
            headers.insert(PRIOR_ATTEMPTS_HEADER.to_owned(), prior_attempts.to_string());
        }
        let authorization_header = self.target.oidc_service_account.as_ref().map(|account| {
            http_request::AuthorizationHeader::OidcToken(OidcToken {
                service_account_email: account.clone(),
                audience: self
                    .target
                    .oidc_audience
                    .clone()
                    .unwrap_or_else(|| self.target.url.clone()),
            })
        });
        let request = CreateTaskRequest {
            parent: self.target.queue.clone(),
            task: Some(Task {
                name,
                schedule_time: due_ms.map(|ms| prost_types::Timestamp {
                    seconds: ms.div_euclid(1000),
                    nanos: (ms.rem_euclid(1000) * 1_000_000) as i32,
                }),
                message_type: Some(task::MessageType::HttpRequest(HttpRequest {
                    url: self.target.url.clone(),
                    http_method: HttpMethod::Post as i32,
                    headers,
                    body: serde_json::to_vec(&event.payload).unwrap_or_default(),
                    authorization_header,
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let result = match &self.api {
            Api::Emulator(client) => client.clone().create_task(request).await,
            Api::Google(api) => api.get().create_task(request).await,
        };
        match result {
            Ok(_) => Ok(Created::New),
            Err(status) if status.code() == Code::AlreadyExists => Ok(Created::AlreadyExists),
            Err(status) => Err(CloudError::service("cloud tasks create", status.message())),
        }
    }

    /// Creates the queue unless it exists (tests and local wiring; `infra/`
    /// declares it in real projects). Retries are left unlimited here: zapfn's
    /// own policy dead-letters a task by answering 2xx.
    pub async fn ensure_queue(&self) -> Result<(), CloudError> {
        let parent = self
            .target
            .queue
            .rsplit_once("/queues/")
            .map(|(parent, _)| parent.to_owned())
            .ok_or_else(|| {
                CloudError::Config(format!(
                    "queue {:?} is not projects/P/locations/L/queues/Q",
                    self.target.queue
                ))
            })?;
        let request = CreateQueueRequest {
            parent,
            queue: Some(Queue {
                name: self.target.queue.clone(),
                retry_config: Some(RetryConfig {
                    max_attempts: -1,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        };
        let result = match &self.api {
            Api::Emulator(client) => client.clone().create_queue(request).await,
            Api::Google(api) => api.get().create_queue(request).await,
        };
        match result {
            Ok(_) => Ok(()),
            Err(status) if status.code() == Code::AlreadyExists => Ok(()),
            Err(status) => Err(CloudError::service(
                "cloud tasks create queue",
                status.message(),
            )),
        }
    }
}

/// The task id of an event: its topic and a hash of its payload's `message_id`
/// (the whole payload when it has none). Hashes spread names over Cloud Tasks'
/// key space (sequential names hot-spot it).
pub fn task_id(event: &Delivery) -> String {
    let key = match event.payload.get("message_id") {
        Some(Value::String(id)) => id.clone(),
        _ => event.payload.to_string(),
    };
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    format!("{}-{}", event.topic, &hash[..32])
}

/// The task id that continues task `id` after a deferral: `{id}_d1`, then
/// `_d2`, … (topics and hashes have no `_`; ids stay within Cloud Tasks' 500).
pub fn deferred_task_id(id: &str) -> String {
    let (base, deferrals) = id
        .rsplit_once("_d")
        .and_then(|(base, n)| Some((base, n.parse::<u32>().ok()?)))
        .unwrap_or((id, 0));
    format!("{base}_d{}", deferrals.saturating_add(1))
}

/// Reads a Cloud Tasks HTTP request for `topic`: the task name is the delivery
/// id, the attempt `X-CloudTasks-TaskRetryCount` + 1 plus the attempts of the
/// tasks it continues ([`PRIOR_ATTEMPTS_HEADER`]), the JSON body the payload.
pub fn task_delivery(headers: &HeaderMap, body: &[u8], topic: &str) -> Result<Delivery, NotAPush> {
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let name = header("x-cloudtasks-taskname")
        .filter(|name| !name.is_empty())
        .ok_or_else(|| NotAPush("not a Cloud Tasks request: no X-CloudTasks-TaskName".into()))?;
    let retries: u32 = header("x-cloudtasks-taskretrycount")
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0);
    let prior: u32 = header(PRIOR_ATTEMPTS_HEADER)
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0);
    let payload = serde_json::from_slice(body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()));
    tracing::debug!(
        task = name,
        queue = header("x-cloudtasks-queuename").unwrap_or(""),
        executions = header("x-cloudtasks-taskexecutioncount").unwrap_or(""),
        retries,
        "task received"
    );
    Ok(Delivery {
        id: name.to_owned(),
        topic: topic.to_owned(),
        ordering_key: header(ORDERING_KEY_HEADER).map(str::to_owned),
        payload,
        attempt: prior.saturating_add(retries).saturating_add(1),
        first_attempt_at_ms: created_at_ms(header(CREATED_AT_HEADER)),
        lease_until_ms: 0,
    })
}

/// When the task's first attempt began: [`CREATED_AT_HEADER`] when it is a
/// time between the epoch and now (anything else, now: a later or negative
/// value must not stretch or overflow the retry window).
fn created_at_ms(header: Option<&str>) -> i64 {
    let now = crate::now_ms();
    header
        .and_then(|at| at.trim().parse::<i64>().ok())
        .filter(|at| (0..=now).contains(at))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(payload: Value) -> Delivery {
        Delivery {
            id: "12".into(),
            topic: "dispatch".into(),
            ordering_key: Some("106540352242922:5511999990000".into()),
            payload,
            attempt: 1,
            first_attempt_at_ms: 0,
            lease_until_ms: 0,
        }
    }

    #[test]
    fn task_ids_depend_on_the_message_id_only() {
        let a = event(json!({"message_id": "msg_1"}));
        let mut again = event(json!({"message_id": "msg_1"}));
        again.id = "99".into();
        assert_eq!(task_id(&a), task_id(&again));
        assert_ne!(task_id(&a), task_id(&event(json!({"message_id": "msg_2"}))));
        let id = task_id(&a);
        assert!(
            id.starts_with("dispatch-") && id.len() == "dispatch-".len() + 32,
            "{id}"
        );
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    }

    #[test]
    fn reads_cloud_tasks_headers() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("X-CloudTasks-QueueName", "zapfn-dispatch"),
            ("X-CloudTasks-TaskName", "dispatch-0123"),
            ("X-CloudTasks-TaskRetryCount", "2"),
            ("X-CloudTasks-TaskExecutionCount", "1"),
            (CREATED_AT_HEADER, "1700000000000"),
            (ORDERING_KEY_HEADER, "k"),
        ] {
            headers.insert(
                http::HeaderName::from_bytes(name.to_lowercase().as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        let delivery = task_delivery(&headers, br#"{"message_id":"msg_1"}"#, "dispatch").unwrap();
        assert_eq!(delivery.id, "dispatch-0123");
        assert_eq!(delivery.attempt, 3);
        assert_eq!(delivery.first_attempt_at_ms, 1_700_000_000_000);
        assert_eq!(delivery.ordering_key.as_deref(), Some("k"));
        assert_eq!(delivery.payload, json!({"message_id": "msg_1"}));
    }

    #[test]
    fn deferred_tasks_are_numbered_after_the_task_they_continue() {
        let id = task_id(&event(json!({"message_id": "msg_1"})));
        let first = deferred_task_id(&id);
        assert_eq!(first, format!("{id}_d1"));
        assert_eq!(deferred_task_id(&first), format!("{id}_d2"));
        assert_eq!(deferred_task_id(&format!("{id}_d41")), format!("{id}_d42"));
        assert_eq!(deferred_task_id("dispatch-d12"), "dispatch-d12_d1");
    }

    #[test]
    fn prior_attempts_add_to_the_retry_count() {
        let mut headers = HeaderMap::new();
        headers.insert("x-cloudtasks-taskname", "dispatch-1_d2".parse().unwrap());
        headers.insert("x-cloudtasks-taskretrycount", "1".parse().unwrap());
        headers.insert(PRIOR_ATTEMPTS_HEADER, "2".parse().unwrap());
        let delivery = task_delivery(&headers, b"{}", "dispatch").unwrap();
        assert_eq!(delivery.attempt, 4);
    }

    #[test]
    fn creation_times_outside_epoch_to_now_read_as_now() {
        let before = crate::now_ms();
        for hostile in [
            "-9223372036854775808",
            "9223372036854775807",
            "-1",
            "soon",
            "",
        ] {
            let at = created_at_ms(Some(hostile));
            assert!(
                at >= before && at <= crate::now_ms(),
                "{hostile:?} read as {at}"
            );
        }
        assert_eq!(created_at_ms(Some(" 1700000000000 ")), 1_700_000_000_000);
    }

    #[test]
    fn a_request_without_a_task_name_is_refused() {
        assert!(task_delivery(&HeaderMap::new(), b"{}", "dispatch").is_err());
    }
}
