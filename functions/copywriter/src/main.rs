//! The copywriter Lambda: staff HTTP routes (IAM-authorised by API Gateway) and SQS batches
//! of copy jobs, one binary. Drafts in DynamoDB; the generator loaded on first use (local
//! directory or S3, verified) and kept across warm invocations.

use std::sync::Arc;

use copywriter::{router, CopyConfig, CopyState, Worker, COPY_EDITORS, FUNCTION};
use shopmind_copy::{ModelProvider, NoModel};
use shopmind_inference::{InferenceConfig, LazyGenerator};
use shopmind_runtime::sqs::batch_or_direct;
use shopmind_runtime::{finish_router, staff_only, RuntimeConfig, StaffAuth, DEFAULT_BODY_LIMIT};
use shopmind_storage::aws::AwsStore;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shopmind_runtime::init_tracing();
    let runtime = RuntimeConfig::from_env()?;
    let config = CopyConfig::from_env()?;
    let inference = InferenceConfig::from_env()?;
    let store = Arc::new(AwsStore::from_env().await);
    let models: Arc<dyn ModelProvider> = if config.generator {
        Arc::new(LazyGenerator::new(&inference))
    } else {
        Arc::new(NoModel)
    };
    let service = config.service(store, models);
    let worker = Worker {
        service: service.clone(),
        margin: runtime.deadline_margin,
    };
    let app = finish_router(
        staff_only(
            router(CopyState {
                service,
                config: Arc::new(config),
            }),
            StaffAuth::IamOrGroup(COPY_EDITORS.into()),
        ),
        DEFAULT_BODY_LIMIT,
    );
    shopmind_runtime::run_http_and_events(FUNCTION, &runtime, app, move |event, mut metrics| {
        let worker = worker.clone();
        async move {
            let out = batch_or_direct(
                event,
                &mut metrics,
                |batch, deadline| worker.sqs(batch, deadline),
                |payload, deadline| worker.direct(payload, deadline),
            )
            .await;
            (out, metrics)
        }
    })
    .await?;
    Ok(())
}
