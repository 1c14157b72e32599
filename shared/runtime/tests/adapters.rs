//! The adapters called with the sample events in `events/`, and the idempotency utility on
//! the embedded store.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::s3::S3Event;
use aws_lambda_events::sqs::SqsEvent;
use serde_json::json;
use shopmind_runtime::events::{created_objects, ScheduledEvent};
use shopmind_runtime::idempotency::{Idempotency, IdempotencyError};
use shopmind_runtime::sqs::process_batch;
use shopmind_storage::embedded::EmbeddedStore;

fn sample<T: serde::de::DeserializeOwned>(path: &str) -> T {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../events")
        .join(path);
    serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap()
}

fn far_deadline() -> SystemTime {
    SystemTime::now() + Duration::from_secs(60)
}

async fn parse_event(msg: aws_lambda_events::sqs::SqsMessage) -> Result<(), String> {
    let body = msg.body.unwrap_or_default();
    serde_json::from_str::<serde_json::Value>(&body)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn a_poison_record_fails_alone() {
    let event: SqsEvent = sample("sqs/behaviour-events-batch.json");
    let (response, report) =
        process_batch(event, far_deadline(), Duration::from_secs(2), parse_event).await;
    let failed: Vec<_> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.as_str())
        .collect();
    assert_eq!(failed, ["a7e3d2c1-5b6f-4e8d-9c0b-1a2b3c4d5e03"]);
    assert_eq!(report.succeeded, 2);
    assert_eq!(report.deferred, 0);
    // The wire shape Lambda expects.
    let wire = serde_json::to_value(&response).unwrap();
    assert_eq!(
        wire["batchItemFailures"][0]["itemIdentifier"],
        "a7e3d2c1-5b6f-4e8d-9c0b-1a2b3c4d5e03"
    );
}

#[tokio::test]
async fn records_left_near_the_deadline_go_back_to_sqs() {
    let event: SqsEvent = sample("sqs/behaviour-events-batch.json");
    let calls = AtomicUsize::new(0);
    // Wide margins so a busy machine's pauses cannot move the outcome: the first record starts
    // unless more than 1 s passes before it, and after it at most 0.8 s of the 2 s is left.
    let deadline = SystemTime::now() + Duration::from_secs(2);
    let (response, report) = process_batch(event, deadline, Duration::from_secs(1), |_msg| {
        calls.fetch_add(1, Ordering::SeqCst);
        async {
            tokio::time::sleep(Duration::from_millis(1200)).await;
            Ok::<_, String>(())
        }
    })
    .await;
    // The first record runs; after it less than the margin is left, so the other two are
    // returned unprocessed rather than cut off mid-way.
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(report.deferred, 2);
    assert_eq!(response.batch_item_failures.len(), 2);
    assert_eq!(
        response.batch_item_failures[0].item_identifier,
        "4c1b7e55-2d8f-4d7e-8f5e-7d0f3c9a6b02"
    );
}

#[test]
fn scheduled_event_names_its_rule() {
    let e: ScheduledEvent = sample("eventbridge/copy-schedule.json");
    assert_eq!(e.detail_type, "Scheduled Event");
    assert_eq!(e.rule_name(), Some("shopmind-copy-nightly"));
}

#[test]
fn s3_notification_yields_decoded_created_keys_only() {
    let e: S3Event = sample("s3/catalog-object-created.json");
    let objs = created_objects(&e);
    assert_eq!(objs.len(), 1);
    assert_eq!(objs[0].bucket, "shopmind-data");
    assert_eq!(objs[0].key, "catalog/winter sale(2026).jsonl");
    assert_eq!(objs[0].size, Some(182_734));
}

fn idem() -> (tempfile::TempDir, Idempotency) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path()).unwrap();
    (dir, Idempotency::new(Arc::new(store)))
}

#[tokio::test]
async fn a_repeat_returns_the_stored_result_without_running_again() {
    let (_d, idem) = idem();
    let runs = AtomicUsize::new(0);
    let event = json!({"event_id": "evt-9", "type": "view"});
    let key = Idempotency::key_from::<String>(&event, "/event_id").unwrap();
    for attempt in 0..3 {
        let out = idem
            .run(&key, &event, || async {
                runs.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(json!({"applied": 1}))
            })
            .await
            .unwrap();
        assert_eq!(out.value, json!({"applied": 1}));
        assert_eq!(out.replayed, attempt > 0);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(matches!(
        Idempotency::key_from::<String>(&json!({"type": "view"}), "/event_id"),
        Err(IdempotencyError::MissingKey(_))
    ));
}

#[tokio::test]
async fn the_same_key_with_another_payload_is_refused() {
    let (_d, idem) = idem();
    idem.run("k", &json!({"a": 1}), || async { Ok::<_, String>(1) })
        .await
        .unwrap();
    let err = idem
        .run("k", &json!({"a": 2}), || async { Ok::<_, String>(2) })
        .await
        .unwrap_err();
    assert!(matches!(err, IdempotencyError::PayloadMismatch(_)), "{err}");
}

#[tokio::test]
async fn a_failed_attempt_can_be_retried() {
    let (_d, idem) = idem();
    let err = idem
        .run("k", &json!(1), || async {
            Err::<u32, _>("boom".to_owned())
        })
        .await
        .unwrap_err();
    assert!(matches!(err, IdempotencyError::Handler(ref m) if m == "boom"));
    let ok = idem
        .run("k", &json!(1), || async { Ok::<_, String>(7u32) })
        .await
        .unwrap();
    assert_eq!((ok.value, ok.replayed), (7, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_attempts_run_the_work_once() {
    let (_d, idem) = idem();
    let idem = Arc::new(idem);
    let runs = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (idem, runs) = (idem.clone(), runs.clone());
            tokio::spawn(async move {
                idem.run("shared", &json!("p"), || async {
                    runs.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok::<_, String>(42)
                })
                .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(o) => {
                assert_eq!(o.value, 42);
                ok += 1;
            }
            Err(IdempotencyError::InProgress) => {}
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(ok >= 1);
}

struct Seen(usize);

impl shopmind_runtime::sqs::Tally for Seen {
    fn record(&self, metrics: &mut shopmind_runtime::Metrics) {
        metrics.count("seen", self.0 as f64);
    }
}

fn invocation(payload: serde_json::Value) -> lambda_runtime::LambdaEvent<serde_json::Value> {
    let mut ctx = lambda_runtime::Context::default();
    ctx.deadline = far_deadline()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    lambda_runtime::LambdaEvent::new(payload, ctx)
}

#[tokio::test]
async fn batches_and_direct_invokes_go_to_their_handlers_and_batches_leave_metrics() {
    let batch_handler = |event: SqsEvent, deadline: SystemTime| async move {
        let n = event.records.len();
        let (response, report) =
            process_batch(event, deadline, Duration::from_secs(2), parse_event).await;
        (response, report, Seen(n))
    };
    let direct_handler =
        |payload: serde_json::Value, _| async move { json!({ "direct": payload }) };

    let raw: serde_json::Value = sample("sqs/behaviour-events-batch.json");
    let mut metrics = shopmind_runtime::Metrics::new("Test", "fn");
    let out = shopmind_runtime::sqs::batch_or_direct(
        invocation(raw),
        &mut metrics,
        batch_handler,
        direct_handler,
    )
    .await
    .unwrap();
    assert_eq!(
        out["batchItemFailures"][0]["itemIdentifier"],
        "a7e3d2c1-5b6f-4e8d-9c0b-1a2b3c4d5e03"
    );
    let emf = metrics.to_emf(false, 0);
    assert_eq!(emf["records_succeeded"], 2.0, "{emf}");
    assert_eq!(emf["records_failed"], 1.0, "{emf}");
    assert_eq!(emf["seen"], 3.0, "{emf}");

    let mut metrics = shopmind_runtime::Metrics::new("Test", "fn");
    let out = shopmind_runtime::sqs::batch_or_direct(
        invocation(json!({"job": "x"})),
        &mut metrics,
        batch_handler,
        direct_handler,
    )
    .await
    .unwrap();
    assert_eq!(out, json!({"direct": {"job": "x"}}));
    assert!(metrics.to_emf(false, 0).get("records_succeeded").is_none());

    // An SQS-shaped payload that is not a batch is an error, not a direct invoke.
    let broken = json!({"Records": [{"eventSource": "aws:sqs", "messageId": 7}]});
    let mut metrics = shopmind_runtime::Metrics::new("Test", "fn");
    let out = shopmind_runtime::sqs::batch_or_direct(
        invocation(broken),
        &mut metrics,
        batch_handler,
        direct_handler,
    )
    .await;
    assert!(out.is_err());
}
