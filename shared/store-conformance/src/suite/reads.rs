//! What the read API serves: conversations and pages of messages.

use std::collections::BTreeSet;

use zapfn_store::{ConversationQuery, PageRequest, Store, StoreError};

use crate::fixtures::*;
use crate::Backend;

/// 120 messages from Maria on `PNID` (three per second, so timestamps tie),
/// interleaved with 30 from João on `PNID` and 20 from Maria on `PNID_2`.
async fn seed_pagination(store: &dyn Store) -> BTreeSet<String> {
    let mut maria = BTreeSet::new();
    for chunk in 0..10 {
        let wamids: Vec<_> = (0..12)
            .map(|i| format!("wamid.MARIA{:03}", chunk * 12 + i))
            .collect();
        let batch: Vec<_> = wamids
            .iter()
            .enumerate()
            .map(|(i, w)| (w.as_str(), 1_000 + (chunk * 12 + i as i64) / 3))
            .collect();
        store.ingest(texts(PNID, MARIA, &batch)).await.unwrap();
        maria.extend(wamids);
        let joao: Vec<_> = (0..3)
            .map(|i| format!("wamid.JOAO{:03}", chunk * 3 + i))
            .collect();
        store
            .ingest(texts(
                PNID,
                JOAO,
                &joao.iter().map(|w| (w.as_str(), 5_000)).collect::<Vec<_>>(),
            ))
            .await
            .unwrap();
        let other: Vec<_> = (0..2)
            .map(|i| format!("wamid.OTHER{:03}", chunk * 2 + i))
            .collect();
        store
            .ingest(texts(
                PNID_2,
                MARIA,
                &other
                    .iter()
                    .map(|w| (w.as_str(), 1_010))
                    .collect::<Vec<_>>(),
            ))
            .await
            .unwrap();
    }
    maria
}

pub async fn conversation_messages_pages_cover_every_message_once_newest_first(backend: Backend) {
    let store = backend.store().await;
    let expected = seed_pagination(&*store).await;
    let conversation = conversation_of(&*store, "wamid.MARIA000").await;

    let (messages, sizes) = walk_messages(&*store, &conversation, 50).await;
    assert_eq!(sizes, [50, 50, 20]);
    let wamids: Vec<_> = messages.iter().map(|m| m.wamid.clone().unwrap()).collect();
    assert_eq!(wamids.iter().cloned().collect::<BTreeSet<_>>(), expected);
    assert_eq!(wamids.len(), expected.len(), "no message twice");
    for pair in messages.windows(2) {
        assert!(
            (pair[0].timestamp, &pair[0].id) > (pair[1].timestamp, &pair[1].id),
            "newest first, no ties"
        );
    }
    assert_eq!(
        (messages[0].timestamp, messages[119].timestamp),
        (1_039, 1_000)
    );

    // A last page that is exactly full has no next cursor.
    let (_, sizes) = walk_messages(&*store, &conversation, 60).await;
    assert_eq!(sizes, [60, 60]);
    // An unknown conversation has no messages.
    let (messages, sizes) = walk_messages(&*store, "conv_unknown", 10).await;
    assert_eq!((messages.len(), sizes), (0, vec![0]));
}

pub async fn conversations_filter_by_phone_number_id_and_wa_id(backend: Backend) {
    let store = backend.store().await;
    seed_pagination(&*store).await;
    let list = |phone_number_id: Option<&str>, wa_id: Option<&str>| {
        let query = ConversationQuery {
            phone_number_id: phone_number_id.map(str::to_owned),
            wa_id: wa_id.map(str::to_owned),
            page: PageRequest::default(),
        };
        let store = store.clone();
        async move {
            let page = store.conversations(query).await.unwrap();
            assert_eq!(page.next_cursor, None);
            page.items
                .into_iter()
                .map(|c| (c.phone_number_id, c.wa_id))
                .collect::<Vec<_>>()
        }
    };
    let pair = |pnid: &str, wa_id: &str| (pnid.to_owned(), wa_id.to_owned());

    assert_eq!(
        list(Some(PNID), None).await,
        [pair(PNID, JOAO), pair(PNID, MARIA)]
    );
    assert_eq!(list(Some(PNID_2), None).await, [pair(PNID_2, MARIA)]);
    // Both conversations' last messages are within a minute: their order is not specified.
    let mut marias = list(None, Some(MARIA)).await;
    marias.sort();
    assert_eq!(marias, [pair(PNID, MARIA), pair(PNID_2, MARIA)]);
    assert_eq!(list(Some(PNID), Some(MARIA)).await, [pair(PNID, MARIA)]);
    assert!(list(Some("000"), None).await.is_empty());

    // Pages of one walk all three, most recent first.
    let (mut seen, mut cursor) = (Vec::new(), None);
    loop {
        let query = ConversationQuery {
            page: PageRequest { cursor, limit: 1 },
            ..Default::default()
        };
        let page = store.conversations(query).await.unwrap();
        assert_eq!(page.items.len(), 1);
        seen.push(page.items[0].clone());
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    assert_eq!(
        seen.iter().map(|c| c.last_message_at).collect::<Vec<_>>(),
        // Kept to the minute: each conversation's later messages within 60 s of
        // its first do not move it (Maria's 1,000..1,039 stay at 1,000).
        [5_000, 1_010, 1_000]
    );
    let fetched = store.conversation(&seen[0].id).await.unwrap().unwrap();
    assert_eq!(fetched, seen[0]);
    assert_eq!(store.conversation("conv_unknown").await.unwrap(), None);
}

pub async fn a_cursor_the_api_did_not_give_out_is_invalid(backend: Backend) {
    let store = backend.store().await;
    store
        .ingest(texts(PNID, MARIA, &[("wamid.M1", 10)]))
        .await
        .unwrap();
    let conversation = conversation_of(&*store, "wamid.M1").await;
    for cursor in ["garbage", "abc:msg_1", ""] {
        let page = PageRequest {
            cursor: Some(cursor.into()),
            limit: 10,
        };
        let messages = store
            .conversation_messages(&conversation, page.clone())
            .await;
        assert!(
            matches!(messages, Err(StoreError::Invalid(_))),
            "{cursor:?}: {messages:?}"
        );
        let conversations = store
            .conversations(ConversationQuery {
                page,
                ..Default::default()
            })
            .await;
        assert!(
            matches!(conversations, Err(StoreError::Invalid(_))),
            "{cursor:?}: {conversations:?}"
        );
    }
}
