//! The real `copywriter` binary under a Lambda Runtime API on loopback, with DynamoDB in the
//! AWS emulator, given the samples in `events/`: a staff `POST /v1/copy` signed with IAM is
//! served, the same request without an IAM identity is refused, and in the SQS batch of
//! copy jobs the truncated record alone comes back in `batchItemFailures`. Composer-only
//! (`SHOPMIND_COPY_GENERATOR=off`) so the test measures the plumbing, not the model.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use serde_json::Value;
use shopmind_e2e::runtime_api::invoke_all;
use shopmind_storage::{DraftKey, DraftStore};

fn sample(name: &str) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../events")
                .join(name),
        )
        .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn http_and_sqs_samples_through_the_runtime_api() {
    let deployment = shopmind_e2e::EmulatorDeployment::create("cw").await;
    let env = deployment.env(&[("SHOPMIND_COPY_GENERATOR", "off".into())]);
    let answers = invoke_all(
        env!("CARGO_BIN_EXE_copywriter"),
        "copywriter",
        &env,
        &[
            sample("apigw/copy-generate.json"),
            sample("apigw/copy-generate-unauthorised.json"),
            sample("sqs/copy-jobs-batch.json"),
            sample("sqs/copy-jobs-batch.json"),
        ],
    )
    .await
    .unwrap();
    assert!(
        answers.iter().all(|a| a.ok),
        "{:?}",
        answers.iter().map(|a| &a.body).collect::<Vec<_>>()
    );

    let created = &answers[0].body;
    assert_eq!(created["statusCode"], 201, "{created}");
    let body: Value = serde_json::from_str(created["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["outcome"], "created");
    assert_eq!(body["draft"]["source"], "fallback");
    assert_eq!(body["draft"]["validation"]["passed"], true);
    // The generating principal from the IAM context is in the audit trail.
    assert_eq!(
        body["draft"]["audit"][0]["actor"],
        "arn:aws:sts::123456789012:assumed-role/shop-editors/ana"
    );

    assert_eq!(answers[1].body["statusCode"], 403, "{}", answers[1].body);

    for batch in &answers[2..] {
        let failures = batch.body["batchItemFailures"].as_array().unwrap();
        assert_eq!(failures.len(), 1, "{}", batch.body);
        assert_eq!(
            failures[0]["itemIdentifier"],
            "c0a1e2b3-0000-4000-8000-000000000002"
        );
    }
    // Both good jobs stored once: the redelivered batch found them current.
    for channel in ["pdp_description", "sms"] {
        let d = deployment
            .store
            .get_draft(&DraftKey::new("dress-linen", channel, "en"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!((d.version, d.value.status.as_str()), (1, "pending_review"));
    }
}
