//! Cloud Tasks on the emulator: named HTTP tasks POSTed to a loopback target,
//! decoded into deliveries; failed tasks come back with a higher retry count.

mod common;

use std::time::Duration;

use serde_json::json;
use zapfn_cloud::tasks::{task_delivery, CloudTasksQueue, Created, TaskTarget};
use zapfn_store::Delivery;

fn dispatch(message_id: &str) -> Delivery {
    Delivery {
        id: "41".into(),
        topic: "dispatch".into(),
        ordering_key: Some("106540352242922:5511999990000".into()),
        payload: json!({"message_id": message_id}),
        attempt: 1,
        first_attempt_at_ms: 0,
        lease_until_ms: 0,
    }
}

async fn queue(target_url: String) -> CloudTasksQueue {
    let queue = CloudTasksQueue::connect(TaskTarget {
        queue: format!(
            "projects/zapfn-test/locations/here/queues/{}",
            common::unique("q")
        ),
        url: target_url,
        oidc_service_account: None,
        oidc_audience: None,
    })
    .await
    .unwrap();
    queue.ensure_queue().await.unwrap();
    queue.ensure_queue().await.unwrap();
    queue
}

#[tokio::test]
async fn a_task_reaches_the_target_with_its_name_and_attempt() {
    let Some(_) = common::emulator(
        "CLOUD_TASKS_EMULATOR_HOST",
        "a_task_reaches_the_target_with_its_name_and_attempt",
    ) else {
        return;
    };
    let receiver = common::Receiver::start(vec![]).await;
    let queue = queue(format!("{}/_tasks/dispatch", receiver.url)).await;
    let event = dispatch("msg_abc");
    assert_eq!(queue.enqueue(&event).await.unwrap(), Created::New);
    let received = receiver.wait_for(1, Duration::from_secs(20)).await;
    let delivery = task_delivery(&received[0].headers, &received[0].body, "dispatch").unwrap();
    assert_eq!(delivery.payload, json!({"message_id": "msg_abc"}));
    assert_eq!(delivery.attempt, 1);
    assert_eq!(
        queue.task_name(&event).rsplit('/').next().unwrap(),
        delivery.id
    );
    assert_eq!(
        delivery.ordering_key.as_deref(),
        Some("106540352242922:5511999990000")
    );
    assert!(delivery.first_attempt_at_ms > 1_700_000_000_000);
}

#[tokio::test]
async fn a_failed_task_is_retried_with_the_retry_count() {
    let Some(_) = common::emulator(
        "CLOUD_TASKS_EMULATOR_HOST",
        "a_failed_task_is_retried_with_the_retry_count",
    ) else {
        return;
    };
    let receiver = common::Receiver::start(vec![503, 429]).await;
    let queue = queue(format!("{}/_tasks/dispatch", receiver.url)).await;
    queue.enqueue(&dispatch("msg_retry")).await.unwrap();
    let received = receiver.wait_for(3, Duration::from_secs(30)).await;
    let attempts: Vec<u32> = received
        .iter()
        .map(|r| {
            task_delivery(&r.headers, &r.body, "dispatch")
                .unwrap()
                .attempt
        })
        .collect();
    assert_eq!(attempts, vec![1, 2, 3]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received.lock().unwrap().len(),
        3,
        "a 2xx ends the task"
    );
}
