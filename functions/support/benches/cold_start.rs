//! Cold start of the real `support` binary: process start → first answer, with the encoder
//! and the sentiment head downloaded from the AWS emulator's S3 into an empty model cache
//! (sha256-checked), the KB index and intent model read from it, and conversations in its
//! DynamoDB; driven through a Lambda Runtime API on loopback with an API Gateway event.
//! Baseline, in the same run: the same process answering the same message again (warm).
//!
//!     infra/scripts/with-emulator.sh cargo bench -p support --bench cold_start
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) one start checks the harness.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Value};
use shopmind_e2e::runtime_api::cold_start;
use shopmind_inference::LazyEncoder;
use shopmind_storage::aws::AwsStore;
use shopmind_storage::{BlobStore, ConversationMeta, ConversationStore};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn models() -> PathBuf {
    std::env::var_os("SHOPMIND_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("models"))
}

/// Uploads a model directory: every file its manifest lists, and the manifest.
async fn upload_dir(store: &AwsStore, dir: &Path, prefix: &str) {
    let manifest = shopmind_inference::Manifest::read(dir).unwrap();
    let names = manifest.files.iter().map(|f| f.path.as_str());
    for f in names.chain(["manifest.json"]) {
        let body = std::fs::read(dir.join(f)).unwrap();
        store
            .put_blob(&format!("{prefix}/{f}"), Bytes::from(body))
            .await
            .unwrap();
    }
}

fn message_event(conversation: &str, text: &str) -> Value {
    let path = format!("/v1/support/conversations/{conversation}/messages");
    json!({
        "version": "2.0",
        "routeKey": "POST /v1/support/conversations/{id}/messages",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.example.com"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "abc123", "domainName": "api.example.com",
            "domainPrefix": "api",
            "http": {"method": "POST", "path": path, "protocol": "HTTP/1.1",
                     "sourceIp": "203.0.113.9", "userAgent": "bench"},
            "requestId": "r1", "routeKey": "POST /v1/support/conversations/{id}/messages",
            "stage": "$default", "time": "28/Nov/2026:06:00:00 +0000", "timeEpoch": 1795845600000u64
        },
        "body": json!({ "text": text }).to_string(),
        "isBase64Encoded": false
    })
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

async fn run(full: bool) {
    let deployment = shopmind_e2e::EmulatorDeployment::create("coldsup").await;
    let (store, bucket) = (&deployment.store, &deployment.bucket);
    let models = models();
    upload_dir(
        store,
        &models.join(shopmind_inference::DEFAULT_ENCODER_DIR),
        "models/encoder",
    )
    .await;
    upload_dir(
        store,
        &models.join("sentiment-support-head"),
        "models/sentiment",
    )
    .await;

    // The KB and intents, indexed with the local encoder into the emulator.
    let encoder = LazyEncoder::new(shopmind_e2e::local_inference())
        .get()
        .await
        .unwrap();
    let kb = shopmind_e2e::seed_sample_kb(store, encoder, None).await;

    let runs = if full { 3 } else { 1 };
    let (mut init, mut first, mut warm) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let id = format!("c_{:032x}", 0xC01D_0000_u64 + run as u64);
        let store: Arc<dyn ConversationStore> = Arc::new(store.clone());
        store
            .create_conversation(&ConversationMeta {
                id: id.clone(),
                owner: format!("anon:{id}"),
                created_at: 1_795_845_600,
                expires_at: 4_102_444_800,
                handoff: None,
            })
            .await
            .unwrap();
        let cache = tempfile::tempdir().unwrap();
        let ort = models.join("onnxruntime/libonnxruntime.so.1.31.1");
        let env = deployment.env(&[
            (
                "SHOPMIND_ENCODER_MODEL",
                format!("s3://{bucket}/models/encoder"),
            ),
            (
                "SHOPMIND_SENTIMENT_MODEL",
                format!("s3://{bucket}/models/sentiment"),
            ),
            (
                "SHOPMIND_MODEL_CACHE_DIR",
                cache.path().to_string_lossy().into_owned(),
            ),
            ("ORT_DYLIB_PATH", ort.to_string_lossy().into_owned()),
            // The extractive path's cold start; the generator would load beside it.
            ("SHOPMIND_SUPPORT_GENERATE", "off".into()),
            ("SHOPMIND_SUPPORT_TRANSLATE", "off".into()),
        ]);
        let event = message_event(&id, "How many days do I have to return a dress?");
        let r = cold_start(env!("CARGO_BIN_EXE_support"), "support", &env, &event)
            .await
            .unwrap();
        assert_eq!(r.first_body["statusCode"], 200, "{}", r.first_body);
        let reply: Value = serde_json::from_str(r.first_body["body"].as_str().unwrap()).unwrap();
        assert_eq!(reply["citations"][0]["article_id"], "returns", "{reply}");
        init.push(ms(r.init));
        first.push(ms(r.first_answer));
        warm.push(ms(r.warm_answer));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (i, f, w) = (median(&mut init), median(&mut first), median(&mut warm));
    let encoder_dir = models.join(shopmind_inference::DEFAULT_ENCODER_DIR);
    let encoder_mb = shopmind_inference::Manifest::read(&encoder_dir)
        .map(|m| m.files.iter().filter_map(|f| f.bytes).sum::<u64>() as f64 / 1e6)
        .unwrap_or(0.0);
    println!(
        "support cold start ({} KB chunks; encoder {} {encoder_mb:.0} MB and sentiment head from emulator S3, empty cache)",
        kb.chunks,
        shopmind_inference::DEFAULT_ENCODER_DIR
    );
    println!("| init (to first poll) | first answer | warm answer (baseline) | first / warm |");
    println!("| --- | --- | --- | --- |");
    println!("| {i:.1} ms | {f:.1} ms | {w:.1} ms | {:.0}× |", f / w);
    if !full {
        println!("(smoke run; `cargo bench` for the median of 3 starts)");
    }
}

fn main() {
    shopmind_e2e::block_on(run(std::env::args().any(|a| a == "--bench")));
}
