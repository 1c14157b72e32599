//! ONNX inference for Shopmind: the ONNX Runtime environment, model manifests, the model store
//! (local directory or S3 with a verified `/tmp` cache), the sentence [`Encoder`] and the
//! KV-cache text [`Generator`].

mod config;
mod encoder;
mod error;
mod generator;
mod manifest;
mod runtime;
mod store;

pub use config::{
    InferenceConfig, LazyEncoder, LazyGenerator, ModelSource, DEFAULT_ENCODER_DIR,
    DEFAULT_GENERATOR_DIR,
};
pub use encoder::{
    cosine, dot, embed_in_steps, l2_normalize, Embedding, EncodeStats, Encoder, EncoderOptions,
};
pub use error::{InferenceError, Result};
pub use generator::{
    pick, process_logits, render_chat, ChatMessage, Decoding, FinishReason, GenerateOptions,
    Generation, GenerationConfig, Generator, GeneratorSpec, SplitMix64, Timing,
};
pub use manifest::{
    sha256_file, verify_file, Calibration, EncoderSpec, Manifest, ManifestFile, ModelKind, Pooling,
    VerifiedModel, MANIFEST_FILE,
};
pub use runtime::{OrtRuntime, ORT_LIBRARY_FILE};
pub use store::{BoxFuture, ModelRef, ModelStore, ObjectSource, S3Source};
