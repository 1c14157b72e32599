//! The indexer Lambda: S3 catalog and knowledge-base uploads, the signals schedule, direct
//! invokes, and (as `IndexShardFunction`) SQS batches of catalog shards.

use std::sync::Arc;

use indexer::athena::{AthenaSql, EngineConfig};
use indexer::{job_of, Handler, ShardConfig, SqsShardQueue, FUNCTION};
use shopmind_inference::{InferenceConfig, LazyEncoder};
use shopmind_recs::{ShardQueue, SignalsConfig, SqlEngine};
use shopmind_runtime::sqs::{deadline_of, is_sqs_event};
use shopmind_runtime::RuntimeConfig;
use shopmind_storage::aws::{sdk_config, AwsStore};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shopmind_runtime::init_tracing();
    let runtime = RuntimeConfig::from_env()?;
    let shard_config = ShardConfig::from_lookup(|k| std::env::var(k).ok())?;
    let engine = EngineConfig::from_lookup(|k| std::env::var(k).ok())?;
    let store = Arc::new(AwsStore::from_env().await);
    let signals_sql: Option<Arc<dyn SqlEngine>> = match engine {
        EngineConfig::Window => None,
        EngineConfig::Athena(config) => Some(Arc::new(AthenaSql::new(
            aws_sdk_athena::Client::new(&sdk_config().await),
            store.clone(),
            &store.names().bucket,
            config,
        )?)),
    };
    let shards: Option<Arc<dyn ShardQueue>> = match shard_config.queue_url {
        Some(url) => Some(Arc::new(SqsShardQueue {
            client: aws_sdk_sqs::Client::new(&sdk_config().await),
            url,
        })),
        None => None,
    };
    let handler = Handler {
        blobs: store,
        encoder: Arc::new(LazyEncoder::new(InferenceConfig::from_env()?)),
        signals: SignalsConfig::from_lookup(|k| std::env::var(k).ok())?,
        signals_sql,
        shards,
        shard_texts: shard_config.shard_texts,
    };
    let margin = runtime.deadline_margin;
    shopmind_runtime::run_events(FUNCTION, &runtime, move |event, mut metrics| {
        let handler = handler.clone();
        async move {
            let started = std::time::Instant::now();
            let out = if is_sqs_event(&event.payload) {
                let deadline = deadline_of(&event.context);
                match serde_json::from_value(event.payload) {
                    Ok(batch) => {
                        let (response, report) = handler.shard_batch(batch, deadline, margin).await;
                        metrics.count("shards_failed", report.failed.len() as f64);
                        serde_json::to_value(response).map_err(Into::into)
                    }
                    Err(e) => Err(e.into()),
                }
            } else {
                match job_of(&event.payload) {
                    Ok(job) => handler.run(job).await.map_err(Into::into),
                    Err(e) => Err(e.into()),
                }
            };
            metrics.millis("job_ms", started.elapsed().as_secs_f64() * 1e3);
            metrics.count("job_failed", f64::from(u8::from(out.is_err())));
            (out, metrics)
        }
    })
    .await?;
    Ok(())
}
