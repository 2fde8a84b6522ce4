//! The behaviour every [`Store`] backend must have, written once against
//! `Arc<dyn Store>` and run against each backend (SQLite, PostgreSQL, Firestore).
//!
//! # Plugging a backend in
//!
//! In the backend's `tests/conformance.rs` (with this crate as a dev-dependency):
//!
//! ```ignore
//! use std::sync::Arc;
//! use zapfn_store_conformance::{ConformanceOptions, TestStore};
//!
//! /// A fresh, empty store configured with `options`, or `None` when the backend's
//! /// server is not running (after `zapfn_store_conformance::unavailable(..)`).
//! async fn make_store(options: ConformanceOptions) -> Option<TestStore> {
//!     let Ok(url) = std::env::var("ZAPFN_TEST_DATABASE_URL") else {
//!         return zapfn_store_conformance::unavailable("PostgreSQL not running");
//!     };
//!     let store = MyStore::connect(&url, options.max_attempts, options.max_retry_age).await.unwrap();
//!     Some(TestStore::new(Arc::new(store)).cleanup(async move { /* drop the test's schema */ }))
//! }
//!
//! zapfn_store_conformance::conformance_tests!(make_store);
//! ```
//!
//! The macro expands into one `#[test]` per behaviour (named after it, so a
//! failure names the behaviour), each on its own multi-threaded Tokio runtime
//! and with its own store. The caller needs no Tokio test macros.
//!
//! # What a factory must do
//!
//! - Return a store that shares **no data** with any other store it returned
//!   (a fresh file, schema, database or collection prefix): tests run in parallel.
//! - Configure the outbox with [`ConformanceOptions::max_attempts`] and
//!   [`ConformanceOptions::max_retry_age`]: tests ask for other values than the
//!   defaults (5 attempts, 300 s) when that is what they check.
//! - Return `None` only through [`unavailable`] (prints a loud `SKIPPED` line,
//!   or fails when `ZAPFN_REQUIRE_EMULATORS=1`).
//! - Optionally attach a [`TestStore::cleanup`] future; it runs after the test,
//!   whether the test passed or failed.
//!
//! The fixtures are Meta-shaped webhooks (`fixtures/webhooks`, built into this
//! crate) and `zapfn_whatsapp::builders`; [`fixtures`] also serves a backend's
//! own tests (of its rows, files or documents).

pub mod fixtures;
pub mod suite;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use zapfn_store::Store;

/// Outbox settings a test asks its store to have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConformanceOptions {
    /// Deliveries of one outbox event before it is dead-lettered.
    pub max_attempts: u32,
    /// Time after an event's first attempt past which a retry dead-letters it.
    pub max_retry_age: Duration,
}

impl Default for ConformanceOptions {
    /// Matches the deployed defaults (`ZAPFN_MAX_ATTEMPTS`, `ZAPFN_MAX_RETRY_SECONDS`).
    fn default() -> Self {
        ConformanceOptions {
            max_attempts: 5,
            max_retry_age: Duration::from_secs(300),
        }
    }
}

/// A store made for one test, and what to do once the test is over.
pub struct TestStore {
    store: Arc<dyn Store>,
    cleanup: Option<BoxFuture<'static, ()>>,
}

impl TestStore {
    /// Wraps a fresh store.
    pub fn new(store: Arc<dyn Store>) -> TestStore {
        TestStore {
            store,
            cleanup: None,
        }
    }

    /// Work to run after the test (drop a schema, remove a directory). It also
    /// keeps whatever it captures (a `TempDir`) alive until then.
    pub fn cleanup(mut self, cleanup: impl Future<Output = ()> + Send + 'static) -> TestStore {
        self.cleanup = Some(Box::pin(cleanup));
        self
    }
}

/// Skips a test because the backend's server is not running: prints
/// `SKIPPED: {reason}` and returns `None`, or panics when
/// `ZAPFN_REQUIRE_EMULATORS=1` (CI, where a missing server is a failure).
pub fn unavailable(reason: &str) -> Option<TestStore> {
    if std::env::var("ZAPFN_REQUIRE_EMULATORS").as_deref() == Ok("1") {
        panic!("ZAPFN_REQUIRE_EMULATORS=1 but {reason}");
    }
    eprintln!("SKIPPED: {reason}");
    None
}

type Factory =
    Box<dyn Fn(ConformanceOptions) -> BoxFuture<'static, Option<TestStore>> + Send + Sync>;

/// What a behaviour test gets: stores of the backend under test.
#[derive(Clone)]
pub struct Backend {
    inner: Arc<BackendInner>,
}

struct BackendInner {
    factory: Factory,
    /// The store made with default options to learn whether the backend runs.
    first: Mutex<Option<Arc<dyn Store>>>,
    cleanups: Mutex<Vec<BoxFuture<'static, ()>>>,
}

impl Backend {
    /// A fresh store with the default [`ConformanceOptions`].
    pub async fn store(&self) -> Arc<dyn Store> {
        let first = self.inner.first.lock().expect("poisoned").take();
        match first {
            Some(store) => store,
            None => self.store_with(ConformanceOptions::default()).await,
        }
    }

    /// A fresh store with these options.
    pub async fn store_with(&self, options: ConformanceOptions) -> Arc<dyn Store> {
        let made = (self.inner.factory)(options)
            .await
            .expect("the backend ran for this test's first store");
        self.keep(made)
    }

    fn keep(&self, made: TestStore) -> Arc<dyn Store> {
        if let Some(cleanup) = made.cleanup {
            self.inner.cleanups.lock().expect("poisoned").push(cleanup);
        }
        made.store
    }
}

/// Runs one behaviour test against the backend `factory` makes; used by
/// [`conformance_tests!`]. Skips when the factory returns `None`.
pub fn run<F, Fut>(factory: F, test: fn(Backend) -> BoxFuture<'static, ()>)
where
    F: Fn(ConformanceOptions) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<TestStore>> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a Tokio runtime");
    runtime.block_on(async move {
        let factory: Factory = Box::new(move |options| Box::pin(factory(options)));
        let Some(first) = factory(ConformanceOptions::default()).await else {
            return;
        };
        let backend = Backend {
            inner: Arc::new(BackendInner {
                factory,
                first: Mutex::new(None),
                cleanups: Mutex::new(Vec::new()),
            }),
        };
        let store = backend.keep(first);
        *backend.inner.first.lock().expect("poisoned") = Some(store);

        let outcome = tokio::spawn(test(backend.clone())).await;
        let cleanups = std::mem::take(&mut *backend.inner.cleanups.lock().expect("poisoned"));
        for cleanup in cleanups {
            cleanup.await;
        }
        if let Err(error) = outcome {
            match error.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(error) => panic!("test task failed: {error}"),
            }
        }
    });
}

/// Expands into one `#[test]` per behaviour of [`suite`], each running against
/// a store from `$factory`: an `async fn(ConformanceOptions) -> Option<TestStore>`
/// (see the crate docs).
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr) => {
        $crate::__conformance_tests! { $factory;
            ingest_stores_every_message_of_a_multi_entry_batch,
            ingest_keeps_unknown_types_and_fields_in_raw,
            ingest_round_trips_unicode_and_nul_text,
            a_group_message_goes_to_the_groups_conversation,
            duplicate_wamid_is_stored_once_with_one_event,
            concurrent_duplicates_are_stored_once,
            concurrent_ingests_share_one_conversation_per_customer,
            statuses_are_deduplicated_by_wamid_and_status,
            apply_status_is_monotonic_and_records_every_event,
            status_for_unknown_wamid_makes_a_placeholder_that_record_sent_merges,
            merging_a_failed_placeholder_keeps_failed_and_its_errors,
            concurrent_statuses_of_an_unknown_wamid_make_one_placeholder,
            a_status_with_callback_data_links_a_send_whose_answer_was_lost,
            a_send_given_up_unanswered_is_revived_by_its_status_webhook,
            group_members_statuses_are_each_kept_and_one_members_failure_fails_nothing,
            enqueue_send_stores_a_queued_message_and_one_dispatch_task,
            concurrent_sends_with_one_idempotency_key_make_one_message,
            inbound_messages_are_not_outbound_sends,
            record_sent_for_an_unknown_message_is_invalid,
            record_send_error_fails_only_when_terminal,
            the_mid_send_mark_is_kept_only_when_the_send_may_have_reached_meta,
            earlier_send_pending_sees_queued_sends_to_the_same_customer_only,
            last_inbound_at_is_the_latest_customer_message,
            ordering_key_holds_later_events_until_the_first_is_acked,
            ordering_keys_are_scoped_to_their_topic,
            own_claims_lease_the_store_s_events_in_key_order,
            idle_claims_lease_due_events_once,
            defer_does_not_count_an_attempt,
            retry_counts_attempts_and_dead_letters_after_max_attempts,
            retry_dead_letters_once_past_max_retry_age,
            retry_dead_letters_an_event_older_than_a_short_max_age,
            waiting_behind_an_ordering_key_does_not_age_an_event,
            expired_lease_is_delivered_again_with_the_next_attempt,
            a_settle_after_the_lease_expired_changes_nothing,
            a_renewed_lease_keeps_the_event_until_settled_with_it,
            a_lease_taken_by_another_consumer_is_not_renewed,
            settling_a_removed_delivery_is_a_no_op,
            release_leases_delivers_in_flight_events_again,
            concurrent_claims_never_lease_one_event_twice,
            queue_depths_count_pending_and_dead_letters,
            oldest_pending_is_the_oldest_event_of_the_topic_until_it_is_settled,
            dead_letter_keeps_a_pushed_event,
            annotate_media_publishes_once_per_changed_value,
            conversation_messages_pages_cover_every_message_once_newest_first,
            conversations_filter_by_phone_number_id_and_wa_id,
            a_cursor_the_api_did_not_give_out_is_invalid,
            api_keys_are_found_by_hash_while_live,
            revoked_keys_authenticate_nothing_and_are_still_listed,
            audit_log_keeps_entries_newest_first,
            erasing_a_contact_deletes_messages_histories_events_and_conversation,
            erasing_a_contact_deletes_the_raw_events_that_name_it,
            a_contacts_raw_events_are_listed_for_export,
            erasing_what_is_not_stored_deletes_nothing,
            retention_lists_old_messages_and_purges_what_they_leave_behind,
            an_accepted_webhook_is_readable_right_after_and_stored_once,
            an_accepted_webhook_without_items_stores_nothing,
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    ($factory:expr; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                $crate::run($factory, |backend| ::std::boxed::Box::pin($crate::suite::$name(backend)));
            }
        )*
    };
}
