//! The function's handler called directly, as the Lambda runtime would call it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use profile_updater::Handler;
use serde_json::json;
use shopmind_profiles::{Profile, ProfileUpdater, UpdaterConfig};
use shopmind_runtime::sqs::is_sqs_event as is_sqs;
use shopmind_storage::embedded::EmbeddedStore;
use shopmind_storage::Store;

fn handler(dir: &std::path::Path) -> (Handler, Arc<dyn Store>) {
    handler_on(Arc::new(EmbeddedStore::open(dir).unwrap()))
}

fn handler_on(store: Arc<dyn Store>) -> (Handler, Arc<dyn Store>) {
    let updater = ProfileUpdater::new(
        store.clone(),
        store.clone(),
        store.clone(),
        UpdaterConfig::default(),
    );
    let handler = Handler {
        updater: Arc::new(updater),
        deadline_margin: Duration::from_secs(1),
        shoppers: Default::default(),
    };
    (handler, store)
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

fn batch(bodies: &[String]) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = bodies
        .iter()
        .enumerate()
        .map(|(i, body)| {
            let mut m = SqsMessage::default();
            m.message_id = Some(format!("msg-{i}"));
            m.body = Some(body.clone());
            m.event_source = Some("aws:sqs".into());
            m
        })
        .collect();
    event
}

fn deadline() -> SystemTime {
    SystemTime::now() + Duration::from_secs(30)
}

#[tokio::test]
async fn one_poison_record_in_ten_fails_alone() {
    let dir = tempfile::tempdir().unwrap();
    poison_in_ten(Arc::new(EmbeddedStore::open(dir.path()).unwrap())).await;
}

#[tokio::test]
async fn one_poison_record_in_ten_fails_alone_on_the_emulator() {
    poison_in_ten(Arc::new(
        shopmind_storage::conformance::emulator_store().await,
    ))
    .await;
}

async fn poison_in_ten(store: Arc<dyn Store>) {
    let (h, store) = handler_on(store);
    let ts = now_rfc3339();
    let mut bodies: Vec<String> = (0..10)
        .map(|i| json!({"event_id": format!("e{i}"), "user_id": "u1", "type": "view", "item_id": format!("sku-{i}"), "timestamp": ts}).to_string())
        .collect();
    bodies[6] = r#"{"event_id":"e6","user_id":"u1","type":"view","timestamp":"not a time"}"#.into();
    let (response, report, tally) = h.sqs(batch(&bodies), deadline()).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["msg-6"]);
    assert_eq!(report.succeeded, 9);
    assert_eq!((tally.applied, tally.invalid), (9, 1));
    let p: Profile =
        serde_json::from_value(store.get_profile("u1").await.unwrap().unwrap().value).unwrap();
    assert_eq!(p.counts["view"], 9);
    assert_eq!(
        store.list_blobs("events/").await.unwrap().len(),
        1,
        "the 9 valid events are archived"
    );

    // The same batch delivered again: the poison record fails again, nothing else changes.
    let before = store.get_profile("u1").await.unwrap();
    let (response, _, tally) = h.sqs(batch(&bodies), deadline()).await;
    assert_eq!(response.batch_item_failures.len(), 1);
    assert_eq!(tally.duplicates, 9);
    assert_eq!(store.get_profile("u1").await.unwrap(), before);
}

#[tokio::test]
async fn the_sample_event_batch_fails_only_its_poison_record() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _store) = handler(dir.path());
    let raw = shopmind_e2e::sample_event("sqs/behaviour-events-batch.json");
    assert!(is_sqs(&raw));
    let (response, _, _) = h
        .sqs(serde_json::from_value(raw).unwrap(), deadline())
        .await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["a7e3d2c1-5b6f-4e8d-9c0b-1a2b3c4d5e03"]);
}

#[tokio::test]
async fn direct_invokes_answer_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let (h, _store) = handler(dir.path());
    let ts = now_rfc3339();
    let ok = json!({"event_id": "d1", "anonymous_id": "a1", "type": "search", "query": "red shoes", "timestamp": ts});
    assert!(!is_sqs(&ok));
    let out = h.direct(ok.clone()).await;
    assert_eq!(out["results"][0]["outcome"], "applied");
    let out = h
        .direct(json!({"events": [ok, {"event_id": "d2", "type": "view"}]}))
        .await;
    assert_eq!(out["results"][0]["outcome"], "duplicate");
    assert!(out["results"][1]["error"]
        .as_str()
        .unwrap()
        .contains("invalid event"));
    assert_eq!(out["results"][1]["retryable"], false);
    let out = h.direct(json!({"events": "nope"})).await;
    assert_eq!(out["error"]["code"], "validation_failed");
}

/// The sample shop secret of events/README.md (never used anywhere else).
const SAMPLE_SECRET: &[u8] = b"sample-events-shop-secret-not-for-production";

fn storefront_handler(dir: &std::path::Path) -> (Handler, Arc<dyn Store>) {
    let (mut h, store) = handler(dir);
    h.shoppers = Arc::new(shopmind_runtime::ShopperAuth::with_secrets(
        SAMPLE_SECRET,
        b"a-session-secret-for-these-tests-only-32b",
    ));
    (h, store)
}

/// One record as API Gateway's `POST /v1/events` integration queues it.
fn storefront_record(
    body: &serde_json::Value,
    authorization: Option<&str>,
    sent_at: i64,
) -> SqsEvent {
    use aws_lambda_events::sqs::SqsMessageAttribute;
    let attr = |v: &str| {
        let mut a = SqsMessageAttribute::default();
        a.string_value = Some(v.to_owned());
        a.data_type = Some("String".into());
        a
    };
    let mut event = batch(&[body.to_string()]);
    let m = &mut event.records[0];
    m.message_attributes
        .insert("shopmind_origin".into(), attr("storefront-api"));
    m.message_attributes
        .insert("request_id".into(), attr("req-1"));
    if let Some(a) = authorization {
        m.message_attributes.insert("authorization".into(), attr(a));
    }
    m.attributes
        .insert("SentTimestamp".into(), (sent_at * 1000).to_string());
    event
}

async fn profile_of(store: &Arc<dyn Store>, id: &str) -> Option<Profile> {
    store
        .get_profile(id)
        .await
        .unwrap()
        .map(|v| serde_json::from_value(v.value).unwrap())
}

#[tokio::test]
async fn storefront_batches_take_the_shopper_from_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let (h, store) = storefront_handler(dir.path());
    let now = shopmind_storage::now_secs();
    let ts = now_rfc3339();
    let token = h
        .shoppers
        .issue_shopper("u-1", now, Duration::from_secs(600))
        .unwrap();
    let body = json!({"events": [
        {"event_id": "s1", "type": "view", "item_id": "sku-1", "timestamp": ts},
        {"event_id": "s2", "user_id": "u-2", "type": "purchase", "item_id": "sku-9", "timestamp": ts},
        {"event_id": "s3", "user_id": "u-1", "type": "add_to_cart", "item_id": "sku-1", "timestamp": ts},
    ]});
    let bearer = format!("Bearer {token}");
    let (response, _, tally) = h
        .sqs(storefront_record(&body, Some(&bearer), now), deadline())
        .await;
    // The refused event is the client's mistake: dropped, not retried.
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((tally.applied, tally.invalid), (2, 1));
    let p = profile_of(&store, "u-1").await.unwrap();
    assert_eq!((p.counts["view"], p.counts["add_to_cart"]), (1, 1));
    assert!(
        profile_of(&store, "u-2").await.is_none(),
        "u-1's token cannot write u-2's profile"
    );
    assert_eq!(store.list_blobs("events/").await.unwrap().len(), 1);
    // Redelivered: nothing changes.
    let (_, _, tally) = h
        .sqs(storefront_record(&body, Some(&bearer), now), deadline())
        .await;
    assert_eq!((tally.applied, tally.duplicates), (0, 2));
    assert_eq!(profile_of(&store, "u-1").await.unwrap(), p);
}

#[tokio::test]
async fn the_token_is_checked_as_of_when_the_batch_was_queued() {
    let dir = tempfile::tempdir().unwrap();
    let (h, store) = storefront_handler(dir.path());
    let now = shopmind_storage::now_secs();
    // Valid for an hour from two hours ago: expired now, but not when it was queued.
    let token = h
        .shoppers
        .issue_shopper("u-1", now - 7200, Duration::from_secs(3600))
        .unwrap();
    let body = json!({"events": [{"event_id": "q1", "type": "view", "item_id": "sku-1", "timestamp": now_rfc3339()}]});
    let bearer = format!("Bearer {token}");
    let (_, _, tally) = h
        .sqs(
            storefront_record(&body, Some(&bearer), now - 7000),
            deadline(),
        )
        .await;
    assert_eq!(tally.applied, 1);
    // Queued after it expired: refused.
    let body = json!({"events": [{"event_id": "q2", "type": "view", "item_id": "sku-2", "timestamp": now_rfc3339()}]});
    let (response, _, tally) = h
        .sqs(
            storefront_record(&body, Some(&bearer), now - 60),
            deadline(),
        )
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((tally.applied, tally.invalid), (0, 1));
    assert_eq!(profile_of(&store, "u-1").await.unwrap().counts["view"], 1);
}

#[tokio::test]
async fn forged_or_missing_tokens_write_no_shoppers_profile() {
    let dir = tempfile::tempdir().unwrap();
    let (h, store) = storefront_handler(dir.path());
    let now = shopmind_storage::now_secs();
    let ts = now_rfc3339();
    let forged = shopmind_runtime::ShopperAuth::with_secrets(
        b"not-the-shop-secret-but-32-bytes-long!!",
        b"a-session-secret-for-these-tests-only-32b",
    )
    .issue_shopper("u-1", now, Duration::from_secs(600))
    .unwrap();
    let body = json!({"events": [{"event_id": "f1", "type": "view", "item_id": "sku-1", "timestamp": ts}]});
    let (response, _, tally) = h
        .sqs(
            storefront_record(&body, Some(&format!("Bearer {forged}")), now),
            deadline(),
        )
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((tally.applied, tally.invalid), (0, 1));
    assert!(profile_of(&store, "u-1").await.is_none());
    // No token: a user_id is refused, an anonymous_id is fine.
    let body = json!({"events": [
        {"event_id": "n1", "user_id": "u-1", "type": "view", "item_id": "sku-1", "timestamp": ts},
        {"event_id": "n2", "anonymous_id": "a-7", "type": "view", "item_id": "sku-1", "timestamp": ts},
    ]});
    let (_, _, tally) = h.sqs(storefront_record(&body, None, now), deadline()).await;
    assert_eq!((tally.applied, tally.invalid), (1, 1));
    assert!(profile_of(&store, "u-1").await.is_none());
    assert!(profile_of(&store, "a-7").await.is_some());
    // A body that is not a batch is a poison record: it fails (and reaches the DLQ in time).
    let (response, _, _) = h
        .sqs(
            storefront_record(&json!({"event_id": "x"}), None, now),
            deadline(),
        )
        .await;
    assert_eq!(response.batch_item_failures.len(), 1);
}

#[tokio::test]
async fn the_storefront_sample_is_applied_by_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    // The sample is dated 2026-11-28: keep it inside the retention window.
    let cfg = UpdaterConfig {
        retention_days: 36_500,
        ..UpdaterConfig::default()
    };
    let h = Handler {
        updater: Arc::new(ProfileUpdater::new(
            store.clone(),
            store.clone(),
            store.clone(),
            cfg,
        )),
        deadline_margin: Duration::from_secs(1),
        shoppers: Arc::new(shopmind_runtime::ShopperAuth::with_secrets(
            SAMPLE_SECRET,
            b"a-session-secret-for-these-tests-only-32b",
        )),
    };
    let raw = shopmind_e2e::sample_event("sqs/storefront-events-batch.json");
    let mut event: SqsEvent = serde_json::from_value(raw).unwrap();
    // The search needs the encoder; this test is about identity, so only the first record.
    event.records.truncate(1);
    let (response, _, tally) = h.sqs(event, deadline()).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!((tally.applied, tally.invalid), (1, 1));
    assert_eq!(
        profile_of(&store, "u-1001").await.unwrap().counts["view"],
        1
    );
    assert!(profile_of(&store, "u-2002").await.is_none());
}
