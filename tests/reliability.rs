//! The storage conformance suite's write paths through a fault-injecting proxy: throttling,
//! 500s, dropped connections and unprocessed batch items. Nothing may be lost or doubled —
//! the checks' exact counts (80 concurrent increments, 30 turns, 60 batch items, …) show it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::config::retry::{RetryPartition, TokenBucket};
use shopmind_e2e::fault_proxy::{FaultPlan, FaultProxy};
use shopmind_e2e::{aws_endpoint, unique_bucket};
use shopmind_storage::aws::{AwsNames, AwsStore};
use shopmind_storage::conformance;
use shopmind_storage::{DraftKey, DraftRecord, DraftStore, StorageError};

async fn store_through(proxy: &FaultProxy, n: usize) -> AwsStore {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(proxy.endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        // Standard retry mode as in production, with short backoffs so the test is quick, and
        // a bucket sized for a fault rate far above what AWS ever returns.
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(10)
                .with_initial_backoff(Duration::from_millis(5))
                .with_max_backoff(Duration::from_millis(100)),
        )
        .load()
        .await;
    let partition = RetryPartition::custom("fault-injection")
        .token_bucket(TokenBucket::new(1_000_000))
        .build();
    let ddb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&conf)
            .retry_partition(partition.clone())
            .build(),
    );
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .retry_partition(partition)
            .build(),
    );
    let bucket = unique_bucket("faults");
    let store = AwsStore::new(
        ddb,
        s3,
        AwsNames::new(&format!("{bucket}-{n}-"), &format!("{bucket}-{n}")),
    );
    store.ensure_resources().await.unwrap();
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conformance_write_paths_survive_injected_faults() {
    let plan = FaultPlan {
        throttle: 0.06,
        server_error: 0.04,
        drop_before: 0.03,
        drop_after_read: 0.03,
        unprocessed: 0.5,
        partial: 0.5,
        // Fewer than the store's 8 stalled attempts: the table recovers before it gives up.
        unprocessed_in_a_row: 3,
        seed: 0x5eed,
    };
    let proxy = FaultProxy::start(&aws_endpoint(), plan).await.unwrap();
    for (i, (name, check)) in conformance::ALL.iter().enumerate() {
        eprintln!("[reliability] {name}");
        check(Arc::new(store_through(&proxy, i).await)).await;
    }
    bulk_write_lands_every_item_once(&store_through(&proxy, conformance::ALL.len()).await).await;
    let s = &proxy.stats;
    let summary = s.summary();
    eprintln!("[reliability] {summary}");
    println!("fault injection: {summary}");
    // Every kind of fault really happened.
    for (kind, n) in [
        ("throttled", s.throttled.load(Ordering::Relaxed)),
        ("500", s.server_errors.load(Ordering::Relaxed)),
        ("dropped", s.dropped_before.load(Ordering::Relaxed)),
        (
            "dropped after read",
            s.dropped_after_read.load(Ordering::Relaxed),
        ),
        ("unprocessed", s.unprocessed.load(Ordering::Relaxed)),
        (
            "partly unprocessed",
            s.partly_unprocessed.load(Ordering::Relaxed),
        ),
    ] {
        assert!(n > 0, "no {kind} fault was injected: {summary}");
    }
}

fn drafts(prefix: &str, n: i64) -> Vec<(DraftKey, DraftRecord)> {
    (0..n)
        .map(|i| {
            (
                DraftKey::new(format!("{prefix}{i:04}"), "sms", "en"),
                DraftRecord {
                    status: prefix.into(),
                    updated_at: i,
                    body: serde_json::json!({"i": i}),
                },
            )
        })
        .collect()
}

/// 1,000 drafts in one call: 40 batches, each met by the faults above, all land exactly once.
/// (Its many batch writes also make every fault kind near-certain to occur in this run.)
async fn bulk_write_lands_every_item_once(store: &AwsStore) {
    let written = drafts("bulk", 1000);
    store.put_drafts(&written).await.unwrap();
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_drafts("bulk", cursor.as_deref(), 300)
            .await
            .unwrap();
        seen.extend(page.items.into_iter().map(|(k, d)| (k, d.value.body)));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    seen.sort_by(|a, b| a.0.product_id.cmp(&b.0.product_id));
    let expected: Vec<_> = written.into_iter().map(|(k, d)| (k, d.body)).collect();
    assert_eq!(seen, expected);
}

/// A table that never takes a batch: the write fails with an error that says so, after the
/// store's bounded retries, instead of hanging or reporting success.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_the_table_never_takes_fails_with_a_clear_error() {
    let plan = FaultPlan {
        throttle: 0.0,
        server_error: 0.0,
        drop_before: 0.0,
        drop_after_read: 0.0,
        unprocessed: 1.0,
        partial: 0.0,
        unprocessed_in_a_row: u32::MAX,
        seed: 7,
    };
    let proxy = FaultProxy::start(&aws_endpoint(), plan).await.unwrap();
    let store = store_through(&proxy, 0).await;
    let err = store.put_drafts(&drafts("never", 30)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::Backend {
                op: "BatchWriteItem",
                ..
            }
        ),
        "{err:?}"
    );
    // The first chunk of 25 is the one that fails; the rest are never sent.
    assert_eq!(
        err.to_string(),
        "BatchWriteItem failed: 25 items still unprocessed after 8 attempts in a row took none of them"
    );
    assert_eq!(proxy.stats.unprocessed.load(Ordering::Relaxed), 8);
}
