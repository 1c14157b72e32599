//! Its own test binary: this process never loads ONNX Runtime, so the failure path is real.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers may panic

use std::path::Path;

use shopmind_inference::{InferenceConfig, InferenceError, LazyEncoder, OrtRuntime};

#[test]
fn missing_runtime_library_is_a_clear_error_not_a_panic() {
    let err = OrtRuntime::get_or_init(Path::new("/nonexistent/libonnxruntime.so")).unwrap_err();
    match &err {
        InferenceError::RuntimeMissing { path } => assert!(path.ends_with("libonnxruntime.so")),
        other => panic!("expected RuntimeMissing, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("ORT_DYLIB_PATH") && msg.contains("setup.sh"),
        "{msg}"
    );
}

#[test]
fn a_file_that_is_not_a_shared_library_is_a_load_error() {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(tmp.path(), b"not an ELF file").unwrap();
    let err = OrtRuntime::get_or_init(tmp.path()).unwrap_err();
    assert!(matches!(err, InferenceError::RuntimeLoad { .. }), "{err}");
}

#[tokio::test]
async fn lazy_encoder_reports_the_missing_library_and_can_retry() {
    let cfg = InferenceConfig::from_lookup(|k| {
        (k == "ORT_DYLIB_PATH").then(|| "/nonexistent/libonnxruntime.so.1.31.1".to_owned())
    })
    .unwrap();
    let lazy = LazyEncoder::new(cfg);
    for _ in 0..2 {
        let err = lazy.get().await.unwrap_err();
        assert!(
            matches!(err, InferenceError::RuntimeMissing { .. }),
            "{err}"
        );
    }
    assert!(lazy.loaded().is_none());
}
