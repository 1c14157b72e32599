//! The model store's S3 path against the AWS emulator: a model uploaded to a bucket is
//! downloaded once, verified, cached and loaded.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::sync::Arc;

use shopmind_e2e::{models_dir, s3_client, unique_bucket};
use shopmind_inference::{
    Encoder, InferenceError, ModelStore, OrtRuntime, S3Source, DEFAULT_ENCODER_DIR,
    ORT_LIBRARY_FILE,
};

async fn bucket_with_model(tamper: Option<&str>) -> (aws_sdk_s3::Client, String) {
    let s3 = s3_client().await;
    let bucket = unique_bucket("models");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let dir = models_dir().join(DEFAULT_ENCODER_DIR);
    for name in ["manifest.json", "model.onnx", "tokenizer.json", "LICENSE"] {
        let mut body = std::fs::read(dir.join(name)).unwrap_or_else(|e| {
            panic!(
                "{}: {e} (run infra/scripts/setup.sh)",
                dir.join(name).display()
            )
        });
        if tamper == Some(name) {
            body.truncate(body.len() / 2);
        }
        s3.put_object()
            .bucket(&bucket)
            .key(format!("minilm/1.0.0/{name}"))
            .body(body.into())
            .send()
            .await
            .unwrap();
    }
    (s3, bucket)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn downloads_verifies_caches_and_loads_from_s3() {
    let (s3, bucket) = bucket_with_model(None).await;
    let cache = tempfile::tempdir().unwrap();
    let store = Arc::new(ModelStore::new(Arc::new(S3Source::new(s3)), cache.path()));
    let model_ref = format!("s3://{bucket}/minilm/1.0.0").parse().unwrap();

    let (a, b) = tokio::join!(store.resolve(&model_ref), store.resolve(&model_ref));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.dir, b.dir);
    assert!(a.dir.starts_with(cache.path()));
    assert_eq!(a.manifest.name, DEFAULT_ENCODER_DIR);

    let runtime =
        OrtRuntime::get_or_init(&models_dir().join("onnxruntime").join(ORT_LIBRARY_FILE)).unwrap();
    let encoder = Encoder::load(runtime, &a, &Default::default()).unwrap();
    assert_eq!(encoder.embed(&["wool socks"]).unwrap()[0].vector.len(), 512);
}

#[tokio::test]
async fn a_truncated_object_is_a_checksum_error() {
    // Downloaded whole, and as byte ranges (what large files get).
    for ranged in [false, true] {
        let (s3, bucket) = bucket_with_model(Some("model.onnx")).await;
        let cache = tempfile::tempdir().unwrap();
        let source = if ranged {
            S3Source::new(s3).with_ranges(1 << 20, 7)
        } else {
            S3Source::new(s3)
        };
        let store = ModelStore::new(Arc::new(source), cache.path());
        let err = store
            .resolve(&format!("s3://{bucket}/minilm/1.0.0").parse().unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(err, InferenceError::ChecksumMismatch { .. }),
            "ranged {ranged}: {err}"
        );
    }
}

#[tokio::test]
async fn a_missing_model_is_object_missing() {
    let (s3, bucket) = bucket_with_model(None).await;
    let cache = tempfile::tempdir().unwrap();
    let store = ModelStore::new(Arc::new(S3Source::new(s3)), cache.path());
    let err = store
        .resolve(&format!("s3://{bucket}/minilm/9.9.9").parse().unwrap())
        .await
        .unwrap_err();
    assert!(
        matches!(err, InferenceError::ObjectMissing { ref key, .. } if key == "minilm/9.9.9/manifest.json"),
        "{err}"
    );
}

/// Large files (a generator's weights) download as concurrent byte ranges written in place;
/// the result must be byte-identical, so the manifest's sha256 still holds. Ranges of a
/// 22 MB model file split 7 ways (uneven last part).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_files_download_as_byte_ranges_and_still_verify() {
    let (s3, bucket) = bucket_with_model(None).await;
    let cache = tempfile::tempdir().unwrap();
    let store = ModelStore::new(
        Arc::new(S3Source::new(s3).with_ranges(1 << 20, 7)),
        cache.path(),
    );
    let model_ref = format!("s3://{bucket}/minilm/1.0.0").parse().unwrap();
    let model = store.resolve(&model_ref).await.unwrap();
    let original =
        std::fs::read(models_dir().join(DEFAULT_ENCODER_DIR).join("model.onnx")).unwrap();
    assert!(
        original.len() > 7 << 20,
        "the test needs a multi-range file"
    );
    assert_eq!(
        std::fs::read(model.dir.join("model.onnx")).unwrap(),
        original
    );
}
