use std::path::PathBuf;

/// Everything that can go wrong loading or running a model. Each failure a user can fix has its
/// own variant, so callers (and tests) can tell a missing runtime from a corrupt download.
#[derive(Debug, thiserror::Error)]
pub enum InferenceError {
    #[error(
        "ONNX Runtime library not found at {path}: run `infra/scripts/setup.sh` (or `python3 infra/scripts/fetch_models.py`) to fetch it, or set ORT_DYLIB_PATH to a libonnxruntime.so"
    )]
    RuntimeMissing { path: PathBuf },

    #[error("ONNX Runtime library at {path} could not be loaded: {reason}")]
    RuntimeLoad { path: PathBuf, reason: String },

    #[error("model manifest {path} not found; fetch the model first (`infra/scripts/setup.sh`)")]
    ManifestMissing { path: PathBuf },

    #[error("model manifest {path} is invalid: {reason}")]
    ManifestInvalid { path: PathBuf, reason: String },

    #[error("model file {path} named in the manifest is missing")]
    ModelFileMissing { path: PathBuf },

    #[error("checksum mismatch for {file}: manifest says sha256 {expected}, file has {actual}")]
    ChecksumMismatch {
        file: String,
        expected: String,
        actual: String,
    },

    #[error("ONNX Runtime could not load model {path}: {reason}")]
    ModelLoad { path: PathBuf, reason: String },

    #[error("tokenizer {path} could not be loaded: {reason}")]
    TokenizerLoad { path: PathBuf, reason: String },

    #[error("the model graph is not what its manifest says: {0}")]
    Graph(String),

    #[error("model reference {0:?} is not a local directory or an s3://bucket/prefix URL")]
    BadModelRef(String),

    #[error("object s3://{bucket}/{key} not found")]
    ObjectMissing { bucket: String, key: String },

    #[error("S3 request for s3://{bucket}/{key} failed: {reason}")]
    ObjectStore {
        bucket: String,
        key: String,
        reason: String,
    },

    #[error("configuration: {0}")]
    Config(String),

    #[error("the prompt has {tokens} tokens; the model's context holds {context}")]
    PromptTooLong { tokens: usize, context: usize },

    #[error("tokenization failed: {0}")]
    Tokenize(String),

    #[error("inference failed: {0}")]
    Run(String),

    #[error("I/O error at {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl InferenceError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { path, source }
    }
}

pub type Result<T, E = InferenceError> = std::result::Result<T, E>;
