//! The support Lambda: conversations in DynamoDB, the KB index and intent model from S3
//! (re-read at most every `SHOPMIND_INDEX_REFRESH_SECS`), the encoder and sentiment head
//! loaded on first use.

use std::sync::Arc;

use shopmind_inference::{InferenceConfig, LazyEncoder, LazyGenerator, ModelSource};
use shopmind_runtime::{
    finish_router, run_on_lambda, RuntimeConfig, ShopperAuth, DEFAULT_BODY_LIMIT,
};
use shopmind_storage::aws::AwsStore;
use support::{router, LazySentiment, LiveKnowledge, SupportConfig, SupportState, FUNCTION};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    shopmind_runtime::init_tracing();
    let runtime = RuntimeConfig::from_env()?;
    let config = SupportConfig::from_env()?;
    let inference = InferenceConfig::from_env()?;
    let store = Arc::new(AwsStore::from_env().await);
    let state = SupportState {
        conversations: store.clone(),
        knowledge: Arc::new(LiveKnowledge::new(store, config.refresh)),
        sentiment: Arc::new(LazySentiment::new(ModelSource::new(
            config.sentiment_model.clone(),
            &inference.model_cache_dir,
        ))),
        generator: config
            .uses_generator(&inference.generator_model)
            .then(|| Arc::new(LazyGenerator::new(&inference))),
        encoder: Arc::new(LazyEncoder::new(inference)),
        config: Arc::new(config),
        // Shopper tokens are checked against keys read once, here.
        shoppers: Arc::new(ShopperAuth::from_env()?),
    };
    // The generator (1.5 GB) loads while the environment runs — init, then invocations —
    // and answers are extractive until it is ready; provisioned concurrency loads it ahead.
    if let Some(g) = &state.generator {
        let _ = g.ready_or_load();
    }
    let app = finish_router(router(state), DEFAULT_BODY_LIMIT);
    run_on_lambda(FUNCTION, &runtime, app).await?;
    Ok(())
}
