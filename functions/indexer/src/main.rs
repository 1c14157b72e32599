//! The indexer Lambda: S3 catalog uploads, the signals schedule, and direct invokes.

use std::sync::Arc;

use indexer::{job_of, Handler, FUNCTION};
use shopmind_inference::{InferenceConfig, LazyEncoder};
use shopmind_recs::SignalsConfig;
use shopmind_runtime::RuntimeConfig;
use shopmind_storage::aws::AwsStore;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shopmind_runtime::init_tracing();
    let runtime = RuntimeConfig::from_env()?;
    let store = Arc::new(AwsStore::from_env().await);
    let handler = Handler {
        blobs: store,
        encoder: Arc::new(LazyEncoder::new(InferenceConfig::from_env()?)),
        signals: SignalsConfig::from_lookup(|k| std::env::var(k).ok())?,
    };
    shopmind_runtime::run_events(FUNCTION, &runtime, move |event, mut metrics| {
        let handler = handler.clone();
        async move {
            let started = std::time::Instant::now();
            let out = match job_of(&event.payload) {
                Ok(job) => handler.run(job).await.map_err(Into::into),
                Err(e) => Err(e.into()),
            };
            metrics.millis("job_ms", started.elapsed().as_secs_f64() * 1e3);
            metrics.count("job_failed", f64::from(u8::from(out.is_err())));
            (out, metrics)
        }
    })
    .await?;
    Ok(())
}
