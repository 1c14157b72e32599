//! The copy-scheduler Lambda: an EventBridge schedule (or a direct invoke) runs one pass.

use std::sync::Arc;
use std::time::Duration;

use copy_scheduler::{Scheduler, SchedulerConfig, SqsQueue, FUNCTION};
use shopmind_copy::{CopyService, CopyWriter, NoModel};
use shopmind_runtime::RuntimeConfig;
use shopmind_storage::aws::{sdk_config, AwsStore};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shopmind_runtime::init_tracing();
    let runtime = RuntimeConfig::from_env()?;
    let config = SchedulerConfig::from_lookup(|k| std::env::var(k).ok())?;
    let sdk = sdk_config().await;
    let store = Arc::new(AwsStore::from_env().await);
    let scheduler = Scheduler {
        // Only reads drafts (freshness); it never generates.
        service: CopyService::new(
            store.clone(),
            Arc::new(CopyWriter::default()),
            Arc::new(NoModel),
        ),
        blobs: store,
        queue: Arc::new(SqsQueue {
            client: aws_sdk_sqs::Client::new(&sdk),
            url: config.queue_url.clone(),
        }),
        config,
        retry_pause: Duration::from_millis(200),
    };
    shopmind_runtime::run_events(FUNCTION, &runtime, move |_event, mut metrics| {
        let scheduler = scheduler.clone();
        async move {
            let out = match scheduler.run().await {
                Ok(s) => {
                    metrics.count("jobs_queued", s.queued.sent as f64);
                    metrics.count("drafts_current", s.due.current as f64);
                    metrics.count("drafts_kept", s.due.kept as f64);
                    serde_json::to_value(&s).map_err(Into::into)
                }
                Err(e) => {
                    metrics.count("runs_failed", 1.0);
                    Err(e.into())
                }
            };
            (out, metrics)
        }
    })
    .await?;
    Ok(())
}
