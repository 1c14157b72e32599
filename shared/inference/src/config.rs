//! Inference settings from environment variables, read once at cold start.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::OnceCell;

use crate::encoder::{Encoder, EncoderOptions};
use crate::error::{InferenceError, Result};
use crate::generator::Generator;
use crate::manifest::VerifiedModel;
use crate::runtime::OrtRuntime;
use crate::store::{ModelRef, ModelStore, S3Source};

/// Name of the encoder directory the fetch script writes under the models dir.
pub const DEFAULT_ENCODER_DIR: &str = "use-multilingual-v3-int8";
/// Name of the generator directory `fetch_generator.py` writes under the models dir.
pub const DEFAULT_GENERATOR_DIR: &str = "qwen2.5-coder-1.5b-instruct";

/// | variable | default |
/// | --- | --- |
/// | `SHOPMIND_MODELS_DIR` | `models` |
/// | `ORT_DYLIB_PATH` | `$SHOPMIND_MODELS_DIR/onnxruntime/libonnxruntime.so.1.31.1` |
/// | `SHOPMIND_ENCODER_MODEL` | `$SHOPMIND_MODELS_DIR/use-multilingual-v3-int8` (or `s3://bucket/prefix`) |
/// | `SHOPMIND_GENERATOR_MODEL` | `$SHOPMIND_MODELS_DIR/qwen2.5-coder-1.5b-instruct` (or `s3://bucket/prefix`) |
/// | `SHOPMIND_MODEL_CACHE_DIR` | `/tmp/shopmind-models` |
/// | `SHOPMIND_INTRA_THREADS` | the number of CPUs |
/// | `SHOPMIND_ENCODER_BATCH` | `32` |
#[derive(Debug, Clone)]
pub struct InferenceConfig {
    pub ort_library: PathBuf,
    pub encoder_model: ModelRef,
    pub generator_model: ModelRef,
    pub model_cache_dir: PathBuf,
    pub encoder: EncoderOptions,
}

impl InferenceConfig {
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Same as [`Self::from_env`] with an explicit variable lookup (for tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let models_dir =
            PathBuf::from(get("SHOPMIND_MODELS_DIR").unwrap_or_else(|| "models".into()));
        let ort_library = OrtRuntime::default_library_path(
            get("ORT_DYLIB_PATH").as_deref().map(Path::new),
            &models_dir,
        );
        let encoder_model = match get("SHOPMIND_ENCODER_MODEL") {
            Some(r) => r.parse()?,
            None => ModelRef::Local(models_dir.join(DEFAULT_ENCODER_DIR)),
        };
        let generator_model = match get("SHOPMIND_GENERATOR_MODEL") {
            Some(r) => r.parse()?,
            None => ModelRef::Local(models_dir.join(DEFAULT_GENERATOR_DIR)),
        };
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Self {
            ort_library,
            encoder_model,
            generator_model,
            model_cache_dir: get("SHOPMIND_MODEL_CACHE_DIR")
                .map_or_else(|| PathBuf::from("/tmp/shopmind-models"), PathBuf::from),
            encoder: EncoderOptions {
                intra_threads: parse_count(
                    get("SHOPMIND_INTRA_THREADS"),
                    "SHOPMIND_INTRA_THREADS",
                    cpus,
                )?,
                batch_size: parse_count(
                    get("SHOPMIND_ENCODER_BATCH"),
                    "SHOPMIND_ENCODER_BATCH",
                    32,
                )?,
            },
        })
    }
}

fn parse_count(value: Option<String>, name: &str, default: usize) -> Result<usize> {
    match value {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if (1..=1024).contains(&n) => Ok(n),
            _ => Err(InferenceError::Config(format!(
                "{name}={v:?} must be a whole number from 1 to 1024"
            ))),
        },
    }
}

/// An encoder loaded on first use: code paths that never embed never pay for the model.
/// Concurrent first callers share one load; a failed load is retried by the next caller.
#[derive(Debug)]
pub struct LazyEncoder {
    config: InferenceConfig,
    store: OnceCell<Arc<ModelStore>>,
    encoder: OnceCell<Arc<Encoder>>,
}

impl LazyEncoder {
    pub fn new(config: InferenceConfig) -> Self {
        Self {
            config,
            store: OnceCell::new(),
            encoder: OnceCell::new(),
        }
    }

    /// Uses `store` to resolve the model instead of one built from the environment.
    pub fn with_store(config: InferenceConfig, store: Arc<ModelStore>) -> Self {
        Self {
            config,
            store: OnceCell::new_with(Some(store)),
            encoder: OnceCell::new(),
        }
    }

    pub fn config(&self) -> &InferenceConfig {
        &self.config
    }

    /// The encoder if it has been loaded already.
    pub fn loaded(&self) -> Option<Arc<Encoder>> {
        self.encoder.get().cloned()
    }

    pub async fn get(&self) -> Result<Arc<Encoder>> {
        self.encoder
            .get_or_try_init(|| async {
                let runtime = OrtRuntime::get_or_init(&self.config.ort_library)?;
                let store = self
                    .store
                    .get_or_init(|| {
                        store_for(&self.config.encoder_model, &self.config.model_cache_dir)
                    })
                    .await;
                let model = store.resolve(&self.config.encoder_model).await?;
                let opts = self.config.encoder.clone();
                let encoder =
                    tokio::task::spawn_blocking(move || Encoder::load(runtime, &model, &opts))
                        .await
                        .map_err(|e| {
                            InferenceError::Run(format!("model load task failed: {e}"))
                        })??;
                tracing::info!(model = encoder.model_id(), "encoder loaded");
                Ok(Arc::new(encoder))
            })
            .await
            .cloned()
    }
}

/// The text generator, loaded on first use like [`LazyEncoder`] (local directory or S3,
/// verified against its manifest; a failed load is retried by the next caller).
#[derive(Debug)]
pub struct LazyGenerator {
    source: ModelSource,
    ort_library: PathBuf,
    intra_threads: usize,
    generator: OnceCell<Arc<Generator>>,
    /// A background load is under way (see [`Self::ready_or_load`]).
    loading: std::sync::atomic::AtomicBool,
}

impl LazyGenerator {
    pub fn new(config: &InferenceConfig) -> Self {
        Self {
            source: ModelSource::new(config.generator_model.clone(), &config.model_cache_dir),
            ort_library: config.ort_library.clone(),
            intra_threads: config.encoder.intra_threads,
            generator: OnceCell::new(),
            loading: std::sync::atomic::AtomicBool::new(false),
        }
    }

    pub fn model(&self) -> &ModelRef {
        self.source.model()
    }

    /// The generator if it has loaded; otherwise `None`, with the load started in the
    /// background (once at a time) so a request never waits for a multi-GB model.
    pub fn ready_or_load(self: &Arc<Self>) -> Option<Arc<Generator>> {
        if let Some(g) = self.generator.get() {
            return Some(g.clone());
        }
        if !self.loading.swap(true, std::sync::atomic::Ordering::AcqRel) {
            let this = self.clone();
            tokio::spawn(async move {
                if let Err(e) = this.get().await {
                    tracing::warn!(error = %e, "generator did not load; will try again");
                }
                this.loading
                    .store(false, std::sync::atomic::Ordering::Release);
            });
        }
        None
    }

    pub async fn get(&self) -> Result<Arc<Generator>> {
        self.generator
            .get_or_try_init(|| async {
                let runtime = OrtRuntime::get_or_init(&self.ort_library)?;
                let model = self.source.resolve().await?;
                let threads = self.intra_threads;
                let generator =
                    tokio::task::spawn_blocking(move || Generator::load(runtime, &model, threads))
                        .await
                        .map_err(|e| {
                            InferenceError::Run(format!("model load task failed: {e}"))
                        })??;
                tracing::info!(model = generator.model_id(), "generator loaded");
                Ok(Arc::new(generator))
            })
            .await
            .cloned()
    }
}

/// A store able to resolve `model`: local-only for a directory, S3 (with the verified
/// cache under `cache_dir`) for `s3://`.
async fn store_for(model: &ModelRef, cache_dir: &Path) -> Arc<ModelStore> {
    match model {
        ModelRef::Local(_) => Arc::new(ModelStore::local_only()),
        ModelRef::S3 { .. } => Arc::new(ModelStore::new(
            Arc::new(S3Source::from_env().await),
            cache_dir,
        )),
    }
}

/// One model reference resolved on first use (downloaded and verified when it is in S3);
/// for models that are not encoders, e.g. a classifier head.
#[derive(Debug)]
pub struct ModelSource {
    model: ModelRef,
    cache_dir: PathBuf,
    store: OnceCell<Arc<ModelStore>>,
}

impl ModelSource {
    pub fn new(model: ModelRef, cache_dir: impl Into<PathBuf>) -> Self {
        Self {
            model,
            cache_dir: cache_dir.into(),
            store: OnceCell::new(),
        }
    }

    pub fn model(&self) -> &ModelRef {
        &self.model
    }

    pub async fn resolve(&self) -> Result<VerifiedModel> {
        let store = self
            .store
            .get_or_init(|| store_for(&self.model, &self.cache_dir))
            .await;
        store.resolve(&self.model).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let cfg = InferenceConfig::from_lookup(|_| None).unwrap();
        assert_eq!(
            cfg.ort_library,
            Path::new("models/onnxruntime/libonnxruntime.so.1.31.1")
        );
        assert_eq!(
            cfg.encoder_model,
            ModelRef::Local("models/use-multilingual-v3-int8".into())
        );
        assert_eq!(cfg.encoder.batch_size, 32);
        assert_eq!(
            cfg.generator_model,
            ModelRef::Local("models/qwen2.5-coder-1.5b-instruct".into())
        );

        let cfg = InferenceConfig::from_lookup(|k| match k {
            "SHOPMIND_MODELS_DIR" => Some("/m".into()),
            "SHOPMIND_ENCODER_MODEL" => Some("s3://b/enc/1".into()),
            "SHOPMIND_INTRA_THREADS" => Some("2".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            cfg.ort_library,
            Path::new("/m/onnxruntime/libonnxruntime.so.1.31.1")
        );
        assert!(matches!(cfg.encoder_model, ModelRef::S3 { .. }));
        assert_eq!(cfg.encoder.intra_threads, 2);
    }

    #[test]
    fn bad_numbers_are_config_errors() {
        for bad in ["0", "-1", "two", "5000"] {
            let err = InferenceConfig::from_lookup(|k| {
                (k == "SHOPMIND_ENCODER_BATCH").then(|| bad.to_owned())
            })
            .unwrap_err();
            assert!(matches!(err, InferenceError::Config(_)), "{bad}: {err}");
        }
    }
}
