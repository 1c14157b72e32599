//! The copy-scheduler: on its EventBridge schedule it reads the newest catalog under
//! `catalog/` (or `SHOPMIND_CATALOG_KEY`), works out which product × channel × locale drafts
//! are missing or stale (input hash changed; approved and edited drafts are never redone),
//! and sends those jobs to the copy queue with `SendMessageBatch`, retrying failed entries.
//! Any entry still failing fails the invocation, so the schedule's retry runs it again
//! (jobs already queued then find their draft current and cost one read).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use shopmind_copy::jobs::{due, enqueue, BatchSpec, DueTally, EnqueueReport, JobQueue};
use shopmind_copy::{parse_catalog, CopyError, CopyService};
use shopmind_storage::BlobStore;

pub const FUNCTION: &str = "copy-scheduler";

#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    #[error("{0}")]
    Config(String),
    #[error("no catalog: nothing under catalog/ in the bucket")]
    NoCatalog,
    #[error("catalog {key}: {why}")]
    Catalog { key: String, why: String },
    #[error(transparent)]
    Copy(#[from] CopyError),
    #[error("storage: {0}")]
    Storage(#[from] shopmind_storage::StorageError),
    #[error("{} jobs could not be queued after retries", .0.failed.len())]
    Unsent(EnqueueReport),
}

/// | variable | default |
/// | --- | --- |
/// | `SHOPMIND_COPY_QUEUE_URL` (the copy queue) | required |
/// | `SHOPMIND_COPY_CHANNELS` | `pdp_description` |
/// | `SHOPMIND_COPY_LOCALES` | `en` |
/// | `SHOPMIND_CATALOG_KEY` (a fixed catalog object) | the last key under `catalog/` |
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    pub queue_url: String,
    pub spec: BatchSpec,
    pub catalog_key: Option<String>,
}

impl SchedulerConfig {
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, SchedulerError> {
        let get = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let queue_url = get("SHOPMIND_COPY_QUEUE_URL").ok_or_else(|| {
            SchedulerError::Config("SHOPMIND_COPY_QUEUE_URL must name the copy queue".into())
        })?;
        let spec = BatchSpec::parse(
            &get("SHOPMIND_COPY_CHANNELS").unwrap_or_else(|| "pdp_description".into()),
            &get("SHOPMIND_COPY_LOCALES").unwrap_or_else(|| "en".into()),
        )
        .map_err(|e| SchedulerError::Config(format!("SHOPMIND_COPY_CHANNELS/LOCALES: {e}")))?;
        Ok(Self {
            queue_url,
            spec,
            catalog_key: get("SHOPMIND_CATALOG_KEY"),
        })
    }
}

/// SQS as the job queue.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    pub client: aws_sdk_sqs::Client,
    pub url: String,
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn send_batch(&self, entries: &[(String, String)]) -> shopmind_copy::Result<Vec<String>> {
        let batch = entries
            .iter()
            .map(|(id, body)| {
                aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                    .id(id)
                    .message_body(body)
                    .build()
                    .map_err(|e| CopyError::Queue(e.to_string()))
            })
            .collect::<shopmind_copy::Result<Vec<_>>>()?;
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(batch))
            .send()
            .await
            .map_err(|e| {
                CopyError::Queue(aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
            })?;
        Ok(out.failed().iter().map(|f| f.id().to_owned()).collect())
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub catalog: String,
    pub products: usize,
    pub bad_lines: usize,
    pub due: DueTally,
    pub queued: EnqueueReport,
}

#[derive(Debug, Clone)]
pub struct Scheduler {
    pub service: CopyService,
    pub blobs: Arc<dyn BlobStore>,
    pub queue: Arc<dyn JobQueue>,
    pub config: SchedulerConfig,
    /// Pause before the first retry of failed entries (doubles each time).
    pub retry_pause: Duration,
}

impl Scheduler {
    pub async fn run(&self) -> Result<RunSummary, SchedulerError> {
        let key = match &self.config.catalog_key {
            Some(k) => k.clone(),
            None => self
                .blobs
                .list_blobs("catalog/")
                .await?
                .into_iter()
                .rfind(|k| !k.ends_with('/'))
                .ok_or(SchedulerError::NoCatalog)?,
        };
        let bytes = self
            .blobs
            .get_blob(&key)
            .await?
            .ok_or_else(|| SchedulerError::Catalog {
                key: key.clone(),
                why: "object not found".into(),
            })?;
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| SchedulerError::Catalog {
            key: key.clone(),
            why: "not UTF-8".into(),
        })?;
        let (products, bad) = parse_catalog(&text);
        for b in bad.iter().take(20) {
            tracing::warn!(catalog = %key, line = b.line, error = %b.reason, "catalog line skipped");
        }
        let jobs = self.config.spec.jobs(&products);
        let (due_jobs, tally) = due(&self.service, jobs).await?;
        let queued = enqueue(self.queue.as_ref(), &due_jobs, 4, self.retry_pause).await?;
        let summary = RunSummary {
            catalog: key,
            products: products.len(),
            bad_lines: bad.len(),
            due: tally,
            queued,
        };
        tracing::info!(
            catalog = %summary.catalog,
            products = summary.products,
            queued = summary.queued.sent,
            unchanged = summary.due.current,
            kept = summary.due.kept,
            "copy jobs scheduled"
        );
        if !summary.queued.failed.is_empty() {
            return Err(SchedulerError::Unsent(summary.queued));
        }
        Ok(summary)
    }
}
