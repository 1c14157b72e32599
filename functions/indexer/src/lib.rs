//! The indexer's glue: which job an invocation asks for, and running it.
//!
//! - S3 `ObjectCreated` under `catalog/` → a new item-index version from that object, as a
//!   direct S3 notification or through EventBridge (what the template wires);
//! - an EventBridge schedule → new signals (co-occurrence, popularity, trending) from the
//!   event archive;
//! - a direct invoke `{"job": "catalog", "key": "catalog/…"}` or `{"job": "signals"}`.
//!
//! Other objects (the knowledge base has its own issue) are skipped and logged, never failed.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lambda_events::s3::S3Event;
use serde::Deserialize;
use serde_json::{json, Value};
use shopmind_inference::LazyEncoder;
use shopmind_recs::{index_catalog, index_signals, RecsError, SignalsConfig};
use shopmind_runtime::events::{created_objects, S3BridgeEvent, ScheduledEvent};
use shopmind_storage::BlobStore;

pub const FUNCTION: &str = "indexer";
pub const CATALOG_PREFIX: &str = "catalog/";

#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error("unrecognised invocation: {0}")]
    BadInvocation(String),
    #[error("catalog object {0} does not exist")]
    MissingObject(String),
    #[error("catalog object {0} is not UTF-8 text")]
    NotText(String),
    #[error("the encoder could not load: {0}")]
    Encoder(String),
    #[error(transparent)]
    Recs(#[from] RecsError),
    #[error(transparent)]
    Storage(#[from] shopmind_storage::StorageError),
}

/// What one invocation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    Catalog(Vec<String>),
    Signals,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Direct {
    job: String,
    #[serde(default)]
    key: Option<String>,
}

/// Reads the payload: an S3 notification, a scheduled event, or a direct invoke.
pub fn job_of(payload: &Value) -> Result<Job, IndexerError> {
    if payload.get("Records").is_some() {
        let event: S3Event = serde_json::from_value(payload.clone())
            .map_err(|e| IndexerError::BadInvocation(format!("S3 event: {e}")))?;
        let keys = created_objects(&event).into_iter().map(|o| o.key);
        return Ok(Job::Catalog(catalog_keys(keys)));
    }
    if payload.get("source").and_then(Value::as_str) == Some("aws.s3") {
        let event: S3BridgeEvent = serde_json::from_value(payload.clone())
            .map_err(|e| IndexerError::BadInvocation(format!("S3 EventBridge event: {e}")))?;
        let keys = event.created_object().into_iter().map(|o| o.key);
        return Ok(Job::Catalog(catalog_keys(keys)));
    }
    if payload.get("detail-type").is_some() {
        let event: ScheduledEvent = serde_json::from_value(payload.clone())
            .map_err(|e| IndexerError::BadInvocation(format!("scheduled event: {e}")))?;
        tracing::info!(
            rule = event.rule_name().unwrap_or(""),
            "scheduled signals job"
        );
        return Ok(Job::Signals);
    }
    let d: Direct = serde_json::from_value(payload.clone()).map_err(|e| {
        IndexerError::BadInvocation(format!(
            "{e}; expected an S3 notification, a scheduled event, or {{\"job\": \"catalog\", \"key\": …}} / {{\"job\": \"signals\"}}"
        ))
    })?;
    match (d.job.as_str(), d.key) {
        ("signals", None) => Ok(Job::Signals),
        ("catalog", Some(k)) if k.starts_with(CATALOG_PREFIX) => Ok(Job::Catalog(vec![k])),
        ("catalog", _) => Err(IndexerError::BadInvocation(format!(
            "a catalog job needs a \"key\" under {CATALOG_PREFIX}"
        ))),
        (other, _) => Err(IndexerError::BadInvocation(format!(
            "unknown job {other:?}; expected \"catalog\" or \"signals\""
        ))),
    }
}

/// The keys this function indexes: objects under `catalog/`; anything else is logged and skipped.
fn catalog_keys(keys: impl Iterator<Item = String>) -> Vec<String> {
    keys.filter(|k| {
        let ours = k.starts_with(CATALOG_PREFIX) && !k.ends_with('/');
        if !ours {
            tracing::info!(key = %k, "object outside catalog/ skipped");
        }
        ours
    })
    .collect()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

#[derive(Debug, Clone)]
pub struct Handler {
    pub blobs: Arc<dyn BlobStore>,
    pub encoder: Arc<LazyEncoder>,
    pub signals: SignalsConfig,
}

impl Handler {
    /// Runs the job and returns its report. A failure is returned (the invocation fails, so
    /// S3's or the scheduler's retry runs it again); nothing is half-published either way.
    pub async fn run(&self, job: Job) -> Result<Value, IndexerError> {
        match job {
            Job::Signals => {
                let r = index_signals(self.blobs.as_ref(), &self.signals, now_secs()).await?;
                Ok(json!({ "signals": r }))
            }
            Job::Catalog(keys) => {
                let mut reports = Vec::new();
                for key in keys {
                    let body = self
                        .blobs
                        .get_blob(&key)
                        .await?
                        .ok_or_else(|| IndexerError::MissingObject(key.clone()))?;
                    let text = std::str::from_utf8(&body)
                        .map_err(|_| IndexerError::NotText(key.clone()))?;
                    let encoder = self
                        .encoder
                        .get()
                        .await
                        .map_err(|e| IndexerError::Encoder(e.to_string()))?;
                    // Log lines, not a bar: one every step of 256 items.
                    let mut progress = |done: usize, total: usize| {
                        tracing::info!(done, total, "embedding catalog");
                    };
                    let r = index_catalog(
                        self.blobs.as_ref(),
                        text,
                        encoder,
                        now_secs(),
                        &mut progress,
                    )
                    .await?;
                    for bad in &r.bad_lines {
                        tracing::warn!(key = %key, line = bad.line, reason = %bad.reason, "catalog line skipped");
                    }
                    reports.push(json!({ "key": key, "report": r }));
                }
                Ok(json!({ "catalogs": reports }))
            }
        }
    }
}
