#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]
//! Locating the fetched model and runtime for the integration tests. Missing files are a test
//! failure with instructions, never a silent skip.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use shopmind_inference::{Encoder, EncoderOptions, OrtRuntime, VerifiedModel, ORT_LIBRARY_FILE};

/// The encoder the reference fixture (`fixtures/reference_embeddings.json`) was made with.
pub const MINILM_DIR: &str = "all-minilm-l6-v2-int8";

pub fn models_dir() -> PathBuf {
    std::env::var_os("SHOPMIND_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models"))
}

pub fn ort_library() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH")
        .map(PathBuf::from)
        .unwrap_or_else(|| models_dir().join("onnxruntime").join(ORT_LIBRARY_FILE))
}

pub fn encoder_dir() -> PathBuf {
    model_dir(MINILM_DIR)
}

pub fn model_dir(name: &str) -> PathBuf {
    let dir = models_dir().join(name);
    assert!(
        dir.join("manifest.json").is_file(),
        "{} has no model: run infra/scripts/setup.sh first",
        dir.display()
    );
    dir
}

pub fn runtime() -> &'static OrtRuntime {
    OrtRuntime::get_or_init(&ort_library())
        .unwrap_or_else(|e| panic!("{e} (run infra/scripts/setup.sh first)"))
}

pub fn encoder(batch_size: usize) -> Arc<Encoder> {
    encoder_named(MINILM_DIR, batch_size)
}

pub fn encoder_named(name: &str, batch_size: usize) -> Arc<Encoder> {
    let model = VerifiedModel::open(&model_dir(name)).expect("model verifies");
    let opts = EncoderOptions {
        intra_threads: 1,
        batch_size,
    };
    Arc::new(Encoder::load(runtime(), &model, &opts).expect("encoder loads"))
}

/// Copies the fetched model into a fresh temporary directory the test may damage.
pub fn copy_of_model() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(encoder_dir()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), tmp.path().join(entry.file_name())).unwrap();
    }
    tmp
}

/// Replaces `file` in a copied model with `bytes` and re-signs the manifest, so the damage gets
/// past checksum verification to the loader.
pub fn replace_and_resign(dir: &Path, file: &str, bytes: &[u8]) {
    use shopmind_inference::{sha256_file, Manifest};
    let path = dir.join(file);
    std::fs::write(&path, bytes).unwrap();
    let mut manifest = Manifest::read(dir).unwrap();
    let sha = sha256_file(&path).unwrap();
    manifest
        .files
        .iter_mut()
        .filter(|f| f.path == file)
        .for_each(|f| f.sha256 = sha.clone());
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
}
