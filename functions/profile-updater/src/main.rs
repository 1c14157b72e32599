//! The profile-updater Lambda: reads its configuration once, builds the updater on DynamoDB +
//! S3, and serves SQS batches and direct invokes.

use std::sync::Arc;
use std::time::Duration;

use lambda_runtime::{service_fn, LambdaEvent};
use profile_updater::{is_sqs, EncoderQueries, Handler, FUNCTION};
use serde_json::Value;
use shopmind_inference::{InferenceConfig, LazyEncoder};
use shopmind_profiles::{ProfileUpdater, UpdaterConfig};
use shopmind_recs::{IndexItemVectors, LiveIndexes};
use shopmind_runtime::{invocation_span, take_cold_start, Metrics, RuntimeConfig};
use shopmind_storage::aws::{sdk_config, AwsNames, AwsStore};
use tracing::Instrument;

/// `SHOPMIND_INDEX_REFRESH_SECS` (default 60): how often the item index pointer is read.
fn index_refresh_secs() -> Result<u64, String> {
    match std::env::var("SHOPMIND_INDEX_REFRESH_SECS") {
        Err(_) => Ok(60),
        Ok(v) => v
            .trim()
            .parse()
            .map_err(|_| format!("SHOPMIND_INDEX_REFRESH_SECS={v:?} must be whole seconds")),
    }
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shopmind_runtime::init_tracing();
    let runtime = RuntimeConfig::from_env()?;
    let store = Arc::new(AwsStore::from_sdk_config(
        &sdk_config().await,
        AwsNames::from_env(),
    ));
    let encoder = Arc::new(LazyEncoder::new(InferenceConfig::from_env()?));
    let store_for_index = store.clone();
    let updater = ProfileUpdater::new(
        store.clone(),
        store.clone(),
        store,
        UpdaterConfig::from_env()?,
    )
    .with_query_embedder(Arc::new(EncoderQueries(encoder)))
    .with_item_vectors(Arc::new(IndexItemVectors(Arc::new(LiveIndexes::new(
        store_for_index,
        Duration::from_secs(index_refresh_secs()?),
    )))));
    let handler = Handler {
        updater: Arc::new(updater),
        deadline_margin: runtime.deadline_margin,
    };
    let namespace = runtime.metrics_namespace.clone();
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let (handler, namespace) = (handler.clone(), namespace.clone());
        async move {
            let cold = take_cold_start();
            let span = invocation_span(FUNCTION, &event.context.request_id, cold);
            let deadline = shopmind_runtime::sqs::deadline_of(&event.context);
            async move {
                let mut metrics = Metrics::new(&namespace, FUNCTION);
                let out = if is_sqs(&event.payload) {
                    let batch = serde_json::from_value(event.payload)?;
                    let (response, report, tally) = handler.sqs(batch, deadline).await;
                    shopmind_runtime::sqs::record_batch_metrics(&mut metrics, &report);
                    metrics.count("events_applied", tally.applied as f64);
                    metrics.count("events_duplicate", tally.duplicates as f64);
                    metrics.count("events_too_old", tally.too_old as f64);
                    metrics.count("events_invalid", tally.invalid as f64);
                    serde_json::to_value(response)?
                } else {
                    handler.direct(event.payload).await
                };
                metrics.emit(cold);
                Ok::<Value, lambda_runtime::Error>(out)
            }
            .instrument(span)
            .await
        }
    }))
    .await
}
