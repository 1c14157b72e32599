//! The model store's download path, through the `ObjectSource` seam with a directory-backed
//! source that counts fetches (the S3 source itself is exercised against the AWS emulator in
//! the workspace tests).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use shopmind_inference::{BoxFuture, InferenceError, ModelRef, ModelStore, ObjectSource, Result};

/// Serves `root/<bucket>/<key>` like an object store.
#[derive(Debug)]
struct DirSource {
    root: PathBuf,
    fetches: AtomicUsize,
}

impl ObjectSource for DirSource {
    fn fetch_to<'a>(
        &'a self,
        bucket: &'a str,
        key: &'a str,
        dest: &'a Path,
    ) -> BoxFuture<'a, Result<u64>> {
        Box::pin(async move {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            // Slow enough that concurrent callers overlap.
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let src = self.root.join(bucket).join(key);
            if !src.is_file() {
                return Err(InferenceError::ObjectMissing {
                    bucket: bucket.into(),
                    key: key.into(),
                });
            }
            tokio::fs::copy(&src, dest)
                .await
                .map_err(|source| InferenceError::Io {
                    path: dest.into(),
                    source,
                })
        })
    }
}

fn bucket_with_model() -> (tempfile::TempDir, Arc<DirSource>) {
    let root = tempfile::tempdir().unwrap();
    let prefix = root.path().join("models-bucket/minilm/1.0.0");
    std::fs::create_dir_all(&prefix).unwrap();
    for entry in std::fs::read_dir(common::encoder_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), prefix.join(entry.file_name())).unwrap();
    }
    let source = Arc::new(DirSource {
        root: root.path().into(),
        fetches: AtomicUsize::new(0),
    });
    (root, source)
}

fn model_ref() -> ModelRef {
    "s3://models-bucket/minilm/1.0.0".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_download_once_and_warm_starts_reuse_the_cache() {
    let (_bucket, source) = bucket_with_model();
    let cache = tempfile::tempdir().unwrap();
    let store = Arc::new(ModelStore::new(source.clone(), cache.path()));

    let calls: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.resolve(&model_ref()).await })
        })
        .collect();
    let mut dirs = Vec::new();
    for c in calls {
        dirs.push(c.await.unwrap().unwrap().dir);
    }
    assert!(dirs.windows(2).all(|w| w[0] == w[1]));
    // manifest + model.onnx + tokenizer.json, once for all eight callers.
    assert_eq!(source.fetches.load(Ordering::SeqCst), 3);
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&dirs[0])
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".part"))
        .collect();
    assert!(leftovers.is_empty());

    // A new process (a fresh store) over the same /tmp cache fetches only the manifest.
    let again = ModelStore::new(source.clone(), cache.path());
    let model = again.resolve(&model_ref()).await.unwrap();
    assert_eq!(source.fetches.load(Ordering::SeqCst), 4);

    // And the cached model really loads and runs.
    let enc =
        shopmind_inference::Encoder::load(common::runtime(), &model, &Default::default()).unwrap();
    assert_eq!(enc.embed(&["hello"]).unwrap()[0].vector.len(), 384);
}

#[tokio::test]
async fn a_corrupted_download_is_rejected_and_not_kept() {
    let (bucket, source) = bucket_with_model();
    let onnx = bucket.path().join("models-bucket/minilm/1.0.0/model.onnx");
    std::fs::write(&onnx, b"tampered in transit").unwrap();
    let cache = tempfile::tempdir().unwrap();
    let store = ModelStore::new(source.clone(), cache.path());
    let err = store.resolve(&model_ref()).await.unwrap_err();
    assert!(
        matches!(err, InferenceError::ChecksumMismatch { ref file, .. } if file == "model.onnx"),
        "{err}"
    );
    let dir = cache.path().join("models-bucket/minilm/1.0.0");
    assert!(
        !dir.join("model.onnx").exists(),
        "a bad file must not be left in place"
    );
    assert!(
        !dir.join("manifest.json").exists(),
        "an incomplete model has no manifest"
    );
}

#[tokio::test]
async fn a_missing_object_is_its_own_error_and_a_later_call_retries() {
    let (bucket, source) = bucket_with_model();
    let tok = bucket
        .path()
        .join("models-bucket/minilm/1.0.0/tokenizer.json");
    let saved = std::fs::read(&tok).unwrap();
    std::fs::remove_file(&tok).unwrap();
    let cache = tempfile::tempdir().unwrap();
    let store = ModelStore::new(source.clone(), cache.path());
    let err = store.resolve(&model_ref()).await.unwrap_err();
    assert!(
        matches!(err, InferenceError::ObjectMissing { ref key, .. } if key.ends_with("tokenizer.json")),
        "{err}"
    );

    std::fs::write(&tok, saved).unwrap();
    store
        .resolve(&model_ref())
        .await
        .expect("the failure was not cached");
}

#[tokio::test]
async fn s3_refs_need_a_configured_source() {
    let err = ModelStore::local_only()
        .resolve(&model_ref())
        .await
        .unwrap_err();
    assert!(matches!(err, InferenceError::BadModelRef(_)), "{err}");
}
