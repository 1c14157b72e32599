//! The indexer Lambda: S3 catalog uploads, the signals schedule, and direct invokes.

use std::sync::Arc;

use indexer::{job_of, Handler, FUNCTION};
use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;
use shopmind_inference::{InferenceConfig, LazyEncoder};
use shopmind_recs::SignalsConfig;
use shopmind_runtime::{invocation_span, take_cold_start, Metrics, RuntimeConfig};
use shopmind_storage::aws::{sdk_config, AwsNames, AwsStore};
use tracing::Instrument;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shopmind_runtime::init_tracing();
    let runtime = RuntimeConfig::from_env()?;
    let store = Arc::new(AwsStore::from_sdk_config(
        &sdk_config().await,
        AwsNames::from_env(),
    ));
    let handler = Handler {
        blobs: store,
        encoder: Arc::new(LazyEncoder::new(InferenceConfig::from_env()?)),
        signals: SignalsConfig::default(),
    };
    let namespace = runtime.metrics_namespace.clone();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (handler, namespace) = (handler.clone(), namespace.clone());
        async move {
            let cold = take_cold_start();
            let span = invocation_span(FUNCTION, &event.context.request_id, cold);
            async move {
                let started = std::time::Instant::now();
                let mut metrics = Metrics::new(&namespace, FUNCTION);
                let out = handler.run(job_of(&event.payload)?).await;
                metrics.millis("job_ms", started.elapsed().as_secs_f64() * 1e3);
                metrics.count("job_failed", f64::from(u8::from(out.is_err())));
                metrics.emit(cold);
                Ok::<Value, lambda_runtime::Error>(out?)
            }
            .instrument(span)
            .await
        }
    }))
    .await
}
