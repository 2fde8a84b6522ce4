//! When a send that may have reached Meta (a crash or a timeout mid-send) may
//! be sent again. Meta echoes zapfn's message id in the statuses of a send, so
//! a send that arrived names itself within a few seconds; the reconcile window
//! (`ZAPFN_RECONCILE_SECONDS`) waits for that. A window counted from the send
//! alone is not enough when zapfn is behind on its own statuses: the status
//! may have arrived in time and still wait in the webhook journal or the
//! outbox. So the wait also lasts until every status event published by the
//! window's end has been applied.

use std::time::Duration;

use zapfn_store::{topics, Result, Store};

/// Longest a dispatch waits for the webhook journal to be indexed.
const JOURNAL_WAIT: Duration = Duration::from_secs(1);
/// How soon a send held back by a status backlog is looked at again.
const BACKLOG_RECHECK: Duration = Duration::from_secs(2);

/// How long a send whose earlier attempt started at `started_ms` still waits
/// before it is sent again; `None`: send it now.
pub(crate) async fn wait_before_resend(
    store: &dyn Store,
    started_ms: i64,
    window: Duration,
    now_ms: i64,
) -> Result<Option<Duration>> {
    let window_end = started_ms.saturating_add(window.as_millis() as i64);
    if now_ms < window_end {
        return Ok(Some(Duration::from_millis((window_end - now_ms) as u64)));
    }
    if !store.flush_webhooks(JOURNAL_WAIT).await {
        tracing::info!("webhook journal behind; holding a re-send back");
        return Ok(Some(BACKLOG_RECHECK));
    }
    match store.oldest_pending_ms(topics::STATUSES).await? {
        Some(oldest) if oldest <= window_end => {
            tracing::info!(
                status_backlog_ms = now_ms - oldest,
                "statuses published within the reconcile window are not applied yet; holding a re-send back"
            );
            Ok(Some(BACKLOG_RECHECK))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zapfn_store::sqlite::{SqliteOptions, SqliteStore};
    use zapfn_store::{parse_webhook, Settlement};
    use zapfn_whatsapp::builders;

    const WINDOW: Duration = Duration::from_secs(30);

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path().join("z.db"), SqliteOptions::default()).unwrap();
        (dir, store)
    }

    /// Publishes one `sent` status and answers when (ms) it was published.
    async fn status_arrives(store: &SqliteStore, wamid: &str) -> i64 {
        let body = builders::statuses_notification(
            "106540352242922",
            vec![builders::status(wamid, "5511999990000", "sent", 1, None)],
        );
        let notification = parse_webhook(body.to_string().as_bytes()).unwrap();
        store.ingest(notification).await.unwrap();
        store
            .oldest_pending_ms(topics::STATUSES)
            .await
            .unwrap()
            .expect("the status waits")
    }

    #[tokio::test]
    async fn waits_out_the_window_from_the_send() {
        let (_dir, store) = store();
        let started = 1_000_000;
        let wait = wait_before_resend(&store, started, WINDOW, started + 10_000).await;
        assert_eq!(wait.unwrap(), Some(Duration::from_secs(20)));
        let wait = wait_before_resend(&store, started, WINDOW, started + 30_000).await;
        assert_eq!(wait.unwrap(), None, "no status backlog: send again");
    }

    #[tokio::test]
    async fn holds_back_while_a_status_of_the_window_is_not_applied() {
        let (_dir, store) = store();
        let published = status_arrives(&store, "wamid.LATE").await;
        let started = published - 5_000;
        let late = published + 60_000;
        let wait = wait_before_resend(&store, started, WINDOW, late).await;
        assert_eq!(wait.unwrap(), Some(BACKLOG_RECHECK));

        let delivery = store
            .claim(topics::STATUSES, 1, Duration::from_secs(60))
            .await
            .unwrap()
            .remove(0);
        let wait = wait_before_resend(&store, started, WINDOW, late).await;
        assert_eq!(
            wait.unwrap(),
            Some(BACKLOG_RECHECK),
            "in flight is not applied"
        );

        store.settle(&delivery, Settlement::Ack).await.unwrap();
        let wait = wait_before_resend(&store, started, WINDOW, late).await;
        assert_eq!(wait.unwrap(), None, "applied: the send got no status");
    }

    #[tokio::test]
    async fn statuses_published_after_the_window_do_not_hold_a_send_back() {
        let (_dir, store) = store();
        let published = status_arrives(&store, "wamid.OTHER").await;
        let started = published - 40_000;
        let wait = wait_before_resend(&store, started, WINDOW, published + 1).await;
        assert_eq!(wait.unwrap(), None);
    }
}
