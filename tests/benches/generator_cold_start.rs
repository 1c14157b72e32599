//! Cold start of the default generator as a Lambda sees it: the model directory in (emulated)
//! S3, an empty /tmp cache, then download (parallel byte ranges for the large weights file)
//! and sha256 check, ONNX Runtime session creation, and the first generated token of a chat
//! prompt. Baseline in the same run: the same steps from the warm, verified cache (a second
//! process on the same instance, or a re-created session).
//!
//!     infra/scripts/with-emulator.sh cargo bench -p shopmind-e2e --bench generator_cold_start
//!
//! `SHOPMIND_BENCH_MODEL` names another model directory under models/. Without `--bench` (as
//! `cargo test --all-targets` runs it) the small test model, which checks the harness.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use shopmind_inference::{
    ChatMessage, GenerateOptions, Generator, Manifest, ModelRef, ModelStore, OrtRuntime, S3Source,
    ORT_LIBRARY_FILE,
};

fn models() -> PathBuf {
    shopmind_e2e::models_dir()
}

/// Seconds for: resolve (download + verify, or verify the cache), load, first token.
async fn start(store: &ModelStore, model: &ModelRef, runtime: &'static OrtRuntime) -> [f64; 3] {
    let t0 = Instant::now();
    let verified = store.resolve(model).await.unwrap();
    let resolved = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let g = tokio::task::spawn_blocking(move || Generator::load(runtime, &verified, 2).unwrap())
        .await
        .unwrap();
    let loaded = t1.elapsed().as_secs_f64();
    let t2 = Instant::now();
    let prompt = g
        .render_chat(&[ChatMessage {
            role: "user".into(),
            content: "Write one sentence about a linen summer dress.".into(),
        }])
        .unwrap();
    let opts = GenerateOptions {
        max_new_tokens: 1,
        ..GenerateOptions::default()
    };
    tokio::task::spawn_blocking(move || g.generate(&[&prompt], &opts, &mut |_, _| {}).unwrap())
        .await
        .unwrap();
    [resolved, loaded, t2.elapsed().as_secs_f64()]
}

#[tokio::main]
async fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let name = std::env::var("SHOPMIND_BENCH_MODEL").unwrap_or_else(|_| {
        if full {
            shopmind_inference::DEFAULT_GENERATOR_DIR.into()
        } else {
            "smollm2-135m-instruct-q4".into()
        }
    });
    let dir = models().join(&name);
    let manifest = Manifest::read(&dir).unwrap();
    let client = shopmind_e2e::s3_client().await;
    let bucket = format!("coldstart-{}", std::process::id());
    client.create_bucket().bucket(&bucket).send().await.unwrap();
    let prefix = format!("models/{name}/1.0.0");
    let mut bytes = 0u64;
    for f in manifest
        .files
        .iter()
        .map(|f| f.path.as_str())
        .chain(["manifest.json"])
    {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(dir.join(f))
            .await
            .unwrap();
        bytes += std::fs::metadata(dir.join(f)).unwrap().len();
        client
            .put_object()
            .bucket(&bucket)
            .key(format!("{prefix}/{f}"))
            .body(body)
            .send()
            .await
            .unwrap();
    }
    let runtime =
        OrtRuntime::get_or_init(&models().join("onnxruntime").join(ORT_LIBRARY_FILE)).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let model = ModelRef::S3 {
        bucket: bucket.clone(),
        prefix,
    };
    let source = Arc::new(S3Source::new(client));
    let cold = start(
        &ModelStore::new(source.clone(), cache.path()),
        &model,
        runtime,
    )
    .await;
    // A new store over the same cache: what a second process on a warm instance does.
    let warm = start(&ModelStore::new(source, cache.path()), &model, runtime).await;
    println!(
        "generator cold start: {name}, {:.0} MiB in {} files, 2 threads",
        bytes as f64 / 1048576.0,
        manifest.files.len() + 1
    );
    println!("| start | download + verify s | session s | first token s | total s |");
    println!("| --- | --- | --- | --- | --- |");
    for (label, t) in [
        ("cold (empty /tmp, from S3)", cold),
        ("warm cache (verify only)", warm),
    ] {
        println!(
            "| {label} | {:.2} | {:.2} | {:.2} | {:.2} |",
            t[0],
            t[1],
            t[2],
            t.iter().sum::<f64>()
        );
    }
    println!(
        "download rate {:.0} MiB/s",
        bytes as f64 / 1048576.0 / (cold[0] - warm[0]).max(1e-9)
    );
}
