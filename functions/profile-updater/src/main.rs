//! The profile-updater Lambda: reads its configuration once, builds the updater on DynamoDB +
//! S3, and serves SQS batches, direct invokes and the staff forget route (IAM-authorised).

use std::sync::Arc;
use std::time::Duration;

use profile_updater::{router, EncoderQueries, ForgetState, Handler, FUNCTION};
use shopmind_inference::{InferenceConfig, LazyEncoder};
use shopmind_profiles::{ProfileUpdater, UpdaterConfig};
use shopmind_recs::{IndexItemVectors, LiveIndexes};
use shopmind_runtime::{finish_router, staff_only, RuntimeConfig, StaffAuth, DEFAULT_BODY_LIMIT};
use shopmind_storage::aws::AwsStore;

/// `SHOPMIND_INDEX_REFRESH_SECS` (default 60): how often the item index pointer is read;
/// seconds, fractions allowed, 0-86400, as recommend and support read it.
fn index_refresh() -> Result<Duration, String> {
    shopmind_runtime::number_setting(
        std::env::var("SHOPMIND_INDEX_REFRESH_SECS").ok(),
        60.0,
        0.0,
        86_400.0,
    )
    .map(Duration::from_secs_f64)
    .map_err(|v| format!("SHOPMIND_INDEX_REFRESH_SECS={v:?} must be seconds from 0 to 86400"))
}

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shopmind_runtime::init_tracing();
    let runtime = RuntimeConfig::from_env()?;
    let store = Arc::new(AwsStore::from_env().await);
    let encoder = Arc::new(LazyEncoder::new(InferenceConfig::from_env()?));
    let store_for_index = store.clone();
    let forget = ForgetState {
        profiles: store.clone(),
        conversations: store.clone(),
        idempotency: store.clone(),
    };
    let updater = ProfileUpdater::new(
        store.clone(),
        store.clone(),
        store,
        UpdaterConfig::from_env()?,
    )
    .with_query_embedder(Arc::new(EncoderQueries(encoder)))
    .with_item_vectors(Arc::new(IndexItemVectors(Arc::new(LiveIndexes::new(
        store_for_index,
        index_refresh()?,
    )))));
    let handler = Handler {
        updater: Arc::new(updater),
        deadline_margin: runtime.deadline_margin,
        shoppers: Arc::new(shopmind_runtime::ShopperAuth::from_env()?),
    };
    let app = finish_router(
        staff_only(router(forget), StaffAuth::Iam),
        DEFAULT_BODY_LIMIT,
    );
    shopmind_runtime::run_http_and_events(FUNCTION, &runtime, app, move |event, mut metrics| {
        let handler = handler.clone();
        async move {
            let out = shopmind_runtime::sqs::batch_or_direct(
                event,
                &mut metrics,
                |batch, deadline| handler.sqs(batch, deadline),
                |payload, _| handler.direct(payload),
            )
            .await;
            (out, metrics)
        }
    })
    .await?;
    Ok(())
}
