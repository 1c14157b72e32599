//! The batch end to end in the AWS emulator: the scheduler reads the catalog from S3, queues
//! only the missing and stale jobs to SQS (an approved draft and a current one are left
//! alone), the copywriter worker drains the queue into DynamoDB drafts, and a second pass
//! finds nothing to do. A queue that does not exist fails the run with every job named.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use copy_scheduler::{Scheduler, SchedulerConfig, SchedulerError, SqsQueue};
use shopmind_copy::jobs::BatchSpec;
use shopmind_copy::{CopyService, CopyWriter, Decision, NoModel, Review};
use shopmind_storage::BlobStore;

const CATALOG: &str = include_str!("../../../infra/samples/catalog.jsonl");

#[tokio::test]
async fn only_missing_and_stale_jobs_are_queued_and_the_worker_drains_them() {
    let deployment = shopmind_e2e::EmulatorDeployment::create("cs").await;
    let store = Arc::new(deployment.store.clone());
    let (sqs, url) = shopmind_e2e::create_queue(&format!("copy-jobs-{}", std::process::id())).await;
    // Five products; an older catalog object must be ignored in favour of the newest.
    let five: String = CATALOG.lines().take(5).map(|l| format!("{l}\n")).collect();
    store
        .put_blob("catalog/2026-11-01.jsonl", "not a catalog".into())
        .await
        .unwrap();
    store
        .put_blob("catalog/2026-11-28.jsonl", bytes::Bytes::from(five.clone()))
        .await
        .unwrap();

    let service = CopyService::new(
        store.clone(),
        Arc::new(CopyWriter::default()),
        Arc::new(NoModel),
    );
    let spec = BatchSpec::parse("pdp_description", "en").unwrap();
    let (products, _) = shopmind_copy::parse_catalog(&five);
    let jobs = spec.jobs(&products);
    // Product 0 approved by a human, product 1 already current.
    let first = service
        .generate(jobs[0].clone(), "test", None, true)
        .await
        .unwrap();
    service
        .review(
            &shopmind_copy::key_of(&jobs[0]),
            &Review {
                decision: Decision::Approve,
                text: None,
                reviewer: Some("ana".into()),
                variant: None,
                note: None,
            },
            "staff:ana",
        )
        .await
        .unwrap();
    service
        .generate(jobs[1].clone(), "test", None, true)
        .await
        .unwrap();
    // Product 0's data changes: still kept, an approved draft is never redone.
    let changed = five.replacen("\"sand\"", "\"stone\"", 1);
    assert_ne!(changed, five);
    store
        .put_blob("catalog/2026-11-28.jsonl", bytes::Bytes::from(changed))
        .await
        .unwrap();
    assert_eq!(first.draft.request.product.id, products[0].id);

    let scheduler = Scheduler {
        service: service.clone(),
        blobs: store.clone(),
        queue: Arc::new(SqsQueue {
            client: sqs.clone(),
            url: url.clone(),
        }),
        config: SchedulerConfig::from_lookup(|k| {
            (k == "SHOPMIND_COPY_QUEUE_URL").then(|| url.clone())
        })
        .unwrap(),
        retry_pause: Duration::from_millis(10),
    };
    let summary = scheduler.run().await.unwrap();
    assert_eq!(summary.catalog, "catalog/2026-11-28.jsonl");
    assert_eq!(summary.products, 5);
    assert_eq!(
        (summary.due.missing, summary.due.current, summary.due.kept),
        (3, 1, 1),
        "{summary:?}"
    );
    assert_eq!(summary.queued.sent, 3);

    let batch = shopmind_e2e::drain_queue(&sqs, &url).await;
    assert_eq!(batch.records.len(), 3);
    let worker = copywriter::Worker {
        service: service.clone(),
        margin: Duration::from_secs(1),
    };
    let (response, _, tally) = worker
        .sqs(batch, SystemTime::now() + Duration::from_secs(300))
        .await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(tally.created, 3);

    let again = scheduler.run().await.unwrap();
    assert_eq!(
        (again.queued.sent, again.due.current, again.due.kept),
        (0, 4, 1)
    );
    let approved = service
        .get(&shopmind_copy::key_of(&jobs[0]))
        .await
        .unwrap()
        .unwrap()
        .0;
    assert_eq!(approved.text, first.draft.text);
}

#[tokio::test]
async fn a_missing_queue_fails_the_run_and_names_every_job() {
    let deployment = shopmind_e2e::EmulatorDeployment::create("cq").await;
    let store = Arc::new(deployment.store.clone());
    let three: String = CATALOG.lines().take(3).map(|l| format!("{l}\n")).collect();
    store
        .put_blob("catalog/items.jsonl", bytes::Bytes::from(three))
        .await
        .unwrap();
    let sqs = aws_sdk_sqs::Client::new(&shopmind_e2e::aws_config().await);
    let url = format!(
        "{}/123456789012/no-such-queue",
        shopmind_e2e::aws_endpoint()
    );
    let scheduler = Scheduler {
        service: CopyService::new(
            store.clone(),
            Arc::new(CopyWriter::default()),
            Arc::new(NoModel),
        ),
        blobs: store,
        queue: Arc::new(SqsQueue {
            client: sqs,
            url: url.clone(),
        }),
        config: SchedulerConfig::from_lookup(|k| {
            (k == "SHOPMIND_COPY_QUEUE_URL").then(|| url.clone())
        })
        .unwrap(),
        retry_pause: Duration::from_millis(5),
    };
    match scheduler.run().await {
        Err(SchedulerError::Unsent(report)) => {
            assert_eq!((report.sent, report.failed.len()), (0, 3));
            assert!(report.retried >= 3);
        }
        other => panic!("expected Unsent, got {other:?}"),
    }
    assert!(SchedulerConfig::from_lookup(|_| None).is_err());
}
