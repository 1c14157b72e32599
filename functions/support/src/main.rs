//! The support Lambda: conversations in DynamoDB, the KB index and intent model from S3
//! (re-read at most every `SHOPMIND_INDEX_REFRESH_SECS`), the encoder and sentiment head
//! loaded on first use.

use std::sync::Arc;

use shopmind_inference::{InferenceConfig, LazyEncoder, LazyGenerator, ModelSource};
use shopmind_runtime::{
    finish_router, run_on_lambda, staff_only, RuntimeConfig, ShopperAuth, StaffAuth,
    DEFAULT_BODY_LIMIT,
};
use shopmind_storage::aws::{sdk_config, AwsNames, AwsStore};
use support::{
    router, staff_router, EventBridgeHandoffs, LazySentiment, LiveKnowledge, SupportConfig,
    SupportState, FUNCTION, SUPPORT_AGENTS,
};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    shopmind_runtime::init_tracing();
    let runtime = RuntimeConfig::from_env()?;
    let config = SupportConfig::from_env()?;
    let inference = InferenceConfig::from_env()?;
    let aws = sdk_config().await;
    let store = Arc::new(AwsStore::from_sdk_config(&aws, AwsNames::from_env()));
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
        handoffs: Arc::new(EventBridgeHandoffs::new(
            &aws,
            EventBridgeHandoffs::bus_from_env(),
        )),
    };
    // The generator (1.5 GB) loads while the environment runs — init, then invocations —
    // and answers are extractive until it is ready; provisioned concurrency loads it ahead.
    if let Some(g) = &state.generator {
        let _ = g.ready_or_load();
    }
    // Shopper routes on the shopper API; the staff routes on the staff API, whose
    // authoriser the guard insists on.
    let app = router(state.clone()).merge(staff_only(
        staff_router(state),
        StaffAuth::IamOrGroup(SUPPORT_AGENTS.into()),
    ));
    let app = finish_router(app, DEFAULT_BODY_LIMIT);
    run_on_lambda(FUNCTION, &runtime, app).await?;
    Ok(())
}
