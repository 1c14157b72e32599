//! The real `profile-updater` binary under a Lambda Runtime API on loopback, given the SQS
//! sample event (`events/sqs/behaviour-events-batch.json`) twice, with DynamoDB and S3 in
//! the AWS emulator: the poison record alone comes back in `batchItemFailures` both times,
//! and the redelivery changes no profile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::Value;
use shopmind_e2e::runtime_api::cold_start;
use shopmind_storage::ProfileStore;

#[tokio::test]
async fn the_sample_batch_through_the_runtime_api_reports_only_the_poison_record() {
    let event: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../events/sqs/behaviour-events-batch.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let deployment = shopmind_e2e::EmulatorDeployment::create("pu").await;
    let env = deployment.env(&[
        (
            "SHOPMIND_MODELS_DIR",
            shopmind_e2e::models_dir().to_string_lossy().into_owned(),
        ),
        // The sample events are dated 2026-11-28; keep them inside the window for good.
        ("SHOPMIND_EVENT_RETENTION_DAYS", "36500".into()),
    ]);
    let store = &deployment.store;

    // `cold_start` delivers the event, then the same event again (a redelivery).
    let run = cold_start(
        env!("CARGO_BIN_EXE_profile-updater"),
        "profile-updater",
        &env,
        &event,
    )
    .await
    .unwrap();
    let failures = run.first_body["batchItemFailures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{}", run.first_body);
    assert_eq!(
        failures[0]["itemIdentifier"],
        "a7e3d2c1-5b6f-4e8d-9c0b-1a2b3c4d5e03"
    );
    let profile = store.get_profile("u-1001").await.unwrap().unwrap();
    assert_eq!(profile.value["counts"]["purchase"], 1, "{}", profile.value);
    assert_eq!(profile.value["counts"]["view"], 1, "{}", profile.value);
}
