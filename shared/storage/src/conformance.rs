//! The storage conformance suite: the behaviour both backends must share. Each check takes a
//! fresh, empty store. Compiled with the `conformance` feature, for this crate's tests and the
//! workspace's reliability tests (which run the same checks through a fault-injecting proxy).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // checks assert by panicking

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use serde_json::json;

use crate::*;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A fresh AWS store (its own tables and bucket) on the emulator at
/// `SHOPMIND_TEST_AWS_ENDPOINT`; without it, a failure that says how to start the emulator.
pub async fn emulator_store() -> crate::aws::AwsStore {
    let endpoint = std::env::var("SHOPMIND_TEST_AWS_ENDPOINT").unwrap_or_else(|_| {
        panic!("SHOPMIND_TEST_AWS_ENDPOINT is not set: run infra/scripts/test.sh, which starts the AWS emulator")
    });
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await;
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let unique = format!(
        "t{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    );
    let store = crate::aws::AwsStore::from_sdk_config(
        &conf,
        crate::aws::AwsNames::new(&format!("{unique}-"), &format!("bucket-{unique}")),
    );
    let created = store.ensure_resources().await.unwrap();
    assert_eq!(created.len(), 5, "four tables and the bucket: {created:?}");
    assert!(
        store.ensure_resources().await.unwrap().is_empty(),
        "idempotent"
    );
    store
}

pub type Check = fn(Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Calls `$m!(check, check, …)` with the name of every check, so test files can generate one
/// test per check and backend without repeating the list.
#[macro_export]
macro_rules! for_each_conformance_check {
    ($m:ident) => {
        $m!(
            profiles_optimistic_concurrency,
            concurrent_profile_updates_lose_nothing,
            conversations_and_turns,
            conversation_pages_beyond_one_dynamodb_page,
            expired_items_are_not_served,
            drafts_listed_by_status_across_pages,
            batch_writes_land_every_item,
            idempotency_records,
            items_near_the_dynamodb_limit,
            blobs,
            forgetting_a_shopper,
            handoffs_listed_newest_first_with_guarded_changes,
        );
    };
}

macro_rules! all_checks {
    ($($name:ident),* $(,)?) => {
        /// Every check, by name.
        pub const ALL: &[(&str, Check)] = &[$((stringify!($name), |s| Box::pin($name(s)))),*];
    };
}

for_each_conformance_check!(all_checks);

pub async fn profiles_optimistic_concurrency(s: Arc<dyn Store>) {
    assert_eq!(s.get_profile("u1").await.unwrap(), None);
    assert_eq!(
        s.put_profile("u1", &json!({"views": 1}), None)
            .await
            .unwrap(),
        1
    );
    // Conditional create: a second create is a conflict, not an overwrite.
    assert!(matches!(
        s.put_profile("u1", &json!({"views": 99}), None).await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        s.put_profile("u1", &json!({"views": 2}), Some(1))
            .await
            .unwrap(),
        2
    );
    // A stale version is rejected with a distinguishable error.
    assert!(matches!(
        s.put_profile("u1", &json!({"views": 3}), Some(1)).await,
        Err(StorageError::Conflict(_))
    ));
    let got = s.get_profile("u1").await.unwrap().unwrap();
    assert_eq!(
        got,
        Versioned {
            version: 2,
            value: json!({"views": 2})
        }
    );
    assert!(s.delete_profile("u1").await.unwrap());
    assert!(!s.delete_profile("u1").await.unwrap());
    assert!(matches!(
        s.get_profile("").await,
        Err(StorageError::InvalidKey(_))
    ));
}

pub async fn concurrent_profile_updates_lose_nothing(s: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                for _ in 0..10 {
                    loop {
                        let current = s.get_profile("shared").await.unwrap();
                        let (count, version) = match &current {
                            Some(v) => (v.value["count"].as_u64().unwrap(), Some(v.version)),
                            None => (0, None),
                        };
                        match s
                            .put_profile("shared", &json!({"count": count + 1}), version)
                            .await
                        {
                            Ok(_) => break,
                            Err(StorageError::Conflict(_)) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let p = s.get_profile("shared").await.unwrap().unwrap();
    assert_eq!(p.value["count"], 80);
    assert_eq!(p.version, 80);
}

fn meta(id: &str, owner: &str, expires_at: i64) -> ConversationMeta {
    ConversationMeta {
        id: id.into(),
        owner: owner.into(),
        created_at: now(),
        expires_at,
        handoff: None,
    }
}

pub async fn conversations_and_turns(s: Arc<dyn Store>) {
    let exp = now() + 3600;
    s.create_conversation(&meta("c1", "alice", exp))
        .await
        .unwrap();
    assert!(matches!(
        s.create_conversation(&meta("c1", "mallory", exp)).await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(
        s.get_conversation("c1").await.unwrap().unwrap().owner,
        "alice"
    );
    for seq in 1..=3 {
        s.append_turn(
            "c1",
            &Turn {
                seq,
                body: json!({"text": format!("turn {seq}")}),
                expires_at: exp,
            },
        )
        .await
        .unwrap();
    }
    // Two writers can never both take one place in the conversation.
    assert!(matches!(
        s.append_turn(
            "c1",
            &Turn {
                seq: 2,
                body: json!({}),
                expires_at: exp
            }
        )
        .await,
        Err(StorageError::Conflict(_))
    ));
    assert!(matches!(
        s.append_turn(
            "nope",
            &Turn {
                seq: 1,
                body: json!({}),
                expires_at: exp
            }
        )
        .await,
        Err(StorageError::NotFound(_))
    ));
    let page = s.list_turns("c1", None, 10).await.unwrap();
    assert_eq!(
        page.items.iter().map(|t| t.seq).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(page.items[2].body["text"], "turn 3");

    // Writers that all read the conversation when it had three turns each still land, at the
    // next free places, and none overwrites another.
    s.create_conversation(&meta("c2", "alice", exp))
        .await
        .unwrap();
    for seq in 1..=3 {
        let turn = Turn {
            seq,
            body: json!({}),
            expires_at: exp,
        };
        s.append_turn("c2", &turn).await.unwrap();
    }
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let s = s.clone();
            tokio::spawn(async move {
                let turn = Turn {
                    seq: 4,
                    body: json!({ "writer": w }),
                    expires_at: exp,
                };
                crate::append_turn_at_end(s.as_ref(), "c2", &turn, 10).await
            })
        })
        .collect();
    let mut got: Vec<u64> = Vec::new();
    for w in writers {
        got.push(w.await.unwrap().unwrap());
    }
    got.sort_unstable();
    assert_eq!(got, vec![4, 5, 6, 7, 8, 9]);
    let stored = s.list_turns("c2", None, 20).await.unwrap().items;
    let mut writers_seen: Vec<u64> = stored
        .iter()
        .filter_map(|t| t.body["writer"].as_u64())
        .collect();
    writers_seen.sort_unstable();
    assert_eq!(writers_seen, vec![0, 1, 2, 3, 4, 5]);
    // Out of places: a clear conflict, not a lost turn.
    let late = Turn {
        seq: 1,
        body: json!({}),
        expires_at: exp,
    };
    assert!(matches!(
        crate::append_turn_at_end(s.as_ref(), "c2", &late, 3).await,
        Err(StorageError::Conflict(_))
    ));
    assert_eq!(page.next, None);
    assert!(matches!(
        s.list_turns("c1", Some("garbage"), 10).await,
        Err(StorageError::InvalidCursor)
    ));
}

pub async fn conversation_pages_beyond_one_dynamodb_page(s: Arc<dyn Store>) {
    let exp = now() + 3600;
    s.create_conversation(&meta("long", "bob", exp))
        .await
        .unwrap();
    // 30 turns of ~60 KB: 1.8 MB, more than one 1 MB DynamoDB query page.
    let filler = "x".repeat(60 * 1024);
    for seq in 1..=30 {
        s.append_turn(
            "long",
            &Turn {
                seq,
                body: json!({"text": filler, "n": seq}),
                expires_at: exp,
            },
        )
        .await
        .unwrap();
    }
    let all = s.list_turns("long", None, 100).await.unwrap();
    assert_eq!(all.items.len(), 30);
    assert_eq!(all.next, None);
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s.list_turns("long", cursor.as_deref(), 7).await.unwrap();
        assert!(page.items.len() <= 7);
        seen.extend(page.items.iter().map(|t| t.body["n"].as_u64().unwrap()));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, (1..=30).collect::<Vec<u64>>());
}

pub async fn expired_items_are_not_served(s: Arc<dyn Store>) {
    s.create_conversation(&meta("old", "carol", now() - 10))
        .await
        .unwrap();
    assert_eq!(s.get_conversation("old").await.unwrap(), None);
    // An expired id can be reused.
    s.create_conversation(&meta("old", "dave", now() + 60))
        .await
        .unwrap();
    s.append_turn(
        "old",
        &Turn {
            seq: 1,
            body: json!({}),
            expires_at: now() - 1,
        },
    )
    .await
    .unwrap();
    s.append_turn(
        "old",
        &Turn {
            seq: 2,
            body: json!({}),
            expires_at: now() + 60,
        },
    )
    .await
    .unwrap();
    let page = s.list_turns("old", None, 10).await.unwrap();
    assert_eq!(
        page.items.iter().map(|t| t.seq).collect::<Vec<_>>(),
        vec![2]
    );
}

fn draft(status: &str, updated_at: i64, text: &str) -> DraftRecord {
    DraftRecord {
        status: status.into(),
        updated_at,
        body: json!({"text": text}),
    }
}

pub async fn drafts_listed_by_status_across_pages(s: Arc<dyn Store>) {
    for i in 0..15 {
        let key = DraftKey::new(format!("p{i:02}"), "sms", "en");
        s.put_draft(&key, &draft("pending_review", 1000 + i, "t"), None)
            .await
            .unwrap();
    }
    for i in 0..8 {
        let key = DraftKey::new(format!("q{i:02}"), "push", "zh-CN");
        s.put_draft(&key, &draft("approved", 500 + i, "t"), None)
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = s
            .list_drafts("pending_review", cursor.as_deref(), 4)
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|(k, _)| k.product_id.clone()));
        match page.next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(
        seen,
        (0..15).map(|i| format!("p{i:02}")).collect::<Vec<_>>(),
        "oldest first, no gaps or repeats"
    );

    // A status change moves the draft between listings.
    let key = DraftKey::new("p03", "sms", "en");
    let current = s.get_draft(&key).await.unwrap().unwrap();
    assert_eq!(current.version, 1);
    assert!(matches!(
        s.put_draft(&key, &draft("approved", 2000, "t"), Some(7))
            .await,
        Err(StorageError::Conflict(_))
    ));
    s.put_draft(&key, &draft("approved", 2000, "ok"), Some(1))
        .await
        .unwrap();
    let pending = s.list_drafts("pending_review", None, 100).await.unwrap();
    assert_eq!(pending.items.len(), 14);
    let approved = s.list_drafts("approved", None, 100).await.unwrap();
    assert_eq!(approved.items.len(), 9);
    assert_eq!(approved.items.last().unwrap().0, key);
    assert_eq!(approved.items.last().unwrap().1.version, 2);
    assert!(matches!(
        DraftKey::new("a|b", "sms", "en").encode(),
        Err(StorageError::InvalidKey(_))
    ));
}

pub async fn batch_writes_land_every_item(s: Arc<dyn Store>) {
    let items: Vec<_> = (0..60)
        .map(|i| {
            (
                DraftKey::new(format!("b{i:03}"), "social_post", "en"),
                draft("pending_review", i, "bulk"),
            )
        })
        .collect();
    s.put_drafts(&items).await.unwrap();
    let listed = s.list_drafts("pending_review", None, 1000).await.unwrap();
    assert_eq!(listed.items.len(), 60);
    assert!(listed.items.iter().all(|(_, d)| d.version == 1));
    // A bulk write replaces and re-indexes.
    let moved: Vec<_> = items[..10]
        .iter()
        .map(|(k, _)| (k.clone(), draft("rejected", 99, "x")))
        .collect();
    s.put_drafts(&moved).await.unwrap();
    assert_eq!(
        s.list_drafts("pending_review", None, 1000)
            .await
            .unwrap()
            .items
            .len(),
        50
    );
    assert_eq!(
        s.list_drafts("rejected", None, 1000)
            .await
            .unwrap()
            .items
            .len(),
        10
    );
}

fn claim(key: &str, hash: &str, now_ms: i64) -> IdempotencyClaim {
    IdempotencyClaim {
        key: key.into(),
        payload_hash: hash.into(),
        now_ms,
        in_progress_until: now_ms + 30_000,
        expires_at: now_ms / 1000 + 3600,
    }
}

pub async fn idempotency_records(s: Arc<dyn Store>) {
    let t = now() * 1000;
    assert_eq!(
        s.claim(&claim("evt:1", "h1", t)).await.unwrap(),
        ClaimOutcome::Acquired
    );
    match s.claim(&claim("evt:1", "h1", t + 1)).await.unwrap() {
        ClaimOutcome::Existing(r) => {
            assert_eq!(r.status, IdempotencyStatus::InProgress);
            assert_eq!(r.payload_hash, "h1");
        }
        other => panic!("{other:?}"),
    }
    // A crashed attempt does not block forever: past the in-progress expiry it is claimable.
    assert_eq!(
        s.claim(&claim("evt:1", "h1", t + 31_000)).await.unwrap(),
        ClaimOutcome::Acquired
    );
    s.complete("evt:1", &json!({"applied": true}), now() + 3600)
        .await
        .unwrap();
    s.release("evt:1").await.unwrap(); // completed records are not released
    match s
        .claim(&claim("evt:1", "other-hash", t + 60_000))
        .await
        .unwrap()
    {
        ClaimOutcome::Existing(r) => {
            assert_eq!(r.status, IdempotencyStatus::Completed);
            assert_eq!(r.result, Some(json!({"applied": true})));
            assert_eq!(
                r.payload_hash, "h1",
                "the caller compares hashes to catch a reused key"
            );
        }
        other => panic!("{other:?}"),
    }
    // A released (failed) attempt can run again at once.
    assert_eq!(
        s.claim(&claim("evt:2", "h", t)).await.unwrap(),
        ClaimOutcome::Acquired
    );
    s.release("evt:2").await.unwrap();
    assert_eq!(
        s.claim(&claim("evt:2", "h", t + 1)).await.unwrap(),
        ClaimOutcome::Acquired
    );
    assert!(matches!(
        s.complete("evt:none", &json!(1), now() + 60).await,
        Err(StorageError::NotFound(_))
    ));

    // TTL: an expired record is not served and may be claimed again.
    let mut expired = claim("evt:3", "h", t);
    expired.expires_at = now() - 5;
    assert_eq!(s.claim(&expired).await.unwrap(), ClaimOutcome::Acquired);
    assert_eq!(s.get_idempotency("evt:3").await.unwrap(), None);
    assert_eq!(
        s.claim(&claim("evt:3", "h", t)).await.unwrap(),
        ClaimOutcome::Acquired
    );

    assert_eq!(
        s.claim(&claim("user:zed:a", "h", t)).await.unwrap(),
        ClaimOutcome::Acquired
    );
    assert_eq!(
        s.claim(&claim("user:zed:b", "h", t)).await.unwrap(),
        ClaimOutcome::Acquired
    );
    assert_eq!(
        s.claim(&claim("user:zedd:a", "h", t)).await.unwrap(),
        ClaimOutcome::Acquired
    );
    assert_eq!(s.delete_idempotency_prefix("user:zed:").await.unwrap(), 2);
    assert!(s.get_idempotency("user:zedd:a").await.unwrap().is_some());
}

pub async fn items_near_the_dynamodb_limit(s: Arc<dyn Store>) {
    let near = json!({"blob": "y".repeat(380 * 1024)});
    s.put_profile("big", &near, None).await.unwrap();
    assert_eq!(s.get_profile("big").await.unwrap().unwrap().value, near);
    let over = json!({"blob": "y".repeat(420 * 1024)});
    match s.put_profile("big", &over, Some(1)).await {
        Err(StorageError::TooLarge { bytes, limit, .. }) => assert!(bytes > limit),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert_eq!(
        s.get_profile("big").await.unwrap().unwrap().version,
        1,
        "a refused write changes nothing"
    );
}

pub async fn blobs(s: Arc<dyn Store>) {
    assert_eq!(
        s.get_blob("indexes/items/v1/manifest.json").await.unwrap(),
        None
    );
    s.put_blob("indexes/items/v1/manifest.json", Bytes::from_static(b"one"))
        .await
        .unwrap();
    s.put_blob("indexes/items/v1/manifest.json", Bytes::from_static(b"two"))
        .await
        .unwrap();
    assert_eq!(
        s.get_blob("indexes/items/v1/manifest.json")
            .await
            .unwrap()
            .unwrap(),
        Bytes::from_static(b"two")
    );
    s.put_blob(
        "indexes/items/v2/matrix.f32",
        Bytes::from(vec![7u8; 100_000]),
    )
    .await
    .unwrap();
    s.put_blob("indexes/items-old/x", Bytes::from_static(b"x"))
        .await
        .unwrap();
    s.put_blob("indexes/latest", Bytes::from_static(b"v2"))
        .await
        .unwrap();
    assert_eq!(
        s.list_blobs("indexes/items/").await.unwrap(),
        vec![
            "indexes/items/v1/manifest.json",
            "indexes/items/v2/matrix.f32"
        ]
    );
    assert_eq!(s.list_blobs("indexes/items").await.unwrap().len(), 3);
    assert_eq!(
        s.list_blobs("nothing/").await.unwrap(),
        Vec::<String>::new()
    );
    assert!(s.delete_blob("indexes/latest").await.unwrap());
    assert!(!s.delete_blob("indexes/latest").await.unwrap());
    assert_eq!(
        s.get_blob("indexes/items/v2/matrix.f32")
            .await
            .unwrap()
            .unwrap()
            .len(),
        100_000
    );
    // Empty, and 17 MiB arriving in many body chunks, with every byte depending on its
    // offset, so chunks joined out of order, twice or not at all show.
    s.put_blob("indexes/items/v3/empty", Bytes::new())
        .await
        .unwrap();
    assert_eq!(
        s.get_blob("indexes/items/v3/empty").await.unwrap(),
        Some(Bytes::new())
    );
    let large: Vec<u8> = (0..(17u64 << 20) + 12_345)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    s.put_blob("indexes/items/v3/large", Bytes::from(large.clone()))
        .await
        .unwrap();
    let back = s.get_blob("indexes/items/v3/large").await.unwrap().unwrap();
    assert_eq!(back.len(), large.len());
    assert!(back == large, "the large blob came back different");

    // Read with its hash: the same bytes, and the SHA-256 the sha2 crate gives over them
    // whole (an S3 body is hashed part by part as it streams in); the empty blob's hash is
    // FIPS 180-2's published one.
    let (hashed, hash) = s
        .get_blob_sha256("indexes/items/v3/large")
        .await
        .unwrap()
        .unwrap();
    assert!(hashed == large, "the hashed read came back different");
    assert_eq!(
        hash,
        <[u8; 32]>::from(sha2::Digest::finalize(
            <sha2::Sha256 as sha2::Digest>::new_with_prefix(&large)
        ))
    );
    let (empty, hash) = s
        .get_blob_sha256("indexes/items/v3/empty")
        .await
        .unwrap()
        .unwrap();
    assert!(empty.is_empty());
    assert_eq!(
        hex::encode(hash),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(
        s.get_blob_sha256("indexes/items/v9/none").await.unwrap(),
        None
    );
}

pub async fn forgetting_a_shopper(s: Arc<dyn Store>) {
    let exp = now() + 3600;
    for id in ["f1", "f2"] {
        s.create_conversation(&meta(id, "erin", exp)).await.unwrap();
        s.append_turn(
            id,
            &Turn {
                seq: 1,
                body: json!({}),
                expires_at: exp,
            },
        )
        .await
        .unwrap();
    }
    s.create_conversation(&meta("f3", "frank", exp))
        .await
        .unwrap();
    assert_eq!(s.count_conversations_of("erin").await.unwrap(), 2);
    assert_eq!(s.count_conversations_of("frank").await.unwrap(), 1);
    assert_eq!(s.count_conversations_of("nobody").await.unwrap(), 0);
    assert_eq!(s.delete_conversations_of("erin").await.unwrap(), 2);
    assert_eq!(s.count_conversations_of("erin").await.unwrap(), 0);
    assert_eq!(s.get_conversation("f1").await.unwrap(), None);
    assert!(s.list_turns("f1", None, 10).await.unwrap().items.is_empty());
    assert!(s.get_conversation("f3").await.unwrap().is_some());
    assert_eq!(s.delete_conversations_of("erin").await.unwrap(), 0);
}

fn handoff(status: &str, reason: &str, updated_at: i64) -> Handoff {
    Handoff {
        status: status.into(),
        reason: reason.into(),
        intent: Some("order_status".into()),
        sentiment: Some("negative".into()),
        handed_off_at: 1_000,
        updated_at,
        by: None,
    }
}

pub async fn handoffs_listed_newest_first_with_guarded_changes(s: Arc<dyn Store>) {
    let exp = now() + 3600;
    for id in ["h1", "h2", "h3", "h4", "h5"] {
        s.create_conversation(&meta(id, "gina", exp)).await.unwrap();
    }
    s.create_conversation(&meta("h6", "gina", now() - 5))
        .await
        .unwrap();
    // Nothing handed off yet; an unknown conversation cannot be.
    let empty = s.list_handoffs("handed_off", None, None, 10).await.unwrap();
    assert!(empty.items.is_empty() && empty.next.is_none());
    assert!(matches!(
        s.set_handoff("nope", &handoff("handed_off", "asked_for_human", 1), None)
            .await,
        Err(StorageError::NotFound(_))
    ));
    // Expired: as if it were not there.
    assert!(matches!(
        s.set_handoff("h6", &handoff("handed_off", "asked_for_human", 1), None)
            .await,
        Err(StorageError::NotFound(_))
    ));
    let reasons = ["asked_for_human", "negative_sentiment", "asked_for_human"];
    for (i, (id, reason)) in ["h1", "h2", "h3"].iter().zip(reasons).enumerate() {
        s.set_handoff(id, &handoff("handed_off", reason, 2_000 + i as i64), None)
            .await
            .unwrap();
    }
    // A second handoff from "open" lost the race: the status is no longer open.
    assert!(matches!(
        s.set_handoff("h1", &handoff("handed_off", "asked_for_human", 9), None)
            .await,
        Err(StorageError::Conflict(_))
    ));
    // Newest first, across pages.
    let first = s.list_handoffs("handed_off", None, None, 2).await.unwrap();
    let ids: Vec<&str> = first.items.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["h3", "h2"]);
    let rest = s
        .list_handoffs("handed_off", None, first.next.as_deref(), 2)
        .await
        .unwrap();
    let ids: Vec<&str> = rest.items.iter().map(|m| m.id.as_str()).collect();
    assert_eq!(ids, ["h1"]);
    assert_eq!(rest.next, None);
    // By reason.
    let upset = s
        .list_handoffs("handed_off", Some("negative_sentiment"), None, 10)
        .await
        .unwrap();
    assert_eq!(upset.items.len(), 1);
    let h2 = &upset.items[0];
    assert_eq!(h2.id, "h2");
    assert_eq!(h2.owner, "gina");
    assert_eq!(
        h2.handoff,
        Some(handoff("handed_off", "negative_sentiment", 2_001))
    );
    // A reply moves h1 to agent_replied (and to the top of that list) only from handed_off.
    let mut replied = handoff("agent_replied", "asked_for_human", 3_000);
    replied.by = Some("staff:ana".into());
    assert!(matches!(
        s.set_handoff("h1", &replied, Some("resolved")).await,
        Err(StorageError::Conflict(_))
    ));
    s.set_handoff("h1", &replied, Some("handed_off"))
        .await
        .unwrap();
    let ids: Vec<String> = s
        .list_handoffs("handed_off", None, None, 10)
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(ids, ["h3", "h2"]);
    let agent = s
        .list_handoffs("agent_replied", None, None, 10)
        .await
        .unwrap();
    assert_eq!(agent.items.len(), 1);
    assert_eq!(agent.items[0].handoff, Some(replied.clone()));
    assert_eq!(
        s.get_conversation("h1").await.unwrap().unwrap().handoff,
        Some(replied)
    );
    assert!(matches!(
        s.list_handoffs("handed_off", None, Some("garbage"), 10)
            .await,
        Err(StorageError::InvalidCursor)
    ));
    assert!(matches!(
        s.set_handoff("h4", &handoff("closed", "asked_for_human", 1), None)
            .await,
        Err(StorageError::InvalidKey(_))
    ));
    // Forgetting the shopper takes the handoffs with it.
    s.delete_conversations_of("gina").await.unwrap();
    assert!(s
        .list_handoffs("handed_off", None, None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
    assert!(s
        .list_handoffs("agent_replied", None, None, 10)
        .await
        .unwrap()
        .items
        .is_empty());
}
