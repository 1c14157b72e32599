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
    let raw: serde_json::Value = serde_json::from_slice(
        &std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../events/sqs/behaviour-events-batch.json"
        ))
        .unwrap(),
    )
    .unwrap();
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
