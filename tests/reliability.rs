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
        seed: 0x5eed,
    };
    let proxy = FaultProxy::start(&aws_endpoint(), plan).await.unwrap();
    for (i, (name, check)) in conformance::ALL.iter().enumerate() {
        eprintln!("[reliability] {name}");
        check(Arc::new(store_through(&proxy, i).await)).await;
    }
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
    ] {
        assert!(n > 0, "no {kind} fault was injected: {summary}");
    }
}
