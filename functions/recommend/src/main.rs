//! The recommend Lambda: profiles from DynamoDB, indexes from S3 (re-read at most every
//! `SHOPMIND_INDEX_REFRESH_SECS`), the encoder only for requests with `context`.

use std::sync::Arc;

use recommend::{router, RecommendConfig, RecommendState, FUNCTION};
use shopmind_inference::{InferenceConfig, LazyEncoder};
use shopmind_recs::LiveIndexes;
use shopmind_runtime::{
    finish_router, run_on_lambda, RuntimeConfig, ShopperAuth, DEFAULT_BODY_LIMIT,
};
use shopmind_storage::aws::AwsStore;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime_error::Error> {
    shopmind_runtime::init_tracing();
    let runtime = RuntimeConfig::from_env()?;
    let config = RecommendConfig::from_env()?;
    let store = Arc::new(AwsStore::from_env().await);
    let state = RecommendState {
        profiles: store.clone(),
        indexes: Arc::new(LiveIndexes::new(store, config.refresh)),
        encoder: Arc::new(LazyEncoder::new(InferenceConfig::from_env()?)),
        config: Arc::new(config),
        // Shopper tokens are checked against keys read once, here.
        shoppers: Arc::new(ShopperAuth::from_env()?),
    };
    let app = finish_router(router(state), DEFAULT_BODY_LIMIT);
    run_on_lambda(FUNCTION, &runtime, app).await?;
    Ok(())
}

mod lambda_runtime_error {
    pub type Error = Box<dyn std::error::Error + Send + Sync>;
}
