//! Helpers for the end-to-end tests: where the fetched models are and how to reach the AWS
//! emulator that `infra/scripts/test.sh` starts.

pub mod fault_proxy;
pub mod runtime_api;

use std::path::{Path, PathBuf};

pub fn models_dir() -> PathBuf {
    std::env::var_os("SHOPMIND_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../models"))
}

/// The emulator's endpoint. The AWS half of the suite never skips itself: without the
/// emulator it fails and says how to start it.
pub fn aws_endpoint() -> String {
    match std::env::var("SHOPMIND_TEST_AWS_ENDPOINT") {
        Ok(e) if !e.is_empty() => e,
        _ => panic!(
            "SHOPMIND_TEST_AWS_ENDPOINT is not set: run the suite with infra/scripts/test.sh, \
             which starts the AWS emulator (moto) on 127.0.0.1"
        ),
    }
}

/// The SDK configuration every emulator test uses: static test credentials, us-east-1.
pub async fn aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(aws_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "static",
        ))
        .load()
        .await
}

pub async fn s3_client() -> aws_sdk_s3::Client {
    let conf = aws_config().await;
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&conf)
            .force_path_style(true)
            .build(),
    )
}

/// A bucket name no other test uses.
pub fn unique_bucket(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
